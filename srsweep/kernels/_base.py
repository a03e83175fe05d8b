"""The contracts a kernel lives by: the ``Run`` it is handed and the ``Kernel`` record.

A kernel is a plain function ``train(cfg, run)``: ``cfg`` is an instance of the kernel's
config dataclass (validated before training starts), ``run`` is the only channel to the
outside world. Kernels never touch the ledger or wandb; a config key that names another
run (srnet's ``disc.from_run``) is resolved to a model file before training starts, by
the kernel's ``resolve`` with a ``Lookup`` the caller passes in.

This module imports no torch: a kernel's record and config are read by ``create``,
``kernels`` and ``status``, which never train. The training paths are ``Entry`` points,
imported on their first call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from torch import nn

__all__ = ["Run", "RunRef", "Lookup", "Kernel", "Entry", "Examples", "Problem", "check_pack"]


class Run(Protocol):
    """What a kernel sees of its run.

    One ``Run`` belongs to one trial and is used from one thread. ``log`` may buffer;
    everything logged is durable once the kernel returns. ``save`` may be called more
    than once (the last call wins) and writes atomically. A kernel that saves with a
    step (``checkpoint``) and asks for ``resume_state`` first resumes an interrupted
    trial where it was; any other restarts it.
    """

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step`` (an epoch or cycle index, increasing)."""

    def should_stop(self) -> bool:
        """True when the trial should end now (early termination, signal, stop request).

        Cheap to call every step: implementations rate-limit the real check.
        """

    def save(self, state: dict[str, Any], step: int | None = None) -> None:
        """Persist model state (state dicts, histories) as builtins and NumPy arrays, the
        only types ``srsweep.store.load`` unpickles (tensors: ``common.saved.to_numpy``).
        Hyperparameters and the logged metric history are added by the run itself.

        With ``step``, the state is one to resume from: it holds everything needed to
        train on after ``step`` (random generators' states included), and what was
        logged up to then; an interrupted trial's next attempt gets it from
        ``resume_state``."""

    def checkpoint(self, state: Callable[[], dict[str, Any]], step: int) -> None:
        """``save(state(), step)`` when a checkpoint is due: the run calls ``state`` at
        most every so many seconds, so calling this at every log step is cheap."""

    def resume_state(self) -> dict[str, Any] | None:
        """What this trial's interrupted previous attempt last saved with a step (the
        dict given to ``save``, plus ``resume_step``), or None: train from the start. A
        kernel that gets a state resumes from it: the run then holds the earlier
        attempt's logged rows up to ``resume_step`` and says it resumed."""


class RunRef(Protocol):
    """What a kernel may learn of another run (a ledger's ``RunRecord`` is one)."""

    id: str
    kernel: str
    state: str
    config: dict[str, Any]
    model_path: str | None


# run id -> that run; raises ``NotFoundError`` for an unknown id
Lookup = Callable[[str], RunRef]


class Entry:
    """A function named by module and attribute, imported on its first call, so that a
    kernel's record costs no torch import until the kernel trains."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self._fn: Callable[..., Any] | None = None

    def load(self) -> Callable[..., Any]:
        """The function itself, importing its module now (the agent does so before it
        sets torch's thread count, which needs torch imported)."""
        if self._fn is None:
            self._fn = getattr(importlib.import_module(self.module), self.name)
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Entry({self.module}:{self.name})"


@dataclass(frozen=True)
class Examples:
    """Configs the kernel contract suite (``srsweep.testing``) trains, as overrides of
    the kernel's defaults (``vary`` on top of ``smoke``). Every registered kernel
    declares them, so a new kernel is tested by the suite as soon as it is registered."""

    smoke: dict[str, Any]  # a run of about a second on one CPU thread
    nonfinite: dict[str, Any]  # a run whose loss turns NaN/inf: it must fail, saying so
    # packing kernels: overrides of smoke, for trials that share its pack key but differ
    # in what a pack lets differ (seed, learning rates, penalties); at least two
    vary: tuple[dict[str, Any], ...] = ()
    other_key: dict[str, Any] | None = None  # a trial with another pack key than smoke
    rtol: float = 1e-5  # packed vs solo, per logged value
    atol: float = 1e-7


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
    # every metric the kernel logs (a spec's metric.name is checked against it; empty:
    # not declared, nothing checked); the summary also holds ``runtime``
    logs: tuple[str, ...] = ()
    # Packing (optional): trials whose configs share a ``pack_key`` train together in
    # one batched model via ``train_packed(cfgs, runs)``, which returns, per trial, None
    # (finished or stopped on its run's request) or the exception that failed it alone
    # (e.g. ``KernelFailed`` for a non-finite loss, with the solo kernel's message). It
    # raises only for the whole pack: ``check_pack``'s ValueError, or ``KernelFailed``
    # when CUDA is asked for and absent. ``pack_key`` must not import torch.
    pack_key: Callable[[Any], Hashable] | None = None
    train_packed: Callable[[list[Any], list[Run]], list[BaseException | None]] | None = None
    # References to other runs (optional): ``resolve(cfg, lookup)`` returns ``cfg`` with
    # each run id it names replaced by that run's model file path, or raises
    # ``SpecError`` naming the key. ``lookup`` is None where no ledger is at hand (then
    # only paths are accepted). Called by ``create`` on probe trials and by the agent
    # before a trial trains; it reads no model file and imports no torch.
    resolve: Callable[[Any, Lookup | None], Any] | None = None
    # Loss landscape (optional): ``landscape(payload)`` rebuilds a saved run's network,
    # trajectory and losses (a ``Problem``) from its model
    # file's contents; kernels that save no trajectory leave it None.
    landscape: Callable[[dict[str, Any]], Problem] | None = None
    examples: Examples | None = None  # for the contract suite; required of every kernel


@dataclass
class Problem:
    """A saved run's network and losses, rebuilt from its model file (float64, CPU), as
    a kernel's ``landscape`` returns it to ``srsweep.analysis.landscape``.

    Attributes:
        model: The network; ``functional_call`` swaps its parameters.
        shapes: ``(name, shape)`` of each parameter, in the order of the flat vectors.
        trajectory: The initial then the saved weight vectors, (T, P).
        steps: SGD updates done at each trajectory row, (T,): 0 for the initial weights.
        final: Final weights, (P,).
        losses: Split name ("train", "test") -> loss of a batch of flat vectors
            (G, P) -> (G,).
        logged_loss: The loss the kernel logged at every step.
    """

    model: nn.Module
    shapes: list[tuple[str, tuple[int, ...]]]
    trajectory: torch.Tensor
    steps: npt.NDArray[Any]
    final: torch.Tensor
    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]]
    logged_loss: npt.NDArray[Any]


def check_pack(cfgs: list[Any], runs: list[Run], key: Callable[[Any], Hashable]) -> None:
    """What every ``train_packed`` asks of its arguments.

    Raises:
        ValueError: the lists differ in length or the configs do not share one ``key``.
    """
    if len(cfgs) != len(runs):
        raise ValueError(f"train_packed: {len(cfgs)} configs but {len(runs)} runs")
    if len({key(c) for c in cfgs}) > 1:
        raise ValueError("train_packed: the configs do not share one pack_key")
