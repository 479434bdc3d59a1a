#!/bin/bash
# hostile-journal.sh — retentiond writing to a private, real systemd-journald, for the secrets test
# (tests/db/test-hostile.c): a run with a hash rule, a failing run, hold add and release, all with
# --log-target=journal; then every field of every entry exported to OUTDIR/journal.export for the
# test to search for the password and the key. Must be PID 1 of its own pid+mount namespace, with
# tmpfs over /run and /var/log/journal: the host's journal is never touched (as daemon-journal.sh).
# usage (inside unshare): hostile-journal.sh --inside HOST_MNT_NS RETENTIOND POLICY CONNINFO KEYFILE PGPASSFILE OUTDIR
set -euo pipefail
[ "${1:-}" = --inside ] || { echo "usage: see the header" >&2; exit 2; }
HOST_MNT_NS=$2 BIN=$3 POLICY=$4 CONNINFO=$5 KEYFILE=$6 PASSFILE=$7 OUT=$8
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNT_NS" ] || fail "not in a private mount namespace"
[ $$ -eq 1 ] || fail "not PID 1 of a private pid namespace"
[ -x /lib/systemd/systemd-journald ] || fail "/lib/systemd/systemd-journald not found"

mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
[ -d /var/log/journal ] || mkdir -p /var/log/journal
mount -t tmpfs -o mode=0755 tmpfs /var/log/journal
for d in /run /var/log/journal; do
        [ "$(findmnt -n -o FSTYPE --target "$d")" = tmpfs ] || fail "$d is not a private tmpfs"
done

/lib/systemd/systemd-journald >"$OUT/journald.log" 2>&1 &
JPID=$!
trap 'kill $JPID 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 200); do
        [ -S /run/systemd/journal/socket ] && break
        sleep 0.05
done
[ -S /run/systemd/journal/socket ] || { cat "$OUT/journald.log" >&2; fail "journald did not come up"; }

rd() {
        env -u JOURNAL_STREAM -u INVOCATION_ID PGPASSFILE="$PASSFILE" \
                "$BIN" -p "$POLICY" -d "$CONNINFO" --hash-key-file "$KEYFILE" --log-target=journal "$@"
}
step() {
        local name=$1 rc=0
        shift
        "$@" >>"$OUT/runs.out" 2>&1 || rc=$?
        echo "$name $rc" >>"$OUT/rcs"
}
step run rd run
step run-timeout rd run --statement-timeout 1
step hold-add rd hold add sec 1 --reason "journal test"
step audit rd audit
# a wrong password: the authentication error goes to the journal too
printf '*:*:*:*:not-the-password\n' >"$OUT/wrong.pgpass"
chmod 600 "$OUT/wrong.pgpass"
step wrong-password env -u JOURNAL_STREAM -u INVOCATION_ID PGPASSFILE="$OUT/wrong.pgpass" \
        "$BIN" -p "$POLICY" -d "$CONNINFO" --hash-key-file "$KEYFILE" --log-target=journal run

journalctl --sync 2>/dev/null || true
journalctl --no-pager -o export >"$OUT/journal.export"
journalctl --no-pager -o json >"$OUT/journal.json"
