"""The catalogue of bad inputs: data the tests run and the source of ``docs/reliability.md``.

Each :class:`Case` is one refused input: a call into the library (``call(tmp)``) or a ``moa``
command line (``argv``), the error it must get (an exception type, or ``exit 2`` for the command)
and a fragment the message must contain. ``tests/test_bad_inputs.py`` runs every case in a fresh
folder and checks the refusal and that nothing was written there.

    python tests/bad_inputs.py --write-docs   # rewrite docs/reliability.md from the messages moa gives now
    python tests/bad_inputs.py --check        # exit 1 if docs/reliability.md is stale

The document shows the messages as they are when generated, with the run's folder written as
``<tmp>``, the repository as ``<repo>`` and memory addresses removed, so it is deterministic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: use this checkout's moa, not an installed one
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import moa  # noqa: E402
import moa.experiment_runner  # noqa: E402
import moa.parallel  # noqa: E402
import moa.report.plots  # noqa: E402
import moa.report.results  # noqa: E402
import moa.runs  # noqa: E402
import moa.scenarios  # noqa: E402
import moa.symbolic.units  # noqa: E402
from moa.parameters import MODELS_DIR, ParameterSet, ParameterSpec  # noqa: E402

DOC_PATH = ROOT / "docs" / "reliability.md"
EXIT_USAGE = "exit 2"


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input and the refusal it must get.

    ``call(tmp)`` runs the input against the library; ``argv`` runs ``moa`` with ``{tmp}`` replaced
    by the case's folder (the command runs with that folder as its working directory). ``setup``
    writes the files the case needs into the folder first.
    """

    id: str
    group: str
    input: str
    error: str  # exception class name, or EXIT_USAGE for the command
    says: str  # a fragment the message must contain
    call: Callable[[pathlib.Path], object] | None = None
    argv: Sequence[str] | None = None
    setup: Callable[[pathlib.Path], None] | None = None


@dataclasses.dataclass(frozen=True)
class Refusal:
    """What a case got: the error (class name or exit status) and the message, made deterministic."""

    error: str
    message: str


# ----- fixtures the cases share (built lazily: importing this module stays cheap) ------------------
def _defaults() -> ParameterSet:
    return moa.load_parameters()


def _pk():
    from moa.symbolic.named_models import pk_model

    return pk_model("bsab")


def _decay():
    m = moa.Mechanism("decay")
    x = m.species("x", "nM", "decaying species", initial=m.parameter("x0", "nM", "initial amount"))
    m.term(x, -m.parameter("k", "1/day", "decay rate") * x, "first-order decay")
    return moa.Model([m], name="decay")


DECAY_PARAMETERS = ParameterSet(
    {"x0": ParameterSpec("x0", 5.0, "nM", 0.0, 10.0, "test"), "k": ParameterSpec("k", 0.3, "1/day", 0.0, 1.0, "test")}
)


def _blow_up():
    """dx/dt = k x^2, x(0) = 1 nM: runs to infinity at t = 1/k day."""
    m = moa.Mechanism("autocatalysis")
    x = m.species("x", "nM", "autocatalytic species", initial=1.0)
    m.term(x, m.parameter("k", "1/(nM*day)", "autocatalytic rate") * x**2, "autocatalysis")
    return moa.Model([m], name="blow_up")


def _spec(**change) -> ParameterSpec:
    return ParameterSpec(**(dict(name="kd_test", value=1.0, unit="nM", lower=0.0, upper=10.0, source="test") | change))


def _dose(**change):
    return moa.Dose(**(dict(drug="bsab", amount=3.0, unit="mg/kg", time_days=0.0) | change))


def _q3w():
    return moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0)


def _simulate_pk(**kwargs):
    return moa.simulate(_pk(), _defaults(), _q3w(), **({"duration_days": 42.0} | kwargs))


def _simulate_decay(**kwargs):
    return moa.simulate(_decay(), DECAY_PARAMETERS, **kwargs)


def _rate_model(rate, label):
    """A model whose one rate term is ``rate(conc, cells, k_per_hour, k_per_day)``."""
    m = moa.Mechanism("rates")
    conc = m.species("conc", "nM", "a concentration")
    cells = m.species("tumour_cells", "cell", "a cell count")
    k_h = m.parameter("k_per_hour", "1/h", "a rate in per hour")
    k_d = m.parameter("k_per_day", "1/day", "a rate in per day")
    m.term(cells, -k_d * cells, "cell death")
    m.term(conc, rate(conc, cells, k_h, k_d), label)
    return moa.Model([m])


def _write(name: str, text: str | bytes) -> Callable[[pathlib.Path], None]:
    def setup(tmp: pathlib.Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)

    return setup


GOOD_PARAMETER = '[kd_test]\nvalue = 1.0\nunit = "nM"\nlower = 0.1\nupper = 10.0\nsource = "test"\n'


def _models_with(file: str, old: str | bytes, new: str | bytes) -> Callable[[pathlib.Path], None]:
    """A copy of ``models/`` in ``tmp/models`` with ``old`` replaced by ``new`` in ``file``."""

    def setup(tmp: pathlib.Path) -> None:
        shutil.copytree(MODELS_DIR, tmp / "models")
        path = tmp / "models" / file
        data = path.read_bytes()
        old_b, new_b = (s.encode() if isinstance(s, str) else s for s in (old, new))
        assert old_b in data, f"{file} no longer contains {old_b!r}; update the case"
        path.write_bytes(data.replace(old_b, new_b, 1))

    return setup


def _experiment_script(name: str, body: str) -> Callable[[pathlib.Path], None]:
    return _write(f"experiments/{name}.py", body)


GOOD_EXPERIMENT = '"""Does the good experiment run?"""\n\ndef main(out_dir, quick=False):\n    return {}\n'


def _run_experiment(tmp: pathlib.Path, name: str):
    from moa import experiment_runner

    (found,) = experiment_runner.find([name], tmp / "experiments")
    return experiment_runner.run(found, tmp / "results")


def _small_dataset():
    return _simulate_decay(times=[0.0, 1.0, 2.0])


def _figure():
    from moa.report import plots

    with plots.style():
        fig, ax = plots.subplots()
        ax.plot([0, 1], [0, 1])
    return fig


def _batched_decay(n_parameters: int, k_values: Sequence[float]):
    """A model with ``n_parameters`` extra swept rate constants (summing to zero) and a blow-up term."""
    m = moa.Mechanism("many")
    x = m.species("x", "nM", "autocatalytic species", initial=1.0)
    k = m.parameter("k", "1/(nM*day)", "autocatalytic rate")
    extra = [
        m.parameter(f"unused_rate_{i:02d}", "1/day", "a swept rate that multiplies zero") for i in range(n_parameters)
    ]
    m.term(x, k * x**2 + 0 * sum(extra) * x, "autocatalysis")
    specs = {"k": ParameterSpec("k", 0.0, "1/(nM*day)", 0.0, 10.0, "test")}
    specs |= {p.name: ParameterSpec(p.name, 0.0, "1/day", 0.0, 1.0, "test") for p in extra}
    values = {"k": np.asarray(k_values, dtype=float)} | {p.name: np.linspace(0, 1, len(k_values)) for p in extra}
    return moa.Model([m], name="many"), ParameterSet(specs, values, name="many swept")


# ----- the catalogue ---------------------------------------------------------------------------------
GROUPS = (
    "Parameters and units",
    "Parameter and scenario files",
    "Regimens and doses",
    "Simulate options",
    "Batches",
    "Command line: moa run / list",
    "Command line: moa binding",
    "Experiments and results",
)

P, F, R, S, B, C, BND, E = GROUPS

CASES: tuple[Case, ...] = (
    # --- parameters and units ---
    Case(
        "param-unknown-name",
        P,
        "simulate(..., overrides={'cl_bsb': 0.2})",
        "ValueError",
        "did you mean",
        lambda tmp: _simulate_pk(overrides={"cl_bsb": 0.2}),
    ),
    Case(
        "param-negative",
        P,
        "overrides={'cl_bsab': -1.0}",
        "ValueError",
        ">= 0",
        lambda tmp: _simulate_pk(overrides={"cl_bsab": -1.0}),
    ),
    Case(
        "param-nan",
        P,
        "overrides={'cl_bsab': nan}",
        "ValueError",
        "must be finite",
        lambda tmp: _simulate_pk(overrides={"cl_bsab": float("nan")}),
    ),
    Case(
        "param-inf",
        P,
        "overrides={'cl_bsab': inf}",
        "ValueError",
        "must be finite",
        lambda tmp: _simulate_pk(overrides={"cl_bsab": float("inf")}),
    ),
    Case(
        "param-array-negative",
        P,
        "overrides={'cl_bsab': [0.1, -0.2]}",
        "ValueError",
        ">= 0",
        lambda tmp: _simulate_pk(overrides={"cl_bsab": [0.1, -0.2]}),
    ),
    Case(
        "param-2d",
        P,
        "with_values({'cl_bsab': [[0.1, 0.2]]})",
        "ValueError",
        "1-D array",
        lambda tmp: _defaults().with_values({"cl_bsab": [[0.1, 0.2]]}),
    ),
    Case(
        "param-string",
        P,
        "with_values({'cl_bsab': 'fast'})",
        "ValueError",
        "could not convert",
        lambda tmp: _defaults().with_values({"cl_bsab": "fast"}),
    ),
    Case(
        "overlay-out-of-bounds-strict",
        P,
        "with_overlay('fast clearance', {'cl_bsab': 2 x upper bound}, strict=True)",
        "ValueError",
        "sweep bounds",
        lambda tmp: _defaults().with_overlay(
            "fast clearance", {"cl_bsab": _defaults().specs["cl_bsab"].upper * 2}, strict=True
        ),
    ),
    Case(
        "override-fraction-above-one",
        P,
        "overrides={'initial_fraction_ex': 5}",
        "ValueError",
        "physical domain 'fraction'",
        lambda tmp: _defaults().with_values({"initial_fraction_ex": 5.0}),
    ),
    Case(
        "override-body-weight-zero",
        P,
        "overrides={'body_weight': 0}",
        "ValueError",
        "physical domain 'positive'",
        lambda tmp: _simulate_pk(overrides={"body_weight": 0.0}),
    ),
    Case(
        "override-valency-below-one",
        P,
        "with_values({'valency_pdl1_bsab': 0.5})",
        "ValueError",
        "physical domain 'at_least_one'",
        lambda tmp: _defaults().with_values({"valency_pdl1_bsab": 0.5}),
    ),
    Case(
        "override-out-of-bounds-strict",
        P,
        "simulate(overrides={'cl_bsab': 2 x upper}, strict_bounds=True)",
        "ValueError",
        "sweep bounds",
        lambda tmp: _simulate_pk(overrides={"cl_bsab": 0.8}, strict_bounds=True),
    ),
    Case(
        "quantity-wrong-dimension",
        P,
        "with_values({'cl_bsab': Quantity(8.3, 'mg')})",
        "UnitError",
        "different dimensions",
        lambda tmp: _defaults().with_values({"cl_bsab": moa.symbolic.units.registry().Quantity(8.3, "mg")}),
    ),
    Case(
        "spec-domain-unknown",
        P,
        "ParameterSpec(domain='whole')",
        "ValueError",
        "allowed domains",
        lambda tmp: _spec(domain="whole"),
    ),
    Case(
        "spec-bounds-outside-domain",
        P,
        "ParameterSpec(domain='fraction', upper=2)",
        "ValueError",
        "fraction",
        lambda tmp: _spec(domain="fraction", value=0.5, lower=0.0, upper=2.0),
    ),
    Case(
        "spec-unit-unknown",
        P,
        "ParameterSpec(unit='furlongs_per_fortnight_squared')",
        "ValueError",
        "furlongs_per_fortnight_squared",
        lambda tmp: _spec(unit="furlongs_per_fortnight_squared"),
    ),
    Case(
        "spec-value-nan",
        P,
        "ParameterSpec(value=nan)",
        "ValueError",
        "value=nan",
        lambda tmp: _spec(value=float("nan")),
    ),
    Case(
        "spec-value-string",
        P,
        "ParameterSpec(value='1.0')",
        "ValueError",
        "must be a finite number",
        lambda tmp: _spec(value="1.0"),
    ),
    Case("spec-value-bool", P, "ParameterSpec(value=True)", "ValueError", "value=True", lambda tmp: _spec(value=True)),
    Case(
        "spec-source-empty",
        P,
        "ParameterSpec(source=' ')",
        "ValueError",
        "source is empty",
        lambda tmp: _spec(source=" "),
    ),
    Case(
        "spec-outside-bounds",
        P,
        "ParameterSpec(value=20, upper=10)",
        "ValueError",
        "value=20.0",
        lambda tmp: _spec(value=20.0),
    ),
    Case(
        "spec-scale-unknown",
        P,
        "ParameterSpec(scale='cubic')",
        "ValueError",
        "scale='cubic'",
        lambda tmp: _spec(scale="cubic"),
    ),
    Case(
        "spec-log-scale-zero-lower",
        P,
        "ParameterSpec(scale='log', lower=0)",
        "ValueError",
        "lower > 0",
        lambda tmp: _spec(scale="log"),
    ),
    Case(
        "unit-empty",
        P,
        "parse_unit('')",
        "UnitError",
        "non-empty string",
        lambda tmp: moa.symbolic.units.parse_unit(""),
    ),
    Case(
        "unit-with-number",
        P,
        "parse_unit('10 nM')",
        "UnitError",
        "unit='10 nM'",
        lambda tmp: moa.symbolic.units.parse_unit("10 nM"),
    ),
    Case(
        "species-unit-unknown",
        P,
        "Mechanism.species('tumour_volume', 'mL3')",
        "UnitError",
        "'mL3'",
        lambda tmp: moa.Mechanism("bad").species("tumour_volume", "mL3", "tumour volume"),
    ),
    Case(
        "term-hour-plus-day",
        P,
        "rate term -(k_per_hour + k_per_day) * conc",
        "UnitError",
        "conversion",
        lambda tmp: _rate_model(lambda c, n, kh, kd: -(kh + kd) * c, "mixed elimination"),
    ),
    Case(
        "term-wrong-time-unit",
        P,
        "rate term -k_per_hour * conc in a per-day model",
        "UnitError",
        "hourly elimination",
        lambda tmp: _rate_model(lambda c, n, kh, kd: -kh * c, "hourly elimination"),
    ),
    Case(
        "term-cells-plus-nM",
        P,
        "rate term -k_per_day * (conc + tumour_cells)",
        "UnitError",
        "cells plus drug",
        lambda tmp: _rate_model(lambda c, n, kh, kd: -kd * (c + n), "cells plus drug"),
    ),
    # --- parameter and scenario files ---
    Case(
        "file-invalid-toml",
        F,
        "parameter file with `value = = 1`",
        "ValueError",
        "not valid TOML",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", "[kd_test]\nvalue = = 1\n"),
    ),
    Case(
        "file-not-utf8",
        F,
        'parameter file in Latin-1 (`source = "Müller"`)',
        "ValueError",
        "not UTF-8",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", GOOD_PARAMETER.replace('"test"', '"M\u00fcller 2020"').encode("latin-1")),
    ),
    Case(
        "file-not-a-table",
        F,
        "parameter file with a top-level `kd_test = 1.0`",
        "ValueError",
        "must be a table",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", "kd_test = 1.0\n"),
    ),
    Case(
        "file-unknown-field",
        F,
        "parameter table with `valu = 2`",
        "ValueError",
        "unknown field(s) ['valu']",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", GOOD_PARAMETER + "valu = 2\n"),
    ),
    Case(
        "file-missing-field",
        F,
        "parameter table without `source`",
        "ValueError",
        "missing field(s) ['source']",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", GOOD_PARAMETER.replace('source = "test"\n', "")),
    ),
    Case(
        "file-duplicate-parameter",
        F,
        "the same parameter in two files",
        "ValueError",
        "more than one file",
        lambda tmp: moa.load_parameters([tmp / "a.toml", tmp / "b.toml"]),
        setup=lambda tmp: (_write("a.toml", GOOD_PARAMETER)(tmp), _write("b.toml", GOOD_PARAMETER)(tmp)),
    ),
    Case(
        "file-bad-value-in-file",
        F,
        "parameter file with `value = 20.0` above `upper = 10.0`",
        "ValueError",
        "p.toml",
        lambda tmp: moa.parameters.load_parameter_file(tmp / "p.toml"),
        setup=_write("p.toml", GOOD_PARAMETER.replace("value = 1.0", "value = 20.0")),
    ),
    Case(
        "arms-unit-typo",
        F,
        'arms.toml: a dose with `unit = "mg/kgg"`',
        "ValueError",
        "arms.toml: arm",
        lambda tmp: moa.scenarios.load_arms(tmp / "models"),
        setup=_models_with("arms.toml", '"mg/kg"', '"mg/kgg"'),
    ),
    Case(
        "arms-unknown-format",
        F,
        'arms.toml: `format = "bsab_3x3"`',
        "ValueError",
        "allowed formats",
        lambda tmp: moa.scenarios.load_arms(tmp / "models"),
        setup=_models_with("arms.toml", '"bsab_2x2"', '"bsab_3x3"'),
    ),
    Case(
        "arms-not-utf8",
        F,
        "arms.toml saved in Latin-1",
        "ValueError",
        "arms.toml: not UTF-8",
        lambda tmp: moa.scenarios.load_arms(tmp / "models"),
        setup=_models_with("arms.toml", b"\n", "\n# \u00e9\n".encode("latin-1")),
    ),
    Case(
        "settings-unknown-parameter",
        F,
        "settings.toml: a value for `tumour_growth_rte`",
        "ValueError",
        "unknown parameter",
        lambda tmp: moa.scenarios.load_settings(tmp / "models"),
        setup=_models_with(
            "settings.toml",
            "[hot_tnbc.values]\n",
            '[hot_tnbc.values]\ntumour_growth_rte = { value = 0.1, unit = "1/day", source = "x" }\n',
        ),
    ),
    Case(
        "settings-unit-other-dimension",
        F,
        "settings.toml: `cl_bsab` given in `mg`",
        "ValueError",
        "different dimensions",
        lambda tmp: moa.scenarios.load_settings(tmp / "models"),
        setup=_models_with(
            "settings.toml",
            "[hot_tnbc.values]\n",
            '[hot_tnbc.values]\ncl_bsab = { value = 0.01, unit = "mg", source = "x" }\n',
        ),
    ),
    Case(
        "settings-no-source",
        F,
        'settings.toml: `cl_bsab = { value = 0.2, unit = "L/day" }`',
        "ValueError",
        "source = ...",
        lambda tmp: moa.scenarios.load_settings(tmp / "models"),
        setup=_models_with(
            "settings.toml", "[hot_tnbc.values]\n", '[hot_tnbc.values]\ncl_bsab = { value = 0.2, unit = "L/day" }\n'
        ),
    ),
    Case(
        "regimen-table-unknown-field",
        F,
        "regimen table dose with `every = 21`",
        "ValueError",
        "unknown field(s) ['every']",
        lambda tmp: moa.regimen.regimen_from_table(
            "q3w", {"dose": [{"drug": "bsab", "amount": 3, "unit": "mg/kg", "every": 21}]}, 42.0
        ),
    ),
    Case(
        "regimen-table-missing-amount",
        F,
        "regimen table dose without `amount`",
        "ValueError",
        "missing field 'amount'",
        lambda tmp: moa.regimen.regimen_from_table("q3w", {"dose": [{"drug": "bsab", "unit": "mg/kg"}]}, 42.0),
    ),
    Case(
        "regimen-table-dose-not-list",
        F,
        "regimen table with `dose = 3`",
        "ValueError",
        "must be a list",
        lambda tmp: moa.regimen.regimen_from_table("q3w", {"dose": 3}, 42.0),
    ),
    # --- regimens and doses ---
    Case(
        "dose-unit-concentration", R, "Dose(unit='mg/L')", "ValueError", "unit='mg/L'", lambda tmp: _dose(unit="mg/L")
    ),
    Case(
        "dose-unit-rate",
        R,
        "Dose(unit='mg/kg/day')",
        "ValueError",
        "allowed units",
        lambda tmp: _dose(unit="mg/kg/day"),
    ),
    Case("dose-route-oral", R, "Dose(route='oral')", "ValueError", "route='oral'", lambda tmp: _dose(route="oral")),
    Case(
        "dose-infusion-no-duration",
        R,
        "Dose(route='infusion') without duration",
        "ValueError",
        "duration_days=0.0",
        lambda tmp: _dose(route="infusion"),
    ),
    Case(
        "dose-bolus-with-duration",
        R,
        "Dose(route='bolus', duration_days=1)",
        "ValueError",
        "use route='infusion'",
        lambda tmp: _dose(duration_days=1.0),
    ),
    Case("dose-amount-negative", R, "Dose(amount=-3)", "ValueError", "amount=-3.0", lambda tmp: _dose(amount=-3.0)),
    Case("dose-amount-inf", R, "Dose(amount=inf)", "ValueError", "amount=inf", lambda tmp: _dose(amount=float("inf"))),
    Case("dose-amount-string", R, "Dose(amount='3')", "ValueError", "amount='3'", lambda tmp: _dose(amount="3")),
    Case("dose-amount-bool", R, "Dose(amount=True)", "ValueError", "amount=True", lambda tmp: _dose(amount=True)),
    Case(
        "dose-time-negative", R, "Dose(time_days=-1)", "ValueError", "time_days=-1.0", lambda tmp: _dose(time_days=-1.0)
    ),
    Case("dose-drug-empty", R, "Dose(drug='')", "ValueError", "drug=''", lambda tmp: _dose(drug="")),
    Case(
        "dose-per-kg-no-weight",
        R,
        "Dose(unit='mg/kg').amount_mg({})",
        "ValueError",
        "body_weight",
        lambda tmp: _dose().amount_mg({}),
    ),
    Case(
        "every-interval-zero",
        R,
        "every(interval_days=0)",
        "ValueError",
        "interval_days=0.0",
        lambda tmp: moa.every("bsab", 1.0, "mg", 0.0, 10.0),
    ),
    Case(
        "every-interval-nan",
        R,
        "every(interval_days=nan)",
        "ValueError",
        "interval_days=nan",
        lambda tmp: moa.every("bsab", 1.0, "mg", float("nan"), 10.0),
    ),
    Case(
        "every-until-before-start",
        R,
        "every(until_days=0)",
        "ValueError",
        "until_days=0.0",
        lambda tmp: moa.every("bsab", 1.0, "mg", 7.0, 0.0),
    ),
    Case(
        "cycles-day-outside-cycle",
        R,
        "cycles(days=(1, 30), cycle_days=28)",
        "ValueError",
        "days=[1, 30]",
        lambda tmp: moa.cycles("bsab", 1.0, "mg", (1, 30), 28.0, 2),
    ),
    Case(
        "cycles-zero",
        R,
        "cycles(n_cycles=0)",
        "ValueError",
        "n_cycles=0",
        lambda tmp: moa.cycles("bsab", 1.0, "mg", (1,), 28.0, 0),
    ),
    Case(
        "cycles-float-count",
        R,
        "cycles(n_cycles=2.0)",
        "ValueError",
        "n_cycles=2.0",
        lambda tmp: moa.cycles("bsab", 1.0, "mg", (1,), 28.0, 2.0),
    ),
    Case(
        "regimen-empty",
        R,
        "simulate(regimen=Regimen('x'))",
        "ValueError",
        "regimen=None",
        lambda tmp: moa.simulate(_pk(), _defaults(), moa.Regimen("x"), duration_days=10.0),
    ),
    Case(
        "regimen-wrong-drug",
        R,
        "simulate(pk_model('bsab'), regimen of apdl1)",
        "ValueError",
        "allowed drugs: ['bsab']",
        lambda tmp: moa.simulate(_pk(), _defaults(), moa.every("apdl1", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0),
    ),
    Case(
        "every-until-string",
        R,
        "every(until_days='42')",
        "ValueError",
        "until_days='42'",
        lambda tmp: moa.every("bsab", 1.0, "mg", 21.0, "42"),
    ),
    Case(
        "every-start-negative",
        R,
        "every(start_days=-7)",
        "ValueError",
        "start_days=-7",
        lambda tmp: moa.every("bsab", 1.0, "mg", 21.0, 42.0, start_days=-7.0),
    ),
    Case(
        "cycles-length-string",
        R,
        "cycles(cycle_days='28')",
        "ValueError",
        "cycle_days='28'",
        lambda tmp: moa.cycles("bsab", 1.0, "mg", (1,), "28", 2),
    ),
    Case(
        "every-too-many-doses",
        R,
        "every(interval_days=1e-6, until_days=365)",
        "ValueError",
        "MAX_DOSES",
        lambda tmp: moa.every("bsab", 1.0, "mg", 1e-6, 365.0),
    ),
    Case(
        "regimen-all-doses-after-end",
        R,
        "simulate(one dose at day 500, duration_days=42)",
        "ValueError",
        "no dose",
        lambda tmp: moa.simulate(
            _pk(), _defaults(), moa.every("bsab", 3.0, "mg/kg", 21.0, 521.0, start_days=500.0), duration_days=42.0
        ),
    ),
    Case(
        "regimen-not-a-regimen",
        R,
        "simulate(regimen={'bsab': 3})",
        "ValueError",
        "regimen=dict",
        lambda tmp: moa.simulate(_pk(), _defaults(), {"bsab": 3}, duration_days=42.0),
    ),
    # --- simulate options ---
    Case(
        "times-backwards",
        S,
        "times=[0, 2, 1]",
        "ValueError",
        "index 2 (2.0 -> 1.0)",
        lambda tmp: _simulate_decay(times=[0.0, 2.0, 1.0]),
    ),
    Case(
        "times-repeat",
        S,
        "times=[0, 1, 1]",
        "ValueError",
        "repeats",
        lambda tmp: _simulate_decay(times=[0.0, 1.0, 1.0]),
    ),
    Case(
        "times-negative",
        S,
        "times=[-1, 0, 1]",
        "ValueError",
        "times[0]=-1.0",
        lambda tmp: _simulate_decay(times=[-1.0, 0.0, 1.0]),
    ),
    Case(
        "times-nan",
        S,
        "times=[0, nan]",
        "ValueError",
        "non-finite",
        lambda tmp: _simulate_decay(times=[0.0, float("nan")]),
    ),
    Case("times-empty", S, "times=[]", "ValueError", "non-empty", lambda tmp: _simulate_decay(times=[])),
    Case("times-2d", S, "times=[[0, 1]]", "ValueError", "1-D", lambda tmp: _simulate_decay(times=[[0.0, 1.0]])),
    Case(
        "duration-missing",
        S,
        "neither duration_days nor times",
        "ValueError",
        "duration_days or times",
        lambda tmp: _simulate_decay(),
    ),
    Case(
        "duration-zero",
        S,
        "duration_days=0",
        "ValueError",
        "duration_days=0",
        lambda tmp: _simulate_decay(duration_days=0),
    ),
    Case(
        "duration-string",
        S,
        "duration_days='365'",
        "ValueError",
        "duration_days='365'",
        lambda tmp: _simulate_decay(duration_days="365"),
    ),
    Case(
        "duration-disagrees",
        S,
        "duration_days=5 with times ending at 2",
        "ValueError",
        "disagrees",
        lambda tmp: _simulate_decay(duration_days=5.0, times=[0.0, 2.0]),
    ),
    Case(
        "rtol-loose", S, "rtol=0.5", "ValueError", "rtol=0.5", lambda tmp: _simulate_decay(duration_days=1.0, rtol=0.5)
    ),
    Case(
        "rtol-tight",
        S,
        "rtol=1e-15",
        "ValueError",
        "1e-13 .. 0.1",
        lambda tmp: _simulate_decay(duration_days=1.0, rtol=1e-15),
    ),
    Case("rtol-zero", S, "rtol=0", "ValueError", "rtol=0.0", lambda tmp: _simulate_decay(duration_days=1.0, rtol=0.0)),
    Case(
        "rtol-string",
        S,
        "rtol='1e-6'",
        "ValueError",
        "rtol='1e-6'",
        lambda tmp: _simulate_decay(duration_days=1.0, rtol="1e-6"),
    ),
    Case(
        "atol-negative",
        S,
        "atol=-1e-9",
        "ValueError",
        "atol=-1e-09",
        lambda tmp: _simulate_decay(duration_days=1.0, atol=-1e-9),
    ),
    Case(
        "solver-unknown",
        S,
        "solver='Euler'",
        "ValueError",
        "solver='Euler'",
        lambda tmp: _simulate_decay(duration_days=1.0, solver="Euler"),
    ),
    Case(
        "on-failure-unknown",
        S,
        "on_failure='ignore'",
        "ValueError",
        "on_failure='ignore'",
        lambda tmp: _simulate_decay(duration_days=1.0, on_failure="ignore"),
    ),
    Case(
        "pre-equilibrate-negative",
        S,
        "pre_equilibrate_days=-1",
        "ValueError",
        "pre_equilibrate_days=-1.0",
        lambda tmp: _simulate_decay(duration_days=1.0, pre_equilibrate_days=-1.0),
    ),
    Case(
        "model-not-a-model",
        S,
        "simulate(model='full_model')",
        "ValueError",
        "model=str",
        lambda tmp: moa.simulate("full_model", DECAY_PARAMETERS, duration_days=1.0),
    ),
    Case(
        "parameters-a-dict",
        S,
        "simulate(parameters={'k': 0.3})",
        "ValueError",
        "parameters=dict",
        lambda tmp: moa.simulate(_decay(), {"k": 0.3}, duration_days=1.0),
    ),
    Case(
        "stop-when-not-a-function",
        S,
        "simulate(..., stop_when=3)",
        "ValueError",
        "stop_when=3: must be a function",
        lambda tmp: moa.simulate(_decay(), DECAY_PARAMETERS, duration_days=1.0, stop_when=3),
    ),
    Case(
        "solver-blows-up",
        S,
        "dx/dt = x^2 (solution infinite at t = 1 day), on_failure='raise'",
        "SimulationError",
        "parameter set 0 of 1",
        lambda tmp: moa.simulate(
            _blow_up(),
            ParameterSet({"k": ParameterSpec("k", 1.0, "1/(nM*day)", 0.0, 10.0, "test")}),
            duration_days=5.0,
            solver="LSODA",
        ),
    ),
    Case(
        "scenario-unknown-arm",
        S,
        "scenario('bsab_3x3', 'cold')",
        "ValueError",
        "allowed arms",
        lambda tmp: moa.scenarios.scenario("bsab_3x3", "cold"),
    ),
    Case(
        "scenario-unknown-setting",
        S,
        "scenario('bsab_2x2', 'warm')",
        "ValueError",
        "allowed settings",
        lambda tmp: moa.scenarios.scenario("bsab_2x2", "warm"),
    ),
    Case(
        "scenario-duration-zero",
        S,
        "scenario('bsab_2x2', 'cold', duration_days=0)",
        "ValueError",
        "duration_days=0",
        lambda tmp: moa.scenarios.scenario("bsab_2x2", "cold", duration_days=0),
    ),
    Case(
        "scenario-duration-string",
        S,
        "scenario('bsab_2x2', 'cold', duration_days='365')",
        "ValueError",
        "duration_days='365'",
        lambda tmp: moa.scenarios.scenario("bsab_2x2", "cold", duration_days="365"),
    ),
    # --- batches ---
    Case(
        "batch-lengths-differ",
        B,
        "with_values({'cl_bsab': 2 values, 'kd_pdl1_bsab': 3 values})",
        "ValueError",
        "length 2: cl_bsab; length 3: kd_pdl1_bsab",
        lambda tmp: _defaults().with_values({"cl_bsab": [0.1, 0.2], "kd_pdl1_bsab": [1.0, 2.0, 3.0]}),
    ),
    Case(
        "batch-many-failures-short",
        B,
        "40 swept parameters, 3 of 4 sets blow up, on_failure='raise'",
        "SimulationError",
        "2 other set(s) of 4 failed too",
        lambda tmp: moa.simulate(*_batched_decay(40, [0.0, 1.0, 2.0, 3.0]), duration_days=5.0, solver="LSODA"),
    ),
    Case(
        "stack-none",
        B,
        "stack_parameter_sets([])",
        "ValueError",
        "need at least one",
        lambda tmp: moa.runs.stack_parameter_sets([]),
    ),
    Case(
        "stack-batched",
        B,
        "stack_parameter_sets([a batched set])",
        "ValueError",
        "unbatched sets only",
        lambda tmp: moa.runs.stack_parameter_sets([_defaults().with_values({"cl_bsab": [0.1, 0.2]})]),
    ),
    Case(
        "points-unknown-parameter",
        B,
        "run_points(values={'cl_bsb': [...]})",
        "ValueError",
        "'cl_bsb' is unknown",
        lambda tmp: moa.runs.run_points("bsab_2x2", "cold", {"cl_bsb": [0.1, 0.2]}, 21.0),
    ),
    Case(
        "points-lengths-differ",
        B,
        "run_points(values of lengths 2 and 3)",
        "ValueError",
        "one non-zero length",
        lambda tmp: moa.runs.run_points(
            "bsab_2x2", "cold", {"cl_bsab": [0.1, 0.2], "kd_pdl1_bsab": [1.0, 2.0, 3.0]}, 21.0
        ),
    ),
    Case(
        "sweep-unknown-parameter",
        B,
        "sweep(parameter='cl_bsb')",
        "ValueError",
        "parameter='cl_bsb'",
        lambda tmp: moa.runs.sweep("bsab_2x2", "cold", "cl_bsb", [0.1, 0.2], 21.0),
    ),
    Case(
        "parallel-unbatched",
        B,
        "simulate_parallel with an unbatched set",
        "ValueError",
        "batched ParameterSet",
        lambda tmp: moa.parallel.simulate_parallel("full_model", _defaults(), None, duration_days=21.0),
    ),
    Case(
        "parallel-workers-zero",
        B,
        "simulate_parallel(workers=0)",
        "ValueError",
        "workers=0",
        lambda tmp: moa.parallel.simulate_parallel(
            "full_model", _defaults().with_values({"cl_bsab": [0.1, 0.2]}), None, duration_days=21.0, workers=0
        ),
    ),
    Case(
        "parallel-builder-typo",
        B,
        "simulate_parallel('full_modle', ...)",
        "ValueError",
        "no builder 'full_modle'",
        lambda tmp: moa.parallel.resolve_builder("full_modle"),
    ),
    Case(
        "parallel-builder-module",
        B,
        "simulate_parallel('no_such_module:f', ...)",
        "ValueError",
        "cannot import",
        lambda tmp: moa.parallel.resolve_builder("no_such_module:f"),
    ),
    # --- command line: moa run / list ---
    Case(
        "cli-run-unknown",
        C,
        "moa --experiments experiments run good no_such_experiment --out results",
        EXIT_USAGE,
        "no_such_experiment",
        argv=["--experiments", "{tmp}/experiments", "run", "good", "no_such_experiment", "--out", "results"],
        setup=_experiment_script("good", GOOD_EXPERIMENT),
    ),
    Case(
        "cli-run-all-unknown",
        C,
        "moa --experiments experiments run all nosuch --out results",
        EXIT_USAGE,
        "['nosuch']",
        argv=["--experiments", "{tmp}/experiments", "run", "all", "nosuch", "--out", "results"],
        setup=_experiment_script("good", GOOD_EXPERIMENT),
    ),
    Case("cli-run-no-name", C, "moa run --quick", EXIT_USAGE, "NAME", argv=["run", "--quick"]),
    Case(
        "cli-out-empty",
        C,
        "moa run pk_occupancy --out ''",
        EXIT_USAGE,
        "empty folder name",
        argv=["run", "pk_occupancy", "--quick", "--out", ""],
    ),
    Case(
        "cli-out-under-file",
        C,
        "moa run pk_occupancy --out a_file/results",
        EXIT_USAGE,
        "cannot write there",
        argv=["run", "pk_occupancy", "--quick", "--out", "{tmp}/a_file/results"],
        setup=_write("a_file", "not a folder"),
    ),
    Case(
        "cli-out-is-file",
        C,
        "moa run pk_occupancy --out a_file",
        EXIT_USAGE,
        "not a folder",
        argv=["run", "pk_occupancy", "--quick", "--out", "{tmp}/a_file"],
        setup=_write("a_file", "not a folder"),
    ),
    Case(
        "cli-experiments-missing",
        C,
        "moa --experiments no_such_folder list",
        EXIT_USAGE,
        "not a folder",
        argv=["--experiments", "{tmp}/no_such_folder", "list"],
    ),
    Case("cli-command-unknown", C, "moa simulate", EXIT_USAGE, "invalid choice", argv=["simulate"]),
    Case("cli-no-command", C, "moa", EXIT_USAGE, "required", argv=[]),
    # --- command line: moa binding ---
    Case(
        "binding-receptors-negative",
        BND,
        "moa binding --pdl1-per-cell -5",
        EXIT_USAGE,
        "argument --pdl1-per-cell",
        argv=["binding", "--pdl1-per-cell", "-5"],
    ),
    Case(
        "binding-kd-tiny",
        BND,
        "moa binding --kd-pdl1-nM 1e-300",
        EXIT_USAGE,
        "--kd-pdl1-nM=1e-300",
        argv=["binding", "--kd-pdl1-nM", "1e-300"],
    ),
    Case(
        "binding-kd-huge",
        BND,
        "moa binding --kd-cd137-nM 1e300",
        EXIT_USAGE,
        "--kd-cd137-nM=1e+300",
        argv=["binding", "--kd-cd137-nM", "1e300"],
    ),
    Case(
        "binding-kd-zero",
        BND,
        "moa binding --kd-pdl1-nM 0",
        EXIT_USAGE,
        "argument --kd-pdl1-nM",
        argv=["binding", "--kd-pdl1-nM", "0"],
    ),
    Case(
        "binding-kd-nan",
        BND,
        "moa binding --kd-cd137-nM nan",
        EXIT_USAGE,
        "argument --kd-cd137-nM",
        argv=["binding", "--kd-cd137-nM", "nan"],
    ),
    Case(
        "binding-drug-negative",
        BND,
        "moa binding --drug-nM -1",
        EXIT_USAGE,
        "argument --drug-nM",
        argv=["binding", "--drug-nM", "-1"],
    ),
    Case(
        "binding-drug-not-number",
        BND,
        "moa binding --drug-nM ten",
        EXIT_USAGE,
        "argument --drug-nM",
        argv=["binding", "--drug-nM", "ten"],
    ),
    Case(
        "binding-format-unknown",
        BND,
        "moa binding --format 3x3",
        EXIT_USAGE,
        "invalid choice",
        argv=["binding", "--format", "3x3"],
    ),
    Case(
        "binding-cells-inf",
        BND,
        "moa binding --cd137-cells-per-mL inf",
        EXIT_USAGE,
        "argument --cd137-cells-per-mL",
        argv=["binding", "--cd137-cells-per-mL", "inf"],
    ),
    # --- experiments and results ---
    Case(
        "find-none",
        E,
        "experiment_runner.find([])",
        "ValueError",
        "none given",
        lambda tmp: moa.experiment_runner.find([]),
    ),
    Case(
        "experiment-no-main",
        E,
        "an experiment script without main()",
        "ImportError",
        "has no main",
        lambda tmp: _run_experiment(tmp, "nomain"),
        setup=_experiment_script("nomain", '"""Is there a main?"""\n'),
    ),
    Case(
        "experiment-returns-list",
        E,
        "an experiment whose main() writes a file, then returns a list",
        "TypeError",
        "expected a dict",
        lambda tmp: _run_experiment(tmp, "listy"),
        setup=lambda tmp: (
            (tmp / "results").mkdir(),
            _experiment_script(
                "listy",
                '"""Does it return a dict?"""\n\ndef main(out_dir, quick=False):\n'
                '    (out_dir / "partial.csv").write_text("a,b")\n    return [1, 2]\n',
            )(tmp),
        ),
    ),
    Case(
        "save-unknown-variable",
        E,
        "save_dataset(csv_variables=['x', 'no_such_variable'])",
        "ValueError",
        "no_such_variable",
        lambda tmp: moa.report.results.save_dataset(
            _small_dataset(), tmp, "decay", csv_variables=["x", "no_such_variable"]
        ),
    ),
    Case(
        "figure-empty-caption",
        E,
        "save_figure(caption='  ')",
        "ValueError",
        "caption",
        lambda tmp: moa.report.plots.save_figure(_figure(), tmp, "demo", "  "),
    ),
    Case(
        "figure-unit-missing",
        E,
        "plots.label('time', None)",
        "ValueError",
        "unit=None",
        lambda tmp: moa.report.plots.label("time", None),
    ),
)

FAULTS_HEADER = ("Fault", "What survives", "Shown by")
#: Faults and what survives them, each with the test that shows it.
FAULTS: tuple[tuple[str, str, str], ...] = (
    (
        "an experiment raises during `moa run`",
        "exit status 1; no folder for it (built under a staging name, moved into place only on success); "
        "the other experiments still run and the index lists them",
        "tests/test_cli.py::test_failing_experiment_leaves_no_folder_and_others_still_run",
    ),
    (
        "every chosen experiment fails",
        "exit status 1 and no results folder at all",
        "tests/test_cli.py::test_only_failures_leave_no_results_folder",
    ),
    (
        "`moa run` killed (SIGKILL or SIGTERM) mid-experiment or mid-swap",
        "`<out>/<name>` is a link to a hidden version folder, swapped in by one rename: the old or the new "
        "complete folder is visible at every instant; the next run removes the dead run's staging folders (their pid "
        "is gone)",
        "tests/test_cli.py::test_sigkill_during_moa_run_keeps_the_old_folder_and_the_rerun_cleans_up, "
        "tests/test_results.py::test_a_kill_at_any_instant_of_the_swap_leaves_a_complete_folder_and_the_next_run_cleans_up",
    ),
    (
        "a figure write fails half-way (`OSError: disk full` on the SVG)",
        "neither the PNG nor a temporary is left",
        "tests/test_plots.py::test_save_figure_failing_half_way_leaves_no_files",
    ),
    (
        "the NetCDF writer fails inside `save_dataset`",
        "no file and no temporary is left",
        "tests/test_results.py::test_failure_inside_netcdf_writer_leaves_no_files",
    ),
    (
        "full disk during `moa run`",
        "the experiment fails like any other (exit 1); its files are written to temporaries and renamed, so "
        "no half-written file and no new folder appear; the previous folder stays",
        "tests/test_plots.py::test_save_figure_failing_half_way_leaves_no_files, "
        "tests/test_cli.py::test_failing_experiment_leaves_no_folder_and_others_still_run",
    ),
    (
        "compiled cache damaged: truncated numba cache file (.nbi or .nbc)",
        "CacheWarning names the file; it is removed and the kernels compiled again; the compiled backend is "
        "used and results equal a clean cache",
        "tests/test_jit_cache.py::test_truncated_numba_cache_file_is_removed_and_compiled_again",
    ),
    (
        "compiled cache damaged: truncated generated module",
        "its content does not hash to its name: CacheWarning names it, it is written again and compiled; "
        "results equal a clean cache",
        "tests/test_jit_cache.py::test_truncated_module_is_written_again",
    ),
    (
        "compiled cache damaged: hand-edited generated module",
        "detected by the sha256 in its file name before it runs; written again; results equal a clean cache",
        "tests/test_jit_cache.py::test_hand_edited_module_is_detected_and_written_again",
    ),
    (
        "compiled cache damaged: empty, garbage or foreign index file",
        "CacheWarning names it; it is rebuilt; the compiled backend is used",
        "tests/test_jit_cache.py::test_empty_or_garbage_index_is_rebuilt, "
        "tests/test_jit_cache.py::test_index_naming_another_models_module_is_rebuilt",
    ),
    (
        "compiled cache on a full disk or an unwritable folder",
        "compiled in a temporary folder (still compiled) with a CacheWarning naming the folder and the fix; "
        "the next run uses the cache folder again",
        "tests/test_jit_cache.py::test_full_disk_compiles_in_a_temporary_folder_then_heals, "
        "tests/test_jit_cache.py::test_unusable_cache_folder_falls_back_with_a_warning",
    ),
    (
        "one sweep point the solver cannot integrate",
        "the sweep finishes; that point is marked failed with its reason; the others equal an unperturbed run; "
        "the summary counts the failures and the figure draws the rest and marks the failed point",
        "tests/test_sweep_failures.py",
    ),
    (
        "a worker chunk raises in `simulate_parallel`",
        "with on_failure='record' its samples get status 4, NaN states and the exception in `message`; the "
        "other chunks are kept",
        "tests/test_parallel.py::test_failed_chunk_is_recorded_per_sample",
    ),
    (
        "a worker process dies (killed) in `simulate_parallel`",
        "lost chunks rerun in a new pool, then each alone; only the chunk whose lone worker dies is marked "
        "failed (with the signal); every other sample equals a single-process run exactly",
        "tests/test_parallel.py::test_a_worker_killed_by_one_chunk_fails_only_that_chunk, "
        "tests/test_parallel.py::test_a_chunk_whose_worker_dies_once_is_retried_and_succeeds",
    ),
)


# ----- running a case ---------------------------------------------------------------------------------
def _clean(text: str, tmp: pathlib.Path) -> str:
    """The message without run-specific parts: the folder, the repository path, memory addresses."""
    for folder, name in ((tmp.resolve(), "<tmp>"), (tmp, "<tmp>"), (ROOT, "<repo>")):
        text = text.replace(str(folder), name)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    return " ".join(text.split())


def refuse(case: Case, tmp: pathlib.Path) -> Refusal:
    """Run ``case`` in the (empty, prepared) folder ``tmp``; return what it got.

    Raises AssertionError if the input was accepted.
    """
    if case.argv is not None:
        from moa.cli import main

        argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
        err = io.StringIO()
        with contextlib.chdir(tmp), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse refuses by exiting
                code = exc.code
        if code == 0:
            raise AssertionError(f"{case.id}: `moa {' '.join(argv)}` was accepted")
        lines = [line for line in err.getvalue().splitlines() if "error:" in line] or err.getvalue().splitlines()[-1:]
        return Refusal(f"exit {code}", _clean(" ".join(lines), tmp))
    try:
        with contextlib.chdir(tmp), np.errstate(all="ignore"):
            case.call(tmp)
    except Exception as exc:  # noqa: BLE001 -- the catalogue records whatever the library raises
        return Refusal(type(exc).__name__, _clean(str(exc), tmp))
    raise AssertionError(f"{case.id}: {case.input} was accepted")


def files_under(folder: pathlib.Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def prepare(case: Case, tmp: pathlib.Path) -> set[str]:
    """Write the case's fixture files into ``tmp``; return what is there before the bad input."""
    if case.setup is not None:
        case.setup(tmp)
    return files_under(tmp)


def refusals(cases: Sequence[Case] = CASES) -> dict[str, Refusal]:
    """Every case's refusal, each run in a fresh folder (for the document)."""
    out = {}
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="moa-bad-input-") as folder:
            tmp = pathlib.Path(folder)
            prepare(case, tmp)
            out[case.id] = refuse(case, tmp)
    return out


# ----- the document ---------------------------------------------------------------------------------------
def _cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(_cell(c) for c in row) + " |" for row in rows
    ]


def reliability_md(cases: Sequence[Case] = CASES, got: dict[str, Refusal] | None = None) -> str:
    """``docs/reliability.md``: every bad input the tests try, grouped, with its error; then the faults."""
    got = refusals(cases) if got is None else got
    api = sum(c.argv is None for c in cases)
    lines = [
        "<!-- generated by `python tests/bad_inputs.py --write-docs` from tests/bad_inputs.py; do not edit by hand -->",
        "# Reliability: bad inputs and faults",
        "",
        f"Every bad input below is a case in `tests/bad_inputs.py` ({len(cases)} cases: {api} through the Python API, "
        f"{len(cases) - api} through the `moa` command). `tests/test_bad_inputs.py` runs each one in an "
        "empty folder and checks that it is refused with the error shown, that the message contains the case's "
        "fragment, and that "
        "nothing was written. The messages are the ones moa gives, captured when this file was generated "
        "(the case's folder shown as `<tmp>`, the repository as `<repo>`). The command exits with status 2 on bad "
        "arguments, before anything is written.",
        "",
    ]
    for group in GROUPS:
        rows = [(f"`{c.id}`", c.input, got[c.id].error, got[c.id].message) for c in cases if c.group == group]
        if rows:
            lines += [f"## {group}", "", *_table(("Case", "Input", "Error", "Message"), rows), ""]
    lines += [
        "## Faults and what survives",
        "",
        "Faults that are not bad input: the process, the disk, the compiled-solver cache or a worker fails; "
        "each row names the test that shows what survives.",
        "",
        *_table(FAULTS_HEADER, FAULTS),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python tests/bad_inputs.py", description="Write or check docs/reliability.md.")
    ap.add_argument("--write-docs", action="store_true", help="rewrite docs/reliability.md")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if docs/reliability.md is stale")
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    text = reliability_md()
    current = DOC_PATH.read_text() if DOC_PATH.exists() else None
    if args.check or not args.write_docs:
        if current != text:
            print(f"stale: {DOC_PATH.relative_to(ROOT)}: run python tests/bad_inputs.py --write-docs", file=sys.stderr)
            return 1
        return 0
    if current != text:
        from moa.report.results import write_text

        write_text(DOC_PATH, text)
        print(f"wrote {DOC_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
