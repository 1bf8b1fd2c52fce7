#!/usr/bin/env python3
"""Generate external-oracle fixtures for `ember-quant` from gguf-py.

    pip install gguf==0.19.0 numpy
    python3 tools/gen_quant_fixtures.py            # writes quant-kernels/tests/fixtures/
    python3 tools/gen_quant_fixtures.py --check    # regenerate in memory, diff against disk

The Rust tests (`quant-kernels/tests/oracle.rs`) read the `.bin` files; they
never need Python. Output is deterministic (fixed seeds, no timestamps).

File layout (all little-endian), one file per (format, kind):

    magic   b"EMQF"
    u32     version (1)
    u32     ggml type id
    u32     kind: 0 = dequant (bytes -> f32), 1 = quant (f32 -> bytes -> f32)
    u32     n_elems
    u32     n_bytes
    f32[n_elems]   input rows          (kind 1 only)
    u8[n_bytes]    quantized bytes     (kind 1: gguf-py's quantize(input);
                                        kind 0: random valid blocks)
    f32[n_elems]   gguf-py's dequantize(bytes)

Deliberate exclusions (documented in docs/kernels.md):
  * Q8_1: gguf-py's GGML_QUANT_SIZES says 40 bytes per block; ggml uses 36.
  * NaN inputs to F16: numpy keeps the f32 payload, ggml's converters
    canonicalise it; neither is "the" answer, so no NaN f32 -> f16 cases.
    F16 dequant bytes hold only quiet NaNs (numpy does not quiet a signalling
    f16 NaN when widening; ggml and the `half` crate do).
  * inf/NaN inputs to the block formats (the result is a NaN soup whose exact
    bits depend on argmax tie rules for non-finite values).
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

EXPECTED_GGUF = "0.19.0"
MAGIC = b"EMQF"
VERSION = 1
OUT_DIR = Path(__file__).resolve().parent.parent / "quant-kernels" / "tests" / "fixtures"

# Formats whose quantizer gguf-py implements bit-exactly to ggml's *_ref.
QUANT_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
# Formats checked on dequantization of random valid blocks.
DEQUANT_TYPES = [
    T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
    T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL,
]

# Byte offsets of the f16 scale fields in each block: (offset, role).
# role "d" = main scale (signed), "m" = Q4_1/Q5_1 min (signed), "dmin" = K-quant min scale.
F16_FIELDS = {
    T.Q4_0: [(0, "d")],
    T.Q4_1: [(0, "d"), (2, "m")],
    T.Q5_0: [(0, "d")],
    T.Q5_1: [(0, "d"), (2, "m")],
    T.Q8_0: [(0, "d")],
    T.IQ4_NL: [(0, "d")],
    T.Q2_K: [(80, "d"), (82, "dmin")],
    T.Q3_K: [(108, "d")],
    T.Q4_K: [(0, "d"), (2, "dmin")],
    T.Q5_K: [(0, "d"), (2, "dmin")],
    T.Q6_K: [(208, "d")],
}


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


# ---------------------------------------------------------------------------
# Quantization inputs
# ---------------------------------------------------------------------------

def tie_blocks(rng: np.random.Generator) -> list[np.ndarray]:
    """Blocks of 32 whose scale comes out a power of two, with values on exact
    rounding ties (x*id + 8.5 integral for Q4_0, v*id = k + 0.5 for Q8_0, ...)."""
    out = []
    halves = lambda lo, hi: f32(rng.integers(2 * lo, 2 * hi + 1, size=32) / 2.0)  # noqa: E731
    for scale in (1.0, 0.125, 32.0):
        # Q4_0: signed absmax -8 -> d = 1; x + 8.5 lands on integers for half-integers x.
        b = halves(-7, 7)
        b[rng.integers(32)] = -8.0
        out.append(b * scale)
        # Q5_0: signed absmax -16 -> d = 1.
        b = halves(-15, 15)
        b[rng.integers(32)] = -16.0
        out.append(b * scale)
        # Q8_0: absmax 127 -> d = 1; roundf ties away from zero.
        b = halves(-126, 126)
        b[rng.integers(32)] = 127.0 if rng.integers(2) else -127.0
        out.append(b * scale)
        # Q4_1: min 0, max 15 -> d = 1; (x - min) + 0.5 on integers.
        b = halves(0, 15)
        b[0], b[31] = 0.0, 15.0
        out.append(b * scale)
        # Q5_1: min 0, max 31 -> d = 1.
        b = halves(0, 31)
        b[3], b[17] = 31.0, 0.0
        out.append(b * scale)
    # Equal magnitudes of both signs: signed absmax must take the first one.
    b = f32(rng.uniform(-1, 1, 32))
    b[2], b[5] = -3.0, 3.0
    out.append(b)
    b = f32(rng.uniform(-1, 1, 32))
    b[2], b[5] = 3.0, -3.0
    out.append(b)
    return out


def float_tie_blocks() -> list[np.ndarray]:
    """Values exactly halfway between neighbouring f16 / bf16 values, plus
    f16 overflow, subnormal and infinity edges."""
    vals = []
    for e in (-3, 0, 5, 12):
        for k in range(4):
            vals.append((1.0 + (2 * k + 1) * 2.0**-11) * 2.0**e)  # f16 ties
            vals.append((1.0 + (2 * k + 1) * 2.0**-8) * 2.0**e)  # bf16 ties
    vals += [65504.0, 65519.0, 65520.0, 65536.0, 1e5, 3.0e38, 2.0**-24, 2.0**-25,
             3 * 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 1e-8, 5.9604645e-8,
             float("inf"), 6.1035156e-5, 0.0]
    vals = vals + [-v for v in vals]
    a = f32(vals)
    a = np.concatenate([a, np.zeros((-len(a)) % 32, dtype=np.float32)])
    return list(a.reshape(-1, 32))


def quant_input(qtype: T) -> np.ndarray:
    rng = np.random.default_rng(0x5EED_0000 + int(qtype))
    blocks: list[np.ndarray] = []
    blocks += list(f32(rng.standard_normal((16, 32))))
    blocks += list(f32(rng.uniform(-1, 1, (8, 32))))
    blocks += list(f32(rng.uniform(0.25, 2.0, (4, 32))))  # all positive: min > 0
    blocks += list(f32(-rng.uniform(0.25, 2.0, (2, 32))))  # all negative
    for s in (1e-30, 1e-20, 1e-8, 1e-5, 1e-3, 1e2, 1e4, 6e4, 5e5, 1e6, 1e30):
        blocks.append(f32(rng.standard_normal(32) * s))
    blocks.append(np.zeros(32, np.float32))
    blocks.append(f32([-0.0] * 32))
    blocks.append(np.full(32, 0.7, np.float32))  # max == min
    blocks.append(np.full(32, -3.0, np.float32))
    one = np.zeros(32, np.float32)
    one[7] = -2.5
    blocks.append(one)
    one = np.zeros(32, np.float32)
    one[31] = 1e-3
    blocks.append(one)
    # Outliers inside otherwise small blocks.
    b = f32(rng.standard_normal(32) * 0.01)
    b[11] = 40.0
    blocks.append(b)
    blocks += tie_blocks(rng)
    if qtype in (T.F16, T.BF16):
        blocks += float_tie_blocks()
        if qtype == T.BF16:
            nan = np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FFFFFFF] * 8, np.uint32)
            blocks.append(nan.view(np.float32))
    return np.concatenate(blocks).astype(np.float32)


# ---------------------------------------------------------------------------
# Dequantization inputs: random valid blocks with sane f16 scales
# ---------------------------------------------------------------------------

def sane_f16(rng: np.random.Generator, n: int, role: str) -> np.ndarray:
    mag = 10.0 ** rng.uniform(-4.0, 0.5, n)
    if role == "dmin":
        sign = np.ones(n)
    else:
        sign = np.where(rng.integers(0, 2, n) == 1, 1.0, -1.0)
    v = (mag * sign).astype(np.float16)
    # A few special-but-finite values: zero, subnormal, large.
    specials = np.array([0.0, 6e-8, 1.5e-5, 512.0], np.float16)
    idx = rng.choice(n, size=min(n, len(specials)), replace=False)
    v[idx] = specials[: len(idx)]
    return v


def dequant_input(qtype: T) -> bytes:
    rng = np.random.default_rng(0xDEC0_0000 + int(qtype))
    if qtype in (T.F16, T.BF16):
        raw = rng.integers(0, 1 << 16, 2048, dtype=np.uint32).astype(np.uint16)
        if qtype == T.F16:
            nan = ((raw & 0x7C00) == 0x7C00) & ((raw & 0x03FF) != 0)
            raw[nan] |= 0x0200  # quiet NaNs only (see module doc)
        return raw.tobytes()
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = 64 if block_size == 32 else 24
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint16).astype(np.uint8)
    for off, role in F16_FIELDS[qtype]:
        raw[:, off:off + 2] = sane_f16(rng, n_blocks, role).view(np.uint8).reshape(n_blocks, 2)
    return raw.tobytes()


# ---------------------------------------------------------------------------

def record(qtype: T, kind: int, n_elems: int, data: bytes, out: np.ndarray,
           inp: np.ndarray | None) -> bytes:
    assert out.dtype == np.float32 and out.size == n_elems
    head = MAGIC + struct.pack("<5I", VERSION, int(qtype), kind, n_elems, len(data))
    body = b"" if inp is None else inp.astype("<f4").tobytes()
    return head + body + data + out.astype("<f4").tobytes()


def build() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for qt in QUANT_TYPES:
            x = quant_input(qt)
            q = np.ascontiguousarray(quantize(x.reshape(1, -1), qt)).view(np.uint8).reshape(-1)
            y = dequantize(q.reshape(1, -1), qt).reshape(-1).astype(np.float32)
            files[f"{qt.name.lower()}.quant.bin"] = record(qt, 1, x.size, q.tobytes(), y, x)
        for qt in DEQUANT_TYPES:
            raw = dequant_input(qt)
            q = np.frombuffer(raw, np.uint8)
            y = dequantize(q.reshape(1, -1), qt).reshape(-1).astype(np.float32)
            files[f"{qt.name.lower()}.dequant.bin"] = record(qt, 0, y.size, raw, y, None)
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    args = ap.parse_args()
    ver = getattr(gguf, "__version__", None)
    if ver is None:
        from importlib.metadata import version
        ver = version("gguf")
    if ver != EXPECTED_GGUF:
        print(f"warning: gguf {ver}, fixtures were made with {EXPECTED_GGUF}", file=sys.stderr)
    files = build()
    total = sum(len(b) for b in files.values())
    if args.check:
        bad = [n for n, b in files.items() if not (args.out / n).is_file() or (args.out / n).read_bytes() != b]
        for n in bad:
            print(f"differs: {n}", file=sys.stderr)
        return 1 if bad else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        (args.out / name).write_bytes(data)
        print(f"{name:24} {len(data):8} bytes  sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    print(f"total {total} bytes in {len(files)} files -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
