"""What runs beside a trial: the agent's signal handling and the heartbeat thread."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Protocol

from srsweep.errors import LeaseLostError
from srsweep.errors import LedgerUnreachableError

if TYPE_CHECKING:
    from types import FrameType

    from srsweep.backends._base import Backend

__all__ = ["Heartbeat", "Signals", "training"]


class _Stoppable(Protocol):
    def request_stop(self, reason: str) -> None: ...


class Signals:
    """How an agent stops on SIGTERM or SIGINT without losing the trial it runs.

    The first signal asks the trials in training to stop at their next step (each saves,
    ends ``preempted`` and is queued again) and the agent to claim no more. A second
    one ends the step at once: a ``KeyboardInterrupt`` raised in the training code,
    which the trial catches to record itself ``preempted``; it is raised only inside
    ``training``, never while an outcome or a queued attempt is being written, so every
    sequence of signals leaves the trial recorded and queued. ``first`` is the first
    signal's number: the agent exits with 128 + it, as a shell reports a signalled
    process (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self) -> None:
        self.current: list[_Stoppable] = []  # the runs in training (see ``training``)
        self.received = 0
        self.first: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.first is None:
            self.first = signum
        training, name = self.current, signal.Signals(signum).name
        if self.received == 1:
            for run in training:
                run.request_stop(f"preempted by {name}")
        elif training:
            self.current = []  # once: a third signal must not cut short the recording
            raise KeyboardInterrupt(f"interrupted by a second signal ({name})")

    @contextmanager
    def training(self, runs: list[_Stoppable]) -> Iterator[None]:
        """Mark ``runs`` in training for the block: the only place a second signal
        raises ``KeyboardInterrupt``; the caller catches it outside the block. Runs that
        start after a signal are asked to stop at once."""
        self.current = list(runs)
        if self.first is not None:
            for run in runs:
                run.request_stop(f"preempted by {signal.Signals(self.first).name}")
        try:
            yield
        finally:
            self.current = []

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread receives signals (an agent in a thread)
            return
        old = {s: signal.signal(s, self.handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


@contextmanager
def training(signals: Signals | None, runs: list[_Stoppable]) -> Iterator[None]:
    """``signals.training(runs)``, or nothing when no signals are handled."""
    if signals is None:
        yield
    else:
        with signals.training(runs):
            yield


class Heartbeat:
    """Marks runs alive in the ledger from a thread of its own until ``stop``, so a
    kernel busy in a long step is not mistaken for a dead agent. It beats every quarter
    of the ledger's lease (at most every 10 s), on a handle of its own
    (``backend.reopen()``: a connection stays in the thread that opened it)."""

    def __init__(self, backend: Backend, run_ids: list[str]) -> None:
        self._stop = threading.Event()
        self.lost: str | None = None  # why the lease was lost, once it was
        every = min(10.0, backend.lease_timeout / 4)
        self._thread = threading.Thread(
            target=self._beat, args=(backend, run_ids, every), daemon=True, name="srsweep-heartbeat"
        )
        self._thread.start()

    def _beat(self, backend: Backend, run_ids: list[str], every: float) -> None:
        own = backend.reopen()
        try:
            while not self._stop.wait(every):
                own.heartbeat(run_ids)
        except (LeaseLostError, LedgerUnreachableError) as e:  # the trial's next write
            self.lost = str(e)  # says so too, and ends it (or stops the agent)
        finally:
            own.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
