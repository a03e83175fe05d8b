"""The first stage of a report: read the runs' logged metrics once, as columns.

``read_logged`` asks the backend for the columns the report needs at every logged step
(the curve it smooths, ``epoch``) and for the rest only at the steps the figures and
``history.csv`` keep (``frames.thin``), a few runs at a time, so memory grows with the
columns needed, not with every logged row. ``logged_of`` gives the same from run
records that carry their history (runs built in memory, tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from srsweep.reports import frames

if TYPE_CHECKING:
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord

__all__ = ["Logged", "read_logged", "logged_of"]

CHUNK = 100  # runs per read of the columns drawn only at the kept steps


@dataclass
class Logged:
    """The runs' histories as the report reads them.

    ``frame`` is ``frames.history_frame``'s frame, at every logged step, of the keys
    read in full; ``extra`` holds every other key at the rows ``frames.thin`` keeps of
    it (indexed like ``frame``; None when ``frame`` has every key); ``keys`` lists every
    logged key in the order it first appears; ``last`` is each run's last logged value
    per key (None: take it from the records' history).
    """

    frame: pd.DataFrame
    keys: list[str]
    extra: pd.DataFrame | None = None
    last: dict[str, dict[str, Any]] | None = None


def logged_of(records: Sequence[RunRecord]) -> Logged:
    """What ``read_logged`` reads, from records that hold their history."""
    frame = frames.history_frame(records)
    return Logged(frame, [c for c in frame.columns if c not in ("run_id", "step")])


def read_logged(
    backend: Backend,
    run_ids: Sequence[str],
    keys: Sequence[str] | None,
    last: dict[str, dict[str, Any]] | None = None,
) -> Logged:
    """Read the runs' histories from ``backend``'s columns.

    Args:
        backend: Where the runs are.
        run_ids: The runs, in the order the frame's rows should have.
        keys: The keys needed at every step; None: every key.
        last: Their ``Backend.last_logged``, when read already.

    Returns:
        The runs' ``Logged`` histories.
    """
    ids = list(run_ids)
    if last is None:
        last = backend.last_logged(ids)
    full = backend.history_columns(ids, None if keys is None else list(keys))
    frame = frames.columns_frame(full, ids)
    if keys is None:
        return Logged(frame, [c for c in frame.columns if c not in ("run_id", "step")], None, last)
    kept = np.sort(frames.thin(frame[["run_id", "step"]]).index.to_numpy())
    sizes = [len(full[r].get("_step", ())) for r in ids]
    starts = np.concatenate(([0], np.cumsum(sizes)))
    bounds = np.searchsorted(kept, starts)  # run j's kept rows: kept[bounds[j]:bounds[j+1]]
    del full
    order: dict[str, None] = {}
    parts = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        cols = backend.history_columns(chunk, None)
        sliced: dict[str, dict[str, NDArray[Any]]] = {}
        labels = []
        for j, rid in enumerate(chunk, start=i):
            order.update(dict.fromkeys(k for k in cols[rid] if k != "_step"))
            lo = starts[j]
            at = kept[bounds[j] : bounds[j + 1]]
            labels.append(at)
            sliced[rid] = {
                k: v[at - lo] for k, v in cols[rid].items() if k == "_step" or k not in keys
            }
        part = frames.columns_frame(sliced, chunk).drop(columns=["run_id", "step"])
        part.index = np.concatenate(labels) if labels else np.empty(0, dtype=int)
        parts.append(part)
    extra = pd.concat(parts) if parts else pd.DataFrame()
    return Logged(frame, list(order), extra, last)
