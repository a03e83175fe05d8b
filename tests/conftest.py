from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _toy_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test-only ``toy`` kernel next to the real ones."""
    from srsweep import kernels

    monkeypatch.setitem(kernels._MODULES, "toy", "srsweep.testing.toy")


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
