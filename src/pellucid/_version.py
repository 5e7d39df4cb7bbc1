"""The version of pellucid (one place: the package, the report and the saved files read it)."""
__version__ = "0.1.0"
