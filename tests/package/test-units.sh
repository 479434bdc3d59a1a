#!/bin/bash
# tests/package/test-units.sh — offline checks of the configured systemd units:
# `systemd-analyze verify` must print nothing at all (it only warns on a typo and still exits 0),
# and `systemd-analyze security --offline=yes` must rate every service at most 1.5.
#
#   bash tests/package/test-units.sh BINARY INSTALLED_BINARY UNIT...
#
# verify insists that ExecStart='s program exists: the units name INSTALLED_BINARY (sbindir), which
# need not be installed here, so the check runs on copies where that one path is replaced by the
# built BINARY. Nothing else in the units is touched.
set -uo pipefail

bin=${1:?usage: test-units.sh BINARY INSTALLED_BINARY UNIT...}
installed=${2:?}
shift 2
max_exposure=1.5
tmp=$(mktemp -d /tmp/retentiond-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

units=()
for u in "$@"; do
	name=$(basename "$u")
	sed "s|$installed\\b|$bin|g" "$u" >"$tmp/$name"
	units+=("$tmp/$name")
	if grep -q '^ExecStart=' "$tmp/$name" && ! grep -q "^ExecStart=$bin " "$tmp/$name"; then
		fail "$name: ExecStart does not run $installed"
	fi
done

# verify: every unit at once (the timer needs its service next to it); any output is a failure.
out=$(cd "$tmp" && systemd-analyze verify --man=no "${units[@]}" 2>&1)
rc=$?
if [[ $rc -ne 0 || -n $out ]]; then
	fail "systemd-analyze verify (exit $rc) printed:"
	printf '%s\n' "$out" | sed 's/^/    /'
else
	echo "ok: systemd-analyze verify prints nothing for ${#units[@]} units"
fi

for u in "${units[@]}"; do
	[[ $u == *.service ]] || continue
	name=$(basename "$u")
	report=$(systemd-analyze security --offline=yes --no-pager "$u" 2>&1)
	exposure=$(sed -n "s/.*Overall exposure level for $name: \\([0-9.]*\\).*/\\1/p" <<<"$report")
	if [[ -z $exposure ]]; then
		fail "$name: no exposure level in the output of systemd-analyze security:"
		printf '%s\n' "$report" | sed 's/^/    /'
	elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
		echo "ok: $name exposure $exposure <= $max_exposure"
	else
		fail "$name exposure $exposure > $max_exposure; what is open:"
		grep '✗' <<<"$report" | sed 's/^/    /'
	fi
	# The same bound through systemd-analyze's own threshold (0-100 scale).
	if ! systemd-analyze security --offline=yes --no-pager --threshold=15 "$u" >/dev/null 2>&1; then
		fail "$name: systemd-analyze security --threshold=15 failed"
	fi
done

[[ $failures -eq 0 ]] && echo "all unit checks passed"
[[ $failures -eq 0 ]]
