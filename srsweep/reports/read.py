"""The first stage of a report: read the runs' logged metrics once, as columns.

``read_logged`` asks the backend for the columns the report needs at every logged step
(the curve it smooths); the rest are read later, only for ``history.csv`` and only at the
steps it keeps (``frames.thin``), a few runs at a time (``Rest``), so memory grows with
the columns needed, not with every logged row. ``logged_of`` gives the same from run
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

__all__ = ["Logged", "Rest", "read_logged", "logged_of"]

CHUNK = 100  # runs per read of the columns drawn only at the kept steps


@dataclass
class Logged:
    """The runs' histories as the report reads them.

    ``frame`` is ``frames.history_frame``'s frame, at every logged step, of the keys
    read in full; ``rest`` reads every other key when asked, at the rows of ``frame``
    asked for (None: ``frame`` has every key); ``keys`` lists the logged keys in the
    order they first appear;
    ``last`` is each run's last logged value per key (None: take it from the records'
    history).
    """

    frame: pd.DataFrame
    keys: list[str]
    last: dict[str, dict[str, Any]] | None = None
    rest: Rest | None = None


@dataclass
class Rest:
    """The keys ``read_logged`` left out of its frame, read only when asked (for
    ``history.csv``, by whichever of the report's processes writes it), at some rows of
    that frame only, a few runs at a time, through a handle of its own on the ledger
    (``Backend.reopen``: a forked child may not use its parent's connection)."""

    backend: Backend
    run_ids: list[str]
    skip: list[str]  # the keys the frame has
    sizes: list[int]  # the frame's rows per run, in order

    def at(self, rows: NDArray[np.intp]) -> tuple[pd.DataFrame, list[str]]:
        """Every other key at these rows of the frame (positions), indexed by them, and
        every key the runs logged, in the order it first appears."""
        kept = np.sort(np.asarray(rows))
        starts = np.concatenate(([0], np.cumsum(self.sizes))).astype(np.intp)
        bounds = np.searchsorted(kept, starts)  # run j's rows: kept[bounds[j]:bounds[j+1]]
        backend = self.backend.reopen()
        try:
            parts, order = self._read(backend, kept, starts, bounds)
        finally:
            backend.close()
        return (pd.concat(parts) if parts else pd.DataFrame(index=kept)), list(order)

    def _read(
        self,
        backend: Backend,
        kept: NDArray[np.intp],
        starts: NDArray[np.intp],
        bounds: NDArray[np.intp],
    ) -> tuple[list[pd.DataFrame], dict[str, None]]:
        ids = self.run_ids
        order: dict[str, None] = {}
        parts = []
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            cols = backend.history_columns(chunk, None)
            sliced: dict[str, dict[str, NDArray[Any]]] = {}
            labels = []
            for j, rid in enumerate(chunk, start=i):
                order.update(dict.fromkeys(k for k in cols[rid] if k != "_step"))
                at = kept[bounds[j] : bounds[j + 1]]
                labels.append(at)
                sliced[rid] = {
                    k: v[at - starts[j]]
                    for k, v in cols[rid].items()
                    if k == "_step" or k not in self.skip
                }
            part = frames.columns_frame(sliced, chunk).drop(columns=["run_id", "step"])
            part.index = np.concatenate(labels) if labels else np.empty(0, dtype=int)
            parts.append(part)
        return parts, order


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
        keys: The keys needed at every step (the rest are left to ``Logged.rest``);
            None: every key.
        last: Their ``Backend.last_logged``, when read already.

    Returns:
        The runs' ``Logged`` histories.
    """
    ids = list(run_ids)
    if last is None:
        last = backend.last_logged(ids)
    full = backend.history_columns(ids, None if keys is None else list(keys))
    frame = frames.columns_frame(full, ids)
    named = [c for c in frame.columns if c not in ("run_id", "step")]
    if keys is None:
        return Logged(frame, named, last)
    sizes = [len(full[r].get("_step", ())) for r in ids]
    # every key, in the order it first appears, as far as the last values tell (a key
    # only ever logged as None is left to history.csv, which reads every one)
    order = dict.fromkeys(named)
    for values in last.values():
        order.update(dict.fromkeys(values))
    return Logged(frame, list(order), last, Rest(backend, ids, list(keys), sizes))
