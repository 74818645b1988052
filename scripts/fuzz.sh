#!/usr/bin/env bash
# The libFuzzer targets of fuzz/ (docs/reliability.md, "Fuzzing"): builds
# them into ./build-fuzz (clang-16, ASan + UBSan, coverage) and runs them.
#
#   scripts/fuzz.sh [SECONDS]        every target for SECONDS (default 30),
#                                    two at a time; fails on any crash, leak,
#                                    timeout, out-of-memory, sanitizer report
#                                    or broken property. What the suite runs.
#   scripts/fuzz.sh --long SECONDS [TARGET...]
#                                    the long run: one target at a time, at
#                                    nice 19 (one core), each until it has
#                                    used SECONDS of CPU time (at most four
#                                    times that of wall time, on a busy box);
#                                    prints and keeps (build-fuzz/long/) each
#                                    one's figures, CPU seconds included. Its
#                                    corpus carries over between long runs.
#                                    Two of these with different targets (the
#                                    second with FUZZ_SKIP_BUILD=1) use both
#                                    cores.
#   scripts/fuzz.sh --merge [TARGET...]
#                                    by hand: the repository corpus plus what
#                                    the runs found, minimized to the inputs
#                                    that add coverage, into
#                                    build-fuzz/merged/<target>/, to pick seeds
#                                    from (keep fuzz/corpus/ to a few dozen
#                                    small files per target).
#   scripts/fuzz.sh --build          builds only.
#
# The repository's corpus (fuzz/corpus/<target>/) is only read: new inputs go
# to build-fuzz/found/<target>/, crashes to build-fuzz/artifacts/. JOBS sets
# the build's parallel jobs (default 2). FUZZ_DIR names another tree than
# build-fuzz, and FUZZ_SKIP_BUILD=1 runs the programs already in its bin/
# (a long run that goes on while build-fuzz is rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(voucher_code request_checks campaign_loader config redis_records draw_log)
DIR=${FUZZ_DIR:-build-fuzz}

build() {
  if [ "${FUZZ_SKIP_BUILD:-0}" = 1 ]; then return 0; fi
  CC=clang-16 CXX=clang++-16 BUILD_DIR="$DIR" BUILD_TYPE=RelWithDebInfo \
    BUILD_TARGET=voucherd_fuzzers scripts/build.sh -DVOUCHERD_FUZZ=ON
}

# The libFuzzer flags of one target.
flags() {
  local t=$1
  local f=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    "-artifact_prefix=$DIR/artifacts/$t-")
  if [ -f "fuzz/dicts/$t.dict" ]; then f+=("-dict=fuzz/dicts/$t.dict"); fi
  # The request mutator makes ids past every bound (a few KB).
  if [ "$t" = request_checks ]; then f+=(-max_len=8192); fi
  echo "${f[@]}"
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# One run of target $1 for $2 seconds over corpus dirs $3 (written) and
# the repository's (read); log in $DIR/logs/$1.log.
run_one() {
  local t=$1 seconds=$2 work=$3
  mkdir -p "$work" "$DIR/artifacts" "$DIR/logs"
  # shellcheck disable=SC2046  # flags() is a word list
  "$DIR/bin/${t}_fuzzer" $(flags "$t") -max_total_time="$seconds" "$work" "fuzz/corpus/$t" \
    >"$DIR/logs/$t.log" 2>&1
}

# "executions exec/s corpus" of a finished run's log.
figures() {
  local log=$1
  local execs rate corpus
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2 || echo '?')
  echo "executions ${execs:-?}, ${rate:-?} exec/s, corpus ${corpus:-?}"
}

report_failure() {
  local t=$1
  echo "fuzz: $t FAILED; the end of $DIR/logs/$t.log:" >&2
  grep -v '^#[0-9]' "$DIR/logs/$t.log" | tail -40 >&2
  echo "fuzz: reproduce with $DIR/bin/${t}_fuzzer <the crash file named above>" >&2
}

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }  # the fields after the command's name
  read -r -a f <<<"$stat"
  # utime and stime are fields 14 and 15, the 12th and 13th after the name.
  echo $(((f[11] + f[12]) / $(getconf CLK_TCK)))
}

# The long run of target $1 until it has used $2 CPU seconds (libFuzzer's
# SIGINT ends a run with its final statistics, exit code 72), or four times
# $2 of wall time; the CPU seconds used go to $DIR/logs/$1.cpu.
run_long() {
  local t=$1 seconds=$2 work=$3 pid used=0
  mkdir -p "$work" "$DIR/artifacts" "$DIR/logs"
  # shellcheck disable=SC2046
  "$DIR/bin/${t}_fuzzer" $(flags "$t") -max_total_time=$((4 * seconds)) "$work" \
    "fuzz/corpus/$t" >"$DIR/logs/$t.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    used=$(cpu_seconds "$pid") || break
    echo "$used" >"$DIR/logs/$t.cpu"
    if [ "$used" -ge "$seconds" ]; then
      kill -INT "$pid"
      break
    fi
    sleep 5
  done
  local status=0
  wait "$pid" || status=$?
  if [ "$status" = 72 ]; then status=0; fi  # interrupted at its CPU budget
  return "$status"
}

case "${1:-}" in
  --build)
    build
    ;;
  --long)
    seconds=${2:?usage: scripts/fuzz.sh --long SECONDS [TARGET...]}
    shift 2
    targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    build
    mkdir -p "$DIR/long"
    status=0
    for t in "${targets[@]}"; do
      started=$(date +%s)
      if nice -n 19 "$0" --run-long "$t" "$seconds" "$DIR/long-corpus/$t"; then result=ok; else
        result=FAILED
        status=1
        report_failure "$t"
      fi
      ran=$(($(date +%s) - started))
      crashes=$(find "$DIR/artifacts" -name "$t-*" 2>/dev/null | wc -l)
      cpu=$(cat "$DIR/logs/$t.cpu" 2>/dev/null || echo '?')
      line="$t: $result, ${ran} s of wall time, ${cpu} s of CPU, $(figures "$DIR/logs/$t.log"), crash files $crashes"
      echo "$line" | tee -a "$DIR/long/figures.txt"
      cp "$DIR/logs/$t.log" "$DIR/long/$t-$(date +%Y%m%dT%H%M%S).log"
    done
    exit $status
    ;;
  --run-long)  # internal: --long runs each target niced through this
    run_long "$2" "$3" "$4"
    ;;
  --merge)
    shift
    targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    build
    for t in "${targets[@]}"; do
      rm -rf "$DIR/merged/$t"
      mkdir -p "$DIR/merged/$t" "$DIR/found/$t" "$DIR/long-corpus/$t"
      # shellcheck disable=SC2046
      "$DIR/bin/${t}_fuzzer" $(flags "$t") -merge=1 "$DIR/merged/$t" "fuzz/corpus/$t" \
        "$DIR/found/$t" "$DIR/long-corpus/$t" >"$DIR/logs/$t-merge.log" 2>&1
      echo "$t: $(find "$DIR/merged/$t" -type f | wc -l) inputs in $DIR/merged/$t"
    done
    ;;
  *)
    seconds=${1:-30}
    build
    rm -rf "$DIR/artifacts"
    declare -A pids=()
    failed=()
    reap() {
      local pid t
      for pid in "${!pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
          t=${pids[$pid]}
          unset "pids[$pid]"
          if wait "$pid"; then echo "fuzz: $t ok, $(figures "$DIR/logs/$t.log")"; else
            failed+=("$t")
            report_failure "$t"
          fi
        fi
      done
    }
    for t in "${TARGETS[@]}"; do
      while [ ${#pids[@]} -ge 2 ]; do
        sleep 1
        reap
      done
      run_one "$t" "$seconds" "$DIR/found/$t" &
      pids[$!]=$t
    done
    while [ ${#pids[@]} -gt 0 ]; do
      sleep 1
      reap
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: FAILED: ${failed[*]}" >&2
      exit 1
    fi
    echo "fuzz: every target ran ${seconds} s without a finding"
    ;;
esac
