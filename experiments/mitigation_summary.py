"""Summarise experiments/mitigation_study.sh: one JSON line per run, then the tables and the Pareto plot of
docs/mitigations.md.

    python experiments/mitigation_summary.py outputs/mitigations experiments/results [docs/mitigations_pareto.png]

writes `mitigations.jsonl` (per run: test figures at the selected checkpoint, the gap's class-bootstrap
interval, linear CKA and leakage, the downstream gaps, what the mitigation measured, the validation curve) and
`mitigations_tables.md` in the results folder, and the Pareto plot.

The interval of a mean over seeds: each seed's test classes are resampled (1000 times, seeded as its own
report, so each seed's interval equals its report's), each resample's gap is computed per seed, and the
seeds' gaps are averaged resample by resample; percentile interval of those means. It covers the choice of
test classes, not training noise: that is the std over seeds beside it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from convergence_summary import val_curve  # same folder: the script's own

from fairdml.metrics.functional.decorrelation import attribute_cka
from fairdml.metrics.functional.intervals import (
    class_resample_counts,
    gap_draws,
    percentile_interval,
    resampled_group_means,
)
from fairdml.metrics.functional.retrieval import retrieval_per_query

SETTINGS = {"main": "main_", "local": "local_", "strength": "strength", "share005": "share005", "classes": "classes"}
METHODS = ["baseline", "group_balanced", "reweighted", "worst_group", "parade", "parade_paper", "group_balanced_parade"]
GROUPS = ("majority", "minority")
# Round one's reports hold percentile gap intervals, which the draws reproduce; round two's summary recomputes
# every interval from the embeddings with the current method instead (experiments/study2_summary.py).
CHECK_REPORT_INTERVAL = True


def setting_of(sweep: str) -> str:
    return next(name for name, prefix in SETTINGS.items() if sweep.startswith(prefix))


def resampled(run: Path, report: dict) -> dict[str, np.ndarray]:
    """(R,) resampled overall recall@1, per-group recall@1 and gap of one run, drawn as its report's intervals."""
    data = np.load(run / "embeddings_test.npz")
    z = torch.nn.functional.normalize(torch.as_tensor(data["embeddings"]).float(), dim=-1)
    labels = torch.as_tensor(data["labels"])
    names = sorted(set(data["groups"].tolist()))
    codes = torch.as_tensor([names.index(g) for g in data["groups"].tolist()])
    settings = report["settings"]
    hits = retrieval_per_query(z, labels, (1,), distance=settings["distance"]).recall[1]
    _, class_index = torch.unique(labels, return_inverse=True)
    counts = class_resample_counts(int(class_index.max()) + 1, settings["bootstrap_resamples"], settings["seed"])
    means = resampled_group_means(hits, class_index, codes, len(names), counts)
    overall = resampled_group_means(hits, class_index, torch.zeros_like(codes), 1, counts)[:, 0]
    out = {"overall": overall.numpy(), "gap": gap_draws(means).numpy()}
    out |= {name: means[:, g].numpy() for g, name in enumerate(names)}
    if CHECK_REPORT_INTERVAL:  # the draws must reproduce the report's own interval: same queries, classes, seed
        mine = percentile_interval(torch.as_tensor(out["gap"]), settings["confidence"])
        assert np.allclose(mine, report["intervals"]["recall@1"]["gap"], atol=1e-9), (run, mine)
    out["cka"] = np.array(attribute_cka(z, codes))
    return out


def plateau_epoch(values: list[float], tol: float = 0.01, window: int = 10) -> int | None:
    """The plateau rule of docs/mitigations.md: the first epoch e after which the best validation Recall@1 rises
    by less than `tol` within the next `window` epochs (None: no such epoch is visible in the curve)."""
    for e in range(len(values) - window):
        if max(values[e + 1 : e + 1 + window]) - max(values[: e + 1]) < tol:
            return e
    return None


def late_gain(curve: list[tuple[int, float, float]], after: int = 50) -> float | None:
    """How much the best validation Recall@1 rose in the epochs from `after` on (None: the run stopped before)."""
    early = [v for e, v, _ in curve if e < after]
    late = [v for e, v, _ in curve if e >= after]
    return round(max(late) - max(early), 4) if early and late else None


def convergence_table(lines: list[dict]) -> str:
    """Per setting and method: each seed's plateau epoch, selected epoch, and the late gain (the check that
    60 epochs were enough: a gain of 0.01 or more after epoch 50 means the run was still improving)."""
    out = [
        "| setting | method | plateau epoch per seed | selected epoch per seed | runs rising in the last 10 epochs |",
        "|---|---|---|---|---|",
    ]
    rows = defaultdict(list)
    for line in lines:
        name = line["method"] if line["strength"] is None else f"parade ρ′={line['strength']}"
        rows[(line["setting"], name)].append(line)
    for (setting, method), runs in rows.items():
        runs.sort(key=lambda x: x["seed"])
        selected = [int(x["best_checkpoint"].split("-")[-1].split(".")[0]) for x in runs]
        rising = sum(1 for x in runs if (x["late_gain"] or 0) >= 0.01)
        plateaus = ", ".join("–" if x["plateau_epoch"] is None else str(x["plateau_epoch"]) for x in runs)
        out.append(f"| {setting} | {method} | {plateaus} | {', '.join(map(str, selected))} | {rising} of {len(runs)} |")
    return "\n".join(out)


def downstream_gap(report: dict, protocol: str) -> float | None:
    entry = report.get("downstream", {}).get(protocol)
    return None if entry is None else entry["gaps"]["accuracy"]["max_minus_min"]


def summary(run: Path, sweep: str, overrides: list[str]) -> tuple[dict, dict[str, np.ndarray]]:
    report = json.loads((run / "report.json").read_text())
    values = dict(o.split("=", 1) for o in overrides)
    curve = [(epoch, round(value, 4), round(gap, 4)) for epoch, value, gap in val_curve(run)]
    draws = resampled(run, report)
    groups = report["groups"]
    line = {
        "setting": setting_of(sweep),
        "method": report["meta"]["experiment"],
        "seed": report["meta"]["seed"],
        "strength": float(values["callbacks.parade.strength"]) if "callbacks.parade.strength" in values else None,
        "run": f"{sweep}/{run.name}",
        "best_checkpoint": report["meta"]["best_checkpoint"],
        "epochs_trained": report["meta"]["epochs_trained"],
        "recall@1": report["overall"]["recall@1"],
        "recall@1_groups": {g: groups[g]["recall@1"] for g in GROUPS},
        "recall@1_gap": report["gaps"]["recall@1"]["max_minus_min"],
        "recall@1_gap_interval": report["intervals"]["recall@1"]["gap"],
        "map@r_gap": report["gaps"]["map@r"]["max_minus_min"],
        "attribute_leakage": report["overall"]["attribute_leakage"],
        "linear_cka": float(draws.pop("cka")),
        "downstream_gap": {p: downstream_gap(report, p) for p in ("unbalanced", "balanced")},
        "plateau_epoch": plateau_epoch([v for _, v, _ in curve]),
        "late_gain": late_gain(curve),
        "mitigations": {name: e.get("measured") for name, e in report.get("mitigations", {}).items()},
        "val_curve": curve,
    }
    return line, draws


def collect(root: Path) -> tuple[list[dict], list[dict[str, np.ndarray]]]:
    lines, draws = [], []
    for sweep in sorted(p for p in root.iterdir() if (p / "sweep.json").is_file()):
        manifest = json.loads((sweep / "sweep.json").read_text())
        for record in manifest["runs"]:
            if record["status"] != "finished":
                continue
            line, run_draws = summary(sweep / record["run_dir"], sweep.name, record["overrides"])
            lines.append(line)
            draws.append(run_draws)
    return lines, draws


def fmt(values: list[float], interval: list[float] | None = None, digits: int = 3) -> str:
    text = f"{np.mean(values):.{digits}f}"
    text += f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return text + (f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]" if interval else "")


def seed_mean(draws: list[dict[str, np.ndarray]], key: str) -> list[float] | None:
    return percentile_interval(torch.as_tensor(np.mean([d[key] for d in draws], axis=0)), 0.95)


def table(lines: list[dict], draws: list[dict], setting: str, key: str = "method") -> tuple[str, dict]:
    """Markdown table of one setting, one row per method (or strength): mean ± std over seeds [interval]."""
    rows = defaultdict(list)
    for line, d in zip(lines, draws, strict=True):
        if line["setting"] == setting:
            rows[line[key]].append((line, d))
    order = METHODS if key == "method" else sorted(rows)
    head = (
        f"| {key} | seeds | overall R@1 | majority R@1 | minority R@1 | R@1 gap [95 % class bootstrap] "
        "| linear CKA | leakage | downstream gap (unbalanced) | downstream gap (balanced) |"
    )
    out = [head, "|" + "---|" * 10]
    points = {}
    for name in (n for n in order if n in rows):
        group = sorted(rows[name], key=lambda item: item[0]["seed"])
        ls, ds = [g[0] for g in group], [g[1] for g in group]
        gap_interval, overall_interval = seed_mean(ds, "gap"), seed_mean(ds, "overall")
        points[name] = {
            "overall": float(np.mean([x["recall@1"] for x in ls])),
            "gap": float(np.mean([x["recall@1_gap"] for x in ls])),
            "overall_interval": overall_interval,
            "gap_interval": gap_interval,
        }
        cells = [
            str(name), ",".join(str(x["seed"]) for x in ls),
            fmt([x["recall@1"] for x in ls], overall_interval),
            fmt([x["recall@1_groups"]["majority"] for x in ls]),
            fmt([x["recall@1_groups"]["minority"] for x in ls]),
            fmt([x["recall@1_gap"] for x in ls], gap_interval),
            fmt([x["linear_cka"] for x in ls]),
            fmt([x["attribute_leakage"] for x in ls]),
            fmt([x["downstream_gap"]["unbalanced"] for x in ls]),
            fmt([x["downstream_gap"]["balanced"] for x in ls]),
        ]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out), points


def paired_table(lines: list[dict], setting: str) -> str:
    """Each method minus the baseline of the same seed: does it raise the minority, and at what cost?"""
    runs = {(x["method"], x["seed"]): x for x in lines if x["setting"] == setting}
    out = ["| method | seeds | Δ overall R@1 | Δ majority R@1 | Δ minority R@1 | Δ gap |", "|---|---|---|---|---|---|"]
    for method in METHODS[1:]:
        seeds = sorted(seed for (m, seed) in runs if m == method and ("baseline", seed) in runs)
        if not seeds:
            continue
        pairs = [(runs[(method, seed)], runs[("baseline", seed)]) for seed in seeds]
        cells = [
            fmt([a["recall@1"] - b["recall@1"] for a, b in pairs]),
            *(fmt([a["recall@1_groups"][g] - b["recall@1_groups"][g] for a, b in pairs]) for g in GROUPS),
            fmt([a["recall@1_gap"] - b["recall@1_gap"] for a, b in pairs]),
        ]
        out.append(f"| {method} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def pareto(panels: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, points) in zip(axes[0], panels.items(), strict=True):
        for name, p in points.items():
            xerr = np.abs(np.array(p["overall_interval"])[:, None] - p["overall"])
            yerr = np.abs(np.array(p["gap_interval"])[:, None] - p["gap"])
            color = f"C{METHODS.index(name)}" if name in METHODS else None  # one colour per method in every panel
            ax.errorbar(p["overall"], p["gap"], xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=str(name), color=color)
        ax.set(xlabel="overall Recall@1 (test)", ylabel="Recall@1 gap, majority − minority", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def correlations(lines: list[dict]) -> str:
    """Spearman correlation, over runs, of each de-correlation figure (and the downstream gap) with the Recall@1
    gap. Across methods a figure can follow the gap only because the method moves both: the within-method
    lines hold the method fixed."""
    from scipy.stats import spearmanr

    def line(label: str, figures: list[float], runs: list[dict]) -> str:
        if len(runs) < 3:
            return f"- {label}: too few runs ({len(runs)})"
        rho = spearmanr(figures, [x["recall@1_gap"] for x in runs])
        return f"- {label} (n={len(runs)}): Spearman ρ = {rho.statistic:.2f} (p = {rho.pvalue:.2g})"

    out = []
    for setting in ("main", "local", "strength"):
        parade = [x for x in lines if "parade" in x["mitigations"] and x["setting"] == setting]
        shared = [x["mitigations"]["parade"]["style"]["shared_cosine"] for x in parade]
        out.append(line(f"{setting}, PARADE runs: shared_cosine (fresh-P de-correlation) vs gap", shared, parade))
    for method in ("parade", "parade_paper", "group_balanced_parade"):  # within one method: seeds only differ
        runs = [x for x in lines if x["setting"] == "main" and x["method"] == method]
        shared = [x["mitigations"]["parade"]["style"]["shared_cosine"] for x in runs]
        out.append(line(f"main, {method} alone: shared_cosine vs gap", shared, runs))
    for setting in ("main", "local"):
        runs = [x for x in lines if x["setting"] == setting]
        for figure in ("linear_cka", "attribute_leakage"):
            out.append(line(f"{setting}, all methods: {figure} vs gap", [x[figure] for x in runs], runs))
        balanced = [x["downstream_gap"]["balanced"] for x in runs]
        out.append(line(f"{setting}, all methods: downstream gap (balanced) vs Recall@1 gap", balanced, runs))
    return "\n".join(out)


def main(root: Path, results: Path, plot: Path) -> None:
    lines, draws = collect(root)
    with open(results / "mitigations.jsonl", "w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    sections, panels = [], {}
    titles = {
        "main": "Main table (minority share 0.1, global attribute)",
        "local": "Local attribute (strokes only)",
        "share005": "Minority share 0.05",
        "classes": "imbalance_by=classes",
    }
    for setting, title in titles.items():
        if any(x["setting"] == setting for x in lines):
            text, points = table(lines, draws, setting)
            sections.append(
                f"### {title}\n\n{text}\n\nPaired with the baseline of the same seed:\n\n"
                + paired_table(lines, setting)
            )
            panels[title] = points
    # the sweep's strengths beside the main table's own ρ′ (its seed-0 parade run)
    at_default = [
        (x | {"setting": "strength", "strength": x["mitigations"]["parade"]["style"]["strength"]}, d)
        for x, d in zip(lines, draws, strict=True)
        if x["setting"] == "main" and x["method"] == "parade" and x["seed"] == 0
    ]
    if any(x["setting"] == "strength" for x in lines):
        text, points = table(
            lines + [x for x, _ in at_default], draws + [d for _, d in at_default], "strength", "strength"
        )
        sections.append(f"### PARADE strength ρ′ at convergence (seed 0)\n\n{text}")
        panels["PARADE strength ρ′ (seed 0)"] = {f"ρ′={k}": v for k, v in points.items()}
    sections.append("### Convergence check\n\n" + convergence_table(lines))
    sections.append("### De-correlation against the gap\n\n" + correlations(lines + [x for x, _ in at_default]))
    (results / "mitigations_tables.md").write_text("\n\n".join(sections) + "\n")
    pareto({k: v for k, v in panels.items() if k not in (titles["share005"], titles["classes"])}, plot)
    print("\n\n".join(sections))


if __name__ == "__main__":
    plot = sys.argv[3] if len(sys.argv) > 3 else "docs/mitigations_pareto.png"
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(plot))
