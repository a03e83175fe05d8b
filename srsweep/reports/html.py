"""Render the report's blocks as one self-contained ``report.html``.

Everything ``report.md`` holds is there, in the same order, with each figure that has
an interactive twin (``interactive``) drawn by plotly instead of its PNG, the other
PNGs embedded as data URIs, and a sortable table of every run at the end. plotly's
JavaScript is embedded once, so the page needs no network when it is opened (from a
cluster's file system or an e-mail); links to the CSV files work beside them.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from srsweep.reports.analysis import Study
from srsweep.reports.blocks import Block
from srsweep.reports.blocks import Bullets
from srsweep.reports.blocks import Code
from srsweep.reports.blocks import Heading
from srsweep.reports.blocks import Image
from srsweep.reports.blocks import Para
from srsweep.reports.blocks import Table
from srsweep.reports.blocks import text_of

__all__ = ["render_html", "runs_table"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #999; }
.scroll { max-height: 36em; overflow: auto; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
code { background: #f6f6f6; padding: 0 0.2em; }
img { max-width: 100%; }
.static { font-size: 0.85em; color: #666; }
"""

# Click a header of a sortable table to sort by that column (numbers as numbers);
# click again to reverse. The only script of the page beside plotly's.
_SORT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.order !== "up";
      th.dataset.order = up ? "up" : "down";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*(.+?)\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline(text: str) -> str:
    """Markdown's inline marks (`code`, **strong**, *emphasis*, [link](href)) as HTML,
    everything else escaped."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        code, strong, em, label, href = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif strong is not None:
            out.append(f"<strong>{inline(strong)}</strong>")
        elif em is not None:
            out.append(f"<em>{inline(em)}</em>")
        else:
            out.append(f'<a href="{html.escape(href)}">{inline(label)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _table(
    headers: Sequence[object], rows: Sequence[Sequence[object]], sortable: bool = False
) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{inline(text_of(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(text_of(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(b: Image, out_dir: Path, figures: Mapping[str, go.Figure], first: list[bool]) -> str:
    if b.interactive is not None and b.interactive in figures:
        div = pio.to_html(
            figures[b.interactive],
            full_html=False,
            include_plotlyjs=first[0],  # embedded once, with the first figure
            config={"displaylogo": False, "responsive": True},
        )
        first[0] = False
        name = html.escape(b.file)
        return f'{div}<p class="static">Static figure: <a href="{name}">{name}</a></p>'
    path = out_dir / b.file
    if not path.is_file():
        return f'<p><a href="{html.escape(b.file)}">{html.escape(b.alt)}</a></p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">'


def runs_table(study: Study) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    """(headers, rows) of the sortable table of every run."""
    trend = study.trends.set_index("run_id")
    metric = f"summary.{study.metric}"
    headers = (
        "run",
        "id",
        "state",
        "config",
        *study.seed_keys,
        *study.keys,
        study.metric,
        "trend",
        "configuration's trend",
        "runtime (s)",
    )
    rows = []
    for _, r in study.runs.iterrows():
        t = trend.loc[r["run_id"]] if r["run_id"] in trend.index else None
        rows.append(
            (
                r["name"],
                r["run_id"],
                r["state"],
                r["config"],
                *(r[k] for k in study.seed_keys),
                *(r[k] for k in study.keys),
                r.get(metric),
                None if t is None else t["trend"],
                None if t is None else t["config trend"],
                round(float(r["runtime"]), 1) if pd.notna(r["runtime"]) else None,
            )
        )
    return headers, rows


def _block(b: Block, out_dir: Path, figures: Mapping[str, go.Figure], first: list[bool]) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{inline(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return f"<p>{inline(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        return _table(b.headers, b.rows)
    if isinstance(b, Image):
        return _image(b, out_dir, figures, first)
    if isinstance(b, Code):
        return f"<pre><code>{html.escape(b.text)}</code></pre>"
    raise TypeError(f"not a report block: {b!r}")


def render_html(
    blocks: Sequence[Block], study: Study, figures: Mapping[str, go.Figure], out_dir: Path
) -> str:
    """The page: ``blocks`` in order (figures interactive where ``figures`` has their
    twin, PNGs from ``out_dir`` embedded otherwise), then the sortable runs table."""
    first = [True]
    body = [_block(b, out_dir, figures, first) for b in blocks]
    headers, rows = runs_table(study)
    body += [
        "<h2>All runs</h2>",
        "<p>Click a column's header to sort by it.</p>",
        f'<div class="scroll">{_table(headers, rows, sortable=True)}</div>',
    ]
    title = html.escape(study.title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SORT}</script>\n</body>\n</html>\n"
    )
