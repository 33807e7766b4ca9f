#!/usr/bin/env bash
# The fidelity-driven search's cost against one fixed-budget run (issue 16: at most 4x on
# det), in one run on this machine: PP-OCRv4 det, 32 calibration crops of 320x320 from the
# calibration half of the photographs, the `auto` metric (cosine of the map) at its default
# target 0.99. Prints the machine line, both wall times, the ratio and every probe.
#   bash scripts/bench_search.sh            (PROFILE=dev for a debug build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build example ppocr_calib
calib_bin=$bin
bench_build example bench_search
bench_machine
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$calib_bin" det:320 "$work/cal" 32 calib
"$bin" .deps/models/ch_PP-OCRv4_det_infer.onnx "$work/cal" x=1x3x320x320 auto 0.99
