"""`fairdml evaluate RUN_DIR [key=value ...]`: the downstream protocol (fairdml.downstream) on a finished run folder.

This module is the run folder's side: config.yaml (with overrides), the test embeddings from
embeddings_test.npz (else embedded again with model.pt), the test split rebuilt from the config when the label
is an attribute, and report.json's "downstream" key written back. The maths is in
`fairdml.downstream.protocol`; `evaluation.downstream=true` runs it at the end of training instead
(`fairdml.downstream.from_config.downstream_for_datamodule`, importable from here as before).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from fairdml.config import load_run_config
from fairdml.data.intersections import group_attribute_name
from fairdml.downstream.from_config import (
    attach_target,
    check_downstream_label,
    downstream_for_datamodule,
    evaluate_with_config,
)
from fairdml.downstream.protocol import DownstreamData
from fairdml.metrics.functional._common import encode_groups
from fairdml.reports.report import load_report
from fairdml.utils.atomic import read_json, write_json
from fairdml.utils.run_layout import RunPaths

# the two training hooks are re-exported: fairdml.train imports them from here
__all__ = [
    "check_downstream_label", "downstream_for_datamodule", "format_summary", "load_run_config", "load_run_data",
    "run_evaluate",
]  # fmt: skip


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
    from fairdml.models.inference import embed_dataset

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
        attach_target(data, view if view is not None else _test_view(cfg, label), label)
    return data


def run_evaluate(run_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """`fairdml evaluate RUN_DIR [key=value ...]`: downstream evaluation into RUN_DIR/report.json."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    summary_path = RunPaths(run_dir).data_summary
    summary = read_json(summary_path, "data summary") if summary_path.is_file() else {}
    report_path = RunPaths(run_dir).report
    report = load_report(report_path) if report_path.is_file() else {}  # a JSON that is no report: refused now
    result = evaluate_with_config(cfg, load_run_data(run_dir, cfg, summary), summary.get("minority_group"))
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
