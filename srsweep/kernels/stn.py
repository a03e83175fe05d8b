"""``stn``: a self-tuning network learns y = x² while tuning its own training range
(seeds 000, 001).

Training inputs are x = t·u, u ~ U(-1, 1), where the half-width t ("x_range") is a
hyperparameter in [x_min, x_max]. A hypernetwork whose layers are affine in the perturbed,
unconstrained hyperparameter stands in for the best-response weights; cycles of weight
steps (on the training range) and hyper steps (on U(-val_range, val_range)) move t and its
perturbation scale, until the sup-norm distance to x² on a grid falls below a threshold
(Weinan et al.: a depth L+1, width M+2 ReLU net gets within 2^(-2L)).

Follows the TF2 port the seeds import (``self_tuning_nets``), Keras' Adam included, as
``../shared/reference/kernels.md`` section (a) describes it; seeds
``../shared/seeds/000_b12d63959087e50e.txt`` and ``001_16f326b4a0983015.txt``. Deviation:
the "unit" gates (per unit, as the official STN) keep the port's N(0, 0.1) gate init and
have no learnable base scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from srsweep.config import param
from srsweep.errors import KernelFailed
from srsweep.kernels import stn_pack
from srsweep.kernels._base import Kernel
from srsweep.kernels.common.nets import flatten_parameters
from srsweep.kernels.common.nets import resolve_device

if TYPE_CHECKING:
    from typing import Any

    from srsweep.kernels._base import Run

__all__ = ["STNConfig", "HyperDense", "HyperNet", "KerasAdam", "KERNEL", "train"]

GATE_STD = 0.1  # the port's KERNEL_STDV: N(0, 0.1) init of the hyper gates kw, kb
BETAS = (0.9, 0.999)  # Adam's, in Keras and torch alike
_BLOCK = 64  # cycles of noise drawn at once (one host->device copy per block)
# what each cycle records, in this order (the packed kernel records the same)
_NAMES = ("x_range", "scale", "train_loss", "val_loss", "dist", "dist_clean")
_TRAJ = ("x_range", "scale", "dist", "dist_clean")  # saved per cycle


@dataclass(frozen=True)
class STNConfig:
    """Config of the ``stn`` kernel; defaults are the port's ``ExperimentConfig`` and
    its notebook constants."""

    seed: int = param(42, ge=0, help="seeds the init and every draw (ExperimentConfig: 42)")
    L: int = param(2, ge=0, help="L + 1 hidden ReLU layers; sup error bound 2^(-2L)")
    M: int = param(2, ge=1, help="hidden width is M + d + 1 with d = 1")
    batch_size: int = param(100, ge=1, help="samples per weight and per hyper step")
    init_x_range: float = param(1.0, gt=0, help="initial half-width t of the training range")
    x_min: float = param(0.01, gt=0, help="lower end of t's interval")
    x_max: float = param(10.0, gt=0, help="upper end of t's interval")
    init_scale: float = param(0.5, gt=0, help="initial perturbation scale softplus(s)")
    train_lr: float = param(0.01, gt=0, help="Adam lr of the weights (W, HW, b, hb, gates)")
    hyper_lr: float = param(0.003, gt=0, help="Adam lr of the unconstrained x_range")
    scale_lr: float = param(0.003, gt=0, help="Adam lr of the perturbation scale")
    entropy_weight: float = param(0.001, ge=0, help="weight of the Gaussian entropy bonus")
    warmup_steps: int = param(5, ge=0, help="weight steps before the first cycle (steps)")
    train_steps: int = param(2, ge=1, help="weight steps per cycle")
    hyper_steps: int = param(2, ge=0, help="hyper steps per cycle; 0 = fixed x_range")
    eval_range: float = param(2.0, gt=0, help="dist is measured on [-eval_range, eval_range]")
    eval_size: int = param(100, ge=2, help="grid points of the dist measurement")
    val_range: float = param(2.0, gt=0, help="hyper-step inputs are U(-val_range, val_range)")
    max_cycles: int = param(2000, ge=1, help="cycles (train_steps + hyper_steps) at most")
    dist_threshold: float = param(0.05, ge=0, help="stop once dist < this")
    # Keras' Adam default; torch's is 1e-8. It matters only for tiny gradients.
    adam_eps: float = param(1e-7, gt=0, help="Adam epsilon of all three optimisers")
    gate: Literal["layer", "unit"] = param("layer", help="gates per layer (port) or per unit")
    log_every: int = param(1, ge=1, help="log every this many cycles (and the last)")
    # The port runs in float64 throughout; float32 is there for speed experiments.
    dtype: Literal["float64", "float32"] = param("float64", help="tensor precision")
    device: Literal["auto", "cpu", "cuda"] = param("auto", help="auto = cuda when available")

    def violations(self) -> list[str]:
        """Cross-field rules, one message per broken rule."""
        lo, hi, t = self.x_min, self.x_max, self.init_x_range
        if not lo < hi:
            return [f"x_min, x_max: x_min < x_max must hold, but got (x_min={lo}, x_max={hi})"]
        if not lo < t < hi:  # the logit of an end point is infinite
            return [f"init_x_range: must lie inside (x_min, x_max) = ({lo}, {hi}), but got {t}"]
        return []


def to_range(unc: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Unconstrained value -> x_range in (lo, hi), via a scaled sigmoid."""
    return (hi - lo) * torch.sigmoid(unc) + lo


def to_unc(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """x_range in (lo, hi) -> unconstrained value; the inverse of ``to_range``."""
    return torch.logit((t - lo) / (hi - lo))


def entropy(s: torch.Tensor) -> torch.Tensor:
    """Entropy of N(·, softplus(s)²): log(softplus(s)·√(2πe))."""
    return torch.log(F.softplus(s) * math.sqrt(2 * math.pi * math.e))


class HyperDense(nn.Module):
    """``y = x@W + b + (h@kw)·(x@HW) + (h@kb)·hb``, then ReLU when ``relu``.

    ``h`` is the (B, 1) batch of unconstrained, perturbed hyperparameter values (or a
    (1, 1) value shared by the batch). With ``gate="layer"`` kw, kb are [1, 1] (one
    scalar gate per layer, as the port); with ``"unit"`` they are [1, out].
    """

    def __init__(self, n_in: int, n_out: int, relu: bool, gate: str, gen: torch.Generator):
        super().__init__()
        bound, n_gate, f64 = 1.0 / math.sqrt(n_in), n_out if gate == "unit" else 1, torch.float64

        def uniform(*shape: int) -> nn.Parameter:  # in float64 (the port's) for any dtype
            return nn.Parameter((2 * torch.rand(shape, generator=gen, dtype=f64) - 1) * bound)

        def normal(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(shape, generator=gen, dtype=f64) * GATE_STD)

        # Drawn in the port's order: w, hw, kw, b, hb, kb.
        self.w, self.hw, self.kw = uniform(n_in, n_out), uniform(n_in, n_out), normal(1, n_gate)
        self.b, self.hb, self.kb = uniform(n_out), uniform(n_out), normal(1, n_gate)
        self.relu = relu

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # With one hyperparameter h@k is the outer product h*k: (B, 1) x (1, g) -> (B, g).
        y = torch.addcmul(torch.addmm(self.b, x, self.w), h * self.kw, x @ self.hw)  # (B, out)
        y = torch.addcmul(y, h * self.kb, self.hb)
        return torch.relu(y) if self.relu else y


class HyperNet(nn.Module):
    """The port's ``HyperReluNet``: 1 -> W linear, (L+1) x (W -> W) ReLU, W -> 1 linear,
    with W = M + 2 (d = 1), every layer a ``HyperDense``."""

    def __init__(self, L: int, M: int, gate: str, gen: torch.Generator) -> None:
        super().__init__()
        W = M + 2
        sizes = [(1, W, False)] + [(W, W, True)] * (L + 1) + [(W, 1, False)]
        self.layers = nn.ModuleList(HyperDense(i, o, r, gate, gen) for i, o, r in sizes)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, h)
        return x


class KerasAdam:
    """Adam on one tensor, in place, as Keras applies it (the port's optimiser): eps is
    added to √v before the bias correction, which is folded into the step size. torch's
    Adam adds eps after it; the two differ only when gradients are tiny."""

    def __init__(self, p: torch.Tensor, lr: float, eps: float) -> None:
        self.p, self.lr, self.eps, (self.b1, self.b2) = p, lr, eps, BETAS
        self.m, self.v, self.t = torch.zeros_like(p), torch.zeros_like(p), 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.lerp_(grad, 1 - self.b1)
        self.v.mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        lr_t = self.lr * math.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        self.p.addcdiv_(self.m, self.v.sqrt().add_(self.eps), value=-lr_t)


def _draw(gen: torch.Generator, shape: tuple[int, ...], half: float) -> torch.Tensor:
    """ε ~ N(0, 1) and u ~ U(-half, half) of ``shape`` each, stacked: (2, *shape). Drawn
    in float64 on CPU, so every dtype and device sees the same numbers."""
    eps = torch.randn(shape, generator=gen, dtype=torch.float64)
    u = (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1) * half
    return torch.stack([eps, u])


def train(cfg: STNConfig, run: Run) -> None:
    """Hypertrain x_range until dist < ``dist_threshold``, ``max_cycles`` or a stop.

    Losses are summed over the batch, as the port's tapes differentiate per-sample
    vectors; the entropy bonus is subtracted from every sample, so it enters B times.

    Raises:
        KernelFailed: a loss or metric became NaN/inf, or CUDA was requested but absent.
    """
    # Threads: the agent runs a lone trial with one intra-op thread (SRSWEEP_THREADS); with
    # two on a busy 2-core box a (4, 100) @ (100, 4) product took ~8 ms instead of 8 us.
    _hypertrain(cfg, run, resolve_device(cfg.device))


def _hypertrain(cfg: STNConfig, run: Run, device: torch.device) -> None:
    dtype = getattr(torch, cfg.dtype)
    lo, hi, c, B = cfg.x_min, cfg.x_max, cfg.entropy_weight, cfg.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)  # the init and every draw; global RNG unused
    net = HyperNet(cfg.L, cfg.M, cfg.gate, gen).to(device=device, dtype=dtype)
    unc = nn.Parameter(to_unc(torch.tensor(cfg.init_x_range, dtype=dtype), lo, hi).to(device))
    s0 = math.log(math.expm1(cfg.init_scale))  # inverse softplus
    s = nn.Parameter(torch.tensor(s0, dtype=dtype, device=device))
    weights, grads = flatten_parameters(net)
    opt_w = KerasAdam(weights, cfg.train_lr, cfg.adam_eps)
    opt_h = KerasAdam(unc.data, cfg.hyper_lr, cfg.adam_eps)
    opt_s = KerasAdam(s.data, cfg.scale_lr, cfg.adam_eps)
    r = cfg.eval_range
    x_eval = torch.linspace(-r, r, cfg.eval_size, dtype=dtype, device=device).unsqueeze(1)  # (E, 1)
    y_eval = x_eval**2

    def weight_step(eps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the data depend on h, but only the weights get gradients
            h = unc + F.softplus(s) * eps  # (B, 1)
            x = to_range(h, lo, hi) * u
        loss: torch.Tensor = (net(x, h) - x**2).pow(2).sum()
        grads.zero_()
        loss.backward()  # type: ignore[no-untyped-call]
        opt_w.step(grads)
        return loss.detach()

    def hyper_loss(eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        se: torch.Tensor = (net(x, unc + F.softplus(s) * eps) - x**2).pow(2)  # (B, 1)
        return (se - c * entropy(s)).sum()

    def hyper_step(eps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # Two tapes as the port: unc first, then s on the same ε and data with the
        # updated unc. The weights are frozen so no graph is kept for them.
        net.requires_grad_(False)
        opt_h.step(torch.autograd.grad(hyper_loss(eps, x), [unc])[0])
        loss = hyper_loss(eps, x)
        opt_s.step(torch.autograd.grad(loss, [s])[0])
        net.requires_grad_(True)
        return loss.detach()

    def draw(shape: tuple[int, ...], half: float) -> torch.Tensor:
        return _draw(gen, shape, half).to(device=device, dtype=dtype)

    eps_last = torch.zeros(B, 1, dtype=dtype, device=device)
    if cfg.warmup_steps:
        eps_w, u_w = draw((cfg.warmup_steps, B, 1), 1.0)
        warm = torch.stack([weight_step(e, u) for e, u in zip(eps_w, u_w, strict=True)])
        if not bool(torch.isfinite(warm).all()):
            raise _failure(cfg, "training loss", "during warm-up")
        eps_last = eps_w[-1]

    traj: dict[str, list[float]] = {k: [] for k in _TRAJ}
    T, H = cfg.train_steps, cfg.hyper_steps
    hloss = torch.zeros((), dtype=dtype, device=device)
    converged, reason, f_eval, f_clean = False, "max_cycles", y_eval, y_eval
    for cycle in range(cfg.max_cycles):
        if cycle % _BLOCK == 0:
            n = min(_BLOCK, cfg.max_cycles - cycle)
            eps_w, u_w = draw((n, T, B, 1), 1.0)  # (cycles, steps, B, 1) each
            if H:
                eps_h, x_h = draw((n, H, B, 1), cfg.val_range)
        i = cycle % _BLOCK
        for j in range(T):
            wloss = weight_step(eps_w[i, j], u_w[i, j])
        eps_last = eps_w[i, T - 1]
        for j in range(H):
            hloss = hyper_step(eps_h[i, j], x_h[i, j])
            eps_last = eps_h[i, j]
        with torch.no_grad():
            sp = F.softplus(s)
            # The port evaluates with the last perturbed h batch (its layers ignore
            # training=False), which only fits because EVAL_SIZE == BATCH_SIZE. With other
            # sizes the batch's mean h stands in for it.
            h_last = unc + sp * eps_last
            if cfg.eval_size != B:
                h_last = h_last.mean(0, keepdim=True)
            f_eval, f_clean = net(x_eval, h_last), net(x_eval, unc.view(1, 1))
            dists = [(f - y_eval).abs().max() for f in (f_eval, f_clean)]
            rec = torch.stack([to_range(unc, lo, hi), sp, wloss, hloss, *dists])
        # One host sync per cycle: the stop rule needs dist now.
        vals = dict(zip(_NAMES, rec.tolist(), strict=True))
        bad = [k for k, v in vals.items() if not math.isfinite(v)]
        if bad:
            raise _failure(cfg, ", ".join(bad), f"at cycle {cycle}")
        for key in traj:
            traj[key].append(vals[key])
        converged = vals["dist"] < cfg.dist_threshold
        last = converged or cycle == cfg.max_cycles - 1
        if cycle % cfg.log_every and not last:
            continue
        run.log(_metrics(cfg, vals, converged, cycle), step=cycle)
        if converged:
            reason = "converged"
            break
        if run.should_stop():
            reason = "stopped"
            break
    pairs = (("x_eval", x_eval), ("f_eval", f_eval), ("f_eval_clean", f_clean))
    grid = {k: v.squeeze(1).cpu().numpy() for k, v in pairs}  # (E,) each
    model = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    run.save(_saved(model, unc.item(), s.item(), traj, grid, converged, reason))


def _failure(cfg: STNConfig, what: str, where: str) -> KernelFailed:
    """The error of a trial whose ``what`` turned NaN/inf ``where``."""
    lrs = f"train_lr={cfg.train_lr}, hyper_lr={cfg.hyper_lr}, scale_lr={cfg.scale_lr}"
    return KernelFailed(f"non-finite {what} {where} ({lrs})")


def _metrics(
    cfg: STNConfig, vals: dict[str, float], converged: bool, cycle: int
) -> dict[str, float]:
    """A cycle's record (``_NAMES``) as logged: ``val_loss`` only with hyper steps, plus
    the boundary and convergence flags and the cycle. Changes and returns ``vals``."""
    lo, hi = cfg.x_min, cfg.x_max
    if not cfg.hyper_steps:
        del vals["val_loss"]
    margin = 0.01 * (hi - lo)  # boundary collapse: within 1% of the interval's ends
    vals["boundary"] = float(not lo + margin < vals["x_range"] < hi - margin)
    vals["converged"] = float(converged)
    vals["cycle"] = float(cycle)
    return vals


def _saved(
    model: dict[str, torch.Tensor],
    unc: float,
    s: float,
    traj: dict[str, list[float]],
    grid: dict[str, Any],
    converged: bool,
    reason: str,
) -> dict[str, Any]:
    """What a trial saves: its net's state dict, the unconstrained x_range and scale
    parameter, the per-cycle ``traj`` (``_TRAJ``), f on the eval ``grid`` (x_eval, f_eval,
    f_eval_clean) and why it stopped."""
    hyper = {"unc_x_range": unc, "scale_param": s}
    stop = {"cycles": len(traj["dist"]), "converged": converged, "stop_reason": reason}
    return {"model_state": model, **hyper, **traj, **grid, **stop}


KERNEL = Kernel(
    name="stn",
    config=STNConfig,
    train=train,
    metric="dist",
    goal="minimize",
    curve="x_range",
    summary="self-tuning network: hypertrains the training range x_range of y = x^2 "
    "(seeds 000, 001)",
    pack_key=stn_pack.pack_key,
    train_packed=stn_pack.train_packed,
)
