"""Lookalike: visual similar-items backend for product catalogs."""

from backend.app import create_app

__all__ = ["create_app"]
