from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from srsweep.errors import UsageError
from srsweep.reports import best_k
from srsweep.reports import exclude
from srsweep.reports import format_value
from srsweep.reports import frames
from srsweep.reports import history_frame
from srsweep.reports import run_labels
from srsweep.reports import runs_frame
from srsweep.reports import smooth
from srsweep.reports import varying_keys


def _history(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["run_id", "step", "acc"])


# --- runs_frame -------------------------------------------------------------------


def test_runs_frame_columns_and_values(records):
    df = runs_frame(records)
    assert list(df.columns) == [
        "run_id",
        "name",
        "state",
        "sweep_id",
        "seed",
        "avg_hor",
        "disc.lr",
        "disc.hid_num",
        "disc.hid_size",
        "disc.betas",
        "arch.hid_num",
        "summary.acc",
        "summary.avg_acc",
        "summary.runtime",
        "summary.epoch",
        "summary.loss",
        "runtime",
        "error",
    ]
    assert list(df["run_id"]) == [r.id for r in records]
    r0 = df.iloc[0]
    assert (r0["name"], r0["state"], r0["disc.lr"], r0["disc.hid_num"]) == (
        "sd-r0",
        "finished",
        1e-4,
        2,
    )
    assert r0["disc.betas"] == (0.9, 0.999)  # lists become hashable tuples
    assert r0["runtime"] == 300.0
    assert math.isnan(df.set_index("run_id").loc["r5", "runtime"])  # still running
    assert df.set_index("run_id").loc["r6", "error"].startswith("KernelFailed")
    assert df.groupby("arch.hid_num").size().to_dict() == {(2, 0): 7}


def test_runs_frame_params_fill_a_missing_config_and_reserved_names_move(fake_run):
    running = fake_run("a", "a", state="running", config={}, params={"disc": {"lr": 1e-3}})
    odd = fake_run("b", "b", config={"runtime": 3600, "name": "x", "disc": {"lr": 1e-4}})
    df = runs_frame([running, odd]).set_index("run_id")
    assert df.loc["a", "disc.lr"] == 1e-3
    assert df.loc["b", "config.runtime"] == 3600
    assert df.loc["b", "config.name"] == "x"
    assert df.loc["b", "runtime"] == 300.0
    assert df.loc["b", "name"] == "b"


def test_runtime_is_what_the_run_reported_else_the_ledger_span(fake_run):
    # a trial trained in a pack's third group: claimed at 0, its own 24 s end at 81
    packed = fake_run("p", "p", summary={"runtime": 24.0}, started_at=0.0, finished_at=81.0)
    script = fake_run("s", "s", summary={"loss": 1.0}, started_at=0.0, finished_at=81.0)
    df = runs_frame([packed, script]).set_index("run_id")
    assert df.loc["p", "runtime"] == 24.0
    assert df.loc["s", "runtime"] == 81.0


def test_runs_frame_takes_missing_summary_values_from_the_history(fake_run):
    history = [{"_step": 0, "acc": 0.5, "loss": 1.0}, {"_step": 1, "acc": 0.7, "loss": None}]
    df = runs_frame([fake_run("a", "a", state="running", history=history, summary={"acc": 0.6})])
    assert df.loc[0, "summary.acc"] == 0.6  # the recorded summary wins
    assert df.loc[0, "summary.loss"] == 1.0  # the last value actually logged


def test_runs_frame_of_nothing_is_empty():
    assert runs_frame([]).empty


# --- history_frame ----------------------------------------------------------------


def test_history_frame_is_one_row_per_log_call(records):
    df = history_frame(records)
    assert list(df.columns) == ["run_id", "step", "epoch", "acc", "loss"]
    assert len(df) == sum(len(r.history) for r in records)
    first = df[df["run_id"] == "r0"].iloc[1]
    assert first["step"] == 25
    assert first["acc"] == records[0].history[1]["acc"]


def test_history_frame_fills_gaps_with_nan_and_steps_by_position(fake_run):
    run = fake_run("a", "a", history=[{"acc": 0.5}, {"acc": 0.6, "loss": 1.0}])
    df = history_frame([run])
    assert list(df["step"]) == [0, 1]
    assert math.isnan(df.loc[0, "loss"])
    assert df.loc[1, "loss"] == 1.0


# --- smooth -----------------------------------------------------------------------


def test_smooth_against_hand_computed_windows():
    # Steps with a gap: the window (s - 25, s] holds 1, 2, 3 values at the start, then
    # the gap empties it again. Run "b" is interleaved and must not leak into "a".
    hist = _history(
        [
            ("a", 0, 1.0),
            ("b", 0, 100.0),
            ("a", 10, 2.0),
            ("a", 20, 3.0),
            ("b", 10, 300.0),
            ("a", 50, 4.0),
            ("a", 60, 6.0),
        ]
    )
    out = smooth(hist, "acc", 25)
    a = out[out["run_id"] == "a"]
    np.testing.assert_allclose(a["acc_smooth"], [1.0, 1.5, 2.0, 4.0, 5.0])
    np.testing.assert_allclose(a["acc_std"], [0.0, 0.5, math.sqrt(2 / 3), 0.0, 1.0])
    b = out[out["run_id"] == "b"]
    np.testing.assert_allclose(b["acc_smooth"], [100.0, 200.0])
    np.testing.assert_allclose(b["acc_std"], [0.0, 100.0])
    assert list(out.index) == list(hist.index)  # rows keep their order


def test_smooth_window_counts_steps_not_log_calls():
    # Logged every 25 steps with avg_hor 500: a full window holds 20 values.
    steps = np.arange(0, 1001, 25)
    hist = _history([("a", s, float(s)) for s in steps])
    out = smooth(hist, "acc", 500).set_index("step")
    assert out.loc[1000, "acc_smooth"] == pytest.approx(np.mean(steps[-20:]))
    assert out.loc[100, "acc_smooth"] == pytest.approx(np.mean([0, 25, 50, 75, 100]))


def test_smooth_matches_brute_force_on_unsorted_large_values():
    rng = np.random.default_rng(0)
    steps = np.sort(rng.choice(5000, size=300, replace=False))
    values = 1e6 + rng.normal(0, 1, size=300)  # large offset: checks the variance is stable
    order = rng.permutation(300)
    hist = _history([("a", steps[i], values[i]) for i in order])
    out = smooth(hist, "acc", 137)
    for i, row in zip(order, out.itertuples(), strict=True):
        window = values[(steps > steps[i] - 137) & (steps <= steps[i])]
        assert row.acc_smooth == pytest.approx(window.mean(), abs=1e-9)
        assert row.acc_std == pytest.approx(window.std(), abs=1e-6)


def test_smooth_skips_missing_values():
    hist = _history([("a", 0, 1.0), ("a", 10, float("nan")), ("a", 20, 3.0)])
    out = smooth(hist, "acc", 100)
    assert math.isnan(out.loc[1, "acc_smooth"])
    assert out.loc[2, "acc_smooth"] == 2.0


def test_smooth_rejects_unknown_metric_and_bad_window():
    hist = _history([("a", 0, 1.0)])
    with pytest.raises(UsageError, match="no metric 'loss'.*logged: acc"):
        smooth(hist, "loss", 10)
    with pytest.raises(UsageError, match="avg_hor must be a positive"):
        smooth(hist, "acc", 0)


def test_step_stats_average_the_curves_present_at_each_step():
    a = (np.array([0, 10, 20]), np.array([1.0, 2.0, 3.0]))
    b = (np.array([0, 10]), np.array([3.0, 6.0]))  # shorter: a running run
    steps, mean, sd = frames.step_stats([a, b])
    assert steps.tolist() == [0, 10, 20]
    assert mean.tolist() == [2.0, 4.0, 3.0]  # step 20: only a
    np.testing.assert_allclose(sd, [1.0, 2.0, 0.0])  # population std over the runs


# --- varying_keys, best_k, labels, exclude ------------------------------------------


def test_varying_keys(records, fake_run):
    df = runs_frame(records)
    assert varying_keys(df) == ["disc.lr", "disc.hid_num"]
    assert varying_keys(df, ["disc.hid_num", "seed"]) == ["disc.hid_num"]
    # A running run without a recorded config does not make every key look swept.
    partial = fake_run("x", "x", state="running", params={"disc": {"lr": 1e-4}})
    assert varying_keys(runs_frame([*records, partial])) == ["disc.lr", "disc.hid_num"]


@pytest.mark.parametrize(
    ("goal", "expected"),
    [("maximize", ["r4", "r0", "r2"]), ("minimize", ["r6", "r3", "r1"])],
    ids=["maximize", "minimize"],
)
def test_best_k_order(records, goal, expected):
    df = runs_frame(records)
    assert list(best_k(df, "avg_acc", goal, 3)["run_id"]) == expected
    assert list(best_k(df, "summary.avg_acc", goal, 3)["run_id"]) == expected


def test_best_k_leaves_out_runs_without_the_metric(records):
    records[0].summary.pop("avg_acc")
    df = runs_frame(records)
    top = best_k(df, "avg_acc", "maximize", 10)
    assert len(top) == 6 and "r0" not in set(top["run_id"])


def test_best_k_errors(records):
    df = runs_frame(records)
    with pytest.raises(UsageError, match="goal must be one of maximize, minimize"):
        best_k(df, "avg_acc", "max", 3)
    with pytest.raises(
        UsageError, match="no run has 'val_loss'.*known: acc, avg_acc, runtime, epoch, loss"
    ):
        best_k(df, "val_loss", "minimize", 3)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-4, "1e-4"),
        (0.01, "1e-2"),
        (0.5, "0.5"),
        (6, "6"),
        (128.0, "128"),
        (1e5, "1e5"),
        (0.875, "0.875"),
        ((2, 64), "(2, 64)"),
        (True, "True"),
        ("wgan", "wgan"),
        (None, "None"),
    ],
    ids=lambda v: repr(v),
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_run_labels(records):
    df = runs_frame(records)
    labels = run_labels(df, ["disc.lr", "disc.hid_num"])
    assert labels["r0"] == "disc.lr=1e-4, disc.hid_num=2"
    assert labels["r3"] == "disc.lr=1e-2, disc.hid_num=2"
    assert run_labels(df, []).to_dict()["r1"] == "sd-r1"
    # Same values (repeats) get the run name so every legend entry is distinct.
    same = run_labels(df, ["disc.hid_num"])
    assert same["r0"] == "disc.hid_num=2 [sd-r0]"
    assert same["r3"] == "disc.hid_num=2 [sd-r3]"
    assert same["r1"] == "disc.hid_num=8 [sd-r1]"
    assert same.is_unique


def test_exclude(records):
    kept = exclude(records, ["r1", "sd-r5", ""])
    assert [r.id for r in kept] == ["r0", "r2", "r3", "r4", "r6"]
    assert exclude(records, []) == records


def test_thin_keeps_one_grid_of_steps_and_each_runs_last():
    from srsweep.reports.frames import thin

    df = pd.DataFrame(
        {"run_id": ["a"] * 10 + ["b"] * 8, "step": [*range(10), *range(8)], "acc": range(18)}
    )
    out = thin(df, max_points=4)  # 10 distinct steps: every 3rd, plus each run's last
    assert out.groupby("run_id")["step"].agg(list).to_dict() == {
        "a": [0, 3, 6, 9], "b": [0, 3, 6, 7],
    }  # fmt: skip
    assert list(out["acc"]) == [0, 3, 6, 9, 10, 13, 16, 17]  # rows as they were, in order
    assert thin(df, max_points=10) is df  # short enough: untouched


@pytest.mark.parametrize(
    "ids",
    [
        ["a", "a", "b", "b", "b", "c"],  # run by run: found from where the id changes
        ["b", "a", "b", "c", "a", "a"],  # interleaved: by hashing
        ["a", "b", "a"],  # a run whose rows are apart
        [3, 3, 1, 1, 2],
        [],
    ],
    ids=["blocked", "interleaved", "split", "ints", "empty"],
)
def test_factorize_and_run_rows_agree_with_pandas(ids):
    values = np.array(ids, dtype=object if ids and isinstance(ids[0], str) else None)
    codes, uniques = frames.factorize(values)
    want_codes, want_uniques = pd.factorize(values, sort=False)
    assert codes.tolist() == want_codes.tolist() and list(uniques) == list(want_uniques)
    df = pd.DataFrame({"run_id": values, "step": np.arange(len(values))})
    got = frames.run_rows(df)
    want = df.groupby("run_id", sort=False).indices
    assert list(got) == list(want)
    assert all(got[k].tolist() == want[k].tolist() for k in want)


def _thin_by_sorting(df, max_points):
    """``thin`` as it was first written: hashing and sorting the steps."""
    steps = df["step"].to_numpy()
    distinct = np.sort(pd.unique(steps))
    if len(distinct) <= max_points:
        return df
    grid = distinct[:: -(-len(distinct) // max_points)]
    last = df.groupby("run_id")["step"].transform("max").to_numpy()
    return df[np.isin(steps, grid) | (steps == last)]


@pytest.mark.parametrize(
    "steps",
    [
        np.tile(np.arange(0, 5000, 25), 6),  # as logged: a table of every step
        np.random.default_rng(0).integers(-5, 3000, 1200),  # negative: sorted
        np.random.default_rng(1).random(1200) * 1000,  # floats
        np.arange(1200) * 10**9,  # too sparse for a table
        np.arange(1200).astype(np.uint32),
    ],
    ids=["logged", "negative", "floats", "sparse", "uint32"],
)
def test_thin_keeps_the_grid_and_each_curves_last_step(steps):
    df = pd.DataFrame({"run_id": np.repeat([f"r{i}" for i in range(6)], len(steps) // 6)})
    df["step"] = steps
    assert frames.thin(df, 50).index.equals(_thin_by_sorting(df, 50).index)
