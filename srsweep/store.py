"""Model files: one joblib file per run, written atomically, read back by a restricted
unpickler that runs no code.

A file holds ``hyperparams`` (the full config), ``metrics`` (the logged history),
``summary`` and whatever state the kernel saved (state dicts and histories as NumPy
arrays). Unpickling a file can call any function Python can import, so ``load`` resolves
only the types such a file is made of (``ALLOWED``: builtins, ``OrderedDict``, NumPy
arrays, dtypes and scalars) and refuses the file on any other; ``save`` refuses to write
one, so that what it writes ``load`` reads back.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import re
import secrets
import socket
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import IO
from typing import Any

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper
from joblib.numpy_pickle import NumpyPickler
from joblib.numpy_pickle import NumpyUnpickler

from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError
from srsweep.errors import UnsafeFileError

__all__ = ["ALLOWED", "STALE_AFTER", "atomic_write", "load", "save", "sweep_stale_tmp"]


class _Refused(Exception):
    """What a file holds that ``load`` does not unpickle (the message names it)."""


# what joblib's NumpyArrayWrapper.__init__ sets
_WRAPPER_FIELDS = frozenset(
    ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
)


class _ArrayWrapper(NumpyArrayWrapper):  # type: ignore[misc]
    """joblib's stand-in for an array whose bytes follow it in the file, read only for a
    plain ``ndarray`` of a non-object dtype: an object array's elements are a second
    pickle, which joblib < 1.6 loads with an unrestricted ``pickle.load``."""

    def __setstate__(self, state: Any) -> None:  # BUILD may set the wrapper's fields only
        if not isinstance(state, dict) or not set(state) <= _WRAPPER_FIELDS:
            raise _Refused(f"a NumpyArrayWrapper with the state {str(state)[:200]}")
        self.__dict__.update(state)

    def read(self, unpickler: Any, *args: Any) -> Any:
        if self.subclass is not np.ndarray:
            raise _Refused(f"an array of type {self.subclass!r}")
        if not isinstance(self.dtype, np.dtype) or self.dtype.hasobject:
            raise _Refused(f"a numpy.ndarray of dtype {self.dtype}")
        return super().read(unpickler, *args)


# what numpy pickles a scalar (np.float64(1.0)) with: numpy.core.multiarray.scalar in
# numpy 1, numpy._core.multiarray.scalar in numpy 2; taken from numpy itself because
# importing numpy.core warns in numpy 2
_SCALAR = np.float64(0).__reduce__()[0]

# (module, name) a model file may name -> what it stands for when loaded
ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "set"): set,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapper,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,  # the wrapper's ``subclass``
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}
_KINDS = "builtins, OrderedDict and NumPy arrays, dtypes and scalars"  # ALLOWED in words


class _Unpickler(NumpyUnpickler):  # type: ignore[misc]
    """joblib's unpickler (arrays read from the bytes after their wrapper) with
    ``find_class`` limited to ``ALLOWED``; every callable a pickle can call comes
    through ``find_class`` (GLOBAL, STACK_GLOBAL, INST, OBJ and EXT opcodes)."""

    def __init__(self, path: Path, f: IO[bytes]) -> None:
        super().__init__(str(path), f, ensure_native_byte_order=True)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"a persistent id ({pid!r})")


class _Pickler(NumpyPickler):  # type: ignore[misc]
    """joblib's pickler that writes only what ``_Unpickler`` reads back."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        # the (module, name) pickle itself writes for a class or function
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        module = pickle.whichmodule(obj, name)  # type: ignore[attr-defined]  # not in typeshed
        if (module, name) not in ALLOWED:
            raise TypeError(
                f"a model file cannot hold {module}.{name} (store.load reads only {_KINDS}); "
                "convert tensors with .numpy() before saving"
            )
        super().save_global(obj, name)

    dispatch = NumpyPickler.dispatch.copy()
    dispatch[types.FunctionType] = save_global  # pickle's table holds its own save_global

    def save(self, obj: Any, *args: Any) -> None:
        if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
            raise TypeError("a model file cannot hold a numpy array of dtype object")
        super().save(obj, *args)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file.

    The file gets the mode a plain ``open`` gives it (0666 less the umask). The first
    write into a folder in this process removes what killed writers left there
    (``sweep_stale_tmp``), so an interrupted write costs no disk for long.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:
        _swept.add(path.parent)
        sweep_stale_tmp(path.parent)
    tmp = _temp_file(path)
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# A temporary file names its writer, ``.NAME.PID@HOST.TOKEN.tmp``, so that a later
# process can tell whether the writer is gone; older srsweeps wrote ``.NAME.XXXXXXXX.tmp``
# (``tempfile.mkstemp``).
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[^@/]+)\.[0-9a-f]{8}\.tmp$")
_OLD_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")
STALE_AFTER = 60.0  # seconds: a temporary file of a writer this process cannot check
_swept: set[Path] = set()  # folders this process has swept already


def _host() -> str:
    return socket.gethostname().replace("@", "_").replace("/", "_")[:64] or "localhost"


def _temp_file(path: Path) -> Path:
    """A new, empty temporary file beside ``path``, made as ``open`` makes a file (its
    mode follows the umask, where ``tempfile.mkstemp`` makes 0600)."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}@{_host()}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_tmp(folder: Path, *, age: float = STALE_AFTER) -> list[Path]:
    """Remove the temporary files of ``atomic_write`` whose writer is gone: those of a
    dead process of this host, and those older than ``age`` seconds whose writer cannot
    be checked (another host's, on a shared file system, or an older srsweep's).

    Returns:
        The files removed.
    """
    now, host = time.time(), _host()
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp"]
    except OSError:  # no such folder, or not readable: nothing of ours to remove
        return []
    removed = []
    for p in names:
        m = _TEMP.match(p.name)
        try:
            if m is not None and m["host"] == host:
                stale = not _alive(int(m["pid"]))
            elif m is not None or _OLD_TEMP.match(p.name):
                stale = now - p.stat().st_mtime > age
            else:
                continue  # not a file atomic_write made
            if stale:
                p.unlink()
                removed.append(p)
        except OSError:  # gone already (its writer renamed it), or not ours to remove
            continue
    return removed


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` as an uncompressed joblib file, atomically.

    Raises:
        TypeError: ``payload`` holds something ``load`` would refuse (a torch tensor,
            any object but builtins, ``OrderedDict`` and NumPy arrays and scalars).
    """
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            _Pickler(f).dump(payload)

    atomic_write(path, write)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a model file without running code from it: only ``ALLOWED`` types are
    unpickled.

    Raises:
        NotFoundError: no such file.
        UnsafeFileError: the file names a type outside ``ALLOWED`` (a file srsweep did
            not write, or one with torch tensors from before they were saved as NumPy
            arrays); names the path and the type. Nothing of the file is used.
        CorruptFileError: truncated or not a srsweep model file; names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such model file")
    try:
        with path.open("rb") as f:
            head = f.read(2)
            # protocol 2+ pickles open with PROTO and the protocol number
            if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= 5:
                raise CorruptFileError(
                    f"{path}: cannot read model file (no pickle header); "
                    "it is not an uncompressed joblib file"
                )
            f.seek(0)
            payload = _Unpickler(path, f).load()
    except _Refused as e:
        # a file from before kernels saved NumPy arrays holds torch tensors
        torch = str(e).startswith("torch")
        old = "; it is from an older srsweep: train the run again" if torch else ""
        raise UnsafeFileError(
            f"{path}: refused to load {e}: a srsweep model file holds only {_KINDS}, and "
            f"unpickling anything else can run code; nothing of it was used{old}"
        ) from None
    except CorruptFileError:
        raise
    except Exception as e:  # pickle raises many types for a damaged file
        raise CorruptFileError(
            f"{path}: cannot read model file ({type(e).__name__}: {e}); "
            "it is truncated or not a joblib file"
        ) from None
    if not isinstance(payload, dict) or "hyperparams" not in payload:
        raise CorruptFileError(f"{path}: not a srsweep model file (no 'hyperparams')")
    return payload
