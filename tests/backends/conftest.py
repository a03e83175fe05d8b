"""A throw-away PostgreSQL server for the ledger tests, started once per session from the
Debian ``postgresql`` binaries; each test gets a new empty database on it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from srsweep.testing import postgres

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
