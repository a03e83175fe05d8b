"""What an ``stn`` trial records per cycle, logs, saves and fails with: one definition
for the solo and the packed path, so that a packed trial's run reads as the same trial
trained alone (seeds 000, 001)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from srsweep.errors import KernelFailed
from srsweep.kernels.common.saved import to_numpy

if TYPE_CHECKING:
    import torch

    from srsweep.kernels.stn.config import STNConfig

__all__ = ["NAMES", "TRAJ", "failure", "metrics", "saved"]

# what each cycle records, in this order (both paths record the same)
NAMES = ("x_range", "scale", "train_loss", "val_loss", "dist", "dist_clean")
TRAJ = ("x_range", "scale", "dist", "dist_clean")  # saved per cycle


def failure(cfg: STNConfig, what: str, where: str) -> KernelFailed:
    """The error of a trial whose ``what`` turned NaN/inf ``where``."""
    lrs = f"train_lr={cfg.train_lr}, hyper_lr={cfg.hyper_lr}, scale_lr={cfg.scale_lr}"
    return KernelFailed(f"non-finite {what} {where} ({lrs})")


def metrics(
    cfg: STNConfig, vals: dict[str, float], converged: bool, cycle: int
) -> dict[str, float]:
    """A cycle's record (``NAMES``) as logged: ``val_loss`` only with hyper steps, plus
    the boundary and convergence flags and the cycle. Changes and returns ``vals``."""
    lo, hi = cfg.x_min, cfg.x_max
    if not cfg.hyper_steps:
        del vals["val_loss"]
    margin = 0.01 * (hi - lo)  # boundary collapse: within 1% of the interval's ends
    vals["boundary"] = float(not lo + margin < vals["x_range"] < hi - margin)
    vals["converged"] = float(converged)
    vals["cycle"] = float(cycle)
    return vals


def saved(
    model: dict[str, torch.Tensor],
    unc: float,
    s: float,
    traj: dict[str, list[float]],
    grid: dict[str, Any],
    converged: bool,
    reason: str,
) -> dict[str, Any]:
    """What a trial saves (NumPy arrays, as a model file holds them): its net's state
    dict, the unconstrained x_range and scale parameter, the per-cycle ``traj``
    (``TRAJ``), f on the eval ``grid`` (x_eval, f_eval, f_eval_clean) and why it stopped."""
    hyper = {"unc_x_range": unc, "scale_param": s}
    stop = {"cycles": len(traj["dist"]), "converged": converged, "stop_reason": reason}
    return {"model_state": to_numpy(model), **hyper, **traj, **grid, **stop}
