#!/usr/bin/env bash
# Mixed-precision benchmark on real inputs (crops of the scikit-image photographs): PP-OCRv4 cls,
# rec and det at fp32, onnxruntime's quantize_static, and our pass (uniform int8, ILP at the same
# size and at 0.25 / 0.35 of fp32, ablation random / measured-only), with fidelity to fp32 and
# onnxruntime CPU latency, all in one run. Arguments go to the example (e.g. `cls --eval 32`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build example bench_precision
bench_machine
echo "command: $bin $*"
# onnxruntime's warnings (unused initializers of the quantized models) are noise here.
"$bin" "$@" 2> >(grep -v 'W:onnxruntime' >&2)
