"""The moa version, in a module of its own so that modules inside the package (provenance, the SBML
exporter, the command line) can read it without importing the package ``__init__`` above them."""

__version__ = "0.1.0"
