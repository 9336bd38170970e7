#!/usr/bin/env bash
# vblip --version: the version, then what the CPU runs (instruction sets, and whether bf16
# products outrun f32 ones, which decides the vision encoder's default compute type), so a
# bug report carries it. VBLIP_BF16_PRODUCTS overrides the measurement; "fast" only holds
# where the CPU has bf16 products at all (AVX512-BF16 or usable AMX).
set -u
BIN=$1
pass=0
fail=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $3: got '$1', want '$2'"; fi; }

out=$("$BIN" --version)
check "$?" 0 "exit status"
check "$(printf '%s\n' "$out" | sed -n 1p | grep -cE '^vblip [0-9]+\.[0-9]+\.[0-9]+$')" 1 "first line: $out"
cpu=$(printf '%s\n' "$out" | sed -n 2p)
check "$(printf '%s\n' "$cpu" | grep -cE '^cpu: avx2=[01] .* amx=(on|refused|absent) .*; bf16 products (fast|slow) \(.+\)$')" 1 \
  "second line: $cpu"
has_bf16=0
if printf '%s\n' "$cpu" | grep -qE 'avx512_bf16=1|amx=on'; then has_bf16=1; fi
slow=$(VBLIP_BF16_PRODUCTS=slow "$BIN" --version | sed -n 2p)
check "$(printf '%s\n' "$slow" | grep -c 'bf16 products slow (VBLIP_BF16_PRODUCTS=slow)')" 1 "slow: $slow"
fast=$(VBLIP_BF16_PRODUCTS=fast "$BIN" --version | sed -n 2p)
want=slow
[ $has_bf16 = 1 ] && want=fast
check "$(printf '%s\n' "$fast" | grep -c "bf16 products $want (VBLIP_BF16_PRODUCTS=fast)")" 1 "fast: $fast"
# a measured decision states its ratio where only VDPBF16PS (no AMX) decides
if printf '%s\n' "$cpu" | grep -q 'avx512_bf16=1.*amx=\(absent\|refused\)'; then
  check "$(printf '%s\n' "$cpu" | grep -cE 'VDPBF16PS [0-9.]+x the f32 FMA flops, measured')" 1 "measured: $cpu"
fi
bad=$(VBLIP_BF16_PRODUCTS=sometimes "$BIN" --version 2>&1 >/dev/null)
check "$(printf '%s\n' "$bad" | grep -c 'VBLIP_BF16_PRODUCTS=sometimes: expected fast or slow')" 1 "bad value: $bad"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
