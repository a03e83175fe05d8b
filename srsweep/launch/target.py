"""What every launched agent runs (``Target``), found and checked before anything
starts; how it learns the ledger without its password on a command line or in a job
file; and how many threads an agent takes."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from srsweep import kernels
from srsweep.backends import LocalBackend
from srsweep.backends import SqlLedger
from srsweep.backends import open_backend
from srsweep.errors import UsageError
from srsweep.spec import SCRIPT

__all__ = ["Target", "ledger_env", "open_target", "split_password", "thread_env"]


@dataclass(frozen=True)
class Target:
    """``srsweep agent SWEEP_ID`` on this results folder and ledger, with its flags."""

    sweep_id: str
    results: Path  # absolute: agents may start elsewhere
    ledger: str | None = None
    pack: int | None = None
    count: int | None = None
    packs_on_cpu: bool = False  # a packing kernel with --pack > 1: a pack's threads matter

    @property
    def folder(self) -> Path:
        """Where the sweep's launch logs go: RESULTS/SWEEP_ID."""
        return self.results / self.sweep_id.replace("/", "_")

    def agent_args(self) -> list[str]:
        """``srsweep``'s arguments that run the agent (the ledger is named in the
        environment: ``ledger_env``)."""
        args = ["--results", str(self.results), "agent", self.sweep_id]
        args += ["--pack", str(self.pack)] if self.pack is not None else []
        return args + (["--count", str(self.count)] if self.count is not None else [])

    def without_password(self) -> Target:
        """The same target, its ledger URL without a password (for a job file)."""
        return replace(self, ledger=split_password(self.ledger)[0])


def open_target(
    sweep_id: str, results: Path, ledger: str | None, pack: int | None, count: int | None
) -> tuple[Target, Path | None]:
    """The target, once its sweep is found in the ledger; and the SQLite file, when
    that is the ledger.

    Raises:
        UsageError: ``pack`` or ``count`` below 1, or no such sweep.
    """
    if pack is not None and pack < 1:
        raise UsageError(f"--pack {pack}: expected 1 or more")
    if count is not None and count < 1:
        raise UsageError(f"--count {count}: expected 1 or more")
    backend, sid = open_backend(sweep_id, results=results, ledger=ledger)
    with closing(backend):
        sweep = backend.sweep(sid)
        sqlite = Path(backend.location).absolute() if isinstance(backend, LocalBackend) else None
        kernel = sweep.kernel != SCRIPT and isinstance(backend, SqlLedger)
        packs = kernel and kernels.get(sweep.kernel).train_packed is not None
    target = Target(
        sweep_id, results.absolute(), ledger, pack, count, packs_on_cpu=packs and (pack or 1) > 1
    )
    return target, sqlite


def split_password(url: str | None) -> tuple[str | None, str | None]:
    """A ledger URL without its password, and the password, decoded (libpq reads it
    from ``PGPASSWORD``)."""
    if url is None or "://" not in url:
        return url, None
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), unquote(parts.password)


def ledger_env(ledger: str | None) -> dict[str, str]:
    """The environment that names ``ledger`` to an agent process: ``SRSWEEP_LEDGER``,
    and ``PGPASSWORD`` when the URL has a password (an environment is private to its
    user; a command line is not)."""
    url, password = split_password(ledger)
    env = {"SRSWEEP_LEDGER": url} if url else {}
    return env | ({"PGPASSWORD": password} if password else {})


def thread_env(share: int, packs_on_cpu: bool, environ: Mapping[str, str]) -> dict[str, str]:
    """The thread variables of an agent given ``share`` cores: a CPU pack uses them all,
    anything else one torch thread (a lone tiny trial runs faster on one); native
    libraries (OpenMP, MKL) are capped at the share. Those set in ``environ`` are kept."""
    torch_threads = share if packs_on_cpu else 1
    values = {"SRSWEEP_THREADS": torch_threads, "OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}
    return {k: str(v) for k, v in values.items() if k not in environ}
