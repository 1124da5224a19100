"""CD8 T cells: priming, infiltration, the exhaustion hierarchy, 4-1BB costimulation, IFN-gamma.

States: primed tumour-specific cells outside the tumour (``t_primed``), and in the tumour
effectors (``t_eff``), progenitor-exhausted cells (``t_pex``, TCF1+, proliferate, answer
PD-1 blockade) and terminally exhausted cells (``t_ex``, TIM-3+, do not).

* Priming in the draining node grows with antigen (saturating) and antigenicity.
* Chronic antigen in the tumour (``antigen_signal = C / (C + K)``) drives
  effector -> Tpex -> Tex; PD-1 engagement speeds both steps.
* Tpex renew themselves and feed effectors; PD-1 engagement brakes that differentiation
  (this is what PD-(L)1 blockade releases).
* 4-1BB costimulation (``cd137_signal``, 0..1) raises proliferation of effectors and Tpex,
  lowers their death (Bcl-xL) and, by a swept factor, returns Tex to Tpex
  (reinvigoration; 0 means 4-1BB cannot reverse terminal exhaustion).
* Proliferation is capped by a T-cell:tumour-cell ratio (space and antigen limits).
* Effectors that see antigen secrete IFN-gamma, which raises tumour PD-L1.
"""

from __future__ import annotations

from ..engine import Mechanism, ref

__all__ = ["t_cells"]


def t_cells() -> Mechanism:
    m = Mechanism("t_cells", "priming, infiltration, exhaustion, costimulation, IFN-gamma")
    C = ref("tumour_cells")
    signal_41bb = ref("cd137_signal")
    pd1 = ref("pd1_engaged")

    prime_max = m.parameter("priming_rate_max", "cell/day", "maximal rate of priming of tumour-specific CD8 T cells")
    antigenicity = m.parameter("antigenicity", "1", "immunogenicity of tumour antigen (scales priming)")
    antigen_half = m.parameter("antigen_half_priming", "cell", "antigen (dead-cell equivalents) for half-maximal priming")
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
    pd1_boost = m.parameter("pd1_exhaustion_boost", "1", "relative increase of exhaustion rates with full PD-1 engagement")
    k_diff = m.parameter("pex_differentiation_rate", "1/day", "Tpex -> effector differentiation rate without PD-1 signal")
    pd1_brake = m.parameter("pd1_differentiation_brake", "1", "fraction of Tpex differentiation blocked by full PD-1 engagement")
    cd137_prolif = m.parameter("cd137_prolif_gain", "1", "relative increase of proliferation at full 4-1BB costimulation")
    cd137_surv = m.parameter("cd137_survival", "1", "fraction of T-cell death prevented at full 4-1BB costimulation")
    k_reinvig = m.parameter("cd137_reinvigoration_rate", "1/day", "Tex -> Tpex rate at full 4-1BB costimulation (swept; 0 = none)")

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
    antigen_signal = m.expression("antigen_signal", C / (C + antigen_k), "1", "chronic antigen signal in the tumour (0..1)")
    crowding = 1 / (1 + total / (ratio_max * C + antigen_k))
    # the denominator of the killing law (moa.mechanisms.tumour): the cells of the volume floor keep
    # the ratio finite, and 0 with no effectors, when the tumour is gone
    floor_cells = ref("tumour_cell_density") * ref("tumour_volume_floor")
    m.expression("effector_target_ratio", t_eff / (C + floor_cells), "1",
                 "effector : tumour cell ratio, t_eff / (tumour_cells + tumour_cell_density * tumour_volume_floor)")

    A = ref("antigen")
    m.term(t_primed, prime_max * antigenicity * A / (A + antigen_half), "priming in the draining node")
    m.flow("infiltration", infiltration * t_primed, source=t_primed, target=t_eff)
    m.term(t_primed, -death_primed * t_primed, "death")

    survival = 1 - cd137_surv * signal_41bb
    growth_gain = (1 + cd137_prolif * signal_41bb) * antigen_signal * crowding
    m.term(t_eff, prolif_eff * growth_gain * t_eff, "proliferation")
    m.term(t_pex, prolif_pex * growth_gain * t_pex, "self-renewal")
    m.term(t_eff, -death_eff * survival * t_eff, "death")
    m.term(t_pex, -death_pex * survival * t_pex, "death")
    m.term(t_ex, -death_ex * survival * t_ex, "death")
    exhaust = (1 + pd1_boost * pd1) * antigen_signal
    m.flow("exhaustion", k_exhaust * exhaust * t_eff, source=t_eff, target=t_pex)
    m.flow("terminal exhaustion", k_terminal * exhaust * t_pex, source=t_pex, target=t_ex)
    m.flow("Tpex differentiation", k_diff * (1 - pd1_brake * pd1) * t_pex, source=t_pex, target=t_eff)
    m.flow("4-1BB reinvigoration", k_reinvig * signal_41bb * t_ex, source=t_ex, target=t_pex)

    secretion = m.parameter("ifng_secretion", "nmol/cell/day", "IFN-gamma secretion by an effector seeing antigen")
    ifng_deg = m.parameter("ifng_degradation", "1/day", "IFN-gamma clearance")
    ml_per_l = m.conversion("mL_per_L", "mL/L")
    ifng_made = secretion * t_eff * antigen_signal / ref("tumour_interstitial_volume") * ml_per_l
    # IFN-gamma turns over in hours: start at its steady state
    ifng = m.species("ifng_tumour", "nM", "IFN-gamma in the tumour interstitium", initial=ifng_made / ifng_deg)
    m.term(ifng, ifng_made, "secretion by effectors")
    m.term(ifng, -ifng_deg * ifng, "clearance")

    return m
