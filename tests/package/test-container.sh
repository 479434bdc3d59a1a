#!/bin/bash
# tests/package/test-container.sh — the Debian package under real systemd: builds the .deb (of the
# working tree, like every other test: packaging/build-deb --worktree), boots
# systemd in a throw-away systemd-nspawn container (a volatile overlay of the host's own root), installs
# the package with apt, starts a PostgreSQL inside, and checks what an operator relies on: units
# enabled but inactive until configured, the catalog registered, the daemon started after READY=1
# with a meaningful status, rows due enforced, structured journal events with catalog text, the
# commands of a root shell working with the package's configuration, a broken reload failing while
# the daemon keeps its policy (and says so in its status), a writable policy file reported, a
# reinstallation (an upgrade) restarting the daemon without a warning, and refusing to restart it
# into a broken policy, the watchdog restarting a hung daemon, a clean stop, credentials reaching
# the service and peer authentication working under PrivateUsers=yes.
#
#   bash tests/package/test-container.sh SOURCE_ROOT
#
# The boot happens inside `unshare --pid --fork --kill-child --mount --propagation private` under
# `timeout`: this script is PID 1 of that namespace, so nothing it started can outlive it, and every
# mount it makes vanishes with the namespace. nspawn runs from a sub-cgroup that is removed at the
# end. Never creates /run/systemd/system on the host. Exit 77 (skip) only without root or tools.
set -uo pipefail   # (so never `producer | grep -q`: an early grep exit fails the pipe with SIGPIPE)

src=${1:?usage: test-container.sh SOURCE_ROOT}
src=$(cd "$src" && pwd)

skip() {
	echo "SKIP: $*"
	exit 77
}

# ============================================================================ outside the namespace
if [[ ${2:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || skip "needs root (systemd-nspawn, unshare, apt inside the container)"
	for t in unshare nsenter systemd-nspawn dpkg-buildpackage timeout; do
		command -v "$t" >/dev/null || skip "$t is not installed (apt-get install systemd-container dpkg-dev)"
	done
	[[ -x /usr/lib/postgresql/15/bin/postgres ]] || skip "PostgreSQL 15 server is not installed"
	unshare --pid --fork --mount --propagation private true 2>/dev/null ||
		skip "cannot create pid and mount namespaces here (unshare refused)"

	t0=$(date +%s)
	work=$(mktemp -d /tmp/retentiond-pkgtest.XXXXXX)
	echo "# building the .deb (DEB_BUILD_OPTIONS=nocheck: the unit suite runs on its own)"
	if ! deb=$(DEB_BUILD_OPTIONS=nocheck bash "$src/packaging/build-deb" --worktree "$work/payload" 2>"$work/build.err" | tail -1) ||
	   [[ ! -f $deb ]]; then
		cat "$work/build.err"
		echo "FAIL: packaging/build-deb"
		rm -rf "$work"
		exit 1
	fi
	echo "# built $(basename "$deb") in $(($(date +%s) - t0)) s"
	timeout -k 10 420 unshare --pid --fork --kill-child --mount-proc --mount --propagation private -- \
		bash "$0" "$src" --inner "$work" "$(basename "$deb")"
	rc=$?
	[[ $rc -eq 124 || $rc -eq 137 ]] && echo "FAIL: the container test timed out"
	# The bind mount of / existed only in the (now gone) private mount namespace; check anyway
	# before removing anything: never rm -r through a bind of /.
	if mountpoint -q "$work/root" 2>/dev/null; then
		echo "FAIL: $work/root is still a mount point; leaving $work alone"
		exit 1
	fi
	# Nothing may outlive the test: no process, mount or cgroup of it.
	left=$(grep -F "$work" /proc/self/mountinfo)
	[[ -n $left ]] && { echo "FAIL: mounts left behind:"; echo "$left"; rc=1; }
	# (this run's own: another run of this test may be going on at the same time)
	left=$(find /sys/fs/cgroup/systemd /sys/fs/cgroup/unified -maxdepth 1 -name "retentiond-pkgtest-${work##*.}" 2>/dev/null)
	[[ -n $left ]] && { echo "FAIL: cgroups left behind:"; echo "$left"; rc=1; }
	left=$(pgrep -f "$work" | grep -vx $$)
	[[ -n $left ]] && { echo "FAIL: processes left behind:"; ps -o pid,args -p "${left//$'\n'/,}"; rc=1; }
	[[ $rc -eq 0 ]] && echo "ok: no process, mount or cgroup left behind"
	rm -rf "$work"
	echo "# container test took $(($(date +%s) - t0)) s in all"
	exit $rc
fi

# ============================================================================ inside the namespace
work=$3
debname=$4
mkdir -p /run/systemd/nspawn "$work/root"
mount -t tmpfs tmpfs /run/systemd/nspawn   # nspawn's host-side lock dirs, private to this namespace
mount --bind / "$work/root"                # non-recursive: nspawn adds /proc, /sys, /dev, /run, /tmp

# nspawn --keep-unit creates payload/ and supervisor/ cgroups below the caller's: start from our own
# sub-cgroup so they can all be removed afterwards.
cgname=retentiond-pkgtest-${work##*.}   # the outer part checks that this one is gone
for h in systemd unified; do
	[[ -d /sys/fs/cgroup/$h ]] || continue
	mkdir "/sys/fs/cgroup/$h/$cgname" && echo 0 >"/sys/fs/cgroup/$h/$cgname/cgroup.procs"
done

t0=$(date +%s%N)
el() { local d=$((($(date +%s%N) - t0) / 100000000)); printf '%4d.%ds' $((d / 10)) $((d % 10)); }
systemd-nspawn -D "$work/root" --volatile=overlay --register=no --keep-unit --private-network \
	--link-journal=no --console=pipe --bind-ro="$work/payload:/payload" \
	-b -- systemd.mask=postgresql.service systemd.mask=postgresql@15-main.service \
	</dev/null >"$work/console.log" 2>&1 &
nspawn=$!
L=
cleanup() {
	if kill -0 "$nspawn" 2>/dev/null; then
		[[ -n $L ]] && kill -RTMIN+4 "$L" 2>/dev/null   # container PID 1: power off
		for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
		kill -TERM "$nspawn" 2>/dev/null; sleep 1; kill -TERM "$nspawn" 2>/dev/null
		sleep 1; [[ -n $L ]] && kill -KILL "$L" 2>/dev/null; kill -KILL "$nspawn" 2>/dev/null
	fi
	wait "$nspawn" 2>/dev/null
	for h in systemd unified; do
		[[ -d /sys/fs/cgroup/$h/$cgname ]] || continue
		echo 0 >"/sys/fs/cgroup/$h/cgroup.procs"
		find "/sys/fs/cgroup/$h/$cgname" -depth -type d -exec rmdir {} + 2>/dev/null
		[[ -d /sys/fs/cgroup/$h/$cgname ]] && echo "FAIL: cgroup $h/$cgname could not be removed"
	done
	umount "$work/root" 2>/dev/null
}
trap cleanup EXIT

failures=0
ok() { echo "ok   $(el) $*"; }
bad() { echo "FAIL $(el) $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: a passing command is ok, a failing one a failure.
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
	echo "# $failures failure(s) after $(el)"
	if [[ $failures -ne 0 ]]; then
		echo "--- journal of the container (retentiond units, last 60 lines)"
		C journalctl --no-pager -o short-monotonic -u retentiond -u retentiond-audit -n 60 2>/dev/null
		echo "--- console (last 20 lines)"
		tail -20 "$work/console.log"
	fi
	C systemctl poweroff --no-block >/dev/null 2>&1
	for _ in $(seq 150); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
	[[ $failures -eq 0 ]]
	exit $?
}

for _ in $(seq 200); do
	L=$(ps -o pid= --ppid "$nspawn" | tr -d ' ' | head -1)
	[[ -n $L && $(cat "/proc/$L/comm" 2>/dev/null) == systemd ]] && break
	L=
	sleep 0.05
done
[[ -n $L ]] || { echo "FAIL: the container's systemd did not start"; cat "$work/console.log"; exit 1; }
C() { timeout 90 nsenter -t "$L" -a "$@"; }
prop() { C systemctl show -P "$2" "$1"; }      # prop UNIT PROPERTY
sql() { C runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d demo -c "$1"; }
journal_count() { C journalctl --no-pager -q -o cat "$@" | grep -c .; }
wait_for() {    # wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds
	local n=$(($1 * 5))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
	return 1
}

for _ in $(seq 200); do C test -S /run/systemd/private 2>/dev/null && break; sleep 0.05; done
state=$(C systemctl is-system-running --wait)
echo "# container booted ($state) after $(el)"

# ---- 1. install ---------------------------------------------------------------------------------
C rm -f /usr/sbin/policy-rc.d   # the image's docker-style "exit 101" policy (container copy only)
if C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/payload/$debname" \
	>"$work/apt.log" 2>&1; then
	ok "apt-get install ./$debname"
else
	cat "$work/apt.log"
	bad "apt-get install ./$debname"
	finish
fi
check "the retentiond system user and group exist" C getent passwd retentiond
check "retentiond.service is enabled" test "$(prop retentiond.service UnitFileState)" = enabled
check "retentiond-audit.timer is enabled" test "$(prop retentiond-audit.timer UnitFileState)" = enabled
check "retentiond-audit.timer is active (waiting)" \
	test "$(prop retentiond-audit.timer ActiveState)/$(prop retentiond-audit.timer SubState)" = active/waiting
check "retentiond.service is not running before it is configured (ConditionPathExistsGlob)" \
	test "$(prop retentiond.service ActiveState)" = inactive
check "... and its start was skipped by the condition, not failed" \
	test "$(prop retentiond.service ConditionResult)" = no
catalog_listed() { C journalctl --list-catalog 3f1db265df7d445ba190d10062d7e7d8 | grep 'Retention rule' >/dev/null; }
check "the catalog is registered (journalctl --list-catalog)" catalog_listed
keymsg() { grep -F 'generated a new key for the "hash" anonymisation method' "$work/apt.log" >/dev/null; }
check "the installation announced the new hash key" keymsg
for f in /usr/sbin/retentiond /usr/share/man/man8/retentiond.8.gz /usr/share/man/man5/retentiond.policy.5.gz \
	/usr/share/doc/retentiond/examples/company.yaml /usr/share/doc/retentiond/README.md.gz /etc/retentiond/retentiond.conf \
	/usr/share/retentiond/retention/001-init.sql /usr/share/retentiond/retentiond-role.sql \
	/usr/share/retentiond/demo/schema.sql /usr/share/retentiond/demo/data.sql \
	/usr/lib/systemd/catalog/retentiond.catalog; do
	check "installed: $f" C test -s "$f"
done
check "the example policy is no conffile, and not in /etc" \
	test "$(C dpkg-query -W -f='${Conffiles}' retentiond | grep -c example)/$(C ls /etc/retentiond/policies.d)" = 0/
check "/etc/retentiond/retentiond.conf is 0640 root:retentiond" \
	test "$(C stat -c '%a %U:%G' /etc/retentiond/retentiond.conf)" = "640 root:retentiond"
check "/etc/retentiond/policies.d is 0750 root:retentiond" \
	test "$(C stat -c '%a %U:%G' /etc/retentiond/policies.d)" = "750 root:retentiond"
check "a hash key was generated, 0600 root:root" \
	test "$(C stat -c '%a %U:%G' /etc/retentiond/hash-key)" = "600 root:root"
check "an empty pgpass exists, 0600 root:root" \
	test "$(C stat -c '%a %U:%G %s' /etc/retentiond/pgpass)" = "600 root:root 0"
# A reinstallation (what an upgrade does) before anything is configured: quiet, and the key stays.
key0=$(C md5sum /etc/retentiond/hash-key)
if C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --reinstall "/payload/$debname" \
	>"$work/reinstall.log" 2>&1; then
	ok "apt-get install --reinstall ./$debname"
else
	cat "$work/reinstall.log"
	bad "apt-get install --reinstall ./$debname"
fi
warned=$(grep -i -E 'warn|error|^E:' "$work/reinstall.log")
check "... printed no warning (was: \"Stopping retentiond-audit.service, but it can still be activated by\")${warned:+: $warned}" \
	test -z "$warned"
check "... kept the hash key and did not announce a new one" \
	bash -c '[[ $1 == "$2" ]] && ! grep -q "generated a new key" "$3"' _ "$(C md5sum /etc/retentiond/hash-key)" "$key0" "$work/reinstall.log"
check "retentiond-audit.timer is still active (waiting)" \
	test "$(prop retentiond-audit.timer ActiveState)/$(prop retentiond-audit.timer SubState)" = active/waiting
exposure=$(C systemd-analyze security --no-pager retentiond.service | sed -n 's/.*Overall exposure level for retentiond.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security of the installed unit: ${exposure:-?} <= 1.5" \
	awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 1.5) }'

# ---- 1b. retentiond.conf means to the commands what it means to systemd's EnvironmentFile= -------
# The same cases as tests/unit/test-conf.c, which checks engine/conf.c against these values: here
# real systemd reads them.
C tee /run/envfile.conf >/dev/null <<'EOF'
A='x y '
B="a \"q\" \\ \` \$HOME \n"
C="x"'y'z
D=one \
 two
E=x # not a comment
# comment \
F=hidden
G=a\ b
  KEY  =   a b  c   
9LIVES=x
H=\'x\'
EOF
C systemd-run --quiet --wait --pipe -p EnvironmentFile=/run/envfile.conf -p Type=oneshot /usr/bin/env -0 \
	>"$work/envfile.out" 2>"$work/envfile.err"
envfile_same() {
	python3 - "$work/envfile.out" <<'EOF'
import sys
env = dict(e.split("=", 1) for e in open(sys.argv[1]).read().split("\0") if "=" in e)
keys = ("A", "B", "C", "D", "E", "F", "G", "KEY", "9LIVES", "H")
want = ["x y ", 'a "q" \\ ` $HOME \\n', "xyz", "one  two", "x # not a comment", None, "a b", "a b  c", None, "'x'"]
got = [env.get(k) for k in keys]
for k, g, w in zip(keys, got, want):
    if g != w:
        print(f"    {k}: systemd says {g!r}, test-conf.c says {w!r}")
sys.exit(got != want)
EOF
}
check "systemd's EnvironmentFile= reads the cases of tests/unit/test-conf.c as that test says" envfile_same

# ---- 2. a PostgreSQL inside the container, the demo database, the engine's role -----------------
C runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /var/tmp/pgdata -A peer \
	--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log"; bad "initdb"; finish; }
start_postgres() {
	C systemd-run --quiet --unit=test-postgres -p Type=notify -p User=postgres -p RuntimeDirectory=postgresql \
		/usr/lib/postgresql/15/bin/postgres -D /var/tmp/pgdata -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories=/run/postgresql -c fsync=off
}
if start_postgres; then
	ok "PostgreSQL 15 started in the container (unix socket and 127.0.0.1)"
else
	bad "PostgreSQL did not start"
	finish
fi
C runuser -u postgres -- createdb demo
C runuser -u postgres -- retentiond -d dbname=demo -q migrate >"$work/migrate.log" 2>&1 &&
	ok "retentiond migrate (as postgres, peer authentication)" || { cat "$work/migrate.log"; bad "migrate"; }
if C runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d demo -f /usr/share/retentiond/demo/schema.sql \
	>"$work/demo.log" 2>&1 &&
   C runuser -u postgres -- psql -X -q -1 -v ON_ERROR_STOP=1 -d demo -f /usr/share/retentiond/demo/data.sql \
	>>"$work/demo.log" 2>&1 &&
   C runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d demo -v role=retentiond \
	-v tables='app.access_log, app.accounts, app.support_tickets, app.contact_messages, app.chat_transcripts, app.invoices' \
	-v read_tables='app.invoices' -f /usr/share/retentiond/retentiond-role.sql >>"$work/demo.log" 2>&1; then
	ok "demo data loaded, least-privilege role retentiond created"
else
	cat "$work/demo.log"
	bad "loading the demo database"
	finish
fi
password=pw-$RANDOM$RANDOM
sql "ALTER ROLE retentiond PASSWORD '$password'"

# ---- 3. configure: policy, connection (TCP + password from the pgpass credential) --------------
C install -m 0640 -g retentiond /usr/share/doc/retentiond/examples/company.yaml /etc/retentiond/policies.d/company.yaml
printf 'PGHOST=127.0.0.1\nPGPORT=5432\nPGDATABASE=demo\nPGUSER=retentiond\n' |
	C tee /etc/retentiond/retentiond.conf >/dev/null
echo "127.0.0.1:5432:demo:retentiond:$password" | C tee /etc/retentiond/pgpass >/dev/null
# The audit unit connects over the unix socket with peer authentication instead: the proof that
# PrivateUsers=yes leaves the kernel's peer credentials intact.
C mkdir -p /etc/systemd/system/retentiond-audit.service.d /etc/systemd/system/retentiond.service.d
printf 'PGHOST=/run/postgresql\n' | C tee /etc/retentiond/peer.conf >/dev/null
printf '[Service]\nEnvironmentFile=/etc/retentiond/peer.conf\n' |
	C tee /etc/systemd/system/retentiond-audit.service.d/50-test.conf >/dev/null
# A short watchdog, so that the hang test below takes seconds; no core dumps of the aborted daemon.
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\nLimitCORE=0\n' |
	C tee /etc/systemd/system/retentiond.service.d/50-test.conf >/dev/null
C systemctl daemon-reload

old_logs=$(sql "SELECT count(*) FROM app.access_log WHERE requested_at < now() - interval '7 days'")
email266=$(sql "SELECT email FROM app.accounts WHERE id = 266")   # tax-held: hashed while held
hashed0=$(sql "SELECT count(*) FROM app.accounts WHERE email LIKE 'hmac-sha256:%'")
echo "# before: $old_logs access-log rows older than 7 days, $hashed0 hashed e-mail addresses"

# ---- 4. the daily audit (dry run), before enforcement: overdue rows make it fail ----------------
C systemctl start retentiond-audit.service >/dev/null 2>&1
check "retentiond-audit.service (peer auth under PrivateUsers=yes) exits 1: overdue rows found" \
	test "$(prop retentiond-audit.service ExecMainStatus)" = 1
overdue=$(C journalctl --no-pager -q -o json -u retentiond-audit.service MESSAGE_ID=9135d17c444f4a6eaa4e0272810ada97 |
	python3 -c 'import json,sys; print(" ".join(sorted("%s=%s" % (e.get("RULE"), e.get("ROWS_OVERDUE")) for e in map(json.loads, sys.stdin))))')
check "the audit logged overdue-found with RULE and ROWS_OVERDUE ($overdue)" \
	test "$overdue" = "account-deletion=14"
check "the audit changed nothing" \
	test "$(sql "SELECT count(*) FROM app.access_log WHERE requested_at < now() - interval '7 days'")" = "$old_logs"

# ---- 5. start: returns after READY=1 ------------------------------------------------------------
ts=$(date +%s%N)
if C systemctl start retentiond.service; then
	ok "systemctl start retentiond returned (after READY=1) in $((($(date +%s%N) - ts) / 1000000)) ms"
else
	bad "systemctl start retentiond"
	finish
fi
check "retentiond is active (running)" \
	test "$(prop retentiond.service ActiveState)/$(prop retentiond.service SubState)" = active/running
status=$(prop retentiond.service StatusText)
check "StatusText after start is meaningful: \"$status\"" \
	bash -c '[[ $1 =~ (no run yet|last run|running|waiting for database) ]]' _ "$status"
loaded() { (($(journal_count -u retentiond MESSAGE_ID=071a91f1e2cb4ac88d819e49e36d3be4) >= $1)); }
check "the policy-loaded event was logged" wait_for 10 loaded 1

# ---- 6. enforcement: SIGUSR1 runs every rule now -------------------------------------------------
C systemctl kill -s USR1 --kill-whom=main retentiond.service
enforced() {
	[[ $(sql "SELECT count(*) FROM app.access_log WHERE requested_at < now() - interval '7 days'") == 0 &&
	   $(sql "SELECT count(*) FROM app.accounts WHERE email LIKE 'hmac-sha256:%'") -gt 0 ]] &&
	[[ $(prop retentiond.service StatusText) == *"last run"* ]]
}
check "rows due were enforced: access-log rows older than 7 days 0 (were $old_logs)" wait_for 60 enforced
check "accounts: 19 deletable deleted (281 left)" test "$(sql 'SELECT count(*) FROM app.accounts')" = 281
check "the hash credential reached the service: 20 held accounts have HMAC e-mails" \
	test "$(sql "SELECT count(*) FROM app.accounts WHERE email LIKE 'hmac-sha256:%'")" = 20
# The exact HMAC with the key the package generated: only the hash-key credential could give it
# (the unit passes no --hash-key-file and sets no RETENTIOND_HASH_KEY_FILE).
expected=$(C cat /etc/retentiond/hash-key | python3 -c '
import hashlib, hmac, sys
key = sys.stdin.buffer.read()
key = key[:-1] if key.endswith(b"\n") else key
print("hmac-sha256:" + hmac.new(key, sys.argv[1].encode(), hashlib.sha256).hexdigest())' "$email266")
check "account 266's e-mail is the HMAC-SHA256 under /etc/retentiond/hash-key" \
	test "$(sql "SELECT email FROM app.accounts WHERE id = 266")" = "$expected"
check "the pgpass credential reached the service: it logged in over TCP with the password only it holds" \
	test "$(sql "SELECT count(*) FROM retention.runs WHERE mode = 'daemon'")" -ge 1
status=$(prop retentiond.service StatusText)
check "StatusText after the run: \"$status\"" bash -c '[[ $1 == *"last run"*deleted* ]]' _ "$status"
check "the daemon's run is in the audit trail (retention.runs, mode daemon)" test "$(sql "SELECT count(*) FROM retention.runs WHERE mode = 'daemon' AND outcome <> 'running'")" -ge 1
check "run-requested (SIGUSR1) was logged" \
	test "$(journal_count -u retentiond MESSAGE_ID=785c459a1ec749af9af0dd706556fdf8)" -ge 1
events=$(C journalctl --no-pager -q -o json -u retentiond MESSAGE_ID=3f1db265df7d445ba190d10062d7e7d8 |
	python3 -c '
import json, sys
for e in map(json.loads, sys.stdin):
    if "RULE" in e and "ROWS_DELETED" in e:
        print("%s=%s" % (e["RULE"], e["ROWS_DELETED"]))' | sort -u | tr '\n' ' ')
check "journalctl -o json: rule-enforced events with RULE and ROWS_DELETED ($events)" \
	bash -c '[[ " $1" == *" access-logs=4400 "* ]]' _ "$events"
explained() {
	C journalctl -x --no-pager -u retentiond MESSAGE_ID=3f1db265df7d445ba190d10062d7e7d8 |
		grep 'This is the normal outcome' >/dev/null
}
check "journalctl -x shows the catalog text of rule-enforced" explained

# ---- 6b. the commands of a root shell use the service's configuration ----------------------------
# retentiond.conf says 127.0.0.1, demo, retentiond; the password is only in /etc/retentiond/pgpass.
# Without reading them, root would connect as "root" over the default socket.
if C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond audit --rule access-logs >"$work/audit.out" 2>&1; then
	ok "retentiond audit --rule access-logs from a root shell (exit 0): $(grep -c . "$work/audit.out") lines"
else
	cat "$work/audit.out"
	bad "retentiond audit --rule access-logs from a root shell"
fi
check "... and it audited rule access-logs" grep -q 'access-logs' "$work/audit.out"
# run needs the hash key for this rule: root's retentiond takes /etc/retentiond/hash-key, the key
# the service has as its credential.
if C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond run --rule account-deletion >"$work/run.out" 2>&1; then
	ok "retentiond run --rule account-deletion (a hash rule) from a root shell (exit 0)"
else
	cat "$work/run.out"
	bad "retentiond run --rule account-deletion from a root shell"
fi
# What the catalog suggests for a rule-failed event: check against the service's database.
if C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond check -d "" >"$work/checkdb.out" 2>&1; then
	ok "retentiond check -d \"\" (the catalog's suggestion) from a root shell (exit 0)"
else
	cat "$work/checkdb.out"
	bad "retentiond check -d \"\" from a root shell"
fi
if C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond hold list >"$work/holds.out" 2>&1; then
	ok "retentiond hold list from a root shell (exit 0)"
else
	cat "$work/holds.out"
	bad "retentiond hold list from a root shell"
fi
C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond --no-config hold list >"$work/noconf.out" 2>&1
rc=$?
check "retentiond --no-config hold list does not reach the database from a root shell (exit $rc: 69 or 77)" \
	bash -c '[[ $1 == 69 || $1 == 77 ]]' _ "$rc"
C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin PGPORT=5433 retentiond hold list >"$work/envwins.out" 2>&1
check "the caller's environment wins over retentiond.conf (PGPORT=5433: $(head -1 "$work/envwins.out" | cut -c1-100))" \
	grep -q '"127.0.0.1", port 5433 failed' "$work/envwins.out"

# ---- 7. reload with a broken policy: the reload fails, the old policy stays, the status says so ---
pid=$(prop retentiond.service MainPID)
rejected0=$(journal_count -u retentiond MESSAGE_ID=4be4393930074e2f8459430ea8fdb654)
printf 'version: 1\nrules:\n  broken:\n    retian: 7 days\n' |
	C install -m 0640 -g retentiond /dev/stdin /etc/retentiond/policies.d/zz-broken.yaml
C systemctl reload retentiond.service >"$work/reload.out" 2>&1
rc=$?
check "systemctl reload with an invalid policy on disk fails (exit $rc: $(head -1 "$work/reload.out" | cut -c1-80))" test "$rc" -ne 0
checked() {
	C journalctl --no-pager -q -o cat -u retentiond | grep -F '/etc/retentiond/policies.d/zz-broken.yaml:4:5: error: unknown key "retian"' >/dev/null
}
check "the reload's check logged FILE:LINE:COLUMN to the unit's journal" wait_for 10 checked
rejected() { (($(journal_count -u retentiond MESSAGE_ID=4be4393930074e2f8459430ea8fdb654) > rejected0)); }
check "the daemon logged policy-rejected" wait_for 10 rejected
rej=$(C journalctl --no-pager -q -o json -u retentiond MESSAGE_ID=4be4393930074e2f8459430ea8fdb654 |
	python3 -c 'import json,sys; print(sorted({json.loads(l).get("POLICY_FILE","") for l in sys.stdin}))')
check "... naming the broken file ($rej)" bash -c '[[ $1 == *zz-broken.yaml* ]]' _ "$rej"
check "still active after the broken reload" test "$(prop retentiond.service ActiveState)" = active
check "same MainPID after the broken reload ($pid)" test "$(prop retentiond.service MainPID)" = "$pid"
disk_invalid() {
	[[ $(prop retentiond.service StatusText) =~ ^"policy on disk invalid since "[0-9][0-9]:[0-9][0-9]" ("[0-9]+" errors, first /etc/retentiond/policies.d/zz-broken.yaml:4:5), running the one loaded at "[0-9][0-9]:[0-9][0-9]"; last run " ]]
}
check "StatusText says the policy on disk is invalid: \"$(prop retentiond.service StatusText)\"" wait_for 5 disk_invalid
# The old policy is still enforced: a run of every rule of it.
runs0=$(sql "SELECT count(*) FROM retention.runs WHERE mode = 'daemon' AND outcome <> 'running'")
rules0=$(sql "SELECT count(*) FROM retention.rule_runs WHERE run_id = (SELECT min(id) FROM retention.runs WHERE mode = 'daemon')")
C systemctl kill -s USR1 --kill-whom=main retentiond.service
ran_again() { (($(sql "SELECT count(*) FROM retention.runs WHERE mode = 'daemon' AND outcome <> 'running'") > runs0)); }
check "the old policy is still enforced: SIGUSR1 ran a run" wait_for 30 ran_again
check "... of all $rules0 rules of the old policy" \
	test "$(sql "SELECT count(*) FROM retention.rule_runs WHERE run_id = (SELECT max(id) FROM retention.runs WHERE mode = 'daemon')")" = "$rules0"

# ---- 7b. an upgrade (reinstallation) with the broken policy on disk: no restart, postinst fails --
C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --reinstall "/payload/$debname" \
	>"$work/upgrade-broken.log" 2>&1
rc=$?
check "apt-get install --reinstall with a broken policy on disk fails (exit $rc)" test "$rc" -ne 0
refused() {
	grep -F 'NOT restarting retentiond.service: this version of retentiond rejects the' "$work/upgrade-broken.log" >/dev/null &&
	grep -F 'zz-broken.yaml:4:5: error: unknown key "retian"' "$work/upgrade-broken.log" >/dev/null
}
check "... saying why, with the error's FILE:LINE:COLUMN" refused
[[ $failures -eq 0 ]] || sed 's/^/    /' "$work/upgrade-broken.log"
check "... and the old daemon keeps running (MainPID $pid, active)" \
	test "$(prop retentiond.service MainPID)/$(prop retentiond.service ActiveState)" = "$pid/active"
check "... the package is left half-configured" \
	test "$(C dpkg-query -W -f='${db:Status-Abbrev}' retentiond)" = "iF "

# ---- 7c. a policy file others may write: policy-file-writable, the reload still succeeds ---------
C rm -f /etc/retentiond/policies.d/zz-broken.yaml
C chmod g+w /etc/retentiond/policies.d/company.yaml
writable0=$(journal_count -u retentiond MESSAGE_ID=d9d91708e94b42429c08dd2f05e1dd62)
loaded0=$(journal_count -u retentiond MESSAGE_ID=071a91f1e2cb4ac88d819e49e36d3be4)
check "systemctl reload with the fixed (but group-writable) policy succeeds" C systemctl reload retentiond.service
check "a good reload loads the policy again (policy-loaded)" wait_for 10 loaded $((loaded0 + 1))
writable() { (($(journal_count -u retentiond MESSAGE_ID=d9d91708e94b42429c08dd2f05e1dd62) > writable0)); }
check "policy-file-writable was logged" wait_for 10 writable
wmsg=$(C journalctl --no-pager -q -o json -u retentiond MESSAGE_ID=d9d91708e94b42429c08dd2f05e1dd62 -n 1 |
	python3 -c 'import json,sys; e=json.loads(sys.stdin.readline()); print(e.get("POLICY_FILE"), "|", e.get("PRIORITY"), "|", e.get("MESSAGE"))')
check "... with POLICY_FILE, as a warning, and no \"not reloaded\" ($wmsg)" \
	bash -c '[[ $1 == "/etc/retentiond/policies.d/company.yaml | 4 | /etc/retentiond/policies.d/company.yaml: policy file is writable by its group" ]]' _ "$wmsg"
status_clean() { [[ $(prop retentiond.service StatusText) != *"policy on disk"* ]]; }
check "StatusText no longer mentions the policy on disk: \"$(prop retentiond.service StatusText)\"" wait_for 5 status_clean
C chmod g-w /etc/retentiond/policies.d/company.yaml

# ---- 7d. finishing the upgrade once the policy is fixed restarts the daemon -----------------------
C env DEBIAN_FRONTEND=noninteractive dpkg --configure -a >"$work/configure.log" 2>&1
rc=$?
[[ $rc -eq 0 ]] || cat "$work/configure.log"
check "dpkg --configure -a after the fix succeeds (exit $rc)" test "$rc" -eq 0
restarted_by_upgrade() {
	local p
	p=$(prop retentiond.service MainPID)
	[[ $p != 0 && $p != "$pid" && $(prop retentiond.service ActiveState) == active ]]
}
check "... and restarted the daemon (MainPID $pid -> $(prop retentiond.service MainPID))" wait_for 10 restarted_by_upgrade
check "... the package is installed" test "$(C dpkg-query -W -f='${db:Status-Abbrev}' retentiond)" = "ii "
pid=$(prop retentiond.service MainPID)
C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --reinstall "/payload/$debname" \
	>"$work/upgrade.log" 2>&1
rc=$?
[[ $rc -eq 0 ]] || cat "$work/upgrade.log"
check "a reinstallation with a valid policy succeeds (exit $rc)" test "$rc" -eq 0
warned=$(grep -i -E 'warn|error|^E:' "$work/upgrade.log")
check "... without a warning${warned:+: $warned}" test -z "$warned"
check "... and restarted the daemon (MainPID $pid -> $(prop retentiond.service MainPID))" wait_for 10 restarted_by_upgrade

# ---- 7e. the database away: STATUS= cuts the error at a word, with an ellipsis ------------------
C systemctl stop test-postgres.service
waiting_db() { [[ $(prop retentiond.service StatusText) == "waiting for database: could not connect"* ]]; }
check "with PostgreSQL stopped the status says it waits for the database" wait_for 15 waiting_db
status=$(prop retentiond.service StatusText)
# The whole message, as the command line prints it (the daemon's is the same on one line).
C env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin retentiond hold list >"$work/down.out" 2>&1
cut_at_word() {
	python3 - "$status" "$work/down.out" <<'EOF'
import sys
status, out = sys.argv[1], open(sys.argv[2]).read().splitlines()
lines = [l for l in out if not l.startswith(("HINT:", "DETAIL:"))]
full = " ".join(l.strip() for l in lines).removeprefix("retentiond: error: ")
reason = status.removeprefix("waiting for database: ").split("; last run", 1)[0]
print(f"    status: {reason!r}\n    full:   {full!r}")
if len(full.encode()) <= 160:
    sys.exit(reason != full)
ok = (reason.endswith("\u2026") and len(reason[:-1].encode()) <= 157 and
      (full + " ").startswith(reason[:-1] + " ") and not reason[:-1].endswith((" ", ",", ":")))
sys.exit(not ok)
EOF
}
check "the reason in StatusText is cut at a word boundary with an ellipsis" cut_at_word
start_postgres
back() { [[ $(prop retentiond.service StatusText) == *"database ok"* ]]; }
check "PostgreSQL back: the status says database ok again" wait_for 30 back

# ---- 7f. the secrets encrypted at rest (LoadCredentialEncrypted=, as retentiond(8) says) ---------
if C systemd-creds encrypt --name=hash-key /etc/retentiond/hash-key /etc/retentiond/hash-key.cred >"$work/creds.log" 2>&1 &&
   C systemd-creds encrypt --name=pgpass /etc/retentiond/pgpass /etc/retentiond/pgpass.cred >>"$work/creds.log" 2>&1; then
	ok "systemd-creds encrypt --name=hash-key, --name=pgpass"
	printf '[Service]\nLoadCredential=\nLoadCredentialEncrypted=hash-key:/etc/retentiond/hash-key.cred\nLoadCredentialEncrypted=pgpass:/etc/retentiond/pgpass.cred\n' |
		C tee /etc/systemd/system/retentiond.service.d/60-encrypted.conf >/dev/null
	C mv /etc/retentiond/hash-key /etc/retentiond/hash-key.plain
	C mv /etc/retentiond/pgpass /etc/retentiond/pgpass.plain
	C systemctl daemon-reload
	pid=$(prop retentiond.service MainPID)
	check "retentiond restarts with the encrypted credentials only" C systemctl restart retentiond.service
	check "... is active with a new MainPID" \
		bash -c '[[ $1 == active && $2 != 0 && $2 != "$3" ]]' _ "$(prop retentiond.service ActiveState)" "$(prop retentiond.service MainPID)" "$pid"
	check "... and logged in over TCP with the decrypted password: database ok" wait_for 15 back
	C rm -f /etc/systemd/system/retentiond.service.d/60-encrypted.conf /etc/retentiond/hash-key.cred /etc/retentiond/pgpass.cred
	C mv /etc/retentiond/hash-key.plain /etc/retentiond/hash-key
	C mv /etc/retentiond/pgpass.plain /etc/retentiond/pgpass
	C systemctl daemon-reload
	C systemctl restart retentiond.service
else
	cat "$work/creds.log"
	bad "systemd-creds encrypt"
fi

# ---- 8. the watchdog restarts a hung daemon ------------------------------------------------------
pid=$(prop retentiond.service MainPID)
restarts=$(prop retentiond.service NRestarts)
C kill -STOP "$pid"
restarted() {
	local p s
	p=$(prop retentiond.service MainPID)
	s=$(prop retentiond.service ActiveState)
	[[ $p != 0 && $p != "$pid" && $s == active && $(prop retentiond.service NRestarts) -gt $restarts ]]
}
wait_for 20 restarted
check "after SIGSTOP the watchdog (3 s) had it killed and restarted: NRestarts $restarts -> $(
	prop retentiond.service NRestarts), MainPID $pid -> $(prop retentiond.service MainPID)" restarted
watchdog_logged() { C journalctl --no-pager -q -u retentiond | grep -i 'watchdog timeout' >/dev/null; }
check "the watchdog timeout is in the journal" watchdog_logged

# ---- 9. a clean stop ----------------------------------------------------------------------------
check "systemctl stop retentiond" C systemctl stop retentiond.service
check "stopped cleanly: Result=success, exit status 0" \
	test "$(prop retentiond.service Result)/$(prop retentiond.service ExecMainStatus)" = success/0
check "the daemon-stopping event was logged" \
	test "$(journal_count -u retentiond MESSAGE_ID=93429c5e88754858af5c1c829808d2e8)" -ge 1

# ---- 10. the audit again: nothing overdue any more ----------------------------------------------
C systemctl start retentiond-audit.service >/dev/null 2>&1
check "retentiond-audit.service after enforcement exits 0 (nothing overdue)" \
	test "$(prop retentiond-audit.service Result)/$(prop retentiond-audit.service ExecMainStatus)" = success/0

finish
