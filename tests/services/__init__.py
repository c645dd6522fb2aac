"""The use cases, called directly."""
