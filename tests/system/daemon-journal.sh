#!/bin/bash
# daemon-journal.sh — one run of `retentiond daemon --log-target=journal` against a private, real
# systemd-journald, read back with `journalctl -o json`: every daemon and run event with its
# MESSAGE_ID, PRIORITY and fields. Started by tests/db/test-daemon-journal.c, which owns the
# PostgreSQL side. Must be PID 1 of its own pid+mount namespace: the host's journal is never touched.
# usage (inside unshare): daemon-journal.sh --inside HOST_MNT_NS SOURCE_ROOT RETENTIOND POLICY CONNINFO OUTDIR
set -euo pipefail
[ "${1:-}" = --inside ] || { echo "usage: see the header" >&2; exit 2; }
HOST_MNT_NS=$2 SRC=$3 BIN=$4 POLICY=$5 CONNINFO=$6 OUT=$7
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNT_NS" ] || fail "not in a private mount namespace"
[ $$ -eq 1 ] || fail "not PID 1 of a private pid namespace"

mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
[ -d /var/log/journal ] || mkdir -p /var/log/journal
mount -t tmpfs -o mode=0755 tmpfs /var/log/journal
for d in /run /var/log/journal; do
        [ "$(findmnt -n -o FSTYPE --target "$d")" = tmpfs ] || fail "$d is not a private tmpfs"
done

/lib/systemd/systemd-journald >"$OUT/journald.log" 2>&1 &
JPID=$!
DPID=
trap '[ -z "$DPID" ] || kill -KILL $DPID 2>/dev/null; kill $JPID 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 200); do
        [ -S /run/systemd/journal/socket ] && break
        sleep 0.05
done
[ -S /run/systemd/journal/socket ] || { cat "$OUT/journald.log" >&2; fail "journald did not come up"; }

msgid() { sed -n "s/^#define RETENTIOND_MESSAGE_$1 *\"\\([0-9a-f]*\\)\"/\\1/p" "$SRC/engine/event-ids.h"; }
RUN_FINISHED=$(msgid RUN_FINISHED)
[ -n "$RUN_FINISHED" ] || fail "no RUN_FINISHED in event-ids.h"

env -u JOURNAL_STREAM -u INVOCATION_ID -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID \
        "$BIN" daemon -p "$POLICY" -d "$CONNINFO" --log-target=journal 2>"$OUT/daemon.err" &
DPID=$!
finished=
for _ in $(seq 300); do
        journalctl --sync 2>/dev/null || true
        if journalctl -q --no-pager -o cat "_PID=$DPID" "MESSAGE_ID=$RUN_FINISHED" | grep -q .; then
                finished=1
                break
        fi
        kill -0 $DPID 2>/dev/null || break
        sleep 0.1
done
[ -n "$finished" ] || { cat "$OUT/daemon.err" >&2; fail "no run-finished event from the daemon within 30 s"; }

# A reload with a YAML error: rejected with its position, the old policy stays.
POLICY_REJECTED=$(msgid POLICY_REJECTED)
cp "$POLICY" "$OUT/policy.good"
printf 'version: 1\nrules:\n  old-events:\n    table: [public.events\n' >"$POLICY.tmp"
mv "$POLICY.tmp" "$POLICY"
kill -HUP $DPID
rejected=
for _ in $(seq 100); do
        journalctl --sync 2>/dev/null || true
        if journalctl -q --no-pager -o cat "_PID=$DPID" "MESSAGE_ID=$POLICY_REJECTED" | grep -q .; then
                rejected=1
                break
        fi
        sleep 0.1
done
[ -n "$rejected" ] || fail "no policy-rejected event after SIGHUP with a broken policy"
kill -TERM $DPID
rc=0
wait $DPID || rc=$?
D=$DPID
DPID=
[ $rc -eq 0 ] || { cat "$OUT/daemon.err" >&2; fail "daemon exited with $rc after SIGTERM"; }
journalctl --sync
journalctl -q --no-pager -o json "_PID=$D" SYSLOG_IDENTIFIER=retentiond >"$OUT/daemon.json"

export SRC OUT POLICY
python3 - <<'PY'
import json, os, re, sys
SRC, OUT, POLICY = os.environ["SRC"], os.environ["OUT"], os.environ["POLICY"]
ids = dict(re.findall(r'^#define RETENTIOND_MESSAGE_(\w+) +"([0-9a-f]{32})"$',
                      open(os.path.join(SRC, "engine/event-ids.h")).read(), re.M))
name_of = {v: k for k, v in ids.items()}
def value(v):
    return bytes(v).decode() if isinstance(v, list) else v
recs = [{k: value(v) for k, v in json.loads(l).items()} for l in open(os.path.join(OUT, "daemon.json")) if l.strip()]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

events = [r for r in recs if "MESSAGE_ID" in r]
order = [name_of.get(r["MESSAGE_ID"], r["MESSAGE_ID"]) for r in events]
print("events:", order)
def one(name):
    rs = [r for r in events if r["MESSAGE_ID"] == ids[name]]
    check(len(rs) == 1, f"{len(rs)} {name} events, expected 1")
    return rs[0] if rs else {}
def pos(name):
    return order.index(name) if name in order else -1

started, stopping, rejected = one("DAEMON_STARTED"), one("DAEMON_STOPPING"), one("POLICY_REJECTED")
loaded = one("POLICY_LOADED")
run_started, enforced, finished = one("RUN_STARTED"), one("RULE_ENFORCED"), one("RUN_FINISHED")
check(pos("DAEMON_STARTED") < pos("POLICY_LOADED") < pos("RUN_STARTED") < pos("RULE_ENFORCED")
      < pos("RUN_FINISHED") < pos("POLICY_REJECTED") < pos("DAEMON_STOPPING"), f"events out of order: {order}")
check(set(order) == {"DAEMON_STARTED", "POLICY_LOADED", "RUN_STARTED", "RULE_ENFORCED", "RUN_FINISHED",
                     "POLICY_REJECTED", "DAEMON_STOPPING"}, f"unexpected events: {order}")

def expect(r, what, **fields):
    for k, v in fields.items():
        check(r.get(k) == v, f"{what}: {k}={r.get(k)!r}, expected {v!r}")

run_id = run_started.get("RUN_ID", "")
check(run_id.isdigit(), f"RUN_STARTED has no RUN_ID: {run_started!r}")
expect(started, "daemon-started", PRIORITY="5", SYSLOG_IDENTIFIER="retentiond")
check(started.get("MESSAGE", "").startswith("retentiond 0.") and "1 rules from 1 policy files" in started.get("MESSAGE", ""),
      f"daemon-started MESSAGE={started.get('MESSAGE')!r}")
expect(loaded, "policy-loaded", PRIORITY="5", POLICY_FILE=POLICY, MESSAGE="policy loaded: 1 rules from 1 files")
expect(run_started, "run-started", PRIORITY="6", MESSAGE=f"run {run_id} started (daemon, 1 rules)")
expect(enforced, "rule-enforced", PRIORITY="6", RULE="old-events", TABLE="public.events", ACTION="delete",
       CLAUSE="Events are kept for 7 days", ROWS_DELETED="500", ROWS_ANONYMISED="0", ROWS_HELD="0",
       RUN_ID=run_id, POLICY_FILE=POLICY, POLICY_LINE="3",
       ROWS_CASCADE_DELETED="1000", ROWS_CASCADE_NULLED="7",
       CASCADES='[{"table":"public.event_links","rows_deleted":0,"rows_nulled":7},'
                '{"table":"public.event_tags","rows_deleted":1000,"rows_nulled":0}]',
       MESSAGE="rule old-events enforced on public.events: 500 deleted, 0 anonymised, 0 held;"
               " by cascade 1000 deleted, 7 set to NULL")
check(enforced.get("CUTOFF", "").startswith("20"), f"rule-enforced CUTOFF={enforced.get('CUTOFF')!r}")
check(enforced.get("DURATION_USEC", "").isdigit(), f"rule-enforced DURATION_USEC={enforced.get('DURATION_USEC')!r}")
expect(finished, "run-finished", PRIORITY="5", RUN_ID=run_id, ROWS_DELETED="500", ROWS_ANONYMISED="0", ROWS_HELD="0",
       ROWS_CASCADE_DELETED="1000", ROWS_CASCADE_NULLED="7",
       MESSAGE=f"run {run_id} finished: 500 deleted, 0 anonymised, 0 held, 0 of 1 rules failed")
expect(stopping, "daemon-stopping", PRIORITY="5", MESSAGE="stopping on SIGTERM")
expect(rejected, "policy-rejected", PRIORITY="3", POLICY_FILE=POLICY, POLICY_LINE="5")
check(rejected.get("MESSAGE", "").startswith(f"policy not reloaded: {POLICY}:5:1: YAML syntax error: "),
      f"policy-rejected MESSAGE={rejected.get('MESSAGE')!r}")
check(rejected.get("ERROR_DETAIL", "").startswith("While parsing a flow sequence at line 4"),
      f"policy-rejected ERROR_DETAIL={rejected.get('ERROR_DETAIL')!r}")
plain = [r.get("MESSAGE") for r in recs if "MESSAGE_ID" not in r]
check(any(m and m.startswith("policy not reloaded: the policy loaded before (1 rules) stays in force") for m in plain),
      f"no 'stays in force' line: {plain!r}")
for r in events:
    check(r.get("_TRANSPORT") == "journal", f"{name_of.get(r['MESSAGE_ID'])}: _TRANSPORT={r.get('_TRANSPORT')}")
    check(r.get("CODE_FILE", "").endswith(".c"), f"{name_of.get(r['MESSAGE_ID'])}: no CODE_FILE")
err = open(os.path.join(OUT, "daemon.err")).read()
check(err == "", f"the daemon wrote to stderr with --log-target=journal: {err!r}")
if errors:
    print("\n".join("FAIL: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
open(os.path.join(OUT, "run_id"), "w").write(run_id)
print(f"ok: run {run_id}: {len(events)} events with their MESSAGE_IDs and fields")
PY
