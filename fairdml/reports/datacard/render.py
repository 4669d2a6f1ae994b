"""data_card.html: the data card's numbers as card blocks (fairdml.reports.card.blocks), on one page.

The blocks and their HTML come from the model card (escaping in one place: every name from the data is
text); the page is self-contained (inline CSS, no script, a Content-Security-Policy that allows no network).
"""

from __future__ import annotations

from pathlib import Path

from fairdml.reports.card.blocks import Block, Bullets, Section, Table, Text, fmt_number, fmt_percent
from fairdml.reports.card.render_html import ASSETS, block_html
from fairdml.reports.card.threshold_html import escape

BAR_WIDTH = 30  # characters of the longest histogram bar
QUANTILE_HEADERS = ["min", "q25", "median", "q75", "max", "mean"]
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
form-action 'none'">
<meta name="generator" content="fairdml"><title>{title}</title><style>{css}</style></head>
<body><header><p class="kicker">Data card</p><h1>{heading}</h1><p class="subtitle">{subtitle}</p></header>
<nav>{nav}</nav><main>{body}</main></body></html>
"""


def _spread(stats: dict) -> list[str]:
    return [fmt_number(stats.get(k), 1) for k in QUANTILE_HEADERS]


def _bars(histogram: dict) -> list[list[str]]:
    """Histogram rows: class-size range, classes, and a bar of block characters (no script, no image)."""
    counts, edges = histogram["counts"], histogram["edges"]
    top = max(counts, default=0) or 1
    rows = []
    for count, low, high in zip(counts, edges, edges[1:]):
        label = f"{low:g}" if high - low <= 1 else f"{low:g}–{high - 1:g}"
        rows.append([label, fmt_number(count), "█" * round(BAR_WIDTH * count / top)])
    return rows


def composition_section(card: dict) -> Section:
    split_rows, group_rows, spread_rows, blocks = [], [], [], []
    for split, entry in card["splits"].items():
        split_rows.append([split, fmt_number(entry["n"]), fmt_number(entry["classes"])])
        for group, info in entry["groups"].items():
            share = info["n"] / entry["n"] if entry["n"] else None
            group_rows.append([split, group, fmt_number(info["n"]), fmt_percent(share), fmt_number(info["classes"])])
            spread_rows.append([split, group, *_spread(info["images_per_class"])])
    blocks += [
        Table(["Split", "Samples", "Classes"], split_rows),
        Table(["Split", "Group", "Samples", "Share of split", "Classes"], group_rows),
        Table(["Split", "Group", *(f"Images per class: {h}" for h in QUANTILE_HEADERS)], spread_rows),
    ]
    for split, entry in card["splits"].items():
        for group, info in entry["groups"].items():
            blocks.append(Table(
                ["Images per class", "Classes", f"{split} / {group}"], _bars(info["images_per_class_histogram"]),
            ))  # fmt: skip
    return Section("composition", f"Samples and classes per group of '{card['group_attribute']}'", blocks)


def imbalance_section(card: dict) -> Section:
    info = card["imbalance"]
    rows = [
        ["Minority group", str(info["minority_group"])],
        ["Minority share, data as is", fmt_percent(info["minority_share_as_is"])],
        ["Minority share, training split", fmt_percent(info["minority_share_train"])],
        ["Requested minority share (data.minority_share)", fmt_percent(info["requested_minority_share"])],
        ["Imbalance imposed by removing (imbalance_by)", str(info["imbalance_by"])],
    ]
    text = "The paper's protocol under-represents the minority in training only; validation and test stay as is."
    return Section(
        "imbalance", "Imbalance applied by the training protocol", [Text(text), Table(["Field", "Value"], rows)]
    )


def cooccurrence_section(card: dict) -> Section:
    blocks: list[Block] = [Text(f"Counts over all {fmt_number(card['n'])} samples, before any split.")]
    for table in card["cooccurrence"]:
        (name_a, name_b), (values_a, values_b) = table["attributes"], table["values"]
        rows = [[value, *map(fmt_number, row)] for value, row in zip(values_a, table["counts"])]
        blocks.append(Table([f"{name_a} \\ {name_b}", *values_b], rows))
    if not card["cooccurrence"]:
        blocks.append(Text("The dataset has one attribute: no pairs."))
    return Section("cooccurrence", "Attribute co-occurrence", blocks)


def duplicates_section(card: dict) -> Section:
    info = card["near_duplicates"]
    hashed = ", ".join(f"{split} {fmt_number(n)}" for split, n in info["images_hashed"].items())
    pairs = ", ".join(f"{key}: {fmt_number(n)}" for key, n in info["pairs_across_splits"].items())
    candidates = sum(info["hash_candidates"].values())
    blocks: list[Block] = [
        Text(f"{info['hash']}: a pair is a candidate when at most {info['max_distance']} of 64 bits differ, and "
             f"counts when the two 16x16 grey thumbnails differ by at most {info['max_thumbnail_difference']} "
             f"on average. Images hashed: {hashed}. Hash candidates: {fmt_number(candidates)}. "
             f"Near-duplicate pairs across splits: {pairs or 'none'}."),
    ]  # fmt: skip
    if info["examples"]:
        rows = [[*e["splits"], *e["images"], str(e["distance"])] for e in info["examples"]]
        blocks.append(
            Table(["Split", "Other split", "Image", "Other image", "Distance"], rows, note="First pairs found.")
        )
    return Section("near-duplicates", "Near-duplicate images across splits", blocks)


def sizes_section(card: dict) -> Section:
    info = card["image_sizes"]
    rows = [["width", *_spread(info["width"])], ["height", *_spread(info["height"])]]
    note = f"Over {fmt_number(info['images_measured'])} images (file headers where the dataset has files)."
    return Section("image-sizes", "Image sizes (pixels)", [Table(["", *QUANTILE_HEADERS], rows, note=note)])


def data_card_sections(card: dict) -> list[Section]:
    attributes = [f"{name}: {', '.join(values)}" for name, values in card["attributes"].items()]
    overview = Section("overview", "Dataset", [
        Text(f"Dataset '{card['dataset']}', {fmt_number(card['n'])} samples; groups by '{card['group_attribute']}'."),
        Bullets(attributes),
    ])  # fmt: skip
    return [overview, composition_section(card), imbalance_section(card), cooccurrence_section(card),
            duplicates_section(card), sizes_section(card)]  # fmt: skip


def render_data_card_html(card: dict) -> str:
    """The self-contained page of a `measure_data` result."""
    sections = data_card_sections(card)
    nav = "".join(f'<a href="#{s.id}">{i}. {escape(s.title)}</a>' for i, s in enumerate(sections, 1))
    body = "\n".join(
        f'<section id="{s.id}"><h2>{i}. {escape(s.title)}</h2>\n'
        + "\n".join(block_html(b) for b in s.blocks)
        + "\n</section>"
        for i, s in enumerate(sections, 1)
    )
    return PAGE.format(
        title=escape(f"Data card: {card['dataset']}"), heading=escape(f"Data card: {card['dataset']}"),
        subtitle=escape(f"{card['n']} samples, groups by {card['group_attribute']}"), nav=nav, body=body,
        css=(Path(ASSETS) / "card.css").read_text(encoding="utf-8"),
    )  # fmt: skip
