#!/usr/bin/env python3
# bench.py — measures retentiond against the fastest way PostgreSQL does the same work, side by
# side in one run, on identical copies of the data (template databases), and prints ratios.
# Not a test: it never fails on a target; it reports. Never touches a cluster it did not start.
import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RETENTIOND = None
FLOOR = None
# The fixed cost of a run as measured by a part (filled by new_measurements()), for the floor rows.
FIXED = {}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


class Cluster:
    def __init__(self, tmp, extra_conf=""):
        self.tmp = tmp
        bindir = sh(["pg_config", "--bindir"]).stdout.strip()
        if not os.path.exists(os.path.join(bindir, "initdb")):
            bindir = "/usr/lib/postgresql/15/bin"
        self.bindir = bindir
        self.port = 20000 + random.randrange(20000)
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres")
        self.data = os.path.join(tmp, "data")
        self.server([os.path.join(bindir, "initdb"), "-D", self.data, "-A", "trust", "-E", "UTF8",
                     "--locale=C.UTF-8", "-U", "postgres", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{tmp}'\nport = {self.port}\n"
                    "fsync = on\nsynchronous_commit = on\nshared_buffers = 1GB\nmax_wal_size = 8GB\n"
                    "checkpoint_timeout = 30min\nautovacuum = off\nmax_connections = 50\n" + extra_conf)
        self.server([os.path.join(bindir, "pg_ctl"), "start", "-D", self.data, "-l",
                     os.path.join(tmp, "server.log"), "-w", "-t", "120"])
        self.env = dict(os.environ, PGHOST=tmp, PGPORT=str(self.port), PGUSER="postgres")

    def server(self, cmd):
        subprocess.run(self.as_user + cmd, check=True, capture_output=True, cwd=self.tmp)

    def stop(self):
        subprocess.run(self.as_user + [os.path.join(self.bindir, "pg_ctl"), "stop", "-D", self.data, "-m",
                                       "immediate", "-w"], capture_output=True, cwd=self.tmp)

    def psql(self, db, sql):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                           env=self.env, text=True, capture_output=True)
        if r.returncode:
            sys.exit(f"bench: psql failed: {r.stderr}")
        return r.stdout.strip()

    def conninfo(self, db):
        return f"host={self.tmp} port={self.port} dbname={db} user=postgres"


def make_data(cl, db, rows, partitioned):
    cl.psql("postgres", f"CREATE DATABASE {db}")
    part = " PARTITION BY RANGE (requested_at)" if partitioned else ""
    pk = "" if partitioned else " PRIMARY KEY"
    cl.psql(db, f"""
        CREATE SCHEMA app;
        CREATE TABLE app.access_log (id bigserial{pk}, requested_at timestamptz NOT NULL, ip inet,
            path text, user_agent text, status int, bytes bigint){part};
        CREATE TABLE app.oltp_accounts (id int PRIMARY KEY, name text, balance numeric);
        INSERT INTO app.oltp_accounts SELECT g, 'acct ' || g, 100 FROM generate_series(1, 10000) g;
        CREATE TABLE app.oltp_events (id bigserial PRIMARY KEY, account_id int, at timestamptz);""")
    if partitioned:
        cl.psql(db, """DO $$ DECLARE d date; BEGIN
            FOR i IN -1..31 LOOP d := current_date - i;
              EXECUTE format('CREATE TABLE app.access_log_%s PARTITION OF app.access_log FOR VALUES FROM (%L) TO (%L)',
                             to_char(d, 'YYYYMMDD'), d, d + 1);
            END LOOP; END $$;""")
    # 30 days of traffic, oldest first; 20 % of it older than the 24-day cutoff. No row within an
    # hour of the cutoff, so the runs of one benchmark (minutes apart) all see the same rows due.
    cl.psql(db, f"""
        INSERT INTO app.access_log (requested_at, ip, path, user_agent, status, bytes)
        SELECT ts + CASE WHEN ts BETWEEN now() - interval '24 days 1 hour' AND now() - interval '24 days'
                         THEN interval '-1 hour' WHEN ts BETWEEN now() - interval '24 days'
                         AND now() - interval '23 days 23 hours' THEN interval '1 hour' ELSE interval '0' END,
               ip, path, user_agent, status, bytes FROM (
        SELECT now() - interval '30 days' + (g::float8 / {rows}) * interval '30 days' - interval '1 minute' AS ts,
               ((g * 7919) % 223 + 1 || '.' || (g * 31) % 256 || '.' || (g * 17) % 256 || '.' || (g % 254) + 1)::inet
               AS ip, '/page/' || (g % 5000) AS path, 'Mozilla/5.0 (X11; Linux x86_64) bench/' || (g % 97) AS user_agent,
               (ARRAY[200, 200, 200, 304, 404])[1 + g % 5] AS status, (g * 13) % 200000 AS bytes
          FROM generate_series(1::bigint, {rows}::bigint) g) s;
        CREATE INDEX ON app.access_log (requested_at);""")
    cl.psql(db, "VACUUM (ANALYZE, FREEZE) app.access_log")
    subprocess.run([RETENTIOND, "-d", cl.conninfo(db), "migrate"], check=True, capture_output=True)


def make_rentals(cl, db, rows):
    """rentals over 30 days (20 % older than the 24-day cutoff, none within an hour of it), and
    payments partitioned by day into 180 partitions, referencing 30 % of the rentals (NO ACTION),
    an index on payments (rental_id) as a DBA would have it."""
    cl.psql("postgres", f"CREATE DATABASE {db}")
    cl.psql(db, f"""
        CREATE SCHEMA app;
        CREATE TABLE app.rentals (id bigint PRIMARY KEY, rented_at timestamptz NOT NULL, customer int, note text);
        INSERT INTO app.rentals
        SELECT g, ts + CASE WHEN ts BETWEEN now() - interval '24 days 1 hour' AND now() - interval '24 days'
                            THEN interval '-1 hour' WHEN ts BETWEEN now() - interval '24 days'
                            AND now() - interval '23 days 23 hours' THEN interval '1 hour' ELSE interval '0' END,
               g % 5000, 'rental ' || g FROM (
        SELECT g, now() - interval '30 days' + (g::float8 / {rows}) * interval '30 days' - interval '1 minute' AS ts
          FROM generate_series(1::bigint, {rows}::bigint) g) s;
        CREATE INDEX ON app.rentals (rented_at);
        CREATE TABLE app.payments (id bigint NOT NULL, rental_id bigint REFERENCES app.rentals (id),
            paid_at timestamptz NOT NULL, amount numeric) PARTITION BY RANGE (paid_at);""")
    cl.psql(db, """DO $$ DECLARE d date; BEGIN
        FOR i IN 0..179 LOOP d := current_date - i;
          EXECUTE format('CREATE TABLE app.payments_%s PARTITION OF app.payments FOR VALUES FROM (%L) TO (%L)',
                         to_char(d, 'YYYYMMDD'), d, d + 1);
        END LOOP; END $$;""")
    cl.psql(db, f"""
        INSERT INTO app.payments SELECT r.id, r.id, current_date - (r.id % 180)::int + interval '12 hours', 9.99
          FROM app.rentals r WHERE r.id % 10 < 3;
        CREATE INDEX ON app.payments (rental_id);""")
    cl.psql(db, "VACUUM (ANALYZE, FREEZE)")
    subprocess.run([RETENTIOND, "-d", cl.conninfo(db), "migrate"], check=True, capture_output=True)


def fresh(cl, template, name):
    cl.psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    cl.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template}")
    cl.psql(name, "VACUUM ANALYZE")
    cl.psql(name, "CHECKPOINT")


def wal_lsn(cl, db):
    return cl.psql(db, "SELECT pg_current_wal_lsn()")


def wal_bytes(cl, db, a, b):
    return int(cl.psql(db, f"SELECT pg_wal_lsn_diff('{b}', '{a}')"))


POLICY = {
    "delete": """version: 1
rules:
  logs:
    clause: "bench: access logs kept 24 days"
    table: app.access_log
    column: requested_at
    retain: 24 days
    action: delete
    batch_size: {batch}
""",
    "partitioned": """version: 1
rules:
  logs:
    clause: "bench: access logs kept 23 days from the end of their day"
    table: app.access_log
    column: requested_at
    retain: 23 days
    from: end_of_day
    action: delete
    batch_size: {batch}
""",
    # Five rules with nothing due, one run (one session): the first rule of a session also pays
    # the session's first use of the audit trail's functions; the others are what each further
    # rule (and every rule of the daemon, whose session stays) costs.
    "nothing": "version: 1\nrules:\n" + "".join(f"""  logs-{d}:
    clause: "bench: access logs kept {d} days (nothing is due)"
    table: app.access_log
    column: requested_at
    retain: {d} days
    action: delete
    batch_size: {{batch}}
""" for d in range(31, 36)),
    # The first of those rules alone: a run's fixed cost (process, connection, a fresh server
    # backend, catalog) is what a 1-rule run costs beyond one rule.
    "nothing1": """version: 1
rules:
  logs-31:
    clause: "bench: access logs kept 31 days (nothing is due)"
    table: app.access_log
    column: requested_at
    retain: 31 days
    action: delete
    batch_size: {batch}
""",
    # Fifty rules with nothing due, one run: a policy of many rules, each on a table of its own
    # (rules that share a table also carry each other's predicates: longest retention wins).
    "nothing50": "version: 1\nrules:\n" + "".join(f"""  log-{i:02}:
    clause: "bench: log {i} kept 31 days (nothing is due)"
    table: app.log_{i:02}
    column: at
    retain: 31 days
    action: delete
    batch_size: {{batch}}
""" for i in range(1, 51)),
    "nothing50_1": """version: 1
rules:
  log-01:
    clause: "bench: log 1 kept 31 days (nothing is due)"
    table: app.log_01
    column: at
    retain: 31 days
    action: delete
    batch_size: {batch}
""",
    # The rentals case: a delete rule whose due rows are partly still referenced (NO ACTION) from
    # a table partitioned into 180 day partitions; those rows are kept and reported, every run.
    "rentals": """version: 1
rules:
  rentals:
    clause: "bench: rentals kept 24 days unless a payment still references them"
    table: app.rentals
    column: rented_at
    retain: 24 days
    action: delete
    batch_size: {batch}
""",
    "anonymise": """version: 1
rules:
  logs-ip:
    clause: "bench: IP and user agent removed after 24 days"
    table: app.access_log
    column: requested_at
    retain: 24 days
    action: anonymise
    columns: {{ ip: truncate_ip, user_agent: null }}
    batch_size: {batch}
""",
    # The same rule with a retention no row has reached: the cost of a rule with nothing due on
    # the same table, next to which the repeat run's is measured.
    "anonymise_none_due": """version: 1
rules:
  logs-ip:
    clause: "bench: IP and user agent removed after 31 days (nothing is due)"
    table: app.access_log
    column: requested_at
    retain: 31 days
    action: anonymise
    columns: {{ ip: truncate_ip, user_agent: null }}
    batch_size: {batch}
""",
}
# The anonymise rule as a session's second: a rule with nothing due first (an empty table), so
# that its own timer leaves out what a new session pays for its first rule (PL/pgSQL loaded, the
# audit trail's functions compiled), as every rule of the daemon does.
POLICY["anonymise_warm"] = POLICY["anonymise"].replace("rules:\n", """rules:
  warm-up:
    clause: "bench: application events kept 31 days (nothing is due)"
    table: app.oltp_events
    column: at
    retain: 31 days
    action: delete
    batch_size: {batch}
""", 1)
CUTOFF_SQL = "now() - interval '24 days'"
# The partitioned rule's cutoff (from: end_of_day): the midnight that starts the day of
# now() - 23 days, so whole day partitions expire at once.
DAY_CUTOFF_SQL = "date_trunc('day', now() - interval '23 days' - interval '1 microsecond')"


def run_retentiond(cl, db, policy_file, extra=()):
    t0 = time.monotonic()
    p = subprocess.Popen([RETENTIOND, "-p", policy_file, "-d", cl.conninfo(db), "--json", *extra, "run"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    dt = time.monotonic() - t0
    if p.returncode not in (0,):
        sys.exit(f"bench: retentiond exited {p.returncode}: {err}")
    return dt, json.loads(out)


def add_batches(res, prefix, js):
    """The first rule's batches, and of them predicted and redone, into res[prefix + "_batches"], ..."""
    j = js["rules"][0]
    for k, key in (("batches", "batches"), ("predicted", "batches_predicted"), ("redone", "batches_redone")):
        res[f"{prefix}_{k}"].append(j[key])


def run_rss(cl, db, policy_file):
    """Peak RSS (KiB) of one retentiond run, as GNU time reports it (the kernel's rusage of its
    child). Not from wait4() here: a child forked from this Python process counts Python's own
    resident pages up to its exec in its ru_maxrss."""
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", RETENTIOND, "-p", policy_file, "-d", cl.conninfo(db), "run"],
                       env=cl.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [l for l in r.stderr.splitlines() if l.startswith("maxrss ")]
    if r.returncode or not lines:
        sys.exit(f"bench: retentiond exited {r.returncode}: {r.stderr}")
    return int(lines[-1].split()[1])


def timed_sql(cl, db, sql):
    t0 = time.monotonic()
    cl.psql(db, sql)
    return time.monotonic() - t0


def pgbench_during(cl, db, tmp, action, seconds_before=7.0, alone_window=6.0):
    """Runs the OLTP workload (2 clients) and, after `seconds_before`, `action`. Returns the
    latencies (ms) of the transactions that started in the `alone_window` seconds before the
    action (the application alone) and of those that started while the action ran."""
    script = os.path.join(tmp, "oltp.sql")
    with open(script, "w") as f:
        f.write("\\set aid random(1, 10000)\nSELECT balance FROM app.oltp_accounts WHERE id = :aid;\n"
                "INSERT INTO app.oltp_events (account_id, at) VALUES (:aid, now());\n")
    logdir = tempfile.mkdtemp(dir=tmp)
    p = subprocess.Popen(["pgbench", "-n", "-c", "2", "-j", "2", "-T", "120", "-f", script, "-l",
                          "--log-prefix", os.path.join(logdir, "log"), db],
                         env=cl.env, cwd=logdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds_before)
    start = time.time()
    action()
    end = time.time()
    time.sleep(0.3)
    p.terminate()
    p.wait()
    alone, during = [], []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                lat_us = int(parts[2])
                t_end = int(parts[4]) + int(parts[5]) / 1e6
                t_start = t_end - lat_us / 1e6
                if start - alone_window - 0.1 <= t_start < start - 0.1:
                    alone.append(lat_us / 1000.0)
                elif start <= t_start <= end:
                    during.append(lat_us / 1000.0)
    shutil.rmtree(logdir)
    return alone, during


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[k]


def rule_of(js):
    return js["rules"][0]


CITUS_CONF = ("shared_preload_libraries = 'citus'\nmax_prepared_transactions = 60\ncitus.shard_count = 8\n"
              "citus.shard_replication_factor = 1\nmax_worker_processes = 32\nshared_buffers = 256MB\n")


def citus_installed():
    lib = sh(["pg_config", "--pkglibdir"]).stdout.strip() or "/usr/lib/postgresql/15/lib"
    return os.path.exists(os.path.join(lib, "citus.so"))


def citus_measurement(a, pols):
    """Measurement 11 (issue 16): the delete case on Citus, a coordinator and two workers of this
    machine, app.access_log hash-distributed by id into 8 shards: retentiond against one DELETE
    through the coordinator, each on the same rows (reloaded from a table of the coordinator)."""
    nodes = []
    try:
        for _ in range(3):
            t = tempfile.mkdtemp(prefix="retentiond-bench-citus.")
            os.chmod(t, 0o755)
            nodes.append(Cluster(t, CITUS_CONF))
        for n in nodes:
            n.psql("postgres", f"ALTER SYSTEM SET citus.local_hostname = '{n.tmp}'")
            n.psql("postgres", "SELECT pg_reload_conf()")
            n.psql("postgres", "CREATE DATABASE b")
            n.psql("b", "CREATE EXTENSION citus")
        co = nodes[0]
        co.psql("b", f"SELECT citus_set_coordinator_host('{co.tmp}', {co.port})")
        for w in nodes[1:]:
            co.psql("b", f"SELECT citus_add_node('{w.tmp}', {w.port})")
        rows = a.citus_rows
        co.psql("b", f"""
            CREATE SCHEMA app;
            CREATE TABLE app.src AS SELECT g AS id, now() - interval '30 days' + (g::float8 / {rows}) * interval '30 days'
                   - interval '1 minute' AS requested_at, ('10.0.' || (g % 256) || '.' || (g % 254) + 1)::inet AS ip,
                   '/page/' || (g % 5000) AS path, 'Mozilla/5.0 bench/' || (g % 97) AS user_agent, 200 AS status,
                   (g * 13) % 200000 AS bytes FROM generate_series(1::bigint, {rows}::bigint) g
             WHERE NOT (now() - interval '30 days' + (g::float8 / {rows}) * interval '30 days' - interval '1 minute'
                        BETWEEN now() - interval '24 days 1 hour' AND now() - interval '23 days 23 hours');
            CREATE TABLE app.access_log (id bigint PRIMARY KEY, requested_at timestamptz NOT NULL, ip inet, path text,
                user_agent text, status int, bytes bigint);
            CREATE INDEX ON app.access_log (requested_at);
            SELECT create_distributed_table('app.access_log', 'id');""")
        subprocess.run([RETENTIOND, "-d", co.conninfo("b"), "migrate"], check=True, capture_output=True)

        def reload():
            co.psql("b", "TRUNCATE app.access_log")
            co.psql("b", "INSERT INTO app.access_log SELECT * FROM app.src")
            co.psql("b", "VACUUM ANALYZE app.access_log")
            co.psql("b", "CHECKPOINT")
            for w in nodes[1:]:
                w.psql("b", "CHECKPOINT")
        due = int(co.psql("b", f"SELECT count(*) FROM app.src WHERE requested_at < {CUTOFF_SQL}"))
        print(f"bench: Citus ready; {rows} rows in 8 shards on 2 workers, {due} due", flush=True)
        r = {"ret": [], "base": [], "batches": [], "longest": [], "paused": []}
        for rep in range(a.reps):
            reload()
            dt, js = run_retentiond(co, "b", pols["delete"])
            j = rule_of(js)
            assert j["outcome"] == "success" and j["rows_deleted"] == due, j
            r["ret"].append(dt)
            r["batches"].append(j["batches"])
            r["longest"].append(j["longest_batch_usec"] / 1000.0)
            r["paused"].append(j["paused_usec"] / 1e6)
            reload()
            r["base"].append(timed_sql(co, "b", f"DELETE FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
        m = {k: statistics.median(v) for k, v in r.items()}
        return [("11. Citus delete: retentiond / one DELETE", f"{m['ret'] / m['base']:.2f}x",
                 f"{m['ret']:.3f} s / {m['base']:.3f} s; {due} of {rows} rows, 8 shards, 2 workers; {m['batches']:.0f} batches,"
                 f" longest {max(r['longest']):.1f} ms, paused {m['paused']:.3f} s", "<= 2x")]
    finally:
        for n in reversed(nodes):
            n.stop()
            shutil.rmtree(n.tmp, ignore_errors=True)


def todo_index_sql(cl, db, policy_file):
    """The partial index `check -d` asks for (rows still to anonymise), exactly as it prints it."""
    r = subprocess.run([RETENTIOND, "-p", policy_file, "-d", cl.conninfo(db), "check"], text=True, capture_output=True)
    m = re.search(r"fix: (CREATE INDEX [^\n]*)", r.stderr)
    if r.returncode or not m:
        sys.exit(f"bench: check -d did not suggest the partial index (exit {r.returncode}): {r.stderr}")
    return m.group(1)


def floor_measurement(cl, db, n=31):
    """What every run costs before it does anything of its own, measured here as run_retentiond()
    measures a run: tests/bench/floor.c, linked against exactly retentiond's libraries, started
    and exited (process), and with one connection and SELECT 1 (connection); /bin/true; and peak
    RSS of floor.c with its connection. Medians of n."""
    def median_ms(cmd):
        ts = []
        for _ in range(n):
            t0 = time.monotonic()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=cl.env)
            ts.append((time.monotonic() - t0) * 1000.0)
        return statistics.median(ts)
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", FLOOR, cl.conninfo(db)], env=cl.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = [l for l in r.stderr.splitlines() if l.startswith("maxrss ")]
    if r.returncode or not lines:
        sys.exit(f"bench: bench-floor exited {r.returncode}: {r.stderr}")
    return {"true": median_ms(["/bin/true"]), "proc": median_ms([FLOOR]), "version": median_ms([RETENTIOND, "--version"]),
            "conn": median_ms([FLOOR, cl.conninfo(db)]), "rss": int(lines[-1].split()[1])}


def floor_rows(f, fixed, rss):
    """The floor's rows: fixed, a run's fixed cost (ms), and rss, retentiond's peak RSS (KiB), when measured."""
    rows = [
        ("12. floor: a process linked as retentiond", f"{f['proc']:.1f} ms",
         f"tests/bench/floor.c, started and exited; /bin/true {f['true']:.1f} ms; retentiond --version {f['version']:.1f} ms", ""),
        ("    floor: the same with one connection", f"{f['conn']:.1f} ms",
         "connect (a new server backend), SELECT 1, exit" +
         (f"; a run's fixed cost is {fixed:.1f} ms, {fixed / f['conn']:.2f}x this, {fixed - f['conn']:.1f} ms more"
          if fixed else ""), ""),
        ("    floor: peak RSS of that process", f"{f['rss'] / 1024:.1f} MiB",
         (f"retentiond's peak is {rss / 1024:.1f} MiB, {rss / f['rss']:.2f}x this, {(rss - f['rss']) / 1024:.1f} MiB more"
          if rss else ""), ""),
    ]
    return rows


def new_measurements(cl, a, pols, only):
    """Measurements 8-10 (issue 15): the rentals case, a repeat anonymise run with nothing left to
    change, and 50 rules with nothing due. Returns the rows of the result table."""
    rows = []
    if "rentals" in only:
        make_rentals(cl, "tmpl_rent", a.rental_rows)
        cut = "now() - interval '24 days'"
        due = int(cl.psql("tmpl_rent", f"SELECT count(*) FROM app.rentals WHERE rented_at < {cut}"))
        kept = int(cl.psql("tmpl_rent", f"SELECT count(*) FROM app.rentals r WHERE rented_at < {cut}"
                                        " AND EXISTS (SELECT 1 FROM app.payments p WHERE p.rental_id = r.id)"))
        print(f"bench: rentals ready; {a.rental_rows} rentals, {due} due, {kept} of them referenced from 180 partitions",
              flush=True)
        r = {"ret": [], "base": [], "rep": [], "rep_rule": [], "rep_batches": [], "first_batches": [], "longest": []}
        for rep in range(a.reps):
            fresh(cl, "tmpl_rent", "b")
            dt, js = run_retentiond(cl, "b", pols["rentals"])
            j = rule_of(js)
            assert j["outcome"] == "success" and j["rows_deleted"] == due - kept and j["rows_skipped_fk"] == kept, j
            r["ret"].append(dt)
            r["first_batches"].append(j["batches"])
            r["longest"].append(j["longest_batch_usec"] / 1000.0)
            dt2, js2 = run_retentiond(cl, "b", pols["rentals"])
            j2 = rule_of(js2)
            assert j2["outcome"] == "success" and j2["rows_deleted"] == 0 and j2["rows_skipped_fk"] == kept, j2
            r["rep"].append(dt2)
            r["rep_rule"].append(j2["duration_usec"] / 1000.0)
            r["rep_batches"].append(j2["batches"])
            fresh(cl, "tmpl_rent", "b")
            r["base"].append(timed_sql(cl, "b", f"DELETE FROM app.rentals r WHERE r.rented_at < {cut}"
                                       " AND NOT EXISTS (SELECT 1 FROM app.payments p WHERE p.rental_id = r.id)"))
        m = {k: statistics.median(v) for k, v in r.items()}
        rows += [
            ("8. referenced rows: retentiond / anti-join DELETE", f"{m['ret'] / m['base']:.2f}x",
             f"{m['ret']:.3f} s / {m['base']:.3f} s; {due - kept} deleted, {kept} kept by 180-partition payments,"
             f" {m['first_batches']:.0f} batches, longest {max(r['longest']):.1f} ms", "<= 2x"),
            ("   referenced rows: repeat run, nothing to delete", f"{m['rep_rule']:.1f} ms",
             f"rule's own timer; {m['rep_batches']:.0f} batches; whole process {m['rep'] * 1000:.1f} ms"
             f" ({m['rep'] / m['base']:.2f}x the anti-join DELETE)", ""),
        ]
        cl.psql("postgres", "DROP DATABASE IF EXISTS b")
        cl.psql("postgres", "DROP DATABASE tmpl_rent")
    if "repeat" in only:
        n = a.repeat_rows
        make_data(cl, "tmpl_rep", n, False)
        due = int(cl.psql("tmpl_rep", f"SELECT count(*) FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
        # Without, then with the partial index of the rows still to anonymise that check -d asks
        # for (created from its own words before the first run, as an operator following it would).
        idx = todo_index_sql(cl, "tmpl_rep", pols["anonymise"])
        print(f"bench: repeat: check -d suggests: {idx}", flush=True)
        res = {}
        for variant in ("plain", "todo"):
            r = {"first": [], "first_rule": [], "rep": [], "rep_rule": [], "rep_batches": [], "none_rule": [],
                 "vac_rule": [], "vac_none_rule": [], "warm_rule": [], "vac_warm_rule": []}
            for rep in range(a.reps):
                fresh(cl, "tmpl_rep", "b")
                if variant == "todo":
                    cl.psql("b", idx)
                    cl.psql("b", "ANALYZE app.access_log")
                dt, js = run_retentiond(cl, "b", pols["anonymise"])
                j = rule_of(js)
                assert j["outcome"] == "success" and j["rows_anonymised"] == due, j
                r["first"].append(dt)
                r["first_rule"].append(j["duration_usec"] / 1000.0)
                for _ in range(3):  # three repeat runs, the median of each rep's
                    dt2, js2 = run_retentiond(cl, "b", pols["anonymise"])
                    j2 = rule_of(js2)
                    assert j2["outcome"] == "success" and j2["rows_anonymised"] == 0, j2
                    r["rep"].append(dt2)
                    r["rep_rule"].append(j2["duration_usec"] / 1000.0)
                    r["rep_batches"].append(j2["batches"])
                    _, js3 = run_retentiond(cl, "b", pols["anonymise_none_due"])
                    j3 = rule_of(js3)
                    assert j3["outcome"] == "success" and j3["rows_anonymised"] == 0 and j3["batches"] <= 1, j3
                    r["none_rule"].append(j3["duration_usec"] / 1000.0)
                    _, js4 = run_retentiond(cl, "b", pols["anonymise_warm"])
                    j4 = js4["rules"][1]
                    assert j4["rule"] == "logs-ip" and j4["outcome"] == "success" and j4["rows_anonymised"] == 0, j4
                    r["warm_rule"].append(j4["duration_usec"] / 1000.0)
                # The first run's UPDATEs leave dead entries in the indexes until a VACUUM
                # (autovacuum is off here): the first scan after it visits them once, then they
                # are marked dead. After a VACUUM, as autovacuum would do:
                cl.psql("b", "VACUUM app.access_log")
                for _ in range(3):
                    _, js2 = run_retentiond(cl, "b", pols["anonymise"])
                    j2 = rule_of(js2)
                    assert j2["outcome"] == "success" and j2["rows_anonymised"] == 0, j2
                    r["vac_rule"].append(j2["duration_usec"] / 1000.0)
                    _, js3 = run_retentiond(cl, "b", pols["anonymise_none_due"])
                    r["vac_none_rule"].append(rule_of(js3)["duration_usec"] / 1000.0)
                    _, js4 = run_retentiond(cl, "b", pols["anonymise_warm"])
                    r["vac_warm_rule"].append(js4["rules"][1]["duration_usec"] / 1000.0)
            res[variant] = (r, {k: statistics.median(v) for k, v in r.items()})
        (r0, m0), (r, m) = res["plain"], res["todo"]
        rows += [
            ("9. anonymise repeat run, nothing to change", f"{m['rep_rule']:.1f} ms",
             f"{n} rows, {due} already anonymised, with the partial index check -d suggests; rule's own timer,"
             f" {m['rep_batches']:.0f} batches (max {max(r['rep_batches'])}); {m['rep_rule'] / m['first_rule']:.4f}x the"
             f" first run's {m['first_rule']:.0f} ms; whole process {m['rep'] * 1000:.1f} ms; {m['rep_rule'] / m['none_rule']:.2f}x"
             f" the same rule with nothing due ({m['none_rule']:.1f} ms, retain 31 days, runs interleaved); repeat runs of"
             f" each rep: {', '.join(f'{x:.1f}' for x in r['rep_rule'])} ms", "< 2 ms, <= 1 batch"),
            ("   same, a session's second rule", f"{m['warm_rule']:.1f} ms",
             f"its own timer after a rule with nothing due in the same run (as the daemon's rules);"
             f" after a VACUUM {m['vac_warm_rule']:.1f} ms; without the index {m0['warm_rule']:.1f} ms"
             f" ({m0['vac_warm_rule']:.1f} ms after a VACUUM)", "< 2 ms"),
            ("   same after a VACUUM", f"{m['vac_rule']:.1f} ms",
             f"{m['vac_rule'] / m['vac_none_rule']:.2f}x the same rule with nothing due ({m['vac_none_rule']:.1f} ms);"
             f" without the index {m0['vac_rule']:.1f} ms", ""),
            ("   same without that index", f"{m0['rep_rule']:.1f} ms",
             f"{m0['rep_batches']:.0f} batches (max {max(r0['rep_batches'])}); {m0['rep_rule'] / m0['first_rule']:.3f}x the"
             f" first run's {m0['first_rule']:.0f} ms; the index makes the repeat run {m0['rep_rule'] / m['rep_rule']:.0f}x"
             f" faster and the first run {m['first_rule'] / m0['first_rule']:.2f}x as long", ""),
        ]
        cl.psql("postgres", "DROP DATABASE IF EXISTS b")
        cl.psql("postgres", "DROP DATABASE tmpl_rep")
    if "nothing50" in only:
        cl.psql("postgres", "CREATE DATABASE tmpl_50")
        cl.psql("tmpl_50", "CREATE SCHEMA app; " + "".join(
            f"CREATE TABLE app.log_{i:02} (id bigserial PRIMARY KEY, at timestamptz NOT NULL, what text);"
            f" INSERT INTO app.log_{i:02} (at, what) SELECT now() - g * interval '1 minute', 'event ' || g"
            f" FROM generate_series(1, 20000) g; CREATE INDEX ON app.log_{i:02} (at);" for i in range(1, 51)))
        cl.psql("tmpl_50", "VACUUM (ANALYZE, FREEZE)")
        subprocess.run([RETENTIOND, "-d", cl.conninfo("tmpl_50"), "migrate"], check=True, capture_output=True)
        r = {"w50": [], "w1": [], "rule": [], "run": []}
        for rep in range(a.reps):
            fresh(cl, "tmpl_50", "b")
            dt50, js = run_retentiond(cl, "b", pols["nothing50"])
            assert len(js["rules"]) == 50 and js["total"]["rows_deleted"] == 0, js["total"]
            fresh(cl, "tmpl_50", "b")
            dt1, js1 = run_retentiond(cl, "b", pols["nothing50_1"])
            r["w50"].append(dt50 * 1000.0)
            r["w1"].append(dt1 * 1000.0)
            r["rule"].append(statistics.median(x["duration_usec"] for x in js["rules"][1:]) / 1000.0)
            r["run"].append(js["duration_usec"] / 1000.0)
        cl.psql("postgres", "DROP DATABASE IF EXISTS b")
        cl.psql("postgres", "DROP DATABASE tmpl_50")
        m = {k: statistics.median(v) for k, v in r.items()}
        per = (m["w50"] - m["w1"]) / 49
        FIXED["nothing50"] = m["w1"] - per
        rows += [
            ("10. 50 rules, nothing due: per rule", f"{per:.2f} ms",
             f"(50-rule run {m['w50']:.1f} ms - 1-rule run {m['w1']:.1f} ms) / 49, process start to exit;"
             f" 50 tables of 20,000 rows; rules' own timers: median {m['rule']:.2f} ms", "< 1 ms"),
            ("    50 rules: a run's fixed cost", f"{m['w1'] - per:.1f} ms",
             f"1-rule run minus one rule (whole process); the 50-rule run is {m['w50'] / m['w1']:.1f}x the 1-rule run",
             "< 10 ms"),
        ]
    if "citus" in only:
        rows += citus_measurement(a, pols)
    return rows


def main():
    global RETENTIOND, FLOOR
    ap = argparse.ArgumentParser(description="retentiond benchmark (prints ratios measured in one run)")
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the access log (default 5,000,000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median; default 3)")
    ap.add_argument("--small-rows", type=int, default=None, help="rows of the small table for the RSS check (default rows / 5)")
    ap.add_argument("--big-rows", type=int, default=None, help="rows of the large table for the RSS check (default 2 x rows)")
    ap.add_argument("--batch-size", type=int, default=50000, help="the rules' batch_size (upper bound of the adaptive batch)")
    ap.add_argument("--rental-rows", type=int, default=20_000, help="rows of the rentals table (default 20,000)")
    ap.add_argument("--repeat-rows", type=int, default=1_000_000,
                    help="rows of the access log for the anonymise repeat run (default 1,000,000)")
    ap.add_argument("--citus-rows", type=int, default=1_000_000,
                    help="rows of the distributed access log (Citus part; default 1,000,000)")
    ap.add_argument("--only", default="all",
                    help="comma list of parts to run: core, app, rss, rentals, repeat, nothing50, citus (default all;"
                         " citus only when Citus is installed: bash .ci/citus)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build-bench", "engine", "retentiond"))
    ap.add_argument("--floor-binary", default=None,
                    help="tests/bench/floor.c built (default: tests/bench-floor of --binary's build directory)")
    a = ap.parse_args()
    parts = {"core", "app", "rss", "rentals", "repeat", "nothing50", "citus"}
    only = parts if a.only == "all" else set(a.only.split(","))
    if "citus" in only and not citus_installed():
        if a.only != "all":
            ap.error("--only citus: Citus is not installed (bash .ci/citus builds it)")
        print("bench: Citus is not installed: the Citus part (11) is left out (bash .ci/citus builds it)", flush=True)
        only.discard("citus")
    if only - parts:
        ap.error(f"--only: unknown parts {', '.join(sorted(only - parts))}")
    RETENTIOND = a.binary
    FLOOR = a.floor_binary or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.binary))), "tests", "bench-floor")
    if not os.access(FLOOR, os.X_OK):
        print(f"bench: {FLOOR} is not built: the floor (part 12) is left out"
              " (meson compile -C BUILDDIR tests/bench-floor)", flush=True)
        FLOOR = None
    big = a.big_rows or max(a.rows * 2, 10_000)
    small = a.small_rows or max(a.rows // 5, 10_000)

    tmp = tempfile.mkdtemp(prefix="retentiond-bench.")
    os.chmod(tmp, 0o755)
    cl = Cluster(tmp)
    try:
        pols = {}
        for k, v in POLICY.items():
            path = os.path.join(tmp, f"{k}.yaml")
            with open(path, "w") as f:
                f.write(v.format(batch=a.batch_size))
            pols[k] = path
        print(f"bench: {a.rows} rows over 30 days, 20 % older than the cutoff; {a.reps} repetitions; "
              f"PostgreSQL {cl.psql('postgres', 'SHOW server_version')}", flush=True)
        make_data(cl, "tmpl_plain", a.rows, False)
        if "core" in only:
            make_data(cl, "tmpl_part", a.rows, True)
        due = int(cl.psql("tmpl_plain", f"SELECT count(*) FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
        print(f"bench: data ready; {due} rows due", flush=True)

        res = {k: [] for k in ["del_r", "del_b", "del_wal_r", "del_wal_b", "del_longest", "an_r", "an_b", "an_longest",
                               "del_batches", "del_predicted", "del_redone", "an_batches", "an_predicted", "an_redone",
                               "part_r", "part_b", "part_wal", "part_dropped", "partmid_r", "partmid_b", "partmid_wal",
                               "noop_rule", "noop_first", "noop_run", "noop_wall5", "noop_wall1", "second_rows", "second_t"]}
        for rep in range(a.reps if "core" in only else 0):
            # 1. delete
            fresh(cl, "tmpl_plain", "b")
            l0 = wal_lsn(cl, "b")
            dt, js = run_retentiond(cl, "b", pols["delete"])
            res["del_wal_r"].append(wal_bytes(cl, "b", l0, wal_lsn(cl, "b")))
            res["del_r"].append(dt)
            res["del_longest"].append(js["rules"][0]["longest_batch_usec"] / 1000.0)
            add_batches(res, "del", js)
            assert js["rules"][0]["rows_deleted"] >= due * 0.99, js
            # 7. a second run straight after
            dt2, js2 = run_retentiond(cl, "b", pols["delete"])
            res["second_t"].append(dt2)
            res["second_rows"].append(js2["total"]["rows_deleted"] + js2["total"]["rows_anonymised"])
            # 4. nothing due: time per rule, on a fresh copy of the 5M-row table
            fresh(cl, "tmpl_plain", "b")
            dt5, js4 = run_retentiond(cl, "b", pols["nothing"])
            assert js4["total"]["rows_deleted"] == 0, js4
            fresh(cl, "tmpl_plain", "b")
            dt1, js1 = run_retentiond(cl, "b", pols["nothing1"])
            assert js1["total"]["rows_deleted"] == 0, js1
            res["noop_wall5"].append(dt5 * 1000.0)
            res["noop_wall1"].append(dt1 * 1000.0)
            res["noop_first"].append(js4["rules"][0]["duration_usec"] / 1000.0)
            res["noop_rule"].append(statistics.median(r["duration_usec"] for r in js4["rules"][1:]) / 1000.0)
            res["noop_run"].append(js4["duration_usec"] / 1000.0)
            fresh(cl, "tmpl_plain", "b")
            l0 = wal_lsn(cl, "b")
            res["del_b"].append(timed_sql(cl, "b", f"DELETE FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
            res["del_wal_b"].append(wal_bytes(cl, "b", l0, wal_lsn(cl, "b")))
            # 2. anonymise
            fresh(cl, "tmpl_plain", "b")
            dt, js = run_retentiond(cl, "b", pols["anonymise"])
            res["an_r"].append(dt)
            res["an_longest"].append(js["rules"][0]["longest_batch_usec"] / 1000.0)
            add_batches(res, "an", js)
            fresh(cl, "tmpl_plain", "b")
            res["an_b"].append(timed_sql(cl, "b", "UPDATE app.access_log SET ip = network(set_masklen(ip, 24))::inet,"
                                         f" user_agent = NULL WHERE requested_at < {CUTOFF_SQL}"))
            # 3. partitioned, the rule partition-aligned (from: end_of_day): whole days expire
            fresh(cl, "tmpl_part", "b")
            l0 = wal_lsn(cl, "b")
            dt, js = run_retentiond(cl, "b", pols["partitioned"])
            res["part_wal"].append(wal_bytes(cl, "b", l0, wal_lsn(cl, "b")))
            res["part_r"].append(dt)
            res["part_dropped"].append(js["rules"][0]["partitions_dropped"])
            part_rows = js["rules"][0]["rows_deleted"]
            fresh(cl, "tmpl_part", "b")
            res["part_b"].append(timed_sql(cl, "b", f"DELETE FROM app.access_log WHERE requested_at < {DAY_CUTOFF_SQL}"))
            assert part_rows == int(cl.psql("tmpl_part", f"SELECT count(*) FROM app.access_log WHERE requested_at < {DAY_CUTOFF_SQL}")), js
            # 3b. the same table with the plain rule: its cutoff falls inside a day partition,
            # whose older rows go batch by batch (WAL with full-page images)
            fresh(cl, "tmpl_part", "b")
            l0 = wal_lsn(cl, "b")
            dt, js = run_retentiond(cl, "b", pols["delete"])
            res["partmid_wal"].append(wal_bytes(cl, "b", l0, wal_lsn(cl, "b")))
            res["partmid_r"].append(dt)
            fresh(cl, "tmpl_part", "b")
            res["partmid_b"].append(timed_sql(cl, "b", f"DELETE FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
            print(f"bench: repetition {rep + 1} done", flush=True)

        # 5. the application's latency: per repetition, the application alone (the 2 s before),
        # during retentiond, and (on a fresh copy) alone and during the single DELETE
        app = {"alone": [], "ret": [], "alone_b": [], "del": [], "t": [], "paused": []}
        for rep in range(a.reps if "app" in only else 0):
            fresh(cl, "tmpl_plain", "b")
            under_load = {}

            def run_under_load():
                under_load["t"], under_load["js"] = run_retentiond(cl, "b", pols["delete"])
            alone, lat = pgbench_during(cl, "b", tmp, run_under_load)
            app["alone"].append(alone)
            app["ret"].append(lat)
            app["t"].append(under_load["t"])
            app["paused"].append(under_load["js"]["rules"][0]["paused_usec"] / 1e6)
            fresh(cl, "tmpl_plain", "b")
            alone, lat = pgbench_during(cl, "b", tmp, lambda: timed_sql(
                cl, "b", f"DELETE FROM app.access_log WHERE requested_at < {CUTOFF_SQL}"))
            app["alone_b"].append(alone)
            app["del"].append(lat)
        new = new_measurements(cl, a, pols, only)
        floor = floor_measurement(cl, "postgres") if FLOOR else None

        r_ratio = [pct(r, 99) / pct(al, 99) for r, al in zip(app["ret"], app["alone"])]
        d_ratio = [pct(d, 99) / pct(al, 99) for d, al in zip(app["del"], app["alone_b"])]
        pooled = {k: [x for v in app[k] for x in v] for k in ("alone", "ret", "alone_b", "del")}

        # 6. peak RSS at 1M and 10M rows (rows / 5 and 2 x rows), each deleting its 20 %
        rss = {}
        for n in (small, big) if "rss" in only else ():
            make_data(cl, "tmpl_rss", n, False)
            fresh(cl, "tmpl_rss", "b")
            rss[n] = run_rss(cl, "b", pols["delete"])
            cl.psql("postgres", "DROP DATABASE b")
            cl.psql("postgres", "DROP DATABASE tmpl_rss")
        rss_small, rss_big = rss.get(small, 0), rss.get(big, 0)

        m = {k: statistics.median(v) for k, v in res.items() if v}
        rows = [] if "core" not in only else [
            ("1. delete: retentiond / single DELETE (wall)", f"{m['del_r'] / m['del_b']:.2f}x",
             f"{m['del_r']:.3f} s / {m['del_b']:.3f} s; batches {m['del_batches']:.0f}, of them predicted"
             f" {m['del_predicted']:.0f}, redone {m['del_redone']:.0f}", "<= 1.1x"),
            ("   delete: WAL bytes ratio", f"{m['del_wal_r'] / m['del_wal_b']:.2f}x",
             f"{m['del_wal_r'] / due:.0f} / {m['del_wal_b'] / due:.0f} B per row", ""),
            ("   delete: longest transaction", f"{max(res['del_longest']):.1f} ms", "", "<= 10 ms"),
            ("2. anonymise: retentiond / single UPDATE", f"{m['an_r'] / m['an_b']:.2f}x",
             f"{m['an_r']:.3f} s / {m['an_b']:.3f} s; batches {m['an_batches']:.0f}, of them predicted"
             f" {m['an_predicted']:.0f}, redone {m['an_redone']:.0f}", "<= 1.1x"),
            ("   anonymise: longest transaction", f"{max(res['an_longest']):.1f} ms", "", "<= 50 ms"),
            ("3. partitioned: DELETE / retentiond (speed-up)", f"{m['part_b'] / m['part_r']:.1f}x",
             f"{m['part_r']:.3f} s / {m['part_b']:.3f} s", ">= 20x"),
            ("   partitioned: WAL of retentiond", f"{m['part_wal'] / 1024:.0f} KiB",
             f"{m['part_dropped']:.0f} day partitions dropped (from: end_of_day)", "< 1024 KiB"),
            ("3b. cutoff inside a partition: DELETE / retentiond", f"{m['partmid_b'] / m['partmid_r']:.1f}x",
             f"{m['partmid_r']:.3f} s / {m['partmid_b']:.3f} s, WAL {m['partmid_wal'] / 1048576:.1f} MiB "
             "(plain retain: the cutoff's day goes batch by batch)", ""),
            ("4. nothing due: time per rule", f"{m['noop_rule']:.2f} ms",
             f"median of rules 2-5 of a 5-rule run (whole run {m['noop_run']:.1f} ms)", "< 1 ms"),
            ("   nothing due: per rule, from whole runs", f"{(m['noop_wall5'] - m['noop_wall1']) / 4:.2f} ms",
             f"(5-rule run {m['noop_wall5']:.1f} ms - 1-rule run {m['noop_wall1']:.1f} ms) / 4, process start to exit", "< 1 ms"),
            ("   nothing due: a run's fixed cost", f"{m['noop_wall1'] - (m['noop_wall5'] - m['noop_wall1']) / 4:.1f} ms",
             "1-rule run minus one rule: process, connection, a fresh server backend, catalog", "< 10 ms"),
            ("   nothing due: a session's first rule", f"{m['noop_first']:.2f} ms",
             "its own timer; carries the new backend's first use of PL/pgSQL and the audit trail", ""),
            ("7. second run: rows touched", f"{int(m['second_rows'])}", f"{m['second_t']:.3f} s", "0"),
        ]
        if "app" in only:
            rows += [
            ("5. app p99 during retentiond / alone", f"{statistics.median(r_ratio):.2f}x",
             "per repetition " + ", ".join(f"{x:.2f}x" for x in r_ratio) +
             f"; pooled p99 {pct(pooled['alone'], 99):.2f} alone, {pct(pooled['ret'], 99):.2f} ms during retentiond",
             "<= 1.2x"),
            ("   app p99 during the single DELETE / alone", f"{statistics.median(d_ratio):.2f}x",
             "per repetition " + ", ".join(f"{x:.2f}x" for x in d_ratio) +
             f"; pooled p99 {pct(pooled['alone_b'], 99):.2f} alone, {pct(pooled['del'], 99):.2f} ms during the DELETE",
             "> the above"),
            ("   app p95 alone / retentiond / DELETE", f"{pct(pooled['ret'], 95):.2f} ms",
             f"{pct(pooled['alone'], 95):.2f} / {pct(pooled['ret'], 95):.2f} / {pct(pooled['del'], 95):.2f} ms; "
             f"{len(pooled['alone'])}/{len(pooled['ret'])}/{len(pooled['del'])} transactions", ""),
            ("   retentiond's run under that load", f"{statistics.median(app['t']):.3f} s",
             f"of which {statistics.median(app['paused']):.3f} s paced (default --pace 4: waits while others write)", ""),
            ]
        if "rss" in only:
            rows.append(("6. peak RSS", f"{max(rss_small, rss_big) / 1024:.1f} MiB",
                         f"{small} rows: {rss_small} KiB; {big} rows: {rss_big} KiB", "< 8 MiB, flat"))
        rows += new
        fixed = FIXED.get("nothing50") or (m["noop_wall1"] - (m["noop_wall5"] - m["noop_wall1"]) / 4 if "core" in only else None)
        if floor:
            rows += floor_rows(floor, fixed, max(rss_small, rss_big) if "rss" in only else None)
        print()
        print(f"{'measurement':52} {'result':>10}  {'target':14} detail")
        for name, r, detail, target in rows:
            print(f"{name:52} {r:>10}  {target:14} {detail}")
    finally:
        cl.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
