// A grid of wildlife results with boxes and labels drawn; filters by label, category and confidence applied in the
// page (no round trip); images grouped into events (sequences); exports of what is shown.
import { allPages, api, qs } from "./api.js";
import { h, categoryOf, download, drawBoxes, fmtDate, fmtScore, toast } from "./ui.js";

export const CATEGORIES = ["animal", "person", "vehicle", "blank"];
export const FORMATS = [
  ["md", "MegaDetector JSON"],
  ["camtrap-dp", "Camtrap DP"],
  ["csv", "CSV"],
  ["coco", "COCO"],
];

// what survives the filters: not rejected, and reviewed or at least as confident as the slider
export function visibleBoxes(boxes, threshold) {
  return (boxes || []).filter((b) => b.status !== "rejected" && (b.status !== "unreviewed" || b.score === null || b.score >= threshold));
}

export function imageCategories(item, threshold) {
  if (item.review?.blank) return new Set(["blank"]);
  const boxes = visibleBoxes(item.review?.boxes, threshold);
  return boxes.length ? new Set(boxes.map(categoryOf)) : new Set(["blank"]);
}

export async function exportFile(params, fmt, button) {
  if (button) button.disabled = true;
  try {
    const r = await api(`/v1/exports${qs({ ...params, format: fmt })}`, { raw: true });
    const cd = r.headers.get("Content-Disposition") || "";
    const name = (cd.match(/filename="([^"]+)"/) || [])[1] || `sleuth-export.${fmt}`;
    download(await r.blob(), name);
    const skipped = Number(r.headers.get("X-Sleuth-Skipped") || 0);
    toast(`Exported ${r.headers.get("X-Sleuth-Images")} images as ${fmt}${skipped ? ` (${skipped} still running, not included)` : ""}`);
  } catch (e) {
    toast(`Export failed: ${e.message}`, true);
  } finally {
    if (button) button.disabled = false;
  }
}

export function exportBar(params, getThreshold) {
  return h("div", { class: "actions", id: "export-bar" }, h("span", { class: "small muted", text: "Export what the filter keeps:" }),
    FORMATS.map(([fmt, label]) => {
      const b = h("button", { type: "button", class: "secondary small", dataset: { format: fmt }, text: label });
      b.addEventListener("click", () => exportFile({ ...params, threshold: getThreshold() }, fmt, b));
      return b;
    }));
}

function card(item, href) {
  const frame = h("div", { class: "frame" });
  if (item.image_url) frame.append(h("img", { src: item.image_url, alt: item.file, loading: "lazy", width: item.result?.metadata?.image_width, height: item.result?.metadata?.image_height }));
  else frame.append(h("div", { class: "placeholder", role: "img", "aria-label": `${item.file} (image not kept by the server)` }));
  const badges = h("span", {});
  const el = h("a", { class: "card", href, dataset: { file: item.file } }, frame,
    h("div", { class: "meta" }, h("span", { class: "name", title: item.file, text: item.file }), badges));
  el.frame = frame;
  el.badges = badges;
  return el;
}

function updateCard(el, item, threshold) {
  const boxes = item.review?.boxes || [];
  drawBoxes(el.frame, boxes.filter((b) => b.status !== "rejected"), { threshold });
  const vis = visibleBoxes(boxes, threshold);
  const b = [];
  if (item.review?.blank) b.push(h("span", { class: "badge reviewed", text: "blank ✓" }));
  else if (item.review?.reviewed) b.push(h("span", { class: "badge reviewed", text: "reviewed" }));
  b.push(h("span", { class: "badge", text: vis.length ? `${vis.length} box${vis.length === 1 ? "" : "es"}` : "blank" }));
  el.badges.replaceChildren(...b.flatMap((x) => [x, " "]));
}

// items: [{key, file, image_url, result, review, event, status, error}], hrefOf(item) -> link
export function renderGrid(root, items, hrefOf, { threshold = 0.2, exportParams } = {}) {
  const done = items.filter((i) => i.review);
  const notDone = items.filter((i) => !i.review);
  const labels = [...new Set(done.flatMap((i) => (i.review.boxes || []).map((b) => b.label).filter(Boolean)))].sort();

  const labelSel = h("select", { id: "filter-label" }, h("option", { value: "", text: "All labels" }), labels.map((l) => h("option", { value: l, text: l })));
  const catBoxes = CATEGORIES.map((c) => h("input", { type: "checkbox", id: `cat-${c}`, value: c, checked: true }));
  const slider = h("input", { type: "range", id: "filter-conf", min: 0, max: 1, step: 0.01, value: String(threshold), "aria-describedby": "conf-value" });
  const out = h("output", { id: "conf-value", for: "filter-conf", text: fmtScore(threshold) });
  const byEvent = h("input", { type: "checkbox", id: "by-event", checked: true });
  const count = h("p", { class: "small muted", id: "grid-count", "aria-live": "polite" });
  const gridEl = h("div", { id: "grid" });

  const filters = h("div", { class: "panel" },
    h("div", { class: "filters" },
      h("div", {}, h("label", { for: "filter-label", text: "Label" }), labelSel),
      h("div", {}, h("label", { text: "Category" }), h("div", { class: "cats", role: "group", "aria-label": "Category" },
        CATEGORIES.map((c, i) => h("label", { class: "check", for: `cat-${c}` }, catBoxes[i], c)))),
      h("div", {}, h("label", { for: "filter-conf" }, "Confidence ≥ ", out), slider),
      h("div", {}, h("label", { class: "check", for: "by-event" }, byEvent, "Group into events")),
    ),
    exportParams ? exportBar(exportParams, () => Number(slider.value)) : null,
    count);
  root.append(filters, gridEl);

  const cards = new Map(done.map((i) => [i.key, card(i, hrefOf(i))]));
  const layout = () => {
    gridEl.replaceChildren();
    if (byEvent.checked) {
      const groups = new Map();
      for (const i of done) {
        const id = i.event?.id || `single-${i.key}`;
        if (!groups.has(id)) groups.set(id, { event: i.event, items: [] });
        groups.get(id).items.push(i);
      }
      const flow = h("div", { class: "events" });
      for (const [id, g] of groups) {
        const when = g.event?.start ? `${fmtDate(g.event.start)}${g.event.end && g.event.end !== g.event.start ? ` – ${fmtDate(g.event.end)}` : ""}` : "no time";
        flow.append(h("section", { class: "event-group", dataset: { event: id }, "aria-label": `Event of ${g.items.length} images` },
          h("div", { class: "event" }, h("strong", { text: `${g.items.length} image${g.items.length === 1 ? "" : "s"}` }),
            h("span", { class: "small muted", text: when })),
          h("div", { class: "event-cards" }, g.items.map((i) => cards.get(i.key)))));
      }
      gridEl.append(flow);
    } else {
      gridEl.append(h("div", { class: "grid" }, done.map((i) => cards.get(i.key))));
    }
    apply();
  };
  const apply = () => {
    const thr = Number(slider.value);
    sessionStorage.setItem("sleuth.threshold", String(thr)); // the image view marks boxes under it
    out.textContent = fmtScore(thr);
    const wanted = new Set(catBoxes.filter((c) => c.checked).map((c) => c.value));
    const label = labelSel.value;
    let shown = 0;
    for (const i of done) {
      const el = cards.get(i.key);
      updateCard(el, i, thr);
      const cats = imageCategories(i, thr);
      const catOk = [...cats].some((c) => wanted.has(c));
      const labelOk = !label || visibleBoxes(i.review.boxes, thr).some((b) => b.label === label);
      el.hidden = !(catOk && labelOk);
      if (!el.hidden) shown++;
    }
    gridEl.querySelectorAll(".event-group").forEach((s) => { s.hidden = ![...s.querySelectorAll(".card")].some((c) => !c.hidden); });
    count.textContent = `${shown} of ${done.length} images shown${notDone.length ? ` · ${notDone.length} not processed (below)` : ""}`;
  };
  [labelSel, slider, ...catBoxes].forEach((el) => el.addEventListener("input", apply));
  byEvent.addEventListener("change", layout);
  layout();

  if (notDone.length) {
    root.append(h("div", { class: "panel" }, h("h2", { text: "Not processed" }),
      h("ul", {}, notDone.map((i) => h("li", {}, h("span", { class: "mono", text: i.file }), " ",
        h("span", { class: `badge ${i.status === "failed" ? "failed" : ""}`, text: i.status }), i.error ? ` ${i.error}` : "")))));
  }
  return { slider };
}

export async function groupView(main, ctx, groupId) {
  const head = h("div", {});
  main.append(head, h("p", { class: "muted", text: "Loading…" }));
  const load = () => allPages(`/v1/upload-groups/${groupId}/items`);
  let data = await load();
  if (!ctx.alive) return;
  let slider = null;
  const render = () => {
    const g = data.upload;
    const dep = g.deployment || {};
    const c = g.counts || {};
    const thr = slider ? Number(slider.value) : Math.max(0.2, Number(g.job_options?.threshold || 0));
    main.replaceChildren(
      h("h1", { text: g.name }),
      h("div", { class: "panel" },
        h("dl", { class: "kv" },
          h("dt", { text: "Deployment" }), h("dd", { text: `${dep.name}${dep.camera_id ? ` · camera ${dep.camera_id}` : ""}` }),
          h("dt", { text: "Coordinates" }), h("dd", { text: dep.latitude !== null && dep.latitude !== undefined ? `${dep.latitude}, ${dep.longitude}` : "not given" }),
          h("dt", { text: "Geofence country" }), h("dd", { text: dep.country ? `${dep.country}${dep.country_source === "coordinates" ? " (from the coordinates)" : ""}` : "none" }),
          h("dt", { text: "Created" }), h("dd", { text: `${fmtDate(g.created_at)} by ${g.created_by}` }),
          h("dt", { text: "Images" }), h("dd", { id: "group-counts", text: `${c.completed || 0} processed, ${c.failed || 0} failed${c.pending ? `, ${c.pending} running` : ""}` }),
        )),
    );
    const items = data.items.map((i) => ({ ...i, key: i.job_id }));
    const r = renderGrid(main, items, (i) => `#/group/${groupId}/image/${i.job_id}`, { threshold: thr, exportParams: { group: groupId } });
    slider = r.slider;
    slider.value = String(thr);
    slider.dispatchEvent(new Event("input"));
  };
  render();
  while ((data.upload.counts?.pending || 0) > 0) {
    await new Promise((ok) => setTimeout(ok, 2000));
    if (!ctx.alive) return;
    const urls = new Map(data.items.map((i) => [i.job_id, i.image_url]));
    data = await load();
    if (!ctx.alive) return;
    for (const i of data.items) i.image_url = urls.get(i.job_id) || i.image_url; // no reload of shown images
    render();
  }
}

// a stored (synchronous) result: its images are not kept by the server, so boxes are drawn on a placeholder
export async function resultView(main, ctx, resultId) {
  const [payload, reviews, listed] = await Promise.all([api(`/v1/detect/${resultId}`),
    api(`/v1/reviews${qs({ result_id: resultId })}`), api(`/v1/results${qs({ ids: resultId })}`)]);
  if (!ctx.alive) return;
  const imageUrl = listed.data[0]?.image_url || null; // an async job keeps its image; a sync request does not
  const results = Array.isArray(payload.results) ? payload.results : [payload];
  const items = results.map((r, i) => ({
    key: `${resultId}:${i}`, index: i, file: r.filename || `image ${i + 1}`, image_url: imageUrl, result: r,
    review: r.status === "failed" ? null : reviews.images[i], status: r.status === "failed" ? "failed" : "completed",
    error: r.error?.message,
  }));
  main.append(h("h1", { text: `Result ${resultId.slice(0, 8)}` }),
    h("p", { class: "muted", text: `${payload.endpoint || ""} · ${fmtDate(payload.created_at)}${imageUrl ? "" : " · the server keeps no copy of a synchronous request's images"}` }));
  renderGrid(main, items, (i) => `#/result/${resultId}/image/${i.index}`, { threshold: Number(payload.info?.threshold_applied || 0.2), exportParams: { ids: resultId } });
}
