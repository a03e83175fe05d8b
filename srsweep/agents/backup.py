"""An agent's periodic backup of its SQLite ledger (``srsweep agent --backup-every``).

A thread of its own copies the ledger with SQLite's online backup (``LocalBackend.backup``:
agents go on writing meanwhile) every so many minutes, and once more when the agent
stops, to one file beside the ledger that each copy replaces atomically. A copy that
fails (the ledger gone or damaged, a full disk) is said and leaves the last good copy.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from srsweep.backends.local import LocalBackend
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.backends._base import Backend

__all__ = ["Backups", "backed_up", "backup_target"]


def backup_target(backend: Backend, minutes: float) -> tuple[LocalBackend, Path]:
    """The SQLite ledger ``--backup-every`` copies, and where: ``srsweep.backup.db``
    beside ``srsweep.db``. UsageError for a period that is not a positive number of
    minutes, or a ledger that is not an SQLite file."""
    if not (isinstance(minutes, int | float) and math.isfinite(minutes) and minutes > 0):
        raise UsageError(f"--backup-every: expected a positive number of minutes, got {minutes}")
    if not isinstance(backend, LocalBackend):
        raise UsageError(
            f"--backup-every: {backend.location} is not an SQLite ledger; back a server's "
            "ledger up with its own tools (pg_dump), or `srsweep ledger copy` it to a file"
        )
    return backend, backend.path.with_suffix(".backup" + backend.path.suffix)


class Backups:
    """Copies ``backend``'s ledger (see ``backup_target``) every ``minutes`` from a
    thread of its own, on a handle of its own (a connection stays in its thread), until
    ``stop``; each copy, or its failure, is one line on ``echo``."""

    def __init__(self, backend: Backend, minutes: float, echo: Callable[[str], None]) -> None:
        self.ledger, self.to = backup_target(backend, minutes)
        self.echo = echo
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._every, args=(minutes * 60,), daemon=True, name="srsweep-backup"
        )
        self._thread.start()

    def _every(self, seconds: float) -> None:
        own = self.ledger.reopen()
        try:
            while not self._stop.wait(seconds):
                self._copy(own)
        finally:
            own.close()

    def _copy(self, ledger: LocalBackend) -> None:
        try:
            ledger.backup(self.to)
        except (SrsweepError, OSError) as e:
            self.echo(f"backup of {ledger.path} failed ({e}); the last copy is kept")
            return
        self.echo(f"backed up {ledger.path} to {self.to} at {time.strftime('%H:%M:%S')}")

    def stop(self, *, last: bool) -> None:
        """End the thread; with ``last``, copy once more (the agent's final state)."""
        self._stop.set()
        self._thread.join()
        if last:
            self._copy(self.ledger)


@contextmanager
def backed_up(
    backend: Backend, minutes: float | None, echo: Callable[[str], None]
) -> Iterator[None]:
    """``Backups`` for the block (none when ``minutes`` is None), with a last copy when
    the block ends without an error (an error may be the ledger's own loss)."""
    if minutes is None:
        yield
        return
    backups = Backups(backend, minutes, echo)
    try:
        yield
    except BaseException:
        backups.stop(last=False)
        raise
    backups.stop(last=True)
