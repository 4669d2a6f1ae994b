"""CUB-200-2011 reader on a 6-image fixture in the published file layout (incl. an extra-field line)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures_datasets import CUB_CLASSES, write_cub, write_garbage

from fairdml.config import compose_config
from fairdml.data import DMLDataModule
from fairdml.data.cub import CUB
from fairdml.data.imageio import DatasetFileError, ImageReadError
from fairdml.data.registry import create_dataset
from fairdml.data.splits import class_disjoint_split

COLOURS = ("blue", "brown", "black", "white")


@pytest.mark.parametrize("names_file_at", ["archive", "base", "attributes"])
def test_parses_species_and_binary_attribute(tmp_path, names_file_at):
    truth = write_cub(tmp_path, names_file_at=names_file_at)
    root = tmp_path if names_file_at == "archive" else truth["base"]  # both root conventions
    data = CUB(str(root), sensitive_attributes=["has_primary_color::black"])
    assert len(data) == 6 and data.class_names == tuple(CUB_CLASSES)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.image_ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert data.attribute_values == (("not_has_primary_color::black", "has_primary_color::black"),)
    assert data.attributes[:, 0].tolist() == [1, 1, 0, 0, 0, 1]
    assert str(data.image_path(3)).endswith("images/" + truth["images"][3])
    assert data[5]["image"].mode == "RGB"


@pytest.mark.parametrize(
    ("options", "values", "codes"),
    [
        ({}, (*COLOURS, "multiple", "none"), [2, 4, 5, 0, 3, 4]),
        ({"group_rule": "most_certain"}, (*COLOURS, "none"), [2, 3, 4, 0, 3, 1]),
        ({"min_certainty": 3}, (*COLOURS, "multiple", "none"), [2, 4, 5, 5, 3, 4]),
        (
            {"value_groups": {"has_primary_color": {"dark": ["black", "brown"], "light": ["white"]}}},
            ("dark", "light", "multiple", "none"),
            [0, 2, 3, 3, 1, 0],
        ),
    ],
)
def test_group_attribute_rules(tmp_path, options, values, codes):
    write_cub(tmp_path)
    data = create_dataset("cub", root=str(tmp_path), sensitive_attributes=["has_primary_color"], **options)
    assert data.attribute_names == ("has_primary_color",)
    assert data.attribute_values == (values,)
    assert data.attributes[:, 0].tolist() == codes


def test_unknown_attributes_list_valid_ones(tmp_path):
    write_cub(tmp_path)
    with pytest.raises(KeyError, match="has_bill_shape"):
        CUB(str(tmp_path), ["has_wing_color"])
    with pytest.raises(KeyError, match="'black', 'blue'"):
        CUB(str(tmp_path), ["has_primary_color::green"])
    with pytest.raises(KeyError, match="no value 'green'"):
        CUB(str(tmp_path), ["has_primary_color"], value_groups={"has_primary_color": {"x": ["green"]}})


def test_missing_files_and_bad_images(tmp_path):
    with pytest.raises(DatasetFileError, match="images.txt.*vision.caltech.edu"):
        CUB(str(tmp_path))
    truth = write_cub(tmp_path)
    (tmp_path / "attributes.txt").unlink()
    with pytest.raises(DatasetFileError, match="attributes.txt"):
        CUB(str(tmp_path))
    truth = write_cub(tmp_path)
    write_garbage(truth["base"] / "images" / truth["images"][0])
    data = CUB(str(tmp_path))
    with pytest.raises(ImageReadError, match=truth["images"][0].split("/")[1]):
        data[0]
    (truth["base"] / "images" / truth["images"][4]).unlink()
    with pytest.raises(DatasetFileError, match="images are missing.*" + truth["images"][4].split("/")[1]):
        CUB(str(tmp_path))
    with pytest.warns(UserWarning, match="dropped 2 image"):
        data = CUB(str(tmp_path), skip_bad_files=True)
    assert data.image_ids.tolist() == [2, 3, 4, 6] and len(data.skipped_files) == 2
    assert data.attributes[:, 0].tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_standard_protocol_first_classes_train_last_classes_test(tmp_path, seed):
    """CUB's standard DML split (first 100 species train, last 100 test), as `data.class_split=ordered`."""
    write_cub(tmp_path)
    cfg = compose_config([
        "data=cub", f"data.root={tmp_path}", "data.class_split=ordered", "~data.split.val",
        "data.split.train=0.5", "data.split.test=0.5", "data.minority_share=null",
    ])  # fmt: skip
    assert dict(cfg.data.split) == {"train": 0.5, "test": 0.5}
    datamodule = DMLDataModule(cfg.data, seed=seed)
    datamodule.setup()
    species = datamodule.views["train"].base.class_names
    assert [species[c] for c in np.unique(datamodule.views["train"].labels)] == [CUB_CLASSES[0]]
    assert [species[c] for c in np.unique(datamodule.views["test"].labels)] == [CUB_CLASSES[1]]


def test_ordered_split_keeps_label_order_and_ignores_groups():
    labels = np.repeat(np.arange(200), 2)
    groups = np.random.default_rng(0).integers(0, 2, size=len(labels))
    fractions = {"train": 0.4, "val": 0.1, "test": 0.5}
    splits = class_disjoint_split(labels, fractions, seed=7, groups=groups, class_split="ordered")
    assert [np.unique(labels[splits[s]]).tolist() for s in fractions] == [
        list(range(80)), list(range(80, 100)), list(range(100, 200))
    ]  # fmt: skip
    with pytest.raises(ValueError, match="class_split must be one of"):
        class_disjoint_split(labels, fractions, seed=0, class_split="standard")
