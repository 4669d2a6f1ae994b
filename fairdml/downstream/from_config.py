"""The downstream protocol as a training config sets it (`evaluation.downstream*`, `data.minority_share`, `seed`),
and the training hook that runs it on the test embeddings still in memory (`evaluation.downstream=true`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from fairdml.downstream.protocol import DownstreamData, downstream_evaluation


def check_downstream_label(cfg: DictConfig, attribute_names: Sequence[str]) -> None:
    """Fail before training, not after it, when the configured downstream label is not in the dataset."""
    label = cfg.evaluation.get("downstream_label")
    if cfg.evaluation.get("downstream") and label is not None and label not in attribute_names:
        raise ValueError(
            f"evaluation.downstream_label={label!r} is not an attribute of the dataset, which has "
            f"{list(attribute_names)}; add it to data.options.sensitive_attributes"
        )


def downstream_for_datamodule(cfg: DictConfig, datamodule, gathered: dict[str, torch.Tensor]) -> dict:
    """The training hook: the test embeddings still in memory (ordered by test-split index)."""
    view = datamodule.views["test"]
    data = DownstreamData(
        embeddings=gathered["embeddings"].numpy(),
        classes=gathered["labels"].numpy(),
        groups=gathered["groups"].numpy(),
        group_names=list(datamodule.group_names),
        group_attribute=datamodule.group_attribute,
    )
    attach_target(data, view, cfg.evaluation.get("downstream_label"))
    return evaluate_with_config(cfg, data, datamodule.group_names[datamodule.minority_code])


def attach_target(data: DownstreamData, view, label: str | None) -> None:
    """`label`'s column of the test split `view` as the downstream target (None: the class stays the target);
    the view must hold the embeddings' samples in their order."""
    if label is None:
        return
    if len(view) != len(data.classes) or not np.array_equal(view.labels, data.classes):
        raise ValueError(
            f"the {len(data.classes)} test embeddings do not match the {len(view)} samples of the test split "
            "rebuilt from config.yaml (different data or seed?); re-run training or omit downstream_label"
        )
    data.target = view.attribute_column(label)
    data.target_name = label
    data.target_values = list(view.attribute_values[view.attribute_names.index(label)])


def evaluate_with_config(cfg: DictConfig, data: DownstreamData, minority_group: str | None) -> dict:
    """`downstream_evaluation` with the run's minority share, test share and seed."""
    return downstream_evaluation(
        data,
        minority_group=minority_group,
        minority_share=cfg.data.minority_share,
        test_share=cfg.evaluation.get("downstream_test_share", 0.5),
        seed=cfg.seed,
    )
