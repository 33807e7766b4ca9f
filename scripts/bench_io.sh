#!/usr/bin/env bash
# Import+export time and peak memory of the optimizer for PP-OCRv4 rec and light_densenet121,
# next to Python onnx.load + onnx.save of the same files, measured in the same run.
# Each measurement is its own process (peak memory is per process); times are medians of N runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build example bench_io
n=${N:-5}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '%-30s %8s | %8s %8s %7s %8s %7s | %8s %9s %7s | %7s\n' model "file MB" "ours s" "RSS MB" "x file" "heap MB" "x file" "python s" "RSS MB" "x file" "speedup"
for model in .deps/models/ch_PP-OCRv4_rec_infer.onnx .deps/onnx-data/light/light_densenet121.onnx .deps/models/ch_PP-OCRv4_det_infer.onnx; do
  size=$(stat -c %s "$model")
  read -r ours_s ours_rss ours_heap < <("$bin" "$model" "$tmp/ours.onnx" "$n")
  read -r py_s py_rss < <(PYTHONPATH=.deps/py python3 - "$model" "$tmp/py.onnx" "$n" <<'PY'
import sys, time, resource, statistics
import onnx
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(n):
    t = time.perf_counter()
    m = onnx.load(src)
    onnx.save(m, dst)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times):.4f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")
PY
)
  awk -v m="$(basename "$model")" -v sz="$size" -v os="$ours_s" -v orss="$ours_rss" -v oh="$ours_heap" -v ps="$py_s" -v prss="$py_rss" 'BEGIN {
    printf "%-30s %8.2f | %8.4f %8.1f %7.2f %8.1f %7.2f | %8.4f %9.1f %7.2f | %6.2fx\n", m, sz/1048576, os, orss/1048576, orss/sz, oh/1048576, oh/sz, ps, prss/1048576, prss/sz, ps/os }'
done
echo "profile=$profile, N=$n runs per measurement (median). RSS: the process's peak resident memory (VmHWM / ru_maxrss),"
echo "code and libraries included; heap: peak live heap bytes of import+export alone. speedup = python s / ours s."
