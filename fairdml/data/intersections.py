"""The attribute whose groups a run compares: one sensitive attribute, or the crossing of several.

`data.sensitive_attribute=[Male,Pale_Skin]` adds a derived attribute "Male|Pale_Skin" to the dataset, whose
values are the crossed groups ("Male=0|Pale_Skin=0", ...). Being an ordinary attribute column, it reaches every
consumer of groups unchanged: the split's stratification, the imbalance, the group-balanced sampler, PARADE's
attribute, the metrics, W&B and the card. The metrics add each attribute's marginal groups from the names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairdml.data.base import DMLDataset
from fairdml.utils.group_names import check_attribute_names, crossed_attribute_name, crossed_group_name


def attribute_list(sensitive_attribute: str | Sequence[str]) -> list[str]:
    """`data.sensitive_attribute` as a list of names: a string is one attribute, a list crosses its entries."""
    if not isinstance(sensitive_attribute, (str, Sequence)):
        raise TypeError(f"data.sensitive_attribute must be a name or a list of names, got {sensitive_attribute!r}")
    names = [sensitive_attribute] if isinstance(sensitive_attribute, str) else [str(a) for a in sensitive_attribute]
    if not names:
        raise ValueError("data.sensitive_attribute is empty; name an attribute, or a list of them to cross")
    if len(set(names)) != len(names):
        raise ValueError(f"data.sensitive_attribute lists an attribute twice: {names}")
    return names


def group_attribute_name(sensitive_attribute: str | Sequence[str]) -> str:
    """The name of the attribute a run's groups come from ("Male", or "Male|Pale_Skin" when crossed)."""
    names = attribute_list(sensitive_attribute)
    return names[0] if len(names) == 1 else crossed_attribute_name(names)


def select_group_attribute(dataset: DMLDataset, sensitive_attribute: str | Sequence[str]) -> str:
    """The group attribute's name, after adding the crossed column to `dataset` when several are crossed.

    Only the combinations present in the dataset become groups (in the order of their codes); the dataset is
    extended in place, once (a second call finds the column).
    """
    names = attribute_list(sensitive_attribute)
    for name in names:
        dataset.attribute_column(name)  # a KeyError listing the dataset's attributes
    if len(names) == 1:
        return names[0]
    check_attribute_names(names)
    crossed = crossed_attribute_name(names)
    if crossed in dataset.attribute_names:
        return crossed
    columns = np.stack([dataset.attribute_column(name) for name in names], axis=1)
    combinations, codes = np.unique(columns, axis=0, return_inverse=True)
    value_names = [dataset.attribute_values[dataset.attribute_names.index(name)] for name in names]
    group_names = tuple(
        crossed_group_name(names, [values[c] for values, c in zip(value_names, combination)])
        for combination in combinations
    )
    if len(set(group_names)) != len(group_names):
        raise ValueError(f"crossing {names} gives duplicate group names {group_names}; rename the values")
    dataset.attributes = np.concatenate([dataset.attributes, codes.reshape(-1, 1).astype(np.int64)], axis=1)
    dataset.attribute_names = (*dataset.attribute_names, crossed)
    dataset.attribute_values = (*dataset.attribute_values, group_names)
    return crossed
