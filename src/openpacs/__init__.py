"""openpacs: a lightweight PACS."""

__version__ = "0.1.0"
