"""The card's YAML front matter in the Hugging Face format (huggingface_hub's ModelCardData/EvalResult).

Hugging Face's model-index has no notion of groups, so each group is a slice: its results carry
dataset_config "ATTRIBUTE=GROUP" (part of an EvalResult's identity, so every slice stays its own entry and
loads back unchanged) and dataset_args repeating it as data. Gaps are slice "gap:ATTRIBUTE"; downstream
classifiers are "downstream:TASK[:ATTRIBUTE=GROUP]". The full data goes in the sidecar JSON.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from fairdml.reports.card.blocks import value_of
from fairdml.reports.card.inputs import CardInputs
from fairdml.reports.card.metric_names import metric_info
from fairdml.reports.card.results import downstream_tasks, flat_report
from fairdml.reports.card.verification import Verification
from fairdml.reports.runs import Run
from fairdml.utils.group_names import EQUALS
from fairdml.utils.numbers import finite_number

TASK = {
    "task_type": "image-feature-extraction",
    "task_name": "Deep metric learning (retrieval of unseen classes)",
}
TAGS = ["fairdml", "deep-metric-learning", "fairness", "image-retrieval", "model-card"]


def _finite(value: Any) -> float | None:
    return finite_number(value_of(value))


class _Results:
    """Collects EvalResults of one dataset, skipping values that are not finite numbers."""

    def __init__(self, dataset_id: str, dataset_name: str) -> None:
        self.dataset = {"dataset_type": dataset_id, "dataset_name": dataset_name, "dataset_split": "test"}
        self.items: list[EvalResult] = []

    def add(self, slice_name: str, args: dict, metric: str, value: Any, metric_args: dict | None = None) -> None:
        number = _finite(value)
        if number is None:
            return
        metric_args = {k: v for k, v in (metric_args or {}).items() if v is not None} or None
        self.items.append(
            EvalResult(
                **TASK, **self.dataset, dataset_config=slice_name, dataset_args=args, metric_type=metric,
                metric_value=number, metric_name=f"{metric_info(metric)[0]} [{slice_name}]",
                metric_args=metric_args,
            )
        )  # fmt: skip


def _add_verification(results: _Results, slice_name: str, args: dict, rates: dict) -> None:
    for kind, errors, pairs in (
        ("fmr", "false_matches", "impostors"),
        ("fnmr", "false_non_matches", "genuines"),
    ):
        extra = {"threshold": rates["threshold"], "errors": rates[errors], "pairs": rates[pairs]}
        results.add(slice_name, args, kind, rates[kind], {**extra, "interval_wilson95": list(rates[f"{kind}_ci95"])})


def _add_downstream(results: _Results, attribute: str, downstream: Any) -> None:
    """Downstream figures: slice "downstream:TASK" overall, "...:ATTRIBUTE=GROUP" per group, "...:gap"."""
    for task, entry in downstream_tasks(downstream if isinstance(downstream, dict) else {}):
        flat, base = flat_report(entry), f"downstream:{task}"
        for metric, value in flat["overall"].items():
            results.add(base, {"task": task, "n": flat["n"]}, f"downstream/{metric}", value)
        for group, values in flat["groups"].items():
            args = {"task": task, "group_attribute": attribute, "group": group, "n": values.get("n")}
            for metric, value in values.items():
                if metric != "n":
                    results.add(f"{base}:{group_slice(attribute, group)}", args, f"downstream/{metric}", value)
        for metric, gap in (entry.get("gaps") or {}).items():
            if isinstance(gap, dict):
                extra = {
                    "min_over_max": _finite(gap.get("min_over_max")),
                    "worst_group": gap.get("worst_group"),
                }
                name = f"downstream/{metric}/max_minus_min"
                results.add(f"{base}:gap", {"task": task}, name, gap.get("max_minus_min"), extra)


def group_slice(attribute: str, group: str) -> str:
    """A group's slice name: "ATTRIBUTE=GROUP", or the group's own name when it already is one (crossed and
    marginal groups are named "A=1|B=0", "A=1")."""
    return group if EQUALS in group else f"{attribute}={group}"


def build_eval_results(
    run: Run, verification: Verification | None, dataset_id: str, dataset_name: str
) -> list[EvalResult]:
    """One result per metric and slice: "overall", one slice per group, gaps and downstream tasks."""
    report, attribute = run.report, run.group_attribute
    intervals = report.get("intervals") or {}
    results = _Results(dataset_id, dataset_name)
    slices = [("overall", None, None, report.get("n"), report.get("overall") or {})]
    sets = [(attribute, report), *(report.get("marginals") or {}).items()]  # crossed groups: marginals too
    slices += [
        (group_slice(a, g), a, g, e.get("n"), e)
        for a, entries in sets
        for g, e in (entries.get("groups") or {}).items()
    ]
    for slice_name, group_attribute, group, n, values in slices:
        args = {"group_attribute": group_attribute, "group": group, "n": n} if group is not None else {"n": n}
        if group is not None and values.get("small"):
            args["small"] = True  # below report.json's settings.min_group_size: figures uncertain
        for metric, value in values.items():
            if metric not in ("n", "small"):
                ci = (intervals.get(metric) or {}).get(group if group is not None else "overall")
                results.add(slice_name, args, metric, value, {"interval": list(ci) if ci else None})
        if verification is not None and group in verification.rates:
            _add_verification(results, slice_name, args, verification.rates[group])
    for group_attribute, entries in sets:
        gap_args = {"group_attribute": group_attribute, "groups": list(entries.get("groups") or {})}
        for metric, gap in (entries.get("gaps") or {}).items():
            if isinstance(gap, dict):
                extra = {"min_over_max": _finite(gap.get("min_over_max")), "worst_group": gap.get("worst_group")}
                if gap.get("worst_group_small"):
                    extra["worst_group_small"] = True
                if gap.get("small_groups_excluded"):
                    extra["small_groups_excluded"] = list(gap["small_groups_excluded"])
                results.add(
                    f"gap:{group_attribute}", gap_args, f"{metric}/max_minus_min", gap.get("max_minus_min"), extra
                )
    _add_downstream(results, attribute, report.get("downstream"))
    return results.items


def build_card_data(run: Run, inputs: CardInputs, verification: Verification | None, model_name: str) -> ModelCardData:
    """The front matter: licence, tags, datasets and the eval results."""
    eval_results = build_eval_results(run, verification, run.dataset, f"{run.dataset} (test split, class-disjoint)")
    return ModelCardData(
        model_name=model_name,
        license=inputs.license,
        library_name="fairdml",
        pipeline_tag="image-feature-extraction",
        tags=TAGS,
        datasets=inputs.datasets,
        metrics=sorted({r.metric_type for r in eval_results}) or None,
        eval_results=eval_results or None,
    )
