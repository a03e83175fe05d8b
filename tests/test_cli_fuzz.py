"""Property-based bad input: every malformed spec or flag exits 2 with a message that
names the offending key, prints no traceback and leaves the ledger as it was."""

from __future__ import annotations

import hashlib

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from srsweep.cli import main

KEYS = {
    "steps": "int",
    "target": "float",
    "w0": "float",
    "seed": "int",
    "flag": "bool",
    "opt.lr": "float",
    "opt.momentum": "float",
}

WRONG = {
    "int": st.one_of(
        st.text(min_size=1, max_size=5).filter(lambda s: not s.strip().lstrip("-").isdigit()),
        st.floats(allow_nan=False).filter(lambda f: not float(f).is_integer()),
        st.booleans(),
        st.lists(st.integers(), min_size=1, max_size=3),
    ),
    "float": st.one_of(
        st.text(min_size=1, max_size=5),
        st.booleans(),
        st.lists(st.floats(allow_nan=False), min_size=1, max_size=3),
    ),
    "bool": st.one_of(st.integers(), st.text(min_size=1, max_size=5), st.floats(allow_nan=False)),
}
IDENT = st.from_regex(r"[a-z][a-z0-9_]{2,10}", fullmatch=True)


def _params(key: str, leaf: dict) -> dict:
    parts = key.split(".")
    tree: dict = leaf
    for part in reversed(parts[1:]):
        tree = {"parameters": {part: tree}}
    return {parts[0]: tree}


@st.composite
def bad_specs(draw):
    """(spec text, a word the error message must contain)."""
    kind = draw(
        st.sampled_from(
            [
                "wrong_type",
                "unknown_key",
                "range",
                "min_max",
                "method",
                "leaf_field",
                "program",
                "yaml",
            ]
        )
    )
    spec: dict = {"program": "toy", "method": "grid", "parameters": {"steps": {"value": 2}}}
    if kind == "wrong_type":
        key = draw(st.sampled_from(sorted(KEYS)))
        bad = draw(WRONG[KEYS[key]])
        spec["parameters"].update(
            _params(
                key,
                {"values": [draw(st.integers(1, 3)), bad]}
                if KEYS[key] != "bool"
                else {"values": [bad]},
            )
        )
        return yaml.safe_dump(spec), key
    if kind == "unknown_key":
        key = draw(
            IDENT.filter(
                lambda k: (
                    k
                    not in {
                        "steps",
                        "target",
                        "seed",
                        "flag",
                        "opt",
                        "sleep",
                        "w0",
                        "fail_at",
                        "nan_at",
                    }
                )
            )
        )
        spec["parameters"][key] = {"values": [1, 2]}
        return yaml.safe_dump(spec), key
    if kind == "range":
        key = draw(st.sampled_from(["steps", "opt.lr", "sleep"]))
        spec["parameters"].update(_params(key, {"value": draw(st.integers(-100, -1))}))
        return yaml.safe_dump(spec), key
    if kind == "min_max":
        lo = draw(st.floats(0.1, 100))
        spec["method"] = "random"
        spec["parameters"].update(_params("opt.lr", {"min": lo, "max": lo - draw(st.floats(0, 1))}))
        return yaml.safe_dump(spec), "opt.lr"
    if kind == "method":
        spec["method"] = draw(
            IDENT.filter(lambda m: m not in {"grid", "random", "bayes", "custom"})
        )
        return yaml.safe_dump(spec), "method"
    if kind == "leaf_field":
        field = draw(
            IDENT.filter(
                lambda f: (
                    f
                    not in {
                        "value",
                        "values",
                        "min",
                        "max",
                        "mu",
                        "sigma",
                        "distribution",
                        "probabilities",
                    }
                )
            )
        )
        spec["parameters"]["target"] = {field: [1, 2]}
        return yaml.safe_dump(spec), "target"
    if kind == "program":
        spec["program"] = draw(
            IDENT.filter(lambda p: p not in {"toy", "sd", "stn", "lazy", "srnet"})
        )
        return yaml.safe_dump(spec), "program"
    text = yaml.safe_dump(spec)
    cut = draw(st.integers(1, len(text) - 1))
    # a cut-off spec is either broken YAML or valid YAML that is no longer a mapping
    return (
        text[:cut] + draw(st.sampled_from(["[", "{", ": : x", "\t- ]", "'"])),
        ("YAML syntax error", "must be a mapping", "program", "parameters"),
    )


def _ledger_digest(results) -> str:
    db = results / "srsweep.db"
    return hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else ""


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=bad_specs())
def test_malformed_specs_exit_2_naming_the_key(tmp_path, case):
    text, must_name = case
    results = tmp_path / "results"
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    before = _ledger_digest(results)
    res = CliRunner().invoke(main, ["--results", str(results), "create", str(spec)])
    assert res.exit_code == 2, (text, res.output)
    assert "Traceback" not in res.output
    assert f"Error: {spec}: " in res.stderr, res.stderr
    names = must_name if isinstance(must_name, tuple) else (must_name,)
    assert any(n in res.stderr for n in names), (text, res.stderr)
    assert _ledger_digest(results) == before


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    args=st.one_of(
        st.tuples(
            st.just("agent"),
            st.just("x"),
            st.just("--count"),
            st.one_of(st.integers(-5, 0).map(str), IDENT),
        ),
        st.tuples(
            st.just("report"),
            st.just("x"),
            st.just("--avg-hor"),
            st.one_of(st.integers(-5, 0).map(str), IDENT),
        ),
        st.tuples(
            st.just("run"),
            st.just("toy"),
            st.just("--set"),
            st.one_of(
                IDENT, IDENT.map(lambda k: f"{k}=1"), st.just("steps=abc"), st.just("opt.lr=-1")
            ),
        ),
        st.tuples(st.just("create"), IDENT.map(lambda s: s + ".yaml")),
    )
)
def test_bad_flags_exit_2(args):
    res = CliRunner().invoke(main, ["--results", "/nonexistent/results", *args])
    assert res.exit_code == 2, (args, res.output)
    assert "Traceback" not in res.output
    assert "Error" in res.output
