#!/usr/bin/env bash
# The WebAssembly build: `ember` for wasm32-wasip1, run under wasmtime
# (the `wasmtime` package from pip, examples/wasm/ember_wasi.py).
#   - `ember inspect` of the default model;
#   - a greedy generation whose text must equal the x86-64 run's;
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

MODEL=$(./target/release/ember pull)
[[ -f $MODEL ]] || { echo "no default model at '$MODEL'"; exit 1; }

wasi inspect "$MODEL" | head -1 | grep -q "GGUF v3" || { echo "ember.wasm inspect failed"; exit 1; }

PROMPT="The history of the Roman empire"
native=$(./target/release/ember run -m "$MODEL" -p "$PROMPT" -n 24 --temp 0 2>/dev/null)
wasm=$(wasi run -m "$MODEL" -p "$PROMPT" -n 24 --temp 0 2>/tmp/ember-wasm-err.txt)
if [[ $native != "$wasm" ]]; then
  echo "ember.wasm generated different text:"; echo "native: $native"; echo "wasm:   $wasm"
  cat /tmp/ember-wasm-err.txt; exit 1
fi
tail -1 /tmp/ember-wasm-err.txt

set +e
err=$(wasi run -m /nonexistent/model.gguf -p hi 2>&1 >/dev/null); rc=$?
set -e
if [[ $rc -ne 2 || $err != *"No such file"* ]]; then
  echo "a missing model under wasm: exit $rc, '$err' (want 2 and a clear error)"; exit 1
fi
echo "wasm32-wasip1: inspect, greedy text equal to x86-64's, clear error for a missing model"
