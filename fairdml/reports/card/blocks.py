"""The card's content model: sections of typed blocks, rendered twice (Markdown, HTML) so both say the same.

Blocks hold plain text only; each renderer escapes it for its format, so a group or class name from the
data can never become markup. Number formatting lives here too, shared by both renderers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fairdml.reports.card.verification import Verification


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Prompt:
    """A field only a person can fill (a key of fairdml.reports.card.inputs.PROMPTS), still empty."""

    key: str


@dataclass
class Heading:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Code:
    """A collapsible block of YAML (e.g. the full training configuration)."""

    summary: str
    text: str


@dataclass
class ThresholdView:
    """Static tables in Markdown; the live slider view in HTML."""

    verification: Verification
    group_attribute: str


Block = Text | Bullets | Prompt | Heading | Table | Code | ThresholdView


@dataclass
class Section:
    id: str  # the HTML/Markdown anchor
    title: str
    blocks: list[Block]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: Any, digits: int = 4) -> str:
    """Integers with thousands separators, floats with `digits` decimals, None/NaN as "n/a"."""
    if _missing(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def fmt_percent(value: Any) -> str:
    """A rate as a percentage with two decimals (the threshold view's JavaScript uses the same format)."""
    return "n/a" if _missing(value) else f"{100.0 * float(value):.2f}%"


def fmt_interval(low: Any, high: Any, fmt: Any = fmt_number) -> str:
    """ "[low, high]", or "" when either end is undefined."""
    if _missing(low) or _missing(high):
        return ""
    return f"[{fmt(low)}, {fmt(high)}]"


def value_of(entry: Any) -> Any:
    """A metric value, or the "value" of a {"value": v, ...} entry."""
    return entry.get("value") if isinstance(entry, dict) else entry


def user_blocks(value: Any, key: str) -> list[Block]:
    """A person's text (a string, paragraphs split on blank lines, or a list) as blocks; a prompt if empty."""
    if value is None or value == "" or value == []:
        return [Prompt(key)]
    if isinstance(value, list):
        return [Bullets([str(v) for v in value])]
    return [Text(p) for p in re.split(r"\n\s*\n", str(value).strip())]
