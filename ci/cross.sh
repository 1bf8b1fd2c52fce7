#!/usr/bin/env bash
# Cross builds for the boards (boards/*.toml), checked under qemu user-mode emulation:
#
#   aarch64-unknown-linux-gnu (Pi 3/4/5, Jetson, 64-bit OS)
#     - the release `ember` binary (size printed)
#     - the runtime's (-p ember) tests under qemu -cpu cortex-a72, cortex-a76 and max,
#       less the reference-matching and requantization tests (too slow emulated) and
#       no_alloc, threads, kv_cache and profile (minutes emulated; EMBER_CROSS_FULL=1 runs them under
#       cortex-a76)
#     - a short greedy generation with the default model under cortex-a72 and cortex-a76:
#       the text must equal the x86-64 run's, and `ember eval` must agree with x86-64's
#       argmax wherever x86-64's top-2 margin is >= 0.5
#   armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS)
#     - the `ember` binary, the kernels' (-p ember-quant) tests and the runtime's boards
#       tests (a 32-bit build must refuse to map a file over 2 GiB, clearly) under qemu-arm
#
# The aarch64 kernel tests and the no_std build are ci/aarch64.sh's, not this script's.
# Needs the default model (ci/test.sh fetches it: `ember pull`).
# Env: EMBER_CROSS_TARGET_DIR (default target/cross), CARGO_TARGET_DIR (host build, default
# target), EMBER_CROSS_FULL (1 or all: also no_alloc, threads, kv_cache and profile), EMBER_CROSS_SKIP (test names to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
t_start=$SECONDS

CROSS_DIR=${EMBER_CROSS_TARGET_DIR:-target/cross}
HOST_DIR=${CARGO_TARGET_DIR:-target}
A64=aarch64-unknown-linux-gnu
ARM=armv7-unknown-linux-gnueabihf
QEMU_A64=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
QEMU_ARM=(qemu-arm-static -L /usr/arm-linux-gnueabihf)
PROMPT="The capital of France is"
N_GEN=8
MARGIN=0.5

step() { printf '\n==> cross: %s (%ds)\n' "$*" $((SECONDS - t_start)); }
die() { printf 'cross: FAILED: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- setup (idempotent)
step "toolchains"
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf)
# The target C libraries (to link, and for qemu -L); only recommended by the gcc packages.
[[ -f /usr/aarch64-linux-gnu/lib/crti.o ]] || need+=(libc6-dev-arm64-cross)
[[ -f /usr/arm-linux-gnueabihf/lib/crti.o ]] || need+=(libc6-dev-armhf-cross)
{ command -v qemu-aarch64-static && command -v qemu-arm-static; } >/dev/null || need+=(qemu-user-static)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "installing ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
installed=$(rustup target list --installed)
for t in $A64 $ARM; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc

# The x86-64 reference binary, which also finds (or fetches) the default model.
step "x86-64 ember binary and the default model"
cargo build --release -p ember-cli
HOST_BIN=$HOST_DIR/release/ember
model=$("$HOST_BIN" pull) || die "could not fetch the default model (\`ember pull\`)"
echo "model: $model"

# Tests build in a profile of their own: optimized (emulation is slow), without the
# release profile's fat LTO (linking is slow), with overflow checks (32-bit arithmetic).
TEST_PROFILE=(
  --config 'profile.cross-test.inherits="release"'
  --config 'profile.cross-test.lto="off"'
  --config 'profile.cross-test.codegen-units=16'
  --config 'profile.cross-test.debug-assertions=true'
  --config 'profile.cross-test.overflow-checks=true'
)

# Builds test binaries and prints "name<TAB>path" for each.
build_tests() {
  cargo "${TEST_PROFILE[@]}" test --profile cross-test --target-dir "$CROSS_DIR" --no-run \
    --message-format=json-render-diagnostics "$@" |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["target"]["name"] + "\t" + m["executable"])
'
}

# ---------------------------------------------------------------- aarch64
step "$A64: release ember binary"
cargo build --release -p ember-cli --target $A64 --target-dir "$CROSS_DIR"
A64_BIN=$CROSS_DIR/$A64/release/ember
a64_size=$(stat -c %s "$A64_BIN")
echo "ember for $A64: $a64_size bytes ($((a64_size / 1024)) KiB)"

step "$A64: runtime test binaries"
a64_tests=$(build_tests -p ember --lib --tests --target $A64)
echo "$a64_tests"

# Test binaries skipped by name, too slow emulated: match_llama (every test runs a model
# against llama.cpp's logits or perplexity) and quantize (requantizes whole models).
SKIP_BINS=" match_llama quantize "
SKIP_NAMES=()
# More names to skip, space-separated (e.g. a test known to fail on x86-64 too).
for n in ${EMBER_CROSS_SKIP:-}; do SKIP_NAMES+=(--skip "$n"); done
# no_alloc decodes 3 x 33 steps with the default model: 2-4 minutes per CPU emulated, past
# this script's budget, so it runs only with EMBER_CROSS_FULL=1 (under cortex-a76, or every
# CPU with EMBER_CROSS_FULL=all). It needs one test thread: libtest's "has been running for
# over 60 seconds" note allocates on another thread, and the counting allocator sees it.
# threads evaluates a 250-token prompt and 10 steps at 1, 2 and 3 threads: minutes per CPU
# emulated as well, and what it checks (how work is split) does not depend on the ISA.
# kv_cache scores 480 tokens with an F16 and a Q8_0 cache: minutes per CPU emulated; the
# Q8_0 attention kernels it relies on are checked on every aarch64 tier by ember-quant's
# tests/attn.rs (ci/aarch64.sh).
# profile decodes with and without the stage timer and compares the logits: about 2
# minutes per CPU emulated (5.7 of CI's 32.6 minutes on a 2-core Ice Lake VM), and what it
# checks (the executor's stage accounting) does not depend on the ISA either.
SLOW_BINS=" no_alloc threads kv_cache profile "
declare -A test_result
for cpu in cortex-a72 cortex-a76 max; do
  step "$A64: runtime tests under qemu -cpu $cpu"
  ran=0
  skipped=""
  while IFS=$'\t' read -r name exe; do
    [[ -n $name ]] || continue
    if [[ $SKIP_BINS == *" $name "* ]]; then
      skipped+=" $name"
      continue
    fi
    threads=2
    if [[ $SLOW_BINS == *" $name "* ]]; then
      full=${EMBER_CROSS_FULL:-0}
      if [[ $full == 0 || ($cpu != cortex-a76 && $full != all) ]]; then
        skipped+=" $name"
        continue
      fi
      threads=1
    fi
    echo "--- $name"
    "${QEMU_A64[@]}" -cpu "$cpu" "$exe" --test-threads=$threads -q "${SKIP_NAMES[@]}" ||
      die "runtime test binary $name failed under qemu -cpu $cpu"
    ran=$((ran + 1))
  done <<<"$a64_tests"
  ((ran > 0)) || die "no runtime test binary ran"
  echo "skipped:$skipped"
  test_result[$cpu]="$ran binaries passed (skipped:$skipped)"
done

# ---------------------------------------------------------------- generation vs x86-64
step "x86-64 reference generation"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gen() { # gen OUT_PREFIX CMD...: greedy generation of $N_GEN tokens; stdout and stderr to files
  local out=$1
  shift
  "$@" run -m "$model" -p "$PROMPT" -n $N_GEN --temp 0 --seed 1 -t 2 -c 64 --ignore-eos \
    >"$out.txt" 2>"$out.err" || { cat "$out.err" >&2; return 1; }
}
gen "$work/x86" "$HOST_BIN" || die "x86-64 generation failed"
x86_tier=$(grep -o 'kernels [a-z0-9]*' "$work/x86.err" | awk '{print $2}')
echo "x86-64 ($x86_tier): $(cat "$work/x86.txt")"
cp "$work/x86.txt" "$work/seq.txt"
"$HOST_BIN" eval -m "$model" --text "$work/seq.txt" --json -t 2 >"$work/x86.json" ||
  die "x86-64 eval failed"
ids=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["ids"])))' "$work/x86.json")
echo "sequence: $ids"

# compare_eval X86_JSON OTHER_JSON: argmax must agree wherever x86's margin >= $MARGIN.
compare_eval() {
  python3 - "$1" "$2" "$MARGIN" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))["positions"]
b = json.load(open(sys.argv[2]))["positions"]
margin = float(sys.argv[3])
assert len(a) == len(b), f"{len(a)} vs {len(b)} positions"
checked = bad = 0
for pa, pb in zip(a, b):
    if pa["margin"] >= margin:
        checked += 1
        if pa["argmax"] != pb["argmax"]:
            bad += 1
            print(f"  pos {pa['pos']}: x86 argmax {pa['argmax']} (margin {pa['margin']:.3f}), emulated {pb['argmax']}")
print(f"{checked - bad}/{checked} confident positions agree ({len(a) - checked} below margin {margin})")
sys.exit(1 if bad or checked == 0 else 0)
EOF
}

declare -A tier_of match_of
for cpu in cortex-a72 cortex-a76; do
  step "$A64: generation under qemu -cpu $cpu"
  gen "$work/$cpu" "${QEMU_A64[@]}" -cpu "$cpu" "$A64_BIN" || die "generation under -cpu $cpu failed"
  tier_of[$cpu]=$(grep -o 'kernels [a-z0-9]*' "$work/$cpu.err" | awk '{print $2}')
  echo "$cpu (${tier_of[$cpu]}): $(cat "$work/$cpu.txt")"
  cmp -s "$work/x86.txt" "$work/$cpu.txt" ||
    die "greedy text under -cpu $cpu differs from x86-64's: $(cat "$work/$cpu.txt") vs $(cat "$work/x86.txt")"
  "${QEMU_A64[@]}" -cpu "$cpu" "$A64_BIN" eval -m "$model" --ids "$ids" --json -t 2 >"$work/$cpu.json" ||
    die "eval under -cpu $cpu failed"
  match_of[$cpu]=$(compare_eval "$work/x86.json" "$work/$cpu.json") ||
    die "argmax under -cpu $cpu disagrees with x86-64: ${match_of[$cpu]}"
  echo "${match_of[$cpu]}"
done
# `max` has every feature qemu emulates (i8mm included): the tier only.
"${QEMU_A64[@]}" -cpu max "$A64_BIN" run -m "$model" -p "$PROMPT" -n 1 --temp 0 -t 2 -c 64 \
  >/dev/null 2>"$work/max.err" || { cat "$work/max.err" >&2; die "run under -cpu max failed"; }
tier_of[max]=$(grep -o 'kernels [a-z0-9]*' "$work/max.err" | awk '{print $2}')

# The tiers the board profiles promise.
profile_tier() { sed -n 's/^kernel_tier *= *"\(.*\)".*/\1/p' "boards/$1.toml"; }
[[ ${tier_of[cortex-a72]} == "$(profile_tier rpi4)" ]] ||
  die "cortex-a72 ran ${tier_of[cortex-a72]}, boards/rpi4.toml says $(profile_tier rpi4)"
[[ ${tier_of[cortex-a76]} == "$(profile_tier rpi5)" ]] ||
  die "cortex-a76 ran ${tier_of[cortex-a76]}, boards/rpi5.toml says $(profile_tier rpi5)"

# ---------------------------------------------------------------- armv7 (32-bit)
step "$ARM: ember binary"
# In the tests' profile (no LTO), so that the tests below reuse its build; a release
# build (cargo build --release --target $ARM) is the one to ship.
cargo "${TEST_PROFILE[@]}" build --profile cross-test -p ember-cli --target $ARM --target-dir "$CROSS_DIR"
ARM_BIN=$CROSS_DIR/$ARM/cross-test/ember
arm_size=$(stat -c %s "$ARM_BIN")
echo "ember for $ARM: $arm_size bytes ($((arm_size / 1024)) KiB, no LTO)"

step "$ARM: kernel tests and the runtime's boards tests under qemu-arm"
arm_kernels=$(build_tests -p ember-quant --lib --tests --target $ARM)
arm_runtime=$(build_tests -p ember --lib --target $ARM)
arm_ran=0
while IFS=$'\t' read -r name exe filter; do
  [[ -n $name ]] || continue
  echo "--- $name ${filter}"
  # shellcheck disable=SC2086 # $filter is one word or none
  "${QEMU_ARM[@]}" "$exe" --test-threads=2 -q $filter || die "$name failed under qemu-arm"
  arm_ran=$((arm_ran + 1))
done < <(echo "$arm_kernels"; sed 's/$/\tboards::/' <<<"$arm_runtime")
((arm_ran > 0)) || die "no armv7 test binary ran"

step "$ARM: generation under qemu-arm (scalar kernels)"
gen "$work/arm" "${QEMU_ARM[@]}" "$ARM_BIN" || die "generation under qemu-arm failed"
arm_tier=$(grep -o 'kernels [a-z0-9]*' "$work/arm.err" | awk '{print $2}')
echo "armv7 ($arm_tier): $(cat "$work/arm.txt")"
arm_match=identical
cmp -s "$work/x86.txt" "$work/arm.txt" || arm_match="differs (not gated: scalar f32 sums in another order)"

# ---------------------------------------------------------------- summary
step "summary"
cat <<EOF
aarch64 ember binary:  $a64_size bytes ($((a64_size / 1024)) KiB, release, fat LTO)
armv7 ember binary:    $arm_size bytes ($((arm_size / 1024)) KiB, tests' profile: no LTO)
kernel tier per CPU:   x86-64 host: $x86_tier | qemu cortex-a72: ${tier_of[cortex-a72]} | cortex-a76: ${tier_of[cortex-a76]} | max: ${tier_of[max]} | armv7: $arm_tier
runtime tests:         cortex-a72: ${test_result[cortex-a72]} | cortex-a76: ${test_result[cortex-a76]} | max: ${test_result[max]}
armv7 tests:           $arm_ran binaries passed
greedy $N_GEN tokens:       cortex-a72 and cortex-a76 identical to x86-64; armv7 $arm_match
eval argmax:           cortex-a72: ${match_of[cortex-a72]}
                       cortex-a76: ${match_of[cortex-a76]}
time:                  $((SECONDS - t_start)) s
EOF
