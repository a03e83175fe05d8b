"""The report's analyses of a sweep's frames, in one pass and one direction.

``analyse`` takes the run records once, builds the frames (``frames``), and derives
from them, in order: configurations over seeds (``seeds``), trends per run and per
configuration (``trends``), the importance of each hyperparameter (``importance``),
the values that drive each trend (``drivers``) and the best run and configuration
(``best``). The result, a ``Study``, is everything the figures and the renderers need;
nothing after this stage reads runs or computes statistics.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import pandas as pd

from srsweep.config import flatten
from srsweep.errors import UsageError
from srsweep.reports import frames
from srsweep.reports import seeds
from srsweep.reports.best import BestConfig
from srsweep.reports.best import BestRun
from srsweep.reports.best import best_config as find_best_config
from srsweep.reports.best import best_run as find_best_run
from srsweep.reports.drivers import Cells
from srsweep.reports.drivers import driver_cells
from srsweep.reports.drivers import tested
from srsweep.reports.forked import Awaiting
from srsweep.reports.importance import importance as hp_importance
from srsweep.reports.levels import Levels
from srsweep.reports.levels import is_numeric
from srsweep.reports.levels import levels_of
from srsweep.reports.read import Logged
from srsweep.reports.read import Rest
from srsweep.reports.read import logged_of
from srsweep.reports.trends import CHANCE
from srsweep.reports.trends import characterise
from srsweep.reports.trends import classify
from srsweep.reports.trends import metric_range
from srsweep.spec import leaf_params

if TYPE_CHECKING:
    from srsweep.backends._base import RunRecord

__all__ = ["Study", "analyse", "analyse_frames", "DEFAULT_AVG_HOR"]

DEFAULT_AVG_HOR = 50  # the window of the study's later plots (symrep §10)
MAX_LEGEND = 12  # beyond this the comparison legend stops being readable
HIGHLIGHT = 8  # how many best curves keep colour and a legend entry in a large sweep
LOG_DISTRIBUTIONS = ("log_uniform", "q_log_uniform", "inv_log_uniform")  # and *_values


@dataclass
class Study:
    """A sweep's frames and analyses, as the figures and renderers read them.

    ``runs`` is ``frames.runs_frame`` with a ``config`` column (``seeds.config_ids``);
    ``trends`` the trend per run with the run's name, state, config and ``keys``;
    ``configs`` one row per configuration (``seeds.configs_frame``); ``curves`` the
    curve over seeds per configuration (``seeds.seed_curves``) and ``plotted`` the
    smoothed curves, both at the steps the figures draw (``frames.thin``: every k-th
    logged step, at most about ``frames.MAX_POINTS``, and each run's last).
    ``importance`` and
    ``drivers`` are None when they could not be made; ``notes`` says why, per name.
    ``rest`` reads the logged keys ``plotted`` lacks, for ``history.csv`` (None: it
    has them all).
    """

    title: str
    metric: str
    goal: str
    curve: str
    avg_hor: int
    band: bool
    excluded: list[str]
    kernel: str | None
    xlabel: str
    runs: pd.DataFrame
    history: pd.DataFrame
    smoothed: pd.DataFrame
    keys: list[str]
    seed_keys: list[str]
    levels: dict[str, Levels]
    log_keys: set[str]
    trends: pd.DataFrame
    configs: pd.DataFrame
    curves: pd.DataFrame
    plotted: pd.DataFrame
    summary: pd.DataFrame
    best: pd.DataFrame
    best_run: BestRun | None
    best_config: BestConfig | None
    value_range: tuple[float, float] | None
    chance: float | None
    highlight: list[str] | None
    importance: pd.DataFrame | None
    drivers: pd.DataFrame | None
    notes: dict[str, str] = field(default_factory=dict)
    rest: Rest | None = None
    pending: Pending | None = None

    def settled(self) -> Study:
        """This study with its importance and drivers in: itself when they are, else as
        ``pending`` gives them once its child process has computed them."""
        return self if self.pending is None else self.pending.result()

    @property
    def replicated(self) -> bool:
        """Whether some configuration ran with more than one seed."""
        return bool((self.configs["seeds"] > 1).any())

    @property
    def config_labels(self) -> pd.Series:
        """Legend label per configuration number: its hyperparameter values."""
        if not self.keys:
            return pd.Series(
                [f"config {c}" for c in self.configs["config"]],
                index=self.configs["config"].to_numpy(),
            )
        labels = frames.run_labels(
            self.configs.assign(run_id=self.configs["config"], name=self.configs["config"]),
            self.keys,
        )
        return labels


def analyse(
    records: Sequence[RunRecord],
    *,
    metric: str,
    goal: str,
    curve: str,
    avg_hor: int | None = None,
    band: bool = True,
    title: str = "",
    k: int = 10,
    kernel: str | None = None,
    spec: dict[str, Any] | None = None,
    excluded: Sequence[str] = (),
    logged: Logged | Callable[[], Logged] | None = None,
    last: Mapping[str, Mapping[str, Any]] | None = None,
    wait: bool = True,
) -> Study:
    """The frames of the runs (``frames``) and their analyses (``analyse_frames``); see
    ``pipeline.write_report`` for the args; ``excluded`` are the patterns the runs were
    filtered by, for the summary; ``logged`` their histories (``read.read_logged``),
    or what reads them (called once the analyses' child processes have started, so
    that they import while it reads), default: the records' own; ``last`` each run's
    last logged values (``Backend.last_logged``) when ``logged`` is a reader; ``wait``
    as ``analyse_frames``.

    Raises:
        UsageError: no run logged ``curve``, no run has ``metric``, a bad ``goal`` or
            ``avg_hor``.
    """
    swept: dict[str, None] = {}
    for r in records:
        swept.update(dict.fromkeys(flatten(r.params or {})))
    if logged is None:
        logged = logged_of(records)
    if isinstance(logged, Logged):
        last = logged.last
    return analyse_frames(
        frames.runs_frame(records, last),
        logged,
        swept=list(swept) if swept else None,
        model_paths={r.id: r.model_path for r in records},
        run_configs={r.id: r.config for r in records},
        metric=metric,
        goal=goal,
        curve=curve,
        avg_hor=avg_hor,
        band=band,
        title=title,
        k=k,
        kernel=kernel,
        spec=spec,
        excluded=excluded,
        wait=wait,
    )


def analyse_frames(
    runs: pd.DataFrame,
    logged: Logged | Callable[[], Logged],
    *,
    swept: Sequence[str] | None,
    model_paths: Mapping[str, str | None],
    run_configs: Mapping[str, dict[str, Any]],
    metric: str,
    goal: str,
    curve: str,
    avg_hor: int | None = None,
    band: bool = True,
    title: str = "",
    k: int = 10,
    kernel: str | None = None,
    spec: dict[str, Any] | None = None,
    excluded: Sequence[str] = (),
    wait: bool = True,
) -> Study:
    """The analyses of a runs frame and the runs' histories (``frames.runs_frame`` and
    ``read.Logged``).

    The importance (scikit-learn) and the drivers' tests (SciPy) run in forked child
    processes (``forked``), started before the histories are read: each import takes
    about a second that the reading and smoothing here then hide.

    Args:
        runs: One row per run.
        logged: Their histories (``frame``: one row per logged step), or what reads
            them, called once the children have started.
        swept: The keys the sweep chose (its runs' ``params``); None: every config key.
        model_paths: Model file per run id.
        run_configs: Full nested config per run id (for the best run's command).
        metric: As ``analyse``, as are ``goal``, ``curve``, ``avg_hor``, ``band``,
            ``title``, ``k``, ``kernel``, ``spec`` and ``excluded``.
        wait: False: return as soon as all but the importance and the drivers is
            done, with them left ``pending`` (``Study.settled()`` waits for them, and
            must be called, or ``pending.close()``), so that the caller can go on
            meanwhile (``pipeline.write_study`` draws the figures).

    Raises:
        UsageError: as ``analyse``.
    """
    if avg_hor is None:
        avg_hor = _default_avg_hor(runs)
    seed_cols = seeds.seed_keys(runs)
    keys = [k for k in frames.varying_keys(runs, swept) if k not in seed_cols]
    config = seeds.config_ids(runs)
    records_frame, runs = runs, runs.assign(config=config.to_numpy())
    # one child fits the forests at once (scikit-learn imports SciPy's statistics too),
    # then tests the trends' drivers once this process has classified the trends
    stats = Awaiting(functools.partial(hp_importance, runs, keys, metric), _statistics)
    try:
        if not isinstance(logged, Logged):
            logged = logged()
        hist, logged_keys = logged.frame, logged.keys
        if curve not in hist.columns or pd.to_numeric(hist[curve], errors="coerce").isna().all():
            known = sorted(logged_keys)
            raise UsageError(
                f"report: no run (of {len(runs)} after exclusions) has any history of "
                f"{curve!r}; logged metrics: {', '.join(known) or 'none'}"
            )
        smoothed = frames.smooth(hist, curve, avg_hor)
        best = frames.best_k(records_frame, metric, goal, k)  # (best.csv: no config column)

        smooth_col = f"{curve}_smooth"
        values = smoothed[smooth_col]
        value_range = metric_range(curve, values)
        accuracy = value_range is not None
        # Non-accuracy curves have no chance level: judge each against its own start, with
        # "learning" meaning a gain of 5 % of the range all curves span.
        spread = float(values.max() - values.min()) if values.notna().any() else 0.0
        margin = 0.05 if accuracy else max(0.05 * spread, 1e-12)
        run_trends = classify(
            smoothed,
            smooth_col,
            chance=CHANCE if accuracy else None,
            margin=margin,
            warmup=avg_hor,
            goal=goal,
        )
        per_config = seeds.config_trends(run_trends, config)
        configs = seeds.configs_frame(runs, config, keys, metric, per_config)
        levels = {k: levels_of(runs[k]) for k in keys}
        notes: dict[str, str] = {}
        cells, why = driver_cells(configs, keys, levels)
        stats.send(cells)
        if cells is None:
            notes["drivers"] = why
        trends = run_trends.merge(runs[["run_id", "name", "state", "config", *keys]], on="run_id")
        trends = trends.merge(
            per_config[["config", "label"]].rename(columns={"label": "config trend"}), on="config"
        )
        plotted = frames.plain_ids(frames.thin(smoothed))
        curves = seeds.seed_curves(plotted, config, smooth_col)

        best_run = find_best_run(runs, metric, goal, model_paths, kernel, run_configs)
        best_config = find_best_config(configs, metric, goal)
        sweeps = sorted({s for s in runs["sweep_id"] if isinstance(s, str)})
        n_curves = len(configs) if (configs["seeds"] > 1).any() else len(runs)
        highlight = None
        if n_curves > MAX_LEGEND:
            highlight = _highlight(runs, configs, metric, goal, replicated=n_curves < len(runs))
        study = Study(
            title=title or (f"Sweep {', '.join(sweeps)}" if sweeps else "Runs report"),
            metric=metric,
            goal=goal,
            curve=curve,
            avg_hor=avg_hor,
            band=band,
            excluded=[p for p in excluded if p],
            kernel=kernel,
            xlabel="epoch" if "epoch" in logged_keys else "step",
            runs=runs,
            history=hist,
            smoothed=smoothed,
            keys=keys,
            seed_keys=seed_cols,
            levels=levels,
            log_keys=_log_keys(spec, runs, keys),
            trends=trends,
            configs=configs,
            curves=curves,
            plotted=plotted,
            summary=characterise(configs, keys),
            best=best,
            best_run=best_run,
            best_config=best_config,
            value_range=value_range,
            chance=CHANCE if accuracy else None,
            highlight=highlight,
            importance=None,
            drivers=None,
            notes=notes,
            rest=logged.rest,
        )
    except BaseException:
        stats.close()
        raise
    study.pending = Pending(study, stats)
    return study if not wait else study.settled()


class Pending:
    """A ``Study``'s importance and drivers, still being computed by its child process."""

    def __init__(self, study: Study, stats: Awaiting[Importance, Cells | None, Any]) -> None:
        self._study, self._stats = study, stats

    def result(self) -> Study:
        """The study with them in (waiting for the child; once)."""
        try:
            (importance, why), drivers = self._stats.result()
        finally:
            self._stats.close()
        notes = dict(self._study.notes)
        if why:
            notes["importance"] = why
        return dataclasses.replace(
            self._study, importance=importance, drivers=drivers, notes=notes, pending=None
        )

    def close(self) -> None:
        """End the child: its results are not wanted."""
        self._stats.close()


Importance = tuple[pd.DataFrame | None, str]  # importance.importance's table, or why not


def _statistics(
    importance: Importance, cells: Cells | None
) -> tuple[Importance, pd.DataFrame | None]:
    """The importance as fitted, and the drivers' tests of ``cells`` (None: none)."""
    return importance, tested(cells) if cells is not None else None


def _highlight(
    runs: pd.DataFrame, configs: pd.DataFrame, metric: str, goal: str, *, replicated: bool
) -> list[str]:
    """Run ids (or configuration numbers as str, when curves are over seeds) of the
    ``HIGHLIGHT`` best curves."""
    if not replicated:
        return list(frames.best_k(runs, metric, goal, HIGHLIGHT)["run_id"])
    col = f"{metric} mean"
    ranked = configs.dropna(subset=[col]).sort_values(
        col, ascending=goal == "minimize", kind="stable"
    )
    return [str(c) for c in ranked["config"].head(HIGHLIGHT)]


def _default_avg_hor(runs_df: pd.DataFrame) -> int:
    """The most common ``avg_hor`` in the runs' configs, else ``DEFAULT_AVG_HOR``."""
    cols = [c for c in frames.config_columns(runs_df) if c.split(".")[-1] == "avg_hor"]
    found = [
        int(v)
        for c in cols
        for v in runs_df[c]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v > 0
    ]
    return Counter(found).most_common(1)[0][0] if found else DEFAULT_AVG_HOR


def _log_keys(spec: dict[str, Any] | None, runs: pd.DataFrame, keys: Sequence[str]) -> set[str]:
    """Keys drawn on a log scale: those the spec draws from a logarithmic distribution,
    and numeric ones whose values are all positive and span two decades or more (a
    grid such as ``values: [1e-5, 1e-4, 1e-3]``)."""
    leaves = leaf_params((spec or {}).get("parameters") or {})
    out = set()
    for key in keys:
        dist = str((leaves.get(key.removeprefix("config.")) or {}).get("distribution", ""))
        values = (
            pd.to_numeric(runs[key], errors="coerce").dropna() if is_numeric(runs[key]) else None
        )
        wide = (
            values is not None
            and len(values)
            and values.min() > 0
            and values.max() >= 100 * values.min()
        )
        if dist.removesuffix("_values") in LOG_DISTRIBUTIONS or wide:
            out.add(key)
    return out
