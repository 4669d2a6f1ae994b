"""NMI of a seeded k-means clustering against the class labels (scikit-learn or faiss k-means, CPU).

Two backends because they trade differently: scikit-learn's k-means++ with Lloyd iterations to convergence
(the default: careful, slow for thousands of clusters), and faiss's k-means (random init, 20 iterations,
the clustering behind PML's AccuracyCalculator NMI; much faster at large N). Both are seeded. "auto" (the
audit's default) takes scikit-learn for small problems, so their figures are unchanged, and faiss from
N x clusters >= AUTO_FAISS_MIN_WORK when faiss is installed: there scikit-learn alone takes many minutes
(100k samples, 2,000 classes: over 13 min for the whole set on the shared 2 cores, vs ~1 min with faiss). A
torch k-means on the GPU was not written: no GPU was available to show it would be faster (see benchmarks.md).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from torch import Tensor

from fairdml.metrics.functional._common import warn

KMEANS_BACKENDS = ("sklearn", "faiss", "auto")
# One Lloyd iteration's distance count (N x clusters) from which "auto" takes faiss: 10k samples of 1,000
# classes. Below it scikit-learn's k-means++ to convergence costs seconds (10k x 200: ~3 s CPU).
AUTO_FAISS_MIN_WORK = 10_000_000


def check_kmeans_backend(backend: str) -> None:
    """Fail early (before the expensive retrieval) on an unknown k-means backend."""
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"kmeans_backend must be one of {KMEANS_BACKENDS}, got {backend!r}")


def resolve_kmeans_backend(backend: str, n_samples: int, n_clusters: int) -> str:
    """The backend to run, "sklearn" or "faiss"; "auto" picks by problem size (see the module docstring)."""
    check_kmeans_backend(backend)
    if backend != "auto":
        return backend
    from fairdml.metrics.functional.knn import faiss_available

    return "faiss" if n_samples * n_clusters >= AUTO_FAISS_MIN_WORK and faiss_available() else "sklearn"


FAISS_ITERATIONS = 20  # as PML's AccuracyCalculator, so backend="faiss" reproduces its NMI


def kmeans_clusters(
    x: np.ndarray, n_clusters: int, *, seed: int = 0, n_init: int = 1, backend: str = "sklearn"
) -> np.ndarray:
    """(N,) cluster ids of the (N, D) float32 rows `x` from a seeded k-means with `n_init` restarts."""
    backend = resolve_kmeans_backend(backend, x.shape[0], n_clusters)
    if backend == "sklearn":
        return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit_predict(x)
    try:
        import faiss  # an optional dependency (dev extra): only this backend needs it
    except ImportError as error:
        raise ImportError("kmeans backend 'faiss' needs faiss: pip install faiss-cpu") from error

    x = np.ascontiguousarray(x, dtype=np.float32)
    # min_points_per_centroid only silences faiss's "provide more points" notice; results are unchanged.
    kmeans = faiss.Kmeans(
        x.shape[1], n_clusters, niter=FAISS_ITERATIONS, nredo=n_init, seed=seed, min_points_per_centroid=1
    )
    kmeans.train(x)
    return kmeans.index.search(x, 1)[1].reshape(-1)


def kmeans_nmi(
    embeddings: Tensor, labels: Tensor, *, seed: int = 0, n_init: int = 1, backend: str = "sklearn"
) -> float | None:
    """NMI(y, kmeans(Z)) with as many clusters as classes in the evaluated set (not the training set).

    Seeded (`seed`, `n_init` restarts), so the figure is reproducible; NMI uses the arithmetic
    normalisation (scikit-learn's and PML's default). Undefined with fewer than two classes: None with a
    warning.
    """
    check_kmeans_backend(backend)
    y = labels.detach().cpu().numpy()
    n_classes = len(np.unique(y))
    if n_classes < 2:
        warn(f"nmi is undefined for a set with {n_classes} class(es); reported as None")
        return None
    x = embeddings.detach().cpu().float().numpy()
    clusters = kmeans_clusters(x, n_classes, seed=seed, n_init=n_init, backend=backend)
    return float(normalized_mutual_info_score(y, clusters))
