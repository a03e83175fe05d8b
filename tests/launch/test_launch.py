"""``srsweep launch``: flags that do not fit exit 2 with a message; --dry-run shows what
would start."""

from __future__ import annotations

import shutil
import sys

import pytest
from click.testing import CliRunner

from srsweep.cli import main


@pytest.fixture
def launch(results):
    def invoke(*args: str):
        return CliRunner().invoke(
            main, ["--results", str(results), "launch", *args], catch_exceptions=False
        )

    return invoke


CHOOSE = "Error: srsweep launch: choose one of --local N|auto (this machine) or --slurm"
KEY_VALUE = "expected KEY=VALUE, e.g. --sbatch account=proj42"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], CHOOSE),
        (["--local", "2", "--slurm"], CHOOSE),
        (
            ["--local", "-1"],
            "Error: --local '-1': expected a number of agents (1 or more) or 'auto'",
        ),
        (["--local", "0"], "Error: --local '0': expected a number of agents (1 or more) or 'auto'"),
        (["--local", "two"], "Error: --local 'two': expected a number of agents"),
        (
            ["--local", "2", "--jobs", "2"],
            "Error: --jobs, --gpus-per-job, --cpus-per-job, --time, "
            "--partition and --sbatch go with --slurm, not --local",
        ),
        (["--local", "2", "--sbatch", "account=x"], "go with --slurm, not --local"),
        (
            ["--slurm", "--detach"],
            "Error: --detach goes with --local (SLURM jobs always run detached)",
        ),
        (["--slurm", "--jobs", "0"], "Invalid value for '--jobs': 0 is not in the range x>=1"),
        (["--slurm", "--jobs", "-3"], "Invalid value for '--jobs': -3 is not in the range x>=1"),
        (["--slurm", "--gpus-per-job", "-1"], "Invalid value for '--gpus-per-job'"),
        (["--slurm", "--cpus-per-job", "0"], "Invalid value for '--cpus-per-job'"),
        (["--local", "2", "--pack", "0"], "Invalid value for '--pack'"),
        (["--slurm", "--sbatch", "qos"], f"Error: --sbatch 'qos': {KEY_VALUE}"),
        (["--slurm", "--sbatch", "=x"], f"Error: --sbatch '=x': {KEY_VALUE}"),
        (
            ["--slurm", "--sbatch", "partition=gpu"],
            "Error: --sbatch 'partition=gpu': partition is set by --partition",
        ),
        (
            ["--slurm", "--time", "1h"],
            "Error: --time '1h': expected MINUTES, HH:MM:SS or D-HH:MM:SS (as sbatch takes it)",
        ),
        (
            ["--slurm", "--gpus-per-job", "4", "--cpus-per-job", "2"],
            "Error: --cpus-per-job 2: expected at least one per agent (4 agents per job, one per GPU)",
        ),
    ],
    ids=[
        "no-mode",
        "both-modes",
        "local-negative",
        "local-zero",
        "local-word",
        "slurm-flag-local",
        "sbatch-local",
        "detach-slurm",
        "jobs-zero",
        "jobs-negative",
        "gpus-negative",
        "cpus-zero",
        "pack-zero",
        "sbatch-no-value",
        "sbatch-no-key",
        "sbatch-reserved",
        "time-format",
        "cpus-per-agent",
    ],
)
def test_bad_flags_exit_2_with_a_message(grid, results, launch, args, message):
    _, sid = grid(results, 2)
    res = launch(sid, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (results / sid).exists(), "nothing started"


def test_an_unknown_sweep_exits_2(launch):
    for mode in (["--local", "2"], ["--slurm"]):
        res = launch("nosuch", *mode)
        assert res.exit_code == 2 and "Error: unknown sweep id 'nosuch'" in res.output


def test_slurm_without_submitit_says_what_to_install(grid, results, launch, monkeypatch):
    _, sid = grid(results, 2)
    monkeypatch.setitem(sys.modules, "submitit", None)  # what an import of a missing one does
    res = launch(sid, "--slurm", "--dry-run")
    assert res.exit_code == 2, res.output
    assert (
        "Error: --slurm needs submitit; install it with pip install 'submitit>=1.5'" in res.output
    )


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="SLURM is here")
def test_slurm_where_there_is_none_exits_2(grid, results, launch):
    _, sid = grid(results, 2)
    res = launch(sid, "--slurm")
    assert res.exit_code == 2, res.output
    assert (
        "Error: --slurm: no SLURM here (sbatch and srun are not on PATH); --dry-run prints "
        "the batch script"
    ) in res.output


def test_slurm_dry_run_prints_the_script_and_warns_of_a_sqlite_ledger(grid, results, launch):
    _, sid = grid(results, 2)
    res = launch(
        sid,
        "--slurm",
        "--dry-run",
        "--jobs",
        "3",
        "--partition",
        "cpu",
        "--sbatch",
        "account=proj42",
    )
    assert res.exit_code == 0, res.output
    warning, *script = res.output.splitlines()
    assert warning == (
        f"warning: the ledger is the SQLite file {(results / 'srsweep.db').absolute()}: agents "
        "on several nodes share it safely only where the shared file system's locks hold "
        "(often not on NFS or Lustre); use a server: --ledger postgresql://USER@HOST:PORT/DB"
    )
    assert script[0] == "#!/bin/bash"
    for line in (
        "#SBATCH --array=0-2%3",
        "#SBATCH --partition=cpu",
        "#SBATCH --account=proj42",
        "#SBATCH --time=60",
    ):
        assert line in script
    assert not (results / sid / "slurm").exists(), "nothing submitted"


def test_local_dry_run_says_what_each_agent_gets(grid, results, launch):
    _, sid = grid(results, 2)
    res = launch(sid, "--local", "2", "--pack", "4", "--dry-run")
    assert res.exit_code == 0, res.output
    command = f"{sys.executable} -m srsweep --results {results.absolute()} agent {sid} --pack 4"
    lines = res.output.splitlines()
    assert len(lines) == 2
    for k, line in enumerate(lines):
        assert line.startswith(f"agent {k}: SRSWEEP_THREADS=") and line.endswith(command)
    assert not (results / sid).exists(), "nothing started"
