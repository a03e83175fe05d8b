"""Packed ``stn`` trials against the same trials trained alone by the solo ``train``."""

from __future__ import annotations

import importlib
import re
from typing import Any

import numpy as np
import pytest
import torch

from srsweep.config import build
from srsweep.errors import KernelFailed
from srsweep.kernels import Entry
from srsweep.kernels import stn
from srsweep.kernels.stn.config import STNConfig
from srsweep.kernels.stn.config import pack_key
from srsweep.kernels.stn.hypernet import HyperNet
from srsweep.kernels.stn.hypernet import KerasAdam
from srsweep.kernels.stn.layout import Layout
from srsweep.kernels.stn.packed import train_packed
from srsweep.kernels.stn.solo import train
from srsweep.kernels.stn.stack import StackedAdam
from srsweep.testing import RecordingRun

TINY: dict[str, Any] = {"device": "cpu", "max_cycles": 24, "dist_threshold": 0.0}

# Trials that differ in what the study sweeps (hyper lr, init x_range, seed) and in
# everything else a pack lets differ: the other rates, Adam eps, entropy weight, the
# initial scale, t's interval, the eval and validation ranges, budget and log cadence.
TRIALS: list[dict[str, Any]] = [
    {"seed": 42, "hyper_lr": 0.001, "init_x_range": 0.5},
    {"seed": 47, "hyper_lr": 0.01, "init_x_range": 3.0, "log_every": 5},
    {"seed": 42, "hyper_lr": 0.003, "init_x_range": 2.0, "scale_lr": 0.01, "train_lr": 0.02},
    {"seed": 3, "entropy_weight": 0.01, "init_scale": 0.3, "adam_eps": 1e-8, "max_cycles": 15},
    {"seed": 4, "x_min": 0.1, "x_max": 5.0, "eval_range": 1.5, "val_range": 1.0, "log_every": 4},
]

# pack-wide settings: both gate kinds, no hyper steps, eval size apart from the batch
SHAPES = [
    {},
    {"gate": "unit"},
    {"hyper_steps": 0},
    {"eval_size": 37, "batch_size": 20, "warmup_steps": 0, "L": 1, "M": 3, "train_steps": 3},
]
SHAPE_IDS = ["port", "unit-gates", "no-hyper-steps", "other-shapes"]


def cfg_of(**over: Any) -> STNConfig:
    cfg: STNConfig = build(STNConfig, {**TINY, **over}, "test")
    return cfg


def solo(cfg: STNConfig, run: RecordingRun | None = None) -> RecordingRun:
    run = run or RecordingRun()
    train(cfg, run)
    return run


def packed(cfgs: list[STNConfig], runs: list[RecordingRun] | None = None) -> list[RecordingRun]:
    runs = runs or [RecordingRun() for _ in cfgs]
    assert train_packed(cfgs, runs) == [None] * len(cfgs)
    return runs


def assert_same_history(alone: RecordingRun, pack: RecordingRun, rel: float = 1e-9) -> None:
    """Same log steps and keys, the same values within float64 rounding."""
    assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
    for a, b in zip(alone.history, pack.history, strict=True):
        assert list(b) == list(a)
        for key, want in a.items():
            assert b[key] == pytest.approx(want, rel=rel, abs=1e-12), key


def assert_same_run(alone: RecordingRun, pack: RecordingRun, rel: float = 1e-9) -> None:
    """The same history and the same saved state: keys, trajectories, eval grid, net and
    stop record."""
    assert_same_history(alone, pack, rel)
    assert alone.saved is not None and pack.saved is not None
    assert list(pack.saved) == list(alone.saved)
    for key in ("cycles", "converged", "stop_reason"):
        assert pack.saved[key] == alone.saved[key], key
    for key in ("unc_x_range", "scale_param", "x_range", "scale", "dist", "dist_clean"):
        np.testing.assert_allclose(pack.saved[key], alone.saved[key], rtol=rel, atol=1e-12)
    for key in ("x_eval", "f_eval", "f_eval_clean"):
        got, want = pack.saved[key], alone.saved[key]
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rel, atol=1e-12)
    a_model, b_model = alone.saved["model_state"], pack.saved["model_state"]
    assert list(b_model) == list(a_model)
    for name, w in a_model.items():
        got = b_model[name]
        assert got.shape == w.shape and got.dtype == w.dtype and isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, w, rtol=rel, atol=1e-12)


# --- pack keys ------------------------------------------------------------------------


def test_kernel_declares_packing() -> None:
    entry = stn.KERNEL.train_packed
    assert stn.KERNEL.pack_key is pack_key
    assert isinstance(entry, Entry)
    assert getattr(importlib.import_module(entry.module), entry.name) is train_packed


@pytest.mark.parametrize(
    "over",
    [
        {"seed": 5},
        {"hyper_lr": 0.01, "scale_lr": 0.01, "train_lr": 0.1, "adam_eps": 1e-8},
        {"init_x_range": 3.0, "init_scale": 1.0},
        {"entropy_weight": 0.1},
        {"x_min": 0.5, "x_max": 4.0, "eval_range": 1.0, "val_range": 3.0},
        {"max_cycles": 7, "log_every": 10, "dist_threshold": 0.5},
    ],
    ids=["seed", "rates", "inits", "entropy", "ranges", "budget"],
)
def test_pack_key_ignores_what_a_pack_lets_differ(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) == pack_key(cfg_of())


@pytest.mark.parametrize(
    "over",
    [
        {"L": 3},
        {"M": 3},
        {"gate": "unit"},
        {"batch_size": 50},
        {"eval_size": 50},
        {"warmup_steps": 0},
        {"train_steps": 3},
        {"hyper_steps": 1},
        {"dtype": "float32"},
        {"device": "auto"},
    ],
    ids=lambda over: next(iter(over)),
)
def test_pack_key_separates_what_shapes_the_pack(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) != pack_key(cfg_of())


@pytest.mark.slow  # imports the sweeps library
def test_study_sweeps_pack_into_one_pack_each() -> None:
    from srsweep.engine import suggest
    from srsweep.spec import load_spec

    for name, size in (("stn_hyper_lr.yaml", 24), ("stn_seeds.yaml", 10)):
        spec = load_spec(f"sweeps/{name}").raw
        params = suggest(spec, [], 100, seed=0)
        assert len(params) == size
        assert len({pack_key(build(STNConfig, p, "test")) for p in params}) == 1, name


# --- building blocks ------------------------------------------------------------------


@pytest.mark.parametrize("gate", ["layer", "unit"])
def test_layout_round_trips_a_hypernet(gate: str) -> None:
    cfg = cfg_of(gate=gate, L=1, M=3)
    net = HyperNet(cfg.L, cfg.M, gate, torch.Generator().manual_seed(1))
    lay = Layout(cfg)
    row = lay.row(net)
    assert row.shape == (lay.size,) == (sum(p.numel() for p in net.parameters()),)
    back, want = lay.state_dict(row), net.state_dict()
    assert list(back) == list(want)
    for name, w in want.items():
        assert torch.equal(back[name], w), name


def test_stacked_adam_is_keras_adam_per_row() -> None:
    gen = torch.Generator().manual_seed(0)
    lrs, epss = [0.01, 0.003, 0.5], [1e-7, 1e-8, 1e-3]
    p = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    rows = [p[t].clone() for t in range(3)]
    solos = [KerasAdam(r, lr, e) for r, lr, e in zip(rows, lrs, epss, strict=True)]
    f64 = {"dtype": torch.float64}
    stacked = StackedAdam(p, torch.tensor(lrs, **f64)[:, None], torch.tensor(epss, **f64)[:, None])
    for _ in range(5):
        grad = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 1e-3
        stacked.step(p, grad)
        for t, opt in enumerate(solos):
            opt.step(grad[t])
    for t in range(3):
        torch.testing.assert_close(p[t], rows[t], rtol=1e-15, atol=0)


# --- packed against alone ---------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_pack_matches_solo_runs(shape: dict[str, Any]) -> None:
    cfgs = [cfg_of(**{**t, **shape}) for t in TRIALS]
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack)


def test_float32_pack_stays_close_to_solo() -> None:
    cfgs = [cfg_of(**t, dtype="float32", max_cycles=10) for t in TRIALS[:3]]
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
        np.testing.assert_allclose(pack.saved["dist"], alone.saved["dist"], rtol=1e-3)
        assert pack.saved["model_state"]["layers.0.w"].dtype == np.float32


def test_converged_trial_leaves_and_others_go_on() -> None:
    # seed 7 from x_range 2 gets below dist 1.5 within a dozen cycles and leaves; the
    # others (one stopping at its own, lower threshold later, one not at all) carry on
    over = [
        {"seed": 7, "init_x_range": 2.0, "dist_threshold": 1.5},
        {"seed": 3, "max_cycles": 30},
        {"seed": 42, "dist_threshold": 1.3, "max_cycles": 60},
    ]
    cfgs = [cfg_of(**o) for o in over]
    alone, pack = [solo(c) for c in cfgs], packed(cfgs)
    for a, p in zip(alone, pack, strict=True):
        assert_same_run(a, p)
    assert pack[0].saved is not None and pack[0].saved["stop_reason"] == "converged"
    first = pack[0].saved["cycles"]
    assert first < 20 and pack[0].history[-1]["converged"] == 1.0
    assert pack[1].saved is not None and pack[1].saved["cycles"] == 30
    assert pack[2].saved is not None and pack[2].saved["stop_reason"] == "converged"
    assert first < pack[2].saved["cycles"] < 60


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"train_lr": 1e30, "warmup_steps": 0}, "at cycle 0"),
        ({"scale_lr": 300.0, "warmup_steps": 0}, "at cycle [1-9]"),
        ({"train_lr": 1e30}, "during warm-up"),
    ],
    ids=["weights-at-once", "scale-later", "warm-up"],
)
def test_non_finite_trial_fails_alone(over: dict[str, Any], where: str) -> None:
    warm = {"warmup_steps": over.get("warmup_steps", 5)}
    cfgs = [cfg_of(seed=1, **warm), cfg_of(seed=2, **over), cfg_of(seed=3, **warm)]
    with pytest.raises(KernelFailed) as err:
        solo(cfgs[1])
    assert re.search(where, str(err.value))
    runs = [RecordingRun() for _ in cfgs]
    outcome = train_packed(cfgs, runs)
    assert outcome[0] is None and outcome[2] is None
    assert isinstance(outcome[1], KernelFailed) and str(outcome[1]) == str(err.value)
    assert runs[1].saved is None
    failed_alone = RecordingRun()
    with pytest.raises(KernelFailed):
        solo(cfgs[1], failed_alone)
    assert_same_history(failed_alone, runs[1])  # what it logged before it failed
    for t in (0, 2):
        assert_same_run(solo(cfgs[t]), runs[t])


def test_stopped_run_leaves() -> None:
    cfgs = [cfg_of(seed=1), cfg_of(seed=2, log_every=3), cfg_of(seed=3)]
    runs = [RecordingRun(), RecordingRun(stop_after=2), RecordingRun()]
    packed(cfgs, runs)
    assert runs[1].saved is not None and runs[1].saved["stop_reason"] == "stopped"
    assert [h["_step"] for h in runs[1].history] == [0, 3] and runs[1].saved["cycles"] == 4
    assert_same_run(solo(cfgs[1], RecordingRun(stop_after=2)), runs[1])
    for t in (0, 2):
        assert_same_run(solo(cfgs[t]), runs[t])


# --- GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_matches_cuda_solo_runs() -> None:
    cfgs = [cfg_of(**{**t, "device": "cuda", "max_cycles": 40}) for t in TRIALS]
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack, rel=1e-7)
