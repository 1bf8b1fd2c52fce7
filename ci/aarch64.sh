#!/usr/bin/env bash
# AArch64 CI for ember-quant: cross-build the test binaries once (release),
# run them under qemu-user as a Raspberry Pi 4 (cortex-a72: NEON only), a
# Raspberry Pi 5 (cortex-a76: NEON + dotprod) and `max` (dotprod + i8mm),
# checking which kernel tier the dispatcher picks on each; then build the
# crate no_std for a Cortex-M (thumbv7em-none-eabihf).
#
# Usage: ci/aarch64.sh            (from anywhere; uses target/aarch64 in the repo)
# Under qemu the cross-tier conformance suite (tests/conformance.rs) runs only
# the module of the tier that CPU is there to check (neon / dotprod / i8mm;
# the scalar module is arch-independent and runs natively elsewhere), minus
# CONFORMANCE_SKIP (default: the 49152-row lm_head gemv, minutes under
# emulation, and q5_0's quantized_dot_tracks_f32_dot, which fails on the
# scalar reference tier too: a tolerance issue of that test, not a kernel's).
# Every other test binary runs in full on every CPU.
#
# Env:   EXPECT_A72 / EXPECT_A76 / EXPECT_MAX override the expected tiers
#        (defaults neon / dotprod / i8mm); CARGO_TARGET_DIR overrides the
#        target dir; JOBS sets cargo's -j (default: nproc).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/aarch64}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
JOBS="${JOBS:-$(nproc)}"

t0=$SECONDS
step() { printf '\n==> [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }

# --- tools -----------------------------------------------------------------
step "checking tools"
need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
if ((${#need_apt[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing ${need_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
fi
installed="$(rustup target list --installed)"
for t in "$TARGET" thumbv7em-none-eabihf; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
echo "cargo: $(cargo --version); qemu: $(qemu-aarch64-static --version | head -n1)"

# --- cross-build the test binaries once -----------------------------------
step "building ember-quant tests (release, $TARGET) into $CARGO_TARGET_DIR"
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
cargo test -p ember-quant --release --target "$TARGET" --tests --no-run -j "$JOBS" \
    --message-format=json-render-diagnostics >"$build_log"
mapfile -t bins < <(grep -o '"executable":"[^"]*"' "$build_log" | cut -d'"' -f4)
((${#bins[@]})) || { echo "no test executables built" >&2; exit 1; }
unit=""
for b in "${bins[@]}"; do
    echo "  $(basename "$b")"
    [[ $(basename "$b") == ember_quant-* ]] && unit="$b"
done
[[ -n $unit ]] || { echo "unit-test binary not found" >&2; exit 1; }

# --- run under qemu ----------------------------------------------------------
read -r -a conf_skip <<<"${CONFORMANCE_SKIP:-gemv_lm_head}"
declare -A summary
run_cpu() {
    local cpu="$1" expect="$2" passed=0 out n tier args
    step "qemu -cpu $cpu (expect tier: $expect)"
    for b in "${bins[@]}"; do
        args=(-q)
        if [[ $(basename "$b") == conformance-* ]]; then
            args+=("::$expect::")
            for s in "${conf_skip[@]}"; do args+=(--skip "${s//TIER/$expect}"); done
        fi
        # cargo runs tests from the package directory; do the same.
        out="$(cd quant-kernels &&
            EMBER_EXPECT_TIER="$expect" qemu-aarch64-static -cpu "$cpu" -L "$SYSROOT" "$b" "${args[@]}" 2>&1)" || {
            printf '%s\n' "$out" | tail -n 60
            echo "FAILED: $(basename "$b") under -cpu $cpu" >&2
            exit 1
        }
        n="$(grep -o 'test result: ok\. [0-9]* passed' <<<"$out" | grep -o '[0-9]*' | head -n1)"
        printf '  %-36s %4s passed  %s\n' "$(basename "$b")" "${n:-0}" "${args[*]:1}"
        passed=$((passed + ${n:-0}))
    done
    # The dispatcher's choice, printed by the unit test that asserts it.
    tier="$(cd quant-kernels &&
        EMBER_EXPECT_TIER="$expect" qemu-aarch64-static -cpu "$cpu" -L "$SYSROOT" "$unit" \
            arch::aarch64::tests::expect_tier --exact --nocapture 2>&1 | grep -o 'ember-quant tier: .*')"
    echo "  $tier"
    summary[$cpu]="${tier#ember-quant tier: } — $passed tests passed"
}
run_cpu cortex-a72 "${EXPECT_A72:-neon}"
run_cpu cortex-a76 "${EXPECT_A76:-dotprod}"
run_cpu max "${EXPECT_MAX:-i8mm}"

# --- no_std build -------------------------------------------------------------
step "building ember-quant --no-default-features for thumbv7em-none-eabihf"
cargo build -p ember-quant --no-default-features --target thumbv7em-none-eabihf -j "$JOBS"

step "summary"
for cpu in cortex-a72 cortex-a76 max; do
    printf '  %-11s %s\n' "$cpu" "${summary[$cpu]}"
done
echo "  thumbv7em-none-eabihf: no_std build ok"
echo "  total: $((SECONDS - t0))s"
