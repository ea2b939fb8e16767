// One image: its boxes, candidates and metadata, and the review tools (confirm or correct a label, reject a box,
// draw a missed box, mark the image blank). Every action is stored server-side (POST /v1/reviews).
import { allPages, api, prefs, qs } from "./api.js";
import { h, categoryOf, drawBoxes, field, fmtDate, fmtScore, toast } from "./ui.js";

let labelCache = null;
async function labelList() {
  if (!labelCache) labelCache = api("/v1/labels").then((r) => r.labels).catch(() => []);
  return labelCache;
}

async function loadItems(ref) {
  if (ref.group) {
    const data = await allPages(`/v1/upload-groups/${ref.group}/items`);
    const items = data.items.filter((i) => i.review).map((i) => ({ ...i, key: i.job_id, result_id: i.job_id, index: 0 }));
    return { items, current: items.findIndex((i) => i.job_id === ref.job), back: `#/group/${ref.group}`, title: data.upload.name, hrefOf: (i) => `#/group/${ref.group}/image/${i.job_id}` };
  }
  const [payload, reviews, listed] = await Promise.all([api(`/v1/detect/${ref.result}`),
    api(`/v1/reviews${qs({ result_id: ref.result })}`), api(`/v1/results${qs({ ids: ref.result })}`)]);
  const imageUrl = listed.data[0]?.image_url || null;
  const results = Array.isArray(payload.results) ? payload.results : [payload];
  const items = results.map((r, i) => ({ key: `${ref.result}:${i}`, result_id: ref.result, index: i, file: r.filename || `image ${i + 1}`, image_url: imageUrl, result: r, review: reviews.images[i] }))
    .filter((i) => i.result.status !== "failed");
  return { items, current: items.findIndex((i) => i.index === ref.index), back: `#/result/${ref.result}`, title: `Result ${ref.result.slice(0, 8)}`, hrefOf: (i) => `#/result/${ref.result}/image/${i.index}` };
}

export async function view(main, ctx, ref) {
  const { items, current, back, title, hrefOf } = await loadItems(ref);
  if (!ctx.alive) return;
  if (current < 0) {
    main.append(h("h1", { text: "Image not found" }), h("p", {}, h("a", { href: back, text: "Back" })));
    return;
  }
  const item = items[current];
  const labels = await labelList();
  if (!ctx.alive) return;
  let selected = null;
  let drawing = false;
  // the grid's confidence filter: unreviewed boxes under it are drawn dashed and are not exported
  const threshold = Number(sessionStorage.getItem("sleuth.threshold") || 0.2);
  let draft = null;

  const frame = h("div", { class: "frame", id: "viewer-frame" });
  if (item.image_url) frame.append(h("img", { src: item.image_url, alt: item.file, id: "viewer-image" }));
  else frame.append(h("div", { class: "placeholder", role: "img", "aria-label": "image not kept by the server" }));
  const draftEl = h("div", { class: "draft", hidden: true });
  frame.append(draftEl);

  const reviewer = h("input", { type: "text", id: "reviewer", maxlength: 200, value: prefs.reviewer, placeholder: "default: your key's name" });
  reviewer.addEventListener("change", () => { prefs.reviewer = reviewer.value.trim(); });
  const datalist = h("datalist", { id: "label-options" }, labels.map((l) => h("option", { value: l.label })));
  const boxList = h("ul", { class: "boxes-list", id: "box-list" });
  const side = h("div", { class: "side" });
  const status = h("p", { class: "small muted", id: "review-status", "aria-live": "polite" });

  const prev = items[current - 1];
  const next = items[current + 1];
  const nav = h("div", { class: "actions" },
    h("a", { class: "button secondary small", href: back, text: `← ${title}` }),
    prev ? h("a", { class: "button secondary small", href: hrefOf(prev), id: "prev-image", text: "Previous" }) : null,
    next ? h("a", { class: "button secondary small", href: hrefOf(next), id: "next-image", text: "Next" }) : null,
    h("span", { class: "small muted", text: `${current + 1} / ${items.length}` }));

  async function act(body, what) {
    status.textContent = "Saving…";
    try {
      const r = await api("/v1/reviews", {
        method: "POST",
        json: { result_id: item.result_id, index: item.index, reviewer: reviewer.value.trim() || undefined, ...body },
      });
      item.review = r.image;
      status.textContent = `${what} — saved by ${r.review.reviewer} at ${fmtDate(r.review.created_at)}`;
      toast(`${what} (saved)`);
      render();
      return true;
    } catch (e) {
      status.textContent = `Not saved: ${e.message}`;
      toast(`Not saved: ${e.message}`, true);
      return false;
    }
  }

  function boxRow(b) {
    const cat = categoryOf(b);
    const input = h("input", { type: "text", list: "label-options", id: `label-${b.box}`, value: b.label || "", "aria-label": `New label for box ${b.box + 1}` });
    const correct = h("form", { class: "actions", hidden: true },
      input, h("button", { type: "submit", class: "small", text: "Save label" }),
      h("button", { type: "button", class: "secondary small", text: "Cancel", onclick: () => { correct.hidden = true; } }));
    correct.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (input.value.trim()) await act({ action: "correct", box: b.box, label: input.value.trim() }, `Box ${b.box + 1} relabelled ${input.value.trim()}`);
    });
    const li = h("li", { class: selected === b.box ? "selected" : "", dataset: { box: String(b.box) } },
      h("div", { class: "head" },
        h("button", { type: "button", class: "link select-box", "aria-pressed": String(selected === b.box), onclick: () => { selected = selected === b.box ? null : b.box; render(); } },
          `${b.box + 1}. ${b.label || cat}`),
        h("span", { class: "small" }, b.score !== null ? fmtScore(b.score) : "added", " ", h("span", { class: `badge ${b.status === "unreviewed" ? "" : "reviewed"}`, text: b.status }))),
      b.repeat ? h("div", { class: "small muted", text: "repeat: this box recurs at the same place in many of the camera's images (a logo, a branch?)" }) : null,
      b.status === "unreviewed" && b.score !== null && b.score < threshold
        ? h("div", { class: "small muted", text: `below the ${fmtScore(threshold)} filter: exported only if you confirm it` }) : null,
      h("div", { class: "small muted", text: `${cat}${b.machine_label ? ` · model said ${b.machine_label}` : ""}${b.reviewer ? ` · ${b.reviewer}, ${fmtDate(b.reviewed_at)}` : ""}` }),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "small confirm", text: "Confirm", onclick: () => act({ action: "confirm", box: b.box }, `Box ${b.box + 1} confirmed`) }),
        h("button", { type: "button", class: "secondary small correct", text: "Correct label", onclick: () => { correct.hidden = false; input.focus(); input.select(); } }),
        b.status !== "rejected" ? h("button", { type: "button", class: "danger small reject", text: "Not an object", onclick: () => act({ action: "reject", box: b.box }, `Box ${b.box + 1} rejected`) }) : null),
      correct);
    return li;
  }

  // drawing a missed box: drag on the image (the fields below take exact values from the keyboard)
  const fx = h("input", { type: "number", min: 0, max: 100, step: "0.1", value: "30" });
  const fy = h("input", { type: "number", min: 0, max: 100, step: "0.1", value: "30" });
  const fw = h("input", { type: "number", min: 0.1, max: 100, step: "0.1", value: "40" });
  const fh = h("input", { type: "number", min: 0.1, max: 100, step: "0.1", value: "40" });
  const newLabel = h("input", { type: "text", list: "label-options", id: "add-label", placeholder: "animal" });
  const showDraft = () => {
    const [x, y, w, hh] = [fx, fy, fw, fh].map((i) => Number(i.value) / 100);
    draftEl.hidden = !drawing;
    draftEl.style.left = `${x * 100}%`;
    draftEl.style.top = `${y * 100}%`;
    draftEl.style.width = `${w * 100}%`;
    draftEl.style.height = `${hh * 100}%`;
  };
  [fx, fy, fw, fh].forEach((i) => i.addEventListener("input", showDraft));
  const addForm = h("form", { class: "panel", id: "add-box", hidden: true },
    h("h3", { text: "Add a missed box" }),
    h("p", { class: "small muted", text: "Drag over the image, or type the box in percent of the image." }),
    h("div", { class: "row" }, field("x %", fx), field("y %", fy), field("width %", fw), field("height %", fh)),
    field("Label", newLabel),
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Save box" }),
      h("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => setDrawing(false) })));
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    let [x, y, w, hh] = [fx, fy, fw, fh].map((i) => Number(i.value) / 100);
    x = Math.max(0, Math.min(1, x)); y = Math.max(0, Math.min(1, y));
    w = Math.min(w, 1 - x); hh = Math.min(hh, 1 - y);
    if (await act({ action: "add", bbox: [x, y, w, hh], label: newLabel.value.trim() || undefined }, "Box added")) setDrawing(false);
  });
  function setDrawing(on) {
    drawing = on;
    addForm.hidden = !on;
    frame.classList.toggle("drawing", on);
    showDraft();
    if (on) fx.focus();
  }
  const rel = (e) => {
    const r = frame.getBoundingClientRect();
    return [Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)), Math.max(0, Math.min(1, (e.clientY - r.top) / r.height))];
  };
  frame.addEventListener("pointerdown", (e) => {
    if (!drawing) return;
    e.preventDefault();
    draft = rel(e);
    frame.setPointerCapture(e.pointerId);
  });
  frame.addEventListener("pointermove", (e) => {
    if (!drawing || !draft) return;
    const [x1, y1] = rel(e);
    fx.value = (Math.min(draft[0], x1) * 100).toFixed(1);
    fy.value = (Math.min(draft[1], y1) * 100).toFixed(1);
    fw.value = Math.max(0.1, Math.abs(x1 - draft[0]) * 100).toFixed(1);
    fh.value = Math.max(0.1, Math.abs(y1 - draft[1]) * 100).toFixed(1);
    showDraft();
  });
  frame.addEventListener("pointerup", () => { draft = null; });

  function render() {
    const boxes = item.review?.boxes || [];
    drawBoxes(frame, boxes, { selected, threshold, hideLow: false });
    frame.append(draftEl);
    boxList.replaceChildren(...(boxes.length ? boxes.map(boxRow) : [h("li", { class: "muted", text: "No boxes." })]));
    const rv = item.review || {};
    const sel = selected !== null ? boxes[selected] : null;
    const ann = sel && sel.origin === "machine" ? (item.result?.annotations || [])[sel.box] : null;
    const md = item.result?.metadata || {};
    const info = item.result?.info || {};
    side.replaceChildren(
      h("div", { class: "panel" },
        field("Reviewer", reviewer),
        h("h2", { text: "Boxes" }), boxList,
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", id: "add-box-button", text: "Add a box", onclick: () => setDrawing(!drawing) }),
          h("button", { type: "button", class: "danger", id: "mark-blank", disabled: rv.blank, text: rv.blank ? "Marked blank" : "Mark image blank", onclick: () => act({ action: "blank" }, "Image marked blank") })),
        status,
        h("p", { class: "small muted" }, "Keys: ", h("kbd", { text: "←" }), " ", h("kbd", { text: "→" }), " images, ", h("kbd", { text: "1-9" }), " select a box, ",
          h("kbd", { text: "c" }), " confirm, ", h("kbd", { text: "x" }), " reject, ", h("kbd", { text: "a" }), " add, ", h("kbd", { text: "b" }), " blank")),
      addForm,
      ann && ann.top_candidates ? h("div", { class: "panel", id: "candidates" }, h("h2", { text: `Candidates for box ${sel.box + 1}` }),
        h("table", {}, h("tbody", {}, ann.top_candidates.map((c) => h("tr", {}, h("td", { text: c.label }), h("td", { text: fmtScore(c.score, 3) }),
          h("td", {}, h("button", { type: "button", class: "secondary small", text: "Use", onclick: () => act({ action: "correct", box: sel.box, label: c.label }, `Box ${sel.box + 1} relabelled ${c.label}`) }))))))) : null,
      h("div", { class: "panel", id: "metadata" }, h("h2", { text: "Metadata" }),
        h("dl", { class: "kv" },
          kv("File", item.file),
          kv("Size", md.image_width ? `${md.image_width} × ${md.image_height} px, ${md.file_size} bytes` : null),
          kv("Taken", md.datetime_original),
          kv("Camera", [md.make, md.model].filter(Boolean).join(" ")),
          kv("GPS", md.gps ? `${md.gps.latitude}, ${md.gps.longitude}` : null),
          kv("Model", info.model_version),
          kv("Threshold", info.threshold_applied),
          kv("Country", info.country_processed),
          kv("Time", info.processing_time_ms !== undefined ? `${info.processing_time_ms} ms` : null),
          kv("Event", item.event ? `${item.event.frame + 1} of ${item.event.size} (${item.event.id})` : null),
          kv("Review", rv.reviewed ? `${rv.blank ? "blank, " : ""}last by ${rv.reviewer}, ${fmtDate(rv.reviewed_at)}` : "not reviewed"),
        )),
      rv.history?.length ? h("div", { class: "panel" }, h("h2", { text: "History" }), h("ol", { class: "small" },
        rv.history.map((r) => h("li", { text: `${fmtDate(r.created_at)} · ${r.reviewer}: ${r.action}${r.box !== null ? ` box ${r.box + 1}` : ""}${r.label ? ` → ${r.label}` : ""}` })))) : null,
    );
  }

  const onKey = (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement || e.altKey || e.ctrlKey || e.metaKey) return;
    const boxes = item.review?.boxes || [];
    if (e.key === "ArrowLeft" && prev) location.hash = hrefOf(prev);
    else if (e.key === "ArrowRight" && next) location.hash = hrefOf(next);
    else if (/^[1-9]$/.test(e.key) && Number(e.key) <= boxes.length) { selected = Number(e.key) - 1; render(); }
    else if (e.key === "c" && selected !== null) act({ action: "confirm", box: selected }, `Box ${selected + 1} confirmed`);
    else if (e.key === "x" && selected !== null) act({ action: "reject", box: selected }, `Box ${selected + 1} rejected`);
    else if (e.key === "b") act({ action: "blank" }, "Image marked blank");
    else if (e.key === "a") setDrawing(true);
    else return;
    e.preventDefault();
  };
  document.addEventListener("keydown", onKey);
  ctx.onLeave(() => document.removeEventListener("keydown", onKey));

  main.append(h("h1", { text: item.file }), nav, datalist, h("div", { class: "viewer" }, h("div", {}, frame), side));
  render();
}

function kv(k, v) {
  if (v === null || v === undefined || v === "") return null;
  return [h("dt", { text: k }), h("dd", { text: String(v) })];
}
