"""The training kernels, by name: ``MODULES`` maps each name to the package whose
``KERNEL`` record describes it.

Adding a kernel is one package and one line: write ``srsweep/kernels/<name>/`` (its
``KERNEL`` record, with ``examples=Examples(...)``, in ``__init__.py``; a torch-free
``config.py``; ``solo.py`` and, if it packs, ``packed.py``; its own helpers), then add
``"<name>": "srsweep.kernels.<name>"`` to ``MODULES``. The kernel contract suite
(``srsweep.testing.kernel_contract``) then tests it with every other kernel. Kernels
of your own, outside this package, are registered with
``SRSWEEP_KERNELS="name=package.module,..."`` (srsweep's tests register their toy
kernel so).

Nothing here imports torch: a record is imported by ``get``, and the training paths
it names (``Entry``) on their first call, so ``create``, ``kernels`` and ``status``
never load torch.
"""

from __future__ import annotations

import importlib
import os

from srsweep.errors import NotFoundError
from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels._base import Lookup
from srsweep.kernels._base import Problem
from srsweep.kernels._base import Run
from srsweep.kernels._base import RunRef
from srsweep.kernels._base import check_pack

__all__ = [
    "MODULES",
    "Entry",
    "Examples",
    "Kernel",
    "Lookup",
    "Problem",
    "Run",
    "RunRef",
    "check_pack",
    "get",
    "names",
]

# name -> the module (a package) defining that kernel's ``KERNEL``
MODULES: dict[str, str] = {
    "lazy": "srsweep.kernels.lazy",
    "sd": "srsweep.kernels.sd",
    "srnet": "srsweep.kernels.srnet",
    "stn": "srsweep.kernels.stn",
}


def _registered() -> dict[str, str]:
    """``MODULES`` plus the ``SRSWEEP_KERNELS`` entries (they win on a shared name)."""
    mods = dict(MODULES)
    for item in os.environ.get("SRSWEEP_KERNELS", "").split(","):
        name, sep, module = item.partition("=")
        if sep and name.strip() and module.strip():
            mods[name.strip()] = module.strip()
    return mods


def names() -> list[str]:
    """The registered kernels' names, sorted."""
    return sorted(_registered())


def get(name: str) -> Kernel:
    """The kernel called ``name``.

    Raises:
        NotFoundError: no such kernel; the message lists the known ones.
    """
    mods = _registered()
    if name not in mods:
        raise NotFoundError(f"unknown kernel {name!r}; known kernels: {', '.join(names())}")
    try:
        kernel: Kernel = importlib.import_module(mods[name]).KERNEL
    except (ImportError, AttributeError) as e:
        raise NotFoundError(f"kernel {name!r}: cannot load {mods[name]}.KERNEL ({e})") from None
    return kernel
