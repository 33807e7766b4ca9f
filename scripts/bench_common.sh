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

# bench_emulate: with EMULATE_CPU=avx2 or avx512, builds scripts/emulate/cpuid_mask.c and
# preloads it into every process started after this call, so they see this CPU without
# VNNI and AMX (avx2: without AVX-512 too). Call it after the builds. docs/speed.md.
bench_emulate() {
  [ -n "${EMULATE_CPU:-}" ] || return 0
  case "$EMULATE_CPU" in
    avx2 | avx512) ;;
    *) echo "EMULATE_CPU=$EMULATE_CPU: expected avx2 or avx512" >&2; exit 2 ;;
  esac
  local dir="${CARGO_TARGET_DIR:-target}/cpuid_mask"
  mkdir -p "$dir"
  cc -O2 -Wall -shared -fPIC -o "$dir/libcpuid_mask.so" scripts/emulate/cpuid_mask.c
  export CPUID_MASK="$EMULATE_CPU"
  export LD_PRELOAD
  LD_PRELOAD="$(cd "$dir" && pwd)/libcpuid_mask.so${LD_PRELOAD:+:$LD_PRELOAD}"
  # Stops here, with the shim's reason, where the CPU cannot make CPUID fault.
  env true || { echo "EMULATE_CPU=$EMULATE_CPU cannot run on this machine" >&2; exit 2; }
  echo "emulated: CPUID masked ($EMULATE_CPU: no VNNI, no AMX$([ "$EMULATE_CPU" = avx2 ] && echo ', no AVX-512')) in every process of this run; the cores, caches and clocks are this machine's"
}

# bench_machine: the line printed beside every figure (CPU, the flags that decide int8 speed,
# memory, load).
bench_machine() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|amx_tile' | tr '\n' ' ')
  echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), flags: ${flags:-none}${EMULATE_CPU:+ (real; this run hides VNNI and AMX, EMULATE_CPU=$EMULATE_CPU)}, $(free -g | awk '/Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
}
