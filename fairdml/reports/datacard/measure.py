"""The data card's numbers (pure: a set-up DMLDataModule in, a JSON-ready dict out; no rendering).

Why: the paper's protocol under-represents a group on purpose, so a reader of any result needs the data as it
is and as training saw it: group sizes per split, how many images each class has, which attributes go
together, near-duplicates that leak across the class-disjoint splits, and image sizes.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from fairdml.reports.datacard.image_hash import (
    MAX_THUMBNAIL_DIFFERENCE,
    close_pairs,
    confirmed_pairs,
    hash_images,
)
from fairdml.utils.group_names import SEPARATOR

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
QUANTILE_NAMES = ("min", "q25", "median", "q75", "max")
DUPLICATE_EXAMPLES = 10


def quantiles(values: np.ndarray) -> dict[str, float | None]:
    """min / q25 / median / q75 / max and mean of `values` (None each when empty)."""
    if len(values) == 0:
        return {name: None for name in (*QUANTILE_NAMES, "mean")}
    out = {name: float(q) for name, q in zip(QUANTILE_NAMES, np.quantile(values, QUANTILES))}
    return {**out, "mean": float(np.mean(values))}


def histogram(values: np.ndarray, bins: int = 10) -> dict[str, list]:
    """Integer-aligned histogram: `edges` (bins+1) and `counts` (bins); empty lists for no values."""
    if len(values) == 0:
        return {"edges": [], "counts": []}
    low, high = int(values.min()), int(values.max()) + 1
    counts, edges = np.histogram(values, bins=min(bins, high - low), range=(low, high))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def group_composition(labels: np.ndarray, groups: np.ndarray, group_names: list[str]) -> dict[str, dict]:
    """Per group: samples, classes, and images per class as quantiles and a histogram."""
    out = {}
    for code, name in enumerate(group_names):
        _, per_class = np.unique(labels[groups == code], return_counts=True)
        out[name] = {
            "n": int(per_class.sum()),
            "classes": len(per_class),
            "images_per_class": quantiles(per_class),
            "images_per_class_histogram": histogram(per_class),
        }
    return out


def cooccurrence(attributes: np.ndarray, names: tuple[str, ...], values: tuple[tuple[str, ...], ...]) -> list[dict]:
    """Every pair of attributes: the (values_a x values_b) table of sample counts; each table sums to N."""
    tables = []
    for a, b in combinations(range(len(names)), 2):
        counts = np.zeros((len(values[a]), len(values[b])), dtype=np.int64)
        np.add.at(counts, (attributes[:, a], attributes[:, b]), 1)
        tables.append({
            "attributes": [names[a], names[b]], "values": [list(values[a]), list(values[b])],
            "counts": counts.tolist(),
        })  # fmt: skip
    return tables


def _sample(indices: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    return indices if limit is None or len(indices) <= limit else np.sort(rng.choice(indices, limit, replace=False))


def _name(dataset: Any, index: int) -> str:
    image_files = getattr(dataset, "image_files", None)
    return image_files[index].decode() if image_files is not None else f"#{index}"


def near_duplicates(
    dataset: Any,
    chosen: dict[str, np.ndarray],
    hashes: dict[str, np.ndarray],
    max_distance: int,
    thumbnails: dict[str, np.ndarray],
) -> dict:
    """Pairs of images in different splits whose dHashes differ in at most `max_distance` bits (candidates)
    and whose thumbnails confirm it (`confirmed_pairs`): only confirmed pairs are counted as near-duplicates."""
    pairs, candidates, examples = {}, {}, []
    for split_a, split_b in combinations(chosen, 2):
        close = close_pairs(hashes[split_a], hashes[split_b], max_distance)
        found = confirmed_pairs(close, thumbnails[split_a], thumbnails[split_b])
        candidates[f"{split_a}/{split_b}"] = len(close)
        pairs[f"{split_a}/{split_b}"] = len(found)
        for i, j, distance in found[: DUPLICATE_EXAMPLES - len(examples)]:
            index_a, index_b = int(chosen[split_a][i]), int(chosen[split_b][j])
            examples.append({
                "splits": [split_a, split_b], "images": [_name(dataset, index_a), _name(dataset, index_b)],
                "labels": [int(dataset.labels[index_a]), int(dataset.labels[index_b])], "distance": int(distance),
            })  # fmt: skip
    return {
        "hash": "dHash, 64 bits (9x8 greyscale thumbnail), confirmed by a 16x16 thumbnail",
        "max_distance": max_distance,
        "max_thumbnail_difference": MAX_THUMBNAIL_DIFFERENCE,
        "hash_candidates": candidates,
        "images_hashed": {split: len(indices) for split, indices in chosen.items()},
        "pairs_across_splits": pairs,
        "total_pairs": int(sum(pairs.values())),
        "examples": examples,
    }


def image_sizes(sizes: np.ndarray) -> dict:
    """Width and height quantiles of (K, 2) image sizes."""
    return {"images_measured": len(sizes), "width": quantiles(sizes[:, 0]), "height": quantiles(sizes[:, 1])}


def imbalance(datamodule: Any) -> dict:
    """The minority's share in the data as it is vs in the training split the protocol built."""
    dataset, code = datamodule.views["train"].base, datamodule.minority_code
    train_groups = datamodule.views["train"].attribute_column(datamodule.group_attribute)
    all_groups = dataset.attribute_column(datamodule.group_attribute)
    return {
        "minority_group": datamodule.group_names[code],
        "minority_share_as_is": float(np.mean(all_groups == code)) if len(all_groups) else None,
        "minority_share_train": float(np.mean(train_groups == code)) if len(train_groups) else None,
        "requested_minority_share": datamodule.cfg.minority_share,
        "imbalance_by": datamodule.cfg.imbalance_by,
    }


def measure_data(
    datamodule: Any, max_images: int | None = None, max_distance: int = 4, seed: int = 0
) -> dict[str, Any]:
    """The data card's content of a set-up DMLDataModule (its `views`; data_summary.json keeps `summary()`).

    Args:
        datamodule: a `fairdml.data.DMLDataModule` after `setup()`.
        max_images: images per split decoded for hashes and sizes (None: all).
        max_distance: largest Hamming distance (of 64 bits) counted as a near-duplicate.
        seed: picks the images when `max_images` caps them.
    """
    views = datamodule.views
    dataset = next(iter(views.values())).base
    splits = {}
    for split, view in views.items():
        groups = view.attribute_column(datamodule.group_attribute)
        splits[split] = {
            "n": len(view), "classes": int(len(np.unique(view.labels))),
            "groups": group_composition(view.labels, groups, datamodule.group_names),
        }  # fmt: skip
    # Images are decoded once, for the hash and the size; `max_images` caps them per split (seeded subset).
    rng = np.random.default_rng(seed)
    chosen = {split: _sample(view.indices, max_images, rng) for split, view in views.items()}
    hashed = {split: hash_images(dataset, indices) for split, indices in chosen.items()}
    hashes = {split: h for split, (h, _, _) in hashed.items()}
    thumbnails = {split: t for split, (_, _, t) in hashed.items()}
    sizes = np.concatenate([s for _, s, _ in hashed.values()]).reshape(-1, 2)
    # The dataset's own attributes: a crossed one ("Male|Pale_Skin", added for the run) is their product and
    # shows as the groups of `splits`; in the co-occurrence tables it would only repeat them.
    own = [i for i, name in enumerate(dataset.attribute_names) if SEPARATOR not in name]
    names = tuple(dataset.attribute_names[i] for i in own)
    values = tuple(dataset.attribute_values[i] for i in own)
    return {
        "dataset": datamodule.cfg.name,
        "n": len(dataset),
        "group_attribute": datamodule.group_attribute,
        "group_names": list(datamodule.group_names),
        "attributes": {name: list(v) for name, v in zip(names, values)},
        "splits": splits,
        "imbalance": imbalance(datamodule),
        "cooccurrence": cooccurrence(dataset.attributes[:, own], names, values),
        "near_duplicates": near_duplicates(dataset, chosen, hashes, max_distance, thumbnails),
        "image_sizes": image_sizes(sizes),
    }
