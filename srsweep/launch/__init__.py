"""Starting agents where the work should run (``srsweep launch``): N agent processes on
this machine (``local``), or SLURM jobs submitted through submitit (``slurm``), each an
agent on the same sweep and ledger.

Agents on one machine split its cores: each gets ``max(1, cores // N)`` threads
(``SRSWEEP_THREADS`` for a CPU pack, else one torch thread; ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` the share; a variable the user set wins). OpenMP threads that wait on
a descheduled sibling make an oversubscribed node far slower than one thread each: an
``sd`` ``--pack 8`` on a loaded 2-core machine took 172 s on the default threads, 19 s on
one. With GPUs visible, agent K gets the K-th of them (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

from srsweep.errors import SrsweepError
from srsweep.errors import UsageError
from srsweep.launch.local import LocalAgent
from srsweep.launch.local import agent_command
from srsweep.launch.local import plan
from srsweep.launch.local import shown
from srsweep.launch.local import start_local
from srsweep.launch.local import wait_local
from srsweep.launch.slurm import DEFAULT_TIME_MIN
from srsweep.launch.slurm import SlurmJob
from srsweep.launch.slurm import SlurmRequest
from srsweep.launch.slurm import parse_sbatch
from srsweep.launch.slurm import parse_time
from srsweep.launch.slurm import sbatch_script
from srsweep.launch.slurm import submit
from srsweep.launch.target import Target
from srsweep.launch.target import open_target

__all__ = [
    "LocalAgent",
    "SlurmJob",
    "SlurmRequest",
    "Target",
    "launch",
    "open_target",
    "parse_sbatch",
    "parse_time",
    "sbatch_script",
    "start_local",
    "submit",
    "wait_local",
]


def _agent_count(local: str) -> int | None:
    """``--local``'s value: a number of agents, or None for ``auto``."""
    if local.strip() == "auto":
        return None
    n = int(local) if local.strip().isdigit() else 0
    if n < 1:
        raise UsageError(f"--local {local!r}: expected a number of agents (1 or more) or 'auto'")
    return n


def launch(
    sweep_id: str,
    *,
    results: Path,
    ledger: str | None = None,
    local: str | None = None,
    slurm: bool = False,
    pack: int | None = None,
    count: int | None = None,
    detach: bool = False,
    dry_run: bool = False,
    jobs: int | None = None,
    gpus_per_job: int | None = None,
    cpus_per_job: int | None = None,
    time: str | None = None,
    partition: str | None = None,
    sbatch: tuple[str, ...] | list[str] = (),
    echo: Callable[[str], None] = print,
) -> None:
    """Check the flags and the sweep, then start agents on this machine (``local``: a
    number, or "auto": one per GPU, else one per core) or submit SLURM jobs, saying
    where they run and where their logs go. Waits for local agents unless ``detach``;
    ``dry_run`` says what it would start (for SLURM, the batch script) and starts
    nothing.

    Args:
        jobs, gpus_per_job, cpus_per_job, partition: per SLURM job (``SlurmRequest``).
        time: a SLURM time limit per job (``parse_time``); default one hour.
        sbatch: more ``KEY=VALUE`` sbatch options (``parse_sbatch``).

    Raises:
        UsageError: the flags do not fit together, or the sweep is unknown.
        SrsweepError: an agent failed, or sbatch refused the jobs.
    """
    if (local is None) == (not slurm):
        raise UsageError("srsweep launch: choose one of --local N|auto (this machine) or --slurm")
    flags = (jobs, gpus_per_job, cpus_per_job, time, partition)
    if local is not None and (any(f is not None for f in flags) or sbatch):
        raise UsageError(
            "--jobs, --gpus-per-job, --cpus-per-job, --time, --partition and "
            "--sbatch go with --slurm, not --local"
        )
    if slurm and detach:
        raise UsageError("--detach goes with --local (SLURM jobs always run detached)")
    if local is not None:
        n = _agent_count(local)
        target, _ = open_target(sweep_id, results, ledger, pack, count)
        _local(target, n, detach=detach, dry_run=dry_run, echo=echo)
        return
    req = SlurmRequest(
        jobs=1 if jobs is None else jobs,
        gpus_per_job=gpus_per_job or 0,
        cpus_per_job=cpus_per_job,
        time_min=DEFAULT_TIME_MIN if time is None else parse_time(time),
        partition=partition,
        sbatch=parse_sbatch(sbatch),
    )
    target, sqlite = open_target(sweep_id, results, ledger, pack, count)
    if sqlite is not None:
        echo(
            f"warning: the ledger is the SQLite file {sqlite}: agents on several nodes "
            "share it safely only where the shared file system's locks hold (often not "
            "on NFS or Lustre); use a server: --ledger postgresql://USER@HOST:PORT/DB"
        )
    if dry_run:
        echo(sbatch_script(target, req))
        return
    submitted = submit(target, req)
    each = f", {req.tasks} agents each (one per GPU)" if req.tasks > 1 else ""
    echo(
        f"submitted {len(submitted)} SLURM job(s) on sweep {sweep_id}{each}: "
        + " ".join(j.job_id for j in submitted)
    )
    first = submitted[0].log
    echo(f"logs: {first.parent.parent}/JOB_ID/JOB_ID_TASK_log.out (first: {first})")
    echo(f"follow them with: srsweep status {sweep_id}")


def _local(
    target: Target, n: int | None, *, detach: bool, dry_run: bool, echo: Callable[[str], None]
) -> None:
    if dry_run:
        command = shlex.join(agent_command(target))
        for k, env in enumerate(plan(target, n, os.environ)):
            echo(f"agent {k}: {shown(env)} {command}")
        return
    agents = start_local(target, n)
    for a in agents:
        echo(f"agent {a.index}: pid {a.process.pid} {shown(a.env)} -> {a.log}")
    if detach:
        pids = " ".join(str(a.process.pid) for a in agents)
        echo(
            f"started {len(agents)} agent(s) on sweep {target.sweep_id}; stop them with "
            f"kill {pids} (or srsweep stop {target.sweep_id})"
        )
        return
    echo(f"waiting for {len(agents)} agent(s); Ctrl-C stops them once their trials are saved")
    codes = wait_local(agents, echo)
    # 130/143 (or killed by SIGINT/SIGTERM): stopped by a signal, its trial queued again
    bad = {k: c for k, c in codes.items() if c not in (0, 130, 143, -2, -15)}
    if bad:
        raise SrsweepError(
            f"{len(bad)} of {len(agents)} agent(s) failed: "
            + ", ".join(f"agent {k} (exit {c}, see {agents[k].log})" for k, c in bad.items())
        )
