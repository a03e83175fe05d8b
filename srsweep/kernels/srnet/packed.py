"""Packed ``srnet`` trials: SRNets (and their co-trained critics) of one shape trained as
one stacked model, each trial still logged, stopped, failed and saved as its own run.

The parameters of T trials are stacked ``[T, ...]`` (``stack.py``) and updated with
``StackedAdam`` (torch's fused Adam per trial, each trial its own lr/betas/weight
decay). No reduction crosses trials, so a trial whose loss turns NaN/inf keeps the
NaNs in its own rows and fails alone, at the log where the solo ``train`` raises and with
its message. A trial that stops or fails leaves the pack, which is re-stacked without it.

Per trial may differ: seed (init, critic init and library draws), lr, wd, sd (> 0),
sd_fun, the regulariser weights (which of l1, a1/a2, e1 are on is in the key), and the
critic's lr, wd and betas. What shapes the stack or the schedule (architecture, data,
epochs, log_freq, runtime, device, critic shape/mode/iters/loss, extras, library) is in
``pack_key``. Not packed: a fixed critic (``disc.from_run``) and a gradient penalty
(``disc.gp > 0``): their keys are the whole config, and a pack of them (only identical
configs) trains each trial with the kernel's solo ``train`` (``KERNEL.train``), one
after another.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from srsweep.kernels._base import check_pack
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.srnet import KERNEL
from srsweep.kernels.srnet import shared
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.config import pack_key
from srsweep.kernels.srnet.config import packable
from srsweep.kernels.srnet.stack import Pack
from srsweep.kernels.srnet.stack import Trial

if TYPE_CHECKING:
    from srsweep.kernels._base import Run

__all__ = ["train_packed"]


def train_packed(cfgs: list[SRNetConfig], runs: list[Run]) -> list[BaseException | None]:
    """Train ``cfgs`` as one stacked model, each trial logging and saving to its ``run``.

    Each trial logs the solo ``train``'s metrics at its steps and saves its state keys, equal
    to the trial trained alone within float tolerance. A trial's ``run.should_stop()`` is
    asked at its log steps; a stopped trial is saved there and leaves the pack.

    Returns and raises as ``check_pack`` and ``Kernel.train_packed`` (``_base.py``) say.
    """
    check_pack(cfgs, runs, pack_key)
    if not cfgs:
        return []
    outcome: list[BaseException | None] = [None] * len(cfgs)
    c0 = cfgs[0]
    if not packable(c0):  # fixed critic or gradient penalty: each trial alone
        for t, (cfg, run) in enumerate(zip(cfgs, runs, strict=True)):
            try:
                KERNEL.train(cfg, run)
            except Exception as e:
                outcome[t] = e
        return outcome
    device = resolve_device(c0.device)
    x, y, _ = shared.rows(c0, "train", device)
    xv, yv, gv = shared.rows(c0, "val", device)
    split = (x, y, xv, yv, gv)
    pack = Pack(list(cfgs), device)
    trials = [
        Trial(c, r, torch.Generator().manual_seed(c.seed)) for c, r in zip(cfgs, runs, strict=True)
    ]
    pending: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for epoch in range(c0.epochs):
        pending.append(pack.step([trials[t] for t in pack.ids], x, y))
        elapsed = time.perf_counter() - t0
        last = epoch == c0.epochs - 1 or (c0.runtime is not None and elapsed > c0.runtime)
        if epoch % c0.log_freq != 0 and not last:
            continue
        records = torch.stack(pending, 1).cpu().tolist()  # (T, E, 8): one host sync
        pending.clear()
        evals = pack.evaluate(xv, yv, gv)
        stay, done = [], []
        for row, t in enumerate(pack.ids):
            tr, cfg = trials[t], trials[t].cfg
            try:
                recs = records[row]
                shared.check(recs, epoch - len(recs) + 1, cfg)
                tr.train_loss += [r[0] for r in recs]
                loss, pred_loss, l_sd, p_mean, ok, l_r, l_f, pen = recs[-1]
                val_loss, corr = evals[row]
                log = {
                    "epoch": epoch,
                    "time": elapsed,
                    "train_loss": loss,
                    "pred_loss": pred_loss,
                    "val_loss": val_loss,
                    "min_corr": shared.min_corr(corr),
                }
                if pack.use_sd:
                    share = abs(l_sd) / max(abs(l_sd) + abs(pred_loss), 1e-30)
                    log.update(disc_preds=p_mean, disc_loss=l_sd, sd_share=share)
                    log.update(
                        critic_acc=ok / (cfg.disc.iters * 2 * cfg.arch.lat_size),
                        critic_loss=l_r + l_f + cfg.disc.gp * pen,
                    )
                values = (val_loss, corr, p_mean, l_sd, elapsed)
                for key, value in zip(tr.logs, values, strict=True):
                    tr.logs[key].append(value)
                tr.run.log(log, step=epoch)
                if not last and not tr.run.should_stop():
                    stay.append(row)
                    continue
                done.append(row)
            except Exception as e:  # this trial failed (its loss, or its run's I/O): it alone
                outcome[t] = e
        for row in done:
            try:
                pack.save(row, trials[pack.ids[row]], split)
            except Exception as e:
                outcome[pack.ids[row]] = e
        if not stay:
            break
        if len(stay) < len(pack.ids):
            pack.keep(stay)
    return outcome
