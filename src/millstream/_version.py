"""The version of millstream (one place, read by the package and the CLI)."""

__version__ = "0.1.0"
