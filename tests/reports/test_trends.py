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
from srsweep.reports.seeds import config_ids
from srsweep.reports.seeds import config_trends
from srsweep.reports.seeds import configs_frame
from srsweep.reports.trends import metric_range

AVG_HOR = 500  # as the synthetic runs' configs
KEYS = ["disc.lr", "disc.hid_num"]


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


def _configs(records, keys):
    runs = runs_frame(records)
    config = config_ids(runs)
    per_config = config_trends(classify(_smoothed(records), "acc_smooth", warmup=AVG_HOR), config)
    return configs_frame(runs, config, keys, "avg_acc", per_config)


def test_characterise_counts_configurations_runs_and_typical_values(records):
    out = characterise(_configs(records, KEYS), KEYS).set_index("trend")
    assert list(out.index) == list(TRENDS)
    assert list(out.columns) == [
        "configurations",
        "runs",
        "disc.lr mode",
        "disc.lr median",
        "disc.hid_num mode",
        "disc.hid_num median",
    ]
    assert out["configurations"].to_dict() == dict(zip(TRENDS, [2, 1, 2, 2], strict=True))
    assert out["runs"].to_dict() == out["configurations"].to_dict()  # one seed each
    assert out.loc["learns fast, holds", "disc.lr mode"] == 1e-4
    assert out.loc["learns fast, holds", "disc.hid_num median"] == 4.0  # runs with 2 and 6
    assert out.loc["not learning", "disc.lr mode"] == 1e-2


def test_characterise_counts_seeds_apart_from_configurations(records):
    for i, r in enumerate(records):  # r0 and r4: two seeds of one configuration
        r.config["seed"] = i
    records[4].config["disc"]["hid_num"] = records[0].config["disc"]["hid_num"]
    records[4].params["disc"]["hid_num"] = records[0].params["disc"]["hid_num"]
    out = characterise(_configs(records, KEYS), KEYS).set_index("trend")
    assert out.loc["learns fast, holds", ["configurations", "runs"]].tolist() == [1, 2]
    assert out["runs"].sum() == 7 and out["configurations"].sum() == 6


def test_characterise_keeps_empty_trends_and_tuple_values(records):
    out = characterise(_configs(records[:1], ["arch.hid_num"]), ["arch.hid_num"]).set_index("trend")
    assert out["configurations"].tolist() == [1, 0, 0, 0]
    assert out.loc["learns fast, holds", "arch.hid_num mode"] == (2, 0)
    assert out.loc["not learning", "arch.hid_num mode"] is None
    assert "arch.hid_num median" not in out.columns  # tuples have no median


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("acc", [0.0, 0.7, 1.0], (0.0, 1.0)),
        ("val_accuracy", [0.5], (0.0, 1.0)),
        ("acc", [0.5, 1.2], None),  # an "acc" beyond 1 is no accuracy
        ("loss", [0.1, 0.9], None),
    ],
    ids=["acc", "accuracy", "beyond-1", "loss"],
)
def test_metric_range(name, values, expected):
    assert metric_range(name, pd.Series(values)) == expected
