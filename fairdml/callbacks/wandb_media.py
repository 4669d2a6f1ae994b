"""W&B media for finDML: per-group tables at each validation, and at the test an embedding scatter and
per-group FMR/FNMR curves.

The scalars are logged by the module; W&B charts show one number per key, so the per-group view of one
validation (every metric for every group, with counts) needs a `wandb.Table`. Everything is logged at
`trainer.global_step` through the Lightning logger, so a resumed run continues its x-axis. The callback
reads `pl_module.reports` and `pl_module.test_embeddings` only, and any failure warns instead of raising.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from fairdml.loggers import find_wandb_logger

MAX_SCATTER_POINTS = 2000  # a sample keeps the figure cheap and legible


def report_table(report: dict) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a finDML report: one row per group and an `overall` row, every metric a column."""
    groups = report.get("groups", {})
    metrics = sorted({metric for entry in groups.values() for metric in entry if metric not in ("n", "small")})
    worst = {metric: gap.get("worst_group") for metric, gap in report.get("gaps", {}).items()}
    columns = ["group", "n", "small", *metrics, "worst_in"]  # small: n below the report's min_group_size
    rows: list[list[Any]] = []
    for group, entry in groups.items():
        worst_in = ",".join(metric for metric in metrics if worst.get(metric) == group)
        small = bool(entry.get("small", False))
        rows.append([group, entry.get("n"), small, *(entry.get(metric) for metric in metrics), worst_in])
    overall = report.get("overall", {})
    rows.append(["overall", report.get("n"), False, *(overall.get(metric) for metric in metrics), ""])
    return columns, rows


def pca_scatter(embeddings: np.ndarray, groups: np.ndarray, title: str, seed: int = 0):
    """A matplotlib figure of the first two principal components, coloured by group (sampled)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    if len(embeddings) > MAX_SCATTER_POINTS:
        keep = rng.choice(len(embeddings), MAX_SCATTER_POINTS, replace=False)
        embeddings, groups = embeddings[keep], groups[keep]
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:2].T
    explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
    figure, axes = plt.subplots(figsize=(5, 4.5), dpi=100)
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        axes.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.6, label=f"{group} (n={int(mask.sum())})")
    axes.set_xlabel(f"PC1 ({explained[0]:.0%})")
    axes.set_ylabel(f"PC2 ({explained[1]:.0%})" if len(explained) > 1 else "PC2")
    axes.set_title(title)
    axes.legend(markerscale=2, fontsize=8)
    figure.tight_layout()
    return figure


def threshold_curves(embeddings: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0):
    """Per-group FMR and FNMR against the cosine threshold (fairdml.metrics.functional.thresholds)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from fairdml.metrics.functional.thresholds import pair_error_counts, sample_pairs

    pairs = sample_pairs(labels, groups, max_pairs_per_group=2000, seed=seed)
    counts = pair_error_counts(embeddings, pairs, resolution=200)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for index, name in enumerate(counts.group_names):
        (line,) = axes.plot(counts.thresholds, counts.fmr[index], label=f"FMR {name}")
        axes.plot(
            counts.thresholds,
            counts.fnmr[index],
            linestyle="--",
            color=line.get_color(),
            label=f"FNMR {name}",
        )
    axes.set_xlabel("cosine similarity threshold")
    axes.set_ylabel("error rate")
    axes.set_title("test: false match / false non-match rate per group")
    axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


class WandbMedia(Callback):
    """Log per-group tables at each validation and test, and test-embedding figures, to the W&B logger."""

    def __init__(self, figures: bool = True):
        self.figures = figures

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log_table(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_table(trainer, pl_module, "test")
        if self.figures:
            self._log_figures(trainer, pl_module)

    def _log_table(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        logger = find_wandb_logger(trainer.loggers)
        report = getattr(pl_module, "reports", {}).get(split)
        if logger is None or report is None or not trainer.is_global_zero:
            return
        try:
            columns, rows = report_table(report)
            logger.log_table(f"{split}/groups", columns=columns, data=rows, step=trainer.global_step)
        except Exception as error:  # noqa: BLE001 - tracking must never kill a run
            warnings.warn(f"W&B {split} group table not logged: {error!r}", stacklevel=2)

    def _log_figures(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = find_wandb_logger(trainer.loggers)
        gathered = getattr(pl_module, "test_embeddings", None)
        if logger is None or gathered is None or not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        embeddings = gathered["embeddings"].float().numpy()
        labels = gathered["labels"].numpy()
        names = np.array(pl_module.hparams["group_names"], dtype=object)
        groups = names[gathered["groups"].numpy()].astype(str)
        seed = int(pl_module.hparams["config"]["seed"])
        makers = {
            "test/embeddings_pca": lambda: pca_scatter(embeddings, groups, "test embeddings (PCA)", seed),
            "test/threshold_curves": lambda: threshold_curves(embeddings, labels, groups, seed),
        }
        for key, make in makers.items():
            try:
                figure = make()
                logger.log_image(key, images=[figure], step=trainer.global_step)
                plt.close(figure)
            except Exception as error:  # noqa: BLE001 - tracking must never kill a run
                warnings.warn(f"W&B figure {key} not logged: {error!r}", stacklevel=2)
