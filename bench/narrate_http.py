# Narration over HTTP (POST /api/narrate) against `vblip narrate`, alternating, in one run:
# the CLI's process wall time and its own narration time (the summary line), the request's
# wall time, the time to the first window and first cue event, the server's narration time
# (done.wall_ms), and whether the cue texts are the same.
# usage: vblip serve -m MODEL --port PORT -t 2 &
#        python3 bench/narrate_http.py VBLIP MODEL VIDEO PORT RUNS
import http.client, json, subprocess, sys, time, re
BIN, MODEL, VIDEO, PORT, RUNS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
Q = "window=8&stride=4&frames=8&num_beams=1&max_new_tokens=16"
CLI = [BIN, "narrate", "-m", MODEL, "-t", "2", "--window", "8", "--stride", "4", "--frames", "8",
       "--beams", "1", "-n", "16", "-f", "jsonl", VIDEO]
data = open(VIDEO, "rb").read()
rows = []
for r in range(RUNS):
    t0 = time.monotonic()
    p = subprocess.run(CLI, capture_output=True, text=True)
    cli_wall = time.monotonic() - t0
    m = re.search(r"; ([0-9.]+) s: real-time factor", p.stderr)
    cli_narr = float(m.group(1)) if m else float("nan")
    cli_cues = p.stdout.count("\n")
    c = http.client.HTTPConnection("127.0.0.1", PORT)
    t0 = time.monotonic()
    c.request("POST", "/api/narrate?" + Q, body=data, headers={"Content-Type": "video/mp4"})
    resp = c.getresponse()
    first_win = first_cue = None
    ev = None
    done = None
    cues = []
    while True:
        line = resp.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            if ev == "window" and first_win is None: first_win = time.monotonic() - t0
            if ev == "cue":
                if first_cue is None: first_cue = time.monotonic() - t0
                cues.append(json.loads(line[6:]))
            if ev == "done": done = json.loads(line[6:])
    http_wall = time.monotonic() - t0
    same = [json.loads(l)["text"] for l in p.stdout.splitlines()] == [c["text"] for c in cues]
    rows.append((cli_wall, cli_narr, http_wall, first_win, first_cue, done["wall_ms"] / 1000, same, cli_cues, len(cues)))
    print("run %d: cli wall %.2f s (narration %.2f s), http wall %.2f s, first window %.2f s, first cue %.2f s, server narration %.2f s, same cues %s (%d/%d)" % ((r,) + rows[-1]))
