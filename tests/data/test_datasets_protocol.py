"""The paper's protocol on every on-disk reader: class-disjoint splits and the training imbalance, exactly.

20 classes x 5 images in each dataset's own format; classes 0..7 are the minority group. Splits 0.5/0.2/0.3
of the classes per group give 4/2/2 minority and 6/2/4 majority classes; the training minority is then cut
to 10 %: minority_count(30, 0.1) = round(3.33) = 3 images.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures_datasets import population, write_population
from omegaconf import OmegaConf

from fairdml.config import DataConfig
from fairdml.data.datamodule import DMLDataModule
from fairdml.data.splits import minority_count

N_CLASSES, PER_CLASS, N_MINORITY = 20, 5, 8
SPLIT = {"train": 0.5, "val": 0.2, "test": 0.3}
EXPECTED_CLASSES = {"train": (6, 4), "val": (2, 2), "test": (4, 2)}  # (majority, minority) classes


def _datamodule(kind: str, root, by: str, share: float | None = 0.1) -> tuple[DMLDataModule, dict, list]:
    people = population(N_CLASSES, PER_CLASS, N_MINORITY)
    info = write_population(kind, root, people)
    majority_name, minority_name = info["values"]
    cfg = OmegaConf.structured(
        DataConfig(
            name=kind,
            root=str(root),
            options=info["options"],
            sensitive_attribute=info["attribute"],
            minority_group=minority_name,
            minority_share=share,
            imbalance_by=by,
            split=SPLIT,
            image_size=16,
        )  # fmt: skip
    )
    datamodule = DMLDataModule(cfg, seed=3)
    datamodule.setup()
    return datamodule, {"majority": majority_name, "minority": minority_name}, people


@pytest.mark.parametrize("kind", ["celeba", "lfw", "cub", "folder"])
@pytest.mark.parametrize("by", ["samples", "classes"])
def test_class_disjoint_split_and_exact_imbalance(tmp_path, kind, by):
    datamodule, names, people = _datamodule(kind, tmp_path, by)
    base = datamodule.views["train"].base
    truth = np.array([g for _, g in people])
    codes = base.attribute_column(datamodule.group_attribute)
    group_names = datamodule.group_names
    assert len(base) == N_CLASSES * PER_CLASS
    np.testing.assert_array_equal(
        np.array(group_names)[codes], np.where(truth == 1, names["minority"], names["majority"])
    )

    class_sets = {split: set(view.labels.tolist()) for split, view in datamodule.views.items()}
    assert not (class_sets["train"] & class_sets["val"] or class_sets["train"] & class_sets["test"])
    assert not class_sets["val"] & class_sets["test"]
    train_classes = set(range(N_CLASSES)) - class_sets["val"] - class_sets["test"]  # before the imbalance
    assert class_sets["train"] <= train_classes
    minority_code = group_names.index(names["minority"])
    class_group = {c: int(g) for c, g in people}
    for split in ("val", "test"):  # evaluation splits are left as they are: every image of their classes
        view = datamodule.views[split]
        assert len(view) == PER_CLASS * len(class_sets[split])
        counts = (
            sum(1 - class_group[c] for c in class_sets[split]),
            sum(class_group[c] for c in class_sets[split]),
        )
        assert counts == EXPECTED_CLASSES[split]
    assert (
        sum(1 - class_group[c] for c in train_classes),
        sum(class_group[c] for c in train_classes),
    ) == EXPECTED_CLASSES["train"]

    train = datamodule.views["train"]
    groups = train.attribute_column(datamodule.group_attribute)
    n_majority = int((groups != minority_code).sum())
    assert n_majority == 6 * PER_CLASS  # the majority is never touched
    assert int((groups == minority_code).sum()) == minority_count(n_majority, 0.1) == 3
    kept_classes = np.unique(train.labels[groups == minority_code])
    if by == "classes":  # whole identities: the 3 images are one minority person's
        assert len(kept_classes) == 1
    summary = datamodule.summary()["splits"]["train"]
    assert summary["minority_share"] == pytest.approx(3 / 33)
    assert summary["groups"][names["minority"]]["n"] == 3


def test_imbalance_is_seeded_and_none_keeps_all(tmp_path):
    first, _, _ = _datamodule("folder", tmp_path / "a", "samples")
    second, _, _ = _datamodule("folder", tmp_path / "b", "samples")
    np.testing.assert_array_equal(first.views["train"].indices, second.views["train"].indices)
    untouched, _, _ = _datamodule("folder", tmp_path / "c", "samples", share=None)
    assert len(untouched.views["train"]) == 10 * PER_CLASS
