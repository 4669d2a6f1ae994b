"""Downstream evaluation (`fairdml evaluate RUN_DIR`, or `evaluation.downstream=true` at the end of training).

The paper's question: does the embedding's subgroup bias propagate to classifiers built on it, even when
their training data are re-balanced? On the frozen test embeddings (classes never seen in training) a
standardised logistic regression learns a downstream label, twice:

* **unbalanced**: the downstream training split with the minority group cut to the run's
  `data.minority_share` (the upstream imbalance, seeded);
* **balanced**: the whole downstream training split with every group given the same total sample
  weight (in expectation the same as resampling the groups to equal size, without discarding data).

Both are tested on the same held-out split, reported per group (fairdml.metrics.functional.downstream).
The label is the class (each test class's images split `1 - test_share` / `test_share`; at least one
training image of every class is kept when unbalancing, so every class stays learnable) or, with
`evaluation.downstream_label`, an attribute of the dataset (split by class, so no person is on both sides).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from fairdml.atomic import read_json, write_json
from fairdml.data.intersections import group_attribute_name
from fairdml.data.splits import class_disjoint_split, minority_count, minority_group_code
from fairdml.metrics.functional._common import encode_groups
from fairdml.metrics.functional.downstream import downstream_report
from fairdml.reports.report import load_report
from fairdml.run_layout import RunPaths

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
def within_class_split(
    classes: np.ndarray, test_share: float, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
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
    """Cut the minority in `train` to `share` of it (as the upstream protocol does), majority untouched.

    With `classes`, one image of every minority class is kept first (so each class stays learnable),
    the rest drawn at random; the share may then exceed `share` when there are many minority classes.
    """
    if share is None:
        return train
    is_minority = groups[train] == minority_code
    majority, minority = train[~is_minority], train[is_minority]
    target = minority_count(len(majority), share)
    if target >= len(minority):
        return train
    rng = np.random.default_rng(seed)
    if classes is None:
        kept = rng.choice(minority, size=target, replace=False)
    else:
        shuffled = rng.permutation(minority)
        _, first = np.unique(classes[shuffled], return_index=True)
        rest = np.setdiff1d(shuffled, shuffled[first])
        extra = rng.choice(rest, size=max(target - len(first), 0), replace=False)
        kept = np.concatenate([shuffled[first], extra])
    return np.sort(np.concatenate([majority, kept]))


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
        parts = class_disjoint_split(
            classes, {"train": 1 - test_share, "test": test_share}, seed, groups=groups
        )
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


def _composition(
    groups: np.ndarray, names: list[str], minority_code: int, weights: np.ndarray | None
) -> dict:
    counts = {name: int((groups == code).sum()) for code, name in enumerate(names)}
    weight = np.ones(len(groups)) if weights is None else weights
    shares = {name: float(weight[groups == code].sum() / weight.sum()) for code, name in enumerate(names)}
    return {"n": len(groups), "groups": counts, "minority_weight_share": shares[names[minority_code]]}


# ---- from a training run ----------------------------------------------------------------------------------
def check_downstream_label(cfg: DictConfig, attribute_names: Sequence[str]) -> None:
    """Fail before training, not after it, when the configured downstream label is not in the dataset."""
    label = cfg.evaluation.get("downstream_label")
    if cfg.evaluation.get("downstream") and label is not None and label not in attribute_names:
        raise ValueError(
            f"evaluation.downstream_label={label!r} is not an attribute of the dataset, which has "
            f"{list(attribute_names)}; add it to data.options.sensitive_attributes"
        )


def downstream_for_datamodule(cfg: DictConfig, datamodule, gathered: dict[str, torch.Tensor]) -> dict:
    """The training hook: the test embeddings still in memory (ordered by test-split index)."""
    view = datamodule.views["test"]
    data = DownstreamData(
        embeddings=gathered["embeddings"].numpy(),
        classes=gathered["labels"].numpy(),
        groups=gathered["groups"].numpy(),
        group_names=list(datamodule.group_names),
        group_attribute=datamodule.group_attribute,
    )
    _attach_target(data, view, cfg.evaluation.get("downstream_label"))
    return _evaluate(cfg, data, datamodule.group_names[datamodule.minority_code])


def _attach_target(data: DownstreamData, view, label: str | None) -> None:
    if label is None:
        return
    if len(view) != len(data.classes) or not np.array_equal(view.labels, data.classes):
        raise ValueError(
            f"the {len(data.classes)} test embeddings do not match the {len(view)} samples of the test split "
            "rebuilt from config.yaml (different data or seed?); re-run training or omit downstream_label"
        )
    data.target = view.attribute_column(label)
    data.target_name = label
    data.target_values = list(view.attribute_values[view.attribute_names.index(label)])


def _evaluate(cfg: DictConfig, data: DownstreamData, minority_group: str | None) -> dict:
    return downstream_evaluation(
        data,
        minority_group=minority_group,
        minority_share=cfg.data.minority_share,
        test_share=cfg.evaluation.get("downstream_test_share", 0.5),
        seed=cfg.seed,
    )


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's resolved config.yaml, validated by the schema, with `key=value` overrides applied."""
    from fairdml.config import TrainConfig

    path = RunPaths(run_dir).config
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a fairdml run folder: no config.yaml (see `fairdml train`)"
        )
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path))
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise ValueError(f"bad override or config.yaml in {run_dir}: {error}") from None


def _test_view(cfg: DictConfig, label: str | None):
    """The run's test split rebuilt from its config (metadata only), with `label` loaded as an attribute."""
    from fairdml.data.datamodule import DMLDataModule

    data_cfg = copy.deepcopy(cfg.data)
    listed = data_cfg.options.get("sensitive_attributes")
    if label is not None and listed is not None:
        listed = [listed] if isinstance(listed, str) else list(listed)
        if label not in listed:
            OmegaConf.update(data_cfg, "options.sensitive_attributes", [*listed, label], merge=False)
    datamodule = DMLDataModule(data_cfg, seed=cfg.seed)
    datamodule.setup()
    return datamodule.views["test"]


def _embed(run_dir: Path, view, batch_size: int) -> np.ndarray:
    """Embeddings of the test split with the run's exported model (when embeddings_test.npz is absent)."""
    from fairdml.models.embedding import load_embedding_model

    path = RunPaths(run_dir).model
    if not path.is_file():
        raise FileNotFoundError(
            f"neither embeddings_test.npz nor model.pt in {run_dir}; run `fairdml export {run_dir}`"
        )
    from fairdml.embed import embed_dataset

    # full precision: these embeddings stand in for the run's own (float32) embeddings_test.npz
    return embed_dataset(load_embedding_model(path), view, batch_size, mixed_precision=False)


def load_run_data(run_dir: Path, cfg: DictConfig, summary: dict) -> DownstreamData:
    """Test embeddings from embeddings_test.npz (else computed with model.pt) and, for an attribute label,
    the label from the test split rebuilt from config.yaml (checked to match the embeddings). `summary`:
    the run's data_summary.json ({} if absent)."""
    label = cfg.evaluation.get("downstream_label")
    npz_path = RunPaths(run_dir).embeddings
    view = None
    if npz_path.is_file():
        with np.load(npz_path, allow_pickle=False) as saved:
            embeddings, classes, group_values = (
                saved["embeddings"],
                saved["labels"],
                saved["groups"].astype(str),
            )
            group_attribute = str(saved["group_attribute"])
        codes, names = encode_groups(group_values, summary.get("group_names"), len(group_values))
        groups = codes.numpy()
    else:
        view = _test_view(cfg, label)
        embeddings = _embed(run_dir, view, cfg.data.eval_batch_size)
        group_attribute = group_attribute_name(cfg.data.sensitive_attribute)  # the view has the crossed column
        names = list(view.attribute_values[view.attribute_names.index(group_attribute)])
        classes, groups = view.labels, view.attribute_column(group_attribute)
    data = DownstreamData(embeddings, classes, groups, list(names), group_attribute)
    if label is not None:
        _attach_target(data, view if view is not None else _test_view(cfg, label), label)
    return data


def run_evaluate(run_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """`fairdml evaluate RUN_DIR [key=value ...]`: downstream evaluation into RUN_DIR/report.json."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    summary_path = RunPaths(run_dir).data_summary
    summary = read_json(summary_path, "data summary") if summary_path.is_file() else {}
    report_path = RunPaths(run_dir).report
    report = load_report(report_path) if report_path.is_file() else {}  # a JSON that is no report: refused now
    result = _evaluate(cfg, load_run_data(run_dir, cfg, summary), summary.get("minority_group"))
    report["downstream"] = result
    write_json(report_path, report)
    print(format_summary(result))
    print(f"fairdml: wrote report['downstream'] to {report_path}")
    return result


def format_summary(result: dict) -> str:
    """A plain-text table: accuracy per group in each setting, and the gap."""

    def number(value) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    lines = [
        f"downstream: {result['label']} ({result['kind']}), groups by {result['group_attribute']}, "
        f"minority {result['minority_group']!r}",
        f"{'setting':<11} {'group':<24} {'n test':>7} {'accuracy':>9}",
    ]
    for setting in ("unbalanced", "balanced"):
        entry = result[setting]
        rows = [("overall", entry["n"], entry["overall"]["accuracy"])]
        rows += [(name, g["n"], g["accuracy"]) for name, g in entry["groups"].items()]
        for name, n, accuracy in rows:
            lines.append(f"{setting:<11} {name:<24} {n:>7} {number(accuracy):>9}")
        gap = entry["gaps"]["accuracy"]
        lines.append(f"{setting:<11} {'gap (max - min)':<24} {'':>7} {number(gap['max_minus_min']):>9}")
    return "\n".join(lines)
