"""Class-balanced batch sampling that is correct under DDP and resumable.

Written here rather than taken from pytorch-metric-learning because `MPerClassSampler` is neither
rank-aware (PML #546) nor full-coverage (PML #684), and Lightning would otherwise replace it with a
shuffling distributed sampler (Lightning #21447). This sampler shards by rank itself, is seeded by
(seed, epoch), yields exactly `len(self)` batches on every rank in every epoch, visits every sample each
epoch where the batch count allows (see the class docstring), and can save and restore its position. Use
it with `Trainer(use_distributed_sampler=False)`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `n = batch_size // samples_per_class` distinct classes × `m = samples_per_class` samples.

    A *round* of a class is its samples shuffled and cut into chunks of m (a short last chunk is filled
    by re-drawing from the same class, so a class with fewer than m samples is drawn with replacement);
    K is the number of chunks in one round of every class. Each epoch has exactly `T = len(self) ×
    num_replicas` batches, `len(self) = (K // n) // num_replicas`; they are dealt to ranks in turn, so every
    rank yields exactly `len(self)` batches in every epoch (DDP's gathered losses need equal batch counts,
    and Lightning validates only when the announced last batch is reached).

    What one epoch holds (exactly T·n chunks): a class can be in at most T batches (never twice in one),
    so each class gives the first min(k, T) chunks of its first round of the epoch (k: its chunks per
    round). Where these add up to more than T·n, the surplus (at most n·num_replicas − 1 chunks; K − T·n
    when no class has more than T chunks) is left out at random. Where they add up to less (only when a
    class has more than T chunks), the rest are the first chunks of further rounds: each class still in
    fewer than T batches offers its next round's chunks (up to T in all), and the missing number is taken
    at random from those offered. So every sample is in every epoch except those only in the surplus chunks
    and, of a class with more than T chunks, those outside the T chunks it gives; in particular every sample
    is visited when K is a multiple of n·num_replicas and no class has more than T chunks. A chunk of a
    further round may repeat samples already in the epoch, but never in the same batch. The chunks are
    placed into batches at random subject to the distinct-class rule, and the batches are shuffled. All of
    it is a function of (seed, epoch); each rank computes the whole epoch and takes its share.

    `groups` + `group_balanced=True`: each batch takes the same number of classes from every group (the
    first group also takes the remainder), so minority classes are over-sampled (the group-balanced
    baseline PARADE is compared against); the epoch keeps the length it would have without balancing.
    Within a group the rules above apply with that group's slots in place of n: an over-sampled group
    adds further rounds, an under-sampled one leaves out a (possibly large) random surplus. A class's
    group is its most frequent group. A group with fewer classes than its slots repeats its classes within
    a batch (each class q or q + 1 times, its slots = q·classes + remainder).
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
        if samples_per_class < 1:
            raise ValueError(f"data.samples_per_class must be >= 1, got {samples_per_class}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if batch_size % samples_per_class:
            raise ValueError(
                f"data.batch_size ({batch_size}) must be a positive multiple of "
                f"data.samples_per_class ({samples_per_class})"
            )
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank ({rank}) must be in [0, num_replicas ({num_replicas}))")
        self.labels = np.asarray(labels)
        self.classes_per_batch = batch_size // samples_per_class
        self.samples_per_class = samples_per_class
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.classes, codes = np.unique(self.labels, return_inverse=True)
        codes = codes.reshape(-1)
        if len(self.classes) < self.classes_per_batch:
            raise ValueError(
                f"{len(self.classes)} classes cannot fill a batch of {self.classes_per_batch} classes; "
                f"lower batch_size or raise samples_per_class"
            )
        self._members = np.argsort(codes, kind="stable")  # sample indices, grouped by class code
        self._sizes = np.bincount(codes, minlength=len(self.classes))
        self._starts = np.cumsum(self._sizes) - self._sizes
        self._round = -(-self._sizes // samples_per_class)  # chunks per round of each class
        # (class codes, slots per batch) for each part of a batch
        self._parts: list[tuple[np.ndarray, int]] = [(np.arange(len(self.classes)), self.classes_per_batch)]
        if group_balanced:
            if groups is None:
                raise ValueError("group_balanced sampling needs the group of each sample")
            group_values, group_codes = np.unique(np.asarray(groups), return_inverse=True)
            if len(group_codes.reshape(-1)) != len(codes):
                raise ValueError(f"{len(group_codes.reshape(-1))} groups given for {len(codes)} labels")
            shape = (len(self.classes), len(group_values))
            pairs = np.bincount(codes * shape[1] + group_codes.reshape(-1), minlength=shape[0] * shape[1])
            class_group = pairs.reshape(shape).argmax(axis=1)
            per_group = self.classes_per_batch // len(group_values)
            slots = [per_group] * len(group_values)
            slots[0] += self.classes_per_batch - per_group * len(group_values)
            self._parts = [(np.flatnonzero(class_group == g), s) for g, s in enumerate(slots) if s]
        self.epoch = 0
        self.position = 0  # batches of this epoch already yielded on this rank
        self._batches_per_rank = int(self._round.sum()) // self.classes_per_batch // num_replicas

    def __len__(self) -> int:
        return self._batches_per_rank

    @property
    def sampler(self) -> ClassBalancedBatchSampler:
        """Itself: Lightning calls `set_epoch` on `batch_sampler.sampler` (never on a batch sampler) at each
        epoch's start, so this makes the epoch of the order follow the trainer's epoch count, resumes too."""
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.position = 0
        self.epoch = epoch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "num_replicas": self.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        # The order of an epoch depends on both, so a different value cannot continue the saved epoch.
        # (A state saved before `num_replicas` was recorded is taken as saved with this sampler's value.)
        for key in ("seed", "num_replicas"):
            saved, mine = state.get(key, getattr(self, key)), getattr(self, key)
            if saved != mine:
                raise ValueError(
                    f"sampler state was saved with {key}={saved}, but this sampler has {key}={mine}; "
                    f"the saved epoch's batch order cannot be continued with a different {key}"
                )
        self.epoch, self.position = state["epoch"], state["position"]

    # -- one epoch ---------------------------------------------------------------------------------
    def _global_batches(self) -> np.ndarray:
        """The epoch's T batches over all ranks, one row of sample indices each."""
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self._batches_per_rank * self.num_replicas
        parts = [self._fill(rng, classes, slots, total) for classes, slots in self._parts]
        return np.concatenate(parts, axis=1)[rng.permutation(total)]

    def _fill(self, rng: np.random.Generator, classes: np.ndarray, slots: int, total: int) -> np.ndarray:
        """`total` rows of `slots` chunks of `classes`, distinct classes within a row where there are enough."""
        repeats, distinct = divmod(slots, len(classes)) if slots > len(classes) else (0, slots)
        per_round = self._round[classes]
        extra = self._counts(rng, np.maximum(per_round - repeats * total, 0), per_round, total, total * distinct)
        counts = repeats * total + extra
        chunks = self._draw(rng, classes, counts)
        # Rows of each class's chunks: `repeats` in every row, then its distinct-class chunks. Classes take
        # their turns in random order, each taking the rows with the most free slots (ties at random). Free
        # slots then never differ by more than one between rows, and as no class has more of these chunks
        # than there are rows, the rows come out exactly full. `queue[at:]` holds the rows with the most
        # free slots, in random order; `queue[:at]`, the rows with one fewer.
        queue, at = rng.permutation(total), 0
        picks: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(classes)
        turns = rng.permutation(len(classes))
        for i in turns:
            n = int(extra[i])
            if n <= total - at:
                picks[i], at = queue[at : at + n], at + n
            else:  # all the fuller rows, and at random some of the others; one level less free then
                lower = rng.permutation(queue[:at])
                taken = n - (total - at)
                picks[i] = np.concatenate([queue[at:], lower[:taken]])
                queue = np.concatenate([lower[:taken], rng.permutation(np.concatenate([queue[at:], lower[taken:]]))])
                at = taken
        if repeats:
            every = np.tile(np.arange(total), repeats)
            picks = [np.concatenate([every, p]) for p in picks]
        row = np.concatenate(picks)
        if (np.bincount(row, minlength=total) != slots).any():
            raise RuntimeError("internal error: the chunks do not fill the batches exactly")
        turn = np.empty(len(classes), dtype=np.int64)
        turn[turns] = np.arange(len(classes))
        order = np.lexsort((np.repeat(turn, counts), row))  # by row, then by turn
        return chunks[order].reshape(total, slots * self.samples_per_class)

    @staticmethod
    def _counts(
        rng: np.random.Generator, first: np.ndarray, per_round: np.ndarray, cap: int, demand: int
    ) -> np.ndarray:
        """Chunks per class, each at most `cap`, adding up to `demand`: min(first, cap) of each class,
        less a random surplus, or plus the first chunks of further rounds (`per_round` each) at random."""
        counts = np.minimum(first, cap)
        surplus = int(counts.sum()) - demand
        if surplus >= 0:
            return counts - _random_units(rng, counts, surplus)
        while (short := demand - int(counts.sum())) > 0:  # there is room: demand <= cap * classes
            fresh = np.minimum(per_round, cap - counts)
            counts = counts + fresh - _random_units(rng, fresh, max(int(fresh.sum()) - short, 0))
        return counts

    def _draw(self, rng: np.random.Generator, classes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The first `counts[i]` chunks of consecutive rounds of `classes[i]`, class after class (chunk rows)."""
        m, sizes, per_round = self.samples_per_class, self._sizes[classes], self._round[classes]
        rounds = -(-counts // per_round)
        segment = np.repeat(np.arange(len(classes)), rounds)  # one segment per (class, round)
        size, start = sizes[segment], self._starts[classes][segment]
        length = per_round[segment] * m
        offset = np.cumsum(length) - length
        out = np.empty(int(length.sum()), dtype=np.int64)
        # the class's samples in random order, then the re-drawn ones that fill the last chunk
        of_sample = np.repeat(np.arange(len(segment)), size)
        within = np.arange(len(of_sample)) - np.repeat(np.cumsum(size) - size, size)
        shuffled = np.lexsort((rng.random(len(of_sample)), of_sample))
        out[offset[of_sample] + within] = start[of_sample] + within[shuffled]
        pad = length - size
        of_pad = np.repeat(np.arange(len(segment)), pad)
        pad_within = np.arange(len(of_pad)) - np.repeat(np.cumsum(pad) - pad, pad)
        redrawn = (rng.random(len(of_pad)) * size[of_pad]).astype(np.int64)
        out[offset[of_pad] + size[of_pad] + pad_within] = start[of_pad] + redrawn
        chunks = self._members[out].reshape(-1, m)
        drawn = rounds * per_round
        in_class = np.arange(len(chunks)) - np.repeat(np.cumsum(drawn) - drawn, drawn)
        return chunks[in_class < np.repeat(counts, drawn)]

    def __iter__(self) -> Iterator[list[int]]:
        total = self._batches_per_rank
        start = self.position if self.position < total else 0
        mine = self._global_batches()[self.rank :: self.num_replicas] if total else []
        for position in range(start + 1, total + 1):
            # Advance before the last yield: Lightning stops after len(self) batches without exhausting
            # the generator, so code after the loop would run only at the next epoch (an empty epoch).
            self.position = position
            if position == total:
                self.position, self.epoch = 0, self.epoch + 1
            yield mine[position - 1].tolist()


def _random_units(rng: np.random.Generator, counts: np.ndarray, n: int) -> np.ndarray:
    """How many of `n` units drawn at random (without replacement) from `counts[i]` units each fall on i."""
    if n <= 0:
        return np.zeros_like(counts)
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(owner[rng.choice(len(owner), n, replace=False)], minlength=len(counts))
