#!/bin/bash
# tests/package/test-man.sh — the man pages render without a single groff/man warning, and
# retentiond(8) documents every command and long option that `retentiond --help` lists and every
# exit code of engine/exitcode.h.
#
#   bash tests/package/test-man.sh BINARY EXITCODE_H MANPAGE...
set -uo pipefail

bin=${1:?usage: test-man.sh BINARY EXITCODE_H MANPAGE...}
exitcodes=${2:?}
shift 2
command -v man >/dev/null || { echo "SKIP: man is not installed (apt-get install man-db)"; exit 77; }
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

for page in "$@"; do
	warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	rc=$?
	if [[ $rc -ne 0 || -n $warnings ]]; then
		fail "$(basename "$page") (man exit $rc):"
		printf '%s\n' "$warnings" | sed 's/^/    /'
	else
		echo "ok: $(basename "$page") renders without warnings"
	fi
done

page8=
for page in "$@"; do [[ $page == *.8 ]] && page8=$page; done
[[ -n $page8 ]] || fail "no section 8 page given"
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$page8" 2>/dev/null | sed 's/‐//g')
help=$("$bin" --help)
for opt in $(grep -oE -- '--[a-z][a-z-]+' <<<"$help" | sort -u); do
	grep -qF -- "$opt" <<<"$text" || fail "retentiond(8) does not document $opt"
done
for cmd in check audit run migrate "hold add" "hold list" "hold release" daemon verify receipt prune explain coverage; do
	grep -qE "^       $cmd( |$)" <<<"$text" || fail "retentiond(8) has no entry for the command \"$cmd\""
done
for code in $(grep -oE '/\* [0-9]+' "$exitcodes" | grep -oE '[0-9]+') 0 1; do
	grep -qE "^       $code( |$)" <<<"$text" || fail "retentiond(8) does not document exit status $code"
done
for sig in SIGHUP SIGUSR1 SIGTERM SIGINT; do
	grep -q "$sig" <<<"$text" || fail "retentiond(8) does not document $sig"
done
for var in PGHOST PGPASSFILE PGSERVICEFILE CREDENTIALS_DIRECTORY RETENTIOND_HASH_KEY_FILE RETENTIOND_CONFIG JOURNAL_STREAM \
	INVOCATION_ID NOTIFY_SOCKET WATCHDOG_USEC; do
	grep -q "$var" <<<"$text" || fail "retentiond(8) does not document \$$var"
done

[[ $failures -eq 0 ]] && echo "all man page checks passed"
[[ $failures -eq 0 ]]
