"""CD8 T cells: priming, infiltration, the exhaustion hierarchy, 4-1BB costimulation, IFN-gamma.

States: primed tumour-specific cells outside the tumour (``t_primed``), and in the tumour
effectors (``t_eff``), progenitor-exhausted cells (``t_pex``, TCF1+, proliferate, answer
PD-1 blockade) and terminally exhausted cells (``t_ex``, TIM-3+, do not).

* Priming in the draining node grows with antigen (saturating) and antigenicity.
* Chronic antigen in the tumour (``antigen_signal = Ca / (Ca + K)``, Ca the antigen-weighted
  tumour cells, in which an immune-escape cell counts less than a sensitive one) drives
  effector -> Tpex -> Tex; PD-1 engagement speeds both steps.
* Tpex renew themselves and feed effectors; PD-1 engagement brakes that differentiation
  (this is what PD-(L)1 blockade releases).
* 4-1BB is induced: its expression on tumour CD8 T cells (``cd137_induction_cd8``, 0..1 of
  the antigen-engaged level) follows antigen recognition (``antigen_recognition`` =
  antigenicity x antigen signal) with the lag ``cd137_expression_lag`` and falls without it
  (CD137 appears 12-24 h after TCR stimulation, peaks at 2-3 days: Wolfl 2007 Blood;
  Vinay & Kwon 2011). Costimulation acting on CD8 cells (``cd137_costimulation``) is the
  binding mechanism's ``cd137_signal`` times that expression, so without antigen
  recognition 4-1BB agonism does nothing to them.
* 4-1BB costimulation raises proliferation of effectors and Tpex, lowers their death
  (Bcl-xL) and, by a swept factor, returns Tex to Tpex (reinvigoration; 0 means 4-1BB cannot
  reverse terminal exhaustion).
* Tregs and suppressive myeloid cells (:mod:`moa.mechanisms.suppression`) remove a fraction
  of effector proliferation and killing (``effector_function``).
* Proliferation is capped by a T-cell:tumour-cell ratio (antigen limit) and, with
  infiltration, braked as T cells approach a physical packing limit: T cells occupy the
  lesion (``lesion_volume`` = tumour volume + T cells / packing limit), so their density
  there (``t_cell_density``) stays below ``t_cell_packing_limit``. Without tumour there is no
  antigen signal (no proliferation) and no induced 4-1BB (no costimulated survival): T cells
  die off.
* Effectors that see antigen secrete IFN-gamma, which raises tumour PD-L1.
"""

from __future__ import annotations

from ..symbolic import Mechanism, ref

__all__ = ["t_cells"]


def t_cells() -> Mechanism:
    m = Mechanism("t_cells", "priming, infiltration, exhaustion, costimulation, IFN-gamma")
    C = ref("tumour_cells")
    signal_41bb = ref("cd137_signal")  # 1, from binding: signalling-weighted 4-1BB engagement
    pd1 = ref("pd1_engaged")

    prime_max = m.parameter("priming_rate_max", "cell/day", "maximal rate of priming of tumour-specific CD8 T cells")
    antigenicity = m.parameter(
        "antigenicity",
        "1",
        "immunogenicity of tumour antigen (scales priming and the antigen recognition that induces 4-1BB)",
    )
    antigen_half = m.parameter(
        "antigen_half_priming", "cell", "antigen (dead-cell equivalents) for half-maximal priming"
    )
    infiltration = m.parameter("infiltration_rate", "1/day", "rate at which primed cells enter the tumour")
    death_primed = m.parameter("death_rate_primed", "1/day", "death rate of primed cells outside the tumour")
    antigen_k = m.parameter("tumour_antigen_half", "cell", "tumour cells for half-maximal chronic antigen signal")
    prolif_eff = m.parameter("prolif_rate_eff", "1/day", "proliferation rate of effectors in the tumour")
    prolif_pex = m.parameter("prolif_rate_pex", "1/day", "self-renewal rate of progenitor-exhausted cells")
    ratio_max = m.parameter("t_cell_ratio_max", "1", "T cells per tumour cell at which proliferation halves")
    death_eff = m.parameter("death_rate_eff", "1/day", "death rate of effectors")
    death_pex = m.parameter("death_rate_pex", "1/day", "death rate of progenitor-exhausted cells")
    death_ex = m.parameter("death_rate_ex", "1/day", "death rate of terminally exhausted cells")
    k_exhaust = m.parameter("exhaustion_rate", "1/day", "effector -> Tpex rate under full antigen signal")
    k_terminal = m.parameter("terminal_exhaustion_rate", "1/day", "Tpex -> Tex rate under full antigen signal")
    pd1_boost = m.parameter(
        "pd1_exhaustion_boost", "1", "relative increase of exhaustion rates with full PD-1 engagement"
    )
    k_diff = m.parameter(
        "pex_differentiation_rate", "1/day", "Tpex -> effector differentiation rate without PD-1 signal"
    )
    pd1_brake = m.parameter(
        "pd1_differentiation_brake", "1", "fraction of Tpex differentiation blocked by full PD-1 engagement"
    )
    cd137_prolif = m.parameter(
        "cd137_prolif_gain", "1", "relative increase of proliferation at full 4-1BB costimulation"
    )
    cd137_surv = m.parameter("cd137_survival", "1", "fraction of T-cell death prevented at full 4-1BB costimulation")
    k_reinvig = m.parameter(
        "cd137_reinvigoration_rate", "1/day", "Tex -> Tpex rate at full 4-1BB costimulation (swept; 0 = none)"
    )
    cd137_lag = m.parameter(
        "cd137_expression_lag", "day", "time constant of 4-1BB induction by, and loss without, antigen recognition"
    )
    cd137_max = m.parameter("cd137_per_t_cell", "molecule/cell", "4-1BB on a tumour-infiltrating CD8 T cell")
    packing = m.parameter(
        "t_cell_packing_limit", "cell/mL", "largest density of T cells in a lesion (physical packing)"
    )
    v_min = m.parameter(
        "tumour_volume_floor", "mL", "volume floor so that densities stay finite as the tumour vanishes"
    )

    t_primed = m.species("t_primed", "cell", "primed tumour-specific CD8 T cells in node and blood")
    # initial T cells: a density per mL of tumour, split between the three states
    density0 = m.parameter("initial_t_cell_density", "cell/mL", "CD8 T cells per mL of tumour at the first dose")
    f_pex = m.parameter("initial_fraction_pex", "1", "fraction of initial tumour T cells that are Tpex")
    f_ex = m.parameter("initial_fraction_ex", "1", "fraction of initial tumour T cells that are Tex")
    t0 = density0 * ref("tumour_volume")
    t_eff = m.species("t_eff", "cell", "effector CD8 T cells in the tumour", initial=t0 * (1 - f_pex - f_ex))
    t_pex = m.species("t_pex", "cell", "progenitor-exhausted (TCF1+) CD8 T cells in the tumour", initial=t0 * f_pex)
    t_ex = m.species("t_ex", "cell", "terminally exhausted (TIM-3+) CD8 T cells in the tumour", initial=t0 * f_ex)

    total = m.expression("tumour_t_cells", t_eff + t_pex + t_ex, "cell", "CD8 T cells in the tumour")
    # escape-clone cells carry less antigen (moa.mechanisms.tumour: tumour_antigen_cells), so they
    # give less chronic signal and less TCR-driven 4-1BB induction than their number
    C_antigen = ref("tumour_antigen_cells")
    antigen_signal = m.expression(
        "antigen_signal",
        C_antigen / (C_antigen + antigen_k),
        "1",
        "chronic antigen signal in the tumour (0..1), from antigen-weighted tumour cells",
    )
    recognition = m.expression(
        "antigen_recognition",
        antigenicity * antigen_signal,
        "1",
        "TCR signal of tumour CD8 T cells: antigenicity x antigen signal (0..1)",
    )
    induced = m.species(
        "cd137_induction_cd8",
        "1",
        "4-1BB expression on tumour CD8 T cells, fraction of the antigen-engaged level",
        initial=antigenicity * C_antigen / (C_antigen + antigen_k),
    )
    m.term(induced, (recognition - induced) / cd137_lag, "induction by antigen recognition, loss without it")
    m.expression("cd137_per_cd8", cd137_max * induced, "molecule/cell", "mean 4-1BB on a tumour CD8 T cell (induced)")
    costim = m.expression(
        "cd137_costimulation",
        signal_41bb * induced,
        "1",
        "4-1BB costimulation acting on tumour CD8 T cells: signal x induced expression (0..1)",
    )

    # physical packing: T cells occupy the lesion, so their density there cannot pass the limit
    all_t_cells = total + ref("t_reg")
    lesion = m.expression(
        "lesion_volume",
        ref("tumour_volume") + all_t_cells / packing,
        "mL",
        "lesion volume: tumour cells plus T cells at their packing density",
    )
    t_density = m.expression(
        "t_cell_density", all_t_cells / (lesion + v_min), "cell/mL", "T cells (CD8 and Treg) per mL of lesion"
    )
    room = m.expression(
        "t_cell_packing_room",
        1 - t_density / packing,
        "1",
        "fraction of the packing limit still free (1 empty, 0 full)",
    )
    crowding = 1 / (1 + total / (ratio_max * C + antigen_k))
    # kill_rate_max and the T-cell rates were calibrated in hot TNBC, which has Tregs and myeloid
    # cells: suppression acts relative to the hot-TNBC reference densities
    left = (1 - ref("treg_suppression")) * (1 - ref("myeloid_suppression"))
    left_ref = (1 - ref("treg_suppression_reference")) * (1 - ref("myeloid_suppression_reference"))
    function = m.expression(
        "effector_function",
        left / left_ref,
        "1",
        "effector proliferation and killing left by Tregs and suppressive myeloid cells, relative to hot TNBC",
    )
    # the denominator of the killing law (moa.mechanisms.tumour): the cells of the volume floor keep
    # the ratio finite, and 0 with no effectors, when the tumour is gone
    floor_cells = ref("tumour_cell_density") * ref("tumour_volume_floor")
    m.expression(
        "effector_target_ratio",
        t_eff / (C + floor_cells),
        "1",
        "effector : tumour cell ratio, t_eff / (tumour_cells + tumour_cell_density * tumour_volume_floor)",
    )

    A = ref("antigen")
    m.term(t_primed, prime_max * antigenicity * A / (A + antigen_half), "priming in the draining node")
    m.flow("infiltration", infiltration * room * t_primed, source=t_primed, target=t_eff)
    m.term(t_primed, -death_primed * t_primed, "death")

    survival = 1 - cd137_surv * costim
    growth_gain = (1 + cd137_prolif * costim) * antigen_signal * crowding * room * function
    m.term(t_eff, prolif_eff * growth_gain * t_eff, "proliferation")
    m.term(t_pex, prolif_pex * growth_gain * t_pex, "self-renewal")
    m.term(t_eff, -death_eff * survival * t_eff, "death")
    m.term(t_pex, -death_pex * survival * t_pex, "death")
    m.term(t_ex, -death_ex * survival * t_ex, "death")
    exhaust = (1 + pd1_boost * pd1) * antigen_signal
    m.flow("exhaustion", k_exhaust * exhaust * t_eff, source=t_eff, target=t_pex)
    m.flow("terminal exhaustion", k_terminal * exhaust * t_pex, source=t_pex, target=t_ex)
    m.flow("Tpex differentiation", k_diff * (1 - pd1_brake * pd1) * t_pex, source=t_pex, target=t_eff)
    m.flow("4-1BB reinvigoration", k_reinvig * costim * t_ex, source=t_ex, target=t_pex)

    secretion = m.parameter("ifng_secretion", "nmol/cell/day", "IFN-gamma secretion by an effector seeing antigen")
    ifng_deg = m.parameter("ifng_degradation", "1/day", "IFN-gamma clearance")
    ml_per_l = m.conversion("mL_per_L", "mL/L")
    ifng_made = secretion * t_eff * antigen_signal / ref("tumour_interstitial_volume") * ml_per_l
    # IFN-gamma turns over in hours: start at its steady state
    ifng = m.species("ifng_tumour", "nM", "IFN-gamma in the tumour interstitium", initial=ifng_made / ifng_deg)
    m.term(ifng, ifng_made, "secretion by effectors")
    m.term(ifng, -ifng_deg * ifng, "clearance")

    return m
