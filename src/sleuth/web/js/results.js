// Everything a team can come back to: upload groups (wildlife uploads, deepfake batches), stored wildlife results
// (synchronous requests and async jobs), and exports over a time range.
import { api, qs } from "./api.js";
import { h, field, fmtDate } from "./ui.js";
import { FORMATS, exportFile } from "./grid.js";
import { uploadsTable } from "./wildlife.js";

export async function view(main, ctx) {
  main.append(h("h1", { text: "Results" }));
  const uploads = h("div", { class: "panel" }, h("h2", { text: "Uploads and batches" }));
  const stored = h("div", { class: "panel" }, h("h2", { text: "Stored wildlife results" }),
    h("p", { class: "small muted", text: "Every result the team's keys produced (synchronous requests and async jobs), until it expires." }));
  main.append(uploads, exportRange(), stored);
  const [groups, results] = await Promise.all([api(`/v1/upload-groups${qs({ limit: 50 })}`), api(`/v1/results${qs({ limit: 50 })}`)]);
  if (!ctx.alive) return;
  uploads.append(groups.data.length ? uploadsTable(groups.data) : h("p", { class: "muted", text: "No uploads yet." }));
  if (!results.data.length) {
    stored.append(h("p", { class: "muted", text: "No results yet." }));
    return;
  }
  stored.append(h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Result", "From", "Completed", "Images", "Boxes", "Export"].map((t) => h("th", { text: t })))),
    h("tbody", {}, results.data.map((r) => h("tr", {},
      h("td", {}, h("a", { href: `#/result/${r.id}`, class: "mono", text: r.id.slice(0, 8) })),
      h("td", { text: r.endpoint }),
      h("td", { text: fmtDate(r.created_at) }),
      h("td", { text: String(r.images) }),
      h("td", { text: String(r.boxes) }),
      h("td", {}, h("div", { class: "actions" }, FORMATS.filter(([f]) => f !== "camtrap-dp").map(([fmt, label]) => {
        const b = h("button", { type: "button", class: "secondary small", text: label });
        b.addEventListener("click", () => exportFile({ ids: r.id }, fmt, b));
        return b;
      })))))))),
  h("p", { class: "small muted", text: `${results.total} results in all; the newest ${results.data.length} are listed.` }));
}

function exportRange() {
  const now = new Date();
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const since = h("input", { type: "datetime-local", id: "range-since", value: local(new Date(now.getTime() - 7 * 86400000)) });
  const until = h("input", { type: "datetime-local", id: "range-until", value: local(new Date(now.getTime() + 3600000)) });
  const fmt = h("select", { id: "range-format" }, FORMATS.map(([f, l]) => h("option", { value: f, text: l })));
  const lat = h("input", { type: "number", step: "any", id: "range-lat", placeholder: "for Camtrap DP" });
  const lon = h("input", { type: "number", step: "any", id: "range-lon", placeholder: "for Camtrap DP" });
  const go = h("button", { type: "submit", text: "Download" });
  const form = h("form", { class: "panel", id: "export-range" }, h("h2", { text: "Export a time range" }),
    h("p", { class: "small muted", text: "Results completed in the range, reviews applied. Results from an upload carry their deployment; the coordinates here are for the others." }),
    h("div", { class: "row" }, field("From", since), field("Until", until), field("Format", fmt), field("Latitude", lat), field("Longitude", lon), h("div", { class: "narrow" }, go)));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = { since: new Date(since.value).toISOString(), until: new Date(until.value).toISOString() };
    if (lat.value !== "" && lon.value !== "") Object.assign(params, { latitude: lat.value, longitude: lon.value, deployment_id: "results" });
    else if (fmt.value === "camtrap-dp") params.placeholder_coordinates = true;
    exportFile(params, fmt.value, go);
  });
  return form;
}
