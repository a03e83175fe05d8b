"""Time left, for the agent's progress lines: a trial's from its own rate so far, and
the sweep's from the trials this agent finished.

Estimates are shown only where there is something to go on: a trial needs a known
number of steps and one logged step past the first; a sweep needs a known size (a grid,
``run_cap``, or the agent's ``--count``) and a duration to multiply (a finished trial's,
else the running trial's projected one).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

__all__ = ["SweepEta", "duration_text", "trial_left"]


def trial_left(elapsed: float, step: int, steps: int | None) -> float | None:
    """Seconds a trial still needs at its rate so far: it took ``elapsed`` seconds to
    reach ``step`` of ``steps``; None when the number of steps is unknown or no step
    has passed yet."""
    if not steps or step <= 0:
        return None
    return elapsed * max(steps - step, 0) / step


def duration_text(seconds: float) -> str:
    """Compact, rounded: ``45s``, ``12m``, ``3h05m``, ``2.5d``."""
    if seconds < 59.5:
        return f"{seconds:.0f}s"
    if seconds < 59.5 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours}h{minutes:02d}m"
    return f"{seconds / 86400:.1f}d"


@dataclass
class SweepEta:
    """What the agent knows of the trials ahead of it.

    ``pack`` trials run at once; ``waiting`` trials are still to start after the ones
    running (None: the sweep's size is unknown); ``durations`` are the run times of the
    trials this agent finished.
    """

    pack: int = 1
    waiting: int | None = None
    durations: list[float] = field(default_factory=list)

    def sweep_left(self, elapsed: float, trial: float | None) -> float | None:
        """Seconds until the sweep is done, seen from a running trial ``elapsed``
        seconds in with ``trial`` seconds left (None: unknown): the running trials'
        time left, then the waiting ones in packs of the mean duration."""
        if self.waiting is None:
            return None
        if self.durations:
            mean = sum(self.durations) / len(self.durations)
        elif trial is not None:
            mean = elapsed + trial
        else:
            return None
        now = trial if trial is not None else max(mean - elapsed, 0.0)
        return now + mean * self.waiting / max(self.pack, 1)

    def text(self, elapsed: float, step: int, steps: int | None) -> str:
        """``"~3m left, sweep ~20m left"`` for a trial at ``step`` of ``steps``, each
        part only when known (``""`` when neither is)."""
        trial = trial_left(elapsed, step, steps)
        sweep = self.sweep_left(elapsed, trial)
        parts = [] if trial is None else [f"~{duration_text(trial)} left"]
        if sweep is not None:
            parts.append(f"sweep ~{duration_text(sweep)} left")
        return ", ".join(parts)
