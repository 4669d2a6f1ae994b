"""MODEL_CARD.md's body: the card's sections as GitHub/Hugging Face Markdown.

Every string is plain text: Markdown syntax in it is backslash-escaped and HTML is entity-escaped, so a
group named "<script>…" or "**x**" shows as written on a model hub.
"""

from __future__ import annotations

import html
import re
from typing import Any

from fairdml.reports.card.blocks import Bullets, Code, Heading, Prompt, Section, Table, Text, ThresholdView
from fairdml.reports.card.inputs import PROMPTS
from fairdml.reports.card.results import equal_fmr_table, rates_table

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_text(text: Any) -> str:
    """Plain text safe in Markdown: one line, Markdown syntax and HTML escaped (a name is never markup)."""
    return html.escape(_MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split())), quote=False)


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(md_text(h) for h in table.headers) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in table.rows]
    return lines + (["", f"*{md_text(table.note)}*"] if table.note else [])


def _code(block: Code) -> list[str]:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", block.text)), default=0))
    summary = f"<summary>{html.escape(block.summary)}</summary>"
    return ["<details>", summary, "", f"{fence}yaml", block.text.rstrip(), fence, "", "</details>"]


def _block(block: Any) -> list[str]:
    if isinstance(block, Text):
        return [md_text(block.text)]
    if isinstance(block, Bullets):
        return [f"- {md_text(item)}" for item in block.items]
    if isinstance(block, Prompt):
        return [f"> **✎ To fill in** (`{block.key}` in the card inputs): {md_text(PROMPTS[block.key])}"]
    if isinstance(block, Heading):
        return [f"### {md_text(block.text)}"]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Code):
        return _code(block)
    if isinstance(block, ThresholdView):
        equal = _table(equal_fmr_table(block.verification))
        return [
            *_table(rates_table(block.verification)),
            "",
            "#### Per-group thresholds that equalise FMR",
            "",
            *equal,
        ]
    raise TypeError(f"unknown card block {type(block).__name__}")


def render_markdown(sections: list[Section], title: str, subtitle: str) -> str:
    """The card body (without front matter): title, table of contents, numbered sections."""
    lines = [f"# Model card: {md_text(title)}", "", md_text(subtitle), ""]
    lines += [f"{i}. [{md_text(s.title)}](#{s.id})" for i, s in enumerate(sections, 1)] + [""]
    for i, section in enumerate(sections, 1):
        lines += [f'<a id="{section.id}"></a>', "", f"## {i}. {md_text(section.title)}", ""]
        for block in section.blocks:
            lines += [*_block(block), ""]
    return "\n".join(lines)
