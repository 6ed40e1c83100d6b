/* Arsenale dashboard: metric charts (uPlot, from /runs/<id>/metrics.json) and run selection.
 *
 * A chart element carries either
 *   data-metric-src="<url>"            one run's metric: line plus min-max band when downsampled, or
 *   data-compare-series='[{label,src}]' several runs overlaid on one step axis.
 * The server sends NaN and infinities as null; uPlot draws null as a gap.
 */
(function () {
  "use strict";

  var PALETTE = ["#1f5fbf", "#d9480f", "#2b8a3e", "#9c36b5", "#c92a2a", "#0b7285", "#e67700", "#5c7cfa",
    "#495057", "#a61e4d"];
  var HEIGHT = 240;

  function finite(values) {
    if (!values) return null;
    return values.map(function (v) { return typeof v === "number" && isFinite(v) ? v : null; });
  }

  function fmt(v) {
    if (v == null) return "—";
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(6));
  }

  // Width of the y axis from its longest tick label, so small or large numbers are not cut off.
  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (acc, v) { return v.length > acc.length ? v : acc; }, "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size);
  }

  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + a + ")";
  }

  function fetchJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.message || r.status + " " + r.statusText);
        return body;
      });
    });
  }

  function showMessage(fig, text, isError) {
    var body = fig.querySelector(".chart-body");
    body.removeAttribute("aria-busy");
    body.textContent = "";
    var p = document.createElement("p");
    p.className = isError ? "alert" : "empty";
    p.textContent = text;
    body.appendChild(p);
  }

  function plot(fig, opts, data) {
    var body = fig.querySelector(".chart-body");
    body.removeAttribute("aria-busy");
    body.textContent = "";
    opts.width = Math.max(200, body.clientWidth);
    opts.height = HEIGHT;
    opts.scales = { x: { time: false } };
    opts.cursor = { drag: { x: true, y: false } };
    opts.axes = [{ label: "step", labelSize: 20 }, { size: axisSize }];
    var u = new uPlot(opts, data, body);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = Math.max(200, body.clientWidth);
        if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: HEIGHT });
      }).observe(body);
    }
    return u;
  }

  function hasFinite(values) {
    return values.some(function (v) { return v !== null; });
  }

  function drawRun(fig, d) {
    var note = fig.querySelector(".chart-note");
    if (!d.steps.length) return showMessage(fig, "No points logged.");
    var values = finite(d.values);
    var color = PALETTE[0];
    var data = [d.steps, values];
    var series = [
      { label: "step", value: function (u, v) { return fmt(v); } },
      { label: d.downsampled ? "mean" : d.key, stroke: color, width: 1.5, value: function (u, v) { return fmt(v); } },
    ];
    var opts = { series: series };
    var bandValues = [];
    if (d.mins && d.maxs) {
      var mins = finite(d.mins), maxs = finite(d.maxs);
      bandValues = mins.concat(maxs);
      data.push(mins, maxs);
      var edge = { stroke: alpha(color, 0.35), width: 1, value: function (u, v) { return fmt(v); } };
      series.push(Object.assign({ label: "min" }, edge), Object.assign({ label: "max" }, edge));
      opts.bands = [{ series: [3, 2], fill: alpha(color, 0.14) }];
    }
    if (!hasFinite(values) && !hasFinite(bandValues)) {
      return showMessage(fig, "No finite values to draw (" + d.total_points + " points, all NaN or infinite).");
    }
    plot(fig, opts, data);
    var parts = [];
    if (d.downsampled) {
      parts.push(d.total_points.toLocaleString() + " points in " + d.steps.length.toLocaleString() +
        " buckets: line is the bucket mean, band its min–max.");
    } else {
      parts.push(d.total_points.toLocaleString() + " points.");
    }
    if (d.nonfinite) parts.push(d.nonfinite + " NaN/infinite points shown as gaps.");
    note.textContent = parts.join(" ");
  }

  function drawCompare(fig, specs, results) {
    var tables = results.map(function (d) { return [d.steps, finite(d.values)]; });
    var nonEmpty = tables.filter(function (t) { return t[0].length; });
    if (!nonEmpty.length) return showMessage(fig, "No points logged.");
    // One shared step axis; a run without a point at some step gets undefined there, which uPlot skips over.
    var data = tables.length > 1 ? uPlot.join(tables) : tables[0];
    var series = [{ label: "step", value: function (u, v) { return fmt(v); } }];
    specs.forEach(function (s, i) {
      series.push({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false,
        value: function (u, v) { return fmt(v); } });
    });
    plot(fig, { series: series }, data);
    var sampled = results.filter(function (d) { return d.downsampled; }).length;
    if (sampled) {
      fig.querySelector(".chart-note").textContent = sampled + " of " + results.length +
        " series downsampled to bucket means.";
    }
  }

  function load(fig) {
    if (fig.dataset.loaded) return;
    fig.dataset.loaded = "1";
    if (fig.dataset.metricSrc) {
      fetchJSON(fig.dataset.metricSrc)
        .then(function (d) { drawRun(fig, d); })
        .catch(function (e) { showMessage(fig, "Cannot load this metric: " + e.message, true); });
    } else if (fig.dataset.compareSeries) {
      var specs = JSON.parse(fig.dataset.compareSeries);
      Promise.all(specs.map(function (s) { return fetchJSON(s.src); }))
        .then(function (results) { drawCompare(fig, specs, results); })
        .catch(function (e) { showMessage(fig, "Cannot load this metric: " + e.message, true); });
    }
  }

  // Charts load when they come near the viewport: a run with many metrics opens at once.
  function initCharts(root) {
    var figs = root.querySelectorAll(".chart[data-metric-src], .chart[data-compare-series]");
    if (!figs.length) return;
    if (!window.IntersectionObserver) { figs.forEach(load); return; }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) { io.unobserve(entry.target); load(entry.target); }
      });
    }, { rootMargin: "300px" });
    figs.forEach(function (f) { io.observe(f); });
  }

  // ---- run selection for the compare button ----

  function selectedBoxes() {
    return document.querySelectorAll('input[type="checkbox"][form="compare-form"]');
  }

  function updateCompareButton() {
    var boxes = selectedBoxes();
    var checked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    document.querySelectorAll("[data-compare]").forEach(function (btn) {
      btn.disabled = checked < 2;
      btn.textContent = checked ? "Compare selected (" + checked + ")" : "Compare selected";
    });
    document.querySelectorAll("[data-select-all]").forEach(function (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    });
  }

  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t.matches && t.matches("[data-select-all]")) {
      selectedBoxes().forEach(function (b) { b.checked = t.checked; });
    }
    if (t.matches && t.matches("[data-select-all], input[form='compare-form']")) updateCompareButton();
  });

  function colorSwatches(root) {
    root.querySelectorAll(".swatch[data-series]").forEach(function (s) {
      s.style.background = PALETTE[Number(s.dataset.series) % PALETTE.length];
    });
  }

  function init(root) {
    initCharts(root);
    colorSwatches(root);
    updateCompareButton();
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { init(ev.target); });
  window.ArsenaleCharts = { PALETTE: PALETTE, axisSize: axisSize };  // shared with the time-series charts below
})();

/* Time-series charts whose data the page carries (deployments: traffic per version, the split over time),
 * and forms that ask for a confirmation first.
 *
 * A chart element carries
 *   data-timeseries='{"x": [unix seconds], "series": [{label, colour, dash, values}], "unit": "%",
 *                     "kind": "line" | "step", "min"?: n, "max"?: n}'
 * drawn on a UTC time axis; null is a gap. `colour` indexes the palette, so a version keeps its colour
 * in every chart and in the `.swatch[data-series]` next to its name.
 * A form with data-confirm="question" is submitted only when the person confirms.
 */
(function () {
  "use strict";

  var PALETTE = window.ArsenaleCharts.PALETTE;
  var axisSize = window.ArsenaleCharts.axisSize;
  var HEIGHT = 240;

  function fmt(v, unit) {
    if (v == null) return "—";
    var a = Math.abs(v);
    var text = Number.isInteger(v) ? String(v) :
      (a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(4)));
    return text + (unit || "");
  }

  function utc(seconds) {
    return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function showMessage(fig, text, isError) {
    var body = fig.querySelector(".chart-body");
    body.removeAttribute("aria-busy");
    body.textContent = "";
    var p = document.createElement("p");
    p.className = isError ? "alert" : "empty";
    p.textContent = text;
    body.appendChild(p);
  }

  function draw(fig) {
    if (fig.dataset.loaded) return;
    fig.dataset.loaded = "1";
    var spec;
    try {
      spec = JSON.parse(fig.dataset.timeseries);
    } catch (e) {
      return showMessage(fig, "Cannot read this chart's data: " + e.message, true);
    }
    var drawn = spec.series.filter(function (s) {
      return s.values.some(function (v) { return v !== null; });
    });
    if (!spec.x.length || !drawn.length) return showMessage(fig, "Nothing to draw in this period.");
    var unit = spec.unit || "";
    var stepped = spec.kind === "step" && uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : null;
    var series = [{ label: "time (UTC)", value: function (u, v) { return v == null ? "—" : utc(v); } }];
    var data = [spec.x];
    drawn.forEach(function (s) {
      var opts = { label: s.label, stroke: PALETTE[s.colour % PALETTE.length], width: 1.5, spanGaps: false,
        value: function (u, v) { return fmt(v, unit); } };
      if (s.dash) opts.dash = [6, 4];
      if (stepped) opts.paths = stepped;
      series.push(opts);
      data.push(s.values);
    });
    var lo = spec.min != null ? spec.min : 0;
    var body = fig.querySelector(".chart-body");
    body.removeAttribute("aria-busy");
    body.textContent = "";
    var opts = {
      width: Math.max(200, body.clientWidth),
      height: HEIGHT,
      series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {
        x: { time: true },
        y: { range: function (u, min, max) {
          if (spec.max != null) return [lo, spec.max];
          return [lo, max != null && max > lo ? max * 1.08 : lo + 1];
        } },
      },
      axes: [{}, { size: axisSize, values: function (u, ticks) { return ticks.map(function (t) { return fmt(t, unit); }); } }],
      cursor: { drag: { x: true, y: false } },
    };
    var u = new uPlot(opts, data, body);
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var w = Math.max(200, body.clientWidth);
        if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: HEIGHT });
      }).observe(body);
    }
  }

  function init(root) {
    root.querySelectorAll(".chart[data-timeseries]").forEach(draw);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.matches && form.matches("form[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { init(ev.target); });
})();
