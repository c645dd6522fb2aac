"""The framework-free rules."""
