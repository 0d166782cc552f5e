// The millstream dashboard: draws the graph of /api/metrics and updates it from /events.
// Plain JavaScript, no dependencies, no build step.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var BOX_W = 250, BOX_H = 150, GAP_X = 70, GAP_Y = 24, PAD = 12;
  var drawnShape = null;   // the node ids and edges the SVG was drawn for
  var boxes = {};          // node id -> {group, fields}
  var source = null;

  // -- formatting ---------------------------------------------------------------------
  function num(x) {
    if (x === null || x === undefined) return "-";
    return Number(x).toLocaleString("en-US", {maximumFractionDigits: 0});
  }
  function rate(x) {
    if (x === null || x === undefined) return "- /s";
    var digits = x >= 100 ? 0 : 1;
    return Number(x).toLocaleString("en-US", {maximumFractionDigits: digits}) + " /s";
  }
  function seconds(s) {
    if (s === null || s === undefined) return "-";
    if (s >= 60) return (s / 60).toFixed(1) + " min";
    if (s >= 1) return s.toFixed(2) + " s";
    if (s >= 1e-3) return (s * 1e3).toFixed(1) + " ms";
    return (s * 1e6).toFixed(1) + " \u00b5s";
  }
  function bytes(b) {
    if (b === null || b === undefined) return "-";
    var units = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + units[i];
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function dateTime(epochSeconds) {
    var d = new Date(epochSeconds * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" +
      pad(d.getUTCSeconds()) + " UTC";
  }
  function short(text, max) {
    return text.length > max ? "\u2026" + text.slice(text.length - max + 1) : text;
  }

  // -- layout: columns by depth from the sources ------------------------------------------
  function layout(nodes) {
    var byId = {}, depth = {};
    nodes.forEach(function (n) { byId[n.id] = n; });
    function depthOf(id, seen) {
      if (depth[id] !== undefined) return depth[id];
      if (seen[id]) return 0;  // a cycle: stop
      seen[id] = true;
      var ups = (byId[id].upstreams || []).filter(function (u) { return byId[u]; });
      var d = 0;
      ups.forEach(function (u) { d = Math.max(d, depthOf(u, seen) + 1); });
      depth[id] = d;
      return d;
    }
    var columns = [];
    nodes.forEach(function (n) {
      var d = depthOf(n.id, {});
      (columns[d] = columns[d] || []).push(n.id);
    });
    var pos = {}, rows = 0;
    columns.forEach(function (col, c) {
      rows = Math.max(rows, col.length);
      col.forEach(function (id, r) {
        pos[id] = {x: PAD + c * (BOX_W + GAP_X), y: PAD + r * (BOX_H + GAP_Y)};
      });
    });
    return {
      pos: pos,
      width: PAD * 2 + columns.length * BOX_W + Math.max(columns.length - 1, 0) * GAP_X,
      height: PAD * 2 + rows * BOX_H + Math.max(rows - 1, 0) * GAP_Y
    };
  }

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, cls, field) {
    var t = el("text", {x: x, y: y, "class": cls}, parent);
    if (field) t.setAttribute("data-field", field);
    return t;
  }

  function shapeOf(nodes) {
    return JSON.stringify(nodes.map(function (n) { return [n.id, n.type, n.upstreams]; }));
  }

  function draw(nodes) {
    var container = document.getElementById("graph");
    container.textContent = "";
    boxes = {};
    var g = layout(nodes);
    var svg = el("svg", {"class": "graph-svg", width: g.width, height: g.height,
                         viewBox: "0 0 " + g.width + " " + g.height});
    var defs = el("defs", {}, svg);
    var marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                               markerWidth: "7", markerHeight: "7", orient: "auto"}, defs);
    el("path", {d: "M0,0 L10,5 L0,10 z", fill: "#98a2b3"}, marker);
    nodes.forEach(function (n) {
      (n.upstreams || []).forEach(function (u) {
        var a = g.pos[u], b = g.pos[n.id];
        if (!a || !b) return;
        var x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x - 2, y2 = b.y + BOX_H / 2;
        var mid = (x1 + x2) / 2;
        el("path", {"class": "edge", "data-edge": u + " -> " + n.id, "marker-end": "url(#arrow)",
                    d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 +
                       " " + x2 + "," + y2}, svg);
      });
    });
    nodes.forEach(function (n) {
      var p = g.pos[n.id];
      var group = el("g", {"class": "node", "data-node": n.id,
                           transform: "translate(" + p.x + "," + p.y + ")"}, svg);
      if (!n.upstreams || n.upstreams.length === 0) group.classList.add("source");
      el("title", {}, group).textContent = n.name || n.id;
      el("rect", {"class": "box", width: BOX_W, height: BOX_H, rx: 6}, group);
      el("rect", {"class": "band", x: 1, y: 1, width: BOX_W - 2, height: 38, rx: 5}, group);
      text(group, 10, 17, "title", "id").textContent = short(n.id, 32);
      text(group, 10, 32, "type", "type").textContent = n.type || "";
      var fields = {
        rate: text(group, 10, 62, "rate", "rate"),
        rate_in: text(group, BOX_W - 10, 62, "label", "rate_in"),
        totals: text(group, 10, 82, "", "totals"),
        health: text(group, 10, 100, "", "health"),
        watermark: text(group, 10, 118, "", "watermark"),
        lag: text(group, 10, 136, "", "lag")
      };
      fields.rate_in.setAttribute("text-anchor", "end");
      boxes[n.id] = {group: group, fields: fields};
    });
    container.appendChild(svg);
  }

  function setData(group, name, value) {
    group.setAttribute("data-" + name, value === null || value === undefined ? "" : value);
  }

  function update(n) {
    var box = boxes[n.id];
    if (!box) return;
    var f = box.fields, g = box.group;
    f.rate.textContent = rate(n.rate);
    f.rate_in.textContent = n.elements_in === null ? "source" : "in " + rate(n.rate_in);
    f.totals.textContent = (n.elements_in === null ? "" : "in " + num(n.elements_in) + "  \u00b7  ") +
      "out " + num(n.elements_out) +
      (n.seconds_per_element !== null && n.seconds_per_element !== undefined ?
        "  \u00b7  " + seconds(n.seconds_per_element) + "/el" : "");
    var bad = (n.errors || 0) + (n.dead_letters || 0) > 0;
    f.health.textContent = "backlog " + num(n.backlog) + "  \u00b7  errors " + num(n.errors) +
      "  \u00b7  dead " + num(n.dead_letters);
    f.health.setAttribute("class", bad ? "bad" : "");
    g.classList.toggle("failing", bad);
    var hasWatermark = typeof n.watermark === "number";
    f.watermark.textContent = hasWatermark ? "watermark " + dateTime(n.watermark) : "";
    var lagText = "";
    if (typeof n.lag === "number") lagText = "lag " + num(n.lag);
    if (n.lag_by_partition && typeof n.lag_by_partition === "object") {
      var parts = Object.keys(n.lag_by_partition).map(function (p) {
        return p + ":" + num(n.lag_by_partition[p]);
      });
      lagText += (lagText ? "  (" : "lag (") + short(parts.join(" "), 24) + ")";
    }
    f.lag.textContent = lagText;
    setData(g, "type", n.type);
    setData(g, "rate", n.rate);
    setData(g, "rate-in", n.rate_in);
    setData(g, "elements-in", n.elements_in);
    setData(g, "elements-out", n.elements_out);
    setData(g, "backlog", n.backlog);
    setData(g, "errors", n.errors);
    setData(g, "dead-letters", n.dead_letters);
    setData(g, "watermark", hasWatermark ? n.watermark : null);
    setData(g, "lag", typeof n.lag === "number" ? n.lag : null);
  }

  function showCheckpoints(c) {
    var panel = document.getElementById("checkpoints");
    panel.setAttribute("data-state", c ? (c.last_id === null ? "waiting" : "taken") : "none");
    function set(field, value) {
      var dd = panel.querySelector('[data-field="' + field + '"]');
      dd.textContent = value;
    }
    if (!c) {
      set("last_id", "not enabled");
      ["last_age_s", "last_duration_s", "last_size_bytes", "taken", "restored_from",
       "location"].forEach(function (f) { set(f, "-"); });
      return;
    }
    set("last_id", c.last_id === null ? "none yet" : String(c.last_id));
    set("last_age_s", c.last_age_s === null ? "-" : seconds(c.last_age_s) + " ago");
    set("last_duration_s", seconds(c.last_duration_s));
    set("last_size_bytes", bytes(c.last_size_bytes));
    set("taken", num(c.taken));
    set("restored_from", c.restored_from === null ? "-" : String(c.restored_from));
    set("location", c.location || "-");
  }

  function show(data) {
    var nodes = data.nodes || [];
    var shape = shapeOf(nodes);
    if (shape !== drawnShape) {
      draw(nodes);
      drawnShape = shape;
    }
    nodes.forEach(update);
    showCheckpoints(data.checkpoints);
    var when = new Date(data.time * 1000);
    document.getElementById("summary").textContent = nodes.length + " nodes \u00b7 updated " +
      pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds()) +
      (data.interval_s ? " \u00b7 every " + data.interval_s + " s" : "");
    document.body.setAttribute("data-updated", String(data.time));
  }

  function setStatus(state) {
    var s = document.getElementById("status");
    s.textContent = state;
    s.className = "status " + state;
    s.setAttribute("data-state", state);
  }

  function connect() {
    source = new EventSource("events");
    source.onopen = function () { setStatus("live"); };
    source.onmessage = function (event) {
      setStatus("live");
      try { show(JSON.parse(event.data)); } catch (e) { console.error(e); }
    };
    source.onerror = function () {
      setStatus("reconnecting");
      if (source.readyState === EventSource.CLOSED) {  // the browser gave up: start again
        source.close();
        setTimeout(connect, 2000);
      }
    };
  }

  fetch("api/metrics").then(function (r) { return r.json(); }).then(show)
    .catch(function () { setStatus("reconnecting"); });
  connect();
})();
