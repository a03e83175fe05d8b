"""Fixtures of the srnet tests: saved ``sd`` runs to take a fixed critic from, on disk
and in a real local ledger."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srsweep.kernels
from srsweep import store
from srsweep.backends.local import LocalBackend
from srsweep.config import build
from srsweep.config import to_dict
from srsweep.testing import RecordingRun

SdFile = Callable[..., Path]


@pytest.fixture
def sd_file(tmp_path: Path) -> SdFile:
    """``sd_file(name="critic", **sd_overrides)``: a saved ``sd`` run's model file (a
    critic trained one epoch) for F07 on X07 unless overridden, written as
    ``TrialRun.save`` writes it. sd comes through the registry, wherever it lives."""

    def make(name: str = "critic", **over: Any) -> Path:
        sd = srsweep.kernels.get("sd")
        base: dict[str, Any] = {
            "device": "cpu",
            "epochs": 1,
            "log_freq": 1,
            "in_var": "X07",
            "fun_lib": "F07_v2",
            "arch": {"in_size": 2, "lat_size": 3},
            "disc": {"hid_num": 2, "hid_size": 8, "loss": "bce", "gp": 0},
        }
        cfg = build(sd.config, {**base, **over}, "test")
        run = RecordingRun()
        sd.train(cfg, run)
        assert run.saved is not None
        path = tmp_path / f"{name}.joblib"
        store.save(path, {"hyperparams": to_dict(cfg), **run.saved, "kernel": "sd"})
        return path

    return make


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LocalBackend]:
    """A real local ledger; ``ledger.run`` is the lookup ``resolve`` is handed."""
    backend = LocalBackend(tmp_path / "results")
    yield backend
    backend.close()


@pytest.fixture
def sd_run(ledger: LocalBackend) -> Callable[..., str]:
    """``sd_run(path, state="finished", config=True)``: record a standalone ``sd`` run in
    ``ledger`` that saved ``path`` (None: nothing), with the config its model file holds
    (``config=False``: an empty one, as a record without it); returns its id."""

    def add(path: Path | None, state: str = "finished", config: bool = True) -> str:
        cfg = store.load(path)["hyperparams"] if path is not None and config else {}
        rec = ledger.start_run("sd", cfg, "test")
        ledger.finish(rec.id, state, model_path=str(path) if path is not None else None)
        return rec.id

    return add
