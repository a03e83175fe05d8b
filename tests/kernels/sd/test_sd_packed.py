"""Packed ``sd`` trials (``sd.packed``) against the same trials trained alone by
``sd.solo.train``."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import KernelFailed
from srsweep.kernels.common import data
from srsweep.kernels.common.batched import StackedAdam
from srsweep.kernels.common.funlib import FunctionLibrary
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.sd import SDConfig
from srsweep.kernels.sd.config import pack_key
from srsweep.kernels.sd.draws import PackDraws
from srsweep.kernels.sd.model import make_batch
from srsweep.kernels.sd.model import make_critic
from srsweep.kernels.sd.packed import train_packed
from srsweep.kernels.sd.solo import train
from srsweep.testing import RecordingRun

TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "disc": {"hid_num": 2, "hid_size": 16},
}

# Five trials that differ in everything a pack lets differ: seed, lr, wd, betas, gp
# (including 0), loss, lat_size (padding) and iters (masked steps).
TRIALS: list[dict[str, Any]] = [
    {"seed": 0, "arch": {"lat_size": 3}, "disc": {"iters": 2, "gp": 1e-5, "lr": 1e-3}},
    {"seed": 1, "arch": {"lat_size": 1}, "disc": {"iters": 3, "gp": 0.0, "loss": "bce"}},
    {
        "seed": 2,
        "arch": {"lat_size": 5},
        "disc": {"iters": 1, "gp": 1e-3, "wd": 1e-3, "betas": [0.5, 0.9]},
    },
    {"seed": 0, "arch": {"lat_size": 2}, "disc": {"iters": 3, "gp": 1e-4, "loss": "bce"}},
    {"seed": 3, "arch": {"lat_size": 4}, "disc": {"iters": 2, "gp": 0.0, "lr": 3e-3}},
]

EXTS: list[dict[str, Any]] = [{}, {"ext": ["grad"], "ext_type": "stack"}, {"ext": ["input"]}]
EXT_IDS = ["no-ext", "grad-stack", "input-embed"]


def cfg_of(**over: Any) -> SDConfig:
    cfg: SDConfig = build(SDConfig, layered(TINY, over), "test")
    return cfg


def pack_of(ext: dict[str, Any], trials: list[dict[str, Any]] = TRIALS) -> list[SDConfig]:
    return [cfg_of(**{**t, **ext}) for t in trials]


def solo(cfg: SDConfig, run: RecordingRun | None = None) -> RecordingRun:
    run = run or RecordingRun()
    train(cfg, run)
    return run


def packed(cfgs: list[SDConfig], runs: list[RecordingRun] | None = None) -> list[RecordingRun]:
    runs = runs or [RecordingRun() for _ in cfgs]
    assert train_packed(cfgs, [*runs]) == [None] * len(cfgs)
    return runs


def assert_same_run(alone: RecordingRun, pack: RecordingRun, rel: float = 1e-4) -> None:
    """Same log steps and keys, the same accuracies, losses and weights within rounding."""
    assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
    for a, b in zip(alone.history, pack.history, strict=True):
        assert set(a) == set(b)
        assert (a["acc"], a["avg_acc"], a["epoch"]) == (b["acc"], b["avg_acc"], b["epoch"])
        for key in ("loss", "loss_real", "loss_fake", "gp"):
            assert b[key] == pytest.approx(a[key], rel=rel, abs=1e-5), key
    assert alone.saved is not None and pack.saved is not None
    assert pack.saved["tot_accs"] == alone.saved["tot_accs"]
    assert len(pack.saved["times"]) == len(alone.saved["times"])
    for name, w in alone.saved["disc_state"].items():
        torch.testing.assert_close(pack.saved["disc_state"][name], w, rtol=1e-3, atol=1e-4)
    a_opt, b_opt = (
        to_tensors(alone.saved["disc_opt_state"]),
        to_tensors(pack.saved["disc_opt_state"]),
    )
    assert b_opt["param_groups"] == a_opt["param_groups"]
    assert b_opt["state"].keys() == a_opt["state"].keys()
    for k, state in a_opt["state"].items():
        assert torch.equal(b_opt["state"][k]["step"], state["step"])
        for name in ("exp_avg", "exp_avg_sq"):
            got, want = b_opt["state"][k][name], state[name]
            assert got.shape == want.shape and got.dtype == want.dtype
            scale = want.abs().max().item()  # moments: tolerance relative to the tensor
            torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2 * scale + 1e-12)


# --- per-epoch draws --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lib", "var", "over"),
    [
        ("F10_v1", "X10", {}),
        ("F10_v1", "X10", {"ext": ["input", "grad"], "ext_type": "stack"}),
        ("F10_v1", "X10", {"iter_sample": True, "ext": ["grad"]}),
        ("F07_v2", "X07", {"arch": {"in_size": 2}, "ext": ["grad"]}),  # 9 lines: picks
        ("F07_v2", "X07", {"arch": {"in_size": 2}, "shuffle": False}),
    ],
    ids=["plain", "stack-both", "iter-sample", "multi-line", "no-shuffle"],
)
def test_draws_follow_make_batch(lib: str, var: str, over: dict[str, Any]) -> None:
    cfgs = [
        cfg_of(
            in_var=var, fun_lib=lib, **{**t, **over, "arch": {**t["arch"], **over.get("arch", {})}}
        )
        for t in TRIALS[:3]
    ]
    rows = data.masks(var)["train"]
    x = torch.as_tensor(data.inputs(var)[rows, : cfgs[0].arch.in_size], dtype=torch.float32)
    library = FunctionLibrary(lib)
    draws = PackDraws(cfgs, [torch.Generator().manual_seed(c.seed) for c in cfgs], library, x)
    alone = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    for _ in range(3):
        batch = draws.next()
        for t, c in enumerate(cfgs):
            reals, fake = make_batch(c, library, x, alone[t])
            lat = c.arch.lat_size
            assert torch.equal(batch.reals[t, : len(reals), :lat], reals)
            # exact but for the generator Jacobian, a bmm here (one rounding apart)
            torch.testing.assert_close(batch.fake[t, :lat], fake, rtol=1e-5, atol=1e-6)
            if "grad" not in c.ext:
                assert torch.equal(batch.fake[t, :lat], fake)
            for i in range(c.disc.iters if c.disc.gp > 0 else 0):
                assert torch.equal(batch.eps[t, i, :lat], torch.rand(lat, generator=alone[t]))


# --- packed training equals solo training -----------------------------------------------


@pytest.mark.parametrize("ext", EXTS, ids=EXT_IDS)
def test_packed_trials_equal_their_solo_runs(ext: dict[str, Any]) -> None:
    # the per-point embedding is the slow part on CPU: 4 trials cover it
    cfgs = pack_of(ext, TRIALS[:4] if ext.get("ext") == ["input"] else TRIALS)
    assert len({pack_key(c) for c in cfgs}) == 1
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert_same_run(alone, pack)


def test_pack_of_one_equals_train() -> None:
    cfg = cfg_of(**TRIALS[0])
    (pack,) = packed([cfg])
    assert_same_run(solo(cfg), pack, rel=1e-6)


def test_exploding_trial_fails_alone() -> None:
    # Adam steps of ~1e38 overflow its weights within a couple of epochs; the NaNs must
    # neither stop the others nor reach them through any shared reduction.
    trials = [*TRIALS[:3], {**TRIALS[3], "disc": {**TRIALS[3]["disc"], "lr": 1e38}}]
    cfgs = [cfg_of(**t, epochs=24) for t in trials]
    runs = [RecordingRun() for _ in cfgs]
    out = train_packed(cfgs, [*runs])
    assert out[:3] == [None] * 3 and isinstance(out[3], KernelFailed)
    with pytest.raises(KernelFailed) as alone:
        solo(cfgs[3], lone := RecordingRun())
    assert str(out[3]) == str(alone.value)
    assert "non-finite critic loss at epoch" in str(out[3]) and "disc.lr=1e+38" in str(out[3])
    assert runs[3].saved is None and runs[3].history == lone.history
    for cfg, run in zip(cfgs[:3], runs[:3], strict=True):
        assert_same_run(solo(cfg), run)


def test_stopped_trial_is_frozen_and_saved_alone() -> None:
    cfgs = pack_of({})[:3]
    runs = [RecordingRun(), RecordingRun(stop_after=2), RecordingRun()]
    packed(cfgs, runs)
    assert [h["_step"] for h in runs[1].history] == [0, 5]
    assert_same_run(solo(cfgs[1], RecordingRun(stop_after=2)), runs[1])
    for i in (0, 2):
        assert_same_run(solo(cfgs[i]), runs[i])


def test_runtime_limits_the_whole_pack() -> None:
    cfgs = [cfg_of(**t, epochs=1000, runtime=1e-9) for t in TRIALS[:2]]
    for run in packed(cfgs):
        assert [h["_step"] for h in run.history] == [0]
        assert run.saved is not None and len(run.saved["tot_accs"]) == 1


def test_saved_state_loads_and_reproduces_the_critic() -> None:
    cfgs = pack_of({"ext": ["grad"]})[:3]  # embedding: layers1 and layers2
    runs = packed(cfgs)
    cfg, saved = cfgs[1], runs[1].saved
    assert saved is not None and (saved["fun_lib"], saved["in_var"]) == ("F10_v1", "X10")
    critic = make_critic(cfg, 700)
    critic.load_state_dict(to_tensors(saved["disc_state"]))
    assert list(saved["disc_state"]) == list(critic.state_dict())
    opt = torch.optim.Adam(critic.parameters(), fused=True)
    opt.load_state_dict(to_tensors(saved["disc_opt_state"]))  # resumes like a solo trial
    rows = data.masks("X10")["train"]
    x = torch.as_tensor(data.inputs("X10")[rows, :1], dtype=torch.float32)
    reals, fake = make_batch(cfg, FunctionLibrary("F10_v1"), x, torch.Generator().manual_seed(9))
    reference = make_critic(cfg, 700)
    reference.load_state_dict(to_tensors(solo(cfg).saved["disc_state"]))  # type: ignore[index]
    with torch.no_grad():
        batch = torch.cat([reals[0], fake])
        torch.testing.assert_close(critic(batch), reference(batch), rtol=1e-4, atol=1e-5)


# --- the batched Adam ----------------------------------------------------------------------


def test_stacked_adam_matches_torch_adam_per_trial() -> None:
    gen = torch.Generator().manual_seed(0)
    hyper = [(1e-3, (0.9, 0.999), 0.0), (1e-1, (0.5, 0.9), 1e-2), (3e-2, (0.0, 0.99), 1.0)]
    shapes = [(4, 3), (4,)]
    init = [torch.randn(len(hyper), *s, generator=gen) for s in shapes]
    stacked = [p.clone() for p in init]
    grads = [torch.zeros_like(p) for p in init]
    opt = StackedAdam(stacked, grads, *zip(*hyper, strict=True))  # type: ignore[arg-type]
    solos = [[p[t].clone().requires_grad_(True) for p in init] for t in range(len(hyper))]
    ref = [
        torch.optim.Adam(ps, lr=lr, betas=b, weight_decay=wd, fused=True)
        for ps, (lr, b, wd) in zip(solos, hyper, strict=True)
    ]
    for step in range(5):
        for g in grads:
            g.copy_(torch.randn(g.shape, generator=gen))
        active = [t for t in range(len(hyper)) if (step + t) % 3]  # some trials sit out
        opt.step(active)
        for t in active:
            for p, g in zip(solos[t], grads, strict=True):
                p.grad = g[t].clone()
            ref[t].step()
    for t in range(len(hyper)):
        for p, q in zip(stacked, solos[t], strict=True):
            torch.testing.assert_close(p[t], q.detach(), rtol=0, atol=0)
        want, got = ref[t].state_dict(), opt.state_dict(t)
        assert got["param_groups"] == want["param_groups"]
        for k, state in want["state"].items():
            for name, v in state.items():
                assert torch.equal(got["state"][k][name], v), (t, k, name)


# --- GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_matches_cuda_solo_runs() -> None:
    over = {"device": "cuda", "epochs": 26}
    cfgs = [cfg_of(**{**t, **over, "disc": {**t["disc"], "loss": "bce"}}) for t in TRIALS]
    for alone, pack in zip([solo(c) for c in cfgs], packed(cfgs), strict=True):
        assert [h["_step"] for h in pack.history] == [h["_step"] for h in alone.history]
        assert pack.series("acc") == alone.series("acc")
        for a, b in zip(alone.series("loss"), pack.series("loss"), strict=True):
            assert math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4)


def test_a_trial_stopped_in_a_pack_resumes_alone_as_if_never_stopped() -> None:
    cfgs = [cfg_of(**t, epochs=20, log_freq=4) for t in TRIALS[:2]]
    runs = [RecordingRun(), RecordingRun(stop_after=2)]
    packed(cfgs, runs)
    assert runs[1].resumable is not None and runs[1].resumable["resume_step"] == 4
    rest = solo(cfgs[1], RecordingRun(resume=runs[1].resumable))
    whole = solo(cfgs[1])
    assert [h["_step"] for h in rest.history] == [8, 12, 16, 19]
    cut = RecordingRun()
    cut.history, cut.saved = whole.history[2:], whole.saved  # the part the resumed run logs
    assert_same_run(cut, rest)
