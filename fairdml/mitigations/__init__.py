"""Mitigations: Lightning callbacks that change how any `MitigationHost` module trains (PARADE, group-balanced
sampling, reweighted and worst-group losses, CIFP's instance FPR penalty, FSCL's fair contrastive loss), and the
protocol they check at `setup`."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.mitigations.base": ("Mitigation", "MitigationHost"),
    "fairdml.mitigations.parade": ("Parade",),
    "fairdml.mitigations.group_balanced": ("GroupBalancedSampling",),
    "fairdml.mitigations.group_weighting": ("ReweightedLoss", "WorstGroupLoss"),
    "fairdml.mitigations.fpr_penalty": ("FPRPenalty",),
    "fairdml.mitigations.fair_contrastive": ("FairContrastive",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
