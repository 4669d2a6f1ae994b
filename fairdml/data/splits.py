"""Class-disjoint splits and the paper's training imbalance (minority share), on metadata alone."""

from __future__ import annotations

import numpy as np

CLASS_SPLITS = ("random", "ordered")


def class_disjoint_split(
    labels: np.ndarray,
    fractions: dict[str, float],
    seed: int,
    groups: np.ndarray | None = None,
    class_split: str = "random",
) -> dict[str, np.ndarray]:
    """Split sample indices so that no class appears in two splits (DML is evaluated on unseen classes).

    `fractions` maps split name → share of the *classes* (e.g. train 0.6, val 0.1, test 0.3); the shares
    must sum to 1. Classes are shuffled with `seed`. With `groups`, classes are split within each group
    (a class's group is its most frequent one), so every split has the groups' share of classes.
    `class_split="ordered"` takes the classes in label order instead, unshuffled and unstratified: CUB's
    standard DML protocol (first 100 species train, last 100 test) is `{train: 0.5, test: 0.5}` ordered.
    """
    if class_split not in CLASS_SPLITS:
        raise ValueError(f"data.class_split must be one of {CLASS_SPLITS}, got {class_split!r}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6 or any(f <= 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be positive and sum to 1, got {dict(fractions)}")
    classes = np.unique(labels)
    if len(classes) < len(fractions):
        raise ValueError(f"{len(classes)} classes cannot fill {len(fractions)} class-disjoint splits")
    rng = np.random.default_rng(seed)
    if groups is None or class_split == "ordered":
        strata = [classes]
    else:
        class_group = np.array([np.bincount(groups[labels == c]).argmax() for c in classes])
        strata = [classes[class_group == g] for g in np.unique(class_group)]
    chosen: dict[str, list] = {name: [] for name in fractions}
    for stratum in strata:
        order = stratum if class_split == "ordered" else rng.permutation(stratum)
        cuts = np.round(np.cumsum([0.0, *fractions.values()]) * len(order)).astype(int)
        for i, name in enumerate(fractions):
            chosen[name] += list(order[cuts[i] : cuts[i + 1]])
    empty = [name for name, c in chosen.items() if not c]
    if empty:
        raise ValueError(f"split(s) {empty} got no class: raise their fraction or use more classes")
    return {name: np.flatnonzero(np.isin(labels, c)) for name, c in chosen.items()}


def minority_group_code(
    group_names: list[str], train_groups: np.ndarray, minority_group: str | None, attribute: str
) -> int:
    """The code of the group to under-represent: `minority_group` by name, else the rarest in training.

    One rule for training and the downstream evaluation, so both name the same group (ties: the lower code).
    """
    if minority_group is None:
        present, counts = np.unique(train_groups, return_counts=True)
        return int(present[counts.argmin()])
    if minority_group not in group_names:
        raise ValueError(
            f"data.minority_group={minority_group!r} is not a value of '{attribute}'; valid values: {group_names}"
        )
    return group_names.index(minority_group)


def minority_count(n_majority: int, share: float) -> int:
    """Minority samples to keep so that they make `share` of the resulting set: n_min/(n_maj+n_min)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"minority_share must be in (0, 1), got {share}")
    return int(round(share * n_majority / (1.0 - share)))


def impose_minority_share(
    indices: np.ndarray,
    groups: np.ndarray,
    minority_group: int,
    share: float,
    seed: int,
    labels: np.ndarray | None = None,
    by: str = "samples",
    keep_each_class: bool = False,
) -> np.ndarray:
    """Drop minority samples from `indices` until the minority makes `share` of them (the paper's protocol).

    The one rule of training's imbalance and the downstream evaluation's unbalanced setting.
    `groups` (and `labels`) are indexed by dataset index. `by="samples"` keeps a random subset of minority
    samples; `by="classes"` keeps whole minority classes (identities) in random order, so the minority is
    represented by fewer people rather than fewer images each (the last class kept is trimmed so that the
    count is exact). `keep_each_class` (with `by="samples"` and `labels`): one sample of every minority class
    is kept first, the rest drawn at random, so every class stays learnable; the share may then exceed `share`
    when there are many minority classes. The majority is never touched. Returns sorted indices.
    """
    indices = np.asarray(indices)
    is_minority = groups[indices] == minority_group
    majority, minority = indices[~is_minority], indices[is_minority]
    target = minority_count(len(majority), share)
    if target >= len(minority):
        return np.sort(indices)
    rng = np.random.default_rng(seed)
    if by not in ("samples", "classes"):
        raise ValueError(f"imbalance 'by' must be 'samples' or 'classes', got {by!r}")
    if by == "classes" and keep_each_class:
        raise ValueError("keep_each_class applies to imbalance by='samples' (by='classes' keeps whole classes)")
    if (by == "classes" or keep_each_class) and labels is None:
        what = "by='samples' keeping each class" if keep_each_class else f"by={by!r}"
        raise ValueError(f"imbalance {what} needs the class labels")
    if keep_each_class:
        kept = _each_class_then_samples(minority, labels, target, rng)
    elif by == "samples":
        kept = rng.choice(minority, size=target, replace=False)
    else:
        classes = rng.permutation(np.unique(labels[minority]))
        ordered = np.concatenate([rng.permutation(minority[labels[minority] == c]) for c in classes])
        kept = ordered[:target]
    return np.sort(np.concatenate([majority, kept]))


def _each_class_then_samples(
    minority: np.ndarray, labels: np.ndarray, target: int, rng: np.random.Generator
) -> np.ndarray:
    """One random sample of every class in `minority`, then random others up to `target` in all (if fewer)."""
    shuffled = rng.permutation(minority)
    _, first = np.unique(labels[shuffled], return_index=True)
    rest = np.setdiff1d(shuffled, shuffled[first])
    extra = rng.choice(rest, size=max(target - len(first), 0), replace=False)
    return np.concatenate([shuffled[first], extra])
