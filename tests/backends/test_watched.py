"""A watched SQLite ledger: deleted, replaced, truncated or overwritten under an open
handle, it stops the caller with exit code 3 instead of losing runs in silence; backups."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from srsweep.backends import LocalBackend
from srsweep.cli import main
from srsweep.errors import CorruptFileError
from srsweep.errors import LedgerLostError
from srsweep.testing.backend_contract import grid_spec


@pytest.fixture
def busy(results, monkeypatch):
    monkeypatch.setenv("SRSWEEP_KERNELS", "toy=srsweep.testing.toy")
    b = LocalBackend(results)
    sid = b.create_sweep(grid_spec(3))
    r = b.claim(sid, "agent")
    assert r is not None
    yield b, sid, r
    b.close()


def _delete(path):
    path.unlink()


def _replace(path):
    shutil.copy(path, path.with_suffix(".copy"))
    path.unlink()
    os.replace(path.with_suffix(".copy"), path)


def _truncate(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("damage", "said"),
    [(_delete, "was deleted"), (_replace, "was replaced"), (_truncate, "was truncated")],
)
def test_an_agents_next_write_notices_the_ledger_is_gone(busy, damage, said):
    b, sid, r = busy
    damage(b.path)
    with pytest.raises(LedgerLostError, match=said) as caught:
        b.finish(r.id, "finished", summary={"loss": 0.0})
    assert caught.value.exit_code == 3 and "last written here: insert at" in str(caught.value)


def test_garbage_over_the_ledger_is_reported_as_corrupt(busy):
    b, sid, r = busy
    b.close()  # (closing checkpoints the WAL into the file; the next use reconnects)
    size = b.path.stat().st_size
    with open(b.path, "r+b") as fh:  # same file, random bytes over it
        fh.write(os.urandom(size))
    with pytest.raises(CorruptFileError, match="not a readable srsweep ledger"):
        b.log(r.id, [{"_step": 0, "loss": 1.0}])


def test_backup_is_a_consistent_copy_while_the_ledger_is_open(busy, results):
    b, sid, r = busy
    b.log(r.id, [{"_step": 0, "loss": 1.0}])
    res = CliRunner().invoke(
        main,
        ["--results", str(results), "backup", "--to", str(results / "copy.db")],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and "backed up" in res.output
    copy = LocalBackend(results, filename="copy.db")
    assert [x.history for x in copy.runs(sid)] == [[{"_step": 0, "loss": 1.0}]]
    copy.close()
    with sqlite3.connect(results / "copy.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_an_agent_whose_ledger_is_deleted_exits_3_and_claims_no_success(tmp_path, write_spec):
    import subprocess
    import sys

    (tmp_path / "wipe.py").write_text(  # a trial that deletes the ledger under its agent
        "import os\nos.remove(os.path.join(os.environ['WANDB_DIR'], 'srsweep.db'))\n"
    )
    spec = write_spec("program: wipe.py\nmethod: grid\nparameters:\n  x: {values: [1, 2, 3]}\n")
    results = tmp_path / "results"
    run = [sys.executable, "-m", "srsweep", "--results", str(results)]
    sid = subprocess.run(
        [*run, "create", str(spec)], capture_output=True, text=True, check=True
    ).stdout.strip()
    agent = subprocess.run(
        [*run, "agent", sid],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert agent.returncode == 3, agent.stderr[-2000:]
    assert "was deleted while this process used it" in agent.stderr
    assert "finished" not in agent.stdout.split("agent done")[-1]
    assert "Traceback" not in agent.stderr


def test_read_only_commands_read_a_ledger_they_cannot_write(busy, results):
    import subprocess

    b, sid, r = busy
    b.finish(r.id, "finished", summary={"loss": 0.25})
    b.close()
    files = [results / "srsweep.db", results]  # the file, and the folder its WAL needs
    locked = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True)
    if locked.returncode != 0:  # not root, or a file system without the attribute
        pytest.skip(f"cannot make the ledger read-only here: {locked.stderr.decode().strip()}")
    try:
        assert not os.access(results / "srsweep.db", os.W_OK)
        runner = CliRunner(env={"SRSWEEP_KERNELS": "toy=srsweep.testing.toy"})
        for args in (["ls"], ["status", sid]):
            res = runner.invoke(main, ["--results", str(results), *args])
            assert res.exit_code == 0, res.output
            assert sid in res.output and "move it aside" not in res.output
        assert "0.25" in runner.invoke(main, ["--results", str(results), "status", sid]).output
        res = runner.invoke(main, ["--results", str(results), "retry", sid])
        assert res.exit_code == 3 and "read-only file system" in res.output, res.output
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
