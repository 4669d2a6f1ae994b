"""Summarise experiments/mitigation_study_2.sh (issue 27): the tables of docs/mitigations.md's round two.

    python experiments/study2_summary.py outputs/study2 experiments/results

writes `study2.jsonl` (one line per run, as `mitigation_summary.py` writes them, plus the FMR per group at the
card's default threshold) and `study2_tables.md`, and prints the tables:
- per set-up (from scratch, pretrained): mean ± std over seeds; the gap's interval is fairdml's report interval
  (`fairdml.metrics.functional.intervals.gap_interval`, test inversion) of the seeds' mean group figures: each
  seed's test classes resampled as in its own report, the group means averaged over seeds resample by resample;
- paired with the baseline of the same seed (same split, same test classes, same resamples): Δ ± std over seeds,
  and the percentile interval of the seeds' mean Δ over the shared resamples;
- the goal (gap ≤ 0.05, interval clear of the baseline's, overall Recall@1 ≥ group-balanced sampling's);
- GroupDRO's step-size sweep, chosen on the validation classes;
- round one's runs of the from-scratch methods not re-run (experiments/results/mitigations.jsonl), after the
  re-run baseline and group-balanced runs are checked to reproduce their round-one figures.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import mitigation_summary as ms  # same folder: the script's own
import numpy as np
import torch

from fairdml.metrics.functional.intervals import (
    class_membership,
    class_resample_counts,
    gap_interval,
    percentile_interval,
    small_sample_scale,
    variance_ratio,
)
from fairdml.reports.card.inputs import VerificationSettings
from fairdml.reports.card.verification import compute_verification

ms.CHECK_REPORT_INTERVAL = False  # every interval below is recomputed from the runs' test embeddings
ms.SETTINGS |= {"pretrained": "pretrained", "scratch": "scratch", "dro_sweep": "dro_sweep"}
METHODS = [
    "baseline", "group_balanced", "reweighted", "worst_group_heldout", "parade", "parade_paper",
    "group_balanced_parade", "fpr_penalty", "fair_contrastive", "group_balanced_fpr_penalty",
    "group_balanced_fair_contrastive",
]  # fmt: skip
GROUPS = ms.GROUPS
fmt = ms.fmt
STUDY_STEP = 0.3  # configs/experiment/worst_group_heldout.yaml
CARD = VerificationSettings()  # the card's defaults: the operating threshold where the pooled FMR is 0.01


def test_split_figures(run: Path, report: dict) -> dict[str, Any]:
    """From the run's test embeddings (read once): each group's false match rate at the card's default operating
    threshold (pairs sampled as the card does), and each group's number of test classes and the class bootstrap's
    variance ratio (as its report's intervals have them)."""
    data = np.load(run / "embeddings_test.npz")
    labels, groups = data["labels"], data["groups"].astype(str)
    verification = compute_verification({"embeddings": data["embeddings"], "labels": labels, "groups": groups}, CARD)
    fmr = {g: verification.rates[g]["fmr"] for g in GROUPS} | {"threshold": verification.operating_threshold}
    _, class_index = torch.unique(torch.as_tensor(labels), return_inverse=True)
    codes = torch.as_tensor([GROUPS.index(g) for g in groups])
    n_classes = int(class_index.max()) + 1
    settings = report["settings"]
    counts = class_resample_counts(n_classes, settings["bootstrap_resamples"], settings["seed"])
    members = class_membership(torch.zeros(len(codes)), class_index, codes, len(GROUPS), n_classes)
    return {"fmr": fmr, "classes": members.sum(dim=0).tolist(), "ratio": variance_ratio(counts, members).tolist()}


def collect(root: Path) -> tuple[list[dict], list[dict]]:
    lines, draws = [], []
    for sweep in sorted(p for p in root.iterdir() if (p / "sweep.json").is_file()):
        for record in json.loads((sweep / "sweep.json").read_text())["runs"]:
            if record["status"] != "finished":
                continue
            run = sweep / record["run_dir"]
            line, run_draws = ms.summary(run, sweep.name, record["overrides"])
            values = dict(o.split("=", 1) for o in record["overrides"])
            # the convergence check's "still rising" window: the last 10 epochs, whatever the budget (45 or 60)
            line["late_gain"] = ms.late_gain([tuple(c) for c in line["val_curve"]], after=line["epochs_trained"] - 10)
            line["step_size"] = float(values.get("callbacks.worst_group.step_size", "nan"))
            figures = test_split_figures(run, json.loads((run / "report.json").read_text()))
            line["fmr"] = figures["fmr"]
            line["fmr_gap"] = abs(line["fmr"]["minority"] - line["fmr"]["majority"])
            run_draws["classes"], run_draws["ratio"] = figures["classes"], figures["ratio"]
            # the run's own gap interval, by the current method (its report's was written by the code of its day)
            line["recall@1_gap_interval"] = mean_gap_interval(
                [run_draws | {f"point_{g}": line["recall@1_groups"][g] for g in GROUPS}]
            )
            lines.append(line)
            draws.append(run_draws)
    return lines, draws


def mean_gap_interval(ds: list[dict]) -> list[float]:
    """The report's gap interval (test inversion) for the seeds' mean group figures: the resamples averaged over
    seeds, the small-sample expansion with the seeds' classes pooled (df = their sum of n - 1) and the mean of
    their variance ratios. Its point is the gap of the mean group figures, the mean gap when one group is the
    worst in every seed."""
    means = torch.tensor([np.mean([d[f"point_{g}"] for d in ds]) for g in GROUPS], dtype=torch.float64)
    resampled = torch.as_tensor(np.stack([np.mean([d[g] for d in ds], axis=0) for g in GROUPS], axis=-1))
    classes = torch.as_tensor(np.sum([d["classes"] for d in ds], axis=0), dtype=torch.float64)
    ratio = torch.as_tensor(np.mean([d["ratio"] for d in ds], axis=0), dtype=torch.float64)
    return gap_interval(means, resampled, 0.95, small_sample_scale(classes, ratio, 0.95)).tolist()


def rows_of(lines: list[dict], draws: list[dict], setting: str) -> dict[str, list[tuple[dict, dict]]]:
    rows = defaultdict(list)
    for line, d in zip(lines, draws, strict=True):
        if line["setting"] == setting:
            d = d | {f"point_{g}": line["recall@1_groups"][g] for g in GROUPS}
            rows[line["method"]].append((line, d))
    return {m: sorted(rows[m], key=lambda item: item[0]["seed"]) for m in METHODS if m in rows}


def table(rows: dict) -> tuple[str, dict]:
    out = [
        "| method | seeds | overall R@1 | majority R@1 | minority R@1 | R@1 gap [95 % interval] "
        "| FMR majority / minority at the card's threshold | FMR gap | downstream gap (balanced) | linear CKA |",
        "|" + "---|" * 10,
    ]
    points = {}
    for name, group in rows.items():
        ls, ds = [g[0] for g in group], [g[1] for g in group]
        gap_ci, overall_ci = mean_gap_interval(ds), ms.seed_mean(ds, "overall")
        points[name] = {"overall": float(np.mean([x["recall@1"] for x in ls])), "overall_interval": overall_ci,
                        "gap": float(np.mean([x["recall@1_gap"] for x in ls])), "gap_interval": gap_ci}  # fmt: skip
        cells = [
            name, ",".join(str(x["seed"]) for x in ls), fmt([x["recall@1"] for x in ls], overall_ci),
            *(fmt([x["recall@1_groups"][g] for x in ls]) for g in GROUPS),
            fmt([x["recall@1_gap"] for x in ls], gap_ci),
            " / ".join(f"{np.mean([x['fmr'][g] for x in ls]):.4f}" for g in GROUPS),
            fmt([x["fmr_gap"] for x in ls], digits=4),
            fmt([x["downstream_gap"]["balanced"] for x in ls]), fmt([x["linear_cka"] for x in ls]),
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out), points


def paired_table(rows: dict) -> str:
    """Each method minus the same seed's baseline; the interval of the mean Δ gap over the shared resamples."""
    base = {line["seed"]: (line, d) for line, d in rows.get("baseline", [])}
    out = [
        "| method | seeds | Δ overall R@1 | Δ majority R@1 | Δ minority R@1 | Δ gap [95 % paired interval] "
        "| Δ FMR gap |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, group in rows.items():
        pairs = [(line, d, *base[line["seed"]]) for line, d in group if name != "baseline" and line["seed"] in base]
        if not pairs:
            continue
        delta_draws = np.mean([d["gap"] - bd["gap"] for _, d, _, bd in pairs], axis=0)
        cells = [
            fmt([a["recall@1"] - b["recall@1"] for a, _, b, _ in pairs]),
            *(fmt([a["recall@1_groups"][g] - b["recall@1_groups"][g] for a, _, b, _ in pairs]) for g in GROUPS),
            fmt([a["recall@1_gap"] - b["recall@1_gap"] for a, _, b, _ in pairs],
                percentile_interval(torch.as_tensor(delta_draws), 0.95)),
            fmt([a["fmr_gap"] - b["fmr_gap"] for a, _, b, _ in pairs], digits=4),
        ]  # fmt: skip
        out.append(f"| {name} | {','.join(str(a['seed']) for a, *_ in pairs)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def goal_table(points: dict) -> str:
    """Gap ≤ 0.05, interval clear of (below) the baseline's, overall ≥ group-balanced sampling's."""
    base, balanced = points.get("baseline"), points.get("group_balanced")
    out = ["| method | gap (≤ 0.05?) | interval below the baseline's? | overall R@1 ≥ group_balanced's? | goal |",
           "|---|---|---|---|---|"]  # fmt: skip
    for name, p in points.items():
        small = p["gap"] <= 0.05
        clear = base is not None and p["gap_interval"][1] < base["gap_interval"][0]
        accurate = balanced is not None and p["overall"] >= balanced["overall"]
        mark = lambda ok: "yes" if ok else "no"  # noqa: E731
        out.append(
            f"| {name} | {p['gap']:.3f} ({mark(small)}; {p['gap'] - 0.05:+.3f}) | {mark(clear)} "
            f"| {p['overall']:.3f} ({mark(accurate)}; {p['overall'] - balanced['overall']:+.3f}) "
            f"| {mark(small and clear and accurate)} |"
        )
    return "\n".join(out)


def dro_sweep(lines: list[dict]) -> str:
    """GroupDRO (held-out group losses) by step size, from scratch, seeds 0 and 1: validation figures at the
    selected checkpoint choose the step; the test figures are shown beside them."""
    runs = [x for x in lines if x["method"] == "worst_group_heldout" and x["setting"] in ("scratch", "dro_sweep")]
    by_step = defaultdict(list)
    for x in runs:  # the study's own runs use the experiment's step size
        by_step[x["mitigations"]["worst_group"] and STUDY_STEP if np.isnan(x["step_size"]) else x["step_size"]].append(
            x
        )
    out = [
        "| step size | seeds | val R@1 | val gap | test R@1 | test gap | final q (minority) |",
        "|---|---|---|---|---|---|---|",
    ]
    for step in sorted(by_step):
        xs = sorted((x for x in by_step[step] if x["seed"] in (0, 1)), key=lambda x: x["seed"])
        best = [max(x["val_curve"], key=lambda c: c[1]) for x in xs]
        q = [x["mitigations"]["worst_group"]["final_q"]["minority"] for x in xs]
        out.append(
            f"| {step} | {','.join(str(x['seed']) for x in xs)} | {fmt([b[1] for b in best])} "
            f"| {fmt([b[2] for b in best])} | {fmt([x['recall@1'] for x in xs])} "
            f"| {fmt([x['recall@1_gap'] for x in xs])} | {fmt(q)} |"
        )
    return "\n".join(out)


def round_one(results: Path, lines: list[dict]) -> str:
    """The reproduction check, and round one's rows of the from-scratch methods not re-run."""
    old = [json.loads(t) for t in (results / "mitigations.jsonl").read_text().splitlines()]
    old_main = {(x["method"], x["seed"]): x for x in old if x["setting"] == "main"}
    check = [
        "The same seeds re-run now against round one (same configs, code changed since; a run is not bit-identical "
        "to its round-one twin, the cause not traced; the means over seeds are what carries over):",
        "",
    ]
    for method in ("baseline", "group_balanced"):
        mine = [x for x in lines if x["setting"] == "scratch" and x["method"] == method]
        pairs = [(x, old_main[(method, x["seed"])]) for x in mine if (method, x["seed"]) in old_main]
        if pairs:
            now, then = [a for a, _ in pairs], [b for _, b in pairs]
            check.append(
                f"- {method}, seeds {','.join(str(a['seed']) for a in now)}: gap now "
                f"{fmt([a['recall@1_gap'] for a in now])}, round one {fmt([b['recall@1_gap'] for b in then])}; "
                f"overall now {fmt([a['recall@1'] for a in now])}, round one {fmt([b['recall@1'] for b in then])}"
            )
    out = [*check, "", "| method (round one) | seeds | overall R@1 | majority R@1 | minority R@1 | R@1 gap |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for method in ("reweighted", "worst_group", "parade", "parade_paper", "group_balanced_parade"):
        xs = sorted((x for x in old if x["setting"] == "main" and x["method"] == method), key=lambda x: x["seed"])
        cells = [fmt([x["recall@1"] for x in xs]), *(fmt([x["recall@1_groups"][g] for x in xs]) for g in GROUPS),
                 fmt([x["recall@1_gap"] for x in xs])]  # fmt: skip
        out.append(f"| {method} | {','.join(str(x['seed']) for x in xs)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(root: Path, results: Path) -> None:
    lines, draws = collect(root)
    with open(results / "study2.jsonl", "w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    sections = []
    titles = {"scratch": "From scratch", "pretrained": "Pretrained (fairdml:rotations, 45 epochs)"}
    for setting, title in titles.items():
        rows = rows_of(lines, draws, setting)
        if not rows:
            continue
        text, points = table(rows)
        sections.append(
            f"### {title}\n\n{text}\n\nPaired with the baseline of the same seed:\n\n{paired_table(rows)}\n\n"
            f"Against the goal:\n\n{goal_table(points)}"
        )
    sections.append("### GroupDRO's step size (held-out group losses, from scratch)\n\n" + dro_sweep(lines))
    sections.append("### Round one's from-scratch rows\n\n" + round_one(results, lines))
    sections.append("### Convergence check\n\n" + ms.convergence_table(lines))
    (results / "study2_tables.md").write_text("\n\n".join(sections) + "\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
