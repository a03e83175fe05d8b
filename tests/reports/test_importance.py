"""Importance per hyperparameter, on synthetic sweeps whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from srsweep.reports import importance
from srsweep.reports.importance import MIN_RUNS


def _sweep(n: int, seed: int = 0) -> pd.DataFrame:
    """``disc.lr`` (log-uniform) decides ``avg_acc``; ``disc.hid_num`` and ``disc.loss``
    are drawn but play no part."""
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-5, -2, n)
    acc = 0.5 + 0.4 * (np.log10(lr) + 5) / 3 + rng.normal(0, 0.01, n)
    return pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(n)],
            "state": "finished",
            "disc.lr": lr,
            "disc.hid_num": rng.choice([2, 4, 6, 8], n),
            "disc.loss": rng.choice(["bce", "wgan"], n),
            "summary.avg_acc": acc,
        }
    )


KEYS = ["disc.hid_num", "disc.lr", "disc.loss"]


def test_the_decisive_hyperparameter_ranks_first_and_the_irrelevant_near_zero():
    table, why = importance(_sweep(60), KEYS, "avg_acc")
    assert why == "" and table is not None
    assert table["key"].tolist()[0] == "disc.lr"
    assert table["rank"].tolist() == [1, 2, 3]
    t = table.set_index("key")
    assert t.loc["disc.lr", "importance"] > 0.5  # most of the variance is lr's
    for key in ("disc.hid_num", "disc.loss"):
        assert abs(t.loc[key, "importance"]) < 0.05
        assert (
            t.loc["disc.lr", "importance"] - 3 * t.loc["disc.lr", "std"] > t.loc[key, "importance"]
        )
    assert (t["std"] > 0).all() and (t["runs"] == 60).all()
    assert t["heldout_r2"].iloc[0] > 0.8  # lr predicts the metric well


def test_it_is_reproducible_and_uses_only_finished_or_stopped_runs():
    runs = _sweep(40)
    runs.loc[:4, "state"] = ["running", "failed", "stopped", "crashed", "stopped"]
    first, _ = importance(runs, KEYS, "avg_acc")
    again, _ = importance(runs, KEYS, "avg_acc")
    pd.testing.assert_frame_equal(first, again)
    assert first is not None and (first["runs"] == 37).all()


def test_what_cannot_be_computed_says_why():
    runs = _sweep(MIN_RUNS)
    assert importance(runs.head(MIN_RUNS - 1), KEYS, "avg_acc") == (
        None,
        f"{MIN_RUNS - 1} run(s) finished or stopped with a value of avg_acc; "
        f"importance needs at least {MIN_RUNS}",
    )
    assert importance(runs, [], "avg_acc") == (
        None,
        "no swept hyperparameter differs between the runs",
    )
    assert importance(runs.assign(**{"summary.avg_acc": 0.7}), KEYS, "avg_acc") == (
        None,
        "avg_acc is the same in every run",
    )
    assert importance(runs, KEYS, "val_loss")[1] == "no run has a summary value of val_loss"
    one = runs.assign(**{"disc.lr": 1e-3, "disc.hid_num": 2, "disc.loss": "bce"})
    assert importance(one, KEYS, "avg_acc")[1].startswith("no swept hyperparameter differs")
    table, _ = importance(runs.assign(**{"disc.hid_num": 2}), KEYS, "avg_acc")
    assert table is not None and "disc.hid_num" not in set(table["key"])  # a single value
