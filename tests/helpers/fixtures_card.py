"""Fake run folders in the contract of docs/architecture.md, with a group named like an XSS attack."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

EVIL = "<script>alert(1)</script>"
EVIL_CONFIG = "fake & <b>bold</b>"
GROUPS = ("majority", EVIL)
METRICS = ("recall@1", "recall@2", "map@r", "nmi", "intra_alignment", "inter_alignment", "uniformity")


def fake_embeddings(seed: int = 0) -> dict[str, np.ndarray]:
    """16 classes of 8 samples; the second group's classes are noisier (a gap to see)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(16), 8)
    minority = labels >= 10
    centers = rng.normal(size=(16, 16))
    embeddings = centers[labels] + rng.normal(size=(len(labels), 16)) * np.where(minority, 1.3, 0.7)[:, None]
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return {
        "embeddings": embeddings.astype(np.float32),
        "labels": labels.astype(np.int64),
        "groups": np.where(minority, GROUPS[1], GROUPS[0]).astype(str),
        "group_attribute": np.array("style"),
    }


def fake_report() -> dict:
    rng = np.random.default_rng(1)
    groups = {name: {"n": n, **{m: float(rng.uniform(0.2, 0.9)) for m in METRICS}} for name, n in zip(GROUPS, (80, 48))}
    overall = {m: float(np.mean([g[m] for g in groups.values()])) for m in METRICS}
    overall["attribute_leakage"] = 0.71
    gaps = {}
    for m in METRICS:
        values = {name: g[m] for name, g in groups.items()}
        worst = min(values, key=values.get)
        gaps[m] = {
            "max_minus_min": max(values.values()) - min(values.values()),
            "min_over_max": min(values.values()) / max(values.values()),
            "worst_group": worst,
        }
    return {
        "n": 128,
        "overall": overall,
        "groups": groups,
        "gaps": gaps,
        "chance_level": {"attribute_leakage": 0.5},
        "warnings": [f"group {EVIL!r}: a test warning"],
        "meta": {"experiment": EVIL_CONFIG, "seed": 0, "split": "test", "group_attribute": "style"},
    }


def fake_config(parade: bool = True) -> dict:
    return {
        "experiment": EVIL_CONFIG,
        "seed": 0,
        "data": {"name": "digits", "sensitive_attribute": "style", "minority_share": 0.1},
        "model": {"backbone": "test_resnet", "embedding_dim": 16},
        "loss": {"name": "margin", "miner": "distance_weighted"},
        "optim": {"name": "adamw", "lr": 0.001},
        "trainer": {"max_epochs": 2},
        "callbacks": (
            {"parade": {"_target_": "fairdml.mitigations.parade.Parade", "strength": 4.0, "projection_hidden": 512}}
            if parade else {}
        ),
    }  # fmt: skip


def fake_mitigations() -> dict:
    """report["mitigations"] as a PARADE run writes it (settings, and figures measured at the test)."""
    return {
        "parade": {
            "title": "PARADE (partial attribute de-correlation)",
            "summary": f"De-correlates the embedding from {EVIL}.",
            "settings": {"attributes": ["style"], "strength": 4.0, "projection_hidden": 512},
            "measured": {"style": {"decorrelation": 0.12, "linear_cka": 0.5, "n": 128, "split": "half"}},
        }
    }


def fake_data_summary() -> dict:
    def split(n_major, n_minor, classes_major, classes_minor):
        return {
            "n": n_major + n_minor,
            "classes": classes_major + classes_minor,
            "groups": {
                GROUPS[0]: {
                    "n": n_major,
                    "classes": classes_major,
                    "images_per_class_mean": n_major / classes_major,
                },
                GROUPS[1]: {
                    "n": n_minor,
                    "classes": classes_minor,
                    "images_per_class_mean": n_minor / classes_minor,
                },
            },
            "minority_share": n_minor / (n_major + n_minor),
            "imbalance_ratio": n_major / n_minor,
        }

    return {
        "dataset": "digits",
        "group_attribute": "style",
        "group_names": list(GROUPS),
        "minority_group": GROUPS[1],
        "requested_minority_share": 0.1,
        "imbalance_by": "samples",
        "splits": {
            "train": split(900, 100, 30, 10),
            "val": split(60, 40, 3, 2),
            "test": split(80, 48, 10, 6),
        },
    }


def write_fake_run(root: Path, parade: bool = True, optional: bool = True) -> Path:
    """A run folder in the contract of docs/architecture.md, with a malicious group name."""
    run = root / "run_2025-01-01"
    run.mkdir(parents=True)
    report = fake_report() | ({"mitigations": fake_mitigations()} if parade else {})
    (run / "report.json").write_text(json.dumps(report))
    np.savez(run / "embeddings_test.npz", **fake_embeddings())
    if optional:
        (run / "config.yaml").write_text(yaml.safe_dump(fake_config(parade)))
        (run / "data_summary.json").write_text(json.dumps(fake_data_summary()))
    return run
