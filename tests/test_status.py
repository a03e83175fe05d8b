"""``srsweep status``: which agent holds each running trial."""

from __future__ import annotations

from srsweep.backends.local import LocalBackend
from srsweep.spec import validate
from srsweep.status import status_lines


def test_status_shows_the_agent_of_each_running_trial_only_while_one_runs(results):
    b = LocalBackend(results)
    spec = validate(
        {"program": "toy", "method": "grid", "parameters": {"target": {"values": [1.0, 2.0, 3.0]}}},
        "g",
    )
    sid = b.create_sweep(spec)
    first = b.claim(sid, "node1-41-slurm123_4")
    second = b.claim(sid, "node2-7")
    assert first and second
    b.finish(second.id, "finished", summary={"loss": 0.5})
    _, header, *rows = status_lines(b, sid)
    assert header.split() == ["RUN", "NAME", "STATE", "AGENT", "FINAL", "loss", "target"]
    assert [r.split()[:4] for r in rows] == [
        [first.id, first.name, "running", "node1-41-slurm123_4"],
        [second.id, second.name, "finished", "-"],  # done: held by no one
    ]
    b.finish(first.id, "finished", summary={"loss": 0.25})
    assert "AGENT" not in status_lines(b, sid)[1].split()  # none running: no column


def test_a_parameter_swept_as_whole_dicts_shows_the_keys_inside_that_differ(results):
    b = LocalBackend(results)
    critics = [{"gp": 0.0, "lr": 1e-3, "hid_num": 2}, {"gp": 1e-4, "lr": 1e-3, "hid_num": 4}]
    spec = validate(
        {"program": "sd", "method": "grid", "parameters": {"disc": {"values": critics}}}, "g"
    )
    sid = b.create_sweep(spec)
    runs = [b.claim(sid, "a"), b.claim(sid, "a")]
    assert all(runs)
    _, header, *rows = status_lines(b, sid)
    assert header.split()[-2:] == ["disc.gp", "disc.hid_num"]  # not disc.lr: one value
    assert [r.split()[-2:] for r in rows] == [["0", "2"], ["0.0001", "4"]]
