# Sourced by scripts/bench_*.sh: one build step and one machine line for every benchmark.

# bench_build example|bin NAME: builds it with PROFILE (default release; dev for a debug
# build) and sets $profile and $bin (the built file, under CARGO_TARGET_DIR when set).
bench_build() {
  profile=${PROFILE:-release}
  cargo build --quiet --profile "$profile" "--$1" "$2"
  local dir
  dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  if [ "$1" = example ]; then
    bin="${CARGO_TARGET_DIR:-target}/$dir/examples/$2"
  else
    bin="${CARGO_TARGET_DIR:-target}/$dir/$2"
  fi
}

# bench_machine: the line printed beside every figure (CPU, the flags that decide int8 speed,
# memory, load).
bench_machine() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|amx_tile' | tr '\n' ' ')
  echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), flags: ${flags:-none}, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
}
