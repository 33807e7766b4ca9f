#!/usr/bin/env bash
# Time per inference of the PP-OCR models on the wgpu executor next to onnxruntime CPU
# (one thread, graph optimizations off, as validation runs it), same inputs, same run.
# Medians of N runs after one warm-up run. On a CPU-only machine wgpu runs on lavapipe
# (software Vulkan), so the numbers are informative only; on a GPU machine the same script
# measures the GPU (force one with WGPU_ADAPTER_NAME=<substring>, WGPU_BACKEND=vulkan|gl|...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -f .deps/models/.complete ] || bash scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
. scripts/bench_common.sh
bench_build example bench_wgpu
n=${N:-3}
det=${DET_SHAPE:-1x3x640x640}
printf '%-38s %-14s %10s %10s %10s %12s  %s\n' model input "wgpu s" "ort s" "wgpu/ort" "max rel err" device
for spec in "ch_PP-OCRv4_det_infer.onnx x=$det" "ch_PP-OCRv4_rec_infer.onnx x=1x3x48x320" "ch_ppocr_mobile_v2.0_cls_infer.onnx x=1x3x48x192"; do
  set -- $spec
  read -r w o e dev < <("$bin" ".deps/models/$1" "$2" "$n")
  awk -v m="$1" -v i="${2#x=}" -v w="$w" -v o="$o" -v e="$e" -v d="$dev" 'BEGIN {
    printf "%-38s %-14s %10.4f %10.4f %9.1fx %12s  %s\n", m, i, w, o, w/o, e, d }'
done
echo "profile=$profile, N=$n runs per model (median, after one warm-up run). wgpu/ort: how many times slower wgpu is."
