// nslab web: draws the lab from /api/lab and lights cables from /api/events.
// Contract (tests rely on it): every box is <g class="box" data-box="NAME">,
// every cable <g class="cable" data-cable="A--B" data-a="A" data-b="B">, and a
// cable that just carried a packet has data-active="ab" or "ba" (its direction).
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const token = new URLSearchParams(location.search).get("token") || "";
const svg = document.getElementById("lab");
const details = document.getElementById("details");
const list = document.getElementById("packets");
const conn = document.getElementById("conn");
const samplingEl = document.getElementById("sampling");
const ACTIVE_MS = 1500;
const MAX_ROWS = 500;
let lab = null;
let cables = new Map();
let source = null;
let samplingTimer = null;

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function api(path) {
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

// The kernel's view of a place (from `nslab status`), if the server had it.
function placeStatus(id) {
  const st = lab && lab.status;
  if (!st) return null;
  return (st.places || []).find(p => p.place === id) || null;
}

function ifState(place, ifname) {
  const p = placeStatus(place);
  if (p) {
    const i = (p.interfaces || []).find(x => x.name === ifname);
    if (i) return i.link;
  }
  return null;
}

function boxText(b) {
  const lines = [b.id + " (" + b.kind + ")"];
  for (const [name, addrs] of b.interfaces) {
    const state = ifState(b.id, name);
    lines.push("  " + name + (addrs.length ? " " + addrs.join(", ") : "") + (state ? "  [" + state + "]" : ""));
  }
  return lines.join("\n");
}

function routesText(b) {
  const p = placeStatus(b.id);
  const lines = [b.id + ": routes"];
  if (p && p.routes && p.routes.length) {
    for (const r of p.routes) lines.push("  " + r.route + (r.declared ? "" : "  (kernel)"));
  } else if (b.routes.length) {
    for (const r of b.routes) lines.push("  " + r + "  (file)");
  } else {
    lines.push("  (none)");
  }
  return lines.join("\n");
}

function endText(end) {
  const i = end.lastIndexOf(":");
  const place = end.slice(0, i), ifname = end.slice(i + 1);
  const box = lab.layout.boxes.find(b => b.id === place);
  let addrs = [];
  if (box) {
    const row = box.interfaces.find(([n]) => n === ifname);
    if (row) addrs = row[1];
  }
  // Bridge ports live in the host.
  const state = ifState(place, ifname) || ifState("host", ifname);
  return "  " + end + (addrs.length ? " " + addrs.join(", ") : "") + (state ? "  [" + state + "]" : "");
}

// The shaping in force on a cable's ends (`nslab shape`, the file's link maps).
function shapingOf(c) {
  const all = (lab.status && lab.status.shaping) || [];
  const ifOf = e => e.slice(e.lastIndexOf(":") + 1);
  return all.filter(s => s.endpoint === c.a || s.endpoint === c.b ||
    [c.a, c.b].some(e => s.endpoint.endsWith(":" + ifOf(e)) && s.endpoint.startsWith("host:")));
}

function cableState(c) {
  if (c.down) return "down";
  const ends = [c.a, c.b].map(e => {
    const i = e.lastIndexOf(":");
    return ifState(e.slice(0, i), e.slice(i + 1)) || ifState("host", e.slice(i + 1));
  });
  if (ends.some(s => s && s !== "up" && s !== "unknown")) return "down";
  return c.shaped || shapingOf(c).length ? "shaped" : "up";
}

function draw() {
  const L = lab.layout;
  document.getElementById("title").textContent = "nslab " + L.lab + " (" + L.mode + ")";
  document.title = "nslab web: " + L.lab;
  const [x, y, w, h] = L.view_box;
  svg.setAttribute("viewBox", [x, y, w, h].join(" "));
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.replaceChildren();
  el("rect", { x, y, width: w, height: h, fill: "#ffffff" }, svg);
  const byId = new Map(L.boxes.map(b => [b.id, b]));
  const centre = b => [b.x + b.w / 2, b.y + b.h / 2];
  for (const [a, b] of L.ties) {
    const A = byId.get(a), B = byId.get(b);
    if (!A || !B) continue;
    const [x1, y1] = centre(A), [x2, y2] = centre(B);
    el("line", { class: "tie", x1, y1, x2, y2 }, svg);
  }
  const cableLayer = el("g", { class: "cables" }, svg);
  const boxLayer = el("g", { class: "boxes" }, svg);
  const labelLayer = el("g", { class: "labels" }, svg);
  cables = new Map();
  for (const c of L.cables) {
    const state = cableState(c);
    const g = el("g", { class: "cable " + state, "data-cable": c.id, "data-a": c.a, "data-b": c.b, "data-state": state }, cableLayer);
    const [x1, y1, x2, y2] = c.line;
    el("line", { class: "wire", x1, y1, x2, y2 }, g);
    el("line", { class: "hit", x1, y1, x2, y2 }, g);
    el("title", {}, g).textContent = c.label + " (" + state + ")";
    const t = el("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "text-anchor": "middle", class: "cable-label", "data-cable": c.id }, labelLayer);
    t.textContent = c.label;
    const shaping = shapingOf(c).map(s => "  " + s.endpoint + ": " + [s.rate, s.delay && s.delay + " delay", s.jitter && "±" + s.jitter, s.loss && s.loss + " loss"].filter(Boolean).join(" ")).join("\n");
    g.addEventListener("mouseenter", () => { details.textContent = "cable " + c.label + "\nstate: " + state + "\n" + endText(c.a) + "\n" + endText(c.b) + (shaping ? "\nshaping:\n" + shaping : ""); });
    cables.set(c.id, { c, g, timer: null });
  }
  for (const b of L.boxes) {
    const g = el("g", { class: "box " + b.kind, "data-box": b.id, "data-kind": b.kind }, boxLayer);
    el("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: b.kind === "bridge" ? 12 : 0, fill: b.fill }, g);
    const t = el("text", { x: b.x + 8, y: b.y + 7 }, g);
    b.lines.forEach((line, i) => {
      const s = el("tspan", { x: b.x + 8, dy: i === 0 ? 13 : 16.25 }, t);
      if (i === 0) s.setAttribute("class", "title");
      s.textContent = line;
    });
    el("title", {}, g).textContent = boxText(b);
    g.addEventListener("mouseenter", () => { details.textContent = boxText(b); });
    g.addEventListener("click", () => {
      for (const o of svg.querySelectorAll(".box.selected")) o.classList.remove("selected");
      g.classList.add("selected");
      details.textContent = boxText(b) + "\n\n" + routesText(b);
    });
  }
}

// A packet crossed cable `ev.cable` from `ev.from` to `ev.to`.
function light(ev) {
  const k = cables.get(ev.cable);
  if (!k) return;
  const dir = ev.forward ? "ab" : "ba";
  k.g.setAttribute("data-active", dir);
  k.g.classList.toggle("dir-ab", ev.forward);
  k.g.classList.toggle("dir-ba", !ev.forward);
  clearTimeout(k.timer);
  k.timer = setTimeout(() => { k.g.removeAttribute("data-active"); }, ACTIVE_MS);
  // A dot running along the cable, in the packet's direction.
  let [x1, y1, x2, y2] = k.c.line;
  if (!ev.forward) [x1, y1, x2, y2] = [x2, y2, x1, y1];
  const dot = el("circle", { class: "dot", r: 5, cx: 0, cy: 0 }, k.g);
  const anim = dot.animate([{ transform: `translate(${x1}px, ${y1}px)` }, { transform: `translate(${x2}px, ${y2}px)` }], { duration: 600 });
  anim.onfinish = () => dot.remove();
}

function addRow(ev) {
  const li = document.createElement("li");
  const t = new Date(ev.ts * 1000);
  const hms = t.toTimeString().slice(0, 8) + "." + String(Math.floor((ev.ts % 1) * 1e6)).padStart(6, "0");
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = ev.where;
  li.append(hms + " ", where, " " + ev.from + " → " + ev.to + "  " + ev.text);
  list.appendChild(li);
  while (list.children.length > MAX_ROWS) list.firstChild.remove();
  list.parentElement.scrollTop = list.parentElement.scrollHeight;
  li.scrollIntoView({ block: "nearest" });
}

function connect() {
  if (source) source.close();
  const f = new FormData(document.getElementById("filters"));
  const q = new URLSearchParams();
  for (const k of ["proto", "host", "port"]) if (f.get(k)) q.set(k, f.get(k));
  q.set("noise", f.get("hide_noise") ? "0" : "1");
  conn.textContent = "connecting…";
  conn.classList.remove("live");
  source = new EventSource(api("/api/events?" + q.toString()));
  // data-filter: the filter the open stream has (tests wait for it).
  source.onopen = () => { conn.textContent = "live"; conn.classList.add("live"); conn.dataset.filter = q.toString(); };
  source.onerror = () => { conn.textContent = "disconnected (retrying)"; conn.classList.remove("live"); };
  source.addEventListener("packet", m => {
    const ev = JSON.parse(m.data);
    light(ev);
    addRow(ev);
  });
  source.addEventListener("sampling", m => {
    const s = JSON.parse(m.data);
    samplingEl.hidden = false;
    samplingEl.textContent = `sampling: ${s.sent} of ${s.offered} packets shown last second (${Math.round(s.ratio * 100)}%)`;
    clearTimeout(samplingTimer);
    samplingTimer = setTimeout(() => { samplingEl.hidden = true; }, 2500);
  });
}

document.getElementById("filters").addEventListener("submit", e => {
  e.preventDefault();
  // Checked on the server too; a bad filter gets 400 there.
  fetch(api("/api/events?" + new URLSearchParams({ proto: e.target.proto.value, host: e.target.host.value, port: e.target.port.value, check: "1" })))
    .then(r => r.status === 400 ? r.text().then(t => { conn.textContent = "bad filter: " + t; }) : connect());
});
document.getElementById("clear").addEventListener("click", () => list.replaceChildren());

fetch(api("/api/lab"))
  .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
  .then(j => {
    lab = j;
    draw();
    svg.setAttribute("data-ready", "1");
    // Milliseconds from navigation to a drawn lab (the 200-node benchmark reads it).
    svg.setAttribute("data-drawn-ms", String(Math.round(performance.now())));
    connect();
  })
  .catch(e => { details.textContent = "cannot load the lab: " + e; });
