/* fairdml model card: the interactive threshold view.
 * Data come from the JSON block #card-data as integer error counts per group at
 * every slider threshold. Rates are those counts divided here, and the Wilson interval follows Python's
 * operation order, so every number equals what fairdml.metrics.functional.thresholds computes.
 * Strings from the data are only ever inserted with textContent, never as markup. */
(function () {
  "use strict";
  const dataElement = document.getElementById("card-data");
  if (!dataElement) return;
  const data = JSON.parse(dataElement.textContent);
  const view = data.threshold_view;
  if (!view) return;

  const colors = data.colors;
  const thresholds = view.thresholds;
  const groups = view.groups;
  const last = thresholds.length - 1;
  const slider = document.getElementById("threshold-slider");
  const equalise = document.getElementById("equalise-fmr");
  const reset = document.getElementById("reset-threshold");
  const explain = document.getElementById("equalise-explain");
  // The namespace of the inline <svg> elements, so the page holds no URL at all.
  const svgNS = document.getElementById("chart-rates").namespaceURI;
  const POOLED_COLOR = "#9aa5b1";

  const rate = (errors, pairs) => (pairs > 0 ? errors / pairs : null);
  const pct = (v) => (v === null ? "n/a" : (100 * v).toFixed(2) + "%");
  const count = (n) => (n === null ? "n/a" : n.toLocaleString("en-US"));

  function wilson(k, n, z) {
    if (!(n > 0)) return [null, null];
    const p = k / n;
    const z2 = z * z;
    const denominator = 1.0 + z2 / n;
    const center = (p + z2 / (2.0 * n)) / denominator;
    const half = (z * Math.sqrt((p * (1.0 - p)) / n + z2 / (4.0 * n * n))) / denominator;
    return [Math.max(0.0, center - half), Math.min(1.0, center + half)];
  }

  function setValue(id, value, text) {
    const element = document.getElementById(id);
    if (!element) return;
    element.textContent = text;
    element.dataset.value = value === null ? "" : String(value);
  }

  // First grid index whose FMR is at most the target (FMR falls as the threshold rises), -1 if none.
  function indexAtFmr(group, target) {
    if (target === null || !(group.impostors > 0)) return -1;
    for (let k = 0; k <= last; k++) {
      if (group.false_matches[k] / group.impostors <= target) return k;
    }
    return -1;
  }

  function setRate(kind, g, errors, pairs) {
    const value = errors === null ? null : rate(errors, pairs);
    setValue(kind + "-" + g, value, pct(value));
    const ci = errors === null ? [null, null] : wilson(errors, pairs, view.z);
    const ciElement = document.getElementById(kind + "-ci-" + g);
    ciElement.textContent = ci[0] === null ? "" : "[" + pct(ci[0]) + ", " + pct(ci[1]) + "]";
    ciElement.dataset.low = ci[0] === null ? "" : String(ci[0]);
    ciElement.dataset.high = ci[1] === null ? "" : String(ci[1]);
    setValue(kind + "-errors-" + g, errors, count(errors));
    const bar = document.getElementById(kind + "-bar-" + g);
    bar.style.width = (value === null ? 0 : 100 * value) + "%";
    bar.style.background = colors[g % colors.length];
    return value;
  }

  // Gap as in Python's _rate_gap: max - min, max / min, worst = first group with the highest rate.
  function setGap(kind, values) {
    let worst = null;
    let low = null;
    let high = null;
    values.forEach((v, g) => {
      if (v === null) return;
      if (high === null || v > high) {
        high = v;
        worst = g;
      }
      if (low === null || v < low) low = v;
    });
    const gap = high === null ? null : high - low;
    setValue("gap-" + kind, gap, pct(gap));
    const ratio = high !== null && low > 0 ? high / low : null;
    setValue("ratio-" + kind, ratio, ratio === null ? "" : "×" + ratio.toFixed(2));
    setValue("worst-" + kind, worst, worst === null ? "n/a" : groups[worst].name);
  }

  // ---------------------------------------------------------------------------------------- charts
  const W = 380;
  const H = 290;
  const M = { left: 50, right: 14, top: 12, bottom: 42 };

  function node(name, attributes, parent) {
    const element = document.createElementNS(svgNS, name);
    for (const key in attributes) element.setAttribute(key, attributes[key]);
    if (parent) parent.appendChild(element);
    return element;
  }

  function makeChart(id, xDomain, yDomain, xTicks, yTicks, xLabel, yLabel) {
    const svg = document.getElementById(id);
    const x = (v) => M.left + ((v - xDomain[0]) / (xDomain[1] - xDomain[0])) * (W - M.left - M.right);
    const y = (v) => H - M.bottom - ((v - yDomain[0]) / (yDomain[1] - yDomain[0])) * (H - M.top - M.bottom);
    const axes = node("g", {}, svg);
    xTicks.forEach(([v, label]) => {
      node("line", { class: "grid", x1: x(v), x2: x(v), y1: M.top, y2: H - M.bottom }, axes);
      node("text", { x: x(v), y: H - M.bottom + 14, "text-anchor": "middle" }, axes).textContent = label;
    });
    yTicks.forEach(([v, label]) => {
      node("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }, axes);
      node("text", { x: M.left - 6, y: y(v) + 3.5, "text-anchor": "end" }, axes).textContent = label;
    });
    node("rect", { class: "frame", x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom }, axes);
    node("text", { class: "axis-label", x: (M.left + W - M.right) / 2, y: H - 8, "text-anchor": "middle" }, axes)
      .textContent = xLabel;
    const yMid = (M.top + H - M.bottom) / 2;
    node("text", { class: "axis-label", x: 13, y: yMid, "text-anchor": "middle", transform: `rotate(-90 13 ${yMid})` }, axes)
      .textContent = yLabel;
    // Curves past the axes' range (e.g. DET rates beyond its last tick) are cut at the frame.
    const clip = node("clipPath", { id: id + "-plot" }, node("defs", {}, svg));
    node("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom }, clip);
    const curves = node("g", { "clip-path": "url(#" + id + "-plot)" }, svg);
    return { svg, x, y, curves, markers: node("g", {}, svg) };
  }

  function curve(chart, xs, ys, color, dash, width) {
    let d = "";
    let previous = "";
    for (let k = 0; k < xs.length; k++) {
      if (xs[k] === null || ys[k] === null) continue;
      const point = chart.x(xs[k]).toFixed(1) + "," + chart.y(ys[k]).toFixed(1);
      if (point === previous) continue;
      d += (d ? "L" : "M") + point;
      previous = point;
    }
    if (d) node("path", { d, fill: "none", stroke: color, "stroke-width": width, "stroke-dasharray": dash || "none",
      "stroke-linejoin": "round" }, chart.curves);
  }

  function niceTicks(low, high, target) {
    const span = high - low;
    const magnitude = Math.pow(10, Math.floor(Math.log10(span / target)));
    const step = [1, 2, 2.5, 5, 10].map((s) => s * magnitude).find((s) => span / s <= target);
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const ticks = [];
    for (let i = Math.ceil(low / step - 1e-9); i * step <= high + 1e-9; i++) {
      ticks.push([i * step, (i * step).toFixed(digits)]);
    }
    return ticks;
  }

  const rates = (group) => group.false_matches.map((e) => rate(e, group.impostors));
  const misses = (group) => group.false_non_matches.map((e) => rate(e, group.genuines));
  const allCurves = groups.map((group, g) => ({ color: colors[g % colors.length], group }));
  const pooled = { color: POOLED_COLOR, group: view.pooled };
  const percentTicks = [0, 0.25, 0.5, 0.75, 1].map((v) => [v, Math.round(100 * v) + "%"]);
  const floor = view.det_floor;
  const logFmr = (v) => (v === null ? null : Math.log10(Math.max(v, floor)));

  const rateChart = makeChart("chart-rates", [thresholds[0], thresholds[last]], [0, 1],
    niceTicks(thresholds[0], thresholds[last], 6), percentTicks, "similarity threshold", "error rate");
  const rocChart = makeChart("chart-roc", [Math.log10(floor), 0], [0, 1],
    [[-4, "0.01%"], [-3, "0.1%"], [-2, "1%"], [-1, "10%"], [0, "100%"]].filter(([v]) => v >= Math.log10(floor)),
    percentTicks, "FMR (false match rate)", "1 − FNMR (true match rate)");
  const detTicks = view.det_ticks.map(([p, z]) => [z, (100 * p >= 1 ? 100 * p : (100 * p).toPrecision(1)) + "%"]);
  const detDomain = [view.det_ticks[0][1], view.det_ticks[view.det_ticks.length - 1][1]];
  const detChart = makeChart("chart-det", detDomain, detDomain, detTicks, detTicks,
    "FMR (false match rate)", "FNMR (false non-match rate)");

  [pooled, ...allCurves].forEach(({ color, group }) => {
    const isPooled = group === view.pooled;
    const width = isPooled ? 1.3 : 2;
    if (!isPooled) {
      curve(rateChart, thresholds, rates(group), color, null, width);
      curve(rateChart, thresholds, misses(group), color, "5 3", width);
    }
    curve(rocChart, rates(group).map(logFmr), misses(group).map((v) => (v === null ? null : 1 - v)), color,
      isPooled ? "4 3" : null, width);
    curve(detChart, group.det_fmr, group.det_fnmr, color, isPooled ? "4 3" : null, width);
  });

  function drawMarkers(indices, k) {
    [rateChart, rocChart, detChart].forEach((chart) => chart.markers.replaceChildren());
    const t = thresholds[k];
    node("line", { class: "cursor", x1: rateChart.x(t), x2: rateChart.x(t), y1: M.top, y2: H - M.bottom },
      rateChart.markers);
    groups.forEach((group, g) => {
      const i = indices[g];
      if (i < 0) return;
      const color = colors[g % colors.length];
      const fmr = rate(group.false_matches[i], group.impostors);
      const fnmr = rate(group.false_non_matches[i], group.genuines);
      const dot = (chart, cx, cy) => {
        if (cx === null || cy === null) return;
        node("circle", { cx: chart.x(cx), cy: chart.y(cy), r: 4.5, fill: color, stroke: "#fff", "stroke-width": 1.5 },
          chart.markers);
      };
      if (i !== k) {
        node("line", { x1: rateChart.x(thresholds[i]), x2: rateChart.x(thresholds[i]), y1: M.top, y2: H - M.bottom,
          stroke: color, "stroke-width": 1.2, "stroke-dasharray": "2 3" }, rateChart.markers);
      }
      dot(rateChart, thresholds[i], fmr);
      dot(rateChart, thresholds[i], fnmr);
      dot(rocChart, logFmr(fmr), fnmr === null ? null : 1 - fnmr);
      dot(detChart, group.det_fmr[i], group.det_fnmr[i]);
    });
  }

  function drawLegend() {
    const legend = document.getElementById("chart-legend");
    [...allCurves, { color: POOLED_COLOR, group: { name: "all groups (dashed)" } }].forEach(({ color, group }) => {
      const item = document.createElement("span");
      item.className = "item";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(group.name));
      legend.appendChild(item);
    });
  }

  // ---------------------------------------------------------------------------------------- update
  function update() {
    const k = Number(slider.value);
    const equal = equalise.checked;
    setValue("threshold-value", thresholds[k], thresholds[k].toFixed(3));
    const pooledFmr = rate(view.pooled.false_matches[k], view.pooled.impostors);
    const pooledFnmr = rate(view.pooled.false_non_matches[k], view.pooled.genuines);
    setValue("pooled-fmr", pooledFmr, pct(pooledFmr));
    setValue("pooled-fnmr", pooledFnmr, pct(pooledFnmr));
    setValue("target-fmr", pooledFmr, pct(pooledFmr));
    explain.hidden = !equal;
    const indices = groups.map((group) => (equal ? indexAtFmr(group, pooledFmr) : k));
    const fmrs = [];
    const fnmrs = [];
    groups.forEach((group, g) => {
      const i = indices[g];
      setValue("thr-" + g, i < 0 ? null : thresholds[i], i < 0 ? "n/a" : thresholds[i].toFixed(3));
      fmrs.push(setRate("fmr", g, i < 0 ? null : group.false_matches[i], group.impostors));
      fnmrs.push(setRate("fnmr", g, i < 0 ? null : group.false_non_matches[i], group.genuines));
    });
    setGap("fmr", fmrs);
    setGap("fnmr", fnmrs);
    drawMarkers(indices, k);
  }

  slider.addEventListener("input", update);
  slider.addEventListener("change", update);
  equalise.addEventListener("change", update);
  reset.addEventListener("click", () => {
    slider.value = reset.dataset.index;
    update();
  });
  drawLegend();
  update();
})();
