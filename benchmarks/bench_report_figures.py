"""The report's stages after the frames, at the study's scale: 1000 runs x 4000 steps.

Builds, in memory and without a ledger, the frames of a replicated sd-like sweep (250
configurations x 4 seeds of five hyperparameters, ``acc`` and ``loss`` logged every
step) and times each stage the report runs on them: the analyses (smoothing, seeds,
trends, importance, drivers, best run), the CSV tables, the PNG figures, the
interactive figures, and the Markdown and HTML rendering, one after the other; then
everything after the analyses once more as the report writes it (``write_study``: the
CSVs and PNG figures shared out between the process and a forked child). Reading the
ledger into the frames is what ``bench_report.py`` times as part of ``srsweep report``.

    python benchmarks/bench_report_figures.py [--runs 1000] [--steps 4000] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import TypeVar

import numpy as np
import pandas as pd

from srsweep.reports import pipeline
from srsweep.reports.analysis import analyse_frames
from srsweep.reports.document import Files
from srsweep.reports.document import report_blocks
from srsweep.reports.html import render_html
from srsweep.reports.interactive import interactive_figures
from srsweep.reports.markdown import render_markdown
from srsweep.reports.plots import save
from srsweep.reports.read import Logged

T = TypeVar("T")
SEEDS = 4
KEYS: dict[str, Callable[[np.random.Generator, int], Any]] = {
    "disc.lr": lambda rng, n: 10 ** rng.uniform(-5, -2, n),
    "disc.hid_num": lambda rng, n: rng.choice([2, 4, 6, 8], n),
    "disc.hid_size": lambda rng, n: rng.choice([32, 64, 128], n),
    "disc.loss": lambda rng, n: rng.choice(["bce", "wgan"], n),
    "disc.gp": lambda rng, n: rng.choice([0.0, 1e-5, 1e-3], n),
}
SPEC = {
    "parameters": {
        "disc": {
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}}
        }
    }
}


def frames(n_runs: int, steps: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs frame, history frame) of a synthetic replicated sweep whose accuracy rises
    faster for a larger ``disc.lr`` and does not rise with ``wgan`` and no penalty."""
    rng = np.random.default_rng(seed)
    n_cfg = n_runs // SEEDS
    cfg = pd.DataFrame({k: draw(rng, n_cfg) for k, draw in KEYS.items()})
    runs = cfg.loc[np.repeat(np.arange(n_cfg), SEEDS)].reset_index(drop=True)
    runs.insert(0, "seed", np.tile(np.arange(SEEDS), n_cfg))
    ids = [f"r{i:04d}" for i in range(len(runs))]
    runs.insert(0, "sweep_id", "bench")
    runs.insert(0, "state", "finished")
    runs.insert(0, "name", [f"sd-{i}" for i in ids])
    runs.insert(0, "run_id", ids)
    rate = 20 * np.log10(runs["disc.lr"].to_numpy() * 1e6) / steps
    flat = ((runs["disc.loss"] == "wgan") & (runs["disc.gp"] == 0.0)).to_numpy()
    t = np.arange(steps, dtype=float)
    acc = 0.5 + 0.4 * (1 - np.exp(-np.outer(rate, t))) * ~flat[:, None]
    acc = np.clip(acc + rng.normal(0, 0.04, acc.shape), 0, 1)
    hist = pd.DataFrame(
        {
            "run_id": np.repeat(ids, steps),
            "step": np.tile(np.arange(steps), len(ids)),
            "acc": acc.ravel(),
            "loss": 1 - acc.ravel(),
        }
    )
    runs["summary.avg_acc"] = acc[:, -steps // 10 :].mean(axis=1)
    runs["runtime"] = 300.0
    runs["error"] = None
    return runs, hist


def timed(name: str, fn: Callable[[], T], table: list[tuple[str, float]]) -> T:
    t0 = time.perf_counter()
    out = fn()
    table.append((name, time.perf_counter() - t0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=None, help="keep the report here")
    args = parser.parse_args()
    runs, hist = frames(args.runs, args.steps)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_report_"))
    out.mkdir(parents=True, exist_ok=True)
    table: list[tuple[str, float]] = []
    study = timed(
        "analyses",
        lambda: analyse_frames(
            runs, Logged(hist, [c for c in hist if c not in ("run_id", "step")]),
            swept=list(KEYS), model_paths={}, run_configs={}, metric="avg_acc",
            goal="maximize", curve="acc", avg_hor=500, spec=SPEC,
        ),
        table,
    )  # fmt: skip
    files = Files(html="report.html")
    files.tables += [(n, w) for n, w, _ in pipeline._tables(study)]
    timed(
        "CSV tables",
        lambda: [pipeline._write_csv(out / n, df) for n, _, df in pipeline._tables(study)],
        table,
    )
    jobs = pipeline._figures(study, files)
    figs = timed("PNG figures (draw)", lambda: [(n, draw()) for n, draw in jobs], table)
    timed("PNG figures (save)", lambda: [save(f, out / n) for n, f in figs], table)
    blocks = report_blocks(study, files)
    twins = timed("interactive figures", lambda: interactive_figures(study), table)
    page = timed("HTML", lambda: render_html(blocks, study, twins, out), table)
    timed("Markdown", lambda: render_markdown(blocks), table)
    (out / "report.html").write_text(page)
    print(
        f"{args.runs} runs x {args.steps} steps ({len(hist):,} history rows), "
        f"{len(study.configs)} configurations; report in {out}"
    )
    for name, seconds in table:
        print(f"  {name:22} {seconds:6.2f} s")
    size = (out / "report.html").stat().st_size / 2**20
    print(f"  {'total':22} {sum(s for _, s in table):6.2f} s; report.html {size:.1f} MiB")
    t0 = time.perf_counter()
    pipeline.write_study(study, out / "overlapped")
    print(
        f"  {'written as a report':22} {time.perf_counter() - t0:6.2f} s "
        "(all but the analyses; the CSVs and PNGs written by two processes)"
    )


if __name__ == "__main__":
    main()
