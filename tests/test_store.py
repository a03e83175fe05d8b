from __future__ import annotations

import pytest

from srsweep import store
from srsweep.errors import CorruptFileError
from srsweep.errors import NotFoundError


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
    import joblib

    joblib.dump([1, 2], tmp_path / "x.joblib")
    with pytest.raises(CorruptFileError, match="not a srsweep model file"):
        store.load(tmp_path / "x.joblib")
    with pytest.raises(NotFoundError, match="no such model file"):
        store.load(tmp_path / "missing.joblib")
