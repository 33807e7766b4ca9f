#!/usr/bin/env bash
# The main job on a fresh Debian machine: installs what it needs (idempotent), builds the
# optimizer and optimizes the PP-OCR orientation classifier fetched by the set-up, writing
# out/cls.opt.onnx and out/report.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --quiet --bin optimize
mkdir -p out
model=.deps/models/ch_ppocr_mobile_v2.0_cls_infer.onnx
./target/debug/optimize inspect "$model" --input-shape x=1x3x48x192
./target/debug/optimize "$model" -o out/cls.opt.onnx --input-shape x=1x3x48x192 --report out/report.json "$@"
echo "wrote out/cls.opt.onnx and out/report.json"
