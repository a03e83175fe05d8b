"""create -> agent -> report through the CLI, on the real sd kernel with a tiny budget."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from srsweep.cli import main
from srsweep.store import load


@pytest.mark.slow
def test_smoke_study_end_to_end(tmp_path):
    spec = yaml.safe_load((Path(__file__).parents[1] / "sweeps" / "smoke.yaml").read_text())
    params = spec["parameters"]
    params["epochs"] = {"value": 40}
    params["avg_hor"] = {"value": 20}
    params["disc"]["parameters"]["loss"] = {"values": ["bce"]}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results"

    def cli(*args):
        res = CliRunner().invoke(main, ["--results", str(results), *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res

    sid = cli("create", str(path)).stdout.split()[-1]
    assert (
        "agent done: 2 finished (sweep finished: every grid point has run)"
        in cli("agent", sid).output
    )
    out = cli("report", sid).output
    for name in (
        "runs.csv",
        "history.csv",
        "best.csv",
        "trends.csv",
        "comparison.png",
        "by_ext.png",
        "report.md",
    ):
        assert (results / sid / name).is_file(), name
        assert str(results / sid / name) in out
    runs = pd.read_csv(results / sid / "runs.csv")
    assert len(runs) == 2
    assert {"run_id", "state", "ext", "disc.lr", "arch.lat_size", "summary.avg_acc"} <= set(runs)
    hist = pd.read_csv(results / sid / "history.csv")
    assert sorted(hist.groupby("run_id").size()) == [5, 5]  # epochs 0, 10, 20, 30, 39
    model = load(results / sid / "models" / f"{runs.run_id[0]}.joblib")
    assert {"hyperparams", "disc_state", "disc_opt_state", "tot_accs", "metrics"} <= set(model)
    assert len(model["tot_accs"]) == 40 and model["hyperparams"]["epochs"] == 40


def test_report_on_empty_sweep_is_a_clear_error(tmp_path, write_spec):
    results = tmp_path / "results"
    runner = CliRunner()
    sid = runner.invoke(
        main,
        [
            "--results",
            str(results),
            "create",
            str(write_spec("program: toy\nmethod: grid\nparameters: {steps: {value: 2}}\n")),
        ],
    ).stdout.split()[-1]
    res = runner.invoke(main, ["--results", str(results), "report", sid])
    assert res.exit_code == 2 and "Error: " in res.output and "Traceback" not in res.output
    assert not (results / sid).exists()
