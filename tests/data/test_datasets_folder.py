"""Generic folder + CSV reader: string classes/attributes become codes with their names kept."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures_datasets import write_folder, write_garbage, write_heavy_tailed_folder_dataset

from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule
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
    assert one.attribute_names == ("age",) and len(one) == 4 and one.dropped == {"class with fewer than 2 images": 1}


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
    data = FolderCSV(str(tmp_path))
    with pytest.raises(ImageReadError, match="photos/b.jpg"):
        data[1]
    (tmp_path / "more" / "e.jpg").unlink()
    with pytest.raises(DatasetFileError, match="images are missing.*more/e.jpg"):
        FolderCSV(str(tmp_path))
    with pytest.warns(UserWarning, match="dropped 2 image"):
        data = FolderCSV(str(tmp_path), skip_bad_files=True)
    assert len(data) == 3 and data.class_names == ("cat", "dog") and len(data.skipped_files) == 2


def test_duplicate_rows_are_errors_naming_path_and_both_lines(tmp_path):
    write_folder(tmp_path)
    table = tmp_path / "labels.csv"
    original = table.read_text()
    # line 1 is the header, so photos/b.jpg is on line 3; its repeat (written differently) on line 7
    table.write_text(original + "./photos/b.jpg,cat,male,old\n")
    with pytest.raises(
        ValueError, match=r"labels.csv:7: duplicate row for image './photos/b.jpg' \(first listed on line 3\)"
    ):
        FolderCSV(str(tmp_path))
    table.write_text(original + "more/e.jpg,emu,male,old\nphotos/a.jpg,cat,female,young\nmore/e.jpg,emu,male,old\n")
    with pytest.raises(ValueError, match=r"labels.csv:7: .*'more/e.jpg' \(first listed on line 6\); 3 duplicate rows"):
        FolderCSV(str(tmp_path))
    table.write_text(original.replace("photos/b.jpg", str(tmp_path / "photos" / "a.jpg")))  # absolute, same file
    with pytest.raises(ValueError, match=r"labels.csv:3: duplicate row .*first listed on line 2"):
        FolderCSV(str(tmp_path))


def test_heavy_tailed_fixture_loads_and_sampler_yields_len_every_epoch(tmp_path):
    table = write_heavy_tailed_folder_dataset(tmp_path, seed=0)
    data = FolderCSV(str(table.parent), csv_file=table.name)
    sizes = np.sort(np.bincount(data.labels))[::-1]
    assert len(data) == sizes.sum() <= 300 and len(sizes) == 60
    assert sizes[0] == 48 and sizes[1] == 24 and np.median(sizes) <= 4 and sizes.min() >= 2  # LFW's shape
    assert data.attribute_names == ("skin",) and data.attribute_values == (("dark", "light"),)
    for c in np.unique(data.labels):  # the attribute is per class, as LFW's identities
        assert len(set(data.attributes[data.labels == c, 0].tolist())) == 1
    assert data[0]["image"].size == (8, 8)
    for group_balanced in (False, True):
        cfg = compose_config([
            "data=folder", f"data.root={table.parent}", f"data.options.csv_file={table.name}",
            "data.sensitive_attribute=skin", "data.batch_size=16", "data.samples_per_class=2",
            "data.image_size=8",
        ])  # fmt: skip
        datamodule = DMLDataModule(cfg.data, seed=0)
        datamodule.setup()
        datamodule.group_balanced = group_balanced  # what the group_balanced mitigation sets
        batches = datamodule.train_sampler()
        assert len(batches) > 0
        for epoch in range(20):
            batches.set_epoch(epoch)
            assert sum(1 for _ in batches) == len(batches), f"group_balanced={group_balanced}, epoch {epoch}"


def test_a_latin1_table_names_the_file_and_line(tmp_path):
    """Once a codec error naming neither the file nor the line."""
    write_folder(tmp_path)
    table = tmp_path / "labels.csv"
    lines = table.read_text().splitlines()
    lines[2] = lines[2].replace("cat", "chat-\u00e9t\u00e9")
    table.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"labels.csv:3: not UTF-8 \(byte 0xe9\)"):
        create_dataset("folder", root=str(tmp_path))
