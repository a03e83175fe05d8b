from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from srsweep import store
from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError
from srsweep.errors import UnsafeFileError


def test_roundtrip_and_no_temp_left(tmp_path):
    path = tmp_path / "m" / "run.joblib"
    store.save(path, {"hyperparams": {"a": 1}, "metrics": [{"_step": 0}]})
    assert store.load(path)["hyperparams"] == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["run.joblib"]


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "run.joblib"
    store.save(path, {"hyperparams": {"v": 1}})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.save(path, {"hyperparams": {"v": 2}, "x": Unpicklable()})
    assert store.load(path)["hyperparams"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.joblib"]


def test_truncated_file_is_reported_by_path(tmp_path):
    path = tmp_path / "run.joblib"
    store.save(path, {"hyperparams": {"v": list(range(1000))}})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CorruptFileError, match=f"{path}: cannot read model file"):
        store.load(path)


def test_foreign_and_missing_files(tmp_path):
    joblib.dump([1, 2], tmp_path / "x.joblib")
    with pytest.raises(CorruptFileError, match="not a srsweep model file"):
        store.load(tmp_path / "x.joblib")
    with pytest.raises(NotFoundError, match="no such model file"):
        store.load(tmp_path / "missing.joblib")


# --- the restricted loader ------------------------------------------------------------

CodeFile = tuple[Path, str, Path]


def test_code_file_runs_code_under_plain_joblib(code_file: CodeFile) -> None:
    """The fixture the refusals below are tested with does run code when unpickled
    without restriction: what they refuse is a real attack."""
    path, _, marker = code_file
    joblib.load(path)
    assert marker.exists()


def test_file_that_would_run_code_is_refused_naming_the_type(code_file: CodeFile) -> None:
    path, refused, marker = code_file
    with pytest.raises(UnsafeFileError) as err:
        store.load(path)
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"{path}: refused to load {refused}: ")
    assert "nothing of it was used" in str(err.value)
    assert not marker.exists()


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (np.array([1, None], dtype=object), "a numpy.ndarray of dtype object"),
        (np.ma.masked_array([1.0]), "numpy.ma.core._mareconstruct"),
        (collections.Counter(a=1), "collections.Counter"),
        (range(3), "builtins.range"),
    ],
    ids=["object-array", "array-subclass", "other-class", "other-builtin"],
)
def test_types_outside_the_allowed_ones_are_refused(tmp_path, value, refused):
    path = tmp_path / "run.joblib"
    joblib.dump({"hyperparams": {}, "x": value}, path)
    with pytest.raises(
        UnsafeFileError, match=f"^{re.escape(f'{path}: refused to load {refused}: ')}"
    ):
        store.load(path)


def test_object_array_elements_are_not_unpickled(tmp_path):
    # joblib < 1.6 reads an object array's elements with an unrestricted pickle.load
    marker = tmp_path / "MARKER"
    path = tmp_path / "run.joblib"
    joblib.dump({"hyperparams": {}, "x": np.array([_Touch(marker), 1], dtype=object)}, path)
    with pytest.raises(UnsafeFileError, match="refused to load a numpy.ndarray of dtype object"):
        store.load(path)
    assert not marker.exists()


def test_file_with_torch_tensors_is_refused_as_from_an_older_srsweep(tmp_path):
    # a pickled tensor's storage is read back by torch.load with full pickle
    torch = pytest.importorskip("torch")
    path = tmp_path / "old.joblib"
    joblib.dump({"hyperparams": {}, "disc_state": {"w": torch.zeros(2)}}, path)
    with pytest.raises(UnsafeFileError) as err:
        store.load(path)
    assert f"{path}: refused to load torch._utils._rebuild_tensor_v2: " in str(err.value)
    assert str(err.value).endswith("it is from an older srsweep: train the run again")


def test_file_without_a_pickle_header_is_not_read(tmp_path):
    compressed = tmp_path / "z.joblib"
    joblib.dump({"hyperparams": {}}, compressed, compress=3)
    text = tmp_path / "t.joblib"
    text.write_text("hyperparams: {}\n")
    for path in (compressed, text, tmp_path / "empty.joblib"):
        path.touch()
        with pytest.raises(
            CorruptFileError, match=re.escape(f"{path}: cannot read model file (no pickle header)")
        ):
            store.load(path)


def test_allowed_types_round_trip(tmp_path):
    payload = {
        "hyperparams": {"lr": 1e-3, "betas": (0.9, 0.999), "ext": ["grad"], "none": None},
        "state": collections.OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3)),
        "fortran": np.asfortranarray(np.ones((2, 3))),
        "step": np.array(3.0, dtype=np.float32),  # 0-d, as an optimiser's step
        "ints": np.arange(4, dtype=np.int64),
        "flags": np.array([True, False]),
        "scalars": [np.float64(0.5), np.int64(2), np.bool_(True), np.float32(1.5)],
        "nan": float("nan"),
        "misc": [1 + 2j, {1, 2}, frozenset({3}), b"x", bytearray(b"y")],
    }
    got = store.load(store.save(tmp_path / "run.joblib", payload))
    assert type(got["state"]) is collections.OrderedDict and got["state"]["w"].dtype == np.float32
    np.testing.assert_array_equal(got["state"]["w"], payload["state"]["w"])
    assert got["fortran"].flags.f_contiguous and got["step"].shape == ()
    for key in ("fortran", "step", "ints", "flags"):
        assert got[key].dtype == payload[key].dtype
        np.testing.assert_array_equal(got[key], payload[key])
    assert [type(v) for v in got["scalars"]] == [type(v) for v in payload["scalars"]]
    assert got["scalars"] == payload["scalars"] and got["nan"] != got["nan"]
    assert got["hyperparams"] == payload["hyperparams"] and got["misc"] == payload["misc"]


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (np.array([1, None], dtype=object), "a numpy array of dtype object"),
        (np.ma.masked_array([1.0]), "numpy.ma.core._mareconstruct"),
        (collections.Counter(a=1), "collections.Counter"),
        (os.system, f"{os.system.__module__}.system"),
        (_Touch, f"{_Touch.__module__}._Touch"),
    ],
    ids=["object-array", "array-subclass", "other-class", "builtin-function", "test-class"],
)
def test_save_refuses_what_load_would_refuse_and_keeps_the_old_file(tmp_path, value, refused):
    path = tmp_path / "run.joblib"
    store.save(path, {"hyperparams": {"v": 1}})
    with pytest.raises(TypeError, match=f"a model file cannot hold {re.escape(refused)}"):
        store.save(path, {"hyperparams": {"v": 2}, "x": value})
    assert store.load(path)["hyperparams"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.joblib"]


def test_save_refuses_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    with pytest.raises(
        TypeError, match="cannot hold torch._utils._rebuild_tensor_v2 .*\\.numpy\\(\\)"
    ):
        store.save(tmp_path / "run.joblib", {"hyperparams": {}, "w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def umask():
    """Sets the process's umask for one test (``umask(0o077)``), restoring it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(
    ("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    model = store.save(tmp_path / "m" / "run.joblib", {"hyperparams": {}})
    text = tmp_path / "report.md"
    store.atomic_write(text, lambda tmp: Path(tmp).write_text("# report"))
    assert {oct(p.stat().st_mode & 0o777) for p in (model, text)} == {oct(mode)}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    host = store._host()
    old = time.time() - 2 * store.STALE_AFTER
    names = {
        "dead": f".run.joblib.{_dead_pid()}@{host}.0a1b2c3d.tmp",
        "live": f".run.joblib.{os.getpid()}@{host}.0a1b2c3d.tmp",  # even if old
        "other host, old": ".run.joblib.1@elsewhere.0a1b2c3d.tmp",
        "other host, fresh": ".run.joblib.2@elsewhere.0a1b2c3d.tmp",
        "mkstemp, old": ".fig.png.k2_9xq0a.tmp",
        "not ours": ".notes.tmp",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"x" * 10)
        if "fresh" not in key and key != "dead":
            os.utime(tmp_path / name, (old, old))
    removed = {p.name for p in store.sweep_stale_tmp(tmp_path)}
    assert removed == {names[k] for k in ("dead", "other host, old", "mkstemp, old")}
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {names[k] for k in ("live", "other host, fresh", "not ours")}


def test_the_first_write_into_a_folder_removes_what_a_killed_write_left(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    code = (
        "import os, sys\nfrom pathlib import Path\nfrom srsweep import store\n"
        "def write(tmp):\n    Path(tmp).write_bytes(b'x' * 1000)\n    os._exit(9)\n"
        "store.atomic_write(Path(sys.argv[1]), write)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(folder / "a.joblib")])
    assert killed.returncode == 9
    (leftover,) = folder.iterdir()
    assert leftover.name.startswith(".a.joblib.") and leftover.suffix == ".tmp"
    store.save(folder / "b.joblib", {"hyperparams": {}})
    assert [p.name for p in folder.iterdir()] == ["b.joblib"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_model_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = store.save(tmp_path / "m.joblib", {"x": np.arange(3)})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_a_killed_writes_temporary_file_is_removed_by_the_next_write(tmp_path):
    left = tmp_path / ".m.joblib.abc123.tmp"  # what a write killed midway leaves
    left.write_bytes(b"x" * 1000)
    young = tmp_path / ".other.joblib.def456.tmp"  # a live writer's, just begun
    young.write_bytes(b"y")
    old = time.time() - 3600
    os.utime(left, (old, old))
    store.save(tmp_path / "m.joblib", {"x": 1})
    assert not left.exists() and young.exists()
