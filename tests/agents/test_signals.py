"""Signals and the heartbeat: a signalled agent preempts and requeues its trial; a
trial whose heartbeat beats keeps its lease, one whose heartbeat stopped loses it."""

from __future__ import annotations

import os
import signal
import time

from srsweep.agents import run_agent
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
