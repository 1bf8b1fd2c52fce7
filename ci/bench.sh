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
ROOT=$("$PEERS" path | sed 's/^root=\([^ ]*\).*/\1/')

# llama.cpp's tools. The peers build uses GGML_NATIVE, which on a CPU that
# reports AMX but may not run it (some VMs) dies with SIGILL in the AMX
# matmul. Then build the same source once more with the CPU's ISA named
# explicitly and AMX off, into $ROOT/llama.cpp-portable (LLAMA_BIN overrides).
LLAMA_BIN=${LLAMA_BIN:-}
if [[ -z $LLAMA_BIN ]]; then
  if "$PEERS" llama bench -m "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" -p 8 -n 0 -r 1 -t 1 >/dev/null 2>&1; then
    LLAMA_BIN=$("$PEERS" path | sed 's/.*llama=\([^ ]*\).*/\1/')
  else
    LLAMA_BIN=$ROOT/llama.cpp-portable/build/bin
    if [[ ! -x $LLAMA_BIN/llama-bench ]]; then
      echo "llama.cpp's native build cannot run here; building it without AMX (a few minutes)" >&2
      src=$(ls -d "$ROOT"/src/llama_cpp_python-*/vendor/llama.cpp | head -1)
      flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
             -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
      has() { grep -qw "$1" /proc/cpuinfo; }
      has avx512f && flags+=(-DGGML_AVX512=ON)
      has avx512_vnni && flags+=(-DGGML_AVX512_VNNI=ON)
      has avx512vbmi && flags+=(-DGGML_AVX512_VBMI=ON)
      has avx512_bf16 && flags+=(-DGGML_AVX512_BF16=ON)
      cmake -S "$src" -B "$ROOT/llama.cpp-portable/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF "${flags[@]}" >/dev/null
      cmake --build "$ROOT/llama.cpp-portable/build" -j"$(nproc)" \
            --target llama-bench llama-simple llama-perplexity >/dev/null
    fi
  fi
fi
echo "llama.cpp tools: $LLAMA_BIN" | tee "$OUT/llama-bin.txt"
llama() { local tool=$1; shift; LD_LIBRARY_PATH=$LLAMA_BIN "$LLAMA_BIN/llama-$tool" "$@"; }
model_path() {
  case $1 in
    Q4_K_M) echo "$(cd .. && pwd)/shared/models/SmolLM2-135M-Instruct.Q4_K_M.gguf" ;;
    *) echo "$MODELS/SmolLM2-135M-Instruct.$1.gguf" ;;
  esac
}

echo "kernel tier: $(EMBER_KERNELS= $EMBER run -p hi -n 1 --temp 0 2>&1 >/dev/null | sed -n 's/.*kernels \([a-z0-9]*\).*/\1/p')" | tee "$OUT/tier.txt"

# Start every model file from disk, as `ember pull` leaves the model it
# fetches: dropped from the page cache, so that the first load reads it back
# under Ember's huge-page advice, into 2 MiB folios (Linux; see "Weights in
# huge pages" in docs/performance.md). Both runtimes then map the same cache.
for v in $VARIANTS; do
  ci/drop-cached.sh "$(model_path "$v")"
done

for v in $VARIANTS; do
  m=$(model_path "$v")
  echo "== $v ($m)"
  # The runtimes take turns, one repetition each (each tool warms up
  # before its measured run), so that a change in the machine's load
  # between repetitions hits all three alike; the repetitions are merged.
  : > "$OUT/candle-$v.txt"
  for r in $(seq "$REPS"); do
    $EMBER bench -m "$m" -p 128 -n 128 -t "$THREADS" -r 1 -o json --roofline > "$OUT/ember-$v.rep$r.json"
    llama bench -m "$m" -p 128 -n 128 -t "$THREADS" -r 1 -o json > "$OUT/llama-$v.rep$r.json" 2>/dev/null
    for t in ${THREADS//,/ }; do
      echo "threads=$t rep=$r" >> "$OUT/candle-$v.txt"
      RAYON_NUM_THREADS=$t "$PEERS" candle bench "$m" --prefill 128 --decode 128 >> "$OUT/candle-$v.txt" 2>&1 || true
    done
  done
  python3 tools/bench_report.py --merge "$OUT/ember-$v.json" "$OUT"/ember-"$v".rep*.json
  python3 tools/bench_report.py --merge "$OUT/llama-$v.json" "$OUT"/llama-"$v".rep*.json
done

# Time to first token: process start to the first generated token of a 16-token prompt.
PROMPT="The quick brown fox jumps over the lazy dog and then runs into the forest to"
DEF=$(model_path Q4_1)
ttft() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
: > "$OUT/ttft.txt"
for r in $(seq 10); do
  echo "ember $(ttft $EMBER run -m "$DEF" -p "$PROMPT" -n 1 --temp 0)" >> "$OUT/ttft.txt"
  echo "llama-simple $(ttft llama simple -m "$DEF" -n 1 "$PROMPT")" >> "$OUT/ttft.txt"
done

# Peak RSS generating 128 tokens (context 2048 for Ember: its KV cache is planned for that).
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
{
  echo "ember $(rss $EMBER run -m "$DEF" -p "$PROMPT" -n 128 --temp 0 -c 2048)"
  echo "llama-simple $(rss env LD_LIBRARY_PATH="$LLAMA_BIN" "$LLAMA_BIN/llama-simple" -m "$DEF" -n 128 "$PROMPT")"
  echo "candle $(rss "$PEERS" candle bench "$DEF" --prefill 16 --decode 128)"
} > "$OUT/rss-kb.txt"

# Long context: decode at depth 1024 against depth 16, with an F16 KV cache
# (the default) and a Q8_0 one (llama.cpp needs flash attention for a
# quantized V cache).
for kv in f16 q8_0; do
  fa=""; [ "$kv" = q8_0 ] && fa="-fa 1"
  $EMBER bench -m "$DEF" -p 0 -n 64 -t "$THREADS" -r 3 -d 16,1024 -ctk $kv -o json > "$OUT/ember-depth-$kv.json"
  # shellcheck disable=SC2086
  llama bench -m "$DEF" -p 0 -n 64 -t "$THREADS" -r 3 -d 16,1024 -ctk $kv -ctv $kv $fa -o json > "$OUT/llama-depth-$kv.json" 2>/dev/null || true
done

python3 tools/bench_report.py "$OUT" | tee "$OUT/report.md"
