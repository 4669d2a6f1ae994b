"""LFW reader on a 7-image fixture with the published attribute table layout (and the CSV variant)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures_datasets import LFW_ATTRIBUTES, write_garbage, write_lfw

from fairdml.data.imageio import DatasetFileError, ImageReadError
from fairdml.data.lfw import LFW


def _expected(truth, attribute, people=("Aaron Eckhart", "Zico")):
    column = LFW_ATTRIBUTES.index(attribute)
    return [int(s[column] > 0) for p, _, s in truth["rows"] if p in people]


@pytest.mark.parametrize("csv", [False, True])
def test_parses_people_and_binarises_scores(tmp_path, csv):
    truth = write_lfw(tmp_path, csv=csv)
    file = "lfw_attributes.csv" if csv else "lfw_attributes.txt"
    with pytest.warns(UserWarning) as caught:
        data = LFW(str(tmp_path), sensitive_attributes=["Male", "Middle Aged"], attributes_file=file)
    assert any("Zico/Zico_0004.jpg" in str(w.message) for w in caught)
    assert data.dropped == {f"no row in {file}": 1, "class with fewer than 2 images": 1}
    assert data.class_names == ("Aaron_Eckhart", "Zico")
    assert data.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.attribute_names == ("Male", "Middle_Aged")
    assert data.attribute_values == (("not_Male", "Male"), ("not_Middle_Aged", "Middle_Aged"))
    assert data.attributes[:, 0].tolist() == _expected(truth, "Male")
    assert data.attributes[:, 1].tolist() == _expected(truth, "Middle Aged")
    assert str(data.image_path(2)).endswith("lfw-deepfunneled/Zico/Zico_0001.jpg")
    assert data[4]["image"].mode == "RGB"


def test_threshold_singletons_and_missing_row_policy(tmp_path):
    truth = write_lfw(tmp_path, image_dir="lfw")
    with pytest.warns(UserWarning, match="no row"):
        data = LFW(str(tmp_path), ["Asian"], threshold=0.5, min_images_per_class=1, missing_attributes="drop")
    assert data.class_names == ("Aaron_Eckhart", "Lone_Person", "Zico")
    scores = {(p.replace(" ", "_"), n): s[LFW_ATTRIBUTES.index("Asian")] for p, n, s in truth["rows"]}
    in_folder_order = sorted(scores)  # Aaron_Eckhart, Lone_Person, Zico
    assert data.attributes[:, 0].tolist() == [int(scores[key] > 0.5) for key in in_folder_order]
    with pytest.raises(ValueError, match="Zico_0004.jpg.*missing_attributes='drop'"):
        LFW(str(tmp_path), ["Asian"], missing_attributes="error")


def test_unknown_attribute_and_missing_files(tmp_path):
    write_lfw(tmp_path)
    with pytest.raises(KeyError, match="Middle Aged"):
        LFW(str(tmp_path), ["Gender"])
    (tmp_path / "lfw_attributes.txt").unlink()
    with pytest.raises(DatasetFileError, match="lfw_attributes.txt.*columbia.edu"):
        LFW(str(tmp_path))
    with pytest.raises(DatasetFileError, match="image folder.*vis-www.cs.umass.edu"):
        LFW(str(tmp_path), image_dir="lfw-typo")


def test_missing_and_corrupt_images(tmp_path):
    write_lfw(tmp_path, extra_image_without_row=False, row_without_image=True)
    with pytest.raises(ImageReadError, match="Aaron_Eckhart_0003.jpg"):
        LFW(str(tmp_path))
    write_garbage(tmp_path / "lfw-deepfunneled" / "Zico" / "Zico_0002.jpg")
    with pytest.warns(UserWarning, match="dropped"):
        data = LFW(str(tmp_path), skip_bad_files=True)
    assert sorted(p.rsplit("/", 1)[1] for p in data.skipped_files) == [
        "Aaron_Eckhart_0003.jpg",
        "Zico_0002.jpg",
    ]
    assert data.dropped == {
        "listed in the attribute file but missing": 1,
        "missing or unreadable file": 1,
        "class with fewer than 2 images": 1,
    }
    assert len(data) == 4 and np.bincount(data.labels).tolist() == [2, 2]
    (tmp_path / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0003.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="Lone_Person"):
        data = LFW(str(tmp_path))  # the row's file exists again (empty): only decoding it can fail
    with pytest.raises(ImageReadError, match="Zico_0002.jpg"):
        data.load_image(int(np.flatnonzero(data.labels == 1)[1]))
