from __future__ import annotations

import os
from pathlib import Path

import pytest

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
