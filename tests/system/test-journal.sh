#!/bin/bash
# test-journal.sh — the event API against a real, private systemd-journald: every event type arrives
# with its MESSAGE_ID, PRIORITY and every field, and `journalctl -x` shows its catalog entry.
# Runs journald in its own pid+mount namespace with tmpfs over every journal and catalog directory:
# the host's journal and catalog are never touched, and nothing outlives the namespace.
# usage: test-journal.sh SOURCE_ROOT EVENT_EMITTER
set -euo pipefail

if [ "${1:-}" != --inside ]; then
        SRC=$(realpath "${1:?usage: test-journal.sh SOURCE_ROOT EVENT_EMITTER}")
        EMITTER=$(realpath "${2:?usage: test-journal.sh SOURCE_ROOT EVENT_EMITTER}")
        for p in unshare timeout journalctl python3; do
                command -v "$p" >/dev/null || { echo "FAIL: $p not found" >&2; exit 1; }
        done
        [ -x /lib/systemd/systemd-journald ] || { echo "FAIL: /lib/systemd/systemd-journald not found" >&2; exit 1; }
        if ! out=$(timeout -k 5 20 unshare --pid --fork --kill-child --mount-proc --mount --propagation private -- true 2>&1); then
                echo "SKIP: cannot create a private pid+mount namespace (unshare not permitted: ${out:-no message})"
                exit 77
        fi
        exec timeout -k 5 120 unshare --pid --fork --kill-child --mount-proc --mount --propagation private -- \
                bash "$0" --inside "$SRC" "$EMITTER" "$(readlink /proc/self/ns/mnt)"
fi

# ---- inside the namespace: we are PID 1 of a fresh pid namespace, in a private mount namespace ----
SRC=$2
EMITTER=$3
HOST_MNT_NS=$4
fail() { echo "FAIL: $*" >&2; exit 1; }

# Refuse to go on unless the mounts below are private: they would hide the host's journal otherwise.
[ "$(readlink /proc/self/ns/mnt)" != "$HOST_MNT_NS" ] || fail "not in a private mount namespace"
[ $$ -eq 1 ] || fail "not PID 1 of a private pid namespace"

# A fresh /run (so nothing is created in the host's /run), and tmpfs over the persistent journal
# and the catalog database.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
for d in /var/log/journal /var/lib/systemd/catalog; do
        [ -d "$d" ] || mkdir -p "$d"
        mount -t tmpfs -o mode=0755 tmpfs "$d"
done
for d in /run /var/log/journal /var/lib/systemd/catalog; do
        [ "$(findmnt -n -o FSTYPE --target "$d")" = tmpfs ] || fail "$d is not a private tmpfs"
done
W=/run/retentiond-test
mkdir -p "$W"

# Our catalog next to the distribution's: a copy of the directory, bound over the original (in
# this namespace only), compiled into the tmpfs /var/lib/systemd/catalog.
mkdir "$W/catalog"
cp -a /usr/lib/systemd/catalog/. "$W/catalog/"
cp "$SRC/packaging/retentiond.catalog" "$W/catalog/"
mount --bind "$W/catalog" /usr/lib/systemd/catalog
journalctl --update-catalog || fail "journalctl --update-catalog failed"

/lib/systemd/systemd-journald >"$W/journald.log" 2>&1 &
JPID=$!
trap 'kill $JPID 2>/dev/null; wait $JPID 2>/dev/null || true' EXIT
for _ in $(seq 200); do
        [ -S /run/systemd/journal/socket ] && break
        sleep 0.05
done
[ -S /run/systemd/journal/socket ] || { cat "$W/journald.log" >&2; fail "journald did not come up"; }

# 1. Every event type, the PostgreSQL-style error and a plain line, with target=journal.
env -u JOURNAL_STREAM -u INVOCATION_ID "$EMITTER" all >"$W/all.out" 2>"$W/all.err" &
P_ALL=$!
wait $P_ALL || fail "event-emitter all exited with $?"
[ ! -s "$W/all.err" ] || { cat "$W/all.err" >&2; fail "event-emitter wrote to stderr: the journal send failed"; }

# 2. The AUTO target: journal under systemd (INVOCATION_ID or JOURNAL_STREAM), console otherwise.
env -u JOURNAL_STREAM INVOCATION_ID=0123456789abcdef0123456789abcdef "$EMITTER" auto 2>"$W/auto1.err" &
P_AUTO1=$!
wait $P_AUTO1 || fail "event-emitter auto (INVOCATION_ID) failed"
env -u INVOCATION_ID JOURNAL_STREAM=8:12345 "$EMITTER" auto 2>"$W/auto2.err" &
P_AUTO2=$!
wait $P_AUTO2 || fail "event-emitter auto (JOURNAL_STREAM) failed"
env -u JOURNAL_STREAM -u INVOCATION_ID "$EMITTER" auto 2>"$W/auto3.err" &
P_AUTO3=$!
wait $P_AUTO3 || fail "event-emitter auto (console) failed"

journalctl --sync || fail "journalctl --sync failed"
for p in ALL AUTO1 AUTO2 AUTO3; do
        pid_var=P_$p
        journalctl -q --no-pager -o json "_PID=${!pid_var}" SYSLOG_IDENTIFIER=retentiond >"$W/$p.json"
done

export W SRC P_ALL
python3 - <<'EOF'
import json, os, re, subprocess, sys

W, SRC, P_ALL = os.environ["W"], os.environ["SRC"], os.environ["P_ALL"]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

def value(v):
    # journalctl -o json gives non-printable values as arrays of bytes
    return bytes(v).decode() if isinstance(v, list) else v

def records(name):
    with open(os.path.join(W, name)) as f:
        return [{k: value(v) for k, v in json.loads(l).items()} for l in f if l.strip()]

def user_fields(r):
    # the caller's location is checked separately: its line numbers move with every edit
    return {k: v for k, v in r.items() if not k.startswith("_") and not k.startswith("CODE_")}

def check_location(r, func, what):
    check(r.get("CODE_FUNC") == func, f"{what}: CODE_FUNC={r.get('CODE_FUNC')!r}, expected {func!r}")
    check(r.get("CODE_FILE", "").endswith("tests/system/event-emitter.c"), f"{what}: CODE_FILE={r.get('CODE_FILE')!r}")
    check(r.get("CODE_LINE", "").isdigit(), f"{what}: CODE_LINE={r.get('CODE_LINE')!r}")

ids = dict(re.findall(r'^#define RETENTIOND_MESSAGE_(\w+) +"([0-9a-f]{32})"$',
                      open(os.path.join(SRC, "engine/event-ids.h")).read(), re.M))
check(len(ids) > 0, "no MESSAGE_IDs in event-ids.h")

def expected_fields(i, name):
    return {
        "MESSAGE": f"event {name} number {i}",
        "MESSAGE_ID": ids.get(name.upper().replace("-", "_"), f"<no define for {name}>"),
        "PRIORITY": str(i % 8),
        "SYSLOG_IDENTIFIER": "retentiond",
        "RULE": f"rule-{name}",
        "CLAUSE": f"clause-{i}",
        "TABLE": f"public.table_{i}",
        "ACTION": "delete",
        "ROWS_DELETED": str(10 * i + 1),
        "ROWS_ANONYMISED": str(10 * i + 2),
        "ROWS_HELD": str(10 * i + 3),
        "ROWS_OVERDUE": str(10 * i + 4),
        "ROWS_SKIPPED": str(10 * i + 5),
        "CUTOFF": "2024-01-02 03:04:05+00",
        "DURATION_USEC": str(1000 + i),
        "RUN_ID": str(100 + i),
        "SQLSTATE": "40P01",
        "POLICY_FILE": f"/etc/retentiond/policies.d/p-{i}.yaml",
        "POLICY_LINE": str(i + 1),
        "HOLD": f"hold-{i}",
        "KEY_FILE": f"/etc/retentiond/key-{i}",
        "SKIP_REASON": "locked",
        "ROWS_CASCADE_DELETED": str(10 * i + 6),
        "ROWS_CASCADE_NULLED": str(10 * i + 7),
        "CASCADES": f'[{{"table":"public.child_{i}"}}]',
    }

recs = records("ALL.json")
events = [r for r in recs if "MESSAGE_ID" in r]
others = [r for r in recs if "MESSAGE_ID" not in r]

# One record per event type, in enum order, each with exactly the expected fields.
check(len(events) == len(ids), f"{len(events)} events in the journal, {len(ids)} MESSAGE_IDs in event-ids.h")
seen = set()
for i, r in enumerate(events):
    m = re.fullmatch(r"event ([a-z-]+) number (\d+)", r.get("MESSAGE", ""))
    if not m:
        check(False, f"unexpected event message {r.get('MESSAGE')!r}")
        continue
    name, n = m.group(1), int(m.group(2))
    check(n == i, f"event {name}: number {n} arrived at position {i}")
    seen.add(r["MESSAGE_ID"])
    exp, got = expected_fields(n, name), user_fields(r)
    for k in sorted(set(exp) | set(got)):
        check(exp.get(k) == got.get(k), f"event {name}: {k}={got.get(k)!r}, expected {exp.get(k)!r}")
    check(r.get("_TRANSPORT") == "journal", f"event {name}: _TRANSPORT={r.get('_TRANSPORT')}")
    check_location(r, "emit_all", f"event {name}")
check(seen == set(ids.values()), f"MESSAGE_IDs never seen: {sorted(set(ids.values()) - seen)}")

# The PostgreSQL-style error and the plain line; the debug line was filtered.
exp_pg = {
    "MESSAGE": "permission denied for table bad",
    "PRIORITY": "3",
    "SYSLOG_IDENTIFIER": "retentiond",
    "SQLSTATE": "42501",
    "TABLE": "public.bad?name",
    "ROWS_DELETED": "0",
    "ERROR_DETAIL": "first detail line\nsecond detail line",
    "ERROR_HINT": "GRANT DELETE ON the table to the retentiond role.",
}
exp_plain = {"MESSAGE": "plain line 7", "PRIORITY": "6", "SYSLOG_IDENTIFIER": "retentiond"}
check(len(others) == 2, f"{len(others)} records without MESSAGE_ID, expected 2: {[r.get('MESSAGE') for r in others]}")
if len(others) == 2:
    check(user_fields(others[0]) == exp_pg, f"pg-style record: {user_fields(others[0])!r}")
    check(user_fields(others[1]) == exp_plain, f"plain record: {user_fields(others[1])!r}")
    check_location(others[0], "emit_all", "pg-style record")
    check_location(others[1], "emit_all", "plain record")

# AUTO: journal when INVOCATION_ID or JOURNAL_STREAM is set, console otherwise.
for p in ("AUTO1", "AUTO2"):
    rs = records(f"{p}.json")
    check(len(rs) == 1 and rs[0].get("MESSAGE") == "auto target: journal"
          and rs[0].get("MESSAGE_ID") == ids["DAEMON_STARTED"] and rs[0].get("PRIORITY") == "5",
          f"{p}: expected one daemon-started event in the journal, got {rs!r}")
    err = open(os.path.join(W, f"{p.lower()}.err")).read()
    check(err == "", f"{p}: stderr {err!r}")
check(records("AUTO3.json") == [], "AUTO3 (no systemd environment) logged to the journal")
err = open(os.path.join(W, "auto3.err")).read()
check(err == "retentiond: auto target: console\n", f"AUTO3 stderr {err!r}")

# journalctl -x: every event shows its catalog entry, with every @FIELD@ substituted.
catalog_vars = {}
for entry in re.split(r"^-- ", open(os.path.join(SRC, "packaging/retentiond.catalog")).read(), flags=re.M)[1:]:
    catalog_vars[entry[:32]] = set(re.findall(r"@([A-Za-z0-9_]+)@", entry))
for r in events:
    out = subprocess.run(["journalctl", "-x", "-q", "--no-pager", "-o", "short", f"_PID={P_ALL}",
                          f"MESSAGE_ID={r['MESSAGE_ID']}"], capture_output=True, text=True)
    name = r["MESSAGE"].split()[1]
    check(out.returncode == 0, f"journalctl -x for {name}: rc={out.returncode} {out.stderr}")
    check("Subject: " in out.stdout, f"journalctl -x shows no catalog Subject for {name}:\n{out.stdout}")
    check("Defined-By: retentiond" in out.stdout, f"journalctl -x: no Defined-By for {name}")
    check("Documentation: man:retentiond(8)" in out.stdout, f"journalctl -x: no Documentation for {name}")
    # journalctl shows a variable the entry lacks as its bare name, silently: check that every
    # @VAR@ of the catalog entry names a field this event carries.
    missing = catalog_vars.get(r["MESSAGE_ID"], set()) - set(r)
    check(not missing, f"catalog entry of {name} uses fields the event does not have: {sorted(missing)}")
    if name == "overdue-found":
        n = int(r["MESSAGE"].split()[-1])
        subject = f"Subject: {10 * n + 4} rows of public.table_{n} are past their retention deadline"
        check(subject in out.stdout, f"journalctl -x for overdue-found lacks {subject!r}:\n{out.stdout}")

if errors:
    print("\n".join("FAIL: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(events)} event types, pg-style and plain lines, AUTO target and catalog checked")
EOF
