"""Binding equilibrium of antibodies with PD-L1, 4-1BB (CD137) and PD-1, solved directly.

The same scheme and constants as the ODE mechanism (:mod:`moa.mechanisms.binding`): a drug
with ``nL`` PD-L1 arms and ``nB`` 4-1BB arms forms complexes ``(a, b)`` with

    [C(a,b)] = [D] binom(nL, a) binom(nB, b) ([L]/KD_L)^a ([B]/KD_B)^b chi(a, b)

and PD-1 binds free PD-L1 with ``K = chi_pd1 / KD_PD1``. Given totals of every drug and
receptor, each drug's free concentration follows in closed form from the free receptors; the
two remaining unknowns (free PD-L1 and free 4-1BB) are found by nested bisection in log
space, which is robust over any number of decades of drug concentration.

Use :func:`equilibrium` with concentrations, or :func:`in_vitro` with receptors per cell and
cell densities. :func:`peripheral_engagement` gives the safety surrogate: 4-1BB engaged
outside the tumour (blood/liver) at the plasma concentrations of a simulation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import xarray as xr

from .mechanisms.binding import DRUG_ARMS, DrugArms, avidity_exponents, complex_name, complex_states

__all__ = ["DrugBinding", "equilibrium", "in_vitro", "receptor_nM", "peripheral_engagement", "drug_binding"]

AVOGADRO = 6.02214076e23  # 1/mol (SI definition)
_ITER = 70  # bisection halvings in log space: brackets of e^80 shrink below 1e-12 relative
#: Finite KDs allowed, in nM. Measured KDs lie within fM..mM (1e-6..1e6 nM); outside 1e-12..1e12 nM the
#: weights KD^-(a+b) of the complexes with up to four bonds over- or underflow in double precision.
KD_RANGE_NM = (1e-12, 1e12)


@dataclasses.dataclass(frozen=True)
class DrugBinding:
    """Binding constants of one drug (nM; dimensionless valencies and avidity factors)."""

    name: str
    valency_pdl1: float
    valency_cd137: float
    kd_pdl1_nM: float = np.inf
    kd_cd137_nM: float = np.inf
    chi_cis_pdl1: float = 1.0
    chi_cis_cd137: float = 1.0
    chi_trans: float = 1.0

    def __post_init__(self):
        for field in ("valency_pdl1", "valency_cd137"):
            v = getattr(self, field)
            if not 0 <= v <= 2:
                raise ValueError(f"{self.name}: {field}={v}: must lie in 0..2")
        for field in ("kd_pdl1_nM", "kd_cd137_nM", "chi_cis_pdl1", "chi_cis_cd137", "chi_trans"):
            v = getattr(self, field)
            if not v > 0:
                raise ValueError(f"{self.name}: {field}={v}: must be > 0")
        for field in ("kd_pdl1_nM", "kd_cd137_nM"):
            v = getattr(self, field)
            if v != np.inf and not KD_RANGE_NM[0] <= v <= KD_RANGE_NM[1]:
                raise ValueError(f"{self.name}: {field}={v:g}: must lie in {KD_RANGE_NM[0]:g} .. {KD_RANGE_NM[1]:g} nM "
                                 "(or inf for an arm that does not bind)")

    @property
    def states(self) -> list[tuple[int, int]]:
        arms = DrugArms(self.name, self.name, self.valency_pdl1 > 0, self.valency_cd137 > 0)
        return complex_states(arms)

    def weight(self, a: int, b: int) -> float:
        """K(a,b) in nM^-(a+b): [C(a,b)] = K [D] [L]^a [B]^b."""
        e_l, e_b, e_t = avidity_exponents(a, b)
        coeff = _binom(self.valency_pdl1, a) * _binom(self.valency_cd137, b)
        coeff *= self.chi_cis_pdl1**e_l * self.chi_cis_cd137**e_b * self.chi_trans**e_t
        return coeff / (self.kd_pdl1_nM**a * self.kd_cd137_nM**b)


def _binom(n: float, k: int) -> float:
    out = 1.0
    for i in range(k):
        out *= (n - i) / (i + 1)
    return max(out, 0.0)


def _scalar(params: Mapping, key: str, unit: str) -> float:
    """One number in ``unit`` from a parameter set (the first sample if batched); a plain
    mapping is taken to hold it in ``unit`` already."""
    value = params.value_in(key, unit) if hasattr(params, "value_in") else params[key]
    return float(np.asarray(value).ravel()[0])


def drug_binding(params: Mapping, drug: str) -> DrugBinding:
    """Constants of ``drug`` ("bsab", "apdl1", "a41bb") from a parameter set (scalars)."""
    arms = {a.drug: a for a in DRUG_ARMS}
    if drug not in arms:
        raise ValueError(f"drug={drug!r}: allowed drugs are {sorted(arms)}")
    a = arms[drug]
    get = lambda k, unit="1": _scalar(params, k, unit)  # noqa: E731
    return DrugBinding(
        drug,
        valency_pdl1=get(f"valency_pdl1_{drug}") if a.binds_pdl1 else 0.0,
        valency_cd137=get(f"valency_cd137_{drug}") if a.binds_cd137 else 0.0,
        kd_pdl1_nM=get(f"kd_pdl1_{drug}", "nM") if a.binds_pdl1 else np.inf,
        kd_cd137_nM=get(f"kd_cd137_{drug}", "nM") if a.binds_cd137 else np.inf,
        chi_cis_pdl1=get("chi_cis_pdl1"), chi_cis_cd137=get("chi_cis_cd137"), chi_trans=get("chi_trans"),
    )


def _check_conc(name: str, x, unit: str = "nM") -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}={x!r}: must be finite and >= 0 ({unit})")
    return arr


def equilibrium(drugs: Mapping[str, tuple[DrugBinding, object]] | list[tuple[DrugBinding, object]],
                pdl1_nM, cd137_nM, pd1_nM=0.0, kd_pd1_nM: float = np.inf, chi_pd1: float = 1.0) -> xr.Dataset:
    """Equilibrium of drugs (each ``(DrugBinding, total nM)``) with receptor totals (nM).

    All concentration arguments broadcast against each other. Returns a Dataset with free
    receptors, free drug, every complex, PD-1:PD-L1, the ternary (PD-L1-anchored) 4-1BB and
    the residuals of the conservation laws (relative).
    """
    items = list(drugs.values()) if isinstance(drugs, Mapping) else list(drugs)
    if not items:
        raise ValueError("drugs: give at least one (DrugBinding, total_nM) pair")
    L_tot, B_tot, P_tot = (_check_conc(n, v) for n, v in (("pdl1_nM", pdl1_nM), ("cd137_nM", cd137_nM), ("pd1_nM", pd1_nM)))
    totals = [_check_conc(f"{d.name} total", c) for d, c in items]
    shape = np.broadcast_shapes(L_tot.shape, B_tot.shape, P_tot.shape, *(t.shape for t in totals))
    L_tot, B_tot, P_tot = (np.broadcast_to(x, shape).astype(float) for x in (L_tot, B_tot, P_tot))
    totals = [np.broadcast_to(t, shape).astype(float) for t in totals]
    k_pd1 = chi_pd1 / kd_pd1_nM
    tables = [(d, [(a, b, d.weight(a, b)) for a, b in d.states]) for d, _ in items]

    def bound(L, B):
        """Drug-bound PD-L1 and 4-1BB, and free drug, at free receptor concentrations."""
        bl, bb, free = np.zeros_like(L), np.zeros_like(L), []
        for (d, tab), D_tot in zip(tables, totals):
            denom = np.ones_like(L)
            for a, b, w in tab:
                denom = denom + w * L**a * B**b
            D = D_tot / denom
            free.append(D)
            for a, b, w in tab:
                c = w * D * L**a * B**b
                bl, bb = bl + a * c, bb + b * c
        return bl, bb, free

    tiny = 1e-300

    def solve_b(L):
        lo, hi = np.full_like(L, np.log(tiny)), np.log(np.maximum(B_tot, tiny))
        for _ in range(_ITER):
            mid = 0.5 * (lo + hi)
            B = np.exp(mid)
            _, bb, _ = bound(L, B)
            too_much = B + bb > B_tot
            hi, lo = np.where(too_much, mid, hi), np.where(too_much, lo, mid)
        return np.where(B_tot > 0, np.exp(0.5 * (lo + hi)), 0.0)

    lo, hi = np.full(shape, np.log(tiny)), np.log(np.maximum(L_tot, tiny))
    for _ in range(_ITER):
        mid = 0.5 * (lo + hi)
        L = np.exp(mid)
        B = solve_b(L)
        bl, _, _ = bound(L, B)
        pl = P_tot * k_pd1 * L / (1 + k_pd1 * L)
        too_much = L + bl + pl > L_tot
        hi, lo = np.where(too_much, mid, hi), np.where(too_much, lo, mid)
    L = np.where(L_tot > 0, np.exp(0.5 * (lo + hi)), 0.0)
    B = solve_b(L)
    bl, bb, free = bound(L, B)
    pl = P_tot * k_pd1 * L / (1 + k_pd1 * L)

    data = {
        "pdl1_free": L, "cd137_free": B, "pd1_pdl1": pl, "pd1_free": P_tot - pl,
        "residual_pdl1": (L + bl + pl - L_tot) / np.maximum(L_tot, tiny),
        "residual_cd137": (B + bb - B_tot) / np.maximum(B_tot, tiny),
    }
    ternary = np.zeros(shape)
    for (d, tab), D in zip(tables, free):
        data[f"{d.name}_free"] = D
        for a, b, w in tab:
            c = w * D * L**a * B**b
            data[complex_name(d.name, a, b)] = c
            if a and b:
                ternary = ternary + b * c
    data["ternary_cd137"] = ternary
    dims = [f"dim_{i}" for i in range(len(shape))]
    ds = xr.Dataset({k: (dims, np.asarray(v)) for k, v in data.items()})
    for k in ds.data_vars:
        ds[k].attrs["units"] = "1" if k.startswith("residual") else "nM"
    ds.attrs["description"] = "binding equilibrium (moa.binding.equilibrium)"
    return ds


def receptor_nM(receptors_per_cell, cells_per_mL):
    """Receptor concentration in nM from receptors per cell and cells per mL of medium."""
    return np.asarray(receptors_per_cell, dtype=float) * np.asarray(cells_per_mL, dtype=float) * 1e3 / AVOGADRO * 1e9


def in_vitro(drug: DrugBinding, drug_nM, pdl1_per_cell, pdl1_cells_per_mL, cd137_per_cell, cd137_cells_per_mL) -> xr.Dataset:
    """In-vitro co-culture: ``drug_nM`` of one drug with PD-L1-bearing and 4-1BB-bearing cells.

    Returns :func:`equilibrium` plus ``ternary_per_cd137_cell`` (bridged 4-1BB per T cell).
    """
    for name, v, unit in (("pdl1_per_cell", pdl1_per_cell, "molecule/cell"), ("pdl1_cells_per_mL", pdl1_cells_per_mL, "cell/mL"),
                          ("cd137_per_cell", cd137_per_cell, "molecule/cell"), ("cd137_cells_per_mL", cd137_cells_per_mL, "cell/mL")):
        _check_conc(name, v, unit)
    L = receptor_nM(pdl1_per_cell, pdl1_cells_per_mL)
    B = receptor_nM(cd137_per_cell, cd137_cells_per_mL)
    ds = equilibrium([(drug, drug_nM)], L, B)
    per_cell = ds["ternary_cd137"] * 1e-9 * 1e-3 * AVOGADRO / np.maximum(np.asarray(cd137_cells_per_mL, dtype=float), 1e-300)
    ds["ternary_per_cd137_cell"] = per_cell.assign_attrs(units="molecule/cell")
    return ds


def peripheral_engagement(ds: xr.Dataset, params: Mapping) -> xr.DataArray:
    """Safety surrogate: signalling-weighted fraction of peripheral (blood/liver) 4-1BB engaged
    at the plasma concentrations of a simulation result ``ds`` (dims ``time`` [, ``sample``]).

    Uses the tumour's binding constants with the peripheral receptor levels
    ``pdl1_peripheral_nM`` and ``cd137_peripheral_nM``; binding is taken at equilibrium with
    plasma (binding is fast next to antibody PK).
    """
    get = lambda k, unit="1": _scalar(params, k, unit)  # noqa: E731
    # solver round-off can leave undosed concentrations a hair below zero; NaN marks failed runs
    plasma = {d: np.nan_to_num(np.maximum(ds[f"{d}_central"].values, 0.0)) for d in ("bsab", "apdl1", "a41bb")}
    drugs = [(drug_binding(params, d), plasma[d]) for d in ("bsab", "apdl1", "a41bb")]
    eq = equilibrium(drugs, get("pdl1_peripheral_nM", "nM"), get("cd137_peripheral_nM", "nM"))
    trans = eq["ternary_cd137"].values
    agonist = sum(b * eq[complex_name("a41bb", 0, b)].values for b in (1, 2))
    cis = sum(b * eq[complex_name("bsab", 0, b)].values for b in (1, 2) if complex_name("bsab", 0, b) in eq)
    engaged = (trans + get("agonist_efficacy_a41bb") * agonist + get("cis_efficacy_bsab") * cis) / get("cd137_peripheral_nM", "nM")
    engaged = np.where(np.isfinite(ds["bsab_central"].values), np.clip(engaged, 0, 1), np.nan)
    return xr.DataArray(engaged, dims=ds["bsab_central"].dims, coords=ds["bsab_central"].coords,
                        attrs={"units": "1", "description": "signalling-weighted fraction of peripheral (blood/liver) 4-1BB engaged"})
