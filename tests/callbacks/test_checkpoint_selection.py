"""Model selection by fairness: `checkpoint.monitor` may name a per-group, worst-group or gap key."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from fairdml.callbacks.selection import build_checkpoint, check_monitor, validation_keys
from fairdml.config import compose_config
from fairdml.metrics.fairness import flatten_report
from fairdml.metrics.functional.report import fairness_report
from fairdml.train import run_training

GROUPS = ["majority", "minority"]


@pytest.mark.parametrize("leakage", [False, True])
def test_validation_keys_are_the_keys_a_validation_logs(leakage):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(120, 8, generator=generator), dim=1)
    labels = torch.arange(120) % 12
    groups = (labels >= 6).long()
    report = fairness_report(
        embeddings, labels, groups, ks=(1, 4), group_names=GROUPS, leakage=leakage, bootstrap_resamples=0
    )  # as a validation report: no intervals (ReportSettings.from_config(..., "val"))
    logged = set(flatten_report(report, "val"))
    assert logged <= set(validation_keys([1, 4], GROUPS, leakage))
    assert {"val/recall_at_1/worst", "val/recall_at_1/gap", "val_groups/recall_at_1/minority"} <= logged
    assert ("val/attribute_leakage" in logged) == leakage


def test_a_misspelled_monitor_fails_naming_the_closest_key():
    valid = validation_keys([1, 2], GROUPS, leakage=False)
    with pytest.raises(ValueError, match=r"'val/recal@1/worst' is not a logged key.*Closest: val/recall_at_1/worst"):
        check_monitor("val/recal@1/worst", "max", valid)
    with pytest.raises(ValueError, match="is not a logged key"):
        check_monitor("val/attribute_leakage", "min", valid)  # leakage is not computed at validation
    with pytest.raises(ValueError, match="'min' or 'max'"):
        check_monitor("val/recall_at_1", "maximum", valid)
    with pytest.warns(UserWarning, match="lower-is-better"):
        check_monitor("val/recall_at_1/gap", "max", valid)
    for key, mode in [
        ("val/recall_at_1/worst", "max"),
        ("val_groups/map_at_r/minority", "max"),
        ("train/loss", "min"),
    ]:
        check_monitor(key, mode, valid)


def test_training_stops_before_fit_on_a_bad_monitor(tiny_overrides, tmp_path):
    cfg = compose_config([*tiny_overrides, f"run_dir={tmp_path / 'run'}", "checkpoint.monitor=val/recall_at_1/wrost"])
    with pytest.raises(ValueError, match="Closest: val/recall_at_1/worst"):
        run_training(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


class _ScriptedValidation(L.LightningModule):
    """Logs a given value of a fairness key at each validation (the real keys, scripted values)."""

    def __init__(self, key: str, values: list[float]):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.key, self.values = key, values

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log(self.key, self.values[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(
    ("key", "mode", "values", "best_epoch"),
    [
        ("val/recall_at_1/worst", "max", [0.2, 0.5, 0.4, 0.45], 1),
        ("val/recall_at_1/gap", "min", [0.3, 0.1, 0.2, 0.05], 3),
        ("val_groups/recall_at_1/minority", "max", [0.6, 0.1, 0.2, 0.3], 0),
    ],
)
def test_checkpoint_keeps_the_best_by_the_fairness_key(tmp_path, key, mode, values, best_epoch):
    checkpoint, last = build_checkpoint(
        {"monitor": key, "mode": mode, "save_last": True, "save_top_k": 1},
        {"ks": [1], "val_leakage": False}, GROUPS, tmp_path,
    )  # fmt: skip
    assert last.monitor is None and last.filename == "last"  # last.ckpt written at every validation
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=len(values), callbacks=[checkpoint, last], logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(_ScriptedValidation(key, values), data, data)
    assert checkpoint.best_model_path.endswith(f"best-{best_epoch:03d}.ckpt")
    assert float(checkpoint.best_model_score) == pytest.approx(values[best_epoch])
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [
        f"best-{best_epoch:03d}.ckpt", "last.ckpt"
    ]  # fmt: skip
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == len(values) - 1
