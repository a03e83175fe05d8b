from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from srsweep import kernels
from srsweep.config import build
from srsweep.errors import KernelFailed
from srsweep.errors import SpecError
from srsweep.kernels import lazy
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.lazy import landscape
from srsweep.kernels.lazy import model
from srsweep.kernels.lazy.config import LazyConfig
from srsweep.kernels.lazy.solo import train
from srsweep.testing.fakes import RecordingRun


def config(**overrides: object) -> LazyConfig:
    cfg: LazyConfig = build(LazyConfig, overrides, "test")
    return cfg


def run_lazy(stop_after: int | None = None, **overrides: object) -> RecordingRun:
    run = RecordingRun(stop_after=stop_after)
    train(config(**overrides), run)
    return run


def test_registered() -> None:
    assert kernels.get("lazy") is lazy.KERNEL
    assert (lazy.KERNEL.metric, lazy.KERNEL.goal, lazy.KERNEL.curve) == ("loss", "minimize", "loss")
    for entry, fn in ((lazy.KERNEL.train, train), (lazy.KERNEL.landscape, landscape.problem)):
        assert isinstance(entry, kernels.Entry)
        assert getattr(importlib.import_module(entry.module), entry.name) is fn


def test_bad_values_name_their_keys() -> None:
    with pytest.raises(SpecError) as err:
        build(LazyConfig, {"alpha": 0, "model": "wide", "widht": 3}, "test")
    msg = str(err.value)
    assert "alpha: must be > 0" in msg
    assert "model: must be one of 'shallow', 'deep'" in msg
    assert "widht: unknown key (did you mean width?)" in msg


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"batch_size": 11}, "batch_size: must be <= n = 10"), ({"x_min": 1.0}, "x_min, x_max:")],
    ids=["batch-too-big", "empty-interval"],
)
def test_cross_field_rules(overrides: dict[str, float], key: str) -> None:
    with pytest.raises(SpecError, match=key):
        build(LazyConfig, overrides, "test")


def test_models_are_the_notebooks() -> None:
    shallow = model.make_model(config(model="shallow", width=10))
    assert sum(p.numel() for p in shallow.parameters()) == 31  # printed in the seed
    deep = model.make_model(config())
    names = [n for n, _ in deep.named_parameters()]
    assert names[::2] == [
        "l1.weight",
        "l2.weight",
        "l3.weight",
        "l4.weight",
        "l5.weight",
        "lout.weight",
    ]
    assert names[-1] == "lout.bias"
    # PyTorch's default init, from the seed and leaving the global RNG alone
    before = torch.get_rng_state()
    again = model.make_model(config())
    assert torch.equal(torch.get_rng_state(), before)
    pairs = zip(deep.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("target", ["simple", "middle", "complex"])
def test_data_follow_the_target(target: str) -> None:
    x, y, _ = model.make_data(config(target=target, n=50))
    assert x.shape == y.shape == (50,)
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(y, model.TARGETS[target](x))


def test_targets_by_hand() -> None:
    pts = np.array([-1.0, -0.5, 0.5, 1.0])
    assert model.TARGETS["simple"](pts).tolist() == pytest.approx([0, 0, 0.15, 0.3])
    assert model.TARGETS["middle"](pts).tolist() == pytest.approx([0.1, -0.4, 0.6, 0.1])
    assert model.TARGETS["complex"](pts)[3] == pytest.approx(np.sin(10) * np.cos(3))


def test_noise_is_drawn_per_point() -> None:
    x0, y0, _ = model.make_data(config(n=20))
    x1, y1, _ = model.make_data(config(n=20, noise=0.1))
    np.testing.assert_array_equal(x0, x1)  # the noise draws are interleaved even at 0
    assert 0 < np.abs(y1 - y0).max() < 0.5


def test_batches_follow_next_batch() -> None:
    rng = np.random.RandomState(0)
    nxt = model.batches(10, 4, rng)
    first = [nxt() for _ in range(3)]
    assert [b.tolist() for b in first] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    fourth = nxt()  # reshuffled, and the position wrapped to 12 % 10 = 2
    order = np.arange(10)
    np.random.RandomState(0).shuffle(order)
    assert fourth.tolist() == order[2:6].tolist()


def test_dtype_auto() -> None:
    assert model.resolve_dtype(config(alpha=1000)) == torch.float32
    assert model.resolve_dtype(config(alpha=1001)) == torch.float64
    assert model.resolve_dtype(config(alpha=5000, dtype="float32")) == torch.float32
    assert run_lazy(alpha=2000, steps=2).saved["dtype"] == "float64"


def test_starts_at_zero_and_logs_the_movement() -> None:
    run = run_lazy(steps=25, log_every=10, history_every=10)
    assert [h["_step"] for h in run.history] == [0, 10, 20, 24]
    saved = run.saved
    # α(f_w0 − f_w0) = 0: the first loss is the mean of y²
    assert run.history[0]["loss"] == pytest.approx(np.mean(saved["y"] ** 2), rel=1e-5)
    assert saved["losses"].shape == (25,) and saved["losses"][-1] == run.history[-1]["loss"]
    init, final = to_tensors(saved["init_state"]), to_tensors(saved["final_state"])
    b0, b1 = init["lout.bias"], final["lout.bias"]
    want = ((b1 - b0).norm() / b0.norm()).item()
    assert run.history[-1]["rel_move_last"] == pytest.approx(want, rel=1e-4)
    w0, w1 = init["lout.weight"], final["lout.weight"]
    assert run.history[-1]["rel_move_last_weight"] == pytest.approx(
        ((w1 - w0).norm() / w0.norm()).item(), rel=1e-4
    )
    hist = saved["history"]
    assert hist.dtype == np.float32 and hist.shape == (4, 313)
    assert saved["history_steps"].tolist() == [0, 10, 20, 24]
    flat = np.concatenate([v.ravel() for v in saved["final_state"].values()])
    np.testing.assert_array_equal(hist[-1], flat)
    np.testing.assert_array_equal(
        saved["weights0"], np.concatenate([v.ravel() for v in saved["init_state"].values()])
    )
    assert saved["grid"].shape == saved["pred"].shape == (model.GRID_SIZE,)


def test_movement_shrinks_like_one_over_alpha() -> None:
    runs = {a: run_lazy(alpha=a, steps=300, log_every=100) for a in (1, 100, 1000)}
    move = {a: r.history[-1]["rel_move_all"] for a, r in runs.items()}
    assert move[1] > move[100] > move[1000] > 0
    assert 50 < move[1] / move[100] < 200
    assert 5 < move[100] / move[1000] < 20
    loss = runs[100].saved["losses"]
    assert loss[-1] < 0.6 * loss[0]  # still learns


def test_minibatches_and_history_cap() -> None:
    run = run_lazy(steps=30, batch_size=3, history_every=1, history_mb=9 * 313 * 4 / 2**20)
    assert run.saved["history_steps"].tolist() == [0, 4, 8, 12, 16, 20, 24, 28, 29]
    assert run_lazy(steps=5, history_every=0).saved["history"].shape == (0, 313)


def test_non_finite_loss_fails_clearly() -> None:
    with pytest.raises(KernelFailed, match=r"non-finite loss at step \d+ \(lr0=1000000.0"):
        run_lazy(lr0=1e6, steps=200)


def test_should_stop_is_honoured() -> None:
    run = run_lazy(stop_after=2, steps=1000, log_every=10, history_every=100)
    assert [h["_step"] for h in run.history] == [0, 10]
    assert run.saved["history_steps"].tolist() == [0, 10]
    assert len(run.saved["losses"]) == 11


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_matches_cpu(dtype: str) -> None:
    cpu = run_lazy(steps=200, alpha=100, dtype=dtype, device="cpu", batch_size=4)
    gpu = run_lazy(steps=200, alpha=100, dtype=dtype, device="cuda", batch_size=4)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(gpu.saved["losses"], cpu.saved["losses"], rtol=tol, atol=tol)
    np.testing.assert_allclose(gpu.saved["history"], cpu.saved["history"], rtol=tol, atol=tol)
