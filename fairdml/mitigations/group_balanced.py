"""Group-balanced sampling as a mitigation: every training batch takes as many classes from each group.

The sampling itself is `ClassBalancedBatchSampler(group_balanced=True)` (fairdml.data.samplers documents the
placement rules); this callback only switches it on, so it plugs in like every other mitigation.
"""

from __future__ import annotations

import lightning as L

from fairdml.mitigations.base import Mitigation


class GroupBalancedSampling(Mitigation):
    """Over-sample the minority's classes so each batch holds the same number of classes per group.

    Needs a data module with a `group_balanced` attribute read when it builds its training loader
    (`DMLDataModule` has one); the epoch keeps the length it has without balancing.

    Raises:
        TypeError: in `setup`, when the trainer's data module cannot balance groups.

    Args:
        none: the data module's groups set the balance.

    Example:
        >>> import lightning as L
        >>> balanced = GroupBalancedSampling()  # no settings: it switches the data module's sampler over
        >>> trainer = L.Trainer(max_epochs=1, callbacks=[balanced], logger=False, enable_progress_bar=False)
        >>> balanced.describe()["title"]
        'Group-balanced sampling'
    """

    name = "group_balanced"
    title = "Group-balanced sampling"
    summary = (
        "Every training batch takes the same number of classes from each group of the sensitive attribute, "
        "so the minority's classes are over-sampled; the number of batches per epoch is unchanged."
    )

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "group_balanced"):
            raise TypeError(
                f"GroupBalancedSampling needs a data module with a `group_balanced` switch (fairdml's "
                f"DMLDataModule); got {type(datamodule).__name__}"
            )
        datamodule.group_balanced = True
