"""Class-balanced batch sampling that is correct under DDP and resumable.

Written here rather than taken from pytorch-metric-learning because `MPerClassSampler` is neither
rank-aware (PML #546) nor full-coverage (PML #684), and Lightning would otherwise replace it with a
shuffling distributed sampler (Lightning #21447). This sampler shards by rank itself, is seeded by
(seed, epoch), visits every sample once per epoch, and can save and restore its position. Use it with
`Trainer(use_distributed_sampler=False)`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `batch_size // samples_per_class` classes × `samples_per_class` samples each.

    Each epoch, every class's samples are shuffled and cut into chunks of m (a short last chunk is
    filled by re-drawing from the same class; classes with fewer than m samples are drawn with
    replacement), the chunks are shuffled and packed into batches with no class twice, and the batches
    are dealt to ranks in turn; every rank gets the same number of batches (the rest is dropped), as
    DDP's gathered losses need equal batch sizes.

    `groups` + `group_balanced=True`: each batch takes the same number of classes from every group, so
    minority classes are over-sampled (the group-balanced baseline PARADE is compared against); the
    epoch keeps the length it would have without balancing.
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        samples_per_class: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        groups: np.ndarray | None = None,
        group_balanced: bool = False,
    ):
        if samples_per_class < 1 or batch_size % samples_per_class:
            raise ValueError(
                f"batch_size ({batch_size}) must be a multiple of samples_per_class ({samples_per_class})"
            )
        self.labels = np.asarray(labels)
        self.classes_per_batch = batch_size // samples_per_class
        self.samples_per_class = samples_per_class
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        if len(self.by_class) < self.classes_per_batch:
            raise ValueError(
                f"{len(self.by_class)} classes cannot fill a batch of {self.classes_per_batch} classes; "
                f"lower batch_size or raise samples_per_class"
            )
        self.group_of_class: dict[int, int] | None = None
        if group_balanced:
            if groups is None:
                raise ValueError("group_balanced sampling needs the group of each sample")
            # A class's group is its most frequent group (exact when the attribute is per class).
            self.group_of_class = {
                c: int(np.bincount(np.asarray(groups)[idx]).argmax()) for c, idx in self.by_class.items()
            }
        self.epoch = 0
        self.position = 0  # batches of this epoch already yielded on this rank
        chunks = sum(-(-len(idx) // samples_per_class) for idx in self.by_class.values())
        self._batches_per_rank = (chunks // self.classes_per_batch) // num_replicas

    def __len__(self) -> int:
        return self._batches_per_rank

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.position = 0
        self.epoch = epoch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]

    def _chunks(self, rng: np.random.Generator, classes) -> list[tuple[int, np.ndarray]]:
        m, chunks = self.samples_per_class, []
        for c in classes:
            idx = rng.permutation(self.by_class[c])
            if len(idx) % m:
                idx = np.concatenate([idx, rng.choice(self.by_class[c], m - len(idx) % m)])
            chunks += [(c, idx[i : i + m]) for i in range(0, len(idx), m)]
        order = rng.permutation(len(chunks))
        return [chunks[i] for i in order]

    def _pack(self, chunks, n_classes: int) -> Iterator[list[int]]:
        """Pack chunks into batches of `n_classes` distinct classes, deferring repeats to later batches."""
        pending: deque = deque(chunks)
        while len(pending) >= n_classes:
            batch, seen, skipped = [], set(), []
            while pending and len(batch) < n_classes:
                c, idx = pending.popleft()
                (skipped if c in seen else batch).append((c, idx))
                seen.add(c)
            pending.extendleft(reversed(skipped))
            if len(batch) < n_classes:
                return
            yield batch

    def _global_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self._batches_per_rank * self.num_replicas
        if self.group_of_class is None:
            batches = list(self._pack(self._chunks(rng, list(self.by_class)), self.classes_per_batch))
        else:
            batches = self._group_balanced_batches(rng, total)
        return [np.concatenate([idx for _, idx in b]).tolist() for b in batches[:total]]

    def _group_balanced_batches(self, rng: np.random.Generator, total: int) -> list:
        group_ids = sorted(set(self.group_of_class.values()))
        per_group = self.classes_per_batch // len(group_ids)
        counts = {g: per_group for g in group_ids}
        counts[group_ids[0]] += self.classes_per_batch - per_group * len(group_ids)
        streams = {}
        for g in group_ids:
            classes = [c for c, cg in self.group_of_class.items() if cg == g]
            # A group with fewer classes than its slots repeats classes within a batch.
            distinct = min(counts[g], len(classes))
            streams[g] = (classes, distinct, [])
        batches = []
        while len(batches) < total:
            batch = []
            for g in group_ids:
                classes, distinct, buffer = streams[g]
                while len(buffer) < counts[g]:
                    buffer += [c for b in self._pack(self._chunks(rng, classes), distinct) for c in b]
                batch += buffer[: counts[g]]
                del buffer[: counts[g]]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._global_batches()[self.rank :: self.num_replicas][: self._batches_per_rank]
        start = self.position if self.position < len(mine) else 0
        for position, batch in enumerate(mine[start:], start + 1):
            # Advance before the last yield: Lightning stops after len(self) batches without exhausting
            # the generator, so code after the loop would run only at the next epoch (an empty epoch).
            self.position = position
            if position == len(mine):
                self.position, self.epoch = 0, self.epoch + 1
            yield batch
