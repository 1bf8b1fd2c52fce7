#!/usr/bin/env bash
# Side-by-side speed on this machine: Ember against llama.cpp and candle.
# Timing is not a test: CI does not run this. Usage:
#   ci/bench.sh [OUT_DIR]          (default: bench-results/)
# Env: REPS (5), THREADS (1,2), PEERS (../shared/tools/peers), VARIANTS.
# It builds the peers once (llama.cpp from the llama-cpp-python source package
# through pip, candle from crates.io) into ~/.cache/ember-peers.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-results}
REPS=${REPS:-5}
THREADS=${THREADS:-1,2}
PEERS=${PEERS:-$(cd .. && pwd)/shared/tools/peers}
VARIANTS=${VARIANTS:-Q4_0 Q4_1 Q8_0 F16 Q4_K_M}
mkdir -p "$OUT"

cargo build --release -p ember-cli >/dev/null
EMBER=$PWD/target/release/ember
$EMBER pull >/dev/null
"$PEERS" build >/dev/null
"$PEERS" models >/dev/null
MODELS=$("$PEERS" path | sed 's/.*models=\([^ ]*\).*/\1/')
model_path() {
  case $1 in
    Q4_K_M) echo "$(cd .. && pwd)/shared/models/SmolLM2-135M-Instruct.Q4_K_M.gguf" ;;
    *) echo "$MODELS/SmolLM2-135M-Instruct.$1.gguf" ;;
  esac
}

echo "kernel tier: $(EMBER_KERNELS= $EMBER run -p hi -n 1 --temp 0 2>&1 >/dev/null | sed -n 's/.*kernels \([a-z0-9]*\).*/\1/p')" | tee "$OUT/tier.txt"

for v in $VARIANTS; do
  m=$(model_path "$v")
  echo "== $v ($m)"
  # Interleave the runtimes so that machine noise hits them alike.
  $EMBER bench -m "$m" -p 128 -n 128 -t "$THREADS" -r "$REPS" -o json --roofline > "$OUT/ember-$v.json"
  "$PEERS" llama bench -m "$m" -p 128 -n 128 -t "$THREADS" -r "$REPS" -o json > "$OUT/llama-$v.json" 2>/dev/null
  : > "$OUT/candle-$v.txt"
  for t in ${THREADS//,/ }; do
    for r in $(seq "$REPS"); do
      echo "threads=$t rep=$r" >> "$OUT/candle-$v.txt"
      RAYON_NUM_THREADS=$t "$PEERS" candle bench "$m" --prefill 128 --decode 128 >> "$OUT/candle-$v.txt" 2>&1 || true
    done
  done
done

# Time to first token: process start to the first generated token of a 16-token prompt.
PROMPT="The quick brown fox jumps over the lazy dog and then runs into the forest to"
DEF=$(model_path Q4_1)
ttft() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
: > "$OUT/ttft.txt"
for r in $(seq 10); do
  echo "ember $(ttft $EMBER run -m "$DEF" -p "$PROMPT" -n 1 --temp 0)" >> "$OUT/ttft.txt"
  echo "llama-simple $(ttft "$PEERS" llama simple -m "$DEF" -n 1 "$PROMPT")" >> "$OUT/ttft.txt"
done

# Peak RSS generating 128 tokens (context 2048 for Ember: its KV cache is planned for that).
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
{
  echo "ember $(rss $EMBER run -m "$DEF" -p "$PROMPT" -n 128 --temp 0 -c 2048)"
  echo "llama-simple $(rss "$PEERS" llama simple -m "$DEF" -n 128 "$PROMPT")"
  echo "candle $(rss "$PEERS" candle bench "$DEF" --prefill 16 --decode 128)"
} > "$OUT/rss-kb.txt"

# Long context: decode at depth 1024 against depth 16.
$EMBER bench -m "$DEF" -p 0 -n 64 -t "$THREADS" -r 3 -d 16 -o json > "$OUT/ember-depth16.json"
$EMBER bench -m "$DEF" -p 0 -n 64 -t "$THREADS" -r 3 -d 1024 -o json > "$OUT/ember-depth1024.json"

python3 tools/bench_report.py "$OUT" | tee "$OUT/report.md"
