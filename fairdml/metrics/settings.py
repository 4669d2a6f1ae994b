"""The finDML report's options as one frozen, self-checking object, so they travel together and fail at once.

`EmbeddingFairness` keeps one and `fairness_report` reads it; `as_report()` is what `report["settings"]`
records. A bad value raises when the object is built, before any embedding is read or any retrieval is run.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairdml.metrics.functional._common import DEFAULT_MEMORY_BUDGET_BYTES
from fairdml.metrics.functional.clustering import check_kmeans_backend
from fairdml.metrics.functional.intervals import INTERVAL_METHOD

DEFAULT_BOOTSTRAP_RESAMPLES = 1000  # class draws of the intervals (cheap: one (R, C) @ (C, G) product per metric)
DEFAULT_MIN_GROUP_SIZE = 30  # samples below which a group's figures are flagged as noise-prone ("small")
UNIFORMITY_T = 2  # Wang & Isola's t (uniformity) and alpha (alignment), fixed by finDML
ALIGNMENT_ALPHA = 2
_LEAKAGE_KEY = {"val": "val_leakage", "test": "leakage"}  # which evaluation.* switch a split's probe follows


def check_min_group_size(value: int) -> int:
    """`min_group_size` as an int >= 1; checked before any work so a typo fails at once."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"min_group_size must be an integer >= 1 (1 flags no group as small), got {value!r}")
    return int(value)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The k values as ints >= 1, first occurrence kept (recall@k is keyed by k, so a repeat adds nothing)."""
    ks = tuple(dict.fromkeys(int(k) for k in ks))
    if not ks:
        raise ValueError("ks must name at least one k, e.g. (1, 2, 4, 8)")
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {list(ks)}")
    return ks


@dataclass(frozen=True)
class ReportSettings:
    """Every option of a finDML report (see `fairness_report` for what each changes).

    Args:
        ks: the k of each recall@k, deduplicated in order.
        seed: seeds k-means, the leakage probe's split and the bootstrap.
        leakage: fit the attribute-leakage probe (a fresh linear classifier; costs a fit per report).
        distance: the retrieval distance ("euclidean", "cosine" or "inner_product", see `knn`).
        memory_budget_bytes: bound on the pairwise blocks of retrieval and uniformity.
        n_init: k-means restarts for NMI.
        kmeans_backend: "sklearn" (k-means++, default), "faiss" (PML's clustering, faster at large N) or
            "auto" (faiss from N x classes >= clustering.AUTO_FAISS_MIN_WORK; the audit's default).
        bootstrap_resamples: > 0 adds intervals of recall@k and map@r, overall, per group and of each gap, from a
            class-level bootstrap (`functional.intervals`; report["settings"]["interval_method"] names the
            method); 0: no intervals.
        confidence: the intervals' level (recorded only when there are intervals).
        min_group_size: groups with fewer samples are flagged "small" and not picked as worst.
        timings: add report["timings"], {stage: wall seconds} (knn, clustering, geometry, leakage,
            intervals). Off by default: seconds differ run to run and reports are compared byte for byte
            (resume, DDP, the reference run); the audit turns it on.
        knn_backend: "torch" (default), "auto" (faiss when installed, for float32 CPU inputs; the audit's)
            or "faiss". Same neighbours except at float32 near-ties, where map@r can move by ~1e-5: the
            default stays torch so earlier reports reproduce byte for byte (see `knn`).

    Example:
        >>> settings = ReportSettings(ks=(1, 4, 4), min_group_size=10)
        >>> settings.ks  # deduplicated, in order
        (1, 4)
        >>> ReportSettings(kmeans_backend="kmeans")
        Traceback (most recent call last):
        ...
        ValueError: kmeans_backend must be one of ('sklearn', 'faiss', 'auto'), got 'kmeans'
    """

    ks: tuple[int, ...] = (1, 2, 4, 8)
    seed: int = 0
    leakage: bool = True
    distance: str = "euclidean"
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES
    n_init: int = 1
    kmeans_backend: str = "sklearn"
    bootstrap_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES
    confidence: float = 0.95
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    timings: bool = False
    knn_backend: str = "torch"

    def __post_init__(self) -> None:
        check_kmeans_backend(self.kmeans_backend)
        resamples = self.bootstrap_resamples
        is_int = isinstance(resamples, (int, np.integer)) and not isinstance(resamples, bool)
        if not is_int or resamples == 1 or resamples < 0:
            raise ValueError(f"bootstrap_resamples must be 0 (no intervals) or an integer >= 2, got {resamples!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")
        object.__setattr__(self, "min_group_size", check_min_group_size(self.min_group_size))
        object.__setattr__(self, "ks", check_ks(self.ks))

    @classmethod
    def build(cls, settings: ReportSettings | None = None, **options: Any) -> ReportSettings:
        """`settings` (default: the defaults) with `options` replacing fields; an unknown option names the
        closest field, as a mistyped keyword of the old signature would have failed."""
        valid = [field.name for field in dataclasses.fields(cls)]
        for name in options:
            if name not in valid:
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown report option {name!r}.{hint} Valid options: {', '.join(valid)}")
        if settings is None:
            return cls(**options)
        return dataclasses.replace(settings, **options) if options else settings

    @classmethod
    def from_config(cls, evaluation_cfg: Mapping[str, Any], seed: int, split: str) -> ReportSettings:
        """The settings of a run's "val" or "test" report from its `evaluation` config (a plain dict)."""
        if split not in _LEAKAGE_KEY:
            raise ValueError(f"split must be one of {sorted(_LEAKAGE_KEY)}, got {split!r}")
        return cls(
            ks=tuple(evaluation_cfg["ks"]),
            seed=seed,
            leakage=evaluation_cfg[_LEAKAGE_KEY[split]],
            # .get: checkpoints from before the key
            min_group_size=evaluation_cfg.get("min_group_size", DEFAULT_MIN_GROUP_SIZE),
            # the test report's intervals; a validation only picks checkpoints, so it skips them
            bootstrap_resamples=evaluation_cfg.get("bootstrap_resamples", DEFAULT_BOOTSTRAP_RESAMPLES)
            if split == "test"
            else 0,
        )

    def as_report(self, effective_ks: Mapping[int, int], leakage_split: str | None) -> dict[str, Any]:
        """`report["settings"]`: these options plus what the report derived (clamped ks, the probe's split)."""
        settings = {
            "ks": list(self.ks),
            "effective_ks": {str(k): v for k, v in effective_ks.items()},
            "seed": self.seed,
            "distance": self.distance,
            "kmeans_n_init": self.n_init,
            "kmeans_backend": self.kmeans_backend,
            "alpha": ALIGNMENT_ALPHA,
            "t": UNIFORMITY_T,
            "leakage": self.leakage,
            "leakage_split": leakage_split,
            "bootstrap_resamples": self.bootstrap_resamples,
            "min_group_size": self.min_group_size,
        }
        if self.bootstrap_resamples > 0:
            settings["confidence"] = self.confidence
            settings["interval_method"] = INTERVAL_METHOD
        return settings
