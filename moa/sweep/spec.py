"""A sweep as data: :class:`SweepSpec` and its TOML form (:func:`load_spec`).

A spec file names what to simulate, which parameters to vary and how, how to sample them and what
to keep per point::

    name = "cold_growth_kill"
    arms = ["bsab_2x2", "apdl1"]          # models/arms.toml
    settings = ["cold"]                   # models/settings.toml
    duration_days = 84                    # each simulation's length [day]
    output_step_days = 1                  # solver output grid [day] (summaries are computed on it)
    chunk_size = 64                       # points per chunk (one batched simulation, one checkpoint file)
    solver = "auto"
    rtol = 1e-6

    [sampling]
    method = "lhs"                        # grid | lhs | sobol | saltelli | morris
    n = 64                                # points (grid: levels per parameter; saltelli: base samples N;
    seed = 1                              #         morris: trajectories)

    [parameters.tumour_growth_rate]       # default: the bounds in models/, log-uniform where scale = "log"
    [parameters.kill_rate_max]
    distribution = "uniform"
    low = 0.5                             # in the parameter's unit (models/parameters/*.toml)
    high = 2.0
    [parameters.cl_bsab]
    distribution = "lognormal"
    median = 0.2                          # log-normal: median [parameter unit] and sd of ln(value)
    sd_log = 0.3

    [outputs]
    observables = ["tumour_diameter"]     # kept at the days below (any species or observable)
    days = [28, 56, 84]                   # or "all": every output time
    summaries = ["best_change_pct", "time_to_progression_days", "final_diameter_mm"]

Distributions map a point ``u`` of the unit hypercube to a value with their inverse CDF (``ppf``):
``uniform`` and ``loguniform`` on [low, high]; ``normal`` (``mean``, ``sd``) and ``lognormal``
(``median``, ``sd_log``), each truncated to [low, high] so that every value lies within the
parameter's sweep bounds (and so its physical domain). ``low``/``high`` default to the bounds in
``models/`` and may only narrow them: a bound outside the model's is refused.

Every mistake is a :class:`SpecError` naming the field, the value and what is allowed, raised by
:func:`load_spec` / :meth:`SweepSpec.validate` before anything runs or is written.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import pathlib
import tomllib
from collections.abc import Mapping

import numpy as np

__all__ = [
    "SpecError",
    "ParameterDistribution",
    "SweepSpec",
    "load_spec",
    "spec_from_dict",
    "DISTRIBUTIONS",
    "SAMPLING_METHODS",
    "MAX_POINTS",
]

DISTRIBUTIONS = ("uniform", "loguniform", "normal", "lognormal")
SAMPLING_METHODS = ("grid", "lhs", "sobol", "saltelli", "morris")
#: The most points (simulations per arm and setting) one spec may ask for. assumed: 10^7 one-year
#: simulations take about two core-days at ~60 per second per core; a larger number is almost surely a typo
#: (a grid of n^d points grows fast).
MAX_POINTS = 10_000_000
_TOP_FIELDS = {
    "name",
    "description",
    "arms",
    "settings",
    "duration_days",
    "output_step_days",
    "chunk_size",
    "solver",
    "rtol",
    "atol",
    "sampling",
    "parameters",
    "outputs",
    "overrides",
}
_DIST_FIELDS = {"distribution", "low", "high", "mean", "sd", "median", "sd_log"}


class SpecError(ValueError):
    """A sweep spec that cannot run: the message names the field, the value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class ParameterDistribution:
    """How one parameter is drawn: a distribution on [low, high] in the parameter's unit (``unit``).

    ``mean``/``sd`` (normal) and ``median``/``sd_log`` (lognormal; ``sd_log`` is the sd of ln(value))
    are unused by the uniform distributions.
    """

    name: str
    distribution: str
    low: float
    high: float
    unit: str = ""
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    sd_log: float | None = None

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Values [unit] at the points ``u`` in [0, 1] of the unit interval (inverse CDF), within [low, high]."""
        from scipy import stats

        u = np.asarray(u, dtype=float)
        if self.distribution == "uniform":
            x = self.low + u * (self.high - self.low)
        elif self.distribution == "loguniform":
            x = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        elif self.distribution == "normal":
            a, b = (self.low - self.mean) / self.sd, (self.high - self.mean) / self.sd
            x = stats.truncnorm.ppf(u, a, b, loc=self.mean, scale=self.sd)
        else:  # lognormal: a normal in ln(value), truncated to [ln low, ln high]
            mu = math.log(self.median)
            a, b = (math.log(self.low) - mu) / self.sd_log, (math.log(self.high) - mu) / self.sd_log
            x = np.exp(stats.truncnorm.ppf(u, a, b, loc=mu, scale=self.sd_log))
        return np.clip(x, self.low, self.high)  # round-off at u = 0 or 1 must not leave the bounds

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: arms x settings x sampled points, what to keep per point, and how to chunk it.

    Build one in Python or from TOML (:func:`load_spec`); :meth:`validate` checks it against
    ``models/`` and the model. ``solver`` may be a name or (in Python only) a solver object.
    ``overrides`` fixes parameters at other values than the scenario's for every point.
    """

    name: str
    arms: tuple[str, ...]
    settings: tuple[str, ...]
    parameters: tuple[ParameterDistribution, ...]
    sampling: str = "lhs"
    n: int = 64
    seed: int = 0
    duration_days: float = 84.0
    output_step_days: float = 1.0
    observables: tuple[str, ...] = ()
    days: tuple[float, ...] | str = "all"
    summaries: tuple[str, ...] = ("best_change_pct",)
    chunk_size: int = 64
    solver: object = "auto"
    rtol: float = 1e-6
    atol: float = 1e-9
    overrides: Mapping[str, float] = dataclasses.field(default_factory=dict)
    description: str = ""

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def validate(self) -> "SweepSpec":
        """Check the spec against ``models/`` and the model; returns it, or raises :class:`SpecError`."""
        _validate(self)
        return self

    def as_dict(self) -> dict:
        """JSON-able form (the solver by name); the same dict gives the same :meth:`digest`."""
        out = dataclasses.asdict(self)
        out["parameters"] = [p.as_dict() for p in self.parameters]
        out["solver"] = _solver_label(self.solver)
        out["overrides"] = dict(sorted(self.overrides.items()))
        out["days"] = self.days if isinstance(self.days, str) else [float(d) for d in self.days]
        return out

    def digest(self) -> str:
        """sha256 (hex, first 16) of everything but the description: what changes the samples and outputs, and the
        chunk size (the checkpoint layout, and through the quasi-steady start the last digits of a point's numbers)."""
        payload = {k: v for k, v in self.as_dict().items() if k not in ("description",)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _solver_label(solver) -> str:
    if isinstance(solver, str):
        return solver
    return f"{getattr(solver, 'name', type(solver).__name__)}: {solver!r}"


# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------


def load_spec(path: str | pathlib.Path) -> SweepSpec:
    """Read and validate a TOML sweep spec (see the module docstring); a bad one raises :class:`SpecError`."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    try:
        return spec_from_dict(data, default_name=path.stem)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def spec_from_dict(data: Mapping, default_name: str = "sweep") -> SweepSpec:
    """A validated :class:`SweepSpec` from the TOML structure (a dict)."""
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise SpecError(f"unknown field(s) {unknown}; allowed: {sorted(_TOP_FIELDS)}")
    sampling = data.get("sampling", {})
    if not isinstance(sampling, Mapping):
        raise SpecError(f"sampling={sampling!r}: must be a table with method, n and seed")
    bad = sorted(set(sampling) - {"method", "n", "seed", "levels"})
    if bad:
        raise SpecError(f"sampling: unknown field(s) {bad}; allowed: ['levels', 'method', 'n', 'seed']")
    outputs = data.get("outputs", {})
    if not isinstance(outputs, Mapping):
        raise SpecError(f"outputs={outputs!r}: must be a table with observables, days and summaries")
    bad = sorted(set(outputs) - {"observables", "days", "summaries"})
    if bad:
        raise SpecError(f"outputs: unknown field(s) {bad}; allowed: ['days', 'observables', 'summaries']")
    table = data.get("parameters")
    if not isinstance(table, Mapping) or not table:
        raise SpecError(
            f"parameters={table!r}: must be a table with one entry per varied parameter, "
            "e.g. [parameters.tumour_growth_rate]"
        )
    params = tuple(_distribution(name, entry) for name, entry in table.items())
    days = outputs.get("days", "all")
    spec = SweepSpec(
        name=str(data.get("name", default_name)),
        description=str(data.get("description", "")),
        arms=_names("arms", data.get("arms")),
        settings=_names("settings", data.get("settings")),
        parameters=params,
        sampling=sampling.get("method", "lhs"),
        n=sampling.get("n", 64),
        seed=sampling.get("seed", 0),
        duration_days=data.get("duration_days", 84.0),
        output_step_days=data.get("output_step_days", 1.0),
        observables=_names("outputs.observables", outputs.get("observables", []), empty_ok=True),
        days=days if isinstance(days, str) else tuple(days) if isinstance(days, list) else days,
        summaries=_names("outputs.summaries", outputs.get("summaries", ["best_change_pct"]), empty_ok=True),
        chunk_size=data.get("chunk_size", 64),
        solver=data.get("solver", "auto"),
        rtol=data.get("rtol", 1e-6),
        atol=data.get("atol", 1e-9),
        overrides=dict(data.get("overrides", {}))
        if isinstance(data.get("overrides", {}), Mapping)
        else data["overrides"],
    )
    return spec.validate()


def _names(field: str, value, empty_ok: bool = False) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f'{field}={value!r}: must be a list of names, e.g. {field} = ["..."]')
    if not value and not empty_ok:
        raise SpecError(f"{field}=[]: name at least one")
    return tuple(value)


def _distribution(name: str, entry) -> ParameterDistribution:
    """A ParameterDistribution from its TOML table, with the model's bounds and scale as defaults."""
    if not isinstance(entry, Mapping):
        raise SpecError(f"parameters.{name}={entry!r}: must be a table (empty for the defaults: the bounds in models/)")
    bad = sorted(set(entry) - _DIST_FIELDS)
    if bad:
        raise SpecError(f"parameters.{name}: unknown field(s) {bad}; allowed: {sorted(_DIST_FIELDS)}")
    specs = _model_specs()
    if name not in specs:
        raise SpecError(
            f"parameters.{name}: unknown parameter; see models/parameters/*.toml "
            f"({len(specs)} known){_near(name, specs)}"
        )
    spec = specs[name]
    dist = entry.get("distribution", "loguniform" if spec.scale == "log" else "uniform")
    return ParameterDistribution(
        name=name,
        distribution=dist,
        low=entry.get("low", spec.lower),
        high=entry.get("high", spec.upper),
        unit=spec.unit,
        mean=entry.get("mean"),
        sd=entry.get("sd"),
        median=entry.get("median"),
        sd_log=entry.get("sd_log"),
    )


def default_distribution(name: str) -> ParameterDistribution:
    """``name`` drawn over its bounds in ``models/``: log-uniform where its scale is "log", else uniform."""
    return _distribution(name, {})


def _near(name: str, known) -> str:
    import difflib

    near = difflib.get_close_matches(name, list(known), n=4, cutoff=0.6)
    return f"; did you mean {near}?" if near else ""


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _model_specs():
    from ..scenarios import default_parameters

    return default_parameters().specs


@functools.lru_cache(maxsize=1)
def _model_variables() -> tuple[str, ...]:
    from ..symbolic.named_models import full_model
    from ..simulate import variable_names

    return tuple(variable_names(full_model()))


def _number(field: str, value, *, low: float | None = None, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
    ):
        raise SpecError(f"{field}={value!r}: must be a finite number")
    if positive and value <= 0:
        raise SpecError(f"{field}={value!r}: must be > 0")
    if low is not None and value < low:
        raise SpecError(f"{field}={value!r}: must be >= {low:g}")
    return float(value)


def _integer(field: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SpecError(f"{field}={value!r}: must be an integer >= {low}")
    return int(value)


def n_points(spec: SweepSpec) -> int:
    """Points per arm and setting that ``spec``'s sampling gives."""
    d = len(spec.parameters)
    return {
        "grid": spec.n**d,
        "lhs": spec.n,
        "sobol": spec.n,
        "saltelli": spec.n * (d + 2),
        "morris": spec.n * (d + 1),
    }[spec.sampling]


def _validate(spec: SweepSpec) -> None:
    from ..scenarios import load_arms, load_settings
    from .summaries import SUMMARIES

    if not isinstance(spec.name, str) or not spec.name.strip() or any(c in spec.name for c in "/\\\0"):
        raise SpecError(f"name={spec.name!r}: must be a non-empty name without slashes")
    arms, settings = load_arms(), load_settings()
    for field, given, known in (("arms", spec.arms, arms), ("settings", spec.settings, settings)):
        if not given:
            raise SpecError(f"{field}=[]: name at least one; allowed: {sorted(known)}")
        for v in given:
            if v not in known:
                raise SpecError(f"{field}: {v!r} is unknown; allowed: {sorted(known)}")
        if len(set(given)) != len(given):
            raise SpecError(f"{field}={list(given)}: names must not repeat")
    if spec.sampling not in SAMPLING_METHODS:
        raise SpecError(f"sampling.method={spec.sampling!r}: allowed methods are {list(SAMPLING_METHODS)}")
    _integer("sampling.n", spec.n, 2 if spec.sampling in ("grid", "saltelli", "sobol") else 1)
    _integer("sampling.seed", spec.seed, 0)
    if spec.sampling in ("sobol", "saltelli") and spec.n & (spec.n - 1):
        raise SpecError(
            f"sampling.n={spec.n}: {spec.sampling} sampling needs a power of 2 (e.g. "
            f"{2 ** max(1, round(math.log2(spec.n)))}) to keep its balance properties"
        )
    specs = _model_specs()
    names = [p.name for p in spec.parameters]
    if not names:
        raise SpecError("parameters: name at least one parameter to vary")
    if len(set(names)) != len(names):
        raise SpecError(f"parameters={names}: names must not repeat")
    for p in spec.parameters:
        _check_distribution(p, specs)
    total = n_points(spec)
    if total > MAX_POINTS:
        raise SpecError(
            f"sampling: {spec.sampling} with n={spec.n} over {len(names)} parameters gives {total:,} points "
            f"per arm and setting; at most {MAX_POINTS:,} are allowed"
        )
    duration = _number("duration_days", spec.duration_days, positive=True)
    step = _number("output_step_days", spec.output_step_days, positive=True)
    if step > duration:
        raise SpecError(f"output_step_days={step:g}: must be <= duration_days={duration:g}")
    _integer("chunk_size", spec.chunk_size, 1)
    if isinstance(spec.solver, str):
        from ..solvers import get_solver

        if spec.solver != "auto":
            try:
                get_solver(spec.solver)
            except (ValueError, KeyError) as exc:
                raise SpecError(f"solver={spec.solver!r}: {exc}") from None
    rtol = _number("rtol", spec.rtol, positive=True)
    if not 1e-13 <= rtol <= 0.1:
        raise SpecError(f"rtol={rtol!r}: allowed range is 1e-13 .. 0.1")
    _number("atol", spec.atol, positive=True)
    known_vars = _model_variables()
    for v in spec.observables:
        if v not in known_vars:
            raise SpecError(
                f"outputs.observables: {v!r} is not a variable of the model{_near(v, known_vars)}; "
                f"allowed: the {len(known_vars)} species and observables of moa.simulate.variable_names"
            )
    if isinstance(spec.days, str):
        if spec.days != "all":
            raise SpecError(f'outputs.days={spec.days!r}: must be "all" or a list of days within 0..duration_days')
    else:
        days = [_number("outputs.days", d, low=0.0) for d in spec.days]
        if not days or any(d > duration for d in days) or sorted(set(days)) != days:
            raise SpecError(
                f'outputs.days={list(spec.days)}: must be "all" or an increasing list of days within '
                f"0..duration_days={duration:g}"
            )
    for s in spec.summaries:
        if s not in SUMMARIES:
            raise SpecError(f"outputs.summaries: {s!r} is unknown; allowed: {sorted(SUMMARIES)}")
    if not spec.observables and not spec.summaries:
        raise SpecError("outputs: keep at least one observable or summary")
    if not isinstance(spec.overrides, Mapping):
        raise SpecError(f"overrides={spec.overrides!r}: must be a table of parameter = value")
    for k, v in spec.overrides.items():
        if k not in specs:
            raise SpecError(f"overrides.{k}: unknown parameter{_near(k, specs)}")
        if k in names:
            raise SpecError(f"overrides.{k}: is also a sampled parameter; give it in one place")
        _number(f"overrides.{k}", v)


def _check_distribution(p: ParameterDistribution, specs) -> None:
    where = f"parameters.{p.name}"
    if p.name not in specs:
        raise SpecError(f"{where}: unknown parameter; see models/parameters/*.toml{_near(p.name, specs)}")
    spec = specs[p.name]
    if p.distribution not in DISTRIBUTIONS:
        raise SpecError(f"{where}.distribution={p.distribution!r}: allowed distributions are {list(DISTRIBUTIONS)}")
    low, high = _number(f"{where}.low", p.low), _number(f"{where}.high", p.high)
    if low < spec.lower or high > spec.upper:
        bad, value = ("low", low) if low < spec.lower else ("high", high)
        raise SpecError(
            f"{where}.{bad}={value:g} {spec.unit}: outside the model's bounds [{spec.lower:g}, {spec.upper:g}] "
            f"{spec.unit} (models/parameters); a sweep may only narrow them"
        )
    if not low < high:
        raise SpecError(
            f"{where}: low={low:g} must be < high={high:g} {spec.unit}"
            + (" (the model's bounds are equal: this parameter is fixed)" if spec.lower == spec.upper else "")
        )
    if p.distribution in ("loguniform", "lognormal") and low <= 0:
        raise SpecError(f"{where}.low={low:g}: a {p.distribution} distribution needs low > 0")
    needs = {"normal": ("mean", "sd"), "lognormal": ("median", "sd_log")}.get(p.distribution, ())
    for field in ("mean", "sd", "median", "sd_log"):
        value = getattr(p, field)
        if field in needs:
            if value is None:
                raise SpecError(f"{where}: a {p.distribution} distribution needs {' and '.join(needs)}")
            _number(f"{where}.{field}", value, positive=field in ("sd", "sd_log", "median"))
        elif value is not None:
            raise SpecError(
                f"{where}.{field}: not used by a {p.distribution} distribution (it takes "
                f"{' and '.join(needs) if needs else 'low and high only'})"
            )
    centre = p.mean if p.distribution == "normal" else p.median if p.distribution == "lognormal" else None
    if centre is not None and not low <= centre <= high:
        raise SpecError(f"{where}.{needs[0]}={centre:g}: must lie within [low, high] = [{low:g}, {high:g}] {spec.unit}")
