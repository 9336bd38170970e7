// Drives `vblip serve`'s OpenAI-compatible endpoint with the official openai client for
// Node (pinned in package-lock.json): models.list/retrieve, chat completions whole and
// streamed, temperature 0 (greedy) and > 0 (sampling, seeded), stop strings, the usage
// chunk, and errors as the client sees them. Answers are compared with `vblip caption`.
// usage: node openai_test.mjs VBLIP_BINARY FIXTURES_DIR
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";

const [bin, fixtures] = process.argv.slice(2);
if (!bin || !fixtures) { console.error("usage: node openai_test.mjs VBLIP FIXTURES"); process.exit(2); }
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL: " + what); } };

const model = path.join(fixtures, "models/videoblip-opt-tiny");
const video = path.join(fixtures, "media/video1_h264_320x240_30fps_12s.mp4");
const question = "What is the camera wearer doing?";
const key = "test-key-" + process.pid;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vblip-openai-"));
const server = spawn(bin, ["serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--threads", "2",
  "--api-key", key], { env: { ...process.env, TMPDIR: tmp }, stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve, reject) => {
  let out = "";
  const t = setTimeout(() => reject(new Error("the server did not start")), 60000);
  server.stdout.on("data", (d) => { out += d; const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//); if (m) { clearTimeout(t); resolve(m[0]); } });
  server.on("exit", (code) => reject(new Error("the server exited: " + code)));
});

// vblip caption's answer with these generation flags
function caption(flags) {
  const out = execFileSync(bin, ["caption", "--model", model, "--threads", "2", "--json", "--prompt", question,
    ...flags, video], { encoding: "utf8" });
  return JSON.parse(out).text;
}

// The video as a data: URL part, as an OpenAI client sends an image
const dataUrl = "data:video/mp4;base64," + fs.readFileSync(video).toString("base64");
const messages = [{ role: "user", content: [{ type: "video_url", video_url: { url: dataUrl } },
                                            { type: "text", text: question }] }];

async function collect(stream) {
  let text = "", finish = null, usage = null, chunks = 0, emptyChoices = 0, roles = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.choices.length === 0) emptyChoices++;
    for (const c of chunk.choices) {
      if (c.delta.content) text += c.delta.content;
      if (c.delta.role) roles++;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, finish, usage, chunks, emptyChoices, roles };
}

try {
  const client = new OpenAI({ baseURL: base + "v1", apiKey: key, maxRetries: 0, timeout: 120000 });

  // models
  const list = await client.models.list();
  const id = list.data[0]?.id;
  check(list.data.length === 1 && id === "videoblip-opt-tiny", "models.list: " + JSON.stringify(list.data));
  const one = await client.models.retrieve(id);
  check(one.id === id && one.object === "model", "models.retrieve: " + JSON.stringify(one));
  try {
    await client.models.retrieve("no-such-model");
    check(false, "models.retrieve of an unknown model throws");
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found" && e.param === "model",
          "unknown model: " + e);
  }

  // temperature 0: greedy, whole and streamed
  const greedy = caption(["--beams", "1", "--max-new-tokens", "8"]);
  const r0 = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 8 });
  check(r0.object === "chat.completion" && r0.choices[0].message.content === greedy,
        `temperature 0: '${r0.choices[0]?.message.content}' == caption's '${greedy}'`);
  check(r0.choices[0].finish_reason === "length" && r0.usage.completion_tokens === 8 &&
        r0.usage.prompt_tokens > 8 && r0.usage.total_tokens === r0.usage.prompt_tokens + 8,
        "finish_reason and usage (query tokens included): " + JSON.stringify(r0.usage));
  const s0 = await collect(await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 8,
                                                                  stream: true, stream_options: { include_usage: true } }));
  check(s0.text === greedy && s0.finish === "length" && s0.roles === 1, `streamed greedy '${s0.text}' == '${greedy}'`);
  check(s0.emptyChoices === 1 && s0.usage && s0.usage.prompt_tokens === r0.usage.prompt_tokens &&
        s0.usage.completion_tokens === 8, "the usage chunk: " + JSON.stringify(s0.usage));

  // temperature > 0: sampling, reproducible with a seed
  const sampled = caption(["--beams", "1", "--sample", "--temperature", "1.5", "--top-k", "0", "--seed", "7",
                           "--max-new-tokens", "8"]);
  const r1 = await client.chat.completions.create({ model: id, messages, temperature: 1.5, seed: 7, max_tokens: 8 });
  check(r1.choices[0].message.content === sampled, `temperature 1.5: '${r1.choices[0].message.content}' == caption's '${sampled}'`);
  const s1 = await collect(await client.chat.completions.create({ model: id, messages, temperature: 1.5, seed: 7,
                                                                  max_tokens: 8, stream: true }));
  check(s1.text === sampled && s1.usage === null, `streamed sample '${s1.text}' (no usage chunk unasked)`);

  // stop: the answer ends where the stop string starts
  const word = greedy.split(" ")[1] || "";
  const stop = word.slice(0, 3);
  const cut = greedy.indexOf(stop);
  check(stop.length === 3 && cut > 0, "a stop string from the greedy answer: " + stop);
  const r2 = await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 8,
                                                    stop: ["@@", stop] });
  check(r2.choices[0].message.content === greedy.slice(0, cut) && r2.choices[0].finish_reason === "stop",
        `stop '${stop}': '${r2.choices[0].message.content}' (${r2.choices[0].finish_reason})`);
  const s2 = await collect(await client.chat.completions.create({ model: id, messages, temperature: 0, max_tokens: 8,
                                                                  stop, stream: true }));
  check(s2.text === greedy.slice(0, cut) && s2.finish === "stop", `streamed stop: '${s2.text}' (${s2.finish})`);

  // errors as the client raises them
  try {
    await client.chat.completions.create({ model: id, messages, n: 2 });
    check(false, "n = 2 throws");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "n" && e.code === "unsupported_parameter" &&
          /n = 1/.test(e.message), "n = 2: " + e);
  }
  try {
    await client.chat.completions.create({ model: id, messages: [{ role: "user", content: question }] });
    check(false, "no video throws");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && /no video/.test(e.message), "no video: " + e);
  }
  try {
    await new OpenAI({ baseURL: base + "v1", apiKey: "wrong", maxRetries: 0 }).models.list();
    check(false, "a wrong key throws");
  } catch (e) {
    check(e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === "invalid_api_key", "wrong key: " + e);
  }
} catch (e) {
  check(false, "unexpected: " + (e.stack || e));
} finally {
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
