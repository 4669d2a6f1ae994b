"""Attribute leakage: how well a fresh linear probe recovers the sensitive attribute from the embedding.

Measured with a probe trained after training, never with PARADE's adversary: adversarial removal can leave
information that a post-hoc probe still finds (Elazar & Goldberg 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from fairdml.metrics.functional._common import warn


@dataclass
class LeakageResult:
    """Balanced accuracy of the probe on held-out samples, and its chance level (1 / number of groups)."""

    balanced_accuracy: float | None
    chance_level: float | None
    n_train: int
    n_test: int


def attribute_leakage(
    embeddings: Tensor, groups: Tensor, *, seed: int = 0, test_fraction: float = 0.5, max_iter: int = 1000
) -> LeakageResult:
    """Balanced accuracy of a standardised logistic-regression probe predicting the group from Z.

    Split: stratified by group, `test_fraction` held out, `random_state=seed`. Balanced accuracy (mean
    per-group recall) so an unbalanced attribute does not inflate it: chance = 1 / number of groups, which
    is what a fully de-correlated embedding scores. Groups with a single sample cannot be split and are
    left out (warning); fewer than two groups left gives None.
    """
    x = embeddings.detach().cpu().float().numpy()
    a = groups.detach().cpu().numpy()
    codes, counts = np.unique(a, return_counts=True)
    singletons = codes[counts < 2]
    if singletons.size:
        warn(f"attribute_leakage: {singletons.size} group(s) with a single sample left out of the probe")
        keep = ~np.isin(a, singletons)
        x, a = x[keep], a[keep]
    n_groups = len(np.unique(a))
    if n_groups < 2:
        warn(f"attribute_leakage is undefined with {n_groups} group(s) of two or more samples; None")
        return LeakageResult(None, None, 0, 0)
    n_test = max(n_groups, round(test_fraction * len(a)))
    n_test = min(n_test, len(a) - n_groups)
    x_train, x_test, a_train, a_test = train_test_split(x, a, test_size=n_test, stratify=a, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(x_train, a_train)
    score = balanced_accuracy_score(a_test, probe.predict(x_test))
    return LeakageResult(float(score), 1.0 / n_groups, len(a_train), len(a_test))
