"""How ``v1_ledger.db`` and ``v1_expected.json`` were made: by srsweep as of commit
9c30f6f (history as one JSON row per log call), before the columnar history.

Do not re-run this with a later srsweep: the point of the fixture is that an older
program wrote it. Kept to say what the ledger holds:

- sweep ``v1`` of the sd kernel: ``fin-a`` and ``fin-b`` finished, ``stop-c`` stopped,
  ``lost-d`` crashed (its lease ran out; its summary is empty, so the report takes its
  metrics' last logged values), its re-run queued, ``live-e`` still running.
- every run logs ``acc``, ``avg_acc``, ``loss`` (floats), ``epoch`` (int); ``fin-a`` also
  a string ``phase``, a list ``lat`` once and a bool ``diverged``; ``fin-b`` skips
  ``loss`` on some rows and logs a NaN ``loss`` once.
- ``v1_expected.json``: what that srsweep read back (history rows, the runs and
  history frames) and the CSV tables its report wrote.

    PYTHONPATH=. python tests/backends/data/make_v1_ledger.py tests/backends/data
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from srsweep import api
from srsweep.backends import LocalBackend
from srsweep.backends import current
from srsweep.reports import history_frame
from srsweep.reports import runs_frame
from srsweep.spec import validate

STEPS = 60


def _rows(i: int, kind: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for s in range(STEPS):
        acc = 0.5 + (0.4 if kind == "learns" else 0.05) * (1 - math.exp(-s / (10 + i)))
        row: dict[str, object] = {"_step": s * 5, "epoch": s * 5, "acc": acc, "avg_acc": acc - 0.01}
        row["loss"] = 1.0 - acc + 0.001 * i
        rows.append(row)
    return rows


def main(out: Path) -> None:
    spec = validate(
        {
            "program": "sd",
            "method": "grid",
            "metric": {"name": "avg_acc", "goal": "maximize"},
            "parameters": {
                "epochs": {"value": STEPS * 5},
                "avg_hor": {"value": 20},
                "disc": {"parameters": {"lr": {"values": [1e-4, 1e-3, 1e-2, 3e-2, 1e-1]}}},
            },
        },
        "v1.yaml",
    )
    ledger = LocalBackend(out, lease_timeout=0.5, filename="v1_ledger.db")
    sid = ledger.create_sweep(spec)
    ids = {}
    for i, name in enumerate(["fin-a", "fin-b", "stop-c", "lost-d", "live-e"]):
        r = ledger.claim(sid, "maker")
        assert r is not None
        ids[name] = r.id
        rows = _rows(i, "learns" if i % 2 == 0 else "flat")
        if name == "fin-a":
            for j, row in enumerate(rows):
                row["phase"] = "warmup" if j < 10 else "train"
                row["diverged"] = False
            rows[7]["lat"] = [0.25, 1.5]
        if name == "fin-b":
            for row in rows[20:30]:
                del row["loss"]
            rows[40]["loss"] = math.nan
        ledger.log(r.id, rows[:30])
        ledger.log(r.id, rows[30:])
        last = {k: v for row in rows for k, v in row.items() if k != "_step"}
        if name in ("fin-a", "fin-b"):
            ledger.finish(r.id, "finished", summary={**last, "runtime": 3.0})
        elif name == "stop-c":
            ledger.finish(r.id, "stopped", summary={**last, "runtime": 2.0})
        elif name == "lost-d":
            time.sleep(0.7)  # its lease runs out; the next claim reaps it
    retry = ledger.claim(sid, "maker")  # lost-d crashed and re-queued: this is its re-run
    assert retry is not None and retry.id not in ids.values()
    ledger.log(retry.id, _rows(5, "flat")[:5])
    runs = ledger.runs(sid)
    states = {r.id: r.state for r in runs}
    assert states[ids["lost-d"]] == "crashed", states
    assert states[ids["live-e"]] == "running", states
    names = {v: k for k, v in ids.items()}
    cur = current(runs)
    expected = {
        "sweep_id": sid,
        "ids": ids,
        "history": {names.get(r.id, r.id): r.history for r in runs if r.history},
        "states": {names.get(r.id, r.id): r.state for r in runs},
        "runs_frame": json.loads(runs_frame(cur).to_json(orient="records")),
        "history_frame": json.loads(history_frame(cur).to_json(orient="records")),
    }
    ledger.close()
    with tempfile.TemporaryDirectory() as tmp:  # report a copy: the fixture stays as made
        copy = Path(tmp) / "v1_ledger.db"
        shutil.copy(out / "v1_ledger.db", copy)
        folder = Path(tmp) / "report"
        api.report(sid, results=tmp, ledger=str(copy), out=folder, mirror=False)
        expected["report"] = {
            name: (folder / name).read_text()
            for name in ("runs.csv", "configs.csv", "history.csv", "best.csv", "trends.csv")
        }
    (out / "v1_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
