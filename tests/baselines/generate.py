"""Regression baselines: every arm in every tumour setting for one year, as a committed CSV.

``python tests/baselines/generate.py --write`` rewrites ``tests/baselines/arms_settings.csv``
(27 one-year LSODA runs, :data:`BASELINE_SOLVER`); without ``--write`` it prints the table.
Regenerate only after a deliberate model change: the rows are what the model says, not targets.
``tests/test_scenarios.py`` recomputes the rows with the batched Rodas4 and compares them within
the tolerances stated in the CSV header; :mod:`moa.report.docgen` reads the table (through
:func:`moa.report.docgen.read_baseline_csv`) for the format comparison in ``docs/model.md``.
"""

from __future__ import annotations

import argparse
import csv
import io
import pathlib
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # run as a script: simulate with the checkout this file sits in
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from moa.analysis import recist  # noqa: E402
from moa.report.docgen import read_baseline_csv  # noqa: E402

__all__ = [
    "BASELINE_PATH",
    "BASELINE_SOLVER",
    "BASELINE_DAYS",
    "BASELINE_COLUMNS",
    "arm_setting_outcome",
    "outcome_row",
    "baseline_rows",
    "baselines_csv",
    "read_baselines",
    "main",
]

BASELINE_PATH = pathlib.Path(__file__).resolve().parent / "arms_settings.csv"
#: Solver settings of the regression baselines (tests/test_scenarios.py checks Rodas4 against them).
BASELINE_SOLVER = {"solver": "LSODA", "rtol": 1e-5, "atol": 1e-9}
#: Days at which the diameter is recorded, besides day 0.
BASELINE_DAYS = (84, 182, 365)
BASELINE_COLUMNS = (
    "arm",
    "setting",
    "status",
    "diameter_d0_mm",
    "diameter_d84_mm",
    "diameter_d182_mm",
    "diameter_d365_mm",
    "best_change_pct",
    "day_of_best",
)
#: How the CSV says it was made (tests/test_docs.py checks the committed header names it).
COMMAND = "python tests/baselines/generate.py --write"


def arm_setting_outcome(arm: str, setting: str, model=None):
    """One year of ``arm`` in ``setting``: (the simulated Dataset, the row of outcomes)."""
    import moa
    from moa.symbolic.named_models import full_model
    from moa.scenarios import scenario

    model = model or full_model()
    params, regimen = scenario(arm, setting, duration_days=365.0)
    ds = moa.simulate(
        model, params, regimen, duration_days=365.0, on_failure="record", start="quasi_steady", **BASELINE_SOLVER
    )
    return ds, outcome_row(arm, setting, ds)


def outcome_row(arm: str, setting: str, ds) -> dict:
    """The baseline row of one simulated year (an unbatched Dataset from ``moa.simulate``)."""
    d = ds["tumour_diameter"]
    rec = recist(d)  # the one best-change definition: scan-based, up to the first PD scan
    scans = rec["time"].values
    counted = scans <= (rec["progression_day"].item() if rec["progressed"].item() else scans[-1])
    at_scans = d.sel(time=scans).values
    best = int(np.nanargmin(np.where(counted, at_scans, np.nan)[1:])) + 1
    row = {"arm": arm, "setting": setting, "status": int(ds["status"]), "diameter_d0_mm": float(d.values[0])}
    for day in BASELINE_DAYS:
        row[f"diameter_d{day}_mm"] = float(d.sel(time=day).values)
    row["best_change_pct"], row["day_of_best"] = float(rec["best_percent_change"]), float(scans[best])
    return row


def baseline_rows() -> list[dict]:
    """Every arm in every setting (27 one-year runs)."""
    from moa.scenarios import ARM_ORDER, SETTING_ORDER

    return [arm_setting_outcome(a, s)[1] for a in ARM_ORDER for s in SETTING_ORDER]


def baselines_csv(rows: list[dict]) -> str:
    """The CSV text: a commented header (how it was made, the tolerances) and one row per arm and setting."""
    buf = io.StringIO()
    buf.write(
        "# Regression baselines: every arm (models/arms.toml) in every setting (models/settings.toml), one year.\n"
    )
    buf.write(f"# Made by: {COMMAND} (moa.simulate, {BASELINE_SOLVER}).\n")
    buf.write(
        "# Tolerances (tests/test_scenarios.py): diameters within 2% relative or 0.5 mm absolute; "
        "best change within 1 percentage point; status exactly.\n"
    )
    buf.write("# These are what the model says, not targets: regenerate only after a deliberate model change.\n")
    w = csv.DictWriter(buf, fieldnames=BASELINE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def read_baselines(path: pathlib.Path = BASELINE_PATH) -> list[dict]:
    """The committed rows (arm and setting as text, every other column as a float)."""
    return read_baseline_csv(path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/baselines/generate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {BASELINE_PATH.name} (27 one-year runs)")
    args = ap.parse_args(argv)
    text = baselines_csv(baseline_rows())
    if args.write:
        from moa.report.results import write_text

        write_text(BASELINE_PATH, text)
        print(f"wrote {BASELINE_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
