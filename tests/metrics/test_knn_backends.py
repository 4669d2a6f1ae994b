"""The faiss kNN backend against the torch one: the same neighbours (up to the order of tied ones), the same
retrieval figures, the query excluded by index, and chunks that respect the memory budget."""

from __future__ import annotations

import pytest
import torch

from fairdml.metrics.functional.knn import (
    faiss_chunk_rows,
    iter_knn_chunks,
    knn,
    knn_chunk_rows,
    use_faiss,
)
from fairdml.metrics.functional.retrieval import retrieval_per_query

pytest.importorskip("faiss")
pytestmark = pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")


def clustered(n: int, dim: int, n_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors around class centres (as benchmarks/bench_metrics.py), float32."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    centres = torch.randn(n_classes, dim, generator=generator)
    x = centres[labels] + 1.5 * torch.randn(n, dim, generator=generator)
    return torch.nn.functional.normalize(x, dim=1), labels


@pytest.mark.parametrize("n, dim, n_classes", [(2, 4, 1), (60, 8, 6), (700, 16, 40), (4000, 32, 120)])
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "inner_product"])
def test_faiss_and_torch_give_the_same_retrieval_figures(n, dim, n_classes, distance):
    x, y = clustered(n, dim, n_classes)
    ks = (1, 2, 4, 8)
    by_torch = retrieval_per_query(x, y, ks, distance=distance, knn_backend="torch")
    by_faiss = retrieval_per_query(x, y, ks, distance=distance, knn_backend="faiss")
    for k in by_torch.recall:
        torch.testing.assert_close(by_faiss.recall[k], by_torch.recall[k], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(by_faiss.map_at_r, by_torch.map_at_r, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(by_faiss.has_positive, by_torch.has_positive)


@pytest.mark.parametrize("refine", [True, False])
def test_neighbours_differ_only_among_ties(refine):
    """On a coarse grid many neighbours are exactly equidistant, across classes: either order is right, so the
    backends must return the same distances rank by rank and differ in indices only where distances tie."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (400, 4), generator=generator).float()  # 81 points: ties everywhere
    k = 12
    torch_values, torch_neighbours = knn(x, k, backend="torch", refine_distances=refine)
    faiss_values, faiss_neighbours = knn(x, k, backend="faiss", refine_distances=refine)
    torch.testing.assert_close(faiss_values, torch_values, atol=1e-5, rtol=0)
    differ = faiss_neighbours != torch_neighbours
    assert differ.any()  # the grid does tie
    true_distance = (x.unsqueeze(1) - x[faiss_neighbours]).norm(dim=2)
    reference = (x.unsqueeze(1) - x[torch_neighbours]).norm(dim=2)
    torch.testing.assert_close(true_distance[differ], reference[differ], atol=1e-5, rtol=0)


def test_tied_same_class_duplicates_give_equal_figures():
    """Exact duplicates within a class tie at distance 0: the order among them cannot change a figure."""
    x, y = clustered(300, 8, 30)
    x, y = x.repeat(3, 1), y.repeat(3)
    by_torch = retrieval_per_query(x, y, (1, 4), knn_backend="torch")
    by_faiss = retrieval_per_query(x, y, (1, 4), knn_backend="faiss")
    torch.testing.assert_close(by_faiss.map_at_r, by_torch.map_at_r, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(by_faiss.recall[4], by_torch.recall[4])


def test_the_query_is_excluded_even_among_more_than_k_duplicates():
    x = torch.ones(10, 3)
    for chunk, _, neighbours in iter_knn_chunks(x, 3, backend="faiss"):
        assert not (neighbours == chunk.unsqueeze(1)).any()
        assert (neighbours.sort(dim=1).values[:, 1:] != neighbours.sort(dim=1).values[:, :-1]).all()


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_chunks_respect_the_memory_budget(backend):
    n, dim, k, budget = 3000, 16, 20, 2**20
    x, _ = clustered(n, dim, 50)
    rows = {
        "torch": knn_chunk_rows(n, k, dim, torch.float32, budget),
        "faiss": faiss_chunk_rows(k, dim, torch.float32, budget),
    }[backend]
    sizes = [chunk.shape[0] for chunk, _, _ in iter_knn_chunks(x, k, backend=backend, memory_budget_bytes=budget)]
    assert sum(sizes) == n and max(sizes) == rows < n
    # the torch path holds a (rows, N) block, so its rows shrink as the gallery grows; faiss's take no N
    assert knn_chunk_rows(10 * n, k, dim, torch.float32, budget) < knn_chunk_rows(n, k, dim, torch.float32, budget)
    per_row = 2 * n * 4 + k * (4 + 8 + 32) + k * dim * 4 if backend == "torch" else (k + 1) * 24 + k * (44 + dim * 4)
    assert rows * per_row <= budget


def test_backend_choice():
    assert use_faiss(torch.zeros(3, 2), "auto")
    assert not use_faiss(torch.zeros(3, 2, dtype=torch.float64), "auto")  # float64 keeps its precision on torch
    assert not use_faiss(torch.zeros(3, 2), "torch")
    with pytest.raises(ValueError, match="float32 CPU"):
        use_faiss(torch.zeros(3, 2, dtype=torch.float64), "faiss")
    with pytest.raises(ValueError, match="knn backend must be one of"):
        use_faiss(torch.zeros(3, 2), "annoy")
