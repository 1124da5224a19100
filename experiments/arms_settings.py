"""How does each arm change tumour size in hot TNBC, a cold tumour and PD-L1-negative TNBC?

Every arm of models/arms.toml in every setting of models/settings.toml, one year (quick: 24
weeks), default parameters. Writes the tumour diameter over time per setting, a heatmap of
the best change from baseline, a RECIST summary table and the data.
"""

from __future__ import annotations

import pathlib

import numpy as np

from moa.report import plots
from moa.analysis import recist
from moa.parameters import load_parameters
from moa.report.results import save_dataset, write_text
from moa.runs import run_arms
from moa.scenarios import ARM_ORDER, SETTING_ORDER, load_settings
from moa.report.summaries import ArmsSettingsSummary

#: Diameter (mm) of a one-cell tumour at the default cell density: figures floor their axes there.
ONE_CELL_MM = plots.one_cell_diameter_mm(float(load_parameters()["tumour_cell_density"]))


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    duration = 168.0 if quick else 365.0
    ds = run_arms(ARM_ORDER, SETTING_ORDER, duration)
    rec = recist(ds["tumour_diameter"])
    ds["best_response"] = rec["best_response"]
    ds["best_percent_change"] = rec["best_percent_change"]
    ds["progression_day"] = rec["progression_day"]
    save_dataset(
        ds, out_dir, "arms_settings", csv_variables=["tumour_diameter", "t_eff", "t_pex", "t_ex", "cd137_signal"]
    )

    settings = load_settings()
    prov = ds.attrs
    with plots.style():
        fig, axes = plots.subplots(1, len(SETTING_ORDER), figsize=(16, 5.2), sharey=True)
        for ax, setting in zip(axes, SETTING_ORDER):
            order = ARM_ORDER[1:] + ARM_ORDER[:1]  # untreated last and dashed: other arms may lie on it
            for arm, width in zip(order, plots.stacked_widths(len(order), step=0.6)):  # coinciding arms show as edges
                d = np.maximum(ds["tumour_diameter"].sel(arm=arm, setting=setting), ONE_CELL_MM)
                ax.plot(
                    ds.time,
                    d,
                    color=plots.arm_colour(arm),
                    label=plots.arm_label(arm),
                    lw=width,
                    ls="--" if arm == "untreated" else "-",
                )
            ax.set_title(settings[setting].label)
            ax.set_xlabel(plots.label("time since first dose", "day"))
            # the panels share their axis: floored at one cell only if some arm comes near it
            plots.log_axis_for_cells(ax, float(ds["tumour_diameter"].min()), ONE_CELL_MM, "below one cell")
        axes[0].set_ylabel(plots.label("tumour diameter", "mm"))
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=11)
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "diameter_by_setting",
            "Tumour diameter (sphere of the viable tumour volume; log axis, floored at the diameter of one "
            "cell when a tumour nears it) over time for every arm in each tumour setting, default parameters (one "
            "typical patient per setting, no variability); where arms "
            "coincide, the earlier-listed one shows as a wider coloured edge. "
            "Doses: models/arms.toml; settings: models/settings.toml.",
            prov,
        )

        best = ds["best_percent_change"].sel(arm=list(ARM_ORDER), setting=list(SETTING_ORDER))
        fig, ax = plots.subplots(figsize=(9, 7))
        limit = plots.symmetric_limit(best.values)  # fitted to the data, centred on no change
        im = ax.imshow(best.values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(SETTING_ORDER)), [settings[s].label for s in SETTING_ORDER], rotation=15)
        ax.set_yticks(range(len(ARM_ORDER)), [plots.arm_label(a) for a in ARM_ORDER])
        for i, arm in enumerate(ARM_ORDER):
            for j, setting in enumerate(SETTING_ORDER):
                v = float(best.sel(arm=arm, setting=setting))
                br = str(ds["best_response"].sel(arm=arm, setting=setting).values)
                ax.text(
                    j,
                    i,
                    f"{v:+.0f}%\n{br}",
                    ha="center",
                    va="center",
                    fontsize=10,
                    color=plots.text_colour_on(im.cmap(im.norm(v))),
                )
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=plots.label("best change in diameter from baseline", "%"))
        plots.save_figure(
            fig,
            out_dir,
            "best_response_heatmap",
            f"Best change of tumour diameter from baseline over {duration:.0f} days and RECIST 1.1 best "
            "response (6-weekly scans; models/recist.toml) for each arm and setting, default parameters.",
            prov,
        )

    lines = [
        "| arm | " + " | ".join(settings[s].label for s in SETTING_ORDER) + " |",
        "|---|" + "---|" * len(SETTING_ORDER),
    ]
    summary: dict = {
        "duration_days": duration,
        "best_percent_change": {},
        "best_response": {},
        "final_diameter_mm": {},
        "diameter_mm_day84": {},
    }
    for arm in ARM_ORDER:
        cells = []
        for s in SETTING_ORDER:
            v = float(ds["best_percent_change"].sel(arm=arm, setting=s))
            br = str(ds["best_response"].sel(arm=arm, setting=s).values)
            fin = float(ds["tumour_diameter"].sel(arm=arm, setting=s).isel(time=-1))
            cells.append(f"{br} ({v:+.0f}%, {fin:.1f} mm at day {duration:.0f})")
            summary["best_percent_change"].setdefault(arm, {})[s] = round(v, 2)
            summary["best_response"].setdefault(arm, {})[s] = br
            summary["final_diameter_mm"].setdefault(arm, {})[s] = round(fin, 3)
            summary["diameter_mm_day84"].setdefault(arm, {})[s] = round(
                float(ds["tumour_diameter"].sel(arm=arm, setting=s, time=84.0)), 3
            )
        lines.append(f"| {plots.arm_label(arm)} | " + " | ".join(cells) + " |")
    write_text(out_dir / "summary_table.md", "\n".join(lines) + "\n")
    failed = int((ds["status"] != 0).sum())
    summary["failed_runs"] = failed
    summary["figures"] = ["diameter_by_setting.png", "best_response_heatmap.png"]
    return ArmsSettingsSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
