#!/bin/bash
# tests/static/run-static.sh — the static checks of engine/: clang-tidy (engine/.clang-tidy, with
# the compile commands of the normal build), cppcheck (warning, performance, portability), and
# gcc -fanalyzer (a separate build with -Dc_args=-fanalyzer, warnings are errors). Each must be
# clean; a finding is fixed in the code, or suppressed inline with the reason next to it.
#   BUILD_DIR (default build; configured when missing), ANALYZER_BUILD_DIR (default build-analyzer),
#   STATIC_JOBS (processes for each check; default: the number of cores)
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
build=${BUILD_DIR:-$root/build}
abuild=${ANALYZER_BUILD_DIR:-$root/build-analyzer}
jobs=${STATIC_JOBS:-$(nproc)}
status=0
summary=()

if [[ ! -f $build/compile_commands.json ]]; then
        meson setup "$build" >/dev/null || { echo "run-static: cannot configure $build" >&2; exit 1; }
fi
# Generated sources (migrations.c) must exist for the checks to see the whole program.
meson compile -C "$build" >/dev/null || { echo "run-static: $build does not build" >&2; exit 1; }

sources=(engine/*.c)

# 1. clang-tidy. GCC-only warning flags of the build are unknown to clang: not a finding.
echo "==> clang-tidy (engine/.clang-tidy) on ${#sources[@]} files"
log=$(mktemp)
logs=$(mktemp -d)
# One clang-tidy per job (core), a few files each: it is the slowest of the three checks. Each writes
# its own log (no interleaved lines), gathered in the files' order; any finding fails xargs.
export build logs
if printf '%s\0' "${sources[@]}" |
        xargs -0 -n 4 -P "$jobs" sh -c 'clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option "$@" \
                >"$logs/$(basename "$1").log" 2>&1' clang-tidy; then
        summary+=("clang-tidy: clean (${#sources[@]} files)")
else
        cat "$logs"/*.log >"$log" 2>/dev/null
        # A header's finding is reported by every process that included it: once each here.
        grep -E "^(/|\.\./|engine/).*(warning|error):" "$log" | sort -u >&2 || cat "$log" >&2
        n=$(grep -E "(warning|error):" "$log" | sort -u | wc -l)
        summary+=("clang-tidy: $n findings")
        status=1
fi
rm -f "$log"
rm -rf "$logs"

# 2. cppcheck.
echo "==> cppcheck --enable=warning,performance,portability"
log=$(mktemp)
if cppcheck -j "$jobs" --enable=warning,performance,portability --error-exitcode=1 --inline-suppr --quiet \
        --std=c11 -D_GNU_SOURCE -D__GNUC__ -I engine -I "$build" --suppress=missingIncludeSystem \
        "${sources[@]}" >"$log" 2>&1; then
        summary+=("cppcheck: clean (${#sources[@]} files)")
else
        cat "$log" >&2
        summary+=("cppcheck: $(grep -c "^engine/" "$log") findings")
        status=1
fi
rm -f "$log"

# 3. gcc -fanalyzer: the whole build (the engine and its tests), warnings are errors.
echo "==> gcc -fanalyzer ($abuild)"
if [[ -f $abuild/build.ninja ]]; then
        meson setup --reconfigure "$abuild" -Dwerror=true -Dc_args=-fanalyzer >/dev/null
else
        meson setup "$abuild" -Dwerror=true -Dc_args=-fanalyzer >/dev/null
fi
log=$(mktemp)
if meson compile -C "$abuild" -j "$jobs" engine/retentiond >"$log" 2>&1; then
        summary+=("gcc -fanalyzer: clean")
else
        grep -E "warning:|error:" "$log" >&2 || tail -40 "$log" >&2
        summary+=("gcc -fanalyzer: $(grep -c "analyzer-" "$log") findings")
        status=1
fi
rm -f "$log"

printf '%s\n' "${summary[@]}"
exit $status
