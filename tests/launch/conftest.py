from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from srsweep.backends import SqlLedger
from srsweep.backends import open_ledger
from srsweep.spec import validate

Grid = Callable[..., tuple[SqlLedger, str]]


@pytest.fixture
def grid() -> Iterator[Grid]:
    """Registers a toy grid sweep: ``(results, n, ledger=None, **params)`` -> (its ledger,
    closed after the test; the sweep id); ``n`` targets 0..n-1, three steps each unless
    ``params`` say so."""
    opened: list[SqlLedger] = []

    def make(
        results: Path, n: int, ledger: str | None = None, **params: Any
    ) -> tuple[SqlLedger, str]:
        book = open_ledger(results, ledger)
        opened.append(book)
        parameters = {"target": {"values": list(range(n))}, "steps": {"value": 3}}
        parameters.update({k: {"value": v} for k, v in params.items()})
        spec = validate({"program": "toy", "method": "grid", "parameters": parameters}, "grid")
        return book, book.create_sweep(spec)

    yield make
    for book in opened:
        book.close()


def _finished_once(book: SqlLedger, sid: str, n: int) -> set[str]:
    runs = book.runs(sid, history=False)
    targets = Counter(r.params["target"] for r in runs)
    assert sorted(targets) == list(range(n)) and set(targets.values()) == {1}, targets
    assert {r.state for r in runs} == {"finished"}, [(r.name, r.state, r.error) for r in runs]
    return {r.agent or "" for r in runs}


@pytest.fixture
def finished_once() -> Callable[[SqlLedger, str, int], set[str]]:
    """Asserts that every target 0..n-1 of a ``grid`` sweep ran exactly once and
    finished: ``(ledger, sweep id, n)`` -> the names of the agents that ran them."""
    return _finished_once
