#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (import_roundtrip, shape_infer, mutate, cli_args) for
# SECONDS each (default 600), all at once (libFuzzer fork mode: a crash is recorded and the
# run goes on), and prints executions, coverage (edges), features and corpus size per target.
#
#   scripts/fuzz.sh [SECONDS]        TARGETS="mutate" scripts/fuzz.sh 60
#   BUILD=0 scripts/fuzz.sh          (run the last build as it is, without rebuilding)
#
# Needs a nightly toolchain and cargo-fuzz (installed here when missing). The corpora are
# seeded from the test models (.deps/onnx-data, .deps/models, fetched by scripts/setup.sh)
# and from testdata/fuzz_regressions/. A crashing input is copied to
# testdata/fuzz_regressions/<target>/, where `cargo test --test hostile` replays it; the
# script then exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
targets=${TARGETS:-"import_roundtrip shape_infer mutate cli_args"}
say() { printf 'fuzz: %s\n' "$*" >&2; }

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
[ -f "$root/.deps/onnx-data/.complete" ] || "$root/scripts/setup.sh"

cd "$root/fuzz"
# No sanitizer (safe Rust; faster builds and runs), debug assertions on so that integer
# overflow panics are found too.
flags=(-a -s none)
if [ "${BUILD:-1}" != 0 ]; then
  say "building (nightly, own target dir fuzz/target)"
  cargo +nightly fuzz build "${flags[@]}" >&2
fi

seed() { # seed FILE DIR: copy under a content name
  local h
  h=$(sha1sum <"$1" | cut -c1-16)
  [ -e "$2/$h" ] || cp "$1" "$2/$h"
}
for t in $targets; do
  c="corpus/$t"
  mkdir -p "$c" "artifacts/$t" "$root/testdata/fuzz_regressions/$t"
  case $t in
    import_roundtrip | shape_infer)
      while IFS= read -r f; do seed "$f" "$c"; done < <(find "$root/.deps/onnx-data" "$root/.deps/models" -name '*.onnx' -size -512k)
      ;;
  esac
  for f in "$root/testdata/fuzz_regressions/$t"/*; do [ -f "$f" ] && seed "$f" "$c"; done
  say "$t: $(ls "$c" | wc -l) seed inputs"
done

pids=()
for t in $targets; do
  log="artifacts/$t.log"
  say "$t: running for ${secs}s (log fuzz/$log)"
  # The binary built above, run directly: `cargo fuzz run` would rebuild first when the
  # sources changed meanwhile.
  "target/x86_64-unknown-linux-gnu/release/$t" -artifact_prefix="artifacts/$t/" "corpus/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 >"$log" 2>&1 &
  pids+=($!)
done
status=0
i=0
for t in $targets; do
  if ! wait "${pids[$i]}"; then status=1; fi
  i=$((i + 1))
done

printf '%-18s %12s %10s %10s %8s %8s %8s\n' target executions exec/s coverage features corpus crashes
for t in $targets; do
  log="artifacts/$t.log"
  # Fork mode (crashes do not stop the run) prints "#EXECS: cov: N ft: N ... exec/s N".
  execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1)
  rate=$(grep -o 'exec/s:\? [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  crashes=0
  for f in artifacts/"$t"/crash-* artifacts/"$t"/oom-* artifacts/"$t"/timeout-*; do
    [ -f "$f" ] || continue
    cp "$f" "$root/testdata/fuzz_regressions/$t/"
    crashes=$((crashes + 1))
  done
  corpus=$(ls "corpus/$t" | wc -l)
  printf '%-18s %12s %10s %10s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes"
  [ "$crashes" -eq 0 ] || status=1
done
[ $status -eq 0 ] || say "crashes were copied to testdata/fuzz_regressions/: fix them, then cargo test --test hostile"
exit $status
