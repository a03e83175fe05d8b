from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import srsweep.kernels
from srsweep import store
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.errors import KernelFailed
from srsweep.errors import SpecError
from srsweep.kernels import srnet
from srsweep.kernels import srnet_pack
from srsweep.config import build
from srsweep.config import to_dict
from srsweep.kernels.dsn import DSN
from srsweep.kernels.dsn import SRNet
from srsweep.kernels.sd import SDConfig
from srsweep.kernels.sd import make_critic
from srsweep.kernels.srnet import KERNEL
from srsweep.kernels.srnet import SRNetConfig
from srsweep.kernels.srnet import build_model
from srsweep.kernels.srnet import sd_term
from srsweep.kernels.srnet import train
from srsweep.testing import RecordingRun

SWEEPS = Path(__file__).parents[2] / "sweeps"
F07_MASK = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))

# The 184 layout on a small budget: DSN 2x8 first half, 2x8 critic, 2 critic steps.
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "arch": {"hid_num": [2, 0], "hid_size": 8},
    "disc": {"hid_num": 2, "hid_size": 8, "iters": 2},
}


def cfg_of(**over: Any) -> SRNetConfig:
    merged = {**TINY, **over}
    for section in ("arch", "disc"):
        merged[section] = {**TINY[section], **over.get(section, {})}
    cfg: SRNetConfig = build(SRNetConfig, merged, "test")
    return cfg


def run_of(cfg: SRNetConfig) -> RecordingRun:
    run = RecordingRun()
    train(cfg, run)
    return run


def sd_file(tmp_path: Path, name: str = "critic", **over: Any) -> Path:
    """A saved ``sd`` run's model file (untrained critic) for F07 on X07, as
    ``TrialRun.save`` writes it."""
    base: dict[str, Any] = {
        "in_var": "X07",
        "fun_lib": "F07_v2",
        "arch": {"in_size": 2, "lat_size": 3},
        "disc": {"hid_num": 2, "hid_size": 8, "loss": "bce", "gp": 0},
    }
    sd_cfg = build(SDConfig, {**base, **over}, "test")
    critic = make_critic(sd_cfg, 700)
    path = tmp_path / f"{name}.joblib"
    payload = {"hyperparams": to_dict(sd_cfg), "disc_state": critic.state_dict(), "kernel": "sd"}
    store.save(path, payload)
    return path


# --- config -----------------------------------------------------------------------


def test_defaults_are_the_184_base_run() -> None:
    cfg = SRNetConfig()
    assert (cfg.in_var, cfg.target_var, cfg.lat_var, cfg.fun_lib) == ("X07", "F07", "G07", "F07_v2")
    assert cfg.arch.hid_type == ("DSN", "MLP") and cfg.arch.lat_size == 3
    assert cfg.arch.hid_kwargs.alpha == F07_MASK
    assert (cfg.sd, cfg.sd_fun, cfg.lr, cfg.wd, cfg.log_freq, cfg.epochs) == (
        1.0, "linear", 1e-4, 1e-7, 25, 50_000,
    )  # fmt: skip
    d = cfg.disc
    assert (d.from_run, d.loss, d.hid_num, d.hid_size, d.gp) == (None, "bce", 2, 64, 0.0)
    assert cfg.cotrained and cfg.violations() == []


def test_kernel_is_registered() -> None:
    assert "srnet" in srsweep.kernels.names()
    assert srsweep.kernels.get("srnet") is KERNEL
    assert KERNEL.pack_key is srnet_pack.pack_key and KERNEL.train_packed is not None


def test_tuple_rule_resolves_scalars_and_pairs() -> None:
    p = cfg_of(arch={"hid_num": 2, "hid_type": "MLP", "hid_kwargs": {"alpha": None}}).pairs()
    assert p["hid_num"] == (2, 2) and p["hid_type"] == ("MLP", "MLP") and p["alpha"] == (None, None)
    p = cfg_of(arch={"hid_type": ["DSN", "DSN"], "hid_kwargs": {"alpha": [-1, None]}}).pairs()
    assert p["alpha"] == (-1, None)
    assert cfg_of().pairs()["alpha"] == (F07_MASK, F07_MASK)  # one mask: both halves


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"arch": {"hid_kwargs": {"alpha": [[1, 0], [0, 1]]}}},
         "arch.hid_kwargs.alpha: the DSN layers1 needs a mask of 3 row(s) of 2"),
        ({"arch": {"hid_kwargs": {"alpha": 2}}}, "arch.hid_kwargs.alpha: an integer must be -1"),
        ({"arch": {"hid_type": "MLP"}, "a1": 0.1}, "a1: acts on a DSN mask"),
        ({"in_var": "X99"}, "in_var: must be one of"),
        ({"lat_var": "G11"}, "lat_var: G11 has 700 rows, but X07 has 1000"),
        ({"fun_lib": "F11_v1"}, "fun_lib: F11_v1 is written for X11, not X07"),
        ({"ext": ["grad", "grad"]}, "ext: entries must be distinct"),
        ({"disc": {"betas": [0.9, 1.0]}}, "disc.betas: each must be < 1"),
        ({"disc": {"iters": 0}}, "disc.iters: must be >= 1"),
        ({"sd_fun": "tanh"}, "sd_fun: must be one of 'linear', 'sigmoid', 'logsigmoid'"),
    ],
    ids=["alpha-shape", "alpha-int", "a1-no-dsn", "in_var", "lat-rows", "lib-var", "ext-dup",
         "betas", "iters", "sd_fun"],
)  # fmt: skip
def test_bad_configs_name_their_keys(over: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match="test: ") as err:
        cfg_of(**over)
    assert message in str(err.value)


def test_library_checks_only_apply_when_the_critic_is_co_trained() -> None:
    assert cfg_of(fun_lib="F11_v1", sd=0).violations() == []


# --- networks -----------------------------------------------------------------------


def x_small(n: int = 6, cols: int = 2) -> torch.Tensor:
    return torch.randn(n, cols, generator=torch.Generator().manual_seed(3))


def test_dsn_mask_restricts_which_inputs_reach_a_latent() -> None:
    model = build_model(cfg_of())
    x = x_small(50)
    _, lat, jac = model(x, jacobian=True)
    assert jac is not None and jac.shape == (50, 3, 2)
    assert (jac[:, 0, 1] == 0).all() and (jac[:, 1, 0] == 0).all()  # exactly, every row
    assert (jac[:, 0, 0] != 0).any() and (jac[:, 1, 1] != 0).any() and (jac[:, 2] != 0).all()
    # autograd agrees, and moving x1 leaves latent 0 untouched (and x0, latent 1)
    auto = torch.func.vmap(torch.func.jacrev(lambda r: model(r[None])[1][0]))(x)
    assert (auto[:, 0, 1] == 0).all() and (auto[:, 1, 0] == 0).all()
    moved = model(x + torch.tensor([0.0, 1.0]))[1]
    assert torch.equal(moved[:, 0], lat[:, 0]) and not torch.equal(moved[:, 1], lat[:, 1])


@pytest.mark.parametrize(
    "arch",
    [
        {"hid_type": ["MLP", "MLP"], "hid_num": [2, 1]},
        {"hid_type": ["DSN", "MLP"], "hid_num": [2, 0], "hid_kwargs": {"alpha": None}},
        {"hid_type": ["DSN", "DSN"], "hid_num": [0, 1],
         "hid_kwargs": {"alpha": [None, -1], "norm": "softmax"}},
    ],
    ids=["mlp", "dsn-trainable-alpha", "dsn-softmax-no-hidden"],
)  # fmt: skip
def test_latent_jacobian_matches_jacrev(arch: dict[str, Any]) -> None:
    model = build_model(cfg_of(arch=arch))
    x = x_small(7)
    pred, lat, jac = model(x, jacobian=True)
    auto = torch.func.vmap(torch.func.jacrev(lambda r: model(r[None])[1][0]))(x)
    assert jac is not None and jac.shape == auto.shape == (7, 3, 2)
    torch.testing.assert_close(jac, auto, rtol=1e-5, atol=1e-6)
    assert pred.shape == (7, 1) and lat.shape == (7, 3)


def test_dsn_init_and_alpha_modes() -> None:
    torch.manual_seed(0)
    dsn = DSN(2, 3, hid_num=2, hid_size=200, alpha=None)
    assert all((b == 0).all() for b in dsn.biases)  # zero biases: kinks at x = 0
    w = dsn.weights[1]  # 200 -> 200: std sqrt(6 / 400)
    assert abs(float(w.detach().std()) - (6 / 400) ** 0.5) < 0.01
    assert any(p is dsn.alpha for p in dsn.parameters())  # None: trainable
    frozen = DSN(2, 3, 1, 4, alpha=-1)
    assert all(p is not frozen.alpha for p in frozen.parameters()) and frozen.alpha.shape == (3, 2)
    given = DSN(2, 3, 1, 4, alpha=F07_MASK)
    assert given.alpha.tolist() == [list(r) for r in F07_MASK]
    assert all(p is not given.alpha for p in given.parameters())


def test_softmax_norm_and_prune() -> None:
    dsn = DSN(2, 2, 1, 4, alpha=((2.0, -2.0), (0.0, 3.0)), norm="softmax")
    torch.testing.assert_close(dsn.mask().sum(1), torch.ones(2))
    assert dsn.mask()[0, 0] == dsn.mask()[0, 1]  # softmax of |alpha|
    pruned = DSN(2, 2, 1, 4, alpha=((1.0, 0.05), (0.2, 1.0)), prune=0.1)
    torch.testing.assert_close(pruned.mask(), torch.tensor([[1.0, 0.0], [0.2, 1.0]]))
    assert DSN(2, 1, 1, 4, alpha=((1.0, 0.0),)).entropy().item() == 0.0
    assert DSN(2, 1, 1, 4, alpha=((1.0, 1.0),)).entropy().item() == pytest.approx(1.0)


# --- losses -------------------------------------------------------------------------


class FixedLogits(torch.nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits + 0 * x.sum(-1)


@pytest.mark.parametrize(
    ("sd_fun", "phi"),
    [("linear", lambda p: -p), ("sigmoid", lambda p: torch.sigmoid(-p)),
     ("logsigmoid", lambda p: -torch.log(torch.sigmoid(p)))],
    ids=["linear", "sigmoid", "logsigmoid"],
)  # fmt: skip
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
    assert srnet._regularisers(cfg, model, lat).item() == pytest.approx(expected, rel=1e-6)


# --- training -----------------------------------------------------------------------


def test_mlp_srnet_without_sd_learns_f07() -> None:
    # A plain MLP SRNet, no critic: the validation MSE must fall at least tenfold.
    cfg = cfg_of(sd=0, lr=3e-3, epochs=300, log_freq=50,
                 arch={"hid_type": "MLP", "hid_num": [2, 0], "hid_size": 32})  # fmt: skip
    val = run_of(cfg).series("val_loss")
    assert val[0] > 30 and val[-1] <= val[0] / 10, val


def test_logs_every_log_freq_and_saves_the_state() -> None:
    run = run_of(cfg_of())
    assert [h["_step"] for h in run.history] == [0, 5, 10, 11]
    keys = {"epoch", "time", "train_loss", "pred_loss", "val_loss", "min_corr", "disc_preds",
            "disc_loss", "sd_share", "critic_acc", "critic_loss"}  # fmt: skip
    assert set(run.history[-1]) - {"_step"} == keys
    assert all(0 <= h["sd_share"] <= 1 and 0 <= h["min_corr"] <= 1 for h in run.history)
    s = run.saved
    assert s is not None and len(s["train_loss"]) == 12 and len(s["val_loss"]) == 4
    assert s["corr_mat"].shape == (3, 3) and s["val_latents"].shape == (200, 3)
    last = run.history[-1]
    assert abs(s["corr_mat"]).max(1).min() == pytest.approx(last["min_corr"], abs=1e-6)
    model = SRNet(2, 1, 3, (2, 0), (8, 8), ("DSN", "MLP"), (F07_MASK, F07_MASK))
    model.load_state_dict(s["model_state"])  # the saved state loads into a fresh SRNet
    assert {"disc_state", "disc_opt_state"} <= set(s) and s["disc_fixed"] is False


def test_without_sd_no_critic_is_built_or_logged() -> None:
    run = run_of(cfg_of(sd=0))
    assert "disc_preds" not in run.history[-1] and "disc_state" not in (run.saved or {})


def test_co_training_changes_both_networks() -> None:
    cfg = cfg_of()
    run = run_of(cfg)
    assert run.saved is not None
    init_model, init_critic = build_model(cfg), srnet._make_critic(cfg, 700)
    for init, saved in ((init_model, "model_state"), (init_critic, "disc_state")):
        moved = [not torch.equal(v, run.saved[saved][k]) for k, v in init.state_dict().items()]
        assert any(moved), saved


def test_fixed_critic_is_bit_identical_and_still_steers(tmp_path: Path) -> None:
    path = sd_file(tmp_path, ext=["grad"], ext_type="embed")  # critic sees d lat / dx too
    cfg = cfg_of(disc={"from_run": str(path)})
    run = run_of(cfg)
    assert run.saved is not None and run.saved["disc_fixed"] is True
    before = store.load(path)["disc_state"]
    assert all(torch.equal(before[k], v) for k, v in run.saved["disc_state"].items())
    assert "critic_acc" not in run.history[-1] and "disc_preds" in run.history[-1]
    # the SD term alone sends a non-zero gradient into the generator
    model = build_model(cfg)
    critic, ext, ext_type = srnet.fixed_critic(cfg, store.load(path))
    x, _, _ = srnet._rows(cfg, "train", torch.device("cpu"))
    _, lat, jac = model(x, jacobian=True)
    loss, _ = sd_term(cfg, critic, lat, srnet._extras(ext, x, jac, 3), ext_type)
    grads = torch.autograd.grad(loss, list(model.layers1.parameters()))  # latents only
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # and training with it ends elsewhere than training without it
    plain = run_of(cfg_of(sd=0)).saved
    assert plain is not None
    s = run.saved["model_state"]
    assert any(not torch.equal(v, s[k]) for k, v in plain["model_state"].items())


def test_same_seed_same_history_other_seed_differs() -> None:
    a, b, c = run_of(cfg_of()), run_of(cfg_of()), run_of(cfg_of(seed=1))
    strip = [{k: v for k, v in h.items() if k != "time"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "time"} for h in b.history]
    assert a.series("val_loss") != c.series("val_loss")


def test_global_torch_rng_is_left_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    run_of(cfg_of(epochs=2))
    assert torch.equal(torch.rand(1), expected)


def test_non_finite_loss_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = srnet._rows

    def poisoned(cfg: SRNetConfig, split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
        x, y, g = rows(cfg, split, device)
        if split == "train":
            y = y.clone()
            y[3] = float("nan")
        return x, y, g

    monkeypatch.setattr(srnet, "_rows", poisoned)
    with pytest.raises(KernelFailed, match=r"non-finite loss at epoch 0 \(train_loss, pred_loss"):
        run_of(cfg_of())


def test_should_stop_ends_training_and_still_saves() -> None:
    run = RecordingRun(stop_after=2)
    train(cfg_of(epochs=100), run)
    assert [h["_step"] for h in run.history] == [0, 5] and run.saved is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu_run() -> None:
    cpu, gpu = run_of(cfg_of()), run_of(cfg_of(device="cuda"))
    assert [h["_step"] for h in cpu.history] == [h["_step"] for h in gpu.history]
    for a, b in zip(cpu.series("val_loss"), gpu.series("val_loss"), strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)


# --- disc.from_run: refused before anything trains ----------------------------------


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "results"
    monkeypatch.setenv("SRSWEEP_RESULTS", str(root))
    return root


def from_run_error(ref: str) -> str:
    with pytest.raises(SpecError) as err:
        cfg_of(disc={"from_run": ref})
    return str(err.value)


def test_from_run_naming_no_run(ledger: Path) -> None:
    msg = from_run_error("nosuchid")
    assert msg.startswith("test: disc.from_run: 'nosuchid': no run 'nosuchid' in ")
    assert "give the id of a finished sd run" in msg
    assert from_run_error("gone.joblib").endswith("gone.joblib: no such model file")


def test_from_run_of_another_kernel(ledger: Path, tmp_path: Path) -> None:
    backend = LocalBackend(ledger)
    rec = backend.start_run("toy", {}, "test")
    backend.close()
    assert f"run {rec.id} is a 'toy' run; it must be an 'sd' run" in from_run_error(rec.id)
    lazy = tmp_path / "lazy.joblib"
    store.save(lazy, {"hyperparams": {}, "kernel": "lazy"})
    assert "is a 'lazy' run's file; it must be an 'sd' run's" in from_run_error(str(lazy))


def test_from_run_whose_critic_does_not_fit(tmp_path: Path) -> None:
    # d lat / dx per point: 2 channels from X07's 2 columns, but this SRNet uses only 1
    path = sd_file(tmp_path, ext=["grad"], ext_type="embed")
    with pytest.raises(SpecError) as err:
        cfg_of(disc={"from_run": str(path)}, arch={"in_size": 1, "hid_type": "MLP"})
    msg = str(err.value)
    assert "disc.from_run: " in msg and "its critic takes 700 input(s) with 3 channel(s)" in msg
    assert "the latents of this SRNet give 700 with 2" in msg


def test_from_run_whose_critic_saw_other_points(tmp_path: Path) -> None:
    # a study-153 critic: curves over the X10 training points, not X07's
    path = sd_file(tmp_path, in_var="X10", fun_lib="F10_v1", arch={"in_size": 1, "lat_size": 3})
    assert "over the X10 training points, but this SRNet's latents are curves over the X07" in (
        from_run_error(str(path))
    )


def test_from_run_resolves_a_ledger_run(ledger: Path, tmp_path: Path) -> None:
    backend = LocalBackend(ledger)
    rec = backend.start_run("sd", {}, "test")
    backend.finish(rec.id, "finished", model_path=str(sd_file(tmp_path)))
    backend.close()
    assert cfg_of(disc={"from_run": rec.id}).violations() == []


# --- through the CLI, and the study specs --------------------------------------------


def test_cli_runs_srnet_and_refuses_a_bad_critic_with_exit_2(tmp_path: Path) -> None:
    results = tmp_path / "results"

    def cli(*args: str) -> Any:  # disc.from_run must find runs in this --results' ledger
        args = ("--results", str(results), *args)
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    small = ["--set", "device=cpu", "--set", "epochs=30", "--set", "log_freq=10"]
    res = cli("run", "sd", *small, "--set", "in_var=X07", "--set", "fun_lib=F07_v2",
              "--set", "arch.in_size=2", "--set", "arch.lat_size=3", "--set", "disc.hid_num=2",
              "--set", "disc.hid_size=8", "--set", "disc.loss=bce")  # fmt: skip
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


def dry_run(spec: Path, results: Path) -> Any:
    return CliRunner().invoke(main, ["--results", str(results), "create", "--dry-run", str(spec)])


@pytest.mark.parametrize("name", ["srnet_lat_size", "srnet_sd_comb"])
def test_study_specs_pass_dry_run(name: str, tmp_path: Path) -> None:
    res = dry_run(SWEEPS / f"{name}.yaml", tmp_path)
    assert res.exit_code == 0, res.output
    assert f"{name}.yaml: valid (" in res.output and "kernel srnet" in res.output


def test_fixed_critic_spec_is_refused_at_create_until_filled_in(tmp_path: Path) -> None:
    template = SWEEPS / "srnet_fixed_critic.yaml"
    res = dry_run(template, tmp_path)
    assert res.exit_code == 2
    assert "a trial of this sweep would be refused: disc.from_run: 'FILL_IN_SD_RUN_ID'" in (
        res.stderr
    )
    critic = sd_file(tmp_path, in_var="X11", fun_lib="F11_v1", arch={"in_size": 1, "lat_size": 5})
    filled = tmp_path / "filled.yaml"
    filled.write_text(template.read_text().replace("FILL_IN_SD_RUN_ID", str(critic)))
    res = dry_run(filled, tmp_path)
    assert res.exit_code == 0, res.output
