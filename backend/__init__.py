"""Lookalike: visual similar-items backend for product catalogs."""
