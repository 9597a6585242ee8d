"""The version of kb, recorded in every index it builds."""

__version__ = "0.1.0"
