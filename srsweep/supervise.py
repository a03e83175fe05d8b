"""A script trial's supervisor: ``python -m srsweep.supervise AGENT_PID -- ARGV...``.

The agent starts each script trial through this small process, in a process group of
its own. It runs ARGV in that group and waits. Should the agent die, even by
``kill -9``, the kernel tells the supervisor (``PR_SET_PDEATHSIG``), which then kills
the whole group, the script and every process it started, so no trial runs on
unsupervised while the ledger hands its point to another agent. The agent's own
SIGTERM/SIGINT to the group reach the script as before; the supervisor outlives them
to report the script's exit, which it passes on as its own (a signal as that signal).

Standard library only: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
_ORPHANED = signal.SIGUSR1  # what the kernel sends this process when the agent dies


def _on_orphaned(_signum: int, _frame: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # the script, its children, and this process


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m srsweep.supervise AGENT_PID -- ARGV...", file=sys.stderr)
        return 2
    agent, command = int(argv[0]), argv[2:]
    signal.signal(_ORPHANED, _on_orphaned)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(_ORPHANED), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the lease still finds a dead agent
        pass
    if os.getppid() != agent:  # the agent died before the request took effect
        return 137
    for sig in (signal.SIGTERM, signal.SIGINT):  # meant for the script; it reports them
        signal.signal(sig, lambda *_: None)  # (caught, not ignored: the script gets defaults)
    try:
        proc = subprocess.Popen(command)
    except OSError as e:
        print(f"cannot start the trial's command: {e}", file=sys.stderr)
        return 127
    while True:
        try:
            code = proc.wait()
            break
        except InterruptedError:
            continue
    if code < 0:  # end as the script ended: by its signal
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
