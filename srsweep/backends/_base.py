"""The ledger contract: where sweeps, claimed trials and their metrics live."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Hashable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

if TYPE_CHECKING:
    from numpy.typing import NDArray

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
    state: str  # "active" | "stopped" | "finished"
    seed: int
    created_at: float
    counts: dict[str, int] = field(default_factory=dict)  # runs by state
    remote: str | None = None  # ENTITY/PROJECT/SWEEP_ID when registered on a W&B server
    reason: str | None = None  # why it is finished or stopped


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
    """Where sweeps are registered, trials claimed and their metrics kept.

    Implementations are safe to use from several processes at once: ``claim`` hands a
    given trial to exactly one caller. One instance is used from one thread; a thread
    of its own (the heartbeat) takes ``reopen()``. Unknown ids raise ``NotFoundError``.
    Writes about a trial (``heartbeat``, ``log``, ``finish``) are accepted only while its
    attempt is ``running``: once its lease was taken over they raise ``LeaseLostError``.
    """

    lease_timeout: float  # seconds without a heartbeat before a running trial is lost
    max_retries: int  # lost (crashed) attempts of a trial before it counts as failed

    @property
    def location(self) -> str:
        """Where the ledger is, for messages (a path or a URL, no secrets)."""

    def reopen(self) -> Backend:
        """A new handle on the same ledger, for use from another thread."""

    def close(self) -> None:
        """Release connections; the instance may be used again (it reconnects)."""

    # -- sweeps
    def create_sweep(self, spec: Any, remote: str | None = None) -> str:
        """Register a validated ``Spec``; return the new sweep id."""

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, oldest first, with run counts by state."""

    def sweep(self, sweep_id: str) -> SweepRecord:
        """One sweep, with run counts by state."""

    def set_sweep_state(self, sweep_id: str, state: str, reason: str | None = None) -> None:
        """``active`` (trials are handed out), ``stopped`` or ``finished``, and why."""

    # -- trials
    def claim(self, sweep_id: str, agent: str) -> RunRecord | None:
        """Atomically take the sweep's next trial (a queued re-run first, else the
        engine's next suggestion), now ``running`` for ``agent``; None when the sweep is
        exhausted or stopped. Running trials whose heartbeat is older than
        ``lease_timeout`` are marked ``crashed`` and queued again first."""

    def claim_pack(
        self,
        sweep_id: str,
        agent: str,
        n: int,
        *,
        key: Callable[[dict[str, Any]], Hashable],
        candidates: int,
    ) -> list[RunRecord]:
        """Atomically take up to ``n`` trials, as ``claim`` takes one, that share ``key``
        (of a trial's params: the kernel's pack key) as far as they can: queued re-runs
        first, then ``engine.suggest_packed`` of up to ``candidates`` suggestions, which
        drops those it does not take (none is registered; a grid suggests its points
        again later). [] where ``claim`` gives None."""

    def start_run(self, kernel: str, config: dict[str, Any], agent: str) -> RunRecord:
        """Register a standalone run (no sweep), already running."""

    def heartbeat(self, run_ids: list[str]) -> None:
        """Mark the agent of these runs alive now."""

    def agents_on(self, host: str) -> list[str]:
        """The agents of ``host`` (named ``HOST-PID``, ``HOST-PID-slurmJOB``) that hold a
        running trial whose lease is live, sorted: those an agent there shares the cores
        with. Empty where the ledger does not hand out the trials (a W&B server)."""

    def log(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Append history rows (each with ``_step``)."""

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        """Store the run's full resolved config."""

    def finish(
        self,
        run_id: str,
        state: str,
        *,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        model_path: str | None = None,
        requeue: bool = False,
    ) -> None:
        """Record the end of a run (``state`` one of ``TERMINAL``); with ``requeue``, queue
        its next attempt in the same transaction (as ``requeue`` does), so that no agent
        dies between the two. LeaseLostError when the run is not running (neither is
        written)."""

    def requeue(self, run_id: str) -> str | None:
        """Queue a new attempt of ``run_id``'s trial; its id, or None if already queued."""

    def retry(self, sweep_id: str, states: tuple[str, ...]) -> list[str]:
        """Queue a new attempt of every run in ``states`` not yet re-run; their ids."""

    # -- reading
    def run(self, run_id: str) -> RunRecord:
        """One run, with its history."""

    def runs(self, sweep_id: str | None, *, history: bool = True) -> list[RunRecord]:
        """The sweep's runs, oldest first (``None``: standalone runs)."""

    def history_columns(
        self, run_ids: list[str], keys: list[str] | None = None
    ) -> dict[str, dict[str, NDArray[Any]]]:
        """The runs' histories as columns, for reading many runs at once.

        Args:
            run_ids: Runs as ``runs`` returned them.
            keys: Only these metrics (and ``_step``); None: every logged key.

        Returns:
            Per run id, one array per key, one value per logged row in logging order:
            numbers as float64 with NaN where a row did not log the key (int64 or bool
            when every row did), anything else as objects with None there. A run that
            logged nothing maps to ``{}``; a key it never logged is left out.
        """

    def last_logged(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per run id, the last value of each logged key (but ``_step``) that is not
        None: what a run's summary would say had it ended normally."""


@runtime_checkable
class ServerAgents(Protocol):
    """A backend whose server hands trials to agents of its own (a W&B server): there
    ``claim`` is not offered and agents run through ``run_server_agent``."""

    def run_server_agent(
        self, sweep_id: str, count: int | None, function: Callable[[], Any] | None = None
    ) -> int:
        """Run the server's agent on ``sweep_id`` for up to ``count`` trials (each a call
        of ``function`` in this process, when given); its exit code."""
