"""The package version, recorded in every checkpoint and result file."""

__version__ = "0.1.0"
