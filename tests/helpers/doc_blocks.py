"""Run a document's worked examples: the ```python blocks under one Markdown heading, in order."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def code_blocks(document: str | Path, heading: str, language: str = "python") -> list[str]:
    """The ```language blocks of the `## heading` section of `document` (a path relative to the repository)."""
    text = (ROOT / document).read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    section = next((s for s in sections if s.splitlines()[0].strip() == heading), None)
    if section is None:
        raise LookupError(f"{document} has no section '## {heading}'")
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    if not blocks:
        raise LookupError(f"section '## {heading}' of {document} has no ```{language} block")
    return blocks


def python_blocks(document: str | Path, heading: str) -> list[str]:
    return code_blocks(document, heading, "python")


def run_blocks(document: str | Path, heading: str, namespace: dict | None = None) -> dict:
    """Execute the section's blocks in one namespace (as a reader pasting them would) and return it."""
    namespace = {"__name__": f"doc_{heading.replace(' ', '_')}"} if namespace is None else namespace
    for block in python_blocks(document, heading):
        exec(compile(block, f"{document}:{heading}", "exec"), namespace)  # noqa: S102 - the doc's own example
    return namespace
