"""What the report says, as blocks: the summary, the best run, figures, the tables.

Pure text from a ``Study`` and the names of the files written beside it; the same
blocks become ``report.md`` (``markdown``) and ``report.html`` (``html``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

import pandas as pd

from srsweep.reports.analysis import Study
from srsweep.reports.best import DEFINITION
from srsweep.reports.blocks import Block
from srsweep.reports.blocks import Bullets
from srsweep.reports.blocks import Code
from srsweep.reports.blocks import Heading
from srsweep.reports.blocks import Image
from srsweep.reports.blocks import Para
from srsweep.reports.blocks import Table
from srsweep.reports.drivers import ALPHA
from srsweep.reports.frames import format_value
from srsweep.reports.trends import SEED_DEPENDENT
from srsweep.reports.trends import rules

__all__ = ["Files", "report_blocks", "kernel_section", "curves_section", "STATES"]

STATES = ("running", "finished", "stopped", "failed", "crashed", "preempted")  # listed order
FAILED = ("failed", "crashed", "preempted")
DRIVERS_PER_TREND = 4  # the strongest values per trend shown; the CSV has every test
MEMBERS = 10  # configurations named per trend; trends.csv has every one


@dataclass
class Files:
    """The files written beside the report, by what they show (None: not written)."""

    tables: list[tuple[str, str]] = field(default_factory=list)  # (file, what it holds)
    comparison: str = "comparison.png"
    by_key: dict[str, str] = field(default_factory=dict)
    metric_vs: dict[str, str] = field(default_factory=dict)
    parallel: str | None = None
    importance: str | None = None
    html: str | None = None


def _number(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return f"{value:.4g}"
    return ""


def _duration(seconds: object) -> str:
    if not isinstance(seconds, (int, float)) or seconds != seconds:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _first_line(error: object) -> str:
    return error.strip().splitlines()[0] if isinstance(error, str) and error.strip() else ""


def _seed_counts(study: Study) -> str:
    """ "7 configurations, 1 seed each" or "5 configurations × 2-3 seeds (12 runs)"."""
    n = len(study.configs)
    seeds = study.configs["seeds"]
    if seeds.max() == 1:
        return f"{n} configuration{'s' * (n != 1)}, 1 seed each"
    span = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    return f"{n} configuration{'s' * (n != 1)} × {span} seeds ({int(seeds.sum())} runs)"


def _summary(study: Study, files: Files) -> list[Block]:
    runs = study.runs
    counts = Counter(runs["state"])
    states = [s for s in STATES if s in counts] + sorted(set(counts) - set(STATES))
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    band = ""
    if study.band:
        band = ", with a band of ±1 std of the raw values in the window"
        if study.replicated:
            band = (
                "; a configuration's curve is the mean over its seeds, with a band of "
                "±1 std over the seeds"
            )
    items = [f"Runs: {len(runs)} ({', '.join(f'{counts[s]} {s}' for s in states)})."]
    items.append(
        f"Configurations: {_seed_counts(study)}; runs that differ only in "
        f"{', '.join(f'`{k}`' for k in study.seed_keys) or 'a seed'} are one configuration."
    )
    if study.excluded:
        items.append(f"Excluded runs whose id or name contains: {', '.join(study.excluded)}.")
    items.append(f"Hyperparameters that differ: {', '.join(study.keys) or 'none'}.")
    items.append(
        f"Curves: `{study.curve}`, trailing mean over avg_hor = {study.avg_hor} steps{band}."
    )
    if study.value_range is not None and study.band:
        lo, hi = study.value_range
        items.append(
            f"Bands are clipped to [{lo:g}, {hi:g}]: `{study.curve}` is taken for an "
            'accuracy (its name has "acc" and every value lies in that range).'
        )
    out: list[Block] = [Heading(study.title, 1), Para(f"Generated {stamp}."), Bullets(tuple(items))]
    links = [f"[{name}]({name}): {what}" for name, what in files.tables]
    if files.html:
        links.append(
            f"[{files.html}]({files.html}): this report with interactive figures, "
            "one file that opens with no network"
        )
    if links:
        out += [Para("Files:"), Bullets(tuple(links))]
    return out


def _best(study: Study) -> list[Block]:
    out: list[Block] = [Heading("Best run")]
    b = study.best_run
    if b is None:
        return out + [
            Para(f"Left out: no run that finished or was stopped has a value of `{study.metric}`.")
        ]
    c = study.configs.set_index("config").loc[b.config_number]
    seeds = int(c["seeds"])
    better = "lower" if study.goal == "minimize" else "higher"
    items = [
        f"**{b.name}** (`{b.run_id}`, {b.state}): {study.metric} = {_number(b.value)}, its "
        f"{DEFINITION}; {better} is better.",
    ]
    if seeds > 1:
        items.append(
            f"Its configuration ({b.config_number}) over {seeds} seeds: mean "
            f"{_number(c[f'{study.metric} mean'])} ± {_number(c[f'{study.metric} std'])}; "
            f"trend: {c['label']}."
        )
    else:
        items.append(f"Trend: {c['label']} (its configuration ran with one seed).")
    bc = study.best_config
    if bc is not None and study.replicated:
        items.append(
            f"Best configuration by the mean over its seeds: {bc.number}, "
            f"{_number(bc.mean)} ± {_number(bc.std)} over {bc.seeds} seeds."
        )
    items.append(f"Model file: `{b.model_path}`" if b.model_path else "Model file: none recorded.")
    out.append(Bullets(tuple(items)))
    if b.command:
        out += [Para("Train it again:"), Code(b.command)]
    else:
        out.append(Para("No `srsweep run` command: the sweep runs a script, not a kernel."))
    # lists and None as the config file and --set write them: ["grad"], null
    rows = tuple(
        (k, json.dumps(v) if isinstance(v, (list, tuple, dict)) or v is None else v)
        for k, v in b.config.items()
    )
    out += [Para("Its full config:"), Table(("key", "value"), rows)]
    return out


def _fit_text(r2: float) -> str:
    """How well the forests predict runs they did not see (R² on held-out runs)."""
    if r2 <= 0:
        return (
            f"On held-out runs the forests predict no better than the mean (R² = {r2:.2f}): "
            "the hyperparameters explain little of the metric here; read the ranking with care."
        )
    care = " (little: read the ranking with care)" if r2 < 0.3 else ""
    return f"The forests explain {r2:.0%} of the variance of held-out runs{care}."


def _importance(study: Study, files: Files) -> list[Block]:
    out: list[Block] = [Heading(f"Which hyperparameters matter for {study.metric}")]
    t = study.importance
    if t is None or files.importance is None:
        return out + [Para(f"Left out: {study.notes.get('importance', 'not computed')}.")]
    r2 = float(t["heldout_r2"].iloc[0])
    out.append(
        Para(
            f"Permutation importance from random forests (scikit-learn) fitted to the final "
            f"`{study.metric}` of {int(t['runs'].iloc[0])} runs: the share of the metric's "
            "variance the forest's error grows by when one hyperparameter is shuffled, on runs "
            "left out of each bootstrap resample (± its std over the resamples). " + _fit_text(r2)
        )
    )
    out.append(Image(files.importance, f"Importance for {study.metric}", "importance"))
    rows = tuple(
        (int(r["rank"]), r["key"], f"{r['importance']:.3f}", f"{r['std']:.3f}")
        for _, r in t.iterrows()
    )
    return out + [Table(("rank", "hyperparameter", "importance", "± std"), rows)]


def _trends(study: Study) -> list[Block]:
    out: list[Block] = [
        Heading("Trends"),
        Para(
            rules(study.curve, study.goal) + " A configuration's trend is the one more than half "
            'of its seeds show (with the agreement, e.g. "4/5 seeds"), else *seed-dependent*. '
            "Cells give the most common value of each hyperparameter among the trend's "
            "configurations, and the median of numeric ones."
        ),
    ]
    rows = []
    for _, r in study.summary.iterrows():
        cells = []
        for k in study.keys:
            mode, med = r[f"{k} mode"], r.get(f"{k} median")
            mode_text = "" if mode is None else format_value(mode)
            med_text = format_value(med) if isinstance(med, float) and med == med else mode_text
            text = mode_text if med_text == mode_text else f"{mode_text} (median {med_text})"
            cells.append(text if r["configurations"] else "")
        rows.append((r["trend"], r["configurations"], r["runs"], *cells))
    out.append(Table(("trend", "configurations", "runs", *study.keys), tuple(rows)))
    members = []
    # the run names of the (at most) first ten configurations of each trend
    names_of = study.trends.groupby("config", sort=False)["name"].agg(list)
    for trend in study.summary["trend"]:
        configs = study.configs[(study.configs["trend"] == trend).to_numpy()]
        names = []
        for _, c in configs.head(MEMBERS).iterrows():
            runs = [str(n) for n in names_of.get(c["config"], [])]
            seeds = f"{c['agree']}/{c['voters']} seeds" if c["trend"] != SEED_DEPENDENT else "split"
            names.append(runs[0] if len(runs) == 1 else f"{seeds} ({', '.join(runs)})")
        more = f", … ({len(configs) - MEMBERS} more)" if len(configs) > MEMBERS else ""
        if names:
            members.append(f"*{trend}*: {', '.join(names)}{more}")
    if members:
        out.append(Bullets(tuple(members)))
    return out


def _drivers(study: Study) -> list[Block]:
    out: list[Block] = [Heading("What drives each trend")]
    d = study.drivers
    if d is None:
        return out + [Para(f"Left out: {study.notes.get('drivers', 'not computed')}.")]
    m = int(d["tests"].iloc[0])
    out.append(
        Para(
            "Per trend, the hyperparameter values (quantile bins of continuous ones) most over- "
            "or under-represented among its configurations, by Fisher's exact test of each value "
            f"against the rest (two-sided; SciPy). {m} tests were made, so p is also given "
            f"Bonferroni-corrected (× {m}); **yes** marks a corrected p below {ALPHA}. "
            "Every test is in [trend_drivers.csv](trend_drivers.csv)."
        )
    )
    rows = []
    for trend, g in d.groupby("trend", sort=False):
        informative = g[g["p"] < 1.0].sort_values("p", kind="stable")
        if informative.empty:
            rows.append((trend, "(no value stands out: p = 1 for each)", *[""] * 7))
        for _, r in informative.head(DRIVERS_PER_TREND).iterrows():
            rows.append(
                (
                    trend,
                    f"{r['key']}={r['value']}",
                    f"{r['count']}/{r['trend_size']}",
                    f"{r['share']:.0%}",
                    f"{r['overall']:.0%}",
                    r["direction"],
                    f"{r['p']:.3g}",
                    f"{r['p_bonferroni']:.3g}",
                    "**yes**" if r["flagged"] else "no",
                )
            )
    headers = (
        "trend",
        "value",
        "configs in trend",
        "share in trend",
        "share overall",
        "",
        "p",
        "p × tests",
        "significant",
    )
    return out + [Table(headers, tuple(rows))]


def _comparison(study: Study, files: Files) -> list[Block]:
    out: list[Block] = [Heading(f"Smoothed {study.curve}, all runs")]
    if study.highlight is not None:
        what = "configurations" if study.replicated else "runs"
        out.append(
            Para(
                f"The {len(study.highlight)} best {what} by {study.metric} are "
                "coloured, the rest grey."
            )
        )
    return out + [Image(files.comparison, f"Smoothed {study.curve} of every run", "comparison")]


def _hparam_figures(study: Study, files: Files) -> list[Block]:
    out: list[Block] = []
    if files.metric_vs:
        out += [
            Heading(f"Final {study.metric} against each hyperparameter"),
            Para(
                "One point per run, in the colour of its value (or quantile bin) as in every "
                "figure here; a log axis where the spec draws the key from a logarithmic "
                "distribution or its values span two decades or more; a strip and box per "
                "value for a categorical key."
            ),
        ]
        for key, name in files.metric_vs.items():
            out.append(Image(name, f"{study.metric} by {key}", f"metric_vs:{key}"))
    if files.parallel:
        out += [
            Heading("Parallel coordinates"),
            Image(files.parallel, "Every run's hyperparameters and final metric", "parallel"),
        ]
    if files.by_key:
        out.append(Heading(f"Smoothed {study.curve} by hyperparameter"))
        binned = [k for k in files.by_key if study.levels[k].binned]
        if binned:
            out.append(Para(f"{', '.join(binned)}: binned at quantiles into at most 6 groups."))
    for key, name in files.by_key.items():
        out += [Heading(key, 3), Image(name, f"Smoothed {study.curve} by {key}", f"by:{key}")]
    return out


def _best_table(study: Study) -> list[Block]:
    best, metric = study.best, study.metric
    out: list[Block] = [Heading(f"Best {len(best)} by {metric} ({study.goal})")]
    if (best["state"] == "running").any():
        out.append(Para("Runs marked **running** have not finished; their values are partial."))
    rows = tuple(
        (
            i + 1,
            r["name"],
            "**running**" if r["state"] == "running" else r["state"],
            _number(r[f"summary.{metric}"]),
            *(r[k] for k in study.keys),
            _duration(r["runtime"]),
        )
        for i, r in best.iterrows()
    )
    return out + [Table(("#", "run", "state", metric, *study.keys, "runtime"), rows)]


def _ended(study: Study) -> list[Block]:
    runs = study.runs
    out: list[Block] = []
    stopped = runs[runs["state"] == "stopped"]
    if len(stopped):
        col = f"summary.{study.metric}"
        values = stopped[col] if col in stopped else pd.Series([None] * len(stopped))
        rows = zip(
            stopped["name"], map(_number, values), map(_first_line, stopped["error"]), strict=True
        )
        out += [
            Heading("Stopped early"),
            Para(
                "Runs the sweep ended early (early termination, a metric target, `srsweep stop`); "
                "they count with the values they reached."
            ),
            Table(("run", study.metric, "reason"), tuple(rows)),
        ]
    failed = runs[
        runs["state"].isin(FAILED)
        | (runs["error"].notna() & ~runs["state"].isin(("stopped", "finished")))
    ]
    if len(failed):
        rows = zip(failed["name"], failed["state"], map(_first_line, failed["error"]), strict=True)
        out += [Heading("Failed runs"), Table(("run", "state", "error"), tuple(rows))]
    return out


def report_blocks(study: Study, files: Files) -> list[Block]:
    """The report of ``study``, whose figures and tables are in ``files``."""
    return [
        *_summary(study, files),
        *_best(study),
        *_comparison(study, files),
        *_importance(study, files),
        *_trends(study),
        *_drivers(study),
        *_hparam_figures(study, files),
        *_best_table(study),
        *_ended(study),
    ]


def kernel_section(
    kernel: str, figures: Sequence[tuple[str, str]], notes: Sequence[str]
) -> list[Block]:
    """The section of a kernel's own figures (file name, caption) and skip notes;
    empty when it has neither."""
    if not figures and not notes:
        return []
    out: list[Block] = [Heading(f"{kernel} figures")]
    for name, caption in figures:
        out += [Image(name, name), Para(caption)]
    if notes:
        out += [Para("Skipped:"), Bullets(tuple(notes))]
    return out


def curves_section(curves: Sequence[tuple[str, str]]) -> list[Block]:
    """One section per other logged metric (metric, figure file name)."""
    out: list[Block] = []
    for key, name in curves:
        out += [Heading(f"Smoothed {key}"), Image(name, f"Smoothed {key}", f"curve:{key}")]
    return out
