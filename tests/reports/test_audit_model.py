"""`fairdml audit --model`: a run folder, timm:NAME or module:function embeds a dataset split, then the audit."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import timm
import torch
from helpers.fixtures_datasets import write_heavy_tailed_folder_dataset
from helpers.tiny import TINY_OVERRIDES

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule
from fairdml.models.embedding import load_embedding_model
from fairdml.reports.audit_model import run_model_audit
from fairdml.utils.run_layout import RunPaths

TINY_DATA = [item for item in TINY_OVERRIDES if item.startswith("data.")]
REPORTED = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "nmi", "inter_alignment", "uniformity")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from fairdml.train import run_training

    folder = tmp_path_factory.mktemp("run") / "run"
    return run_training(compose_config([*TINY_OVERRIDES, f"run_dir={folder}", "evaluation.model_card=false"]))


@pytest.fixture(scope="module")
def folder_overrides(tmp_path_factory):
    table = write_heavy_tailed_folder_dataset(tmp_path_factory.mktemp("folder"), seed=0)
    return [
        "data=folder", f"data.root={table.parent}", f"data.options.csv_file={table.name}",
        "data.sensitive_attribute=skin", "data.image_size=32", "data.eval_batch_size=64",
    ]  # fmt: skip


def test_run_folder_on_another_dataset_via_cli(run_dir, folder_overrides, tmp_path):
    out = tmp_path / "audit"
    main(
        [
            "audit",
            "--model",
            str(run_dir),
            *folder_overrides,
            "--out",
            str(out),
            "--min-group-size",
            "1",
            "--device",
            "cpu",
        ]
    )
    report = json.loads((out / "report.json").read_text())
    datamodule = DMLDataModule(compose_config(folder_overrides).data, seed=0)
    datamodule.setup()
    test_view = datamodule.views["test"]
    assert report["n"] == len(test_view)
    assert report["meta"]["model"] == {"kind": "run", "run_dir": str(run_dir), "path": str(RunPaths(run_dir).model)}
    assert report["meta"]["data"]["name"] == "folder" and report["meta"]["split"] == "test"
    assert report["meta"]["embedding"] == {"device": "cpu", "precision": "float32"}
    for name in ("report.csv", "MODEL_CARD.md", "model_card.html", "embeddings_test.npz"):
        assert (out / name).is_file(), name
    with np.load(out / "embeddings_test.npz", allow_pickle=False) as saved:
        assert saved["embeddings"].dtype == np.float32 and saved["embeddings"].shape[0] == len(test_view)
        assert saved["labels"].tolist() == test_view.labels.tolist()
        assert saved["groups"].dtype.kind == "U" and str(saved["group_attribute"]) == "skin"
        embeddings = saved["embeddings"]
    model = load_embedding_model(RunPaths(run_dir).model)
    images = torch.stack([test_view[i]["image"] for i in range(5)])
    with torch.no_grad():
        expected = model(images).numpy()
    np.testing.assert_allclose(embeddings[:5], expected, atol=1e-5)


@pytest.mark.parametrize("overrides", [(), TINY_OVERRIDES], ids=["run-config", "composed"])
def test_run_on_its_own_test_split_reproduces_its_report(run_dir, tmp_path, overrides):
    """With no overrides the run folder's own config.yaml gives the data; composing the same config agrees."""
    report = run_model_audit(
        str(run_dir), tmp_path / "audit", overrides, model_card=False, progress=False, device="cpu"
    )
    assert report["meta"]["config"].startswith(str(RunPaths(run_dir).config) if not overrides else "composed")
    own = json.loads(RunPaths(run_dir).report.read_text())
    assert report["n"] == own["n"]
    for metric in REPORTED:
        assert report["overall"][metric] == pytest.approx(own["overall"][metric], abs=1e-6), metric
        for group, figures in own["groups"].items():
            assert report["groups"][group][metric] == pytest.approx(figures[metric], abs=1e-6, nan_ok=True)
    with np.load(RunPaths(run_dir).embeddings) as ran, np.load(tmp_path / "audit" / "embeddings_test.npz") as audited:
        np.testing.assert_allclose(audited["embeddings"], ran["embeddings"], atol=1e-5)
        assert audited["groups"].tolist() == ran["groups"].tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_embeddings_match_cpu(run_dir, tmp_path):
    options = {"model_card": False, "progress": False}
    on_cpu = run_model_audit(str(run_dir), tmp_path / "cpu", TINY_OVERRIDES, device="cpu", **options)
    on_gpu = run_model_audit(str(run_dir), tmp_path / "gpu", TINY_OVERRIDES, **options)
    assert on_gpu["meta"]["embedding"] == {"device": "cuda", "precision": "bf16 autocast"}
    assert on_gpu["n"] == on_cpu["n"]
    with (
        np.load(tmp_path / "cpu" / "embeddings_test.npz") as cpu,
        np.load(tmp_path / "gpu" / "embeddings_test.npz") as gpu,
    ):
        assert gpu["embeddings"].dtype == np.float32
        np.testing.assert_allclose(gpu["embeddings"], cpu["embeddings"], atol=3e-2)


def test_timm_backbone_with_local_weights(tmp_path):
    weights = tmp_path / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), weights)
    overrides = [*TINY_DATA, f"model.pretrained_path={weights}"]
    report = run_model_audit("timm:test_resnet", tmp_path / "audit", overrides, model_card=False, progress=False)
    assert report["meta"]["model"] == {"kind": "timm", "backbone": "test_resnet", "weights": str(weights)}
    with np.load(tmp_path / "audit" / "embeddings_test.npz") as saved:
        assert saved["embeddings"].shape == (report["n"], timm.create_model("test_resnet", num_classes=0).num_features)


def test_module_function_factory(tmp_path, monkeypatch):
    (tmp_path / "audit_factory_module.py").write_text(
        textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 8))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "audit"
    main(
        ["audit", "--model", "audit_factory_module:build", *TINY_DATA, "--split", "all", "--out", str(out), "--no-card"]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["model"] == {"kind": "factory", "factory": "audit_factory_module:build"}
    assert report["meta"]["split"] == "all" and report["n"] == 30 * 12
    with np.load(out / "embeddings_all.npz") as saved:
        assert saved["embeddings"].shape == (30 * 12, 8)


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("nonsense", [], "--model 'nonsense' is not a run folder, a model.pt, timm:NAME or module:function"),
        ("{empty}", [], "the folder has no model.pt; export one with `fairdml export"),
        ("{empty}/model.pt", [], "no such model file"),
        ("no_such_module_xyz:build", [], "cannot import 'no_such_module_xyz'"),
        ("fairdml.utils.numbers:__name__", [], "has no function '__name__'"),
        ("collections:OrderedDict", [], "the factory returned OrderedDict, not a torch nn.Module"),
        ("json:loads", [], "--model json:loads: loads() raised TypeError"),  # a factory that raises is named
        ("timm:test_resnet", [], "random weights unless model.pretrained=true"),
        ("timm:test_resnet", ["model.pretrained_path=/nope.pth"], "no weights file at /nope.pth"),
        (
            "{run}",
            ["--split", "holdout"],
            "--split holdout: the data has no such split; it has ['train', 'val', 'test'",
        ),
        ("{run}", ["emb.npz"], "with --model, the other arguments are key=value overrides"),
        pytest.param(
            "{run}",
            ["--device", "cuda"],
            "torch sees no CUDA GPU; use auto or cpu",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there"),
        ),
    ],
)
def test_bad_input_is_one_line(model, extra, message, run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    model = model.format(empty=tmp_path / "empty", run=run_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--model", model, *TINY_DATA, *extra, "--out", str(tmp_path / "out"), "--no-card"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error


def test_npz_and_model_need_exactly_one_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--out", str(tmp_path / "out")])
    assert "give one .npz of embeddings, or --model M" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_card_names_the_split_that_was_audited(run_dir, tmp_path, split):
    """`audit --model RUN --split train` once got a card saying "test split, classes never seen in training"."""
    run_model_audit(str(run_dir), tmp_path / "audit", TINY_OVERRIDES, split=split, progress=False, ks=(1,))
    card = (tmp_path / "audit" / "MODEL_CARD.md").read_text()
    assert "classes never seen in training (class-disjoint split)" not in card
    assert {"train": "training split: the classes and images the model was trained on", "val": "validation split"}[
        split
    ] in card
