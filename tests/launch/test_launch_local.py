"""Agents as processes on this machine: their shares of cores and GPUs, and real runs
(waited for, stopped with Ctrl-C, detached)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from srsweep.cli import main
from srsweep.launch.local import cores
from srsweep.launch.local import local_envs
from srsweep.launch.local import plan
from srsweep.launch.local import visible_gpus
from srsweep.launch.target import Target


def test_agents_split_the_cores():
    envs = local_envs(3, ncores=8, gpus=[], packs_on_cpu=True, environ={})
    assert envs == [{"SRSWEEP_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}] * 3
    more = local_envs(5, ncores=2, gpus=[], packs_on_cpu=True, environ={})
    assert {e["SRSWEEP_THREADS"] for e in more} == {"1"}  # never below one
    lone = local_envs(2, ncores=8, gpus=[], packs_on_cpu=False, environ={})
    assert [(e["SRSWEEP_THREADS"], e["OMP_NUM_THREADS"]) for e in lone] == [("1", "4")] * 2


def test_agents_take_one_gpu_each_round_robin():
    envs = local_envs(3, ncores=12, gpus=["2", "5"], packs_on_cpu=True, environ={})
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "5", "2"]
    assert {e["SRSWEEP_THREADS"] for e in envs} == {"1"}  # their packs run on the GPU
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"4"}


def test_the_users_thread_variables_win():
    envs = local_envs(2, ncores=8, gpus=[], packs_on_cpu=True, environ={"SRSWEEP_THREADS": "3"})
    assert envs == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2


@pytest.mark.parametrize(
    ("value", "gpus"),
    [("2, 3", ["2", "3"]), ("", []), ("GPU-8f0a", ["GPU-8f0a"]), ("-1", []), ("0,-1,1", ["0"])],
    ids=["two", "none", "uuid", "hidden", "up-to-negative"],
)
def test_visible_gpus_follow_cuda_visible_devices(value, gpus):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == gpus


def test_by_default_one_agent_per_gpu_else_per_core(tmp_path):
    target = Target("sid", tmp_path)
    assert len(plan(target, None, {"CUDA_VISIBLE_DEVICES": "0,1,2"})) == 3
    assert len(plan(target, None, {"CUDA_VISIBLE_DEVICES": ""})) == cores()
    assert len(plan(target, 5, {"CUDA_VISIBLE_DEVICES": ""})) == 5


def _pids(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"^agent \d+: pid (\d+) ", output, re.MULTILINE)]


@pytest.mark.slow
def test_local_two_runs_two_agent_processes_that_finish_the_sweep(grid, results, finished_once):
    n = 12
    book, sid = grid(results, n, sleep=0.1)  # 0.3 s a trial: work for both
    res = CliRunner().invoke(
        main, ["--results", str(results), "launch", sid, "--local", "2"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    pids = _pids(res.output)
    assert len(pids) == 2 and len(set(pids)) == 2, res.output
    logs = results / sid / "logs"
    assert f"agent 0: pid {pids[0]} SRSWEEP_THREADS=1 " in res.output
    assert f"-> {logs / 'agent-0.log'}" in res.output
    assert all("exited with code 0" in line for line in res.output.splitlines()[-2:])
    for k in range(2):
        text = (logs / f"agent-{k}.log").read_text()
        assert text.startswith("== ") and "agent done: " in text, text
    host = socket.gethostname()
    agents = finished_once(book, sid, n)
    assert agents == {f"{host}-{p}" for p in pids}, "each process ran trials of its own"


def _launch(results, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "srsweep", "--results", str(results), "launch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_ctrl_c_preempts_every_agents_trial_and_queues_it_again(grid, results):
    book, sid = grid(results, 4, steps=400, sleep=0.05)  # 20 s a trial
    launcher = _launch(results, sid, "--local", "2")

    def both_logging():
        running = [r for r in book.runs(sid) if r.state == "running"]
        return len(running) == 2 and all(r.history for r in running)

    _wait_for(both_logging)
    launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground launcher
    out = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 0, out
    assert "SIGINT: sent SIGTERM to 2 agent(s)" in out
    runs = book.runs(sid, history=False)
    preempted = [r for r in runs if r.state == "preempted"]
    assert len(preempted) == 2 and all(r.agent for r in preempted)
    assert sorted(r.retry_of for r in runs if r.state == "queued") == sorted(
        r.id for r in preempted
    )
    for k in range(2):
        log = (results / sid / "logs" / f"agent-{k}.log").read_text()
        assert "queued again" in log and "stopped by signal" in log, log


@pytest.mark.slow
def test_detach_returns_while_the_agents_go_on(grid, results, finished_once):
    n = 6
    book, sid = grid(results, n, sleep=0.1)
    launcher = _launch(results, sid, "--local", "2", "--detach")
    out = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 0, out
    pids = _pids(out)
    assert len(pids) == 2 and f"kill {pids[0]} {pids[1]}" in out

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert not all(gone(p) for p in pids), "the launcher returned while its agents run"

    def done():  # (not the pids: a container's init may never reap them)
        return sum(r.state == "finished" for r in book.runs(sid, history=False)) == n

    _wait_for(done)
    assert finished_once(book, sid, n) <= {f"{socket.gethostname()}-{p}" for p in pids}
