"""Old path of :mod:`moa.interop.sbml` (``moa.sbml.export`` is the name README gave users)."""

from .interop.sbml import export, validate  # noqa: F401
