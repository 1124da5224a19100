"""The ``moa`` command (also ``python -m moa``): list and run the experiments.

    moa --version
    moa list [--experiments DIR]
    moa run NAME [NAME ...] | all  [--quick] [--out DIR] [--progress] [--experiments DIR]
    moa binding [--format 2x2|1x1] [--drug-nM C ...] [--pdl1-per-cell N] ...
    moa binding --threshold   (PD-L1 per cell at half-maximal bispecific 4-1BB signal, 2:2 and 1:1)
    moa sweep SPEC.toml [--out DIR] [--workers N | --scheduler ADDRESS] [--resume]

``moa run`` writes each experiment into ``DIR/<name>/`` (default ``results/``), all or nothing,
then ``DIR/index.md`` and ``DIR/index.html`` with every figure and its caption. Bad arguments
(an unknown experiment, an output folder that cannot be written) exit with status 2 before
anything is written; a failing experiment is reported, leaves no folder, and makes the exit
status 1 while the others still run. ``DIR/<name>`` is a link to a hidden version folder swapped
in atomically: a killed ``moa run`` leaves the previous folder visible, and the next run removes
the hidden leftovers of the killed one.

``--experiments DIR`` (a folder of your own experiment scripts) may come before or after the
subcommand. The shipped experiments and model files are found as :mod:`moa.paths` describes
(``MOA_DATA_DIR``, the checkout, or the installed package); when there are none, the command says
where it looked and exits with status 1. ``--progress`` shows a bar across experiments and, inside
each, one per simulation (``MOA_PROGRESS=1``, which :func:`moa.simulate` and
:func:`moa.parallel.simulate_parallel` read). Numbers given on the command line are checked before
anything runs, and a bad one is reported under its option's name (``--drug-nM``).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


#: Environment variable that turns on the progress bars of each simulation (set by ``moa run --progress``).
PROGRESS_ENV = "MOA_PROGRESS"

_EXPERIMENTS_HELP = "folder of your own experiment scripts (default: the shipped experiments; see moa.paths)"


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="moa", description="Mechanism-of-action experiments for PD-L1 x 4-1BB bispecifics."
    )
    parser.add_argument("--version", action="version", version=f"moa {__version__}")
    parser.add_argument("--experiments", type=pathlib.Path, default=None, metavar="DIR", help=_EXPERIMENTS_HELP)
    # the same option after the subcommand; SUPPRESS keeps a value given before it
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument(
        "--experiments", type=pathlib.Path, default=argparse.SUPPRESS, metavar="DIR", help=_EXPERIMENTS_HELP
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[after], help="list experiments and the question each answers")
    run = sub.add_parser("run", parents=[after], help="run experiments into DIR/<name>/ and write DIR/index.html")
    run.add_argument("names", nargs="+", metavar="NAME", help="experiment name(s), or 'all'")
    run.add_argument("--quick", action="store_true", help="short horizons and coarse grids (minutes, not hours)")
    run.add_argument(
        "--out", type=_folder, default=pathlib.Path("results"), metavar="DIR", help="results folder (default: results)"
    )
    run.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars across experiments and over each experiment's simulations (needs tqdm)",
    )
    b = sub.add_parser(
        "binding", help="in-vitro binding equilibrium of the bispecific with PD-L1+ cells and 4-1BB+ T cells"
    )
    b.add_argument("--format", choices=("2x2", "1x1"), default="2x2", help="bispecific format (default 2x2)")
    b.add_argument(
        "--drug-nM",
        type=_number(">= 0", "nM"),
        nargs="+",
        default=None,
        metavar="C",
        help="drug concentrations in nM (default: 1e-4 .. 1e4, 2 per decade)",
    )
    b.add_argument(
        "--pdl1-per-cell",
        type=_number(">= 0", "molecule/cell"),
        default=1e5,
        help="PD-L1 per PD-L1+ cell (default 1e5)",
    )
    b.add_argument(
        "--pdl1-cells-per-mL", type=_number(">= 0", "cell/mL"), default=1e6, help="PD-L1+ cells per mL (default 1e6)"
    )
    b.add_argument(
        "--cd137-per-cell",
        type=_number(">= 0", "molecule/cell"),
        default=None,
        help="4-1BB per T cell (default: models/ value)",
    )
    b.add_argument(
        "--cd137-cells-per-mL", type=_number(">= 0", "cell/mL"), default=1e6, help="T cells per mL (default 1e6)"
    )
    b.add_argument(
        "--kd-pdl1-nM", type=_number("> 0", "nM"), default=None, help="PD-L1 arm KD in nM (default: models/ value)"
    )
    b.add_argument(
        "--kd-cd137-nM", type=_number("> 0", "nM"), default=None, help="4-1BB arm KD in nM (default: models/ value)"
    )
    b.add_argument(
        "--threshold",
        action="store_true",
        help="print, for 2:2 and 1:1, the PD-L1 per cell at which the best 4-1BB signal (over drug concentration) "
        "is half its value at 1e6 PD-L1 per cell (1:1 co-culture, 1e6 cells/mL each)",
    )
    sw = sub.add_parser("sweep", help="run a sweep spec (docs/sweeps.md) into DIR, checkpointing each chunk")
    sw.add_argument(
        "spec", type=pathlib.Path, metavar="SPEC.toml", help="the sweep spec (see models/sweeps/example.toml)"
    )
    sw.add_argument(
        "--out",
        type=_folder,
        default=None,
        metavar="DIR",
        help="checkpoint and result folder (default: results/sweeps/<spec name>)",
    )
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_count, default=1, metavar="N", help="local worker processes (default 1)")
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a dask.distributed scheduler address (tcp://host:8786); needs the cluster extra",
    )
    sw.add_argument("--resume", action="store_true", help="continue a sweep in DIR, skipping the chunks it finished")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _count(text: str) -> int:
    """``--workers``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= 1")
    return value


def _number(allowed: str, unit: str):
    """An argparse ``type`` for a finite number ``>= 0`` or ``> 0`` in ``unit``; argparse puts the
    option's name in front of the refusal (``argument --drug-nM: ...``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (allowed == "> 0" and value == 0):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number {allowed} ({unit})")
        return value

    return parse


def _folder(text: str) -> pathlib.Path:
    """``--out`` as a path; an empty name is refused (``pathlib.Path("")`` would quietly mean ".")."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is an empty folder name; give a folder such as results, or . for the current one"
        )
    return pathlib.Path(text)


def _error(message: str) -> int:
    print(f"moa: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _prepare_out(out: pathlib.Path) -> pathlib.Path | None:
    """Create ``out`` if needed and check it can be written.

    Returns the topmost folder this call created (to remove again if nothing is written),
    or None. Raises OSError with a readable message; leaves nothing behind when it does.
    """
    out = out.absolute()
    first_new = None
    for candidate in [out, *out.parents]:
        if candidate.exists():
            break
        first_new = candidate
    if out.exists() and not out.is_dir():
        raise OSError(f"--out={out}: exists and is not a folder; choose a folder you can write to")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        if first_new is not None and first_new.exists():
            _remove_empty_tree(first_new)
        reason = exc.strerror or str(exc)
        raise OSError(f"--out={out}: cannot write there ({reason}); choose a folder you can write to") from None
    return first_new


def _remove_empty_tree(top: pathlib.Path) -> None:
    """Remove ``top`` and its sub-folders if they hold no files (never removes a file)."""
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
    try:
        top.rmdir()
    except OSError:
        pass


def _short(text: str, limit: int = 400) -> str:
    """One readable line: error messages that embed whole arrays are cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _list(experiments_dir: pathlib.Path | None) -> int:
    from .experiment_runner import EXPERIMENTS_DIR, discover

    found = discover(experiments_dir)
    if not found:
        print(f"no experiments in {experiments_dir or EXPERIMENTS_DIR}")
        return EXIT_OK
    width = max(len(e.name) for e in found)
    for e in found:
        print(f"{e.name:<{width}}  {e.question}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from .experiment_runner import find

    try:
        chosen = find(args.names, args.experiments)
    except ValueError as exc:
        return _error(str(exc))
    if args.progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _error("--progress needs tqdm: pip install 'moa[progress]'")
    try:
        created = _prepare_out(args.out)
    except OSError as exc:
        return _error(str(exc))
    saved_progress = os.environ.get(PROGRESS_ENV)
    if args.progress:
        os.environ[PROGRESS_ENV] = "1"  # each simulation's own bar; worker processes inherit it
    try:
        return _run_chosen(args, chosen, created, tqdm if args.progress else None)
    finally:
        if saved_progress is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = saved_progress


def _run_chosen(args: argparse.Namespace, chosen: list, created: pathlib.Path | None, tqdm) -> int:
    """Run ``chosen`` into ``args.out``, then write the index and claims (see the module docstring)."""
    from .experiment_runner import discover, run, write_index

    failures: list[tuple[str, str]] = []
    iterator = tqdm(chosen, desc="moa run", unit="experiment") if tqdm else chosen
    for experiment in iterator:
        if tqdm:
            iterator.set_postfix_str(experiment.name)
        started = time.perf_counter()
        try:
            run(experiment, args.out, quick=args.quick)
        except Exception as exc:  # one failing experiment must not stop the others
            reason = _short(f"{type(exc).__name__}: {exc}")
            failures.append((experiment.name, reason))
            where = "".join(traceback.TracebackException.from_exception(exc).stack.format())
            print(
                f"{experiment.name}: FAILED after {time.perf_counter() - started:.1f} s (no folder written)\n"
                f"{where}{reason}",
                file=sys.stderr,
            )
            continue
        print(f"{experiment.name}: ok in {time.perf_counter() - started:.1f} s -> {args.out / experiment.name}")

    if len(failures) == len(chosen) and created is not None:
        _remove_empty_tree(created)  # nothing was written: leave no empty results folder
    else:
        from .report.claims import write_claims

        claims = write_claims(args.out)
        index = write_index(args.out, discover(args.experiments))
        print(f"index: {index['html']}\nclaims: {claims}")
    if failures:
        print(
            f"{len(failures)} of {len(chosen)} experiment(s) failed: " + ", ".join(name for name, _ in failures),
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moa`` console script; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are files; never open a window
    args = _parser().parse_args(argv)
    if args.experiments is not None and not args.experiments.is_dir():
        return _error(f"--experiments={args.experiments}: not a folder")
    from .paths import DataNotFoundError

    try:
        if args.command == "list":
            return _list(args.experiments)
        if args.command == "binding":
            return _binding(args)
        if args.command == "sweep":
            return _sweep(args)
        return _run(args)
    except DataNotFoundError as exc:  # an install without its data: say where moa looked
        print(f"moa: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _sweep(args: argparse.Namespace) -> int:
    """``moa sweep``: validate the spec (exit 2 with the reason, nothing written), then run it into ``--out``."""
    from .sweep import SpecError, SweepDirError, load_spec, run_sweep

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        return _error(str(exc))
    out = args.out if args.out is not None else pathlib.Path("results") / "sweeps" / spec.name
    if args.resume and not (out / "manifest.json").exists():
        print(f"moa sweep: nothing to resume in {out}; starting the sweep", file=sys.stderr)
    progress = None
    if not args.no_progress:
        try:
            import tqdm  # noqa: F401 - the progress extra

            progress = True
        except ImportError:
            progress = None
    started = time.perf_counter()
    try:
        ds = run_sweep(
            spec,
            out,
            executor="dask" if args.scheduler else "local",
            scheduler=args.scheduler,
            workers=None if args.scheduler else args.workers,
            resume=args.resume,
            progress=progress,
        )
    except (SweepDirError, ImportError) as exc:  # another spec's folder; --scheduler without the cluster extra
        return _error(str(exc))
    failed = int(ds.attrs["failed_points"])
    total = int(ds["status"].size)
    print(
        f"sweep {spec.name}: {total} simulations ({ds.attrs['chunks']} chunks, {ds.attrs['chunks_reused']} reused) in "
        f"{time.perf_counter() - started:.1f} s; {failed} failed -> {out / 'sweep.nc'}"
    )
    return EXIT_OK


#: Internal names that reach ``moa binding``'s errors from the library, and the option each came from.
_BINDING_OPTIONS = {
    "kd_pdl1_nM": "--kd-pdl1-nM",
    "kd_pdl1_bsab": "--kd-pdl1-nM",
    "kd_cd137_nM": "--kd-cd137-nM",
    "kd_cd137_bsab": "--kd-cd137-nM",
    "pdl1_per_cell": "--pdl1-per-cell",
    "cd137_per_cell": "--cd137-per-cell",
    "pdl1_cells_per_mL": "--pdl1-cells-per-mL",
    "cd137_cells_per_mL": "--cd137-cells-per-mL",
    "bsab total": "--drug-nM",
}
#: Quantities computed from two options (receptor concentration = per cell x cells per mL).
_BINDING_DERIVED = {
    "pdl1_nM": ("--pdl1-per-cell", "--pdl1-cells-per-mL"),
    "cd137_nM": ("--cd137-per-cell", "--cd137-cells-per-mL"),
}


def in_option_terms(message: str) -> str:
    """A library error about ``moa binding``'s inputs, with each internal field named by its option
    (``kd_pdl1_nM=1e-300`` -> ``--kd-pdl1-nM=1e-300``); a derived quantity gets the options it came from."""
    for field, option in _BINDING_OPTIONS.items():
        message = re.sub(rf"(?:parameter )?'?(?<![\w-]){re.escape(field)}'?(?==)", option, message)
    derived = [options for field, options in _BINDING_DERIVED.items() if re.search(rf"(?<![\w-]){field}=", message)]
    return message + "".join(f" (from {' x '.join(options)})" for options in derived)


def _binding(args: argparse.Namespace) -> int:
    """Print the equilibrium table (CSV) for the chosen format and co-culture, or the PD-L1 threshold."""
    import numpy as np

    from .binding_equilibrium import clustering, contact_geometry, drug_binding, in_vitro, pdl1_threshold
    from .parameters import load_parameters
    from .scenarios import load_formats

    base = load_parameters()
    overrides = {
        k: v for k, v in (("kd_pdl1_bsab", args.kd_pdl1_nM), ("kd_cd137_bsab", args.kd_cd137_nM)) if v is not None
    }
    try:
        if overrides:
            with warnings.catch_warnings(record=True) as caught:  # said again in option terms
                warnings.simplefilter("always")
                base = base.with_values(overrides)
            for w in caught:
                print(f"moa: warning: {in_option_terms(str(w.message))}", file=sys.stderr)
        if args.threshold:
            rows = []
            for fmt in ("2x2", "1x1"):
                r = pdl1_threshold(base.with_values(load_formats()[f"bsab_{fmt}"].values))
                rows.append(f"{fmt},{r['threshold_pdl1_per_cell']:.4g},{r['signal_at_densest']:.4g}")
            print("format,threshold_pdl1_per_cell,signal_at_1e6_pdl1_per_cell")
            print("\n".join(rows))
            return EXIT_OK
        params = base.with_values(load_formats()[f"bsab_{args.format}"].values)
        conc = np.asarray(args.drug_nM if args.drug_nM else np.logspace(-4, 4, 17), dtype=float)
        cd137 = (
            args.cd137_per_cell
            if args.cd137_per_cell is not None
            else float(params.value_in("cd137_per_t_cell", "molecule/cell"))
        )
        eq = in_vitro(
            drug_binding(params, "bsab"),
            conc,
            args.pdl1_per_cell,
            args.pdl1_cells_per_mL,
            cd137,
            args.cd137_cells_per_mL,
            contact_geometry(params),
            clustering(params),
        )
    except ValueError as exc:
        return _error(in_option_terms(str(exc)))
    print("drug_nM,pdl1_free_nM,cd137_free_nM,bsab_free_nM,cd137_signal,ternary_cd137_nM,ternary_per_t_cell")
    for i, c in enumerate(conc):
        print(
            f"{c:.6g},{float(eq.pdl1_free[i]):.6g},{float(eq.cd137_free[i]):.6g},{float(eq.bsab_free[i]):.6g},"
            f"{float(eq.cd137_signal[i]):.6g},{float(eq.ternary_cd137[i]):.6g},{float(eq.ternary_per_cd137_cell[i]):.6g}"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
