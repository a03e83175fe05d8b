"""``stn``'s packed path: many self-tuning nets of one shape hypertrained as one stacked
model, each trial still logged, stopped, failed and saved as its own run (seeds 000, 001).

Every trial keeps its own CPU generator, seeded as the solo ``train`` seeds it, and draws
from it exactly what it would draw alone (the init, the warm-up noise, then blocks of
cycles), so its history equals the same trial trained alone within float tolerance.
Per trial may differ: seed, learning rates, Adam eps, entropy weight, init x_range and
scale, t's interval, eval and validation ranges, threshold, ``max_cycles`` and
``log_every``; what shapes the tensors or the step schedule is in ``pack_key``.

The stacked model is ``srsweep.kernels.stn.stack.Pack``. One host sync per cycle (the
stop rule needs every trial's dist). A trial that converges, reaches its
``max_cycles``, is asked to stop or turns NaN/inf leaves, and the pack is re-stacked
without it; until then its NaNs stay in its own rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from srsweep.kernels._base import check_pack
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.stn.config import pack_key
from srsweep.kernels.stn.hypernet import BLOCK
from srsweep.kernels.stn.records import NAMES
from srsweep.kernels.stn.records import TRAJ
from srsweep.kernels.stn.records import failure
from srsweep.kernels.stn.records import metrics
from srsweep.kernels.stn.records import saved
from srsweep.kernels.stn.stack import Pack

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.stn.config import STNConfig

__all__ = ["train_packed"]


class _Trial:
    """One trial's run, its per-cycle records and how it ended."""

    def __init__(self, index: int, cfg: STNConfig, run: Run) -> None:
        self.index, self.cfg, self.run = index, cfg, run
        self.records: list[list[float]] = []
        self.converged, self.reason = False, "max_cycles"

    def record(self, vals: list[float], cycle: int) -> bool:
        """Check, keep and (at the solo ``train``'s log steps) log one cycle's record; True
        while the trial goes on.

        Raises:
            KernelFailed: a value in the record is NaN/inf.
        """
        cfg = self.cfg
        if not all(map(math.isfinite, vals)):
            bad = [k for k, v in zip(NAMES, vals, strict=True) if not math.isfinite(v)]
            raise failure(cfg, ", ".join(bad), f"at cycle {cycle}")
        self.records.append(vals)
        self.converged = vals[4] < cfg.dist_threshold
        last = self.converged or cycle == cfg.max_cycles - 1
        if cycle % cfg.log_every and not last:
            return True
        named = dict(zip(NAMES, vals, strict=True))
        self.run.log(metrics(cfg, named, self.converged, cycle), step=cycle)
        if self.converged:
            self.reason = "converged"
        elif self.run.should_stop():
            self.reason = "stopped"
        return self.reason == "max_cycles" and not last

    def save(self, pack: Pack, row: int) -> None:
        cols = [NAMES.index(k) for k in TRAJ]
        traj = {k: [r[j] for r in self.records] for k, j in zip(TRAJ, cols, strict=True)}
        st = pack.state(row)
        grid = pack.grid(row)
        self.run.save(
            saved(st["model"], st["unc"], st["s"], traj, grid, self.converged, self.reason)
        )


def train_packed(cfgs: list[STNConfig], runs: list[Run]) -> list[BaseException | None]:
    """Hypertrain ``cfgs`` as one stacked model, each trial logging and saving to its run.

    Each trial logs the metrics the solo ``train`` logs at the same cycles, and saves the same
    state, equal to the trial trained alone within float tolerance. A trial's
    ``run.should_stop()`` is asked at its log steps; a trial that converges, ends its
    cycles or is stopped is saved there and leaves the pack.

    Returns and raises as ``check_pack`` and ``Kernel.train_packed`` (``_base.py``) say.
    """
    check_pack(cfgs, runs, pack_key)
    if not cfgs:
        return []
    pack = Pack(list(cfgs), resolve_device(cfgs[0].device))
    trials = [_Trial(t, c, r) for t, (c, r) in enumerate(zip(cfgs, runs, strict=True))]
    outcome: list[BaseException | None] = [None] * len(cfgs)
    if cfgs[0].warmup_steps:
        warm = pack.warm_up(cfgs[0].warmup_steps).tolist()  # (n, steps)
        for tr, losses in zip(trials, warm, strict=True):
            if not all(map(math.isfinite, losses)):
                outcome[tr.index] = failure(tr.cfg, "training loss", "during warm-up")
        stay = [row for row, tr in enumerate(trials) if outcome[tr.index] is None]
        if len(stay) < len(trials):
            trials = [trials[r] for r in stay]
            if stay:
                pack.keep(stay)
    for cycle in range(max(c.max_cycles for c in cfgs)):
        if not trials:
            break
        if cycle % BLOCK == 0:
            pack.draw(cycle)
        records = pack.cycle(cycle % BLOCK).tolist()  # one host sync per cycle
        stay = []
        for row, (tr, vals) in enumerate(zip(trials, records, strict=True)):
            try:
                if tr.record(vals, cycle):
                    stay.append(row)
                    continue
                tr.save(pack, row)
            except Exception as e:  # this trial failed (its values, or its run's I/O): it alone
                outcome[tr.index] = e
        if len(stay) < len(trials):
            trials = [trials[r] for r in stay]
            if stay:
                pack.keep(stay)
    return outcome
