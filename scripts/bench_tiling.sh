#!/usr/bin/env bash
# Tiling benchmark (issue 21): off-chip traffic of layer-by-layer execution, greedy
# Vela-style cascades and our tiled plan, with solve seconds, on VGG-19 conv1-5 (362 KB),
# PP-OCRv4 det 320x320 (512 KiB, 2 MiB), light ResNet-50 and DenseNet-121 (1 MiB), in one
# run; each tiled ONNX is run against the original on onnxruntime.
# TILING_INT8=1 quantizes each model to uniform int8 first (tiles must then be bit-identical).
# An argument keeps only the cases whose name contains it (e.g. `vgg19`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build example bench_tiling
bench_machine
echo "command: ${TILING_INT8:+TILING_INT8=1 }$bin $*"
"$bin" "$@" 2> >(grep -v 'W:onnxruntime' >&2)
