"""Loss landscape of a saved run: its weight trajectory in a 2-D PCA plane (seed 004).

Li, Xu, Taylor, Studer & Goldstein (NeurIPS 2018, arXiv 1712.09913), trajectory variant:
the saved checkpoints θ_i give rows d_i = θ_i − θ*, θ* the final weights; their first two
principal directions span a plane through θ*; the path is drawn in that plane, over the
loss on a grid θ* + a·pc1 + b·pc2. PCA centres the rows, as sklearn's ``PCA`` does in the
reference code, while the path coordinates are the uncentred ⟨d_i, pc⟩, so θ* sits at
(0, 0). See ``../shared/reference/kernels.md`` section (c) and
``../shared/seeds/004_3f2b81d738b0e0f2.txt``.

Known caveat (loss-landscapes issue #1): checkpoints lie off the plane, so the contour
under a projected checkpoint is not its loss. The result therefore also holds each
checkpoint's off-plane residual ‖d_i − proj d_i‖, its true loss, and the loss at its
projection. The nets are tiny, so the whole grid is one batched forward pass
(``torch.func.functional_call`` under ``vmap`` over stacked parameter sets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.func import functional_call

from srsweep import store
from srsweep.config import build
from srsweep.errors import UsageError
from srsweep.kernels import lazy

__all__ = ["Problem", "compute", "compute_file", "grid_losses", "pca_directions", "problem"]

Array = npt.NDArray[Any]
TEST_SEED_OFFSET = 10_007  # the held-out set's seed is the run's plus this
N_TEST = 200  # held-out points: more than a run's n (10-15) so the curve is smooth
_CHUNK_ELEMS = 2**24  # parameter values materialised per batched pass (128 MB in float64)


@dataclass
class Problem:
    """A run's network and losses, rebuilt from its model file, in float64 on CPU.

    Attributes:
        model: The network; ``functional_call`` swaps its parameters.
        shapes: ``(name, shape)`` of each parameter, in the order of the flat vectors.
        trajectory: The initial then the saved weight vectors, (T, P).
        steps: SGD updates done at each trajectory row, (T,): 0 for the initial weights.
        final: Final weights θ*, (P,).
        losses: Split name ("train", "test") -> loss of a batch of flat vectors
            (G, P) -> (G,).
        logged_loss: The loss the kernel logged at every step, i.e. after 0, 1, ...
            updates (a minibatch loss when the run used minibatches).
    """

    model: nn.Module
    shapes: list[tuple[str, tuple[int, ...]]]
    trajectory: torch.Tensor
    steps: Array
    final: torch.Tensor
    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]]
    logged_loss: Array


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


def _lazy_problem(payload: dict[str, Any], source: str, n_test: int) -> Problem:
    cfg: lazy.LazyConfig = build(lazy.LazyConfig, payload["hyperparams"], source)
    hist = np.asarray(payload["history"])
    if hist.ndim != 2 or len(hist) < 2:
        raise UsageError(
            f"{source}: the run saved {len(hist)} weight snapshots, the landscape needs at "
            "least 2; re-run it with history_every > 0 (e.g. --set history_every=20)"
        )
    f64 = torch.float64
    model = lazy.make_model(cfg).to(f64)
    shapes = [(str(n), tuple(int(d) for d in s)) for n, s in payload["param_shapes"]]
    # lazy's weight vector is its parameters in named_parameters order; so are the rows.
    final = torch.cat([payload["final_state"][n].reshape(-1).to(f64) for n, _ in shapes])
    init = torch.cat([payload["init_state"][n].reshape(-1).to(f64) for n, _ in shapes])
    if final.numel() != hist.shape[1]:
        raise UsageError(f"{source}: history rows have {hist.shape[1]} values, not {final.numel()}")
    alpha = cfg.alpha

    def mse(x_np: Array, y_np: Array) -> Callable[[torch.Tensor], torch.Tensor]:
        x = torch.as_tensor(x_np, dtype=f64).view(-1, 1)  # (n, 1)
        y = torch.as_tensor(y_np, dtype=f64).view(1, -1, 1)
        with torch.no_grad():  # the frozen f_w0 of α·(f_w − f_w0)
            base = batched_forward(model, shapes, init[None], x)  # (1, n, 1)

        def loss(thetas: torch.Tensor) -> torch.Tensor:
            out = batched_forward(model, shapes, thetas, x)  # (G, n, 1)
            return (alpha * (out - base) - y).pow(2).mean(dim=(1, 2))  # the kernel's MSE

        return loss

    # A held-out set drawn exactly like the training set, from another seed.
    test_cfg = dataclasses.replace(cfg, seed=cfg.seed + TEST_SEED_OFFSET, n=n_test)
    x_test, y_test, _ = lazy.make_data(test_cfg)
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


def _no_trajectory(kernel: str) -> Callable[[dict[str, Any], str, int], Problem]:
    def fail(payload: dict[str, Any], source: str, n_test: int) -> Problem:
        raise UsageError(
            f"{source}: kernel {kernel!r} saves no weight trajectory (only its final state), "
            f"so it has no landscape path; kernels that save one: {', '.join(_PROBLEMS)}"
        )

    return fail


# kernel name -> rebuild of its network and losses from a model file
_PROBLEMS: dict[str, Callable[[dict[str, Any], str, int], Problem]] = {"lazy": _lazy_problem}
# kernels known to save only a final state get a message saying so
_KNOWN_WITHOUT = {"stn": _no_trajectory("stn")}


def problem(payload: dict[str, Any], source: str = "model file", n_test: int = N_TEST) -> Problem:
    """Rebuild a run's network, trajectory and losses from its loaded model file.

    Args:
        payload: What ``srsweep.store.load`` returned.
        source: Names the file in error messages.
        n_test: Size of the held-out set.

    Raises:
        UsageError: the kernel saves no trajectory, or the run saved too few snapshots.
    """
    kernel = str(payload.get("kernel") or "")
    make = _PROBLEMS.get(kernel) or _KNOWN_WITHOUT.get(kernel)
    if make is None:
        raise UsageError(
            f"{source}: no landscape for kernel {kernel!r}; kernels that save a weight "
            f"trajectory: {', '.join(_PROBLEMS)}"
        )
    return make(payload, source, n_test)


def pca_directions(rows: Array, k: int = 2) -> tuple[Array, Array]:
    """Top-``k`` principal directions of ``rows`` (T, P), centred as sklearn's ``PCA``.

    Returns:
        ``(pcs, ratio)``: unit vectors (k, P), signed so that the first row projects
        non-negatively (stable across re-runs), and each one's fraction of the variance.

    Raises:
        UsageError: fewer than 2 rows, or all rows equal (nothing moved).
    """
    rows = np.asarray(rows, dtype=np.float64)
    centred = rows - rows.mean(axis=0)
    if len(rows) < 2 or not np.any(centred):
        raise UsageError("the weight trajectory does not move: no plane to project on")
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = vt[:k].copy()
    if len(pcs) < k:  # fewer rows than directions: pad with zero-variance zero vectors
        pcs = np.vstack([pcs, np.zeros((k - len(pcs), rows.shape[1]))])
    sign = np.where(pcs @ rows[0] < 0, -1.0, 1.0)
    ratio = np.zeros(k)
    ratio[: min(k, len(s))] = (s**2 / np.sum(s**2))[:k]
    return pcs * sign[:, None], ratio


def grid_losses(
    loss: Callable[[torch.Tensor], torch.Tensor],
    centre: torch.Tensor,
    pcs: torch.Tensor,
    grid_a: Array,
    grid_b: Array,
) -> Array:
    """Loss at every θ = centre + a·pcs[0] + b·pcs[1], batched.

    Args:
        loss: (G, P) -> (G,), e.g. ``Problem.losses["train"]``.
        centre: θ*, (P,).
        pcs: The two directions, (2, P).
        grid_a: Steps along pcs[0], (Na,).
        grid_b: Steps along pcs[1], (Nb,).

    Returns:
        (Nb, Na): row i is b = grid_b[i], column j is a = grid_a[j] (contour order).
    """
    bb, aa = np.meshgrid(grid_b, grid_a, indexing="ij")
    coef = torch.as_tensor(np.stack([aa.ravel(), bb.ravel()], axis=1), dtype=centre.dtype)
    return _losses_at(loss, centre, coef, pcs).reshape(len(grid_b), len(grid_a))


def _losses_at(
    loss: Callable[[torch.Tensor], torch.Tensor],
    centre: torch.Tensor,
    coef: torch.Tensor,
    pcs: torch.Tensor,
) -> Array:
    """Loss at centre + coef @ pcs for each row of ``coef`` (G, 2). One pass for tiny
    nets; wide ones are cut into chunks so the stacked parameters stay ~128 MB."""
    chunk = max(1, _CHUNK_ELEMS // max(1, centre.numel()))
    out = []
    with torch.no_grad():
        for i in range(0, len(coef), chunk):
            out.append(loss(centre + coef[i : i + chunk] @ pcs))
    return torch.cat(out).numpy()


def _span(coords: Array, margin: float) -> float:
    """Half-width of a grid axis: the path's reach from θ* plus ``margin`` of it."""
    reach = float(np.abs(coords).max()) if len(coords) else 0.0
    return (1.0 + margin) * reach


def compute(
    payload: dict[str, Any],
    *,
    grid: int = 41,
    margin: float = 0.25,
    n_test: int = N_TEST,
    source: str = "model file",
) -> dict[str, Array]:
    """The landscape of one saved run.

    Args:
        payload: A loaded model file (``srsweep.store.load``).
        grid: Points per grid axis; odd, so that θ* is the centre node.
        margin: Grid axes reach this fraction past the path's farthest point.
        n_test: Size of the held-out set.
        source: Names the file in error messages.

    Returns:
        Numpy arrays: ``steps`` (T,) SGD updates done at each checkpoint (0 is the
        initial weights), ``coords`` (T, 2) = ⟨d_i, pc⟩, ``distance``
        ‖d_i‖ and ``residual`` ‖d_i − proj d_i‖ (T,), ``pcs`` (2, P),
        ``explained_variance_ratio`` (2,), ``grid_a`` (Na,), ``grid_b`` (Nb,),
        ``grid_loss`` (Nb, Na) train loss, ``path_loss`` / ``test_loss`` (T,) train and
        held-out loss at the checkpoints, ``plane_loss`` (T,) train loss at their
        projections, ``logged_loss`` (per step, as trained) and ``final_loss`` (0-d).

    Raises:
        UsageError: a bad ``grid``; the kernel saves no trajectory; too few snapshots.
    """
    if grid < 3 or grid % 2 == 0:
        raise UsageError(f"grid: must be an odd number >= 3 (θ* is the centre), but got {grid}")
    prob = problem(payload, source, n_test)
    d = (prob.trajectory - prob.final).numpy()  # (T, P)
    pcs, ratio = pca_directions(d)
    coords = d @ pcs.T  # (T, 2), uncentred: θ* is (0, 0)
    residual = np.linalg.norm(d - coords @ pcs, axis=1)
    half = [_span(coords[:, k], margin) for k in range(2)]
    half = [h if h > 0 else max(max(half), 1e-12) for h in half]
    grid_a, grid_b = (np.linspace(-h, h, grid) for h in half)
    pcs_t = torch.as_tensor(pcs)
    train, test = prob.losses["train"], prob.losses["test"]
    with torch.no_grad():
        path_loss, test_loss = train(prob.trajectory).numpy(), test(prob.trajectory).numpy()
        final_loss = train(prob.final[None]).numpy()[0]
    return {
        "steps": prob.steps,
        "coords": coords,
        "distance": np.linalg.norm(d, axis=1),
        "residual": residual,
        "pcs": pcs,
        "explained_variance_ratio": ratio,
        "grid_a": grid_a,
        "grid_b": grid_b,
        "grid_loss": grid_losses(train, prob.final, pcs_t, grid_a, grid_b),
        "path_loss": path_loss,
        "test_loss": test_loss,
        "plane_loss": _losses_at(train, prob.final, torch.as_tensor(coords), pcs_t),
        "logged_loss": prob.logged_loss,
        "final_loss": np.asarray(final_loss),
    }


def compute_file(path: str | Path, **kwargs: Any) -> tuple[dict[str, Array], dict[str, Any]]:
    """``compute`` on a model file; also returns the loaded payload (for titles).

    Raises:
        NotFoundError: no such file.
        CorruptFileError: the file cannot be read; names the path.
        UsageError: as ``compute``, naming the path.
    """
    payload = store.load(path)
    return compute(payload, source=str(path), **kwargs), payload
