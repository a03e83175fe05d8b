from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest

from srsweep.testing import postgres

os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")


# the test-only ``toy`` kernel (a package, srsweep/testing/toy/), next to the real ones,
# through the registry's SRSWEEP_KERNELS hook (subprocesses inherit it)
os.environ["SRSWEEP_KERNELS"] = "toy=srsweep.testing.toy"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "spec.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return write


class _RunsCode:
    """Unpickling it creates ``marker``: what loading a model file must never do."""

    def __init__(self, how: str, marker: Path) -> None:
        self.how, self.marker = how, marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        if self.how == "os.system":
            return os.system, (f"touch {shlex.quote(str(self.marker))}",)
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


# how the file's object runs code -> the module.name srsweep must refuse
RUNS_CODE = {"os.system": f"{os.system.__module__}.system", "builtins.exec": "builtins.exec"}


@pytest.fixture(params=sorted(RUNS_CODE), ids=sorted(RUNS_CODE))
def code_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, Path]:
    """(path, refused, marker): a joblib file shaped like an ``sd`` run's model file
    whose unpickling would create ``marker``; ``refused`` is the ``module.name`` that
    srsweep must name when it refuses the file."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "critic.joblib"
    payload = {"hyperparams": {}, "kernel": "sd", "disc_state": _RunsCode(request.param, marker)}
    joblib.dump(payload, path)
    return path, RUNS_CODE[request.param], marker


# --- a throw-away PostgreSQL server (Debian's binaries), once per session; each test
# --- that asks gets a new empty database on it
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"no PostgreSQL server for the ledger tests: {why}")
    psycopg = pytest.importorskip(
        "psycopg", reason="the PostgreSQL driver: pip install -e '.[dev]'"
    )
    del psycopg
    with postgres.throwaway_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new, empty database on the session's server."""
    import psycopg

    name = f"t{next(_names)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + "/" + name
