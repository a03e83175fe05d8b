"""The Python surface, shaped like W&B's: ``srsweep.sweep(config)`` registers a sweep and
returns its id, ``srsweep.agent(sweep_id, function=train, count=N)`` runs trials in this
process, and ``runs`` / ``history`` / ``report`` read them back, as the CLI does.

Every call takes ``results`` (the folder of the ledger, models and reports; default
``SRSWEEP_RESULTS`` or ``./results``, as for the CLI) and ``ledger`` (where the ledger
is, if not in ``results``: a path or ``postgresql://…``; default ``SRSWEEP_LEDGER``).
Bad input raises the error the CLI prints (a ``SrsweepError`` naming the key and what
is allowed).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep.agents import AgentResult
from srsweep.agents import backup_target
from srsweep.agents import run_agent
from srsweep.backends import ServerAgents
from srsweep.backends import SqlLedger
from srsweep.backends import current
from srsweep.backends import open_backend
from srsweep.backends import open_ledger
from srsweep.backends import register_sweep
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError
from srsweep.spec import load_spec
from srsweep.spec import validate
from srsweep.tracking import log_report
from srsweep.tracking import report_run_id

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SpecWarning", "agent", "history", "report", "runs", "sweep"]


class SpecWarning(UserWarning):
    """A spec W&B registers with a warning (a deprecated distribution, a parameter name
    outside its pattern, a program not found yet): srsweep registers it too."""


DICT_SOURCE = "sweep config"  # how a spec given as a dict is named in messages
SERVER_AGENT_DONE = "W&B's agent finished"  # AgentResult.reason when the server ran it


def _results(results: str | Path | None) -> Path:
    return Path(results if results is not None else os.environ.get("SRSWEEP_RESULTS", "results"))


def sweep(
    sweep: dict[str, Any] | str | Path,
    project: str | None = None,
    entity: str | None = None,
    *,
    results: str | Path | None = None,
    ledger: str | None = None,
    backend: str | None = None,
) -> str:
    """Validate a sweep spec and register it; returns the sweep id (``wandb.sweep``).

    Args:
        sweep: the spec as a dict (as ``wandb.sweep`` takes it; tuples are read as
            lists) or the path of a YAML spec. A dict's script ``program`` is looked up
            in the current folder, where its trials then run.
        project: the W&B project (default: the spec's, else "srsweep").
        entity: the W&B entity (default: the spec's).
        results: the results folder.
        backend: "local" (default) or "wandb" (registered on the W&B server, with its
            local record); the id returned is the one ``agent`` and ``report`` take.

    Raises:
        SpecError: the spec is not valid (every violation, each naming its key).
    """
    with closing(open_ledger(_results(results), ledger)) as book:
        return _register(book, sweep, project, entity, backend)


def _register(
    book: SqlLedger,
    sweep: dict[str, Any] | str | Path,
    project: str | None,
    entity: str | None,
    backend: str | None,
) -> str:
    if isinstance(sweep, dict):
        raw = dict(sweep)  # validate reads its tuples as lists
        if project is not None:
            raw["project"] = project
        if entity is not None:
            raw["entity"] = entity
        spec = validate(raw, str(Path.cwd() / DICT_SOURCE), lookup=book.run)
    elif isinstance(sweep, (str, Path)):
        spec = load_spec(sweep, lookup=book.run)
    else:
        raise UsageError(
            f"sweep: expected a dict or a spec file's path, got {type(sweep).__name__}"
        )
    for note in spec.warnings:  # what W&B registers with a warning
        warnings.warn(f"{spec.source}: {note}", SpecWarning, stacklevel=3)
    record = register_sweep(spec, book, server=backend or "local", project=project, entity=entity)
    return record.remote or record.id


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    count: int | None = None,
    *,
    entity: str | None = None,
    project: str | None = None,
    pack: int | None = None,
    max_retries: int | None = None,
    backup_every: float | None = None,
    results: str | Path | None = None,
    ledger: str | None = None,
    echo: Callable[[str], None] = print,
) -> AgentResult:
    """Run trials of ``sweep_id`` in this process (``wandb.agent``).

    With ``function``, each trial is a call of it: inside, ``wandb.init()`` gets the
    trial's parameters and ``wandb.log`` reaches the ledger; an exception fails that
    trial (its traceback kept) and the agent goes on; the notebook's stop button
    (KeyboardInterrupt) preempts the trial, queues it again and returns. Without it,
    the sweep's kernel or script runs, as ``srsweep agent`` runs it.

    Args:
        count: run at most this many trials.
        entity, project: accepted as ``wandb.agent`` accepts them; the sweep id (a local
            id or ENTITY/PROJECT/ID) already says where the sweep is.
        pack: kernel sweeps only: train up to this many same-shaped trials together.
        max_retries: crashed attempts of a trial before it is failed (default: the
            ledger's, ``SRSWEEP_MAX_RETRIES`` or 3).
        backup_every: minutes between copies of an SQLite ledger, kept beside it as
            ``srsweep.backup.db`` (one more copy when the agent stops).
        echo: where progress lines go.

    Returns:
        What the agent did: runs by final state, and why it stopped.
    """
    if function is not None and not callable(function):
        raise UsageError(f"function: expected a callable, got {type(function).__name__}")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise UsageError(f"count: expected a positive whole number, got {count!r}")
    folder = _results(results)
    backend, sid = open_backend(sweep_id, results=folder, ledger=ledger)
    if max_retries is not None:
        backend.max_retries = max_retries
    with closing(backend):
        if isinstance(backend, ServerAgents):  # the server hands trials to its own agents
            if backup_every is not None:
                backup_target(backend, backup_every)  # refused: not an SQLite ledger
            code = backend.run_server_agent(sid, count, function)
            if code != 0:
                raise SrsweepError(f"wandb agent exited with code {code}")
            return AgentResult(reason=SERVER_AGENT_DONE)
        return run_agent(
            backend,
            sid,
            results=folder,
            count=count,
            pack=pack,
            function=function,
            backup_every=backup_every,
            echo=echo,
        )


def runs(
    sweep_id: str, *, results: str | Path | None = None, ledger: str | None = None
) -> pd.DataFrame:
    """One row per run of ``sweep_id`` (its latest attempt per trial): state, config
    columns (``config.KEY``) and summary metrics, as the report reads them."""
    from srsweep.reports import runs_frame  # pandas: only for the calls that read runs

    backend, sid = open_backend(sweep_id, results=_results(results), ledger=ledger)
    with closing(backend):
        return runs_frame(current(backend.runs(sid)))


def history(
    sweep_id: str, *, results: str | Path | None = None, ledger: str | None = None
) -> pd.DataFrame:
    """Every logged row of ``sweep_id``'s runs: ``run_id``, ``step`` and the metrics."""
    from srsweep.reports import columns_frame

    backend, sid = open_backend(sweep_id, results=_results(results), ledger=ledger)
    with closing(backend):
        ids = [r.id for r in current(backend.runs(sid, history=False))]
        return columns_frame(backend.history_columns(ids), ids)


def report(
    sweep_id: str,
    *,
    results: str | Path | None = None,
    ledger: str | None = None,
    out: str | Path | None = None,
    metric: str | None = None,
    goal: str | None = None,
    curve: str | None = None,
    avg_hor: int | None = None,
    exclude: Sequence[str] = (),
    band: bool = True,
    mirror: bool = True,
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Write ``sweep_id``'s report (as ``srsweep report``); returns the paths written,
    ``report.md`` among them. ``out`` defaults to ``RESULTS/SWEEP_ID``. ``metric`` and
    ``goal`` judge the runs by any logged metric instead of the spec's (see
    ``reports.report_sweep``). With ``mirror``, its figures are also logged to a W&B
    run beside the sweep's runs (offline unless a server is configured; ``srsweep
    sync`` uploads it)."""
    from srsweep.reports import report_sweep

    folder = _results(results)
    backend, sid = open_backend(sweep_id, results=folder, ledger=ledger)
    out_dir = Path(out) if out is not None else folder / sid.replace("/", "_")
    with closing(backend):
        record = backend.sweep(sid)
        title = f"{record.name} ({sid})"
        paths = report_sweep(  # the histories: the columns the report needs, read once
            record.spec,
            current(backend.runs(sid, history=False)),
            out_dir,
            sweep_id=sweep_id,
            title=title,
            metric=metric,
            goal=goal,
            curve=curve,
            avg_hor=avg_hor,
            exclude=exclude,
            band=band,
            backend=backend,
        )
    if mirror:
        _mirror_figures(paths, sweep_id, record.remote, record.spec, title, folder, echo)
    return paths


def _mirror_figures(
    paths: list[Path],
    sweep_id: str,
    remote: str | None,
    spec: dict[str, Any],
    title: str,
    folder: Path,
    echo: Callable[[str], None],
) -> None:
    """The report's figures as images of a W&B run beside the sweep's runs."""
    if remote is not None:
        entity, project, sid = remote.split("/")
    else:
        entity, project, sid = None, str(spec.get("project") or "srsweep"), sweep_id
    try:
        mode = log_report(
            paths, sweep_id=sid, title=title, project=project, root=folder, entity=entity
        )
    except Exception as e:  # the files are written; W&B is a mirror
        echo(f"warning: report figures not logged to W&B ({type(e).__name__}: {e})")
        return
    if mode == "offline":
        echo(
            f"logged the figures to offline W&B run {report_run_id(sid)}; "
            f"`srsweep sync {sweep_id}` uploads it"
        )
    elif mode is not None:
        echo(f"logged the figures to W&B run {report_run_id(sid)}")
