from __future__ import annotations

import pytest

from srsweep.errors import NotFoundError
from srsweep.errors import SpecError
from srsweep.spec import leaf_params
from srsweep.spec import load_spec
from srsweep.spec import load_yaml
from srsweep.spec import parse_sets

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
        ("method: grid\nparameters: {steps: {value: 2}}\n", "program: required"),
        (
            "program: nope\nmethod: grid\nparameters: {steps: {value: 2}}\n",
            "program: unknown kernel 'nope'; known kernels: ",
        ),
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
        "no-program",
        "unknown-kernel",
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


def test_a_missing_script_is_named_with_where_it_was_looked_for(write_spec, tmp_path):
    path = write_spec(SCRIPT_SPEC.format(program="missing.py"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    (msg,) = e.value.violations
    assert msg.startswith("program: unknown kernel 'missing.py'; known kernels: ")
    assert f"no file {tmp_path / 'missing.py'}" in msg and "on PATH" in msg


def test_script_parameters_still_get_shape_checks(write_spec, tmp_path):
    (tmp_path / "t.py").write_text("")
    path = write_spec("program: t.py\nmethod: grid\nparameters:\n  lr: {min: 1, max: 0}\n")
    with pytest.raises(SpecError, match=r"parameters.lr: min < max must hold"):
        load_spec(path)
