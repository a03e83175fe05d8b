"""Trains the configs a kernel declares (``Kernel.examples``) for the kernel contract
suite (``srsweep.testing.kernel_contract``), and compares logged histories.

Each solo run is trained once per ``Trainer`` and reused: the suite checks that a
kernel is deterministic for a seed, which makes the reuse sound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import pytest

from srsweep.config import build
from srsweep.config import flatten
from srsweep.config import layered
from srsweep.errors import KernelFailed
from srsweep.errors import SpecError
from srsweep.kernels import Examples
from srsweep.kernels import Kernel
from srsweep.kernels import Run
from srsweep.testing.fakes import RecordingRun

__all__ = ["WALL_CLOCK", "Trainer", "assert_same_history", "examples_of", "unclocked"]

WALL_CLOCK = frozenset({"time"})  # logged seconds since the start: never reproducible

# what a kernel's ``train_packed`` is
Packed = Callable[[list[Any], list[Run]], list[BaseException | None]]


def examples_of(kernel: Kernel) -> Examples:
    """The kernel's ``Examples``; fails the calling test when the record declares none."""
    if kernel.examples is None:
        pytest.fail(
            f"kernel {kernel.name!r} declares no examples: declare them in its KERNEL "
            "record (examples=Examples(smoke=..., nonfinite=..., vary=..., other_key=...)) "
            "so that the kernel contract suite can train it",
            pytrace=False,
        )
    return kernel.examples


def _close(want: Any, got: Any, rtol: float, atol: float) -> bool:
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return want == got or abs(got - want) <= atol + rtol * abs(want)
    return bool(want == got)


def assert_same_history(
    want: RecordingRun, got: RecordingRun, rtol: float, atol: float, what: str
) -> None:
    """``got`` logged the steps and keys ``want`` logged, each value within
    ``atol + rtol * |want|`` (NaN matches NaN); ``WALL_CLOCK`` keys are not compared."""
    steps = [h["_step"] for h in got.history]
    assert steps == [h["_step"] for h in want.history], f"{what}: logged steps differ"
    for a, b in zip(want.history, got.history, strict=True):
        assert set(b) == set(a), f"{what}: step {a['_step']} logged other keys"
        for key in sorted(set(a) - WALL_CLOCK):
            assert _close(a[key], b[key], rtol, atol), (
                f"{what}: step {a['_step']}: {key} = {b[key]!r}, but {a[key]!r} alone "
                f"(rtol={rtol}, atol={atol})"
            )


def unclocked(run: RecordingRun) -> list[dict[str, Any]]:
    """The run's history without its ``WALL_CLOCK`` keys."""
    return [{k: v for k, v in h.items() if k not in WALL_CLOCK} for h in run.history]


class Trainer:
    """Builds and trains a kernel's example configs; each solo run is trained once."""

    def __init__(self, kernel: Kernel, examples: Examples) -> None:
        self.kernel, self.examples = kernel, examples
        self._solo: dict[str, tuple[RecordingRun, KernelFailed | None]] = {}

    def config(self, over: dict[str, Any]) -> Any:
        """The kernel's config: its defaults plus ``over`` (nested or dotted keys)."""
        return build(self.kernel.config, over, f"{self.kernel.name} examples")

    def on_smoke(self, over: dict[str, Any]) -> dict[str, Any]:
        """``over`` on top of the smoke example, as dotted keys."""
        return layered(self.examples.smoke, over)

    def solo(
        self, over: dict[str, Any], stop_after: int | None = None
    ) -> tuple[RecordingRun, KernelFailed | None]:
        """The run of ``over`` trained alone and the ``KernelFailed`` it raised, if any."""
        memo = f"{sorted(flatten(over).items())!r} stop_after={stop_after}"
        if memo not in self._solo:
            run, failed = RecordingRun(stop_after=stop_after), None
            try:
                self.kernel.train(self.config(over), run)
            except KernelFailed as e:
                failed = e
            self._solo[memo] = (run, failed)
        return self._solo[memo]

    def finished(self, over: dict[str, Any], stop_after: int | None = None) -> RecordingRun:
        """The solo run of ``over``, which must not fail."""
        run, failed = self.solo(over, stop_after)
        assert failed is None, f"{self.kernel.name}: {over} failed alone: {failed}"
        return run

    def packed(self) -> Packed:
        """The kernel's ``train_packed``; skips the test for a kernel that does not pack."""
        if self.kernel.train_packed is None or self.kernel.pack_key is None:
            pytest.skip(f"kernel {self.kernel.name!r} does not pack")
        return self.kernel.train_packed

    def pack(
        self, trials: list[dict[str, Any]], runs: Sequence[RecordingRun]
    ) -> list[BaseException | None]:
        """Train ``trials`` as one pack into ``runs``: one outcome per trial."""
        sinks: list[Run] = list(runs)
        out = self.packed()([self.config(t) for t in trials], sinks)
        assert len(out) == len(trials), f"train_packed returned {len(out)} outcomes"
        return out

    def key(self, over: dict[str, Any]) -> Any:
        """The pack key of ``over``; skips the test for a kernel that does not pack."""
        self.packed()
        assert self.kernel.pack_key is not None
        return self.kernel.pack_key(self.config(over))

    def vary(self) -> list[dict[str, Any]]:
        """The ``vary`` trials on top of smoke; at least two, all in smoke's pack."""
        trials = [self.on_smoke(v) for v in self.examples.vary]
        assert len(trials) >= 2, (
            f"kernel {self.kernel.name!r} packs: declare at least two Examples.vary trials"
        )
        smoke = self.key(self.examples.smoke)
        for v, trial in zip(self.examples.vary, trials, strict=True):
            assert self.key(trial) == smoke, f"Examples.vary {v}: not in smoke's pack"
        return trials

    def nonfinite_in_pack(self) -> dict[str, Any]:
        """Smoke plus those of nonfinite's values that keep smoke's pack key (a
        nonfinite example may name a shape or schedule of its own)."""
        smoke, key = flatten(self.examples.smoke), self.key(self.examples.smoke)
        kept: dict[str, Any] = {}
        for k, v in flatten(self.examples.nonfinite).items():
            try:
                same = self.key({**smoke, **kept, k: v}) == key
            except SpecError:
                same = False
            if same:
                kept[k] = v
        bad = {**smoke, **kept}
        assert self.solo(bad)[1] is not None, (
            f"{self.kernel.name}: nonfinite's values that keep smoke's pack key ({kept}) "
            "train without failing; declare an Examples.nonfinite that shares smoke's pack key"
        )
        return bad
