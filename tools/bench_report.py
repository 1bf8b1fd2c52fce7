#!/usr/bin/env python3
"""Summarise a ci/bench.sh run as markdown: Ember against llama.cpp and candle.

Usage: tools/bench_report.py OUT_DIR
       tools/bench_report.py --merge OUT.json REP.json...
Ratios are of medians measured in the same run. `--merge` joins llama-bench
style JSON files of single repetitions (ci/bench.sh runs the runtimes in
turn, one repetition each) into one, with every row's samples together.
"""
import json
import os
import re
import statistics
import sys


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def pick(rows, threads, test, depth=0):
    """Median tok/s of the llama-bench-style row for threads and test ('pp' or 'tg')."""
    for r in rows:
        if r.get("n_threads") != threads or r.get("n_depth", 0) != depth:
            continue
        if test == "pp" and r.get("n_gen") == 0 and r.get("n_prompt", 0) > 0:
            return statistics.median(r["samples_ts"]), r
        if test == "tg" and r.get("n_gen", 0) > 0 and r.get("n_prompt") == 0:
            return statistics.median(r["samples_ts"]), r
    return None, None


def candle(path):
    out = {}
    t = None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"threads=(\d+) rep=", line)
        if m:
            t = int(m.group(1))
        m = re.search(r"prefill_tok_s=([\d.]+)", line)
        if m and t is not None:
            out.setdefault((t, "pp"), []).append(float(m.group(1)))
        m = re.search(r"decode_tok_s=([\d.]+)", line)
        if m and t is not None:
            out.setdefault((t, "tg"), []).append(float(m.group(1)))
    return {k: statistics.median(v) for k, v in out.items()}


def fmt(x):
    return "—" if x is None else f"{x:.1f}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def merge(dst, srcs):
    """Rows with the same threads, prompt, generation and depth become one:
    samples concatenated in file order, mean and stdev recomputed, and
    per-repetition measurements (read bandwidth, roofline) their median."""
    rows, order = {}, []
    for path in srcs:
        for r in load_json(path):
            key = (r.get("n_threads"), r.get("n_prompt"), r.get("n_gen"), r.get("n_depth", 0))
            if key not in rows:
                rows[key] = {"row": dict(r), "extra": {}}
                order.append(key)
                rows[key]["row"]["samples_ts"] = []
                rows[key]["row"]["samples_ns"] = []
            m = rows[key]
            m["row"]["samples_ts"] += r.get("samples_ts", [])
            m["row"]["samples_ns"] += r.get("samples_ns", [])
            for f in ("read_bandwidth_bytes_per_s", "roofline_ts", "load_ms", "peak_rss_bytes"):
                if isinstance(r.get(f), (int, float)):
                    m["extra"].setdefault(f, []).append(r[f])
    merged = []
    for key in order:
        r, extra = rows[key]["row"], rows[key]["extra"]
        for f, xs in ("samples_ts", r["samples_ts"]), ("samples_ns", r["samples_ns"]):
            if xs:
                r[f.replace("samples", "avg")] = statistics.mean(xs)
                r[f.replace("samples", "stddev")] = statistics.stdev(xs) if len(xs) > 1 else 0.0
        for f, xs in extra.items():
            r[f] = max(xs) if f == "peak_rss_bytes" else statistics.median(xs)
        if r.get("roofline_ts") and r.get("avg_ts"):
            r["roofline_fraction"] = r["avg_ts"] / r["roofline_ts"]
        merged.append(r)
    with open(dst, "w") as f:
        json.dump(merged, f, indent=1)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--merge":
        merge(sys.argv[2], sys.argv[3:])
        return
    out = sys.argv[1]
    variants = ["Q4_0", "Q4_1", "Q8_0", "F16", "Q4_K_M"]
    print("| variant | threads | test | Ember t/s | llama.cpp t/s | candle t/s | Ember/llama.cpp | Ember/candle | roofline |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        e = load_json(os.path.join(out, f"ember-{v}.json"))
        l = load_json(os.path.join(out, f"llama-{v}.json"))
        c = candle(os.path.join(out, f"candle-{v}.txt"))
        if not e:
            continue
        for t in sorted({r["n_threads"] for r in e}):
            for test in ("pp", "tg"):
                em, er = pick(e, t, test)
                lm, _ = pick(l, t, test)
                cm = c.get((t, test))
                roof = ""
                if er is not None and er.get("roofline_ts"):
                    roof = f"{100 * em / er['roofline_ts']:.0f}% of {er['roofline_ts']:.0f}"
                print(f"| {v} | {t} | {test}128 | {fmt(em)} | {fmt(lm)} | {fmt(cm)} | {ratio(em, lm)} | {ratio(em, cm)} | {roof} |")
    try:
        tt = {}
        for line in open(os.path.join(out, "ttft.txt")):
            k, ms = line.split()
            tt.setdefault(k, []).append(int(ms))
        print()
        print("Time to first token (16-token prompt, process start to first token, median of 10):")
        for k, v in tt.items():
            print(f"- {k}: {statistics.median(v)} ms")
    except OSError:
        pass
    try:
        print()
        print("Peak RSS generating 128 tokens:")
        for line in open(os.path.join(out, "rss-kb.txt")):
            k, kb = line.split()
            print(f"- {k}: {int(kb) / 1024:.1f} MiB")
    except (OSError, ValueError):
        pass
    for kv in ("f16", "q8_0"):
        for who in ("ember", "llama"):
            rows = load_json(os.path.join(out, f"{who}-depth-{kv}.json"))
            if not rows:
                continue
            print()
            name = "Ember" if who == "ember" else "llama.cpp"
            print(f"Long context ({name}, {kv} KV cache, decode tg64 at depth 1024 vs depth 16):")
            for t in sorted({r["n_threads"] for r in rows}):
                a, _ = pick(rows, t, "tg", 16)
                b, _ = pick(rows, t, "tg", 1024)
                print(f"- {t} thread(s): {fmt(b)} / {fmt(a)} t/s = {ratio(b, a)}")

if __name__ == "__main__":
    main()
