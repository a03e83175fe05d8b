from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from srsweep.backends.local import LocalBackend
from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError
from srsweep.spec import validate


def _spec(n: int = 4, method: str = "grid"):
    return validate(
        {"program": "toy", "method": method, "parameters": {"target": {"values": list(range(n))}}},
        "t.yaml",
    )


def test_reads_create_nothing(results):
    b = LocalBackend(results)
    assert b.sweeps() == [] and b.runs("x") == []
    with pytest.raises(NotFoundError, match="unknown sweep id 'x'"):
        b.sweep("x")
    assert not results.exists()


def test_create_claim_log_finish_roundtrip(results):
    b = LocalBackend(results)
    sid = b.create_sweep(_spec(2))
    assert b.sweep(sid).kernel == "toy" and b.sweep(sid).state == "active"
    r1 = b.claim(sid, "a")
    r2 = b.claim(sid, "a")
    assert b.claim(sid, "a") is None  # grid exhausted
    assert {r1.params["target"], r2.params["target"]} == {0, 1}
    b.log(r1.id, [{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": 0.5}])
    b.finish(r1.id, "finished", config={"target": 0}, summary={"loss": 0.5}, model_path="m.joblib")
    got = {r.id: r for r in b.runs(sid)}
    assert got[r1.id].state == "finished" and got[r1.id].summary == {"loss": 0.5}
    assert [h["loss"] for h in got[r1.id].history] == [1.0, 0.5]
    assert got[r1.id].config == {"target": 0} and got[r1.id].model_path == "m.joblib"
    assert got[r2.id].state == "running" and got[r2.id].history == []
    assert b.sweep(sid).counts == {"finished": 1, "running": 1}
    assert LocalBackend(results).run(r1.id).history[1]["_step"] == 1


def test_stopped_sweep_hands_out_nothing(results):
    b = LocalBackend(results)
    sid = b.create_sweep(_spec(3))
    b.set_sweep_state(sid, "stopped")
    assert b.claim(sid, "a") is None


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
    sid = b.create_sweep(_spec(60))
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


def test_dead_lease_is_crashed_and_requeued(results):
    b = LocalBackend(results, lease_timeout=5)
    sid = b.create_sweep(_spec(2))
    first = b.claim(sid, "dead-agent")
    b.log(first.id, [{"_step": 0, "loss": 3.0}])
    # the agent dies: no heartbeat for longer than the lease
    b._db().execute("UPDATE runs SET heartbeat_at = heartbeat_at - 60 WHERE id=?", (first.id,))
    again = b.claim(sid, "live-agent")
    assert again.params == first.params and again.attempt == 2 and again.retry_of == first.id
    old = b.run(first.id)
    assert old.state == "crashed" and "no heartbeat" in old.error
    assert [h["loss"] for h in old.history] == [3.0]  # the partial attempt is kept apart
    assert again.history == []
    other = b.claim(sid, "live-agent")
    assert other.params != first.params
    assert b.claim(sid, "live-agent") is None


def test_retry_requeues_once(results):
    b = LocalBackend(results)
    sid = b.create_sweep(_spec(3))
    runs = [b.claim(sid, "a") for _ in range(3)]
    b.finish(runs[0].id, "failed", error="x")
    b.finish(runs[1].id, "preempted")
    b.finish(runs[2].id, "finished")
    assert len(b.retry(sid, ("failed",))) == 1
    assert b.retry(sid, ("failed",)) == []  # already queued again
    assert len(b.retry(sid, ("preempted", "crashed"))) == 1
    assert sorted(r.state for r in b.runs(sid)) == [
        "failed",
        "finished",
        "preempted",
        "queued",
        "queued",
    ]


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
