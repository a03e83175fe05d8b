"""Agents as SLURM jobs through submitit: the flags, the batch script submitit writes,
jobs run for real by submitit's local executor, and a real submission where sbatch is."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from srsweep.errors import UsageError
from srsweep.launch.slurm import SlurmRequest
from srsweep.launch.slurm import parse_sbatch
from srsweep.launch.slurm import parse_time
from srsweep.launch.slurm import sbatch_script
from srsweep.launch.slurm import submit
from srsweep.launch.target import open_target


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("90:30", 91), ("2:00:00", 120), ("1-12", 2160), ("1-0:30", 1470), ("0-0:0:1", 1)],
    ids=["minutes", "mm:ss", "hh:mm:ss", "d-hh", "d-hh:mm", "rounded-up"],
)
def test_parse_time_reads_sbatch_formats(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["1h", "", "1:2:3:4", "0", "-5"])
def test_parse_time_refuses_others(text):
    with pytest.raises(UsageError, match=r"--time '.*': expected"):
        parse_time(text)


def test_parse_sbatch_reads_keys_as_sbatch_spells_them():
    assert parse_sbatch(["account=proj42", "mail_type=END", "constraint=a100|h100"]) == {
        "account": "proj42",
        "mail-type": "END",
        "constraint": "a100|h100",
    }


def test_parse_sbatch_names_every_bad_item_at_once():
    with pytest.raises(UsageError) as e:
        parse_sbatch(["qos", "=x", "account=", "partition=gpu", "array=0-3", "ok=1"])
    assert str(e.value).splitlines() == [
        "--sbatch 'qos': expected KEY=VALUE, e.g. --sbatch account=proj42",
        "--sbatch '=x': expected KEY=VALUE, e.g. --sbatch account=proj42",
        "--sbatch 'account=': expected KEY=VALUE, e.g. --sbatch account=proj42",
        "--sbatch 'partition=gpu': partition is set by --partition",
        "--sbatch 'array=0-3': array is set by --jobs",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jobs": 0}, "--jobs 0: expected 1 or more"),
        ({"gpus_per_job": -1}, "--gpus-per-job -1: expected 0 or more"),
        (
            {"gpus_per_job": 4, "cpus_per_job": 2},
            r"--cpus-per-job 2: expected at least one per agent \(4 agents per job",
        ),
        ({"time_min": 0}, "--time: expected at least one minute"),
    ],
    ids=["jobs", "gpus", "cpus-per-agent", "time"],
)
def test_slurm_request_refuses_bad_counts(kwargs, message):
    with pytest.raises(UsageError, match=message):
        SlurmRequest(**kwargs)


def _sbatch_lines(script: str) -> dict[str, str]:
    flags = [
        line.removeprefix("#SBATCH --")
        for line in script.splitlines()
        if line.startswith("#SBATCH --")
    ]
    return dict(f.partition("=")[::2] for f in flags)


def test_the_batch_script_asks_for_what_the_flags_say(grid, results):
    _, sid = grid(results, 4)
    target, _ = open_target(sid, results, None, 16, None)
    req = SlurmRequest(
        jobs=8,
        gpus_per_job=2,
        cpus_per_job=12,
        time_min=parse_time("4:00:00"),
        partition="gpu",
        sbatch=parse_sbatch(["account=proj42", "mail_type=END"]),
    )
    script = sbatch_script(target, req)
    assert script.startswith("#!/bin/bash\n")
    folder = (results / sid / "slurm").absolute()
    assert _sbatch_lines(script) == {
        "partition": "gpu",
        "time": "240",
        "gpus-per-node": "2",
        "ntasks-per-node": "2",  # one agent per GPU
        "cpus-per-task": "6",  # the job's 12 CPUs shared by its 2 agents
        "nodes": "1",
        "array": "0-7%8",  # 8 jobs, all at once
        "account": "proj42",
        "mail-type": "END",
        "job-name": f"srsweep-{sid}",
        "output": f"{folder}/%A_%a/%A_%a_0_log.out",
        "error": f"{folder}/%A_%a/%A_%a_0_log.err",
        "open-mode": "append",
        "signal": "USR2@90",  # the agents' warning before the time limit
        "wckey": "submitit",
    }
    srun = script.strip().splitlines()[-1]
    assert srun.startswith("srun --unbuffered --output ")
    assert srun.endswith(f"{sys.executable} -u -m submitit.core._submit {folder}/%j")


def test_one_cpu_job_runs_one_agent_and_asks_only_for_what_was_given(grid, results):
    _, sid = grid(results, 2)
    target, _ = open_target(sid, results, None, None, None)
    lines = _sbatch_lines(sbatch_script(target, SlurmRequest()))
    assert lines["ntasks-per-node"] == "1" and lines["time"] == "60"
    assert not {"array", "partition", "gpus-per-node", "cpus-per-task"} & set(lines)


@pytest.mark.slow
def test_jobs_run_by_submitits_local_executor_finish_every_trial_once(grid, results, finished_once):
    n = 8
    book, sid = grid(results, n, sleep=0.05)
    target, _ = open_target(sid, results, None, None, None)
    jobs = submit(target, SlurmRequest(jobs=2, time_min=5), cluster="local")
    assert len(jobs) == 2
    lines = [j.handle.result() for j in jobs]  # submitit waits for each job
    assert all(line.startswith("agent done: ") for line in lines), lines
    finished_once(book, sid, n)
    for j in jobs:
        assert j.log.parent.parent == (results / sid / "slurm").absolute()
        assert "agent done: " in j.log.read_text()


@pytest.mark.slow
def test_a_ledger_password_stays_out_of_job_files_and_logs(
    grid, results, finished_once, postgres_url, capsys
):
    from srsweep.launch import launch

    secret = uuid.uuid4().hex
    url = postgres_url.replace("://postgres@", f"://postgres:{secret}@")  # trust: ignored
    assert secret in url
    n = 4
    book, sid = grid(results, n, ledger=postgres_url)
    target, sqlite = open_target(sid, results, url, None, None)
    assert sqlite is None
    jobs = submit(target, SlurmRequest(jobs=1, time_min=5), cluster="local")
    assert jobs[0].handle.result().startswith("agent done: ")
    assert "PGPASSWORD" not in os.environ  # only while submitting
    launch(sid, results=results, ledger=url, local="1", echo=print)  # and a local agent
    finished_once(book, sid, n)
    files = [p for p in results.rglob("*") if p.is_file()]
    assert any(p.suffix == ".pkl" for p in files) and any(p.name.endswith(".log") for p in files)
    leaked = [p for p in files if secret.encode() in p.read_bytes()]
    assert not leaked, leaked
    assert secret not in capsys.readouterr().out


@pytest.mark.slow
def test_slurms_warning_before_the_time_limit_preempts_the_trial(grid, results):
    """SIGUSR2 (sbatch --signal=USR2@90) to a job's agent: its trial is saved, marked
    preempted and queued again, and the agent stops."""
    book, sid = grid(results, 2, steps=400, sleep=0.05)
    code = (
        "import sys; from pathlib import Path; from srsweep.launch.slurm import run_job; "
        "from srsweep.launch.target import Target; "
        "run_job(Target(sys.argv[1], Path(sys.argv[2])), {})"
    )
    job = subprocess.Popen(
        [sys.executable, "-c", code, sid, str(results.absolute())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(r.state == "running" and r.history for r in book.runs(sid)):
        assert time.monotonic() < deadline and job.poll() is None, job.communicate()[0]
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR2)
    out = job.communicate(timeout=60)[0]
    assert job.returncode == 0, out
    assert "queued again" in out and "stopped by signal" in out
    runs = book.runs(sid, history=False)
    assert [r.state for r in runs] == ["preempted", "queued"] and runs[1].retry_of == runs[0].id


@pytest.mark.slurm
def test_a_real_slurm_job_runs_the_sweep(grid, finished_once):
    """Submits one job for real. The results folder must be visible from the compute
    nodes: SRSWEEP_SLURM_TEST_DIR (default: .slurm-test under the current folder);
    SRSWEEP_SLURM_PARTITION picks the partition."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        pytest.skip("no SLURM here: sbatch and srun are not on PATH")
    base = Path(os.environ.get("SRSWEEP_SLURM_TEST_DIR", Path.cwd() / ".slurm-test"))
    results = base / uuid.uuid4().hex[:8]
    try:
        n = 3
        book, sid = grid(results, n)
        target, _ = open_target(sid, results, None, None, None)
        req = SlurmRequest(jobs=1, time_min=10, partition=os.environ.get("SRSWEEP_SLURM_PARTITION"))
        [job] = submit(target, req)
        deadline = time.monotonic() + 600  # the queue may be busy
        while sum(r.state == "finished" for r in book.runs(sid, history=False)) < n:
            assert time.monotonic() < deadline, f"job {job.job_id} did not finish: {job.log}"
            time.sleep(5)
        agents = finished_once(book, sid, n)
        assert all(a.endswith(f"-slurm{job.job_id}") for a in agents), agents
    finally:
        shutil.rmtree(results, ignore_errors=True)
