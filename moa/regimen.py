"""Dosing regimens as data: doses in mg/kg, mg/m² or flat mg; bolus or infusion; schedules.

Time is in days and day 1 of a schedule is t = 0 (``days=(1, 8, 15)`` gives t = 0, 7, 14).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

import numpy as np

from .checks import is_finite_real, is_integer

__all__ = ["Dose", "Regimen", "every", "cycles", "regimen_from_table", "DOSE_UNITS"]

#: Dose units and the patient quantity that converts them to mg.
DOSE_UNITS = {"mg": None, "mg/kg": "body_weight", "mg/m^2": "body_surface_area"}
ROUTES = ("bolus", "infusion")


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
            raise ValueError(f"duration_days={self.duration_days!r} for a bolus of {self.drug}: must be 0 (use route='infusion')")
        for field in ("amount", "time_days", "duration_days"):  # numpy scalars in, plain floats stored (JSON, repr)
            object.__setattr__(self, field, float(getattr(self, field)))

    def amount_mg(self, patient: Mapping[str, object]) -> np.ndarray | float:
        """Dose in mg for a patient mapping that holds body_weight [kg] / body_surface_area [m^2]."""
        key = DOSE_UNITS[self.unit]
        if key is None:
            return self.amount
        if key not in patient:
            raise ValueError(f"dose of {self.drug} in {self.unit} needs parameter {key!r}, which the parameter set lacks")
        return self.amount * np.asarray(patient[key], dtype=float)

    @property
    def end_days(self) -> float:
        return self.time_days + self.duration_days


@dataclasses.dataclass(frozen=True)
class Regimen:
    """A named, ordered collection of doses. An empty regimen (no doses) is 'untreated'."""

    name: str
    doses: tuple[Dose, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "doses", tuple(sorted(self.doses, key=lambda d: (d.time_days, d.drug))))

    @property
    def drugs(self) -> list[str]:
        return sorted({d.drug for d in self.doses})

    def breakpoints(self, t_end: float) -> list[float]:
        """Times in (0, t_end) where the right-hand side or the state jumps."""
        pts = {d.time_days for d in self.doses} | {d.end_days for d in self.doses if d.route == "infusion"}
        return sorted(t for t in pts if 0 < t < t_end)

    def __add__(self, other: "Regimen") -> "Regimen":
        return Regimen(f"{self.name} + {other.name}", self.doses + other.doses)

    def shifted(self, days: float) -> "Regimen":
        return Regimen(self.name, tuple(dataclasses.replace(d, time_days=d.time_days + days) for d in self.doses))


def every(drug: str, amount: float, unit: str, interval_days: float, until_days: float, start_days: float = 0.0,
          route: str = "bolus", duration_days: float = 0.0, name: str | None = None) -> Regimen:
    """Doses every ``interval_days`` from ``start_days`` while t < ``until_days`` (e.g. Q3W: 21)."""
    if not (is_finite_real(interval_days) and interval_days > 0):
        raise ValueError(f"interval_days={interval_days!r}: must be a finite number > 0")
    if not until_days > start_days:
        raise ValueError(f"until_days={until_days!r}: must be > start_days={start_days!r}")
    times = np.arange(start_days, until_days - 1e-12, interval_days)
    doses = tuple(Dose(drug, amount, unit, float(t), route, duration_days) for t in times)
    return Regimen(name or f"{drug} {amount:g} {unit} q{interval_days:g}d", doses)


def cycles(drug: str, amount: float, unit: str, days: Iterable[int], cycle_days: float, n_cycles: int,
           start_days: float = 0.0, route: str = "bolus", duration_days: float = 0.0, name: str | None = None) -> Regimen:
    """Doses on the given (1-based) days of each cycle, e.g. days (1, 8, 15) of a 28-day cycle."""
    days = list(days)
    if not days or any(d < 1 or d > cycle_days for d in days):
        raise ValueError(f"days={days!r}: must be a non-empty list of cycle days within 1..{cycle_days}")
    if not (is_integer(n_cycles) and n_cycles >= 1):
        raise ValueError(f"n_cycles={n_cycles!r}: must be an integer >= 1")
    doses = tuple(
        Dose(drug, amount, unit, float(start_days + c * cycle_days + d - 1), route, duration_days)
        for c in range(n_cycles) for d in days
    )
    return Regimen(name or f"{drug} {amount:g} {unit} d{','.join(map(str, days))} q{cycle_days:g}d", doses)


def regimen_from_table(name: str, table: Mapping, until_days: float) -> Regimen:
    """Build a regimen from a TOML table: ``[[<name>.dose]]`` entries with drug, amount, unit and
    either ``interval_days`` (repeat until ``until_days``) or ``cycle_days`` + ``days``."""
    entries = table.get("dose", [])
    if not isinstance(entries, list):
        raise ValueError(f"regimen {name!r}: 'dose' must be a list of tables")
    out = Regimen(name)
    allowed = {"drug", "amount", "unit", "interval_days", "cycle_days", "days", "start_days", "route", "duration_days", "n_doses"}
    for i, e in enumerate(entries):
        unknown = set(e) - allowed
        if unknown:
            raise ValueError(f"regimen {name!r} dose {i}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        for req in ("drug", "amount", "unit"):
            if req not in e:
                raise ValueError(f"regimen {name!r} dose {i}: missing field {req!r}")
        common = dict(route=e.get("route", "bolus"), duration_days=e.get("duration_days", 0.0), start_days=e.get("start_days", 0.0))
        if "cycle_days" in e:
            n = max(1, math.ceil((until_days - common["start_days"]) / e["cycle_days"]))
            part = cycles(e["drug"], e["amount"], e["unit"], e.get("days", [1]), e["cycle_days"], n, **common)
        elif "interval_days" in e:
            until = until_days
            if "n_doses" in e:
                until = min(until, common["start_days"] + e["n_doses"] * e["interval_days"])
            part = every(e["drug"], e["amount"], e["unit"], e["interval_days"], until, **common)
        else:
            part = Regimen(name, (Dose(e["drug"], e["amount"], e["unit"], common["start_days"], common["route"], common["duration_days"]),))
        part = Regimen(name, tuple(d for d in part.doses if d.time_days < until_days))
        out = Regimen(name, out.doses + part.doses)
    return out
