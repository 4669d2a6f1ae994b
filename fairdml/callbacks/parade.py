"""Alias of `fairdml.mitigations.parade` (the mitigations live in fairdml/mitigations/), so configs saved with
`_target_: fairdml.callbacks.parade...` and earlier imports still load."""

from fairdml.mitigations.parade import Parade

__all__ = ["Parade"]
