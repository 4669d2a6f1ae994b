"""Attribute leakage: how well a fresh linear probe recovers the sensitive attribute from the embedding.

Measured with a probe trained after training, never with PARADE's adversary: adversarial removal can leave
information that a post-hoc probe still finds (Elazar & Goldberg 2018).

Held out by class. When the attribute is constant within a class (a person's skin tone, a digit class's
drawing style), a probe trained and scored on samples of the same classes only has to recognise the
class to name its attribute: any embedding that separates classes then "leaks" the attribute perfectly,
even one that encodes nothing of it. Probing on classes the probe never saw measures what the question
asks: is the attribute a direction of the embedding that transfers to new people?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from fairdml.metrics.functional._common import warn
from fairdml.metrics.functional.stages import LEAKAGE, staged


@dataclass
class LeakageResult:
    """Balanced accuracy of the probe on held-out samples, and its chance level (1 / number of groups)."""

    balanced_accuracy: float | None
    chance_level: float | None
    n_train: int
    n_test: int
    split: str = "sample"  # "class": probe scored on classes it was not trained on; "sample": on other samples


def held_out_split(
    groups: np.ndarray, labels: np.ndarray | None = None, *, test_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train indices, test indices, "class" | "sample"), every group on both sides.

    With `labels`, whole classes are held out (scikit-learn's StratifiedGroupKFold, so both sides keep the
    groups' proportions; `test_fraction` is then 1/2); this needs two classes or more in every group.
    Without them, or when a group has a single class, samples are split, stratified by group.
    """
    index = np.arange(len(groups))
    if labels is not None:
        classes_per_group = [len(np.unique(labels[groups == g])) for g in np.unique(groups)]
        if min(classes_per_group) >= 2:
            folds = StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=seed)
            train, test = next(folds.split(index, groups, labels))
            if len(np.unique(groups[train])) == len(np.unique(groups[test])) == len(classes_per_group):
                return train, test, "class"
        warn("held-out split: a group has too few classes to hold whole classes out; splitting samples instead")
    n_groups = len(np.unique(groups))
    n_test = min(max(n_groups, round(test_fraction * len(groups))), len(groups) - n_groups)
    train, test = train_test_split(index, test_size=n_test, stratify=groups, random_state=seed)
    return train, test, "sample"


@staged(LEAKAGE)
def attribute_leakage(
    embeddings: Tensor,
    groups: Tensor,
    labels: Tensor | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.5,
    max_iter: int = 1000,
) -> LeakageResult:
    """Balanced accuracy of a standardised logistic-regression probe predicting the group from Z.

    Split (`held_out_split`): with class `labels`, the probe is scored on classes it was not trained on
    (see the module docstring for why); without, on held-out samples stratified by group. Balanced
    accuracy (mean per-group recall) so an unbalanced attribute does not inflate it: chance = 1 / number of
    groups, which is what a fully de-correlated embedding scores. Groups with a single sample cannot be
    split and are left out (warning); fewer than two groups left gives None.
    """
    x = embeddings.detach().cpu().float().numpy()
    a = groups.detach().cpu().numpy()
    y = None if labels is None else labels.detach().cpu().numpy()
    codes, counts = np.unique(a, return_counts=True)
    singletons = codes[counts < 2]
    if singletons.size:
        warn(f"attribute_leakage: {singletons.size} group(s) with a single sample left out of the probe")
        keep = ~np.isin(a, singletons)
        x, a = x[keep], a[keep]
        y = None if y is None else y[keep]
    n_groups = len(np.unique(a))
    if n_groups < 2:
        warn(f"attribute_leakage is undefined with {n_groups} group(s) of two or more samples; None")
        return LeakageResult(None, None, 0, 0)
    train, test, split = held_out_split(a, y, test_fraction=test_fraction, seed=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(x[train], a[train])
    score = balanced_accuracy_score(a[test], probe.predict(x[test]))
    return LeakageResult(float(score), 1.0 / n_groups, len(train), len(test), split)
