// Settings: who is signed in, the reviewer name, and the team's webhook secret (show, copy, rotate).
import { api, prefs, session } from "./api.js";
import { h, field, toast } from "./ui.js";

export async function view(main, ctx) {
  const me = session.me || {};
  const reviewer = h("input", { type: "text", id: "settings-reviewer", maxlength: 200, value: prefs.reviewer, placeholder: me.reviewer || "" });
  const save = h("button", { type: "submit", text: "Save" });
  const who = h("form", { class: "panel" }, h("h2", { text: "You" }),
    h("dl", { class: "kv" }, h("dt", { text: "Team" }), h("dd", { text: me.team_name }),
      h("dt", { text: "API key" }), h("dd", { class: "mono", text: `${me.key_prefix}… (${me.key_name || "no name"})` })),
    h("div", { class: "row" }, field("Reviewer name", reviewer, "Reviews are recorded under this name; empty = the key's name"), h("div", { class: "narrow" }, save)));
  who.addEventListener("submit", (e) => {
    e.preventDefault();
    prefs.reviewer = reviewer.value.trim();
    toast(`Reviewer: ${prefs.reviewer || me.reviewer}`);
  });

  const code = h("code", { id: "webhook-secret", text: "••••••••••••••••" });
  let secret = null;
  let shown = false;
  const show = h("button", { type: "button", class: "secondary small", id: "show-secret", text: "Show" });
  const copy = h("button", { type: "button", class: "secondary small", id: "copy-secret", text: "Copy" });
  const rotate = h("button", { type: "button", class: "danger small", id: "rotate-secret", text: "Rotate" });
  const confirmBox = h("div", { class: "error", hidden: true, role: "alertdialog", "aria-labelledby": "rotate-q" },
    h("p", { id: "rotate-q", text: "Rotate the secret? Callbacks are signed with the new one at once; receivers that still check the old one will reject them." }),
    h("div", { class: "actions" }, h("button", { type: "button", class: "danger", id: "rotate-confirm", text: "Rotate now" }),
      h("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => { confirmBox.hidden = true; rotate.focus(); } })));
  const paint = () => { code.textContent = shown && secret ? secret : "••••••••••••••••"; show.textContent = shown ? "Hide" : "Show"; };
  show.addEventListener("click", () => { shown = !shown; paint(); });
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(secret); toast("Copied"); } catch { shown = true; paint(); toast("Select the secret and copy it"); }
  });
  rotate.addEventListener("click", () => { confirmBox.hidden = false; confirmBox.querySelector("#rotate-confirm").focus(); });
  confirmBox.querySelector("#rotate-confirm").addEventListener("click", async () => {
    try {
      secret = (await api("/v1/team/webhook-secret/rotate", { method: "POST" })).webhook_secret;
      shown = true;
      paint();
      confirmBox.hidden = true;
      toast("Webhook secret rotated");
    } catch (e) {
      toast(`Not rotated: ${e.message}`, true);
    }
  });
  const hook = h("div", { class: "panel", id: "webhook" }, h("h2", { text: "Webhook secret" }),
    h("p", { class: "small muted" }, "Deepfake callbacks (", h("code", { text: "callback_url" }), ") are signed with it, Standard Webhooks style: ",
      h("code", { text: "webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>" }), "."),
    h("div", { class: "secret" }, code, show, copy, rotate), confirmBox);
  main.append(h("h1", { text: "Settings" }), who, hook);
  secret = (await api("/v1/team/webhook-secret")).webhook_secret;
  if (!ctx.alive) return;
  paint();
}
