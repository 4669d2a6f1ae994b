"""Readable names and one-line definitions of the report's metric keys, for tables and metadata."""

from __future__ import annotations

import re

from fairdml.metrics.functional.groups import higher_is_better

METRIC_INFO = {
    "recall@k": (
        "Recall@{k}",
        "share of queries with a same-class sample among their k = {k} nearest neighbours (query excluded)",
    ),
    "map@r": ("mAP@R", "mean average precision at R, R = the other samples of the query's class"),
    "nmi": ("NMI", "normalised mutual information of k-means clusters (one per class) with the classes"),
    "intra_alignment": ("Intra-class alignment", "mean squared distance within a class: lower = tighter"),
    "inter_alignment": (
        "Inter-class alignment",
        "mean squared distance between classes: much smaller than other groups' = a collapsed group",
    ),
    "uniformity": ("Uniformity", "log mean exp(-2 d²) over pairs: lower = spread more evenly"),
    "attribute_leakage": (
        "Attribute leakage",
        "balanced accuracy of a fresh linear probe predicting the group from the embedding (chance = none)",
    ),
    "fmr": ("FMR", "false match rate: share of impostor pairs (different classes) that match"),
    "fnmr": ("FNMR", "false non-match rate: share of genuine pairs (same class) that do not match"),
}


def metric_info(metric: str) -> tuple[str, str]:
    """(label, definition) of a metric key; unknown keys label themselves with no definition."""
    match = re.fullmatch(r"recall@(\d+)", metric)
    if match:
        label, text = METRIC_INFO["recall@k"]
        return label.format(k=match.group(1)), text.format(k=match.group(1))
    return METRIC_INFO.get(metric, (metric, ""))


def metric_header(metric: str) -> str:
    """Table header: the label with the direction that is better (↑ or ↓)."""
    arrow = "↑" if higher_is_better(metric) else "↓"
    return f"{metric_info(metric)[0]} {arrow}"
