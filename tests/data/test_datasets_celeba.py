"""CelebA reader on a 7-image fixture in the published file format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers.fixtures_datasets import CELEBA_ATTRIBUTES, write_celeba, write_garbage

from fairdml.data.celeba import CelebA
from fairdml.data.imageio import DatasetFileError, ImageReadError
from fairdml.data.registry import create_dataset


@pytest.mark.parametrize("torchvision_layout", [False, True])
def test_parses_identities_attributes_and_partition(tmp_path, torchvision_layout):
    truth = write_celeba(tmp_path, torchvision_layout=torchvision_layout)
    data = CelebA(str(tmp_path), sensitive_attributes=["Male", "Pale_Skin"])
    assert len(data) == 7
    assert data.class_names == ("5", "10", "2880")
    assert data.labels.tolist() == [2, 2, 1, 1, 1, 0, 2]
    columns = [CELEBA_ATTRIBUTES.index("Male"), CELEBA_ATTRIBUTES.index("Pale_Skin")]
    np.testing.assert_array_equal(data.attributes, (truth["values"][:, columns] == 1).astype(np.int64))
    assert data.attribute_names == ("Male", "Pale_Skin")
    assert data.attribute_values == (("not_Male", "Male"), ("not_Pale_Skin", "Pale_Skin"))
    assert data.official_partition.tolist() == truth["partition"]
    assert data.dropped == {} and data.skipped_files == []
    item = data[0]
    assert (
        item["image"].mode == "RGB"
        and item["label"] == 2
        and item["attributes"].tolist() == data.attributes[0].tolist()
    )
    assert len(pickle.loads(pickle.dumps(data))) == 7  # DataLoader workers receive a pickled copy


def test_registry_and_min_images(tmp_path):
    write_celeba(tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 image"):
        data = create_dataset("celeba", root=str(tmp_path), sensitive_attributes="Young", min_images_per_class=2)
    assert len(data) == 6 and data.class_names == ("10", "2880")
    assert data.dropped == {"class with fewer than 2 images": 1}
    assert data.official_partition.tolist() == [0, 0, 0, 1, 1, 2]


def test_unknown_attribute_lists_valid_names(tmp_path):
    write_celeba(tmp_path)
    with pytest.raises(KeyError, match="Wearing_Necktie"):
        CelebA(str(tmp_path), sensitive_attributes=["Gender"])


def test_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(DatasetFileError, match="mmlab.ie.cuhk.edu.hk"):
        CelebA(str(tmp_path / "nowhere"))
    write_celeba(tmp_path)
    (tmp_path / "identity_CelebA.txt").unlink()
    with pytest.raises(DatasetFileError, match="identity_CelebA.txt.*mmlab"):
        CelebA(str(tmp_path))


def test_bad_images_error_or_are_skipped_and_counted(tmp_path):
    write_celeba(tmp_path)
    write_garbage(tmp_path / "img_align_celeba" / "000002.jpg")
    data = CelebA(str(tmp_path))
    with pytest.raises(ImageReadError, match="000002.jpg"):  # undecodable: named when it is read
        data.load_image(1)
    (tmp_path / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(DatasetFileError, match=r"1 of the 7 listed images are missing.*000005.jpg"):
        CelebA(str(tmp_path))  # missing: named at once, not when an epoch reaches it
    with pytest.warns(UserWarning, match="dropped 2 image"):
        data = CelebA(str(tmp_path), skip_bad_files=True)
    assert len(data) == 5 and data.dropped == {"missing or unreadable file": 2}
    assert [p.rsplit("/", 1)[1] for p in data.skipped_files] == ["000002.jpg", "000005.jpg"]
    assert data.labels.tolist() == [2, 1, 1, 0, 2]
    assert data.official_partition.tolist() == [0, 0, 1, 2, 2]
    data[0], data[4]  # every kept image decodes


def test_malformed_attribute_file_names_the_line(tmp_path):
    truth = write_celeba(tmp_path)
    path = truth["base"] / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace("-1", "0", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="list_attr_celeba.txt:5"):
        CelebA(str(tmp_path), sensitive_attributes=CELEBA_ATTRIBUTES)
