"""Binding equilibrium of antibodies with PD-L1, 4-1BB (CD137) and PD-1, solved directly.

The same scheme and constants as the ODE mechanism (:mod:`moa.mechanisms.binding`). Receptors
sit in four pools: PD-L1 and 4-1BB off contact (``pdl1_nM``, ``cd137_nM``) and in T-cell
contact zones (``pdl1_contact_nM``, ``cd137_contact_nM``); PD-1 (``pd1_nM``) is in the
contacts. A drug with ``nL`` PD-L1 arms and ``nB`` 4-1BB arms forms, at free drug ``[D]``,

    off contact:  [C(a, 0)] = [D] binom(nL, a) ([L]/KD_L)^a chi_cis_pdl1^(a-1)      (and (0, b) alike)
    in contacts:  [C(a, b)] = [D] binom(nL, a) binom(nB, b) ([Lc]/KD_L)^a ([Bc]/KD_B)^b phi^(1-a-b)

with ``phi`` the contact volume fraction (every further arm in a contact binds at the local
concentration, 2D), and PD-1 binds free contact PD-L1 with ``K = chi_pd1 / (phi KD_PD1)``.

Given the totals, the free receptors ``x`` minimise the strictly convex function

    Phi(u) = sum_k (x_k - T_k u_k) + sum_d D_d log Z_d(u),   u = log x,

(``Z_d`` is drug d's partition sum, ``D_d`` its total, PD-1 counted as one more "drug"), whose
gradient is the conservation residual (free + bound - total for each receptor) and whose Hessian
is diag(x) plus the drug-weighted covariance of the arm counts. Damped Newton on Phi converges
from any start; each drug's free concentration then follows in closed form.

Use :func:`equilibrium` with concentrations, or :func:`in_vitro` with receptors per cell and
cell densities (one contact per 4-1BB-bearing cell). :func:`liver_signal` gives the safety
readout: 4-1BB signalling of liver myeloid cells at the plasma concentrations of a simulation.
:func:`bell_metrics` measures the bell at a tumour's initial receptor pools, and
:func:`format_comparison` / :func:`format_pdl1_thresholds` compare the 2:2 and 1:1 formats with it
(the generated table of ``docs/model.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .mechanisms.binding import DRUG_ARMS, DrugArms, complex_name, contact_name, contact_states, off_contact_states

__all__ = [
    "DrugBinding",
    "ContactGeometry",
    "Clustering",
    "equilibrium",
    "in_vitro",
    "receptor_nM",
    "drug_binding",
    "contact_geometry",
    "clustering",
    "contact_volume_fraction",
    "contact_shares",
    "cluster_signal",
    "pdl1_threshold",
    "liver_signal",
    "liver_toxicity_readout",
    "bell_metrics",
    "format_comparison",
    "format_pdl1_thresholds",
]

AVOGADRO = 6.02214076e23  # 1/mol (SI definition)
#: Finite KDs allowed, in nM. Measured KDs lie within fM..mM (1e-6..1e6 nM); outside 1e-12..1e12 nM the
#: weights KD^-(a+b) of the complexes with up to four bonds over- or underflow in double precision.
KD_RANGE_NM = (1e-12, 1e12)
ML_PER_UM2_NM = 1e-15  # mL per (um^2 x nm): 1e-12 m^2 x 1e-9 m = 1e-21 m^3
RECEPTORS = ("pdl1", "pdl1_contact", "cd137", "cd137_contact")  # order of the unknowns
_NEWTON_MAX = 400
_TOL = 1e-13  # conservation residual, relative to each total


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

    def __post_init__(self):
        for field in ("valency_pdl1", "valency_cd137"):
            v = getattr(self, field)
            if not 0 <= v <= 2:
                raise ValueError(f"{self.name}: {field}={v}: must lie in 0..2")
        for field in ("kd_pdl1_nM", "kd_cd137_nM", "chi_cis_pdl1", "chi_cis_cd137"):
            v = getattr(self, field)
            if not v > 0:
                raise ValueError(f"{self.name}: {field}={v}: must be > 0")
        for field in ("kd_pdl1_nM", "kd_cd137_nM"):
            v = getattr(self, field)
            if v != np.inf and not KD_RANGE_NM[0] <= v <= KD_RANGE_NM[1]:
                raise ValueError(
                    f"{self.name}: {field}={v:g}: must lie in {KD_RANGE_NM[0]:g} .. {KD_RANGE_NM[1]:g} nM "
                    "(or inf for an arm that does not bind)"
                )

    @property
    def arms(self) -> DrugArms:
        return DrugArms(self.name, self.name, self.valency_pdl1 > 0, self.valency_cd137 > 0)

    def weight_off(self, a: int, b: int) -> float:
        """K (nM^-(a+b)) of off-contact complex (a, 0) or (0, b): [C] = K [D] [L]^a [B]^b."""
        if a and b:
            raise ValueError(f"{self.name}: ({a},{b}): no bridge off contact")
        coeff = _binom(self.valency_pdl1, a) * _binom(self.valency_cd137, b)
        coeff *= self.chi_cis_pdl1 ** max(a - 1, 0) * self.chi_cis_cd137 ** max(b - 1, 0)
        return coeff / (self.kd_pdl1_nM**a * self.kd_cd137_nM**b)

    def weight_contact(self, a: int, b: int, phi: float) -> float:
        """K (nM^-(a+b)) of contact complex (a, b): [C] = K [D] [Lc]^a [Bc]^b, every further arm at 1/phi."""
        coeff = _binom(self.valency_pdl1, a) * _binom(self.valency_cd137, b)
        return coeff * (1.0 / phi) ** (a + b - 1) / (self.kd_pdl1_nM**a * self.kd_cd137_nM**b)


@dataclasses.dataclass(frozen=True)
class ContactGeometry:
    """One contact between a 4-1BB-bearing cell and an anchor (PD-L1-bearing) cell."""

    synapse_area_um2: float
    synapse_gap_nm: float
    t_cell_area_um2: float
    anchor_area_um2: float

    def __post_init__(self):
        for field in ("synapse_area_um2", "synapse_gap_nm", "t_cell_area_um2", "anchor_area_um2"):
            v = getattr(self, field)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{field}={v}: must be finite and > 0")
        for field in ("t_cell_area_um2", "anchor_area_um2"):
            if getattr(self, field) < self.synapse_area_um2:
                raise ValueError(f"{field}={getattr(self, field)}: must be >= synapse_area_um2={self.synapse_area_um2}")

    @property
    def t_cell_share(self) -> float:
        """Fraction of a T cell's receptors in its contact."""
        return self.synapse_area_um2 / self.t_cell_area_um2


@dataclasses.dataclass(frozen=True)
class Clustering:
    """4-1BB signal = x^n / (1 + x^n), x = signalling-weighted cross-linked 4-1BB per cell / k."""

    k_per_cell: float
    hill: float
    agonist_efficacy: float = 1.0
    cis_efficacy: float = 0.0

    def __post_init__(self):
        if not self.k_per_cell > 0:
            raise ValueError(f"k_per_cell={self.k_per_cell}: must be > 0 (molecule/cell)")
        if not self.hill >= 1:
            raise ValueError(f"hill={self.hill}: must be >= 1")
        for field in ("agonist_efficacy", "cis_efficacy"):
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"{field}={getattr(self, field)}: must lie in 0..1")


def _binom(n: float, k: int) -> float:
    out = 1.0
    for i in range(k):
        out *= (n - i) / (i + 1)
    return max(out, 0.0)


#: The unit this module reads each dimensional parameter in (others are dimensionless, "1").
_UNITS = {
    "synapse_area": "um^2/cell",
    "t_cell_area": "um^2/cell",
    "tumour_cell_area": "um^2/cell",
    "myeloid_cell_area": "um^2/cell",
    "liver_anchor_cell_area": "um^2/cell",
    "synapse_gap": "nm",
    "cd137_cluster_k": "molecule/cell",
    "cd137_per_t_cell": "molecule/cell",
    "pdl1_per_liver_anchor_cell": "molecule/cell",
    "cd137_per_liver_myeloid_cell": "molecule/cell",
    "liver_myeloid_cell_density": "cell/mL",
    "liver_anchor_cell_density": "cell/mL",
    "safety_window": "day",
    "liver_toxicity_auc_threshold": "day",
}


def _scalar(params: Mapping, key: str, unit: str | None = None) -> float:
    """One number in ``unit`` (default: the unit this module reads ``key`` in, see ``_UNITS``) from a
    parameter set (the first sample if batched); a plain mapping is taken to hold it in that unit already."""
    unit = unit or _UNITS.get(key, "1")
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
        chi_cis_pdl1=get("chi_cis_pdl1"),
        chi_cis_cd137=get("chi_cis_cd137"),
    )


def contact_geometry(params: Mapping, anchor: str = "tumour") -> ContactGeometry:
    """Contact geometry of a parameter set; ``anchor`` is "tumour" or "myeloid" (cell facing the T cell)."""
    if anchor not in ("tumour", "myeloid"):
        raise ValueError(f"anchor={anchor!r}: allowed 'tumour' or 'myeloid'")
    get = lambda k: _scalar(params, k)  # noqa: E731
    return ContactGeometry(get("synapse_area"), get("synapse_gap"), get("t_cell_area"), get(f"{anchor}_cell_area"))


def clustering(params: Mapping) -> Clustering:
    get = lambda k: _scalar(params, k)  # noqa: E731
    return Clustering(
        get("cd137_cluster_k"), get("cd137_cluster_hill"), get("agonist_efficacy_a41bb"), get("cis_efficacy_bsab")
    )


def contact_volume_fraction(contacts_per_mL, geometry: ContactGeometry):
    """Volume of all contact zones per mL of medium (dimensionless)."""
    return (
        np.asarray(contacts_per_mL, dtype=float) * geometry.synapse_area_um2 * geometry.synapse_gap_nm * ML_PER_UM2_NM
    )


def contact_shares(t_cells_per_mL, anchor_cells_per_mL, geometry: ContactGeometry):
    """(fraction of 4-1BB-bearing cells holding a contact, fraction of anchor surface in contacts).

    Cells compete for anchor surface: with demand s = cells x synapse area / anchor surface, a
    fraction 1/(1+s) holds a contact, covering s/(1+s) of the anchor surface (the ODE's rule).
    """
    anchors = np.maximum(np.asarray(anchor_cells_per_mL, dtype=float), 1e-300)
    demand = np.asarray(t_cells_per_mL, dtype=float) * geometry.synapse_area_um2 / (anchors * geometry.anchor_area_um2)
    return 1 / (1 + demand), demand / (1 + demand)


def cluster_signal(crosslinked_per_cell, clust: Clustering):
    """4-1BB signal (0..1) from signalling-weighted cross-linked 4-1BB per cell (molecule/cell)."""
    x = np.abs(np.asarray(crosslinked_per_cell, dtype=float)) / clust.k_per_cell
    drive = x**clust.hill
    return drive / (1 + drive)


def _check_conc(name: str, x, unit: str = "nM") -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}={x!r}: must be finite and >= 0 ({unit})")
    return arr


def _state_table(drug: DrugBinding, phi: np.ndarray):
    """[(name, a, b, exponents over RECEPTORS, log weight array)] of a drug's bound states."""
    rows = []
    for a, b in off_contact_states(drug.arms):
        w = drug.weight_off(a, b)
        if w > 0:
            rows.append((complex_name(drug.name, a, b), a, b, (a, 0, b, 0), np.full(phi.shape, math.log(w))))
    for a, b in contact_states(drug.arms):
        w = drug.weight_contact(a, b, 1.0)
        if w > 0:
            rows.append((contact_name(drug.name, a, b), a, b, (0, a, 0, b), math.log(w) - (a + b - 1) * np.log(phi)))
    return rows


def equilibrium(
    drugs: Mapping[str, tuple[DrugBinding, object]] | list[tuple[DrugBinding, object]],
    pdl1_nM,
    cd137_nM,
    pdl1_contact_nM=0.0,
    cd137_contact_nM=0.0,
    pd1_nM=0.0,
    contact_volume_fraction=1.0,
    kd_pd1_nM: float = np.inf,
    chi_pd1: float = 1.0,
) -> xr.Dataset:
    """Equilibrium of drugs (each ``(DrugBinding, total nM)``) with receptor totals (nM).

    ``pdl1_nM``/``cd137_nM`` are the off-contact pools, ``*_contact_nM`` and ``pd1_nM`` the
    contact pools, ``contact_volume_fraction`` (phi, > 0) the contact volume per medium
    volume. All arguments broadcast against each other. Returns a Dataset with free receptors,
    free drug, every complex (species names of the ODE model), PD-1:PD-L1, the bridged
    (ternary) 4-1BB and the conservation residuals (relative).
    """
    items = list(drugs.values()) if isinstance(drugs, Mapping) else list(drugs)
    if not items:
        raise ValueError("drugs: give at least one (DrugBinding, total_nM) pair")
    named = (
        ("pdl1_nM", pdl1_nM),
        ("pdl1_contact_nM", pdl1_contact_nM),
        ("cd137_nM", cd137_nM),
        ("cd137_contact_nM", cd137_contact_nM),
        ("pd1_nM", pd1_nM),
    )
    arrays = [_check_conc(n, v) for n, v in named]
    phi = _check_conc("contact_volume_fraction", contact_volume_fraction, "1")
    if np.any(phi <= 0):
        raise ValueError(f"contact_volume_fraction={contact_volume_fraction!r}: must be > 0")
    totals_d = [_check_conc(f"{d.name} total", c) for d, c in items]
    shape = np.broadcast_shapes(*(a.shape for a in arrays), phi.shape, *(t.shape for t in totals_d))
    n_pts = int(np.prod(shape)) if shape else 1
    flat = lambda x: np.broadcast_to(x, shape).astype(float).reshape(n_pts)  # noqa: E731
    T = np.stack([flat(a) for a in arrays[:4]], axis=1)  # (N, 4)
    P_tot, phi_f = flat(arrays[4]), flat(phi)
    k_pd1 = chi_pd1 / (phi_f * kd_pd1_nM)

    # "ligands": each drug and PD-1, with their bound states (exponent vectors, log weights)
    ligands = []
    for (d, _), tot in zip(items, totals_d):
        rows = _state_table(d, phi_f)
        ligands.append((d.name, flat(tot), rows))
    with np.errstate(divide="ignore"):
        ligands.append(("pd1", P_tot, [("pd1_pdl1", 1, 0, (0, 1, 0, 0), np.log(k_pd1))]))
    E = [np.array([r[3] for r in rows], dtype=float).reshape(len(rows), 4) for _, _, rows in ligands]
    logw = [np.stack([r[4] for r in rows], axis=1) if rows else np.zeros((n_pts, 0)) for _, _, rows in ligands]

    active = T > 0
    u = np.where(active, np.log(np.where(active, T, 1.0)), -800.0)

    def evaluate(u, sel):
        """Phi, gradient, Hessian and each ligand's state probabilities at u (log free receptors) for points sel."""
        act, tt = active[sel], T[sel]
        x = np.where(act, np.exp(u), 0.0)
        phi_val = np.sum(np.where(act, x - tt * u, 0.0), axis=1)
        grad = x - tt
        hess = np.zeros((len(sel), 4, 4))
        hess[:, range(4), range(4)] = x
        probs = []
        for (_, tot, rows), e, lw in zip(ligands, E, logw):
            if not rows:
                probs.append(np.zeros((len(sel), 0)))
                continue
            z = lw[sel] + u @ e.T  # (n, S)
            zmax = np.maximum(z.max(axis=1), 0.0)
            logZ = zmax + np.log(np.exp(-zmax) + np.exp(z - zmax[:, None]).sum(axis=1))
            p = np.exp(z - logZ[:, None])
            probs.append(p)
            phi_val = phi_val + tot[sel] * logZ
            mean = p @ e  # (n, 4)
            grad = grad + tot[sel][:, None] * mean
            second = np.einsum("ns,si,sj->nij", p, e, e)
            hess = hess + tot[sel][:, None, None] * (second - mean[:, :, None] * mean[:, None, :])
        grad = np.where(act, grad, 0.0)
        return phi_val, grad, hess, probs

    scale = np.where(active, T, 1.0)
    todo = np.arange(n_pts)
    for _ in range(_NEWTON_MAX):  # damped Newton, only on the points not yet converged
        f, g, H, _ = evaluate(u[todo], todo)
        left = np.any(np.abs(g) > _TOL * scale[todo], axis=1)
        todo, f, g, H = todo[left], f[left], g[left], H[left]
        if not todo.size:
            break
        act = active[todo]
        H = np.where(act[:, :, None] & act[:, None, :], H, 0.0)
        H[:, range(4), range(4)] = np.where(act, H[:, range(4), range(4)], 1.0)
        step = np.clip(-np.linalg.solve(H, g[..., None])[..., 0], -30.0, 30.0)
        slope = np.sum(g * step, axis=1)
        t = np.ones(todo.size)
        pending = np.arange(todo.size)
        for _ in range(60):  # backtracking (Armijo) with a round-off allowance
            trial = u[todo[pending]] + t[pending, None] * step[pending]
            f_new = evaluate(trial, todo[pending])[0]
            ok = f_new <= f[pending] + 1e-4 * t[pending] * slope[pending] + 1e-13 * np.abs(f[pending])
            pending = pending[~ok]
            if not pending.size:
                break
            t[pending] *= 0.5
        u[todo] = np.where(act, u[todo] + t[:, None] * step, u[todo])
    everything = np.arange(n_pts)
    f, g, H, probs = evaluate(u, everything)
    x = np.where(active, np.exp(u), 0.0)

    reshape = lambda v: np.asarray(v).reshape(shape)  # noqa: E731
    data = {"pdl1_free": x[:, 0], "pdl1_syn": x[:, 1], "cd137_free": x[:, 2], "cd137_syn": x[:, 3]}
    for k, name in enumerate(RECEPTORS):
        data[f"residual_{name}"] = g[:, k] / np.maximum(T[:, k], 1e-300)
    ternary = np.zeros(n_pts)
    for (name, tot, rows), p in zip(ligands, probs):
        free = tot * (1 - p.sum(axis=1)) if rows else tot
        if name == "pd1":
            data["pd1_pdl1"] = tot * p[:, 0]
            data["pd1_free"] = free
            continue
        data[f"{name}_free"] = free
        for (species, a, b, _, _), col in zip(rows, p.T):
            c = tot * col
            data[species] = c
            if a and b:
                ternary = ternary + b * c
    data["ternary_cd137"] = ternary
    dims = [f"dim_{i}" for i in range(len(shape))]
    ds = xr.Dataset({k: (dims, reshape(v)) for k, v in data.items()})
    for k in ds.data_vars:
        ds[k].attrs["units"] = "1" if k.startswith("residual") else "nM"
    ds.attrs["description"] = "binding equilibrium with contact zones (moa.binding_equilibrium.equilibrium)"
    return ds


def receptor_nM(receptors_per_cell, cells_per_mL):
    """Receptor concentration in nM from receptors per cell and cells per mL of medium."""
    return np.asarray(receptors_per_cell, dtype=float) * np.asarray(cells_per_mL, dtype=float) * 1e3 / AVOGADRO * 1e9


def _per_cell(conc_nM, cells_per_mL):
    """nM of a receptor pool -> molecules per cell."""
    return np.asarray(conc_nM) * 1e-12 * AVOGADRO / np.maximum(np.asarray(cells_per_mL, dtype=float), 1e-300)


def crosslinked_nM(eq: xr.Dataset, drugs: list[DrugBinding], clust: Clustering):
    """Signalling-weighted cross-linked 4-1BB (nM): bridges, plus unanchored 4-1BB held by an
    agonist (weight ``agonist_efficacy``) or by a bispecific (weight ``cis_efficacy``)."""
    out = eq["ternary_cd137"].values.copy()
    for d in drugs:
        weight = clust.cis_efficacy if d.valency_pdl1 > 0 else clust.agonist_efficacy
        for b in (1, 2):
            for name in (complex_name(d.name, 0, b), contact_name(d.name, 0, b)):
                if name in eq:
                    out = out + weight * b * eq[name].values
    return out


def in_vitro(
    drug: DrugBinding,
    drug_nM,
    pdl1_per_cell,
    pdl1_cells_per_mL,
    cd137_per_cell,
    cd137_cells_per_mL,
    geometry: ContactGeometry,
    clust: Clustering | None = None,
) -> xr.Dataset:
    """In-vitro co-culture: ``drug_nM`` of one drug with PD-L1-bearing (anchor) and 4-1BB-bearing cells.

    Every 4-1BB-bearing cell holds one contact with an anchor cell, or a fraction of them
    where the anchor surface is short (:func:`contact_shares`, as in the ODE model). Returns
    :func:`equilibrium` plus ``ternary_per_cd137_cell`` (bridged 4-1BB per T cell), ``pdl1_per_contact``
    and, with ``clust``, ``crosslinked_per_cd137_cell`` and ``cd137_signal``.
    """
    for name, v, unit in (
        ("pdl1_per_cell", pdl1_per_cell, "molecule/cell"),
        ("pdl1_cells_per_mL", pdl1_cells_per_mL, "cell/mL"),
        ("cd137_per_cell", cd137_per_cell, "molecule/cell"),
        ("cd137_cells_per_mL", cd137_cells_per_mL, "cell/mL"),
    ):
        _check_conc(name, v, unit)
    t_cells = np.asarray(cd137_cells_per_mL, dtype=float)
    if np.any(t_cells <= 0):
        raise ValueError(f"cd137_cells_per_mL={cd137_cells_per_mL!r}: must be > 0 (cells that make the contacts)")
    in_contact, anchor_share = contact_shares(t_cells, pdl1_cells_per_mL, geometry)
    L = receptor_nM(pdl1_per_cell, pdl1_cells_per_mL)
    B = receptor_nM(cd137_per_cell, cd137_cells_per_mL)
    share_b = geometry.t_cell_share * in_contact
    phi = contact_volume_fraction(t_cells * in_contact, geometry)
    ds = equilibrium(
        [(drug, drug_nM)],
        L * (1 - anchor_share),
        B * (1 - share_b),
        L * anchor_share,
        B * share_b,
        contact_volume_fraction=phi,
    )
    ds["ternary_per_cd137_cell"] = xr.DataArray(
        _per_cell(ds["ternary_cd137"].values, t_cells), dims=ds["ternary_cd137"].dims, attrs={"units": "molecule/cell"}
    )
    per_contact = np.broadcast_to(
        np.asarray(pdl1_per_cell, dtype=float) * geometry.synapse_area_um2 / geometry.anchor_area_um2,
        ds["ternary_cd137"].shape,
    )
    ds["pdl1_per_contact"] = xr.DataArray(per_contact, dims=ds["ternary_cd137"].dims, attrs={"units": "molecule/cell"})
    if clust is not None:
        x = _per_cell(crosslinked_nM(ds, [drug], clust), t_cells)
        ds["crosslinked_per_cd137_cell"] = xr.DataArray(
            x, dims=ds["ternary_cd137"].dims, attrs={"units": "molecule/cell"}
        )
        ds["cd137_signal"] = xr.DataArray(cluster_signal(x, clust), dims=ds["ternary_cd137"].dims, attrs={"units": "1"})
    return ds


#: In-vitro co-culture used for the PD-L1 threshold: cells per mL of each kind (assumed assay format)
COCULTURE_CELLS_PER_ML = 1e6


def pdl1_threshold(params: Mapping, drug: str = "bsab", pdl1_per_cell=None, drug_nM=None) -> dict:
    """PD-L1 per anchor cell at which the drug's best 4-1BB signal (over drug concentration)
    reaches half of its value at the densest anchor, in a 1:1 co-culture (1e6 cells/mL each).

    Returns the threshold (molecule/cell, log-interpolated; NaN if never crossed), the density
    grid, the best signal at each density, and the concentration of that best signal.
    """
    grid = np.geomspace(1e2, 1e6, 81) if pdl1_per_cell is None else np.asarray(pdl1_per_cell, dtype=float)
    conc = np.geomspace(1e-3, 1e4, 57) if drug_nM is None else np.asarray(drug_nM, dtype=float)
    binding = drug_binding(params, drug)
    eq = in_vitro(
        binding,
        conc[None, :],
        grid[:, None],
        COCULTURE_CELLS_PER_ML,
        _scalar(params, "cd137_per_t_cell"),
        COCULTURE_CELLS_PER_ML,
        contact_geometry(params),
        clustering(params),
    )
    signal = eq["cd137_signal"].values  # (density, conc)
    best = signal.max(axis=1)
    half = 0.5 * best[-1]
    above = np.nonzero(best >= half)[0]
    threshold = float("nan")
    if above.size and 0 < above[0]:
        i = above[0]
        x0, x1, y0, y1 = math.log10(grid[i - 1]), math.log10(grid[i]), best[i - 1], best[i]
        threshold = 10 ** (x0 + (half - y0) * (x1 - x0) / (y1 - y0))
    return {
        "threshold_pdl1_per_cell": threshold,
        "pdl1_per_cell": grid,
        "best_signal": best,
        "conc_at_best_nM": conc[signal.argmax(axis=1)],
        "signal_at_densest": float(best[-1]),
    }


# ----- safety readout: 4-1BB signalling of liver myeloid cells ---------------------------------
def _liver_geometry(params: Mapping) -> ContactGeometry:
    get = lambda k: _scalar(params, k)  # noqa: E731
    return ContactGeometry(
        get("synapse_area"), get("synapse_gap"), get("myeloid_cell_area"), get("liver_anchor_cell_area")
    )


def liver_signal(ds: xr.Dataset, params: Mapping) -> xr.DataArray:
    """4-1BB signal (0..1) of liver myeloid cells (Kupffer cells, monocytes) over time, at
    equilibrium with the plasma concentrations of a simulation result ``ds`` (dims ``time``
    [, ``sample``]) times ``liver_exposure_ratio``.

    Each liver myeloid cell holds one contact with a PD-L1-bearing liver cell (the
    bispecific's anchor); the signal is the clustering function of the tumour
    (``cd137_cluster_k``, ``cd137_cluster_hill``) of signalling-weighted cross-linked 4-1BB
    per cell: bridges, agonist-held 4-1BB x ``agonist_efficacy_a41bb``, unanchored
    bispecific-held 4-1BB x ``cis_efficacy_bsab``. Binding is fast next to antibody PK.
    """
    get = lambda k: _scalar(params, k)  # noqa: E731
    geometry = _liver_geometry(params)
    exposure = get("liver_exposure_ratio")
    # solver round-off can leave undosed concentrations a hair below zero; NaN marks failed runs
    plasma = {
        d: np.nan_to_num(np.maximum(ds[f"{d}_central"].values, 0.0)) * exposure for d in ("bsab", "apdl1", "a41bb")
    }
    drugs = [drug_binding(params, d) for d in ("bsab", "apdl1", "a41bb")]
    cells, anchors = get("liver_myeloid_cell_density"), get("liver_anchor_cell_density")
    in_contact, anchor_share = (float(x) for x in contact_shares(cells, anchors, geometry))
    L = float(receptor_nM(get("pdl1_per_liver_anchor_cell"), anchors))
    B = float(receptor_nM(get("cd137_per_liver_myeloid_cell"), cells))
    share_b = geometry.t_cell_share * in_contact
    eq = equilibrium(
        [(d, plasma[d.name]) for d in drugs],
        L * (1 - anchor_share),
        B * (1 - share_b),
        L * anchor_share,
        B * share_b,
        contact_volume_fraction=float(contact_volume_fraction(cells * in_contact, geometry)),
    )
    signal = cluster_signal(_per_cell(crosslinked_nM(eq, drugs, clustering(params)), cells), clustering(params))
    signal = np.where(np.isfinite(ds["bsab_central"].values), signal, np.nan)
    return xr.DataArray(
        signal,
        dims=ds["bsab_central"].dims,
        coords=ds["bsab_central"].coords,
        attrs={"units": "1", "description": "4-1BB signal of liver myeloid cells (safety readout)"},
    )


def liver_toxicity_readout(signal: xr.DataArray, params: Mapping) -> xr.DataArray:
    """Area under the liver 4-1BB signal over the first ``safety_window`` days (day), trapezoidal
    on the output times; compare with ``liver_toxicity_auc_threshold``."""
    window = _scalar(params, "safety_window")
    t = signal["time"].values
    if t[0] > 0 or t[-1] < window:
        raise ValueError(f"signal times {t[0]:g}..{t[-1]:g} day: must cover 0..safety_window={window:g} day")
    grid = np.union1d(t[t <= window], [window])
    y = signal.interp(time=grid)
    auc = y.integrate("time")
    return auc.assign_attrs(units="day", description=f"liver 4-1BB signal AUC over days 0-{window:g}")


# ----- the bell at a tumour's receptor pools, and 2:2 against 1:1 --------------------------------
#: The formats compared in docs/model.md: the same KDs and avidity factors, valency only.
COMPARED_FORMATS = ("bsab_2x2", "bsab_1x1")


def bell_metrics(params: Mapping, concentrations_nM: np.ndarray | None = None) -> dict:
    """Bridged (ternary) 4-1BB vs total bispecific concentration at the tumour's initial
    receptor pools of ``params`` (off contact and in contact zones, PD-1 included), at
    equilibrium (:func:`equilibrium`), and the 4-1BB signal of the bridges.

    Returns peak ternary as a fraction of 4-1BB and in nM, the concentration at the peak (nM), the
    width of the bell in decades at half maximum, the peak 4-1BB signal, and the curve itself.
    The pools come from the full model at t = 0 (one simulation step, no drug).
    """
    from .symbolic.named_models import full_model
    from .simulate import simulate

    conc = np.logspace(-4, 5, 451) if concentrations_nM is None else np.asarray(concentrations_nM, dtype=float)
    ds = simulate(full_model(), params, None, times=[0.0, 1.0])
    at0 = {
        k: float(ds[k][0])
        for k in (
            "pdl1_free",
            "pdl1_syn",
            "pd1_pdl1",
            "cd137_free",
            "cd137_syn",
            "pd1_free",
            "contact_volume_fraction",
            "cd137_total",
            "pdl1_total",
        )
    }
    phi = at0["contact_volume_fraction"] + float(params.value_in("contact_floor", "1"))
    eq = equilibrium(
        [(drug_binding(params, "bsab"), conc)],
        at0["pdl1_free"],
        at0["cd137_free"],
        at0["pdl1_syn"] + at0["pd1_pdl1"],
        at0["cd137_syn"],
        pd1_nM=at0["pd1_free"] + at0["pd1_pdl1"],
        contact_volume_fraction=phi,
        kd_pd1_nM=float(params.value_in("kd_pd1_pdl1", "nM")),
        chi_pd1=float(params.value_in("chi_pd1", "1")),
    )
    ternary = eq["ternary_cd137"].values
    cd137 = at0["cd137_total"]
    signal = cluster_signal(
        ternary / cd137 * float(params.value_in("cd137_per_t_cell", "molecule/cell")), clustering(params)
    )
    k = int(np.argmax(ternary))
    above = np.nonzero(ternary >= ternary[k] / 2)[0]
    lo, hi = _half_crossing(conc, ternary, above[0], -1), _half_crossing(conc, ternary, above[-1], +1)
    return {
        "pdl1_nM": at0["pdl1_total"],
        "cd137_nM": cd137,
        "pd1_nM": at0["pd1_free"] + at0["pd1_pdl1"],
        "pdl1_per_contact": float(ds["pdl1_per_contact"][0]),
        "peak_fraction": ternary[k] / cd137,
        "peak_nM": ternary[k],
        "conc_at_peak_nM": conc[k],
        "peak_signal": float(signal[k]),
        "width_decades": math.log10(hi / lo) if np.isfinite(lo * hi) else math.inf,
        "peak_index": k,
        "concentrations_nM": conc,
        "ternary_nM": ternary,
    }


def _half_crossing(conc, y, i, direction) -> float:
    """Concentration where ``y`` crosses half its maximum next to index ``i`` (log-linear)."""
    j = i + direction
    if j < 0 or j >= len(y):
        return math.inf  # the bell does not fall to half within the grid
    half = y.max() / 2
    x0, x1, y0, y1 = math.log10(conc[i]), math.log10(conc[j]), y[i], y[j]
    return 10 ** (x0 + (half - y0) * (x1 - x0) / (y1 - y0))


def format_comparison(settings: Sequence[str] = ("hot_tnbc", "cold", "pdl1_negative_tnbc")) -> list[dict]:
    """2:2 against 1:1 in each setting: the equilibrium bell at the initial tumour receptor pools
    (:func:`bell_metrics`, the curve left out) and the in vivo 4-1BB signal over cycle 2 (days 21-42)
    of the arm's regimen, one row per setting and format."""
    from .symbolic.named_models import full_model
    from .scenarios import scenario
    from .simulate import simulate

    rows = []
    for setting in settings:
        for arm in COMPARED_FORMATS:
            params, regimen = scenario(arm, setting, duration_days=42.0)
            m = bell_metrics(params)
            ds = simulate(full_model(), params, regimen, times=np.arange(21.0, 43.0))
            rows.append(
                {
                    "setting": setting,
                    "format": arm,
                    **{k: v for k, v in m.items() if not isinstance(v, np.ndarray)},
                    "signal_cycle2": float(ds["cd137_signal"].mean()),
                }
            )
    return rows


def format_pdl1_thresholds() -> dict[str, float]:
    """In-vitro PD-L1 threshold of each compared format (``moa binding --threshold``), PD-L1 per cell."""
    from .parameters import load_parameters
    from .scenarios import load_formats

    return {
        fmt: pdl1_threshold(load_parameters().with_values(load_formats()[fmt].values))["threshold_pdl1_per_cell"]
        for fmt in COMPARED_FORMATS
    }
