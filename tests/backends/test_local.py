"""What is particular to the SQLite ledger: files, WAL, processes and migrations. What
every ledger backend does is the contract suite's (test_backend_contract.py)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from srsweep.backends.local import LocalBackend
from srsweep.backends.sql import LAST_LOGGED
from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError
from srsweep.testing.backend_contract import grid_spec


def test_reads_create_nothing(results):
    b = LocalBackend(results)
    assert b.sweeps() == [] and b.runs("x") == []
    with pytest.raises(NotFoundError, match="unknown sweep id 'x'"):
        b.sweep("x")
    assert not results.exists()


def test_the_ledger_is_an_sqlite_file_in_wal_mode(results):
    b = LocalBackend(results)
    b.create_sweep(grid_spec(2))
    assert b.location == str(results / "srsweep.db")
    mode = sqlite3.connect(results / "srsweep.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_corrupt_ledger_is_named(results):
    results.mkdir()
    (results / "srsweep.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptFileError, match="srsweep.db: not a readable srsweep ledger"):
        LocalBackend(results).sweeps()


def _claim_all(root, sid, out):
    b = LocalBackend(root)
    got = []
    while (r := b.claim(sid, "p")) is not None:
        got.append(r.params["target"])
    out.put(got)


@pytest.mark.slow
def test_concurrent_claims_never_repeat_a_grid_point(results):
    b = LocalBackend(results)
    sid = b.create_sweep(grid_spec(60))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(results, sid, out)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [x for _ in procs for x in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert sorted(claimed) == list(range(60))
    rows = sqlite3.connect(results / "srsweep.db").execute("SELECT COUNT(*) FROM runs").fetchone()
    assert rows == (60,)


def test_older_ledger_gains_new_columns(results):
    results.mkdir()
    old = sqlite3.connect(results / "srsweep.db")
    old.executescript(
        "CREATE TABLE sweeps (id TEXT PRIMARY KEY, name TEXT NOT NULL, kernel TEXT NOT NULL,"
        " spec TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, seed INTEGER NOT NULL,"
        " created_at REAL NOT NULL);"
        "INSERT INTO sweeps VALUES ('old1', 'n', 'toy', '{\"method\": \"grid\"}', 's', 'active', 1, 0);"
    )
    old.commit()
    old.close()
    b = LocalBackend(results)
    (sweep,) = b.sweeps()
    assert sweep.id == "old1" and sweep.remote is None


def test_a_write_cut_off_at_its_commit_leaves_the_ledger_writable(results):
    # what a second signal's KeyboardInterrupt at a log's COMMIT would do: the trial's
    # outcome, written next, must still begin its own transaction
    b = LocalBackend(results)
    sid = b.create_sweep(grid_spec(2))
    r = b.claim(sid, "a")
    assert r is not None
    db = b._db()
    said: list[str] = []
    db.set_trace_callback(said.append)
    db.set_progress_handler(lambda: int(said[-1:] == ["COMMIT"]), 1)  # abort the COMMIT
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        b.log(r.id, [{"_step": 0, "loss": 1.0}])
    db.set_progress_handler(None, 1)
    db.set_trace_callback(None)
    assert not db.in_transaction
    b.finish(r.id, "preempted", requeue=True)
    assert [(x.state, x.history) for x in b.runs(sid)] == [("preempted", []), ("queued", [])]


def test_last_logged_values_are_read_from_an_index_not_past_the_data_blobs(results):
    b = LocalBackend(results)
    sid = b.create_sweep(grid_spec(2))
    r = b.claim(sid, "p")
    b.log(r.id, [{"_step": 0, "acc": 0.5}, {"_step": 1, "acc": 0.75, "loss": 0.1}])
    b.finish(r.id, "finished", summary={})
    db = sqlite3.connect(results / "srsweep.db")
    plan = db.execute("EXPLAIN QUERY PLAN " + LAST_LOGGED.format(marks="?"), (r.id,)).fetchall()
    assert "COVERING INDEX history_columns_last" in str(plan)
    assert b.last_logged([r.id]) == {r.id: {"acc": 0.75, "loss": 0.1}}
