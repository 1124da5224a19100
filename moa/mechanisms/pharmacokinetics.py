"""Antibody pharmacokinetics: two compartments, linear clearance, and target-mediated
disposition to a systemic PD-L1 pool (full TMDD, Mager & Jusko 2001).

Concentrations are free drug in plasma (central) and in the peripheral compartment, in nM.
The peripheral concentration is expressed per peripheral volume, so the distribution flux
``q (C1 - C2)`` [nmol/day] enters each side divided by its own volume.
"""

from __future__ import annotations

from ..symbolic import Mechanism


def antibody_two_compartment(drug: str, label: str) -> Mechanism:
    """Two-compartment IgG PK of ``drug``; a dose (mg) enters the central compartment."""
    m = Mechanism(f"pk_{drug}", f"two-compartment pharmacokinetics of {label}")
    c1 = m.species(f"{drug}_central", "nM", f"free {label} in plasma")
    c2 = m.species(f"{drug}_peripheral", "nM", f"free {label} in the peripheral compartment")
    cl = m.parameter(f"cl_{drug}", "L/day", f"linear clearance of {label}")
    v1 = m.parameter(f"v1_{drug}", "L", f"central volume of {label}")
    v2 = m.parameter(f"v2_{drug}", "L", f"peripheral volume of {label}")
    q = m.parameter(f"q_{drug}", "L/day", f"inter-compartmental clearance of {label}")
    mw = m.parameter(f"mw_{drug}", "g/mol", f"molecular weight of {label}")
    g_per_mg = m.conversion("g_per_mg", "g/mg")
    nmol_per_mol = m.conversion("nmol_per_mol", "nmol/mol")

    m.term(c1, -cl / v1 * c1, "linear clearance")
    m.term(c1, -q * (c1 - c2) / v1, "distribution to periphery")
    m.term(c2, q * (c1 - c2) / v2, "distribution from plasma")
    # 1 mg of drug = g_per_mg / mw [mol] = that * nmol_per_mol [nmol], spread over v1 [L]
    m.dose_route(drug, c1, g_per_mg * nmol_per_mol / (mw * v1))
    return m


def systemic_pdl1_tmdd(drug: str, label: str, pool_turnover: bool = True) -> Mechanism:
    """Binding of ``drug`` to a systemic PD-L1 pool in plasma-accessible tissue (TMDD).

    PD-L1 is made at ``kdeg * baseline`` and turned over at ``kdeg``; the drug-PD-L1
    complex is internalised at ``kint``. One binding site is assumed for the sink (the
    second arm's avidity is folded into the effective KD). The pool is shared by every
    drug that binds PD-L1: give ``pool_turnover=True`` to exactly one of them, or the
    synthesis and turnover of the pool are counted once per drug.
    """
    m = Mechanism(f"tmdd_{drug}", f"target-mediated disposition of {label} to systemic PD-L1")
    c1 = m.species(f"{drug}_central", "nM", f"free {label} in plasma")
    r0 = m.parameter("pdl1_systemic_baseline", "nM", "systemic PD-L1 concentration without drug (plasma-equivalent)")
    r = m.species("pdl1_systemic", "nM", "free systemic PD-L1 (plasma-equivalent)", initial=r0)
    rc = m.species(f"pdl1_systemic_{drug}", "nM", f"systemic PD-L1 bound by {label}")
    kdeg = m.parameter("kdeg_pdl1", "1/day", "turnover rate of free PD-L1")
    kint = m.parameter("kint_pdl1_complex", "1/day", "internalisation rate of drug-bound PD-L1")
    kon = m.parameter(f"kon_pdl1_{drug}", "1/(nM*day)", f"association rate of {label} to PD-L1")
    kd = m.parameter(f"kd_pdl1_{drug}", "nM", f"dissociation constant of {label} from PD-L1")

    binding = kon * c1 * r - kon * kd * rc
    m.term(c1, -binding, "binding to systemic PD-L1")
    m.term(r, -binding, "binding of drug")
    m.term(rc, binding, "complex formation")
    if pool_turnover:
        m.term(r, kdeg * r0 - kdeg * r, "PD-L1 synthesis and turnover")
    m.term(rc, -kint * rc, "complex internalisation")
    m.expression(f"pdl1_systemic_occupancy_{drug}", rc / (r + rc), "1", f"fraction of systemic PD-L1 bound by {label}")
    return m
