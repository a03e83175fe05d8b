"""Sweeps on a W&B server (cloud, or self-hosted at ``WANDB_BASE_URL``): register them,
run W&B's own agents on them, and read their runs back with the W&B API.

``create --backend wandb`` validates the spec locally first; every call here then checks
credentials and that the server answers (seconds, not a hang) before it asks wandb for
anything. W&B's agents start every trial in its own process with
``srsweep run <kernel> ${args_json}``, and the trial writes its W&B run itself.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import math
import subprocess
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import NoReturn

from srsweep import kernels
from srsweep.backends._base import RunRecord
from srsweep.backends._base import SweepRecord
from srsweep.backends.columns import from_rows
from srsweep.backends.columns import last_of
from srsweep.backends.wandb.server import base_url
from srsweep.backends.wandb.server import parse_path
from srsweep.backends.wandb.server import require_server
from srsweep.backends.wandb.server import wandb_exe
from srsweep.errors import NotFoundError
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError
from srsweep.spec import SCRIPT

if TYPE_CHECKING:
    from collections.abc import Hashable
    from collections.abc import Iterable

    from numpy.typing import NDArray

    from srsweep.backends._base import Backend
    from srsweep.backends._base import ServerAgents
    from srsweep.spec import Spec

__all__ = ["COMMAND", "WandbBackend", "server_spec", "to_record"]

# ${args_json} keeps nested dicts and booleans intact; ${args} would flatten them to
# "--disc={'lr': ...}" strings.
COMMAND = ["${env}", "srsweep", "run", "${program}", "${args_json}"]

# W&B run states -> the ledger's (RunRecord.state)
_STATES = {
    "finished": "finished",
    "running": "running",
    "crashed": "crashed",
    "failed": "failed",
    "killed": "stopped",
    "preempted": "preempted",
}


def server_spec(spec: Spec) -> dict[str, Any]:
    """The spec as sent to W&B: ``command`` filled so that a plain ``wandb agent`` runs
    the kernel through ``srsweep run`` exactly as ``srsweep agent`` would."""
    raw = copy.deepcopy(spec.raw)
    if spec.kernel is not None:  # a script's spec goes unchanged: W&B's agent runs it
        raw.setdefault("command", list(COMMAND))
    return raw


def to_record(run: Any, sweep_path: str | None, history: Iterable[dict[str, Any]]) -> RunRecord:
    """A W&B API run (``wandb.apis.public.Run``-shaped) as a ``RunRecord``."""
    config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
    summary = {
        k: v
        for k, v in dict(run.summary).items()
        if not k.startswith("_") and isinstance(v, (int, float, str, bool))
    }
    rows = []
    for i, row in enumerate(history):
        step = row.get("_step", i)
        rows.append({"_step": int(step), **{k: v for k, v in row.items() if not k.startswith("_")}})
    return RunRecord(
        id=run.id,
        sweep_id=sweep_path,
        name=run.name or run.id,
        kernel=str(getattr(run, "job_type", None) or ""),  # srsweep runs name it so
        state=_STATES.get(run.state, run.state),
        params=config,
        config=config,
        summary=summary,
        history=rows,
        created_at=_timestamp(getattr(run, "created_at", None)),
    )


def _timestamp(iso: str | None) -> float:
    if not iso:
        return 0.0
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _path(text: str, what: str = "SWEEP_ID") -> tuple[str, str, str]:
    parsed = parse_path(text)
    if parsed is None:
        raise UsageError(f"{text!r}: expected ENTITY/PROJECT/{what}")
    return parsed


class WandbBackend:
    """The sweeps of a W&B server, through the W&B API (``wandb.Api``).

    Sweep ids are W&B paths ``ENTITY/PROJECT/SWEEP_ID``, run ids ``ENTITY/PROJECT/RUN_ID``.
    The server hands trials to its own agents (``run_server_agent``) and each trial writes
    its W&B run itself, so the ledger's writing side (``claim``, ``log``, ``finish``,
    ``requeue``, ...) is not offered: those raise ``UsageError`` saying what to do
    instead. Histories are read in full with ``scan_history`` (``history()`` samples).

    Args:
        project: where ``create_sweep`` registers; default: the spec's, else "srsweep".
        entity: likewise; default: the spec's, else the account's default entity.
    """

    # the server decides when one of its agents is lost; srsweep never expires a W&B run
    lease_timeout = math.inf
    max_retries = 0  # W&B's own agents re-run nothing

    def __init__(self, project: str | None = None, entity: str | None = None) -> None:
        self.project = project
        self.entity = entity
        self._api: Any = None
        self._listed: dict[str, Any] = {}  # run id -> the API run ``runs`` listed it as
        self._scanned: dict[str, list[dict[str, Any]]] = {}  # run id -> its history rows

    @property
    def location(self) -> str:
        return base_url()

    def reopen(self) -> WandbBackend:
        return WandbBackend(self.project, self.entity)

    def close(self) -> None:
        self._api = None

    def _server(self) -> Any:
        """``wandb.Api()``, once the server is known to answer."""
        if self._api is None:
            require_server()
            import wandb  # seconds to import: only for commands that talk to W&B

            self._api = wandb.Api()
        return self._api

    # -- sweeps ------------------------------------------------------------------------
    def create_sweep(self, spec: Spec, remote: str | None = None) -> str:
        """Register ``spec`` on the server (``wandb.sweep``); its ``ENTITY/PROJECT/ID``."""
        if remote is not None:
            raise UsageError(f"a W&B sweep is registered on its server, not at {remote!r}")
        api = self._server()
        import wandb

        project = self.project or spec.raw.get("project") or "srsweep"
        entity = self.entity or spec.raw.get("entity") or api.default_entity
        try:
            sweep_id = wandb.sweep(server_spec(spec), entity=entity, project=project)
        except Exception as e:  # wandb raises CommError, ValueError, ... for a refused sweep
            raise SrsweepError(f"W&B refused the sweep: {e}") from None
        return f"{entity}/{project}/{sweep_id}"

    def sweeps(self) -> list[SweepRecord]:
        raise UsageError(
            f"the W&B server at {base_url()} lists a project's sweeps in its web UI; "
            "`srsweep ls` lists those of the local ledger"
        )

    def sweep(self, sweep_id: str) -> SweepRecord:
        """The W&B sweep ``sweep_id``, its run counts by state; ``remote`` is its path."""
        _path(sweep_id)
        api = self._server()
        with self._errors(f"unknown W&B sweep {sweep_id!r} on {base_url()}"):
            found = api.sweep(sweep_id)
        config = found.config
        spec = dict(config) if not isinstance(config, str) else json.loads(config)
        counts = collections.Counter(r.state for r in self._runs(sweep_id, history=False))
        program = str(spec.get("program", ""))
        return SweepRecord(
            id=sweep_id,
            name=str(found.name),
            kernel=program if program in kernels.names() else SCRIPT,
            spec=spec,
            source=str(found.url),
            # W&B's states: PENDING, RUNNING, PAUSED, FINISHED, CANCELED, ...
            state="active" if str(found.state).upper() in ("PENDING", "RUNNING") else "stopped",
            seed=0,  # the server's search keeps its own
            created_at=_timestamp(getattr(found, "created_at", None)),
            counts=dict(counts),
            remote=sweep_id,
        )

    def set_sweep_state(self, sweep_id: str, state: str, reason: str | None = None) -> None:
        self._refuse(
            f"W&B sweep {sweep_id}: stop or resume it on its server with "
            f"`wandb sweep --stop {sweep_id}` (or --pause, --resume)"
        )

    # -- trials: the server's own agents run them ----------------------------------------
    def run_server_agent(
        self, sweep_id: str, count: int | None, function: Callable[[], Any] | None = None
    ) -> int:
        """Run W&B's agent on ``sweep_id``: ``wandb agent``, each trial in its own
        process, or with ``function`` W&B's Python agent calling it in this process."""
        _path(sweep_id)
        require_server()
        if function is not None:
            import wandb

            wandb.agent(sweep_id, function=function, count=count)
            return 0
        cmd = [wandb_exe(), "agent", sweep_id] + (["--count", str(count)] if count else [])
        return subprocess.call(cmd)

    def claim(self, sweep_id: str, agent: str) -> RunRecord | None:
        self._refuse(self._served(sweep_id))

    def claim_pack(
        self,
        sweep_id: str,
        agent: str,
        n: int,
        *,
        key: Callable[[dict[str, Any]], Hashable],
        candidates: int,
    ) -> list[RunRecord]:
        self._refuse(self._served(sweep_id))

    @staticmethod
    def _served(sweep_id: str) -> str:
        return (
            f"W&B sweep {sweep_id}: its server hands the trials to its own agents, one by "
            f"one; run `srsweep agent {sweep_id}` (or `wandb agent {sweep_id}`)"
        )

    def start_run(self, kernel: str, config: dict[str, Any], agent: str) -> RunRecord:
        self._refuse(
            f"a run outside a sweep is kept in the local ledger: `srsweep run {kernel}` "
            "records it there and mirrors it to W&B"
        )

    def heartbeat(self, run_ids: list[str]) -> None:
        self._refuse(self._written_by_the_run(", ".join(run_ids)))

    def log(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        self._refuse(self._written_by_the_run(run_id))

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        self._refuse(self._written_by_the_run(run_id))

    def finish(
        self,
        run_id: str,
        state: str,
        *,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        model_path: str | None = None,
        requeue: bool = False,
    ) -> None:
        self._refuse(self._written_by_the_run(run_id))

    def requeue(self, run_id: str) -> str | None:
        self._refuse(
            f"W&B run {run_id}: a W&B server does not queue a trial again; re-run it with "
            "`srsweep run` and its config, or sweep on the local ledger, where "
            "`srsweep retry` re-queues trials"
        )

    def retry(self, sweep_id: str, states: tuple[str, ...]) -> list[str]:
        self._refuse(
            f"W&B sweep {sweep_id}: a W&B server does not queue trials again; resume it "
            f"with `wandb sweep --resume {sweep_id}`, or sweep on the local ledger, where "
            "`srsweep retry` re-queues failed and preempted trials"
        )

    # -- reading ---------------------------------------------------------------------------
    def run(self, run_id: str) -> RunRecord:
        """The W&B run ``ENTITY/PROJECT/RUN_ID``, with its full history."""
        entity, project, _ = _path(run_id, "RUN_ID")
        api = self._server()
        with self._errors(f"unknown W&B run {run_id!r} on {base_url()}"):
            found = api.run(run_id)
        sweep = getattr(found, "sweep_name", None)
        with self._errors():
            history = list(found.scan_history())
        return to_record(found, f"{entity}/{project}/{sweep}" if sweep else None, history)

    def runs(self, sweep_id: str | None, *, history: bool = True) -> list[RunRecord]:
        """Every run of the W&B sweep ``sweep_id``, oldest first."""
        if sweep_id is None:
            raise UsageError("runs outside a sweep are kept in the local ledger, not read from W&B")
        return self._runs(sweep_id, history=history)

    def _runs(self, sweep_id: str, *, history: bool) -> list[RunRecord]:
        entity, project, sid = _path(sweep_id)
        api = self._server()
        with self._errors():
            found = list(api.runs(f"{entity}/{project}", filters={"sweep": sid}, per_page=500))
            self._listed.update((r.id, r) for r in found)
            return [to_record(r, sweep_id, r.scan_history() if history else ()) for r in found]

    def _history(self, run_id: str) -> list[dict[str, Any]]:
        """The history rows of a run ``runs`` listed (or ``ENTITY/PROJECT/RUN_ID``), as
        ``RunRecord.history`` holds them, scanned once per backend."""
        if run_id not in self._scanned:
            listed = self._listed.get(run_id)
            if listed is None:
                self._scanned[run_id] = self.run(run_id).history
            else:
                with self._errors():
                    self._scanned[run_id] = to_record(listed, None, listed.scan_history()).history
        return self._scanned[run_id]

    def history_columns(
        self, run_ids: list[str], keys: list[str] | None = None
    ) -> dict[str, dict[str, NDArray[Any]]]:
        """Built from each run's full history (``scan_history``): a W&B server keeps rows."""
        return {rid: from_rows(self._history(rid), keys) for rid in run_ids}

    def agents_on(self, host: str) -> list[str]:
        return []  # the server hands out the trials; its agents are not in a ledger

    def last_logged(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {rid: last_of(self._history(rid)) for rid in run_ids}

    # -- messages ----------------------------------------------------------------------------
    @staticmethod
    def _written_by_the_run(run_id: str) -> str:
        return (
            f"W&B run {run_id}: a trial on a W&B server writes its own run (wandb.init in "
            "the trial's process, `srsweep run` under `wandb agent`); srsweep does not"
        )

    @staticmethod
    def _refuse(message: str) -> NoReturn:
        raise UsageError(message)

    @staticmethod
    @contextlib.contextmanager
    def _errors(missing: str | None = None) -> Iterator[None]:
        """wandb's errors as srsweep's: a failed request as ``SrsweepError``; with
        ``missing``, a lookup of what is not there (``ValueError``, e.g. wandb's
        ``RunNotFoundError``) as ``NotFoundError`` saying ``missing``."""
        from wandb.errors import CommError

        try:
            yield
        except CommError as e:
            raise SrsweepError(f"W&B: {e}") from None
        except ValueError:
            if missing is None:
                raise
            raise NotFoundError(missing) from None


if TYPE_CHECKING:
    _: Backend = WandbBackend()
    _agents: ServerAgents = WandbBackend()
