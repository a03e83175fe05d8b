"""The ledger contract: what every backend that keeps a sweep ledger does (the SQLite
one today, a PostgreSQL one later), stated once as a pytest suite.

Subclass ``BackendContract`` in a test module and implement ``make_backend``, which
opens a new, empty ledger; every test is inherited::

    class TestLocalBackend(BackendContract):
        def make_backend(self, tmp_path: Path) -> Backend:
            return LocalBackend(tmp_path / "results")

The suite talks to the backend through the ``Backend`` protocol only: concurrency is
several threads, each on its own ``reopen()`` handle, and leases run out on the clock
(a short ``lease_timeout``), so it holds for any store. Its sweeps are of the test-only
``toy`` kernel, registered here when the caller has not done so.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from srsweep import engine
from srsweep import kernels
from srsweep.backends import TERMINAL
from srsweep.backends import Backend
from srsweep.backends import RunRecord
from srsweep.backends import current
from srsweep.errors import LeaseLostError
from srsweep.errors import NotFoundError
from srsweep.spec import Spec
from srsweep.spec import validate

__all__ = ["BackendContract", "grid_spec", "packs_spec"]

LEASE = 1.0  # seconds: short enough to run out in a test, long enough to keep beating


def grid_spec(n: int, method: str = "grid", **more: Any) -> Spec:
    """A validated sweep of the toy kernel over ``target`` in ``0 .. n-1`` (``more``:
    further top-level keys, e.g. ``run_cap``, ``metric``)."""
    raw = {"program": "toy", "method": method, "parameters": {"target": {"values": list(range(n))}}}
    return validate({**raw, **more}, "contract.yaml")


def packs_spec(method: str = "random", **more: Any) -> Spec:
    """A validated sweep of the toy kernel over ``target`` in ``0 .. 7`` and ``steps``
    in ``1 .. 4``: four pack keys when trials are keyed by ``steps``."""
    params = {"target": {"values": list(range(8))}, "steps": {"values": [1, 2, 3, 4]}}
    return validate({"program": "toy", "method": method, "parameters": params, **more}, "c.yaml")


def _steps(params: dict[str, Any]) -> int:
    """The pack key of the packed-claim tests."""
    return int(params["steps"])


def _claim_from_threads(
    backend: Backend, threads: int, claim: Callable[[Backend, str], list[RunRecord]]
) -> list[RunRecord]:
    """Every trial ``threads`` threads claimed, each through a handle of its own (as the
    protocol asks) and all starting at once: ``claim(handle, name)`` until it returns
    none. An error in a thread fails the test."""
    claimed: list[RunRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def claim_all(name: str) -> None:
        handle = backend.reopen()
        try:
            start.wait()
            while got := claim(handle, name):
                with lock:
                    claimed.extend(got)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)
        finally:
            handle.close()

    workers = [threading.Thread(target=claim_all, args=(f"t{i}",)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    return claimed


def _targets(runs: list[RunRecord]) -> list[int]:
    return sorted(int(r.params["target"]) for r in runs)


class BackendContract:
    """What every ledger backend does; the subclass implements ``make_backend``."""

    def make_backend(self, tmp_path: Path) -> Backend:
        """A backend on a new, empty ledger kept under ``tmp_path`` (or on a server)."""
        raise NotImplementedError("implement make_backend in the subclass")

    @pytest.fixture(autouse=True)
    def _toy_kernel(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if "toy" not in kernels.names():
            monkeypatch.setenv("SRSWEEP_KERNELS", "toy=srsweep.testing.toy")

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        b = self.make_backend(tmp_path)
        yield b
        b.close()

    # --- sweeps -----------------------------------------------------------------------

    def test_a_created_sweep_reads_back(self, backend: Backend) -> None:
        spec = grid_spec(3)
        t0 = time.time()
        sid = backend.create_sweep(spec)
        s = backend.sweep(sid)
        assert (s.id, s.name, s.kernel, s.spec, s.source) == (
            sid,
            spec.name,
            "toy",
            spec.raw,
            spec.source,
        )
        assert s.state == "active" and s.counts == {} and s.remote is None
        assert isinstance(s.seed, int) and t0 - 1 <= s.created_at <= time.time() + 1
        other = backend.create_sweep(spec, remote="ent/proj/abc123")
        assert other != sid and backend.sweep(other).remote == "ent/proj/abc123"
        assert [x.id for x in backend.sweeps()] == [sid, other]  # oldest first

    def test_a_stopped_sweep_hands_out_nothing_until_active_again(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(3))
        backend.set_sweep_state(sid, "stopped")
        assert backend.sweep(sid).state == "stopped"
        assert backend.claim(sid, "a") is None
        backend.set_sweep_state(sid, "active")
        assert backend.claim(sid, "a") is not None

    def test_a_used_up_grid_finishes_the_sweep_once_nothing_runs(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        first, second = backend.claim(sid, "a"), backend.claim(sid, "a")
        assert first is not None and second is not None
        backend.finish(first.id, "finished")
        assert backend.claim(sid, "a") is None
        assert backend.sweep(sid).state == "active"  # a trial still runs: it may come back
        backend.finish(second.id, "finished")
        assert backend.claim(sid, "a") is None
        s = backend.sweep(sid)
        assert (s.state, s.reason) == ("finished", "every grid point has run")
        backend.set_sweep_state(sid, "active")  # what `retry` does
        assert backend.sweep(sid).reason is None

    def test_a_used_up_run_cap_finishes_the_sweep(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(5, method="random", run_cap=2))
        for _ in range(2):
            r = backend.claim(sid, "a")
            assert r is not None
            backend.finish(r.id, "finished")
        assert backend.claim(sid, "a") is None
        s = backend.sweep(sid)
        assert (s.state, s.reason) == ("finished", "run_cap of 2 reached")

    @pytest.mark.parametrize(
        ("goal", "values", "hit"),
        [
            ("minimize", [0.5, 0.05], 1),
            ("maximize", [0.5, 0.95], 1),
            ("minimize", [0.5, 0.2], None),
        ],
    )
    def test_metric_target_ends_the_sweep(
        self, backend: Backend, goal: str, values: list[float], hit: int | None
    ) -> None:
        metric = {"name": "loss", "goal": goal, "target": 0.1 if goal == "minimize" else 0.9}
        sid = backend.create_sweep(grid_spec(5, metric=metric))
        ids = []
        for v in values:
            r = backend.claim(sid, "a")
            assert r is not None
            backend.finish(r.id, "finished", summary={"loss": v})
            ids.append(r.id)
        nxt = backend.claim(sid, "a")
        s = backend.sweep(sid)
        if hit is None:
            assert nxt is not None and s.state == "active"
            return
        assert nxt is None and s.state == "finished"
        assert s.reason == (
            f"metric.target {metric['target']:g} reached by run {ids[hit]} ({values[hit]:g})"
        )

    # --- claims -----------------------------------------------------------------------

    def test_claim_log_finish_round_trip(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        assert backend.sweep(sid).kernel == "toy" and backend.sweep(sid).state == "active"
        r1 = backend.claim(sid, "a")
        r2 = backend.claim(sid, "a")
        assert r1 is not None and r2 is not None
        assert backend.claim(sid, "a") is None  # grid exhausted
        assert {r1.params["target"], r2.params["target"]} == {0, 1}
        backend.log(r1.id, [{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": 0.5}])
        backend.finish(
            r1.id, "finished", config={"target": 0}, summary={"loss": 0.5}, model_path="m.joblib"
        )
        got = {r.id: r for r in backend.runs(sid)}
        assert got[r1.id].state == "finished" and got[r1.id].summary == {"loss": 0.5}
        assert [h["loss"] for h in got[r1.id].history] == [1.0, 0.5]
        assert got[r1.id].config == {"target": 0} and got[r1.id].model_path == "m.joblib"
        assert got[r2.id].state == "running" and got[r2.id].history == []
        assert backend.sweep(sid).counts == {"finished": 1, "running": 1}
        other = backend.reopen()
        assert other.run(r1.id).history[1]["_step"] == 1
        other.close()

    def test_a_claimed_trial_is_running_for_its_agent(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(3))
        claimed = [backend.claim(sid, f"agent-{i}") for i in range(3)]
        assert all(r is not None for r in claimed)
        runs = [r for r in claimed if r is not None]
        for i, r in enumerate(runs):
            assert (r.sweep_id, r.kernel, r.state, r.agent) == (sid, "toy", "running", f"agent-{i}")
            assert (r.attempt, r.retry_of, r.history) == (1, None, [])
            assert r.started_at is not None and r.finished_at is None
        assert _targets(runs) == [0, 1, 2]
        assert len({r.id for r in runs}) == 3 and len({r.name for r in runs}) == 3
        assert all(r.name for r in runs)
        assert [r.id for r in backend.runs(sid)] == [r.id for r in runs]  # oldest first
        assert backend.sweep(sid).counts == {"running": 3}

    def test_concurrent_claims_hand_out_every_trial_exactly_once(self, backend: Backend) -> None:
        n, threads = 30, 6
        sid = backend.create_sweep(grid_spec(n))
        claimed = _claim_from_threads(
            backend, threads, lambda h, name: [r] if (r := h.claim(sid, name)) else []
        )
        assert _targets(claimed) == list(range(n))
        assert len({r.id for r in claimed}) == n
        assert _targets(backend.runs(sid)) == list(range(n))

    @pytest.mark.slow
    def test_a_heartbeat_keeps_the_lease(self, backend: Backend) -> None:
        backend.lease_timeout = LEASE
        sid = backend.create_sweep(grid_spec(3))
        a, b = backend.claim(sid, "beating"), backend.claim(sid, "beating")
        assert a is not None and b is not None
        for _ in range(6):  # 1.5 leases in all, a beat every quarter lease
            time.sleep(LEASE / 4)
            backend.heartbeat([a.id, b.id])
        other = backend.reopen()
        other.lease_timeout = LEASE
        third = other.claim(sid, "other")
        assert third is not None and third.attempt == 1  # a new trial, not a re-run
        assert _targets([a, b, third]) == [0, 1, 2]
        assert backend.run(a.id).state == "running" and backend.run(b.id).state == "running"
        other.close()

    def test_the_agents_of_a_host_are_those_holding_a_live_lease_there(
        self, backend: Backend
    ) -> None:
        backend.lease_timeout = LEASE
        sid = backend.create_sweep(grid_spec(6))
        names = [
            "node-a-12",
            "node-a-7-slurm99_3",
            "node-a-12",
            "node-ab-5",
            "node_a-6",
            "node-b-8",
        ]
        runs = [backend.claim(sid, name) for name in names]
        assert all(runs)
        # a host whose name starts another's, and LIKE's one-character wildcard, match not
        assert backend.agents_on("node-a") == ["node-a-12", "node-a-7-slurm99_3"]
        assert backend.agents_on("node-b") == ["node-b-8"] and backend.agents_on("node-c") == []
        backend.finish(runs[1].id, "finished")  # type: ignore[union-attr]
        assert backend.agents_on("node-a") == ["node-a-12"]  # it trains nothing now
        time.sleep(LEASE * 1.2)
        backend.heartbeat([runs[5].id])  # type: ignore[union-attr]
        assert backend.agents_on("node-a") == []  # its leases ran out: dead, or gone
        assert backend.agents_on("node-b") == ["node-b-8"]

    def test_an_expired_lease_makes_the_trial_claimable_again(self, backend: Backend) -> None:
        backend.lease_timeout = LEASE / 2
        sid = backend.create_sweep(grid_spec(2))
        first = backend.claim(sid, "dead-agent")
        assert first is not None
        backend.log(first.id, [{"_step": 0, "loss": 3.0}])
        time.sleep(LEASE)  # the agent dies: no heartbeat for longer than the lease
        again = backend.claim(sid, "live-agent")
        assert again is not None
        assert again.params == first.params and again.attempt == 2 and again.retry_of == first.id
        assert again.state == "running" and again.agent == "live-agent"
        old = backend.run(first.id)
        assert old.state == "crashed" and old.error is not None and "no heartbeat" in old.error
        assert [h["loss"] for h in old.history] == [3.0]  # the partial attempt is kept apart
        assert again.history == []
        other = backend.claim(sid, "live-agent")
        assert other is not None and other.params != first.params
        assert backend.claim(sid, "live-agent") is None
        assert [r.id for r in current(backend.runs(sid))] == [again.id, other.id]

    def test_a_taken_over_lease_fences_off_its_old_holder(self, backend: Backend) -> None:
        # a stalled agent (a lock wait, a paused VM) outlives its lease: the trial is
        # given to another agent, and the stalled one must not write over it afterwards
        backend.lease_timeout = LEASE / 2
        sid = backend.create_sweep(grid_spec(1))
        stalled = backend.claim(sid, "stalled")
        assert stalled is not None
        time.sleep(LEASE)
        again = backend.claim(sid, "live")
        assert again is not None and again.retry_of == stalled.id
        writes: list[Callable[[], object]] = [
            lambda: backend.heartbeat([stalled.id]),
            lambda: backend.log(stalled.id, [{"_step": 0, "loss": 9.0}]),
            lambda: backend.finish(stalled.id, "finished", summary={"loss": 9.0}),
        ]
        for write in writes:
            with pytest.raises(LeaseLostError, match=stalled.id):
                write()
        old = backend.run(stalled.id)
        assert old.state == "crashed" and old.history == [] and old.summary == {}
        backend.finish(again.id, "finished", summary={"loss": 1.0})
        finished = [r for r in backend.runs(sid) if r.state == "finished"]
        assert [r.id for r in finished] == [again.id]  # one finished run per point

    def test_a_dead_standalone_run_is_marked_crashed(self, backend: Backend) -> None:
        backend.lease_timeout = LEASE / 4
        dead = backend.start_run("toy", {"target": 1.0}, "killed")
        time.sleep(LEASE / 2)  # its `srsweep run` was killed: no heartbeat since
        alive = backend.start_run("toy", {"target": 2.0}, "next")
        assert backend.run(dead.id).state == "crashed"
        assert backend.run(alive.id).state == "running"  # nothing re-runs a standalone run
        assert [r.id for r in backend.runs(None)] == [dead.id, alive.id]

    def test_crashes_are_retried_at_most_max_retries_times(self, backend: Backend) -> None:
        backend.lease_timeout = LEASE / 4
        backend.max_retries = 2
        sid = backend.create_sweep(grid_spec(1))
        first = backend.claim(sid, "a")
        assert first is not None
        time.sleep(LEASE / 2)
        second = backend.claim(sid, "a")  # the first crashed: queued once more
        assert second is not None and second.retry_of == first.id
        time.sleep(LEASE / 2)
        assert backend.claim(sid, "a") is None  # crashed twice: the trial failed
        last = backend.run(second.id)
        assert last.state == "failed" and last.error is not None
        assert last.error.startswith("crashed 2 times: agent lost")
        backend.retry(sid, ("failed",))  # `srsweep retry` starts the count again
        backend.set_sweep_state(sid, "active")  # ... and re-opens the finished sweep
        third = backend.claim(sid, "a")
        assert third is not None and third.retry_of == second.id
        time.sleep(LEASE / 2)
        fourth = backend.claim(sid, "a")
        assert fourth is not None and fourth.retry_of == third.id

    # --- packed claims ------------------------------------------------------------------

    def test_a_packed_claim_takes_trials_that_share_a_key(self, backend: Backend) -> None:
        sid = backend.create_sweep(packs_spec())
        claimed = backend.claim_pack(sid, "a", 4, key=_steps, candidates=128)
        assert len(claimed) == 4 and len({_steps(r.params) for r in claimed}) == 1
        assert all((r.sweep_id, r.state, r.agent) == (sid, "running", "a") for r in claimed)
        assert len({r.id for r in claimed}) == 4 and len({r.name for r in claimed}) == 4
        runs = backend.runs(sid)  # the candidates it did not take are not registered
        assert sorted(r.id for r in runs) == sorted(r.id for r in claimed)
        assert backend.sweep(sid).counts == {"running": 4}

    def test_a_packed_claim_takes_queued_reruns_first_then_their_key(
        self, backend: Backend
    ) -> None:
        sid = backend.create_sweep(packs_spec())
        r = backend.claim(sid, "a")
        assert r is not None
        backend.finish(r.id, "preempted")
        new = backend.requeue(r.id)
        claimed = backend.claim_pack(sid, "b", 4, key=_steps, candidates=128)
        assert [c.id for c in claimed][:1] == [new] and claimed[0].params == r.params
        assert {_steps(c.params) for c in claimed} == {_steps(r.params)} and len(claimed) == 4
        assert backend.sweep(sid).counts == {"preempted": 1, "running": 4}

    def test_packed_claims_run_every_grid_point_exactly_once(self, backend: Backend) -> None:
        sid = backend.create_sweep(packs_spec("grid"))  # 8 targets x 4 step counts
        claims = []
        while got := backend.claim_pack(sid, "a", 4, key=_steps, candidates=16):
            claims.append(got)
            for r in got:
                backend.finish(r.id, "finished")
        points = [(r.params["target"], r.params["steps"]) for got in claims for r in got]
        assert sorted(points) == [(t, s) for t in range(8) for s in (1, 2, 3, 4)]
        assert [len(got) for got in claims] == [4] * 8
        assert all(len({_steps(r.params) for r in got}) == 1 for got in claims)
        s = backend.sweep(sid)
        assert (s.state, s.reason) == ("finished", "every grid point has run")

    def test_concurrent_packed_claims_hand_out_every_trial_exactly_once(
        self, backend: Backend
    ) -> None:
        threads = 4
        sid = backend.create_sweep(packs_spec("grid"))
        claimed = _claim_from_threads(
            backend,
            threads,
            lambda h, name: h.claim_pack(sid, name, 3, key=_steps, candidates=12),
        )
        points = sorted((r.params["target"], r.params["steps"]) for r in claimed)
        assert points == [(t, s) for t in range(8) for s in (1, 2, 3, 4)]
        assert len(backend.runs(sid)) == 32

    def test_a_packed_claim_keeps_the_run_cap(self, backend: Backend) -> None:
        sid = backend.create_sweep(packs_spec(run_cap=6))
        first = backend.claim_pack(sid, "a", 4, key=_steps, candidates=128)
        rest = backend.claim_pack(sid, "a", 4, key=_steps, candidates=128)
        assert (len(first), len(rest)) == (4, 2)
        assert len({_steps(r.params) for r in first}) == 1
        for r in first + rest:
            backend.finish(r.id, "finished")
        assert backend.claim_pack(sid, "a", 4, key=_steps, candidates=128) == []
        s = backend.sweep(sid)
        assert (s.state, s.reason) == ("finished", "run_cap of 6 reached")
        assert len(backend.runs(sid)) == 6

    def test_a_packed_bayes_claim_sees_the_finished_runs(self, backend: Backend) -> None:
        metric = {"name": "loss", "goal": "minimize"}
        spec = validate(
            {
                "program": "toy",
                "method": "bayes",
                "metric": metric,
                "parameters": {"target": {"min": 0.0, "max": 4.0}, "steps": {"values": [1, 2]}},
            },
            "contract.yaml",
        )
        sid = backend.create_sweep(spec)
        for _ in range(8):
            r = backend.claim(sid, "a")
            assert r is not None
            backend.finish(r.id, "finished", summary={"loss": (r.params["target"] - 1) ** 2})
        runs = current(backend.runs(sid, history=False))
        seed = backend.sweep(sid).seed
        expected = engine.suggest_packed(spec.raw, runs, 2, seed=seed, key=_steps, candidates=2)
        blind = [replace(r, summary={}) for r in runs]  # as if no run had finished
        assert expected != engine.suggest_packed(
            spec.raw, blind, 2, seed=seed, key=_steps, candidates=2
        )
        got = backend.claim_pack(sid, "a", 2, key=_steps, candidates=2)
        assert [r.params for r in got] == expected

    def test_a_stopped_sweep_hands_out_no_packed_claim(self, backend: Backend) -> None:
        sid = backend.create_sweep(packs_spec())
        backend.set_sweep_state(sid, "stopped")
        assert backend.claim_pack(sid, "a", 4, key=_steps, candidates=16) == []
        assert backend.runs(sid) == []

    # --- runs ---------------------------------------------------------------------------

    def test_history_reads_back_in_logging_order(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r, s = backend.claim(sid, "a"), backend.claim(sid, "a")
        assert r is not None and s is not None
        rows: list[dict[str, Any]] = [
            {"_step": i, "loss": 1 / (i + 1), "n": i, "note": f"x{i}", "ok": i % 2 == 0}
            for i in range(7)
        ]
        backend.log(r.id, rows[:3])
        backend.log(s.id, [{"_step": 0, "loss": 9.0}])
        backend.log(r.id, [])  # nothing to add
        backend.log(r.id, rows[3:])
        assert backend.run(r.id).history == rows
        assert backend.run(s.id).history == [{"_step": 0, "loss": 9.0}]
        assert {x.id: x.history for x in backend.runs(sid)} == {
            r.id: rows,
            s.id: [{"_step": 0, "loss": 9.0}],
        }

    @staticmethod
    def _mixed_rows() -> list[dict[str, Any]]:
        """Rows of every kind a run logs: floats (a NaN, a key some rows lack), ints,
        bools, strings, a list, None, and a key logged as an int and as a float."""
        rows: list[dict[str, Any]] = []
        for i in range(9):
            row: dict[str, Any] = {"_step": 10 * i, "loss": 1 / (i + 1), "epoch": i}
            row.update(ok=i % 2 == 0, phase="warmup" if i < 3 else "train", mix=i / 2)
            if i % 3:
                row["acc"] = 0.5 + i / 20
            rows.append(row)
        rows[4]["loss"] = math.nan
        rows[5]["lat"] = [0.25, 1.5]
        rows[6]["phase"] = None
        rows[2]["mix"] = 1
        return rows

    def test_an_ended_runs_history_reads_back_the_same_and_as_columns(
        self, backend: Backend
    ) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r = backend.claim(sid, "a")
        assert r is not None
        rows = self._mixed_rows()
        backend.log(r.id, rows[:4])
        backend.log(r.id, rows[4:])
        live = backend.history_columns([r.id])[r.id]
        backend.finish(r.id, "finished", summary={"loss": 0.1})
        got = backend.run(r.id).history
        assert json.dumps(got) == json.dumps(rows)  # values, their types, NaN, key order
        assert [json.dumps(x.history) for x in backend.runs(sid) if x.id == r.id] == [
            json.dumps(rows)
        ]
        ended = backend.history_columns([r.id])[r.id]
        for cols in (live, ended):  # a live run's rows read as its columns will
            assert list(cols) == ["_step", "loss", "epoch", "ok", "phase", "mix", "acc", "lat"]
            assert cols["_step"].dtype == np.int64 and list(cols["_step"]) == list(range(0, 90, 10))
            assert cols["loss"].dtype == np.float64 and np.isnan(cols["loss"][4])
            assert cols["loss"][8] == 1 / 9 and cols["epoch"].tolist() == list(range(9))
            assert cols["ok"].dtype == bool
            assert cols["ok"].tolist() == [i % 2 == 0 for i in range(9)]
            acc = [0.5 + i / 20 if i % 3 else math.nan for i in range(9)]
            np.testing.assert_array_equal(cols["acc"], acc)  # NaN where not logged
            assert cols["phase"].tolist()[5:7] == ["train", None]
            assert cols["lat"].tolist() == [None] * 5 + [[0.25, 1.5]] + [None] * 3
            assert cols["mix"].tolist()[:3] == [0.0, 0.5, 1]
        assert list(backend.history_columns([r.id], ["acc", "gone"])[r.id]) == ["_step", "acc"]
        assert backend.last_logged([r.id])[r.id] == {
            "loss": 1 / 9,
            "epoch": 8,
            "ok": True,
            "phase": "train",
            "mix": 4.0,
            "acc": 0.5 + 8 / 20,
            "lat": [0.25, 1.5],
        }

    def test_history_columns_of_runs_that_logged_nothing_are_empty(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r = backend.claim(sid, "a")
        assert r is not None
        backend.finish(r.id, "failed", error="boom")
        assert backend.history_columns([r.id]) == {r.id: {}}
        assert backend.last_logged([r.id]) == {r.id: {}}

    def test_a_reaped_runs_history_is_kept_and_its_old_holder_still_fenced(
        self, backend: Backend
    ) -> None:
        backend.lease_timeout = LEASE / 2
        sid = backend.create_sweep(grid_spec(1))
        lost = backend.claim(sid, "stalled")
        assert lost is not None
        rows = self._mixed_rows()
        backend.log(lost.id, rows)
        time.sleep(LEASE)
        again = backend.claim(sid, "live")  # reaps the stalled attempt: crashed
        assert again is not None and again.retry_of == lost.id
        with pytest.raises(LeaseLostError, match=lost.id):
            backend.log(lost.id, [{"_step": 99, "loss": 9.0}])
        old = backend.run(lost.id)
        assert old.state == "crashed" and json.dumps(old.history) == json.dumps(rows)
        cols = backend.history_columns([lost.id, again.id], ["loss"])
        assert cols[again.id] == {} and cols[lost.id]["_step"].tolist()[-1] == 80

    def test_runs_without_history_leave_it_out(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r = backend.claim(sid, "a")
        assert r is not None
        backend.log(r.id, [{"_step": 0, "loss": 1.0}])
        backend.finish(r.id, "finished", summary={"loss": 1.0})
        (light,) = [x for x in backend.runs(sid, history=False) if x.id == r.id]
        (full,) = [x for x in backend.runs(sid) if x.id == r.id]
        assert light.history == [] and full.history == [{"_step": 0, "loss": 1.0}]
        light.history = full.history
        assert light == full  # nothing else is left out

    @pytest.mark.parametrize("state", TERMINAL, ids=TERMINAL)
    def test_finish_records_the_end_of_a_run(self, backend: Backend, state: str) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r = backend.claim(sid, "a")
        assert r is not None
        backend.set_config(r.id, {"target": 0, "steps": 5})
        assert backend.run(r.id).config == {"target": 0, "steps": 5}
        backend.finish(
            r.id, state, summary={"loss": 0.25, "note": "ok"}, error="why", model_path="m"
        )
        got = backend.run(r.id)
        assert (got.state, got.summary, got.error, got.model_path) == (
            state,
            {"loss": 0.25, "note": "ok"},
            "why",
            "m",
        )
        assert got.config == {"target": 0, "steps": 5}  # finish without a config keeps it
        assert got.started_at is not None and got.finished_at is not None
        assert got.started_at <= got.finished_at
        assert backend.sweep(sid).counts == {state: 1}

    def test_a_standalone_run_is_kept_apart_from_sweeps(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        r = backend.start_run("toy", {"target": 1.0, "steps": 2}, "me")
        assert (r.sweep_id, r.kernel, r.state, r.agent) == (None, "toy", "running", "me")
        assert r.config == {"target": 1.0, "steps": 2} and r.name
        assert [x.id for x in backend.runs(None)] == [r.id]
        assert backend.runs(sid) == []
        assert backend.run(r.id).config == {"target": 1.0, "steps": 2}
        backend.finish(r.id, "finished", summary={"loss": 0.0})
        assert backend.runs(None)[0].state == "finished"

    # --- re-runs --------------------------------------------------------------------------

    def test_requeue_queues_one_new_attempt_claimed_first(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(3))
        r = backend.claim(sid, "a")
        assert r is not None
        backend.log(r.id, [{"_step": 0, "loss": 2.0}])
        backend.finish(r.id, "preempted")
        new = backend.requeue(r.id)
        assert new is not None and new != r.id
        queued = backend.run(new)
        assert (queued.state, queued.attempt, queued.retry_of) == ("queued", 2, r.id)
        assert queued.params == r.params and queued.history == []
        assert backend.requeue(r.id) is None  # already queued again
        assert backend.sweep(sid).counts == {"preempted": 1, "queued": 1}
        again = backend.claim(sid, "b")  # the queued re-run before a new grid point
        assert again is not None and (again.id, again.state, again.agent) == (new, "running", "b")
        assert backend.run(r.id).history == [{"_step": 0, "loss": 2.0}]
        assert [x.id for x in current(backend.runs(sid))] == [new]

    def test_finish_with_requeue_writes_the_outcome_and_the_next_attempt_at_once(
        self, backend: Backend
    ) -> None:
        sid = backend.create_sweep(grid_spec(3))
        r = backend.claim(sid, "a")
        assert r is not None
        backend.finish(r.id, "preempted", error="preempted by SIGTERM", requeue=True)
        old, new = backend.runs(sid, history=False)
        assert (old.id, old.state, old.error) == (r.id, "preempted", "preempted by SIGTERM")
        assert (new.state, new.retry_of, new.attempt, new.params) == ("queued", r.id, 2, r.params)
        with pytest.raises(LeaseLostError, match=r.id):  # not running: neither is written
            backend.finish(r.id, "preempted", requeue=True)
        assert backend.sweep(sid).counts == {"preempted": 1, "queued": 1}

    def test_retry_requeues_failed_and_preempted_runs_once(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(3))
        runs = [backend.claim(sid, "a") for _ in range(3)]
        assert all(r is not None for r in runs)
        ids = [r.id for r in runs if r is not None]
        backend.finish(ids[0], "failed", error="x")
        backend.finish(ids[1], "preempted")
        backend.finish(ids[2], "finished")
        (again,) = backend.retry(sid, ("failed",))
        assert backend.run(again).retry_of == ids[0]
        assert backend.retry(sid, ("failed",)) == []  # already queued again
        (other,) = backend.retry(sid, ("preempted", "crashed"))
        assert backend.run(other).retry_of == ids[1]
        assert sorted(r.state for r in backend.runs(sid)) == [
            "failed",
            "finished",
            "preempted",
            "queued",
            "queued",
        ]
        claimed = [backend.claim(sid, "b"), backend.claim(sid, "b")]
        assert sorted(r.id for r in claimed if r is not None) == sorted([again, other])
        assert backend.claim(sid, "b") is None  # the grid was done; only re-runs were left

    # --- ids and handles ----------------------------------------------------------------

    def test_unknown_ids_raise_not_found(self, backend: Backend) -> None:
        sid = backend.create_sweep(grid_spec(2))
        calls: dict[str, Callable[[], object]] = {
            "sweep": lambda: backend.sweep("nosuchsweep"),
            "set_sweep_state": lambda: backend.set_sweep_state("nosuchsweep", "stopped"),
            "claim": lambda: backend.claim("nosuchsweep", "a"),
            "claim_pack": lambda: backend.claim_pack(
                "nosuchsweep", "a", 2, key=_steps, candidates=4
            ),
            "retry": lambda: backend.retry("nosuchsweep", ("failed",)),
            "run": lambda: backend.run("nosuchrun"),
            "requeue": lambda: backend.requeue("nosuchrun"),
            "heartbeat": lambda: backend.heartbeat(["nosuchrun"]),
            "log": lambda: backend.log("nosuchrun", [{"_step": 0, "loss": 1.0}]),
            "set_config": lambda: backend.set_config("nosuchrun", {"target": 0}),
            "finish": lambda: backend.finish("nosuchrun", "finished"),
        }
        for name, call in calls.items():
            with pytest.raises(NotFoundError):
                call()
                pytest.fail(f"{name} with an unknown id raised nothing")
        assert backend.runs(sid) == [] and backend.sweep(sid).counts == {}  # nothing written

    def test_reopen_gives_a_working_second_handle(self, backend: Backend) -> None:
        assert isinstance(backend.location, str) and backend.location
        sid = backend.create_sweep(grid_spec(3))
        second = backend.reopen()
        assert second.location == backend.location
        assert second.lease_timeout == backend.lease_timeout
        assert second.sweep(sid).spec == backend.sweep(sid).spec
        r = second.claim(sid, "second")
        assert r is not None
        second.log(r.id, [{"_step": 0, "loss": 1.0}])
        assert backend.run(r.id).history == [{"_step": 0, "loss": 1.0}]
        mine = backend.claim(sid, "first")
        assert mine is not None and mine.params != r.params
        second.close()
        backend.close()  # a closed handle reconnects when used again
        assert {x.id for x in backend.runs(sid)} == {r.id, mine.id}
