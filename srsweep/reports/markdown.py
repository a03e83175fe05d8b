"""Render the report's blocks as Markdown (``report.md``)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

from srsweep.reports.blocks import Block
from srsweep.reports.blocks import Bullets
from srsweep.reports.blocks import Code
from srsweep.reports.blocks import Heading
from srsweep.reports.blocks import Image
from srsweep.reports.blocks import Para
from srsweep.reports.blocks import Table
from srsweep.reports.blocks import text_of

__all__ = ["render_markdown", "table"]


def _cell(value: object) -> str:
    """One Markdown table cell: compact numbers, no pipes or line breaks."""
    return text_of(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    # Plain string formatting: pandas' to_markdown needs the optional tabulate package.
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|---" * len(headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"{'#' * b.level} {b.text}"
    if isinstance(b, Para):
        return b.text
    if isinstance(b, Bullets):
        return "\n".join(f"- {_cell(item)}" for item in b.items)
    if isinstance(b, Table):
        return table(b.headers, b.rows)
    if isinstance(b, Image):
        return f"![{b.alt}]({b.file})"
    if isinstance(b, Code):
        return f"```\n{b.text}\n```"
    raise TypeError(f"not a report block: {b!r}")


def render_markdown(blocks: Sequence[Block]) -> str:
    """The blocks as Markdown, separated by blank lines, ending in a newline."""
    return "\n\n".join(_block(b) for b in blocks) + "\n"
