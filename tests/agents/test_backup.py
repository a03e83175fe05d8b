"""srsweep agent --backup-every: a consistent copy of the SQLite ledger beside it, every
so many minutes and when the agent stops; refused for bad periods and server ledgers."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest
from click.testing import CliRunner

from srsweep.agents.backup import Backups
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.testing.backend_contract import grid_spec


@pytest.fixture(autouse=True)
def _handlers():
    """``srsweep agent`` sets this process's SIGINT/SIGTERM handlers: give them back."""
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in kept.items():
        signal.signal(s, handler)


def _agent(results, *args):
    return CliRunner().invoke(
        main, ["--results", str(results), "agent", *args], catch_exceptions=False
    )


def test_the_agent_keeps_a_copy_of_the_ledger_that_holds_its_finished_runs(toy_sweep, results):
    # 4 trials of 10 steps of 0.05 s: about 2 s, so copies every 0.6 s come in between
    b, sid = toy_sweep(
        results,
        {"target": {"values": [1, 2, 3, 4]}, "steps": {"value": 10}, "sleep": {"value": 0.05}},
    )
    res = _agent(results, sid, "--backup-every", "0.01")
    assert res.exit_code == 0, res.output
    copy = results / "srsweep.backup.db"
    lines = [ln for ln in res.output.splitlines() if ln.startswith("backed up")]
    assert len(lines) >= 2, res.output  # some while trials ran, one as the agent stopped
    assert all(ln.endswith(f"to {copy} at " + ln.rsplit(" at ", 1)[1]) for ln in lines)
    assert res.output.index(lines[-1]) > res.output.index("-> finished")
    with sqlite3.connect(copy) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    kept = LocalBackend(results, filename="srsweep.backup.db")
    runs = kept.runs(sid)
    assert sorted(r.params["target"] for r in runs if r.state == "finished") == [1, 2, 3, 4]
    assert [len(r.history) for r in runs] == [10] * 4
    kept.close()
    assert not [p for p in results.iterdir() if p.suffix == ".tmp"]  # each copy renamed


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf"])
def test_a_period_that_is_not_a_positive_number_of_minutes_is_refused(toy_sweep, results, minutes):
    b, sid = toy_sweep(results, {"target": {"values": [1]}})
    res = _agent(results, sid, "--backup-every", minutes)
    assert res.exit_code == 2
    assert f"--backup-every: expected a positive number of minutes, got {float(minutes)}" in (
        res.output
    )
    assert b.runs(sid) == []  # nothing ran
    assert not (results / "srsweep.backup.db").exists()


@pytest.mark.slow
def test_a_server_ledger_is_refused(postgres_url):
    from srsweep.backends.postgres import PostgresBackend

    pg = PostgresBackend(postgres_url)
    sid = pg.create_sweep(grid_spec(1))
    res = CliRunner().invoke(main, ["--ledger", postgres_url, "agent", sid, "--backup-every", "1"])
    assert res.exit_code == 2
    assert "--backup-every:" in res.output and "is not an SQLite ledger" in res.output
    assert "pg_dump" in res.output and "Traceback" not in res.output
    assert pg.runs(sid) == []
    pg.close()


def test_a_copy_that_fails_is_said_and_the_last_good_one_stays(toy_sweep, results):
    b, sid = toy_sweep(results, {"target": {"values": [1, 2]}})
    lines: list[str] = []
    backups = Backups(b, 0.002, lines.append)  # every 0.12 s
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lines and lines[0].startswith(f"backed up {b.path} to ")
    b.path.unlink()  # the ledger is gone under the agent
    while not any("failed" in ln for ln in lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    backups.stop(last=True)
    failed = [ln for ln in lines if "failed" in ln]
    assert failed and all("was deleted" in ln and "the last copy is kept" in ln for ln in failed)
    kept = LocalBackend(results, filename="srsweep.backup.db")
    assert [s.id for s in kept.sweeps()] == [sid]
    kept.close()
