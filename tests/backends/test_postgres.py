"""The PostgreSQL ledger through the CLI, on a real throw-away server: a study created,
run by several agent processes at once and reported, as on a cluster."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from srsweep.backends import open_ledger
from srsweep.backends.postgres import PostgresBackend
from srsweep.cli import main

SPEC = """
program: toy
method: grid
metric: {name: loss, goal: minimize}
parameters:
  target: {values: [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]}
  steps: {value: 20}
"""


def test_open_ledger_reads_a_postgres_url_and_redacts_its_password():
    book = open_ledger("results", "postgresql://me:secret@db.example:5432/sweeps")
    assert isinstance(book, PostgresBackend)
    assert book.location == "postgresql://me:***@db.example:5432/sweeps"


@pytest.mark.slow
def test_three_agent_processes_share_a_postgres_sweep(postgres_url, write_spec, tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "SRSWEEP_LEDGER": postgres_url, "SRSWEEP_RESULTS": str(results)}
    runner = CliRunner(env={"SRSWEEP_LEDGER": postgres_url})
    created = runner.invoke(
        main, ["--results", str(results), "create", str(write_spec(SPEC))], catch_exceptions=False
    )
    assert created.exit_code == 0, created.output
    sid = created.stdout.strip().splitlines()[-1]
    assert not (results / "srsweep.db").exists()  # the ledger is the server's
    agents = [
        subprocess.Popen(
            [sys.executable, "-m", "srsweep", "agent", sid],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [a.communicate(timeout=240)[0] for a in agents]
    assert all(a.returncode == 0 for a in agents), outs
    book = PostgresBackend(postgres_url)
    runs = book.runs(sid)
    book.close()
    targets = sorted(r.params["target"] for r in runs)
    assert targets == [0.5 * i for i in range(1, 10)]  # every point once
    assert {r.state for r in runs} == {"finished"} and all(len(r.history) == 20 for r in runs)
    status = runner.invoke(main, ["status", sid, "--ledger", postgres_url]).output
    assert "finished (every grid point has run); 9 finished" in status
    report = runner.invoke(main, ["--results", str(results), "report", sid], catch_exceptions=False)
    assert report.exit_code == 0 and (results / sid / "report.md").exists()


def test_an_unreachable_server_is_named_without_its_password(tmp_path):
    res = CliRunner().invoke(main, ["--ledger", "postgresql://me:pw@127.0.0.1:1/none", "ls"])
    assert res.exit_code == 1 and "cannot reach the PostgreSQL ledger" in res.output
    assert "postgresql://me:***@127.0.0.1:1/none" in res.output and "pw@" not in res.output


def test_a_ledger_url_of_another_kind_is_refused():
    res = CliRunner().invoke(main, ["ls", "--ledger", "mysql://x/y"])
    assert res.exit_code == 2 and "expected a path, sqlite:///PATH or postgresql://" in res.output


def test_ledger_copy_moves_a_study_to_postgres_and_back_idempotently(
    postgres_url, write_spec, tmp_path
):
    laptop = tmp_path / "laptop"
    runner = CliRunner()

    def cli(*args: str) -> str:
        res = runner.invoke(main, list(args), catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    sid = cli("--results", str(laptop), "create", str(write_spec(SPEC))).strip().splitlines()[-1]
    cli("--results", str(laptop), "agent", sid, "--count", "4")
    out = cli("ledger", "copy", str(laptop), postgres_url)
    assert "copied 1 new sweep(s), 4 new run(s), updated 0 run(s), 80 history row(s)" in out
    again = cli("ledger", "copy", str(laptop), postgres_url)
    assert "copied 0 new sweep(s), 0 new run(s), updated 0 run(s), 0 history row(s)" in again
    # the cluster runs the rest on PostgreSQL, and the study comes back to the laptop
    cli("--ledger", postgres_url, "--results", str(tmp_path / "cluster"), "agent", sid)
    back = cli("ledger", "copy", postgres_url, str(laptop / "srsweep.db"))
    assert "0 new sweep(s), 5 new run(s)" in back
    here, there = open_ledger(laptop), PostgresBackend(postgres_url)
    try:
        mine = [(r.id, r.state, r.params, r.summary, r.history) for r in here.runs(sid)]
        theirs = [(r.id, r.state, r.params, r.summary, r.history) for r in there.runs(sid)]
        assert mine == theirs and len(mine) == 9
        assert here.sweep(sid).state == "finished"
    finally:
        here.close()
        there.close()


def test_an_open_compacts_rows_an_ended_run_left_and_restores_a_missing_index(postgres_url):
    import psycopg

    ledger = PostgresBackend(postgres_url)
    run = ledger.start_run("toy", {}, "agent-a")
    ledger.log(run.id, [{"_step": 0, "loss": 2.0}])
    ledger.finish(run.id, "finished")
    ledger.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # as an older srsweep left it
        conn.execute(
            "INSERT INTO history (run_id, step, data) VALUES (%s, 1, %s)",
            (run.id, '{"_step": 1, "loss": 1.0}'),
        )
    again = PostgresBackend(postgres_url)
    assert again.history_columns([run.id])[run.id]["loss"].tolist() == [2.0, 1.0]
    again.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM history").fetchone() == (0,)
        conn.execute("DROP INDEX history_by_run")
    third = PostgresBackend(postgres_url)
    assert third.sweeps() == []  # any open checks the schema
    third.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('history_by_run')").fetchone() != (None,)
