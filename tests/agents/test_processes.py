"""Agents as real processes: many at once on one grid, and one killed mid-trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from srsweep.backends.local import LocalBackend
from srsweep.spec import validate

pytestmark = pytest.mark.slow


def _agent(results, sid, *extra_env, count=None):
    cmd = [sys.executable, "-m", "srsweep.cli", "--results", str(results), "agent", sid]
    if count:
        cmd += ["--count", str(count)]
    env = dict(os.environ, **dict(extra_env))
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_eight_agents_run_every_grid_point_exactly_once(results):
    b = LocalBackend(results)
    n = 500
    spec = validate(
        {
            "program": "toy",
            "method": "grid",
            "parameters": {"target": {"values": list(range(n))}, "steps": {"value": 2}},
        },
        "grid.yaml",
    )
    sid = b.create_sweep(spec)
    procs = [_agent(results, sid) for _ in range(8)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = b.runs(sid, history=False)
    targets = Counter(r.params["target"] for r in runs)
    assert len(runs) == n and set(targets) == set(range(n)) and max(targets.values()) == 1
    assert {r.state for r in runs} == {"finished"}
    assert len({r.agent for r in runs}) >= 2, "the agents shared the work"


def test_agent_killed_mid_trial_loses_nothing(results):
    b = LocalBackend(results)
    spec = validate(
        {
            "program": "toy",
            "method": "grid",
            "parameters": {
                "target": {"values": [1.0, 2.0, 3.0]},
                "steps": {"value": 100},
                "sleep": {"value": 0.04},
            },
        },
        "g",
    )
    sid = b.create_sweep(spec)
    lease = ("SRSWEEP_LEASE_TIMEOUT", "2")
    victim = _agent(results, sid, lease)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until its second trial has logged something
        runs = b.runs(sid)
        if len(runs) == 2 and runs[1].history:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    victim.stdout.close()
    killed = b.runs(sid)[1]
    assert b.runs(sid)[0].state == "finished" and killed.state == "running"
    time.sleep(2.5)  # let the lease run out
    rescuer = _agent(results, sid, lease)
    out = rescuer.communicate(timeout=120)[0]
    assert rescuer.returncode == 0, out
    runs = {r.id: r for r in b.runs(sid)}
    assert runs[killed.id].state == "crashed" and runs[killed.id].history  # partial kept
    retry = [r for r in runs.values() if r.retry_of == killed.id]
    assert len(retry) == 1 and retry[0].state == "finished"
    assert len(retry[0].history) == 100
    finished = sorted(r.params["target"] for r in runs.values() if r.state == "finished")
    assert finished == [1.0, 2.0, 3.0]


SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"


@pytest.mark.parametrize(
    ("signals", "code", "gap"),
    [
        ([signal.SIGINT], 130, 0.5),
        ([signal.SIGTERM], 143, 0.5),
        ([signal.SIGTERM, signal.SIGTERM], 143, 0.5),
        # the second lands as the trial ends and its outcome is written (where it raced)
        ([signal.SIGTERM, signal.SIGTERM], 143, 0.05),
    ],
    ids=["SIGINT", "SIGTERM", "SIGTERM twice", "SIGTERM twice 0.05 s apart"],
)
def test_an_interrupted_agent_exits_as_shells_expect_and_its_point_stays_queued(
    results, tmp_path, signals, code, gap
):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "spec.yaml").write_text(
        "program: sleeper.py\nmethod: grid\nparameters:\n  x: {values: [1, 2]}\n"
    )
    from srsweep.spec import load_spec

    b = LocalBackend(results)
    sid = b.create_sweep(load_spec(tmp_path / "spec.yaml"))
    agent = _agent(results, sid, ("WANDB_MODE", "disabled"), ("WANDB_AGENT_KILL_DELAY", "30"))
    deadline = time.monotonic() + 60
    while not [r for r in b.runs(sid, history=False) if r.state == "running"]:
        assert time.monotonic() < deadline, "the trial never started"
        time.sleep(0.1)
    time.sleep(1.0)  # the script is sleeping now
    for sig in signals:
        agent.send_signal(sig)
        time.sleep(gap)
    out = agent.communicate(timeout=60)[0]
    # a shell reads "killed by signal N" as 128 + N too: a second signal may land while
    # the interpreter is already exiting, where Python has given the default action back
    shell_code = 128 - agent.returncode if agent.returncode < 0 else agent.returncode
    assert shell_code == code, out
    states = sorted(r.state for r in b.runs(sid, history=False))
    assert states == ["preempted", "queued"], out  # nothing lost: the point runs next time
    assert "Traceback" not in out


FAMILY = """\
import os, subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.environ["FAMILY_OUT"], "w") as fh:
    fh.write(f"{os.getpid()} {kid.pid}")
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def test_a_script_trial_and_its_children_end_when_their_agent_is_killed(results, tmp_path):
    (tmp_path / "family.py").write_text(FAMILY)
    (tmp_path / "spec.yaml").write_text(
        "program: family.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n"
    )
    from srsweep.spec import load_spec

    b = LocalBackend(results)
    sid = b.create_sweep(load_spec(tmp_path / "spec.yaml"))
    pids_file = tmp_path / "pids"
    agent = _agent(results, sid, ("WANDB_MODE", "disabled"), ("FAMILY_OUT", str(pids_file)))
    deadline = time.monotonic() + 60
    while not (pids_file.exists() and pids_file.read_text().strip()):
        assert time.monotonic() < deadline and agent.poll() is None, agent.stdout.read()
        time.sleep(0.1)
    family = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(p) for p in family)
    agent.kill()  # kill -9: no handler, no cleanup of its own
    agent.wait()
    agent.stdout.close()  # (an orphaned script would hold the pipe open: do not read it)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in family if _alive(p)]
    for p in left:  # (without the supervisor: do not leave them running)
        os.kill(p, signal.SIGKILL)
    assert not left, "a process of the trial outlived its agent"
