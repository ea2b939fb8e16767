// Wildlife: a new upload (deployment + drag-and-drop images or a folder, through the async jobs API) and the
// team's recent uploads.
import { api, ApiError, prefs, qs, session } from "./api.js";
import { h, field, fmtDate, progressBar, toast } from "./ui.js";

const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", bmp: "image/bmp" };
const CONCURRENCY = 4;

function typeOf(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  if (TYPES[ext]) return TYPES[ext];
  return Object.values(TYPES).includes(file.type) ? file.type : null;
}

// every file under a dropped folder, with its path inside the drop
async function entryFiles(entry, prefix = "") {
  if (entry.isFile) {
    const file = await new Promise((ok, bad) => entry.file(ok, bad));
    return [{ file, path: prefix + file.name }];
  }
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
    if (!batch.length) break;
    for (const e of batch) out.push(...(await entryFiles(e, `${prefix}${entry.name}/`)));
  }
  return out;
}

export async function filesFromDrop(dt) {
  const items = [...(dt.items || [])].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (items.length && items.every(Boolean)) {
    const out = [];
    for (const e of items) out.push(...(await entryFiles(e)));
    return out;
  }
  return [...dt.files].map((file) => ({ file, path: file.name }));
}

export function dropZone(onFiles, { accept, folder = true, label }) {
  const pick = h("input", { type: "file", multiple: true, accept, hidden: true, "aria-hidden": "true", tabindex: "-1" });
  const pickDir = h("input", { type: "file", multiple: true, hidden: true, webkitdirectory: true, "aria-hidden": "true", tabindex: "-1" });
  const zone = h("div", { class: "drop", id: "drop-zone" },
    h("div", { text: label }),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", id: "pick-files", onclick: () => pick.click(), text: "Choose files" }),
      folder ? h("button", { type: "button", class: "secondary", id: "pick-folder", onclick: () => pickDir.click(), text: "Choose a folder" }) : null,
    ),
    pick, folder ? pickDir : null);
  pick.addEventListener("change", () => onFiles([...pick.files].map((file) => ({ file, path: file.name }))));
  pickDir.addEventListener("change", () => onFiles([...pickDir.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }))));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onFiles(await filesFromDrop(e.dataTransfer));
  });
  zone.input = pick;
  return zone;
}

async function withRetry(fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retry = e instanceof ApiError && (e.status === 429 || e.status === 503 || e.status === 0) && attempt < 6;
      if (!retry) throw e;
      const wait = Number(e.body?.error?.retry_after) || 2 ** attempt;
      await new Promise((ok) => setTimeout(ok, Math.min(wait, 30) * 1000));
    }
  }
}

async function sendOne(group, entry) {
  const ctype = typeOf(entry.file);
  const ref = (group.reference_prefix + entry.path).slice(0, 400);
  const job = await withRetry(() => api("/v1/jobs", {
    method: "POST",
    headers: { "Idempotency-Key": `${group.id}:${entry.path}`.slice(0, 200) },
    json: { operation: "detect", filename: entry.file.name, content_type: ctype, client_reference_id: ref, options: group.job_options },
  }));
  if (job.status === "awaiting_upload") {
    const put = await fetch(job.upload.url, { method: "PUT", headers: job.upload.headers, body: entry.file });
    if (!put.ok && put.status !== 409) {
      const body = await put.json().catch(() => null);
      throw new ApiError(put.status, body, put.statusText);
    }
    await withRetry(() => api(new URL(job.submit_url).pathname, { method: "POST" }));
  }
  return job;
}

export async function view(main, ctx) {
  const me = session.me || {};
  const name = h("input", { type: "text", id: "dep-name", required: true, maxlength: 200, placeholder: "e.g. Mara north, pole 7" });
  const lat = h("input", { type: "number", id: "dep-lat", step: "any", min: -90, max: 90, placeholder: "-1.4061" });
  const lon = h("input", { type: "number", id: "dep-lon", step: "any", min: -180, max: 180, placeholder: "35.0106" });
  const camera = h("input", { type: "text", id: "dep-camera", maxlength: 200, placeholder: "e.g. CAM-07" });
  const country = h("input", { type: "text", id: "dep-country", maxlength: 60, placeholder: "from the coordinates" });
  const threshold = h("input", { type: "number", id: "job-threshold", step: "0.01", min: 0.01, max: 0.99, value: "0.1" });
  const classify = h("input", { type: "checkbox", id: "job-classify", checked: true });
  const repeats = h("input", { type: "checkbox", id: "job-repeats" });
  const list = h("p", { class: "small muted", id: "file-summary", text: "No files chosen yet." });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const start = h("button", { type: "submit", id: "start-upload", disabled: true, text: "Upload and detect" });
  const bar = progressBar();
  const stats = h("div", { class: "stats", id: "upload-stats" });
  const status = h("div", { class: "panel", hidden: true, id: "upload-progress", "aria-live": "polite" }, h("h2", { text: "Progress" }), bar, stats);
  let files = [];

  const zone = dropZone((picked) => {
    const good = picked.filter((f) => typeOf(f.file));
    const skipped = picked.length - good.length;
    files = good;
    list.textContent = good.length
      ? `${good.length} image${good.length === 1 ? "" : "s"} ready${skipped ? ` (${skipped} other file${skipped === 1 ? "" : "s"} skipped: only JPEG, PNG, WebP and BMP)` : ""}.`
      : "No JPEG, PNG, WebP or BMP images in what was chosen.";
    start.disabled = !good.length;
  }, { accept: "image/jpeg,image/png,image/webp,image/bmp", label: "Drop camera-trap images or a folder here" });

  const form = h("form", { class: "panel", id: "upload-form" },
    h("h2", { text: "Deployment" }),
    h("p", { class: "small muted", text: "Where the camera stood. The coordinates give the country the species geofence uses, and become the Camtrap DP deployment of every export." }),
    h("div", { class: "row" },
      field("Deployment name", name),
      field("Latitude", lat),
      field("Longitude", lon),
      field("Camera", camera),
      field("Country (optional)", country, "CCA2, CCA3 or a name"),
    ),
    h("h2", { text: "Images" }),
    zone, list,
    h("div", { class: "row" },
      h("div", { class: "narrow" }, field("Keep boxes from", threshold)),
      h("div", { class: "check-cell" }, h("label", { class: "check", for: "job-classify" }, classify, "Classify species")),
      h("div", { class: "check-cell" }, h("label", { class: "check", for: "job-repeats" }, repeats, "Drop repeated boxes (logos, branches)")),
      h("p", { class: "small muted", text: "Boxes under this confidence are not kept; the results page filters higher without asking the server again." }),
    ),
    err,
    h("div", { class: "actions" }, start),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    if (!name.value.trim()) { err.textContent = "Name the deployment first."; err.hidden = false; name.focus(); return; }
    if ((lat.value === "") !== (lon.value === "")) { err.textContent = "Give both latitude and longitude, or neither."; err.hidden = false; return; }
    start.disabled = true;
    let group;
    try {
      group = await api("/v1/upload-groups", {
        method: "POST",
        json: {
          kind: "wildlife",
          file_count: files.length,
          reviewer: prefs.reviewer || undefined,
          deployment: {
            name: name.value.trim(),
            latitude: lat.value === "" ? null : Number(lat.value),
            longitude: lon.value === "" ? null : Number(lon.value),
            camera_id: camera.value.trim() || null,
            country: country.value.trim() || null,
          },
          options: { threshold: Number(threshold.value) || 0.1, classify: classify.checked, suppress_repeats: repeats.checked },
        },
      });
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      start.disabled = false;
      return;
    }
    status.hidden = false;
    const dep = group.deployment;
    toast(dep.country ? `Geofence country: ${dep.country}${dep.country_source === "coordinates" ? " (from the coordinates)" : ""}` : "No geofence country (no coordinates given)");
    await runUpload(ctx, group, files, bar, stats);
  });

  main.append(h("h1", { text: "Wildlife" }), form, status);
  const recent = h("div", { class: "panel" }, h("h2", { text: "Recent uploads" }), h("p", { class: "muted", text: "Loading…" }));
  main.append(recent);
  try {
    const page = await api(`/v1/upload-groups${qs({ kind: "wildlife", limit: 8 })}`);
    if (!ctx.alive) return;
    recent.lastChild.remove();
    if (!page.data.length) recent.append(h("p", { class: "muted", text: "None yet." }));
    else recent.append(uploadsTable(page.data));
    recent.append(h("p", {}, h("a", { href: "#/results", text: "All uploads and results" })));
  } catch (e) {
    recent.lastChild.textContent = e.message;
  }
  if (!me.team_id) return;
}

async function runUpload(ctx, group, files, bar, stats) {
  let sent = 0;
  let failed = 0;
  const errors = [];
  let counts = { completed: 0, failed: 0, pending: files.length };
  const render = () => {
    const done = counts.completed + counts.failed;
    bar.set(files.length ? (sent + done) / (2 * files.length) : 1);
    stats.replaceChildren(
      h("span", { text: `Uploaded ${sent}/${files.length}` }),
      h("span", { text: `Processed ${counts.completed}/${files.length}` }),
      h("span", { text: `Failed ${counts.failed + failed}` }),
      errors.length ? h("span", { class: "error", text: errors.slice(-1)[0] }) : null,
      h("a", { href: `#/group/${group.id}`, id: "open-upload", text: "Open results" }),
    );
  };
  render();
  const queue = [...files];
  const worker = async () => {
    while (queue.length) {
      const entry = queue.shift();
      try {
        await sendOne(group, entry);
        sent++;
      } catch (e) {
        failed++;
        errors.push(`${entry.path}: ${e.message}`);
      }
      render();
    }
  };
  const workers = Promise.all(Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker));
  let uploading = true;
  workers.then(() => { uploading = false; });
  // poll the group's counts until every job has finished
  for (;;) {
    await new Promise((ok) => setTimeout(ok, 1000));
    if (!ctx.alive) return;
    try {
      const g = await api(`/v1/upload-groups/${group.id}`);
      counts = g.counts;
      render();
      if (!uploading && counts.pending === 0) break;
    } catch (e) {
      errors.push(e.message);
      render();
    }
  }
  bar.set(1);
  toast(`Upload done: ${counts.completed} processed, ${counts.failed + failed} failed`);
  if (ctx.alive) location.hash = `#/group/${group.id}`;
}

export function uploadsTable(rows) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Upload", "Kind", "Created", "Files", "State"].map((t) => h("th", { text: t })))),
    h("tbody", {}, rows.map((u) => {
      const c = u.counts || {};
      const href = u.kind === "wildlife" ? `#/group/${u.id}` : `#/deepfake/batch/${u.batch_uuid}`;
      const state = u.kind === "wildlife"
        ? `${c.completed || 0} done, ${c.failed || 0} failed${c.pending ? `, ${c.pending} running` : ""}`
        : `${c.completed || 0} done, ${c.failed || 0} failed${c.pending ? `, ${c.pending} running` : ""}`;
      return h("tr", {},
        h("td", {}, h("a", { href, text: u.name || u.id })),
        h("td", { text: u.kind }),
        h("td", { text: fmtDate(u.created_at) }),
        h("td", { text: String(c.total ?? u.file_count) }),
        h("td", { text: state }));
    }))));
}
