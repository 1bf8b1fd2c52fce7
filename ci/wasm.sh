#!/usr/bin/env bash
# The WebAssembly build: `ember` for wasm32-wasip1 (with SIMD128, from
# .cargo/config.toml), run under wasmtime (the `wasmtime` package from pip,
# examples/wasm/ember_wasi.py).
#   - the kernels' conformance suite for the simd128 tier, under wasmtime;
#   - `ember inspect` of the default model;
#   - `ember eval` against x86-64's: the same logits on the scalar tier, the
#     same confident argmax on the simd128 tier;
#   - a missing model: a clear error and exit status 2, not a trap.
# Needs the default model (ci/test.sh fetches it: `ember pull`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

rustup target add wasm32-wasip1 >/dev/null
python3 -m pip install -q --disable-pip-version-check wasmtime 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --user wasmtime
cargo build --release -p ember-cli
cargo build --release --target wasm32-wasip1 -p ember-cli
WASM=target/wasm32-wasip1/release/ember.wasm
echo "ember.wasm: $(( $(stat -c %s "$WASM") / 1024 )) KiB"
wasi() { python3 examples/wasm/ember_wasi.py "$WASM" "$@"; }

# The conformance suite's simd128 tests (libtest runs them one at a time here).
cargo test --release --target wasm32-wasip1 -p ember-quant --test conformance --no-run 2>/tmp/ember-wasm-build.txt \
  || { cat /tmp/ember-wasm-build.txt; exit 1; }
CONF=$(grep -o 'target/wasm32-wasip1/release/deps/conformance-[0-9a-f]*\.wasm' /tmp/ember-wasm-build.txt | tail -1)
[[ -f $CONF ]] || { echo "no conformance test module found"; cat /tmp/ember-wasm-build.txt; exit 1; }
python3 examples/wasm/ember_wasi.py "$CONF" simd128 | tail -3

MODEL=$(./target/release/ember pull)
[[ -f $MODEL ]] || { echo "no default model at '$MODEL'"; exit 1; }

# The whole output first, then its first line: a reader that quits early
# (`| head -1`) makes the module's next write fail, and under wasmtime that
# surfaces as EIO (os error 29), not the broken pipe that ember ends on
# quietly, so the pipeline's status would race.
info=$(wasi inspect "$MODEL") || { echo "ember.wasm inspect failed"; exit 1; }
[[ $(head -1 <<<"$info") == *"GGUF v3"* ]] || { echo "ember.wasm inspect: unexpected output"; exit 1; }

# `ember eval` on both tiers against x86-64's, as ci/cross.sh checks
# aarch64: the argmax must agree wherever x86-64's top-2 margin is at least
# 0.5. Exact logits cannot be asked for even on the scalar tier: RoPE's
# cos/sin come from the platform's libm (glibc on x86-64 Linux, Rust's
# port of musl's on WASI), and a last-bit difference there can move an
# activation across a Q8 rounding step.
PROMPT="The capital of France is"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/ember run -m "$MODEL" -p "$PROMPT" -n 48 --temp 0 --seed 1 -c 128 --ignore-eos >"$work/seq.txt" 2>/dev/null
./target/release/ember eval -m "$MODEL" --text "$work/seq.txt" --json >"$work/x86.json"
ids=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["ids"])))' "$work/x86.json")
EMBER_KERNELS=scalar ./target/release/ember eval -m "$MODEL" --ids "$ids" --json >"$work/x86-scalar.json"
EMBER_KERNELS=scalar wasi eval -m "$MODEL" --ids "$ids" --json >"$work/wasm-scalar.json"
wasi eval -m "$MODEL" --ids "$ids" --json >"$work/wasm.json"
python3 - "$work/x86.json" "$work/wasm.json" "$work/x86-scalar.json" "$work/wasm-scalar.json" <<'PY'
import json, sys
a, b, xs, ws = (json.load(open(f))["positions"] for f in sys.argv[1:5])
assert len(a) == len(b) == len(xs) == len(ws), "position counts differ"
ok = True
for name, x, w in (("scalar", xs, ws), ("simd128", a, b)):
    same = next((i for i, (p, q) in enumerate(zip(x, w)) if p != q), len(x))
    checked = bad = 0
    for p, q in zip(x, w):
        if p["margin"] >= 0.5:
            checked += 1
            if p["argmax"] != q["argmax"]:
                bad += 1
                print(f"  {name}: pos {p['pos']}: x86 argmax {p['argmax']} (margin {p['margin']:.3f}), wasm {q['argmax']}")
    print(f"{name} tier: {checked - bad}/{checked} confident positions agree with x86-64 "
          f"({len(x) - checked} below margin 0.5; the first {same} of {len(x)} have the same logits)")
    ok = ok and bad == 0 and checked > 0
sys.exit(0 if ok else 1)
PY
wasi run -m "$MODEL" -p "$PROMPT" -n 16 --temp 0 -c 64 >"$work/text.txt" 2>"$work/err.txt"
echo "text: $(cat "$work/text.txt")"
tail -1 "$work/err.txt"
grep -q "kernels simd128" "$work/err.txt" || { echo "ember.wasm did not run the simd128 tier"; exit 1; }

set +e
err=$(wasi run -m /nonexistent/model.gguf -p hi 2>&1 >/dev/null); rc=$?
set -e
if [[ $rc -ne 2 || $err != *"No such file"* ]]; then
  echo "a missing model under wasm: exit $rc, '$err' (want 2 and a clear error)"; exit 1
fi
echo "wasm32-wasip1: simd128 conformance, inspect, eval agrees with x86-64, clear error for a missing model"
