"""The two contracts a kernel lives by: the ``Run`` it is handed and the ``Kernel`` record.

A kernel is a plain function ``train(cfg, run)``: ``cfg`` is an instance of the kernel's
config dataclass (validated before training starts), ``run`` is the only channel to the
outside world. Kernels never touch files, the ledger or wandb directly.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any
from typing import Protocol


class Run(Protocol):
    """What a kernel sees of its run.

    One ``Run`` belongs to one trial and is used from one thread. ``log`` may buffer;
    everything logged is durable once the kernel returns. ``save`` may be called more
    than once (the last call wins) and writes atomically.
    """

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step`` (an epoch or cycle index, increasing)."""

    def should_stop(self) -> bool:
        """True when the trial should end now (early termination, signal, stop request).

        Cheap to call every step: implementations rate-limit the real check.
        """

    def save(self, state: dict[str, Any]) -> None:
        """Persist model state (state dicts, histories). Hyperparameters and the
        logged metric history are added by the run itself."""


@dataclass(frozen=True)
class Kernel:
    """A registered kernel: its name, config dataclass, training function and the
    metric its sweeps are judged by when a spec names none."""

    name: str
    config: type[Any]
    train: Callable[[Any, Run], None]
    metric: str  # summary metric sweeps optimise by default, e.g. "avg_acc"
    goal: str  # "maximize" | "minimize"
    curve: str  # raw per-step metric the report smooths, e.g. "acc"
    summary: str  # one line for `srsweep kernels`
    # Packing (optional): trials whose configs share a ``pack_key`` train together in
    # one batched model via ``train_packed(cfgs, runs)``, which returns, per trial, None
    # (finished or stopped on its run's request) or the exception that failed it alone
    # (e.g. ``KernelFailed`` for a non-finite loss, with the solo kernel's message). It
    # raises only for the whole pack: ``check_pack``'s ValueError, or ``KernelFailed``
    # when CUDA is asked for and absent.
    pack_key: Callable[[Any], Hashable] | None = None
    train_packed: Callable[[list[Any], list[Run]], list[BaseException | None]] | None = None


def check_pack(cfgs: list[Any], runs: list[Run], key: Callable[[Any], Hashable]) -> None:
    """What every ``train_packed`` asks of its arguments.

    Raises:
        ValueError: the lists differ in length or the configs do not share one ``key``.
    """
    if len(cfgs) != len(runs):
        raise ValueError(f"train_packed: {len(cfgs)} configs but {len(runs)} runs")
    if len({key(c) for c in cfgs}) > 1:
        raise ValueError("train_packed: the configs do not share one pack_key")
