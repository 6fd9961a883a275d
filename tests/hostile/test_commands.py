"""Hostile use of the commands that take seeds, parameters and plugins: one line and exit code 2
before any work; an interrupted bench keeps what it stored and says how to go on; a run says
what it applies; reports show benchmark cells with readable labels.

Everything runs on the embedded ``synthetic`` set with ``rp``/``cvh`` at 16 bits.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap

import pytest
from click.testing import CliRunner

import mmhash
from mmhash.cli import main
from mmhash.hashers.rp import RandomProjectionHasher

FAST = ["--dataset", "synthetic", "--bits", "16"]


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A distribution on sys.path with a hasher whose ``__init__`` takes ``**kwargs`` and one
    that claims the name ``cvh`` (mmhash-baselines' CVH) with another class."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "hostile_plugins.py").write_text(textwrap.dedent('''
        from mmhash.hashers.rp import RandomProjectionHasher

        class TakesKwargs(RandomProjectionHasher):
            """Hides its parameters behind **kwargs."""
            name = "takes-kwargs"

            def __init__(self, **kwargs):
                super().__init__(**kwargs)

        class AnotherCVH(RandomProjectionHasher):
            """Not mmhash-baselines' CVH."""
            name = "cvh"
    '''))
    info = root / "hostile_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-plugins\n"
                                   "Version: 1.0\n")
    entry_points = {"kwargs": "takes-kwargs = hostile_plugins:TakesKwargs\n",
                    "clash": "cvh = hostile_plugins:AnotherCVH\n"}

    def install(which):
        (info / "entry_points.txt").write_text("[mmhash.hashers]\n" + entry_points[which])
        monkeypatch.syspath_prepend(str(root))

    yield install
    sys.modules.pop("hostile_plugins", None)


# (id, argv with {tmp} for the test's folder, plugin set or None, outputs that must not exist,
#  substring of the one stderr line)
REFUSALS = [
    ("fit-negative-seed-deterministic",
     ["fit", "cvh", *FAST, "--seed", "-1", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--seed: '-1' must be a non-negative integer"),
    ("fit-negative-seed-random",
     ["fit", "rp", *FAST, "--seed", "-1", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--seed: '-1' must be a non-negative integer"),
    ("fit-seed-not-an-integer",
     ["fit", "rp", *FAST, "--seed", "one", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--seed: 'one' is not an integer"),
    ("fit-bits-not-an-integer",
     ["fit", "rp", *FAST, "--bits", "abc", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--bits: 'abc' is not an integer"),
    ("fit-two-seeds",
     ["fit", "rp", *FAST, "--seeds", "0,1", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--seed '0,1': fit trains one model, so it takes one value; bench runs several"),
    ("tune-two-bit-lengths",
     ["tune", "cvh", *FAST, "--bits", "16,32", "--store", "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "--bits '16,32': tune trains one model"),
    ("tune-negative-seed",
     ["tune", "cvh", *FAST, "--seed", "-1", "--store", "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "--seed: '-1' must be a non-negative integer"),
    ("fit-param-n_bits",
     ["fit", "cvh", *FAST, "--param", "n_bits=32", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--param n_bits=32: the code length is set by --bits"),
    ("fit-param-random_state",
     ["fit", "rp", *FAST, "--param", "random_state=3", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--param random_state=3: the seed is set by --seed"),
    ("tune-param-n_bits",
     ["tune", "cvh", *FAST, "--param", "n_bits=32", "--store", "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "--param n_bits=32: the code length is set by --bits"),
    ("check-param-n_bits",
     ["check", "rp", "--param", "n_bits=32"], None,
     [], "--param n_bits=32: the conformance checks set n_bits and random_state"),
    ("fit-method-param-n_bits",
     ["fit", "cvh", *FAST, "--param", "cvh.n_bits=32", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--param cvh.n_bits=32: the code length is set by --bits"),
    ("fit-param-of-another-method",
     ["fit", "cvh", *FAST, "--param", "rp.reg=1", "-o", "{tmp}/m.npz"], None,
     ["m.npz"], "--param 'rp.reg=1': this command runs cvh, not rp"),
    ("tune-param-of-another-method",
     ["tune", "cvh", *FAST, "--param", "rp.reg=1", "--store", "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "this command runs cvh, not rp; use NAME=VALUE or cvh.NAME=VALUE"),
    ("check-param-of-another-method",
     ["check", "cvh", "--param", "rp.reg=1"], None, [], "this command runs cvh, not rp"),
    ("bench-param-n_bits",
     ["bench", *FAST, "--methods", "rp", "--param", "rp.n_bits=32", "--store",
      "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "--param rp.n_bits=32: the code length is set by --bits"),
    ("bench-param-random_state",
     ["bench", *FAST, "--methods", "rp", "--param", "rp.random_state=1", "--store",
      "{tmp}/s.sqlite"], None,
     ["s.sqlite"], "--param rp.random_state=1: the seed is set by --seeds"),
    ("bench-plugin-with-kwargs",
     ["bench", *FAST, "--methods", "takes-kwargs", "--store", "{tmp}/s.sqlite"], "kwargs",
     ["s.sqlite"], "hostile_plugins:TakesKwargs) cannot be registered: its __init__ takes "
                   "**kwargs; a hasher's hyperparameters must be explicit keyword parameters"),
    ("fit-plugin-with-kwargs",
     ["fit", "takes-kwargs", *FAST, "-o", "{tmp}/m.npz"], "kwargs",
     ["m.npz"], "its __init__ takes **kwargs"),
    ("bench-name-claimed-twice",
     ["bench", *FAST, "--methods", "cvh", "--store", "{tmp}/s.sqlite"], "clash",
     ["s.sqlite"], "hasher name 'cvh' is registered by two different classes"),
]


@pytest.mark.parametrize(("argv", "plugin", "outputs", "match"),
                         [pytest.param(*row[1:], id=row[0]) for row in REFUSALS])
def test_refused_in_one_line_before_any_work(hostile, plugins, tmp_path, argv, plugin, outputs,
                                             match):
    if plugin:
        plugins(plugin)
    hostile([a.format(tmp=tmp_path) for a in argv], outputs=[tmp_path / o for o in outputs],
            code=2, match=match)


def test_name_claimed_twice_names_both_classes(hostile, plugins, tmp_path):
    plugins("clash")
    line = hostile(["fit", "cvh", *FAST, "-o", tmp_path / "m.npz"], code=2).line
    assert "hostile_plugins:AnotherCVH (hostile-plugins)" in line
    assert "mmhash_baselines.cvh:CVH (mmhash-baselines)" in line


def test_negative_seed_is_refused_alike_by_every_command(hostile, tmp_path):
    lines = [hostile(argv, code=2).line for argv in (
        ["bench", *FAST, "--methods", "rp", "--seeds", "-1", "--store", tmp_path / "b.sqlite"],
        ["fit", "cvh", *FAST, "--seed", "-1", "-o", tmp_path / "m.npz"],
        ["tune", "cvh", *FAST, "--seed", "-1", "--store", tmp_path / "t.sqlite"],
    )]
    assert {line.replace("--seeds", "--seed") for line in lines} == {
        "error: --seed: '-1' must be a non-negative integer"}


# ---- Ctrl-C during bench ------------------------------------------------------------------
class Interrupted(RandomProjectionHasher):
    """Random projections whose second fit is interrupted (as Ctrl-C does)."""

    name = "interrupted-test"
    fits = 0

    def _fit(self, views):
        type(self).fits += 1
        if type(self).fits == 2:
            raise KeyboardInterrupt
        return super()._fit(views)


@pytest.fixture
def interrupted():
    Interrupted.fits = 0
    mmhash.register(Interrupted)
    yield Interrupted
    mmhash.registry.unregister(Interrupted.name)


def _done_cells(store):
    with sqlite3.connect(store) as db:
        return db.execute("SELECT method, bits FROM cells WHERE status = 'done' "
                          "ORDER BY bits").fetchall()


def test_interrupted_bench_keeps_stored_cells_and_exits_130(hostile, interrupted, tmp_path):
    store = tmp_path / "s.sqlite"
    argv = ["bench", "--dataset", "synthetic", "--methods", interrupted.name,
            "--bits", "16,32,64", "--store", store, "--jobs", "1"]
    line = hostile(argv, code=130).line
    assert "interrupted: 1 of 3 cells of this grid are stored (done)" in line
    assert "`mmhash bench ... --resume`" in line
    assert _done_cells(store) == [(interrupted.name, 16)]
    # --resume runs the rest only
    result = CliRunner().invoke(main, [str(a) for a in argv] + ["--resume"])
    assert result.exit_code == 0, result.output
    assert interrupted.fits == 4
    assert _done_cells(store) == [(interrupted.name, b) for b in (16, 32, 64)]


# ---- what a run does, said ------------------------------------------------------------------
def test_methods_and_datasets_named_twice_run_once(tmp_path):
    store = tmp_path / "s.sqlite"
    result = CliRunner().invoke(main, ["bench", "--dataset", "synthetic,synthetic", "--methods",
                                       "cvh,cvh", "--bits", "16,16", "--store", str(store)])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 1
    rows = [line for line in result.output.splitlines() if line.lstrip("│ ").startswith("cvh")]
    assert len(rows) == 1, result.output


def test_unified_database_names_the_methods_that_run_per_view(tmp_path):
    result = CliRunner().invoke(main, ["bench", *FAST, "--methods", "rp,cvh", "--database",
                                       "unified", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0, result.output
    assert ("note: --database unified: rp, cvh run per-view, as they learn no unified "
            "database code") in result.output


def test_params_file_prints_the_parameters_it_applies(tmp_path):
    params = tmp_path / "best.toml"
    params.write_text("[params.cvh]\nreg = 0.07257005721594278\n")
    result = CliRunner().invoke(main, ["bench", *FAST, "--methods", "rp,cvh", "--params-file",
                                       str(params), "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "params of cvh: reg=0.07257005721594278"


# ---- report: bench cells by default, compact labels ----------------------------------------
@pytest.fixture(scope="module")
def tuned_store(tmp_path_factory):
    """A store holding three tune trials of cvh (validation split) and one bench cell of rp."""
    pytest.importorskip("optuna")
    store = str(tmp_path_factory.mktemp("report") / "s.sqlite")
    runner = CliRunner()
    tuned = runner.invoke(main, ["tune", "cvh", *FAST, "--store", store, "--space",
                                 "reg=0.07257005721594278,0.012345678,0.012345679"])
    assert tuned.exit_code == 0, tuned.output
    bench = runner.invoke(main, ["bench", *FAST, "--methods", "rp", "--store", store])
    assert bench.exit_code == 0, bench.output
    return store


def test_default_report_shows_bench_cells_only(tuned_store):
    result = CliRunner().invoke(main, ["report", "--store", tuned_store])
    assert result.exit_code == 0, result.output
    assert "synthetic:validation" not in result.output
    assert "| rp " in result.output


@pytest.mark.parametrize("flags", [["--tune-trials"], ["--dataset", "synthetic:validation"]])
def test_tune_trials_when_asked_with_compact_distinct_labels(tuned_store, flags):
    result = CliRunner().invoke(main, ["report", "--store", tuned_store, *flags])
    assert result.exit_code == 0, result.output
    assert "synthetic:validation" in result.output
    assert "cvh (reg=0.07257)" in result.output
    assert "0.07257005721594278" not in result.output
    # 4 (and 6) significant digits would give these two one name: they get more
    assert "cvh (reg=0.012345678)" in result.output
    assert "cvh (reg=0.012345679)" in result.output


def test_report_help_says_how_to_see_tune_trials():
    result = CliRunner().invoke(main, ["report", "--help"])
    assert "--tune-trials" in result.output and "mmhash tune" in result.output


def test_report_of_tune_trials_only_says_they_are_left_out(hostile, tmp_path):
    pytest.importorskip("optuna")
    store = tmp_path / "s.sqlite"
    tuned = CliRunner().invoke(main, ["tune", "cvh", *FAST, "--store", str(store), "--space",
                                      "reg=0.5"])
    assert tuned.exit_code == 0, tuned.output
    hostile(["report", "--store", store], inputs=[store], code=2,
            match="1 validation-split trial(s) of `mmhash tune` are left out: add --tune-trials")


# ---- the bench progress bar -----------------------------------------------------------------
def test_progress_bar_shows_the_total_and_the_cell_running_now(tmp_path, monkeypatch):
    import rich.progress
    from rich.markup import render

    from mmhash.bench.executors import SerialExecutor
    from mmhash.bench.plan import execute_plan, make_plan
    from mmhash.bench.store import ResultStore
    from mmhash.cli import _progress_bar

    seen = []

    class Recording(rich.progress.Progress):
        def add_task(self, description, *args, **kwargs):
            task = super().add_task(description, *args, **kwargs)
            if not seen:  # the grid's bar comes first
                seen.append((render(description).plain, kwargs.get("total"), 0))
            return task

        def update(self, task_id, **kwargs):
            super().update(task_id, **kwargs)
            if task_id == 0 and "description" in kwargs:
                seen.append((render(kwargs["description"]).plain, kwargs.get("total"),
                             kwargs.get("completed")))

    monkeypatch.setattr(rich.progress, "Progress", Recording)
    plan = make_plan(datasets="synthetic", methods="rp", bits="16,32")
    cells = [cell for _, grid in plan.grids for cell in grid]
    executor = SerialExecutor()
    with _progress_bar(executor, plan.n_cells) as step, \
            ResultStore(tmp_path / "s.sqlite") as store:
        execute_plan(plan, store, executor=executor, progress=step)
    assert seen[0] == ("starting", 2, 0)  # the total from the start, not 0/?
    assert all(total == 2 for _, total, _ in seen)
    # before a cell finishes, the bar names it (not the one finished last), its views'
    # brackets ("[image+text]") shown as they are
    assert (cells[0].label(), 2, 0) in seen
    assert (cells[1].label(), 2, 1) in seen
    assert seen[-1] == ("done", 2, 2)


@pytest.mark.parametrize("argv, match", [
    (["fit", "cvh", "--split", "abc"], "Invalid value for '--split'"),
    (["fit", "cvh"], "Missing option '-o' / '--output'"),
    (["bench", "--jobs", "0"], "Invalid value for '--jobs'"),
    (["fit"], "Missing argument 'METHOD'"),
    (["bench", "--nope"], "No such option '--nope'"),
    (["report", "--format", "pdf"], "Invalid value for '--format'"),
])
def test_clicks_own_usage_errors_are_one_line(hostile, argv, match):
    line = hostile(argv, match=match).line
    assert line.startswith("error: ") and "--help" in line


def test_interrupted_fit_is_one_line_and_exit_130(hostile, interrupted, tmp_path):
    # fit has no grid message of its own: the group's one line, never click's "Aborted!"
    interrupted.fits = 1  # the next fit is the interrupted one
    model = tmp_path / "m.npz"
    line = hostile(["fit", interrupted.name, "--dataset", "synthetic", "--bits", "16",
                    "-o", model], code=130, outputs=[model]).line
    assert line.startswith("interrupted: ")


def test_a_fit_warning_is_one_line_not_pythons_block(tmp_path):
    result = CliRunner().invoke(main, ["fit", "cvh", "--dataset", "synthetic", "--bits", "128",
                                       "-o", str(tmp_path / "m.npz")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines), lines
    assert "DegenerateCodesWarning" not in result.stderr and ".py:" not in result.stderr


# ---- bad --param values: refused from the declarations before any fit -----------------------
@pytest.mark.parametrize("argv, match", [
    (["bench", *FAST, "--methods", "cvh", "--param", "cvh.reg=abc"],
     "cvh: reg must be a finite number > 0, got 'abc'"),
    (["bench", *FAST, "--methods", "cvh", "--param", "cvh.reg=-1"],
     "cvh: reg must be a finite number > 0, got -1"),
    (["bench", *FAST, "--methods", "djsrh", "--param", "djsrh.batch_size=1"],
     "djsrh: batch_size must be an integer >= 2, got 1"),  # declared once, by DeepHasher
    (["tune", "cvh", *FAST, "--param", "nonexistent=1"], "unknown parameter of cvh"),
    (["tune", "cvh", *FAST, "--space", "reg=-1,1"], "cvh: reg must be"),
    (["tune", "cvh", *FAST, "--space", "max_features=1:9"], "cvh: max_features must be"),
    (["check", "cvh", "--param", "reg=abc"], "cvh: reg must be"),
    (["check", "cvh", "--param", "cvh.reg=abc"], "cvh: reg must be"),  # bench's spelling too
    (["fit", "cvh", *FAST, "--param", "reg=abc", "-o", "m.npz"], "cvh: reg must be"),
    (["fit", "cvh", *FAST, "--param", "cvh.reg=abc", "-o", "m.npz"], "cvh: reg must be"),
    (["tune", "cvh", *FAST, "--param", "cvh.nonexistent=1"], "unknown parameter of cvh"),
    (["fit", "cvh", *FAST, "--seed", "-1", "-o", "m.npz"], "--seed"),
])
def test_bad_param_values_are_refused_before_any_fit(hostile, argv, match, tmp_path,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile(argv, match=match, outputs=[tmp_path / "mmhash-results.sqlite", tmp_path / "m.npz"])


def test_list_params_prints_the_declared_rules():
    result = CliRunner().invoke(main, ["list", "--params", "cvh"])
    assert result.exit_code == 0, result.output
    for text in ("reg", "number > 0", "max_features", "integer >= 2", "random_state",
                 "integer >= 0", "Relative ridge"):
        assert text in result.stdout
