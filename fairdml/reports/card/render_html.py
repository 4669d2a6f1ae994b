"""model_card.html: one self-contained page (inline CSS, JS and SVG; no network) with the card's sections.

Every string from the data is escaped (group names are data, not markup); the JSON the script reads sits in
a <script type="application/json"> element with <, > and & escaped, so no string can end that element. A
Content-Security-Policy in assets/card_template.html forbids the page any network access.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fairdml.reports.card.blocks import Bullets, Code, Heading, Prompt, Section, Table, Text, ThresholdView
from fairdml.reports.card.inputs import PROMPTS
from fairdml.reports.card.results import equal_fmr_table
from fairdml.reports.card.threshold_html import escape, threshold_view_html
from fairdml.utils.numbers import strict_json

ASSETS = Path(__file__).resolve().parent / "assets"
FOOTER = (
    "Written by fairdml from the run folder. Sections follow Mitchell et al., "
    "“Model Cards for Model Reporting” (FAT* 2019); finDML metrics follow Dullerud et al. (ICLR 2022)."
)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-wrap">{table_html}</div>{note}'


def _block(block: Any) -> str:
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Prompt):
        return (
            f'<div class="prompt" data-prompt="{escape(block.key)}"><strong>✎ To fill in</strong> '
            f"(<code>{escape(block.key)}</code> in the card inputs): {escape(PROMPTS[block.key])}</div>"
        )
    if isinstance(block, Heading):
        return f"<h3>{escape(block.text)}</h3>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Code):
        code = f"<pre><code>{escape(block.text)}</code></pre>"
        return f"<details><summary>{escape(block.summary)}</summary>{code}</details>"
    if isinstance(block, ThresholdView):
        heading = "<h4>Per-group thresholds that equalise FMR at the operating threshold</h4>"
        return threshold_view_html(block) + heading + _table(equal_fmr_table(block.verification))
    raise TypeError(f"unknown card block {type(block).__name__}")


block_html = _block  # public name: the data card (fairdml.reports.datacard) renders the same blocks


_SCRIPT_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> str:
    """JSON that cannot end its <script> element: <, > and & only occur in strings, so escape them there."""
    text = json.dumps(strict_json(data), allow_nan=False, ensure_ascii=False)
    return re.sub("[&<>\u2028\u2029]", lambda m: _SCRIPT_ESCAPES[m.group(0)], text)


def render_html(sections: list[Section], title: str, subtitle: str, chips: list[tuple[str, str]], data: dict) -> str:
    """The page: header with key figures (chips), navigation, sections, and the view's data and script."""
    nav = "".join(f'<a href="#{s.id}">{i}. {escape(s.title)}</a>' for i, s in enumerate(sections, 1))
    chip_html = "".join(f'<div class="chip"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in chips)
    body = [
        f'<header><p class="kicker">Model card</p><h1>{escape(title)}</h1>'
        f'<p class="subtitle">{escape(subtitle)}</p><div class="chips">{chip_html}</div></header>'
        f"<nav>{nav}</nav><main>"
    ]
    for i, section in enumerate(sections, 1):
        inner = "\n".join(_block(b) for b in section.blocks)
        body.append(f'<section id="{section.id}"><h2>{i}. {escape(section.title)}</h2>\n{inner}\n</section>')
    body.append(f"</main><footer>{escape(FOOTER)}</footer>")
    parts = {
        "title": escape(f"Model card: {title}"),
        "css": (ASSETS / "card.css").read_text(encoding="utf-8"),
        "body": "\n".join(body),
        "data": script_json(data),
        "script": (ASSETS / "card.js").read_text(encoding="utf-8"),
    }
    template = (ASSETS / "card_template.html").read_text(encoding="utf-8")
    # One pass over the template: text inserted for one placeholder is never searched for another.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)
