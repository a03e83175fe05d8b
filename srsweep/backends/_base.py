"""The ledger contract: where sweeps, claimed trials and their metrics live."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

# queued -> running -> finished | stopped | failed | preempted | crashed (agent lost)
TERMINAL = ("finished", "stopped", "failed", "preempted", "crashed")


@dataclass
class SweepRecord:
    """A registered sweep."""

    id: str
    name: str
    kernel: str
    spec: dict[str, Any]
    source: str
    state: str  # "active" | "stopped"
    seed: int
    created_at: float
    counts: dict[str, int] = field(default_factory=dict)  # runs by state
    remote: str | None = None  # ENTITY/PROJECT/SWEEP_ID when registered on a W&B server


@dataclass
class RunRecord:
    """One trial or standalone run, with everything the report needs."""

    id: str
    sweep_id: str | None
    name: str
    kernel: str
    state: str  # one of TERMINAL, "queued" or "running"
    params: dict[str, Any]  # what the sweep chose (nested)
    config: dict[str, Any]  # the full resolved kernel config (nested)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    model_path: str | None = None
    agent: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 1  # > 1: a re-run of a crashed, preempted or retried trial
    retry_of: str | None = None  # the attempt this one re-runs


def current(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs that count: an attempt that was re-run (``retry_of`` of a later one) is
    superseded by it. The engine, the report and ``status`` all count these."""
    retried = {r.retry_of for r in runs if r.retry_of}
    return [r for r in runs if r.id not in retried]


class Backend(Protocol):
    """Where sweeps are registered and trials claimed.

    Implementations are safe to use from several processes at once: ``claim`` hands a
    given trial to exactly one caller. One instance is used from one thread.
    """

    def create_sweep(self, spec: Any) -> str:
        """Register a validated ``Spec``; return the new sweep id."""

    def claim(self, sweep_id: str, agent: str) -> RunRecord | None:
        """Atomically take the sweep's next trial (state ``running``); None when done."""

    def log(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append history rows (each with ``_step``)."""

    def finish(
        self,
        run_id: str,
        state: str,
        *,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        model_path: str | None = None,
    ) -> None:
        """Record the end of a run."""

    def runs(self, sweep_id: str | None, *, history: bool = True) -> list[RunRecord]:
        """The sweep's runs, oldest first (``None``: standalone runs)."""
