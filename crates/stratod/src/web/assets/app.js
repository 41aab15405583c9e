// strato's web view: the instance list and each instance's detail page, with its browser
// console and the teaching lab's views. Plain JS; every value shown goes in as text.
"use strict";

const main = document.getElementById("main");
let timers = [];
let sockets = [];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

class AuthError extends Error {}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  if (r.status === 401) throw new AuthError("not logged in");
  if (r.status === 204) return null;
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
}

function every(ms, f) {
  f();
  timers.push(setInterval(f, ms));
}

function fill(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
}

function reset() {
  timers.forEach(clearInterval);
  timers = [];
  sockets.forEach((s) => s.close());
  sockets = [];
  main.replaceChildren();
}

function go(path) {
  history.pushState(null, "", path);
  route();
}

window.addEventListener("popstate", route);

function link(path, text) {
  return el("a", { href: path, onclick: (ev) => { ev.preventDefault(); go(path); } }, text);
}

function stateCell(s) {
  return el("span", { class: "state state-" + s, "data-state": s }, s);
}

function checkCell(c) {
  if (!c) return el("span", { class: "muted" }, "—");
  const part = (name, k) =>
    el("div", {},
      el("span", { class: "check-" + k.status }, name + ": " + k.status),
      k.reason ? el("div", { class: "why" }, k.reason) : null);
  return el("div", {}, part("system", c.system), part("instance", c.instance));
}

function showError(where, e) {
  if (e instanceof AuthError) return loginPage();
  where.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
}

async function loginPage() {
  reset();
  document.getElementById("who").textContent = "";
  document.getElementById("logout").hidden = true;
  const msg = el("p", { class: "error" });
  const input = el("input", { type: "password", name: "token", autocomplete: "current-password", id: "token" });
  const form = el("form", { class: "login", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await post("/api/login", { token: input.value });
        route();
      } catch (e) {
        msg.textContent = e.message;
      }
    } },
    el("h1", {}, "Log in"),
    el("label", { for: "token" }, "API token (a key of the daemon's tokens setting)"),
    input,
    el("button", { type: "submit" }, "Log in"),
    msg);
  main.replaceChildren(form);
  input.focus();
}

async function whoami() {
  const s = await api("/api/session");
  document.getElementById("who").textContent = "account " + s.account + " · " + s.region;
  document.getElementById("logout").hidden = false;
}

document.getElementById("logout").addEventListener("click", async () => {
  await post("/api/logout");
  loginPage();
});

function actionButtons(inst, after) {
  const act = async (action, body) => {
    try {
      await post("/api/instances/" + inst.instance_id + "/" + action, body);
    } catch (e) {
      alert(e.message);
    }
    after();
  };
  const s = inst.state;
  return el("div", { class: "actions" },
    el("button", { "data-action": "start", disabled: s !== "stopped", onclick: () => act("start") }, "Start"),
    el("button", { "data-action": "stop", disabled: s !== "running" && s !== "pending", onclick: () => act("stop") }, "Stop"),
    el("button", { "data-action": "force-stop", disabled: s !== "stopping" && s !== "running", onclick: () => act("stop", { force: true }) }, "Force stop"),
    el("button", { "data-action": "reboot", disabled: s !== "running", onclick: () => act("reboot") }, "Reboot"),
    el("button", { class: "danger", "data-action": "terminate", disabled: s === "terminated", onclick: () => {
      if (confirm("Terminate " + inst.instance_id + "? This cannot be undone.")) act("terminate");
    } }, "Terminate"));
}

async function listPage() {
  reset();
  const body = el("tbody", { id: "instances" });
  const vols = el("tbody", { id: "volumes" });
  const addrs = el("tbody", { id: "addresses" });
  const err = el("div");
  main.append(
    el("h1", {}, "Instances"), err,
    el("table", {}, el("thead", {}, el("tr", {},
      ["Instance", "Name", "State", "Type", "Private IP", "Public IP", "Status checks", "Launched", ""].map((h) => el("th", {}, h)))), body),
    el("h2", {}, "Volumes"),
    el("table", {}, el("thead", {}, el("tr", {},
      ["Volume", "Size", "Type", "State", "Attached to", "Device"].map((h) => el("th", {}, h)))), vols),
    el("h2", {}, "Elastic IP addresses"),
    el("table", {}, el("thead", {}, el("tr", {},
      ["Public IP", "Allocation", "Instance", "Private IP"].map((h) => el("th", {}, h)))), addrs));
  const refresh = async () => {
    try {
      const [l, v, a] = await Promise.all([api("/api/instances"), api("/api/volumes"), api("/api/addresses")]);
      body.replaceChildren(...l.instances.map((i) => el("tr", { "data-instance": i.instance_id },
        el("td", { class: "mono" }, link("/instances/" + i.instance_id, i.instance_id)),
        el("td", {}, i.name || ""),
        el("td", {}, stateCell(i.state)),
        el("td", {}, i.instance_type),
        el("td", { class: "mono" }, i.private_ip || ""),
        el("td", { class: "mono" }, i.public_ip || ""),
        el("td", {}, checkCell(i.status_checks)),
        el("td", {}, i.launch_time),
        el("td", {}, actionButtons(i, refresh)))));
      if (!l.instances.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No instances.")));
      vols.replaceChildren(...v.volumes.map((x) => el("tr", {},
        el("td", { class: "mono" }, x.volume_id), el("td", {}, x.size_gib + " GiB"), el("td", {}, x.volume_type),
        el("td", {}, x.state),
        el("td", { class: "mono" }, x.instance_id ? link("/instances/" + x.instance_id, x.instance_id) : ""),
        el("td", { class: "mono" }, x.device || ""))));
      addrs.replaceChildren(...a.addresses.map((x) => el("tr", {},
        el("td", { class: "mono" }, x.public_ip), el("td", { class: "mono" }, x.allocation_id || ""),
        el("td", { class: "mono" }, x.instance_id || ""), el("td", { class: "mono" }, x.private_ip || ""))));
      err.replaceChildren();
    } catch (e) {
      showError(err, e);
    }
  };
  every(5000, refresh);
}

function dl(pairs) {
  return el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : v)]));
}

function consoleView(id) {
  const box = el("div", { id: "terminal" });
  const notes = el("div", { id: "console-notices" });
  const wrap = el("div", {}, el("h2", {}, "Console"),
    el("p", { class: "muted" }, "The serial console: the latest 64 KiB of output first, then live. Type to send input to the guest."),
    box, notes);
  const term = new Terminal({ convertEol: true, scrollback: 5000, fontSize: 13, cols: 120, rows: 24 });
  term.open(box);
  window.stratoTerm = term;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/api/instances/" + id + "/console");
  ws.binaryType = "arraybuffer";
  sockets.push(ws);
  const enc = new TextEncoder();
  ws.onmessage = (m) => {
    if (typeof m.data === "string") {
      try {
        notes.append(el("p", { class: "notice" }, JSON.parse(m.data).notice));
      } catch (_) { /* not a notice */ }
    } else {
      term.write(new Uint8Array(m.data));
    }
  };
  ws.onclose = () => notes.append(el("p", { class: "muted" }, "Console disconnected."));
  // Pastes go in frames of at most 8 KiB (the daemon takes up to 16 KiB a frame).
  term.onData((d) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const b = enc.encode(d);
    for (let i = 0; i < b.length; i += 8192) ws.send(b.subarray(i, i + 8192));
  });
  return wrap;
}

async function detailPage(id) {
  reset();
  const head = el("div");
  const info = el("div", { class: "grid" });
  const err = el("div");
  main.append(el("p", {}, link("/", "← Instances")), head, err, info);
  let consoleShown = false;
  const refresh = async () => {
    try {
      const i = await api("/api/instances/" + id);
      fill(head,
        el("h1", {}, i.instance_id, i.name ? " (" + i.name + ")" : "", " ", stateCell(i.state)),
        i.state_reason ? el("p", { class: "muted" }, i.state_reason) : null,
        actionButtons(i, refresh));
      const c = i.status_checks;
      info.replaceChildren(
        el("div", { class: "card" }, el("h2", {}, "Instance"), dl([
          ["Type", i.instance_type + " (" + i.vcpus + " vCPU, " + i.memory_mib + " MiB)"],
          ["Image", i.image_id], ["Zone", i.availability_zone], ["Launched", i.launch_time],
          ["Key pair", i.key_name], ["Root device", i.root_device_name],
          ["Security groups", i.security_groups.map((g) => g.group_id + " (" + g.group_name + ")").join(", ")],
          ["Placement group", i.placement_group],
        ])),
        el("div", { class: "card", id: "checks" }, el("h2", {}, "Status checks"), c ? dl([
          ["System", el("span", {}, el("span", { class: "check-" + c.system.status }, c.system.status),
            c.system.reason ? el("div", { class: "why" }, c.system.reason) : null,
            c.system.impaired_since ? el("div", { class: "muted" }, "failing since " + c.system.impaired_since) : null)],
          ["Instance", el("span", {}, el("span", { class: "check-" + c.instance.status }, c.instance.status),
            c.instance.reason ? el("div", { class: "why" }, c.instance.reason) : null,
            c.instance.impaired_since ? el("div", { class: "muted" }, "failing since " + c.instance.impaired_since) : null)],
          ["Checked since", c.since],
        ]) : el("p", { class: "muted" }, "Status checks run while the instance is running.")),
        el("div", { class: "card" }, el("h2", {}, "Network"), dl([
          ["VPC", i.vpc_id], ["Subnet", i.subnet_id], ["Private IP", i.private_ip], ["Public IP", i.public_ip],
        ]), el("table", {}, el("tr", {}, ["Interface", "MAC", "Addresses", "Status"].map((h) => el("th", {}, h))),
          i.network_interfaces.map((e) => el("tr", {},
            el("td", { class: "mono" }, e.network_interface_id),
            el("td", { class: "mono" }, e.mac_address),
            el("td", { class: "mono" }, [e.private_ip].concat(e.secondary_private_ips, e.ipv6_addresses).join(" ")),
            el("td", {}, e.status))))),
        el("div", { class: "card" }, el("h2", {}, "Volumes"),
          el("table", {}, el("tr", {}, ["Device", "Volume", "Size", "State"].map((h) => el("th", {}, h))),
            i.volumes.map((v) => el("tr", {},
              el("td", { class: "mono" }, v.device || ""), el("td", { class: "mono" }, v.volume_id),
              el("td", {}, v.size_gib + " GiB"), el("td", {}, v.attach_state || v.state))))));
      if (!consoleShown && i.state !== "terminated") {
        consoleShown = true;
        main.append(consoleView(id));
        if (window.stratoLab) main.append(window.stratoLab(id));
      }
      err.replaceChildren();
    } catch (e) {
      showError(err, e);
    }
  };
  every(2000, refresh);
}

async function route() {
  try {
    await whoami();
  } catch (e) {
    if (e instanceof AuthError) return loginPage();
    main.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
    return;
  }
  const m = location.pathname.match(/^\/instances\/(i-[0-9a-f]+)$/);
  if (m) detailPage(m[1]);
  else listPage();
}

route();
