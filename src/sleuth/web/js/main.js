// Entry point: sign in, the header, and a hash router over the views.
import { api, session, setUnauthorizedHandler } from "./api.js";
import { h, clear, toast } from "./ui.js";
import * as wildlife from "./wildlife.js";
import * as grid from "./grid.js";
import * as review from "./review.js";
import * as results from "./results.js";
import * as deepfake from "./deepfake.js";
import * as settings from "./settings.js";

const main = document.getElementById("main");
const top = document.getElementById("top");

const routes = [
  [/^#\/wildlife$/, "wildlife", () => wildlife.view],
  [/^#\/results$/, "results", () => results.view],
  [/^#\/group\/([\w-]+)$/, "results", (m) => (el, ctx) => grid.groupView(el, ctx, m[1])],
  [/^#\/group\/([\w-]+)\/image\/([\w-]+)$/, "results", (m) => (el, ctx) => review.view(el, ctx, { group: m[1], job: m[2] })],
  [/^#\/result\/([\w-]+)$/, "results", (m) => (el, ctx) => grid.resultView(el, ctx, m[1])],
  [/^#\/result\/([\w-]+)\/image\/(\d+)$/, "results", (m) => (el, ctx) => review.view(el, ctx, { result: m[1], index: Number(m[2]) })],
  [/^#\/deepfake$/, "deepfake", () => deepfake.view],
  [/^#\/deepfake\/batch\/([\w-]+)$/, "deepfake", (m) => (el, ctx) => deepfake.batchView(el, ctx, m[1])],
  [/^#\/deepfake\/item\/([\w-]+)$/, "deepfake", (m) => (el, ctx) => deepfake.itemView(el, ctx, m[1])],
  [/^#\/settings$/, "settings", () => settings.view],
];

let current = null; // {token, cleanups}

function leave() {
  if (!current) return;
  current.alive = false;
  for (const fn of current.cleanups) {
    try { fn(); } catch { /* a view's clean-up must not break the next view */ }
  }
  current = null;
}

async function route() {
  leave();
  if (!session.key) return showSignIn();
  let hash = location.hash;
  if (!hash || hash === "#" || hash === "#/") {
    hash = location.pathname.startsWith("/results") ? "#/results" : "#/wildlife";
    history.replaceState(null, "", hash);
  }
  const ctx = { alive: true, cleanups: [], onLeave(fn) { this.cleanups.push(fn); } };
  current = ctx;
  for (const [re, nav, make] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll("[data-nav]").forEach((a) => {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    clear(main);
    try {
      await make(m)(main, ctx);
    } catch (e) {
      if (!ctx.alive) return;
      clear(main);
      main.append(h("h1", { text: "Something went wrong" }), h("p", { class: "error", role: "alert", text: e.message }));
    }
    return;
  }
  clear(main);
  main.append(h("h1", { text: "Not found" }), h("p", {}, "No page here. ", h("a", { href: "#/wildlife", text: "Go to Wildlife" })));
}

function showSignIn(message) {
  top.hidden = true;
  clear(main);
  const key = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", spellcheck: "false", required: true, placeholder: "sk_sleuth_..." });
  const err = h("p", { class: "error", role: "alert", id: "signin-error", hidden: !message, text: message || "" });
  const btn = h("button", { type: "submit", text: "Sign in" });
  const form = h("form", { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, h("img", { src: "/ui/static/icon.svg", alt: "", width: 32, height: 32 }), "sleuth"),
    h("p", { class: "muted", text: "Sign in with an API key of your team. It is kept for this browser tab only and sent with each request; close the tab or sign out to forget it." }),
    h("label", { for: "api-key", text: "API key" }), key,
    h("p", { class: "small muted" }, "Create one with ", h("code", { text: "sleuth keys create --team NAME --name YOU" }), "."),
    err,
    h("div", { class: "actions" }, btn),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const k = key.value.trim();
    if (!k) return;
    btn.disabled = true;
    err.hidden = true;
    try {
      const me = await api("/v1/me", { key: k });
      session.set(k, me);
      if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/wildlife");
      startApp();
    } catch (e) {
      err.textContent = e.status === 401 ? `Sign-in failed: ${e.message}` : `Sign-in failed: ${e.message}`;
      err.hidden = false;
      key.select();
    } finally {
      btn.disabled = false;
    }
  });
  main.append(form);
  key.focus();
}

function startApp() {
  const me = session.me;
  top.hidden = false;
  document.getElementById("who-team").textContent = me ? `${me.team_name} · ${me.key_name || me.key_prefix}` : "";
  route();
}

document.getElementById("sign-out").addEventListener("click", () => {
  leave();
  session.clear();
  history.replaceState(null, "", "#/");
  showSignIn();
  toast("Signed out");
});

setUnauthorizedHandler((err) => {
  leave();
  session.clear();
  showSignIn(`Signed out: ${err.message}`);
});

window.addEventListener("hashchange", () => { if (session.key) route(); });
if (session.key) startApp();
else showSignIn();
