"""The package version, written into model files and exports (kept with ``pyproject.toml``)."""

__version__ = "0.1.0"
