"""Build ``docs/gallery.md`` (and ``docs/claims.md``) from a full ``moa run all`` folder.

    python -m moa.report.gallery results/        # after: moa run all --out results

Copies every figure (PNG) into ``docs/figures/<experiment>/``, and writes the gallery: per
figure its caption (from the caption file the experiment wrote) and a short note on what to
read in it and what to distrust. The notes are about reading the figure; the numbers live in
the captions' data and in ``docs/claims.md``.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

from .results import write_text

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"  # the checkout's docs/ (not MOA_DATA_DIR)

NOTES = {
    "pk_occupancy": "Plasma concentration and systemic PD-L1 occupancy of the bispecific at three dose levels. The "
    "target-mediated sink makes the lowest dose clear faster; caveat: LBL-024 has no public PK, so "
    "these are atezolizumab-class values.",
    "diameter_by_setting": "One typical patient per setting, every arm, from a quasi-steady start, with "
    "taxane-resistant and immune-escape clones. Nothing is eradicated within the year: nab-paclitaxel arms shrink the "
    "lesion and then regrow from the resistant clone, the hot-TNBC bispecific relapses through the "
    "escape clone, and the cold and PD-L1-negative tumours grow under every antibody. Read the order "
    "and the timing of relapse; the patients are typical, not a population.",
    "best_response_heatmap": "Scan-based best change and RECIST best response per arm and setting. Only arms with "
    "nab-paclitaxel reach a partial response outside hot TNBC; in hot TNBC 4-1BB costimulation helps "
    "only together with PD-L1 blockade or chemotherapy. One patient per cell: the sweeps and the "
    "cold_levers experiment say how fragile each entry is.",
    "exhaustion_cold": "Cold tumour T-cell states. With low antigenicity little 4-1BB is induced, so neither the "
    "agonist nor the bispecific expands effectors much (peak about 1.2x); the dotted lines (no "
    "reinvigoration of Tex) lie on the solid ones. The costimulation gains and the induction are "
    "assumed parameters (see cold_levers).",
    "bell_in_vitro": "Exact contact-zone equilibrium: bridged 4-1BB per T cell against drug concentration. Bridging in "
    "a contact is 2D, so with dense PD-L1 it fills the contact's 4-1BB at sub-nM drug and the hook "
    "appears only above about 1e4 nM; with sparse PD-L1 the bridges are PD-L1-limited and 2:2 bridges "
    "more than 1:1 (two 4-1BB per anchored molecule).",
    "dose_in_vivo": "In the tumour, the 4-1BB signal rises from 0.2 to about 3 mg/kg (off-contact PD-L1 and "
    "the systemic sink take the drug first) and is flat above in the hot setting; in the cold one the 2:2 signal "
    "declines slowly above 1 mg/kg. The response follows the signal and PD-1 blockade.",
    "window": "The liver readout (area under the 4-1BB signal of liver myeloid cells over the first cycle) rises about "
    "5-fold from the agonist's tolerated 0.1 mg/kg to its hepatotoxic 1 mg/kg, with the calibrated threshold "
    "between; the bispecific stays far below it at every dose with the default unanchored signal, and the "
    "dotted lines show how it rises with cis_efficacy_bsab (a prediction, not a calibration). Liver receptor "
    "levels and exposure are assumed.",
    "chemo_diameter": "nab-paclitaxel with the bispecific, concurrent and after a one-cycle lead-in. In hot TNBC the "
    "combination goes deepest and concurrent dosing leaves fewer cells early; in cold and "
    "PD-L1-negative tumours the bispecific adds nothing visible to chemotherapy, and every arm "
    "regrows from the resistant clone.",
    "chemo_bliss": "Bliss excess on fractional inhibition (and on log kill). The interaction is near additive "
    "everywhere: in hot TNBC both drugs work and their effects multiply; elsewhere the bispecific "
    "alone does nothing to add.",
    "chemo_mechanism": "What chemotherapy does to T cells and antigen: it depletes proliferating effectors and Tpex "
    "while releasing antigen; the net effect on the bispecific is small in this model.",
    "sweeps_benefit": "Benefit of the 2:2 bispecific over anti-PD-L1 (log10 fewer tumour cells at day 168) across each "
    "parameter's bounds, cold and hot. In the cold background the benefit stays near zero across "
    "every lever swept alone; in hot TNBC it is positive and depends most on priming and "
    "antigenicity.",
    "sweeps_best_response": "Each arm's best diameter change across the same sweeps: where anti-PD-L1 itself starts to "
    "work, the bispecific's relative benefit shrinks.",
    "benefit_map": "PD-L1 density x infiltration on the cold background: the benefit stays within 0.002 log10 of "
    "zero over the whole map, so neither anchor density nor infiltration alone rescues the cold "
    "tumour in this model (antigen recognition limits 4-1BB induction).",
    "cold_levers": "The cold tumour with each of its levers set to the hot-TNBC value one at a time, all at once, "
    "and all but one. No single lever turns the 2:2 bispecific into a responder; all levers together "
    "do, and that response is lost if antigenicity stays cold. Lever values are assumed; this is a "
    "map of the model's structure, not a measurement.",
    "claims_robustness": "How often each claim's verdict holds across the plausible parameter space (bars, with "
    "intervals) and over the points whose untreated tumour does not shrink by itself (diamonds). Read the diamonds "
    "first: many sampled points regress untreated, which metastatic TNBC rarely does, and where bar and diamond "
    "differ the verdict leaned on those points. A fraction is of the points where the claim was tested (the count "
    "beside each bar), not of all points.",
    "claims_drivers": "Which parameters move each claim's margin (Sobol indices of its rank, full mode; PRCC in quick "
    "mode). Killing strength, effector death and tumour growth drive nearly every claim: the verdicts rest on "
    "the least measured parameters of the model, not on the drug's design constants, which are held fixed here.",
}


def build(results_dir: str | pathlib.Path, docs_dir: pathlib.Path = DOCS) -> pathlib.Path:
    """Write ``docs_dir/gallery.md`` from every figure and caption of a run in ``results_dir`` (figures
    copied to ``docs_dir/figures/``, the run's ``claims.md`` to ``docs_dir``); return the gallery's path."""
    results_dir = pathlib.Path(results_dir)
    pngs = sorted(p for p in results_dir.glob("*/*.png") if not p.parent.name.startswith("."))  # not hidden versions
    if not pngs:
        raise ValueError(f"{results_dir}: no figures; run `moa run all --out {results_dir}` first")
    lines = [
        "# Gallery",
        "",
        "Every figure of a full `moa run all`, with its caption and a note on how to read it. Regenerate with "
        "`moa run all --out results && python -m moa.report.gallery results`. The claims these figures test are in "
        "[claims.md](claims.md).",
        "",
    ]
    for experiment in sorted({p.parent.name for p in pngs}):
        lines += [f"## {experiment}", ""]
        for png in sorted(p for p in pngs if p.parent.name == experiment):
            target = docs_dir / "figures" / experiment / png.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, target)
            caption = (png.parent / f"{png.stem}.caption.md").read_text().splitlines()
            body = [ln for ln in caption[1:] if not ln.startswith("#")]
            lines += [
                f"### {png.stem}",
                "",
                f"![{png.stem}](figures/{experiment}/{png.name})",
                "",
                *[ln for ln in body if ln.strip()][:12],
                "",
            ]
            if png.stem in NOTES:
                lines += [f"**Reading it.** {NOTES[png.stem]}", ""]
    path = write_text(docs_dir / "gallery.md", "\n".join(lines))
    claims = results_dir / "claims.md"
    if claims.exists():
        write_text(docs_dir / "claims.md", claims.read_text())
    return path


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "results"))
