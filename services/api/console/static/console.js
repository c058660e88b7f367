// seqserve ops console: polls the API and redraws. No dependencies, no build step.
// Every value from the server is inserted as text (textContent), never as HTML.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
  const REFRESH_MS = clamp(Number(params.get("refresh")) || 2, 0.5, 60) * 1000;
  const WINDOW_S = Math.round(clamp(Number(params.get("window")) || 300, 1, 7 * 24 * 3600));
  const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
  const SERIES_COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const rendered = new Map(); // section -> JSON it was last drawn from

  // ---- DOM helpers -------------------------------------------------------
  function build(make, tag, attrs, children) {
    const node = make(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const el = (tag, attrs, ...children) => build((t) => document.createElement(t), tag, attrs, children);
  const svg = (tag, attrs, ...children) => build((t) => document.createElementNS(SVG_NS, t), tag, attrs, children);

  function replace(id, ...nodes) {
    document.getElementById(id).replaceChildren(...nodes);
  }

  // Redraw a section only when its data changed: no flicker, no lost hover or selection.
  function renderIfChanged(section, data, draw) {
    const key = JSON.stringify(data);
    if (rendered.get(section) === key) return;
    rendered.set(section, key);
    draw(data);
  }

  // ---- formatting ----------------------------------------------------------
  function fmtSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
    if (seconds < 120) return `${seconds.toFixed(2)} s`;
    return `${(seconds / 60).toFixed(1)} min`;
  }
  function fmtNumber(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
    if (Number.isInteger(value)) return value.toLocaleString();
    return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(4);
  }
  const fmtTick = (value) => String(Number(value.toPrecision(3)));
  function fmtTime(iso) {
    return iso ? new Date(iso).toLocaleString([], { hourCycle: "h23" }) : "–";
  }
  function fmtWindow(seconds) {
    if (seconds % 3600 === 0) return `${seconds / 3600} h`;
    if (seconds % 60 === 0) return `${seconds / 60} min`;
    return `${seconds} s`;
  }
  function fmtBytes(bytes) {
    if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
    if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} kB`;
    return `${bytes} B`;
  }
  const empty = (text) => el("p", { class: "empty", text });

  // ---- jobs by status, queues, latency, failures ---------------------------
  function drawStatuses(byStatus) {
    const total = Object.values(byStatus).reduce((sum, n) => sum + n, 0);
    const tile = (name, count) =>
      el("div", { class: `tile tile-${name}`, "data-status": name },
        el("span", { class: "tile-count", text: fmtNumber(count) }),
        el("span", { class: "tile-label", text: name }));
    const known = STATUSES.filter((s) => s in byStatus);
    const others = Object.keys(byStatus).filter((s) => !STATUSES.includes(s));
    replace("jobs-by-status", ...[...known, ...others].map((s) => tile(s, byStatus[s])), tile("total", total));
  }

  function drawQueues({ depths, error }) {
    if (depths === null) {
      replace("queue-depth", el("p", { class: "error-text", text: `broker unavailable: ${error}` }));
      return;
    }
    const scale = Math.max(10, ...Object.values(depths));
    const rows = Object.entries(depths).map(([queue, depth]) =>
      el("div", { class: "bar-row", "data-queue": queue },
        el("span", { class: "bar-label", text: queue }),
        el("span", { class: "bar-track" },
          el("span", { class: `bar-fill${depth > 0 ? " bar-busy" : ""}`, "data-width": depth / scale })),
        el("span", { class: "bar-value", text: fmtNumber(depth) })));
    replace("queue-depth", ...rows);
    // Widths through the CSSOM: the page's CSP forbids style attributes.
    for (const fill of document.querySelectorAll("#queue-depth .bar-fill")) {
      fill.style.width = `${(Number(fill.dataset.width) * 100).toFixed(1)}%`;
    }
  }

  function latencyBar(kind, scale) {
    // Bars 0..p99, 0..p95 and a tick at p50, on one scale shared by all kinds.
    const width = 180, x = (s) => (s === null ? 0 : (s / scale) * width);
    return svg("svg", { class: "latency-bar", width, height: 14, viewBox: `0 0 ${width} 14`, role: "img",
                        "aria-label": `p50 ${fmtSeconds(kind.p50_seconds)}, p99 ${fmtSeconds(kind.p99_seconds)}` },
      svg("rect", { x: 0, y: 3, width, height: 8, rx: 2, class: "lb-track" }),
      svg("rect", { x: 0, y: 3, width: x(kind.p99_seconds), height: 8, rx: 2, class: "lb-p99" }),
      svg("rect", { x: 0, y: 3, width: x(kind.p95_seconds), height: 8, rx: 2, class: "lb-p95" }),
      svg("rect", { x: Math.max(0, x(kind.p50_seconds) - 1), y: 0, width: 2, height: 14, class: "lb-p50" }));
  }

  function drawLatency({ byKind, finished, throughput, windowSeconds }) {
    const summary = el("p", { class: "summary" },
      el("strong", { text: fmtNumber(finished) }), ` jobs ended in the last ${fmtWindow(windowSeconds)} · `,
      el("strong", { text: throughput.toFixed(3) }), " jobs/s");
    const kinds = Object.entries(byKind);
    if (!kinds.length) {
      replace("latency", summary, empty("No job ended in this window."));
      return;
    }
    const scale = Math.max(0.001, ...kinds.map(([, k]) => k.p99_seconds || 0));
    const head = el("tr", {}, el("th", { text: "kind" }),
      ["ended", "succeeded", "failed", "cancelled", "jobs/s", "p50", "p95", "p99"].map((h) => el("th", { class: "num", text: h })),
      el("th", { title: "0 to p99 on one scale for all kinds" },
        ["p50", "p95", "p99"].map((p) => [el("span", { class: `legend-key key-${p}` }), p])));
    const rows = kinds.map(([name, k]) => el("tr", { "data-kind": name },
      el("td", { text: name }), el("td", { class: "num", text: fmtNumber(k.finished) }),
      el("td", { class: "num", text: fmtNumber(k.succeeded) }),
      el("td", { class: `num${k.failed ? " bad" : ""}`, text: fmtNumber(k.failed) }),
      el("td", { class: "num", text: fmtNumber(k.cancelled) }),
      el("td", { class: "num", text: k.throughput_per_second.toFixed(3) }),
      ...["p50_seconds", "p95_seconds", "p99_seconds"].map((p) =>
        el("td", { class: "num", "data-percentile": p.slice(0, 3), text: fmtSeconds(k[p]) })),
      el("td", {}, latencyBar(k, scale))));
    replace("latency", summary, el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  function drawFailures(failures) {
    if (!failures.length) {
      replace("failures", empty("No failed jobs."));
      return;
    }
    const head = el("tr", {}, ["ended", "kind", "model", "error", "job"].map((h) => el("th", { text: h })));
    const rows = failures.map((f) => el("tr", { "data-job": f.id },
      el("td", { class: "nowrap", text: fmtTime(f.finished_at) }),
      el("td", { text: f.kind }),
      el("td", { class: "nowrap", text: f.model_version ? `${f.model}:${f.model_version}` : f.model }),
      el("td", { class: "error-cell", title: f.error || "", text: f.error || "(no message)" }),
      el("td", { class: "mono", title: f.id, text: f.id.slice(0, 8) })));
    replace("failures", el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  function drawAudit(page) {
    if (!page.items.length) {
      replace("audit", empty("No alias moves, key changes or training runs yet."));
      return;
    }
    const head = el("tr", {}, ["when", "who", "what", "target", "detail"].map((h) => el("th", { text: h })));
    const rows = page.items.map((e) => el("tr", { "data-audit": e.action },
      el("td", { class: "nowrap", text: fmtTime(e.at) }),
      el("td", { text: e.actor }),
      el("td", { class: "nowrap", text: e.action }),
      el("td", { class: "mono", text: e.target }),
      el("td", { class: "error-cell", text: JSON.stringify(e.detail) })));
    replace("audit", el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  // ---- corpus batches ------------------------------------------------------
  function drawBatches(page) {
    if (!page.items.length) {
      replace("batches", empty("No corpus batches yet (POST /v1/batches)."));
      return;
    }
    const head = el("tr", {}, ["created", "kind", "model", "status", "progress", "failed", "expires"]
      .map((h) => el("th", { text: h })));
    const rows = page.items.map((b) => {
      const counts = b.request_counts;
      const done = counts.total ? Math.round((100 * (counts.completed + counts.failed)) / counts.total) : 0;
      return el("tr", { "data-batch": b.status },
        el("td", { class: "nowrap", text: fmtTime(b.created_at) }),
        el("td", { text: b.kind }),
        el("td", { class: "mono", text: `${b.model_name}:${b.model_version}` }),
        el("td", { class: "nowrap", text: b.status }),
        el("td", { class: "nowrap", text: `${counts.completed} / ${counts.total} (${done}%)` }),
        el("td", { text: String(counts.failed) }),
        el("td", { class: "nowrap", text: fmtTime(b.expires_at) }));
    });
    replace("batches", el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  // ---- models --------------------------------------------------------------
  function metricList(metrics, primary) {
    const entries = Object.entries(metrics).filter(([, v]) => typeof v === "number");
    return el("span", { class: "metrics" }, entries.map(([name, value]) =>
      el("span", { class: `metric${name === primary ? " metric-primary" : ""}` },
        el("span", { class: "metric-name", text: name }), " ", fmtNumber(value))));
  }

  // An embeddings version's vocabulary, width and probe neighbours; a classifier's or tagger's
  // initialisation (the embeddings version it started from).
  function versionDetails(v) {
    if (v.embeddings) {
      const e = v.embeddings;
      const probes = Object.entries(e.probe_neighbours).map(([word, near]) =>
        el("li", { "data-probe": word }, el("strong", { text: word }), " → ",
          near.map(([w, score]) => `${w} ${Number(score).toFixed(2)}`).join(", ")));
      return el("tr", { class: "version-details", "data-embeddings": v.version },
        el("td", { colspan: 5 },
          el("span", { class: "muted", text: `${fmtNumber(e.vocab_size)} words · ${e.dim} dimensions · ` +
            (e.subwords ? "vectors for unseen words from character n-grams" : "known words only") }),
          probes.length ? el("ul", { class: "probes" }, probes) : el("span", { class: "muted", text: " · no probes" })));
    }
    if (v.pretrained_from) {
      return el("tr", { class: "version-details", "data-pretrained": v.version },
        el("td", { colspan: 5, class: "muted", text: `word embeddings initialised from ${v.pretrained_from}` }));
    }
    return null;
  }

  function drawModel(model) {
    const aliasOf = {};
    for (const [alias, version] of Object.entries(model.aliases)) (aliasOf[version] ||= []).push(alias);
    const aliases = Object.entries(model.aliases).map(([alias, version]) =>
      el("span", { class: `pill pill-alias${alias === "production" ? " pill-prod" : ""}`,
                   "data-alias": alias, "data-version": version, text: `${alias} → v${version}` }));
    const versions = [...model.versions].reverse().slice(0, 8).flatMap((v) => [el("tr", { "data-version": v.version },
      el("td", {}, el("strong", { text: `v${v.version}` }), " ",
        (aliasOf[v.version] || []).map((a) => el("span", { class: "pill pill-small", text: a }))),
      el("td", {}, metricList(v.metrics, v.primary_metric)),
      el("td", { class: "num", text: fmtBytes(v.size_bytes) }),
      el("td", { class: "nowrap", text: fmtTime(v.created_at) }),
      el("td", { class: "note", title: v.promotion_note, text: v.promotion_note })), versionDetails(v)].filter(Boolean));
    const head = el("tr", {}, ["version", "metrics", "size", "created", "promotion"].map((h) => el("th", { text: h })));
    return el("article", { class: "model", "data-model": model.name },
      el("header", { class: "model-head" },
        el("h3", { text: model.name }),
        el("span", { class: "muted", text: `${model.task} · serves ${model.kinds.join(", ") || "nothing"}` }),
        el("span", { class: "aliases" }, aliases.length ? aliases : el("span", { class: "muted", text: "no aliases" }))),
      el("table", { class: "versions" }, el("thead", {}, head), el("tbody", {}, versions)));
  }

  function drawModels(models) {
    replace("models", ...(models.length ? models.map(drawModel) : [empty("No model is registered.")]));
  }

  // ---- drift ---------------------------------------------------------------
  const fmtShare = (value) => (typeof value === "number" ? `${(100 * value).toFixed(1)}%` : "–");
  function drawDrift(byModel) {
    const rows = byModel.flatMap(({ name, versions }) => versions.map((v) => {
      const scores = Object.entries(v.scores).map(([aspect, score]) =>
        el("span", { class: `metric${score > 0.25 ? " metric-primary" : ""}` },
          el("span", { class: "metric-name", text: aspect }), " ", score.toFixed(3)));
      return el("tr", { "data-model": name, "data-version": v.version },
        el("td", { class: "nowrap", text: `${name}:${v.version}` }),
        el("td", { class: "num", text: fmtShare(v.reference && v.reference.oov_ratio) }),
        el("td", { class: "num", text: fmtShare(v.live && v.live.oov_ratio) }),
        el("td", {}, el("span", { class: "metrics" }, scores)),
        el("td", { class: "note", text: v.note || "" }));
    }));
    if (!rows.length) {
      replace("drift", empty("No model is registered."));
      return;
    }
    const head = el("tr", {}, ["version", "dev OOV", "served OOV", "drift (PSI)", "note"].map((h) => el("th", { text: h })));
    replace("drift", el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  async function refreshDrift(models) {
    const byModel = await Promise.all(models.map(async (m) => ({ name: m.name, versions: await getJson(`v1/models/${encodeURIComponent(m.name)}/drift`) })));
    renderIfChanged("drift", byModel, drawDrift);
  }

  // ---- rollouts: shadow agreement, canary split, pending promotions ----------
  function drawRollouts(states) {
    const live = states.filter((s) => s.shadow || s.canary.length || s.pending_version);
    if (!live.length) {
      replace("rollouts", empty("No shadow, canary or pending promotion."));
      return;
    }
    const head = el("tr", {}, ["alias", "serves", "shadow", "agreement", "canary (finished, failure ratio)", "warm"]
      .map((h) => el("th", { text: h })));
    const rows = live.map((s) => el("tr", { "data-rollout": `${s.model}@${s.alias}` },
      el("td", { class: "mono", text: `${s.model}@${s.alias}` }),
      el("td", { text: `v${s.version}${s.pending_version ? ` → v${s.pending_version} (warming)` : ""}` }),
      el("td", { text: s.shadow ? `v${s.shadow.version} at ${fmtNumber(s.shadow.rate * 100)}%` : "—" }),
      el("td", { class: "num", text: s.shadow && s.shadow.agreement !== null
        ? `${fmtNumber(s.shadow.agreement * 100)}% of ${s.shadow.inputs} inputs` : "—" }),
      el("td", { text: s.canary.map((a) => `v${a.version} ${a.weight}: ${a.finished}, `
        + `${a.failure_ratio === null ? "—" : fmtNumber(a.failure_ratio)}`).join(" · ") || "—" }),
      el("td", { text: Object.entries(s.warm).map(([v, names]) => `v${v}: ${names.length}`).join(" · ") || "—" })));
    replace("rollouts", el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }

  async function refreshRollouts(models) {
    const paths = models.flatMap((m) => Object.keys(m.aliases).map((alias) =>
      `v1/models/${encodeURIComponent(m.name)}/aliases/${encodeURIComponent(alias)}`));
    const states = await Promise.all(paths.map(getJson));
    renderIfChanged("rollouts", states, drawRollouts);
  }

  // ---- training runs -------------------------------------------------------
  function ticks(low, high, count) {
    if (high === low) return [low];
    return Array.from({ length: count }, (_, i) => low + ((high - low) * i) / (count - 1));
  }

  // Round steps (1, 2 or 5 times a power of ten) between low and high.
  function niceTicks(low, high, count) {
    if (high === low) return [low];
    const raw = (high - low) / Math.max(1, count - 1);
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
    const found = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) found.push(Number(v.toPrecision(12)));
    return found;
  }

  // Epoch charts label every integer x (thinned past 8); pass `xFormat` for a continuous axis.
  function lineChart(title, series, { width = 300, height = 150, xFormat = null, zeroBased = false } = {}) {
    const pad = { left: 46, right: 10, top: 22, bottom: 24 };
    const points = series.flatMap((s) => s.points);
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [zeroBased ? Math.min(0, ...ys) : Math.min(...ys), Math.max(...ys)];
    if (y0 === y1) [y0, y1] = zeroBased ? [y0, y0 + 1] : [y0 - Math.abs(y0 || 1) * 0.05, y1 + Math.abs(y1 || 1) * 0.05];
    const sx = (x) => pad.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
    const sy = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
    const grid = ticks(y0, y1, 3).map((y) => [
      svg("line", { x1: pad.left, x2: width - pad.right, y1: sy(y), y2: sy(y), class: "grid" }),
      svg("text", { x: pad.left - 5, y: sy(y) + 3, class: "tick", "text-anchor": "end", text: fmtTick(y) })]);
    const xValues = [];
    if (xFormat) xValues.push(...niceTicks(x0, x1, 5));
    else for (let x = x0, step = Math.max(1, Math.ceil((x1 - x0 + 1) / 8)); x <= x1; x += step) xValues.push(x);
    const xTicks = xValues.map((x) =>
      svg("text", { x: sx(x), y: height - 8, class: "tick", "text-anchor": "middle", text: xFormat ? xFormat(x) : x }));
    const lines = series.map((s) => [
      svg("polyline", { points: s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), class: "line", stroke: s.color }),
      s.points.map(([x, y]) => svg("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: s.color },
        svg("title", { text: `${s.name} at ${xFormat ? xFormat(x) : `epoch ${x}`}: ${fmtNumber(y)}` })))]);
    const legend = series.map((s, i) => svg("text", { x: pad.left + i * 110, y: 13, class: "legend", fill: s.color, text: s.name }));
    if (series.length === 1) legend.push(svg("text", { x: width - pad.right, y: 13, class: "tick", "text-anchor": "end", text: title }));
    return svg("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                        "aria-label": `${title}: ${series.map((s) => s.name).join(", ")}`, "data-chart": title },
      svg("title", { text: title }), grid, xTicks, lines, legend);
  }

  function seriesOf(history, names) {
    return names.map((name, i) => ({
      name, color: SERIES_COLORS[i % SERIES_COLORS.length],
      points: history.filter((r) => typeof r[name] === "number").map((r, j) => [r.epoch ?? j + 1, r[name]]),
    })).filter((s) => s.points.length);
  }

  function runCharts(history) {
    const keys = [...new Set(history.flatMap((r) => Object.keys(r)))];
    const devMetrics = keys.filter((k) => k.startsWith("dev_") && k !== "dev_loss");
    const loss = seriesOf(history, ["train_loss", "dev_loss"]);
    const dev = seriesOf(history, devMetrics.slice(0, 3));
    return el("div", { class: "charts" },
      loss.length ? lineChart("loss", loss) : null, dev.length ? lineChart("dev metric", dev) : null);
  }

  // A run no trainer has picked up yet has no start time: say how long it has waited instead.
  function runSince(run) {
    if (run.status === "queued") return `queued since ${fmtTime(run.created_at)}`;
    return run.started_at ? `started ${fmtTime(run.started_at)}` : `created ${fmtTime(run.created_at)}`;
  }

  function drawRun(run) {
    const history = Array.isArray(run.history) ? run.history.filter((r) => r && typeof r === "object") : [];
    const version = run.model_version ? ` → v${run.model_version}` : "";
    return el("article", { class: "run", "data-run": run.id },
      el("header", { class: "run-head" },
        el("h3", { text: `${run.model_name}${version}` }),
        el("span", { class: `pill pill-${run.status}`, text: run.status })),
      el("p", { class: "muted run-when", text: `${run.task} · ${run.preset} · ${history.length} epoch(s) · ${runSince(run)}` }),
      history.length ? runCharts(history) : empty("No epoch finished yet."),
      Object.keys(run.metrics || {}).length ? metricList(run.metrics, null) : null,
      run.error ? el("p", { class: "error-text", title: run.error, text: run.error }) : null);
  }

  function drawRuns(runs) {
    replace("training-runs", ...(runs.length ? runs.map(drawRun) : [empty("No training run yet.")]));
  }

  // ---- activity: kept by this page from its own polls ----------------------
  const ACTIVITY_POINTS = Math.ceil(120000 / REFRESH_MS) + 1; // about two minutes
  const activity = [];

  function recordActivity(byStatus) {
    const ended = ["succeeded", "failed", "cancelled"].reduce((sum, s) => sum + (byStatus[s] || 0), 0);
    activity.push({ t: Date.now(), ended, inFlight: (byStatus.queued || 0) + (byStatus.running || 0) });
    if (activity.length > ACTIVITY_POINTS) activity.shift();
  }

  function drawActivity() {
    if (activity.length < 2) {
      replace("activity", empty("Collecting activity…"));
      return;
    }
    const last = activity[activity.length - 1].t;
    const ago = (a) => (a.t - last) / 1000;
    const rate = activity.slice(1).map((a, i) =>
      [ago(a), Math.max(0, (a.ended - activity[i].ended) / Math.max(0.001, (a.t - activity[i].t) / 1000))]);
    const options = { width: 390, height: 120, zeroBased: true, xFormat: (s) => `${fmtTick(s)} s` };
    replace("activity",
      lineChart("jobs in flight", [{ name: "queued + running", color: SERIES_COLORS[1], points: activity.map((a) => [ago(a), a.inFlight]) }], options),
      lineChart("jobs ended per second", [{ name: "ended / s", color: SERIES_COLORS[2], points: rate }], options));
  }

  // ---- polling -------------------------------------------------------------
  // The key arrives once in the URL fragment (/console#key=sk_..., never sent to a server), is
  // kept for this tab only, and the fragment is cleared so it does not stay in the address bar.
  const fragmentKey = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fragmentKey) {
    sessionStorage.setItem("seqserve-key", fragmentKey);
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function getJson(path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem("seqserve-key");
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401) throw new Error(`${path} needs an admin key: open /console#key=<key>`);
    if (!response.ok) throw new Error(`${path} answered HTTP ${response.status}`);
    return response.json();
  }

  function drawStats(stats) {
    renderIfChanged("status", stats.jobs_by_status, drawStatuses);
    recordActivity(stats.jobs_by_status);
    drawActivity();
    renderIfChanged("queues", { depths: stats.queue_depth, error: stats.queue_depth_error }, drawQueues);
    renderIfChanged("latency", { byKind: stats.by_kind, finished: stats.finished_in_window,
                                 throughput: stats.throughput_per_second, windowSeconds: stats.window_seconds }, drawLatency);
    renderIfChanged("failures", stats.recent_failures, drawFailures);
  }

  function showHealth(errors, total) {
    const pill = document.getElementById("connection");
    const state = errors.length === 0 ? "live" : errors.length < total ? "degraded" : "offline";
    pill.textContent = state;
    pill.className = `pill pill-${state}`;
    const banner = document.getElementById("fetch-error");
    banner.hidden = errors.length === 0;
    banner.textContent = errors.join(" · ");
  }

  async function refresh() {
    const sources = [
      [`v1/stats?window_seconds=${WINDOW_S}`, drawStats],
      ["v1/models", (models) => {
        renderIfChanged("models", models, drawModels);
        refreshDrift(models).catch(() => {});
        refreshRollouts(models).catch(() => {});
      }],
      ["v1/training-runs?limit=6", (runs) => renderIfChanged("runs", runs, drawRuns)],
      ["v1/audit?limit=10", (page) => renderIfChanged("audit", page, drawAudit)],
      ["v1/batches?limit=8", (page) => renderIfChanged("batches", page, drawBatches)],
    ];
    const results = await Promise.allSettled(sources.map(([path]) => getJson(path)));
    const errors = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        try { sources[i][1](result.value); } catch (exc) { errors.push(`drawing ${sources[i][0]}: ${exc.message}`); }
      } else {
        errors.push(result.reason.message);
      }
    });
    showHealth(errors, sources.length);
    if (errors.length < sources.length) {
      const now = new Date();
      const stamp = document.getElementById("updated-at");
      stamp.textContent = now.toLocaleTimeString([], { hourCycle: "h23" });
      stamp.dateTime = now.toISOString();
    }
  }

  async function tick() {
    try {
      if (!document.hidden) await refresh();
    } finally {
      window.setTimeout(tick, REFRESH_MS);
    }
  }

  document.getElementById("window-label").textContent = fmtWindow(WINDOW_S);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  tick();
})();
