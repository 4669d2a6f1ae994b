"""NMI of a seeded k-means clustering against the class labels (scikit-learn KMeans and NMI)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from torch import Tensor

from fairdml.metrics.functional._common import warn


def kmeans_nmi(embeddings: Tensor, labels: Tensor, *, seed: int = 0, n_init: int = 1) -> float | None:
    """NMI(y, kmeans(Z)) with as many clusters as classes in the evaluated set (not the training set).

    k-means++ with `n_init` restarts and `random_state=seed`, so the figure is reproducible; NMI uses the
    arithmetic normalisation (scikit-learn's and PML's default). Runs on the CPU. Undefined with fewer than
    two classes: returns None with a warning.
    """
    y = labels.detach().cpu().numpy()
    n_classes = len(np.unique(y))
    if n_classes < 2:
        warn(f"nmi is undefined for a set with {n_classes} class(es); reported as None")
        return None
    x = embeddings.detach().cpu().float().numpy()
    clusters = KMeans(n_clusters=n_classes, n_init=n_init, random_state=seed).fit_predict(x)
    return float(normalized_mutual_info_score(y, clusters))
