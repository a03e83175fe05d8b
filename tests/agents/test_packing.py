"""Packing: claimed trials grouped by pack key, and the torch threads of a trial or pack."""

from __future__ import annotations

import os

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
    monkeypatch.setattr(packing, "_load", lambda: 0.0)  # an idle machine
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
    monkeypatch.setattr(packing, "_load", lambda: 0.5)
    assert packing.cpu_pack_threads() == machine
    monkeypatch.setattr(packing, "_load", lambda: machine + 0.5)  # more runnable than cores
    assert packing.cpu_pack_threads() == 1


def test_a_narrower_mask_keeps_its_cores_whatever_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mask SLURM or taskset gave this process is its own, however loaded the machine."""
    machine = os.cpu_count() or 1
    monkeypatch.setattr(packing, "_cores", lambda: machine + 1)  # not the machine's count
    monkeypatch.setattr(packing, "_load", lambda: 1e6)
    assert packing.cpu_pack_threads() == machine + 1
