"""The agent's loop: claim trials, run each kernel trial (alone or packed) or script
trial, record the outcome, repeat; and ``run_single``, one run outside any sweep.

The agent moves on to the next trial after a failure, queues a preempted trial again,
and stops when the sweep is exhausted or stopped, on a signal, after ``count`` trials,
or when trials keep failing right away. A sweep whose program is a script runs each
trial in a process of its own, as W&B's agent would (``scripts``).
"""

from __future__ import annotations

import collections
import difflib
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import config as _config
from srsweep import engine
from srsweep import kernels
from srsweep.agents.backup import backed_up
from srsweep.agents.eta import SweepEta
from srsweep.agents.function import execute_function
from srsweep.agents.packing import candidates
from srsweep.agents.packing import groups
from srsweep.agents.packing import pack_size
from srsweep.agents.packing import params_key
from srsweep.agents.scripts import execute_script
from srsweep.agents.signals import Signals
from srsweep.agents.trial import execute
from srsweep.agents.trial import outcome_line
from srsweep.agents.trial import params_line
from srsweep.agents.trial import record_outcome
from srsweep.agents.trial import resolved
from srsweep.errors import UsageError
from srsweep.limits import grid_points
from srsweep.spec import SCRIPT
from srsweep.spec import command_text
from srsweep.spec import objective
from srsweep.spec import swept_keys

if TYPE_CHECKING:
    from srsweep.agents.trial import Echo
    from srsweep.backends._base import Backend
    from srsweep.backends._base import RunRecord

__all__ = ["AgentResult", "agent_name", "run_agent", "run_single"]

# the W&B agent's rule: stop when trials keep failing right away (a broken setup)
FAIL_LIMIT = 5
FAIL_WINDOW = 60.0
_STARTED = ("finished", "failed", "stopped", "running")  # a trial of these states has begun
_AGENT_KEYS = ("runtime", "nonfinite")  # summary keys the agent adds to a script's own


@dataclass
class AgentResult:
    """What one agent did: runs by final state, and why it stopped."""

    states: collections.Counter[str] = field(default_factory=collections.Counter)
    reason: str = ""
    runs: list[str] = field(default_factory=list)
    failed_fast: bool = False  # stopped because trials kept failing
    signal: int | None = None  # the signal that stopped it (exit code 128 + signal)


def agent_name() -> str:
    """This agent in the ledger: host and process id, and in a SLURM job its id as
    squeue shows it (``host-pid-slurm123``, ``host-pid-slurm123_4`` in a job array)."""
    name, env = f"{socket.gethostname()}-{os.getpid()}", os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{name}-slurm{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return f"{name}-slurm{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else name


def run_agent(
    backend: Backend,
    sweep_id: str,
    *,
    results: Path,
    count: int | None = None,
    pack: int | None = None,
    function: Callable[[], Any] | None = None,
    backup_every: float | None = None,
    echo: Echo = print,
) -> AgentResult:
    """Claim and run trials of ``sweep_id`` until it is exhausted, stopped, or ``count``
    trials have run. With ``pack`` > 1, claim that many at a time, those that share a
    shape first (of more suggestions than it claims), and train those that share a shape
    as one batched model (each is still its own run). With ``function``,
    each trial is a call of it in this process instead of the sweep's program
    (``wandb.agent(function=...)``). With ``backup_every``, an SQLite ledger is copied
    every so many minutes and when the agent stops (``agents.backup``)."""
    sweep = backend.sweep(sweep_id)
    kernel = None if sweep.kernel == SCRIPT or function else kernels.get(sweep.kernel)
    metric, _ = objective(sweep.spec, kernel)
    project = str(sweep.spec.get("project") or "srsweep")
    agent = agent_name()
    result = AgentResult()
    signals = Signals()
    failures: list[float] = []
    swept = swept_keys(sweep.spec)
    if (
        kernel is None
        and function is None
        and not sweep.spec.get("program")
        and "${program}" in command_text(sweep.spec)
    ):
        raise UsageError(
            f"sweep {sweep_id} names no program for its command to run: run its trials as "
            "a function from Python (srsweep.agent(sweep_id, function=train)), or create "
            "it again with a program or a command"
        )
    if kernel is None and pack is not None and pack > 1:
        echo("note: a script or function sweep runs its trials one by one")
    pack = 1 if kernel is None else pack_size(kernel, pack, echo)
    key = None if kernel is None else params_key(kernel)

    def check(run_id: str) -> str | None:
        stop = engine.to_stop(sweep.spec, backend.runs(sweep_id))
        return "early-terminated by the sweep's early_terminate rule" if run_id in stop else None

    early = "early_terminate" in sweep.spec and "metric" in sweep.spec
    stop_check = check if early else None

    def run_claimed(claimed: list[RunRecord]) -> None:
        """Run the claimed trials, each recording its outcome in the ledger."""
        if function is not None:
            for r in claimed:
                execute_function(
                    backend,
                    r,
                    sweep.spec,
                    function,
                    results=results,
                    echo=echo,
                    stop_check=stop_check,
                    signals=signals,
                )
        elif kernel is None:
            for r in claimed:
                execute_script(
                    backend,
                    r,
                    sweep.spec,
                    Path(sweep.source).parent,
                    results=results,
                    echo=echo,
                    stop_check=stop_check,
                    signals=signals,
                    eta=eta,
                )
        else:
            for group in groups(kernel, claimed):
                if len(group) > 1:
                    echo(f"  packing {len(group)} trials: {' '.join(r.name for r in group)}")
                execute(
                    backend,
                    group,
                    kernel,
                    results=results,
                    project=project,
                    echo=echo,
                    source=f"sweep {sweep_id}",
                    stop_check=stop_check,
                    signals=signals,
                    eta=eta,
                )

    eta, size = SweepEta(pack=pack), _size(sweep.spec)
    # a kernel's metric is checked when the sweep is created; a script's only here
    warned = kernel is not None or not metric
    with signals.installed(), backed_up(backend, backup_every, echo):
        while count is None or len(result.runs) < count:
            if signals.received:
                break
            want = pack if count is None else min(pack, count - len(result.runs))
            claimed: list[RunRecord] = []
            if want > 1 and key is not None:  # those that share a pack key, in one claim
                pool = candidates(sweep.spec, want)
                claimed = backend.claim_pack(sweep_id, agent, want, key=key, candidates=pool)
            else:
                while len(claimed) < want and (r := backend.claim(sweep_id, agent)) is not None:
                    claimed.append(r)
            if not claimed:
                now = backend.sweep(sweep_id)
                result.reason = {"active": "sweep exhausted", "stopped": "sweep stopped"}.get(
                    now.state, f"sweep {now.state}: {now.reason}"
                )
                break
            for r in claimed:
                result.runs.append(r.id)
                n = f"{len(result.runs)}" + (f"/{count}" if count else "")
                echo(f"[{n}] {r.name} ({r.id}) {params_line(r.params, swept)}")
            eta.waiting = _waiting(backend, sweep_id, size, count, len(result.runs))
            try:
                run_claimed(claimed)
            except KeyboardInterrupt:  # not through the handler (e.g. raised in a function)
                result.reason, result.signal = "interrupted", signal.SIGINT
            for record in claimed:
                if record.state == "running":  # claimed, not started: give it back
                    error = "not started: the agent was interrupted"
                    record_outcome(backend, record, "preempted", error=error)
                    record.state = "preempted"
                result.states[record.state] += 1
                echo(outcome_line(record, metric))
                runtime = record.summary.get("runtime")
                if record.state == "finished" and isinstance(runtime, (int, float)):
                    eta.durations.append(float(runtime))
                if not warned and (warning := _unlogged_metric(record, metric, sweep.source)):
                    echo(warning)
                    warned = True
                if record.state == "preempted":  # (its next attempt is queued already)
                    echo(f"  {record.name} queued again")
                failures = (
                    failures[-FAIL_LIMIT + 1 :] + [time.monotonic()]
                    if record.state == "failed"
                    else []
                )
                if len(failures) == FAIL_LIMIT and failures[-1] - failures[0] <= FAIL_WINDOW:
                    result.reason = (
                        f"{len(failures)} trials failed in a row within "
                        f"{FAIL_WINDOW:.0f}s; stopping this agent (last error: "
                        f"{(record.error or '').strip().splitlines()[-1]})"
                    )
                    result.failed_fast = True
            if result.failed_fast or result.signal is not None or signals.received:
                break
        else:
            result.reason = f"count of {count} reached"
    if signals.received and result.signal is None:  # came while a trial ran
        result.signal = signals.first
        if not result.failed_fast:
            result.reason = "stopped by signal"
    return result


def _size(spec: dict[str, Any]) -> int | None:
    """How many trials the sweep has: its grid's points or its ``run_cap``, the fewer;
    None when it has neither."""
    known = [n for n in (grid_points(spec), spec.get("run_cap")) if isinstance(n, (int, float))]
    return int(min(known)) if known and math.isfinite(min(known)) else None


def _waiting(
    backend: Backend, sweep_id: str, size: int | None, count: int | None, claimed: int
) -> int | None:
    """Trials still to start once the claimed ones run: ``count`` less those this agent
    claimed, and the sweep's ``size`` less those run or running (any agent's), the
    fewer; None when neither is known."""
    left = [] if count is None else [count - claimed]
    if size is not None:
        counts = backend.sweep(sweep_id).counts
        left.append(size - sum(counts.get(s, 0) for s in _STARTED))
    return max(min(left), 0) if left else None


def _unlogged_metric(record: RunRecord, metric: str, source: str) -> str | None:
    """A warning when ``record`` finished without logging the sweep's ``metric``: the
    sweep then cannot rank its runs (bayes and early termination see nothing either)."""
    if record.state != "finished" or metric in record.summary:
        return None
    logged = sorted(k for k in record.summary if k not in _AGENT_KEYS and not k.startswith("_"))
    close = difflib.get_close_matches(metric, logged, n=1)
    return (
        f"warning: run {record.name} finished without logging {metric!r} (logged: "
        f"{', '.join(logged) or 'nothing'}); the sweep's metric is {metric!r}, so its runs "
        f"cannot be ranked: check metric.name in {source}"
        + (f" (did you mean {close[0]!r}?)" if close else "")
        + "; said once per agent"
    )


def run_single(
    backend: Backend,
    kernel_name: str,
    overrides: dict[str, Any],
    *,
    results: Path,
    source: str,
    echo: Echo = print,
) -> RunRecord:
    """One run outside any sweep (``srsweep run``); bad overrides fail before it starts."""
    kernel = kernels.get(kernel_name)
    cfg = resolved(kernel, _config.build(kernel.config, overrides, source), backend, source)
    config = _config.to_dict(cfg)
    record = backend.start_run(kernel.name, config, agent_name())
    echo(f"{record.name} ({record.id}) {kernel.name}")
    t0 = time.monotonic()
    with Signals().installed() as signals:
        execute(
            backend,
            [record],
            kernel,
            overrides=overrides,
            results=results,
            project="srsweep",
            echo=echo,
            source=source,
            signals=signals,
        )
    echo(outcome_line(record, kernel.metric) + f" [{time.monotonic() - t0:.1f}s wall]")
    return record
