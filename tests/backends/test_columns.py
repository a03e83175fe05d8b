"""The columnar history: how an ended run is stored, how a ledger written before it
migrates (``data/v1_ledger.db``, made by srsweep before the columns), and copies."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from srsweep.backends import LocalBackend
from srsweep.backends.columns import decode
from srsweep.backends.columns import encode
from srsweep.backends.columns import to_rows

DATA = Path(__file__).parent / "data"


@pytest.fixture
def old(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A writable copy of the old ledger, and what the old srsweep read from it."""
    shutil.copy(DATA / "v1_ledger.db", tmp_path / "v1_ledger.db")
    return tmp_path / "v1_ledger.db", json.loads((DATA / "v1_expected.json").read_text())


def _counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(DISTINCT run_id) FROM history").fetchone()[0]
        cols = db.execute("SELECT COUNT(DISTINCT run_id) FROM history_columns").fetchone()[0]
    return {"with rows": rows, "compacted": cols}


def test_encoding_is_exact_and_pickle_free() -> None:
    rows: list[dict[str, Any]] = [
        {"_step": 0, "x": 1.5, "big": 2**70, "b": True},
        {"_step": 1, "x": float("inf"), "s": "a", "b": False},
        {"_step": 2, "d": {"k": [1, None]}},
    ]
    cols = encode(rows)
    assert [(c.key, c.kind) for c in cols] == [
        ("_step", "i8"),
        ("x", "f8"),
        ("big", "json"),
        ("b", "b1"),
        ("s", "json"),
        ("d", "json"),
    ]
    assert to_rows(3, [(c.key, c.kind, c.present, c.data) for c in cols]) == rows
    x = next(c for c in cols if c.key == "x")
    assert x.data == np.array([1.5, np.inf], "<f8").tobytes()  # raw little-endian floats
    np.testing.assert_array_equal(decode(x.kind, 3, x.present, x.data), [1.5, np.inf, np.nan])


def test_an_old_ledger_reads_the_same_and_its_ended_runs_are_compacted_on_open(
    old: tuple[Path, dict[str, Any]],
) -> None:
    path, expected = old
    with sqlite3.connect(path) as db:  # as made: every history is JSON rows
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name='history_columns'").fetchone()
            is None
        )
    ledger = LocalBackend(path.parent, filename=path.name)
    runs = ledger.runs(expected["sweep_id"])
    names = {v: k for k, v in expected["ids"].items()}
    assert {names.get(r.id, r.id): r.state for r in runs} == expected["states"]
    got = {names.get(r.id, r.id): r.history for r in runs if r.history}
    assert json.dumps(got) == json.dumps(expected["history"])
    ledger.close()
    # the four ended runs are columns now; the two running ones are still rows
    assert _counts(path) == {"with rows": 2, "compacted": 4}
    ended = [r.id for r in runs if r.state not in ("running", "queued")]
    cols = LocalBackend(path.parent, filename=path.name).history_columns(ended, ["acc"])
    for r in runs:
        if r.id in ended:
            acc = [row["acc"] for row in r.history]
            np.testing.assert_array_equal(cols[r.id]["acc"], acc)


def test_a_read_only_old_ledger_reads_from_its_rows(
    old: tuple[Path, dict[str, Any]],
) -> None:
    path, expected = old
    files = [path, path.parent]  # the file, and the folder its WAL would need
    locked = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True)
    if locked.returncode != 0:  # not root, or a file system without the attribute
        pytest.skip(f"cannot make the ledger read-only here: {locked.stderr.decode().strip()}")
    try:
        assert not os.access(path, os.W_OK)
        ledger = LocalBackend(path.parent, filename=path.name)
        fin = expected["ids"]["fin-a"]
        cols = ledger.history_columns([fin], ["phase"])[fin]
        assert cols["phase"].tolist() == [r["phase"] for r in expected["history"]["fin-a"]]
        assert ledger.last_logged([fin])[fin]["lat"] == [0.25, 1.5]
        got = {r.id: r.history for r in ledger.runs(expected["sweep_id"])}
        assert json.dumps(got[fin]) == json.dumps(expected["history"]["fin-a"])
        ledger.close()
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)


def test_finish_compacts_and_copy_to_carries_columns_and_rows(tmp_path: Path) -> None:
    src = LocalBackend(tmp_path / "a")
    ended, live = (src.start_run("sd", {}, "x") for _ in range(2))
    rows = [{"_step": i, "acc": i / 10, "note": f"n{i}"} for i in range(5)]
    src.log(ended.id, rows)
    src.log(live.id, rows[:2])
    src.finish(ended.id, "finished", summary={"acc": 0.4})
    assert _counts(src.path) == {"with rows": 1, "compacted": 1}
    dst = LocalBackend(tmp_path / "b")
    assert src.copy_to(dst)["rows"] == 7
    assert src.copy_to(dst)["rows"] == 0  # nothing changed: nothing copied again
    assert _counts(dst.path) == {"with rows": 1, "compacted": 1}
    assert dst.run(ended.id).history == rows and dst.run(live.id).history == rows[:2]
    assert dst.history_columns([ended.id])[ended.id]["note"].tolist() == [r["note"] for r in rows]
