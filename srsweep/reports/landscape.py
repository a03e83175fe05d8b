"""Draw a run's loss landscape: contours in the trajectory's PCA plane with the path on
top, the loss curves, and how far the checkpoints sit off the plane (seed 004).

This module only draws and writes: the numbers come from
``srsweep.analysis.landscape.compute`` (where torch lives), which the caller runs, so
drawing a result needs no torch and no training code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from srsweep import store
from srsweep.reports.frames import format_value
from srsweep.reports.plots import PNG

__all__ = ["landscape_plot", "contour_levels", "write_landscape"]

Array = npt.NDArray[Any]
N_LEVELS = 24
_TITLE_KEYS = ("model", "width", "alpha", "lr0", "steps", "batch_size", "seed")


def contour_levels(loss: Array, n: int = N_LEVELS) -> tuple[Array, bool]:
    """Contour levels for a loss grid: log-spaced when it is positive and spans more
    than a few percent (the reference adds ``logspace`` levels for the same reason:
    losses near an optimum span decades), else evenly spaced.

    Returns:
        ``(levels, log)``: increasing levels and whether they are log-spaced.
    """
    finite = loss[np.isfinite(loss)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo > 0 and hi / lo > 1.05:
        return np.geomspace(lo, hi, n), True
    if hi <= lo:  # a flat grid still needs increasing levels
        hi = lo + max(abs(lo), 1.0) * 1e-6
    return np.linspace(lo, hi, n), False


def _pc_label(k: int, ratio: float) -> str:
    return f"{('1st', '2nd')[k]} PC: {100 * ratio:.2f} %"


def landscape_plot(
    result: Mapping[str, Array],
    *,
    title: str = "",
    levels: Sequence[float] | None = None,
) -> Figure:
    """Contours of the train loss around θ* with the projected path; loss curves;
    off-plane residual.

    Args:
        result: What ``srsweep.analysis.landscape.compute`` returns.
        title: Figure title.
        levels: Contour levels, e.g. the reference's ``np.arange(0.1, 10, 0.5)``;
            default log-spaced over the grid's range (``contour_levels``).

    Returns:
        A figure with three axes: landscape, loss curves, distance to θ*.
    """
    fig = Figure(figsize=(16, 5), layout="constrained")
    ax_map, ax_loss, ax_res = fig.subplots(1, 3, width_ratios=[1.25, 1, 1])
    ratio = result["explained_variance_ratio"]
    loss = np.asarray(result["grid_loss"])
    if levels is None:
        lv, log = contour_levels(loss)
    else:
        lv, log = np.asarray(levels, dtype=float), False
    norm = LogNorm(vmin=lv[0], vmax=lv[-1]) if log else None
    a, b = result["grid_a"], result["grid_b"]
    filled = ax_map.contourf(a, b, loss, levels=lv, norm=norm, cmap="viridis", extend="both")
    ax_map.contour(a, b, loss, levels=lv, norm=norm, colors="k", linewidths=0.4, alpha=0.5)
    fig.colorbar(filled, ax=ax_map, label="train loss", format="%.3g")
    x, y = result["coords"][:, 0], result["coords"][:, 1]
    ax_map.plot(x, y, color="w", linewidth=1.2, marker=".", markersize=4, label="trajectory")
    ax_map.plot(x[0], y[0], "o", color="tab:orange", markeredgecolor="k", label="start")
    ax_map.plot(
        x[-1], y[-1], "*", color="tab:red", markeredgecolor="k", markersize=14, label="end θ*"
    )
    ax_map.set_xlabel(_pc_label(0, float(ratio[0])))
    ax_map.set_ylabel(_pc_label(1, float(ratio[1])))
    ax_map.set_title(f"train loss in the PCA plane ({100 * float(ratio.sum()):.1f} % of variance)")
    ax_map.legend(loc="upper left", fontsize="small", framealpha=0.7)

    steps = result["steps"]
    logged = np.asarray(result["logged_loss"])
    if logged.size:
        ax_loss.plot(
            np.arange(logged.size),
            logged,
            color="tab:blue",
            linewidth=0.8,
            alpha=0.6,
            label="train (logged each step)",
        )
    ax_loss.plot(
        steps,
        result["path_loss"],
        "o-",
        color="tab:blue",
        markersize=3,
        label="train at checkpoints",
    )
    ax_loss.plot(
        steps,
        result["test_loss"],
        "s-",
        color="tab:green",
        markersize=3,
        label="held-out at checkpoints",
    )
    ax_loss.plot(
        steps, result["plane_loss"], "--", color="tab:red", label="train at projection on plane"
    )
    ax_loss.set_yscale("log", nonpositive="mask")
    ax_loss.set_xlabel("SGD updates")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss curves")
    ax_loss.legend(fontsize="small")

    ax_res.plot(steps, result["distance"], "o-", markersize=3, label="‖θ_i − θ*‖")
    ax_res.plot(
        steps,
        result["residual"],
        "s-",
        markersize=3,
        color="tab:red",
        label="off-plane residual ‖d_i − proj d_i‖",
    )
    ax_res.set_yscale("log", nonpositive="mask")
    ax_res.set_xlabel("SGD updates")
    ax_res.set_ylabel("distance in weight space")
    ax_res.set_title("distance to θ*, and off the plane")
    ax_res.legend(fontsize="small")
    for ax in (ax_loss, ax_res):
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _title(payload: Mapping[str, Any]) -> str:
    hp = payload.get("hyperparams") or {}
    shown = ", ".join(f"{k}={format_value(hp[k])}" for k in _TITLE_KEYS if hp.get(k) is not None)
    return f"{payload.get('kernel', '?')} run {payload.get('run_id', '?')}: {shown}"


def write_landscape(
    result: Mapping[str, Array],
    payload: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    model_file: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write one run's landscape as ``landscape_<run>.png`` (the figure) and ``.npz``
    (``result``'s arrays).

    Args:
        result: What ``srsweep.analysis.landscape.compute`` returns.
        payload: The run's loaded model file, for the title and the run id.
        out_dir: Folder for the files (created if missing); files are replaced
            atomically.
        model_file: The model file; its stem names the files of a run without an id.

    Returns:
        ``[png, npz]``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = payload.get("run_id") or (Path(model_file).stem if model_file is not None else "run")
    stem = f"landscape_{run}"
    fig = landscape_plot(result, title=_title(payload))
    png, npz = out / f"{stem}.png", out / f"{stem}.npz"

    def write_png(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format="png", dpi=120, pil_kwargs=PNG)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **result)

    store.atomic_write(png, write_png)
    fig.clear()  # free the rendered buffer
    store.atomic_write(npz, write_npz)
    return [png, npz]
