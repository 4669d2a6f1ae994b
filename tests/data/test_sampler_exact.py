"""The class-balanced batch sampler yields exactly len() batches on every rank in every epoch.

Lightning validates only when the announced last batch is reached, so an epoch one batch short is an epoch
that is silently never validated. Checked over seeds, world sizes (every rank), class-size distributions
(uniform, the default config's, LFW's heavy tail) and both samplers, with mid-epoch resumption.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fairdml.data.samplers import ClassBalancedBatchSampler

EPOCHS = 20


def uniform_sizes() -> list[int]:
    return [10] * 24


def default_like_sizes() -> list[int]:
    """The default config's training split: 30 classes of 40 images, 30 minority classes of 1-8."""
    return [40] * 30 + list(np.random.default_rng(7).integers(1, 9, size=30))


def heavy_tailed_sizes() -> list[int]:
    """LFW's shape: one class of 530 images, 5 of 50-150, 40 of 5-20, 600 of 2-4."""
    rng = np.random.default_rng(11)
    tail = [rng.integers(50, 151, size=5), rng.integers(5, 21, size=40), rng.integers(2, 5, size=600)]
    return [530, *np.concatenate(tail).tolist()]


DISTRIBUTIONS = {
    # name: (class sizes, batch_size, samples_per_class)
    "uniform": (uniform_sizes, 16, 4),
    "default": (default_like_sizes, 64, 4),
    "heavy": (heavy_tailed_sizes, 64, 4),
    "heavy_m2": (heavy_tailed_sizes, 32, 2),
}


def _population(sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (shuffled, so classes are not contiguous) and a per-class group (every third class is 1)."""
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))
    return labels, (labels % 3 == 0).astype(np.int64)


def _samplers(labels, groups, batch_size, m, seed, replicas, group_balanced):
    return [
        ClassBalancedBatchSampler(
            labels, batch_size, m, seed=seed, num_replicas=replicas, rank=rank, groups=groups,
            group_balanced=group_balanced,
        )
        for rank in range(replicas)
    ]  # fmt: skip


def _check_batch(batch, labels, groups, batch_size, m, group_balanced, slots):
    assert len(batch) == batch_size
    counts = Counter(labels[batch].tolist())
    assert len(counts) == batch_size // m and set(counts.values()) == {m}  # distinct classes, m each
    if group_balanced:
        assert Counter(groups[batch].tolist()) == {g: s * m for g, s in slots.items()}


@pytest.mark.parametrize("group_balanced", [False, True], ids=["class", "group"])
@pytest.mark.parametrize("distribution", list(DISTRIBUTIONS))
@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 5])
def test_every_rank_yields_exactly_len_batches_every_epoch(seed, replicas, distribution, group_balanced):
    make_sizes, batch_size, m = DISTRIBUTIONS[distribution]
    labels, groups = _population(make_sizes(), seed)
    samplers = _samplers(labels, groups, batch_size, m, seed, replicas, group_balanced)
    n = batch_size // m
    slots = {0: n - n // 2, 1: n // 2}  # two groups: the first takes the remainder
    assert len({len(s) for s in samplers}) == 1
    length = len(samplers[0])
    chunks = sum(-(-k // m) for k in make_sizes())
    assert length == chunks // n // replicas > 0
    for epoch in range(EPOCHS):
        seen = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == length, f"epoch {epoch}, rank {sampler.rank}: {len(batches)} != {length}"
            assert sampler.epoch == epoch + 1 and sampler.position == 0  # advanced after the last batch
            for batch in batches:
                _check_batch(batch, labels, groups, batch_size, m, group_balanced, slots)
            seen += [np.concatenate(batches)]
        if not group_balanced:  # coverage: only surplus chunks and the excess of over-full classes missed
            total = length * replicas
            allowed = m * (n * replicas - 1) + sum(max(0, k - total * m) for k in make_sizes())
            assert len(labels) - len(np.unique(np.concatenate(seen))) <= allowed


@pytest.mark.parametrize("group_balanced", [False, True], ids=["class", "group"])
@pytest.mark.parametrize("distribution", ["default", "heavy"])
@pytest.mark.parametrize("replicas", [1, 3])
def test_resuming_mid_epoch_gives_the_rest_of_the_same_epoch(replicas, distribution, group_balanced):
    make_sizes, batch_size, m = DISTRIBUTIONS[distribution]
    labels, groups = _population(make_sizes(), 3)
    for rank, sampler in enumerate(_samplers(labels, groups, batch_size, m, 3, replicas, group_balanced)):
        full = _samplers(labels, groups, batch_size, m, 3, replicas, group_balanced)[rank]
        for epoch, stop in ((0, 1), (4, len(sampler) // 2), (7, len(sampler) - 1)):
            full.set_epoch(epoch)
            expected = list(full)
            sampler.set_epoch(epoch)
            iterator = iter(sampler)
            head = [next(iterator) for _ in range(stop)]
            state = sampler.state_dict()
            assert state == {"epoch": epoch, "position": stop, "seed": 3, "num_replicas": replicas}
            restored = _samplers(labels, groups, batch_size, m, 3, replicas, group_balanced)[rank]
            restored.load_state_dict(state)
            rest = list(restored)
            assert head + rest == expected and len(rest) == len(sampler) - stop
            assert restored.state_dict()["epoch"] == epoch + 1
            assert list(iterator) == rest  # the interrupted iterator would have continued the same way


def test_same_seed_and_epoch_give_the_same_batches_and_ranks_partition_the_epoch():
    labels, groups = _population(heavy_tailed_sizes(), 0)
    one = _samplers(labels, groups, 64, 4, 9, 1, False)[0]
    again = _samplers(labels, groups, 64, 4, 9, 1, False)[0]
    one.set_epoch(3)
    again.set_epoch(3)
    epoch = list(one)
    assert epoch == list(again)
    other = _samplers(labels, groups, 64, 4, 9, 1, False)[0]
    other.set_epoch(4)
    assert list(other) != epoch
    ranks = _samplers(labels, groups, 64, 4, 9, 2, False)
    for sampler in ranks:
        sampler.set_epoch(3)
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1]) == len(epoch) // 2  # dealt in turn from the same epoch


def test_every_sample_visited_when_the_count_allows():
    # 37 classes x 8 samples, m = 4: 74 chunks; n = 2 -> 37 batches (odd), so with 1 replica none is left out.
    labels = np.repeat(np.arange(37), 8)
    sampler = ClassBalancedBatchSampler(labels, 8, 4, seed=2)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == 37 and sorted(np.concatenate(batches).tolist()) == list(range(len(labels)))


def test_a_class_larger_than_the_epoch_gives_one_chunk_per_batch_and_others_repeat():
    # class 0: 400 samples (100 chunks); 10 classes of 4 (1 chunk each): 110 chunks, n = 5 -> 22 batches.
    labels = np.repeat(np.arange(11), [400] + [4] * 10)
    sampler = ClassBalancedBatchSampler(labels, 20, 4, seed=0)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == 22
        assert all(sorted(Counter(labels[b].tolist()).values()) == [4] * 5 for b in batches)
        per_class = Counter(labels[np.concatenate(batches)].tolist())
        assert per_class[0] == 22 * 4  # once in every batch, never twice
        assert set(np.flatnonzero(labels > 0)) <= set(np.concatenate(batches))  # small classes all seen


def test_group_with_fewer_classes_than_slots_repeats_them_evenly():
    # group 1 has 2 classes for 3 slots per batch: each batch has one of them twice, the other once.
    labels = np.repeat(np.arange(12), 6)
    groups = (labels >= 10).astype(np.int64)
    sampler = ClassBalancedBatchSampler(labels, 18, 3, groups=groups, group_balanced=True)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 4
        for batch in batches:
            counts = Counter(labels[batch].tolist())
            assert sorted(counts[c] for c in (10, 11)) == [3, 6]
            assert sorted(n for c, n in counts.items() if c < 10) == [3, 3, 3]


def test_random_small_configurations():
    rng = np.random.default_rng(123)
    for case in range(150):
        n_classes = int(rng.integers(2, 30))
        sizes = rng.integers(1, 40, size=n_classes) if case % 2 else rng.pareto(1.0, n_classes).astype(int) + 1
        labels = np.repeat(np.arange(n_classes), sizes)
        m, n, replicas = int(rng.integers(1, 6)), int(rng.integers(1, n_classes + 1)), int(rng.integers(1, 4))
        group_balanced = bool(rng.integers(0, 2))
        groups = rng.integers(0, 3, size=n_classes)[labels]
        samplers = _samplers(labels, groups, n * m, m, case, replicas, group_balanced)
        for epoch in range(3):
            for sampler in samplers:
                sampler.set_epoch(epoch)
                batches = list(sampler)
                assert len(batches) == len(sampler), (case, epoch, sampler.rank)
                for batch in batches:
                    counts = Counter(labels[batch].tolist())
                    assert len(batch) == n * m and all(k % m == 0 for k in counts.values())
                    if not group_balanced:
                        assert set(counts.values()) == {m}


def test_state_from_another_seed_or_world_size_is_rejected():
    labels = np.repeat(np.arange(20), 8)
    sampler = ClassBalancedBatchSampler(labels, 16, 4, seed=0, num_replicas=2, rank=1)
    with pytest.raises(ValueError, match="saved with seed=1, but this sampler has seed=0"):
        sampler.load_state_dict({"epoch": 1, "position": 2, "seed": 1, "num_replicas": 2})
    with pytest.raises(ValueError, match="saved with num_replicas=4, but this sampler has num_replicas=2"):
        sampler.load_state_dict({"epoch": 1, "position": 2, "seed": 0, "num_replicas": 4})
    sampler.load_state_dict({"epoch": 1, "position": 2, "seed": 0})  # saved before num_replicas was kept
    assert sampler.state_dict() == {"epoch": 1, "position": 2, "seed": 0, "num_replicas": 2}


@pytest.mark.parametrize(
    ("batch_size", "m", "message"),
    [
        (64, 0, r"data.samples_per_class must be >= 1, got 0"),
        (64, -2, r"data.samples_per_class must be >= 1, got -2"),
        (0, 4, r"data.batch_size must be >= 1, got 0"),
        (30, 4, r"data.batch_size \(30\) must be a positive multiple of data.samples_per_class \(4\)"),
    ],
)
def test_bad_batch_shape_messages(batch_size, m, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatchSampler(np.repeat(np.arange(40), 4), batch_size, m)


def test_default_config_repro_yields_len_every_epoch():
    from fairdml.config import compose_config
    from fairdml.data.datamodule import DMLDataModule

    datamodule = DMLDataModule(compose_config([]).data, seed=0)
    datamodule.setup()
    sampler = datamodule.train_sampler()
    counts = []
    for epoch in range(16):
        sampler.set_epoch(epoch)
        counts.append(sum(1 for _ in sampler))
    assert len(sampler) == 21 and counts == [21] * 16
