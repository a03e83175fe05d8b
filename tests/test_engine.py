from __future__ import annotations

import random

import numpy as np
import pytest

from srsweep.backends._base import RunRecord
from srsweep.engine import plain
from srsweep.engine import suggest
from srsweep.engine import suggest_packed
from srsweep.engine import to_stop
from srsweep.errors import EngineError

GRID = {
    "method": "grid",
    "parameters": {
        "disc": {"parameters": {"lr": {"values": [1e-3, 1e-4]}, "hid_num": {"values": [2, 4]}}},
        "seed": {"value": 3},
    },
}


def _runs(params_list, state="finished"):
    return [
        RunRecord(id=f"r{i}", sweep_id="s", name="n", kernel="k", state=state, params=p, config={})
        for i, p in enumerate(params_list)
    ]


def test_grid_nested_and_exhausts():
    got = suggest(GRID, [], 10, seed=0)
    assert len(got) == 4
    assert {(p["disc"]["lr"], p["disc"]["hid_num"]) for p in got} == {
        (1e-3, 2),
        (1e-3, 4),
        (1e-4, 2),
        (1e-4, 4),
    }
    assert all(p["seed"] == 3 for p in got)
    # the grid skips points already taken, whatever their state
    taken = _runs(got[:3], state="failed")
    assert suggest(GRID, taken, 5, seed=0) == [got[3]]
    assert suggest(GRID, _runs(got), 1, seed=0) == []


def test_random_is_reproducible_per_seed_and_plain_types():
    spec = {
        "method": "random",
        "parameters": {
            "x": {"min": 0.0, "max": 1.0},
            "y": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
        },
    }
    a = suggest(spec, [], 3, seed=7)
    assert a == suggest(spec, [], 3, seed=7)
    assert a != suggest(spec, [], 3, seed=8)
    assert all(type(p["x"]) is float and 1e-5 <= p["y"] <= 1e-2 for p in a)
    state, py_state = np.random.get_state()[1].copy(), random.getstate()
    suggest(spec, [], 1, seed=1)
    assert (np.random.get_state()[1] == state).all(), "global numpy RNG must be untouched"
    assert random.getstate() == py_state


def test_run_cap_limits_suggestions():
    spec = {"method": "random", "run_cap": 2, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    assert len(suggest(spec, [], 5, seed=0)) == 2
    assert suggest(spec, _runs([{"x": 0.1}, {"x": 0.2}]), 5, seed=0) == []


SHAPES = {
    "method": "random",
    "parameters": {
        "width": {"values": [4, 8, 16, 32]},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
    },
}


def _width(p):
    return p["width"]


def test_packed_suggestions_share_the_first_draws_key():
    drawn = suggest(SHAPES, [], 256, seed=5)
    got = suggest_packed(SHAPES, [], 8, seed=5, key=_width, candidates=256)
    # the first draw's key, then its next draws in order: the engine's own draws
    assert got == [p for p in drawn if p["width"] == drawn[0]["width"]][:8]
    state, py_state = np.random.get_state()[1].copy(), random.getstate()
    few = suggest_packed(SHAPES, [], 8, seed=5, key=_width, candidates=8)
    widths = [p["width"] for p in few]
    # no more candidates than trials: the engine's first draws, grouped by key
    assert sorted(map(repr, few)) == sorted(map(repr, drawn[:8]))
    assert widths == sorted(widths, key=widths.index)
    assert (np.random.get_state()[1] == state).all() and random.getstate() == py_state


def test_packed_suggestions_take_the_keys_asked_for_first():
    drawn = suggest(SHAPES, [], 256, seed=2)
    other = next(w for w in (4, 8, 16, 32) if w != drawn[0]["width"])
    got = suggest_packed(SHAPES, [], 5, seed=2, key=_width, candidates=256, first=[other])
    assert [p["width"] for p in got] == [other] * 5


def test_packed_suggestions_fill_from_the_next_key_when_candidates_run_short():
    got = suggest_packed(SHAPES, [], 64, seed=3, key=_width, candidates=64)
    widths = [p["width"] for p in got]
    assert len(got) == 64 and widths == sorted(widths, key=widths.index)  # one run per key
    assert sorted(got, key=repr) == sorted(suggest(SHAPES, [], 64, seed=3), key=repr)


def test_packed_suggestions_on_a_grid_and_a_run_cap():
    got = suggest_packed(GRID, [], 2, seed=0, key=lambda p: p["disc"]["hid_num"], candidates=8)
    assert len({p["disc"]["hid_num"] for p in got}) == 1 and len(got) == 2
    rest = suggest_packed(GRID, _runs(got), 4, seed=0, key=lambda p: 0, candidates=8)
    assert sorted(map(repr, got + rest)) == sorted(map(repr, suggest(GRID, [], 4, seed=0)))
    capped = {**SHAPES, "run_cap": 3}
    assert len(suggest_packed(capped, [], 8, seed=0, key=_width, candidates=64)) == 3
    assert suggest_packed(capped, _runs(got + rest[:1]), 8, seed=0, key=_width, candidates=64) == []


def test_bayes_uses_finished_metrics():
    spec = {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }
    runs = _runs([{"x": v} for v in (0.1, 0.5, 0.9)])
    for r, loss in zip(runs, (0.8, 0.0, 0.8), strict=True):
        r.summary = {"loss": loss}
    (p,) = suggest(spec, runs, 1, seed=0)
    assert 0.0 <= p["x"] <= 1.0


def test_plain_converts_numpy():
    out = plain(
        {"a": np.float64(1.5), "b": [np.int64(2), {"c": np.bool_(True)}], "d": np.arange(2)}
    )
    assert out == {"a": 1.5, "b": [2, {"c": True}], "d": [0, 1]}
    assert type(out["a"]) is float and type(out["b"][0]) is int


def test_hyperband_stops_the_bad_run():
    spec = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"x": {"values": [1, 2, 3]}},
    }
    runs = _runs([{"x": 1}, {"x": 2}, {"x": 3}], state="running")
    for r, losses in zip(runs, ([5, 4, 3], [5, 1, 0.5], [5, 9, 9]), strict=True):
        r.history = [{"_step": i, "loss": v} for i, v in enumerate(losses)]
    assert to_stop(spec, runs) == ["r2"]
    assert to_stop({k: v for k, v in spec.items() if k != "early_terminate"}, runs) == []


def test_grid_rejects_continuous():
    with pytest.raises(EngineError, match="disallowed type with grid"):
        suggest({"method": "grid", "parameters": {"x": {"min": 0.0, "max": 1.0}}}, [], 1, seed=0)


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"x": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}},
            "parameters.x.q: 0 is less than or equal to the minimum of 0 (for q_uniform)",
        ),
        (
            {"a": {"parameters": {"b": {"distribution": "int_uniform", "min": 0.5, "max": 2}}}},
            "parameters.a.b.min: 0.5 is not of type 'integer' (for int_uniform)",
        ),
        ({"x": 3}, "Sweep config values must be dicts, found 3 of type <class 'int'>"),
    ],
    ids=["leaf", "nested", "not-a-dict"],
)
def test_sweeps_own_errors_become_engine_errors_naming_the_parameter(params, message):
    with pytest.raises(EngineError) as e:
        suggest({"method": "random", "parameters": params}, [], 1, seed=0)
    assert str(e.value) == f"the search engine (sweeps) cannot use this spec: {message}"


def test_a_bad_stopping_rule_is_an_engine_error():
    spec = {
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 0},
        "parameters": {"x": {"values": [1, 2]}},
    }
    runs = _runs([{"x": 1}], state="running")
    with pytest.raises(EngineError, match="min_iter: 0 is less than the minimum of 1"):
        to_stop(spec, runs)


def test_memoised_grid_hash_matches_sweeps():
    from sweeps import grid_search

    suggest(GRID, [], 1, seed=0)  # installs the cache
    original = grid_search.yaml_hash.__closure__  # the wrapped function is in the closure
    assert original is not None
    raw = next(c.cell_contents for c in original if callable(c.cell_contents))
    for value in [1, 1.0, 3e6, True, "1", [1, 2], (1, 2), {"a": [1, {"b": 2.5}]}, None]:
        assert grid_search.yaml_hash(value) == raw(value)
    # 3.0 and 3 hash alike in sweeps (integer floats become ints); keep that quirk
    assert grid_search.yaml_hash(3.0) == grid_search.yaml_hash(3)
