"""The best run and the best configuration over seeds, with what it takes to use them.

"Best" is by the metric's final value: the run's summary value when it ended (for the
``sd`` kernel's ``avg_acc`` the mean accuracy over its last ``avg_hor`` epochs), not
the best value seen anywhere in its history. Only runs that finished or were stopped
count, so a partial value never wins. A configuration is ranked by its mean over the
seeds that have a value.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from srsweep import kernels
from srsweep.config import build
from srsweep.config import flatten
from srsweep.config import to_dict
from srsweep.reports.importance import USED_STATES
from srsweep.spec import parse_sets

__all__ = ["BestRun", "BestConfig", "best_run", "best_config", "rerun_command", "DEFINITION"]

DEFINITION = "final value (its summary value at the end of the run, not the best in its history)"


@dataclass(frozen=True)
class BestRun:
    """The best run: its metric value, full config (dotted keys), model file, and the
    ``srsweep run`` command that trains it again (None for a script's run)."""

    run_id: str
    name: str
    state: str
    value: float
    config_number: int
    config: dict[str, Any]
    model_path: str | None
    command: str | None


@dataclass(frozen=True)
class BestConfig:
    """The configuration with the best mean over its seeds."""

    number: int
    mean: float
    std: float
    seeds: int  # seeds with a value
    run_ids: list[str]


def _set_text(value: Any) -> str:
    """A value as ``--set`` reads it back (YAML): JSON, or a bare string when YAML
    would read that string unchanged."""
    if isinstance(value, str) and parse_sets([f"k={value}"])["k"] == value:
        return value
    return json.dumps(value)


def rerun_command(kernel: str, config: Mapping[str, Any]) -> str:
    """``srsweep run KERNEL --set key=value ...`` with every key of ``config`` (nested)
    that differs from the kernel's default, shell-quoted."""
    defaults = flatten(to_dict(build(kernels.get(kernel).config, {}, f"kernel {kernel}")))
    sets = [
        shlex.quote(f"{key}={_set_text(value)}")
        for key, value in flatten(dict(config)).items()
        if key not in defaults or defaults[key] != value
    ]
    return " ".join(["srsweep", "run", shlex.quote(kernel), *(f"--set {s}" for s in sets)])


def best_run(
    runs_df: pd.DataFrame,
    metric: str,
    goal: str,
    model_paths: Mapping[str, str | None],
    kernel: str | None,
    configs: Mapping[str, dict[str, Any]],
) -> BestRun | None:
    """The run with the best final ``metric`` among those finished or stopped.

    Args:
        runs_df: ``frames.runs_frame`` with the ``config`` column.
        metric: Summary metric, without ``summary.``; ``goal`` its direction.
        model_paths: Model file per run id.
        kernel: The runs' kernel, for the command; None for a script's runs.
        configs: Each run's full nested config by run id.

    Returns:
        The best run, or None when no run that finished or stopped has the metric.
    """
    col = f"summary.{metric}"
    if col not in runs_df:
        return None
    done = runs_df[runs_df["state"].isin(USED_STATES)]
    values = pd.to_numeric(done[col], errors="coerce").dropna()
    if values.empty:
        return None
    pos = values.idxmin() if goal == "minimize" else values.idxmax()
    row = runs_df.loc[pos]
    rid = str(row["run_id"])
    config = configs.get(rid) or {}
    command = rerun_command(kernel, config) if kernel in kernels.names() else None
    return BestRun(
        run_id=rid,
        name=str(row["name"]),
        state=str(row["state"]),
        value=float(values[pos]),
        config_number=int(row["config"]),
        config=flatten(config),
        model_path=model_paths.get(rid),
        command=command,
    )


def best_config(configs_df: pd.DataFrame, metric: str, goal: str) -> BestConfig | None:
    """The configuration with the best mean ``metric`` over its seeds, or None when no
    configuration has a value."""
    col = f"{metric} mean"
    ranked = configs_df.dropna(subset=[col])
    if ranked.empty:
        return None
    pos = ranked[col].idxmin() if goal == "minimize" else ranked[col].idxmax()
    row = ranked.loc[pos]
    return BestConfig(
        number=int(row["config"]),
        mean=float(row[col]),
        std=float(row[f"{metric} std"]),
        seeds=int(row[f"{metric} n"]),
        run_ids=[str(r) for r in row["run_ids"]],
    )
