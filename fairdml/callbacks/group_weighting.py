"""Alias of `fairdml.mitigations.group_weighting` (the mitigations live in fairdml/mitigations/), so configs saved with
`_target_: fairdml.callbacks.group_weighting...` and earlier imports still load."""

from fairdml.mitigations.group_weighting import ReweightedLoss, WorstGroupLoss

__all__ = ["ReweightedLoss", "WorstGroupLoss"]
