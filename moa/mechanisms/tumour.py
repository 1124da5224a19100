"""Tumour: logistic growth at a clinical doubling time, T-cell killing by a ratio-dependent
law (de Pillis 2005), antigen shed and released by dying cells, diameter for RECIST.

Killing of tumour cells ``C`` by effector-equivalent cells ``E`` (effectors plus a fraction
of progenitor-exhausted cells) follows

    kill = d_max (E/C)^l / (s + (E/C)^l) * C * (1 - pd1_kill_inhibition * pd1_engaged)

so that killing saturates in the effector:target ratio, and PD-1 engagement blunts it.
"""

from __future__ import annotations

import sympy

from ..engine import Mechanism, ref

__all__ = ["tumour"]


def tumour() -> Mechanism:
    m = Mechanism("tumour", "growth, T-cell killing, antigen, size")
    density = m.parameter("tumour_cell_density", "cell/mL", "tumour cells per mL of tumour")
    d0 = m.parameter("initial_tumour_diameter", "mm", "diameter of the (spherical) tumour at the first dose")
    mm3_per_ml = m.conversion("mm3_per_mL", "mm^3/mL")
    cells0 = sympy.pi / 6 * d0**3 / mm3_per_ml * density
    C = m.species("tumour_cells", "cell", "viable tumour cells", initial=cells0)

    growth = m.parameter("tumour_growth_rate", "1/day", "net intrinsic growth rate of tumour cells")
    capacity = m.parameter("tumour_capacity", "cell", "carrying capacity of the logistic growth")
    kill_max = m.parameter("kill_rate_max", "1/day", "maximal T-cell kill rate per tumour cell (de Pillis d)")
    kill_s = m.parameter("kill_ratio_half", "1", "(E/T)^l at half-maximal killing (de Pillis s)")
    kill_l = m.parameter("kill_ratio_exponent", "1", "exponent of the effector:target ratio (de Pillis l)")
    pex_kill = m.parameter("pex_kill_fraction", "1", "killing by a progenitor-exhausted cell relative to an effector")
    pd1_inhib = m.parameter("pd1_kill_inhibition", "1", "fraction of killing lost when all PD-1 is engaged")
    v_min = m.parameter("tumour_volume_floor", "mL", "volume floor so that densities stay finite as the tumour vanishes")
    interstitial_fraction = m.parameter("tumour_interstitial_fraction", "1", "antibody-accessible (interstitial) fraction of tumour volume")

    volume = m.expression("tumour_volume", C / density, "mL", "tumour volume (viable cells / density)")
    m.expression("tumour_interstitial_volume", (volume + v_min) * interstitial_fraction, "mL",
                 "antibody-accessible interstitial volume of the tumour")
    m.expression("tumour_diameter", (6 * volume * mm3_per_ml / sympy.pi) ** sympy.Rational(1, 3), "mm",
                 "diameter of a sphere of the tumour volume (RECIST sum of diameters for one lesion)")

    effectors = ref("t_eff") + pex_kill * ref("t_pex")
    # The floor keeps (E/C)^l differentiable when effectors vanish (or a solver overshoots below 0).
    ratio_floor = m.parameter("kill_ratio_floor", "1", "numerical floor of the effector:target ratio")
    ratio = sympy.Max(effectors / (C + density * v_min), ratio_floor)
    kill_per_cell = kill_max * ratio**kill_l / (kill_s + ratio**kill_l) * (1 - pd1_inhib * ref("pd1_engaged")) * ref("effector_function")
    immune_kill = m.expression("immune_kill_rate", kill_per_cell * C, "cell/day", "tumour cells killed by T cells per day")
    m.term(C, growth * C * (1 - C / capacity), "logistic growth")
    m.term(C, -immune_kill, "T-cell killing")

    shed = m.parameter("antigen_shedding_rate", "1/day", "antigen shed by viable tumour cells (dead-cell equivalents per cell per day)")
    clear = m.parameter("antigen_clearance_rate", "1/day", "clearance of antigen from the draining node")
    A = m.species("antigen", "cell", "tumour antigen reaching the draining node (dead-cell equivalents)",
                  initial=shed * cells0 / clear)
    m.term(A, shed * C, "shedding by viable cells")
    m.term(A, immune_kill, "release by immune killing")
    m.term(A, -clear * A, "clearance")
    return m
