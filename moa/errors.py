"""Exceptions raised by moa, each with a message that says what to change."""


class MoaError(Exception):
    """Base class of moa's own errors."""


class UnitError(MoaError, ValueError):
    """A unit that cannot be parsed, or a rate term whose unit does not match its species."""


class ModelError(MoaError, ValueError):
    """A model that cannot be assembled: unknown symbols, clashing declarations."""


class SimulationError(MoaError, RuntimeError):
    """The solver failed; the message names the time, the parameter set and what to try."""


class BoundsWarning(UserWarning):
    """A parameter value outside its sweep bounds (the plausible range) but inside its physical domain."""


class DoseWarning(UserWarning):
    """Doses of a regimen that a run does not give (after its end), or gives only in part
    (an infusion running past the end); the result and its provenance hold only what was given."""


class CacheWarning(UserWarning):
    """A damaged or unwritable compiled-solver cache was found; the message names the file or folder
    and says what was done about it (rebuilt, moved to a temporary folder)."""


class SummaryError(MoaError, ValueError):
    """An experiment's summary that does not match its contract (moa.report.summaries): the message names the
    experiment, the missing or unknown key, where it sits and the keys present."""
