"""Draw the trade-off: Recall@1 against the Recall@1 gap and against attribute leakage, one point per
setting (mean, error bars one std over seeds), each seed's run as a faint dot with its own bootstrap intervals
(report["intervals"]: Recall@1 and its gap, classes resampled), the Pareto front dashed.

The PNG is matplotlib; the interactive page is plotly with plotly.js inlined, so it opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fairdml.reports.tradeoff import Setting, front_mask

ACCURACY = ("recall@1", "Recall@1 (higher is better)")
FAIRNESS_AXES = {
    "recall@1_gap": "Recall@1 gap, max − min over groups (lower is better)",
    "attribute_leakage": "attribute leakage, probe accuracy (lower is better)",
}


def panels(settings: Sequence[Setting]) -> list[str]:
    """The fairness figures some setting has (no leakage when evaluation.leakage=false)."""
    return [figure for figure in FAIRNESS_AXES if any(setting.samples(figure) for setting in settings)]


def _front_line(settings: Sequence[Setting], fairness: str) -> tuple[list[float], list[float]]:
    """The front's points sorted by the fairness figure, for a line through them."""
    mask = front_mask(settings, fairness)
    points = sorted((settings[i].mean(fairness), settings[i].mean("recall@1")) for i in np.flatnonzero(mask))
    return [x for x, _ in points], [y for _, y in points]


def _run_interval_bars(axis, run, fairness: str, colour) -> None:
    """Thin bars of one run's 95 % intervals: its Recall@1 (vertical) and, on the gap panel, its gap."""
    x, y = run.figures[fairness], run.figures["recall@1"]
    if x is None or y is None:
        return
    intervals = run.intervals

    def bar(value: float, figure: str):
        interval = intervals.get(figure)
        return None if interval is None else [[max(value - interval[0], 0.0)], [max(interval[1] - value, 0.0)]]

    xerr, yerr = bar(x, fairness) if fairness in intervals else None, bar(y, "recall@1")
    if xerr is not None or yerr is not None:
        axis.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", color=colour, alpha=0.35, linewidth=0.8)


def save_png(settings: Sequence[Setting], path: str | Path, title: str = "accuracy–fairness trade-off") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figures = panels(settings)
    if not figures:
        raise ValueError("no run has a Recall@1 gap or attribute leakage to plot")
    figure, axes = plt.subplots(1, len(figures), figsize=(6.2 * len(figures), 5.2), dpi=110, squeeze=False)
    colours = plt.get_cmap("tab10" if len(settings) <= 10 else "tab20")
    for axis, fairness in zip(axes[0], figures):
        for index, setting in enumerate(settings):
            pairs = [(r.figures[fairness], r.figures["recall@1"]) for r in setting.runs]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if not pairs:
                continue
            colour = colours(index % colours.N)
            axis.scatter(*zip(*pairs), s=12, color=colour, alpha=0.35, linewidths=0)
            for run in setting.runs:  # each run's own bootstrap intervals (classes resampled), where it has them
                _run_interval_bars(axis, run, fairness, colour)
            axis.errorbar(
                setting.mean(fairness), setting.mean("recall@1"), xerr=setting.std(fairness),
                yerr=setting.std("recall@1"), fmt="o", color=colour, capsize=3, markersize=7,
                label=f"{setting.label} (n={len(pairs)})",
            )  # fmt: skip
        xs, ys = _front_line(settings, fairness)
        axis.plot(xs, ys, "--", color="black", linewidth=1, zorder=0, label="Pareto front")
        axis.scatter(xs, ys, s=180, facecolors="none", edgecolors="black", linewidths=1.2)
        axis.set_xlabel(FAIRNESS_AXES[fairness])
        axis.set_ylabel(ACCURACY[1])
        axis.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    widest = max(len(label) for label in labels)
    columns = max(1, min(3, len(labels), int(190 * len(figures) / 2 // max(widest, 1))))  # ~190 chars a row
    figure.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    figure.suptitle(
        f"{title}\nmean ± std over seeds; faint dots: single runs with their 95 % class-bootstrap intervals; "
        "ringed: Pareto front"
    )
    rows = -(-len(labels) // columns)
    figure.set_figheight(5.2 + 0.2 * max(0, rows - 3))
    figure.tight_layout(rect=(0, min(0.05 + 0.045 * rows, 0.5), 1, 1))
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def _hover(setting: Setting, fairness: str) -> str:
    lines = [f"<b>{html.escape(setting.label)}</b>", f"seeds: {', '.join(map(str, setting.seeds))}"]
    for name in ("recall@1", fairness, "recall@1_worst"):
        mean, std = setting.mean(name), setting.std(name)
        if mean is not None:
            lines.append(f"{name}: {mean:.4f} ± {std:.4f}")
    return "<br>".join(lines)


def plotly_figure(settings: Sequence[Setting], title: str = "accuracy–fairness trade-off"):
    """Interactive figure: hover a point for its setting and figures, click a legend entry to hide it."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    figures = panels(settings)
    plot = make_subplots(rows=1, cols=len(figures), subplot_titles=[FAIRNESS_AXES[f] for f in figures])
    palette = qualitative.Plotly
    for column, fairness in enumerate(figures, start=1):
        for index, setting in enumerate(settings):
            if setting.mean(fairness) is None or setting.mean("recall@1") is None:
                continue
            colour, first = palette[index % len(palette)], column == 1
            runs = [r for r in setting.runs if r.figures[fairness] is not None]
            plot.add_trace(
                go.Scatter(
                    x=[r.figures[fairness] for r in runs], y=[r.figures["recall@1"] for r in runs],
                    mode="markers", marker={"color": colour, "size": 6, "opacity": 0.35}, showlegend=False,
                    legendgroup=setting.label, text=[f"{r.path.name} (seed {r.seed})" for r in runs],
                    hovertemplate="%{text}<br>x=%{x:.4f} y=%{y:.4f}<extra></extra>",
                ), row=1, col=column,
            )  # fmt: skip
            plot.add_trace(
                go.Scatter(
                    x=[setting.mean(fairness)], y=[setting.mean("recall@1")], mode="markers",
                    marker={"color": colour, "size": 11}, name=setting.label, legendgroup=setting.label,
                    showlegend=first, hovertext=[_hover(setting, fairness)], hoverinfo="text",
                    error_x={"type": "data", "array": [setting.std(fairness)], "color": colour},
                    error_y={"type": "data", "array": [setting.std("recall@1")], "color": colour},
                ), row=1, col=column,
            )  # fmt: skip
        xs, ys = _front_line(settings, fairness)
        plot.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines+markers", name="Pareto front", legendgroup="front",
                showlegend=column == 1, line={"dash": "dash", "color": "black", "width": 1},
                marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 1.5}},
                hoverinfo="skip",
            ), row=1, col=column,
        )  # fmt: skip
        plot.update_xaxes(title_text=FAIRNESS_AXES[fairness].split(",")[0], row=1, col=column)
        plot.update_yaxes(title_text="Recall@1", row=1, col=column)
    plot.update_layout(title=f"{title} (mean ± std over seeds)", template="plotly_white", height=560)
    return plot


def save_html(settings: Sequence[Setting], table: tuple[list[str], list[list]], path: str | Path, title: str) -> Path:
    """A self-contained page: the interactive figure and the table of settings (no network needed)."""
    figure_html = plotly_figure(settings, title).to_html(full_html=False, include_plotlyjs=True)
    columns, rows = table
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_plain(value))}</td>" for value in row) + "</tr>" for row in rows
    )
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{figure_html}<h2>Settings</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></body></html>"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def _plain(value: object) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
