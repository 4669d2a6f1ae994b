"""Lines third-party libraries print in every run that say nothing about it, filtered by their exact text.

Only these (each named below, so a new one is added on purpose); every other warning, a deprecation that could
break fairdml included, still shows.
- Lightning's advert for its hosted logger (`💡 Tip: ... litlogger`), at every `Trainer` construction.
- torch's deprecation of `isinstance(treespec, LeafSpec)`, raised from Lightning's own `_pytree.py`, not from
  fairdml: nothing a user of fairdml can act on.
"""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_TIP = "💡 Tip: For seamless cloud logging"
_PYTREE_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


class _DropLightningTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_LIGHTNING_TIP)


def silence_known_noise() -> None:
    """Install the filters (idempotent)."""
    warnings.filterwarnings("ignore", message=_PYTREE_DEPRECATION)
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTip) for f in logger.filters):
        logger.addFilter(_DropLightningTip())
