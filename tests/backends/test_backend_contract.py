"""The backend contract suite (``srsweep.testing.backend_contract``) over every ledger
backend: the embedded SQLite ledger, and the PostgreSQL one on a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsweep.backends import Backend
from srsweep.backends import LocalBackend
from srsweep.backends.postgres import PostgresBackend
from srsweep.testing.backend_contract import BackendContract


class TestLocalBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "results")


class TestPostgresBackend(BackendContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_backend(self, tmp_path: Path) -> Backend:
        return PostgresBackend(self.url)
