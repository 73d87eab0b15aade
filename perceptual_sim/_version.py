"""The package version, in a module of its own: submodules import it from here, never from the package root."""

__version__ = "0.7.0"
