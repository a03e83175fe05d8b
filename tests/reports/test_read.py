"""The report's first stage: histories read from the ledger's columns give the report
that the runs' rows give, and an old ledger reports as it did before the columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srsweep import api
from srsweep.backends import LocalBackend
from srsweep.reports import columns_frame
from srsweep.reports import history_frame
from srsweep.reports import read_logged
from srsweep.reports import write_report
from srsweep.reports.frames import MAX_POINTS
from srsweep.reports.frames import plain_ids

DATA = Path(__file__).parents[1] / "backends" / "data"
TABLES = ("runs.csv", "configs.csv", "history.csv", "best.csv", "trends.csv")


def test_an_old_ledger_reports_the_numbers_it_reported_before(tmp_path: Path) -> None:
    expected = json.loads((DATA / "v1_expected.json").read_text())
    shutil.copy(DATA / "v1_ledger.db", tmp_path / "v1_ledger.db")
    ledger = str(tmp_path / "v1_ledger.db")
    out = tmp_path / "report"
    api.report(expected["sweep_id"], results=tmp_path, ledger=ledger, out=out, mirror=False)
    for name in TABLES:  # made by srsweep before the columns existed, from its rows
        assert (out / name).read_text() == expected["report"][name], name
    hist = api.history(expected["sweep_id"], results=tmp_path, ledger=ledger)
    assert json.loads(hist.to_json(orient="records")) == expected["history_frame"]


@pytest.fixture
def long_sweep(tmp_path: Path) -> tuple[LocalBackend, list[str]]:
    """Four runs of 3 * MAX_POINTS steps (so the drawn steps are thinned), one still
    running, one that logs a string and skips ``loss`` at times."""
    ledger = LocalBackend(tmp_path / "results")
    rng = np.random.default_rng(3)
    ids = []
    for i in range(4):
        r = ledger.start_run("sd", {"disc": {"lr": 10.0**-i}, "avg_hor": 30}, "test")
        rows = []
        for s in range(3 * MAX_POINTS + i):
            row = {"_step": s, "epoch": s, "acc": 0.5 + s / 2000 * i + rng.normal(0, 0.01)}
            if i != 2 or s % 7:
                row["loss"] = float(rng.random())
            if i == 1:
                row["note"] = f"n{s % 3}"
            rows.append(row)
        ledger.log(r.id, rows)
        if i != 3:
            ledger.finish(r.id, "finished", summary={"avg_acc": rows[-1]["acc"]})
        ids.append(r.id)
    return ledger, ids


def test_columns_give_the_report_the_rows_give(
    long_sweep: tuple[LocalBackend, list[str]], tmp_path: Path
) -> None:
    ledger, ids = long_sweep
    full = ledger.runs(None)
    columns = columns_frame(ledger.history_columns(ids), ids)
    assert isinstance(columns["run_id"].dtype, pd.CategoricalDtype)  # a code per row
    pd.testing.assert_frame_equal(plain_ids(columns), history_frame(full))
    light = ledger.runs(None, history=False)
    logged = read_logged(ledger, ids, ["acc", "epoch"])
    assert list(logged.frame.columns) == ["run_id", "step", "epoch", "acc"]
    assert logged.keys == ["epoch", "acc", "loss", "note"]
    assert logged.rest is not None  # the other keys: read only for history.csv
    kept = np.arange(0, len(logged.frame), 7)
    extra, keys = logged.rest.at(kept)
    assert keys == ["epoch", "acc", "loss", "note"] and list(extra.columns) == ["loss", "note"]
    whole = plain_ids(columns)
    pd.testing.assert_frame_equal(extra, whole.loc[kept, ["loss", "note"]], check_dtype=False)
    kw = {"metric": "avg_acc", "goal": "maximize", "curve": "acc", "kernel": "sd"}
    write_report(full, tmp_path / "rows", **kw)
    write_report(light, tmp_path / "columns", logged=logged, **kw)
    for name in TABLES:
        assert (tmp_path / "columns" / name).read_text() == (tmp_path / "rows" / name).read_text()
    drawn = pd.read_csv(tmp_path / "columns" / "history.csv")
    assert drawn.groupby("run_id")["step"].max().to_dict() == {
        rid: 3 * MAX_POINTS + i - 1 for i, rid in enumerate(ids)
    }
