#!/usr/bin/env bash
# Speed benchmark (issue 17; docs/speed.md): PP-OCRv4 cls, rec and det at 1 thread and at
# 2 threads, in one run with interleaved timing (median of --runs, default 15): fp32,
# onnxruntime's quantize_static, ours --objective speed at the quantizer's fidelity, ours
# --size-budget 0.30; with the CPU flags, the fidelity of each on held-apart crops, and the
# latency model's prediction against the measured time. Arguments go to the example
# (e.g. `det --threads-list 1 --runs 21`). PROFILE=dev uses the debug build. EMULATE_CPU=avx2
# (or avx512) runs everything on this CPU with VNNI and AMX hidden (scripts/emulate/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build bin optimize
export OPTIMIZE_BIN="$root/$bin"
bench_build example bench_speed
bench_emulate
bench_machine
echo "command: $bin $* (optimizer $OPTIMIZE_BIN at $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
# The latency tables go to a fresh cache, so every run measures on this machine now.
export OPTIMIZE_CACHE_DIR
OPTIMIZE_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$OPTIMIZE_CACHE_DIR"' EXIT
"$bin" "$@" 2> >(grep -v 'W:onnxruntime' >&2)
# Two zoo models (a detector and a transformer; ZOO_KEYS to change, empty to skip), same
# machine, same thread counts.
if [ -n "${ZOO_KEYS-yolov8n,minilm}" ]; then
  PYTHONPATH="$root/.deps/py-zoo:$root/.deps/py" python3 scripts/zoo_speed.py --bin "$OPTIMIZE_BIN" \
    --keys "${ZOO_KEYS-yolov8n,minilm}" --out "$root/target/bench_speed/zoo" \
    2> >(grep --line-buffered -v 'W:onnxruntime' >&2)
fi
