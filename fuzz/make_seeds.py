#!/usr/bin/env python3
"""Writes small seed inputs for the fuzz targets into OUT/<target>/.

Seeds come from the test fixtures (their data.pkl pickles, the first tensors of their
safetensors files, a fixture shard) plus small torch.save-shaped archives built here
with stand-in modules (torch itself is not needed, nothing is imported from it), and
tiny videos and images made with the ffmpeg program where it is installed."""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import zipfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
fixtures = os.path.join(root, "tests", "fixtures", "models")
out = sys.argv[1]
for sub in ("safetensors", "torch_bin", "pickle", "gguf", "http", "model_files", "narrate_args",
            "chat_request", "video", "tokenize"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)


def write(sub, name, data):
    with open(os.path.join(out, sub, name), "wb") as f:
        f.write(data)


# --- fixture-derived seeds ---
for model in sorted(os.listdir(fixtures)):
    d = os.path.join(fixtures, model)
    for fn in sorted(os.listdir(d)):
        path = os.path.join(d, fn)
        if fn.endswith(".bin"):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.endswith("/data.pkl"):
                        write("pickle", f"{model}-{fn}.pkl", z.read(info))
        elif fn.endswith(".safetensors"):
            # Keep the three smallest tensors: a valid, small file.
            with open(path, "rb") as f:
                raw = f.read()
            (hlen,) = struct.unpack("<Q", raw[:8])
            header = json.loads(raw[8 : 8 + hlen])
            header.pop("__metadata__", None)
            keep, blob = {}, b""
            by_size = sorted(header, key=lambda k: header[k]["data_offsets"][1] - header[k]["data_offsets"][0])
            for name in by_size[:3]:
                e = header[name]
                b, en = e["data_offsets"]
                chunk = raw[8 + hlen + b : 8 + hlen + en]
                keep[name] = {"dtype": e["dtype"], "shape": e["shape"],
                              "data_offsets": [len(blob), len(blob) + len(chunk)]}
                blob += chunk
            h = json.dumps(keep).encode()
            write("safetensors", f"{model}-{fn}", struct.pack("<Q", len(h)) + h + blob)
# (Whole fixture checkpoints are hundreds of KB: too slow to mutate; their pickles
# seed the pickle target and the archives below cover the zip layer.)

# --- synthetic torch.save-shaped archives ---
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
torch._utils = utils
SIZES = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
         "BoolStorage": 1, "ByteStorage": 1}
for cls in SIZES:
    setattr(torch, cls, type(cls, (), {"__module__": "torch"}))


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


def _rebuild_parameter(*args):
    raise RuntimeError("never called")


for fn in (_rebuild_tensor_v2, _rebuild_parameter):
    fn.__module__ = "torch._utils"
    setattr(utils, fn.__name__, fn)


class Storage:
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Tensor:
    def __init__(self, storage, offset, size, stride, param=False):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.param = param

    def __reduce__(self):
        inner = (_rebuild_tensor_v2, self.args)
        if self.param:
            class Inner:
                def __reduce__(s):
                    return inner
            return (_rebuild_parameter, (Inner(), True, collections.OrderedDict()))
        return inner


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.cls), obj.key, "cpu", obj.numel)
        return None


def archive(name, tensors, storages, protocol=2, metadata=False, prefix="archive"):
    sd = collections.OrderedDict(tensors)
    if metadata:
        sd._metadata = collections.OrderedDict([("", {"version": 1})])
    buf = io.BytesIO()
    Pickler(buf, protocol=protocol).dump(sd)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", buf.getvalue())
        zf.writestr(f"{prefix}/byteorder", "little")
        for s in storages:
            zf.writestr(f"{prefix}/data/{s.key}", bytes(range(256)) * ((s.numel * SIZES[s.cls]) // 256 + 1))
        zf.writestr(f"{prefix}/version", "3\n")
    write("torch_bin", name, z.getvalue())
    write("pickle", name + ".pkl", buf.getvalue())


s0, s1, s2 = Storage("FloatStorage", "0", 12), Storage("HalfStorage", "1", 8), Storage("LongStorage", "2", 3)
archive("simple.bin", [("w", Tensor(s0, 0, (3, 4), (4, 1))), ("b", Tensor(s1, 0, (8,), (1,)))], [s0, s1])
archive("views.bin", [("t", Tensor(s0, 0, (4, 3), (1, 4))), ("tied", Tensor(s0, 0, (3, 4), (4, 1))),
                      ("tail", Tensor(s0, 4, (2, 4), (4, 1))), ("scalar", Tensor(s2, 2, (), ()))],
        [s0, s2], metadata=True)
archive("proto4.bin", [("p", Tensor(s1, 0, (2, 4), (4, 1), param=True)), ("n", Tensor(s2, 0, (3,), (1,)))],
        [s1, s2], protocol=4, metadata=True, prefix="model")
b0 = Storage("BoolStorage", "0", 5)
bf = Storage("BFloat16Storage", "1", 6)
archive("dtypes.bin", [("mask", Tensor(b0, 0, (5,), (1,))), ("bf", Tensor(bf, 0, (2, 3), (1, 2)))], [b0, bf])


# --- GGUF seeds: small files in the layout vblip convert writes ---
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_file(kvs, tensors, align=32):
    """kvs: (key, type, payload bytes); tensors: (name, dims innermost-first, ggml type, data)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, t, payload in kvs:
        out += gguf_str(key) + struct.pack("<I", t) + payload
    offset, blobs = 0, b""
    for name, dims, t, data in tensors:
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t, offset)
        pad = (-len(data)) % align
        blobs += data + b"\0" * pad
        offset += len(data) + pad
    out += b"\0" * ((-len(out)) % align)
    return out + blobs


kvs = [("general.architecture", 8, gguf_str("videoblip")),
       ("general.alignment", 4, struct.pack("<I", 32)),
       ("vblip.file.config.json", 8, gguf_str('{"model_type": "blip-2"}')),
       ("vblip.file.spiece.model", 9, struct.pack("<IQ", 0, 4) + b"\x01\x02\x03\x04"),
       ("x.words", 9, struct.pack("<IQ", 8, 2) + gguf_str("ab") + gguf_str("c")),
       ("x.flag", 7, b"\x01")]
q8 = struct.pack("<H", 0x3c00) + bytes(range(32))
tensors = [("a.weight", [4, 2], 0, struct.pack("<8f", *range(8))),
           ("b.weight", [32, 1], 8, q8),
           ("c.bias", [4], 30, b"\x80\x3f" * 4),
           ("d.weight", [2, 2], 1, b"\x00\x3c" * 4)]
write("gguf", "small.gguf", gguf_file(kvs, tensors))
write("gguf", "empty.gguf", gguf_file([], []))
write("gguf", "align64.gguf", gguf_file([("general.alignment", 4, struct.pack("<I", 64))], tensors[:1], 64))


# --- HTTP seeds: request heads (good and refused) with JSON bodies ---
def http(name, head, body=b""):
    write("http", name, head.encode() + body)


chat = json.dumps({"video_id": "0123456789abcdef0123456789abcdef", "stream": False,
                   "messages": [{"role": "user", "content": "What is the camera wearer doing?"}],
                   "settings": {"num_beams": 1, "max_new_tokens": 8}}).encode()
http("chat", f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {len(chat)}\r\n\r\n", chat)
oa = json.dumps({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "Hi"}, {"type": "video_url", "video_url": {"url": "vblip:0123"}}]}]}).encode()
http("openai", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", oa)
http("garbage", f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {len(chat) + 4}\r\n\r\n", chat + b" xyz")
http("health", "GET /api/health HTTP/1.0\r\n\r\n")
http("version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n")
http("badlen", "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n")
http("escape", "GET /api/x%1b%5b31m HTTP/1.1\r\nHost: x\r\nX-Filename: a\xff.mp4\r\n\r\n")

# --- chat request bodies (POST /api/chat, /api/score, /v1/chat/completions) ---
write("chat_request", "chat", chat)
write("chat_request", "openai", oa)
for i, body in enumerate([
    {"model": "m", "temperature": 0, "top_p": 0.5, "stop": ["\n", "Q:"], "n": 1, "seed": 3,
     "stream": True, "stream_options": {"include_usage": True},
     "messages": [{"role": "system", "content": "be brief"},
                  {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                                {"type": "text", "text": "What?"}]},
                  {"role": "assistant", "content": "A cup."},
                  {"role": "user", "content": [{"type": "video", "video_id": "0123456789abcdef0123456789abcdef"},
                                                {"type": "text", "text": "And now?"}]}]},
    {"video_ids": ["a", "b"], "candidates": ["cuts an onion", " ", "x" * 1100],
     "messages": [{"role": "user", "content": "Question: what is the camera wearer doing? Answer:"}]},
    {"video_id": 3, "settings": {"num_beams": 65, "temperature": -1, "top_p": 2, "seed": 1e300},
     "messages": [{"role": "assistant", "content": None}, {"role": "tool", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA=*="}}]}],
     "max_completion_tokens": 5000, "logprobs": True, "n": 2},
]):
    write("chat_request", f"body{i}", json.dumps(body).encode())

# --- prompt text for the fixture tokenizers: a selector byte (tokenizer, specials, limit) ---
for i, text in enumerate(["Question: What is the camera wearer doing? Answer:",
                          " hello  world\n\t! </s> <pad> <unk>", "\u00e9t\u00e9 \u2581x \U0001F600 .,;'s",
                          "Question: what? Answer: a. Question: and then? Answer:", "x" * 300]):
    for sel in (0, 1, 2, 4 | 2, 8 | 1):
        write("tokenize", f"t{i}-{sel}", bytes([sel]) + text.encode())

# --- POST /api/narrate query strings (decoded key=value pairs joined by "&") ---
for i, q in enumerate([
    "window=4&stride=2&frames=8&format=vtt&merge=true",
    "prompt=Question: what? Answer:&num_beams=4&max_new_tokens=20&format=jsonl",
    "max_lag=2.5&merge=0&temperature=0.7&url=rtsp://cam/1",
    "frames=65&window=0",
    "beams=1e3&format=mp4&unknown=\x1b[31m",
]):
    write("narrate_args", f"q{i}", q.encode())

# --- model-file seeds: selector byte, config.json, tokenizer files ("\n@@\n" between) ---
SEP = b"\n@@\n"
opt = os.path.join(fixtures, "videoblip-opt-tiny")
t5 = os.path.join(fixtures, "videoblip-flant5-tiny")
with open(os.path.join(opt, "config.json"), "rb") as f:
    opt_config = f.read()
with open(os.path.join(t5, "config.json"), "rb") as f:
    t5_config = f.read()
# a small byte-level BPE: the fixture's first ids and the merges among them
with open(os.path.join(opt, "vocab.json"), encoding="utf-8") as f:
    vocab = {k: v for k, v in json.load(f).items() if v < 600}
merges = ["#version: 0.2"]
with open(os.path.join(opt, "merges.txt"), encoding="utf-8") as f:
    for line in f.read().splitlines()[1:]:
        a, b = line.split(" ")
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(line)
write("model_files", "bpe", b"\x00" + opt_config + SEP + json.dumps(vocab).encode() + SEP +
      "\n".join(merges).encode())
# a small Unigram tokenizer.json: the fixture's, its vocabulary cut to 400 pieces
with open(os.path.join(t5, "tokenizer.json"), encoding="utf-8") as f:
    tj = json.load(f)
tj["model"]["vocab"] = tj["model"]["vocab"][:400]
tj["normalizer"] = None  # the precompiled character map alone is 240 KB
tj["added_tokens"] = [t for t in tj.get("added_tokens", []) if t["id"] < 400]
write("model_files", "unigram_json", b"\x01" + t5_config + SEP + json.dumps(tj).encode())


# a small spiece.model: the fixture's protobuf with its first 400 pieces (field 1)
def pb_varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def pb_fields(buf):
    i = 0
    while i < len(buf):
        start = i
        key, i = pb_varint(buf, i)
        wire = key & 7
        if wire == 2:
            n, i = pb_varint(buf, i)
            i += n
        elif wire == 0:
            while buf[i] >= 0x80:
                i += 1
            i += 1
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        yield key >> 3, buf[start:i]


with open(os.path.join(t5, "spiece.model"), "rb") as f:
    sp = f.read()
kept, pieces = b"", 0
for field, raw in pb_fields(sp):
    if field == 1:
        pieces += 1
        if pieces > 400:
            continue
    if field == 3:  # normalizer_spec without its 240 KB precompiled character map (field 2)
        body = raw[1:]
        while body[0] >= 0x80:
            body = body[1:]
        body = body[1:]
        inner = b"".join(r for f, r in pb_fields(body) if f != 2)
        n, size = len(inner), b""
        while True:
            size += bytes([(n & 0x7F) | (0x80 if n >= 0x80 else 0)])
            n >>= 7
            if not n:
                break
        raw = raw[:1] + size + inner
    kept += raw
write("model_files", "spiece", b"\x02" + t5_config + SEP + kept)
write("model_files", "garbage", b"\x00{\"text_config\": {\"model_type\": \"t5\"}} x" + SEP + b"{}" + SEP + b"a b")


# --- videos and images (ffmpeg's test pattern, 10 frames of 24x16): a sampling byte, then the
# file; the fixture media are larger than the fuzzer's inputs ---
if shutil.which("ffmpeg"):
    with tempfile.TemporaryDirectory() as tmp:
        for ext, args in [("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
                          ("mov", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
                          ("webm", ["-c:v", "libvpx-vp9"]), ("avi", ["-c:v", "mjpeg"]),
                          ("mkv", ["-c:v", "mpeg4"]), ("gif", []), ("png", ["-frames:v", "1"]),
                          ("jpg", ["-frames:v", "1"])]:
            path = os.path.join(tmp, "seed." + ext)
            size = "17x9" if ext in ("png", "jpg") else "24x16"
            cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                   f"testsrc=size={size}:rate=10:duration=1"] + args + [path]
            if subprocess.run(cmd).returncode != 0 or not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            write("video", ext, b"\x07" + data)          # 8 frames, the whole video
            write("video", "window-" + ext, b"\x0b" + data)  # 4 frames of [0.1 s, 0.5 s)
