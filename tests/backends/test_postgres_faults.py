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

import pytest

from srsweep.backends.postgres import PostgresBackend
from srsweep.spec import validate
from srsweep.testing import postgres

pytestmark = pytest.mark.slow

POINTS = 6
STEPS = 20


@pytest.fixture
def pg() -> Iterator[postgres.Server]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"no PostgreSQL server for the ledger tests: {why}")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[dev]'")
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


def _runs(url: str, sid: str):
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
