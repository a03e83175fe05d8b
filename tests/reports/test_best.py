"""The best run's command trains the same config again."""

from __future__ import annotations

import shlex

import pandas as pd
import pytest

from srsweep import kernels
from srsweep.config import build
from srsweep.config import to_dict
from srsweep.reports.best import _set_text
from srsweep.reports.best import best_config
from srsweep.reports.best import best_run
from srsweep.reports.best import rerun_command
from srsweep.spec import parse_sets


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"disc.lr": 1e-5, "seed": 3, "ext": ["grad"], "disc.loss": "bce", "disc.betas": [0.5, 0.9]},
        {"ext_type": "stack", "device": "cpu", "arch.hid_num": [3, 1], "runtime": 60.0},
    ],
    ids=["defaults", "numbers-and-lists", "strings-and-floats"],
)
def test_the_command_rebuilds_the_runs_config(overrides):
    cls = kernels.get("sd").config
    config = to_dict(build(cls, overrides, "test"))
    command = rerun_command("sd", config)
    words = shlex.split(command)
    assert words[:3] == ["srsweep", "run", "sd"] and words[3::2] == ["--set"] * len(words[3::2])
    assert len(words[3::2]) == len(overrides)  # only what differs from the defaults
    assert to_dict(build(cls, parse_sets(words[4::2]), "--set")) == config


@pytest.mark.parametrize("value", ["true", "1e-3", "null", "wgan", "a b", "[x]", 1e-5, None, True])
def test_each_value_reads_back_as_itself(value):
    (word,) = shlex.split(shlex.quote(f"k={_set_text(value)}"))
    assert parse_sets([word]) == {"k": value}


def test_best_counts_only_finished_or_stopped_runs_by_their_final_value():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "name": ["a", "b", "c", "d"],
            "state": ["running", "finished", "stopped", "failed"],
            "config": [1, 1, 2, 3],
            "summary.loss": [0.01, 0.3, 0.2, 0.0],
        }
    )
    b = best_run(runs, "loss", "minimize", {"c": "m/c.joblib"}, None, {"c": {"disc": {"lr": 1}}})
    assert b is not None and (b.run_id, b.value, b.model_path) == ("c", 0.2, "m/c.joblib")
    assert b.config == {"disc.lr": 1} and b.command is None  # no kernel: a script's run
    assert best_run(runs, "loss", "maximize", {}, None, {}).run_id == "b"
    assert best_run(runs.assign(state="running"), "loss", "minimize", {}, None, {}) is None
    configs = pd.DataFrame(
        {
            "config": [1, 2],
            "loss mean": [0.3, None],
            "loss std": [0.1, None],
            "loss n": [2, 0],
            "run_ids": [["a", "b"], ["c"]],
        }
    )
    best = best_config(configs, "loss", "minimize")
    assert best is not None and (best.number, best.seeds, best.run_ids) == (1, 2, ["a", "b"])
