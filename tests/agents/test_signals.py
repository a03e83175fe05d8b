"""Signals and the heartbeat: a signalled agent preempts and requeues its trial; a
trial whose heartbeat beats keeps its lease, one whose heartbeat stopped loses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from srsweep.agents import run_agent
from srsweep.agents import run_single
from srsweep.agents.signals import Heartbeat
from srsweep.backends.local import LocalBackend


def test_sigterm_preempts_the_running_trial(toy_sweep, results):
    b, sid = toy_sweep(results, {"target": {"values": [1, 2]}, "steps": {"value": 50}})
    import srsweep.testing.toy as toy

    real_train = toy.KERNEL.train

    def train(cfg, run):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives during the first trial
        real_train(cfg, run)

    object.__setattr__(toy.KERNEL, "train", train)
    try:
        res = run_agent(b, sid, results=results, echo=lambda s: None)
    finally:
        object.__setattr__(toy.KERNEL, "train", real_train)
    assert res.reason == "stopped by signal"
    run, again = b.runs(sid)
    assert run.state == "preempted" and run.error == "preempted by SIGTERM"
    assert 0 < len(run.history) < 50 and run.model_path is not None
    # the trial is queued again as a new attempt; the next agent takes it first
    assert (again.state, again.retry_of, again.attempt) == ("queued", run.id, 2)
    assert again.params == run.params and again.history == []
    res = run_agent(b, sid, results=results, count=1, echo=lambda s: None)
    assert res.runs == [again.id] and b.run(again.id).state == "finished"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_beating_heartbeat_keeps_the_lease_and_a_stopped_one_loses_it(toy_sweep, results):
    _, sid = toy_sweep(results, {"target": {"values": [1, 2, 3]}})
    b = LocalBackend(results, lease_timeout=0.5)  # the heartbeat beats every 0.125 s
    first = b.claim(sid, "a")
    assert first is not None
    beat = Heartbeat(b, [first.id])  # beats on a handle of its own, from its thread
    try:
        time.sleep(1.0)  # twice the lease
        assert b.claim(sid, "b") is not None  # a claim marks runs past their lease
        assert b.run(first.id).state == "running"
    finally:
        beat.stop()
    time.sleep(0.7)
    b.claim(sid, "c")
    assert b.run(first.id).state == "crashed"


def _signal_when_running(results: Path, sid: str, signals: list[int], pid: int) -> None:
    """From a thread: once a trial of ``sid`` runs, send ``signals`` to ``pid``, 0.3 s
    apart (a ledger handle of its own: a connection stays in its thread)."""
    own = LocalBackend(results)
    while not any(r.state == "running" for r in own.runs(sid, history=False)):
        time.sleep(0.02)
    for s in signals:
        time.sleep(0.3)
        os.kill(pid, s)
    own.close()


SEQUENCES = {
    "SIGTERM twice": [signal.SIGTERM, signal.SIGTERM],
    "SIGINT twice": [signal.SIGINT, signal.SIGINT],
    "SIGTERM then SIGINT": [signal.SIGTERM, signal.SIGINT],
}


@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_a_second_signal_during_a_long_step_preempts_and_queues_the_trial(
    toy_sweep, results, sequence
):
    # each step sleeps 30 s: only the second signal can end it soon
    b, sid = toy_sweep(
        results, {"target": {"values": [1, 2]}, "steps": {"value": 3}, "sleep": {"value": 30.0}}
    )
    args = (results, sid, sequence, os.getpid())
    threading.Thread(target=_signal_when_running, args=args, daemon=True).start()
    t0 = time.monotonic()
    res = run_agent(b, sid, results=results, echo=lambda s: None)
    assert time.monotonic() - t0 < 10
    assert (res.reason, res.signal) == ("stopped by signal", sequence[0])
    run, again = b.runs(sid)
    name = signal.Signals(sequence[1]).name
    assert run.state == "preempted" and run.error == f"interrupted by a second signal ({name})"
    assert run.history == [{"_step": 0, "loss": 1.0, "w": 0.0}]  # what it logged is kept
    assert (again.state, again.retry_of, again.params) == ("queued", run.id, run.params)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _agent_process(results: Path, sid: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "srsweep.cli", "--results", str(results), "agent", sid]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


EXITS = {  # signals -> exit code, seconds per step
    "SIGTERM": ([signal.SIGTERM], 143, 0.1),
    "Ctrl-C": ([signal.SIGINT], 130, 0.1),
    "SIGTERM twice in a long step": ([signal.SIGTERM, signal.SIGTERM], 143, 60.0),
    "Ctrl-C twice in a long step": ([signal.SIGINT, signal.SIGINT], 130, 60.0),
}


@pytest.mark.slow
@pytest.mark.parametrize(("sequence", "code", "sleep"), EXITS.values(), ids=EXITS.keys())
def test_a_signalled_agent_exits_as_a_shell_expects_with_its_trial_queued(
    toy_sweep, results, sequence, code, sleep
):
    b, sid = toy_sweep(
        results, {"target": {"values": [1, 2]}, "steps": {"value": 100}, "sleep": {"value": sleep}}
    )
    agent = _agent_process(results, sid)
    _signal_when_running(results, sid, sequence, agent.pid)
    out = agent.communicate(timeout=60)[0]
    assert agent.returncode == code, out
    assert "agent done: 1 preempted (stopped by signal)" in out and "Traceback" not in out
    run, again = b.runs(sid)
    assert run.state == "preempted" and again.state == "queued" and again.retry_of == run.id


class _Beats(LocalBackend):
    """The real ledger, counting the heartbeats of every handle reopened from it."""

    def __init__(self, root: Path, beats: list[str], **kw: float) -> None:
        super().__init__(root, **kw)
        self.beats = beats

    def reopen(self) -> _Beats:
        return _Beats(self.root, self.beats, lease_timeout=self.lease_timeout)

    def heartbeat(self, run_ids: list[str]) -> None:
        self.beats.extend(run_ids)
        super().heartbeat(run_ids)


def test_a_standalone_run_holds_its_lease_by_heartbeats(results):
    b = _Beats(results, [], lease_timeout=0.4)  # a beat every 0.1 s
    rec = run_single(
        b, "toy", {"steps": 4, "sleep": 0.25}, results=results, source="--set", echo=lambda s: None
    )
    assert rec.state == "finished"
    assert b.beats.count(rec.id) >= 5 and set(b.beats) == {rec.id}
