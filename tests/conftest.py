from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("WANDB_SILENT", "true")


# the test-only ``toy`` kernel (a package, srsweep/testing/toy/), next to the real ones,
# through the registry's SRSWEEP_KERNELS hook (subprocesses inherit it)
os.environ["SRSWEEP_KERNELS"] = "toy=srsweep.testing.toy"


@pytest.fixture(autouse=True)
def _no_ledger_from_an_earlier_cli_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """``srsweep`` exports its --results as SRSWEEP_LEDGER_DIR; in-process CLI tests
    must not leak it into the next test."""
    monkeypatch.delenv("SRSWEEP_LEDGER_DIR", raising=False)


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
