#!/bin/bash
# tests/fuzz/run-fuzzers.sh [SECONDS] — builds the libFuzzer targets with clang
# (-fsanitize=fuzzer,address,undefined, every sanitizer report fatal) and runs each for SECONDS
# (default 10; CI: 60) from the committed seed corpus (tests/fuzz/corpus/TARGET, which is only
# read: new inputs go to a temporary directory). Any crash, leak, undefined behaviour, timeout
# (10 s per input) or out-of-memory (2 GB) fails it; the input that did is kept in
# $FUZZ_ARTIFACTS (default build-fuzz/artifacts) and printed as a reproduction command.
# Prints, per target, the executions per second and the total executions.
#   FUZZ_BUILD_DIR (default build-fuzz), CC (default clang), FUZZ_TARGETS (default "policy duration sqlfrag")
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-10}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
artifacts=${FUZZ_ARTIFACTS:-$build/artifacts}
cc=${CC:-clang}
targets=${FUZZ_TARGETS:-policy duration sqlfrag}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
        echo "usage: $0 [SECONDS]" >&2
        exit 64
fi
if ! command -v "$cc" >/dev/null 2>&1; then
        echo "run-fuzzers: $cc not found (install clang and libclang-rt-14-dev: bash .ci/deps)" >&2
        exit 1
fi
mkdir -p "$build" "$artifacts" || exit 1

# What each target needs from engine/: the loader and its helpers, or the parser alone. When the
# engine grows, a target that no longer links fails here with the undefined symbol: add its file.
declare -A sources=(
        [policy]="policy-load.c policy.c diag.c json.c util.c ident.c duration.c sqlfrag.c"
        [duration]="duration.c"
        [sqlfrag]="sqlfrag.c util.c"
)
# The loader parses conninfo strings of `databases:` with libpq, and YAML with libyaml.
declare -A libs=([policy]="$(pkg-config --libs yaml-0.1 libpq)" [duration]="" [sqlfrag]="")
declare -A maxlen=([policy]=16384 [duration]=256 [sqlfrag]=4096)

cflags=(-std=gnu17 -g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Werror -Wno-unused-parameter -I "$root/engine" $(pkg-config --cflags libpq yaml-0.1))

# Sanitizer settings of our own, whatever the caller's environment says.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:handle_abort=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
summary=()
for t in $targets; do
        bin=$build/fuzz-$t
        srcs=()
        for s in ${sources[$t]}; do
                srcs+=("$root/engine/$s")
        done
        echo "==> building fuzz-$t"
        # shellcheck disable=SC2086
        if ! "$cc" "${cflags[@]}" -o "$bin" "$root/tests/fuzz/fuzz-$t.c" "${srcs[@]}" ${libs[$t]}; then
                echo "run-fuzzers: fuzz-$t does not build" >&2
                status=1
                continue
        fi

        work=$(mktemp -d "${TMPDIR:-/tmp}/retentiond-fuzz-$t.XXXXXX")
        log=$work/log
        echo "==> fuzz-$t for ${seconds} s (seed corpus tests/fuzz/corpus/$t)"
        "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${maxlen[$t]}" \
                -dict="$root/tests/fuzz/$t.dict" -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
                "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
        rc=$?
        execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
        rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
        rss=$(awk '/^stat::peak_rss_mb:/ {print $2}' "$log")
        new=$(awk '/^stat::new_units_added:/ {print $2}' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
        if [[ $rc -ne 0 ]] || grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: ' "$log"; then
                tail -n 60 "$log" >&2
                crash=$(ls -t "$artifacts/$t-"* 2>/dev/null | head -1)
                echo "run-fuzzers: fuzz-$t FAILED (exit $rc)${crash:+; input kept in $crash}" >&2
                [[ -n $crash ]] && echo "run-fuzzers: reproduce with: $bin $crash" >&2
                status=1
                summary+=("fuzz-$t: FAILED after ${execs:-?} executions")
        else
                summary+=("fuzz-$t: ${execs:-?} executions in ${seconds} s, ${rate:-?} exec/s, coverage ${cov:-?} edges, ${new:-0} new inputs, peak RSS ${rss:-?} MB, 0 crashes, 0 leaks")
        fi
        rm -rf "$work"
done

printf '%s\n' "${summary[@]}"
exit $status
