"""Synthetic runs of an ``sd``-like sweep, one per trend the study reported.

``FakeRun`` stands in for ``srsweep.backends.RunRecord``: the report only reads
attributes, so a plain dataclass with the same fields is enough.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import pytest

EPOCHS = 5000
LOG_FREQ = 25
AVG_HOR = 500


@dataclass
class FakeRun:
    id: str
    name: str
    state: str = "finished"
    sweep_id: str | None = "sw1"
    config: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    model_path: str | None = None
    created_at: float = 0.0
    started_at: float | None = 100.0
    finished_at: float | None = 400.0


def _curve(kind: str, steps: np.ndarray) -> np.ndarray:
    """Noise-free accuracy shapes for the four trends (chance is 0.5)."""
    if kind == "fast_holds":
        return 0.5 + 0.4 * (1 - np.exp(-steps / 300))
    if kind == "fast_drops":
        rise = 0.5 + 0.4 * (1 - np.exp(-steps / 300))
        return rise - 0.3 * np.clip((steps - 2500) / 2500, 0, 1)
    if kind == "slow":
        return 0.5 + 0.35 * steps / EPOCHS
    return np.full(steps.shape, 0.5)


def _make_run(
    run_id: str, kind: str, lr: float, hid_num: int, *, seed: int, epochs: int = EPOCHS, **kw: Any
) -> FakeRun:
    steps = np.arange(0, epochs + 1, LOG_FREQ)
    rng = np.random.default_rng(seed)
    acc = np.clip(_curve(kind, steps) + rng.normal(0, 0.05, len(steps)), 0, 1)
    history = [
        {"_step": int(s), "epoch": int(s), "acc": float(a), "loss": float(1 - a)}
        for s, a in zip(steps, acc, strict=True)
    ]
    config = {
        "seed": 0,
        "avg_hor": AVG_HOR,
        "disc": {"lr": lr, "hid_num": hid_num, "hid_size": 128, "betas": [0.9, 0.999]},
        "arch": {"hid_num": [2, 0]},
    }
    summary = {"acc": float(acc[-1]), "avg_acc": float(acc[-20:].mean()), "runtime": 300.0}
    return FakeRun(
        id=run_id,
        name=f"sd-{run_id}",
        config=config,
        params={"disc": {"lr": lr, "hid_num": hid_num}},
        summary=summary,
        history=history,
        **kw,
    )


# run id -> intended trend of the ``records`` fixture.
_INTENDED = {
    "r0": "learns fast, holds",
    "r1": "learns fast, then drops",
    "r2": "slow, still improving",
    "r3": "not learning",
    "r4": "learns fast, holds",
    "r5": "slow, still improving",
    "r6": "not learning",
}


@pytest.fixture
def fake_run() -> type[FakeRun]:
    """The ``RunRecord`` stand-in class."""
    return FakeRun


@pytest.fixture
def make_run() -> Callable[..., FakeRun]:
    """``make_run(run_id, kind, lr, hid_num, *, seed, epochs=5000, **fields)``: a run whose
    ``acc`` follows ``kind`` (fast_holds, fast_drops, slow, flat) plus seeded noise."""
    return _make_run


@pytest.fixture
def avg_hor() -> int:
    """The smoothing window the synthetic runs' configs name."""
    return AVG_HOR


@pytest.fixture
def intended() -> dict[str, str]:
    """Run id -> the trend each run of ``records`` was shaped as."""
    return dict(_INTENDED)


def _records() -> list[FakeRun]:
    make_run = _make_run
    return [
        make_run("r0", "fast_holds", 1e-4, 2, seed=0),
        make_run("r1", "fast_drops", 1e-3, 8, seed=1),
        make_run("r2", "slow", 1e-5, 8, seed=2),
        make_run("r3", "flat", 1e-2, 2, seed=3),
        make_run("r4", "fast_holds", 1e-4, 6, seed=4),
        make_run("r5", "slow", 1e-5, 6, seed=5, epochs=2500, state="running", finished_at=None),
        make_run(
            "r6",
            "flat",
            1e-2,
            6,
            seed=6,
            epochs=1000,
            state="failed",
            error="KernelFailed: NaN loss at epoch 1000\nTraceback (most recent call last): ...",
        ),
    ]


@pytest.fixture(scope="session")
def shared_records() -> list[FakeRun]:
    """The runs of ``records``, built once for module-scoped fixtures; do not modify."""
    return _records()


@pytest.fixture
def records(shared_records: list[FakeRun]) -> list[FakeRun]:
    """Seven runs: two fast-and-holding, one dropping, two slow (one still running),
    two not learning (one failed early). A fresh copy per test."""
    return copy.deepcopy(shared_records)


def _replicated() -> list[FakeRun]:
    runs = []
    settings = [(lr, loss) for lr in (1e-4, 1e-3, 1e-2, 1e-5) for loss in ("bce", "wgan")]
    kinds = {1e-4: "fast_holds", 1e-3: "fast_holds", 1e-2: "flat", 1e-5: "flat"}
    for c, (lr, loss) in enumerate(settings):
        for seed in range(3):
            run = _make_run(f"c{c}s{seed}", kinds[lr], lr, 2, seed=10 * c + seed)
            run.config["seed"] = run.params["seed"] = seed
            run.config["disc"]["loss"] = run.params["disc"]["loss"] = loss
            runs.append(run)
    return runs


@pytest.fixture(scope="session")
def replicated_records() -> list[FakeRun]:
    """8 configurations x 3 seeds (runs ``c<config>s<seed>``): ``disc.lr`` decides the
    trend (1e-4 and 1e-3 learn fast and hold, 1e-2 and 1e-5 do not learn) and
    ``disc.loss`` (bce, wgan) plays no part. Built once; do not modify."""
    return _replicated()


@pytest.fixture(scope="session")
def crowded_records() -> list[FakeRun]:
    """48 runs of one seed each (``r0`` .. ``r47``), every one its own configuration:
    more curves than a figure colours. Built once; do not modify."""
    kinds = ("fast_holds", "slow", "flat")
    return [
        _make_run(f"r{i}", kinds[i % 3], 1e-5 * 1.1**i, 2 + 2 * (i % 4), seed=i) for i in range(48)
    ]
