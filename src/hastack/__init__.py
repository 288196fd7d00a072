"""hastack: a high-availability stack for Linux."""

__version__ = "0.1.0"
