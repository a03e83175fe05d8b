"""The ``sd`` kernel trained alone (``sd.solo.train``) and the pieces it is made of."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import KernelFailed
from srsweep.kernels.common import data
from srsweep.kernels.common.funlib import FunctionLibrary
from srsweep.kernels.common.nets import critic_input
from srsweep.kernels.common.nets import critic_steps
from srsweep.kernels.common.nets import gradient_penalty
from srsweep.kernels.common.nets import mlp_apply
from srsweep.kernels.common.nets import random_mlp
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.sd import SDConfig
from srsweep.kernels.sd.model import DRAWS
from srsweep.kernels.sd.model import INIT
from srsweep.kernels.sd.model import draws_generator
from srsweep.kernels.sd.model import make_batch
from srsweep.kernels.sd.model import make_critic
from srsweep.kernels.sd.model import stream_seed
from srsweep.kernels.sd.solo import train
from srsweep.testing import RecordingRun

# Small and quick: a 2x16 critic, 3 latents, WGAN with the default gp.
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "arch": {"lat_size": 3},
    "disc": {"hid_num": 2, "hid_size": 16, "iters": 2},
}


def cfg_of(**over: Any) -> SDConfig:
    cfg: SDConfig = build(SDConfig, layered(TINY, over), "test")
    return cfg


def run_of(cfg: SDConfig, run: RecordingRun | None = None) -> RecordingRun:
    run = run or RecordingRun()
    train(cfg, run)
    return run


def x_train(cols: int = 1) -> torch.Tensor:
    rows = data.masks("X10")["train"]
    return torch.as_tensor(data.inputs("X10")[rows, :cols], dtype=torch.float32)


# --- critic inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "shape"),
    [
        ({}, (700,)),
        ({"ext": ["input"]}, (700, 2)),
        ({"ext": ["grad"]}, (700, 2)),
        ({"ext": ["input", "grad"]}, (700, 3)),
        ({"ext": ["grad"], "ext_type": "stack"}, (1400,)),
    ],
    ids=["no-ext", "embed-input", "embed-grad", "embed-both", "stack-grad"],
)
def test_batch_and_critic_shapes(over: dict[str, Any], shape: tuple[int, ...]) -> None:
    cfg = cfg_of(iter_sample=True, **over)
    reals, fake = make_batch(cfg, FunctionLibrary("F10_v1"), x_train(), torch.Generator())
    assert reals.shape == (2, 3, *shape) and fake.shape == (3, *shape)
    critic = make_critic(cfg, 700)
    assert (critic.layers1 is not None) == (len(shape) == 2)
    assert critic(fake).shape == (3,) and critic(reals).shape == (2, 3)


def test_one_real_batch_without_iter_sample() -> None:
    reals, _ = make_batch(cfg_of(), FunctionLibrary("F10_v1"), x_train(), torch.Generator())
    assert reals.shape == (1, 3, 700)


def test_extension_features_carry_inputs_and_derivatives() -> None:
    x = x_train()
    cfg = cfg_of(ext=["input", "grad"])
    reals, fake = make_batch(cfg, FunctionLibrary("F10_v1"), x, torch.Generator().manual_seed(1))
    for batch in (reals[0], fake):
        torch.testing.assert_close(batch[..., 1], x[:, 0].expand(3, -1))
    # real derivatives: the F10 derivative field, i.e. the slope of the parabola
    curve, slope = reals[0, 0, :, 0], reals[0, 0, :, 2]
    order = x[:, 0].argsort()
    dx = x[order[1:], 0] - x[order[:-1], 0]
    finite_diff = (curve[order[1:]] - curve[order[:-1]]) / dx
    mid = (slope[order[1:]] + slope[order[:-1]]) / 2
    keep = dx > 1e-3
    torch.testing.assert_close(finite_diff[keep], mid[keep], atol=1e-3, rtol=1e-2)


def test_stack_puts_values_first_then_extras_point_major() -> None:
    values = torch.arange(6.0).view(2, 3)  # (B, N)
    ext = torch.arange(100.0, 112.0).view(2, 3, 2)  # (B, N, 2)
    out = critic_input(values, [ext], "stack")
    assert out.shape == (2, 9)
    assert out[1].tolist() == [3, 4, 5, 106, 107, 108, 109, 110, 111]
    assert critic_input(values, [ext], "embed")[1, 2].tolist() == [5, 110, 111]
    assert critic_input(values, [], "stack") is values


def test_generator_jacobian_matches_autograd() -> None:
    params = random_mlp([2, 8, 8, 3], torch.Generator().manual_seed(0))
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
    out, jac = mlp_apply(params, x, jacobian=True)
    assert out.shape == (20, 3) and jac is not None and jac.shape == (20, 3, 2)
    for n in range(20):
        ref = torch.func.jacrev(lambda v: mlp_apply(params, v[None])[0][0])(x[n])
        torch.testing.assert_close(jac[n], ref)


def test_generator_weights_use_the_pytorch_default_range() -> None:
    params = random_mlp([1, 32, 32, 5], torch.Generator().manual_seed(0))
    assert [tuple(w.shape) for w, _ in params] == [(32, 1), (32, 32), (5, 32)]
    for w, b in params:
        bound = w.shape[1] ** -0.5
        assert w.abs().max() <= bound and b.abs().max() <= bound
    w = params[1][0]
    assert abs(w.std().item() - 32**-0.5 / math.sqrt(3)) < 0.01


def test_real_and_fake_curves_have_the_same_scale() -> None:
    # Reference section 1: both ~0.06 per-sample std and ~0.12 mean |y| (typical values).
    cfg, lib, x, gen = (
        cfg_of(arch={"lat_size": 50}),
        FunctionLibrary("F10_v1"),
        x_train(),
        torch.Generator().manual_seed(0),
    )
    batches = [make_batch(cfg, lib, x, gen) for _ in range(20)]
    real = torch.cat([r[0] for r, _ in batches])
    fake = torch.cat([f for _, f in batches])
    for curves in (real, fake):
        assert 0.045 < curves.std(1).median() < 0.075
        assert 0.09 < curves.abs().mean(1).median() < 0.15


# --- losses and penalty ---------------------------------------------------------------


def _linear_critic() -> nn.Linear:
    critic = nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, -1.0]]))
        critic.bias.zero_()
    return critic


class _Flat(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x).squeeze(-1)
        return out


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("wgan", (-1.5, -1.0)),
        (
            "bce",
            ((math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 2, math.log1p(math.exp(-1))),
        ),
    ],
    ids=["wgan", "bce"],
)
def test_loss_terms_by_hand(loss: str, expected: tuple[float, float]) -> None:
    critic = _Flat(_linear_critic())
    reals = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])  # logits 1, 2
    fake = torch.tensor([[0.0, 1.0]])  # logit -1
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    correct, terms, bad = critic_steps(
        critic, opt, reals, fake, iters=3, loss=loss, gp=0.0, generator=torch.Generator()
    )
    torch.testing.assert_close(terms, torch.tensor([*expected, 0.0]))
    assert correct.item() == 3 * 3 and not bad.any()


class _HalfSquare(nn.Module):
    """D(x) = a * sum(x^2) / 2, so dD/dx = a * x: the penalty is easy by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.a * (x**2).flatten(1).sum(1) / 2
        return out


def test_gradient_penalty_by_hand() -> None:
    critic = _HalfSquare()
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]])  # the third is unpaired
    fake = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    eps = torch.tensor([0.25, 0.5])
    # mixes [2.5, 0] and [0, 1]: norms 2.5 and 1 -> ((1.5)^2 + 0^2) / 2
    pen = gradient_penalty(critic, real, fake, eps)
    torch.testing.assert_close(pen, torch.tensor(1.125))
    (da,) = torch.autograd.grad(pen, critic.a)  # graph kept: d/da of (a*2.5 - 1)^2 / 2
    torch.testing.assert_close(da, torch.tensor(2.5 * 1.5))


def test_gradient_penalty_norm_spans_points_and_features() -> None:
    real = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]])  # (B, N, emb)
    fake = torch.zeros(1, 2, 2)
    pen = gradient_penalty(_HalfSquare(), real, fake, torch.tensor([1.0]))
    torch.testing.assert_close(pen, torch.tensor((5.0 - 1.0) ** 2))


def test_critic_steps_report_the_penalty_they_used() -> None:
    critic = _HalfSquare()
    reals = torch.randn(1, 4, 6, generator=torch.Generator().manual_seed(0))
    fake = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    twin = torch.Generator()
    twin.set_state(gen.get_state())
    expected = gradient_penalty(critic, reals[0], fake, torch.rand(4, generator=twin))
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    _, terms, _ = critic_steps(
        critic, opt, reals, fake, iters=1, loss="wgan", gp=1e-3, generator=gen
    )
    torch.testing.assert_close(terms[2], expected.detach())


# --- training -----------------------------------------------------------------------


def _history(run: RecordingRun) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "time"} for h in run.history]


def test_logs_every_log_freq_and_the_last_epoch() -> None:
    run = run_of(cfg_of())
    assert [h["_step"] for h in run.history] == [0, 5, 10, 11]
    assert set(run.history[0]) == {
        "_step",
        "acc",
        "avg_acc",
        "epoch",
        "time",
        "loss",
        "loss_real",
        "loss_fake",
        "gp",
    }
    saved = run.saved
    assert saved is not None and len(saved["tot_accs"]) == len(saved["times"]) == 12
    assert run.series("acc") == [saved["tot_accs"][e] for e in (0, 5, 10, 11)]
    assert run.history[-1]["avg_acc"] == pytest.approx(sum(saved["tot_accs"]) / 12)
    for h in run.history:  # 2 steps x (3 real + 3 fake) predictions per epoch
        assert (h["acc"] * 12) == pytest.approx(round(h["acc"] * 12))
        assert h["loss"] == pytest.approx(h["loss_real"] + h["loss_fake"] + 1e-5 * h["gp"])


def test_avg_acc_uses_the_last_avg_hor_epochs() -> None:
    run = run_of(cfg_of(avg_hor=4))
    accs = run.saved["tot_accs"]  # type: ignore[index]
    assert run.history[-1]["avg_acc"] == pytest.approx(sum(accs[-4:]) / 4)


def test_saved_state_loads_into_a_fresh_critic() -> None:
    cfg = cfg_of(ext=["grad"], disc={"loss": "bce", "gp": 0.0})
    saved = run_of(cfg).saved
    assert saved is not None
    assert (saved["fun_lib"], saved["in_var"]) == ("F10_v1", "X10")
    critic = make_critic(cfg, 700)
    critic.load_state_dict(to_tensors(saved["disc_state"]))
    assert "layers1.0.weight" in saved["disc_state"]
    assert all(isinstance(v, np.ndarray) for v in saved["disc_state"].values())  # as stored
    assert saved["disc_opt_state"]["param_groups"][0]["lr"] == 1e-4
    assert saved["times"] == sorted(saved["times"])


def test_same_seed_same_history_other_seed_differs() -> None:
    a, b = run_of(cfg_of()), run_of(cfg_of())
    assert _history(a) == _history(b)
    assert a.saved is not None and b.saved is not None
    for k, v in a.saved["disc_state"].items():
        assert np.array_equal(v, b.saved["disc_state"][k])
    assert _history(run_of(cfg_of(seed=1))) != _history(a)


def test_a_seed_gives_each_use_its_own_stream_as_seedsequence_spawns() -> None:
    children = np.random.SeedSequence(5).spawn(2)
    want = [int(c.generate_state(1, dtype=np.uint64)[0]) for c in children]
    assert [stream_seed(5, INIT), stream_seed(5, DRAWS)] == want
    assert len({stream_seed(s, u) for s in range(3) for u in (INIT, DRAWS)}) == 6


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_critics_init_and_the_first_generator_are_not_rescaled_copies(seed: int) -> None:
    # Seeded alike, the critic's first weights and the first epoch's generator were the
    # same uniforms rescaled (correlation 1.0 over all 1219 generator values).
    cfg = cfg_of(seed=seed)
    a = cfg.arch
    critic = make_critic(cfg, len(x_train()))
    w = next(critic.parameters()).detach().flatten()  # U(-b, b), the first values drawn
    first = random_mlp(
        [a.in_size] + [a.hid_size] * a.hid_num[0] + [a.lat_size], draws_generator(cfg)
    )
    u = torch.cat([t.flatten() * W.shape[1] ** 0.5 for W, b in first for t in (W, b)])
    k = min(len(w), len(u))
    assert k > 1000
    assert abs(np.corrcoef(w[:k].numpy(), u[:k].numpy())[0, 1]) < 0.2  # ~0.03 by chance


def test_global_torch_rng_is_left_alone() -> None:
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    run_of(cfg_of(epochs=2))
    assert torch.equal(torch.rand(3), expected)


def test_should_stop_ends_training_and_still_saves() -> None:
    run = run_of(cfg_of(epochs=1000), RecordingRun(stop_after=2))
    assert [h["_step"] for h in run.history] == [0, 5]
    assert run.saved is not None and len(run.saved["tot_accs"]) == 6


def test_runtime_limit_stops_after_the_current_epoch() -> None:
    run = run_of(cfg_of(epochs=1000, runtime=1e-9))
    assert [h["_step"] for h in run.history] == [0]
    assert run.saved is not None and len(run.saved["tot_accs"]) == 1


def test_exploding_critic_raises_kernel_failed() -> None:
    # Adam steps of ~1e38 overflow the weights to inf within a couple of epochs.
    cfg = cfg_of(epochs=50, log_freq=10, disc={"lr": 1e38})
    run = RecordingRun()
    with pytest.raises(KernelFailed, match=r"non-finite critic loss at epoch \d+ \(loss_real"):
        train(cfg, run)
    assert run.saved is None


def test_non_finite_library_sample_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def poisoned(self: FunctionLibrary, fun_num: int, x: torch.Tensor, **kw: Any) -> torch.Tensor:
        return torch.full((1, fun_num, len(x), 2), math.nan)

    monkeypatch.setattr(FunctionLibrary, "sample", poisoned)
    with pytest.raises(KernelFailed, match="non-finite critic loss at epoch 0"):
        run_of(cfg_of())


def test_cuda_request_without_cuda_fails_clearly() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(KernelFailed, match="CUDA is not available"):
        run_of(cfg_of(device="cuda"))


@pytest.mark.slow
def test_bce_critic_with_gradients_learns() -> None:
    # Stacked derivatives make the task easy enough to learn in a few hundred epochs
    # (~0.9 by epoch 250 for seeds 0-2); without extras 2x64 needs ~1000 for ~0.8.
    cfg = build(
        SDConfig,
        {
            "device": "cpu",
            "epochs": 250,
            "log_freq": 50,
            "avg_hor": 100,
            "ext": ["grad"],
            "ext_type": "stack",
            "disc": {"hid_num": 2, "hid_size": 64, "lr": 1e-3, "loss": "bce", "gp": 0.0},
        },
        "test",
    )
    run = run_of(cfg)
    assert run.history[-1]["avg_acc"] >= 0.8


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu_run() -> None:
    # All random draws come from one CPU generator, so both devices see the same data;
    # only float rounding differs, and it compounds slowly.
    over = {"epochs": 26, "disc": {"loss": "bce"}}
    cpu, gpu = run_of(cfg_of(**over)), run_of(cfg_of(device="cuda", **over))
    assert [h["_step"] for h in cpu.history] == [h["_step"] for h in gpu.history]
    assert cpu.series("acc") == gpu.series("acc")
    for a, b in zip(cpu.series("loss"), gpu.series("loss"), strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)


class InterruptedAt(RecordingRun):
    """A run whose ``n``-th log is cut short, as by a second signal in mid-step."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def log(self, metrics: dict[str, float], step: int) -> None:
        if len(self.history) + 1 == self.n:
            raise KeyboardInterrupt
        super().log(metrics, step)


def _same_but_time(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    assert [{k: v for k, v in h.items() if k != "time"} for h in a] == [
        {k: v for k, v in h.items() if k != "time"} for h in b
    ]


@pytest.mark.parametrize("how", ["stopped", "interrupted"])
def test_an_interrupted_trial_resumes_exactly_where_it_was(how: str) -> None:
    cfg = cfg_of(epochs=30, log_freq=4)
    whole = run_of(cfg)
    if how == "stopped":  # asked to stop after its third log: the final save has a step
        first = run_of(cfg, RecordingRun(stop_after=3))
    else:  # cut short in its fourth log: the checkpoint after the third is what is left
        first = InterruptedAt(4)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, first)
    assert first.resumable is not None and first.resumable["resume_step"] == 8
    rest = run_of(cfg, RecordingRun(resume=first.resumable))
    assert [h["_step"] for h in rest.history] == [12, 16, 20, 24, 28, 29]
    _same_but_time(whole.history[3:], rest.history)  # bit for bit: same streams
    assert whole.saved is not None and rest.saved is not None
    assert rest.saved["tot_accs"] == whole.saved["tot_accs"]
    assert len(rest.saved["times"]) == 30 and rest.saved["times"] == sorted(rest.saved["times"])
    for name, w in whole.saved["disc_state"].items():
        assert np.array_equal(rest.saved["disc_state"][name], w), name
