"""One ``sd`` trial trained alone (seed 003, step 15): each epoch a fresh untrained
generator's latents against library draws, ``disc.iters`` critic steps on them.

Follows the study-time code of ``fabxy/symrep`` as described in
``../shared/reference/symrep.md`` sections 1, 2, 4-9. ``packed`` trains several trials
at once and must equal this, trial by trial, within float tolerance.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any

import torch

from srsweep.kernels.common.nets import critic_steps
from srsweep.kernels.common.nets import resolve_device
from srsweep.kernels.common.optim import Adam
from srsweep.kernels.sd.config import library
from srsweep.kernels.sd.model import draws_generator
from srsweep.kernels.sd.model import log_epochs
from srsweep.kernels.sd.model import make_batch
from srsweep.kernels.sd.model import make_critic
from srsweep.kernels.sd.model import resume_from
from srsweep.kernels.sd.model import saved_state
from srsweep.kernels.sd.model import train_inputs

if TYPE_CHECKING:
    from srsweep.kernels._base import Run
    from srsweep.kernels.sd.config import SDConfig

__all__ = ["train"]


def train(cfg: SDConfig, run: Run) -> None:
    """Train the critic for ``cfg.epochs`` epochs (or until stopped) and save it, with a
    checkpoint to resume from at log steps (``Run.checkpoint``). An interrupted trial's
    next attempt resumes from its last checkpoint and trains exactly as the trial would
    have gone on (same critic, optimiser and random streams).

    Raises:
        KernelFailed: a critic loss term became NaN/inf, or CUDA was requested but absent.
    """
    device = resolve_device(cfg.device)
    lib = library(cfg.fun_lib)
    x = train_inputs(cfg, device)  # (N, in)
    critic = make_critic(cfg, len(x)).to(device)
    d = cfg.disc
    # torch's fused Adam (one kernel for all parameters: the per-step optimiser overhead
    # dominated these tiny critics), without torch.optim's 2-3 s import of torch._dynamo
    opt = Adam(critic.parameters(), lr=d.lr, weight_decay=d.wd, betas=d.betas)
    # One CPU generator for every per-epoch draw: the same seed then gives the same
    # generators, library samples and penalty mixes on CPU and on GPU.
    gen = draws_generator(cfg)
    tot_accs: list[float] = []
    times: list[float] = []
    done = -1  # the last epoch done before this attempt
    if (resume := run.resume_state()) is not None:
        done = resume_from(resume, critic, opt, gen, tot_accs, times)
    pending: list[torch.Tensor] = []  # per-epoch records still on the device
    t0 = time.perf_counter() - (times[-1] if times else 0.0)

    def state() -> dict[str, Any]:
        return saved_state(cfg, critic.state_dict(), opt.state_dict(), gen, tot_accs, times)

    epoch = done  # the last epoch done: what is saved, once the loop ends
    for epoch in range(done + 1, cfg.epochs):
        reals, fake = make_batch(cfg, lib, x, gen)
        correct, terms, bad = critic_steps(
            critic, opt, reals, fake, iters=d.iters, loss=d.loss, gp=d.gp, generator=gen
        )
        pending.append(torch.cat([correct.to(terms.dtype).view(1), terms, bad.to(terms.dtype)]))
        times.append(time.perf_counter() - t0)
        last = epoch == cfg.epochs - 1 or (cfg.runtime is not None and times[-1] > cfg.runtime)
        if epoch % cfg.log_freq != 0 and not last:
            continue
        # One host sync per log: read back the pending epochs and check them.
        records = torch.stack(pending).cpu().tolist()
        pending.clear()
        log_epochs(cfg, run, records, epoch - len(records) + 1, tot_accs, times[-1])
        if last or run.should_stop():
            break
        run.checkpoint(state, epoch)
    run.save(state(), epoch)
