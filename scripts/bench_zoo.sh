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
profile=${PROFILE:-release}
cargo build --quiet --profile "$profile" --bin optimize
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|amx_tile' | tr '\n' ' ')
echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), flags: ${flags:-none}, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "optimizer: target/$dir/optimize ($(git rev-parse --short HEAD 2>/dev/null || echo '?')); onnxruntime 1.31.1 (CPU, 1 thread, all graph optimizations) for every task metric"
# onnxruntime's warnings (ddddocr's wrong declared output shape, unused initializers) are noise here.
PYTHONPATH="$root/.deps/py-zoo:$root/.deps/py" python3 scripts/zoo_bench.py --bin "target/$dir/optimize" "$@" \
  2> >(grep --line-buffered -v 'W:onnxruntime' >&2)
