"""Model state as a model file holds it: NumPy arrays, not torch tensors.

``srsweep.store`` unpickles no torch objects (a pickled tensor's storage is read back by
``torch.load`` with full pickle), so kernels hand ``Run.save`` their state through
``to_numpy`` and turn a loaded state dict back into tensors with ``to_tensors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["to_numpy", "to_tensors"]


def to_numpy(obj: Any) -> Any:
    """``obj`` with every tensor in it (in dicts, lists, tuples) detached, copied to the
    CPU and made a NumPy array; a 0-d tensor (an optimiser's ``step``) a 0-d array."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    return obj


def to_tensors(obj: Any) -> Any:
    """``to_numpy`` undone: every NumPy array in ``obj`` a CPU tensor, so that a loaded
    state dict (a module's or an optimiser's) goes into ``load_state_dict``."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {k: to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_tensors(v) for v in obj)
    return obj
