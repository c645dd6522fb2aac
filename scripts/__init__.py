"""Helpers shared by the scripts under bench/ and docs/ and by the end-to-end tests."""
