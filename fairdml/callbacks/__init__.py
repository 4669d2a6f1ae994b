"""Lightning callbacks that change training: the mitigations and the run's own bookkeeping."""

from fairdml._lazy import lazy_exports

_MODULES = {
    "fairdml.callbacks.mitigation": ("Mitigation", "MitigationHost"),
    "fairdml.callbacks.fairness_monitor": ("FairnessMonitor",),
    "fairdml.callbacks.parade": ("Parade",),
    "fairdml.callbacks.group_balanced": ("GroupBalancedSampling",),
    "fairdml.callbacks.group_weighting": ("ReweightedLoss", "WorstGroupLoss"),
    "fairdml.callbacks.instantiate": ("instantiate_callbacks",),
    "fairdml.callbacks.run_state": ("RunState",),
    "fairdml.callbacks.validation_guard": ("ValidationGuard",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
