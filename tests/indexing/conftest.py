"""The real-process stack fixture for the worker tests."""

from tests.utils.stack import stack

__all__ = ["stack"]
