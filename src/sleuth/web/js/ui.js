// DOM helpers: elements are built with h(); text always goes in as text (never as HTML).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function toast(message, bad = false) {
  const box = document.getElementById("toasts");
  const t = h("div", { class: bad ? "toast bad" : "toast", text: message });
  box.append(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), bad ? 8000 : 4000);
}

export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function fmtScore(v, digits = 2) {
  const n = Number(v);
  return v === null || v === undefined || Number.isNaN(n) ? "–" : n.toFixed(digits);
}

export function field(labelText, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", {}, h("label", { for: id, text: labelText }), input, hint ? h("div", { class: "small muted", text: hint }) : null);
}

// a box's detector class from its label (what the API calls human is the person class)
export function categoryOf(box) {
  if (box.category) return box.category === "human" ? "person" : box.category;
  const l = (box.label || "").toLowerCase();
  if (l === "human" || l === "person") return "person";
  if (l === "vehicle") return "vehicle";
  return "animal";
}

export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function progressBar() {
  const inner = h("div");
  const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 }, inner);
  bar.set = (fraction) => {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    inner.style.width = `${pct}%`;
    bar.setAttribute("aria-valuenow", String(pct));
  };
  return bar;
}

// Draw boxes over an image frame. boxes: [{bbox:[x,y,w,h], label, score, status, category, box}]
export function drawBoxes(frame, boxes, { threshold = 0, selected = null, hideLow = true } = {}) {
  frame.querySelectorAll(".box").forEach((b) => b.remove());
  for (const b of boxes) {
    // boxes are drawn clipped to the picture
    const x = Math.max(0, b.bbox[0]);
    const y = Math.max(0, b.bbox[1]);
    const w = Math.max(0, Math.min(b.bbox[0] + b.bbox[2], 1) - x);
    const hh = Math.max(0, Math.min(b.bbox[1] + b.bbox[3], 1) - y);
    const cat = categoryOf(b);
    const reviewed = b.status && b.status !== "unreviewed";
    const low = !reviewed && b.score !== null && b.score !== undefined && b.score < threshold;
    const el = h("div", {
      class: `box cat-${cat}${b.status === "rejected" ? " rejected" : ""}${low ? (hideLow ? " low" : " faint") : ""}${selected === b.box ? " selected" : ""}`,
      dataset: { box: String(b.box) },
    }, h("span", { class: "tag", text: `${b.label || cat}${b.score !== null && b.score !== undefined ? " " + fmtScore(b.score) : ""}${reviewed ? " ✓" : ""}${b.repeat ? " (repeat)" : ""}` }));
    if (x + w > 0.7 && x > 0.35) el.classList.add("tag-right"); // keep the label inside the picture
    if (y < 0.05) el.classList.add("tag-inside");
    el.style.left = `${x * 100}%`;
    el.style.top = `${y * 100}%`;
    el.style.width = `${w * 100}%`;
    el.style.height = `${hh * 100}%`;
    frame.append(el);
  }
}
