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
projection. The nets are tiny, so the whole grid is one batched pass of the problem's
loss over stacked parameter vectors.

Nothing here knows a kernel: the kernel that trained a run rebuilds it as a
``srsweep.kernels._base.Problem`` (network, trajectory, losses) through its record's
``landscape``, found in the registry by the kernel name the model file holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from srsweep import kernels
from srsweep import store
from srsweep.errors import NotFoundError
from srsweep.errors import SpecError
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.kernels._base import Problem

__all__ = ["compute", "compute_file", "grid_losses", "pca_directions", "problem"]

Array = npt.NDArray[Any]
_CHUNK_ELEMS = 2**24  # parameter values materialised per batched pass (128 MB in float64)


def _with_landscape() -> list[str]:
    """Names of the registered kernels that rebuild a landscape problem."""
    names = []
    for name in kernels.names():
        try:
            if kernels.get(name).landscape is not None:
                names.append(name)
        except NotFoundError:  # a user's kernel that does not load has no landscape either
            continue
    return names


def problem(payload: dict[str, Any], source: str = "model file") -> Problem:
    """Rebuild a run's network, trajectory and losses from its loaded model file, with
    the ``landscape`` of the kernel that trained it.

    Args:
        payload: What ``srsweep.store.load`` returned.
        source: Names the file in error messages.

    Raises:
        UsageError: the kernel is unknown or saves no trajectory, or the run saved too
            few snapshots; the message starts with ``source``.
    """
    name = str(payload.get("kernel") or "")
    try:
        rebuild = kernels.get(name).landscape
    except NotFoundError:
        rebuild = None
        known = False
    else:
        known = True
    if rebuild is None:
        have = ", ".join(_with_landscape())
        if known:
            raise UsageError(
                f"{source}: kernel {name!r} saves no weight trajectory (only its final "
                f"state), so it has no landscape path; kernels that save one: {have}"
            )
        raise UsageError(
            f"{source}: no landscape for kernel {name!r}; kernels that save a weight "
            f"trajectory: {have}"
        )
    try:
        return rebuild(payload)
    except SpecError as e:  # the kernel's messages do not know the file: name it here
        raise SpecError(source, e.violations) from None
    except UsageError as e:
        raise UsageError(f"{source}: {e}") from None


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
    source: str = "model file",
) -> dict[str, Array]:
    """The landscape of one saved run.

    Args:
        payload: A loaded model file (``srsweep.store.load``).
        grid: Points per grid axis; odd, so that θ* is the centre node.
        margin: Grid axes reach this fraction past the path's farthest point.
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
    prob = problem(payload, source)
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
        CorruptFileError: the file cannot be read, or (``UnsafeFileError``) names types
            ``store.load`` does not unpickle; names the path.
        UsageError: as ``compute``, naming the path.
    """
    payload = store.load(path)
    return compute(payload, source=str(path), **kwargs), payload
