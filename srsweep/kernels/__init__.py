"""The training kernels, by name. Modules load lazily: torch is imported only when a
kernel is actually used, so ``srsweep --help`` stays fast."""

from __future__ import annotations

import importlib
import os

from srsweep.errors import NotFoundError
from srsweep.kernels._base import Entry
from srsweep.kernels._base import Examples
from srsweep.kernels._base import Kernel
from srsweep.kernels._base import Lookup
from srsweep.kernels._base import Run
from srsweep.kernels._base import RunRef

__all__ = ["Entry", "Examples", "Kernel", "Lookup", "Run", "RunRef", "get", "names"]

# name -> module defining ``KERNEL``
_MODULES = {
    "sd": "srsweep.kernels.sd",
    "stn": "srsweep.kernels.stn",
    "lazy": "srsweep.kernels.lazy",
    "srnet": "srsweep.kernels.srnet",
}


def _modules() -> dict[str, str]:
    """Built-in kernels plus ``SRSWEEP_KERNELS="name=package.module,..."`` (your own
    kernels: a module defining ``KERNEL``)."""
    mods = dict(_MODULES)
    for item in os.environ.get("SRSWEEP_KERNELS", "").split(","):
        name, sep, module = item.partition("=")
        if sep and name.strip() and module.strip():
            mods[name.strip()] = module.strip()
    return mods


def names() -> list[str]:
    return sorted(_modules())


def get(name: str) -> Kernel:
    """The kernel called ``name``.

    Raises:
        NotFoundError: no such kernel; the message lists the known ones.
    """
    mods = _modules()
    if name not in mods:
        raise NotFoundError(f"unknown kernel {name!r}; known kernels: {', '.join(names())}")
    try:
        kernel: Kernel = importlib.import_module(mods[name]).KERNEL
    except (ImportError, AttributeError) as e:
        raise NotFoundError(f"kernel {name!r}: cannot load {mods[name]}.KERNEL ({e})") from None
    return kernel
