"""Tumour: three clones with Gompertz growth, T-cell killing by a ratio-dependent law
(de Pillis 2005), antigen shed and released by dying cells, diameter for RECIST.

Clones (each a species in cells, extinct below one cell):

* ``tumour_cells_sensitive``: the bulk, killed by T cells and nab-paclitaxel;
* ``tumour_cells_resistant``: taxane-resistant (pre-existing fraction plus a transition from
  the sensitive clone; lower nab-paclitaxel sensitivity, optional fitness cost), after the
  resistant cancer clone of QSPIO-TNBC (Wang 2021);
* ``tumour_cells_escape``: antigen-low / MHC-I-low immune-escape cells, recognised and killed
  less by T cells and shedding less antigen.

``tumour_cells`` (the sum) keeps its name for the other mechanisms. Growth is Gompertzian in
the total (Norton 1988): clone ``i`` grows at ``fitness_i * lambda * ln(K / (C + C_floor))`` per
cell, so all clones share one capacity and the per-capita rate rises only logarithmically as the
tumour shrinks. Killing of clone ``i`` by effector-equivalent cells ``E`` (effectors plus a
fraction of progenitor-exhausted cells) is

    kill_i = recognition_i * d_max (E/C)^l / (s + (E/C)^l) * C_i * (1 - pd1_kill_inhibition * pd1_engaged)

with ``C`` the total: effectors search all tumour cells and kill the ones they recognise.
"""

from __future__ import annotations

import sympy

from ..symbolic import Mechanism, ref

__all__ = ["tumour", "CLONES"]

#: The clone species, in model order.
CLONES = ("tumour_cells_sensitive", "tumour_cells_resistant", "tumour_cells_escape")


def tumour() -> Mechanism:
    m = Mechanism("tumour", "tumour clones: growth, T-cell killing, antigen, size")
    density = m.parameter("tumour_cell_density", "cell/mL", "tumour cells per mL of tumour")
    d0 = m.parameter("initial_tumour_diameter", "mm", "diameter of the (spherical) tumour at the first dose")
    mm3_per_ml = m.conversion("mm3_per_mL", "mm^3/mL")
    cells0 = sympy.pi / 6 * d0**3 / mm3_per_ml * density
    f_res = m.parameter(
        "initial_resistant_fraction", "1", "taxane-resistant fraction of tumour cells at the first dose"
    )
    f_esc = m.parameter("initial_escape_fraction", "1", "immune-escape fraction of tumour cells at the first dose")
    one_cell = m.parameter("clone_extinction_threshold", "cell", "a clone below this many cells is extinct")
    S = m.species(
        "tumour_cells_sensitive",
        "cell",
        "viable tumour cells of the sensitive (bulk) clone",
        initial=cells0 * (1 - f_res - f_esc),
        extinct_below=one_cell,
    )
    R = m.species(
        "tumour_cells_resistant",
        "cell",
        "viable taxane-resistant tumour cells",
        initial=cells0 * f_res,
        extinct_below=one_cell,
    )
    X = m.species(
        "tumour_cells_escape",
        "cell",
        "viable immune-escape (antigen-low, MHC-I-low) tumour cells",
        initial=cells0 * f_esc,
        extinct_below=one_cell,
    )
    C = m.expression("tumour_cells", S + R + X, "cell", "viable tumour cells (all clones)")
    m.expression("resistant_fraction", R / (C + one_cell), "1", "taxane-resistant share of the tumour cells")
    m.expression("escape_fraction", X / (C + one_cell), "1", "immune-escape share of the tumour cells")

    growth = m.parameter("tumour_growth_rate", "1/day", "Gompertz rate constant of tumour growth (lambda)")
    capacity = m.parameter("tumour_capacity", "cell", "Gompertz plateau (carrying capacity) of the tumour")
    fit_res = m.parameter("resistant_fitness", "1", "growth rate of the resistant clone relative to the sensitive one")
    fit_esc = m.parameter("escape_fitness", "1", "growth rate of the escape clone relative to the sensitive one")
    mutation = m.parameter(
        "resistance_transition_rate", "1/day", "rate at which sensitive cells become taxane-resistant"
    )
    kill_max = m.parameter("kill_rate_max", "1/day", "maximal T-cell kill rate per tumour cell (de Pillis d)")
    kill_s = m.parameter("kill_ratio_half", "1", "(E/T)^l at half-maximal killing (de Pillis s)")
    kill_l = m.parameter("kill_ratio_exponent", "1", "exponent of the effector:target ratio (de Pillis l)")
    pex_kill = m.parameter("pex_kill_fraction", "1", "killing by a progenitor-exhausted cell relative to an effector")
    pd1_inhib = m.parameter("pd1_kill_inhibition", "1", "fraction of killing lost when all PD-1 is engaged")
    recog_esc = m.parameter("escape_recognition", "1", "T-cell killing of an escape cell relative to a sensitive cell")
    v_min = m.parameter(
        "tumour_volume_floor", "mL", "volume floor so that densities stay finite as the tumour vanishes"
    )
    interstitial_fraction = m.parameter(
        "tumour_interstitial_fraction", "1", "antibody-accessible (interstitial) fraction of tumour volume"
    )

    volume = m.expression("tumour_volume", C / density, "mL", "tumour volume (viable cells / density)")
    m.expression(
        "tumour_interstitial_volume",
        (volume + v_min) * interstitial_fraction,
        "mL",
        "antibody-accessible interstitial volume of the tumour",
    )
    m.expression(
        "tumour_diameter",
        (6 * volume * mm3_per_ml / sympy.pi) ** sympy.Rational(1, 3),
        "mm",
        "diameter of a sphere of the tumour volume (RECIST sum of diameters for one lesion)",
    )

    # Gompertz: the floor (about 2e5 cells) keeps the logarithm finite as the tumour vanishes.
    proliferation = m.expression(
        "tumour_proliferation_rate",
        growth * sympy.log(capacity / (C + density * v_min)),
        "1/day",
        "Gompertz per-capita growth rate of the sensitive clone",
    )
    m.term(S, proliferation * S, "Gompertz growth")
    m.term(R, fit_res * proliferation * R, "Gompertz growth")
    m.term(X, fit_esc * proliferation * X, "Gompertz growth")
    m.flow("acquired taxane resistance", mutation * S, source=S, target=R)

    effectors = ref("t_eff") + pex_kill * ref("t_pex")
    # The floor keeps (E/C)^l differentiable when effectors vanish (or a solver overshoots below 0).
    ratio_floor = m.parameter("kill_ratio_floor", "1", "numerical floor of the effector:target ratio")
    ratio = sympy.Max(effectors / (C + density * v_min), ratio_floor)
    kill_per_cell = m.expression(
        "immune_kill_per_cell",
        kill_max
        * ratio**kill_l
        / (kill_s + ratio**kill_l)
        * (1 - pd1_inhib * ref("pd1_engaged"))
        * ref("effector_function"),
        "1/day",
        "T-cell kill rate per recognised tumour cell (blunted by PD-1 engagement and by Treg/myeloid suppression)",
    )
    kill_s_ = kill_per_cell * S
    kill_r_ = kill_per_cell * R
    kill_x_ = recog_esc * kill_per_cell * X
    m.expression("immune_kill_rate", kill_s_ + kill_r_ + kill_x_, "cell/day", "tumour cells killed by T cells per day")
    m.term(S, -kill_s_, "T-cell killing")
    m.term(R, -kill_r_, "T-cell killing")
    m.term(X, -kill_x_, "T-cell killing")

    shed = m.parameter(
        "antigen_shedding_rate", "1/day", "antigen shed by viable tumour cells (dead-cell equivalents per cell per day)"
    )
    clear = m.parameter("antigen_clearance_rate", "1/day", "clearance of antigen from the draining node")
    antigen_esc = m.parameter("escape_antigen_fraction", "1", "antigen of an escape cell relative to a sensitive cell")
    # antigen-equivalent tumour cells: escape cells carry less antigen
    content = m.expression(
        "tumour_antigen_cells", S + R + antigen_esc * X, "cell", "tumour cells weighted by their antigen content"
    )
    A = m.species(
        "antigen",
        "cell",
        "tumour antigen reaching the draining node (dead-cell equivalents)",
        initial=shed * cells0 * (1 - f_esc + antigen_esc * f_esc) / clear,
    )
    m.term(A, shed * content, "shedding by viable cells")
    m.term(A, kill_s_ + kill_r_ + antigen_esc * kill_x_, "release by immune killing")
    m.term(A, -clear * A, "clearance")
    return m
