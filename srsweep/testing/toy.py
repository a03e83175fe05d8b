"""A toy kernel for srsweep's own tests: no torch, a few milliseconds per run.

It "trains" a scalar ``w`` towards ``target`` and logs ``loss``; ``fail_at`` and
``nan_at`` make it fail on purpose, ``sleep`` slows each step for signal tests.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from srsweep.errors import KernelFailed
from srsweep.kernels._base import Kernel
from srsweep.kernels._base import Run
from srsweep.config import param


@dataclass
class Opt:
    lr: float = param(0.1, gt=0)
    momentum: float = param(0.0, ge=0, le=1)


@dataclass
class ToyConfig:
    seed: int = 0
    steps: int = param(5, ge=1)
    target: float = 1.0
    w0: float = 0.0
    opt: Opt = param(factory=Opt)
    flag: bool = False
    fail_at: int | None = None
    nan_at: int | None = None
    sleep: float = param(0.0, ge=0)


def train(cfg: ToyConfig, run: Run) -> None:
    w = cfg.w0 + 0.01 * cfg.seed
    for step in range(cfg.steps):
        if cfg.fail_at == step:
            raise RuntimeError(f"toy failure at step {step}")
        loss = (w - cfg.target) ** 2 if cfg.nan_at != step else math.nan
        if not math.isfinite(loss):
            raise KernelFailed(f"non-finite loss at step {step}")
        run.log({"loss": loss, "w": w}, step=step)
        if run.should_stop():
            break
        w -= cfg.opt.lr * 2 * (w - cfg.target)
        if cfg.sleep:
            time.sleep(cfg.sleep)
    run.save({"w": w})


PACKS: list[int] = []  # sizes of the packs trained, for the agent tests


def train_packed(cfgs: list[ToyConfig], runs: list[Run]) -> list[BaseException | None]:
    """Packing stand-in: trains the trials one by one, failing each alone."""
    PACKS.append(len(cfgs))
    out: list[BaseException | None] = []
    for cfg, run in zip(cfgs, runs, strict=True):
        try:
            train(cfg, run)
            out.append(None)
        except Exception as e:
            out.append(e)
    return out


KERNEL = Kernel(
    name="toy",
    config=ToyConfig,
    train=train,
    metric="loss",
    goal="minimize",
    curve="loss",
    summary="test kernel: a scalar pulled to a target",
    pack_key=lambda cfg: cfg.steps,
    train_packed=train_packed,
)
