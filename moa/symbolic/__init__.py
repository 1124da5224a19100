"""The symbolic model layer: mechanisms (:mod:`.mechanism`), unit checks (:mod:`.units`) and the assembled
:class:`Model` whose right-hand side, Jacobian, observables and initial values are derived once (:mod:`.model`).
The named models users simulate are in :mod:`.named_models` (not imported here: they import the mechanisms,
which import this package)."""

from .mechanism import TIME, TIME_UNIT, Conversion, DoseRoute, Expression, Mechanism, Parameter, Species, Term, ref
from .model import JacobianEntries, Model, jacobian_entries

__all__ = [
    "TIME",
    "TIME_UNIT",
    "Conversion",
    "DoseRoute",
    "Expression",
    "Mechanism",
    "Parameter",
    "Species",
    "Term",
    "ref",
    "JacobianEntries",
    "Model",
    "jacobian_entries",
]
