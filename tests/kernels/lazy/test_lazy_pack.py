"""Packed ``lazy`` trials against the same trials trained alone by the solo ``train``."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
import torch

from srsweep.config import build
from srsweep.errors import KernelFailed
from srsweep.kernels import Entry
from srsweep.kernels import lazy
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.lazy.config import LazyConfig
from srsweep.kernels.lazy.config import pack_key
from srsweep.kernels.lazy.model import make_model
from srsweep.kernels.lazy.packed import train_packed
from srsweep.kernels.lazy.solo import train
from srsweep.testing import RecordingRun

TINY: dict[str, Any] = {"device": "cpu", "steps": 150, "log_every": 20, "history_every": 40}

# Trials that differ in everything a pack lets differ: α (1 to 1000, lr = lr0/α² from
# 0.05 to 1e-8), lr0, seed (0 twice: one shared init), target, noise, x range, history.
TRIALS: list[dict[str, Any]] = [
    {"alpha": 1.0, "seed": 0},
    {"alpha": 100.0, "seed": 1, "lr0": 0.05, "target": "simple"},
    {"alpha": 1000.0, "seed": 0, "target": "complex", "noise": 0.1},
    {"alpha": 10.0, "seed": 2, "lr0": 0.002, "x_min": -2.0, "x_max": 0.5},
    {"alpha": 300.0, "seed": 3, "lr0": 0.1, "history_every": 0},
    {"alpha": 3.0, "seed": 4, "history_every": 7},
]

SHAPES: list[dict[str, Any]] = [
    {},  # the notebook's MLPdeep(8), full batch
    {"model": "shallow", "width": 20, "n": 10, "batch_size": 4},  # minibatches cut short
    {"model": "deep", "width": 3, "n": 7, "batch_size": 3},
]
SHAPE_IDS = ["deep-8-full", "shallow-20-minibatch", "deep-3-minibatch"]


def cfg_of(**over: Any) -> LazyConfig:
    cfg: LazyConfig = build(LazyConfig, {**TINY, **over}, "test")
    return cfg


def pack_of(shape: dict[str, Any], trials: list[dict[str, Any]] = TRIALS) -> list[LazyConfig]:
    return [cfg_of(**{**t, **shape}) for t in trials]


def solo(cfg: LazyConfig, run: RecordingRun | None = None) -> RecordingRun:
    run = run or RecordingRun()
    train(cfg, run)
    return run


def packed(cfgs: list[LazyConfig], runs: list[RecordingRun] | None = None) -> list[RecordingRun]:
    runs = runs or [RecordingRun() for _ in cfgs]
    assert train_packed(cfgs, runs) == [None] * len(cfgs)
    return runs


def assert_same_run(alone: RecordingRun, pack: RecordingRun, rel: float = 2e-3) -> None:
    """Same log steps and keys, the same metrics and saved state within rounding.

    float32 at α = 100-1000 amplifies every rounding difference of f_w − f_w0 by α, and
    lout.bias moves by a few ulps a step: float32 tolerances are loose, float64's tight.
    """
    assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
    for a, b in zip(alone.history, pack.history, strict=True):
        assert set(a) == set(b)
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=rel, abs=rel * 1e-3), key
    want, got = alone.saved, pack.saved
    assert want is not None and got is not None
    assert got.keys() == want.keys()
    for key in ("alpha", "lr", "dtype", "param_shapes"):
        assert got[key] == want[key], key
    for key in ("x", "y", "grid", "history_steps"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    for key in ("init_state", "final_state"):
        assert list(got[key]) == list(want[key])
        for name, v in want[key].items():
            assert got[key][name].dtype == v.dtype and got[key][name].shape == v.shape
            torch.testing.assert_close(got[key][name], v, rtol=rel, atol=rel * 1e-2)
    for key in ("history", "weights0", "losses", "pred"):
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
        # α(f_w − f_w0) on the grid resolves steps of α·ulp(f): scale its floor by α
        atol = rel * (1e-3 * want["alpha"] if key == "pred" else 1e-2)
        np.testing.assert_allclose(got[key], want[key], rtol=rel, atol=atol, err_msg=key)


# --- pack keys ------------------------------------------------------------------------


def test_kernel_declares_packing() -> None:
    entry = lazy.KERNEL.train_packed
    assert lazy.KERNEL.pack_key is pack_key
    assert isinstance(entry, Entry)
    assert getattr(importlib.import_module(entry.module), entry.name) is train_packed


@pytest.mark.parametrize(
    "over",
    [
        {"seed": 5},
        {"alpha": 1000.0, "lr0": 0.5},
        {"target": "complex", "noise": 0.3, "x_min": -3.0},
        {"history_every": 7, "history_mb": 1.0},
        {"dtype": "float32"},  # what "auto" picks for α <= 1e3
        {"batch_size": 10},  # = n: full batch, as null
    ],
    ids=["seed", "alpha-lr0", "data", "history", "dtype", "batch-n"],
)
def test_pack_key_ignores_what_a_pack_lets_differ(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) == pack_key(cfg_of())


@pytest.mark.parametrize(
    "over",
    [
        {"width": 9},
        {"model": "shallow"},
        {"n": 11},
        {"batch_size": 5},
        {"steps": 151},
        {"log_every": 21},
        {"alpha": 1001.0},  # "auto" switches to float64
        {"dtype": "float64"},
        {"device": "cuda"},
    ],
    ids=["width", "model", "n", "batch", "steps", "log_every", "alpha-f64", "dtype", "device"],
)
def test_pack_key_separates_shapes_and_schedules(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) != pack_key(cfg_of())


# --- packed training equals solo training -----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_packed_trials_equal_their_solo_runs(shape: dict[str, Any]) -> None:
    cfgs = pack_of(shape)
    assert len({pack_key(c) for c in cfgs}) == 1
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack)


def test_float64_packs_match_tightly() -> None:
    # α from 1 to 1e4, in float64 (asked for, or "auto" above α = 1e3): pack and solo
    # agree to rounding
    trials = [{**t, "dtype": "float64"} for t in TRIALS[:4]]
    cfgs = pack_of({"batch_size": 4}, [*trials, {"alpha": 1e4, "seed": 9, "lr0": 1.0}])
    assert len({pack_key(c) for c in cfgs}) == 1
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack, rel=1e-9)


def test_exploding_trial_fails_alone() -> None:
    # SGD at lr 1e6 overflows within a few steps; its NaNs must neither stop the others
    # nor reach them, and it fails where and as the solo train fails.
    cfgs = pack_of({"batch_size": 5}, [*TRIALS[:3], {"alpha": 1.0, "seed": 7, "lr0": 1e6}])
    runs = [RecordingRun() for _ in cfgs]
    out = train_packed(cfgs, runs)
    assert out[:3] == [None] * 3 and isinstance(out[3], KernelFailed)
    with pytest.raises(KernelFailed) as alone:
        solo(cfgs[3], lone := RecordingRun())
    assert str(out[3]) == str(alone.value)
    assert str(out[3]).startswith("non-finite loss at step ") and "lr0=1000000.0" in str(out[3])
    assert runs[3].saved is None
    assert [h["_step"] for h in runs[3].history] == [h["_step"] for h in lone.history]
    for cfg, run in zip(cfgs[:3], runs[:3], strict=True):
        assert_same_run(solo(cfg), run)


def test_stopped_trial_leaves_and_the_rest_go_on() -> None:
    cfgs = pack_of({"batch_size": 4})[:3]
    runs = [RecordingRun(), RecordingRun(stop_after=2), RecordingRun()]
    packed(cfgs, runs)
    assert [h["_step"] for h in runs[1].history] == [0, 20]
    stopped = runs[1].saved
    assert stopped is not None and stopped["history_steps"].tolist() == [0, 20]
    assert len(stopped["losses"]) == 21
    assert_same_run(solo(cfgs[1], RecordingRun(stop_after=2)), runs[1])
    for i in (0, 2):
        assert runs[i].history[-1]["_step"] == 149
        assert_same_run(solo(cfgs[i]), runs[i])


def test_saved_state_loads_and_reproduces_the_prediction() -> None:
    cfgs = pack_of({"model": "shallow", "width": 12})[:3]
    cfg, saved = cfgs[1], packed(cfgs)[1].saved
    assert saved is not None
    net, net0 = make_model(cfg), make_model(cfg)
    net.load_state_dict(to_tensors(saved["final_state"]))
    net0.load_state_dict(to_tensors(saved["init_state"]))
    grid = torch.as_tensor(saved["grid"], dtype=torch.float32).view(-1, 1)
    with torch.no_grad():
        pred = cfg.alpha * (net(grid) - net0(grid)).squeeze(1)
    np.testing.assert_allclose(saved["pred"], pred.numpy(), rtol=1e-3, atol=1e-4)
    flat = np.concatenate([v.ravel() for v in saved["final_state"].values()])
    np.testing.assert_array_equal(saved["history"][-1], flat)


# --- GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", SHAPES[:2], ids=SHAPE_IDS[:2])
def test_cuda_pack_matches_cuda_solo_runs(shape: dict[str, Any]) -> None:
    cfgs = pack_of({**shape, "device": "cuda"})
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack, rel=5e-3)
