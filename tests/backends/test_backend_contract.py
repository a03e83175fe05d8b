"""The backend contract suite (``srsweep.testing.backend_contract``) over every ledger
backend: the embedded SQLite ledger."""

from __future__ import annotations

from pathlib import Path

from srsweep.backends import Backend
from srsweep.backends import LocalBackend
from srsweep.testing.backend_contract import BackendContract


class TestLocalBackend(BackendContract):
    def make_backend(self, tmp_path: Path) -> Backend:
        return LocalBackend(tmp_path / "results")
