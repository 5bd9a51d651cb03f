
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token") || "";
  var poll = Math.max(250, Number(document.body.getAttribute("data-poll")) || 1000);
  var SVG = "http://www.w3.org/2000/svg";
  var expanded = new Set();
  var last = null, stopped = false, timer = null, toastTimer = null;
  var streamWindow = 60, finishedFilter = "all", laneOf = new Map();
  var detailId = null, detailData = null, detailFrom = null, detailBusy = false;
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
  }
  function fmtDur(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }
  function fmtTime(t) { return t ? new Date(t * 1000).toLocaleTimeString() : "–"; }
  function ago(s) { return s === null || !isFinite(s) ? "–" : (s < 1.5 ? "now" : fmtDur(Math.max(0, s)) + " ago"); }
  // wire ids share a per-client prefix and end in a counter: keep both ends
  function shortId(id) { id = String(id); return id.length > 16 ? id.slice(0, 4) + "…" + id.slice(-8) : id; }
  function cut(text, n) { text = String(text || ""); return text.length > n ? text.slice(0, n - 1) + "…" : text; }
  function setText(node, text) { text = String(text); if (node.textContent !== text) node.textContent = text; }
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // -- what a job is called and what its state means ------------------------------------
  var LABEL = { queued: "Queued", dispatched: "Sent to node", running: "Running", cancelling: "Cancelling",
    finished: "Finished", failed: "Failed", cancelled: "Cancelled", abandoned: "Abandoned", done: "Done" };
  var PREFETCH = "The scheduler sends each node a few jobs more than it has CPUs, so that no CPU " +
    "waits for its next job: these wait on the node and start as soon as a CPU is free.";
  var HINT = {
    dispatched: "Sent ahead to the node, not started yet. " + PREFETCH,
    failed: "It raised an exception, exceeded its time limit, or its process died: click for the traceback.",
    abandoned: "Its node was lost and it could not run again elsewhere.",
    cancelled: "Cancelled before it finished.",
    done: "It left its node. Whether it finished or failed only its client knows: the shared " +
      "scheduler passes results on without keeping them."
  };
  function stateOf(j) { return j.state || String(j.status || "").toLowerCase(); }
  // the job as its program knows it: job.id (the cluster numbers jobs 0, 1, 2... unless given one)
  function jobName(j, s) {
    if ((s && s.source === "scheduler") || j.id === null || j.id === undefined || j.id === j.job_id) return "job " + shortId(j.job_id);
    return /^-?\d+$/.test(String(j.id)) ? "#" + j.id : cut(j.id, 28);
  }
  function jobTitle(j, s) {
    var args = j.args ? " (" + j.args + ")" : "";
    return jobName(j, s) + args + " · wire id " + j.job_id + (j.cluster_id ? " · cluster " + j.cluster_id : "");
  }

  function api(path, body) {
    var opts = { headers: { "Authorization": "Bearer " + token }, cache: "no-store" };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (!r.ok) {
          var err = new Error((data && data.error) || ("HTTP " + r.status));
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }
  function toast(msg, bad) {
    var t = $("toast");
    t.textContent = msg;
    t.className = "show" + (bad ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.className = bad ? "error" : ""; }, bad ? 6000 : 3500);
  }
  function banner(msg) { var b = $("banner"); b.textContent = msg; b.hidden = !msg; }
  function setConn(ok, text) {
    var p = $("conn");
    p.className = "pill " + (ok ? "live" : "down");
    setText(p, ok ? "live" : text);
  }

  // Keep container's rows in the order of items, making and updating them by key.
  function sync(container, after, items, key, make, update) {
    var rows = container._rows || (container._rows = new Map());
    var seen = new Set(), prev = after;
    items.forEach(function (item) {
      var k = key(item), row = rows.get(k);
      seen.add(k);
      if (!row) { row = make(item); rows.set(k, row); }
      update(row, item);
      var next = prev ? prev.nextSibling : container.firstChild;
      if (row !== next) container.insertBefore(row, next);
      prev = row;
    });
    rows.forEach(function (row, k) {
      if (!seen.has(k)) { row.remove(); rows.delete(k); }
    });
  }
  function cell(row, label, cls, short) {
    var td = el("td", cls);
    td.setAttribute("data-label", label);
    if (short !== undefined) td.setAttribute("data-short", short);
    row.appendChild(td);
    return td;
  }
  function button(text, action, cls) {
    var b = el("button", cls, text);
    b.type = "button";
    b.setAttribute("data-action", action);
    return b;
  }
  function setBadge(td, state) {
    var b = td.firstChild, label = LABEL[state] || state;
    if (!b || b.getAttribute("data-state") !== state) {
      td.textContent = "";
      b = el("span", "badge b-" + state, label);
      b.setAttribute("data-state", state);
      if (HINT[state]) b.title = HINT[state];
      td.appendChild(b);
    }
  }
  function setButton(b, text, disabled) {
    if (b.getAttribute("data-armed") === "1") return;
    setText(b, text);
    b.disabled = !!disabled;
  }
  function cancellable(j) { return !j.final && stateOf(j) !== "cancelling"; }
  // the Job cell: "#31" (a button that opens its detail) and its arguments, cut
  function setJobCell(td, j, s) {
    var b = td.querySelector("button.link"), a = td.querySelector(".jobargs");
    if (!b) {
      b = button("", "detail", "link");
      a = el("span", "jobargs mono small");
      td.appendChild(b); td.appendChild(a);
    }
    b.setAttribute("data-job", j.job_id);
    setText(b, jobName(j, s));
    setText(a, j.args ? "(" + cut(j.args, 48) + ")" : "");
    td.title = jobTitle(j, s);
  }

  // -- totals -----------------------------------------------------------------------------
  function totalsOf(s) {
    var p = s.totals.progress || {}, pts = s.throughput.points, recent = pts.slice(-10);
    var rate = recent.length ? recent.reduce(function (a, x) { return a + x[1]; }, 0) / recent.length : 0;
    var t = { nodes: s.totals.nodes, cpus: s.totals.cpus, running: p.running, dispatched: p.dispatched,
      queued: p.queued, finished: p.finished, failed: p.failed, done: p.done, rate: rate.toFixed(1) };
    var keys = [["nodes", "Nodes"], ["cpus", "CPUs"], ["running", "Running"],
      ["dispatched", "Sent to nodes", HINT.dispatched], ["queued", "Queued"]];
    if (p.finished === null || p.finished === undefined) keys.push(["done", "Done", HINT.done]);
    else keys.push(["finished", "Finished"], ["failed", "Failed", HINT.failed]);
    keys.push(["rate", "Jobs/s", "Jobs ended per second over the last 10 s"]);
    return { keys: keys, values: t };
  }
  function renderTotals(s) {
    var t = totalsOf(s);
    sync($("totals"), null, t.keys, function (k) { return k[0]; }, function (k) {
      var c = el("div", "card" + (k[2] ? " hint" : ""));
      c.id = "total-" + k[0];
      c.appendChild(el("b", "", "0"));
      c.appendChild(el("span", "", k[1]));
      if (k[2]) c.title = k[2];
      return c;
    }, function (c, k) {
      var v = t.values[k[0]];
      setText(c.firstChild, v === undefined || v === null ? "–" : v);
    });
  }

  // -- jobs: a progress bar per cluster -------------------------------------------------
  var SEGMENTS = ["finished", "failed", "cancelled", "abandoned", "done", "running", "dispatched", "queued"];
  var SEG_LABEL = { finished: "finished", failed: "failed", cancelled: "cancelled", abandoned: "abandoned",
    done: "done", running: "running", dispatched: "sent to nodes", queued: "queued" };
  function makeCluster() {
    var box = el("div", "cluster");
    var head = el("div", "cluster-head");
    var name = el("span");
    name.appendChild(el("span", "name"));
    name.appendChild(el("span", "muted small meta"));
    head.appendChild(name);
    head.appendChild(el("span", "pct"));
    box.appendChild(head);
    var bar = el("div", "pbar");
    bar.setAttribute("role", "img");
    SEGMENTS.forEach(function (k) {
      if (k === "queued") return;  // the bar's background
      var seg = el("span", "f-" + k);
      seg.setAttribute("data-seg", k);
      bar.appendChild(seg);
    });
    box.appendChild(bar);
    var legend = el("p", "legend small");
    SEGMENTS.forEach(function (k) {
      var item = el("span", "item");
      item.setAttribute("data-count", k);
      item.appendChild(el("span", "dot f-" + k));
      item.appendChild(el("b"));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "what", SEG_LABEL[k]));
      if (HINT[k]) item.title = HINT[k];
      legend.appendChild(item);
    });
    box.appendChild(legend);
    box.appendChild(el("p", "note muted small"));
    return box;
  }
  function updateCluster(box, c, s) {
    var p = c.progress || {};
    var known = p.finished !== null && p.finished !== undefined;
    var total = 0;
    SEGMENTS.forEach(function (k) { if (k !== "done" || !known) total += p[k] || 0; });
    var finals = known ? (p.finished || 0) + (p.failed || 0) + (p.cancelled || 0) + (p.abandoned || 0) : (p.done || 0);
    box.querySelector(".name").textContent = c.all ? "All clusters" : "Cluster " + shortId(c.cluster_id);
    box.querySelector(".name").title = c.cluster_id || "";
    setText(box.querySelector(".meta"), c.all ? "" : " · " + (c.kind || "–") +
      (c.nodes === null || c.nodes === undefined ? "" : " · " + plural(c.nodes, "node", "nodes")));
    var pct = box.querySelector(".pct");
    pct.textContent = "";
    pct.appendChild(el("b", "", finals));
    pct.appendChild(document.createTextNode(" of " + total + " done" + (total ? " · " + Math.floor(100 * finals / total) + " %" : "")));
    var bar = box.querySelector(".pbar");
    bar.setAttribute("aria-label", SEGMENTS.filter(function (k) { return p[k]; }).map(function (k) { return p[k] + " " + SEG_LABEL[k]; }).join(", ") || "no jobs");
    bar.querySelectorAll("span").forEach(function (seg) {
      var k = seg.getAttribute("data-seg"), n = (k === "done" && known) ? 0 : (p[k] || 0);
      seg.style.flexGrow = String(n);
      seg.style.flexBasis = "0";
      seg.className = "f-" + k + (n ? " some" : "");
      seg.title = n + " " + SEG_LABEL[k];
    });
    if (!total) bar.classList.add("idle"); else bar.classList.remove("idle");
    box.querySelectorAll(".legend .item").forEach(function (item) {
      var k = item.getAttribute("data-count"), n = p[k];
      var show = n !== null && n !== undefined && (n > 0 || ["queued", "running", "finished", "done"].indexOf(k) >= 0);
      if (k === "done" && known) show = false;
      if (k === "failed" && known) show = true;
      item.hidden = !show;
      setText(item.querySelector("b"), n === null || n === undefined ? "–" : n);
    });
    var notes = [];
    if (c.dispatch_known === false) notes.push("Which queued jobs were already sent to a node is not known at the moment (the scheduler did not answer): they count as queued.");
    if (c.counted_since && c.start_time && c.start_time < c.counted_since - 5) notes.push("Finished and failed count the jobs that ended since the monitor started, at " + fmtTime(c.counted_since) + ".");
    if (!known && !c.all) notes.push("Done: finished or failed; only each job's client knows which.");
    var note = box.querySelector(".note");
    setText(note, notes.join(" "));
    note.hidden = !notes.length;
  }
  function renderProgress(s) {
    var items = s.clusters.slice();
    if (items.length > 1) items.unshift({ all: true, cluster_id: "", progress: s.totals.progress });
    sync($("progress"), null, items, function (c) { return c.all ? "*all" : c.cluster_id; }, makeCluster,
      function (box, c) { updateCluster(box, c, s); });
    $("no-clusters").hidden = s.clusters.length > 0;
    setText($("jobs-note"), s.clusters.length > 1 ? plural(s.clusters.length, "cluster", "clusters") : "");
  }

  // -- the task stream: which node ran which job, when (SVG) ----------------------------
  var FILL = { finished: "#22a05a", failed: "#dc2626", cancelled: "#94a3b8", abandoned: "#f59e0b", done: "#0f8f84",
    running: "#2563eb", cancelling: "#f59e0b" };
  function taskRows(s) {
    var f = s.tasks ? s.tasks.fields : [], idx = {};
    f.forEach(function (name, i) { idx[name] = i; });
    return (s.tasks ? s.tasks.rows : []).map(function (r) {
      return { job_id: r[idx.job_id], id: r[idx.id], cluster_id: r[idx.cluster_id], node: r[idx.node],
        start: r[idx.start_time], end: r[idx.end_time], state: r[idx.state] };
    });
  }
  // The SVG and its job bars and node labels persist from one refresh to the next (keyed by
  // job id and node name): a bar under the pointer keeps its tooltip and can be clicked.
  var stream = null;
  function streamParts(box) {
    if (stream) return stream;
    var root = svg("svg", { role: "img" });
    stream = { root: root, axis: svg("g"), lanes: svg("g"), jobs: svg("g"), labels: svg("g"),
      bars: new Map(), names: new Map(), empty: el("div", "empty-msg") };
    [stream.axis, stream.lanes, stream.labels, stream.jobs].forEach(function (g) { root.appendChild(g); });
    box.textContent = "";
    box.appendChild(root);
    box.appendChild(stream.empty);
    return stream;
  }
  function setAttrs(e, attrs) {
    Object.keys(attrs).forEach(function (k) {
      var v = String(attrs[k]);
      if (e.getAttribute(k) !== v) e.setAttribute(k, v);
    });
  }
  function setTitle(e, text) {
    var t = e.firstChild;
    if (!t) { t = svg("title"); e.appendChild(t); }
    if (t.textContent !== text) t.textContent = text;
  }
  function drawStream(s) {
    var box = $("stream"), w = box.clientWidth;
    if (!w) return;
    var parts = streamParts(box);
    var phone = w < 500, now = s.time, span = streamWindow, t0 = now - span;
    var rows = taskRows(s).filter(function (r) { return r.end === null || r.end === undefined || r.end >= t0; });
    var byNode = new Map();
    s.nodes.forEach(function (n) { if (n.status !== "Closed") byNode.set(n.name, { name: n.name, cpus: n.cpus || 1, jobs: [] }); });
    rows.forEach(function (r) {
      if (!byNode.has(r.node)) byNode.set(r.node, { name: r.node, cpus: 1, jobs: [] });
      byNode.get(r.node).jobs.push(r);
    });
    // lanes: a job keeps its lane from one refresh to the next while that lane is free at its start
    var keep = new Map(), groups = [], lanes = 0;
    byNode.forEach(function (g) {
      g.jobs.sort(function (a, b) { return a.start - b.start; });
      var ends = [];
      g.jobs.forEach(function (r) {
        var end = r.end === null || r.end === undefined ? Infinity : r.end;
        var lane = laneOf.get(r.job_id);
        if (lane === undefined || lane >= Math.max(1, g.cpus) || (ends[lane] !== undefined && ends[lane] > r.start + 0.02)) {
          lane = 0;
          while (ends[lane] !== undefined && ends[lane] > r.start + 0.02) lane++;
        }
        ends[lane] = end;
        r.lane = lane;
        keep.set(r.job_id, lane);
      });
      g.lanes = Math.min(64, Math.max(g.cpus, ends.length, 1));
      groups.push(g);
      lanes += g.lanes;
    });
    laneOf = keep;
    var L = phone ? 58 : 92, R = 8, T = 4, B = 20, gap = 6;
    var laneH = Math.max(3, Math.min(44, Math.floor((lanes <= 16 ? 130 : 260) / Math.max(1, lanes))));
    var h = T + B + lanes * laneH + Math.max(0, groups.length - 1) * gap + 4;
    var pw = w - L - R;
    function X(t) { return L + pw * Math.max(0, Math.min(1, (t - t0) / span)); }
    setAttrs(parts.root, { width: w, height: h, viewBox: "0 0 " + w + " " + h,
      "aria-label": "Task stream: jobs per node over the last " + (span >= 60 ? span / 60 + " min" : span + " s") });
    // the time axis and the lanes' backgrounds: drawn again (nothing to hover there)
    parts.axis.textContent = "";
    parts.lanes.textContent = "";
    var step = (span <= 30 ? 5 : span <= 60 ? 10 : 60) * (phone && span <= 60 ? 2 : 1);
    for (var a = 0; a <= span; a += step) {
      var x = X(now - a);
      parts.axis.appendChild(svg("line", { "class": a ? "grid" : "now", x1: x, x2: x, y1: T, y2: h - B }));
      var lab = svg("text", { x: Math.min(Math.max(x, L + 12), L + pw - 12), y: h - 6, "text-anchor": "middle" });
      lab.textContent = a === 0 ? "now" : "-" + (a >= 60 ? a / 60 + " min" : a + " s");
      parts.axis.appendChild(lab);
    }
    var y = T, seenBars = new Set(), seenNames = new Set();
    groups.forEach(function (g) {
      var gh = g.lanes * laneH;
      parts.lanes.appendChild(svg("rect", { "class": "lane", x: L, y: y, width: pw, height: gh, rx: 3 }));
      var name = parts.names.get(g.name);
      if (!name) {
        name = svg("text", { "class": "node", "text-anchor": "end" });
        name.setAttribute("data-node", g.name);
        name.appendChild(svg("title"));
        name.appendChild(document.createTextNode(""));
        parts.labels.appendChild(name);
        parts.names.set(g.name, name);
      }
      seenNames.add(g.name);
      setAttrs(name, { x: L - 6, y: y + Math.min(gh, laneH) / 2 + 4 });
      setTitle(name, g.name + " · " + plural(g.cpus, "CPU", "CPUs"));
      name.lastChild.textContent = cut(g.name, phone ? 8 : 13);
      if (g.lanes > 1 && laneH >= 12 && !phone) {
        var sub = svg("text", { x: L - 6, y: y + gh - 3, "text-anchor": "end" });
        sub.textContent = plural(g.cpus, "CPU", "CPUs");
        parts.lanes.appendChild(sub);
      }
      g.jobs.forEach(function (r) {
        if (r.lane >= g.lanes) return;
        var running = r.end === null || r.end === undefined;
        var x1 = X(r.start), x2 = X(running ? now : r.end);
        var rect = parts.bars.get(r.job_id);
        if (!rect) {
          rect = svg("rect", { "class": "job" });
          rect.setAttribute("data-job", r.job_id);
          parts.jobs.appendChild(rect);
          parts.bars.set(r.job_id, rect);
        }
        seenBars.add(r.job_id);
        setAttrs(rect, { x: x1.toFixed(1), y: y + r.lane * laneH + 1, width: Math.max(2, x2 - x1).toFixed(1),
          height: Math.max(2, laneH - 2), rx: laneH >= 8 ? 2 : 0, fill: FILL[r.state] || "#64748b", "data-state": r.state });
        setTitle(rect, jobName(r, s) + " · " + (LABEL[r.state] || r.state) + " · " + g.name + " · " +
          (running ? "running for " + fmtDur(now - r.start) : "took " + fmtDur(r.end - r.start)) + " · started " + fmtTime(r.start));
      });
      y += gh + gap;
    });
    parts.bars.forEach(function (rect, id) { if (!seenBars.has(id)) { rect.remove(); parts.bars.delete(id); } });
    parts.names.forEach(function (name, id) { if (!seenNames.has(id)) { name.remove(); parts.names.delete(id); } });
    parts.empty.hidden = seenBars.size > 0;
    setText(parts.empty, groups.length ? "No job ran in this time." : "No node yet.");
    var legend = $("stream-legend");
    if (!legend.firstChild) {
      ["running", "finished", "failed", "cancelled", "abandoned", "done"].forEach(function (k) {
        var item = el("span", "item");
        item.setAttribute("data-key", k);
        item.appendChild(el("span", "dot f-" + k));
        item.appendChild(document.createTextNode(LABEL[k]));
        legend.appendChild(item);
      });
    }
    var known = s.source !== "scheduler";
    legend.querySelectorAll(".item").forEach(function (item) {
      var k = item.getAttribute("data-key");
      item.hidden = known ? k === "done" : ["finished", "failed", "abandoned"].indexOf(k) >= 0;
    });
    var note = $("stream-note");
    var full = s.tasks && s.tasks.rows.length >= 500;
    var text = s.source === "scheduler" ? "Start and end times as the monitor's polls saw them: jobs shorter than a poll may not appear, and the scheduler hears of a job's start only after 10 ms." : "";
    if (full) text += (text ? " " : "") + "Showing the latest 500 jobs.";
    setText(note, text);
    note.hidden = !text;
  }

  // -- throughput chart (canvas) -----------------------------------------------------------
  function niceMax(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function drawChart(s) {
    var c = $("chart"), dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    var g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var span = w < 500 ? 120 : 300, now = s.time, t0 = now - span;
    var pts = s.throughput.points.filter(function (p) { return p[0] >= t0 - 1; });
    var top = niceMax(Math.max(1, Math.max.apply(null, pts.map(function (p) { return p[1]; }).concat([0]))));
    var L = 40, R = 10, T = 8, B = 22, pw = w - L - R, ph = h - T - B;
    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#e5e9f0"; g.fillStyle = "#5d6b7e"; g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    var lead = Math.round(top / Math.pow(10, Math.floor(Math.log10(top) + 1e-9)));
    var n = lead === 2 ? 4 : 5;  // steps of 0.5, 1 or 2 (times a power of ten)
    for (var i = 0; i <= n; i++) {
      var y = T + ph - ph * i / n;
      g.beginPath(); g.moveTo(L, Math.round(y) + 0.5); g.lineTo(L + pw, Math.round(y) + 0.5); g.stroke();
      var v = top * i / n;
      g.fillText(v >= 10 ? v.toFixed(0) : v.toFixed(v % 1 ? 1 : 0), L - 6, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    var step = span >= 300 ? 60 : 30;
    for (var a = 0; a <= span; a += step) {
      var x = L + pw * (span - a) / span;
      g.fillText(a === 0 ? "now" : "-" + (a >= 60 ? a / 60 + " min" : a + " s"), Math.min(Math.max(x, L + 14), L + pw - 14), T + ph + 5);
    }
    if (!pts.length) {
      g.textAlign = "center"; g.textBaseline = "middle";
      g.fillText("waiting for data…", L + pw / 2, T + ph / 2);
      return;
    }
    function X(t) { return L + pw * (t - t0) / span; }
    function Y(v) { return T + ph - ph * v / top; }
    g.beginPath();
    pts.forEach(function (p, i) { var x = Math.max(L, X(p[0])); if (i) g.lineTo(x, Y(p[1])); else g.moveTo(x, Y(p[1])); });
    g.strokeStyle = "#2563eb"; g.lineWidth = 2; g.lineJoin = "round"; g.stroke();
    g.lineTo(X(pts[pts.length - 1][0]), T + ph); g.lineTo(Math.max(L, X(pts[0][0])), T + ph); g.closePath();
    g.fillStyle = "rgba(37,99,235,0.12)"; g.fill();
  }

  // -- nodes ------------------------------------------------------------------------
  var NODE_COLS = ["CPUs", "Busy", "Jobs done", "CPU idle", "Memory free", "Disk free", "Updated", "State"];
  function makeNode(n) {
    var tb = el("tbody", "node");
    tb.setAttribute("data-node-id", n.node_id);
    var tr = el("tr", "main");
    var head = cell(tr, "Node", "head");
    head.appendChild(el("b", "name"));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(el("span", "muted small mono ip"));
    NODE_COLS.forEach(function (label) { cell(tr, label, label === "State" || label === "Updated" ? "nowrap" : label === "Busy" ? "busy" : "num"); });
    var busy = el("span", "busyval");  // one flex item in a phone's card
    tr.children[2].appendChild(busy);
    busy.appendChild(el("span", "run"));
    var waiting = el("span", "waiting");
    waiting.title = PREFETCH;
    busy.appendChild(waiting);
    var act = cell(tr, "Actions", "wide");
    var box = el("div", "actions");
    var tog = button("Jobs", "toggle");
    tog.setAttribute("aria-expanded", "false");
    box.appendChild(tog);
    var form = el("span", "cpus-form node-op");
    var input = el("input");
    input.type = "number"; input.min = "0"; input.step = "1"; input.inputMode = "numeric";
    input.setAttribute("aria-label", "CPUs for " + n.name);
    form.appendChild(input);
    form.appendChild(button("Set CPUs", "cpus"));
    box.appendChild(form);
    var alloc = button("Deallocate", "dealloc", "node-op");
    box.appendChild(alloc);
    box.appendChild(button("Close", "close", "danger node-op"));
    act.appendChild(box);
    tb.appendChild(tr);
    var dr = el("tr", "detail");
    var dc = el("td", "wide");
    dc.colSpan = 10;
    var list = el("ul", "jobs");
    dc.appendChild(list);
    dr.appendChild(dc);
    dr.hidden = true;
    tb.appendChild(dr);
    return tb;
  }
  function busyParts(n) {
    var run = n.jobs_running, sent = n.jobs_dispatched;
    if (run === undefined || run === null) { run = n.busy; sent = 0; }
    return [run, sent || 0];
  }
  function updateNode(tb, n, s) {
    var tds = tb.firstChild.children, closed = n.status === "Closed";
    setText(tds[0].querySelector(".name"), n.name);
    setText(tds[0].querySelector(".ip"), n.ip_addr + (n.platform ? " · " + n.platform.split(/[-\s]/)[0] : ""));
    tds[0].title = n.platform || "";
    var av = n.avail || {};
    var state = n.suspect ? "suspect" : n.state;
    var vals = [n.node_cpus && n.node_cpus !== n.cpus ? n.cpus + " / " + n.node_cpus : n.cpus, null, n.jobs_done,
      av.cpu === undefined || av.cpu === null ? "–" : av.cpu.toFixed(0) + " %", fmtBytes(av.memory), fmtBytes(av.disk),
      ago(n.update_time ? s.time - n.update_time : null), state];
    vals.forEach(function (v, i) { if (v !== null) setText(tds[i + 1], v); });
    var bp = busyParts(n), busy = tds[2];
    setText(busy.querySelector(".run"), bp[0] ? bp[0] + " running" : (bp[1] ? "" : "idle"));
    var w = busy.querySelector(".waiting");
    setText(w, bp[1] ? (bp[0] ? "+ " : "") + bp[1] + " waiting on node" : "");
    w.hidden = !bp[1];
    busy.title = bp[1] ? bp[0] + " running on " + plural(n.cpus, "CPU", "CPUs") + ", " + bp[1] + " sent ahead. " + PREFETCH : "";
    tds[8].className = "nowrap st-" + state;
    var jobs = n.running || [];
    var tog = tb.querySelector("[data-action=toggle]"), open = expanded.has(n.node_id);
    setText(tog, (open ? "Hide jobs" : "Jobs") + " (" + jobs.length + ")");
    tog.setAttribute("aria-expanded", open ? "true" : "false");
    tog.setAttribute("data-node", n.node_id);
    tb.querySelectorAll(".node-op").forEach(function (e) { e.hidden = !s.node_ops; });
    tb.querySelectorAll(".node-op button, button.node-op").forEach(function (b) { b.setAttribute("data-node", n.node_id); });
    var input = tb.querySelector("input");
    input.placeholder = String(n.cpus);
    input.max = String(n.node_cpus || n.cpus);
    input.disabled = closed;
    tb.querySelector("[data-action=cpus]").disabled = closed;
    var alloc = tb.querySelector("[data-action=dealloc],[data-action=alloc]");
    if (alloc.getAttribute("data-armed") !== "1") {
      var dealloc = n.state !== "deallocated";
      alloc.setAttribute("data-action", dealloc ? "dealloc" : "alloc");
      setButton(alloc, dealloc ? "Deallocate" : "Allocate", closed);
    }
    setButton(tb.querySelector("[data-action=close]"), "Close", closed || n.state === "closing");
    var dr = tb.lastChild;
    dr.hidden = !open;
    if (open) {
      var list = dr.querySelector("ul");
      sync(list, null, jobs.length ? jobs : [{ none: true, job_id: "" }], function (j) { return j.job_id; },
        function (j) {
          var li = el("li");
          if (j.none) { li.appendChild(el("span", "muted", "No job of yours on this node.")); return li; }
          li.setAttribute("data-job-id", j.job_id);
          var jc = el("span", "jobcell");
          li.appendChild(jc);
          li.appendChild(el("span", "status"));
          li.appendChild(el("span", "muted small since"));
          li.appendChild(button("Cancel", "cancel", "danger cancel"));
          return li;
        },
        function (li, j) {
          if (j.none) return;
          setJobCell(li.querySelector(".jobcell"), j, s);
          setBadge(li.querySelector(".status"), stateOf(j));
          setText(li.querySelector(".since"), j.start_time ? "for " + fmtDur(s.time - j.start_time) : "");
          var b = li.querySelector("button.cancel");
          b.setAttribute("data-job", j.job_id);
          setButton(b, stateOf(j) === "cancelling" ? "Cancelling…" : "Cancel", !cancellable(j));
        });
    }
  }
  function renderNodes(s) {
    var table = $("nodes");
    sync(table, table.tHead, s.nodes, function (n) { return n.node_id; }, makeNode, function (tb, n) { updateNode(tb, n, s); });
    $("no-nodes").hidden = s.nodes.length > 0;
    setText($("node-count"), s.nodes.length ? s.totals.nodes + " in use, " + s.totals.cpus + " CPUs" : "");
    $("node-note").hidden = s.node_ops;
  }

  // -- jobs on nodes and finished jobs ----------------------------------------------------
  function makeJobRow(cols) {
    return function (j) {
      var tr = el("tr", "job");
      tr.setAttribute("data-job-id", j.job_id);
      cols.forEach(function (c) { cell(tr, c[0], c[1], c[2]); });
      return tr;
    };
  }
  var ACTIVE = [["Job", "head"], ["State", "", ""], ["Node", "", "on"], ["Started", "", "started"], ["Running for", "num", "for"], ["Action", "wide"]];
  function updateActive(tr, j, s) {
    var td = tr.children, state = stateOf(j);
    setJobCell(td[0], j, s);
    setBadge(td[1], state);
    setText(td[2], j.node || "–");
    var waiting = state === "dispatched" || !j.start_time;
    setText(td[3], state === "dispatched" ? "not yet" : fmtTime(j.start_time));
    setText(td[4], waiting ? "–" : fmtDur(s.time - j.start_time));
    td[3].classList.toggle("empty-cell", waiting);
    td[4].classList.toggle("empty-cell", waiting);
    var b = td[5].firstChild;
    if (!b) { b = button("Cancel", "cancel", "danger cancel"); td[5].appendChild(b); }
    b.setAttribute("data-job", j.job_id);
    setButton(b, state === "cancelling" ? "Cancelling…" : "Cancel", !cancellable(j));
    tr.classList.toggle("open", detailId === j.job_id);
  }
  var FINISHED = [["Job", "head"], ["Status", "", ""], ["Node", "", "on"], ["Ended", "", "ended"], ["Took", "num", "took"], ["Error", "small wide err"]];
  function updateFinished(tr, j, s) {
    var td = tr.children;
    setJobCell(td[0], j, s);
    setBadge(td[1], stateOf(j));
    setText(td[2], j.node || "–");
    setText(td[3], fmtTime(j.end_time));
    setText(td[4], j.start_time && j.end_time ? fmtDur(j.end_time - j.start_time) : "–");
    setText(td[5], j.exception || "");
    td[5].classList.toggle("empty-cell", !j.exception);
    tr.classList.toggle("open", detailId === j.job_id);
  }
  var ACTIVE_ROWS = 100, FINISHED_ROWS = 20, showAll = false;
  function renderJobs(s) {
    var active = s.running.slice(0, ACTIVE_ROWS), p = s.totals.progress || {};
    sync($("active").tBodies[0], null, active, function (j) { return j.job_id; }, makeJobRow(ACTIVE), function (tr, j) { updateActive(tr, j, s); });
    $("no-active").hidden = s.running.length > 0;
    var more = $("active-more");
    more.hidden = s.running.length <= ACTIVE_ROWS;
    setText(more, "and " + (s.running.length - ACTIVE_ROWS) + " more (GET /api/jobs lists them all)");
    setText($("active-count"), (p.running || 0) + " running, " + (p.dispatched || 0) + " sent to nodes, " + (p.queued || 0) + " queued");
    var failed = s.failed || [];
    var ff = $("filter-failed");
    setText(ff, "Failed (" + failed.length + (failed.length >= 100 ? "+" : "") + ")");
    ff.hidden = s.source === "scheduler";
    var all = finishedFilter === "failed" && s.source !== "scheduler" ? failed : s.finished;
    var list = showAll ? all : all.slice(0, FINISHED_ROWS);
    sync($("finished").tBodies[0], null, list, function (j) { return j.job_id; }, makeJobRow(FINISHED), function (tr, j) { updateFinished(tr, j, s); });
    var fm = $("finished-more");
    fm.hidden = all.length <= FINISHED_ROWS;
    setText(fm, showAll ? "Show the latest " + FINISHED_ROWS : "Show all " + all.length);
    $("no-finished").hidden = all.length > 0;
    setText($("no-finished"), finishedFilter === "failed" ? "No job failed." : "No job finished yet.");
  }

  // -- one job's detail: one click on a job, fetched from /api/jobs/<job_id> -----------------
  function field(dl, name, value, cls) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(el("dt", "", name));
    dl.appendChild(el("dd", cls || "", value));
  }
  function block(body, title, text, truncated, cls) {
    body.appendChild(el("h3", "", title));
    if (truncated) body.appendChild(el("p", "cut", "Only its end is shown: the output was longer."));
    var pre = el("pre", cls || "");
    pre.textContent = text;
    body.appendChild(pre);
    return pre;
  }
  function renderDetail() {
    var d = detailData, body = $("detail-body");
    if (!d) return;
    var s = last || {}, state = stateOf(d);
    setText($("detail-title"), "Job " + jobName(d, s).replace(/^job /, ""));
    setBadge($("detail-state"), state);
    body.textContent = "";
    var dl = el("dl");
    field(dl, "Arguments", d.args, "mono");
    field(dl, "Result", d.result, "mono");
    field(dl, "Node", d.node ? d.node + (d.ip_addr ? " (" + d.ip_addr + ")" : "") : null);
    field(dl, "Submitted", d.submit_time ? fmtTime(d.submit_time) : null);
    field(dl, "Started", d.start_time ? fmtTime(d.start_time) : (state === "dispatched" ? "not yet: waiting on the node for a free CPU" : null));
    field(dl, "Ended", d.end_time ? fmtTime(d.end_time) : null);
    field(dl, "Took", d.start_time && d.end_time ? fmtDur(d.end_time - d.start_time) : null);
    field(dl, "Attempts", d.attempts ? String(d.attempts) : null);
    field(dl, "Wire id", d.job_id, "mono small");
    field(dl, "Cluster", d.cluster_id, "mono small");
    body.appendChild(dl);
    if (d.note) body.appendChild(el("p", "muted", d.note));
    if (d.traceback) block(body, /^Traceback/.test(d.traceback) ? "Traceback" : "Error", d.traceback, d.traceback_truncated, "tb").id = "detail-traceback";
    if (d.output !== "none" && d.output !== "pending") {
      if (d.stdout) block(body, "stdout", d.stdout, d.stdout_truncated).id = "detail-stdout";
      if (d.stderr) block(body, "stderr", d.stderr, d.stderr_truncated).id = "detail-stderr";
      if (!d.stdout && !d.stderr) body.appendChild(el("p", "muted", "It wrote nothing to stdout or stderr."));
      if (d.output === "kept") body.appendChild(el("p", "muted small", "The program no longer holds this job: shown is what the monitor kept of its output (its end)."));
    }
  }
  function loadDetail() {
    if (!detailId || detailBusy) return;
    var id = detailId;
    detailBusy = true;
    api("/api/jobs/" + encodeURIComponent(id)).then(function (d) {
      if (id !== detailId) return;
      detailData = d;
      renderDetail();
    }, function (e) {
      if (id !== detailId) return;
      if (!detailData) { $("detail-body").textContent = ""; $("detail-body").appendChild(el("p", "muted", "Cannot show this job: " + e.message)); }
    }).then(function () { detailBusy = false; });
  }
  function openDetail(id, from) {
    var d = $("detail");
    if (detailId !== id) { detailData = null; setText($("detail-title"), "Job"); $("detail-state").textContent = ""; $("detail-body").textContent = ""; $("detail-body").appendChild(el("p", "muted", "Loading…")); }
    detailId = id;
    detailFrom = from || null;
    d.hidden = false;
    loadDetail();
    $("detail-close").focus();
    if (last) renderJobs(last);
  }
  function closeDetail() {
    $("detail").hidden = true;
    detailId = null; detailData = null;
    if (last) renderJobs(last);
    if (detailFrom && document.contains(detailFrom)) detailFrom.focus();
  }

  function render(s) {
    last = s;
    setText($("source"), s.source === "scheduler" ? "shared scheduler" : (s.totals.clusters === 1 ? "1 cluster" : s.totals.clusters + " clusters"));
    setText($("updated"), "updated " + fmtTime(s.time));
    renderTotals(s);
    renderProgress(s);
    drawStream(s);
    drawChart(s);
    renderNodes(s);
    renderJobs(s);
    if (detailId && detailData && !detailData.final) loadDetail();  // follow a job until it ends
  }
  function refresh() {
    clearTimeout(timer);
    api("/api/summary").then(function (s) {
      render(s); setConn(true); banner("");
    }, function (e) {
      if (e.status === 401) {
        stopped = true;
        setConn(false, "no access");
        banner("The access token is missing or wrong. Open the address the monitor printed when it started (it ends in ?token=…).");
      } else {
        setConn(false, "reconnecting…");
      }
    }).then(function () {
      if (!stopped) timer = setTimeout(refresh, document.hidden ? poll * 5 : poll);
    });
  }

  // -- actions ------------------------------------------------------------------------
  function disarm(b) {
    if (b.getAttribute("data-armed") !== "1") return;
    b.removeAttribute("data-armed");
    b.classList.remove("armed");
    b.textContent = b.getAttribute("data-label") || b.textContent;
    clearTimeout(b._timer);
  }
  function confirmed(b, label) {  // destructive actions take two taps
    if (b.getAttribute("data-armed") === "1") { disarm(b); return true; }
    b.setAttribute("data-label", b.textContent);
    b.setAttribute("data-armed", "1");
    b.classList.add("armed");
    b.textContent = label;
    b._timer = setTimeout(function () { disarm(b); }, 4000);
    return false;
  }
  function nodeName(id) {
    var n = last && last.nodes.filter(function (x) { return x.node_id === id; })[0];
    return n ? n.name : id;
  }
  function act(b, path, body, done) {
    b.disabled = true;
    api(path, body).then(function (r) { toast(done(r)); }, function (e) { toast("Failed: " + e.message, true); })
      .then(function () { b.disabled = false; refresh(); });
  }
  function pressed(group, b) {
    group.querySelectorAll("button").forEach(function (x) { x.setAttribute("aria-pressed", x === b ? "true" : "false"); });
  }
  document.addEventListener("click", function (ev) {
    var seg = ev.target.closest(".seg button");
    if (seg) {
      pressed(seg.parentNode, seg);
      if (seg.hasAttribute("data-window")) { streamWindow = Number(seg.getAttribute("data-window")); if (last) drawStream(last); }
      if (seg.hasAttribute("data-filter")) { finishedFilter = seg.getAttribute("data-filter"); if (last) renderJobs(last); }
      return;
    }
    var bar = ev.target.closest("rect.job");
    if (bar) { openDetail(bar.getAttribute("data-job")); return; }
    var b = ev.target.closest("button[data-action]");
    if (!b) {  // a click anywhere on a job's row opens its detail
      var row = ev.target.closest("tr.job, ul.jobs li[data-job-id]");
      if (row && !ev.target.closest("a, input")) openDetail(row.getAttribute("data-job-id"), row.querySelector("button.link"));
      return;
    }
    if (b.disabled) return;
    var action = b.getAttribute("data-action"), node = b.getAttribute("data-node");
    if (action === "detail") {
      openDetail(b.getAttribute("data-job"), b);
    } else if (action === "more") {
      showAll = !showAll;
      if (last) renderJobs(last);
    } else if (action === "toggle") {
      if (expanded.has(node)) expanded.delete(node); else expanded.add(node);
      if (last) render(last);
    } else if (action === "cancel") {
      if (!confirmed(b, "Confirm cancel")) return;
      var job = b.getAttribute("data-job");
      var known = last && last.running.filter(function (j) { return j.job_id === job; })[0];
      act(b, "/api/jobs/cancel", { job_ids: [job] }, function () { return "Cancelling job " + (known ? jobName(known, last) : shortId(job)) + "…"; });
    } else if (action === "cpus") {
      var input = b.parentNode.querySelector("input"), v = input.value.trim();
      if (!/^\d+$/.test(v)) { toast("Enter a whole number of CPUs (0: all of the node's)", true); input.focus(); return; }
      act(b, "/api/nodes/cpus", { node: node, cpus: Number(v) }, function (r) {
        input.value = "";
        return nodeName(node) + ": CPUs set to " + r.results.map(function (x) { return x.cpus; }).join(", ");
      });
    } else if (action === "alloc" || action === "dealloc") {
      var op = action === "alloc" ? "allocate" : "deallocate";
      act(b, "/api/nodes/" + op, { node: node }, function () { return nodeName(node) + (op === "allocate" ? " takes jobs again" : ": no new jobs"); });
    } else if (action === "close") {
      if (!confirmed(b, "Confirm close")) return;
      act(b, "/api/nodes/close", { node: node }, function () { return nodeName(node) + " closes once its jobs end"; });
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && detailId) { closeDetail(); return; }
    if (ev.key === "Enter" && ev.target.matches && ev.target.matches("rect.job")) openDetail(ev.target.getAttribute("data-job"));
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("visibilitychange", function () { if (!document.hidden && !stopped) refresh(); });
  window.addEventListener("resize", function () { if (last) { drawChart(last); drawStream(last); } });
  if (!token) { banner("This address has no ?token=…: open the one the monitor printed when it started."); }
  refresh();
})();
