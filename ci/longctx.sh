#!/usr/bin/env bash
# Long-context decode on this machine: tg64 at depth 1024 against depth 16,
# Ember and llama.cpp, F16 and Q8_0 KV caches, 1 and 2 threads, in ROUNDS
# interleaved rounds (the machine is shared: one pass is too noisy). Prints
# each round's ratios and their medians. Timing is not a test: CI does not
# run this. Uses the llama.cpp build that ci/bench.sh uses. Ember runs
# with --profile, so the summary also gives, per cache type and thread
# count, the median ms a token that each stage adds from depth 16 to 1024.
#   ci/longctx.sh [OUT_DIR]     Env: ROUNDS (4), MODEL (the default model)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-results/longctx}
ROUNDS=${ROUNDS:-4}
mkdir -p "$OUT"
cargo build --release -p ember-cli >/dev/null
EMBER=$PWD/target/release/ember
MODEL=${MODEL:-$($EMBER pull 2>/dev/null | tail -1)}
[[ -f $MODEL ]] || MODEL=$(ls "${EMBER_HOME:-$HOME/.cache/ember}"/models/*.gguf | head -1)
# llama.cpp's tools as ci/bench.sh picks them: its build without AMX where
# it made one (a CPU that reports AMX the VM does not enable), else the
# peers' native build. Without either, Ember runs alone.
if [[ -z ${LLAMA_BIN:-} ]]; then
  LLAMA_BIN=$HOME/.cache/ember-peers/llama.cpp-portable/build/bin
  [[ -x $LLAMA_BIN/llama-bench ]] || LLAMA_BIN=$HOME/.cache/ember-peers/llama.cpp/bin
fi
[[ -x $LLAMA_BIN/llama-bench ]] || echo "llama.cpp's llama-bench not found (run ci/bench.sh once): Ember only" >&2
# Start the model file from disk, as `ember pull` and ci/bench.sh leave it,
# so that the first load reads it back into 2 MiB folios (Linux): a file the
# page cache holds in 4 KiB folios is mapped in 4 KiB pages, and on this VM
# its decode is a quarter to a third slower at 1 thread and loses more at
# depth (see "Weights in huge pages" and "Long context" in
# docs/performance.md).
ci/drop-cached.sh "$MODEL"
for r in $(seq "$ROUNDS"); do
  for kv in f16 q8_0; do
    $EMBER bench -m "$MODEL" -p 0 -n 64 -d 16,1024 -t 1,2 -r 3 -ctk $kv -o json --profile > "$OUT/ember-$kv-$r.json"
    if [[ -x $LLAMA_BIN/llama-bench ]]; then
      fa=0; [[ $kv = q8_0 ]] && fa=1
      LD_LIBRARY_PATH=$LLAMA_BIN "$LLAMA_BIN/llama-bench" -m "$MODEL" -p 0 -n 64 -d 16,1024 -t 1,2 -r 3 \
        -ctk $kv -ctv $kv -fa $fa -o json > "$OUT/llama-$kv-$r.json" 2>/dev/null || true
    fi
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
for who in ("ember", "llama"):
    for kv in ("f16", "q8_0"):
        for t in (1, 2):
            ratios, pairs = [], []
            for f in sorted(glob.glob(os.path.join(out, f"{who}-{kv}-*.json"))):
                try:
                    rows = json.load(open(f))
                except ValueError:
                    continue
                ts = {r["n_depth"]: r["avg_ts"] for r in rows if r["n_threads"] == t and r["n_gen"] > 0}
                if 16 in ts and 1024 in ts:
                    ratios.append(ts[1024] / ts[16])
                    pairs.append(f"{ts[1024]:.0f}/{ts[16]:.0f}")
            if ratios:
                print(f"{who:6} {kv:5} {t}t: median {statistics.median(ratios):.2f}  rounds: "
                      + "  ".join(f"{p}={x:.2f}" for p, x in zip(pairs, ratios)))
# Where Ember's depth-1024 time goes: per stage, the median over the rounds
# of (ms a token at depth 1024) - (ms a token at depth 16), and the depth-16 ms.
print("ember: ms a token each stage adds at depth 1024 (median of rounds; depth-16 ms in brackets)")
for kv in ("f16", "q8_0"):
    for t in (1, 2):
        adds, base = {}, {}
        for f in sorted(glob.glob(os.path.join(out, f"ember-{kv}-*.json"))):
            try:
                rows = json.load(open(f))
            except ValueError:
                continue
            prof = {r["n_depth"]: r.get("profile_ms_per_token") for r in rows
                    if r["n_threads"] == t and r["n_gen"] > 0}
            if not (prof.get(16) and prof.get(1024)):
                continue
            for st, ms in prof[16].items():
                adds.setdefault(st, []).append(prof[1024][st] - ms)
                base.setdefault(st, []).append(ms)
            adds.setdefault("total", []).append(sum(prof[1024].values()) - sum(prof[16].values()))
            base.setdefault("total", []).append(sum(prof[16].values()))
        order = ["embed", "q/k/v", "attention", "attn out", "ffn up", "ffn down", "output", "total"]
        if adds:
            cells = "  ".join(f"{st} {statistics.median(adds[st]):+.2f} [{statistics.median(base[st]):.2f}]"
                              for st in order if st in adds)
            print(f"  {kv:5} {t}t: {cells}")
PY
