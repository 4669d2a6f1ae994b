"""`FairnessMonitor`: the finDML per-group figures of any Lightning module, from one added callback.

A user's module need not know fairdml: the monitor takes each validation and test batch as the batch contract
describes it (`image`, `label` (B,), `attributes` (B, A), optionally `index` (B,)), the embeddings from what the
step returned (a (B, D) tensor, or a dict with "embeddings") or else from `module(batch["image"])`, and feeds
`EmbeddingFairness`. It logs every validation's per-group figures with `log_dict` (so checkpoint callbacks can
monitor `val/recall_at_1/worst`), and after the test writes report.json, report.csv, the test embeddings and the
model card into `out_dir`. A `MitigationHost` module's mitigations (PARADE's measured de-correlation) join the
report, as in `fairdml train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from fairdml.metrics.fairness import EmbeddingFairness, flatten_report
from fairdml.metrics.settings import ReportSettings


class FairnessMonitor(L.Callback):
    """Per-group retrieval fairness of the embeddings a module makes, at every validation and after the test.

    Args:
        group_names: the name of each code of the sensitive attribute (codes 0..G-1 in `batch["attributes"]`).
        attribute_column: which column of `batch["attributes"]` holds the sensitive attribute.
        attribute: its name, for the report, the logs and the card.
        out_dir: where the test's report.json, report.csv, embeddings_test.npz and model card go; None: the
            trainer's `default_root_dir` / "fairness".
        model_card: write MODEL_CARD.md and model_card.html after the test.
        **report_options: `ReportSettings` keywords (ks, min_group_size, bootstrap_resamples, leakage, seed, ...).

    Example:
        >>> monitor = FairnessMonitor(["light", "dark"], attribute="skin", ks=(1, 4))
        >>> trainer = L.Trainer(max_epochs=3, callbacks=[monitor])  # doctest: +SKIP
        >>> monitor.settings.ks
        (1, 4)
    """

    def __init__(
        self,
        group_names: Sequence[str],
        attribute_column: int = 0,
        attribute: str = "group",
        out_dir: str | None = None,
        model_card: bool = True,
        **report_options: Any,
    ) -> None:
        self.group_names = [str(name) for name in group_names]
        if len(self.group_names) < 2:
            raise ValueError(f"FairnessMonitor needs at least two group names to compare, got {self.group_names}")
        self.attribute_column, self.attribute = int(attribute_column), str(attribute)
        self.out_dir, self.model_card = out_dir, model_card
        self.settings = ReportSettings.build(**report_options)  # a bad option fails here, not after training
        self.metrics = {
            "val": EmbeddingFairness(self.group_names, ReportSettings.build(self.settings, bootstrap_resamples=0)),
            "test": EmbeddingFairness(self.group_names, self.settings),
        }
        self.reports: dict[str, dict] = {}
        self._test_arrays: dict[str, torch.Tensor] = {}

    # -- collecting ------------------------------------------------------------------------------------
    def _collect(self, split: str, pl_module: L.LightningModule, outputs: Any, batch: Any) -> None:
        if not isinstance(batch, dict) or not {"image", "label", "attributes"} <= batch.keys():
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise TypeError(
                f"FairnessMonitor reads batches as dicts with 'image', 'label' (B,), 'attributes' (B, A) and, "
                f"optionally, 'index' (B,); got {got}"
            )
        embeddings = _embeddings_of(pl_module, outputs, batch["image"])
        metric = self.metrics[split].to(embeddings.device)
        groups = batch["attributes"][:, self.attribute_column]
        metric.update(embeddings, batch["label"], groups, batch.get("index"))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        if not trainer.sanity_checking:
            self._collect("val", pl_module, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._collect("test", pl_module, outputs, batch)

    # -- reporting -------------------------------------------------------------------------------------
    def _report(self, split: str, pl_module: L.LightningModule) -> dict | None:
        metric = self.metrics[split]
        if isinstance(metric.embeddings, list) and not metric.embeddings:
            return None
        report = metric.compute()
        self.reports[split] = report
        pl_module.log_dict(flatten_report(report, split), rank_zero_only=False)
        return report

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report("val", pl_module)
        self.metrics["val"].reset()

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = self._report("test", pl_module)
        if report is not None:  # gathered here, on every process (teardown writes on the first one alone)
            from fairdml.models.module import gathered_embeddings

            self._test_arrays = gathered_embeddings(self.metrics["test"])
        self.metrics["test"].reset()
        host_reports = getattr(pl_module, "reports", None)
        if report is not None and isinstance(host_reports, dict):  # a mitigation's measure joins this report
            host_reports["test"] = report

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """After every callback's `on_test_end` (PARADE adds its entry there): write the test's files."""
        if stage != "test" or "test" not in self.reports or not trainer.is_global_zero:
            return
        from fairdml.utils.run_folder import staged_outputs

        out = Path(self.out_dir) if self.out_dir else Path(trainer.default_root_dir) / "fairness"
        out.mkdir(parents=True, exist_ok=True)
        with staged_outputs(out, replace_all=True) as staging:
            self._write(staging, out)
        print(f"fairdml: FairnessMonitor wrote the test report and card to {out}")

    def _write(self, staging: Path, out: Path) -> None:
        from fairdml.reports.embeddings_file import save_embeddings_npz
        from fairdml.reports.report import save_report
        from fairdml.utils.run_layout import RunPaths

        report = dict(self.reports["test"])
        report["meta"] = {"split": "test", "group_attribute": self.attribute, "source": "FairnessMonitor"}
        save_report(report, RunPaths(staging).report)
        arrays = self._test_arrays  # every process's, DDP padding dropped, as training's test keeps them
        names = np.asarray(self.group_names, dtype=object)[arrays["groups"].numpy()].astype(str)
        save_embeddings_npz(
            RunPaths(staging).embeddings, arrays["embeddings"].numpy(), arrays["labels"].numpy(), names, self.attribute
        )  # fmt: skip
        if self.model_card:
            from fairdml.reports.card.write import write_model_card_after

            write_model_card_after("FairnessMonitor", staging, None, final_dir=out)


def _embeddings_of(pl_module: L.LightningModule, outputs: Any, images: torch.Tensor) -> torch.Tensor:
    """(B, D) float32 embeddings: what the step returned, else the module's forward on the images."""
    if isinstance(outputs, dict):
        outputs = outputs.get("embeddings")
    if not (isinstance(outputs, torch.Tensor) and outputs.ndim == 2 and outputs.shape[0] == images.shape[0]):
        with torch.no_grad(), pl_module.trainer.precision_plugin.forward_context():
            outputs = pl_module(images)
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 2:
        raise TypeError(
            f"FairnessMonitor needs (B, D) embeddings: return them from validation_step/test_step (a tensor or a "
            f"dict with 'embeddings'), or make {type(pl_module).__name__}(images) return them"
        )
    return outputs.detach().float()
