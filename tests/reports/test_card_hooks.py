"""`fairdml train`, `fairdml audit` and `fairdml card` write the card; a card failure only warns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.fixtures_card import fake_embeddings, write_fake_run
from huggingface_hub import ModelCard

from fairdml.cli import main
from fairdml.config import compose_config
from fairdml.reports.audit import run_audit
from fairdml.reports.card import CARD_FILES
from fairdml.reports.card import write as card_write
from fairdml.train import run_training


def _results(markdown_path) -> dict:
    return {(r.dataset_config, r.metric_type): r.metric_value for r in ModelCard.load(markdown_path).data.eval_results}


def test_train_writes_the_card(tiny_overrides, tmp_path):
    run_dir = run_training(compose_config([*tiny_overrides, f"run_dir={tmp_path / 'run'}"]))
    assert all((run_dir / name).is_file() for name in CARD_FILES.values())
    report = json.loads((run_dir / "report.json").read_text())
    results = _results(run_dir / "MODEL_CARD.md")
    for group, entry in report["groups"].items():
        assert results[(f"style={group}", "recall@1")] == entry["recall@1"]
        assert 0.0 <= results[(f"style={group}", "fmr")] <= 1.0
    assert 'id="threshold-slider"' in (run_dir / "model_card.html").read_text()


def test_audit_writes_the_card_from_its_npz(tmp_path, capsys):
    npz = tmp_path / "elsewhere" / "emb.npz"
    npz.parent.mkdir()
    np.savez(npz, **fake_embeddings())
    report = run_audit(str(npz), str(tmp_path / "audit"), ks=(1, 2))
    markdown = tmp_path / "audit" / "MODEL_CARD.md"
    assert "model card in" in capsys.readouterr().out
    results = _results(markdown)
    for group, entry in report["groups"].items():
        assert results[(f"style={group}", "recall@1")] == entry["recall@1"]
        assert (f"style={group}", "fnmr") in results  # the threshold view used the npz from elsewhere
    assert "config.yaml is missing" in markdown.read_text()
    run_audit(str(npz), str(tmp_path / "no_card"), ks=(1,), model_card=False)
    assert not (tmp_path / "no_card" / "MODEL_CARD.md").exists()


def test_card_command_writes_to_out(tmp_path, capsys):
    run = write_fake_run(tmp_path)
    main(["card", str(run), "--out", str(tmp_path / "card")])
    printed = capsys.readouterr().out
    for name in CARD_FILES.values():
        assert (tmp_path / "card" / name).is_file() and f"wrote {tmp_path / 'card' / name}" in printed


def test_automatic_card_failure_warns_and_names_the_retry(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("bad card input")

    monkeypatch.setattr(card_write, "write_model_card", broken)
    with pytest.warns(UserWarning, match=r"model card not written.*bad card input.*fairdml card"):
        assert card_write.write_model_card_after("train", tmp_path) is None
