"""Seed replicates: which runs form one configuration, and its curve and trend over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srsweep import config as cfg_mod
from srsweep import engine
from srsweep import kernels
from srsweep.reports import NO_DATA
from srsweep.reports import SEED_DEPENDENT
from srsweep.reports import TRENDS
from srsweep.reports import analyse
from srsweep.reports import config_ids
from srsweep.reports import config_trends
from srsweep.reports import runs_frame
from srsweep.reports.seeds import seed_curves
from srsweep.reports.seeds import seed_keys
from srsweep.spec import load_spec


def _seeded(fake_run, run_id, seed, lr, **disc):
    return fake_run(
        run_id,
        run_id,
        config={"seed": seed, "disc": {"lr": lr, "hid_size": 128, "betas": [0.9, 0.999], **disc}},
        params={"seed": seed, "disc": {"lr": lr}},
    )


def test_configurations_merge_exactly_the_runs_that_differ_only_in_seed(fake_run):
    runs = runs_frame(
        [
            _seeded(fake_run, "a0", 0, 1e-3),
            _seeded(fake_run, "b0", 0, 1e-4),
            _seeded(fake_run, "a1", 1, 1e-3),
            _seeded(fake_run, "a2", 2, 1e-3),
            _seeded(fake_run, "b1", 1, 1e-4),
            _seeded(fake_run, "c3", 3, 1e-3, hid_size=64),  # an unswept key differs too
            _seeded(fake_run, "d1", 1, 1e-3, betas=[0.5, 0.999]),  # so does a list value
        ]
    )
    assert seed_keys(runs) == ["seed"]
    assert config_ids(runs).to_dict() == {
        "a0": 1,
        "b0": 2,
        "a1": 1,
        "a2": 1,
        "b1": 2,
        "c3": 3,
        "d1": 4,
    }


def test_every_seed_key_is_ignored_and_without_one_each_run_stands_alone(fake_run):
    a = fake_run("a", "a", config={"seed": 0, "data": {"seed": 5}, "lr": 1})
    b = fake_run("b", "b", config={"seed": 1, "data": {"seed": 6}, "lr": 1})
    assert config_ids(runs_frame([a, b])).tolist() == [1, 1]
    c, d = fake_run("c", "c", config={"lr": 1}), fake_run("d", "d", config={"lr": 1})
    assert config_ids(runs_frame([c, d])).tolist() == [1, 1]  # the same config: repeats
    assert config_ids(runs_frame([c, fake_run("e", "e", config={"lr": 2})])).tolist() == [1, 2]


def test_a_configurations_trend_is_the_seeds_majority_with_the_agreement():
    fast, drops, slow, flat = TRENDS
    trends = pd.DataFrame(
        {
            "run_id": ["a0", "a1", "a2", "b0", "b1", "c0", "d0", "d1", "d2"],
            "trend": [fast, fast, slow, fast, drops, flat, NO_DATA, slow, slow],
        }
    )
    config = pd.Series([1, 1, 1, 2, 2, 3, 4, 4, 4], index=trends["run_id"])
    out = config_trends(trends, config).set_index("config")
    assert out["trend"].tolist() == [fast, SEED_DEPENDENT, flat, slow]
    assert out["label"].tolist() == [
        f"2/3 seeds: {fast}",
        f"{SEED_DEPENDENT} (2 seeds)",
        flat,
        f"2/2 seeds: {slow}",
    ]
    assert out.loc[4, ["agree", "voters"]].tolist() == [2, 2]  # a seed without data does not vote
    none = config_trends(trends.assign(trend=NO_DATA), config)
    assert set(none["trend"]) == {NO_DATA}


def test_seed_curves_are_the_mean_and_std_over_seeds_at_each_step():
    smoothed = pd.DataFrame(
        {
            "run_id": ["a0", "a0", "a1", "a1", "b0"],
            "step": [0, 10, 0, 10, 0],
            "acc_smooth": [0.5, 0.7, 0.6, np.nan, 0.9],
        }
    )
    config = pd.Series({"a0": 1, "a1": 1, "b0": 2})
    out = seed_curves(smoothed, config, "acc_smooth")
    assert out[["config", "step", "seeds"]].values.tolist() == [[1, 0, 2], [1, 10, 1], [2, 0, 1]]
    assert out["mean"].tolist() == pytest.approx([0.55, 0.7, 0.9])
    assert out["std"].tolist() == pytest.approx([0.05, 0.0, 0.0])


def test_a_replicated_sweep_counts_configurations_and_seeds(make_run):
    runs = []
    for i, (kind, lr) in enumerate(
        [("fast_holds", 1e-4)] * 3 + [("flat", 1e-2)] * 2 + [("slow", 1e-5)]
    ):
        run = make_run(f"r{i}", kind, lr, 2, seed=i)
        run.config["seed"] = run.params["seed"] = i
        runs.append(run)
    study = analyse(runs, metric="avg_acc", goal="maximize", curve="acc")
    assert study.replicated
    assert study.configs["seeds"].tolist() == [3, 2, 1]
    assert study.configs["label"].tolist() == [
        "3/3 seeds: learns fast, holds",
        "2/2 seeds: not learning",
        "slow, still improving",
    ]
    assert study.keys == ["disc.lr"]  # the seed is no hyperparameter
    assert study.trends.set_index("run_id").loc["r4", "config trend"] == "2/2 seeds: not learning"
    assert sorted(study.curves["config"].unique()) == [1, 2, 3]
    assert study.best_config is not None and study.best_config.number == 1
    assert study.best_config.seeds == 3


@pytest.mark.parametrize(
    ("name", "configs", "seeds"),
    [("sd_153_seeds", 24, [0, 1, 2, 3, 4]), ("sd_153_seeds_small", 8, [0, 1, 2])],
    ids=["full", "small"],
)
def test_the_153_seed_studies_repeat_each_configuration_over_every_seed(
    fake_run, name, configs, seeds
):
    spec = load_spec(Path(__file__).parents[2] / "sweeps" / f"{name}.yaml")
    points = engine.suggest(spec.raw, [], 1000, seed=0)  # every point of the grid
    assert len(points) == configs * len(seeds)
    sd = kernels.get("sd")
    runs = runs_frame(
        [
            fake_run(
                f"r{i}",
                f"r{i}",
                config=cfg_mod.to_dict(cfg_mod.build(sd.config, p, name)),
                params=p,
            )
            for i, p in enumerate(points)
        ]
    )
    config = config_ids(runs)
    assert config.nunique() == configs
    by_config = runs.assign(config=config.to_numpy()).groupby("config")["seed"]
    assert all(sorted(s) == seeds for _, s in by_config)  # every seed, once each
