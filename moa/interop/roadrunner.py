"""Run an SBML file exported by :func:`moa.interop.sbml.export` with libroadrunner (the ``sbml`` extra).

Used by the cross-check tests and by the throughput benchmark ("libroadrunner on the exported
SBML, one simulation after another, as a user would")::

    sim = SBMLSimulator(moa.interop.sbml.export(model, parameters, regimen), rtol=1e-6, atol=1e-9)
    out = sim.run(times, {"cl_bsab": 0.3})          # {"time": ..., "bsab_central": ..., ...}

libroadrunner behaviour this module deals with:

- ``reset()`` restores time and the state variables and re-evaluates initial assignments and
  events at t = 0 with the *current* parameter values, but it does not restore parameters
  changed by events (the infusion inputs) nor parameters a previous run set. So every run
  first sets every settable parameter (the exported value or the override) and every
  event-driven input (to its exported initial value), then calls ``reset()``. Otherwise a
  later run starts mid-infusion or with the previous run's parameters, silently.
- A scalar ``absolute_tolerance`` is multiplied by each state's current value (CVODE then
  works with e.g. 1e-9 x 1000 nM for a dosed drug and 1e-9 nM for an undosed one). moa's
  ``atol`` is an absolute tolerance in each state's own unit, so it is set as a vector.
- Output at a dose time is the state just after the dose (as in :func:`moa.simulate`): the
  events (``time >= t_dose``) fire when the integrator reaches that time, before output.
  One difference: a dose at exactly the *last* output time is applied (and reported) here,
  while ``moa.simulate`` does not apply doses at its end time.
- ``reset()`` itself fires the t = 0 events; the following ``simulate`` does not fire them
  again (checked in tests/test_sbml.py).
- States are species with rate rules. A concentration species (nM, ug/L) is selected as
  ``[id]``, an amount species (cells, fractions) as ``id``; results are keyed by the plain id.
  ``rr["id'"]`` (a rate) is refused for a species with a rate rule; ``rr.getRatesOfChange()``
  (in the order of ``rr.model.getFloatingSpeciesIds()``) gives the rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["SBMLSimulator", "simulate_sbml", "compare_to_moa", "relative_difference"]


def _imports():
    try:
        import libsbml
        import roadrunner
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "moa.interop.roadrunner needs libroadrunner and python-libsbml: pip install 'moa[sbml]'"
        ) from None
    return libsbml, roadrunner


class SBMLSimulator:
    """One loaded SBML model (libroadrunner compiles it once) run for many parameter sets.

    Parameters
    ----------
    sbml: the SBML document text.
    rtol, atol: CVODE tolerances; ``atol`` is absolute in each state's own unit.
    max_steps: CVODE's maximum number of steps between two output times.
    """

    def __init__(self, sbml: str, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 100_000):
        libsbml, roadrunner = _imports()
        for name, v in (("rtol", rtol), ("atol", atol)):
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r}: must be a finite number > 0")
        doc = libsbml.readSBMLFromString(sbml)
        if doc.getModel() is None:
            raise ValueError("sbml: not a readable SBML document: " + doc.getErrorLog().toString()[:500])
        m = doc.getModel()
        ruled = {m.getRule(i).getVariable() for i in range(m.getNumRules())}
        event_set = {
            m.getEvent(i).getEventAssignment(j).getVariable()
            for i in range(m.getNumEvents())
            for j in range(m.getEvent(i).getNumEventAssignments())
        }
        params = [m.getParameter(i) for i in range(m.getNumParameters())]
        #: constant parameters a run may override, with their exported values
        self.defaults: dict[str, float] = {p.getId(): p.getValue() for p in params if p.getConstant()}
        #: event-driven inputs (infusion rates), restored to their exported value before each run
        self.inputs: dict[str, float] = {
            p.getId(): p.getValue()
            for p in params
            if not p.getConstant() and p.getId() not in ruled and p.getId() in event_set
        }
        self.rr = roadrunner.RoadRunner(sbml)
        model = self.rr.model
        species = {m.getSpecies(i).getId(): m.getSpecies(i) for i in range(m.getNumSpecies())}
        #: selection string of each species: its concentration, or its amount when it has only substance units
        self.selectors: dict[str, str] = {
            sid: sid if sp.getHasOnlySubstanceUnits() else f"[{sid}]" for sid, sp in species.items()
        }
        #: the integrated states, in CVODE's order: floating species, then parameters with rate rules
        rate_ruled = [m.getRule(i).getVariable() for i in range(m.getNumRules()) if m.getRule(i).isRate()]
        n_states = len(model.getFloatingSpeciesIds()) + sum(v not in species for v in rate_ruled)
        self.state_ids: list[str] = [model.getStateVectorId(i) for i in range(n_states)]
        self.observable_ids: list[str] = [
            p.getId() for p in params if p.getId() in ruled and p.getId() not in self.state_ids
        ]
        self.rtol, self.atol = float(rtol), float(atol)
        integrator = self.rr.getIntegrator()
        integrator.setValue("stiff", True)
        integrator.setValue("relative_tolerance", self.rtol)
        integrator.setValue("absolute_tolerance", [self.atol] * len(self.state_ids))
        integrator.setValue("maximum_num_steps", int(max_steps))

    def run(
        self,
        times: Sequence[float] | np.ndarray,
        parameters: Mapping[str, float] | None = None,
        selections: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Simulate from t = 0 and return ``{"time": times, id: values}`` at ``times`` (days).

        ``parameters`` override the exported values of constant parameters for this run only;
        ``selections`` defaults to the states, the inputs (infusion rates) and the observables
        (assignment-rule parameters: moa's expressions and ``dose_per_mg_<drug>``).
        """
        t = np.asarray(times, dtype=float)
        if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) <= 0):
            raise ValueError(f"times: must be a non-empty, strictly increasing 1-D array of days >= 0, got {times!r}")
        values = dict(self.defaults)
        for k, v in (parameters or {}).items():
            if k not in self.defaults:
                raise ValueError(
                    f"parameter {k!r}: not a constant parameter of the SBML model; allowed: {sorted(self.defaults)}"
                )
            values[k] = float(v)
        rr = self.rr
        for k, v in values.items():
            rr[k] = v
        for k, v in self.inputs.items():
            rr[k] = v
        rr.reset()  # after the parameters: re-evaluates initial assignments and t = 0 events with them
        default = self.state_ids + list(self.inputs) + self.observable_ids
        sel = ["time", *(selections if selections is not None else default)]
        rr.timeCourseSelections = [self.selectors.get(v, v) for v in sel]
        grid = t if t[0] == 0 else np.concatenate([[0.0], t])
        try:
            res = np.asarray(rr.simulate(times=grid))
        except RuntimeError as exc:
            raise RuntimeError(
                f"libroadrunner failed (rtol={self.rtol}, atol={self.atol}, parameters {parameters or {}}): {exc}"
            ) from None
        if grid.size != t.size:
            res = res[1:]
        return {name: res[:, j].copy() for j, name in enumerate(sel)}


def simulate_sbml(
    sbml: str,
    times: Sequence[float] | np.ndarray,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    parameters: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Load ``sbml`` into libroadrunner and simulate once; ``{"time": ..., id: values}``."""
    return SBMLSimulator(sbml, rtol, atol).run(times, parameters)


def relative_difference(
    a: np.ndarray, reference: np.ndarray, floor_fraction: float = 1e-3, abs_floor: float = 1e-12
) -> float:
    """max |a - ref| / max(|ref|, floor) over time, floor = max(floor_fraction * max|ref|, abs_floor).

    The floor makes a value that has decayed to almost nothing (free PD-L1 under a saturating
    dose) count by its absolute error relative to its own scale, not relative to itself.
    """
    a, reference = np.asarray(a, dtype=float), np.asarray(reference, dtype=float)
    floor = max(floor_fraction * float(np.max(np.abs(reference))), abs_floor)
    return float(np.max(np.abs(a - reference) / np.maximum(np.abs(reference), floor)))


def compare_to_moa(
    dataset,
    sbml_result: Mapping[str, np.ndarray],
    variables: Sequence[str] | None = None,
    floor_fraction: float = 1e-3,
    abs_floor: float = 1e-12,
) -> dict[str, float]:
    """Relative difference (:func:`relative_difference`) per variable between a libroadrunner
    run and an unbatched ``moa.simulate`` dataset at the same times.

    ``variables`` defaults to every species and observable present in both. Observables are
    compared only at times when every species is 0 or at least ``abs_floor`` in size: an
    observable such as effector:tumour ratio divides by a state that may have decayed far
    below the solvers' absolute tolerance (a tumour cleared to 1e-100 cells), where neither
    solver controls the relative error and the ratio amplifies it without bound.
    """
    if not np.allclose(np.asarray(dataset["time"]), sbml_result["time"], rtol=0, atol=1e-12):
        raise ValueError("compare_to_moa: the two results have different output times")
    kinds = {v: dataset[v].attrs.get("kind") for v in dataset.data_vars}
    if variables is None:
        variables = [v for v, k in kinds.items() if k in ("species", "observable") and v in sbml_result]
    states = np.array([np.asarray(dataset[v], dtype=float) for v, k in kinds.items() if k == "species"])
    resolved = np.all((states == 0) | (np.abs(states) >= abs_floor), axis=0) if states.size else None
    out = {}
    for v in variables:
        if v not in sbml_result or v not in dataset:
            raise ValueError(
                f"variable {v!r}: missing from {'the SBML result' if v not in sbml_result else 'the moa dataset'}"
            )
        a, ref = np.asarray(sbml_result[v], dtype=float), np.asarray(dataset[v], dtype=float)
        if kinds.get(v) == "observable" and resolved is not None:
            a, ref = a[resolved], ref[resolved]
        out[v] = relative_difference(a, ref, floor_fraction, abs_floor) if ref.size else 0.0
    return out
