"""Lightning callbacks: the run's own bookkeeping and `FairnessMonitor`; the mitigations (in `fairdml.mitigations`)
are re-exported here for code written before they moved."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.mitigations.base": ("Mitigation", "MitigationHost"),
    "fairdml.callbacks.fairness_monitor": ("FairnessMonitor",),
    "fairdml.mitigations.parade": ("Parade",),
    "fairdml.mitigations.group_balanced": ("GroupBalancedSampling",),
    "fairdml.mitigations.group_weighting": ("ReweightedLoss", "WorstGroupLoss"),
    "fairdml.callbacks.instantiate": ("instantiate_callbacks",),
    "fairdml.callbacks.run_state": ("RunState",),
    "fairdml.callbacks.validation_guard": ("ValidationGuard",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
