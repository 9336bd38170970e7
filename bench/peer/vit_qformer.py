#!/usr/bin/env python3
"""PyTorch peer for vblip-bench: BLIP-2's EVA ViT-g and Q-Former forward passes
in PyTorch bfloat16 (or float32, --dtype f32) with random weights, at the
shapes vblip-bench passes in.

It follows Blip2VisionModel / Blip2QFormerModel (transformers 4.33) operation
for operation: per layer LayerNorm, fused qkv with its bias, softmax
attention, output projection, residual, LayerNorm, fc1, exact GELU, fc2,
residual; the Q-Former's BERT layers (post-LayerNorm) with cross-attention to
the frames' tokens every cross_attention_frequency layers. Prints one JSON
line: the second run's vision and Q-Former times in ms (the first is a
warm-up), the torch version, thread count and dtype. vblip-bench runs the bf16
peer; --dtype f32 is the context for CPUs whose bf16 products are slower
than their f32 ones (docs/performance.md).

Needs only torch (Debian 12: apt-get install python3-torch, PyTorch 1.13).
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

DT = torch.bfloat16  # --dtype


def rand(*shape):
    return (torch.randn(*shape) * 0.02).to(DT)


def vit_layers(d, ff, n):
    return [dict(ln1=(torch.ones(d, dtype=DT), rand(d)), qkv=rand(3 * d, d), qkv_b=rand(3 * d),
                 proj=rand(d, d), proj_b=rand(d), ln2=(torch.ones(d, dtype=DT), rand(d)),
                 fc1=rand(ff, d), fc1_b=rand(ff), fc2=rand(d, ff), fc2_b=rand(d)) for _ in range(n)]


def attention(q, k, v, heads):
    b, nq, d = q.shape
    hd = d // heads
    q = q.view(b, nq, heads, hd).transpose(1, 2)
    k = k.view(b, k.shape[1], heads, hd).transpose(1, 2)
    v = v.view(b, v.shape[1], heads, hd).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    return torch.matmul(s.softmax(dim=-1), v).transpose(1, 2).reshape(b, nq, d)


def vit_forward(x, layers, heads, eps):
    d = x.shape[-1]
    for L in layers:
        h = F.layer_norm(x, (d,), L["ln1"][0], L["ln1"][1], eps)
        q, k, v = F.linear(h, L["qkv"], L["qkv_b"]).chunk(3, dim=-1)
        x = x + F.linear(attention(q, k, v, heads), L["proj"], L["proj_b"])
        h = F.layer_norm(x, (d,), L["ln2"][0], L["ln2"][1], eps)
        x = x + F.linear(F.gelu(F.linear(h, L["fc1"], L["fc1_b"])), L["fc2"], L["fc2_b"])
    return x


def qf_attention_params(h, kv_in):
    return dict(q=rand(h, h), qb=rand(h), k=rand(h, kv_in), kb=rand(h), v=rand(h, kv_in), vb=rand(h),
                o=rand(h, h), ob=rand(h), ln=(torch.ones(h, dtype=DT), rand(h)))


def qf_block(x, src, a, heads, eps):
    h = x.shape[-1]
    ctx = attention(F.linear(x, a["q"], a["qb"]), F.linear(src, a["k"], a["kb"]), F.linear(src, a["v"], a["vb"]),
                    heads)
    return F.layer_norm(x + F.linear(ctx, a["o"], a["ob"]), (h,), a["ln"][0], a["ln"][1], eps)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--vision", default="1408,6144,16,39,14,224", help="width,ffn,heads,layers,patch,image")
    p.add_argument("--qformer", default="768,3072,12,12,2,32", help="width,ffn,heads,layers,cross_freq,queries")
    p.add_argument("--dtype", choices=("bf16", "f32"), default="bf16")
    a = p.parse_args()
    global DT
    DT = torch.float32 if a.dtype == "f32" else torch.bfloat16
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    d, ff, heads, layers, patch, image = map(int, a.vision.split(","))
    qh, qff, qheads, qlayers, cross, nq = map(int, a.qformer.split(","))
    torch.manual_seed(0)
    grid = image // patch
    seq = grid * grid + 1
    vit = vit_layers(d, ff, layers)
    patch_w, patch_b = rand(d, 3, patch, patch), rand(d)
    cls, pos = rand(1, 1, d), rand(1, seq, d)
    post = (torch.ones(d, dtype=DT), rand(d))
    qf = []
    for i in range(qlayers):
        qf.append(dict(self=qf_attention_params(qh, qh), cross=qf_attention_params(qh, d) if i % cross == 0 else None,
                       i=rand(qff, qh), ib=rand(qff), o=rand(qh, qff), ob=rand(qh),
                       ln=(torch.ones(qh, dtype=DT), rand(qh))))
    queries = rand(1, nq, qh)
    qln = (torch.ones(qh, dtype=DT), rand(qh))
    pixels = torch.randn(a.frames, 3, image, image).to(DT)
    times = []
    with torch.no_grad():
        for _ in range(2):
            t0 = time.perf_counter()
            x = F.conv2d(pixels, patch_w, patch_b, stride=patch).flatten(2).transpose(1, 2)
            x = torch.cat([cls.expand(a.frames, 1, d), x], dim=1) + pos
            x = vit_forward(x, vit, heads, 1e-6)
            x = F.layer_norm(x, (d,), post[0], post[1], 1e-6)
            t1 = time.perf_counter()
            src = x.reshape(1, a.frames * seq, d)  # VideoBLIP: every frame's tokens, one sequence
            q = F.layer_norm(queries, (qh,), qln[0], qln[1], 1e-12)
            for L in qf:
                q = qf_block(q, q, L["self"], qheads, 1e-12)
                if L["cross"] is not None:
                    q = qf_block(q, src, L["cross"], qheads, 1e-12)
                q = F.layer_norm(q + F.linear(F.gelu(F.linear(q, L["i"], L["ib"])), L["o"], L["ob"]), (qh,),
                                 L["ln"][0], L["ln"][1], 1e-12)
            t2 = time.perf_counter()
            times.append(((t1 - t0) * 1e3, (t2 - t1) * 1e3))
    print(json.dumps({"vision_ms": times[-1][0], "qformer_ms": times[-1][1], "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "dtype": a.dtype}))


if __name__ == "__main__":
    main()
