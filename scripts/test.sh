#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what it needs (idempotent),
# then checks formatting and lints, and runs every test with its printed tables.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
bash scripts/check_layers.sh --self-test
bash scripts/check_fn_length.sh
cargo test --workspace --no-fail-fast -- --nocapture
