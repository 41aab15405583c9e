// The teaching lab's views of one instance: exits per second by reason and by device (an
// hour of one-second history kept by the daemon), KVM's per-vCPU counters, the boot
// timeline, the guest physical memory map and the virtqueues' indexes. One request a
// second, for only the points not yet shown.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function drawChart(canvas, points, key, names, windowSecs) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const left = 56, bottom = 20, top = 8, right = 8;
  const now = points.length ? points[points.length - 1].t : Math.floor(Date.now() / 1000);
  const shown = points.filter((p) => p.t > now - windowSecs);
  let max = 1;
  for (const p of shown) for (const n of names) max = Math.max(max, p[key][n] || 0);
  const x = (t) => left + ((t - (now - windowSecs)) / windowSecs) * (w - left - right);
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  g.strokeStyle = "#e3e7ed";
  g.fillStyle = "#687078";
  g.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();
    g.fillText(v >= 100 ? Math.round(v) : v.toFixed(1), 4, y(v) + 4);
  }
  g.fillText("-" + Math.round(windowSecs / 60) + " min", left, h - 4);
  g.fillText("now", w - right - 22, h - 4);
  names.forEach((n, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = 1.5;
    g.beginPath();
    let started = false;
    for (const p of shown) {
      const v = p[key][n] || 0;
      if (!started) { g.moveTo(x(p.t), y(v)); started = true; } else g.lineTo(x(p.t), y(v));
    }
    g.stroke();
  });
  canvas.dataset.points = String(shown.length);
  canvas.dataset.max = String(max);
}

function legend(names, last, key) {
  return el("div", { class: "legend" }, names.map((n, i) =>
    el("span", {}, el("i", { style: "background:" + COLORS[i % COLORS.length] }), n + (last ? " " + (last[key][n] || 0) : ""))));
}

function hex(n) {
  return "0x" + Number(n).toString(16);
}

function size(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

window.stratoLab = function (id) {
  let points = [];
  let since = 0;
  let windowSecs = 300;
  const exitCanvas = el("canvas", { id: "exit-chart" });
  const devCanvas = el("canvas", { id: "device-chart" });
  const exitLegend = el("div");
  const devLegend = el("div");
  const kvm = el("div", { id: "kvm-counters" });
  const timeline = el("div", { id: "boot-timeline" });
  const memmap = el("div", { id: "memory-map" });
  const queues = el("div", { id: "virtqueues" });
  const pick = el("select", { onchange: (e) => { windowSecs = Number(e.target.value); redraw(); } },
    el("option", { value: 300 }, "5 minutes"), el("option", { value: 900 }, "15 minutes"), el("option", { value: 3600 }, "1 hour"));
  let reasons = [];
  let lastVcpus = null;
  let devices = [];
  const redraw = () => {
    const last = points[points.length - 1];
    drawChart(exitCanvas, points, "exits", reasons, windowSecs);
    drawChart(devCanvas, points, "devices", devices, windowSecs);
    exitLegend.replaceChildren(legend(reasons, last, "exits"));
    devLegend.replaceChildren(legend(devices, last, "devices"));
  };
  const refresh = async () => {
    let lab;
    try {
      lab = await api("/api/instances/" + id + "/lab?since=" + since);
    } catch (e) {
      return;
    }
    reasons = lab.reasons;
    points = points.concat(lab.points);
    const newest = points.length ? points[points.length - 1].t : 0;
    points = points.filter((p) => p.t > newest - 3600);
    if (lab.points.length) since = lab.points[lab.points.length - 1].t;
    const devs = new Set(devices);
    for (const p of lab.points) for (const d of Object.keys(p.devices)) devs.add(d);
    devices = Array.from(devs).sort();
    redraw();
    if (lab.vcpus) {
      // The totals and, from the previous answer, how fast each grows.
      const now = Date.now() / 1000;
      const prev = lastVcpus;
      const secs = prev ? now - prev.at : 0;
      const names = Array.from(new Set(lab.vcpus.flatMap((v) => Object.keys(v)))).sort();
      const cell = (i, n) => {
        const v = lab.vcpus[i][n];
        if (v === undefined) return "";
        const before = prev && prev.vcpus[i] ? prev.vcpus[i][n] : undefined;
        if (before === undefined || secs <= 0 || n === "kvm_blocking") return String(v);
        return v + "  (" + (Math.max(0, v - before) / secs).toFixed(0) + "/s)";
      };
      kvm.replaceChildren(el("table", {},
        el("tr", {}, el("th", {}, "counter"), lab.vcpus.map((_, i) => el("th", {}, "vCPU " + i))),
        names.map((n) => el("tr", {}, el("td", { class: "mono" }, n), lab.vcpus.map((_, i) => el("td", { class: "mono" }, cell(i, n)))))));
      lastVcpus = { at: now, vcpus: lab.vcpus };
    }
    if (lab.timeline.length) {
      const total = Math.max(1, lab.timeline[lab.timeline.length - 1].ms);
      timeline.replaceChildren(
        el("table", {}, el("tr", {}, el("th", {}, "step"), el("th", {}, "ms from the request"), el("th", {}, "")),
          lab.timeline.map((s) => el("tr", { "data-step": s.step },
            el("td", {}, s.step.replace(/_/g, " ")),
            el("td", { class: "mono" }, s.ms.toFixed(1)),
            el("td", { style: "width:50%" }, el("div", { style: "height:10px;background:#ff9900;width:" + Math.max(0.5, (s.ms / total) * 100) + "%" }))))));
    }
    if (lab.memory_map) {
      memmap.replaceChildren(el("table", {},
        el("tr", {}, ["start", "end", "size", "kind", "what"].map((h) => el("th", {}, h))),
        lab.memory_map.map((r) => el("tr", {},
          el("td", { class: "mono" }, hex(r.base)), el("td", { class: "mono" }, hex(r.base + r.len - 1)),
          el("td", {}, size(r.len)), el("td", {}, r.kind), el("td", {}, r.name)))));
    }
    if (lab.virtqueues) {
      queues.replaceChildren(el("table", {},
        el("tr", {}, ["device", "queue", "size", "ready", "avail idx", "used idx", "in flight"].map((h) => el("th", {}, h))),
        lab.virtqueues.map((q) => el("tr", {},
          el("td", {}, q.device), el("td", {}, q.queue), el("td", {}, q.size), el("td", {}, q.ready ? "yes" : "no"),
          el("td", { class: "mono" }, q.avail_idx === null ? "—" : q.avail_idx),
          el("td", { class: "mono" }, q.used_idx === null ? "—" : q.used_idx),
          el("td", { class: "mono" }, q.avail_idx === null || q.used_idx === null ? "—" : (q.avail_idx - q.used_idx + 65536) % 65536)))));
    }
  };
  every(1000, refresh);
  return el("div", { id: "lab" },
    el("h2", {}, "Lab: exits per second by reason ", pick),
    el("p", { class: "muted" }, "Summed over the vCPUs: port I/O and MMIO the monitor served, halts, interrupt windows, external interrupts, emulated instructions, signals; total is every exit KVM counted. One point a second, an hour kept."),
    exitCanvas, exitLegend,
    el("h2", {}, "Lab: I/O and MMIO exits per second by device"),
    el("p", { class: "muted" }, "Only the monitor knows which device a port or address belongs to: each access it served, per device."),
    devCanvas, devLegend,
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Boot timeline"), timeline),
      el("div", { class: "card" }, el("h2", {}, "KVM's per-vCPU counters"), kvm)),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Guest physical memory map"), memmap),
      el("div", { class: "card" }, el("h2", {}, "Virtqueues"), queues)));
};
