"""mmhash tune: validation split only, stored trials that resume, tuned params into bench."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("optuna")

import mmhash  # noqa: E402
from mmhash.bench.store import ResultStore  # noqa: E402
from mmhash.bench.tune import (  # noqa: E402
    check_space,
    parse_space,
    read_params_file,
    tune,
    write_params,
)
from mmhash.cli import main  # noqa: E402
from mmhash.data.synthetic import make_synthetic  # noqa: E402
from mmhash.errors import InvalidInputError, UnknownNameError  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n=500, dims=(24, 16), n_labels=6, latent_dim=8, noise=0.3,
                          n_query=100, random_state=2)


def test_tuning_never_touches_the_test_queries(data):
    """The queries' features are NaN and their labels nonsense: a tune that read them would
    fail (NaN is refused) or score differently; it does neither."""
    queries = np.asarray(data.split.query)
    dirty = mmhash.data.Dataset(data.name, {v: X.copy() for v, X in data.views.items()},
                                data.labels.copy(), data.split, True, dict(data.info))
    for X in dirty.views.values():  # poisoned after construction, which refuses NaN
        X[queries] = np.nan
    dirty.labels[queries] = 1 - dirty.labels[queries]
    space = {"reg": [1e-4, 1e-1]}
    clean = tune("cvh", data, bits=16, space=space)
    again = tune("cvh", dirty, bits=16, space=space)
    assert [t.value for t in again.trials] == [t.value for t in clean.trials]
    protocol = data.validation_protocol()
    assert len(protocol.labels) == len(data.split.train)  # the training rows and nothing else
    assert len(protocol.split.query) == len(data.split.validation)


def test_a_killed_tune_resumes_from_the_store(data, tmp_path):
    space = {"reg": (1e-6, 1.0, "log")}
    with ResultStore(tmp_path / "killed.sqlite") as store:
        tune("cvh", data, bits=16, space=space, trials=3, store=store)  # killed after 3 trials
        resumed = tune("cvh", data, bits=16, space=space, trials=5, store=store)
    with ResultStore(tmp_path / "whole.sqlite") as store:
        whole = tune("cvh", data, bits=16, space=space, trials=5, store=store)
    assert [t.stored for t in resumed.trials] == [True] * 3 + [False] * 2
    assert [(t.params, t.value) for t in resumed.trials] == \
        [(t.params, t.value) for t in whole.trials]


def test_grid_is_exhaustive_and_the_best_round_trips_into_bench(data, tmp_path):
    result = tune("cvh", data, bits=16, space={"reg": [1e-4, 1e-2, 1.0]})
    assert sorted(t.params["reg"] for t in result.trials) == [1e-4, 1e-2, 1.0]
    path = write_params(tmp_path / "best.toml", result)
    assert read_params_file(path) == {"cvh": {"reg": result.best.params["reg"]}}
    store = tmp_path / "s.sqlite"
    ran = CliRunner().invoke(main, ["bench", "--methods", "cvh", "--bits", "16", "--store",
                                    str(store), "--params-file", str(path)])
    assert ran.exit_code == 0, ran.output
    with ResultStore(store) as results:
        assert {k.params_dict["reg"] for _, k, _ in results.stored_cells()} == {
            result.best.params["reg"]}


def test_the_cli_tunes_with_the_methods_own_space(tmp_path):
    out = tmp_path / "best.toml"
    res = CliRunner().invoke(main, ["tune", "cvh", "--dataset", "synthetic", "--bits", "16",
                                    "--trials", "2", "--store", str(tmp_path / "t.sqlite"),
                                    "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "synthetic:validation" in res.output and "best" in res.output
    assert "[params.cvh]" in out.read_text()


def test_the_cli_tunes_a_two_view_method_on_two_of_three_views(tmp_path):
    args = ["tune", "cmfh", "--dataset", "synthetic3", "--bits", "8", "--space",
            "max_iter=2", "--store", str(tmp_path / "t.sqlite")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "exactly 2 views" in res.output
    res = CliRunner().invoke(main, [*args, "--views", "image,tags"])
    assert res.exit_code == 0, res.output
    with ResultStore(tmp_path / "t.sqlite") as store:
        assert {key.views for key in store.finished_keys()} == {("image", "tags")}


def test_bad_spaces_are_one_clear_line():
    from mmhash.registry import get_hasher_class

    cvh = get_hasher_class("cvh")
    assert parse_space(["reg=1e-4,1e-2", "mu=1:1000:log", "k=5:50"]) == {
        "reg": [1e-4, 1e-2], "mu": (1, 1000, "log"), "k": (5, 50)}
    with pytest.raises(UnknownNameError, match="parameter of cvh to tune"):
        check_space({"nope": [1]}, cvh)
    with pytest.raises(InvalidInputError, match="low > 0 for log"):
        check_space({"reg": (0.0, 1.0, "log")}, cvh)
    with pytest.raises(InvalidInputError, match="lo:hi or lo:hi:log"):
        parse_space(["reg=1:2:ln"])
    with pytest.raises(InvalidInputError, match="no search space"):
        check_space({}, get_hasher_class("rp"))
    res = CliRunner().invoke(main, ["tune", "cvh", "--dataset", "synthetic", "--bits",
                                    "16,32"])
    assert res.exit_code == 2 and "tune trains one model" in res.output
