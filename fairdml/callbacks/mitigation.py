"""Alias of `fairdml.mitigations.base` (the mitigations live in fairdml/mitigations/), so configs saved with
`_target_: fairdml.callbacks.mitigation...` and earlier imports still load."""

from fairdml.mitigations.base import Mitigation, MitigationHost

__all__ = ["Mitigation", "MitigationHost"]
