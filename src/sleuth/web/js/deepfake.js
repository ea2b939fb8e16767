// Deepfake: upload files or a zip as a batch (live progress), the verdicts, and one file's view: an audio player
// with its per-chunk score timeline (click a chunk to play it), an image's heatmap over the picture, a video's
// sampled frames, faces and window scores.
import { api, ApiError, qs, session } from "./api.js";
import { append, h, field, fmtDate, fmtScore, progressBar, toast } from "./ui.js";
import { dropZone, uploadsTable } from "./wildlife.js";

const MEDIA = /\.(wav|mp3|ogg|m4a|aac|flac|mp4|mov|avi|mkv|webm|wmv|jpe?g|png|gif|webp|zip)$/i;

function postForm(path, form, onProgress) {
  return new Promise((ok, bad) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${session.key}`);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) ok(body);
      else bad(new ApiError(xhr.status, body, xhr.statusText));
    });
    xhr.addEventListener("error", () => bad(new ApiError(0, null, "The upload did not reach the server")));
    xhr.send(form);
  });
}

export function verdictOf(item) {
  const m = item.metrics || {};
  const v = item.video_metrics || {};
  const im = item.image_metrics || {};
  if (item.media_type === "video" && v.label) return { label: String(v.label).toLowerCase(), score: v.score, certainty: v.certainty };
  if (item.media_type === "image") return { label: String(im.label || "unknown").toLowerCase(), score: im.score };
  return { label: String(m.label || "unknown").toLowerCase(), score: m.aggregated_score, consistency: m.consistency };
}

function verdictBadge(item) {
  if (item.status !== "completed") return h("span", { class: `badge ${item.status === "failed" ? "failed" : ""}`, text: item.status });
  const v = verdictOf(item);
  return h("span", { class: `badge ${v.label}`, text: `${v.label} ${fmtScore(v.score)}` });
}

function verdictTable(items) {
  return h("div", { class: "table-wrap" }, h("table", { id: "verdicts" },
    h("thead", {}, h("tr", {}, ["File", "Type", "Verdict", "Created"].map((t) => h("th", { text: t })))),
    h("tbody", {}, items.map((i) => h("tr", { dataset: { uuid: i.uuid } },
      h("td", {}, h("a", { href: `#/deepfake/item/${i.uuid}`, text: i.filename })),
      h("td", { text: i.media_type }),
      h("td", {}, verdictBadge(i), i.error_message ? h("div", { class: "small error", text: i.error_message }) : null),
      h("td", { text: fmtDate(i.created_at) }))))));
}

export async function view(main, ctx) {
  let files = [];
  const name = h("input", { type: "text", id: "batch-name", maxlength: 200, placeholder: "e.g. reported clips, week 24" });
  const frameLength = h("select", { id: "frame-length" }, [1, 2, 3, 4].map((n) => h("option", { value: n, selected: n === 2, text: `${n} s` })));
  const visualize = h("input", { type: "checkbox", id: "visualize", checked: true });
  const zero = h("input", { type: "checkbox", id: "zero-retention" });
  const summary = h("p", { class: "small muted", id: "df-summary", text: "No files chosen yet." });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const send = h("button", { type: "submit", id: "df-start", disabled: true, text: "Analyse" });
  const bar = progressBar();
  bar.hidden = true;
  const zone = dropZone((picked) => {
    files = picked.filter((f) => MEDIA.test(f.file.name));
    const zips = files.filter((f) => /\.zip$/i.test(f.file.name));
    if (zips.length && files.length > 1) {
      summary.textContent = "Send either one zip or media files, not both.";
      send.disabled = true;
      return;
    }
    summary.textContent = files.length ? (zips.length ? `1 zip archive (${zips[0].file.name})` : `${files.length} file${files.length === 1 ? "" : "s"} ready`) : "No audio, image, video or zip files in what was chosen.";
    send.disabled = !files.length || files.length > 50;
    if (files.length > 50) summary.textContent = "At most 50 files per batch (or send a zip).";
  }, { accept: "audio/*,video/*,image/*,.zip", label: "Drop audio, images, videos or a zip here" });

  const form = h("form", { class: "panel", id: "df-form" }, h("h2", { text: "New batch" }), zone, summary,
    h("div", { class: "row" }, field("Name (optional)", name), field("Chunk length", frameLength),
      h("div", {}, h("label", { class: "check", for: "visualize" }, visualize, "Visualise (timeline, heatmap)")),
      h("div", {}, h("label", { class: "check", for: "zero-retention" }, zero, "Zero retention (delete media after analysis)"))),
    err, bar, h("div", { class: "actions" }, send));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.hidden = true;
    send.disabled = true;
    bar.hidden = false;
    const fd = new FormData();
    const zip = files.length === 1 && /\.zip$/i.test(files[0].file.name);
    if (zip) fd.append("file", files[0].file, files[0].file.name);
    else files.forEach((f) => fd.append("files[]", f.file, f.file.name));
    fd.append("visualize", String(visualize.checked));
    fd.append("frame_length", frameLength.value);
    fd.append("zero_retention_mode", String(zero.checked));
    try {
      const r = await postForm("/detect/batch", fd, (x) => bar.set(x));
      await api("/v1/upload-groups", { method: "POST", json: { kind: "deepfake", name: name.value.trim() || (zip ? files[0].file.name : `${files.length} files`), batch_uuid: r.item.uuid } });
      location.hash = `#/deepfake/batch/${r.item.uuid}`;
    } catch (ex) {
      err.textContent = ex.message;
      err.hidden = false;
      send.disabled = false;
    }
  });
  main.append(h("h1", { text: "Deepfake" }), form);
  const batches = h("div", { class: "panel" }, h("h2", { text: "Batches" }));
  const recent = h("div", { class: "panel" }, h("h2", { text: "Recent verdicts" }));
  main.append(batches, recent);
  const [groups, list] = await Promise.all([api(`/v1/upload-groups${qs({ kind: "deepfake", limit: 10 })}`), api(`/detect${qs({ page_size: 25 })}`)]);
  if (!ctx.alive) return;
  batches.append(groups.data.length ? uploadsTable(groups.data) : h("p", { class: "muted", text: "No batches from this page yet." }));
  recent.append(list.items.length ? verdictTable(list.items) : h("p", { class: "muted", text: "Nothing analysed yet." }));
}

async function batchItems(uuids) {
  const want = new Set(uuids);
  const found = new Map();
  for (let page = 1; page <= 5 && found.size < want.size; page++) {
    const r = await api(`/detect${qs({ page, page_size: 100 })}`);
    r.items.forEach((i) => { if (want.has(i.uuid)) found.set(i.uuid, i); });
    if (page >= r.num_pages) break;
  }
  return uuids.map((u) => found.get(u)).filter(Boolean);
}

export async function batchView(main, ctx, uuid) {
  const bar = progressBar();
  const stats = h("div", { class: "stats", id: "batch-stats", "aria-live": "polite" });
  const list = h("div", { id: "batch-items" });
  main.append(h("h1", { text: "Batch" }), h("p", { class: "mono small", text: uuid }), h("div", { class: "panel" }, bar, stats), list);
  for (;;) {
    const b = (await api(`/detect/batch/${uuid}`)).item;
    const items = await batchItems(b.detect_uuids);
    if (!ctx.alive) return;
    const done = b.completed_count + b.failed_count;
    bar.set(b.total_files ? done / b.total_files : 1);
    stats.replaceChildren(h("span", { text: `Status: ${b.status}` }), h("span", { text: `${b.completed_count} completed` }),
      h("span", { text: `${b.failed_count} failed` }), h("span", { text: `${b.total_files} files` }));
    list.replaceChildren(verdictTable(items));
    if (done >= b.total_files && b.status !== "processing") break;
    await new Promise((ok) => setTimeout(ok, 1500));
    if (!ctx.alive) return;
  }
}

// a row of chunk buttons (height = score) with the threshold line and a playhead
function timeline(chunks, { threshold = 0.5, onPick, label }) {
  const el = h("div", { class: "timeline", role: "group", "aria-label": label });
  const t0 = chunks.length ? chunks[0].start : 0;
  const t1 = chunks.length ? chunks[chunks.length - 1].end : 1;
  const buttons = chunks.map((c, i) => {
    const s = c.score === null || c.score === undefined ? null : Number(c.score);
    const b = h("button", {
      type: "button",
      class: `chunk ${s === null ? "none" : s >= threshold ? "fake" : "real"}`,
      dataset: { index: String(i), start: String(c.start) },
      "aria-label": `${label} ${i + 1}: ${c.start.toFixed(1)}–${c.end.toFixed(1)} s, score ${s === null ? "none" : s.toFixed(2)}`,
      title: `${c.start.toFixed(1)}–${c.end.toFixed(1)} s · ${s === null ? "no score" : s.toFixed(2)}`,
      onclick: () => onPick && onPick(c, i),
    });
    b.style.height = `${Math.max(4, (s ?? 0.03) * 100)}%`;
    b.style.flexGrow = String(Math.max(0.05, c.end - c.start));
    return b;
  });
  const line = h("div", { class: "threshold" });
  line.style.bottom = `${threshold * 100}%`;
  const head = h("div", { class: "playhead", hidden: true });
  el.append(...buttons, line, head);
  el.setTime = (t) => {
    if (t === null || t < t0 || t > t1) { head.hidden = true; return; }
    head.hidden = false;
    head.style.left = `${((t - t0) / (t1 - t0 || 1)) * 100}%`;
    buttons.forEach((b, i) => b.classList.toggle("active", t >= chunks[i].start && t < chunks[i].end));
  };
  const axis = h("div", { class: "axis" }, h("span", { text: `${t0.toFixed(1)} s` }), h("span", { text: `threshold ${threshold}` }), h("span", { text: `${t1.toFixed(1)} s` }));
  return { el: h("div", {}, el, axis), bar: el, buttons };
}

function playChunks(media, chunks, label) {
  let stopAt = null;
  const tl = timeline(chunks, {
    label,
    onPick: (c) => {
      if (!media) return toast("The media was deleted (zero retention); only the scores remain", true);
      media.currentTime = c.start;
      stopAt = c.end;
      media.play().catch(() => {});
    },
  });
  if (media) {
    media.addEventListener("timeupdate", () => {
      tl.bar.setTime(media.currentTime);
      if (stopAt !== null && media.currentTime >= stopAt) { media.pause(); stopAt = null; }
    });
    media.addEventListener("seeking", () => tl.bar.setTime(media.currentTime));
  }
  return tl;
}

export async function itemView(main, ctx, uuid) {
  const [{ item }, tl] = await Promise.all([api(`/detect/${uuid}`), api(`/detect/${uuid}/timeline`)]);
  if (!ctx.alive) return;
  const v = verdictOf(item);
  append(main, [h("h1", { text: item.filename }),
    h("div", { class: "panel verdict", id: "verdict" },
      h("span", { class: `big ${v.label}`, text: item.status === "completed" ? v.label : item.status }),
      h("span", { text: `score ${fmtScore(v.score, 3)}` }),
      v.certainty !== undefined ? h("span", { text: `certainty ${fmtScore(v.certainty)}` }) : null,
      v.consistency !== undefined ? h("span", { text: `consistency ${v.consistency}` }) : null,
      h("span", { class: "muted", text: `${item.media_type}${item.duration ? ` · ${item.duration} s` : ""}` }),
      item.batch_uuid ? h("a", { href: `#/deepfake/batch/${item.batch_uuid}`, text: "its batch" }) : null),
    item.error_message ? h("p", { class: "error", text: item.error_message }) : null,
    !tl.media_url ? h("p", { class: "muted", text: item.zero_retention_mode ? "Zero retention: the media was deleted after analysis; the scores remain." : "The media is no longer stored." }) : null]);
  if (item.media_type === "audio") return audioView(main, tl);
  if (item.media_type === "image") return imageView(main, item, tl);
  return videoView(main, item, tl);
}

function audioView(main, tl) {
  const audio = tl.media_url ? h("audio", { controls: true, preload: "auto", src: tl.media_url, id: "player" }) : null;
  const t = playChunks(audio, tl.audio, "Chunk");
  main.append(h("div", { class: "panel", id: "audio-view" }, audio, h("h2", { text: "Score per chunk" }),
    h("p", { class: "small muted", text: `P(fake) of each chunk; red at or above ${tl.threshold}. Click a chunk to play it.${tl.approximate ? " Chunk times are approximate." : ""}` }),
    t.el));
}

function imageView(main, item, tl) {
  const im = item.image_metrics || {};
  const wrap = h("div", { class: "media-wrap", id: "image-view" });
  const faces = im.children || [];
  const showing = { heat: !!tl.visualization_url };
  const btnHeat = h("button", { type: "button", class: "secondary small", text: "Heatmap", "aria-pressed": "true" });
  const btnOrig = h("button", { type: "button", class: "secondary small", text: "Original with faces", "aria-pressed": "false" });
  const draw = () => {
    wrap.replaceChildren();
    btnHeat.setAttribute("aria-pressed", String(showing.heat));
    btnOrig.setAttribute("aria-pressed", String(!showing.heat));
    const src = showing.heat ? tl.visualization_url : tl.media_url;
    if (!src) { wrap.append(h("p", { class: "muted", text: "No picture to show." })); return; }
    const img = h("img", { src, alt: showing.heat ? "heatmap over the picture" : item.filename });
    wrap.append(img);
    if (!showing.heat) {
      img.addEventListener("load", () => {
        for (const f of faces) {
          const [x, y, w, hh] = f.box;
          const el = h("div", { class: `face ${f.label === "fake" ? "fake" : ""}` });
          el.style.left = `${(x / img.naturalWidth) * 100}%`;
          el.style.top = `${(y / img.naturalHeight) * 100}%`;
          el.style.width = `${(w / img.naturalWidth) * 100}%`;
          el.style.height = `${(hh / img.naturalHeight) * 100}%`;
          wrap.append(el);
        }
      });
    }
  };
  btnHeat.addEventListener("click", () => { showing.heat = true; draw(); });
  btnOrig.addEventListener("click", () => { showing.heat = false; draw(); });
  draw();
  main.append(h("div", { class: "viewer" }, h("div", {}, h("div", { class: "actions" }, tl.visualization_url ? btnHeat : null, tl.media_url ? btnOrig : null), wrap),
    h("div", { class: "panel" }, h("h2", { text: "Faces" }), im.description ? h("p", { text: im.description }) : null,
      h("ol", {}, faces.map((f) => h("li", { text: `${f.label} ${fmtScore(f.score, 3)} (face confidence ${fmtScore(f.face_confidence)})` }))),
      h("p", { class: "small muted", text: "The heatmap is red where hiding the region lowers the fake score most." }))));
}

function videoView(main, item, tl) {
  const video = tl.media_url ? h("video", { controls: true, preload: "auto", src: tl.media_url, id: "player", playsinline: true }) : null;
  const wrap = h("div", { class: "media-wrap", id: "video-view" }, video || h("p", { class: "muted", text: "No video to show." }));
  const frames = tl.frames || [];
  const drawFaces = (t) => {
    wrap.querySelectorAll(".face").forEach((f) => f.remove());
    if (!video || !video.videoWidth || !frames.length) return;
    let best = null;
    for (const f of frames) if (f.timestamp <= t + 0.01) best = f;
    if (!best || t - best.timestamp > 1.5) return;
    for (const face of best.faces) {
      const [x, y, w, hh] = face.box;
      const el = h("div", { class: `face ${face.score >= tl.threshold ? "fake" : ""}` });
      el.style.left = `${(x / video.videoWidth) * 100}%`;
      el.style.top = `${(y / video.videoHeight) * 100}%`;
      el.style.width = `${(w / video.videoWidth) * 100}%`;
      el.style.height = `${(hh / video.videoHeight) * 100}%`;
      wrap.append(el);
    }
  };
  if (video) {
    video.addEventListener("timeupdate", () => drawFaces(video.currentTime));
    video.addEventListener("seeked", () => drawFaces(video.currentTime));
  }
  const seek = (t) => { if (video) { video.currentTime = t; video.pause(); } };
  const win = playChunks(video, tl.windows.map((w) => ({ ...w })), "Window");
  const strip = h("div", { class: "frames", id: "frame-strip", role: "group", "aria-label": "Sampled frames" },
    frames.map((f) => h("button", { type: "button", class: f.score === null ? "" : f.score >= tl.threshold ? "fake" : "real",
      text: `${f.timestamp.toFixed(1)} s · ${f.faces.length} face${f.faces.length === 1 ? "" : "s"}${f.score !== null ? ` · ${fmtScore(f.score)}` : ""}`,
      onclick: () => seek(f.timestamp) })));
  const parts = [h("h2", { text: "Face score per window" }), win.el, h("h2", { text: "Sampled frames" }),
    h("p", { class: "small muted", text: "Click a frame to see it with its faces (yellow real, red fake)." }), strip];
  if (tl.audio.length) {
    const a = playChunks(video, tl.audio, "Audio chunk");
    parts.push(h("h2", { text: "Audio track, score per chunk" }), a.el);
  }
  main.append(h("div", { class: "viewer" }, h("div", {}, wrap), h("div", { class: "panel" }, ...parts)));
}
