"""Lists of names in the README and docs/ cannot drift from the configs: a list marked `<!-- list: KIND ... -->`
must name every entry of each KIND (the block after the marker, up to a blank line after its first line, or a
whole fenced code block). Unmarked prose that names several mitigations as `callbacks=NAME` is a list too, and
must be marked; docs/README.md indexes every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- list: ([\w ]+) -->")


def registry(kind: str) -> set[str]:
    """The names a KIND list must hold: the config group's options (each mitigation, dataset, loss, experiment
    is one YAML file of its group)."""
    folder = {"mitigations": "callbacks", "datasets": "data", "losses": "loss", "experiments": "experiment"}[kind]
    return {path.stem for path in (REPO / "configs" / folder).glob("*.yaml")}


def marked_blocks(text: str) -> list[tuple[list[str], str, int]]:
    """(kinds, block text, line number) of every marker."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        match = MARKER.search(line)
        if match is None:
            continue
        body: list[str] = []
        fenced = False
        for following in lines[number + 1 :]:
            if following.startswith("```"):
                if fenced:
                    break
                fenced = True
                continue
            if not following.strip() and body and not fenced:
                break
            body.append(following)
        blocks.append((match.group(1).split(), "\n".join(body), number + 1))
    return blocks


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_marked_list_names_every_entry(page):
    for kinds, body, line in marked_blocks(page.read_text(encoding="utf-8")):
        for kind in kinds:
            missing = sorted(name for name in registry(kind) if not re.search(rf"\b{re.escape(name)}\b", body))
            assert not missing, f"{page.name}:{line}: the {kind} list misses {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_prose_naming_several_mitigations_is_a_marked_list(page):
    text = page.read_text(encoding="utf-8")
    marked = {body for _, body, _ in marked_blocks(text)}
    for paragraph in re.split(r"\n\s*\n", text):
        named = set(re.findall(r"callbacks=(\w+)", paragraph)) & registry("mitigations")
        if len(named) >= 2:
            assert any(paragraph.strip() in body or body in paragraph for body in marked), (
                f"{page.name}: a paragraph names the mitigations {sorted(named)}; mark it `<!-- list: mitigations -->` "
                f"so it is checked: {paragraph.strip()[:120]!r}"
            )


def test_the_docs_index_links_every_page():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    pages = {path.name for path in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages == set(re.findall(r"\]\(([\w.]+\.md)\)", index)) - {"../README.md"}


def test_a_list_missing_a_name_is_caught():
    text = "<!-- list: mitigations -->\nthe mitigations: group_balanced, parade\n\nmore"
    ((kinds, body, _),) = marked_blocks(text)
    assert kinds == ["mitigations"] and {"reweighted", "worst_group"} - set(re.findall(r"\w+", body))
