"""Helpers shared by the tests: import the module that holds what you need (apps.py needs the web app)."""
