"""What the per-kernel report figures share: the model-file loader, figure and colour
helpers, and the ``KernelFigure`` triple they all return."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from srsweep import store
from srsweep.errors import SrsweepError

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord

KernelFigure = tuple[str, Figure, str]  # (file name, figure, caption)
Array = npt.NDArray[np.float64]
MAX_RUN_LEGEND = 12  # past this, legends list groups instead of runs
LINE_STYLES = ("-", "--", ":", "-.")


class ModelFiles:
    """The runs' model files, loaded on first use; unreadable ones become ``notes``."""

    def __init__(self, records: Iterable[RunRecord]) -> None:
        self._where = {r.id: (r.name, r.model_path) for r in records}
        self._cache: dict[str, dict[str, Any] | None] = {}
        self.notes: list[str] = []

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's model file contents, or None (with a note) when it cannot be read."""
        if run_id not in self._cache:
            name, path = self._where.get(run_id, (run_id, None))
            payload = None
            if path is None:
                self.notes.append(f"{name} ({run_id}): no model file recorded; skipped")
            else:
                try:
                    payload = store.load(path)
                except SrsweepError as e:  # NotFoundError, CorruptFileError: name the path
                    self.notes.append(f"{name} ({run_id}): {e}; skipped")
            self._cache[run_id] = payload
        return self._cache[run_id]


def new_figure(ncols: int = 1, width: float = 9.0) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(width, 4.8), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, ncols)))
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def series(hist: pd.DataFrame, run_id: str, col: str) -> tuple[Array, Array]:
    """(steps, values) of one run's logged ``col``, in step order, NaNs dropped."""
    g = hist.loc[hist["run_id"] == run_id, ["step", col]].dropna().sort_values("step")
    return g["step"].to_numpy(dtype=float), g[col].to_numpy(dtype=float)


def config_column(runs: pd.DataFrame, key: str, default: Any) -> pd.Series:
    """A config column by run id; ``default`` (the kernel's) where it is missing."""
    col = runs[key] if key in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    return pd.Series(
        [default if v is None or v != v else v for v in col], index=runs["run_id"].to_numpy()
    )


def missing_columns(hist: pd.DataFrame, cols: Iterable[str]) -> list[str]:
    return [c for c in cols if c not in hist.columns or hist[c].isna().all()]


def colour_scale(
    values: Iterable[float], cmap: str, lo: float = 0.0, hi: float = 0.9
) -> dict[float, Any]:
    """Sequential colours by value (log-scaled when all are positive and span > 10×)."""
    vals = sorted(set(values))
    arr = np.asarray(vals, dtype=float)
    if len(arr) and arr.min() > 0 and arr.max() / arr.min() > 10:
        arr = np.log10(arr)
    span = float(arr.max() - arr.min()) if len(arr) else 0.0
    pos = (arr - arr.min()) / span if span > 0 else np.ones(len(arr))
    return {v: colormaps[cmap](lo + (hi - lo) * p) for v, p in zip(vals, pos, strict=True)}
