// Drives sleuth's web app in Debian's chromium with playwright-core (no browser download), as a person would:
// a wrong key, sign in, drop three camera-trap images, see their boxes, filter, correct a label, export Camtrap DP
// and MegaDetector JSON, upload audio and play a chunk from its timeline, rotate the webhook secret, open /docs
// and /redoc, sign out. Every request must stay on the server's origin and the console must stay clean.
//
// Input (environment): BASE_URL, API_KEY, IMAGES (JSON list of paths), AUDIO (JSON list), OUT (a folder),
// optional SHOTS (a folder for screenshots), EXTRA_IMAGE / EXTRA_VIDEO (deepfake image and video, for screenshots),
// CHROMIUM (default /usr/bin/chromium). Output: one JSON line on stdout with what was seen.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const base = process.env.BASE_URL;
const key = process.env.API_KEY;
const images = JSON.parse(process.env.IMAGES || "[]");
const audio = JSON.parse(process.env.AUDIO || "[]");
const out = process.env.OUT;
const shots = process.env.SHOTS || "";
const extraImage = process.env.EXTRA_IMAGE || "";
const extraVideo = process.env.EXTRA_VIDEO || "";
const deployment = JSON.parse(process.env.DEPLOYMENT || '{"name":"Test site A","lat":"36.6","lon":"-118.1","camera":"CAM-01"}');
const reviewFile = process.env.REVIEW_FILE || ""; // which image to relabel (default: the first with a box)
const reviewLabel = process.env.REVIEW_LABEL || "red fox";
const origin = new URL(base).origin;
const report = { external: [], consoleErrors: [], steps: [] };
let phase = "start";

function step(name) {
  phase = name;
  report.steps.push(name);
}

async function shot(page, name, full = false) {
  if (!shots) return;
  await page.evaluate(() => document.getElementById("toasts")?.replaceChildren());
  await page.waitForTimeout(400); // let the progress bars' transitions finish
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: full });
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sleuth-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
  viewport: { width: 1366, height: 900 },
  acceptDownloads: true,
});
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (url.startsWith("data:") || url.startsWith("blob:") || new URL(url).origin === origin) return route.continue();
  report.external.push(url);
  return route.abort();
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(30000);
page.on("console", (m) => {
  if (m.type() !== "error") return;
  const text = m.text();
  // the browser logs the 401 of the deliberately wrong key; nothing else may be logged as an error
  if (phase === "wrong-key" && /status of 401/.test(text)) return;
  report.consoleErrors.push(`${phase}: ${text}`);
});
page.on("pageerror", (e) => report.consoleErrors.push(`${phase}: ${e.message}`));

async function dropFiles(selector, files) {
  const payload = files.map((f) => ({ name: path.basename(f), data: fs.readFileSync(f).toString("base64") }));
  const dt = await page.evaluateHandle((items) => {
    const d = new DataTransfer();
    for (const it of items) {
      const bin = Uint8Array.from(atob(it.data), (c) => c.charCodeAt(0));
      const type = it.name.toLowerCase().endsWith(".png") ? "image/png" : "image/jpeg";
      d.items.add(new File([bin], it.name, { type }));
    }
    return d;
  }, payload);
  await page.dispatchEvent(selector, "dragover", { dataTransfer: dt });
  await page.dispatchEvent(selector, "drop", { dataTransfer: dt });
}

try {
  // --- sign in: a wrong key first -------------------------------------------------------------------------------
  step("wrong-key");
  await page.goto(`${base}/`);
  await page.fill("#api-key", "sk_sleuth_not-a-real-key");
  await page.click("button[type=submit]");
  await page.waitForSelector("#signin-error:not([hidden])");
  report.wrongKeyError = (await page.textContent("#signin-error")).trim();
  report.keyInUrlAfterWrongKey = page.url().includes("sk_sleuth");
  await shot(page, "signin-error");

  step("sign-in");
  await page.fill("#api-key", key);
  await page.click("button[type=submit]");
  await page.waitForSelector("#top:not([hidden])");
  await page.waitForSelector("#upload-form");
  report.keyInUrl = page.url().includes(key);
  report.keyInLocalStorage = await page.evaluate((k) => Object.values(localStorage).some((v) => v.includes(k)), key);
  report.keyInSessionStorage = await page.evaluate((k) => sessionStorage.getItem("sleuth.key") === k, key);

  // --- wildlife: a deployment, three images dropped -----------------------------------------------------------
  step("wildlife-upload");
  await page.fill("#dep-name", deployment.name);
  await page.fill("#dep-lat", deployment.lat);
  await page.fill("#dep-lon", deployment.lon);
  await page.fill("#dep-camera", deployment.camera);
  await dropFiles("#drop-zone", images);
  await page.waitForSelector("#start-upload:not([disabled])");
  report.fileSummary = (await page.textContent("#file-summary")).trim();
  await shot(page, "wildlife-upload");
  await page.click("#start-upload");
  await page.waitForSelector("#upload-progress:not([hidden])");
  await page.waitForFunction(() => location.hash.startsWith("#/group/"), null, { timeout: 150000 });
  report.groupId = page.url().split("#/group/")[1];
  await page.waitForFunction((n) => document.querySelectorAll("#grid .card").length === n, images.length, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelectorAll("#grid .card img").length > 0 && [...document.querySelectorAll("#grid .card img")].every((i) => i.complete && i.naturalWidth > 0));
  report.cards = await page.$$eval("#grid .card", (cs) => cs.map((c) => ({ file: c.dataset.file, boxes: c.querySelectorAll(".box:not(.low)").length, tags: [...c.querySelectorAll(".box:not(.low) .tag")].map((t) => t.textContent) })));
  report.deployment = (await page.textContent("main .panel dl")).replace(/\s+/g, " ");
  await shot(page, "wildlife-grid", true);

  // the filters run in the page: no request while the slider moves
  step("filters");
  let requests = 0;
  const count = () => { requests++; };
  page.on("request", count);
  await page.fill("#filter-conf", "0.99");
  report.countAtHighConfidence = (await page.textContent("#grid-count")).trim();
  report.boxesAtHighConfidence = await page.$$eval("#grid .box:not(.low)", (b) => b.length);
  await page.uncheck("#cat-blank");
  report.countWithoutBlank = (await page.textContent("#grid-count")).trim();
  await page.check("#cat-blank");
  await page.fill("#filter-conf", "0.2");
  page.off("request", count);
  report.requestsWhileFiltering = requests;

  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "wildlife-grid-phone");
  await page.setViewportSize({ width: 1366, height: 900 });

  // --- review: correct the label of the first box -----------------------------------------------------------
  step("review");
  const withBox = await page.$(reviewFile ? `#grid .card[data-file*="${reviewFile}"]` : "#grid .card:has(.box:not(.low))");
  report.reviewedFile = await withBox.getAttribute("data-file");
  await withBox.click();
  await page.waitForSelector("#box-list li[data-box]");
  report.labelBefore = (await page.textContent("#box-list li[data-box='0'] .select-box")).trim();
  await page.click("#box-list li[data-box='0'] .select-box");
  await shot(page, "wildlife-image");
  await page.click("#box-list li[data-box='0'] .correct");
  await page.fill("#label-0", reviewLabel);
  await page.press("#label-0", "Enter");
  await page.waitForFunction(() => /saved by/.test(document.querySelector("#review-status")?.textContent || ""));
  report.labelAfter = (await page.textContent("#box-list li[data-box='0'] .select-box")).trim();
  report.statusAfter = (await page.textContent("#box-list li[data-box='0'] .badge")).trim();
  await shot(page, "wildlife-review");
  // keyboard: the arrow keys walk through the images
  await page.locator("h1").click();
  const here = page.url();
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction((u) => location.href !== u, here);
  report.arrowRightMoved = true;
  await page.waitForSelector("#box-list");
  await page.keyboard.press("ArrowLeft");
  await page.waitForFunction((u) => location.href === u, here);
  await page.waitForSelector("#box-list li[data-box]");
  // back to the grid
  await page.click(`a[href="#/group/${report.groupId}"]`);
  await page.waitForSelector("#export-bar");

  // --- exports: Camtrap DP and MegaDetector JSON from the page --------------------------------------------------
  step("export");
  for (const [fmt, file] of [["camtrap-dp", "camtrap-dp.zip"], ["md", "megadetector.json"]]) {
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click(`#export-bar button[data-format='${fmt}']`)]);
    await dl.saveAs(path.join(out, file));
    report[`download_${fmt}`] = dl.suggestedFilename();
  }

  // --- results page ---------------------------------------------------------------------------------------------
  step("results");
  await page.click("a[data-nav=results]");
  await page.waitForSelector("#export-range");
  await page.waitForSelector("main table");
  await shot(page, "results");

  // --- deepfake: audio batch, its verdicts, its timeline ---------------------------------------------------------
  step("deepfake-upload");
  await page.click("a[data-nav=deepfake]");
  await page.waitForSelector("#df-form");
  const media = [...audio, ...(extraImage ? [extraImage] : []), ...(extraVideo ? [extraVideo] : [])];
  await page.setInputFiles("#drop-zone input[type=file]:not([webkitdirectory])", media);
  await page.waitForSelector("#df-start:not([disabled])");
  await page.click("#df-start");
  await page.waitForFunction(() => location.hash.startsWith("#/deepfake/batch/"), null, { timeout: 60000 });
  await page.waitForFunction((n) => /(\d+) completed/.exec(document.querySelector("#batch-stats")?.textContent || "")?.[1] >= n
    || /Status: (completed|failed|partial)/.test(document.querySelector("#batch-stats")?.textContent || ""), media.length, { timeout: 180000 });
  await page.waitForFunction((n) => document.querySelectorAll("#verdicts tbody tr").length === n, media.length);
  report.verdicts = await page.$$eval("#verdicts tbody tr", (rows) => rows.map((r) => r.textContent.replace(/\s+/g, " ").trim()));
  await shot(page, "deepfake-batch");

  step("deepfake-audio");
  await page.click(`#verdicts a:text("${path.basename(audio[0])}")`);
  await page.waitForSelector("#audio-view .timeline .chunk");
  report.chunks = await page.$$eval("#audio-view .timeline .chunk", (c) => c.map((b) => ({ start: Number(b.dataset.start), label: b.getAttribute("aria-label") })));
  await page.waitForFunction(() => document.querySelector("#player").readyState >= 1);
  const pick = Math.min(1, report.chunks.length - 1);
  await page.click(`#audio-view .timeline .chunk[data-index='${pick}']`);
  await page.waitForFunction(() => !document.querySelector("#player").paused || document.querySelector("#player").currentTime > 0);
  report.played = await page.evaluate(() => ({ time: document.querySelector("#player").currentTime, paused: document.querySelector("#player").paused }));
  report.pickedChunkStart = report.chunks[pick].start;
  await page.evaluate(() => document.querySelector("#player").pause());
  report.verdictText = (await page.textContent("#verdict")).replace(/\s+/g, " ").trim();
  await shot(page, "deepfake-audio");

  if (extraImage) {
    step("deepfake-image");
    await page.goBack();
    await page.waitForSelector("#verdicts");
    await page.click(`#verdicts a:text("${path.basename(extraImage)}")`);
    await page.waitForSelector("#image-view img");
    await page.waitForFunction(() => document.querySelector("#image-view img").complete);
    report.heatmapLoaded = await page.$eval("#image-view img", (i) => i.naturalWidth > 0 && i.src.includes("/visualization?"));
    report.facesListed = await page.$$eval("main ol li", (l) => l.length);
    await shot(page, "deepfake-image");
  }
  if (extraVideo) {
    step("deepfake-video");
    await page.goBack();
    await page.waitForSelector("#verdicts");
    await page.click(`#verdicts a:text("${path.basename(extraVideo)}")`);
    await page.waitForSelector("#frame-strip");
    await page.waitForFunction(() => document.querySelector("#player")?.readyState >= 2);
    const frames = await page.$$("#frame-strip button");
    if (frames.length > 2) await frames[2].click();
    await page.waitForFunction(() => { const v = document.querySelector("#player"); return !v.seeking && v.readyState >= 2; });
    report.facesDrawn = await page.$$eval("#video-view .face", (f) => f.length);
    await page.waitForFunction(() => document.querySelector("#player").readyState >= 3, null, { timeout: 5000 }).catch(() => {});
    await page.waitForTimeout(600);
    await shot(page, "deepfake-video");
  }

  // --- settings: the webhook secret ---------------------------------------------------------------------------
  step("settings");
  await page.click("a[data-nav=settings]");
  await page.waitForSelector("#webhook");
  await page.click("#show-secret");
  await page.waitForFunction(() => document.querySelector("#webhook-secret").textContent.startsWith("whsec_"));
  report.secretBefore = (await page.textContent("#webhook-secret")).trim();
  await page.click("#rotate-secret");
  await page.keyboard.press("Enter"); // the confirm button has the focus
  await page.waitForFunction((old) => document.querySelector("#webhook-secret").textContent !== old, report.secretBefore);
  report.secretAfter = (await page.textContent("#webhook-secret")).trim();
  await page.click("#show-secret"); // hide it again before the screenshot
  await shot(page, "settings");

  // --- API docs, offline ---------------------------------------------------------------------------------------
  step("docs");
  await page.goto(`${base}/docs`);
  await page.waitForSelector(".swagger-ui .info .title", { timeout: 30000 });
  report.docsTitle = (await page.textContent(".swagger-ui .info .title")).trim();
  await shot(page, "docs");
  step("redoc");
  await page.goto(`${base}/redoc`);
  await page.waitForSelector(".api-content h1", { timeout: 30000 });
  report.redocTitle = (await page.textContent(".api-content h1")).trim();
  await shot(page, "redoc");

  // --- sign out ---------------------------------------------------------------------------------------------------
  step("sign-out");
  await page.goto(`${base}/`);
  await page.waitForSelector("#sign-out");
  await page.click("#sign-out");
  await page.waitForSelector("#api-key");
  report.keyAfterSignOut = await page.evaluate(() => sessionStorage.getItem("sleuth.key"));
  report.ok = true;
} catch (e) {
  report.ok = false;
  report.error = `${phase}: ${e.stack || e}`;
  try { await page.screenshot({ path: path.join(out, "failure.png"), fullPage: true }); } catch { /* best effort */ }
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
