"""The threshold view's HTML: slider, per-group FMR/FNMR table with gaps, and empty SVGs for the charts.

The numbers are filled in at the operating threshold, so the page reads right without JavaScript; ids and
data-value attributes are what assets/card.js updates and the browser test reads. Every string from the
data is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from fairdml.reports.card.blocks import ThresholdView, fmt_interval, fmt_number, fmt_percent
from fairdml.reports.card.verification import rate_gap

# Okabe–Ito colour-blind-safe palette, then two neutrals.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F3C8D", "#3D3D3D"]
CHARTS = (
    ("rates", "FMR (solid) and FNMR (dashed) against the threshold"),
    ("roc", "ROC: true match rate (1 − FNMR) against FMR, log scale"),
    ("det", "DET: FNMR against FMR, normal-deviate scales"),
)


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _value(element_id: str, value: Any, text: str, tag: str = "span", extra: str = "") -> str:
    """An element whose data-value holds the exact number (repr) and whose text shows it formatted."""
    return f'<{tag} id="{element_id}" data-value="{escape(repr(value))}"{extra}>{escape(text)}</{tag}>'


def _rate_cell(kind: str, g: int, rate: float, ci: list[float], errors: int, pairs: int, noun: str) -> str:
    low, high = ci
    value = _value(f"{kind}-{g}", rate, fmt_percent(rate), extra=' class="rate-value"')
    errors_text = _value(f"{kind}-errors-{g}", errors, fmt_number(errors))
    pairs_text = _value(f"{kind}-pairs-{g}", pairs, fmt_number(pairs))
    return (
        f'<td class="rate-cell"><div>{value} <span class="ci" id="{kind}-ci-{g}" '
        f'data-low="{escape(repr(low))}" data-high="{escape(repr(high))}">'
        f"{escape(fmt_interval(low, high, fmt_percent))}</span></div>"
        f'<div class="count">{errors_text} / {pairs_text} {noun}</div>'
        f'<div class="bar"><span id="{kind}-bar-{g}"></span></div></td>'
    )


def _group_row(g: int, name: str, rates: dict) -> str:
    threshold = rates["threshold"]
    return (
        f'<tr data-group-index="{g}"><td class="group"><span class="swatch" '
        f'style="background:{COLORS[g % len(COLORS)]}"></span><span class="group-name" '
        f'id="group-name-{g}">{escape(name)}</span></td>'
        f"<td>{_value(f'thr-{g}', threshold, f'{threshold:.3f}')}</td>"
        + _rate_cell("fmr", g, rates["fmr"], rates["fmr_ci95"], rates["false_matches"],
                     rates["impostors"], "impostor pairs")
        + _rate_cell("fnmr", g, rates["fnmr"], rates["fnmr_ci95"], rates["false_non_matches"],
                     rates["genuines"], "genuine pairs")
        + "</tr>"
    )  # fmt: skip


def _gap_cell(kind: str, values: dict[str, float]) -> str:
    gap = rate_gap(values)
    ratio = f"×{gap['max_over_min']:.2f}" if gap["max_over_min"] is not None else ""
    value = _value(f"gap-{kind}", gap["max_minus_min"], fmt_percent(gap["max_minus_min"]), extra=' class="rate-value"')
    return (
        f'<td>{value} <span class="ratio" id="ratio-{kind}">{escape(ratio)}</span>'
        f'<div class="count">worst: <span id="worst-{kind}">{escape(gap["worst_group"])}</span></div></td>'
    )


def threshold_view_html(block: ThresholdView) -> str:
    """The live view's markup, showing the operating threshold until the script takes over."""
    v = block.verification
    k0, t0 = v.operating_index, v.operating_threshold
    rows = "".join(_group_row(g, name, v.rates[name]) for g, name in enumerate(v.counts.group_names))
    gaps = "".join(_gap_cell(kind, {name: r[kind] for name, r in v.rates.items()}) for kind in ("fmr", "fnmr"))
    pooled = v.counts.pooled()
    pooled_fmr, pooled_fnmr = float(pooled.fmr[0, k0]), float(pooled.fnmr[0, k0])
    threshold_value = _value("threshold-value", t0, f"{t0:.3f}", tag="output", extra=' for="threshold-slider"')
    pooled_fmr_text = _value("pooled-fmr", pooled_fmr, fmt_percent(pooled_fmr), tag="b")
    pooled_fnmr_text = _value("pooled-fnmr", pooled_fnmr, fmt_percent(pooled_fnmr), tag="b")
    target_text = _value("target-fmr", pooled_fmr, fmt_percent(pooled_fmr), tag="b")
    charts = "".join(
        f'<figure><svg id="chart-{key}" viewBox="0 0 380 290" role="img" aria-label="{escape(caption)}">'
        "</svg>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for key, caption in CHARTS
    )
    return f"""<div class="tv" id="threshold-view">
<div class="tv-controls">
<label for="threshold-slider">Similarity threshold</label>
<input type="range" id="threshold-slider" min="0" max="{len(v.counts.thresholds) - 1}" step="1" value="{k0}">
{threshold_value}
</div>
<div class="tv-options">
<button type="button" id="reset-threshold" data-index="{k0}">Operating threshold ({t0:.3f})</button>
<label class="toggle"><input type="checkbox" id="equalise-fmr"> Per-group thresholds that equalise FMR</label>
<span class="pooled">All groups: FMR {pooled_fmr_text}
· FNMR {pooled_fnmr_text}</span>
</div>
<p class="tv-explain" id="equalise-explain" hidden>Each group gets the loosest threshold whose FMR is at most
{target_text}, the FMR of all groups' pairs at the
slider's threshold. FNMR then shows what equal false matches cost each group.</p>
<div class="table-wrap"><table id="group-rates" class="rates">
<thead><tr><th>{escape(block.group_attribute)}</th><th>Threshold</th><th>FMR (false match rate) [95% CI]</th>
<th>FNMR (false non-match rate) [95% CI]</th></tr></thead>
<tbody>{rows}</tbody>
<tfoot><tr><th>Gap (max − min)</th><td></td>{gaps}</tr></tfoot>
</table></div>
<div class="legend" id="chart-legend"></div>
<div class="charts">{charts}</div>
<noscript><p class="note">JavaScript is off: the table shows the operating threshold.</p></noscript>
</div>"""
