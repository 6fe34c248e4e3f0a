// nslab web actions: probes from the page, the path they took hop by hop,
// the check matrix, and cable ends set down/up. Uses app.js's globals (lab,
// cables, api, svg). Contract (tests rely on it): after a probe every cable
// on its path has data-path="N,M,..." (its hop numbers) and data-path-dir
// "ab", "ba" or "both"; the cable and the box where a failed probe stopped
// get data-why (the reason's sentence); #act-result has data-ok and the hops.
"use strict";
(function () {
  const panel = document.getElementById("actions");
  if (!panel) return;
  const $ = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  let selectedCable = null;

  function clearPath() {
    for (const e of document.querySelectorAll("[data-path],[data-why]")) {
      e.removeAttribute("data-path");
      e.removeAttribute("data-path-dir");
      e.removeAttribute("data-why");
    }
  }

  // Light the hops in order, a step every 400 ms, and keep them lit.
  function showPath(r) {
    clearPath();
    const dirs = new Map();
    for (const h of r.path) {
      const k = cables.get(h.cable);
      if (!k) continue;
      const d = dirs.get(h.cable);
      dirs.set(h.cable, d && d !== h.dir ? "both" : h.dir);
      const ns = (k.g.getAttribute("data-path") || "").split(",").filter(Boolean);
      ns.push(String(h.n));
      k.g.setAttribute("data-path", ns.join(","));
      k.g.setAttribute("data-path-dir", dirs.get(h.cable));
      setTimeout(() => light({ cable: h.cable, forward: h.dir === "ab" }), (h.n - 1) * 400);
    }
    if (r.why) {
      const k = r.why.cable && cables.get(r.why.cable);
      if (k) k.g.setAttribute("data-why", r.why.text);
      const box = r.why.at && svg.querySelector(`g.box[data-box="${CSS.escape(r.why.at)}"]`);
      if (box) box.setAttribute("data-why", r.why.text);
    }
  }

  function renderResult(out, r) {
    out.replaceChildren();
    out.setAttribute("data-ok", r.ok ? "1" : "0");
    let head = `${r.kind} ${r.from} → ${r.to} (${r.address}${r.port && r.kind !== "ping" ? ":" + r.port : ""}): `;
    head += r.ok ? "ok" + (r.rtt_ms != null ? ` in ${r.rtt_ms.toFixed(2)} ms` : "") + (r.status ? `, HTTP ${r.status}` : "") : "failed" + (r.error ? ": " + r.error : "");
    out.append($("p", { class: r.ok ? "ok" : "bad" }, head));
    const ol = $("ol", { id: "path" });
    for (const h of r.path) {
      const li = $("li", { "data-hop": h.n, "data-cable": h.cable, "data-kind": h.kind },
        `${h.from} → ${h.to}  ${h.src} > ${h.dst}  ${h.kind}`);
      if (r.why && r.why.hop === h.n) {
        li.setAttribute("data-why", r.why.text);
        li.append($("div", { class: "why" }, "why not: " + r.why.text));
      }
      ol.append(li);
    }
    if (!r.path.length) out.append($("p", { class: "hint" }, "the capture saw none of its packets on a cable"));
    out.append(ol);
    if (r.why && (r.why.hop == null)) out.append($("p", { class: "why" }, "why not" + (r.why.at ? ` (at ${r.why.at})` : "") + ": " + r.why.text));
  }

  function build() {
    const places = lab.layout.boxes.filter(b => b.kind !== "bridge").map(b => b.id);
    const targets = lab.layout.boxes.map(b => b.id);
    const form = $("form", { id: "act" });
    const sel = (name, opts) => {
      const s = $("select", { name, id: "act-" + name });
      for (const o of opts) s.append($("option", { value: o }, o));
      return s;
    };
    const from = sel("from", places), to = sel("to", targets), kind = sel("kind", ["ping", "tcp", "http"]);
    const port = $("input", { name: "port", id: "act-port", size: 5, placeholder: "80" });
    const go = $("button", { type: "submit", id: "act-go" }, "send");
    form.append("from ", from, " to ", to, " ", kind, " port ", port, " ", go);
    const out = $("div", { id: "act-result" });
    const checkBtn = $("button", { type: "button", id: "check-run" }, "check matrix");
    const checkOut = $("div", { id: "check" });
    const linkBox = $("div", { id: "link" });
    panel.append($("h2", {}, "Try it"), form, out, checkBtn, checkOut, linkBox);
    if (lab.read_only || lab.replay) {
      for (const e of [go, checkBtn]) e.disabled = true;
      panel.prepend($("p", { class: "hint", id: "act-off" }, lab.replay ? "replay: actions are off" : "read-only: actions are off"));
    }
    // A replay: the recorded actions' answers, shown again on demand.
    if (lab.replay && lab.acts && lab.acts.length) {
      const ul = $("ul", { id: "recorded-acts" });
      for (const act of lab.acts) {
        const r = act.answer;
        const b = $("button", { type: "button" }, `${r.kind} ${r.from} → ${r.to}${r.port ? ":" + r.port : ""} (${r.ok ? "ok" : "failed"})`);
        b.addEventListener("click", () => { renderResult(out, r); showPath(r); });
        const li = $("li"); li.append(b); ul.append(li);
      }
      panel.insertBefore($("p", {}, "recorded actions:"), out);
      panel.insertBefore(ul, out);
    }
    form.addEventListener("submit", e => {
      e.preventDefault();
      const body = { kind: kind.value, from: from.value, to: to.value };
      if (port.value) body.port = Number(port.value);
      go.disabled = true;
      out.textContent = "running…";
      fetch(api("/api/act"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
        .then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(t); }))
        .then(r => { renderResult(out, r); showPath(r); })
        .catch(err => { out.textContent = String(err); })
        .finally(() => { go.disabled = false; });
    });
    checkBtn.addEventListener("click", () => {
      checkOut.textContent = "probing…";
      fetch(api("/api/check")).then(r => r.ok ? r.json() : r.text().then(t => { throw new Error(t); }))
        .then(r => {
          const t = $("table", { class: "matrix" });
          const hr = $("tr"); hr.append($("th", {}, "from \\ to"));
          for (const p of r.places) hr.append($("th", {}, p));
          t.append(hr);
          for (const s of r.places) {
            const tr = $("tr"); tr.append($("th", {}, s));
            for (const d of r.places) {
              const cs = r.matrix.filter(c => c.src === s && c.dst === d);
              const ok = cs.length && cs.every(c => c.reach === true);
              tr.append($("td", { class: cs.length ? (ok ? "ok" : "bad") : "" }, cs.length ? (ok ? "✓" : "✗") : ""));
            }
            t.append(tr);
          }
          checkOut.replaceChildren($("p", {}, `${r.summary.pairs_reach} of ${r.summary.pairs} pairs reach`), t);
        })
        .catch(err => { checkOut.textContent = String(err); });
    });
    // A cable clicked: buttons to set its end down or up.
    for (const [id, k] of cables) {
      k.g.addEventListener("click", () => {
        selectedCable = id;
        linkBox.replaceChildren($("span", {}, "cable " + k.c.label + " "));
        for (const action of ["down", "up"]) {
          const b = $("button", { type: "button", "data-link": action }, action);
          b.disabled = !!(lab.read_only || lab.replay);
          b.addEventListener("click", () => {
            fetch(api("/api/link"), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ cable: selectedCable, action }) })
              .then(r => r.text().then(t => { linkBox.append($("div", {}, r.ok ? `${action}: done` : t)); if (r.ok) k.g.classList.toggle("down", action === "down"); }));
          });
          linkBox.append(b, " ");
        }
      });
    }
  }

  const wait = setInterval(() => {
    if (lab && svg.hasAttribute("data-ready")) { clearInterval(wait); build(); }
  }, 100);
})();
