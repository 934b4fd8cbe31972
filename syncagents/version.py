"""The package version, ``__version__`` (also the built-in plugins' version)."""

__version__ = "0.1.0"
