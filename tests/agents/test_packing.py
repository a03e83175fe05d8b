"""Packing: claimed trials grouped by pack key, and the torch threads of a trial or pack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from srsweep.agents import packing
from srsweep.agents import run_agent


def test_pack_groups_by_pack_key_and_fails_alone(toy_sweep, results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = toy_sweep(
        results,
        {
            "steps": {"values": [3, 4]},
            "target": {"values": [1.0, 2.0]},
            "fail_at": {"values": [None, 2]},
        },
    )
    res = run_agent(b, sid, results=results, pack=8, echo=lambda s: None)
    assert sorted(PACKS) == [4, 4]  # 8 trials, two shapes (steps 3 and 4)
    assert res.states == {"finished": 4, "failed": 4}
    for r in b.runs(sid):
        expected = r.params["steps"] if r.params["fail_at"] is None else 2
        assert len(r.history) == expected
        assert (r.state == "failed") == (r.params["fail_at"] == 2)


def test_pack_one_is_the_unpacked_path(toy_sweep, results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = toy_sweep(results, {"target": {"values": [1.0, 2.0]}})
    assert run_agent(b, sid, results=results, pack=1, echo=lambda s: None).states == {"finished": 2}
    assert PACKS == []


def test_threads_one_per_lone_trial_every_core_per_cpu_pack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("SRSWEEP_THREADS", raising=False)
    monkeypatch.setattr(packing, "_cores", lambda: 3)
    monkeypatch.setattr(packing, "_competing", lambda: 0.0)  # an idle machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    try:
        packing.limit_threads(packed=False)
        assert torch.get_num_threads() == 1
        packing.limit_threads(packed=True)
        assert torch.get_num_threads() == 3
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU does the work
        packing.limit_threads(packed=True)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SRSWEEP_THREADS", "2")  # the user's count wins either way
        packing.limit_threads(packed=True)
        assert torch.get_num_threads() == 2
        packing.limit_threads(packed=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cpu_pack_takes_one_thread_on_an_oversubscribed_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine = os.cpu_count()
    monkeypatch.setattr(packing, "_cores", lambda: machine)  # the whole machine
    monkeypatch.setattr(packing, "_competing", lambda: 0.5)
    assert packing.cpu_pack_threads() == machine
    monkeypatch.setattr(packing, "_competing", lambda: machine + 0.5)  # more than cores
    assert packing.cpu_pack_threads() == 1


def test_cpu_pack_leaves_a_core_to_each_competing_task(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = os.cpu_count() or 1
    monkeypatch.setattr(packing, "_cores", lambda: machine)
    monkeypatch.setattr(packing, "_competing", lambda: 1.0)  # one busy process beside
    assert packing.cpu_pack_threads() == max(1, machine - 1)


def test_cpu_pack_shares_the_machine_with_the_agents_training_on_this_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packing.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(packing, "_cores", lambda: 8)  # the whole machine
    monkeypatch.setattr(packing, "_competing", lambda: 0.0)  # the others still starting
    assert [packing.cpu_pack_threads(n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    monkeypatch.setattr(packing, "_competing", lambda: 6.0)  # whichever leaves fewer
    assert packing.cpu_pack_threads(2) == 2
    monkeypatch.setattr(packing, "_cores", lambda: 2)  # a mask given to it: its own cores
    assert packing.cpu_pack_threads(4) == 2


def test_an_agent_counts_the_agents_training_on_its_host_from_the_ledger(toy_sweep, results):
    from srsweep.agents.trial import _peers

    host = socket.gethostname()
    b, sid = toy_sweep(results, {"target": {"values": [1.0, 2.0, 3.0]}})
    b.lease_timeout = 30.0
    me = f"{host}-{os.getpid()}"
    assert _peers(b, me) == 1  # alone: its own trials are not claimed yet
    assert b.claim(sid, me) and b.claim(sid, f"{host}-1") and b.claim(sid, "elsewhere-2")
    assert _peers(b, me) == 2


def test_a_busy_process_beside_counts_as_competing() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # started and spinning
        assert packing._competing() >= 1
    finally:
        busy.kill()
        busy.wait()


def test_a_narrower_mask_keeps_its_cores_whatever_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mask SLURM or taskset gave this process is its own, however loaded the machine."""
    machine = os.cpu_count() or 1
    monkeypatch.setattr(packing, "_cores", lambda: machine + 1)  # not the machine's count
    monkeypatch.setattr(packing, "_competing", lambda: 1e6)
    assert packing.cpu_pack_threads() == machine + 1


def test_a_packed_agent_fills_its_packs_from_a_random_sweep_of_many_shapes(results):
    # 8 critic shapes drawn at random: in the engine's order a claim of 8 holds ~5
    from srsweep import engine
    from srsweep.backends.local import LocalBackend
    from srsweep.spec import validate

    spec = validate(
        {
            "program": "sd",
            "method": "random",
            "parameters": {
                "device": {"value": "cpu"},
                "epochs": {"value": 4},
                "log_freq": {"value": 2},
                "arch": {"parameters": {"lat_size": {"value": 3}}},
                "disc": {
                    "parameters": {
                        "hid_num": {"values": [1, 2]},
                        "hid_size": {"values": [4, 8, 12, 16]},
                        "iters": {"value": 1},
                        "lr": {"values": [1e-3, 1e-2]},
                    }
                },
            },
        },
        "shapes.yaml",
    )
    b = LocalBackend(results)
    sid = b.create_sweep(spec)
    lines: list[str] = []
    res = run_agent(b, sid, results=results, pack=8, count=16, echo=lines.append)
    assert res.states == {"finished": 16}
    assert sum(line.startswith("  packing 8 trials") for line in lines) == 2
    runs = b.runs(sid, history=False)
    shapes = [(r.params["disc"]["hid_num"], r.params["disc"]["hid_size"]) for r in runs]
    assert len(runs) == 16 and len(set(shapes[:8])) == 1 and len(set(shapes[8:])) == 1
    in_order = engine.suggest(spec.raw, [], 16, seed=b.sweep(sid).seed)
    ordered = [(p["disc"]["hid_num"], p["disc"]["hid_size"]) for p in in_order]
    assert len(set(ordered[:8])) + len(set(ordered[8:])) > 2  # what claims in order got


def test_a_packed_agent_runs_a_grid_once_in_packs(toy_sweep, results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = toy_sweep(
        results, {"target": {"values": [0.0, 1.0, 2.0, 3.0, 4.0]}, "steps": {"values": [2, 3, 4]}}
    )
    res = run_agent(b, sid, results=results, pack=5, echo=lambda s: None)
    assert res.states == {"finished": 15}
    assert res.reason == "sweep finished: every grid point has run"
    assert PACKS == [5, 5, 5]  # one shape per claim
    points = sorted((r.params["target"], r.params["steps"]) for r in b.runs(sid))
    assert points == [(t, s) for t in (0.0, 1.0, 2.0, 3.0, 4.0) for s in (2, 3, 4)]


def test_a_packed_agent_keeps_the_run_cap(toy_sweep, results):
    from srsweep.testing.toy.packed import PACKS

    PACKS.clear()
    b, sid = toy_sweep(
        results,
        {"target": {"min": 0.0, "max": 4.0}, "steps": {"values": [2, 3]}},
        method="random",
        run_cap=11,
    )
    res = run_agent(b, sid, results=results, pack=4, echo=lambda s: None)
    assert res.states == {"finished": 11} and len(b.runs(sid)) == 11
    assert PACKS == [4, 4, 3]
    assert b.sweep(sid).reason == "run_cap of 11 reached"


def test_the_progress_line_says_what_chose_a_packs_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packing, "_cores", lambda: 4)
    monkeypatch.delenv("SRSWEEP_THREADS", raising=False)
    assert packing.threads_note(4) == "4 CPU thread(s)"
    assert packing.threads_note(2) == "2 of 4 CPU threads (shared with other work on this host)"
    monkeypatch.setenv("SRSWEEP_THREADS", "3")
    assert packing.threads_note(3) == "3 CPU thread(s) (SRSWEEP_THREADS)"
