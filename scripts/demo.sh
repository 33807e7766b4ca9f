#!/usr/bin/env bash
# The main job on a fresh Debian machine: installs what it needs (idempotent), builds the
# optimizer and optimizes the PP-OCR orientation classifier fetched by the set-up, writing
# out/cls.opt.onnx, out/report.json and out/report.html. Mixed precision calibrates on
# crops of real photographs (out/calib, written by examples/ppocr_calib.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
cargo build --quiet --bin optimize
optimize() { cargo run --quiet --bin optimize -- "$@"; }
mkdir -p out
model=.deps/models/ch_ppocr_mobile_v2.0_cls_infer.onnx
optimize inspect "$model" --input-shape x=1x3x48x192
cargo run --quiet --example ppocr_calib -- cls out/calib 16 calib
cargo run --quiet --example ppocr_calib -- cls out/eval 8 eval
optimize "$model" -o out/cls.opt.onnx --calib out/calib --inputs out/eval \
  --report out/report.json --html out/report.html "$@"
echo "wrote out/cls.opt.onnx, out/report.json and out/report.html"
