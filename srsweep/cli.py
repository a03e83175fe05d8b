"""The ``srsweep`` command line: parse, call one library function, print."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click

from srsweep.errors import EnvironmentFault
from srsweep.errors import SrsweepError
from srsweep.errors import UsageError

if TYPE_CHECKING:
    from srsweep.backends import Backend
    from srsweep.backends import SqlLedger

RESULTS_HELP = "Folder of the ledger, model files and reports (env SRSWEEP_RESULTS)."
LEDGER_HELP = (
    "Where the ledger is when not RESULTS/srsweep.db: a path, sqlite:///PATH or "
    "postgresql://USER@HOST:PORT/DB (env SRSWEEP_LEDGER)."
)


def _late_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    obj = ctx.find_object(_Obj)
    if value is not None and obj is not None:  # given after the subcommand: it wins
        if param.name == "ledger":
            obj.ledger_url = value
        else:
            obj.results = value


class _Group(click.Group):
    """Maps srsweep errors to ``Error: ...`` and an exit code, with no traceback; every
    subcommand also accepts the global options (``--results``, ``--ledger``) after its
    name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params += [
            click.Option(
                ["--results"],
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                expose_value=False,
                is_eager=True,
                callback=_late_option,
                help=RESULTS_HELP,
            ),
            click.Option(
                ["--ledger"],
                default=None,
                expose_value=False,
                is_eager=True,
                callback=_late_option,
                help=LEDGER_HELP,
            ),
        ]
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SrsweepError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # --results that cannot be a folder: /proc/x, under a file
            results = ctx.obj.results if isinstance(ctx.obj, _Obj) else None
            if results is None or not _within(e.filename, results):
                raise
            click.echo(f"Error: --results {results}: cannot write there ({e.strerror})", err=True)
            ctx.exit(EnvironmentFault.exit_code)
        finally:
            if isinstance(ctx.obj, _Obj):
                ctx.obj.close()


def _within(filename: Any, folder: Path) -> bool:
    """Whether ``filename`` (an OSError's) is ``folder``, lies under it, or is a folder
    made on the way to it."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return False  # None, or a file descriptor
    path, folder = Path(os.fsdecode(filename)).absolute(), folder.absolute()
    return path == folder or folder in path.parents or path in folder.parents


class _Obj:
    def __init__(self, results: Path, ledger: str | None) -> None:
        self.results = results
        self.ledger_url = ledger
        self._ledger: SqlLedger | None = None
        self._opened: list[Backend] = []

    @property
    def ledger(self) -> SqlLedger:
        """The ledger (opened on first use: ``--help`` imports nothing)."""
        if self._ledger is None:
            from srsweep.backends import open_ledger

            self._ledger = open_ledger(self.results, self.ledger_url)
        return self._ledger

    def open(self, sweep_id: str) -> tuple[Backend, str]:
        """The backend holding ``sweep_id``, and its id there (closed with the command)."""
        from srsweep.backends import open_backend

        backend, sid = open_backend(sweep_id, results=self.results, ledger=self.ledger_url)
        self._opened.append(backend)
        return backend, sid

    def close(self) -> None:
        for backend in [self._ledger, *self._opened]:
            if backend is not None:
                backend.close()
        self._ledger, self._opened = None, []


pass_obj = click.make_pass_decorator(_Obj)

_as_program = False  # set by run(): this process is the srsweep program, not a caller's


def run() -> None:
    """The ``srsweep`` program (its console script, ``python -m srsweep``): ``main``."""
    global _as_program
    _as_program = True
    main(prog_name="srsweep")


def _leave_now(obj: _Obj) -> None:
    """End the ``srsweep`` program here, after a command that has written and closed all
    it made: without the interpreter's teardown of the ~1300 modules and the frames a
    report loaded, which took 0.3 s of its 5 (issue 17). Not where a caller (a test, a
    notebook) runs the command, nor after W&B was used (its exit handlers upload)."""
    if not _as_program or "wandb" in sys.modules:
        return
    obj.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "SRSWEEP", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help=RESULTS_HELP,
)
@click.option("--ledger", default=None, help=LEDGER_HELP)
@click.version_option(package_name="srsweep")
@click.pass_context
def main(ctx: click.Context, results: Path, ledger: str | None) -> None:
    """Sweeps for small-network research.

    Register a W&B-format sweep spec, run agents on it, and report the results.
    Everything works offline on an embedded ledger under --results.

    \b
      srsweep create sweeps/smoke.yaml     # prints SWEEP_ID
      srsweep agent SWEEP_ID --count 10
      srsweep report SWEEP_ID              # plots + tables in results/SWEEP_ID/
      srsweep run sd --set disc.lr=1e-3    # one run, no sweep
    """
    ctx.obj = _Obj(results, ledger)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate only; register nothing.")
@click.option(
    "--backend",
    type=click.Choice(["local", "wandb"]),
    default="local",
    show_default=True,
    help="Register in the local ledger, or on a W&B server.",
)
@click.option("--project", help="W&B project (default: the spec's, else 'srsweep').")
@click.option("--entity", help="W&B entity (default: the spec's, else your default).")
@pass_obj
def create(
    obj: _Obj, spec_path: Path, dry_run: bool, backend: str, project: str | None, entity: str | None
) -> None:
    """Validate the sweep spec SPEC (YAML) and register it; prints the sweep id.

    SPEC's program is a kernel, or a script (any W&B sweep): agents then run it as
    W&B's agent would, each trial in its own process with wandb offline.

    With --backend wandb the spec is validated here first, then registered on the W&B
    server (WANDB_BASE_URL for a self-hosted one) with a command that runs
    `srsweep run <kernel> ${args_json}`, so a plain `wandb agent` works on any node
    (a script's spec is registered as it is).
    """
    from srsweep.backends import register_sweep
    from srsweep.spec import load_spec

    spec = load_spec(spec_path, lookup=obj.ledger.run)  # runs a config names: this ledger
    swept = ", ".join(spec.swept_keys()) or "nothing"
    what = (
        f"kernel {spec.kernel.name}"
        if spec.kernel
        else f"script {spec.script}"
        if spec.script
        else "a command or a Python function"
    )
    for note in spec.warnings:  # what W&B registers with a warning
        click.echo(f"warning: {spec_path}: {note}", err=True)
    if dry_run:
        click.echo(f"{spec_path}: valid ({spec.method} sweep of {what}; sweeps {swept})")
        return
    sweep = register_sweep(spec, obj.ledger, server=backend, project=project, entity=entity)
    click.echo(
        f"created sweep {sweep.id} ({spec.name}: {spec.method} over {swept}; {what})", err=True
    )
    if sweep.remote:
        click.echo(
            f"on W&B as {sweep.remote}; run agents with: srsweep agent {sweep.remote} "
            f"(or wandb agent {sweep.remote})",
            err=True,
        )
        click.echo(sweep.remote)
        return
    click.echo(f"run it with: srsweep agent {sweep.id}", err=True)
    click.echo(sweep.id)


@main.command()
@click.argument("sweep_id")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Run at most this many trials, then exit.",
)
@click.option(
    "--pack",
    type=click.IntRange(min=1),
    default=None,
    help="Claim up to N trials at a time and train those of one shape as a "
    "single batched model. Default: 64 on CUDA, 1 on CPU.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=1),
    default=None,
    help="Crashed attempts of one trial (its agent lost) before it counts as failed. "
    "Default: SRSWEEP_MAX_RETRIES or 3.",
)
@click.option(
    "--backup-every",
    type=float,
    metavar="MINUTES",
    default=None,
    help="Copy the SQLite ledger every MINUTES (SQLite's online backup) and when the "
    "agent stops, to srsweep.backup.db beside it (RESULTS/srsweep.backup.db), each copy "
    "replacing the last at once.",
)
@pass_obj
def agent(
    obj: _Obj,
    sweep_id: str,
    count: int | None,
    pack: int | None,
    max_retries: int | None,
    backup_every: float | None,
) -> None:
    """Run trials of SWEEP_ID until it is exhausted or --count trials have run.

    Start several agents (one per core or GPU) on the same sweep: they never run the
    same trial twice. A pack trained on the CPU uses every core it does not share with
    other agents training on this host or busy processes (SRSWEEP_THREADS sets the
    count), so start one packed agent per CPU node. Each packed trial is still its own
    run, saved and logged alone.
    SWEEP_ID may also be ENTITY/PROJECT/SWEEP_ID of a sweep on a W&B server: then W&B's
    own agent hands out the trials, each in its own process.

    SIGTERM or Ctrl-C stops the running trials (a second one at once); they are queued
    again, and the agent exits with 143 or 130, so a job script can tell an interrupted
    sweep from a finished one.
    """
    from srsweep import api
    from srsweep.tracking import flush_wandb

    for sig in (signal.SIGINT, signal.SIGTERM):  # outside a trial, a signal ends the agent
        signal.signal(sig, _exit_on_signal)  # at once, with the code shells expect
    try:
        result = api.agent(
            sweep_id,
            count=count,
            pack=pack,
            max_retries=max_retries,
            backup_every=backup_every,
            results=obj.results,
            ledger=obj.ledger_url,
            echo=click.echo,
        )
        if not result.runs and result.reason == api.SERVER_AGENT_DONE:
            return
    except KeyboardInterrupt:  # one the agent's handler did not raise: its trial is queued
        flush_wandb(click.echo)
        click.echo("agent interrupted: its trial is queued again", err=True)
        sys.exit(128 + signal.SIGINT)
    flush_wandb(click.echo)
    states = ", ".join(f"{n} {s}" for s, n in sorted(result.states.items())) or "no trials"
    click.echo(f"agent done: {states} ({result.reason})")
    if result.failed_fast:
        raise SrsweepError(f"sweep {sweep_id}: {result.reason}")
    if result.signal is not None:  # as shells expect: 130 for SIGINT, 143 for SIGTERM
        sys.exit(128 + result.signal)


def _exit_on_signal(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)


@main.command()
@click.argument("sweep_id")
@click.option(
    "--local",
    metavar="N|auto",
    help="Start N agent processes on this machine (auto: one per GPU, else per core).",
)
@click.option("--slurm", is_flag=True, help="Submit SLURM jobs (through submitit) instead.")
@click.option(
    "--pack",
    type=click.IntRange(min=1),
    default=None,
    help="Each agent's --pack (trials trained together).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Each agent runs at most this many trials.",
)
@click.option("--detach", is_flag=True, help="--local: return once they started.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would start (for --slurm, the batch script); start nothing.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="--slurm: how many jobs (a job array). Default 1.",
)
@click.option(
    "--gpus-per-job",
    type=click.IntRange(min=0),
    default=None,
    help="--slurm: GPUs per job, one agent on each. Default 0 (one CPU agent).",
)
@click.option(
    "--cpus-per-job",
    type=click.IntRange(min=1),
    default=None,
    help="--slurm: CPUs per job, shared by its agents.",
)
@click.option(
    "--time",
    "time_limit",
    metavar="T",
    default=None,
    help="--slurm: time limit per job (MINUTES, HH:MM:SS or D-HH:MM:SS). Default 60.",
)
@click.option("--partition", metavar="P", default=None, help="--slurm: the partition.")
@click.option(
    "--sbatch",
    multiple=True,
    metavar="KEY=VALUE",
    help="--slurm: one more #SBATCH --KEY=VALUE line (repeatable).",
)
@pass_obj
def launch(
    obj: _Obj,
    sweep_id: str,
    local: str | None,
    slurm: bool,
    pack: int | None,
    count: int | None,
    detach: bool,
    dry_run: bool,
    jobs: int | None,
    gpus_per_job: int | None,
    cpus_per_job: int | None,
    time_limit: str | None,
    partition: str | None,
    sbatch: tuple[str, ...],
) -> None:
    """Start agents on SWEEP_ID: N processes here (--local), or SLURM jobs (--slurm).

    \b
      srsweep launch SWEEP_ID --local 4          # 4 agents here; waits (Ctrl-C stops them)
      srsweep launch SWEEP_ID --slurm --jobs 8 --gpus-per-job 1 --time 4:00:00 \\
          --partition gpu --sbatch account=proj42 --ledger postgresql://me@db:5432/sweeps

    Local agents split the cores (SRSWEEP_THREADS, OMP_NUM_THREADS) and take one GPU
    each when there are GPUs; they log to RESULTS/SWEEP_ID/logs/agent-K.log. SLURM jobs
    run one agent per GPU, and log under RESULTS/SWEEP_ID/slurm/. Nodes must share
    the ledger: a PostgreSQL one (--ledger postgresql://...) is safest.
    """
    from srsweep.launch import launch as start

    start(
        sweep_id,
        results=obj.results,
        ledger=obj.ledger_url,
        local=local,
        slurm=slurm,
        pack=pack,
        count=count,
        detach=detach,
        dry_run=dry_run,
        jobs=jobs,
        gpus_per_job=gpus_per_job,
        cpus_per_job=cpus_per_job,
        time=time_limit,
        partition=partition,
        sbatch=sbatch,
        echo=click.echo,
    )


@main.command()
@click.argument("sweep_id")
@click.option("--failed", is_flag=True, help="Re-queue failed runs.")
@click.option("--preempted", is_flag=True, help="Re-queue preempted and crashed runs.")
@pass_obj
def retry(obj: _Obj, sweep_id: str, failed: bool, preempted: bool) -> None:
    """Queue SWEEP_ID's failed and/or preempted runs again (both when no flag is given).

    The old attempts keep their metrics; agents take queued trials first.
    """

    states = (("failed",) if failed or not preempted else ()) + (
        ("preempted", "crashed") if preempted or not failed else ()
    )
    backend, sid = obj.open(sweep_id)
    queued = backend.retry(sid, states)
    backend.set_sweep_state(sid, "active")
    click.echo(f"queued {len(queued)} run(s) of sweep {sweep_id} again")


@main.command()
@click.argument("sweep_id")
@pass_obj
def stop(obj: _Obj, sweep_id: str) -> None:
    """Stop handing out new trials of SWEEP_ID; running trials finish normally."""

    backend, sid = obj.open(sweep_id)
    backend.set_sweep_state(sid, "stopped", "by `srsweep stop`")
    click.echo(
        f"sweep {sweep_id} stopped: agents take no new trials "
        f"(`srsweep retry {sweep_id}` re-opens it)"
    )


@main.command("run")
@click.argument("kernel")
@click.argument("args_json", required=False)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set disc.lr=1e-3 (repeatable).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file of config overrides (nested or dotted keys).",
)
@pass_obj
def run_cmd(
    obj: _Obj, kernel: str, args_json: str | None, sets: tuple[str, ...], config_file: Path | None
) -> None:
    """Train KERNEL once, outside any sweep.

    ARGS_JSON is an optional JSON object of config values (what W&B's ${args_json}
    passes); --config and then --set are applied on top of it.
    """
    from srsweep.agents import run_single
    from srsweep.config import flatten
    from srsweep.spec import load_json_object
    from srsweep.spec import load_yaml
    from srsweep.spec import parse_sets

    overrides: dict[str, Any] = {}
    source = f"srsweep run {kernel}"
    if args_json:
        overrides.update(flatten(load_json_object(args_json, "ARGS_JSON")))
    if config_file is not None:
        loaded = load_yaml(config_file)
        if not isinstance(loaded, dict):
            raise UsageError(f"{config_file}: must be a mapping of config keys")
        overrides.update(flatten(loaded))
        source = str(config_file)
    if sets:
        overrides.update(parse_sets(sets))
        source = "--set"
    from srsweep.tracking import flush_wandb

    record = run_single(
        obj.ledger, kernel, overrides, results=obj.results, source=source, echo=click.echo
    )
    flush_wandb(click.echo)
    if record.state == "failed":
        raise SrsweepError(f"run {record.id} failed: {(record.error or '').strip()}")


_LS_WIDTHS = (10, 24, 7, 7, 8, 32)


@main.command("ls")
@pass_obj
def ls_cmd(obj: _Obj) -> None:
    """List the sweeps in the ledger."""
    sweeps = obj.ledger.sweeps()
    standalone = obj.ledger.runs(None, history=False)
    if not sweeps and not standalone:
        click.echo(f"no sweeps yet in {obj.results}; create one with `srsweep create SPEC`")
        return
    header = ("SWEEP", "NAME", "KERNEL", "METHOD", "STATE", "RUNS")
    click.echo(" ".join(f"{h:{w}}" for h, w in zip(header, _LS_WIDTHS, strict=True)) + " CREATED")
    for s in sweeps:
        counts = ", ".join(f"{n} {st}" for st, n in sorted(s.counts.items())) or "none"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at))
        click.echo(
            f"{s.id:10} {s.name[:24]:24} {s.kernel:7} {s.spec.get('method', ''):7} "
            f"{s.state:8} {counts[:32]:32} {created}"
        )
    if standalone:
        states: dict[str, int] = {}
        for r in standalone:
            states[r.state] = states.get(r.state, 0) + 1
        counts = ", ".join(f"{n} {st}" for st, n in sorted(states.items()))
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(standalone[0].created_at))
        click.echo(
            f"{'runs':10} {'(srsweep run)':24} {'-':7} {'-':7} {'-':8} {counts[:32]:32} {created}"
        )


@main.command()
@click.argument("sweep_id")
@pass_obj
def status(obj: _Obj, sweep_id: str) -> None:
    """Show SWEEP_ID's runs: state, swept hyperparameters and final metric
    (`srsweep status runs`: the runs made with `srsweep run`)."""
    from srsweep.status import STANDALONE
    from srsweep.status import standalone_lines
    from srsweep.status import status_lines

    if sweep_id == STANDALONE:
        lines = standalone_lines(obj.ledger)
    else:
        backend, sid = obj.open(sweep_id)
        lines = status_lines(backend, sid)
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("sweep_id")
@click.option(
    "--avg-hor",
    type=click.IntRange(min=1),
    default=None,
    help="Smoothing window in steps (epochs). Default: the runs' avg_hor.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="TEXT",
    help="Drop runs whose id or name contains TEXT (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder. Default: RESULTS/SWEEP_ID.",
)
@click.option(
    "--band/--no-band",
    default=True,
    show_default=True,
    help="Draw a ±1 std band of the raw values in each window.",
)
@click.option(
    "--curve",
    metavar="METRIC",
    default=None,
    help="Logged metric to plot and classify. Default: the kernel's curve, or "
    "for a script the spec's metric.",
)
@click.option(
    "--metric",
    metavar="NAME",
    default=None,
    help="Logged metric to rank, weigh hyperparameters and pick the best run by "
    "(and, unless --curve says otherwise, to plot). Default: the spec's metric.",
)
@click.option(
    "--goal",
    type=click.Choice(["maximize", "minimize"]),
    default=None,
    help="Whether a larger or smaller --metric is better. Default: the spec's goal "
    "for the spec's metric, minimize (W&B's default) for another.",
)
@pass_obj
def report(
    obj: _Obj,
    sweep_id: str,
    avg_hor: int | None,
    exclude: tuple[str, ...],
    out: Path | None,
    band: bool,
    curve: str | None,
    metric: str | None,
    goal: str | None,
) -> None:
    """Write plots, tables, report.md and report.html for SWEEP_ID (local, or
    ENTITY/PROJECT/ID on a W&B server, read with the W&B API)."""
    _numpy_without_huge_pages()
    from srsweep import api

    out_dir = out or obj.results / sweep_id.replace("/", "_")
    lines: list[str] = []  # the W&B mirror's lines, printed after the files
    paths = api.report(
        sweep_id,
        results=obj.results,
        ledger=obj.ledger_url,
        out=out_dir,
        metric=metric,
        goal=goal,
        curve=curve,
        avg_hor=avg_hor,
        exclude=exclude,
        band=band,
        echo=lines.append,
    )
    click.echo(f"wrote {len(paths)} files to {out_dir}:")
    for p in paths:
        click.echo(f"  {p}")
    for line in lines:
        click.echo(line)
    _leave_now(obj)


def _numpy_without_huge_pages() -> None:
    """Import numpy with its transparent huge pages off (``NUMPY_MADVISE_HUGEPAGE=0``,
    numpy's own switch, read once at its import) unless the user set that switch.

    numpy asks the kernel for huge pages for every large array; where the kernel finds
    none free (a VM whose memory is fragmented, with THP defrag on ``madvise``) it
    compacts memory on the page faults instead: a fresh 320 MB array took 2.5 s, against
    0.2 s without. The report allocates a few hundred MB of such arrays. The variable is
    set only around the import, so trials and scripts started later do not inherit it.
    """
    if "numpy" in sys.modules or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["NUMPY_MADVISE_HUGEPAGE"]


@main.command()
@click.argument("sweep_id", required=False)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Give up after this many seconds.",
)
@pass_obj
def sync(obj: _Obj, sweep_id: str | None, timeout: float) -> None:
    """Upload offline W&B runs (of SWEEP_ID, or all) to the W&B server."""
    from srsweep.backends.wandb import base_url
    from srsweep.backends.wandb import offline_dirs
    from srsweep.backends.wandb import sync as upload
    from srsweep.tracking import report_run_id

    ids = None
    if sweep_id is not None:
        backend, sid = obj.open(sweep_id)
        backend.sweep(sid)
        ids = [r.id for r in backend.runs(sid, history=False)]
        # its report's figures, when it has one (named by the sweep's id on W&B)
        ids.append(report_run_id(sid.rsplit("/", 1)[-1]))
    dirs = offline_dirs(obj.results, ids)
    if not dirs:
        click.echo(f"no offline runs to upload under {obj.results / 'wandb'}")
        return
    n = upload(dirs, timeout)
    click.echo(f"uploaded {n} offline run(s) to {base_url()}")


@main.command()
@click.option(
    "--to",
    "to",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the copy. Default: RESULTS/backups/srsweep-TIME.db.",
)
@pass_obj
def backup(obj: _Obj, to: Path | None) -> None:
    """Write a consistent copy of the SQLite ledger, also while agents run."""
    from srsweep.backends import LocalBackend

    book = obj.ledger
    if not isinstance(book, LocalBackend):
        raise UsageError(
            f"backup: {book.location} is a server's ledger; back it up with its "
            "own tools (pg_dump), or `srsweep ledger copy` it to a file"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    click.echo(
        f"backed up {book.path} to "
        f"{book.backup(to or obj.results / 'backups' / f'srsweep-{stamp}.db')}"
    )


@main.group("ledger")
def ledger_cmd() -> None:
    """Move a study between ledgers (a laptop's SQLite file, a cluster's PostgreSQL)."""


@ledger_cmd.command("copy")
@click.argument("src")
@click.argument("dst")
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="SWEEP_ID",
    help="Copy only this sweep (repeatable). Default: every sweep and run.",
)
def ledger_copy(src: str, dst: str, sweeps: tuple[str, ...]) -> None:
    """Copy sweeps, runs and histories from ledger SRC to ledger DST.

    SRC and DST are a results folder or .db file, sqlite:///PATH, or
    postgresql://USER@HOST:PORT/DB. Copying again is safe: what DST holds already is
    kept, and runs that changed in SRC since are brought up to date. Model files stay
    where they are (copy results/*/models yourself if DST's agents need them).
    """
    from srsweep.backends import open_ledger

    source, target = open_ledger(src, src), open_ledger(dst, dst)
    try:
        n = source.copy_to(target, list(sweeps) or None)
    finally:
        source.close()
        target.close()
    click.echo(
        f"copied {n['sweeps']} new sweep(s), {n['runs']} new run(s), updated "
        f"{n['updated']} run(s), {n['rows']} history row(s): {source.location} -> "
        f"{target.location}"
    )


@main.command("kernels")
@click.argument("name", required=False)
def kernels_cmd(name: str | None) -> None:
    """List the kernels, or the config keys and defaults of kernel NAME."""
    from srsweep import kernels
    from srsweep.config import describe_range
    from srsweep.config import describe_type
    from srsweep.config import flat_fields

    if name is None:
        for n in kernels.names():
            k = kernels.get(n)
            click.echo(f"{n:8} {k.summary}  (metric: {k.metric}, {k.goal})")
        return
    k = kernels.get(name)
    click.echo(f"{name}: {k.summary}")
    for key, f in flat_fields(k.config).items():
        helptext = f"  # {f.meta['help']}" if f.meta.get("help") else ""
        bounds = describe_range(key, f.meta)
        kind = f"{describe_type(f.type)}, {bounds}" if bounds else describe_type(f.type)
        click.echo(f"  {key} = {f.default!r}  ({kind}){helptext}")


@main.command()
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option(
    "--grid",
    type=click.IntRange(min=3),
    default=41,
    show_default=True,
    help="Grid points per axis (odd: the final weights are the centre).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder. Default: RESULTS/landscape.",
)
@pass_obj
def landscape(obj: _Obj, run_ids: tuple[str, ...], grid: int, out: Path | None) -> None:
    """Plot the loss landscape around each run's final weights (seed 004).

    The run's saved weight trajectory is projected on its first two principal
    directions; the train loss is contoured on that plane with the path on top, next
    to train and held-out loss curves. RUN_ID is a run id from the ledger or a
    .joblib model file; the run must save a trajectory (lazy with history_every > 0).
    Writes landscape_RUN_ID.png and .npz (the numbers) per run.
    """
    from srsweep import analysis  # torch: only when a landscape is computed
    from srsweep.reports import write_landscape

    files = [_model_file(obj, ref) for ref in run_ids]  # every id checked before any work
    out_dir = out or obj.results / "landscape"
    for ref, path in zip(run_ids, files, strict=True):
        result, payload = analysis.landscape.compute_file(path, grid=grid)
        paths = write_landscape(result, payload, out_dir, model_file=path)
        r1, r2 = (float(v) for v in result["explained_variance_ratio"])
        click.echo(
            f"{ref}: {paths[0]} (PCs explain {r1:.2%} + {r2:.2%} = {r1 + r2:.2%} of "
            f"the trajectory's variance)"
        )


def _model_file(obj: _Obj, ref: str) -> Path:
    """A run id's model file, from the ledger; a path to a .joblib file is taken as is."""
    path = Path(ref)
    if path.suffix == ".joblib" or path.is_file():
        return path
    record = obj.ledger.run(ref)
    if not record.model_path:
        from srsweep.errors import NotFoundError

        raise NotFoundError(f"run {ref} ({record.state}) saved no model file")
    return Path(record.model_path)


if __name__ == "__main__":
    main()
