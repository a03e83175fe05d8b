"""The srnet kernel trained alone: its loss terms by hand, what it logs and saves, and a
fixed critic (``disc.from_run``) loaded and checked when training starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from srsweep import store
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import KernelFailed
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.srnet import shared
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.critic import fixed_critic
from srsweep.kernels.srnet.critic import make_critic
from srsweep.kernels.srnet.dsn import SRNet
from srsweep.kernels.srnet.from_run import resolve
from srsweep.kernels.srnet.shared import build_model
from srsweep.kernels.srnet.shared import sd_term
from srsweep.kernels.srnet.solo import train
from srsweep.testing import RecordingRun

F07_MASK = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
SdFile = Callable[..., Path]

# The 184 layout on a small budget: DSN 2x8 first half, 2x8 critic, 2 critic steps.
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "arch": {"hid_num": [2, 0], "hid_size": 8},
    "disc": {"hid_num": 2, "hid_size": 8, "iters": 2},
}


def cfg_of(**over: Any) -> SRNetConfig:
    cfg: SRNetConfig = build(SRNetConfig, layered(TINY, over), "test")
    return cfg


def run_of(cfg: SRNetConfig) -> RecordingRun:
    run = RecordingRun()
    train(cfg, run)
    return run


# --- losses -------------------------------------------------------------------------


class FixedLogits(torch.nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits + 0 * x.sum(-1)


@pytest.mark.parametrize(
    ("sd_fun", "phi"),
    [
        ("linear", lambda p: -p),
        ("sigmoid", lambda p: torch.sigmoid(-p)),
        ("logsigmoid", lambda p: -torch.log(torch.sigmoid(p))),
    ],
    ids=["linear", "sigmoid", "logsigmoid"],
)
def test_sd_term_by_hand(sd_fun: str, phi: Any) -> None:
    p = torch.tensor([2.0, -1.0, 0.5])
    cfg = cfg_of(sd=0.3, sd_fun=sd_fun)
    loss, mean = sd_term(cfg, FixedLogits(p.tolist()), torch.zeros(700, 3), [], "embed")  # type: ignore[arg-type]
    assert loss.item() == pytest.approx(0.3 * phi(p).mean().item(), rel=1e-6)
    assert mean.item() == pytest.approx(p.mean().item())


def test_regularisers_by_hand() -> None:
    cfg = cfg_of(l1=0.5, a1=0.1, a2=0.2, e1=0.3)
    model = build_model(cfg)
    lat = torch.tensor([[1.0, -2.0, 0.0], [0.0, 1.0, 3.0]])
    # mask rows (1,0), (0,1), (1,1): L1 norms 1, 1, 2; entropies 0, 0, 1 bit
    expected = 0.5 * 7 / 3 + 0.1 * 4 + 0.2 * 6**0.5 + 0.3 * 1
    assert shared.regularisers(cfg, model, lat).item() == pytest.approx(expected, rel=1e-6)


# --- training -----------------------------------------------------------------------


def test_mlp_srnet_without_sd_learns_f07() -> None:
    # A plain MLP SRNet, no critic: the validation MSE must fall at least tenfold.
    cfg = cfg_of(
        sd=0,
        lr=3e-3,
        epochs=300,
        log_freq=50,
        arch={"hid_type": "MLP", "hid_num": [2, 0], "hid_size": 32},
    )
    val = run_of(cfg).series("val_loss")
    assert val[0] > 30 and val[-1] <= val[0] / 10, val


def test_logs_every_log_freq_and_saves_the_state() -> None:
    run = run_of(cfg_of())
    assert [h["_step"] for h in run.history] == [0, 5, 10, 11]
    keys = {
        "epoch",
        "time",
        "train_loss",
        "pred_loss",
        "val_loss",
        "min_corr",
        "disc_preds",
        "disc_loss",
        "sd_share",
        "critic_acc",
        "critic_loss",
    }
    assert set(run.history[-1]) - {"_step"} == keys
    assert all(0 <= h["sd_share"] <= 1 and 0 <= h["min_corr"] <= 1 for h in run.history)
    s = run.saved
    assert s is not None and len(s["train_loss"]) == 12 and len(s["val_loss"]) == 4
    assert s["corr_mat"].shape == (3, 3) and s["val_latents"].shape == (200, 3)
    last = run.history[-1]
    assert abs(s["corr_mat"]).max(1).min() == pytest.approx(last["min_corr"], abs=1e-6)
    model = SRNet(2, 1, 3, (2, 0), (8, 8), ("DSN", "MLP"), (F07_MASK, F07_MASK))
    model.load_state_dict(to_tensors(s["model_state"]))  # it loads into a fresh SRNet
    assert {"disc_state", "disc_opt_state"} <= set(s) and s["disc_fixed"] is False


def test_without_sd_no_critic_is_built_or_logged() -> None:
    run = run_of(cfg_of(sd=0))
    assert "disc_preds" not in run.history[-1] and "disc_state" not in (run.saved or {})


def test_co_training_changes_both_networks() -> None:
    cfg = cfg_of()
    run = run_of(cfg)
    assert run.saved is not None
    init_model, init_critic = build_model(cfg), make_critic(cfg, 700)
    for init, saved in ((init_model, "model_state"), (init_critic, "disc_state")):
        state = to_tensors(run.saved[saved])
        moved = [not torch.equal(v, state[k]) for k, v in init.state_dict().items()]
        assert any(moved), saved


def test_global_torch_rng_is_left_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    run_of(cfg_of(epochs=2))
    assert torch.equal(torch.rand(1), expected)


def test_non_finite_loss_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = shared.rows

    def poisoned(cfg: SRNetConfig, split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
        x, y, g = rows(cfg, split, device)
        if split == "train":
            y = y.clone()
            y[3] = float("nan")
        return x, y, g

    monkeypatch.setattr(shared, "rows", poisoned)
    with pytest.raises(KernelFailed, match=r"non-finite loss at epoch 0 \(train_loss, pred_loss"):
        run_of(cfg_of())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu_run() -> None:
    cpu, gpu = run_of(cfg_of()), run_of(cfg_of(device="cuda"))
    assert [h["_step"] for h in cpu.history] == [h["_step"] for h in gpu.history]
    for a, b in zip(cpu.series("val_loss"), gpu.series("val_loss"), strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)


# --- disc.from_run: the fixed critic, checked when training starts -------------------


def fixed_cfg(path: Path, **over: Any) -> SRNetConfig:
    """A config whose critic is the one at ``path``, resolved as the agent resolves it."""
    return resolve(cfg_of(**over, disc={"from_run": str(path)}), None)


def training_error(cfg: SRNetConfig) -> str:
    run = RecordingRun()
    with pytest.raises(KernelFailed) as err:
        train(cfg, run)
    assert run.history == [] and run.saved is None  # refused before the first epoch
    msg = str(err.value)
    assert msg.startswith(f"disc.from_run: {cfg.disc.from_run!r}: "), msg
    return msg


def test_fixed_critic_of_another_kernel(tmp_path: Path) -> None:
    lazy = tmp_path / "lazy.joblib"
    store.save(lazy, {"hyperparams": {}, "kernel": "lazy"})
    assert "is a 'lazy' run's file; it must be an 'sd' run's" in training_error(fixed_cfg(lazy))


def test_fixed_critic_file_gone_by_training_time(tmp_path: Path, sd_file: SdFile) -> None:
    cfg = fixed_cfg(sd_file())
    Path(cfg.disc.from_run or "").unlink()
    assert training_error(cfg).endswith("no such model file")


def test_fixed_critic_that_does_not_fit(sd_file: SdFile) -> None:
    # d lat / dx per point: 2 channels from X07's 2 columns, but this SRNet uses only 1
    path = sd_file(ext=["grad"], ext_type="embed")
    msg = training_error(fixed_cfg(path, arch={"in_size": 1, "hid_type": "MLP"}))
    assert "its critic takes 700 input(s) with 3 channel(s)" in msg
    assert "the latents of this SRNet give 700 with 2" in msg


def test_fixed_critic_that_saw_other_points(sd_file: SdFile) -> None:
    # a study-153 critic: curves over the X10 training points, not X07's
    path = sd_file(in_var="X10", fun_lib="F10_v1", arch={"in_size": 1, "lat_size": 3})
    assert "over the X10 training points, but this SRNet's latents are curves over the X07" in (
        training_error(fixed_cfg(path))
    )


def test_fixed_critic_is_bit_identical_and_still_steers(sd_file: SdFile) -> None:
    path = sd_file(ext=["grad"], ext_type="embed")  # critic sees d lat / dx too
    cfg = fixed_cfg(path)
    run = run_of(cfg)
    assert run.saved is not None and run.saved["disc_fixed"] is True
    assert run.saved["disc_from_run"] == str(path)
    before = store.load(path)["disc_state"]
    assert all(np.array_equal(before[k], v) for k, v in run.saved["disc_state"].items())
    assert "critic_acc" not in run.history[-1] and "disc_preds" in run.history[-1]
    # the SD term alone sends a non-zero gradient into the generator
    model = build_model(cfg)
    critic, ext, ext_type = fixed_critic(cfg, store.load(path))
    x, _, _ = shared.rows(cfg, "train", torch.device("cpu"))
    _, lat, jac = model(x, jacobian=True)
    loss, _ = sd_term(cfg, critic, lat, shared.extras(ext, x, jac, 3), ext_type)
    grads = torch.autograd.grad(loss, list(model.layers1.parameters()))  # latents only
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # and training with it ends elsewhere than training without it
    plain = run_of(cfg_of(sd=0)).saved
    assert plain is not None
    s = run.saved["model_state"]
    assert any(not np.array_equal(v, s[k]) for k, v in plain["model_state"].items())


# --- through the CLI -----------------------------------------------------------------


def test_cli_runs_srnet_and_refuses_a_bad_critic_with_exit_2(tmp_path: Path) -> None:
    results = tmp_path / "results"

    def cli(*args: str) -> Any:  # disc.from_run must find runs in this --results' ledger
        args = ("--results", str(results), *args)
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    small = ["--set", "device=cpu", "--set", "epochs=30", "--set", "log_freq=10"]
    res = cli(
        "run",
        "sd",
        *small,
        "--set",
        "in_var=X07",
        "--set",
        "fun_lib=F07_v2",
        "--set",
        "arch.in_size=2",
        "--set",
        "arch.lat_size=3",
        "--set",
        "disc.hid_num=2",
        "--set",
        "disc.hid_size=8",
        "--set",
        "disc.loss=bce",
    )
    assert res.exit_code == 0, res.output
    (sd_run,) = LocalBackend(results).runs(None)
    for extra in ([], ["--set", f"disc.from_run={sd_run.id}"]):
        res = cli("run", "srnet", *small, "--set", "arch.hid_size=8", *extra)
        assert res.exit_code == 0, res.output
    runs = LocalBackend(results).runs(None)
    assert [(r.kernel, r.state) for r in runs[1:]] == [("srnet", "finished")] * 2
    assert 0 <= runs[-1].summary["min_corr"] <= 1 and "critic_acc" in runs[1].summary
    assert store.load(runs[-1].model_path or "")["disc_fixed"] is True
    res = cli("run", "srnet", "--set", f"disc.from_run={runs[1].id}")
    assert res.exit_code == 2
    rid = runs[1].id
    assert f"Error: --set: disc.from_run: '{rid}': run {rid} is a 'srnet' run" in res.stderr
    assert len(LocalBackend(results).runs(None)) == 3  # refused before a run was started
