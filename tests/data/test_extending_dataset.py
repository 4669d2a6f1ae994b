"""docs/extending.md "A dataset reader" runs as written, and the registry finds readers without a list of them:
in-tree by listing fairdml/data/, outside fairdml by `package.module:factory` or `register_dataset`."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers.doc_blocks import ROOT, run_blocks

from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule
from fairdml.data.digits import ComposedDigits
from fairdml.data.registry import (
    DATASETS,
    UNAVAILABLE,
    create_dataset,
    discover_datasets,
    register_dataset,
)

SECTION = "A dataset reader"


@pytest.fixture(autouse=True)
def forget_test_registrations():
    """The registry is module-level: keep the in-tree readers, drop what a test added."""
    discover_datasets()
    names, unavailable = set(DATASETS), dict(UNAVAILABLE)
    yield
    for name in set(DATASETS) - names:
        del DATASETS[name]
    UNAVAILABLE.clear()
    UNAVAILABLE.update(unavailable)


def _yaml_block() -> str:
    section = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8").split(f"## {SECTION}\n", 1)[1]
    (block,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    return block


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> dict:
    """The section's Python run in a project folder whose my_configs/data/ holds the section's YAML."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_configs" / "data").mkdir(parents=True)
    (tmp_path / "my_configs" / "data" / "toy_shapes.yaml").write_text(_yaml_block(), encoding="utf-8")
    return run_blocks("docs/extending.md", SECTION)


def test_recipe_builds_a_datamodule_with_the_documented_splits_and_groups(recipe):
    cfg = recipe["cfg"]
    assert cfg.data.name == "toy_shapes" and DATASETS["toy_shapes"] is recipe["ToyShapes"]
    datamodule = DMLDataModule(cfg.data, seed=cfg.seed)
    datamodule.setup()
    assert datamodule.group_attribute == "background" and datamodule.group_names == ["light", "dark"]
    assert datamodule.group_names[datamodule.minority_code] == "dark"
    views = datamodule.views
    classes = {split: set(view.labels.tolist()) for split, view in views.items()}
    assert {split: len(c) for split, c in classes.items()} == {"train": 10, "val": 4, "test": 6}
    assert not (
        classes["train"] & classes["val"] or classes["train"] & classes["test"] or classes["val"] & classes["test"]
    )
    groups = {split: Counter(view.attribute_column("background").tolist()) for split, view in views.items()}
    assert groups == {"train": {0: 40, 1: 13}, "val": {0: 16, 1: 16}, "test": {0: 24, 1: 24}}
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (16, 3, 16, 16) and batch["attributes"].shape == (16, 1)
    assert sorted(Counter(batch["label"].tolist()).values()) == [4, 4, 4, 4]
    test_batch = next(iter(datamodule.test_dataloader()))
    assert test_batch["image"].shape == (48, 3, 16, 16)


def test_recipe_reader_is_a_dml_dataset_whose_groups_look_different(recipe):
    dataset = recipe["ToyShapes"](num_classes=6, images_per_class=3)
    assert len(dataset) == 18 and dataset.attribute_names == ("background",)
    assert dataset.load_image(0).size == (16, 16) and dataset.load_image(0) == dataset.load_image(0)
    item = dataset[5]
    assert item["label"] == 1 and item["attributes"].tolist() == [int(dataset.attributes[5, 0])]
    brightness = {
        code: np.mean(
            [np.asarray(dataset.load_image(i)).mean() for i in np.flatnonzero(dataset.attributes[:, 0] == code)]
        )
        for code in (0, 1)
    }
    assert brightness[0] > brightness[1] + 50
    with pytest.raises(TypeError, match=r"valid options: \['num_classes', 'images_per_class'"):
        create_dataset("toy_shapes", num_images=3)


EXTERNAL_READER = """
from fairdml.data.digits import ComposedDigits


def small_digits(num_classes: int = 10, **options):
    return ComposedDigits(num_classes=num_classes, image_size=16, **options)
"""


@pytest.fixture
def external_module(tmp_path, monkeypatch) -> str:
    """A reader in a user's own module: no fairdml file, no registration."""
    name = "fairdml_test_external_reader"
    (tmp_path / f"{name}.py").write_text(EXTERNAL_READER, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_module_attribute_name_needs_no_registration(external_module):
    names = set(DATASETS)
    digits = create_dataset("fairdml.data.digits:ComposedDigits", num_classes=4, samples_per_class=2)
    assert isinstance(digits, ComposedDigits) and len(digits) == 8
    overrides = [
        f"data.name={external_module}:small_digits",
        "data.options.num_classes=20",
        "data.options.samples_per_class=6",
    ]
    cfg = compose_config(overrides)
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    assert len(np.unique(datamodule.views["test"].labels)) == 6 and datamodule.group_names == ["majority", "minority"]
    assert set(DATASETS) == names  # the path form resolves; it registers nothing
    with pytest.raises(TypeError, match=r"'fairdml.data.digits:ComposedDigits' got unknown option\(s\) \['colour'\]"):
        create_dataset("fairdml.data.digits:ComposedDigits", colour=1)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("imagenet", KeyError, r"registered datasets: \[.*'digits'.*\]; or name a reader outside fairdml as "
         r"'package.module:factory'"),
        ("no_such_package_xyz.readers:Reader", ModuleNotFoundError, "no module 'no_such_package_xyz.readers'"),
        ("fairdml.data.digits:NoSuchReader", AttributeError, "'fairdml.data.digits' has no attribute 'NoSuchReader'"),
        ("fairdml.data.digits:STYLES", TypeError, "is a tuple, not a class or function"),
        (":ComposedDigits", ValueError, "expected a registered name or 'package.module:factory'"),
    ],
)  # fmt: skip
def test_bad_names_say_what_would_be_right(name, error, message):
    with pytest.raises(error, match=message):
        create_dataset(name)


def test_reader_with_a_missing_package_fails_naming_it_when_asked_for():
    UNAVAILABLE["fairdml.data.fancy"] = ModuleNotFoundError("No module named 'h5py'", name="h5py")
    with pytest.raises(ModuleNotFoundError, match="dataset 'fancy' needs the package 'h5py'"):
        create_dataset("fancy")
    with pytest.raises(KeyError, match=r"not importable, a package is missing: \['fancy'\]"):
        create_dataset("imagenet")


def test_registration_from_user_code_and_its_errors():
    @register_dataset("user_digits")
    def user_digits(num_classes: int = 3):
        return ComposedDigits(num_classes=num_classes, samples_per_class=2)

    assert len(create_dataset("user_digits")) == 6
    with pytest.raises(ValueError, match=r"dataset 'user_digits' is registered twice: by .*user_digits and"):
        register_dataset("user_digits")(ComposedDigits)
    with pytest.raises(ValueError, match="may not contain ':'"):
        register_dataset("mine:digits")


def _package(root: Path, name: str, modules: dict[str, str]) -> str:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(source)
    return name


def test_discovery_imports_readers_only_and_keeps_their_errors_loud(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registering = "from fairdml.data.registry import register_dataset\nregister_dataset({!r})(dict)\n"
    never_imported = "raise RuntimeError('infrastructure is not a reader')\n"
    fine = _package(tmp_path, "fairdml_test_readers_fine", {
        "shapes": registering.format("test_shapes"), "needs_h5": "import fairdml_test_no_such_dependency\n",
        "base": never_imported, "datamodule": never_imported, "_private": never_imported,
    })  # fmt: skip
    broken_internal = _package(tmp_path, "fairdml_test_readers_internal", {"bad": "import fairdml.no_such_module\n"})
    broken_code = _package(tmp_path, "fairdml_test_readers_code", {"bad": "1 / 0\n"})
    try:
        discover_datasets(fine)
        assert "test_shapes" in DATASETS
        assert UNAVAILABLE[f"{fine}.needs_h5"].name == "fairdml_test_no_such_dependency"
        with pytest.raises(ModuleNotFoundError, match="fairdml.no_such_module"):
            discover_datasets(broken_internal)
        with pytest.raises(ZeroDivisionError):
            discover_datasets(broken_code)
    finally:
        for module in [m for m in sys.modules if m.startswith("fairdml_test_readers_")]:
            del sys.modules[module]
