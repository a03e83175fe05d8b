"""How claimed trials share the hardware: how many to claim at once and among how many
suggestions (those that share a pack key are claimed together), which of them train
as one batched model (a pack), and how many torch threads a trial or pack gets."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from srsweep import config as _config

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord
    from srsweep.kernels import Kernel

__all__ = [
    "DEFAULT_CUDA_PACK",
    "candidates",
    "cpu_pack_threads",
    "groups",
    "limit_threads",
    "pack_size",
    "params_key",
    "threads_note",
]

DEFAULT_CUDA_PACK = 64
CANDIDATES_PER_TRIAL = 32  # suggestions a packed claim may draw per trial it takes
MAX_CANDIDATES = 2048


def pack_size(kernel: Kernel, pack: int | None, echo: Callable[[str], None]) -> int:
    """``--pack`` as asked, or by default 64 trials per pack on CUDA (where one tiny
    trial leaves the GPU idle) and 1 on CPU."""
    if kernel.train_packed is None:
        if pack is not None and pack > 1:
            echo(f"note: kernel {kernel.name} does not pack trials; running them one by one")
        return 1
    if pack is not None:
        return pack
    torch = sys.modules.get("torch")
    return DEFAULT_CUDA_PACK if torch is not None and torch.cuda.is_available() else 1


def params_key(kernel: Kernel) -> Callable[[dict[str, Any]], Hashable] | None:
    """The kernel's ``pack_key`` of a trial's params (a bad config: a key of its own,
    so it runs alone); None when the kernel has no pack key."""
    pack_key = kernel.pack_key
    if pack_key is None:
        return None

    def key(params: dict[str, Any]) -> Hashable:
        try:
            return pack_key(_config.build(kernel.config, params, "pack"))
        except Exception:
            return ("alone", object())

    return key


def candidates(spec: dict[str, Any], n: int) -> int:
    """How many suggestions a claim of ``n`` packed trials chooses among, at most: 32
    per trial, up to 2048. A random draw of the sd study's 16 critic shapes costs ~1.3
    ms and its pack key ~1 ms; one shape fills a pack of 16 from ~500 draws and of 64
    from ~2000 (``benchmarks/bench_pack_fill.py``). A bayes sweep takes its ``n``
    suggestions as they come: each of its draws fits a model to the runs (~0.4 s for
    60 sd runs), more than a fuller pack is worth."""
    if spec.get("method") == "bayes":
        return n
    return min(CANDIDATES_PER_TRIAL * n, MAX_CANDIDATES)


def groups(kernel: Kernel, records: list[RunRecord]) -> list[list[RunRecord]]:
    """Claimed trials grouped by the kernel's ``pack_key`` (a bad config: alone)."""
    key = params_key(kernel)
    if key is None or len(records) == 1:
        return [[r] for r in records]
    found: dict[Hashable, list[RunRecord]] = {}
    for r in records:
        found.setdefault(key(r.params), []).append(r)
    return list(found.values())


def limit_threads(packed: bool, peers: Callable[[], int] = lambda: 1) -> int | None:
    """Torch intra-op threads: ``SRSWEEP_THREADS`` if set; else ``cpu_pack_threads()``
    for a pack trained on the CPU (its batched matmuls use them: sd, stn and lazy packs
    ran 1.2-1.5x faster on 2 cores than on one; ``make bench``) and one otherwise (these
    nets are tiny: on a 2-core box two threads ran a single sd trial slower than one, and
    on a CUDA node the GPU does the work while several agents may share the CPU).
    ``peers()`` counts the srsweep agents on this host training now, this one included;
    it is asked only for a CPU pack. Returns the count set for a CPU pack, else None."""
    if "torch" not in sys.modules:  # only kernels import torch; don't pay for it otherwise
        return None
    torch = sys.modules["torch"]
    env = os.environ.get("SRSWEEP_THREADS")
    cpu_pack = packed and not torch.cuda.is_available()
    threads = int(env) if env else cpu_pack_threads(peers()) if cpu_pack else 1
    torch.set_num_threads(threads)
    return threads if cpu_pack else None


def cpu_pack_threads(peers: int = 1) -> int:
    """Threads for a CPU pack: every core this process may run on; when that is the
    whole machine, its share among the ``peers`` srsweep agents training on this host
    (this one included; the ledger knows them by their leases), and one core less for
    each task of another process that is runnable now, whichever is fewer; one at least.
    OpenMP threads that wait on a descheduled sibling make an oversubscribed machine far
    slower than one thread: an sd ``--pack 8`` beside one busy loop on 2 cores took 18 s
    on both cores and 1 s on one (``benchmarks/bench_oversub.py``). A narrower mask
    (SLURM, taskset) was given to this process, so its cores are used whatever the rest
    of the machine does (``srsweep launch`` gives each agent its share itself).
    """
    cores = _cores()
    if cores != os.cpu_count():
        return cores
    share = cores // max(1, peers)
    return max(1, min(share, cores - round(_competing())))


def threads_note(threads: int) -> str:
    """A CPU pack's thread count and what chose it, for the agent's progress line."""
    cores = _cores()
    if os.environ.get("SRSWEEP_THREADS"):
        return f"{threads} CPU thread(s) (SRSWEEP_THREADS)"
    if threads == cores:
        return f"{threads} CPU thread(s)"
    return f"{threads} of {cores} CPU threads (shared with other work on this host)"


def _cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _competing(samples: int = 5, gap: float = 0.01) -> float:
    """Tasks of other processes runnable now: the machine's runnable count less this
    process's runnable threads, the median of ``samples`` looks ``gap`` seconds apart (a
    passing command does not count, a busy one does). Where Linux's ``/proc`` is not,
    the load average over the last minute (this process's own load included); else 0."""
    seen = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            break
        seen.append(running - _own_running())
        if i + 1 < samples:
            time.sleep(gap)
    if seen:
        return max(0.0, statistics.median(seen))
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def _own_running() -> int:
    """This process's threads that are runnable now (the caller's among them)."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        running += text[text.rindex(")") + 2 :].startswith("R")
    return max(1, running)
