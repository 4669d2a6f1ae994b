"""The card's data sections, in the spirit of "Datasheets for Datasets" (Gebru et al., 2021).

Per split: samples, classes, minority share and imbalance ratio; per group: samples, classes and images per
class (from data_summary.json), and for the test split the exact counts behind every figure (from the
test embeddings).
"""

from __future__ import annotations

import numpy as np

from fairdml.reports.card.blocks import Block, Section, Table, Text, fmt_number, fmt_percent
from fairdml.reports.runs import Run
from fairdml.utils.run_layout import DATA_CARD_HTML_FILE, RunPaths

SPLIT_HEADERS = ["Split", "Samples", "Classes", "Minority share", "Imbalance ratio (largest/smallest group)"]
GROUP_HEADERS = ["Split", "Group", "Samples", "Share of split", "Classes", "Images per class (mean)"]


def _group_rows(split: str, entry: dict) -> list[list[str]]:
    rows = []
    total = entry.get("n") or 0
    for group, info in (entry.get("groups") or {}).items():
        info = info if isinstance(info, dict) else {"n": info}
        n = info.get("n")
        share = n / total if total and n is not None else None
        rows.append([
            split, str(group), fmt_number(n), fmt_percent(share), fmt_number(info.get("classes")),
            fmt_number(info.get("images_per_class_mean"), 1),
        ])  # fmt: skip
    return rows


def split_tables(summary: dict, splits: list[str]) -> list[Block]:
    """Datasheet tables of the named splits of data_summary.json: rows per split and per split and group."""
    entries = {s: (summary.get("splits") or {}).get(s) for s in splits}
    entries = {s: e for s, e in entries.items() if isinstance(e, dict)}
    if not entries:
        return [Text(f"data_summary.json has no {'/'.join(splits) or 'training'} split.")]
    split_rows = [
        [s, fmt_number(e.get("n")), fmt_number(e.get("classes")), fmt_percent(e.get("minority_share")),
         fmt_number(e.get("imbalance_ratio"), 2)]
        for s, e in entries.items()
    ]  # fmt: skip
    group_rows = [row for s, e in entries.items() for row in _group_rows(s, e)]
    return [Table(SPLIT_HEADERS, split_rows), Table(GROUP_HEADERS, group_rows)]


def per_group_test_counts(arrays: dict[str, np.ndarray]) -> Table:
    """Per group of the test embeddings: samples, share, classes, images per class (min/median/mean/max)."""
    labels, groups = arrays["labels"], arrays["groups"].astype(str)
    rows = []
    for name in np.unique(groups):
        _, per_class = np.unique(labels[groups == name], return_counts=True)
        spread = f"{per_class.min()} / {np.median(per_class):g} / {per_class.mean():.1f} / {per_class.max()}"
        rows.append([
            str(name), fmt_number(int(per_class.sum())), fmt_percent(per_class.sum() / len(labels)),
            fmt_number(len(per_class)), spread,
        ])  # fmt: skip
    return Table(
        ["Group", "Samples", "Share", "Classes", "Images per class (min / median / mean / max)"],
        rows,
        note="Computed from the test embeddings (the samples every test figure is computed on).",
    )


SPLIT_DESCRIPTIONS = {
    "test": "test split: classes never seen in training (class-disjoint split), left as it is (no imbalance imposed)",
    "val": "validation split: classes never seen in training, the split that selected the checkpoint (its figures "
    "are optimistic for the selected model)",
    "train": "training split: the classes and images the model was trained on (its figures show fit, not "
    "generalisation)",
    "all": "every sample of the data, training classes included (figures mix fit and generalisation)",
}


def evaluation_data_section(run: Run) -> Section:
    split = str(run.report.get("meta", {}).get("split") or "test")  # an audit's --split; training tests "test"
    description = SPLIT_DESCRIPTIONS.get(split, f"split '{split}'")
    blocks: list[Block] = [Text(f"Dataset '{run.dataset}', {description}; every figure reported per group.")]
    if run.data_summary:
        blocks += split_tables(run.data_summary, [split] if split in run.data_summary.get("splits", {}) else [])
    if run.arrays is not None:
        blocks.append(per_group_test_counts(run.arrays))
    return Section("evaluation-data", "Evaluation data", blocks)


def training_data_section(run: Run) -> Section:
    summary = run.data_summary
    if not summary:
        text = "data_summary.json is missing from the run folder: the training data composition is unknown."
        return Section("training-data", "Training data", [Text(text)])
    facts = [
        ["Dataset", run.dataset],
        ["Sensitive attribute", summary.get("group_attribute", "n/a")],
        ["Groups", ", ".join(map(str, summary.get("group_names") or []))],
        ["Minority group", summary.get("minority_group", "n/a")],
        ["Requested minority share of training", fmt_percent(summary.get("requested_minority_share"))],
        ["Imbalance imposed by removing", summary.get("imbalance_by", "n/a")],
    ]
    blocks: list[Block] = [
        Text("Training is unbalanced on purpose (the paper's protocol): the minority keeps only a share."),
        Table(["Field", "Value"], [[k, str(v)] for k, v in facts]),
    ]  # fmt: skip
    blocks += split_tables(summary, [s for s in (summary.get("splits") or {}) if s != "test"])
    if RunPaths(run.path).data_card_html.is_file():
        blocks.append(Text(
            f"The data card, {DATA_CARD_HTML_FILE} in the run folder, has the full composition: images per class, "
            "attribute co-occurrence, near-duplicates across splits and image sizes."
        ))  # fmt: skip
    return Section("training-data", "Training data", blocks)
