from __future__ import annotations

import re
import signal

import pytest

from srsweep.engine import suggest
from srsweep.errors import EngineError
from srsweep.errors import NotFoundError
from srsweep.errors import SpecError
from srsweep.limits import MAX_ALIASED
from srsweep.limits import MAX_BYTES
from srsweep.limits import MAX_DEPTH
from srsweep.limits import MAX_NODES
from srsweep.limits import TOO_DEEP
from srsweep.spec import leaf_params
from srsweep.spec import load_json_object
from srsweep.spec import load_spec
from srsweep.spec import load_yaml
from srsweep.spec import parse_sets
from srsweep.spec import validate

GOOD = """
program: toy
method: grid
parameters:
  opt:
    parameters:
      lr: {values: [1e-3, 0.1]}
  steps: {value: 3}
"""


def test_good_spec_loads_with_kernel_defaults(write_spec):
    spec = load_spec(write_spec(GOOD))
    assert spec.kernel.name == "toy"
    assert (spec.metric, spec.goal) == ("loss", "minimize")
    assert spec.swept_keys() == ["opt.lr"]
    # 1e-3 is a float (PyYAML alone reads it as the string "1e-3")
    assert spec.raw["parameters"]["opt"]["parameters"]["lr"]["values"] == [0.001, 0.1]


def test_yaml_floats_in_exponent_form():
    assert load_yaml("x.yaml", "a: 1e-5\nb: 2E3\nc: 1.5\nd: 10\ne: '1e-3'") == {
        "a": 1e-5,
        "b": 2000.0,
        "c": 1.5,
        "d": 10,
        "e": "1e-3",
    }


def test_missing_file():
    with pytest.raises(NotFoundError, match="nope.yaml: no such file"):
        load_spec("nope.yaml")


def test_yaml_syntax_error_names_line(write_spec):
    path = write_spec("program: toy\nparameters: {a: [1, 2\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and "line 3" in str(e.value)


def test_yaml_python_tags_are_refused(write_spec):
    path = write_spec("program: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecError, match="YAML syntax error"):
        load_spec(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- a\n- b\n", "the spec must be a mapping"),
        ("program: 7\nmethod: grid\nparameters: {steps: {value: 2}}\n", "program: must be"),
        (
            "program: toy\nmethod: annealing\nparameters: {steps: {value: 2}}\n",
            "method: 'annealing' is not one of",
        ),
        (
            "program: toy\nmethod: grid\nparameters: {stepz: {values: [1, 2]}}\n",
            "parameters.stepz.values[0]: stepz: unknown key (did you mean steps?)",
        ),
        (
            "program: toy\nmethod: grid\nparameters: {steps: {values: [1, 'x']}}\n",
            "parameters.steps.values[1]: steps: must be int, but got 'x'",
        ),
        (
            "program: toy\nmethod: random\nparameters: {opt: {parameters: {lr: {min: 0.1, max: 0.01}}}}\n",
            "parameters.opt.lr: min < max must hold, but got (min=0.1, max=0.01)",
        ),
        (
            "program: toy\nmethod: grid\nparameters: {opt: {parameters: {lr: {values: [-1.0]}}}}\n",
            "parameters.opt.lr.values[0]: opt.lr: must be > 0, but got -1.0",
        ),
        (
            "program: toy\nmethod: random\nparameters: {opt: {parameters: {lr: "
            "{distribution: log_uniform_values, min: 0, max: 1}}}}\n",
            "parameters.opt.lr.min: must be > 0 for log_uniform_values",
        ),
        (
            "program: toy\nmethod: grid\nparameters: {steps: {valuez: [1]}}\n",
            "parameters.steps: unknown field valuez",
        ),
        (
            "program: toy\nmethod: grid\nparameters: {opt: {parameters: {lr: {min: 0.1, max: 1.0}}}}\n",
            "Parameter opt.lr is a disallowed type with grid search",
        ),
        (
            "program: toy\nmethod: bayes\nparameters: {opt: {parameters: {lr: {values: [0.1]}}}}\n",
            "metric",
        ),
        (
            "program: toy\nmethod: grid\nmetric: {name: loss, goal: down}\nparameters: {steps: {value: 1}}\n",
            "metric.goal: 'down' is not one of ['minimize', 'maximize']",
        ),
        ("program: toy\nmethod: grid\nparameters: {opt: {value: 3}}\n", "opt: is a section"),
        ("program: toy\nmethod: grid\nparameters: {}\n", "parameters"),
    ],
    ids=[
        "not-mapping",
        "program-not-text",
        "unknown-method",
        "unknown-key",
        "wrong-type",
        "min-max",
        "out-of-range",
        "log-min",
        "bad-leaf-field",
        "grid-continuous",
        "bayes-no-metric",
        "bad-goal",
        "section-as-leaf",
        "empty-params",
    ],
)
def test_bad_specs_name_file_and_key(write_spec, text, expected):
    path = write_spec(text)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    assert expected in msg, msg


def test_all_violations_reported_at_once(write_spec):
    path = write_spec(
        "program: toy\nmethod: grid\nparameters:\n"
        "  steps: {values: [0]}\n  target: {values: [true]}\n"
    )
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert len(e.value.violations) == 2


def test_whole_section_values_are_checked_key_by_key(write_spec):
    path = write_spec(
        "program: toy\nmethod: grid\nparameters:\n  opt: {values: [{lr: 0.1}, {lr: 0.2, mom: 1}]}\n"
    )
    with pytest.raises(SpecError, match=r"opt.values\[1\]: opt.mom: unknown key"):
        load_spec(path)


def test_leaf_params_flattens_nested():
    leaves = leaf_params(
        {"a": {"parameters": {"b": {"value": 1}, "c": {"values": [1]}}}, "d": {"min": 0, "max": 1}}
    )
    assert list(leaves) == ["a.b", "a.c", "d"]


def test_parse_sets_types():
    assert parse_sets(["a.b=1e-3", "c=[1, 2]", "d=true", "e=hello", "f=null"]) == {
        "a.b": 0.001,
        "c": [1, 2],
        "d": True,
        "e": "hello",
        "f": None,
    }
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        parse_sets(["novalue"])


SCRIPT_SPEC = """
program: {program}
method: grid
metric: {{name: val_loss}}
parameters:
  optimizer:
    parameters:
      lr: {{values: [0.1, 1.0]}}
  anything_goes: {{value: [1, "a"]}}
"""


@pytest.mark.parametrize(
    "program", ["train.py", "sub/train.py", "python3"], ids=["beside", "below", "on-path"]
)
def test_a_program_that_is_a_file_or_command_is_a_script(write_spec, tmp_path, program):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.py").write_text("")
    (tmp_path / "train.py").write_text("")
    spec = load_spec(write_spec(SCRIPT_SPEC.format(program=program)))
    assert spec.kernel is None and spec.script == program
    assert (spec.metric, spec.goal) == ("val_loss", "minimize")  # W&B's default goal
    assert spec.swept_keys() == ["optimizer.lr"]


def test_a_missing_program_is_a_warning_naming_where_it_was_looked_for(write_spec, tmp_path):
    # as on W&B: registered, and its trials fail if the file is still missing then
    spec = load_spec(write_spec(SCRIPT_SPEC.format(program="missing.py")))
    assert spec.kernel is None and spec.script == "missing.py"
    (note,) = spec.warnings
    assert note.startswith("program: 'missing.py' is not a kernel (")
    assert f"a file {tmp_path / 'missing.py'} or a command on PATH" in note


def test_a_misspelt_kernel_is_warned_with_the_close_match(write_spec):
    spec = load_spec(write_spec("program: tyo\nmethod: grid\nparameters: {x: {values: [1]}}\n"))
    assert spec.warnings and spec.warnings[0].endswith("(did you mean 'toy'?)")


def test_a_spec_needs_no_program(write_spec):
    spec = load_spec(write_spec("method: grid\nparameters: {lr: {values: [1, 2]}}\n"))
    assert spec.kernel is None and spec.script is None and spec.warnings == ()


@pytest.mark.parametrize(
    ("param", "warned"),
    [
        ("lr: {distribution: log_uniform, min: -9.2, max: -2.3}", "uses log_uniform, where"),
        ("lr: {distribution: q_log_uniform, min: -9.2, max: -2.3, q: 0.001}", "q_log_uniform"),
        ("lr: {distribution: inv_log_uniform, min: 0.1, max: 2.3}", "inv_log_uniform"),
        ("model/lr: {values: [1, 2]}", "'model/lr' does not match"),
    ],
)
def test_what_wandb_registers_with_a_warning_is_registered(write_spec, tmp_path, param, warned):
    (tmp_path / "t.py").write_text("")
    spec = load_spec(write_spec(f"program: t.py\nmethod: random\nparameters:\n  {param}\n"))
    assert any(warned in w for w in spec.warnings), spec.warnings
    from srsweep import engine

    (drawn,) = engine.suggest(spec.raw, [], 1, seed=0)
    value = next(iter(drawn.values()))
    if "log_uniform, min: -9.2" in param:  # exponents: W&B samples exp(uniform(min, max))
        assert 1.0e-4 < value < 0.11


def test_script_parameters_still_get_shape_checks(write_spec, tmp_path):
    (tmp_path / "t.py").write_text("")
    path = write_spec("program: t.py\nmethod: grid\nparameters:\n  lr: {min: 1, max: 0}\n")
    with pytest.raises(SpecError, match=r"parameters.lr: min < max must hold"):
        load_spec(path)


# --- size limits: each refused at once, naming the file, the key and the limit ----------


@pytest.fixture
def guard():
    """Fails a test that runs 60 s (a refusal takes milliseconds; without the limits
    these inputs hang for minutes or exhaust memory)."""

    def expire(signum, frame):
        raise TimeoutError("not refused within 60 s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 60)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def _bomb(levels: int = 9) -> str:
    """A list of 10 ones, each level a list of 10 aliases of the one below: 10^10 values
    from under 1 KB of YAML."""
    rows = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n  ".join(rows)


BOMB = f"""program: toy
method: random
parameters:
  steps: {{values: [1, 2]}}
x-anchors:
  {_bomb()}
"""


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize(
    "text, expected",
    [
        (BOMB, f"x-anchors.a3[7]: YAML aliases expand to over {MAX_ALIASED} values (the limit)"),
        (
            "program: toy\nmethod: grid\nparameters: &p\n  steps: {value: 1}\n  x: *p\n",
            "parameters.x: alias *p refers to a node that contains it",
        ),
        (
            f"program: toy\nmethod: grid\nparameters:\n  steps: {{value: {_nested(5000)}}}\n",
            f"parameters.steps.value{'[0]' * 29}: nested deeper than {MAX_DEPTH} levels",
        ),
        (
            "program: toy\nparameters:\n  steps: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
            f"parameters.steps{'.a' * 30}: nested deeper than {MAX_DEPTH} levels",
        ),
        (  # mappings as keys of mappings: no key names the levels, they still count
            "program: toy\nparameters:\n  steps: " + "{? " * 3000 + "1" + ": 1}" * 3000 + "\n",
            f"parameters.steps: nested deeper than {MAX_DEPTH} levels",
        ),
        (  # an alias of a deep node, used deeper still
            "program: toy\nparameters:\n  a: &d " + _nested(20) + "\n  b: " + _nested(12, "*d"),
            f"parameters.b{'[0]' * 12}: nested deeper than {MAX_DEPTH} levels",
        ),
        (
            "program: toy\nparameters:\n  steps: {values: [" + "1, " * MAX_NODES + "1]}\n",
            f"parameters.steps.values[{MAX_NODES - 9}]: over {MAX_NODES} values (the limit)",
        ),
        (
            "program: toy\nmethod: grid\nparameters:\n  steps: {value: " + "1" * 5000 + "}\n",
            "YAML syntax error: Exceeds the limit (4300 digits) for integer string conversion",
        ),
    ],
    ids=[
        "alias-bomb",
        "recursive-alias",
        "deep-list",
        "deep-map",
        "deep-keys",
        "deep-alias",
        "many-values",
        "huge-int",
    ],
)
def test_yaml_over_a_limit_is_refused_while_composing(write_spec, guard, text, expected):
    path = write_spec(text)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}: "), e.value
    assert expected in str(e.value), e.value


def test_a_file_over_the_size_limit_is_not_read(write_spec, guard):
    path = write_spec("program: toy\nparameters:\n  steps: {values: [" + "1, " * MAX_BYTES + "1]}")
    with pytest.raises(SpecError, match=f"the file is over {MAX_BYTES} bytes"):
        load_spec(path)


def test_yaml_just_inside_the_limits_loads():
    nested = load_yaml("x.yaml", "a: " + _nested(MAX_DEPTH - 1))
    for _ in range(MAX_DEPTH - 1):
        (nested,) = nested["a"] if isinstance(nested, dict) else nested
    assert nested == 1
    aliased = load_yaml("x.yaml", "a: &a [1, 2, 3]\nb: [*a, *a]\n")
    assert aliased["b"] == [[1, 2, 3], [1, 2, 3]]


def _self_nested(depth: int) -> dict:
    d: dict = {"value": 1}
    for _ in range(depth):
        d = {"value": [d]}
    return d


def _shared(levels: int) -> list:
    """A list whose 10 items are one list, whose 10 items are one list...: 10^levels
    values written out, from a few dozen objects."""
    x: list = [1] * 10
    for _ in range(levels):
        x = [x] * 10
    return x


def _cyclic() -> dict:
    leaf: dict = {"values": [1]}
    leaf["values"].append(leaf)
    return {"program": "toy", "method": "grid", "parameters": {"steps": leaf}}


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            {"program": "toy", "method": "grid", "parameters": {"steps": _self_nested(100)}},
            re.escape(f"parameters.steps{'.value[0]' * 15}: {TOO_DEEP}"),
        ),
        (
            {"program": "toy", "method": "random", "parameters": {"steps": {"values": _shared(9)}}},
            rf"parameters\.steps\.values(\[\d\])+: over {MAX_NODES} values \(the limit\)",
        ),
        (
            _cyclic(),
            re.escape(f"parameters.steps{'.values[1]' * 15}: {TOO_DEEP}"),
        ),
    ],
    ids=["deep", "shared", "cyclic"],
)
def test_dict_specs_have_the_same_limits(guard, raw, expected):
    with pytest.raises(SpecError) as e:
        validate(raw, "api")
    assert re.fullmatch(f"api: {expected}", str(e.value)), e.value


@pytest.mark.parametrize(
    "params, expected",
    [
        (
            f"  steps: {{values: {list(range(1, 1001))}}}\n"
            f"  seed: {{values: {list(range(1001))}}}\n",
            "a grid of 1.001e+06 points (steps: 1000 x seed: 1001) is over the limit of 1000000",
        ),
        (
            "  steps: {min: 1, max: 1000000000000}\n",
            "a grid of 1e+12 points (steps: 1e+12) is over the limit of 1000000",
        ),
        (
            "  opt:\n    parameters:\n      lr: {distribution: q_uniform, min: 0, max: 1, "
            "q: 1.0e-7}\n",
            "a grid of 1e+07 points (opt.lr: 1e+07)",
        ),
        (
            "  steps: {min: 1, max: 1" + "0" * 400 + "}\n",
            "a grid of over 1e300 points (steps: over 1e300) is over the limit of 1000000",
        ),
    ],
    ids=["values", "int-range", "q-uniform", "no-float"],
)
def test_grids_over_the_point_limit_are_refused_uncounted(write_spec, guard, params, expected):
    path = write_spec("program: toy\nmethod: grid\nparameters:\n" + params)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert f"{path}: parameters: {expected}" in str(e.value), e.value


def test_the_engine_refuses_a_huge_grid_it_is_handed(guard):
    spec = {"method": "grid", "parameters": {"a": {"min": 0, "max": 10**12}}}
    with pytest.raises(EngineError, match="a grid of 1e.12 points"):
        suggest(spec, [], 1, seed=0)


# --- malformed distributions: sweeps' schema, said precisely ------------------------


@pytest.mark.parametrize(
    "leaf, expected",
    [
        (
            "{distribution: q_uniform, min: 0, max: 1, q: 0}",
            "parameters.w0.q: 0 is less than or equal to the minimum of 0 (for q_uniform)",
        ),
        (
            "{distribution: int_uniform, min: 0.5, max: 3.5}",
            "parameters.w0.min: 0.5 is not of type 'integer' (for int_uniform)",
        ),
        (
            "{distribution: normal, mu: 0, sigma: -1}",
            "parameters.w0.sigma: -1 is less than the minimum of 0.0 (for normal)",
        ),
        ("{distribution: beta, a: -1}", "parameters.w0.a: -1 is less than the minimum of 0"),
        ("{distribution: uniform, min: 0}", "parameters.w0: 'max' is a required property"),
        ("{distribution: constant}", "parameters.w0: 'value' is a required property"),
        (
            "{distribution: normal, min: 0, max: 1}",
            "parameters.w0: Additional properties are not allowed ('max', 'min' were unexpected)",
        ),
        ("{distribution: gauss, mu: 0}", "parameters.w0.distribution: must be one of beta, "),
        ("{distribution: categorical, values: []}", "parameters.w0.values: must be a non-empty"),
        (
            "{distribution: log_uniform_values, min: -1, max: 1}",
            "parameters.w0.min: must be > 0 for log_uniform_values, but got -1",
        ),
    ],
    ids=[
        "q-zero",
        "int-floats",
        "sigma",
        "beta",
        "no-max",
        "constant",
        "extra",
        "unknown",
        "empty",
        "log-min",
    ],
)
def test_malformed_distributions_name_key_and_rule(write_spec, leaf, expected):
    path = write_spec(f"program: toy\nmethod: random\nparameters:\n  w0: {leaf}\n")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert f"{path}: {expected}" in str(e.value), e.value


# --- overrides: --set and ARGS_JSON -------------------------------------------------


def test_parse_sets_limits(guard):
    with pytest.raises(SpecError, match=rf"--set: x\[0\]\[0\].*: nested deeper than {MAX_DEPTH}"):
        parse_sets(["x=" + _nested(MAX_DEPTH + 1)])
    bomb = (
        "[&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "
        + ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9))
        + "]"
    )
    with pytest.raises(SpecError, match=r"--set: x\[\d\]\[\d\]: YAML aliases expand to over"):
        parse_sets([f"x={bomb}"])
    with pytest.raises(SpecError, match=f"--set: x: over {MAX_BYTES} bytes"):
        parse_sets(["x=" + "1" * (MAX_BYTES + 1)])
    assert parse_sets(["x=" + "9" * 5000]) == {"x": "9" * 5000}  # a string, as any non-YAML


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[" * 100_000 + "]" * 100_000, f"ARGS_JSON: nested deeper than {MAX_DEPTH} levels"),
        ('{"a": ' + _nested(40) + "}", "ARGS_JSON: a[0][0]"),
        ('{"a": 1', "ARGS_JSON: not valid JSON (Expecting ',' delimiter"),
        ("[1]", "ARGS_JSON: must be a JSON object of config values"),
        ('{"a": ' + "1" * 5000 + "}", "ARGS_JSON: not valid JSON (Exceeds the limit"),
    ],
    ids=["deep", "deep-value", "broken", "not-object", "huge-int"],
)
def test_load_json_object_limits(guard, text, expected):
    with pytest.raises(SpecError) as e:
        load_json_object(text, "ARGS_JSON")
    assert str(e.value).startswith(expected), e.value


def test_a_kernel_sweeps_metric_must_be_one_the_kernel_logs(write_spec):
    path = write_spec(
        "program: toy\nmethod: grid\nmetric: {name: los, goal: minimize}\n"
        "parameters: {steps: {values: [1, 2]}}\n"
    )
    with pytest.raises(SpecError) as e:
        load_spec(path)
    (msg,) = e.value.violations
    assert msg == (
        "metric.name: 'los' is not logged by kernel toy; it logs loss, w, runtime "
        "(did you mean 'loss'?)"
    )
