#!/usr/bin/env bash
# Seconds and peak memory to explain one input (an onnxruntime session and run with the
# tensors the sweep reads exposed, then the Rust backward sweep) of PP-OCRv4 rec (1x3x48x320)
# and light_resnet50 (1x3x224x224), next to the median time of one plain onnxruntime forward
# pass on the same input in the same process, for the default preset (auto: γ on convolutions)
# and for the plain ε preset. Each measurement runs in its own process so the peak memory is
# its own. PROFILE=release (default) or dev; N runs per measurement (median).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
. scripts/bench_common.sh
bench_build example bench_explain
n=${N:-3}
bench_machine
echo "onnxruntime 1.31.1, 1 thread, graph optimizations off (as everywhere in this crate); profile=$profile, N=$n"
printf '%-32s %-8s %6s | %9s %9s | %9s %9s %9s | %7s %7s | %8s %8s %8s\n' model preset nodes "forward s" "fwd opt s" "explain s" "collect s" "sweep s" ratio "r. opt" "RSS MB" "peak MB" "heap MB"
run() {
  local model=$1 preset=$2; shift 2
  local cmd=("$bin" "$model" --runs "$n" --preset "$preset" --profile "$@")
  /usr/bin/time -f 'maxrss_kb=%M' "${cmd[@]}" >"${tmp}/out" 2>"${tmp}/time"
  local line
  line=$(head -1 "${tmp}/out")
  local maxrss
  maxrss=$(grep -o 'maxrss_kb=[0-9]*' "${tmp}/time" | cut -d= -f2 || echo 0)
  eval "$(echo "$line" | tr ' ' '\n' | grep '=' | sed 's/^/local /')"
  awk -v m="$(basename "$model")" -v p="$preset" -v nodes="$nodes" -v f="$forward_s" -v fo="$forward_opt_s" -v e="$explain_s" -v c="$collect_s" -v s="$sweep_s" -v r="$ratio" -v ro="$ratio_opt" -v rss="$rss_mb" -v mx="$maxrss" -v h="$heap_mb" 'BEGIN {
    printf "%-32s %-8s %6d | %9.4f %9.4f | %9.4f %9.4f %9.4f | %6.1fx %6.1fx | %8.1f %8.1f %8.1f\n", m, p, nodes, f, fo, e, c, s, r, ro, rss, mx/1024, h }'
  tail -n +2 "${tmp}/out" | head -8
  echo "  command: ${cmd[*]}"
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for preset in auto epsilon; do
  run .deps/models/ch_PP-OCRv4_rec_infer.onnx "$preset" --input-shape x=1x3x48x320
  run .deps/onnx-data/light/light_resnet50.onnx "$preset"
done
echo "forward: median of max(N,5) plain onnxruntime runs after one warm-up; explain = collect (session"
echo "with the needed tensors exposed + one run) + sweep; ratio = explain / forward; fwd opt and r. opt: the"
echo "same with onnxruntime's graph optimizations on (1 thread), the forward a user deploys. RSS: VmHWM after the"
echo "explanations; peak: /usr/bin/time's max RSS of the whole process; heap: peak live Rust heap of one"
echo "explanation. Per line below a model: the collect phases, the cost per input with the session reused,"
echo "and the sweep's top op types."
