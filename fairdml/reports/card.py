"""Model card of a run folder: MODEL_CARD.md (Hugging Face metadata), a sidecar JSON and a self-contained
HTML page with an interactive threshold view.

Why: a fairness audit helps only if a reader sees, per group, how the model behaves where it is used. The
card follows "Model Cards for Model Reporting" (Mitchell et al., FAT* 2019) and is filled from the run folder
(docs/architecture.md): report.json (required), embeddings_test.npz (required for the threshold view),
config.yaml and data_summary.json (optional). What only a person knows (intended use, ethics, caveats) comes
from a YAML file (template: configs/card/card_inputs.yaml) and shows as a marked prompt when missing.
Markdown and HTML are rendered from one list of sections, so they say the same. The HTML loads nothing
from the network (inline CSS/JS/SVG, a Content-Security-Policy that forbids it), and every string from
the data is escaped: group names are data, not markup.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from fairdml import __version__
from fairdml.metrics.functional import thresholds as th
from fairdml.metrics.functional.groups import higher_is_better
from fairdml.reports.audit import load_embeddings_npz
from fairdml.reports.report import load_report

ASSETS = Path(__file__).resolve().parent
CARD_FILES = {"markdown": "MODEL_CARD.md", "html": "model_card.html", "data": "model_card_data.json"}
CHROMIUM = os.environ.get("FAIRDML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class VerificationSettings:
    """How the threshold view samples and scores pairs (see fairdml.metrics.functional.thresholds)."""

    target_fmr: float = 0.01  # operating threshold: the loosest one whose pooled FMR is at most this
    operating_threshold: float | None = None  # or a fixed cosine similarity threshold
    max_pairs_per_group: int = 5000  # cap on genuine and on impostor pairs, per group
    seed: int = 0
    resolution: int = 1000  # slider grid: thresholds k / resolution


@dataclass
class CardInputs:
    """Fields only a person can fill; None shows a marked prompt in the card."""

    model_name: str | None = None
    description: str | None = None
    developers: str | None = None
    license: str | None = None  # a Hugging Face licence id, e.g. apache-2.0
    contact: str | None = None
    citation: str | None = None
    intended_uses: str | list[str] | None = None
    intended_users: str | list[str] | None = None
    out_of_scope_uses: str | list[str] | None = None
    relevant_factors: str | list[str] | None = None
    ethical_considerations: str | list[str] | None = None
    caveats_and_recommendations: str | list[str] | None = None
    datasets: list[str] | None = None  # Hugging Face dataset ids, for the metadata only
    verification: VerificationSettings = field(default_factory=VerificationSettings)


PROMPTS = {
    "description": "One paragraph: what the model does, for whom, and how it is used (e.g. 1:1 verification).",
    "developers": "Who built the model (person or organisation).",
    "license": "The licence of the weights (a Hugging Face licence id, e.g. apache-2.0).",
    "contact": "Where to send questions and reports of problems.",
    "intended_uses": "Primary intended uses: the tasks and settings the model was built and evaluated for.",
    "intended_users": "Primary intended users.",
    "out_of_scope_uses": "Uses the model must not be put to (e.g. identifying people without consent).",
    "relevant_factors": "Factors beyond the evaluated groups that may change performance in deployment "
    "(image quality, lighting, camera, pose, age...).",
    "ethical_considerations": "Sensitive data used, risks to people, mitigations taken (e.g. PARADE), "
    "and the harms that remain.",
    "caveats_and_recommendations": "What this evaluation does not cover, and advice to users (e.g. "
    "re-evaluate on the deployment population, per-group thresholds).",
}


def _from_mapping(cls: type, values: dict, where: str) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys are an error that lists the valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {names}")
    return cls(**values)


def load_card_inputs(path: str | os.PathLike | None) -> CardInputs:
    """Read the user's card inputs YAML (None: all prompts)."""
    if path is None:
        return CardInputs()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"card inputs file not found: {path} (template: configs/card/card_inputs.yaml)"
        )
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of card fields, got {type(values).__name__}")
    values = {k: v for k, v in values.items() if v is not None}
    verification = values.pop("verification", None) or {}
    if not isinstance(verification, dict):
        raise ValueError(f"{path}: 'verification' must be a mapping")
    inputs = _from_mapping(CardInputs, values, str(path))
    inputs.verification = _from_mapping(VerificationSettings, verification, f"{path} (verification)")
    return inputs


# ------------------------------------------------------------------------------------------ run folder
@dataclass
class Run:
    """What the card reads from a run folder; optional files are None when absent."""

    path: Path
    report: dict
    arrays: dict[str, np.ndarray] | None
    config: dict | None
    data_summary: dict | None

    @property
    def group_attribute(self) -> str:
        meta = self.report.get("meta") or {}
        for value in (
            meta.get("group_attribute"),
            self.arrays and self.arrays.get("group_attribute"),
            (self.data_summary or {}).get("group_attribute"),
            _get(self.config, "data.sensitive_attribute"),
        ):
            if value is not None and str(value):
                return str(value)
        return "group"


def _read_optional(path: Path, reader: Any) -> Any:
    return reader(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_run(run_dir: str | os.PathLike, need_embeddings: bool = True) -> Run:
    """Read the run folder; the error names a missing required file and what writes it."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {path}")
    if not (path / "report.json").is_file():
        raise FileNotFoundError(
            f"{path} has no report.json (required: written by `fairdml train` or `fairdml audit`)"
        )
    report = load_report(path / "report.json")
    arrays = None
    if (path / "embeddings_test.npz").is_file():
        arrays = load_embeddings_npz(path / "embeddings_test.npz")
    elif need_embeddings:
        raise FileNotFoundError(
            f"{path} has no embeddings_test.npz (required for the threshold view: written by `fairdml train`;"
            " pass threshold_view=False to write a card without it)"
        )
    config = _read_optional(path / "config.yaml", yaml.safe_load)
    summary = _read_optional(path / "data_summary.json", json.loads)
    return Run(path, report, arrays, config if isinstance(config, dict) else None, summary)


def _get(mapping: Any, dotted: str, default: Any = None) -> Any:
    """`mapping["a"]["b"]` for "a.b", or `default` when any level is missing."""
    for key in dotted.split("."):
        if not isinstance(mapping, dict) or key not in mapping:
            return default
        mapping = mapping[key]
    return mapping


# ----------------------------------------------------------------------------- threshold computations
@dataclass
class Verification:
    """The threshold view's numbers: counts on the slider grid, at the operating threshold, equal FMR."""

    settings: VerificationSettings
    pairs: th.PairSample
    counts: th.ErrorCounts
    operating_index: int
    rates: dict[str, dict[str, Any]]
    equal_fmr: dict[str, Any]


def compute_verification(arrays: dict[str, np.ndarray], settings: VerificationSettings) -> Verification:
    """Sample pairs per group, count errors on the threshold grid, and pick the operating threshold."""
    pairs = th.sample_pairs(arrays["labels"], arrays["groups"], settings.max_pairs_per_group, settings.seed)
    counts = th.pair_error_counts(arrays["embeddings"], pairs, resolution=settings.resolution)
    last = len(counts.thresholds) - 1
    if settings.operating_threshold is not None:
        index = int(np.searchsorted(counts.thresholds, settings.operating_threshold, side="left"))
    else:
        index = int(th.index_at_fmr(counts.pooled(), settings.target_fmr)[0])
    index = min(max(index, 0), last)
    return Verification(
        settings=settings,
        pairs=pairs,
        counts=counts,
        operating_index=index,
        rates=th.rates_at_index(counts, index),
        equal_fmr=th.equal_fmr_thresholds(counts, index),
    )


DET_TICKS = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95)


def _view_data(verification: Verification) -> dict[str, Any]:
    """The browser's data: integer counts per grid threshold (the page divides them itself)."""
    data = th.browser_data(verification.counts, verification.operating_index)
    inverse = NormalDist().inv_cdf
    data["det_ticks"] = [[tick, inverse(tick)] for tick in DET_TICKS]
    data["target_fmr"] = verification.settings.target_fmr
    return data


# ------------------------------------------------------------------------------------ content model
@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Prompt:
    key: str


@dataclass
class Heading:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Code:
    summary: str
    text: str


@dataclass
class ThresholdView:
    """Static tables in Markdown; the live view in HTML."""

    verification: Verification
    group_attribute: str


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any]


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100.0 * float(value):.2f}%"


def _interval(low: Any, high: Any, fmt: Any = _num) -> str:
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return ""
    return f"[{fmt(low)}, {fmt(high)}]"


def _user_blocks(value: Any, key: str) -> list[Any]:
    """A person's text (a string or a list) as blocks, or a marked prompt when it is missing."""
    if value is None or value == "" or value == []:
        return [Prompt(key)]
    if isinstance(value, list):
        return [Bullets([str(v) for v in value])]
    return [Text(p) for p in re.split(r"\n\s*\n", str(value).strip())]


METRIC_INFO = {
    "recall@k": (
        "Recall@{k}",
        "share of queries with a same-class sample among their k = {k} nearest neighbours (query excluded)",
    ),
    "map@r": ("mAP@R", "mean average precision at R, R = the other samples of the query's class"),
    "nmi": ("NMI", "normalised mutual information of k-means clusters (one per class) with the classes"),
    "intra_alignment": ("Intra-class alignment", "mean squared distance within a class: lower = tighter"),
    "inter_alignment": (
        "Inter-class alignment",
        "mean squared distance between classes: much smaller than other groups' = a collapsed group",
    ),
    "uniformity": ("Uniformity", "log mean exp(-2 d²) over pairs: lower = spread more evenly"),
    "attribute_leakage": (
        "Attribute leakage",
        "balanced accuracy of a fresh linear probe predicting the group from the embedding (chance = none)",
    ),
}


def _metric_info(metric: str) -> tuple[str, str]:
    match = re.fullmatch(r"recall@(\d+)", metric)
    if match:
        label, text = METRIC_INFO["recall@k"]
        return label.format(k=match.group(1)), text.format(k=match.group(1))
    return METRIC_INFO.get(metric, (metric, ""))


def _metric_header(metric: str) -> str:
    arrow = "↑" if higher_is_better(metric) else "↓"
    return f"{_metric_info(metric)[0]} {arrow}"


def _value_of(entry: Any) -> Any:
    """A metric value, or the "value" of a {"value": v, ...} entry."""
    return entry.get("value") if isinstance(entry, dict) else entry


# ----------------------------------------------------------------------------------- sections
def _model_details(run: Run, inputs: CardInputs, model_name: str) -> Section:
    config, meta = run.config or {}, run.report.get("meta") or {}
    backbone = _get(config, "model.backbone", "n/a")
    dim = _get(config, "model.embedding_dim")
    if dim is None and run.arrays is not None:
        dim = run.arrays["embeddings"].shape[1]
    parade_on = bool(_get(config, "parade.enabled", False))
    rows = [
        ["Model", model_name],
        ["Type", f"Deep metric learning image encoder: {backbone} backbone, {_num(dim)}-d L2-normalised embedding"],
        ["Loss", f"{_get(config, 'loss.name', 'n/a')} (miner: {_get(config, 'loss.miner', 'none')})"],
        ["Training", f"{_num(meta.get('epochs_trained', _get(config, 'trainer.max_epochs')))} epochs, "
         f"optimiser {_get(config, 'optim.name', 'n/a')}, seed {_num(meta.get('seed', _get(config, 'seed')))}"],
        ["PARADE (attribute de-correlation)", "enabled" if parade_on else "disabled"],
        ["Run folder", run.path.name],
        ["Software", f"fairdml {__version__}"],
    ]  # fmt: skip
    if inputs.citation:
        rows.append(["Citation", inputs.citation])
    blocks: list[Any] = []
    blocks += _user_blocks(inputs.description, "description")
    blocks.append(Table(["Field", "Value"], [[k, str(v)] for k, v in rows]))
    for key in ("developers", "license", "contact"):
        blocks.append(Heading(key.capitalize()))
        blocks += _user_blocks(getattr(inputs, key), key)
    if parade_on:
        blocks.append(Heading("PARADE settings"))
        blocks.append(
            Text(
                "PARADE trains an attribute embedding beside the class embedding and removes their correlation "
                "adversarially; strength is ρ′ (sum over dimensions, ρ′ = ρ/D in the mean-over-dims form)."
            )
        )
        parade = config.get("parade") or {}
        blocks.append(Table(["Setting", "Value"], [[str(k), json.dumps(v)] for k, v in parade.items()]))
    if config:
        blocks.append(
            Code("Full training configuration (config.yaml)", yaml.safe_dump(config, sort_keys=False))
        )
    else:
        blocks.append(Text("config.yaml is missing from the run folder: the training settings are unknown."))
    return Section("model-details", "Model details", blocks)


def _intended_use(inputs: CardInputs) -> Section:
    blocks: list[Any] = [Heading("Primary intended uses")]
    blocks += _user_blocks(inputs.intended_uses, "intended_uses")
    blocks.append(Heading("Primary intended users"))
    blocks += _user_blocks(inputs.intended_users, "intended_users")
    blocks.append(Heading("Out-of-scope uses"))
    blocks += _user_blocks(inputs.out_of_scope_uses, "out_of_scope_uses")
    return Section("intended-use", "Intended use", blocks)


def _factors(run: Run, inputs: CardInputs) -> Section:
    attribute = run.group_attribute
    groups = run.report.get("groups") or {}
    listed = ", ".join(f"{name} (n = {_num(entry.get('n'))})" for name, entry in groups.items())
    blocks: list[Any] = [
        Heading("Evaluated groups"),
        Text(
            f"Every figure is disaggregated by the sensitive attribute '{attribute}'. Test groups: {listed}."
        ),
        Heading("Relevant factors"),
    ]
    blocks += _user_blocks(inputs.relevant_factors, "relevant_factors")
    return Section("factors", "Factors", blocks)


def _metrics(run: Run, verification: Verification | None) -> Section:
    overall = run.report.get("overall") or {}
    items = [f"{_metric_info(m)[0]}: {_metric_info(m)[1]}." for m in overall if _metric_info(m)[1]]
    blocks: list[Any] = [
        Text("Retrieval and embedding geometry (finDML, Dullerud et al. 2022):"),
        Bullets(items),
    ]
    blocks.append(
        Text(
            "Gaps: per metric, the largest minus the smallest group value, the ratio min/max, and the worst group."
        )
    )
    if run.report.get("intervals"):
        blocks.append(
            Text("Intervals on recall@k and mAP@R: percentile bootstrap over queries (report.json).")
        )
    if verification is not None:
        s = verification.settings
        threshold = verification.counts.thresholds[verification.operating_index]
        how = (
            f"set to {s.operating_threshold} in the card inputs"
            if s.operating_threshold is not None
            else f"the loosest threshold whose FMR over all groups' pairs is at most {_pct(s.target_fmr)}"
        )
        blocks += [
            Text("Verification (two images match when their cosine similarity ≥ threshold):"),
            Bullets(
                [
                    "FMR (false match rate): share of impostor pairs (different classes) that match.",
                    "FNMR (false non-match rate): share of genuine pairs (same class) that do not match.",
                    f"Operating threshold {_num(threshold, 3)}: {how}.",
                    f"Pairs: both samples in the same group; at most {_num(s.max_pairs_per_group)} genuine and "
                    f"{_num(s.max_pairs_per_group)} impostor pairs per group, drawn with seed {s.seed}.",
                    "95% Wilson intervals treat pairs as independent; they share samples, so read the "
                    "intervals as lower bounds on the uncertainty.",
                ]
            ),
        ]
    return Section("metrics", "Metrics", blocks)


def _split_rows(split: str, entry: dict) -> list[list[str]]:
    rows = []
    total = entry.get("n") or 0
    for group, info in (entry.get("groups") or {}).items():
        n = info.get("n") if isinstance(info, dict) else info
        share = n / total if total and n is not None else None
        per_class = info.get("images_per_class_mean") if isinstance(info, dict) else None
        classes = info.get("classes") if isinstance(info, dict) else None
        rows.append([split, str(group), _num(n), _pct(share), _num(classes), _num(per_class, 1)])
    return rows


def _data_tables(summary: dict, splits: list[str]) -> list[Any]:
    """Datasheet-style tables of the named splits from data_summary.json."""
    entries = {s: (summary.get("splits") or {}).get(s) for s in splits}
    entries = {s: e for s, e in entries.items() if isinstance(e, dict)}
    if not entries:
        return [Text(f"data_summary.json has no {'/'.join(splits)} split.")]
    split_rows = [
        [
            s,
            _num(e.get("n")),
            _num(e.get("classes")),
            _pct(e.get("minority_share")),
            _num(e.get("imbalance_ratio"), 2),
        ]
        for s, e in entries.items()
    ]
    group_rows = [row for s, e in entries.items() for row in _split_rows(s, e)]
    return [
        Table(["Split", "Samples", "Classes", "Minority share", "Imbalance ratio (largest/smallest group)"], split_rows),
        Table(["Split", "Group", "Samples", "Share of split", "Classes", "Images per class (mean)"], group_rows),
    ]  # fmt: skip


def _test_rows_from_embeddings(arrays: dict[str, np.ndarray]) -> Table:
    labels, groups = arrays["labels"], arrays["groups"].astype(str)
    rows = []
    for name in np.unique(groups):
        _, per_class = np.unique(labels[groups == name], return_counts=True)
        rows.append(
            [
                str(name),
                _num(int(per_class.sum())),
                _pct(per_class.sum() / len(labels)),
                _num(len(per_class)),
                f"{per_class.min()} / {np.median(per_class):g} / {per_class.mean():.1f} / {per_class.max()}",
            ]
        )
    return Table(
        ["Group", "Samples", "Share", "Classes", "Images per class (min / median / mean / max)"],
        rows,
        note="Computed from embeddings_test.npz (the samples every test figure is computed on).",
    )


def _evaluation_data(run: Run) -> Section:
    summary = run.data_summary or {}
    dataset = summary.get("dataset") or _get(run.config, "data.name", "n/a")
    blocks: list[Any] = [
        Text(
            f"Dataset '{dataset}', test split: classes never seen in training (class-disjoint split), "
            "left as it is (no imbalance imposed), every figure reported per group."
        )
    ]
    if run.data_summary:
        blocks += _data_tables(summary, ["test"])
    if run.arrays is not None:
        blocks.append(_test_rows_from_embeddings(run.arrays))
    return Section("evaluation-data", "Evaluation data", blocks)


def _training_data(run: Run) -> Section:
    summary = run.data_summary
    if not summary:
        text = "data_summary.json is missing from the run folder: the training data composition is unknown."
        return Section("training-data", "Training data", [Text(text)])
    facts = [
        ["Dataset", summary.get("dataset", "n/a")],
        ["Sensitive attribute", summary.get("group_attribute", "n/a")],
        ["Groups", ", ".join(map(str, summary.get("group_names") or []))],
        ["Minority group", summary.get("minority_group", "n/a")],
        ["Requested minority share of training", _pct(summary.get("requested_minority_share"))],
        ["Imbalance imposed by removing", summary.get("imbalance_by", "n/a")],
    ]
    blocks: list[Any] = [
        Text("Training is made unbalanced on purpose (the paper's protocol): the minority group keeps only a share."),
        Table(["Field", "Value"], [[k, str(v)] for k, v in facts]),
    ]  # fmt: skip
    blocks += _data_tables(summary, [s for s in (summary.get("splits") or {}) if s != "test"])
    return Section("training-data", "Training data", blocks)


def _group_table(report: dict, metrics: list[str]) -> Table:
    intervals = report.get("intervals") or {}
    rows = []
    slices = [("overall", report.get("n"), report.get("overall") or {})]
    slices += [(name, entry.get("n"), entry) for name, entry in (report.get("groups") or {}).items()]
    for name, n, values in slices:
        cells = [name, _num(n)]
        for metric in metrics:
            text = _num(_value_of(values.get(metric))) if metric in values else ""
            ci = (intervals.get(metric) or {}).get(name)
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                text += f" {_interval(*ci)}"
            cells.append(text)
        rows.append(cells)
    return Table(["Group", "n", *(_metric_header(m) for m in metrics)], rows)


def _quantitative(run: Run, verification: Verification | None) -> Section:
    report = run.report
    metrics = [m for m in (report.get("overall") or {}) if m != "attribute_leakage"]
    blocks: list[Any] = [Heading("Retrieval and embedding geometry by group"), _group_table(report, metrics)]
    gap_rows = [
        [
            _metric_header(m),
            _num(g.get("max_minus_min")),
            _num(g.get("min_over_max")),
            str(g.get("worst_group")),
        ]
        for m, g in (report.get("gaps") or {}).items()
        if isinstance(g, dict)
    ]
    blocks += [
        Heading("Gaps between groups"),
        Table(["Metric", "Max − min", "Min / max", "Worst group"], gap_rows),
    ]
    leakage = _value_of((report.get("overall") or {}).get("attribute_leakage"))
    if leakage is not None:
        chance = (report.get("chance_level") or {}).get("attribute_leakage")
        blocks += [
            Heading("Attribute leakage"),
            Text(
                f"A linear probe trained after training predicts '{run.group_attribute}' from the embedding with "
                f"balanced accuracy {_num(leakage)} (chance level {_num(chance)}). Closer to chance = less of "
                "the attribute is recoverable."
            ),
        ]
    if report.get("downstream"):
        rows = [[k, _num(v)] for k, v in _flatten(report["downstream"])]
        blocks += [Heading("Downstream classifiers"), Table(["Figure", "Value"], rows)]
    if verification is not None:
        blocks += [
            Heading("Verification error rates against the threshold"),
            ThresholdView(verification, run.group_attribute),
        ]
    return Section("quantitative-analyses", "Quantitative analyses", blocks)  # fmt: skip


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{prefix}{k} / ")]
    return [(prefix.rstrip(" /"), value)]


def _ethics(run: Run, inputs: CardInputs) -> Section:
    parade = bool(_get(run.config, "parade.enabled", False))
    use = "evaluation and for PARADE's de-correlation during training" if parade else "evaluation"
    blocks: list[Any] = [Text(f"The sensitive attribute '{run.group_attribute}' was used for {use}.")]
    blocks += _user_blocks(inputs.ethical_considerations, "ethical_considerations")
    return Section("ethical-considerations", "Ethical considerations", blocks)


def _caveats(run: Run, inputs: CardInputs, verification: Verification | None) -> Section:
    notes = [f"report.json warning: {w}" for w in run.report.get("warnings") or []]
    for name, entry in (run.report.get("groups") or {}).items():
        if isinstance(entry.get("n"), int) and entry["n"] < 50:
            notes.append(f"Group '{name}' has only {entry['n']} test samples: its figures are uncertain.")
    if verification is not None:
        for g, name in enumerate(verification.counts.group_names):
            if verification.counts.genuines[g] < 100 or verification.counts.impostors[g] < 100:
                notes.append(
                    f"Group '{name}' has {verification.counts.genuines[g]} genuine and "
                    f"{verification.counts.impostors[g]} impostor pairs: its error rates are coarse."
                )
    notes.append(
        "Test classes are unseen in training; results on other populations or image sources may differ."
    )
    blocks: list[Any] = [Bullets(notes)]
    blocks += _user_blocks(inputs.caveats_and_recommendations, "caveats_and_recommendations")
    return Section("caveats", "Caveats and recommendations", blocks)


def build_sections(
    run: Run, inputs: CardInputs, verification: Verification | None, model_name: str
) -> list[Section]:
    """The card's content, in Mitchell et al.'s order."""
    return [
        _model_details(run, inputs, model_name),
        _intended_use(inputs),
        _factors(run, inputs),
        _metrics(run, verification),
        _evaluation_data(run),
        _training_data(run),
        _quantitative(run, verification),
        _ethics(run, inputs),
        _caveats(run, inputs, verification),
    ]  # fmt: skip


# ------------------------------------------------------------------------- verification summaries
def _rate_gap(values: dict[str, float]) -> dict[str, Any]:
    """Error-rate gap between groups: max − min, max / min, and the worst (highest-rate) group."""
    defined = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not defined:
        return {"max_minus_min": None, "max_over_min": None, "worst_group": None}
    worst = max(defined, key=defined.__getitem__)
    low, high = min(defined.values()), max(defined.values())
    return {
        "max_minus_min": high - low,
        "max_over_min": high / low if low > 0 else None,
        "worst_group": worst,
    }


def _rates_table(verification: Verification) -> Table:
    rows = []
    for name, r in verification.rates.items():
        rows.append(
            [
                name,
                _num(r["threshold"], 3),
                f"{_pct(r['fmr'])} {_interval(*r['fmr_ci95'], fmt=_pct)}",
                f"{_num(r['false_matches'])} / {_num(r['impostors'])}",
                f"{_pct(r['fnmr'])} {_interval(*r['fnmr_ci95'], fmt=_pct)}",
                f"{_num(r['false_non_matches'])} / {_num(r['genuines'])}",
            ]
        )
    for kind in ("fmr", "fnmr"):
        gap = _rate_gap({name: r[kind] for name, r in verification.rates.items()})
        ratio = f", ×{gap['max_over_min']:.2f}" if gap["max_over_min"] is not None else ""
        cells = [f"{_pct(gap['max_minus_min'])}{ratio} (worst: {gap['worst_group']})", ""]
        cells = cells + ["", ""] if kind == "fmr" else ["", "", *cells]
        rows.append([f"Gap in {kind.upper()} (max − min)", "", *cells])
    headers = ["Group", "Threshold", "FMR [95% CI]", "False matches / impostor pairs"]
    headers += ["FNMR [95% CI]", "False non-matches / genuine pairs"]
    return Table(headers, rows, note="At the operating threshold; model_card.html lets you move it.")


def _equal_fmr_table(verification: Verification) -> Table:
    eq, counts = verification.equal_fmr, verification.counts
    rows = [
        [name, _num(eq["threshold"][g], 3), _pct(eq["fmr"][g]), _pct(eq["fnmr"][g])]
        for g, name in enumerate(counts.group_names)
    ]
    note = (
        f"Each group's loosest threshold whose FMR is at most {_pct(eq['target_fmr'])}, the FMR of all groups' "
        "pairs at the operating threshold: with these, no group bears more false matches than the average."
    )
    return Table(["Group", "Threshold for equal FMR", "FMR", "FNMR"], rows, note=note)


# ------------------------------------------------------------------------------------- metadata
TASK = {
    "task_type": "image-feature-extraction",
    "task_name": "Deep metric learning (retrieval of unseen classes)",
}


def _finite(value: Any) -> float | None:
    value = _value_of(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def build_eval_results(
    run: Run, verification: Verification | None, dataset_id: str, dataset_name: str
) -> list[EvalResult]:
    """Hugging Face eval results, one slice per group (dataset_config "ATTRIBUTE=GROUP"), "overall" and gaps.

    The slice goes in `dataset_config`: it is part of an EvalResult's identity, so every slice stays its own
    model-index entry and loads back unchanged; `dataset_args` repeats it as data.
    """
    report, attribute = run.report, run.group_attribute
    intervals = report.get("intervals") or {}
    results = []

    def add(slice_name: str, args: dict, metric: str, value: Any, metric_args: dict | None = None) -> None:
        number = _finite(value)
        if number is None:
            return
        results.append(
            EvalResult(
                **TASK, dataset_type=dataset_id, dataset_name=dataset_name, dataset_split="test",
                dataset_config=slice_name, dataset_args=args, metric_type=metric, metric_value=number,
                metric_name=f"{_metric_info(metric)[0]} [{slice_name}]",
                metric_args={k: v for k, v in (metric_args or {}).items() if v is not None} or None,
            )
        )  # fmt: skip

    slices = [("overall", None, report.get("n"), report.get("overall") or {})]
    slices += [(f"{attribute}={g}", g, e.get("n"), e) for g, e in (report.get("groups") or {}).items()]
    for slice_name, group, n, values in slices:
        args = {"group_attribute": attribute, "group": group, "n": n} if group is not None else {"n": n}
        for metric, value in values.items():
            if metric != "n":
                ci = (intervals.get(metric) or {}).get(group if group is not None else "overall")
                add(slice_name, args, metric, value, {"interval": list(ci) if ci else None})
        if verification is not None and group is not None and group in verification.rates:
            r = verification.rates[group]
            for kind, errors, pairs in (
                ("fmr", "false_matches", "impostors"),
                ("fnmr", "false_non_matches", "genuines"),
            ):
                add(slice_name, args, kind, r[kind], {
                    "threshold": r["threshold"], "errors": r[errors], "pairs": r[pairs],
                    "interval_wilson95": [v for v in r[f"{kind}_ci95"]],
                })  # fmt: skip
    gap_args = {"group_attribute": attribute, "groups": list(report.get("groups") or {})}
    for metric, gap in (report.get("gaps") or {}).items():
        if isinstance(gap, dict):
            add(f"gap:{attribute}", gap_args, f"{metric}/max_minus_min", gap.get("max_minus_min"), {
                "min_over_max": _finite(gap.get("min_over_max")), "worst_group": gap.get("worst_group"),
            })  # fmt: skip
    return results


def build_card_data(
    run: Run, inputs: CardInputs, verification: Verification | None, model_name: str
) -> ModelCardData:
    dataset_id = str((run.data_summary or {}).get("dataset") or _get(run.config, "data.name", "unknown"))
    dataset_name = f"{dataset_id} (test split, class-disjoint)"
    eval_results = build_eval_results(run, verification, dataset_id, dataset_name)
    return ModelCardData(
        model_name=model_name,
        license=inputs.license,
        library_name="fairdml",
        pipeline_tag="image-feature-extraction",
        tags=["fairdml", "deep-metric-learning", "fairness", "image-retrieval", "model-card"],
        datasets=inputs.datasets,
        metrics=sorted({r.metric_type for r in eval_results}) or None,
        eval_results=eval_results or None,
    )


# -------------------------------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def _md(text: Any) -> str:
    """Plain text safe in Markdown: one line, Markdown syntax and HTML escaped (a name is never markup)."""
    return html.escape(_MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split())), quote=False)


def _md_table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in table.headers) + " |", "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
    return lines + (["", f"*{_md(table.note)}*"] if table.note else [])


def _md_block(block: Any) -> list[str]:
    if isinstance(block, Text):
        return [_md(block.text)]
    if isinstance(block, Bullets):
        return [f"- {_md(item)}" for item in block.items]
    if isinstance(block, Prompt):
        return [f"> **✎ To fill in** (`{block.key}` in the card inputs): {_md(PROMPTS[block.key])}"]
    if isinstance(block, Heading):
        return [f"### {_md(block.text)}"]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Code):
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", block.text)), default=0))
        return ["<details>", f"<summary>{html.escape(block.summary)}</summary>", "", f"{fence}yaml",
                block.text.rstrip(), fence, "", "</details>"]  # fmt: skip
    if isinstance(block, ThresholdView):
        return [*_md_table(_rates_table(block.verification)), "", "#### Per-group thresholds that equalise FMR",
                "", *_md_table(_equal_fmr_table(block.verification))]  # fmt: skip
    raise TypeError(f"unknown card block {type(block).__name__}")


def render_markdown(sections: list[Section], title: str, subtitle: str) -> str:
    lines = [f"# Model card: {_md(title)}", "", _md(subtitle), ""]
    lines += [f"{i}. [{_md(s.title)}](#{s.id})" for i, s in enumerate(sections, 1)] + [""]
    for i, section in enumerate(sections, 1):
        lines += [f'<a id="{section.id}"></a>', "", f"## {i}. {_md(section.title)}", ""]
        for block in section.blocks:
            lines += [*_md_block(block), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ HTML
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F3C8D", "#3D3D3D"]


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{_h(table.note)}</p>' if table.note else ""
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}'


def _rate_cell(kind: str, g: int, rate: float, ci: list[float], errors: int, pairs: int, noun: str) -> str:
    """One live cell; ids and data-value attributes are what JavaScript updates and tests read."""
    low, high = ci
    return (
        f'<td class="rate-cell"><div><span class="rate-value" id="{kind}-{g}" data-value="{_h(repr(rate))}">'
        f'{_h(_pct(rate))}</span> <span class="ci" id="{kind}-ci-{g}" data-low="{_h(repr(low))}" '
        f'data-high="{_h(repr(high))}">{_h(_interval(low, high, _pct))}</span></div>'
        f'<div class="count"><span id="{kind}-errors-{g}" data-value="{errors}">{_num(errors)}</span> / '
        f'<span id="{kind}-pairs-{g}" data-value="{pairs}">{_num(pairs)}</span> {noun}</div>'
        f'<div class="bar"><span id="{kind}-bar-{g}"></span></div></td>'
    )


def _html_threshold_view(block: ThresholdView) -> str:
    v = block.verification
    k0, thresholds = v.operating_index, v.counts.thresholds
    rows = []
    for g, name in enumerate(v.counts.group_names):
        r = v.rates[name]
        rows.append(
            f'<tr data-group-index="{g}"><td class="group"><span class="swatch" '
            f'style="background:{COLORS[g % len(COLORS)]}"></span><span class="group-name" '
            f'id="group-name-{g}">{_h(name)}</span></td>'
            f'<td><span id="thr-{g}" data-value="{_h(repr(r["threshold"]))}">{r["threshold"]:.3f}</span></td>'
            + _rate_cell(
                "fmr", g, r["fmr"], r["fmr_ci95"], r["false_matches"], r["impostors"], "impostor pairs"
            )
            + _rate_cell(
                "fnmr", g, r["fnmr"], r["fnmr_ci95"], r["false_non_matches"], r["genuines"], "genuine pairs"
            )
            + "</tr>"
        )
    gaps = ""
    for kind in ("fmr", "fnmr"):
        gap = _rate_gap({name: r[kind] for name, r in v.rates.items()})
        ratio = f"×{gap['max_over_min']:.2f}" if gap["max_over_min"] is not None else ""
        gaps += (
            f'<td><span class="rate-value" id="gap-{kind}" data-value="{_h(repr(gap["max_minus_min"]))}">'
            f'{_h(_pct(gap["max_minus_min"]))}</span> <span class="ratio" id="ratio-{kind}">{_h(ratio)}</span>'
            f'<div class="count">worst: <span id="worst-{kind}">{_h(gap["worst_group"])}</span></div></td>'
        )
    t0 = float(thresholds[k0])
    pooled = v.counts.pooled()
    charts = "".join(
        f'<figure><svg id="chart-{key}" viewBox="0 0 380 290" role="img" aria-label="{_h(caption)}"></svg>'
        f"<figcaption>{_h(caption)}</figcaption></figure>"
        for key, caption in (
            ("rates", "FMR (solid) and FNMR (dashed) against the threshold"),
            ("roc", "ROC: true match rate (1 − FNMR) against FMR, log scale"),
            ("det", "DET: FNMR against FMR, normal-deviate scales"),
        )
    )
    return f"""<div class="tv" id="threshold-view">
<div class="tv-controls">
<label for="threshold-slider">Similarity threshold</label>
<input type="range" id="threshold-slider" min="0" max="{len(thresholds) - 1}" step="1" value="{k0}">
<output id="threshold-value" for="threshold-slider" data-value="{_h(repr(t0))}">{t0:.3f}</output>
</div>
<div class="tv-options">
<button type="button" id="reset-threshold" data-index="{k0}">Operating threshold ({t0:.3f})</button>
<label class="toggle"><input type="checkbox" id="equalise-fmr"> Per-group thresholds that equalise FMR</label>
<span class="pooled">All groups: FMR <b id="pooled-fmr" data-value="{_h(repr(float(pooled.fmr[0, k0])))}">{
        _h(_pct(pooled.fmr[0, k0]))
    }</b> · FNMR <b id="pooled-fnmr" data-value="{_h(repr(float(pooled.fnmr[0, k0])))}">{
        _h(_pct(pooled.fnmr[0, k0]))
    }</b></span>
</div>
<p class="tv-explain" id="equalise-explain" hidden>Each group gets the loosest threshold whose FMR is at most
<b id="target-fmr" data-value="">{
        _h(_pct(v.equal_fmr["target_fmr"]))
    }</b>, the FMR of all groups' pairs at the
slider's threshold. FNMR then shows what equal false matches cost each group.</p>
<div class="table-wrap"><table id="group-rates" class="rates">
<thead><tr><th>{_h(block.group_attribute)}</th><th>Threshold</th><th>FMR (false match rate) [95% CI]</th>
<th>FNMR (false non-match rate) [95% CI]</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
<tfoot><tr><th>Gap (max − min)</th><td></td>{gaps}</tr></tfoot>
</table></div>
<div class="legend" id="chart-legend"></div>
<div class="charts">{charts}</div>
<noscript><p class="note">JavaScript is off: the table shows the operating threshold.</p></noscript>
</div>
<h4>Per-group thresholds that equalise FMR at the operating threshold</h4>
{_html_table(_equal_fmr_table(v))}"""


def _html_block(block: Any) -> str:
    if isinstance(block, Text):
        return f"<p>{_h(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_h(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Prompt):
        return (
            f'<div class="prompt" data-prompt="{_h(block.key)}"><strong>✎ To fill in</strong> '
            f"(<code>{_h(block.key)}</code> in the card inputs): {_h(PROMPTS[block.key])}</div>"
        )
    if isinstance(block, Heading):
        return f"<h3>{_h(block.text)}</h3>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Code):
        return f"<details><summary>{_h(block.summary)}</summary><pre><code>{_h(block.text)}</code></pre></details>"
    if isinstance(block, ThresholdView):
        return _html_threshold_view(block)
    raise TypeError(f"unknown card block {type(block).__name__}")


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element: <, > and & only occur in strings, so escape them there."""
    text = json.dumps(_strict_json(data), allow_nan=False, ensure_ascii=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _strict_json(value: Any) -> Any:
    """NaN/inf -> None and numpy -> Python, so json.dumps(allow_nan=False) accepts it."""
    if isinstance(value, dict):
        return {str(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render_html(
    sections: list[Section], title: str, subtitle: str, chips: list[tuple[str, str]], data: dict
) -> str:
    nav = "".join(f'<a href="#{s.id}">{i}. {_h(s.title)}</a>' for i, s in enumerate(sections, 1))
    chip_html = "".join(f'<div class="chip"><span>{_h(k)}</span><b>{_h(v)}</b></div>' for k, v in chips)
    body = [
        f'<header><p class="kicker">Model card</p><h1>{_h(title)}</h1><p class="subtitle">{_h(subtitle)}</p>'
        f'<div class="chips">{chip_html}</div></header><nav>{nav}</nav><main>'
    ]
    for i, section in enumerate(sections, 1):
        inner = "\n".join(_html_block(b) for b in section.blocks)
        body.append(f'<section id="{section.id}"><h2>{i}. {_h(section.title)}</h2>\n{inner}\n</section>')
    body.append(
        "</main><footer>Written by fairdml from the run folder. Sections follow Mitchell et al., "
        "“Model Cards for Model Reporting” (FAT* 2019); finDML metrics follow Dullerud et al. (ICLR 2022)."
        "</footer>"
    )
    parts = {
        "title": _h(f"Model card: {title}"),
        "css": (ASSETS / "card.css").read_text(encoding="utf-8"),
        "body": "\n".join(body),
        "data": _script_json(data),
        "script": (ASSETS / "card.js").read_text(encoding="utf-8"),
    }
    template = (ASSETS / "card_template.html").read_text(encoding="utf-8")
    # One pass over the template: text inserted for one placeholder is never searched for another.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)


# ------------------------------------------------------------------------------------------ entry
def _chips(run: Run, verification: Verification | None) -> list[tuple[str, str]]:
    report, config = run.report, run.config or {}
    chips = [
        ("Dataset", str((run.data_summary or {}).get("dataset") or _get(config, "data.name", "n/a"))),
        ("Groups by", run.group_attribute),
        ("Test samples", _num(report.get("n"))),
    ]
    if "recall@1" in (report.get("overall") or {}):
        chips.append(("Recall@1", _num(_value_of(report["overall"]["recall@1"]), 3)))
        gap = (report.get("gaps") or {}).get("recall@1") or {}
        if gap.get("max_minus_min") is not None:
            chips.append(
                ("Recall@1 gap", f"{_num(gap['max_minus_min'], 3)} (worst: {gap.get('worst_group')})")
            )
    if verification is not None:
        chips.append(
            ("Operating threshold", _num(verification.counts.thresholds[verification.operating_index], 3))
        )
    chips.append(("PARADE", "on" if _get(config, "parade.enabled", False) else "off"))
    return chips


def write_model_card(
    run_dir: str | os.PathLike,
    card_inputs: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    threshold_view: bool = True,
) -> dict[str, Path]:
    """Write MODEL_CARD.md, model_card.html and model_card_data.json for a run folder.

    `card_inputs`: YAML with the fields only a person can fill (configs/card/card_inputs.yaml); missing
    fields become marked prompts. `out_dir` defaults to the run folder. Returns {"markdown", "html",
    "data"} → path.
    """
    run = load_run(run_dir, need_embeddings=threshold_view)
    inputs = load_card_inputs(card_inputs)
    verification = (
        compute_verification(run.arrays, inputs.verification) if threshold_view and run.arrays else None
    )
    experiment = _get(run.config, "experiment") or (run.report.get("meta") or {}).get("experiment")
    model_name = inputs.model_name or (f"{experiment}-{run.path.name}" if experiment else run.path.name)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"fairdml {__version__} · run {run.path.name} · card written {generated}"
    sections = build_sections(run, inputs, verification, model_name)
    card_data = build_card_data(run, inputs, verification, model_name)

    out = Path(out_dir) if out_dir is not None else run.path
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in CARD_FILES.items()}
    markdown = f"---\n{card_data.to_yaml()}\n---\n\n{render_markdown(sections, model_name, subtitle)}"
    ModelCard(markdown).save(paths["markdown"])  # parsing it here validates the metadata
    view = _view_data(verification) if verification is not None else None
    page_data = {"threshold_view": view, "colors": COLORS}
    paths["html"].write_text(
        render_html(sections, model_name, subtitle, _chips(run, verification), page_data), encoding="utf-8"
    )
    sidecar = {
        "schema": "fairdml-model-card/1",
        "generated": generated,
        "model_name": model_name,
        "fairdml_version": __version__,
        "run_folder": run.path.name,
        "group_attribute": run.group_attribute,
        "inputs": dataclasses.asdict(inputs),
        "config": run.config,
        "report": run.report,
        "data_summary": run.data_summary,
        "verification": _verification_summary(verification, view) if verification is not None else None,
        "eval_results": [dataclasses.asdict(r) for r in card_data.eval_results or []],
    }
    paths["data"].write_text(
        json.dumps(_strict_json(sidecar), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return paths


def _verification_summary(verification: Verification, view: dict | None) -> dict[str, Any]:
    counts, pairs, eq = verification.counts, verification.pairs, verification.equal_fmr
    return {
        "settings": dataclasses.asdict(verification.settings),
        "operating_index": verification.operating_index,
        "operating_threshold": float(counts.thresholds[verification.operating_index]),
        "rates_at_operating_threshold": verification.rates,
        "equal_fmr": {
            "target_fmr": eq["target_fmr"],
            "groups": {
                name: {"threshold": eq["threshold"][g], "fmr": eq["fmr"][g], "fnmr": eq["fnmr"][g]}
                for g, name in enumerate(counts.group_names)
            },
        },
        "pairs": {
            name: {
                "genuine": int(counts.genuines[g]),
                "impostor": int(counts.impostors[g]),
                "available_genuine": int(pairs.available_genuine[g]),
                "available_impostor": int(pairs.available_impostor[g]),
            }
            for g, name in enumerate(counts.group_names)
        },
        "grid": view,
    }


def screenshot_card(
    html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1280, chromium: str = CHROMIUM
) -> Path:
    """Full-page PNG of a card with headless Chromium (Playwright), e.g. for the docs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError("screenshots need playwright: pip install playwright") from error
    if not Path(chromium).is_file():
        raise FileNotFoundError(
            f"Chromium not found at {chromium}: apt-get install chromium (or set FAIRDML_CHROMIUM)"
        )
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(Path(html_path).resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(png_path), full_page=True)
        finally:
            browser.close()
    return png_path


def main(argv: list[str] | None = None) -> None:
    """`python -m fairdml.reports.card RUN_DIR [--inputs YAML] [--out DIR] [--screenshot PNG]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--inputs", default=None, help="YAML with the fields only a person can fill")
    parser.add_argument("--out", default=None, help="output folder (default: the run folder)")
    parser.add_argument("--screenshot", default=None, help="also save a full-page PNG of the HTML card here")
    args = parser.parse_args(argv)
    paths = write_model_card(args.run_dir, args.inputs, args.out)
    if args.screenshot:
        paths["screenshot"] = screenshot_card(paths["html"], args.screenshot)
    for path in paths.values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
