/* test-instances.c — two `retentiond daemon`s against one real PostgreSQL database, as for
 * availability: rules with a 2-second schedule run exactly once per slot (no two rule runs of a
 * rule overlap, consecutive starts are a slot apart, the count matches the slots), and after
 * SIGKILL of the daemon that was enforcing, the other one takes over at the next slot. Every
 * check reads retention.rule_runs, the audit trail. And one daemon for several databases
 * (`databases:`): one that does not exist yet does not stop the other, and is enforced once it
 * does. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemontest.h"
#include "notify-harness.h"
#include "pgtest.h"
#include "rtest.h"

#define SEC UINT64_C(1000000)
#define SCHEDULE_SEC 2
#define N_RULES 3

static void dump(Daemon *d, const char *name) {
        char *s = daemon_stderr(d);
        print_message("daemon %s stderr:\n%s", name, s);
        free(s);
}

/* The backend pid of the retentiond session that connected first (or last). */
static long long backend(PGconn *c, bool first) {
        return pgtest_int(c,
                          "SELECT coalesce((SELECT pid FROM pg_stat_activity WHERE application_name = 'retentiond'"
                          " ORDER BY backend_start %s LIMIT 1), 0)",
                          first ? "ASC" : "DESC");
}

/* Asserts "once per slot" for every rule over the rule runs that started at or after `since`
 * (an SQL timestamp expression): no two rule runs of a rule overlap in time, consecutive starts
 * are at least a slot apart (less the claim's tolerance of a tenth, and less the variable time
 * between a claim and its rule run's row, which valgrind stretches: 85 % of a slot) and at most
 * two slots apart, and the number of runs is the number of slots from the first start to
 * `until`, give or take one. */
static void assert_once_per_slot(PGconn *c, const char *since, const char *until, long long min_runs) {
        /* no overlaps; a rule run cut by a SIGKILL never finished: it ends where it started */
        long long overlaps = pgtest_int(
                c, "SELECT count(*) FROM retention.rule_runs a JOIN retention.rule_runs b"
                   " ON a.rule = b.rule AND a.id < b.id"
                   " AND tstzrange(a.started_at, coalesce(a.finished_at, a.started_at), '[]')"
                   "  && tstzrange(b.started_at, coalesce(b.finished_at, b.started_at), '[]')");
        assert_int_equal(overlaps, 0);
        for (int i = 1; i <= N_RULES; i++) {
                long long n = pgtest_int(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'r%d' AND started_at >= %s", i,
                                         since);
                char *gaps = pgtest_value(
                        c, "SELECT coalesce(string_agg(round(extract(epoch FROM g)::numeric, 2)::text, ' '), '')"
                           " FROM (SELECT started_at - lag(started_at) OVER (ORDER BY started_at) AS g"
                           "       FROM retention.rule_runs WHERE rule = 'r%d' AND started_at >= %s) x WHERE g IS NOT NULL",
                        i, since);
                long long too_close = pgtest_int(
                        c, "SELECT count(*) FROM (SELECT started_at - lag(started_at) OVER (ORDER BY started_at) AS g"
                           " FROM retention.rule_runs WHERE rule = 'r%d' AND started_at >= %s) x"
                           " WHERE g < interval '%d milliseconds'",
                        i, since, SCHEDULE_SEC * 850);
                long long too_far = pgtest_int(
                        c, "SELECT count(*) FROM (SELECT started_at - lag(started_at) OVER (ORDER BY started_at) AS g"
                           " FROM retention.rule_runs WHERE rule = 'r%d' AND started_at >= %s) x"
                           " WHERE g > interval '%d milliseconds'",
                        i, since, SCHEDULE_SEC * 2000 + 500);
                long long slots = pgtest_int(
                        c, "SELECT floor(extract(epoch FROM %s - min(started_at)) / %d)::bigint + 1"
                           " FROM retention.rule_runs WHERE rule = 'r%d' AND started_at >= %s",
                        until, SCHEDULE_SEC, i, since);
                print_message("rule r%d: %lld runs in %lld slots; gaps between starts (s): %s\n", i, n, slots, gaps);
                assert_int_equal(too_close, 0);
                assert_int_equal(too_far, 0);
                assert_true(n >= min_runs);
                assert_true(n >= slots - 1 && n <= slots + 1);
                free(gaps);
        }
}

static void test_two_daemons_once_per_slot(void **state) {
        (void) state;
        char *ci = pgtest_create_db(rt_pg, "instances");
        dt_migrate(ci);
        PGconn *c = pgtest_connect(ci);
        char *policy = rt_asprintf("%s/instances.yaml", rt_dir);
        FILE *f = fopen(policy, "we");
        assert_non_null(f);
        fputs("version: 1\ndefaults:\n  schedule: 2 seconds\n  max_fraction: 100%\nrules:\n", f);
        for (int i = 1; i <= N_RULES; i++) {
                pgtest_exec(c, "CREATE TABLE t%d (id bigserial PRIMARY KEY, at timestamptz NOT NULL)", i);
                pgtest_exec(c, "INSERT INTO t%d (at) SELECT now() - interval '30 days' FROM generate_series(1, 100)", i);
                fprintf(f, "  r%d:\n    clause: \"kept 7 days\"\n    table: t%d\n    column: at\n    retain: 7 days\n"
                           "    action: delete\n",
                        i, i);
        }
        assert_int_equal(fclose(f), 0);

        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", NULL };
        Daemon *a = daemon_start(args, 0);
        assert_true(daemon_wait_msg(a, "READY=1", 0, 10 * SEC) >= 0);
        /* a's first run: every rule once */
        for (int i = 0; i < 100 && pgtest_int(c, "SELECT count(*) FROM retention.rule_runs WHERE finished_at IS NOT NULL") < N_RULES; i++)
                usleep(100000);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.rule_runs"), N_RULES);
        Daemon *b = daemon_start(args, 0);
        assert_true(daemon_wait_msg(b, "READY=1", 0, 10 * SEC) >= 0);
        for (int i = 0; i < 100 && pgtest_int(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentiond'") < 2; i++)
                usleep(100000);
        long long pid_a = backend(c, true), pid_b = backend(c, false);
        assert_true(pid_a > 0 && pid_b > 0 && pid_a != pid_b);

        /* ~8 s of two daemons */
        usleep(8 * SEC + SEC / 2);
        print_message("two daemons:\n");
        assert_once_per_slot(c, "'-infinity'", "now()", 4);
        /* b came up while a's first slot was still going: it started nothing twice */
        long long runs_a = pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE backend_pid = %lld", pid_a);
        long long runs_b = pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE backend_pid = %lld", pid_b);
        print_message("runs by a: %lld, by b: %lld\n", runs_a, runs_b);
        assert_true(runs_a >= 1);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE rules_total = 0 AND outcome <> 'running'"), 0);

        /* SIGKILL the daemon that enforced last: the other takes over at the next slot. */
        long long last = pgtest_int(c, "SELECT backend_pid FROM retention.runs ORDER BY id DESC LIMIT 1");
        Daemon *victim = last == pid_a ? a : b, *survivor = last == pid_a ? b : a;
        long long survivor_pid = last == pid_a ? pid_b : pid_a;
        char *t_kill = pgtest_value(c, "SELECT now()::text");
        daemon_kill(victim, SIGKILL);
        assert_int_equal(daemon_wait_exit(victim, 10 * SEC), 128 + SIGKILL);
        usleep(7 * SEC);
        char *since = rt_asprintf("'%s'::timestamptz", t_kill);
        print_message("after SIGKILL of the daemon that enforced last:\n");
        /* the survivor alone, once per slot, from the first slot after the kill */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs r WHERE r.started_at >= %s AND r.backend_pid <> %lld",
                                    since, survivor_pid),
                         0);
        for (int i = 1; i <= N_RULES; i++) {
                /* taken over at the next slot: the first start after the kill is at most a slot
                 * (plus the dead session's cleanup and jitter) after the last start before it */
                long long late = pgtest_int(
                        c, "SELECT count(*) FROM (SELECT min(started_at) FILTER (WHERE started_at >= %s) AS after,"
                           " max(started_at) FILTER (WHERE started_at < %s) AS before"
                           " FROM retention.rule_runs WHERE rule = 'r%d') x"
                           " WHERE after IS NULL OR after - before > interval '%d milliseconds'",
                        since, since, i, SCHEDULE_SEC * 1000 + 1500);
                assert_int_equal(late, 0);
        }
        assert_once_per_slot(c, since, "now()", 3);
        assert_once_per_slot(c, "'-infinity'", "now()", 7);

        daemon_kill(survivor, SIGTERM);
        int st = daemon_wait_exit(survivor, 10 * SEC);
        if (st != 0) {
                dump(a, "a");
                dump(b, "b");
        }
        assert_int_equal(st, 0);
        char *e = daemon_stderr(survivor);
        if (strstr(e, "retentiond: error:"))
                dump(survivor, "survivor");
        assert_null(strstr(e, "retentiond: error:"));
        free(e);
        daemon_free(a);
        daemon_free(b);
        free(since);
        free(t_kill);
        free(policy);
        PQfinish(c);
        free(ci);
}

/* `retentiond run` while a daemon enforces: the run wants rules the daemon holds and exits 75,
 * naming the rule; the daemon waits for a rule the terminal run holds and says why. */
static void test_run_and_daemon(void **state) {
        (void) state;
        char *ci = pgtest_create_db(rt_pg, "instances_run");
        dt_migrate(ci);
        PGconn *c = pgtest_connect(ci);
        pgtest_exec(c, "CREATE TABLE t1 (id bigserial PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(c, "INSERT INTO t1 (at) SELECT now() - interval '30 days' FROM generate_series(1, 10)");
        char *policy = rt_asprintf("%s/run.yaml", rt_dir);
        FILE *f = fopen(policy, "we");
        assert_non_null(f);
        fputs("version: 1\nrules:\n  r1:\n    clause: \"kept 7 days\"\n    table: t1\n    column: at\n    retain: 7 days\n"
              "    action: delete\n    max_fraction: 100%\n    schedule: 2 seconds\n",
              f);
        assert_int_equal(fclose(f), 0);

        /* another session holds the rule (as a long run would) */
        PGconn *holder = pgtest_connect(ci);
        pgtest_exec(holder, "INSERT INTO retention.runs (host, version, mode) VALUES ('elsewhere', '0.0.1', 'run')");
        pgtest_exec(holder, "SELECT pg_advisory_lock(1381256786, hashtext('r1'))");
        const char *rargs[] = { "-p", policy, "-d", ci, "run", NULL };
        char *out = NULL, *err = NULL;
        assert_int_equal(pgtest_run(rargs, NULL, &out, &err), 75);
        assert_non_null(strstr(err, "another enforcement run is in progress on this database"));
        assert_non_null(strstr(err, "on host elsewhere holds rule \"r1\""));
        free(out);
        free(err);

        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", NULL };
        Daemon *d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        assert_true(daemon_wait_stderr(d, "rule r1 not started: Run 1 (mode run)", 10 * SEC));
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM t1"), 10);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.rule_runs"), 0);
        pgtest_exec(holder, "UPDATE retention.runs SET outcome = 'interrupted'");
        pgtest_exec(holder, "SELECT pg_advisory_unlock(1381256786, hashtext('r1'))");
        /* it retries within the rule's period (2 s) */
        for (int i = 0; i < 60 && pgtest_int(c, "SELECT count(*) FROM t1") > 0; i++)
                usleep(100000);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM t1"), 0);

        /* the daemon holds r1 only while it enforces it: a terminal run gets through between slots */
        pgtest_exec(c, "INSERT INTO t1 (at) SELECT now() - interval '30 days' FROM generate_series(1, 5)");
        int code = 75;
        for (int i = 0; i < 20 && code == 75; i++)
                code = pgtest_run(rargs, NULL, NULL, NULL);
        assert_int_equal(code, 0);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        daemon_free(d);
        PQfinish(holder);
        PQfinish(c);
        free(policy);
        free(ci);
}

static void test_one_daemon_two_databases(void **state) {
        (void) state;
        char *ci_a = pgtest_create_db(rt_pg, "several_alpha");
        dt_migrate(ci_a);
        PGconn *a = pgtest_connect(ci_a);
        pgtest_exec(a, "CREATE TABLE t1 (id bigserial PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(a, "INSERT INTO t1 (at) SELECT now() - interval '30 days' FROM generate_series(1, 20)");
        /* beta does not exist yet: as a database that is down */
        PGconn *admin = pgtest_connect(ci_a);
        pgtest_exec(admin, "DROP DATABASE IF EXISTS several_beta");
        char *ci_b = rt_asprintf("host=%s port=%d dbname=several_beta user=postgres", pgtest_host(rt_pg), pgtest_port(rt_pg));

        char *policy = rt_asprintf("%s/several.yaml", rt_dir);
        FILE *f = fopen(policy, "we");
        assert_non_null(f);
        fprintf(f,
                "version: 1\n"
                "databases:\n"
                "  alpha: { conninfo: \"%s\" }\n"
                "  beta: { conninfo: \"%s\" }\n"
                "defaults: { schedule: 2 seconds, max_fraction: 100%% }\n"
                "rules:\n"
                "  ra: { clause: \"7 days\", database: alpha, table: t1, column: at, retain: 7 days, action: delete }\n"
                "  rb: { clause: \"7 days\", database: beta, table: t1, column: at, retain: 7 days, action: delete }\n",
                ci_a, ci_b);
        assert_int_equal(fclose(f), 0);

        /* no -d: every database of the policy */
        const char *args[] = { "daemon", "-p", policy, "--log-target=console", NULL };
        Daemon *d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        for (int i = 0; i < 100 && pgtest_int(a, "SELECT count(*) FROM t1") > 0; i++)
                usleep(100000);
        assert_int_equal(pgtest_int(a, "SELECT count(*) FROM t1"), 0);
        if (!daemon_wait_stderr(d, "database beta unavailable: ", 5 * SEC))
                dump(d, "d");
        assert_true(daemon_wait_stderr(d, "its rules wait, reconnecting in the background", 1 * SEC));
        assert_true(daemon_wait_msg(d, "STATUS=alpha: last run ", 0, 5 * SEC) >= 0);
        assert_true(daemon_wait_msg(d, " | beta: waiting for database: ", 0, 5 * SEC) >= 0);
        /* alpha goes on on its schedule meanwhile */
        usleep(4 * SEC + SEC / 2);
        assert_true(pgtest_int(a, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'ra'") >= 3);
        assert_int_equal(pgtest_int(a, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'rb'"), 0);

        /* beta comes up: the daemon connects within its backoff and enforces rb there */
        pgtest_exec(admin, "CREATE DATABASE several_beta");
        dt_migrate(ci_b);
        PGconn *b = pgtest_connect(ci_b);
        pgtest_exec(b, "CREATE TABLE t1 (id bigserial PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(b, "INSERT INTO t1 (at) SELECT now() - interval '30 days' FROM generate_series(1, 7)");
        assert_true(daemon_wait_stderr(d, "connection to database beta restored after ", 40 * SEC));
        for (int i = 0; i < 100 && pgtest_int(b, "SELECT count(*) FROM t1") > 0; i++)
                usleep(100000);
        assert_int_equal(pgtest_int(b, "SELECT count(*) FROM t1"), 0);
        assert_int_equal(pgtest_int(b, "SELECT count(*) FROM retention.rule_runs WHERE rule <> 'rb'"), 0);
        char *e = daemon_stderr(d);
        assert_int_equal(count_substr(e, "database beta unavailable"), 1);
        assert_int_equal(count_substr(e, "database alpha unavailable"), 0);
        free(e);

        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        daemon_free(d);
        PQfinish(b);
        PQfinish(a);
        pgtest_exec(admin, "DROP DATABASE IF EXISTS several_beta WITH (FORCE)");
        PQfinish(admin);
        free(policy);
        free(ci_a);
        free(ci_b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_one_daemon_two_databases),
                cmocka_unit_test(test_two_daemons_once_per_slot),
                cmocka_unit_test(test_run_and_daemon),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
