"""Packed ``srnet`` trials against the same trials trained alone by the solo ``train``
(the cases every packing kernel has are in the kernel contract suite)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import KernelFailed
from srsweep.kernels import Run
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.config import pack_key
from srsweep.kernels.srnet.packed import train_packed
from srsweep.kernels.srnet.solo import train
from srsweep.testing import RecordingRun

# The 184 layout on a small budget: DSN 2x8 first half, 2x8 critic, 2 critic steps.
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 60,
    "log_freq": 25,
    "arch": {"hid_num": [2, 0], "hid_size": 8},
    "disc": {"hid_num": 2, "hid_size": 8, "iters": 2},
}

# Trials that differ in what a pack lets differ (seed 0 twice: one shared init); l1 is
# on in every one, as which regularisers are on is in the key.
TRIALS: list[dict[str, Any]] = [
    {"seed": 0, "l1": 1e-9},
    {"seed": 1, "lr": 1e-3, "sd_fun": "sigmoid", "l1": 0.01},
    {
        "seed": 2,
        "l1": 1e-9,
        "sd": 0.5,
        "sd_fun": "logsigmoid",
        "disc": {"lr": 1e-3, "betas": [0.5, 0.9]},
    },
    {"seed": 0, "wd": 1e-3, "sd": 2.0, "l1": 0.1, "disc": {"wd": 1e-3}},
]

SHAPES: list[dict[str, Any]] = [
    {},  # the 184 base layout
    {"ext": ["input", "grad"], "iter_sample": True},  # critic sees x and the Jacobian
    {"sd": 0.0, "a1": 0.01, "e1": 0.01, "arch": {"hid_kwargs": {"alpha": None}}},
    {"arch": {"hid_type": "MLP", "hid_num": 2}, "disc": {"loss": "wgan"}},
]
SHAPE_IDS = ["base", "ext-input-grad", "no-critic-trainable-mask", "mlp-wgan"]


def cfg_of(**over: Any) -> SRNetConfig:
    cfg: SRNetConfig = build(SRNetConfig, layered(TINY, over), "test")
    return cfg


def solo(cfg: SRNetConfig) -> RecordingRun:
    run = RecordingRun()
    train(cfg, run)
    return run


def packed(cfgs: list[SRNetConfig]) -> list[RecordingRun]:
    runs = [RecordingRun() for _ in cfgs]
    assert train_packed(cfgs, list[Run](runs)) == [None] * len(cfgs)
    return runs


def assert_same_run(alone: RecordingRun, pack: RecordingRun, rel: float = 1e-4) -> None:
    """Same log steps and keys, the same metrics and saved state within rounding."""
    assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
    for a, b in zip(alone.history, pack.history, strict=True):
        assert set(a) == set(b)
        for key in set(a) - {"time"}:
            assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-6), key
    want, got = alone.saved, pack.saved
    assert want is not None and got is not None
    assert got.keys() == want.keys()
    np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=rel, atol=1e-7)
    for key in ("model_state", "disc_state"):
        if key in want:
            assert got[key].keys() == want[key].keys()
            for name, v in want[key].items():
                torch.testing.assert_close(got[key][name], v, rtol=rel, atol=1e-5)
    for key in ("optimizer_state", "disc_opt_state"):
        if key in want:
            assert got[key]["param_groups"] == want[key]["param_groups"]
            assert got[key]["state"].keys() == want[key]["state"].keys()
    np.testing.assert_allclose(got["corr_mat"], want["corr_mat"], rtol=rel, atol=1e-5)


def test_gradient_penalty_keeps_trials_apart_and_runs_them_alone() -> None:
    a, b = cfg_of(epochs=6, disc={"gp": 1.0}), cfg_of(epochs=6, seed=1, disc={"gp": 1.0})
    assert pack_key(a) != pack_key(b)
    assert_same_run(solo(a), packed([a])[0], rel=1e-6)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_packed_trials_equal_their_solo_runs(shape: dict[str, Any]) -> None:
    trials = TRIALS if shape is SHAPES[0] else TRIALS[:2]
    cfgs = [cfg_of(**layered(shape, t)) for t in trials]
    assert len({pack_key(c) for c in cfgs}) == 1
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack)


def test_survivors_of_a_shrunk_pack_end_as_they_do_alone() -> None:
    # One trial explodes, one stops at its second log: the pack is re-stacked twice,
    # and every trial still logs and saves (model, critic, optimisers) what it does alone.
    cfgs = [cfg_of(seed=0), cfg_of(seed=1, lr=1e30), cfg_of(seed=2), cfg_of(seed=3)]
    with pytest.raises(KernelFailed) as alone_err:
        solo(cfgs[1])
    runs = [RecordingRun(), RecordingRun(), RecordingRun(stop_after=2), RecordingRun()]
    out = train_packed(cfgs, list[Run](runs))
    assert out[0] is None and out[2] is None and out[3] is None
    assert isinstance(out[1], KernelFailed) and str(out[1]) == str(alone_err.value)
    assert runs[1].saved is None
    assert [h["_step"] for h in runs[2].history] == [0, 25]
    stopped = RecordingRun(stop_after=2)
    train(cfgs[2], stopped)
    assert_same_run(stopped, runs[2])
    for t in (0, 3):
        assert [h["_step"] for h in runs[t].history] == [0, 25, 50, 59]
        assert_same_run(solo(cfgs[t]), runs[t])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_matches_cuda_solo_runs() -> None:
    cfgs = [cfg_of(**layered({"device": "cuda"}, t)) for t in TRIALS]
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack, rel=1e-3)
