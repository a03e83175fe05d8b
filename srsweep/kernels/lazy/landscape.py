"""A saved ``lazy`` run as a loss-landscape problem (seeds 002, 004): its network, weight
trajectory and train and held-out losses, rebuilt from its model file for
``srsweep.analysis.landscape``.

The losses are the kernel's own MSE of α·(f_w − f_w0), with f_w0 the run's initial net,
over a batch of flat weight vectors at once (``torch.func.functional_call`` under
``vmap``). The held-out set is drawn exactly as the training set, from another seed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from srsweep.config import build
from srsweep.errors import UsageError
from srsweep.kernels._base import Problem
from srsweep.kernels.common.saved import to_tensors
from srsweep.kernels.lazy.config import LazyConfig
from srsweep.kernels.lazy.model import make_data
from srsweep.kernels.lazy.model import make_model

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt
    from torch import nn

__all__ = ["N_TEST", "TEST_SEED_OFFSET", "batched_forward", "problem"]

TEST_SEED_OFFSET = 10_007  # the held-out set's seed is the run's plus this
N_TEST = 200  # held-out points: more than a run's n (10-15) so the curve is smooth


def _unflatten(shapes: list[tuple[str, tuple[int, ...]]], flat: torch.Tensor) -> dict[str, Any]:
    """(G, P) -> {name: (G, *shape)}, views into ``flat``."""
    out, at = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        out[name] = flat[:, at : at + n].reshape(flat.shape[0], *shape)
        at += n
    return out


def batched_forward(
    model: nn.Module, shapes: list[tuple[str, tuple[int, ...]]], thetas: torch.Tensor, x: Any
) -> torch.Tensor:
    """The model's output for each of G flat parameter vectors: (G, P) -> (G, *out)."""

    def one(params: dict[str, torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = functional_call(model, params, (x,))
        return out

    result: torch.Tensor = torch.vmap(one)(_unflatten(shapes, thetas))
    return result


def problem(payload: dict[str, Any]) -> Problem:
    """Rebuild a ``lazy`` run's network, trajectory and losses from its model file.

    Args:
        payload: What ``srsweep.store.load`` returned for a ``lazy`` run.

    Returns:
        The run in float64 on CPU, with "train" and "test" losses; the trajectory is the
        initial weights then every saved snapshot.

    Raises:
        SpecError: the saved hyperparameters are not a valid ``LazyConfig``.
        UsageError: the run saved fewer than 2 snapshots (``history_every`` = 0), or
            snapshots that do not fit its network. Messages do not name the file: the
            caller prefixes it.
    """
    cfg: LazyConfig = build(LazyConfig, payload["hyperparams"], "model file")
    hist = np.asarray(payload["history"])
    if hist.ndim != 2 or len(hist) < 2:
        raise UsageError(
            f"the run saved {len(hist)} weight snapshots, the landscape needs at "
            "least 2; re-run it with history_every > 0 (e.g. --set history_every=20)"
        )
    f64 = torch.float64
    model = make_model(cfg).to(f64)
    shapes = [(str(n), tuple(int(d) for d in s)) for n, s in payload["param_shapes"]]
    # lazy's weight vector is its parameters in named_parameters order; so are the rows.
    final_state, init_state = to_tensors(payload["final_state"]), to_tensors(payload["init_state"])
    final = torch.cat([final_state[n].reshape(-1).to(f64) for n, _ in shapes])
    init = torch.cat([init_state[n].reshape(-1).to(f64) for n, _ in shapes])
    if final.numel() != hist.shape[1]:
        raise UsageError(f"history rows have {hist.shape[1]} values, not {final.numel()}")
    alpha = cfg.alpha

    def mse(x_np: npt.ArrayLike, y_np: npt.ArrayLike) -> Callable[[torch.Tensor], torch.Tensor]:
        x = torch.as_tensor(x_np, dtype=f64).view(-1, 1)  # (n, 1)
        y = torch.as_tensor(y_np, dtype=f64).view(1, -1, 1)
        with torch.no_grad():  # the frozen f_w0 of α·(f_w − f_w0)
            base = batched_forward(model, shapes, init[None], x)  # (1, n, 1)

        def loss(thetas: torch.Tensor) -> torch.Tensor:
            out = batched_forward(model, shapes, thetas, x)  # (G, n, 1)
            return (alpha * (out - base) - y).pow(2).mean(dim=(1, 2))  # the kernel's MSE

        return loss

    # A held-out set drawn exactly like the training set, from another seed.
    test_cfg = dataclasses.replace(cfg, seed=cfg.seed + TEST_SEED_OFFSET, n=N_TEST)
    x_test, y_test, _ = make_data(test_cfg)
    # Row i is the weights after SGD step history_steps[i]; the initial weights (before
    # any step) start the path, so it is indexed by the number of updates done.
    updates = np.asarray(payload["history_steps"], dtype=np.int64) + 1
    return Problem(
        model=model,
        shapes=shapes,
        trajectory=torch.cat([init[None], torch.as_tensor(hist, dtype=f64)]),
        steps=np.concatenate([[0], updates]),
        final=final,
        losses={"train": mse(payload["x"], payload["y"]), "test": mse(x_test, y_test)},
        logged_loss=np.asarray(payload.get("losses", ()), dtype=np.float64),
    )
