"""In how much of the plausible parameter space does each press-release claim hold, and what drives it?

The claims file judges each claim on one typical patient per setting. Here every parameter that
describes the patient and the tumour biology (not the drug's design, not the setting's own levers)
is drawn within its bounds in ``models/`` (log-uniform where ``scale = "log"``), each arm a claim
compares is simulated at every point in every setting (``moa.sweep``), and each claim's verdict is
decided per point by the same rule and thresholds as ``results/claims.md`` (``moa.report.claims.point_claims()``).
For each claim and setting: the fraction of points where it holds, with a 95% Clopper-Pearson
interval, and the parameters that drive its margin: partial rank correlation (PRCC, 95% intervals,
on the 12 parameters most rank-correlated with the margin, Bonferroni over all) in quick mode, Sobol
total-order indices (Saltelli design, ``moa.sensitivity``) in full mode.

Quick: 64 Latin-hypercube points, 84 days (under a minute), drivers by PRCC. Full, in two stages, both
checkpointed in ``<results>/.sweeps/`` so a killed run resumes (about 5 minutes on two cores): 512
Latin-hypercube points over every varied parameter give the fractions and a rank-correlation screen; a
Saltelli design with N = 64 base samples over the SOBOL_PARAMETERS parameters the screen ranks highest (the
others at their default values) gives Sobol total-order indices of the margin's rank (the raw margin's heavy
tails swamp the estimator at this size), with bootstrap 95% intervals. A Saltelli design over all ~100 parameters
with N = 1,024 would take hours here (``benchmarks/sweep.py`` measures the 40-parameter case).
84 days is the day the claims compare volume inhibition; best change is taken over those 84 days
(two RECIST scans), not over the year of ``arms_settings``. Claim 8 (liver safety) needs dose
variants of the agonist and is not evaluated here.
"""

from __future__ import annotations

import pathlib
import textwrap

import numpy as np
import xarray as xr
from scipy import stats

from moa import sensitivity
from moa.analysis import partial_response_pct
from moa.parallel import available_cores
from moa.report import plots
from moa.report.claims import SETTING_LABELS, ArmOutcome, percent_interval, point_claims
from moa.report.results import save_dataset, with_status, write_text
from moa.scenarios import default_parameters, load_settings
from moa.report.summaries import ClaimsRobustnessSummary
from moa.sweep import SweepSpec, run_sweep
from moa.sweep.spec import default_distribution

DURATION_DAYS = 84.0
#: Quick: a Latin hypercube; PRCC needs more points than parameters (n - 1 - d degrees of freedom).
QUICK = {"sampling": "lhs", "n": 64, "seed": 2026}
#: Full, stage 1: the fractions and the screen, over every varied parameter.
FULL = {"sampling": "lhs", "n": 512, "seed": 2026}
#: Full, stage 2: the Saltelli design of moa.sensitivity (N base samples, N x (d + 2) points) over the
#: SOBOL_PARAMETERS parameters most rank-correlated with any claim's margin in stage 1.
FULL_SOBOL = {"sampling": "saltelli", "n": 64, "seed": 2027}
SOBOL_PARAMETERS = 10
SETTINGS = ("hot_tnbc", "cold", "pdl1_negative_tnbc")
POINT_CLAIMS = point_claims()  # with the thresholds of models/decisions.toml
ARMS = tuple(dict.fromkeys(a for c in POINT_CLAIMS for a in c.arms))
#: Points per chunk (one batched simulation and one checkpoint file).
CHUNK_SIZE = 128
#: Drivers listed per claim: the strongest significant ones (PRCC) or those whose total-order index is at
#: least MIN_TOTAL_ORDER (Sobol).
N_DRIVERS = 3
MIN_TOTAL_ORDER = 0.05
#: PRCC drivers must have p < SIGNIFICANCE / (number of parameters) (Bonferroni): with ~100 parameters and 128
#: points, an uncorrected 5% test names about five parameters per claim by chance.
SIGNIFICANCE = 0.05
#: Quick mode: PRCC of the margin on the SCREENED parameters with the largest rank correlation with it. A PRCC
#: on all ~100 parameters from 128 points is overfit (28 residual degrees of freedom: measured, coefficients of
#: +-0.6 for parameters whose rank correlation with the margin was 0.07-0.2).
SCREENED = 12

#: Not varied. Drug-design constants: the molecules' affinities, on-rates, valencies, avidity, agonist
#: efficacies and molecular weights are properties of the drug, not of the patient.
DRUG_DESIGN = (
    "kon_pdl1_apdl1",
    "kd_pdl1_apdl1",
    "kon_pdl1_bsab",
    "kd_pdl1_bsab",
    "valency_pdl1_bsab",
    "valency_cd137_bsab",
    "valency_pdl1_apdl1",
    "valency_cd137_a41bb",
    "kon_cd137_bsab",
    "kd_cd137_bsab",
    "kon_cd137_a41bb",
    "kd_cd137_a41bb",
    "chi_cis_pdl1",
    "chi_cis_cd137",
    "agonist_efficacy_a41bb",
    "cis_efficacy_bsab",
    "mw_apdl1",
    "mw_bsab",
    "mw_a41bb",
    "mw_paclitaxel",
)
#: Numerical floors and thresholds of the solver's model, not biology.
NUMERICAL = ("receptor_floor", "contact_floor", "kill_ratio_floor", "tumour_volume_floor", "clone_extinction_threshold")
#: Parameter files read only after the simulation (the liver-safety readout of claim 8, not evaluated here).
POST_HOC_FILES = ("safety",)


def varied_parameters() -> list[str]:
    """Every parameter with a range in models/ except drug-design constants, numerical floors, the
    liver readout and the setting levers (models/settings.toml: each claim compares settings)."""
    levers = {k for s in load_settings().values() for k in s.values}
    fixed = set(DRUG_DESIGN) | set(NUMERICAL) | levers
    return [
        name
        for name, spec in default_parameters().specs.items()
        if spec.lower < spec.upper and name not in fixed and pathlib.Path(spec.origin).stem not in POST_HOC_FILES
    ]


def sweep_specs(design: dict, names: list[str], stage: str = "") -> tuple[SweepSpec, SweepSpec]:
    """The main sweep (every arm a claim compares, every setting: best change and day-84 diameter) and the
    effector sweep (untreated and the 2:2 bispecific in the cold setting, daily effectors) over the same points
    of ``design`` (QUICK, FULL or FULL_SOBOL) in the parameters ``names``."""
    params = tuple(default_distribution(n) for n in names)
    common = dict(parameters=params, duration_days=DURATION_DAYS, chunk_size=CHUNK_SIZE, solver="auto", **design)
    main = SweepSpec(
        name=f"claims_robustness{stage}",
        arms=ARMS,
        settings=SETTINGS,
        observables=("tumour_diameter",),
        days=(DURATION_DAYS,),
        summaries=("best_change_pct",),
        **common,
    )
    effectors = SweepSpec(
        name=f"claims_robustness{stage}_effectors",
        arms=("untreated", "bsab_2x2"),
        settings=("cold",),
        observables=("t_eff",),
        days="all",
        summaries=(),
        **common,
    )
    return main.validate(), effectors.validate()


def outcomes(
    main: xr.Dataset, effectors: xr.Dataset
) -> tuple[dict[str, dict[str, ArmOutcome]], dict[str, dict[str, np.ndarray]]]:
    """``{setting: {arm: ArmOutcome}}`` over the points (the effector fold only for the bispecific in the
    cold setting), and ``{setting: {arm: failed}}``: whether a simulation behind the arm's outcome failed."""
    fold = (effectors["t_eff"].sel(arm="bsab_2x2") / effectors["t_eff"].sel(arm="untreated")).max("time", skipna=False)
    effectors_failed = (effectors["status"] != 0).any("arm").values
    out: dict[str, dict[str, ArmOutcome]] = {}
    failed: dict[str, dict[str, np.ndarray]] = {}
    for setting in SETTINGS:
        out[setting], failed[setting] = {}, {}
        for arm in ARMS:
            sel = main.sel(arm=arm, setting=setting)
            with_fold = setting == "cold" and arm == "bsab_2x2"
            out[setting][arm] = ArmOutcome(
                best=sel["best_change_pct"].values,
                d84=sel["tumour_diameter"].sel(time=DURATION_DAYS).values,
                t_eff_fold=fold.values if with_fold else None,
            )
            failed[setting][arm] = (sel["status"].values != 0) | (effectors_failed if with_fold else False)
    return out, failed


def verdicts(outcome: dict[str, dict[str, ArmOutcome]], failed_by_arm: dict[str, dict[str, np.ndarray]]) -> xr.Dataset:
    """Margin and verdict of each claim in each setting at every point (dim ``entry`` = ``claim|setting``)."""
    keys, margins, holds, failures = [], [], [], []
    for claim in POINT_CLAIMS:
        for setting in claim.settings:
            o = outcome[setting]
            with np.errstate(invalid="ignore", divide="ignore"):
                margin = np.asarray(claim.margin(o), dtype=float)
                held = np.asarray(claim.holds(o), dtype=float)
                tested = np.asarray(claim.tested(o), dtype=bool) if claim.tested else np.ones(margin.shape, bool)
            failed = np.logical_or.reduce([failed_by_arm[setting][arm] for arm in claim.arms])
            keys.append(f"{claim.key}|{setting}")
            margins.append(np.where(failed, np.nan, margin))
            holds.append(np.where(failed | ~tested | ~np.isfinite(margin), np.nan, held))
            failures.append(failed)
    return xr.Dataset(
        {
            "margin": (
                ("entry", "point"),
                np.array(margins),
                {"description": "the claim's margin (larger: the point favours the claim)"},
            ),
            "holds": (
                ("entry", "point"),
                np.array(holds),
                {
                    "units": "1",
                    "description": "1 holds, 0 does not, NaN undecided (not tested, no untreated tumour left) "
                    "or failed",
                },
            ),
            "failed": (("entry", "point"), np.array(failures), {"description": "a simulation the claim needs failed"}),
        },
        coords={"entry": keys, "point": np.arange(len(margins[0]))},
    )


def untreated_does_not_respond(main: xr.Dataset, setting: str) -> np.ndarray:
    """Per point, whether the untreated tumour in ``setting`` ran and stays above RECIST's partial-response
    threshold (best change): the points that resemble untreated metastatic TNBC, which rarely shrinks alone."""
    sel = main.sel(arm="untreated", setting=setting)
    return (sel["status"].values == 0) & (sel["best_change_pct"].values > partial_response_pct())


def untreated_partial_response(main: xr.Dataset) -> dict[str, float]:
    """Per setting, the fraction of the points that ran where the untreated tumour itself reaches a partial
    response (best change at or below RECIST's threshold): points where a drug's response cannot be told
    from the tumour's own course."""
    out = {}
    for setting in SETTINGS:
        sel = main.sel(arm="untreated", setting=setting)
        ran = sel["status"].values == 0
        if ran.any():  # a setting where no point ran is left out
            out[setting] = round(float(np.mean(sel["best_change_pct"].values[ran] <= partial_response_pct())), 4)
    return out


def untreated_response_drivers(main: xr.Dataset, names: list[str]) -> dict[str, list[str]]:
    """Per setting, the parameters most rank-correlated with the untreated tumour's best change over the
    points that ran (PRCC, significant after Bonferroni, as a claim's drivers in quick mode): which bounds let
    tumours shrink without treatment."""
    design = main["unit_design"].values
    out = {}
    for setting in SETTINGS:
        sel = main.sel(arm="untreated", setting=setting)
        best = np.where(sel["status"].values == 0, sel["best_change_pct"].values, np.nan)
        out[setting] = drivers(best, design, names, False, len(best))[1]
    return out


def drivers(
    margin: np.ndarray, design: np.ndarray, names: list[str], sobol: bool, n_base: int
) -> tuple[xr.Dataset, list[str]]:
    """The sensitivity of one claim's margin to the parameters, and its strongest drivers as text: PRCC on a
    Latin hypercube, or Sobol total order on a Saltelli design (``sobol``)."""
    if np.nanstd(margin) == 0 or np.sum(np.isfinite(margin)) < min(len(names), SCREENED) + 4:
        return None, []
    if not sobol:
        keep = _screened(margin, design)
        ds = sensitivity.prcc(design[:, keep], margin, names=[names[i] for i in keep])
        strong = ds.where(ds["p_value"] < SIGNIFICANCE / len(names), drop=True)  # Bonferroni over all parameters
        order = np.argsort(-np.abs(strong["prcc"].values))[:N_DRIVERS]
        return ds, [f"{strong['parameter'].values[i]} ({strong['prcc'].values[i]:+.2f})" for i in order]
    ds = sensitivity.sobol_indices(margin_ranks(margin), n_base, len(names), names=names)
    ds.attrs["output"] = "rank of the claim's margin among the design's points (scaled to 0-1)"
    order = [i for i in np.argsort(-np.nan_to_num(ds["ST"].values, nan=-1)) if ds["ST"].values[i] >= MIN_TOTAL_ORDER]
    st, low, high = ds["ST"].values, ds["ST_low"].values, ds["ST_high"].values
    return ds, [f"{ds['parameter'].values[i]} (ST {st[i]:.2f}, {low[i]:.2f}-{high[i]:.2f})" for i in order[:N_DRIVERS]]


def margin_ranks(margin: np.ndarray) -> np.ndarray:
    """The margin's ranks scaled to [0, 1] (NaN stays NaN). Sobol indices of the raw margin are dominated by
    its heavy tails at this design size (a Bliss excess near a vanishing untreated tumour gave total-order
    estimates of 5-40, measured on the full run); those of its rank answer what orders the points by margin
    and are bounded like the verdict itself."""
    out = np.full(margin.shape, np.nan)
    ok = np.isfinite(margin)
    if ok.sum() > 1:
        out[ok] = (stats.rankdata(margin[ok]) - 1) / (ok.sum() - 1)
    return out


def rank_correlations(margin: np.ndarray, design: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of ``margin`` with each column of ``design`` over the finite rows (NaN if undefined)."""
    ok = np.isfinite(margin)
    return np.array([abs(stats.spearmanr(design[ok, j], margin[ok])[0]) for j in range(design.shape[1])])


def _screened(margin: np.ndarray, design: np.ndarray) -> list[int]:
    """The SCREENED columns of ``design`` with the largest |Spearman correlation| with ``margin`` (finite rows)."""
    rho = rank_correlations(margin, design)
    return sorted(np.argsort(-np.nan_to_num(rho, nan=-1.0), kind="stable")[:SCREENED].tolist())


def sobol_candidates(table: xr.Dataset, design: np.ndarray, names: list[str]) -> list[str]:
    """The SOBOL_PARAMETERS parameters with the largest |Spearman correlation| with any claim's margin."""
    best = np.zeros(len(names))
    for entry in table["entry"].values:
        margin = table["margin"].sel(entry=entry).values
        ok = np.isfinite(margin)
        if ok.sum() < 4 or np.std(margin[ok]) == 0:
            continue
        best = np.maximum(best, np.nan_to_num(rank_correlations(margin, design), nan=0.0))
    return [names[i] for i in sorted(np.argsort(-best, kind="stable")[:SOBOL_PARAMETERS])]


def run_stage(design: dict, names: list[str], checkpoints: pathlib.Path | None, workers: int, stage: str = ""):
    """Both sweeps of one design; returns (main spec, main sweep, verdict table)."""
    main_spec, eff_spec = sweep_specs(design, names, stage)
    ds = run_sweep(main_spec, checkpoints / main_spec.name if checkpoints else None, workers=workers)
    eff = run_sweep(eff_spec, checkpoints / eff_spec.name if checkpoints else None, workers=workers)
    table = verdicts(*outcomes(ds, eff))
    table.attrs["effector_sweep_failed_points"] = eff.attrs["failed_points"]
    return main_spec, ds, table


def binomial_interval(k: int, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a fraction k/n."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    checkpoints = None if quick else out_dir.parent / ".sweeps"
    workers = 1 if quick else available_cores()
    names = varied_parameters()
    main_spec, ds, table = run_stage(QUICK if quick else FULL, names, checkpoints, workers)
    design = ds["unit_design"].values
    if not quick:  # stage 2: Sobol on the parameters the screen ranks highest
        sobol_names = sobol_candidates(table, design, names)
        _, sobol_ds, sobol_table = run_stage(FULL_SOBOL, sobol_names, checkpoints, workers, stage="_sobol")
    claims_by_key = {c.key: c for c in POINT_CLAIMS}
    summary_claims, sens = {}, {}
    for entry in table["entry"].values:
        key, setting = str(entry).split("|")
        claim = claims_by_key[key]
        held = table["holds"].sel(entry=entry).values
        failed = table["failed"].sel(entry=entry).values
        ok = np.isfinite(held)
        k, n = int(np.sum(held[ok] == 1)), int(np.sum(ok))
        low, high = binomial_interval(k, n) if n else (None, None)
        no_response = untreated_does_not_respond(ds, setting)
        k_nr, n_nr = int(np.sum(held[ok & no_response] == 1)), int(np.sum(ok & no_response))
        low_nr, high_nr = binomial_interval(k_nr, n_nr) if n_nr else (None, None)
        margin = table["margin"].sel(entry=entry).values
        if quick:
            sens_ds, top = drivers(margin, design, names, False, main_spec.n)
        else:
            sens_ds, top = drivers(
                sobol_table["margin"].sel(entry=entry).values,
                sobol_ds["unit_design"].values,
                sobol_names,
                True,
                FULL_SOBOL["n"],
            )
        if sens_ds is not None:
            sens[str(entry)] = sens_ds
        constant = n > 0 and np.nanmax(margin) == np.nanmin(margin)
        summary_claims[str(entry)] = {
            "section": claim.section,
            "title": claim.title,
            "setting": setting,
            "rule": claim.rule,
            "points": n,
            "failed_points": int(np.sum(failed)),
            "undecided_points": int(np.sum(~ok & ~failed)),
            "fraction_holds": round(k / n, 4) if n else None,
            "ci_low": round(low, 4) if n else None,
            "ci_high": round(high, 4) if n else None,
            "no_untreated_response": {
                "points": n_nr,
                "fraction_holds": round(k_nr / n_nr, 4) if n_nr else None,
                "ci_low": round(low_nr, 4) if n_nr else None,
                "ci_high": round(high_nr, 4) if n_nr else None,
            },
            "drivers": top,
            "by_construction": (
                "its margin is the same at every point: it does not depend on the varied parameters"
                if constant
                else None
            ),
            "margin": f"{claim.margin_label} [{claim.margin_unit}]",
        }

    method = "PRCC of the claim's margin" if quick else "Sobol total order of the rank of the claim's margin"
    table["parameter"] = ("parameter", names)
    table["unit_design"] = (("point", "parameter"), design)
    for name in names:
        table[name] = ds[name]
    table.attrs.update({k: v for k, v in ds.attrs.items() if k not in ("chunks_reused", "wall_seconds")})
    save_dataset(with_status(table, ds), out_dir, "claims_robustness", csv_variables=["margin", "holds"])
    save_dataset(ds, out_dir, "sweep", csv_variables=[])
    if sens:
        both = xr.concat(
            list(sens.values()),
            dim=xr.DataArray(list(sens), dims="entry", name="entry"),
            join="outer",
            combine_attrs="override",
        )
        both.attrs = {**table.attrs, **both.attrs, "driver_method": method}
        save_dataset(with_status(both), out_dir, "sensitivity", csv_variables=[])
    prov = {
        **ds.attrs,  # the points' parameters are drawn, not the defaults
        "parameter_set": f"{main_spec.sampling} design, {main_spec.n} points (seed {main_spec.seed}) within the "
        f"bounds in models/ of {len(names)} parameters; the others at their defaults",
        "overlays": ", ".join(SETTINGS) + " (each point in each setting)",
    }
    _figures(out_dir, summary_claims, sens, quick, main_spec, prov)
    lines = [
        "| claim | setting | rule | holds in (95% CI) | points | where the untreated tumour does not respond: "
        "holds in (95% CI) | points | undecided | failed | drivers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in summary_claims.values():
        subset = entry["no_untreated_response"]
        subset_frac = percent_interval(subset["fraction_holds"], subset["ci_low"], subset["ci_high"])
        frac = percent_interval(entry["fraction_holds"], entry["ci_low"], entry["ci_high"])
        lines.append(
            f"| {entry['section']}. {entry['title']} | {SETTING_LABELS.get(entry['setting'], entry['setting'])} | "
            f"{entry['rule']} | {frac} | {entry['points']} | {subset_frac} | {subset['points']} | "
            f"{entry['undecided_points']} | {entry['failed_points']} | "
            f"{', '.join(entry['drivers'])} |"
        )
    write_text(out_dir / "summary_table.md", "\n".join(lines) + "\n")
    sampling = f"{main_spec.sampling} (n={main_spec.n}, seed={main_spec.seed})"
    if not quick:
        sampling += (
            f"; drivers: saltelli (N={FULL_SOBOL['n']}, seed={FULL_SOBOL['seed']}) over the {len(sobol_names)} "
            "parameters most rank-correlated with a margin"
        )
    summary = {
        "untreated_partial_response": untreated_partial_response(ds),
        "untreated_response_drivers": untreated_response_drivers(ds, names),
        "sampling": sampling,
        "n_points": int(ds.sizes["point"]),
        "parameters": names,
        "duration_days": DURATION_DAYS,
        "driver_method": method,
        "claims": summary_claims,
        "figures": ["claims_robustness.png", "claims_drivers.png"],
    }
    return ClaimsRobustnessSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads


def _figures(out_dir, claims: dict, sens: dict, quick: bool, spec: SweepSpec, prov) -> None:
    entries = list(claims)
    with plots.style():
        fig, ax = plots.subplots(figsize=(12, 0.62 * len(entries) + 1.5))
        y = np.arange(len(entries))[::-1]
        frac = np.array(
            [np.nan if claims[e]["fraction_holds"] is None else 100 * claims[e]["fraction_holds"] for e in entries]
        )
        low = np.array([np.nan if claims[e]["ci_low"] is None else 100 * claims[e]["ci_low"] for e in entries])
        high = np.array([np.nan if claims[e]["ci_high"] is None else 100 * claims[e]["ci_high"] for e in entries])
        ax.barh(
            y,
            frac,
            color="#4c72b0",
            xerr=np.vstack([frac - low, high - frac]),
            error_kw={"capsize": 3},
            label="all points where the claim was tested (95% CI)",
        )
        labels = [
            textwrap.fill(
                f"{claims[e]['section']}. {claims[e]['title']} ({SETTING_LABELS.get(claims[e]['setting'], '')})", 52
            )
            for e in entries
        ]
        subset = np.array(
            [
                np.nan
                if (claims[e].get("no_untreated_response") or {}).get("fraction_holds") is None
                else 100 * claims[e]["no_untreated_response"]["fraction_holds"]
                for e in entries
            ]
        )
        if np.isfinite(subset).any():
            ax.plot(
                subset,
                y,
                "D",
                mfc="white",
                mec="#c44e52",
                mew=1.5,
                ms=6,
                ls="none",
                label="where the untreated tumour does not respond",
            )
            ax.legend(loc="lower right", fontsize=9)
        ax.set_yticks(y, labels=labels, fontsize=10)
        for yi, e, right in zip(y, entries, np.nan_to_num(np.fmax(high, subset), nan=0.0)):
            n = claims[e]["points"]
            held = "" if claims[e]["fraction_holds"] is None else f"{round(claims[e]['fraction_holds'] * n)} of "
            ax.text(right + 3, yi, f"{held}{n} tested", va="center", fontsize=9, color="0.3")
        ax.set_xlim(0, 100)
        ax.set_xlabel(plots.label("points where the verdict holds", "%"))
        plots.save_figure(
            fig,
            out_dir,
            "claims_robustness",
            f"Fraction of {spec.sampling} points of the plausible parameter space ({len(spec.parameters)} "
            f"parameters within their bounds in models/, {DURATION_DAYS:.0f} days) where each claim's verdict "
            "holds, by the rule and thresholds of results/claims.md, with 95% Clopper-Pearson intervals; open "
            "diamonds: the same over the points whose untreated tumour does not reach a partial response by day "
            f"{DURATION_DAYS:.0f} (untreated metastatic TNBC rarely shrinks by itself). Beside "
            "each bar: the points where it holds, of those where the claim was tested; undecided points (the "
            "claim is not tested there, e.g. claim 7 where the untreated tumour responds by itself) and failed "
            "points are left out.",
            prov,
        )
        shown = list(sens)
        if not shown:
            return
        cols = 3
        rows = int(np.ceil(len(shown) / cols))
        fig, axes = plots.subplots(rows, cols, figsize=(18, 3.4 * rows), squeeze=False)
        for ax, entry in zip(axes.ravel(), shown):
            ds = sens[entry]
            score = np.abs(ds["prcc"].values) if quick else np.nan_to_num(ds["ST"].values, nan=-1)
            top = ds.isel(parameter=np.argsort(-np.nan_to_num(score, nan=-1))[:8])
            (sensitivity.plot_tornado if quick else sensitivity.plot_sobol_bars)(ax, top)
            c = claims[entry]
            title = f"{c['section']}. {c['title']} ({SETTING_LABELS.get(c['setting'], c['setting'])})"
            ax.set_title(textwrap.fill(title, 52), fontsize=11)
            ax.tick_params(axis="y", labelsize=9)
        for ax in axes.ravel()[len(shown) :]:
            ax.set_visible(False)
        handles, names = axes.ravel()[0].get_legend_handles_labels()
        for ax in axes.ravel()[: len(shown)]:  # one legend for all panels, above them, so none hides a bar
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        if handles:
            fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(names), fontsize=12)
        plots.panel_letters(axes.ravel()[: len(shown)])
        what = (
            "PRCC with 95% intervals"
            if quick
            else "Sobol first- and total-order indices of the margin's rank, bootstrap 95% intervals"
        )
        plots.save_figure(
            fig,
            out_dir,
            "claims_drivers",
            f"What drives each claim's margin ({what}; the eight strongest per panel, of "
            + (
                f"{len(spec.parameters)} parameters"
                if quick
                else f"the {SOBOL_PARAMETERS} parameters a rank-correlation screen of stage 1 ranks highest, "
                "the others at their default values"
            )
            + "). The margin is larger where a point favours the claim "
            "(moa.report.claims.point_claims()).",
            prov,
        )
