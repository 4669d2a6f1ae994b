"""EmbeddingFairness under two-process gloo DDP equals the single-process report.

Shards are uneven (53 and 47 samples) with uneven last batches, and the short shard is padded with repeats
of samples 0..5 the way DistributedSampler pads, so the gather holds 106 rows for 100 samples.
"""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from fairdml.metrics import EmbeddingFairness, fairness_report

N, DIM, N_CLASSES = 100, 8, 12
NAMES = ["majority", "minority"]
SHARDS = [list(range(0, 53)), list(range(53, 100)) + list(range(6))]  # rank 1 padded with 0..5


def make_data():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, N_CLASSES, (N,), generator=generator)
    x = torch.randn(N_CLASSES, DIM, generator=generator)[labels] + 0.7 * torch.randn(N, DIM, generator=generator)
    groups = (torch.rand(N, generator=generator) < 0.3).long()
    return F.normalize(x, dim=1), labels, groups


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        z, y, groups = make_data()
        metric = EmbeddingFairness(group_names=NAMES, ks=(1, 2, 4, 8), seed=0)
        shard = torch.tensor(SHARDS[rank])
        batch_size = 16 if rank == 0 else 10  # uneven last batches on both ranks
        for start in range(0, len(shard), batch_size):
            batch = shard[start : start + batch_size]
            metric.update(z[batch], y[batch], groups[batch], batch)
        report = metric.compute()
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(report, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore::fairdml.metrics.functional.FairnessMetricWarning")
def test_two_process_gloo_report_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    z, y, groups = make_data()
    expected = json.loads(json.dumps(fairness_report(z, y, groups, group_names=NAMES, seed=0)))
    for rank in range(2):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report["excluded"].pop("duplicate_indices") == 6
        assert report["n"] == N
        for section in ("overall", "groups", "gaps", "excluded", "warnings"):
            assert _close(report[section], expected[section]), f"rank {rank}: {section} differs"


def _close(actual, expected) -> bool:
    """Recursive equality with floats to 1e-9 (same data, same order after de-duplication)."""
    if isinstance(expected, dict):
        return set(actual) == set(expected) and all(_close(actual[k], expected[k]) for k in expected)
    if isinstance(expected, float):
        return abs(actual - expected) <= 1e-9
    return actual == expected
