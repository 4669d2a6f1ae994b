"""Data card on a CelebA fixture in the published file layout: counts against the fixture's own files,
co-occurrence, a planted near-duplicate across splits, and a self-contained, escaping HTML page."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers.fixtures_card import EVIL, write_fake_run
from helpers.fixtures_datasets import population, write_population
from PIL import Image

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.data import DMLDataModule
from fairdml.reports.card.blocks import Text
from fairdml.reports.card.datasheet import training_data_section
from fairdml.reports.datacard import measure_data, write_data_card, write_data_card_files
from fairdml.reports.datacard.image_hash import close_pairs, difference_hash
from fairdml.reports.runs import load_run


@pytest.fixture
def celeba_root(tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    write_population("celeba", root, population(16, 3, 8))  # 16 identities x 3 images, 8 of them Male
    return root


def _overrides(root) -> list[str]:
    return ["data=celeba", f"data.root={root}", "data.options.sensitive_attributes=[Male,Pale_Skin]"]


def _setup(overrides: list[str]) -> DMLDataModule:
    cfg = compose_config(overrides)
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    return datamodule


def _attribute_file(root) -> pd.DataFrame:
    """The fixture's attribute file read independently of the reader: row count, names, then -1/1 rows."""
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    rows = [line.split() for line in lines[2:]]
    frame = pd.DataFrame([[int(v) for v in row[1:]] for row in rows], columns=names, index=[r[0] for r in rows])
    identities = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines())
    return frame.assign(identity=[identities[f] for f in frame.index])


def test_counts_match_the_attribute_file(celeba_root):
    datamodule = _setup(_overrides(celeba_root))
    card = measure_data(datamodule)
    frame = _attribute_file(celeba_root)
    dataset = datamodule.views["train"].base
    assert card["n"] == len(frame) == 48
    for split, view in datamodule.views.items():
        files = [dataset.image_files[i].decode() for i in view.indices]
        part = frame.loc[files]
        entry = card["splits"][split]
        assert entry["n"] == len(part) and entry["classes"] == part["identity"].nunique()
        for group, value in (("Male", 1), ("not_Male", -1)):
            members = part[part["Male"] == value]
            per_class = members.groupby("identity").size().to_numpy()
            info = entry["groups"][group]
            assert info["n"] == len(members) and info["classes"] == len(per_class)
            if len(per_class):
                assert info["images_per_class"]["median"] == pytest.approx(np.median(per_class))
                assert sum(info["images_per_class_histogram"]["counts"]) == len(per_class)
    # the protocol cut the minority in training only; the data as is has half of each
    assert card["imbalance"]["minority_share_as_is"] == pytest.approx(0.5)
    assert card["imbalance"]["minority_share_train"] == pytest.approx(0.1, abs=0.05)
    (table,) = card["cooccurrence"]
    assert table["attributes"] == ["Male", "Pale_Skin"]
    expected = pd.crosstab(frame["Male"], frame["Pale_Skin"]).reindex(index=[-1, 1], columns=[-1, 1], fill_value=0)
    assert table["counts"] == expected.to_numpy().tolist()
    assert np.sum(table["counts"]) == card["n"]


def test_planted_duplicate_across_splits_is_found_and_random_pairs_are_not(celeba_root):
    datamodule = _setup(_overrides(celeba_root))
    assert measure_data(datamodule)["near_duplicates"]["total_pairs"] == 0  # random images: none close
    dataset, views = datamodule.views["train"].base, datamodule.views
    source, target = (
        dataset.image_path(int(views["train"].indices[0])),
        dataset.image_path(int(views["test"].indices[0])),
    )
    shutil.copyfile(source, target)  # the same photo under another identity, in the test split
    found = measure_data(datamodule)["near_duplicates"]
    assert found["total_pairs"] == 1 and found["pairs_across_splits"]["train/test"] == 1
    (example,) = found["examples"]
    assert example["images"] == [source.name, target.name] and example["distance"] == 0
    capped = measure_data(datamodule, max_images=2)["near_duplicates"]
    assert all(n <= 2 for n in capped["images_hashed"].values())


def test_hash_distance_is_small_for_a_resized_copy():
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    original, resized = difference_hash(image), difference_hash(image.resize((48, 48)))
    other = difference_hash(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    assert len(close_pairs(np.array([original]), np.array([resized]), max_distance=10)) == 1
    assert len(close_pairs(np.array([original]), np.array([other]), max_distance=10)) == 0


def test_html_is_self_contained_and_escapes_names(celeba_root, tmp_path):
    header = (celeba_root / "list_attr_celeba.txt").read_text().replace("Pale_Skin", EVIL)
    (celeba_root / "list_attr_celeba.txt").write_text(header)
    cfg = compose_config(["data=celeba", f"data.root={celeba_root}"])
    cfg.data.options["sensitive_attributes"] = ["Male", EVIL]
    cfg.data.sensitive_attribute = EVIL
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    written = write_data_card_files(measure_data(datamodule), tmp_path / "card")
    page = written["html"].read_text(encoding="utf-8")
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and not re.search(r"(src|href)=\"?(https?:)?//", page)
    assert not re.search(r"https?://", page)
    card = json.loads(written["json"].read_text())
    assert card["group_names"] == [f"not_{EVIL}", EVIL]


def test_command_writes_both_files_and_errors_in_one_line(celeba_root, tmp_path, capsys):
    out = tmp_path / "out"
    main(["datacard", *_overrides(celeba_root), "--out", str(out), "--max-images", "5"])
    assert {p.name for p in out.iterdir()} == {"data_card.json", "data_card.html"}
    assert json.loads((out / "data_card.json").read_text())["near_duplicates"]["images_hashed"]["train"] <= 5
    for argv in (["data=celeba", f"data.root={tmp_path / 'missing'}"], ["--max-images", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["datacard", *argv, "--out", str(out)])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("fairdml datacard: error:") and "\n" not in error


def _training_data_text(run_dir) -> str:
    return " ".join(b.text for b in training_data_section(load_run(run_dir)).blocks if isinstance(b, Text))


def test_model_card_mentions_the_data_card_when_the_run_has_one(tmp_path):
    run_dir = write_fake_run(tmp_path)
    assert "data_card.html" not in _training_data_text(run_dir)
    write_data_card(["data.options.samples_per_class=6", "data.options.num_classes=20"], run_dir)
    assert "data_card.html" in _training_data_text(run_dir)


def test_distinct_small_images_with_flat_backgrounds_are_not_counted(tiny_overrides):
    """The embedded digits: many 32-px images share most dHash bits; the thumbnail check rejects them."""
    from fairdml.config import compose_config
    from fairdml.data.datamodule import DMLDataModule

    datamodule = DMLDataModule(compose_config(tiny_overrides).data, seed=0)
    datamodule.setup()
    found = measure_data(datamodule, max_images=200)["near_duplicates"]
    assert sum(found["hash_candidates"].values()) > 0  # the hash alone would have called these duplicates
    assert found["total_pairs"] == 0  # every scan composition is drawn afresh: no two images are the same
