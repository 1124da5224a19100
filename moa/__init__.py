"""moa: a mechanism-of-action simulator for PD-L1 x 4-1BB bispecific antibodies.

One way in: :func:`moa.simulate`. Models are assembled from mechanisms
(:mod:`moa.mechanisms`), parameters come from ``models/`` (:func:`moa.load_parameters`).
"""

from ._version import __version__
from .errors import ModelError, SimulationError, UnitError
from .parameters import ParameterSet, load_parameters
from .regimen import Dose, Regimen, cycles, every
from .simulate import output_times, simulate
from .symbolic import Mechanism, Model

__all__ = [
    "__version__",
    "Mechanism",
    "Model",
    "ModelError",
    "SimulationError",
    "UnitError",
    "ParameterSet",
    "load_parameters",
    "Dose",
    "Regimen",
    "cycles",
    "every",
    "simulate",
    "output_times",
]
