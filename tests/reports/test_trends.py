from __future__ import annotations

import math

import pandas as pd
import pytest

from srsweep.reports import NO_DATA
from srsweep.reports import TRENDS
from srsweep.reports import characterise
from srsweep.reports import classify
from srsweep.reports import history_frame
from srsweep.reports import runs_frame
from srsweep.reports import smooth

AVG_HOR = 500  # as the synthetic runs' configs


def _smoothed(records, metric="acc"):
    return smooth(history_frame(records), metric, AVG_HOR)


def test_each_synthetic_run_gets_its_trend(records, intended):
    out = classify(_smoothed(records), "acc_smooth", warmup=AVG_HOR)
    assert list(out.columns) == ["run_id", "trend", "peak", "final", "reach_at"]
    assert dict(zip(out["run_id"], out["trend"], strict=True)) == intended
    r1 = out.set_index("run_id").loc["r1"]
    assert r1["peak"] > 0.85 and r1["final"] < 0.7


@pytest.mark.parametrize("seed", range(10, 15))
def test_classification_is_stable_across_noise(seed, make_run):
    kinds = {"fast_holds": TRENDS[0], "fast_drops": TRENDS[1], "slow": TRENDS[2], "flat": TRENDS[3]}
    runs = [make_run(kind, kind, 1e-4, 2, seed=seed) for kind in kinds]
    out = classify(_smoothed(runs), "acc_smooth", warmup=AVG_HOR)
    assert dict(zip(out["run_id"], out["trend"], strict=True)) == kinds


def test_minimized_metric_gives_the_same_trends(records, intended):
    # loss = 1 - acc, so "chance" is 0.5 again but lower is better.
    out = classify(_smoothed(records, "loss"), "loss_smooth", warmup=AVG_HOR, goal="minimize")
    assert dict(zip(out["run_id"], out["trend"], strict=True)) == intended
    assert out.set_index("run_id").loc["r0", "peak"] < 0.15  # reported in the metric's units


def test_without_chance_the_start_is_the_baseline():
    # A curve that starts at 3 and rises to 4: with chance 0.5 every point is "above
    # chance"; judged from its own start it is a slow riser.
    steps = range(0, 1000, 10)
    df = pd.DataFrame({"run_id": "a", "step": steps, "m": [3 + s / 1000 for s in steps]})
    assert classify(df, "m", chance=None)["trend"].item() == TRENDS[2]
    flat = df.assign(m=3.0)
    assert classify(flat, "m", chance=None)["trend"].item() == TRENDS[3]


def test_run_without_values_is_no_data():
    df = pd.DataFrame({"run_id": ["a", "a"], "step": [0, 1], "m": [math.nan, math.nan]})
    assert classify(df, "m")["trend"].item() == NO_DATA


def test_characterise_counts_and_typical_values(records):
    runs = runs_frame(records)
    trends = classify(_smoothed(records), "acc_smooth", warmup=AVG_HOR)
    out = characterise(runs, trends, ["disc.lr", "disc.hid_num"]).set_index("trend")
    assert list(out.index) == list(TRENDS)
    assert list(out.columns) == [
        "count", "disc.lr mode", "disc.lr median", "disc.hid_num mode", "disc.hid_num median"
    ]  # fmt: skip
    assert out["count"].to_dict() == dict(zip(TRENDS, [2, 1, 2, 2], strict=True))
    assert out.loc["learns fast, holds", "disc.lr mode"] == 1e-4
    assert out.loc["learns fast, holds", "disc.hid_num median"] == 4.0  # runs with 2 and 6
    assert out.loc["not learning", "disc.lr mode"] == 1e-2


def test_characterise_keeps_empty_trends_and_tuple_values(records):
    runs = runs_frame(records[:1])
    trends = classify(_smoothed(records[:1]), "acc_smooth", warmup=AVG_HOR)
    out = characterise(runs, trends, ["arch.hid_num"]).set_index("trend")
    assert out["count"].tolist() == [1, 0, 0, 0]
    assert out.loc["learns fast, holds", "arch.hid_num mode"] == (2, 0)
    assert out.loc["not learning", "arch.hid_num mode"] is None
    assert "arch.hid_num median" not in out.columns  # tuples have no median
