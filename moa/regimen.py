"""Dosing regimens as data: doses in mg/kg, mg/m² or flat mg; bolus or infusion; schedules.

Time is in days and day 1 of a schedule is t = 0 (``days=(1, 8, 15)`` gives t = 0, 7, 14).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from .checks import is_finite_real, is_integer

__all__ = ["Dose", "Regimen", "DosingSegment", "every", "cycles", "regimen_from_table", "DOSE_UNITS", "MAX_DOSES"]

#: Dose units and the patient quantity that converts them to mg.
DOSE_UNITS = {"mg": None, "mg/kg": "body_weight", "mg/m^2": "body_surface_area"}
#: Unit each per-patient parameter is used in when scaling a dose.
PATIENT_UNITS = {"body_weight": "kg", "body_surface_area": "m^2"}
ROUTES = ("bolus", "infusion")

#: The most doses one regimen may hold, checked before any dose is made (``every``, ``cycles``)
#: and again on every :class:`Regimen`. assumed: a million is hourly dosing for 114 years, far
#: beyond any schedule studied here, while a Dose takes ~160 bytes (160 MB at the limit) and each
#: dose a solver segment (~30-100 us each, so a minute or two of simulation at the limit). Above
#: it, a schedule is almost surely a unit mistake (``interval_days=1e-6``) that would otherwise
#: allocate until memory runs out.
MAX_DOSES = 1_000_000


def _check_dose_count(n_doses: float, what: str) -> None:
    """Refuse ``n_doses`` (a count, possibly inf) above MAX_DOSES; ``what`` names the field(s) that set it."""
    if not n_doses <= MAX_DOSES:
        count = f"{math.ceil(n_doses):,}" if math.isfinite(n_doses) else str(n_doses)
        raise ValueError(f"{what}: would make {count} doses; at most moa.regimen.MAX_DOSES={MAX_DOSES:,} are allowed")


@dataclasses.dataclass(frozen=True)
class Dose:
    """One administration of ``amount`` (in ``unit``) of ``drug`` at ``time_days``."""

    drug: str
    amount: float
    unit: str
    time_days: float
    route: str = "bolus"
    duration_days: float = 0.0

    def __post_init__(self):
        if not isinstance(self.drug, str) or not self.drug:
            raise ValueError(f"drug={self.drug!r}: must be a non-empty drug name")
        if not (is_finite_real(self.amount) and self.amount >= 0):
            raise ValueError(f"amount={self.amount!r} for {self.drug}: must be a finite number >= 0")
        if self.unit not in DOSE_UNITS:
            raise ValueError(f"unit={self.unit!r} for {self.drug}: allowed units are {sorted(DOSE_UNITS)}")
        if not (is_finite_real(self.time_days) and self.time_days >= 0):
            raise ValueError(f"time_days={self.time_days!r} for {self.drug}: must be a finite number >= 0")
        if self.route not in ROUTES:
            raise ValueError(f"route={self.route!r} for {self.drug}: allowed routes are {ROUTES}")
        if self.route == "infusion" and not (is_finite_real(self.duration_days) and self.duration_days > 0):
            raise ValueError(f"duration_days={self.duration_days!r} for infused {self.drug}: must be > 0")
        if self.route == "bolus" and self.duration_days != 0:
            raise ValueError(
                f"duration_days={self.duration_days!r} for a bolus of {self.drug}: must be 0 (use route='infusion')"
            )
        for field in ("amount", "time_days", "duration_days"):  # numpy scalars in, plain floats stored (JSON, repr)
            object.__setattr__(self, field, float(getattr(self, field)))

    def amount_mg(self, patient: Mapping[str, object]) -> np.ndarray | float:
        """Dose in mg for a patient mapping that holds body_weight [kg] / body_surface_area [m^2]."""
        key = DOSE_UNITS[self.unit]
        if key is None:
            return self.amount
        if key not in patient:
            raise ValueError(
                f"dose of {self.drug} in {self.unit} needs parameter {key!r}, which the parameter set lacks"
            )
        # a ParameterSet may hold the patient value in another unit of the same dimension
        per = patient.value_in(key, PATIENT_UNITS[key]) if hasattr(patient, "value_in") else patient[key]
        return self.amount * np.asarray(per, dtype=float)

    @property
    def end_days(self) -> float:
        return self.time_days + self.duration_days

    def given_until(self, t_end: float) -> "Dose | None":
        """The part of this dose a run ending at ``t_end`` [day] gives, or None.

        A bolus at or before ``t_end`` is given whole (one exactly at ``t_end`` shows in the last
        output). An infusion that starts before ``t_end`` and ends after it is given up to ``t_end``:
        the same rate [amount/day] over the shorter duration, so a pro-rata amount. An infusion that
        starts at or after ``t_end`` gives nothing within the run.
        """
        if self.route == "bolus":
            return self if self.time_days <= t_end else None
        if self.time_days >= t_end:
            return None
        if self.end_days <= t_end:
            return self
        given_days = t_end - self.time_days
        return dataclasses.replace(
            self, amount=self.amount * (given_days / self.duration_days), duration_days=given_days
        )


@dataclasses.dataclass(frozen=True)
class Regimen:
    """A named, ordered collection of doses. An empty regimen (no doses) is 'untreated'."""

    name: str
    doses: tuple[Dose, ...] = ()

    def __post_init__(self):
        doses = tuple(self.doses)
        if len(doses) > MAX_DOSES:
            raise ValueError(
                f"regimen {self.name!r} holds {len(doses):,} doses; at most "
                f"moa.regimen.MAX_DOSES={MAX_DOSES:,} are allowed"
            )
        object.__setattr__(self, "doses", tuple(sorted(doses, key=lambda d: (d.time_days, d.drug))))

    @property
    def drugs(self) -> list[str]:
        return sorted({d.drug for d in self.doses})

    def breakpoints(self, t_end: float) -> list[float]:
        """Times in (0, t_end) where the right-hand side or the state jumps."""
        pts = {d.time_days for d in self.doses} | {d.end_days for d in self.doses if d.route == "infusion"}
        return sorted(t for t in pts if 0 < t < t_end)

    def segment_edges(self, t_end: float) -> list[float]:
        """``[0, breakpoints..., t_end]``: the edges of the smooth segments of a run from 0 to ``t_end`` [day]."""
        return [0.0] + self.breakpoints(t_end) + [t_end]

    def segments(self, t_end: float = math.inf) -> Iterator["DosingSegment"]:
        """The dosing segments of a run from day 0 to ``t_end`` (default: every dose, the last segment open):
        one per pair of :meth:`segment_edges`, with the boluses given at its start and the infusions whose set
        changed there. ``moa.simulate`` integrates over them and the SBML export writes one event per segment
        start where something is given or changes, so the two read the dosing rules from this one place.

        One sweep over the doses (boluses grouped by time; infusions switched on and off with two pointers over
        them sorted by start and by end): O(doses log doses + segments). An infusion runs over [start, end).
        """
        edges = self.segment_edges(t_end)
        boluses_at: dict[float, list[Dose]] = {}
        for dose in self.doses:
            if dose.route == "bolus":
                boluses_at.setdefault(dose.time_days, []).append(dose)
        for (start, end), infusions in zip(zip(edges[:-1], edges[1:]), _infusions_running(self.doses, edges[:-1])):
            yield DosingSegment(start, end, tuple(boluses_at.get(start, ())), infusions)

    def given_until(self, t_end: float) -> tuple["Regimen", tuple[Dose, ...], tuple[Dose, ...]]:
        """Split the doses for a run that ends at ``t_end`` [day] (see :meth:`Dose.given_until`).

        Returns ``(given, not_given, cut)``: a regimen of the doses (or parts of infusions) given,
        the doses given not at all, and the infusions (as scheduled) of which only a part is given.
        One pass over the doses.
        """
        given, not_given, cut = [], [], []
        for d in self.doses:
            part = d.given_until(t_end)
            if part is None:
                not_given.append(d)
            else:
                given.append(part)
                if part is not d:
                    cut.append(d)
        return Regimen(self.name, tuple(given)), tuple(not_given), tuple(cut)

    def __add__(self, other: "Regimen") -> "Regimen":
        return Regimen(f"{self.name} + {other.name}", self.doses + other.doses)

    def shifted(self, days: float) -> "Regimen":
        return Regimen(self.name, tuple(dataclasses.replace(d, time_days=d.time_days + days) for d in self.doses))


@dataclasses.dataclass(frozen=True)
class DosingSegment:
    """One smooth stretch of a run, [``start_days``, ``end_days``) [day], as :meth:`Regimen.segments` yields it.

    ``boluses``: the boluses given at ``start_days`` (regimen order), which raise their species there.
    ``infusions``: for each drug whose running infusions changed at ``start_days`` (one started or ended), the
    infusions of that drug running over the segment (regimen order; empty: its infusion input drops to 0).
    Drugs not named keep the input they had.
    """

    start_days: float
    end_days: float
    boluses: tuple[Dose, ...]
    infusions: Mapping[str, list[Dose]]


def _infusions_running(doses: Iterable[Dose], segment_starts: Iterable[float]) -> Iterator[dict[str, list[Dose]]]:
    """For each segment start (sorted, days), the infusions running over the segment, for the drugs whose
    set changed there (``{drug: [doses in regimen order]}``; an empty dict when nothing changed).

    One sweep with two pointers, over the infusions sorted by start and by end: O(doses log doses +
    segments), not a scan of every dose per segment. An infusion runs over [start, end).
    """
    infusions = [d for d in doses if d.route == "infusion"]  # a Regimen keeps its doses sorted by time
    by_end = sorted(range(len(infusions)), key=lambda k: infusions[k].end_days)
    running: dict[str, dict[int, Dose]] = {}
    n_started = n_ended = 0
    for a in segment_starts:
        changed = set()
        while n_started < len(infusions) and infusions[n_started].time_days <= a:
            dose = infusions[n_started]
            running.setdefault(dose.drug, {})[n_started] = dose
            changed.add(dose.drug)
            n_started += 1
        while n_ended < len(by_end) and infusions[by_end[n_ended]].end_days <= a:
            dose = infusions[by_end[n_ended]]
            del running[dose.drug][by_end[n_ended]]
            changed.add(dose.drug)
            n_ended += 1
        # dicts keep insertion order, so each drug's infusions stay in regimen order (rates sum as before)
        yield {drug: list(running[drug].values()) for drug in changed}


def every(
    drug: str,
    amount: float,
    unit: str,
    interval_days: float,
    until_days: float,
    start_days: float = 0.0,
    route: str = "bolus",
    duration_days: float = 0.0,
    name: str | None = None,
) -> Regimen:
    """Doses every ``interval_days`` from ``start_days`` while t < ``until_days`` (e.g. Q3W: 21)."""
    if not (is_finite_real(interval_days) and interval_days > 0):
        raise ValueError(f"interval_days={interval_days!r}: must be a finite number > 0")
    if not (is_finite_real(start_days) and start_days >= 0):
        raise ValueError(f"start_days={start_days!r}: must be a finite number of days >= 0")
    if not (is_finite_real(until_days) and until_days > start_days):
        raise ValueError(f"until_days={until_days!r}: must be a finite number > start_days={start_days!r}")
    stop_days = until_days - 1e-12
    # the length np.arange will have, counted before anything is allocated
    _check_dose_count(
        (stop_days - start_days) / interval_days,
        f"interval_days={interval_days!r} from start_days={start_days!r} to until_days={until_days!r}",
    )
    times = np.arange(start_days, stop_days, interval_days)
    doses = tuple(Dose(drug, amount, unit, float(t), route, duration_days) for t in times)
    return Regimen(name or f"{drug} {amount:g} {unit} q{interval_days:g}d", doses)


def cycles(
    drug: str,
    amount: float,
    unit: str,
    days: Iterable[int],
    cycle_days: float,
    n_cycles: int,
    start_days: float = 0.0,
    route: str = "bolus",
    duration_days: float = 0.0,
    name: str | None = None,
) -> Regimen:
    """Doses on the given (1-based) days of each cycle, e.g. days (1, 8, 15) of a 28-day cycle."""
    if not (is_finite_real(cycle_days) and cycle_days > 0):
        raise ValueError(f"cycle_days={cycle_days!r}: must be a finite number of days > 0")
    days = list(days)
    if not days or any(not is_finite_real(d) or d < 1 or d > cycle_days for d in days):
        raise ValueError(f"days={days!r}: must be a non-empty list of cycle days within 1..{cycle_days}")
    if not (is_integer(n_cycles) and n_cycles >= 1):
        raise ValueError(f"n_cycles={n_cycles!r}: must be an integer >= 1")
    _check_dose_count(n_cycles * len(days), f"n_cycles={n_cycles!r} with {len(days)} dose day(s) per cycle")
    doses = tuple(
        Dose(drug, amount, unit, float(start_days + c * cycle_days + d - 1), route, duration_days)
        for c in range(n_cycles)
        for d in days
    )
    return Regimen(name or f"{drug} {amount:g} {unit} d{','.join(map(str, days))} q{cycle_days:g}d", doses)


def regimen_from_table(name: str, table: Mapping, until_days: float) -> Regimen:
    """Build a regimen from a TOML table: ``[[<name>.dose]]`` entries with drug, amount, unit and
    either ``interval_days`` (repeat until ``until_days``) or ``cycle_days`` + ``days``."""
    entries = table.get("dose", [])
    if not isinstance(entries, list):
        raise ValueError(f"regimen {name!r}: 'dose' must be a list of tables")
    given: list[Dose] = []
    allowed = {
        "drug",
        "amount",
        "unit",
        "interval_days",
        "cycle_days",
        "days",
        "start_days",
        "route",
        "duration_days",
        "n_doses",
    }
    for i, e in enumerate(entries):
        unknown = set(e) - allowed
        if unknown:
            raise ValueError(
                f"regimen {name!r} dose {i}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        for req in ("drug", "amount", "unit"):
            if req not in e:
                raise ValueError(f"regimen {name!r} dose {i}: missing field {req!r}")
        common = dict(
            route=e.get("route", "bolus"),
            duration_days=e.get("duration_days", 0.0),
            start_days=e.get("start_days", 0.0),
        )
        try:
            if "cycle_days" in e:
                n = max(1, math.ceil((until_days - common["start_days"]) / e["cycle_days"]))
                part = cycles(e["drug"], e["amount"], e["unit"], e.get("days", [1]), e["cycle_days"], n, **common)
            elif "interval_days" in e:
                until = until_days
                if "n_doses" in e:
                    until = min(until, common["start_days"] + e["n_doses"] * e["interval_days"])
                part = every(e["drug"], e["amount"], e["unit"], e["interval_days"], until, **common)
            else:
                part = Regimen(
                    name,
                    (
                        Dose(
                            e["drug"],
                            e["amount"],
                            e["unit"],
                            common["start_days"],
                            common["route"],
                            common["duration_days"],
                        ),
                    ),
                )
        except ValueError as exc:  # say which entry of the table
            raise ValueError(f"regimen {name!r} dose {i}: {exc}") from None
        given.extend(d for d in part.doses if d.time_days < until_days)
    return Regimen(name, tuple(given))  # built once: sorting the doses is O(n log n) in all
