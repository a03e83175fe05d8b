"""A run's logged history as typed columns: how the ledger keeps a run that has ended.

While a run is ``running`` its history is one JSON row per log call; when it ends (it
finished, stopped, failed, crashed or was preempted) the rows are compacted into one
column per key, so that a report reads a key of a thousand runs as a thousand arrays
instead of decoding millions of JSON texts.

Each column has a kind, chosen from the values the key was logged with:

- ``f8`` (every value a float), ``i8`` (every value an int, bools excluded, within
  64 bits) and ``b1`` (every value a bool): raw little-endian bytes, one per logged row;
- ``json`` (anything else: strings, lists, None, ints mixed with floats): a JSON list
  of the logged values, so that nothing a run logged is lost or changes type.

``present`` marks the rows that logged the key (``np.packbits``; None when every row
did), so a NaN the run logged stays apart from a row that did not log the key, and
``to_rows`` gives back exactly the rows that were logged. Nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Column", "encode", "decode", "to_rows", "from_rows", "last_of", "KINDS"]

KINDS = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8"), "b1": np.dtype("|b1"), "json": None}
_I8 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Column:
    """One key of one run's history: its ``kind``, the rows that logged it
    (``present``, packed bits; None: all ``n`` rows), the values of those rows
    (``data``) and the JSON of the last of them that is not None (``last``)."""

    key: str
    kind: str
    present: bytes | None
    data: bytes
    last: str | None


def _kind(values: list[Any]) -> str:
    if all(type(v) is float for v in values):
        return "f8"
    if all(type(v) is bool for v in values):
        return "b1"
    if all(type(v) is int and _I8[0] <= v <= _I8[1] for v in values):
        return "i8"
    return "json"


def encode(rows: Sequence[dict[str, Any]]) -> list[Column]:
    """The columns of ``rows`` (one history, in logging order), keys in the order they
    first appear."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    out = []
    for key in keys:
        mask = np.fromiter((key in row for row in rows), dtype=bool, count=len(rows))
        values = [row[key] for row in rows if key in row]
        kind = _kind(values)
        dtype = KINDS[kind]
        data = json.dumps(values).encode() if dtype is None else np.asarray(values, dtype).tobytes()
        last = next((v for v in reversed(values) if v is not None), None)
        out.append(
            Column(
                key,
                kind,
                None if mask.all() else np.packbits(mask).tobytes(),
                data,
                None if last is None else json.dumps(last),
            )
        )
    return out


def _mask(present: bytes | None, n: int) -> NDArray[Any] | None:
    if present is None:
        return None
    return np.unpackbits(np.frombuffer(present, np.uint8), count=n).astype(bool)


def _values(kind: str, data: bytes) -> NDArray[Any]:
    dtype = KINDS[kind]
    if dtype is None:
        values = json.loads(data)
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.frombuffer(data, dtype)


def decode(kind: str, n: int, present: bytes | None, data: bytes) -> NDArray[Any]:
    """A column as one value per row, for reading: ``f8`` as float64 with NaN where a
    row did not log the key; ``i8`` and ``b1`` as int64 and bool when every row logged
    it, else as float64 with NaN (``i8``) or objects with None (``b1``); ``json`` as
    objects with None where a row did not log the key."""
    values, mask = _values(kind, data), _mask(present, n)
    if mask is None:
        return values
    if kind in ("f8", "i8"):
        out = np.full(n, np.nan)
    else:
        out = np.full(n, None, dtype=object)
    out[mask] = values
    return out


def to_rows(
    n: int, columns: Iterable[tuple[str, str, bytes | None, bytes]]
) -> list[dict[str, Any]]:
    """The ``n`` rows that ``(key, kind, present, data)`` columns were encoded from, with
    every value of the type it was logged as."""
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, kind, present, data in columns:
        values = _values(kind, data).tolist()
        mask = _mask(present, n)
        at = range(n) if mask is None else np.flatnonzero(mask).tolist()
        for i, v in zip(at, values, strict=True):
            rows[i][key] = v
    return rows


def from_rows(
    rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None
) -> dict[str, NDArray[Any]]:
    """``rows`` as ``decode`` reads columns: every key (or ``keys`` and ``_step``, those
    logged), one value per row."""
    wanted = None if keys is None else {"_step", *keys}
    return {
        c.key: decode(c.kind, len(rows), c.present, c.data)
        for c in encode(rows)
        if wanted is None or c.key in wanted
    }


def last_of(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The last logged value of each key but ``_step`` that is not None."""
    last: dict[str, Any] = {}
    for row in rows:
        last.update((k, v) for k, v in row.items() if k != "_step" and v is not None)
    return last
