"""fairdml: train and audit fair deep metric learning models (finDML metrics, PARADE).

The public API, imported on first use (so `import fairdml` is fast)::

    import fairdml
    cfg = fairdml.compose_config(["experiment=parade", "trainer.max_epochs=3"])
    run_dir = fairdml.run_training(cfg)

Training: `compose_config`, `run_training`, `run_local_sweep`, `DMLModule`, `DMLDataModule`, `EmbeddingModel`,
`register_dataset`. Mitigations (Lightning callbacks): `Parade`, `GroupBalancedSampling`, `ReweightedLoss`,
`WorstGroupLoss`, `FPRPenalty`, `FairContrastive`, `Mitigation`, `MitigationHost`; `FairnessMonitor` (finDML
figures of any module). Metrics: `fairness_report`, `EmbeddingFairness`, `ReportSettings`, `MetricSpec`,
`register_metric`. Reports: `run_audit`, `write_model_card`, `load_run`.
"""

from fairdml.utils._lazy import lazy_exports

__version__ = "0.1.0"

_MODULES = {
    "fairdml.config": ("compose_config",),
    "fairdml.train": ("run_training",),
    "fairdml.sweep": ("run_local_sweep",),
    "fairdml.models.module": ("DMLModule",),
    "fairdml.data.datamodule": ("DMLDataModule",),
    "fairdml.models.embedding": ("EmbeddingModel",),
    "fairdml.data.registry": ("register_dataset",),
    "fairdml.mitigations.parade": ("Parade",),
    "fairdml.mitigations.group_balanced": ("GroupBalancedSampling",),
    "fairdml.mitigations.group_weighting": ("ReweightedLoss", "WorstGroupLoss"),
    "fairdml.mitigations.fpr_penalty": ("FPRPenalty",),
    "fairdml.mitigations.fair_contrastive": ("FairContrastive",),
    "fairdml.mitigations.base": ("Mitigation", "MitigationHost"),
    "fairdml.callbacks.fairness_monitor": ("FairnessMonitor",),
    "fairdml.metrics.functional.report": ("fairness_report",),
    "fairdml.metrics.fairness": ("EmbeddingFairness",),
    "fairdml.metrics.settings": ("ReportSettings",),
    "fairdml.metrics.spec": ("MetricSpec", "register_metric"),
    "fairdml.reports.audit": ("run_audit",),
    "fairdml.reports.card.write": ("write_model_card",),
    "fairdml.reports.runs": ("load_run",),
}
_names, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
__all__ = ["__version__", *_names]
