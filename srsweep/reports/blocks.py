"""The report as a list of blocks, which ``markdown`` and ``html`` both render.

Text in blocks may use Markdown's inline marks (`code`, *emphasis*, **strong** and
[links](target)); the HTML renderer converts exactly these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from srsweep.reports.frames import format_value

__all__ = ["Heading", "Para", "Bullets", "Table", "Image", "Code", "Block", "text_of"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Cells are raw values; renderers format them with ``text_of``."""

    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Image:
    """A figure file; ``interactive`` names its interactive twin in ``report.html``."""

    file: str
    alt: str
    interactive: str | None = None


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Para | Bullets | Table | Image | Code


def text_of(value: Any) -> str:
    """A cell's text: compact numbers (``format_value``), "" for missing values."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else format_value(value)
