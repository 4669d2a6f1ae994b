"""Generic folder + CSV reader: string classes/attributes become codes with their names kept."""

from __future__ import annotations

import pytest
from fixtures_datasets import write_folder, write_garbage

from fairdml.data.folder import FolderCSV
from fairdml.data.imageio import DatasetFileError, ImageReadError
from fairdml.data.registry import create_dataset


def test_parses_csv_with_string_values(tmp_path):
    write_folder(tmp_path)
    data = create_dataset("folder", root=str(tmp_path))
    assert data.class_names == ("cat", "dog", "emu") and data.labels.tolist() == [0, 0, 1, 1, 2]
    assert data.attribute_names == ("sex", "age")
    assert data.attribute_values == (("female", "male"), ("old", "young"))
    assert data.attributes.tolist() == [[0, 1], [1, 0], [1, 1], [0, 1], [1, 0]]
    assert data[3]["image"].mode == "RGB"
    with pytest.warns(UserWarning, match="more/e.jpg"):  # the only emu
        one = FolderCSV(str(tmp_path), sensitive_attributes="age", min_images_per_class=2)
    assert (
        one.attribute_names == ("age",)
        and len(one) == 4
        and one.dropped == {"class with fewer than 2 images": 1}
    )


def test_custom_columns_tsv_and_missing_cells(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "meta.tsv").write_text("file\tperson\tskin\nx.jpg\t7\tV\ny.jpg\t12\t\n")
    with pytest.raises(ValueError, match="meta.tsv:3.*missing_attributes='drop'"):
        FolderCSV(str(tmp_path), ["skin"], csv_file="meta.tsv", path_column="file", class_column="person")
    with pytest.warns(UserWarning, match=r"y.jpg \(line 3\)"):
        data = FolderCSV(
            str(tmp_path),
            ["skin"],
            csv_file="meta.tsv",
            path_column="file",
            class_column="person",
            missing_attributes="drop",
        )
    assert data.class_names == ("7",) and data.attribute_values == (("V",),)
    assert data.dropped == {"empty attribute cell in meta.tsv": 1}


def test_errors_name_columns_files_and_images(tmp_path):
    with pytest.raises(DatasetFileError, match="labels.csv"):
        FolderCSV(str(tmp_path))
    write_folder(tmp_path)
    with pytest.raises(KeyError, match=r"\['path', 'class', 'sex', 'age'\]"):
        FolderCSV(str(tmp_path), ["gender"])
    with pytest.raises(KeyError, match="class_column 'label'"):
        FolderCSV(str(tmp_path), class_column="label")
    write_garbage(tmp_path / "photos" / "b.jpg")
    (tmp_path / "more" / "e.jpg").unlink()
    data = FolderCSV(str(tmp_path))
    with pytest.raises(ImageReadError, match="photos/b.jpg"):
        data[1]
    with pytest.raises(ImageReadError, match="more/e.jpg"):
        data[4]
    with pytest.warns(UserWarning, match="dropped 2 image"):
        data = FolderCSV(str(tmp_path), skip_bad_files=True)
    assert len(data) == 3 and data.class_names == ("cat", "dog") and len(data.skipped_files) == 2
