"""Agents as processes on this machine (``srsweep launch --local N``): one per GPU or per
core by default, each with its share of the cores and its GPU, logging to a file."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from srsweep.errors import SrsweepError
from srsweep.launch.target import Target
from srsweep.launch.target import ledger_env
from srsweep.launch.target import thread_env

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "LocalAgent",
    "agent_command",
    "cores",
    "local_envs",
    "start_local",
    "visible_gpus",
    "wait_local",
]


@dataclass
class LocalAgent:
    """An agent process started on this machine."""

    index: int
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]  # what the launch set for it (threads, GPU)


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs agents may use: ``CUDA_VISIBLE_DEVICES``'s entries when it is set (up to
    the first negative one, where CUDA stops reading it), else the indices of those
    ``nvidia-smi -L`` lists (torch is not imported for this)."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        entries = [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return list(itertools.takewhile(lambda g: not g.startswith("-"), entries))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


def local_envs(
    n: int, *, ncores: int, gpus: list[str], packs_on_cpu: bool, environ: Mapping[str, str]
) -> list[dict[str, str]]:
    """What each of ``n`` agents on this machine gets set: ``max(1, ncores // n)``
    threads, and with GPUs one each (round robin when agents outnumber them; a GPU
    agent's packs run on the GPU, so it keeps one torch thread)."""
    share = max(1, ncores // n)
    envs = []
    for k in range(n):
        env = thread_env(share, packs_on_cpu and not gpus, environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]
        envs.append(env)
    return envs


def agent_command(target: Target) -> list[str]:
    """The command line of one agent process."""
    return [sys.executable, "-m", "srsweep", *target.agent_args()]


def plan(
    target: Target, n: int | None, environ: Mapping[str, str] = os.environ
) -> list[dict[str, str]]:
    """The variables each agent gets; ``n`` None: one agent per visible GPU, else per core."""
    gpus = visible_gpus(environ)
    n = n if n is not None else len(gpus) or cores()
    return local_envs(
        n, ncores=cores(), gpus=gpus, packs_on_cpu=target.packs_on_cpu, environ=environ
    )


def start_local(
    target: Target, n: int | None = None, *, environ: Mapping[str, str] = os.environ
) -> list[LocalAgent]:
    """Start ``n`` agents (see ``plan``), each ``python -m srsweep agent`` in a session
    of its own, so that a terminal's Ctrl-C reaches them only through ``wait_local``
    (and ``--detach``ed ones outlive the terminal); each logs to
    RESULTS/SWEEP_ID/logs/agent-K.log (appended: an earlier launch's agents may still
    write there)."""
    logs = target.folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = agent_command(target)
    agents: list[LocalAgent] = []
    try:
        for k, extra in enumerate(plan(target, n, environ)):
            log = logs / f"agent-{k}.log"
            with log.open("ab") as out:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                out.write(f"== {stamp} {shown(extra)} {shlex.join(command)}\n".encode())
                out.flush()
                env = {**environ, **ledger_env(target.ledger), **extra, "PYTHONUNBUFFERED": "1"}
                proc = subprocess.Popen(
                    command,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            agents.append(LocalAgent(k, proc, log, extra))
    except OSError as e:
        terminate(agents)
        raise SrsweepError(f"cannot start agent {len(agents)}: {e}") from None
    return agents


def shown(env: Mapping[str, str]) -> str:
    """``KEY=VALUE ...``, for the lines that say what an agent got."""
    return " ".join(f"{k}={v}" for k, v in env.items())


def terminate(agents: list[LocalAgent]) -> int:
    """SIGTERM to each agent still running; how many there were."""
    live = [a for a in agents if a.process.poll() is None]
    for a in live:
        a.process.send_signal(signal.SIGTERM)
    return len(live)


def wait_local(agents: list[LocalAgent], echo: Callable[[str], None] = print) -> dict[int, int]:
    """Wait for the agents, saying when each ends; Ctrl-C or SIGTERM here sends SIGTERM
    to each (the first preempts its trial, a second stops it at once). Returns each
    agent's exit code by index."""
    codes: dict[int, int] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        n = terminate(agents)
        echo(
            f"{signal.Signals(signum).name}: sent SIGTERM to {n} agent(s); they stop once "
            "their trials are saved (again: at once)"
        )

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while len(codes) < len(agents):
            for a in agents:
                code = None if a.index in codes else a.process.poll()
                if code is not None:
                    codes[a.index] = code
                    echo(f"agent {a.index} (pid {a.process.pid}) exited with code {code}")
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return codes
