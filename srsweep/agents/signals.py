"""What runs beside a trial: the agent's signal handling and the heartbeat thread."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Protocol

from srsweep.errors import LeaseLostError

if TYPE_CHECKING:
    from types import FrameType

    from srsweep.backends._base import Backend

__all__ = ["Heartbeat", "Interrupted", "Signals", "deferred"]


class _Stoppable(Protocol):
    def request_stop(self, reason: str) -> None: ...


class Interrupted(KeyboardInterrupt):
    """A second SIGINT/SIGTERM: the agent ends now (the trial is recorded ``preempted``
    and queued again on the way out). ``signum`` gives the shell's exit code, 128 + it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """First SIGTERM/SIGINT: finish the step, save, mark the trial preempted, stop
    claiming (a script gets SIGTERM, as from W&B's agent). Second: exit at once (the
    ledger is consistent either way).

    ``current`` holds the runs in progress; whoever runs them sets and clears it."""

    def __init__(self) -> None:
        self.current: list[_Stoppable] = []
        self.received = 0
        self.signum: int | None = None  # the last signal received

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        self.signum = signum
        if self.received > 1:
            raise Interrupted(signum)
        for run in self.current:
            run.request_stop(f"preempted by {signal.Signals(signum).name}")

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
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a trial's outcome is written (its queued next
    attempt, its state), so that a second signal ends the agent only after the ledger has
    both; in the main thread only (where signals are handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a held signal is handled now


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
        except LeaseLostError as e:  # the trial's next write says so and ends it
            self.lost = str(e)
        finally:
            own.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
