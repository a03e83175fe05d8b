"""Agents as SLURM jobs, through submitit (``srsweep launch --slurm``): a job array of
``--jobs`` jobs, each running one agent per GPU it asks for (one srun task each), or one
agent when it asks for none, all on the same sweep and ledger.

submitit writes the batch script and pickles the call of ``run_job`` into
RESULTS/SWEEP_ID/slurm/JOB_ID/, where the jobs' logs go too; the ledger URL in that
pickle has no password (it reaches the jobs in ``PGPASSWORD``, through sbatch's
environment, or from the nodes' ``~/.pgpass``).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from srsweep import api
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError
from srsweep.launch.local import visible_gpus
from srsweep.launch.target import Target
from srsweep.launch.target import split_password
from srsweep.launch.target import thread_env
from srsweep.tracking import flush_wandb

__all__ = [
    "SlurmJob",
    "SlurmRequest",
    "parse_sbatch",
    "parse_time",
    "run_job",
    "sbatch_script",
    "submit",
]

DEFAULT_TIME_MIN = 60
# sbatch keys that srsweep launch sets: what to use instead
_RESERVED = {
    "partition": "--partition",
    "time": "--time",
    "cpus-per-task": "--cpus-per-job",
    "gpus-per-node": "--gpus-per-job",
    "ntasks-per-node": "--gpus-per-job (one agent per GPU)",
    "array": "--jobs",
    **{k: "srsweep launch itself" for k in ("nodes", "output", "error", "signal", "open-mode")},
}
_SBATCH_KEY = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


@dataclass(frozen=True)
class SlurmRequest:
    """What each SLURM job asks for: ``time_min`` in minutes, ``cpus_per_job`` split
    among its agents, ``sbatch`` more ``#SBATCH --KEY=VALUE`` lines (see
    ``parse_sbatch``).

    Raises:
        UsageError: a count out of range.
    """

    jobs: int = 1
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    time_min: int = DEFAULT_TIME_MIN
    partition: str | None = None
    sbatch: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs {self.jobs}: expected 1 or more")
        if self.gpus_per_job < 0:
            raise UsageError(f"--gpus-per-job {self.gpus_per_job}: expected 0 or more")
        if self.cpus_per_job is not None and self.cpus_per_job < self.tasks:
            raise UsageError(
                f"--cpus-per-job {self.cpus_per_job}: expected at least one per agent "
                f"({self.tasks} agents per job, one per GPU)"
            )
        if self.time_min < 1:
            raise UsageError(f"--time: expected at least one minute, got {self.time_min}")

    @property
    def tasks(self) -> int:
        """Agents per job: one per GPU, or one."""
        return max(1, self.gpus_per_job)


@dataclass(frozen=True)
class SlurmJob:
    """A submitted job: its id, the log of its first agent, and submitit's handle on it
    (``result()`` waits for the agent's last line; ``cancel()``)."""

    job_id: str
    log: Path
    handle: Any = field(repr=False, compare=False)


def parse_time(text: str) -> int:
    """A SLURM time limit (``MINUTES``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``) in whole minutes, rounded up."""
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise UsageError(
            f"--time {text!r}: expected MINUTES, HH:MM:SS or D-HH:MM:SS (as sbatch takes it)"
        )
    days, a, b, c = (int(g) if g is not None else 0 for g in m.groups())
    if m.group(1) is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + b * 60 + c
    elif m.group(4) is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    else:  # MM[:SS]
        seconds = a * 60 + b
    if seconds < 1:
        raise UsageError(f"--time {text!r}: expected a time limit above zero")
    return math.ceil(seconds / 60)


def parse_sbatch(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--sbatch KEY=VALUE`` items as sbatch keys (``mail_type`` is ``mail-type``) and
    their values; every malformed item, or key that another option sets, is named in
    one error."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().replace("_", "-")
        if not eq or not _SBATCH_KEY.fullmatch(key) or not value.strip():
            bad.append(f"--sbatch {item!r}: expected KEY=VALUE, e.g. --sbatch account=proj42")
        elif key in _RESERVED:
            bad.append(f"--sbatch {item!r}: {key} is set by {_RESERVED[key]}")
        else:
            out[key] = value.strip()
    if bad:
        raise UsageError("\n".join(bad))
    return out


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UsageError(
            "--slurm needs submitit; install it with pip install 'submitit>=1.5'"
        ) from None
    return submitit


def _parameters(target: Target, req: SlurmRequest) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for ``req``."""
    params: dict[str, Any] = {
        "job_name": f"srsweep-{target.sweep_id.replace('/', '_')}",
        "time": req.time_min,
        "nodes": 1,
        "ntasks_per_node": req.tasks,
        "array_parallelism": req.jobs,
        "additional_parameters": dict(req.sbatch),
    }
    if req.partition:
        params["partition"] = req.partition
    if req.gpus_per_job:
        params["gpus_per_node"] = req.gpus_per_job
    if req.cpus_per_job:
        params["cpus_per_task"] = req.cpus_per_job // req.tasks
    return params


def _threads(target: Target, req: SlurmRequest) -> dict[str, str]:
    """The thread variables each agent of a job takes (its share of the job's CPUs:
    SLURM may not pin a task to them); the job's own environment wins."""
    if not req.cpus_per_job:
        return {}
    packs_on_cpu = target.packs_on_cpu and not req.gpus_per_job
    return thread_env(req.cpus_per_job // req.tasks, packs_on_cpu, {})


def _folder(target: Target) -> Path:
    return target.folder.absolute() / "slurm" / "%j"


def sbatch_script(target: Target, req: SlurmRequest) -> str:
    """The batch script that ``submit`` hands to sbatch, as submitit writes it (no
    SLURM needed): the #SBATCH lines and the srun command that starts the agents."""
    submitit = _submitit()
    folder = _folder(target)
    # what SlurmExecutor runs in each task (its _submitit_command_str)
    command = " ".join(
        [shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))]
    )
    text = submitit.slurm.slurm._make_sbatch_string(
        command=command,
        folder=folder,
        map_count=req.jobs if req.jobs > 1 else None,
        **_parameters(target, req),
    )
    return str(text)


@contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``extra`` while jobs are submitted (sbatch and submitit's
    local executor hand it to the jobs), then as it was."""
    before = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def submit(target: Target, req: SlurmRequest, *, cluster: str = "slurm") -> list[SlurmJob]:
    """Submit ``req.jobs`` jobs (a job array) that each run ``req.tasks`` agents on
    ``target``. ``cluster="local"`` runs them as processes here instead (submitit's
    LocalExecutor; the SLURM-only requests are not applied).

    Raises:
        UsageError: no SLURM here, or no submitit.
        SrsweepError: sbatch refused the jobs (its message).
    """
    submitit = _submitit()
    folder = _folder(target)
    if cluster == "slurm":
        if shutil.which("sbatch") is None or shutil.which("srun") is None:
            raise UsageError(
                "--slurm: no SLURM here (sbatch and srun are not on PATH); "
                "--dry-run prints the batch script"
            )
        executor = submitit.SlurmExecutor(folder)
        executor.update_parameters(**_parameters(target, req))
    elif cluster == "local":
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(
            timeout_min=req.time_min, tasks_per_node=req.tasks, gpus_per_node=req.gpus_per_job
        )
    else:
        raise UsageError(f"cluster {cluster!r}: expected slurm or local")
    password = split_password(target.ledger)[1]
    job_target, threads = target.without_password(), _threads(target, req)
    try:
        with _environ({"PGPASSWORD": password} if password else {}):
            jobs = executor.map_array(run_job, [job_target] * req.jobs, [threads] * req.jobs)
    except (OSError, subprocess.SubprocessError, submitit.core.utils.FailedJobError) as e:
        raise SrsweepError(f"sbatch refused the jobs: {str(e).strip()}") from None
    return [SlurmJob(str(j.job_id), Path(j.paths.stdout), j) for j in jobs]


def run_job(target: Target, threads: dict[str, str]) -> str:
    """One agent of a submitted job (what submitit calls in each task). It takes its
    thread share (unless the job's environment sets them) and its own GPU of the job's
    (srun shows every task all of them), turns SLURM's warning before the time limit
    (SIGUSR2, 90 s ahead) into the agent's SIGTERM (save the trial, queue it again,
    stop), and runs the agent; its last line is returned."""
    for k, v in threads.items():
        os.environ.setdefault(k, v)
    gpus = visible_gpus()
    rank = int(os.environ.get("SLURM_LOCALID") or os.environ.get("SUBMITIT_LOCAL_LOCALID") or 0)
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[rank % len(gpus)]
    signal.signal(signal.SIGUSR2, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))

    def echo(line: str) -> None:
        print(line, flush=True)

    result = api.agent(
        target.sweep_id,
        pack=target.pack,
        count=target.count,
        results=target.results,
        ledger=target.ledger,
        echo=echo,
    )
    flush_wandb(echo)
    states = ", ".join(f"{n} {s}" for s, n in sorted(result.states.items())) or "no trials"
    line = f"agent done: {states} ({result.reason})"
    echo(line)
    if result.failed_fast:
        raise SrsweepError(f"sweep {target.sweep_id}: {result.reason}")
    return line
