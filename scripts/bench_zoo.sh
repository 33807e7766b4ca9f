#!/usr/bin/env bash
# The model-family zoo benchmark (issue 15; docs/zoo.md): one table over every zoo model, in
# one run: fp32 task metric; onnxruntime's documented one-call quantizer (size, metric); our
# optimizer at onnxruntime's size, at 0.30 and at its smallest feasible budget (size and task
# metric of what it wrote, or its exit code); seconds. It runs the optimizer as a user does,
# so the table shows the current optimizer's figures whatever they are.
# Arguments go to scripts/zoo_bench.py (e.g. `--keys minilm,yolov8n`, `--out DIR`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build bin optimize
bench_machine
echo "optimizer: $bin ($(git rev-parse --short HEAD 2>/dev/null || echo '?')); onnxruntime 1.31.1 (CPU, 1 thread, all graph optimizations) for every task metric"
# onnxruntime's warnings (ddddocr's wrong declared output shape, unused initializers) are noise here.
PYTHONPATH="$root/.deps/py-zoo:$root/.deps/py" python3 scripts/zoo_bench.py --bin "$bin" "$@" \
  2> >(grep --line-buffered -v 'W:onnxruntime' >&2)
