"""The one exception family srsweep raises on purpose.

The CLI maps ``UsageError`` subclasses to exit code 2 (the user's input is wrong),
``EnvironmentFault`` to 3 (the machine: disk, permissions, a ledger changed under it)
and every other ``SrsweepError`` to exit code 1 (something failed at run time). None
prints a traceback.
"""

from __future__ import annotations


class SrsweepError(Exception):
    """Base class of every error srsweep raises deliberately."""

    exit_code = 1


class UsageError(SrsweepError):
    """The user's input (file, flag, key or id) is not acceptable."""

    exit_code = 2


class SpecError(UsageError):
    """A sweep spec or kernel config violates the schema or the kernel's rules."""

    def __init__(self, source: str, violations: list[str]) -> None:
        self.source = source
        self.violations = list(violations)
        lines = [f"{source}: {v}" for v in self.violations]
        super().__init__("\n".join(lines))


class EngineError(UsageError):
    """The search engine (``sweeps``) cannot search a spec; the message says why."""


class NotFoundError(UsageError):
    """A sweep, run or kernel named by the user does not exist."""


class CorruptFileError(UsageError):
    """A results file (model file, ledger) cannot be read back."""


class UnsafeFileError(CorruptFileError):
    """A model file holds a type that srsweep does not unpickle (it could run code)."""


class KernelFailed(SrsweepError):
    """A kernel stopped a run on purpose, e.g. on a NaN loss; the message says why."""


class LeaseLostError(SrsweepError):
    """The ledger gave a trial to another agent (its lease ran out): the old holder's
    writes about it are refused, so nothing is recorded over the new attempt."""


class EnvironmentFault(SrsweepError):
    """The machine, not the input, stops srsweep: a full disk, a read-only file system,
    files changed under it. Exit code 3."""

    exit_code = 3


class LedgerLostError(EnvironmentFault):
    """The ledger an agent opened was deleted, replaced, truncated or corrupted while it
    ran: the agent stops at once rather than report runs the ledger does not hold."""


class LedgerUnreachableError(EnvironmentFault):
    """The connection to a server ledger was lost and did not come back within the retry
    window (``SRSWEEP_DB_RETRY``): the agent stops; what it held is queued again later."""
