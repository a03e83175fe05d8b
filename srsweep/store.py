"""Model files: one joblib file per run, written atomically, read back with clear errors.

A file holds ``hyperparams`` (the full config), ``metrics`` (the logged history),
``summary`` and whatever state the kernel saved (state dicts, per-epoch histories).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import joblib

from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError

__all__ = ["save", "load", "atomic_write"]


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` with joblib, atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: joblib.dump(payload, tmp))
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a model file.

    Raises:
        NotFoundError: no such file.
        CorruptFileError: truncated or not a srsweep model file; names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such model file")
    try:
        payload = joblib.load(path)
    except Exception as e:  # joblib/pickle raise many types for a damaged file
        raise CorruptFileError(
            f"{path}: cannot read model file ({type(e).__name__}: {e}); "
            "it is truncated or not a joblib file"
        ) from None
    if not isinstance(payload, dict) or "hyperparams" not in payload:
        raise CorruptFileError(f"{path}: not a srsweep model file (no 'hyperparams')")
    return payload
