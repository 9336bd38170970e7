// Drives the `vblip serve` demo page in headless Debian chromium (playwright-core):
// upload a fixture video, chat with a streamed answer, use an example row, show an
// error, clear; narrate a video (cues as captions while they come, the downloads as valid
// WebVTT and SRT). Screenshots go to the artifacts directory.
// usage: node browser_test.mjs VBLIP_BINARY FIXTURES_DIR ARTIFACTS_DIR
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [bin, fixtures, artifacts] = process.argv.slice(2);
if (!bin || !fixtures || !artifacts) { console.error("usage: node browser_test.mjs VBLIP FIXTURES ARTIFACTS"); process.exit(2); }
fs.mkdirSync(artifacts, { recursive: true });
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL: " + what); } };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vblip-browser-"));
const server = spawn(bin, ["serve", "--model", path.join(fixtures, "models/videoblip-opt-tiny"), "--host", "127.0.0.1",
  "--port", "0", "--threads", "2", "--examples", path.join(fixtures, "media"), "--allow-url-input"],
  { env: { ...process.env, TMPDIR: tmp, VBLIP_SERVE_TEST_DELAY_MS: "40" }, stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve, reject) => {
  let out = "";
  const t = setTimeout(() => reject(new Error("the server did not start")), 60000);
  server.stdout.on("data", (d) => { out += d; const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//); if (m) { clearTimeout(t); resolve(m[0]); } });
  server.on("exit", (code) => reject(new Error("the server exited: " + code)));
});

// A server whose model is an EILEV checkpoint (the OPT fixture with an EILEV config):
// several uploads join one conversation, each shown with its frames.
async function startServer(model) {
  const srv = spawn(bin, ["serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--threads", "2"],
    { env: { ...process.env, TMPDIR: tmp }, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("the server did not start")), 60000);
    srv.stdout.on("data", (d) => { out += d; const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//); if (m) { clearTimeout(t); resolve(m[0]); } });
    srv.on("exit", (code) => reject(new Error("the server exited: " + code)));
  });
  return { srv, url };
}

function eilevModel() {
  const src = path.join(fixtures, "models/videoblip-opt-tiny"), dir = path.join(tmp, "eilev-opt-tiny");
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(src)) if (f !== "config.json") fs.symlinkSync(path.join(src, f), path.join(dir, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
  cfg._name_or_path = "kpyu/eilev-blip2-opt-2.7b";
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
  return dir;
}

async function interleaved() {
  const { srv, url } = await startServer(eilevModel());
  try {
    const bodies = [];
    page.on("request", (r) => { if (r.url().endsWith("/api/chat")) bodies.push(r.postData()); });
    await page.goto(url);
    await page.waitForFunction(() => !document.getElementById("addtext").hidden);
    check(await page.locator("#file").evaluate((e) => e.multiple), "several files at once");
    // two files in one go, then text without an answer, then a third video
    await page.setInputFiles("#file", [path.join(fixtures, "media/video1_h264_320x240_30fps_12s.mp4"),
                                       path.join(fixtures, "media/image_rgb_203x150.png")]);
    await page.waitForFunction(() => document.querySelectorAll(".msg.video").length === 2);
    await page.waitForFunction(() => [...document.querySelectorAll(".msg.video img")].every((i) => i.complete && i.naturalWidth > 0));
    const thumbs = await page.locator(".msg.video").evaluateAll((els) => els.map((e) => e.querySelectorAll("img").length));
    check(thumbs[0] === 8 && thumbs[1] === 1, "each video's frames in the conversation: " + thumbs.join(","));
    await page.locator("#message").fill("What is the camera wearer doing? He is cooking.");
    await page.locator("#addtext").click();
    check(await page.locator(".user").count() === 1 && await page.locator(".bot").count() === 0, "text added without an answer");
    await page.setInputFiles("#file", path.join(fixtures, "media/video2_vp9_180x320_25fps_6s.webm"));
    await page.waitForFunction(() => document.querySelectorAll(".msg.video").length === 3);
    await page.locator("#beams").fill("0");
    await page.locator("#maxtok").fill("20");
    await page.locator("#message").fill("What is the camera wearer doing?");
    await page.locator("#message").press("Enter");
    await page.waitForSelector(".bot:not(.pending)");
    const answer = await page.locator(".bot").last().textContent();
    check(answer.length > 1 && !answer.startsWith("Error"), "interleaved answer: " + answer);
    const req = JSON.parse(bodies[bodies.length - 1] || "{}");
    const parts = (req.messages || []).flatMap((m) => m.content);
    check(parts.map((p) => p.type).join(",") === "video,video,text,video,text", "request in order: " + JSON.stringify(parts));
    await shot("6-interleaved.png");
    // a follow-up: the answer stays in the conversation
    await page.locator("#message").fill("Why?");
    await page.locator("#message").press("Enter");
    await page.waitForFunction(() => document.querySelectorAll(".bot").length === 2 && !document.querySelector(".bot.pending"));
    const req2 = JSON.parse(bodies[bodies.length - 1] || "{}");
    check((req2.messages || []).map((m) => m.role).join(",") === "user,assistant,user", "answer kept between messages");
    await page.locator("#clear").click();
    check(await page.locator(".msg").count() === 0, "interleaved conversation cleared");
    check(errors.length === 0, "no script errors (interleaved): " + errors.join("; "));
  } finally {
    srv.kill("SIGTERM");
    await new Promise((r) => srv.once("exit", r));
  }
}

// "HH:MM:SS.mmm" (sep ".") or "HH:MM:SS,mmm" (sep ","): seconds, or NaN
function seconds(ts, sep) {
  const m = ts.match(sep === "." ? /^(\d\d):([0-5]\d):([0-5]\d)\.(\d{3})$/ : /^(\d\d):([0-5]\d):([0-5]\d),(\d{3})$/);
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000 : NaN;
}
// WebVTT (numbered: false) or SRT (numbered: true) parsed strictly: [{start, end, text}], or
// a string saying what is wrong
function parseCues(doc, srt) {
  let blocks = doc.split("\n\n");
  if (!srt) { if (blocks[0] !== "WEBVTT") return "no WEBVTT header"; blocks = blocks.slice(1); }
  if (blocks[blocks.length - 1] !== "") return "does not end with a blank line";
  const cues = [];
  for (const b of blocks.slice(0, -1)) {
    const lines = b.split("\n");
    if (srt && lines.shift() !== String(cues.length + 1)) return "cue " + (cues.length + 1) + " is misnumbered";
    const m = (lines[0] || "").match(/^(\S+) --> (\S+)$/);
    if (!m || lines.length !== 2 || !lines[1]) return "malformed cue: " + JSON.stringify(b);
    const start = seconds(m[1], srt ? "," : "."), end = seconds(m[2], srt ? "," : ".");
    if (!(start < end)) return "bad times: " + lines[0];
    if (cues.length && start < cues[cues.length - 1].end) return "cues overlap or go back: " + lines[0];
    cues.push({ start, end, text: lines[1] });
  }
  return cues;
}

// Narrate mode: a video plays with its narration as captions that appear while the narration
// runs; the cue list, the track and both downloads agree.
async function narrateMode() {
  await page.goto(base + "#narrate");
  check(await page.locator("#narrate-main").isVisible() && !(await page.locator("#chat-main").isVisible()), "narrate mode shown");
  // window 2 s, stride 1 s, 2 frames: 5 windows over the 6 s VP9 clip, one cue each
  await page.locator("#nwindow").fill("2");
  check(await page.locator("#nstride").inputValue() === "1", "the stride follows half the window");
  await page.locator("#nframes").fill("2");
  await page.locator("#nbeams").fill("1");
  await page.locator("#nmaxtok").fill("8");
  await page.locator("#nmerge").uncheck();
  // what the page shows over time: cues in the track, and whether the narration has ended
  await page.evaluate(() => {
    window.__narr = [];
    const tick = () => {
      const t = document.getElementById("ntrack").track;
      window.__narr.push({ cues: t && t.cues ? t.cues.length : 0, listed: document.querySelectorAll("#cues li[data-start]").length,
                           done: !document.getElementById("downloads").hidden });
    };
    window.__narrTimer = setInterval(tick, 5);
  });
  await page.setInputFiles("#nfile", path.join(fixtures, "media/video2_vp9_180x320_25fps_6s.webm"));
  await page.waitForFunction(() => !document.getElementById("downloads").hidden || document.getElementById("nstatus").classList.contains("err"));
  const status = await page.locator("#nstatus").textContent();
  check(!(await page.locator("#nstatus").evaluate((e) => e.classList.contains("err"))), "narrated: " + status);
  const seen = await page.evaluate(() => { clearInterval(window.__narrTimer); return window.__narr; });
  check(seen.some((s) => s.cues > 0 && s.listed > 0 && !s.done), "captions appeared while the narration ran");
  check(seen.some((s) => s.cues > 0 && s.cues < 5 && !s.done), "cues came one at a time (" + [...new Set(seen.map((s) => s.cues))].join(",") + ")");
  const track = await page.evaluate(() => [...document.getElementById("ntrack").track.cues].map((c) => ({ start: c.startTime, end: c.endTime, text: c.text })));
  check(track.length === 5, "5 cues in the track: " + track.length);
  check(track.every((c, i) => c.start === i && c.end === i + 1 + (i === 4 ? 1 : 0)), "cue times follow window / stride: " + JSON.stringify(track.map((c) => [c.start, c.end])));
  check(await page.locator("#cues li[data-start]").count() === 5, "5 cues listed");
  check(await page.evaluate(() => document.getElementById("ntrack").track.mode) === "showing", "the captions are showing");
  check(status.includes("5 windows"), "the summary: " + status);
  // playing: the cue of the current time is active, in the track and in the list
  await page.evaluate(() => { const v = document.getElementById("nplayer"); v.pause(); v.currentTime = 2.5; return v.play().catch(() => {}); });
  await page.waitForFunction(() => {
    const t = document.getElementById("ntrack").track;
    return t.activeCues && t.activeCues.length > 0 && document.querySelector("#cues li.active");
  });
  const active = await page.evaluate(() => ({ cue: document.getElementById("ntrack").track.activeCues[0].text,
                                             playing: !document.getElementById("nplayer").paused }));
  check(active.cue === track[2].text || active.cue === track[3].text, "the cue at 2.5 s is active while playing: " + active.cue);
  await shot("7-narrate.png");
  // the downloads: valid WebVTT and SRT with the track's cues
  for (const [id, srt] of [["#dl-vtt", false], ["#dl-srt", true]]) {
    const [dl] = await Promise.all([page.waitForEvent("download"), page.locator(id).click()]);
    const file = await dl.path();
    const doc = fs.readFileSync(file, "utf8");
    const cues = parseCues(doc, srt);
    check(Array.isArray(cues), (srt ? "SRT" : "WebVTT") + " download is valid: " + (Array.isArray(cues) ? "" : cues));
    check(dl.suggestedFilename().endsWith(srt ? ".srt" : ".vtt"), "download name: " + dl.suggestedFilename());
    if (Array.isArray(cues))
      check(JSON.stringify(cues) === JSON.stringify(track), (srt ? "SRT" : "WebVTT") + " download equals the track's cues");
  }
  // a URL the server opens (--allow-url-input): here its own example file, the same cues
  check(await page.locator("#nurl-form").isVisible(), "the URL field (the server allows URLs)");
  await page.locator("#nurl").fill(base + "examples/video2_vp9_180x320_25fps_6s.webm");
  await page.locator("#nurl-go").click();
  await page.waitForFunction(() => document.getElementById("downloads").hidden === false && document.querySelectorAll("#cues li[data-start]").length === 5 ||
                                   document.getElementById("nstatus").classList.contains("err"));
  const fromUrl = await page.evaluate(() => [...document.getElementById("ntrack").track.cues].map((c) => ({ start: c.startTime, end: c.endTime, text: c.text })));
  check(JSON.stringify(fromUrl) === JSON.stringify(track), "the URL's cues equal the upload's: " + JSON.stringify(fromUrl).slice(0, 200));
  check((await page.locator("#nplayer").getAttribute("src")).endsWith("video2_vp9_180x320_25fps_6s.webm"), "the player plays the URL");
  // a video shorter than a window: the error, and the chat mode still there
  await page.locator("#nwindow").fill("20");
  await page.setInputFiles("#nfile", path.join(fixtures, "media/video2_vp9_180x320_25fps_6s.webm"));
  await page.waitForSelector("#nstatus.err");
  check((await page.locator("#nstatus").textContent()).includes("20-second window"), "too short: " + await page.locator("#nstatus").textContent());
  check(!(await page.locator("#downloads").isVisible()), "no download links for the failed narration");
  check(await page.evaluate(() => { const t = document.getElementById("nplayer").textTracks; return t.length === 1 && t[0].cues.length === 0; }),
        "one caption track, emptied for the new video");
  // a narrow screen (420 px): the narrate mode does not scroll sideways either
  await page.setViewportSize({ width: 420, height: 900 });
  const nw = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  check(nw.scroll <= nw.width, `narrate: no horizontal scroll at 420 px (${nw.scroll} > ${nw.width})`);
  await shot("7b-narrate-narrow.png");
  await page.setViewportSize({ width: 1280, height: 1000 });
  await page.locator("#mode-chat").click();
  check(await page.locator("#chat-main").isVisible() && !(await page.locator("#narrate-main").isVisible()), "back to chat");
  check(errors.length === 0, "no script errors (narrate): " + errors.join("; "));
}

const ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, "profile-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-dev-shm-usage"],
  viewport: { width: 1280, height: 1000 },
});
const shot = (name) => page.screenshot({ path: path.join(artifacts, name), fullPage: true });
const page = ctx.pages()[0] || await ctx.newPage();
const errors = [], notFound = [];
page.on("pageerror", (e) => errors.push(e.message));
page.on("response", (r) => { if (r.status() === 404) notFound.push(r.url()); });
try {
  page.setDefaultTimeout(60000);
  await page.goto(base);
  check((await page.title()).includes("VideoBLIP"), "title");
  check(await page.getByText("Limitations:").isVisible(), "limitations note");
  check(await page.locator("#beams").inputValue() === "4", "beams default 4");
  check(await page.locator("#maxtok").inputValue() === "128", "max new tokens default 128");
  check(await page.locator("#temp").inputValue() === "0.7", "temperature default 0.7");
  await page.waitForSelector("#examples tr");
  check(await page.locator("#examples tr").count() >= 2, "example rows");

  // upload: player and 8 frame thumbnails with timestamps
  await page.setInputFiles("#file", path.join(fixtures, "media/video1_h264_320x240_30fps_12s.mp4"));
  await page.waitForFunction(() => document.querySelectorAll("#frames img").length === 8);
  await page.waitForFunction(() => [...document.querySelectorAll("#frames img")].every((i) => i.complete && i.naturalWidth > 0));
  check(await page.locator("#player").isVisible(), "video player");
  check((await page.locator("#frames figcaption").first().textContent()).endsWith(" s"), "frame timestamps");
  await shot("1-uploaded.png");

  // a streamed answer (greedy: token by token)
  await page.locator("#beams").fill("0");
  await page.locator("#maxtok").fill("20");
  await page.evaluate(() => {
    window.__snapshots = [];
    new MutationObserver(() => { const b = [...document.querySelectorAll(".bot")].pop(); if (b) window.__snapshots.push(b.textContent); })
      .observe(document.getElementById("chat"), { subtree: true, childList: true, characterData: true });
  });
  await page.locator("#message").fill("What is the camera wearer doing?");
  await page.locator("#message").press("Enter");
  await page.waitForSelector(".bot:not(.pending)");
  const answer = await page.locator(".bot").last().textContent();
  const partial = new Set(await page.evaluate(() => window.__snapshots.filter((s) => s.length > 0)));
  check(answer.length > 1 && !answer.startsWith("Error"), "an answer: " + answer);
  check(partial.size >= 3, "streamed in pieces (" + partial.size + " states)");
  check(await page.locator(".user").count() === 1, "the user's message shown");
  await shot("2-answer.png");

  // an example row: loads its video and its message
  const row = page.locator("#examples tr", { hasText: "Question: What is the camera wearer doing? Answer:" }).first();
  await row.click();
  await page.waitForFunction(() => document.getElementById("message").value.startsWith("Question:"));
  await page.waitForFunction(() => document.querySelectorAll("#frames img").length > 0);
  await page.locator("#send").click();
  await page.waitForFunction(() => document.querySelectorAll(".bot").length === 1 && !document.querySelector(".bot.pending"));
  check(!(await page.locator(".bot").last().textContent()).startsWith("Error"), "example answered");
  await shot("3-example.png");

  // an unreadable video: the error is shown once, and the video and conversation stay
  const chatBefore = await page.locator("#chat .msg").allTextContents();
  const framesBefore = await page.locator("#frames img").count();
  const bodies = [];
  page.on("request", (r) => { if (r.url().endsWith("/api/chat")) bodies.push(r.postData()); });
  const bad = path.join(tmp, "broken.mp4");
  fs.writeFileSync(bad, "this is not a video");
  await page.setInputFiles("#file", bad);
  await page.waitForSelector("#status.err");
  const status = await page.locator("#status").textContent();
  check(status.includes("Cannot use broken.mp4"), "the error names the file: " + status);
  const shown = await page.evaluate(() => document.body.innerText.split("Cannot use broken.mp4").length - 1);
  check(shown === 1, "the error shown once (" + shown + " times)");
  check(JSON.stringify(await page.locator("#chat .msg").allTextContents()) === JSON.stringify(chatBefore),
        "the conversation kept");
  check(await page.locator("#frames img").count() === framesBefore && framesBefore > 0, "the frames kept");
  await shot("4-error.png");
  await page.locator("#message").fill("And then?");
  await page.locator("#send").click();
  await page.waitForFunction(() => document.querySelectorAll(".bot").length === 2 && !document.querySelector(".bot.pending"));
  check(!(await page.locator(".bot").last().textContent()).startsWith("Error"), "the kept video still answers");
  const last = JSON.parse(bodies[bodies.length - 1] || "{}");
  check(last.video_id && (last.messages || []).length === 3, "the same session: " + JSON.stringify(last).slice(0, 200));

  // the favicon, and the link to the API page
  check(notFound.length === 0, "no 404 while using the page: " + notFound.join(", "));
  check(await page.evaluate(async () => (await fetch("/favicon.ico")).status) === 200, "/favicon.ico");
  const apiHref = await page.locator("a.apilink").getAttribute("href");
  const apiPage = await ctx.newPage();
  await apiPage.goto(new URL(apiHref, base).href);
  await apiPage.waitForFunction(() => document.getElementById("model").textContent !== "…");
  check((await apiPage.locator("#model").textContent()) === "videoblip-opt-tiny" &&
        (await apiPage.locator("#node").textContent()).includes(base + "v1"), "the API page with this server's address");
  check((await apiPage.locator("#narrate").textContent()).includes(base + "api/narrate?window="), "the API page's narrate example");
  await apiPage.close();

  // clear: video, textbox and history
  await page.setInputFiles("#file", path.join(fixtures, "media/video2_vp9_180x320_25fps_6s.webm"));
  await page.waitForFunction(() => document.querySelectorAll("#frames img").length === 8);
  await page.locator("#message").fill("something");
  await page.locator("#clear").click();
  check(await page.locator("#message").inputValue() === "", "textbox cleared");
  check(await page.locator(".msg").count() === 0, "history cleared");
  check(await page.locator("#frames img").count() === 0, "frames cleared");
  check(!(await page.locator("#player").isVisible()), "video cleared");
  await shot("5-cleared.png");

  // a narrow screen (420 px): nothing scrolls sideways, the slider values are whole
  await page.setViewportSize({ width: 420, height: 900 });
  await page.goto(base);
  await page.setInputFiles("#file", path.join(fixtures, "media/video1_h264_320x240_30fps_12s.mp4"));
  await page.waitForFunction(() => document.querySelectorAll("#frames img").length === 8);
  await page.locator("#maxtok").fill("256");
  const narrow = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, width: window.innerWidth,
    outputs: ["beams-out", "maxtok-out", "temp-out"].map((id) => {
      const o = document.getElementById(id), card = o.closest(".card").getBoundingClientRect(), r = o.getBoundingClientRect();
      return o.scrollWidth <= o.clientWidth && r.right <= card.right && r.left >= card.left;
    }),
  }));
  check(narrow.scroll <= narrow.width, `no horizontal scroll at 420 px (${narrow.scroll} > ${narrow.width})`);
  check(narrow.outputs.every(Boolean), "slider values not clipped: " + JSON.stringify(narrow.outputs));
  await shot("5b-narrow.png");
  await page.setViewportSize({ width: 1280, height: 1000 });
  check(errors.length === 0, "no script errors: " + errors.join("; "));
  await narrateMode();
  await interleaved();
} catch (e) {
  failed++;
  console.log("FAIL: " + e.message);
  await shot("failure.png").catch(() => {});
} finally {
  await ctx.close().catch(() => {});
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
