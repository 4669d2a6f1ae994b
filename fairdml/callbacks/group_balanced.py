"""Alias of `fairdml.mitigations.group_balanced` (the mitigations live in fairdml/mitigations/), so configs saved with
`_target_: fairdml.callbacks.group_balanced...` and earlier imports still load."""

from fairdml.mitigations.group_balanced import GroupBalancedSampling

__all__ = ["GroupBalancedSampling"]
