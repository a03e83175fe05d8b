"""The PostgreSQL ledger under faults, on a server of the test's own: restarted under a
running agent (it reconnects and every point runs once), and gone for longer than the
retry window (the agent stops, exit 3, recording nothing it did not finish)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from srsweep.backends.postgres import PostgresBackend
from srsweep.spec import validate
from srsweep.testing import postgres

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[dev]'")

POINTS = 6
STEPS = 20


@pytest.fixture
def pg() -> Iterator[postgres.Server]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"no PostgreSQL server for the ledger tests: {why}")
    with postgres.server() as server:
        yield server


def _sweep(url: str) -> str:
    spec = validate(
        {
            "program": "toy",
            "method": "grid",
            "parameters": {
                "target": {"values": [float(i) for i in range(POINTS)]},
                "steps": {"value": STEPS},
                "sleep": {"value": 0.05},
            },
        },
        "grid.yaml",
    )
    book = PostgresBackend(url)
    try:
        return book.create_sweep(spec)
    finally:
        book.close()


def _agent(url: str, sid: str, tmp_path, retry: float) -> subprocess.Popen[str]:
    env = dict(os.environ, SRSWEEP_DB_RETRY=str(retry), SRSWEEP_LEASE_TIMEOUT="30")
    cmd = [sys.executable, "-m", "srsweep.cli", "--results", str(tmp_path / "results")]
    return subprocess.Popen(
        [*cmd, "--ledger", url, "agent", sid],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _runs(url: str, sid: str | None):
    book = PostgresBackend(url)
    try:
        return book.runs(sid)
    finally:
        book.close()


def _wait_for_history(url: str, sid: str, runs: int) -> None:
    """Until the sweep's ``runs``-th trial has logged something."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = _runs(url, sid)
        if len(got) >= runs and got[runs - 1].history:
            return
        time.sleep(0.1)
    raise AssertionError("the agent never got that far")


@pytest.mark.slow
def test_an_agent_rides_out_a_server_restart_and_runs_every_point_once(pg, tmp_path):
    sid = _sweep(pg.url)
    agent = _agent(pg.url, sid, tmp_path, retry=30)
    _wait_for_history(pg.url, sid, 2)
    pg.stop("fast")  # the server ends every connection, keeping what was committed
    time.sleep(2.0)
    pg.start()
    out = agent.communicate(timeout=120)[0]
    assert agent.returncode == 0, out
    assert out.count("ledger connection lost (") == out.count("retrying for up to 30 s") >= 1
    runs = _runs(pg.url, sid)
    finished = [r for r in runs if r.state == "finished"]
    points = Counter(r.params["target"] for r in finished)
    assert sorted(points) == [float(i) for i in range(POINTS)] and max(points.values()) == 1
    assert {r.state for r in runs} == {"finished"}, [(r.name, r.state, r.error) for r in runs]
    # no history row written twice (a COMMIT whose answer was lost is not re-applied)
    assert all([h["_step"] for h in r.history] == list(range(STEPS)) for r in finished)


@pytest.mark.slow
def test_a_server_gone_past_the_retry_window_stops_the_agent_with_exit_3(pg, tmp_path):
    sid = _sweep(pg.url)
    agent = _agent(pg.url, sid, tmp_path, retry=3)
    _wait_for_history(pg.url, sid, 2)
    pg.stop("fast")
    t0 = time.monotonic()
    out = agent.communicate(timeout=60)[0]
    took = time.monotonic() - t0
    assert agent.returncode == 3, out
    assert "ledger connection lost (" in out and "retrying for up to 3 s" in out
    assert "stayed unreachable for 3 s (SRSWEEP_DB_RETRY" in out and "Traceback" not in out
    assert took < 20, f"the agent took {took:.0f}s to give up"
    pg.start()
    runs = _runs(pg.url, sid)
    said = out.count(" -> finished")
    finished = [r for r in runs if r.state == "finished"]
    assert len(finished) == said >= 1, out  # only what the agent saw recorded
    assert [r.state for r in runs if r.state != "finished"] == ["running"]  # its lease runs on


class _CutAtCommit:
    """A real connection whose next COMMIT loses its connection: ``after`` the server
    committed (the answer is what is lost) or ``before`` (the server rolls back)."""

    def __init__(self, conn: Any, when: str) -> None:
        self.conn, self.when = conn, when

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql == "COMMIT" and self.when:
            if self.when == "after":
                self.conn.execute("COMMIT")
            self.when = ""
            self.conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return self.conn.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


ROWS = [{"_step": i, "loss": 1.0 / (i + 1)} for i in range(3)]


@pytest.mark.parametrize("when", ["after", "before"], ids=["committed", "rolled back"])
def test_a_log_whose_commit_was_cut_is_written_exactly_once(postgres_url, when, capfd, monkeypatch):
    monkeypatch.setenv("SRSWEEP_DB_RETRY", "10")
    book = PostgresBackend(postgres_url)
    try:
        run = book.start_run("toy", {}, "agent-1")
        book._conn = _CutAtCommit(book._db(), when)
        book.log(run.id, ROWS)
        book.finish(run.id, "finished", summary={"loss": 1 / 3})
    finally:
        book.close()
    err = capfd.readouterr().err
    assert err.count("ledger connection lost (server closed the connection unexpectedly)") == 1
    assert "retrying for up to 10 s" in err
    got = _runs(postgres_url, None)
    assert [(r.state, r.history) for r in got] == [("finished", ROWS)]


@pytest.mark.parametrize("when", ["after", "before"], ids=["committed", "rolled back"])
def test_a_finish_whose_commit_was_cut_is_recorded_without_a_lost_lease(postgres_url, when):
    book = PostgresBackend(postgres_url)
    try:
        run = book.start_run("toy", {}, "agent-1")
        book.log(run.id, ROWS)
        book._conn = _CutAtCommit(book._db(), when)
        book.finish(run.id, "finished", summary={"loss": 1 / 3})  # no LeaseLostError
    finally:
        book.close()
    got = _runs(postgres_url, None)
    assert [(r.state, r.summary, r.history) for r in got] == [("finished", {"loss": 1 / 3}, ROWS)]
