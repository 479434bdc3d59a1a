/* test-faults.c — retentiond run under faults of the database and of the application around it.
 *
 *   terminate  pg_terminate_backend() of the engine's backend in the middle of a run (found in
 *              pg_stat_activity by application_name 'retentiond'), RETENTIOND_FAULT_TERMINATES
 *              times (default 10): the error is reported once, exit 69, no crash, no hang; nothing
 *              half done, the trail claims exactly what happened; the next run finishes the work.
 *   restart    the server stopped (pg_ctl stop -m fast) and started again in the middle of a run,
 *              RETENTIOND_FAULT_RESTARTS times (default 4), and crashed (-m immediate: the last
 *              commits of the engine's synchronous_commit=off session may be lost, with their
 *              audit-trail counts) twice: same expectations.
 *   lost       the engine's backend terminated while it counts for the running breaker, in the
 *              fast path's DELETE, and while the schema check waits for a lock: exit 69 and one
 *              error about the connection each time, never a breaker trip, never the slow path on
 *              the dead session, never 75 ("another session").
 *   locks      the application holds ACCESS EXCLUSIVE on a table longer than --lock-timeout: the
 *              rule is 'skipped' with SQLSTATE 55P03, the others succeed, nothing hangs, and an
 *              application query queued meanwhile completes as soon as the application's own
 *              lock goes; row locks: the locked rows are skipped without waiting and counted;
 *              a lock retentiond waits for never makes application queries wait behind it;
 *              a partition whose DETACH ... CONCURRENTLY cannot finish is not left half detached.
 *   timeout    a rule whose where: sleeps 5 s with --statement-timeout 500: failed with the rule's
 *              name and SQLSTATE 57014 in the trail, the other rules succeed.
 *   clock      now() 100 years in the future (a clockhack.now() first in the engine role's
 *              search_path): the circuit breaker trips for every rule instead of wiping tables;
 *              and the session time zone changed: timestamptz rules do exactly the same. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pg.h"
#include "pgtest.h"
#include "rule-lock.h"
#include "rely.h"

static PgTest *pg;
static char *dir;
static unsigned nfile;

/* ---- helpers ------------------------------------------------------------------------------------- */

static char *new_db(const char *name, PGconn **ret) {
        char *ci = pgtest_create_db(pg, name);
        const char *args[] = { "-d", ci, "migrate", NULL };
        char *out = NULL, *err = NULL;
        int rc = pgtest_run(args, NULL, &out, &err);
        if (rc != 0)
                fail_msg("migrate failed (%d): %s%s", rc, out, err);
        free(out);
        free(err);
        *ret = pgtest_connect(ci);
        return ci;
}

static char *policy_file(const char *text) {
        char *p = rely_asprintf("%s/policy-%u.yaml", dir, ++nfile);
        rely_write(p, text, strlen(text));
        return p;
}

/* retentiond ARGS... run, waited for; returns the exit status and the output. */
static int rd(const char *ci, const char *policy, const char *const *extra, char **out, char **err) {
        const char *args[24];
        size_t n = 0;
        args[n++] = "-p";
        args[n++] = policy;
        args[n++] = "-d";
        args[n++] = ci;
        args[n++] = "--log-target=console";
        for (const char *const *e = extra; e && *e && n < 22; e++)
                args[n++] = *e;
        args[n] = NULL;
        return pgtest_run(args, NULL, out, err);
}

static size_t count_lines_with(const char *text, const char *needle) {
        size_t n = 0;
        for (const char *l = text; l && *l;) {
                const char *e = strchr(l, '\n');
                size_t len = e ? (size_t) (e - l) : strlen(l);
                char *line = strndup(l, len);
                if (strstr(line, needle))
                        n++;
                free(line);
                if (!e)
                        break;
                l = e + 1;
        }
        return n;
}

/* ---- terminate / restart / crash -------------------------------------------------------------- */

static const char *const WORK_POLICY =
        "version: 1\n"
        "defaults: { max_fraction: 1 }\n"
        "rules:\n"
        "  f-del:\n"
        "    clause: \"faults: rows go after 7 days\"\n"
        "    table: f.big\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "    batch_size: 20\n"
        "  f-anon:\n"
        "    clause: \"faults: people are anonymised after 30 days\"\n"
        "    table: f.people\n"
        "    column: seen_at\n"
        "    retain: 30 days\n"
        "    action: anonymise\n"
        "    columns: { email: { redact: \"[gone]\" }, name: null, ip: truncate_ip }\n"
        "    batch_size: 20\n";

static const char *const WORK_SETUP =
        "CREATE SCHEMA f;"
        "SELECT setseed(0.7);"
        "CREATE TABLE f.big_orig AS SELECT g AS id, now() - (CASE WHEN g % 2 = 0 THEN 8 + random() * 300"
        "  ELSE random() * 6 END) * interval '1 day' AS at, repeat('x', 20) AS payload FROM generate_series(1, 12000) g;"
        "CREATE TABLE f.people_orig AS SELECT g AS id, now() - (CASE WHEN g % 2 = 0 THEN 31 + random() * 900"
        "  ELSE random() * 29 END) * interval '1 day' AS seen_at, 'p' || g || '@example.org' AS email,"
        "  CASE WHEN g % 9 = 0 THEN NULL ELSE 'Person ' || g END AS name,"
        "  ('10.' || (g % 200) || '.' || (g % 250) || '.' || (1 + g % 250))::inet AS ip FROM generate_series(1, 6000) g;"
        "CREATE TABLE f.big (id int PRIMARY KEY, at timestamptz NOT NULL, payload text);"
        "CREATE INDEX ON f.big (at);"
        "CREATE TABLE f.people (id int PRIMARY KEY, seen_at timestamptz NOT NULL, email text, name text, ip inet);"
        "CREATE INDEX ON f.people (seen_at);"
        "CREATE VIEW f.state AS"
        " SELECT (SELECT count(*) FROM f.big_orig o WHERE NOT EXISTS (SELECT 1 FROM f.big c WHERE c.id = o.id)) AS gone,"
        "  (SELECT count(*) FROM f.big_orig o WHERE o.at >= now() - interval '7 days'"
        "    AND NOT EXISTS (SELECT 1 FROM f.big c WHERE c.id = o.id)) AS wrongly_gone,"
        "  (SELECT count(*) FROM f.big_orig o WHERE o.at < now() - interval '7 days'"
        "    AND EXISTS (SELECT 1 FROM f.big c WHERE c.id = o.id)) AS due_left,"
        "  (SELECT count(*) FROM f.people_orig o JOIN f.people c USING (id) WHERE (c.email, c.name, c.ip) IS DISTINCT FROM"
        "    (o.email, o.name, o.ip)) AS anonymised,"
        "  (SELECT count(*) FROM f.people_orig o JOIN f.people c USING (id) WHERE (c.email, c.name, c.ip) IS DISTINCT FROM"
        "    (o.email, o.name, o.ip) AND (c.email, c.name, c.ip) IS DISTINCT FROM ('[gone]', NULL::text,"
        "    set_masklen(o.ip & netmask(set_masklen(o.ip, 24)), 24))) AS corrupt,"
        "  (SELECT count(*) FROM f.people_orig o JOIN f.people c USING (id) WHERE o.seen_at >= now() - interval '30 days'"
        "    AND (c.email, c.name, c.ip) IS DISTINCT FROM (o.email, o.name, o.ip)) AS wrongly_anonymised,"
        "  (SELECT count(*) FROM f.people_orig o JOIN f.people c USING (id) WHERE o.seen_at < now() - interval '30 days'"
        "    AND (c.email, c.name, c.ip) IS NOT DISTINCT FROM (o.email, o.name, o.ip)) AS anon_left,"
        "  (SELECT count(*) FROM f.people_orig o WHERE NOT EXISTS (SELECT 1 FROM f.people c WHERE c.id = o.id)) AS people_gone;";

/* Durable before the round starts: the test cluster runs with synchronous_commit = off, and a
 * crash (-m immediate) right after could otherwise lose this reset (the rows of the round before
 * would come back, with their trail counts under run ids before round_start). */
static const char *const WORK_RESET =
        "SET synchronous_commit = on;"
        "DELETE FROM f.big; DELETE FROM f.people;"
        "INSERT INTO f.big SELECT * FROM f.big_orig; INSERT INTO f.people SELECT * FROM f.people_orig;"
        "ANALYZE f.big, f.people;";

typedef struct FaultTotals {
        long faults, wrongly_deleted, corrupt;
} FaultTotals;

static void check_work(PGconn *c, long long round_start, bool final, FaultTotals *t, const char *when) {
        PGresult *r = rely_query(c, "SELECT gone, wrongly_gone, due_left, anonymised, corrupt, wrongly_anonymised, anon_left,"
                                    " people_gone FROM f.state");
        long long v[8];
        for (int i = 0; i < 8; i++)
                v[i] = strtoll(PQgetvalue(r, 0, i), NULL, 10);
        PQclear(r);
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(sum(rows_deleted) FILTER (WHERE rule = 'f-del'), 0),"
                 " coalesce(sum(rows_anonymised) FILTER (WHERE rule = 'f-anon'), 0)"
                 " FROM retention.rule_runs WHERE run_id > %lld",
                 round_start);
        r = rely_query(c, sql);
        long long trail_del = strtoll(PQgetvalue(r, 0, 0), NULL, 10), trail_anon = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
        t->wrongly_deleted += v[1] + v[5] + v[7];
        t->corrupt += v[4];
        if (v[1] || v[4] || v[5] || v[7] || trail_del != v[0] || trail_anon != v[3] || (final && (v[2] || v[6])))
                fail_msg("%s: %lld rows gone (%lld not due), %lld due rows left; %lld anonymised (%lld in a wrong form,"
                         " %lld not due), %lld due not anonymised, %lld people rows gone; the audit trail says %lld deleted,"
                         " %lld anonymised",
                         when, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], trail_del, trail_anon);
}

/* How a fault is injected while a run is at work. */
typedef enum { FAULT_TERMINATE, FAULT_RESTART, FAULT_CRASH } Fault;

static void fault_rounds(const char *dbname, Fault fault, long n, const char *label) {
        PGconn *c = NULL;
        char *ci = new_db(dbname, &c);
        rely_exec(c, WORK_SETUP);
        char *policy = policy_file(WORK_POLICY);
        char *outfile = rely_asprintf("%s/%s.log", dir, dbname);
        FaultTotals t = {};
        Rng rng = { rely_seed("RETENTIOND_FAULT_SEED") };
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);

        for (long i = 0; i < n; i++) {
                rely_exec(c, WORK_RESET);
                long long round_start = rely_int(c, "SELECT coalesce(max(id), 0) FROM retention.runs");
                unlink(outfile);
                const char *args[] = { "-p", policy, "-d", ci, "--log-target=console", "run", NULL };
                pid_t pid = rely_spawn(args, outfile);

                /* Wait until the run has committed some work, then a little more at random. */
                char sql[256];
                snprintf(sql, sizeof(sql),
                         "SELECT coalesce(sum(rows_deleted + rows_anonymised), 0) FROM retention.rule_runs WHERE run_id > %lld",
                         round_start);
                struct timespec w0;
                clock_gettime(CLOCK_MONOTONIC, &w0);
                while (rely_int(c, sql) == 0) {
                        if (rely_wait_timeout(pid, 0) != -2)
                                fail_msg("%s: the run ended before any fault could be injected:\n%s", label, rely_slurp(outfile));
                        if (rely_ms_since(&w0) > 20000)
                                fail_msg("%s: the run made no progress in 20 s", label);
                        usleep(1000);
                }
                usleep(rnd(&rng, 60000));
                if (rely_wait_timeout(pid, 0) != -2)
                        fail_msg("%s: the run finished before the fault; make the tables bigger:\n%s", label, rely_slurp(outfile));

                switch (fault) {
                case FAULT_TERMINATE: {
                        long long n_term = rely_int(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                                       " WHERE application_name = 'retentiond' AND pid <> pg_backend_pid()");
                        assert_int_equal(n_term, 1);
                        break;
                }
                case FAULT_RESTART:
                case FAULT_CRASH:
                        PQfinish(c);
                        c = NULL;
                        if (fault == FAULT_RESTART)
                                pgtest_stop_server(pg);
                        else
                                pgtest_crash_server(pg);
                        break;
                }
                int st = rely_wait_timeout(pid, 30000);
                if (st == -2) {
                        kill(pid, SIGKILL);
                        rely_wait(pid);
                        fail_msg("%s: retentiond hung for 30 s after the fault", label);
                }
                if (fault != FAULT_TERMINATE) {
                        pgtest_start_server(pg);
                        c = pgtest_connect(ci);
                }
                char *log = rely_slurp(outfile);
                if (st != 69)
                        fail_msg("%s: retentiond exited %d after the fault, expected 69 (database unavailable):\n%s", label, st, log);
                size_t errors = count_lines_with(log, "error:");
                if (errors != 1 || count_lines_with(log, "connection") == 0)
                        fail_msg("%s: the connection loss must be reported once, with its cause; got %zu error lines:\n%s", label,
                                 errors, log);
                if (strstr(log, "AddressSanitizer") || strstr(log, "runtime error"))
                        fail_msg("%s: sanitizer report:\n%s", label, log);
                free(log);
                t.faults++;

                char when[96];
                snprintf(when, sizeof(when), "%s %ld, after the fault", label, i + 1);
                check_work(c, round_start, false, &t, when);

                /* A killed run is left 'running' in the trail; the next run finishes the work. */
                char *out = NULL, *err = NULL;
                int rc = 75;
                for (int k = 0; k < 250 && rc == 75; k++) {
                        if (k)
                                usleep(20000);
                        free(out);
                        free(err);
                        rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
                }
                if (rc != 0)
                        fail_msg("%s: the run after the fault exited %d:\n%s%s", label, rc, out, err);
                free(out);
                free(err);
                snprintf(when, sizeof(when), "%s %ld, after the next run", label, i + 1);
                check_work(c, round_start, true, &t, when);
        }
        long ms = rely_ms_since(&t0);
        fprintf(stderr, "faults: %ld %s survived in %ld.%03ld s: exit 69 each time, error reported once, next run completed;"
                        " %ld rows wrongly deleted or anonymised, %ld rows in a wrong form\n",
                t.faults, label, ms / 1000, ms % 1000, t.wrongly_deleted, t.corrupt);
        PQfinish(c);
        free(policy);
        free(outfile);
        free(ci);
}

static void test_terminate(void **state) {
        (void) state;
        fault_rounds("f_terminate", FAULT_TERMINATE, rely_env_long("RETENTIOND_FAULT_TERMINATES", 10),
                     "pg_terminate_backend faults");
}

static void test_restart(void **state) {
        (void) state;
        fault_rounds("f_restart", FAULT_RESTART, rely_env_long("RETENTIOND_FAULT_RESTARTS", 4), "server restarts");
        fault_rounds("f_crash", FAULT_CRASH, rely_env_long("RETENTIOND_FAULT_CRASHES", 2), "server crashes");
}

/* ---- a lost connection at a chosen statement ------------------------------------------------------ */

/* A lost connection is a lost connection wherever it happens: exit 69 and one error about the
 * connection, never a circuit breaker, "another session", or a second attempt on the dead
 * session. A rule's where: calls f.gate(), which sleeps in the one statement whose text matches
 * f.gate_at.pattern; the test terminates the engine's backend while it sleeps there (or, for the
 * schema check, while it waits for a lock the test holds). */

static const char *const GATE_SETUP =
        "CREATE SCHEMA f;"
        "CREATE TABLE f.gate_at (pattern text);"
        "CREATE FUNCTION f.gate() RETURNS boolean LANGUAGE plpgsql AS $$"
        " BEGIN"
        "  IF current_query() ~ (SELECT pattern FROM f.gate_at) THEN PERFORM pg_sleep(60); END IF;"
        "  RETURN true;"
        " END $$;"
        "GRANT USAGE ON SCHEMA f TO PUBLIC; GRANT SELECT ON f.gate_at TO PUBLIC;";

/* Starts `retentiond run` with extra args, waits until its backend is in `wait` (a
 * pg_stat_activity condition), terminates that backend, and returns the exit status and output. */
static int run_terminated_at(PGconn *c, const char *ci, const char *policy, const char *extra, const char *wait,
                             const char *label, char **log) {
        char *outfile = rely_asprintf("%s/%s.log", dir, label);
        unlink(outfile);
        const char *args[] = { "-p", policy, "-d", ci, "--log-target=console", "run", extra, NULL };
        pid_t pid = rely_spawn(args, outfile);
        char *sql = rely_asprintf("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentiond' AND (%s)", wait);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (rely_int(c, sql) != 1) {
                if (rely_wait_timeout(pid, 0) != -2)
                        fail_msg("%s: the run ended before it reached the statement:\n%s", label, rely_slurp(outfile));
                if (rely_ms_since(&t0) > 30000) {
                        kill(pid, SIGKILL);
                        rely_wait(pid);
                        fail_msg("%s: the run did not reach the statement in 30 s:\n%s", label, rely_slurp(outfile));
                }
                usleep(2000);
        }
        free(sql);
        assert_int_equal(rely_int(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                     " WHERE application_name = 'retentiond' AND pid <> pg_backend_pid()"),
                         1);
        int st = rely_wait_timeout(pid, 30000);
        if (st == -2) {
                kill(pid, SIGKILL);
                rely_wait(pid);
                fail_msg("%s: retentiond hung for 30 s after its backend was terminated", label);
        }
        *log = rely_slurp(outfile);
        if (strstr(*log, "AddressSanitizer") || strstr(*log, "LeakSanitizer") || strstr(*log, "runtime error"))
                fail_msg("%s: sanitizer report:\n%s", label, *log);
        free(outfile);
        return st;
}

/* Exit 69 and exactly this error: one "error:" line, then the DETAIL the server gave (libpq's
 * text of the FATAL message, which may carry its CONTEXT). */
static void expect_lost(const char *label, int st, const char *log, const char *primary) {
        char *want = rely_asprintf("retentiond: error: %s\nDETAIL:  ", primary);
        const char *at = strstr(log, want);
        if (st != 69 || count_lines_with(log, "error:") != 1 || !at ||
            !strstr(at, "terminating connection due to administrator command") || strstr(log, "circuit breaker") ||
            strstr(log, "another enforcement run") || strstr(log, "no connection to the server"))
                fail_msg("%s: exit %d (want 69) and exactly one error, about the connection:\n%s\nwant:\n%s"
                         "terminating connection due to administrator command",
                         label, st, log, want);
        free(want);
}

static void test_lost_connection_outcomes(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_lost", &c);
        rely_exec(c, GATE_SETUP);
        char *log = NULL;
        int st;

        /* 1. While the running breaker counts whether more rows are due (the planner's estimate let
         *    the rule start without a count; then 2900 more rows became due behind the statistics'
         *    back, as in test-enforce's test_breaker_estimate). */
        rely_exec(c, "CREATE TABLE f.rb (id int PRIMARY KEY, at timestamptz NOT NULL) WITH (autovacuum_enabled = false);"
                     "CREATE INDEX ON f.rb (at);"
                     "INSERT INTO f.rb SELECT i, CASE WHEN i <= 100 THEN now() - interval '30 days' - i * interval '1 second'"
                     "  ELSE now() END FROM generate_series(1, 4000) i;"
                     "ANALYZE f.rb;"
                     "UPDATE f.rb SET at = now() - interval '30 days' - id * interval '1 second' WHERE id <= 3000;"
                     "INSERT INTO f.gate_at VALUES ('^SELECT count\\(\\*\\) FROM \\(SELECT 1 FROM');");
        char *pol_rb = policy_file("version: 1\n"
                                   "rules:\n"
                                   "  rb:\n"
                                   "    clause: \"lost: the running breaker\"\n"
                                   "    table: f.rb\n"
                                   "    column: at\n"
                                   "    retain: 7 days\n"
                                   "    action: delete\n"
                                   "    where: \"f.gate()\"\n"
                                   "    batch_size: 100\n");
        st = run_terminated_at(c, ci, pol_rb, NULL, "wait_event = 'PgSleep' AND query ~ '^SELECT count'", "lost-breaker", &log);
        expect_lost("connection lost while the running breaker counts", st, log,
                    "lost the connection to the database during rule \"rb\"");
        free(log);
        /* the limit (half of 4000) was deleted; the rule run stays 'running', never 'breaker' */
        char *v = rely_value(c, "SELECT outcome || ' ' || rows_deleted FROM retention.rule_runs WHERE rule = 'rb'");
        assert_string_equal(v, "running 2000");
        free(v);

        /* 2. In the fast path's DELETE: exactly one error, the server's; no batch tried the slow way
         *    on the dead session (that error would be "no connection to the server"). The rule has
         *    a while_held phase, whose SKIP LOCKED batch is what such a slow way would run. */
        rely_exec(c, "CREATE TABLE f.fp (id int PRIMARY KEY, at timestamptz NOT NULL, note text);"
                     "CREATE INDEX ON f.fp (at);"
                     "INSERT INTO f.fp SELECT i, now() - interval '30 days' - i * interval '1 second' FROM generate_series(1, 500) i;"
                     "UPDATE f.gate_at SET pattern = '^DELETE FROM';");
        char *pol_fp = policy_file("version: 1\n"
                                   "subjects:\n"
                                   "  fps: { table: f.fp, key: id }\n"
                                   "holds:\n"
                                   "  legal: { reason: \"lost test\", subject: fps, registry: true }\n"
                                   "rules:\n"
                                   "  fp:\n"
                                   "    clause: \"lost: the fast path\"\n"
                                   "    table: f.fp\n"
                                   "    subject: fps\n"
                                   "    column: at\n"
                                   "    retain: 7 days\n"
                                   "    action: delete\n"
                                   "    where: \"f.gate()\"\n"
                                   "    holds: [legal]\n"
                                   "    while_held: { columns: { note: null } }\n"
                                   "    batch_size: 100\n");
        st = run_terminated_at(c, ci, pol_fp, NULL, "wait_event = 'PgSleep' AND query ~ '^DELETE FROM'", "lost-fast", &log);
        expect_lost("connection lost in the fast path", st, log, "lost the connection to the database during rule \"fp\"");
        free(log);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM f.fp"), 500);
        v = rely_value(c, "SELECT outcome || ' ' || rows_deleted || ' ' || batches FROM retention.rule_runs WHERE rule = 'fp'");
        assert_string_equal(v, "running 0 0");
        free(v);

        /* 3. During the schema check (waiting for a lock the test holds on retention.schema_version):
         *    69, not 75 ("another session"). */
        PGconn *holder = pgtest_connect(ci);
        rely_exec(holder, "BEGIN; LOCK TABLE retention.schema_version IN ACCESS EXCLUSIVE MODE");
        st = run_terminated_at(c, ci, pol_fp, "--lock-timeout=60000",
                               "wait_event_type = 'Lock' AND query ~ 'retention.schema_version'", "lost-schema", &log);
        rely_exec(holder, "ROLLBACK");
        PQfinish(holder);
        if (st != 69 || count_lines_with(log, "error:") != 1 ||
            !strstr(log, "terminating connection due to administrator command") || strstr(log, "another enforcement run"))
                fail_msg("connection lost during the schema check: exit %d (want 69), one error about the connection:\n%s", st,
                         log);
        free(log);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'fp'"), 1);

        /* The next runs complete both rules. */
        rely_exec(c, "UPDATE f.gate_at SET pattern = '^$'");
        char *out = NULL, *err = NULL;
        int rc = rd(ci, pol_fp, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 0)
                fail_msg("the run after the faults exited %d:\n%s%s", rc, out, err);
        free(out), free(err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM f.fp"), 0);
        fprintf(stderr, "faults: a lost connection in the running breaker, the fast path and the schema check: exit 69, one error"
                        " about the connection each time (no breaker, no slow path on the dead session, no \"another session\")\n");
        free(pol_rb), free(pol_fp), free(ci);
        PQfinish(c);
}

/* ---- locks ------------------------------------------------------------------------------------------ */

static const char *const LOCK_POLICY =
        "version: 1\n"
        "rules:\n"
        "  l-locked:\n"
        "    clause: \"locks: the table the application locks\"\n"
        "    table: l.locked\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "    batch_size: 50\n"
        "  l-free:\n"
        "    clause: \"locks: a table nobody locks\"\n"
        "    table: l.free\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "    batch_size: 50\n";

static const char *const LOCK_SETUP =
        "CREATE SCHEMA l;"
        "CREATE TABLE l.locked (id int PRIMARY KEY, at timestamptz NOT NULL, v text);"
        "CREATE INDEX ON l.locked (at);"
        "CREATE TABLE l.free (id int PRIMARY KEY, at timestamptz NOT NULL);"
        "CREATE INDEX ON l.free (at);";

static const char *const LOCK_RESET =
        "TRUNCATE l.locked, l.free;"
        "INSERT INTO l.locked SELECT g, now() - (g % 10) * interval '1 day' - interval '1 hour', 'v' FROM generate_series(1, 3000) g;"
        "INSERT INTO l.free SELECT g, now() - (g % 10) * interval '1 day' - interval '1 hour' FROM generate_series(1, 3000) g;"
        "ANALYZE l.locked, l.free;";

/* An application query sent now; returns when its result arrives, in ms since `since`. */
static long app_query_done_ms(PGconn *app, const struct timespec *since) {
        PGresult *r;
        long ms = -1;
        while ((r = PQgetResult(app))) {
                if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
                        fail_msg("application query failed: %s", PQresultErrorMessage(r));
                PQclear(r);
                ms = rely_ms_since(since);
        }
        return ms;
}

static void test_lock_table(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_lock_table", &c);
        rely_exec(c, LOCK_SETUP);
        rely_exec(c, LOCK_RESET);
        char *policy = policy_file(LOCK_POLICY);
        char *outfile = rely_asprintf("%s/lock-table.log", dir);
        long long due_locked = rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'");

        /* The application: an exclusive table lock held for 5 s. */
        PGconn *app = pgtest_connect(ci);
        rely_exec(app, "BEGIN; LOCK TABLE l.locked IN ACCESS EXCLUSIVE MODE;");
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const char *args[] = { "-p", policy, "-d", ci, "--log-target=console", "--lock-timeout", "500", "run", NULL };
        pid_t pid = rely_spawn(args, outfile);
        /* Another application session queues a read behind the lock meanwhile. */
        usleep(200000);
        PGconn *reader = pgtest_connect(ci);
        if (!PQsendQuery(reader, "SELECT count(*) FROM l.locked"))
                fail_msg("PQsendQuery: %s", PQerrorMessage(reader));
        int st = rely_wait_timeout(pid, 20000);
        long run_ms = rely_ms_since(&t0);
        if (st == -2) {
                kill(pid, SIGKILL);
                rely_wait(pid);
                fail_msg("retentiond waited for the application's table lock for 20 s");
        }
        usleep((useconds_t) (run_ms < 5000 ? 5000 - run_ms : 0) * 1000);
        struct timespec rel;
        clock_gettime(CLOCK_MONOTONIC, &rel);
        rely_exec(app, "COMMIT");
        long reader_ms = app_query_done_ms(reader, &rel);
        char *log = rely_slurp(outfile);
        fprintf(stderr, "locks: retentiond gave up on the locked table after %ld ms (lock_timeout 500 ms) and exited %d;"
                        " the application's queued read completed %ld ms after the application's lock was released\n",
                run_ms, st, reader_ms);
        if (st != 1)
                fail_msg("retentiond exited %d, expected 1 (a rule was skipped):\n%s", st, log);
        /* a few statements may each wait lock_timeout (500 ms); never the application's 5 s */
        if (run_ms > 4000)
                fail_msg("retentiond took %ld ms: it waited for the lock longer than lock_timeout", run_ms);
        if (reader_ms < 0 || reader_ms > 300)
                fail_msg("the application's read completed %ld ms after its lock was released", reader_ms);
        if (!strstr(log, "l-locked"))
                fail_msg("the skip is not reported with the rule's name:\n%s", log);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'l-locked' AND outcome = 'skipped'"
                                     " AND sqlstate = '55P03' AND rows_deleted = 0"),
                         1);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'l-free' AND outcome = 'success'"
                                     " AND rows_deleted > 0"),
                         1);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'"), due_locked);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.free WHERE at < now() - interval '7 days'"), 0);
        free(log);

        /* The lock gone, the next run takes the rows. */
        char *out = NULL, *err = NULL;
        int rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 0)
                fail_msg("the run after the lock exited %d:\n%s%s", rc, out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'"), 0);
        free(out);
        free(err);
        PQfinish(reader);
        PQfinish(app);
        PQfinish(c);
        free(policy);
        free(outfile);
        free(ci);
}

static void test_lock_rows(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_lock_rows", &c);
        rely_exec(c, LOCK_SETUP);
        rely_exec(c, LOCK_RESET);
        char *policy = policy_file(LOCK_POLICY);

        /* The application locks 40 due rows, spread over the table, for longer than the run. */
        PGconn *app = pgtest_connect(ci);
        rely_exec(app, "BEGIN; SELECT id FROM l.locked WHERE at < now() - interval '7 days' AND id % 30 = 8 ORDER BY id LIMIT 40 FOR UPDATE;");
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char *out = NULL, *err = NULL;
        int rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
        long run_ms = rely_ms_since(&t0);
        fprintf(stderr, "locks: with 40 rows locked by the application, the run took %ld ms and exited %d\n", run_ms, rc);
        if (rc != 0 && rc != 1)
                fail_msg("retentiond exited %d:\n%s%s", rc, out, err);
        if (run_ms > 3000)
                fail_msg("the run took %ld ms: it waited for the application's row locks", run_ms);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'"), 40);
        assert_int_equal(rely_int(c, "SELECT rows_skipped_locked FROM retention.rule_runs WHERE rule = 'l-locked'"), 40);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'l-locked' AND outcome = 'success'"), 1);
        free(out);
        free(err);
        rely_exec(app, "COMMIT");
        rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 0)
                fail_msg("the run after the row locks exited %d:\n%s%s", rc, out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'"), 0);
        free(out);
        free(err);
        PQfinish(app);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* retentiond waits for a lock the application holds (SHARE: blocks its deletes, not the
 * application's reads) and gets it in time: the application's reads never wait behind
 * retentiond's queued request, and its writes continue as soon as its own lock is gone. */
static void test_lock_wait(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_lock_wait", &c);
        rely_exec(c, LOCK_SETUP);
        rely_exec(c, LOCK_RESET);
        char *policy = policy_file(LOCK_POLICY);
        char *outfile = rely_asprintf("%s/lock-wait.log", dir);

        PGconn *app = pgtest_connect(ci);
        rely_exec(app, "BEGIN; LOCK TABLE l.locked IN SHARE MODE;");
        const char *args[] = { "-p", policy, "-d", ci, "--log-target=console", "--lock-timeout", "5000", "run", NULL };
        pid_t pid = rely_spawn(args, outfile);
        /* Until retentiond waits for its lock. */
        struct timespec w0;
        clock_gettime(CLOCK_MONOTONIC, &w0);
        while (rely_int(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentiond' AND wait_event_type = 'Lock'") == 0) {
                if (rely_ms_since(&w0) > 10000)
                        fail_msg("retentiond never waited for the application's lock");
                usleep(2000);
        }
        /* A read now does not wait behind retentiond's queued request. */
        PGconn *reader = pgtest_connect(ci);
        struct timespec r0;
        clock_gettime(CLOCK_MONOTONIC, &r0);
        rely_int(reader, "SELECT count(*) FROM l.locked");
        long read_ms = rely_ms_since(&r0);
        /* A write waits for the application's SHARE lock, and no longer. */
        PGconn *writer = pgtest_connect(ci);
        if (!PQsendQuery(writer, "UPDATE l.locked SET v = 'w' WHERE id = 2"))
                fail_msg("PQsendQuery: %s", PQerrorMessage(writer));
        usleep(300000);
        struct timespec rel;
        clock_gettime(CLOCK_MONOTONIC, &rel);
        rely_exec(app, "COMMIT");
        long write_ms = app_query_done_ms(writer, &rel);
        int st = rely_wait_timeout(pid, 30000);
        fprintf(stderr, "locks: while retentiond waited for its lock, an application read took %ld ms; an application write"
                        " completed %ld ms after the application's own lock was released; retentiond exited %d\n",
                read_ms, write_ms, st);
        if (st != 0)
                fail_msg("retentiond exited %d:\n%s", st, rely_slurp(outfile));
        if (read_ms > 300 || write_ms < 0 || write_ms > 300)
                fail_msg("the application waited behind retentiond: read %ld ms, write %ld ms after release", read_ms, write_ms);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked WHERE at < now() - interval '7 days'"), 0);
        PQfinish(writer);
        PQfinish(reader);
        PQfinish(app);
        PQfinish(c);
        free(policy);
        free(outfile);
        free(ci);
}

/* A partition to drop while an application transaction that read the table is still open:
 * DETACH ... CONCURRENTLY waits for it and hits lock_timeout after its first transaction. The
 * partition must not stay half detached (invisible through its table, never dropped, its rows
 * no longer counted): the run says so, and a later run completes the drop. */
static void test_partition_detach_timeout(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_partition", &c);
        rely_exec(c, "CREATE SCHEMA p;"
                     "CREATE TABLE p.ev (id int NOT NULL, at timestamptz NOT NULL, v text) PARTITION BY RANGE (at);"
                     "CREATE TABLE p.ev_old PARTITION OF p.ev FOR VALUES FROM ('2000-01-01') TO ('2020-01-01');"
                     "CREATE TABLE p.ev_new PARTITION OF p.ev FOR VALUES FROM ('2020-01-01') TO (MAXVALUE);"
                     "CREATE INDEX ON p.ev (at);"
                     "INSERT INTO p.ev SELECT g, '2010-01-01'::timestamptz + g * interval '1 hour', 'old' FROM generate_series(1, 2000) g;"
                     "INSERT INTO p.ev SELECT g + 10000, now() - g * interval '1 minute', 'new' FROM generate_series(1, 3000) g;"
                     "ANALYZE p.ev;");
        char *policy = policy_file("version: 1\n"
                                   "rules:\n"
                                   "  p-ev:\n"
                                   "    clause: \"partitions: events go after a year\"\n"
                                   "    table: p.ev\n"
                                   "    column: at\n"
                                   "    retain: 1 year\n"
                                   "    action: delete\n"
                                   "    max_fraction: 1\n");
        PGconn *app = pgtest_connect(ci);
        rely_exec(app, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM p.ev WHERE id = 5;");
        char *out = NULL, *err = NULL;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = rd(ci, policy, (const char *const[]) { "--lock-timeout", "500", "run", NULL }, &out, &err);
        long run_ms = rely_ms_since(&t0);
        long long pending = rely_int(c, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending");
        long long visible_old = rely_int(c, "SELECT count(*) FROM p.ev WHERE v = 'old'");
        long long audit_due = rely_int(c, "SELECT count(*) FROM p.ev WHERE at < now() - interval '1 year'");
        fprintf(stderr, "partitions: with an application transaction open, the drop run took %ld ms, exited %d;"
                        " %lld partitions half detached, %lld old rows visible\n",
                run_ms, rc, pending, visible_old);
        /* Either the partition is still whole and attached (nothing happened), or the run must
         * not claim success while its rows are neither dropped nor visible. */
        if (pending > 0 && rc == 0)
                fail_msg("the partition was left half detached and the run exited 0: its %lld expired rows are no longer"
                         " counted (%lld due seen through the table) and no run drops them\n%s%s",
                         rely_int(c, "SELECT count(*) FROM p.ev_old"), audit_due, out, err);
        free(out);
        free(err);
        rely_exec(app, "COMMIT");
        rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 0)
                fail_msg("the next run exited %d:\n%s%s", rc, out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"), 0);
        assert_null(rely_value(c, "SELECT to_regclass('p.ev_old')::text"));
        assert_int_equal(rely_int(c, "SELECT count(*) FROM p.ev"), 3000);
        assert_int_equal(rely_int(c, "SELECT sum(rows_deleted) FROM retention.rule_runs WHERE rule = 'p-ev'"), 2000);
        free(out);
        free(err);
        PQfinish(app);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* ---- statement_timeout ------------------------------------------------------------------------------ */

static void test_statement_timeout(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_timeout", &c);
        rely_exec(c, LOCK_SETUP);
        rely_exec(c, LOCK_RESET);
        char *policy = policy_file("version: 1\n"
                                   "rules:\n"
                                   "  t-slow:\n"
                                   "    clause: \"timeout: a pathological where\"\n"
                                   "    table: l.locked\n"
                                   "    column: at\n"
                                   "    retain: 7 days\n"
                                   "    action: delete\n"
                                   "    where: \"(SELECT pg_sleep(5)) IS NOT NULL\"\n"
                                   "  t-fine:\n"
                                   "    clause: \"timeout: an ordinary rule\"\n"
                                   "    table: l.free\n"
                                   "    column: at\n"
                                   "    retain: 7 days\n"
                                   "    action: delete\n");
        char *out = NULL, *err = NULL;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = rd(ci, policy, (const char *const[]) { "--statement-timeout", "500", "run", NULL }, &out, &err);
        long ms = rely_ms_since(&t0);
        fprintf(stderr, "timeout: the run with a 5 s where and statement_timeout 500 ms took %ld ms, exited %d\n", ms, rc);
        if (rc != 1)
                fail_msg("retentiond exited %d, expected 1:\n%s%s", rc, out, err);
        if (ms > 4500)
                fail_msg("the run took %ld ms: statement_timeout did not stop the slow rule", ms);
        if (!strstr(err, "t-slow") || !strstr(err, "statement timeout"))
                fail_msg("the timeout is not reported with the rule's name:\n%s%s", out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 't-slow' AND outcome = 'failed'"
                                     " AND sqlstate = '57014' AND error ILIKE '%statement timeout%'"),
                         1);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 't-fine' AND outcome = 'success'"), 1);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.free WHERE at < now() - interval '7 days'"), 0);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked"), 3000);
        free(out);
        free(err);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* ---- the clock --------------------------------------------------------------------------------- */

static const char *const CLOCK_POLICY =
        "version: 1\n"
        "subjects:\n"
        "  cacct: { table: c.accounts, key: id }\n"
        "holds:\n"
        "  tax: { reason: \"clock test\", subject: cacct, table: c.invoices, subject_column: account_id,"
        " column: issued_at, retain: 10 years }\n"
        "rules:\n"
        "  c-logs:\n"
        "    clause: \"clock: logs go after 30 days\"\n"
        "    table: c.logs\n"
        "    column: at\n"
        "    retain: 30 days\n"
        "    action: delete\n"
        "  c-ip:\n"
        "    clause: \"clock: IPs are shortened after 30 days\"\n"
        "    table: c.logs\n"
        "    column: at\n"
        "    retain: 30 days\n"
        "    action: anonymise\n"
        "    columns: { ip: truncate_ip }\n"
        "  c-accounts:\n"
        "    clause: \"clock: accounts go when asked, unless tax law keeps them\"\n"
        "    table: c.accounts\n"
        "    subject: cacct\n"
        "    column: req_at\n"
        "    retain: 10 days\n"
        "    holds: [tax]\n"
        "    action: delete\n"
        "  c-invoices:\n"
        "    clause: \"clock: invoices go after 10 years\"\n"
        "    table: c.invoices\n"
        "    column: issued_at\n"
        "    retain: 10 years\n"
        "    action: delete\n";

static const char *const CLOCK_SETUP =
        "CREATE SCHEMA c;"
        "CREATE TABLE c.logs (id int PRIMARY KEY, at timestamptz NOT NULL, ip inet);"
        "CREATE INDEX ON c.logs (at);"
        "INSERT INTO c.logs SELECT g, now() - g * interval '10 minutes', ('10.1.' || (g % 250) || '.' || (1 + g % 200))::inet"
        "  FROM generate_series(1, 6000) g;" /* about 42 days */
        "CREATE TABLE c.accounts (id int PRIMARY KEY, req_at timestamptz);"
        "CREATE INDEX ON c.accounts (req_at);"
        "INSERT INTO c.accounts SELECT g, CASE WHEN g % 20 = 0 THEN now() - interval '30 days' END FROM generate_series(1, 2000) g;"
        "CREATE TABLE c.invoices (id int PRIMARY KEY, account_id int REFERENCES c.accounts, issued_at timestamptz NOT NULL);"
        "CREATE INDEX ON c.invoices (issued_at); CREATE INDEX ON c.invoices (account_id);"
        "INSERT INTO c.invoices SELECT g, 1 + g % 2000, now() - (g % 3000) * interval '1 day' FROM generate_series(1, 4000) g;"
        "ANALYZE c.logs, c.accounts, c.invoices;"
        "CREATE TABLE c.snapshot AS SELECT (SELECT count(*) FROM c.logs) AS logs, (SELECT count(*) FROM c.accounts) AS accounts,"
        "  (SELECT count(*) FROM c.invoices) AS invoices,"
        "  (SELECT count(*) FROM c.logs WHERE ip <> set_masklen(ip & netmask(set_masklen(ip, 24)), 24)) AS raw_ips;";

static void test_clock_far_future(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_clock", &c);
        rely_exec(c, CLOCK_SETUP);
        char *policy = policy_file(CLOCK_POLICY);
        /* The engine's role sees now() 100 years ahead: a schema with its own now(), searched
         * before pg_catalog (which must be named, or it is searched first). */
        rely_exec(c, "CREATE ROLE clockrole LOGIN SUPERUSER;"
                     "CREATE SCHEMA clockhack;"
                     "CREATE FUNCTION clockhack.now() RETURNS timestamptz LANGUAGE sql STABLE"
                     "  AS $$ SELECT pg_catalog.now() + interval '100 years' $$;"
                     "ALTER ROLE clockrole SET search_path = clockhack, pg_catalog, public;");
        char *ci_clock = rely_asprintf("%s user=clockrole", ci);
        /* the hack works: the role's sessions see the future */
        PGconn *probe = pgtest_connect(ci_clock);
        assert_int_equal(rely_int(probe, "SELECT extract(year FROM now())::int - extract(year FROM pg_catalog.now())::int"), 100);
        PQfinish(probe);

        char *out = NULL, *err = NULL;
        /* First the clock check: the database's now() is 100 years from this host's clock, so
         * every rule trips the breaker before its cutoff is used, and nothing changes. */
        int rc = rd(ci_clock, policy, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 1 || !strstr(err, "the database clock and this host's clock disagree"))
                fail_msg("clock check: retentiond exited %d, expected 1 with the clock error:\n%s%s", rc, out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE outcome = 'breaker'"), 4);
        assert_int_equal(rely_int(c, "SELECT coalesce(sum(rows_deleted + rows_anonymised), 0) FROM retention.rule_runs"), 0);
        free(out);
        free(err);

        /* Then, with that check off, the breaker alone still stops every rule that would wipe a table. */
        rc = rd(ci_clock, policy, (const char *const[]) { "--max-clock-skew", "0", "run", NULL }, &out, &err);
        fprintf(stderr, "clock: with now() 100 years ahead retentiond exited %d:\n%s", rc, out);
        if (rc != 1)
                fail_msg("retentiond exited %d, expected 1 (breaker):\n%s%s", rc, out, err);
        long long tripped = rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE outcome = 'breaker'");
        long long changed = rely_int(c, "SELECT coalesce(sum(rows_deleted + rows_anonymised), 0) FROM retention.rule_runs");
        long long cutoff_year = rely_int(c, "SELECT max(extract(year FROM cutoff))::int - extract(year FROM now())::int"
                                            " FROM retention.rule_runs");
        PGresult *r = rely_query(c, "SELECT s.logs = (SELECT count(*) FROM c.logs), s.accounts = (SELECT count(*) FROM c.accounts),"
                                    " s.invoices = (SELECT count(*) FROM c.invoices), s.raw_ips = (SELECT count(*) FROM c.logs"
                                    " WHERE ip <> set_masklen(ip & netmask(set_masklen(ip, 24)), 24)) FROM c.snapshot s");
        bool intact = strcmp(PQgetvalue(r, 0, 0), "t") == 0 && strcmp(PQgetvalue(r, 0, 1), "t") == 0 &&
                      strcmp(PQgetvalue(r, 0, 2), "t") == 0 && strcmp(PQgetvalue(r, 0, 3), "t") == 0;
        PQclear(r);
        if (cutoff_year < 99)
                fail_msg("the engine did not see the moved clock (cutoffs %lld years ahead)", cutoff_year);
        /* c-accounts: the due accounts all still have invoices (RESTRICT), so nothing of it could
         * go and there is nothing for the breaker to stop; the three others would wipe tables. */
        tripped -= 4; /* the four of the clock check above */
        if (tripped != 3 || changed != 0 || !intact ||
            rely_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'c-accounts' AND outcome = 'success'"
                        " AND rows_deleted = 0") != 1)
                fail_msg("a clock 100 years ahead: %lld of 3 rules stopped by the breaker, %lld rows changed, tables %s\n%s%s",
                         tripped, changed, intact ? "intact" : "CHANGED", out, err);
        if (!strstr(err, "circuit breaker") || !strstr(err, "database clock"))
                fail_msg("the breaker's error does not point at the clock:\n%s", err);
        free(out);
        free(err);

        /* With the real clock the same policy enforces normally. */
        rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
        if (rc != 0)
                fail_msg("with the real clock retentiond exited %d:\n%s%s", rc, out, err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM c.logs WHERE at < now() - interval '30 days'"), 0);
        assert_true(rely_int(c, "SELECT count(*) FROM c.logs") > 3000);
        free(out);
        free(err);
        PQfinish(c);
        free(ci_clock);
        free(policy);
        free(ci);
}

/* The session time zone moved far east and far west: timestamptz rules cut at the same instant. */
static void test_clock_timezone(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("f_timezone", &c);
        rely_exec(c, LOCK_SETUP);
        char *policy = policy_file(LOCK_POLICY);
        static const char *const zones[] = { "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu", "UTC" };
        for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
                rely_exec(c, LOCK_RESET);
                char sql[256];
                snprintf(sql, sizeof(sql), "ALTER ROLE postgres SET timezone = '%s'", zones[i]);
                rely_exec(c, sql);
                long long before = rely_int(c, "SELECT count(*) FROM l.locked WHERE at >= now() - interval '7 days'");
                char *out = NULL, *err = NULL;
                int rc = rd(ci, policy, (const char *const[]) { "run", NULL }, &out, &err);
                if (rc != 0)
                        fail_msg("time zone %s: retentiond exited %d:\n%s%s", zones[i], rc, out, err);
                assert_int_equal(rely_int(c, "SELECT count(*) FROM l.locked"), before);
                snprintf(sql, sizeof(sql), "SELECT count(*) FROM retention.rule_runs WHERE rule = 'l-locked'"
                                           " AND abs(extract(epoch FROM (now() - interval '7 days') - cutoff)) < 60"
                                           " AND run_id = (SELECT max(id) FROM retention.runs)");
                assert_int_equal(rely_int(c, sql), 1);
                free(out);
                free(err);
        }
        rely_exec(c, "ALTER ROLE postgres RESET timezone");
        PQfinish(c);
        free(policy);
        free(ci);
}

/* A statement the engine prepares once a session (the audit trail's counter and record, the
 * check of other roles' code) is prepared again when the server no longer has it (DISCARD ALL, a
 * pooler's reset): at once outside a transaction; inside one, the failed transaction goes, and
 * the next use prepares it. */
static void test_prepared_statement_gone(void **state) {
        (void) state;
        PGconn *c;
        char *ci = new_db("faults_prepared", &c);
        Pg *p = NULL;
        PgError e = {};
        PgSettings st = { .lock_timeout_ms = 2000, .statement_timeout_ms = 60000 };
        assert_int_equal(pg_connect(ci, &st, &p, &e), 0);
        bool prepared = false;
        const char *args[] = { "41" };
        const char *sql = "SELECT $1::int + 1";
        PGresult *r = NULL;
        assert_int_equal(pg_exec_cached(p, &prepared, "t_gone", sql, 1, args, &r, &e), 0);
        assert_true(prepared);
        assert_string_equal(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
        /* gone outside a transaction: prepared again, the same call succeeds */
        assert_int_equal(pg_exec0(p, NULL, &e, "DEALLOCATE ALL"), 0);
        assert_int_equal(pg_exec_cached(p, &prepared, "t_gone", sql, 1, args, &r, &e), 0);
        assert_true(prepared);
        assert_string_equal(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
        /* gone inside one: the statement fails (the transaction is lost) and the flag is cleared */
        assert_int_equal(pg_exec0(p, NULL, &e, "BEGIN"), 0);
        assert_int_equal(pg_exec0(p, NULL, &e, "DEALLOCATE ALL"), 0);
        r = NULL;
        assert_int_not_equal(pg_exec_cached(p, &prepared, "t_gone", sql, 1, args, &r, &e), 0);
        assert_null(r);
        assert_string_equal(e.sqlstate, "26000");
        assert_false(prepared);
        pg_error_done(&e);
        assert_int_equal(pg_exec0(p, NULL, &e, "ROLLBACK"), 0);
        assert_int_equal(pg_exec_cached(p, &prepared, "t_gone", sql, 1, args, &r, &e), 0);
        assert_true(prepared);
        assert_string_equal(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
        pg_error_done(&e);
        pg_free(p);
        PQfinish(c);
        free(ci);
}

/* pg_pipeline(): the statements' results in order, one transaction across them; a failure stops
 * the rest (and COMMIT with them), names the failed statement and leaves no result; a prepared
 * statement gone from the session is prepared again at the next pipeline; a backend terminated
 * between the last statement and the Sync's answer is a lost connection, not a success and not
 * a stuck pipeline. */
static void test_pipeline(void **state) {
        (void) state;
        PGconn *c;
        char *ci = new_db("faults_pipeline", &c);
        Pg *p = NULL;
        PgError e = {};
        PgSettings st = { .lock_timeout_ms = 2000, .statement_timeout_ms = 60000 };
        assert_int_equal(pg_connect(ci, &st, &p, &e), 0);
        assert_int_equal(pg_exec0(p, NULL, &e, "CREATE TABLE pipe (v int)"), 0);
        bool prepared = false;
        const char *args[] = { "41" };
        PGresult *r1 = NULL, *r2 = NULL, *r3 = NULL;
        size_t failed = 99;

        PgPipeStmt ok[] = {
                { .sql = "BEGIN" },
                { .sql = "INSERT INTO pipe VALUES (1) RETURNING v", .result = &r1 },
                { .name = "t_pipe", .sql = "SELECT $1::int + 1", .prepared = &prepared, .nparams = 1, .params = args,
                  .result = &r2 },
                { .sql = "SELECT count(*) FROM pipe", .result = &r3 },
                { .sql = "COMMIT" },
        };
        assert_int_equal(pg_pipeline(p, ok, 5, &failed, &e), 0);
        assert_true(prepared);
        assert_string_equal(PQgetvalue(r1, 0, 0), "1");
        assert_string_equal(PQgetvalue(r2, 0, 0), "42");
        assert_string_equal(PQgetvalue(r3, 0, 0), "1"); /* in order: the INSERT ran before */
        PQclear(r1);
        PQclear(r2);
        PQclear(r3);
        assert_int_equal(PQtransactionStatus(p->conn), PQTRANS_IDLE);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pipe"), 1);

        /* an explicit transaction outlives the pipeline's end (its Sync): still open, then undone */
        PgPipeStmt open_tx[] = {
                { .sql = "BEGIN" },
                { .sql = "INSERT INTO pipe VALUES (7)" },
        };
        assert_int_equal(pg_pipeline(p, open_tx, 2, &failed, &e), 0);
        assert_int_equal(PQtransactionStatus(p->conn), PQTRANS_INTRANS);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pipe"), 1);
        pg_rollback_quietly(p);
        assert_int_equal(PQtransactionStatus(p->conn), PQTRANS_IDLE);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pipe"), 1);

        /* the second statement fails: nothing after it runs, COMMIT included; no result is left */
        PgPipeStmt bad[] = {
                { .sql = "BEGIN" },
                { .sql = "INSERT INTO pipe VALUES (2) RETURNING v", .result = &r1 },
                { .sql = "SELECT 1 / (SELECT count(*) - 2 FROM pipe)", .result = &r2 },
                { .sql = "INSERT INTO pipe VALUES (3)" },
                { .sql = "COMMIT" },
        };
        r1 = r2 = NULL;
        assert_int_equal(pg_pipeline(p, bad, 5, &failed, &e), PG_ERR_OTHER);
        assert_int_equal(failed, 2);
        assert_string_equal(e.sqlstate, "22012");
        assert_null(r1);
        assert_null(r2);
        pg_error_done(&e);
        assert_int_equal(PQtransactionStatus(p->conn), PQTRANS_INERROR);
        pg_rollback_quietly(p);
        assert_int_equal(PQtransactionStatus(p->conn), PQTRANS_IDLE);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pipe"), 1);

        /* a statement to prepare after one that fails: neither runs, the flag stays false, and the
         * next pipeline prepares it */
        bool late = false;
        PgPipeStmt after_fail[] = {
                { .sql = "SELECT 1 / 0" },
                { .name = "t_late", .sql = "SELECT $1::int + 2", .prepared = &late, .nparams = 1, .params = args,
                  .result = &r2 },
        };
        assert_int_equal(pg_pipeline(p, after_fail, 2, &failed, &e), PG_ERR_OTHER);
        assert_int_equal(failed, 0);
        assert_false(late);
        assert_null(r2);
        pg_error_done(&e);
        assert_int_equal(pg_pipeline(p, &after_fail[1], 1, &failed, &e), 0);
        assert_true(late);
        assert_string_equal(PQgetvalue(r2, 0, 0), "43");
        PQclear(r2);

        /* the prepared statement gone: that pipeline fails with 26000 and clears the flag; the
         * next one prepares it again */
        assert_int_equal(pg_exec0(p, NULL, &e, "DEALLOCATE ALL"), 0);
        PgPipeStmt again[] = {
                { .name = "t_pipe", .sql = "SELECT $1::int + 1", .prepared = &prepared, .nparams = 1, .params = args,
                  .result = &r2 },
        };
        assert_int_equal(pg_pipeline(p, again, 1, &failed, &e), PG_ERR_OTHER);
        assert_string_equal(e.sqlstate, "26000");
        assert_int_equal(failed, 0);
        assert_false(prepared);
        pg_error_done(&e);
        assert_int_equal(pg_pipeline(p, again, 1, &failed, &e), 0);
        assert_true(prepared);
        assert_string_equal(PQgetvalue(r2, 0, 0), "42");
        PQclear(r2);

        /* the session ends under the pipeline (its backend terminates itself, after the answer of
         * its statement): a lost connection, and the pipeline is not left open */
        PgPipeStmt term[] = {
                { .sql = "SELECT pg_terminate_backend(pg_backend_pid())", .result = &r1 },
                { .sql = "SELECT 1", .result = &r2 },
        };
        r1 = r2 = NULL;
        assert_int_equal(pg_pipeline(p, term, 2, &failed, &e), PG_ERR_CONNECTION);
        assert_null(r1);
        assert_null(r2);
        assert_false(pg_connection_ok(p));
        pg_error_done(&e);
        /* the next statement says the connection is lost, whatever libpq kept of the pipeline */
        assert_int_equal(pg_exec0(p, NULL, &e, "SELECT 1"), PG_ERR_CONNECTION);
        assert_true(strstr(e.primary, "pipeline") == NULL);
        pg_error_done(&e);
        pg_rollback_quietly(p); /* nothing to do on a lost connection, and no crash */
        pg_free(p);
        PQfinish(c);
        free(ci);
}

/* rule_lock_all(): the terminal's run takes every rule's lock in one statement, all or none. One
 * rule held by another session: none is kept, and that one is named; then all are taken, and
 * rule_unlock_all() gives all back. Names with a quote, a backslash and a comma go through the
 * array literal as they are. */
static void test_rule_lock_all(void **state) {
        (void) state;
        PGconn *c;
        char *ci = new_db("faults_locks", &c);
        Pg *p = NULL;
        PgError e = {};
        PgSettings st = { .lock_timeout_ms = 2000, .statement_timeout_ms = 60000 };
        assert_int_equal(pg_connect(ci, &st, &p, &e), 0);
        const char *rules[] = { "a", "b \"q\" \\ ,x", "c" };
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %d",
                 PQbackendPID(p->conn));
        pgtest_exec(c, "SELECT pg_advisory_lock(1381256786, hashtext('b \"q\" \\ ,x'))");
        pgtest_exec(c, "SELECT pg_advisory_lock(1381256786, hashtext('c'))");

        assert_int_equal(rule_lock_all(p, rules, 3, &e), OUTCOME_RULE_BUSY);
        assert_string_equal(e.sqlstate, "55P03");
        char want[128];
        snprintf(want, sizeof(want), "Database backend PID %d holds rule \"b \"q\" \\ ,x\".", PQbackendPID(c));
        assert_string_equal(e.detail, want);
        pg_error_done(&e);
        assert_int_equal(rely_int(c, sql), 0);

        pgtest_exec(c, "SELECT pg_advisory_unlock_all()");
        assert_int_equal(rule_lock_all(p, rules, 3, &e), 0);
        assert_int_equal(rely_int(c, sql), 3);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1381256786"
                                     " AND objid = hashtext('b \"q\" \\ ,x')::oid AND granted"), 1);
        rule_unlock_all(p, rules, 3);
        assert_int_equal(rely_int(c, sql), 0);
        pg_free(p);
        PQfinish(c);
        free(ci);
}

static int group_setup(void **state) {
        (void) state;
        pg = pgtest_start();
        dir = rely_tmpdir();
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        pgtest_stop(pg);
        rely_rm_rf(dir);
        free(dir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prepared_statement_gone),
                cmocka_unit_test(test_pipeline),
                cmocka_unit_test(test_rule_lock_all),
                cmocka_unit_test(test_terminate),
                cmocka_unit_test(test_restart),
                cmocka_unit_test(test_lost_connection_outcomes),
                cmocka_unit_test(test_lock_table),
                cmocka_unit_test(test_lock_rows),
                cmocka_unit_test(test_lock_wait),
                cmocka_unit_test(test_partition_detach_timeout),
                cmocka_unit_test(test_statement_timeout),
                cmocka_unit_test(test_clock_far_future),
                cmocka_unit_test(test_clock_timezone),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
