
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token") || "";
  var poll = Math.max(250, Number(document.body.getAttribute("data-poll")) || 1000);
  var expanded = new Set();
  var last = null, stopped = false, timer = null, toastTimer = null;
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
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
  function setText(node, text) { text = String(text); if (node.textContent !== text) node.textContent = text; }

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
  function cell(row, label, cls) {
    var td = el("td", cls);
    td.setAttribute("data-label", label);
    row.appendChild(td);
    return td;
  }
  function button(text, action, cls) {
    var b = el("button", cls, text);
    b.type = "button";
    b.setAttribute("data-action", action);
    return b;
  }
  function badge(status) { return el("span", "badge s-" + status, status); }
  function setBadge(td, status) {
    var b = td.firstChild;
    if (!b || b.textContent !== status) { td.textContent = ""; td.appendChild(badge(status)); }
  }
  function setButton(b, text, disabled) {
    if (b.getAttribute("data-armed") === "1") return;
    setText(b, text);
    b.disabled = !!disabled;
  }
  function cancellable(job) { return !job.final && job.status !== "Cancelling"; }

  // -- totals and chart --------------------------------------------------------------
  var TOTALS = [["nodes", "Nodes"], ["cpus", "CPUs"], ["busy", "Busy"], ["queued", "Queued"],
    ["running", "Running"], ["done", "Done"], ["finished", "Finished"], ["terminated", "Failed"],
    ["cancelled", "Cancelled"], ["rate", "Jobs/s"]];
  function renderTotals(s) {
    var pts = s.throughput.points, t = Object.assign({}, s.totals);
    var recent = pts.slice(-10);
    t.rate = recent.length ? (recent.reduce(function (a, p) { return a + p[1]; }, 0) / recent.length).toFixed(1) : "0.0";
    var keys = TOTALS.filter(function (k) { return s.source !== "scheduler" || ["finished", "terminated", "cancelled"].indexOf(k[0]) < 0; });
    sync($("totals"), null, keys, function (k) { return k[0]; }, function (k) {
      var c = el("div", "card");
      c.id = "total-" + k[0];
      c.appendChild(el("b", "", "0"));
      c.appendChild(el("span", "", k[1]));
      return c;
    }, function (c, k) { setText(c.firstChild, t[k[0]] === undefined ? "–" : t[k[0]]); });
  }
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
    for (var i = 0; i <= 4; i++) {
      var y = T + ph - ph * i / 4;
      g.beginPath(); g.moveTo(L, Math.round(y) + 0.5); g.lineTo(L + pw, Math.round(y) + 0.5); g.stroke();
      var v = top * i / 4;
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
    NODE_COLS.forEach(function (label) { cell(tr, label, label === "State" || label === "Updated" ? "nowrap" : "num"); });
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
  function updateNode(tb, n, s) {
    var tds = tb.firstChild.children, closed = n.status === "Closed";
    setText(tds[0].querySelector(".name"), n.name);
    setText(tds[0].querySelector(".ip"), n.ip_addr + (n.platform ? " · " + n.platform.split(/[-\s]/)[0] : ""));
    tds[0].title = n.platform || "";
    var av = n.avail || {};
    var state = n.suspect ? "suspect" : n.state;
    var vals = [n.node_cpus && n.node_cpus !== n.cpus ? n.cpus + " / " + n.node_cpus : n.cpus, n.busy, n.jobs_done,
      av.cpu === undefined || av.cpu === null ? "–" : av.cpu.toFixed(0) + " %", fmtBytes(av.memory), fmtBytes(av.disk),
      ago(n.update_time ? s.time - n.update_time : null), state];
    vals.forEach(function (v, i) { setText(tds[i + 1], v); });
    tds[8].className = "nowrap st-" + state;
    var tog = tb.querySelector("[data-action=toggle]"), open = expanded.has(n.node_id);
    setText(tog, (open ? "Hide jobs" : "Jobs") + " (" + n.running.length + ")");
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
      sync(list, null, n.running.length ? n.running : [{ none: true, job_id: "" }], function (j) { return j.job_id; },
        function (j) {
          var li = el("li");
          if (j.none) { li.appendChild(el("span", "muted", "No job of yours running here.")); return li; }
          li.setAttribute("data-job-id", j.job_id);
          li.appendChild(el("span", "mono", shortId(j.id)));
          li.appendChild(el("span", "status"));
          li.appendChild(el("span", "muted small since"));
          li.appendChild(el("span", "muted small mono args"));
          li.appendChild(button("Cancel", "cancel", "danger cancel"));
          return li;
        },
        function (li, j) {
          if (j.none) return;
          setBadge(li.querySelector(".status"), j.status);
          setText(li.querySelector(".since"), j.start_time ? "for " + fmtDur(s.time - j.start_time) : "");
          setText(li.querySelector(".args"), j.args || "");
          var b = li.querySelector("button");
          b.setAttribute("data-job", j.job_id);
          setButton(b, j.status === "Cancelling" ? "Cancelling…" : "Cancel", !cancellable(j));
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

  // -- jobs and clusters -------------------------------------------------------------
  function makeJobRow(cols) {
    return function (j) {
      var tr = el("tr");
      tr.setAttribute("data-job-id", j.job_id);
      cols.forEach(function (c) { cell(tr, c[0], c[1]); });
      return tr;
    };
  }
  var ACTIVE = [["Job", "head mono"], ["Status", ""], ["Node", ""], ["Started", ""], ["Running for", "num"], ["Arguments", "mono small"], ["Action", "wide"]];
  function updateActive(tr, j, s) {
    var td = tr.children;
    setText(td[0], shortId(j.id)); td[0].title = "job " + j.id + " (" + j.job_id + ")";
    setBadge(td[1], j.status);
    setText(td[2], j.node || "–");
    setText(td[3], fmtTime(j.start_time));
    setText(td[4], j.start_time ? fmtDur(s.time - j.start_time) : "–");
    setText(td[5], j.args || "");
    var b = td[6].firstChild;
    if (!b) { b = button("Cancel", "cancel", "danger cancel"); td[6].appendChild(b); }
    b.setAttribute("data-job", j.job_id);
    setButton(b, j.status === "Cancelling" ? "Cancelling…" : "Cancel", !cancellable(j));
  }
  var FINISHED = [["Job", "head mono"], ["Status", ""], ["Node", ""], ["Ended", ""], ["Took", "num"], ["Arguments", "mono small"], ["Error", "small"]];
  function updateFinished(tr, j) {
    var td = tr.children;
    setText(td[0], shortId(j.id)); td[0].title = "job " + j.id + " (" + j.job_id + ")";
    setBadge(td[1], j.status);
    setText(td[2], j.node || "–");
    setText(td[3], fmtTime(j.end_time));
    setText(td[4], j.start_time && j.end_time ? fmtDur(j.end_time - j.start_time) : "–");
    setText(td[5], j.args || "");
    setText(td[6], j.exception || "");
    td[6].hidden = !j.exception && window.innerWidth <= 760;
  }
  var CLUSTER = [["Cluster", "head mono"], ["Kind", ""], ["Queued", "num"], ["Running", "num"], ["Done", "num"], ["Nodes", "num"]];
  function renderJobs(s) {
    var active = s.running.concat(s.queued);
    sync($("active").tBodies[0], null, active, function (j) { return j.job_id; }, makeJobRow(ACTIVE), function (tr, j) { updateActive(tr, j, s); });
    $("no-active").hidden = active.length > 0;
    setText($("active-count"), s.totals.running + " running, " + s.totals.queued + " queued");
    sync($("finished").tBodies[0], null, s.finished, function (j) { return j.job_id; }, makeJobRow(FINISHED), updateFinished);
    $("no-finished").hidden = s.finished.length > 0;
    sync($("clusters").tBodies[0], null, s.clusters, function (c) { return c.cluster_id; }, makeJobRow(CLUSTER), function (tr, c) {
      var td = tr.children;
      setText(td[0], shortId(c.cluster_id)); td[0].title = c.cluster_id;
      [c.kind || "–", c.queued, c.running, c.done, c.nodes === undefined ? "–" : c.nodes].forEach(function (v, i) { setText(td[i + 1], v); });
    });
    $("no-clusters").hidden = s.clusters.length > 0;
  }

  function render(s) {
    last = s;
    setText($("source"), s.source === "scheduler" ? "shared scheduler" : (s.totals.clusters === 1 ? "1 cluster" : s.totals.clusters + " clusters"));
    setText($("updated"), "updated " + fmtTime(s.time));
    renderTotals(s);
    drawChart(s);
    renderNodes(s);
    renderJobs(s);
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
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (!b || b.disabled) return;
    var action = b.getAttribute("data-action"), node = b.getAttribute("data-node");
    if (action === "toggle") {
      if (expanded.has(node)) expanded.delete(node); else expanded.add(node);
      if (last) render(last);
    } else if (action === "cancel") {
      if (!confirmed(b, "Confirm cancel")) return;
      var job = b.getAttribute("data-job");
      act(b, "/api/jobs/cancel", { job_ids: [job] }, function () { return "Cancelling job " + shortId(job) + "…"; });
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
  document.addEventListener("visibilitychange", function () { if (!document.hidden && !stopped) refresh(); });
  window.addEventListener("resize", function () { if (last) drawChart(last); });
  if (!token) { banner("This address has no ?token=…: open the one the monitor printed when it started."); }
  refresh();
})();
