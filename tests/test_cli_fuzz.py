"""Property-based bad input: every malformed spec or flag exits 2 with a message that
names the offending key, prints no traceback and leaves the ledger as it was.

Together the tests below generate over 500 cases (specs for ``create``, flags and
overrides for ``run``, ``agent``, ``report``, ``status``, ``retry`` and ``stop``,
malformed specs handed to ``agent``), all run in this process with click's runner.
"""

from __future__ import annotations

import hashlib

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from srsweep import kernels
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.limits import MAX_ALIASED
from srsweep.limits import MAX_DEPTH
from srsweep.limits import MAX_GRID
from srsweep.spec import Spec

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
NUM = st.floats(-1e6, 1e6, allow_nan=False)

# each key's largest value (the toy kernel's config) and something over it
OVER = {
    "steps": st.one_of(st.integers(1_000_001, 10**30), st.just(1e60)),
    "opt.lr": st.floats(10.001, 1e308),
    "sleep": st.floats(60.01, 1e300),
    "seed": st.integers(2**32, 2**80),
}


@st.composite
def bad_distributions(draw) -> dict:
    """A parameter leaf that no distribution of sweeps' schema accepts."""
    lo = draw(st.floats(0.001, 100))
    hi = lo + draw(st.floats(0.5, 100))
    return draw(
        st.sampled_from(
            [
                {"distribution": "q_uniform", "min": lo, "max": hi, "q": -draw(st.floats(0, 5))},
                {"distribution": "int_uniform", "min": lo + 0.5, "max": hi + 0.25},
                {"distribution": "normal", "mu": draw(NUM), "sigma": -draw(st.floats(0.1, 5))},
                {"distribution": "log_normal", "sigma": "wide"},
                {"distribution": "beta", "a": -draw(st.floats(0.1, 5)), "b": 1},
                {"distribution": "uniform", "min": lo},
                {"distribution": "uniform", "max": hi},
                {"distribution": "constant"},
                {"distribution": "normal", "min": lo, "max": hi},
                {"distribution": "q_log_uniform_values", "min": lo, "max": hi, "q": 0},
                {"distribution": "log_uniform_values", "min": -lo, "max": hi},
                {"distribution": "categorical", "values": []},
                {
                    "distribution": draw(IDENT.filter(lambda d: "uniform" not in d)),
                    "min": lo,
                    "max": hi,
                },
            ]
        )
    )


def _alias_bomb(levels: int) -> str:
    rows = [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n  ".join(["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", *rows])


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
                "distribution",
                "over_max",
                "grid",
                "nesting",
                "aliases",
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
    if kind == "distribution":
        key = draw(st.sampled_from(["target", "w0", "opt.lr", "opt.momentum"]))
        spec["method"] = "random"
        spec["parameters"].update(_params(key, draw(bad_distributions())))
        return yaml.safe_dump(spec), f"parameters.{key}"
    if kind == "over_max":
        key = draw(st.sampled_from(sorted(OVER)))
        value = draw(OVER[key])
        spec["parameters"].update(_params(key, {"values": [1, value]}))
        return yaml.safe_dump(spec), (f"{key}: must be <= ", "allowed: ")
    if kind == "grid":
        # counted, never expanded: 100+ values times an int range over 10^4 points
        spec["parameters"]["seed"] = {"values": list(range(draw(st.integers(101, 120))))}
        high = draw(st.integers(10**4 + 1, 10**15))
        spec["parameters"]["steps"] = {"min": 1, "max": high}
        return yaml.safe_dump(spec), (f"is over the limit of {MAX_GRID}", "parameters: a grid")
    if kind == "nesting":
        key = draw(st.sampled_from(["target", "w0", "opt.lr"]))
        depth = draw(st.integers(MAX_DEPTH, 300))
        spec["parameters"].update(_params(key, {"value": "DEEP"}))
        text = yaml.safe_dump(spec).replace("DEEP", "[" * depth + "1" + "]" * depth)
        where = "parameters." + key.replace(".", ".parameters.") + ".value[0][0]"
        return text, f"{where}"
    if kind == "aliases":
        text = yaml.safe_dump(spec) + f"x-anchors:\n  {_alias_bomb(draw(st.integers(5, 12)))}\n"
        return text, ("x-anchors.a", f"YAML aliases expand to over {MAX_ALIASED} values")
    if kind == "program":
        # a name W&B does not know is a warning (its trials fail); a non-name is wrong
        spec["program"] = draw(
            st.one_of(
                st.integers(), st.just(""), st.lists(IDENT, min_size=1, max_size=3), st.booleans()
            )
        )
        return yaml.safe_dump(spec), "program"
    # program first: a spec cut inside it has lost its parameters (a program name no one
    # knows is only a warning, as on W&B)
    text = yaml.safe_dump(spec, sort_keys=False)
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
    max_examples=300,
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


TOY_NAMES = {"steps", "target", "seed", "flag", "opt", "sleep", "w0", "fail_at", "nan_at"}


def _snapshot(results) -> tuple:
    """What the ledger holds: each sweep's id, state and run counts, and every run."""
    backend = LocalBackend(results)
    sweeps = [(s.id, s.state, sorted(s.counts.items())) for s in backend.sweeps()]
    return sweeps, sorted((r.id, r.state) for r in backend.runs(None))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A ledger holding one good (unrun) toy sweep: (results, sweep id)."""
    results = tmp_path_factory.mktemp("fuzz") / "results"
    spec = results.parent / "good.yaml"
    spec.write_text("program: toy\nmethod: grid\nparameters:\n  steps: {values: [1, 2]}\n")
    res = CliRunner().invoke(main, ["--results", str(results), "create", str(spec)])
    assert res.exit_code == 0, res.output
    return results, res.stdout.split()[-1]


# the options of the commands fuzzed, as IDENT could spell them
OPTIONS = {
    "count",
    "pack",
    "failed",
    "preempted",
    "avg_hor",
    "exclude",
    "out",
    "band",
    "no_band",
    "curve",
    "dry_run",
    "backend",
    "project",
    "entity",
    "help",
}
BAD_COUNT = st.one_of(st.integers(-5, 0).map(str), IDENT, st.just("1.5"))
BAD_MINUTES = st.one_of(
    st.floats(max_value=0.0).map(repr), IDENT, st.sampled_from(["nan", "inf", "-inf", "0"])
)


@st.composite
def bad_sets(draw) -> tuple[list[str], str | tuple[str, ...]]:
    """``run toy --set ...`` arguments that must be refused, and what the error names."""
    kind = draw(
        st.sampled_from(["unknown", "type", "over", "under", "no_equals", "deep", "aliases"])
    )
    if kind == "unknown":
        key = draw(IDENT.filter(lambda k: k not in TOY_NAMES))
        return [f"{key}={draw(st.integers())}"], f"--set: {key}: unknown key"
    if kind == "type":
        key = draw(st.sampled_from(sorted(KEYS)))
        value = draw(
            st.sampled_from(
                {
                    "int": ["abc", "1.5", "[1]", "true"],
                    "float": ["abc", "[1, 2]", "true"],
                    "bool": ["3", "abc", "0.5"],
                }[KEYS[key]]
            )
        )
        return [f"{key}={value}"], f"--set: {key}: must be {KEYS[key]}"
    if kind == "over":
        key = draw(st.sampled_from(sorted(OVER)))
        return [f"{key}={draw(OVER[key])!r}"], (f"--set: {key}: must be <= ", "allowed: ")
    if kind == "under":
        key, low = draw(
            st.sampled_from(
                [
                    ("steps", "must be >= 1"),
                    ("opt.lr", "must be > 0"),
                    ("sleep", "must be >= 0"),
                    ("seed", "must be >= 0"),
                ]
            )
        )
        return [f"{key}={draw(st.integers(-(10**6), -1))}"], f"--set: {key}: {low}"
    if kind == "no_equals":
        item = draw(IDENT)
        return [item], f"--set: {item!r}: expected KEY=VALUE"
    if kind == "deep":
        key, depth = draw(st.sampled_from(sorted(KEYS))), draw(st.integers(MAX_DEPTH + 1, 3000))
        return [f"{key}={'[' * depth}1{']' * depth}"], f"--set: {key}[0][0]"
    key = draw(st.sampled_from(sorted(KEYS)))
    return [f"{key}={_flat_bomb(draw(st.integers(5, 9)))}"], (f"--set: {key}[", "YAML aliases")


def _flat_bomb(levels: int) -> str:
    """``_alias_bomb`` as one flow list, for ``--set``."""
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "[" + ", ".join(items) + "]"


@st.composite
def bad_command_lines(draw, sweep_id: str) -> tuple[list[str], str | tuple[str, ...]]:
    """A command line that must exit 2, and what its error names (the flag, the key,
    the id or the file)."""
    kind = draw(
        st.sampled_from(["flag", "backup", "unknown_id", "set", "json", "kernel", "option"])
    )
    if kind == "flag":
        cmd, flag = draw(
            st.sampled_from([("agent", "--count"), ("agent", "--pack"), ("report", "--avg-hor")])
        )
        return [cmd, sweep_id, flag, draw(BAD_COUNT)], f"Invalid value for '{flag}'"
    if kind == "backup":  # not a positive number of minutes: refused before any claim
        return ["agent", sweep_id, "--backup-every", draw(BAD_MINUTES)], "--backup-every"
    if kind == "unknown_id":
        cmd = draw(st.sampled_from(["agent", "report", "status", "retry", "stop"]))
        missing = draw(IDENT.filter(lambda i: i != sweep_id))
        return [cmd, missing], f"unknown sweep id '{missing}'"
    if kind == "set":  # one bad override among good ones
        items, names = draw(bad_sets())
        good = [g for g in ("steps=2", "opt.lr=0.5", "target=3") if g[:4] != items[0][:4]]
        items += draw(st.lists(st.sampled_from(good), max_size=3))
        items = draw(st.permutations(items))
        return ["run", "toy", *(a for i in items for a in ("--set", i))], names
    if kind == "json":
        text, names = draw(
            st.sampled_from(
                [
                    ("{not json", "ARGS_JSON: not valid JSON"),
                    ("[1, 2]", "ARGS_JSON: must be a JSON object"),
                    ('{"steps": "many"}', "steps: must be int"),
                    ('{"opt": {"lr": 1e300}}', "opt.lr: must be <= 10"),
                    ('{"steps": ' + "[" * 5000 + "]" * 5000 + "}", "ARGS_JSON: nested deeper"),
                ]
            )
        )
        return ["run", "toy", text], names
    if kind == "kernel":
        name = draw(IDENT.filter(lambda k: k not in kernels.names()))
        return ["run", name], f"unknown kernel '{name}'"
    cmd = draw(st.sampled_from(["agent", "report", "status", "retry", "stop", "create"]))
    option = "--" + draw(IDENT.filter(lambda o: o not in OPTIONS)).replace("_", "-")
    return [cmd, sweep_id, option], f"No such option '{option}'"


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_bad_command_lines_exit_2_naming_the_flag_or_key(ledger, data):
    results, sweep_id = ledger
    args, must_name = data.draw(bad_command_lines(sweep_id))
    before = _snapshot(results)
    res = CliRunner().invoke(main, ["--results", str(results), *args])
    assert res.exit_code == 2, (args, res.output)
    assert "Traceback" not in res.output and "Error" in res.stderr
    names = must_name if isinstance(must_name, tuple) else (must_name,)
    assert any(n in res.stderr for n in names), (args, res.stderr)
    assert _snapshot(results) == before


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(["target", "w0", "opt.lr"]), leaf=bad_distributions())
def test_agent_refuses_a_malformed_spec_naming_the_key(ledger, key, leaf):
    """A spec that reached the ledger without ``create``'s checks (an older srsweep, a
    hand-written row): the engine's refusal names the parameter, and no run starts."""
    results, _ = ledger
    raw = {"program": "toy", "method": "random", "parameters": _params(key, leaf)}
    sweep_id = LocalBackend(results).create_sweep(
        Spec("hand-written", raw, kernels.get("toy"), "loss", "minimize")
    )
    before = _snapshot(results)
    res = CliRunner().invoke(main, ["--results", str(results), "agent", sweep_id, "--count", "1"])
    assert res.exit_code == 2, (leaf, res.output)
    assert "Traceback" not in res.output
    assert "Error: the search engine (sweeps) cannot use this spec: " in res.stderr
    assert f"parameters.{key}" in res.stderr, (leaf, res.stderr)
    assert _snapshot(results) == before


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
