"""The downstream protocol: does the embedding's subgroup bias propagate to classifiers built on it, even when
their training data are re-balanced?

On frozen embeddings of classes never seen in training, a standardised logistic regression learns a
downstream label, twice:

* **unbalanced**: the downstream training split with the minority group cut to the run's
  `data.minority_share` (the upstream imbalance's own rule, `data.splits.impose_minority_share`, seeded);
* **balanced**: the whole downstream training split with every group given the same total sample
  weight (in expectation the same as resampling the groups to equal size, without discarding data).

Both are tested on the same held-out split, reported per group (fairdml.metrics.functional.downstream).
The label is the class (each test class's images split `1 - test_share` / `test_share`; at least one
training image of every class is kept when unbalancing, so every class stays learnable) or an attribute
of the dataset (split by class, so no person is on both sides). Arrays in, a dict out: no files, no config
(`fairdml.downstream.from_config` binds it to a training config, `fairdml.evaluate` to a run folder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from fairdml.data.splits import class_disjoint_split, impose_minority_share, minority_group_code
from fairdml.metrics.functional.downstream import downstream_report

CLASSIFIER = "logistic regression (standardised features, L2, C=1)"
REBALANCING = "each group gets equal total sample weight"


@dataclass
class DownstreamData:
    """Frozen embeddings of one evaluation split and what the downstream task needs about each sample."""

    embeddings: np.ndarray  # (N, D) float
    classes: np.ndarray  # (N,) int class labels of the upstream task
    groups: np.ndarray  # (N,) int codes into group_names
    group_names: list[str]
    group_attribute: str
    target: np.ndarray | None = None  # (N,) int codes of a downstream attribute; None: the class
    target_name: str = "class"
    target_values: list[str] | None = None  # names of the target codes (attribute targets)


# ---- splits and training sets ---------------------------------------------------------------------------
def within_class_split(classes: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Each class with >= 2 images: round(test_share * n) images (at least 1, at most n - 1) to test.

    Returns (train indices, test indices, number of classes left out for having a single image).
    """
    rng = np.random.default_rng(seed)
    train, test, singletons = [], [], 0
    for label in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == label))
        if len(members) < 2:
            singletons += 1
            continue
        n_test = min(max(round(test_share * len(members)), 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    if not test:
        raise ValueError("downstream evaluation needs classes with at least two images; none has")
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test)), singletons


def unbalance(
    train: np.ndarray,
    groups: np.ndarray,
    minority_code: int,
    share: float | None,
    seed: int,
    classes: np.ndarray | None = None,
) -> np.ndarray:
    """Cut the minority in `train` to `share` of it by the upstream rule (`data.splits.impose_minority_share`),
    majority untouched; `share` None leaves `train` as it is.

    With `classes`, one image of every minority class is kept first (so each class stays learnable),
    the rest drawn at random; the share may then exceed `share` when there are many minority classes.
    """
    if share is None:
        return train
    return impose_minority_share(
        train, groups, minority_code, share, seed, labels=classes, keep_each_class=classes is not None
    )


def group_balanced_weights(groups: np.ndarray) -> np.ndarray:
    """Sample weights n / (G * n_g): every present group sums to n / G, and the weights to n."""
    return compute_sample_weight("balanced", groups)


def fit_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, weights: np.ndarray | None, max_iter: int
) -> np.ndarray:
    """The downstream classifier: standardised features (embeddings are unit-norm, tiny per dimension)
    into an L2 logistic regression; returns hard predictions on x_test."""
    if len(np.unique(y_train)) < 2:
        raise ValueError(
            f"the downstream training set has a single label value ({np.unique(y_train).tolist()}); "
            "choose another evaluation.downstream_label or a larger evaluation.downstream_test_share"
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    model.fit(x_train, y_train, logisticregression__sample_weight=weights)
    return model.predict(x_test)


# ---- the evaluation --------------------------------------------------------------------------------------
def downstream_evaluation(
    data: DownstreamData,
    *,
    minority_group: str | None = None,
    minority_share: float | None = 0.1,
    test_share: float = 0.5,
    seed: int = 0,
    bootstrap_resamples: int = 1000,
    max_iter: int = 1000,
) -> dict:
    """Train the downstream classifier on the unbalanced and the re-balanced split; report both per group.

    Returns {"label", "kind", "group_attribute", "minority_group", "protocol", "excluded",
    "unbalanced": REPORT, "balanced": REPORT}, REPORT as `downstream_report` plus "train" (its composition).
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"evaluation.downstream_test_share must be in (0, 1), got {test_share}")
    if data.target_name == data.group_attribute:
        raise ValueError(
            f"downstream label {data.target_name!r} is the group attribute itself; its recovery from the "
            "embedding is the report's attribute_leakage"
        )
    x, groups, classes = np.asarray(data.embeddings, dtype=np.float64), data.groups, data.classes
    by_class = data.target is None
    target = classes if by_class else data.target
    excluded = {}
    if by_class:
        train, test, singletons = within_class_split(classes, test_share, seed)
        excluded["classes_with_a_single_image"] = singletons
    else:
        parts = class_disjoint_split(classes, {"train": 1 - test_share, "test": test_share}, seed, groups=groups)
        train, test = parts["train"], parts["test"]
    minority_code = minority_group_code(data.group_names, groups[train], minority_group, data.group_attribute)
    unbalanced = unbalance(train, groups, minority_code, minority_share, seed, classes if by_class else None)
    settings = {"unbalanced": (unbalanced, None), "balanced": (train, group_balanced_weights(groups[train]))}
    values = sorted(np.unique(target).tolist())
    binary = not by_class and len(data.target_values or values) == 2
    out = {
        "label": data.target_name,
        "kind": "binary" if binary else "multiclass",
        "label_values": data.target_values if not by_class else None,
        "group_attribute": data.group_attribute,
        "minority_group": data.group_names[minority_code],
        "protocol": {
            "split": "within each class" if by_class else "by class (class-disjoint)",
            "test_share": test_share,
            "unbalanced_minority_share": minority_share,
            "rebalancing": REBALANCING,
            "classifier": CLASSIFIER,
            "seed": seed,
            "bootstrap_resamples": bootstrap_resamples,
        },
        "excluded": excluded,
    }
    for name, (indices, weights) in settings.items():
        preds = fit_predict(x[indices], target[indices], x[test], weights, max_iter)
        report = downstream_report(
            torch.as_tensor(preds), torch.as_tensor(target[test]), torch.as_tensor(groups[test]),
            data.group_names, binary=binary, bootstrap_resamples=bootstrap_resamples, seed=seed,
        )  # fmt: skip
        report["train"] = _composition(groups[indices], data.group_names, minority_code, weights)
        out[name] = report
    return out


def _composition(groups: np.ndarray, names: list[str], minority_code: int, weights: np.ndarray | None) -> dict:
    counts = {name: int((groups == code).sum()) for code, name in enumerate(names)}
    weight = np.ones(len(groups)) if weights is None else weights
    shares = {name: float(weight[groups == code].sum() / weight.sum()) for code, name in enumerate(names)}
    return {"n": len(groups), "groups": counts, "minority_weight_share": shares[names[minority_code]]}
