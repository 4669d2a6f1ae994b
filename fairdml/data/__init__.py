"""Datasets with sensitive attributes, class-disjoint splits, samplers and the LightningDataModule."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.data.base": ("DMLDataset", "DatasetView"),
    "fairdml.data.registry": ("register_dataset", "create_dataset"),
    "fairdml.data.datamodule": ("DMLDataModule",),
    "fairdml.data.samplers": ("ClassBalancedBatchSampler",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
