"""Runs one script trial so that it dies with its agent, even when the agent is killed
with SIGKILL: ``python -I -S supervise.py AGENT_PID ARGV...``.

The agent starts this process as the leader of a process group of its own; it starts
ARGV in the same group and waits for it. When the agent dies, the kernel signals this
process (``PR_SET_PDEATHSIG`` on Linux; elsewhere it notices within a second that its
parent changed) and it kills the whole group: the script and every process the script
started. What the agent sends the group (SIGTERM to stop a run, SIGKILL after the kill
delay) reaches the script as before; this process outlives a SIGTERM and then exits as
the script did, so the agent sees the script's own exit status.

Standard library only, and run by path, not with ``-m``: it starts in tens of
milliseconds, where importing srsweep would cost half a second per trial.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h
ORPHANED = signal.SIGHUP  # what the kernel sends this process when the agent dies
POLL = 1.0  # seconds between checks of the parent where PR_SET_PDEATHSIG is missing
CANNOT_START = 127  # a shell's exit code for a command it cannot run


def _kill_group(*_: Any) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # this process too


def _die_with(parent: int) -> None:
    """Have the kernel send ``ORPHANED`` when ``parent`` dies (Linux), and die now if it
    died already (before the request was made)."""
    signal.signal(ORPHANED, _kill_group)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(ORPHANED), 0, 0, 0)
    except (AttributeError, OSError):  # not Linux: the wait loop checks the parent
        pass
    if os.getppid() != parent:
        _kill_group()


def _exit_as(code: int) -> None:
    """Exit with the script's status: its code, or death by the signal that ended it."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    _die_with(parent)
    # The agent's SIGTERM to the group is for the script; this process waits for it to
    # exit. (A handler, not SIG_IGN: an ignored signal would stay ignored in the script.)
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: None)
    try:
        proc = subprocess.Popen(command)
    except (OSError, ValueError) as e:
        print(f"cannot start the trial's command: {e}", file=sys.stderr)
        sys.exit(CANNOT_START)
    while True:
        try:
            code = proc.wait(POLL)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                _kill_group()
    _exit_as(code)


if __name__ == "__main__":
    main(sys.argv[1:])
