"""Run one part of the report in a forked child process while the parent goes on.

The report's PNG figures take seconds of matplotlib rendering that need nothing the
CSVs, the interactive figures and the HTML page need, so on a machine with two cores
they are drawn in a child while the parent writes the rest (issue 17). The child is a
``fork`` of the parent: it sees the ``Study`` already in memory (copy-on-write, nothing
pickled on the way in) and sends back only its small result, pickled through a pipe.

Contract: ``Forked(fn)`` starts ``fn()`` at once; ``result()`` waits for it and gives
its return value, or raises the exception it raised, of the same class with the same
arguments and attributes (a ``UsageError`` stays a ``UsageError``); ``close()`` (or
leaving it as a context manager) ends a child whose result is no longer wanted (the
parent failed first). ``fn`` must not
touch what the parent holds open (the ledger's connection): it computes and writes
files. Where ``fork`` is not the platform's way (not Linux) or not allowed, ``fn``
runs inline in ``Forked(fn)`` (raising there) with the same outcome, not overlapped. Not
thread-safe: one thread starts and collects a ``Forked``, and no other thread of the
process should be drawing with matplotlib meanwhile (a lock it holds at the fork stays
held in the child).

``Awaiting(prepare, fn)`` is a child that starts at once, runs ``prepare()`` and then
waits for the argument of ``fn`` that the parent is still computing (``send``): the
report's statistics child imports scikit-learn and fits the importance forests while the
parent reads the histories, then tests the trends the parent classified.

``Tickets(n)`` hands out the numbers ``0 .. n-1`` once each to whichever of the parent
and the children it was made before asks next (a pipe holding them, read 2 bytes at a
time: a read that small is atomic), so that both share out a list of tasks.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from typing import Generic
from typing import Self
from typing import TypeVar

__all__ = ["Forked", "Awaiting", "Tickets", "can_fork"]

T = TypeVar("T")
A = TypeVar("A")
P = TypeVar("P")


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", (class, args, attributes, traceback text))``."""
    try:
        return "ok", fn()
    except BaseException as e:  # every failure goes back to the parent, as it was
        return "error", (type(e), e.args, dict(vars(e)), traceback.format_exc())


def _raise(
    cls: type[BaseException], args: tuple[Any, ...], attrs: dict[str, Any], where: str
) -> None:
    # Built without calling __init__ (SpecError's takes other arguments than its args).
    exc = cls.__new__(cls)
    exc.args = args
    vars(exc).update(attrs)
    exc.add_note(f"raised in the report's forked child process:\n{where}")
    raise exc


def can_fork() -> bool:
    """Whether a ``Forked`` forks: on Linux, in a process with no other thread. A fork
    copies only the calling thread, so a lock another thread held (logging's, an
    import's, a Jupyter kernel's or wandb's threads) would stay held in the child."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


class _Closing:
    """A context manager that calls ``close()`` on leaving."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class Forked(_Closing, Generic[T]):
    """``fn()`` running in a forked child (see the module doc)."""

    def __init__(self, fn: Callable[[], T], *, inline: bool = True) -> None:
        """``inline=False``: where this process cannot fork, run nothing (``forked``
        is False) rather than ``fn`` here."""
        self._pid: int | None = None
        self._fd: int | None = None
        self._done: tuple[str, Any] | None = None
        self.forked = self._spawn(fn)
        if not self.forked and inline:
            self._done = ("ok", fn())

    def _spawn(self, fn: Callable[[], T]) -> bool:
        """Start ``fn()`` in a child; False where this process cannot fork."""
        if not can_fork():
            return False
        read, write = os.pipe()
        try:
            with warnings.catch_warnings():
                # Python 3.12 warns on fork in a process with threads (BLAS's idle
                # pool); the child only computes with numpy and matplotlib, then _exits.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no process to spare: do it here
            os.close(read)
            os.close(write)
            return False
        if pid == 0:  # the child: never returns into the parent's code
            code = 0
            try:
                os.close(read)
                outcome = _outcome(fn)
                try:
                    data = pickle.dumps(outcome)
                except Exception as e:  # an unpicklable result or error: say so
                    why = e
                    data = pickle.dumps(_outcome(lambda: _unpicklable(outcome, why)))
                with os.fdopen(write, "wb") as pipe:
                    pipe.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._fd = pid, read
        return True

    def result(self) -> T:
        """``fn``'s return value, once the child has ended.

        Raises:
            BaseException: what ``fn`` raised; RuntimeError when the child died
                without an answer (killed, out of memory).
        """
        if self._done is None:
            self._done = self._collect()
        kind, value = self._done
        if kind == "error":
            _raise(*value)
        result: T = value
        return result

    def _collect(self) -> tuple[str, Any]:
        if self._pid is None or self._fd is None:
            raise RuntimeError("the report's child process was closed before its result")
        with os.fdopen(self._fd, "rb") as pipe:
            data = pipe.read()
        self._fd = None
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        if not data:
            raise RuntimeError(
                "the report's child process ended without a result "
                f"({_status(status)}); run the report again"
            )
        outcome: tuple[str, Any] = pickle.loads(data)
        return outcome

    def close(self) -> None:
        """End the child if it still runs (its result is not wanted)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self._pid, 0)
            self._pid = None


class Awaiting(_Closing, Generic[P, A, T]):
    """``fn(prepare(), arg)`` in a forked child that starts at once and runs ``prepare()``
    (say, an import and a fit of seconds) while the parent computes ``arg``;
    ``send(arg)`` hands it over (pickled, through a pipe: it waits for the child to read
    what a pipe cannot hold), ``result()`` and ``close()`` are ``Forked``'s. Without a
    fork, ``prepare()`` runs here at once and ``fn`` in ``send``. A child never sent
    anything ends when the ``Awaiting`` is closed."""

    def __init__(self, prepare: Callable[[], P], fn: Callable[[P, A], T]) -> None:
        self._fn = fn
        self._sent = False
        read, write = os.pipe()
        self._write: int | None = write
        self._job = Forked(lambda: _served(read, write, prepare, fn), inline=False)
        os.close(read)
        if not self._job.forked:  # here, then: prepare now, fn when sent
            os.close(write)
            self._write = None
            self._prepared = prepare()

    def send(self, arg: A) -> None:
        """Give the child ``arg`` (once)."""
        self._sent = True
        if not self._job.forked:  # inline: raising here, as Forked does
            self._value = self._fn(self._prepared, arg)
            return
        assert self._write is not None, "Awaiting.send() twice"
        write, self._write = self._write, None
        data = pickle.dumps(arg)
        # its length first: a child forked meanwhile holds this end too, so the reader
        # cannot wait for the end of the file
        with os.fdopen(write, "wb") as pipe:
            pipe.write(struct.pack("<Q", len(data)) + data)

    def result(self) -> T:
        """``fn``'s value, as ``Forked.result``."""
        if not self._sent:
            raise RuntimeError("Awaiting.result() before send()")
        return self._job.result() if self._job.forked else self._value

    def close(self) -> None:
        """End the child if it still runs (or still waits)."""
        if self._write is not None:
            os.close(self._write)
            self._write = None
        self._job.close()


def _served(read: int, write: int, prepare: Callable[[], P], fn: Callable[[P, A], T]) -> T:
    """In the child: ``prepare()``, then ``fn`` of it and what the parent sends."""
    os.close(write)  # the parent's end: its close is this end's end of file
    prepared = prepare()
    with os.fdopen(read, "rb") as pipe:
        head = pipe.read(8)
        data = pipe.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else b""
    if not data:
        raise RuntimeError("the report's child process was never sent its input")
    return fn(prepared, pickle.loads(data))


def _unpicklable(outcome: tuple[str, Any], why: Exception) -> Any:
    kind, value = outcome
    what = "result" if kind == "ok" else f"error {value[0].__name__}: {value[1]}"
    raise RuntimeError(f"the report's child process's {what} could not be sent back ({why})")


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


class Tickets:
    """The numbers ``0 .. n-1``, each taken once by whichever process iterates first
    (see the module doc); a context manager that closes its pipe."""

    _SIZE = struct.calcsize("<H")
    MAX = 2**15  # the tickets are written at once, so they must fit in a pipe (64 KiB)

    def __init__(self, n: int) -> None:
        if not 0 <= n <= self.MAX:
            raise ValueError(f"Tickets: 0 <= n <= {self.MAX} must hold, but got {n}")
        self._read, write = os.pipe()
        try:
            os.write(write, struct.pack(f"<{n}H", *range(n)))
        finally:
            os.close(write)  # so that a read of the drained pipe ends

    def __iter__(self) -> Iterator[int]:
        while data := os.read(self._read, self._SIZE):
            yield struct.unpack("<H", data)[0]

    def __enter__(self) -> Tickets:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self._read)
