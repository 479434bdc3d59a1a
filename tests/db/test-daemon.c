/* test-daemon.c — `retentiond daemon` against a real PostgreSQL 15 and a real sd_notify socket:
 * READY/STATUS/WATCHDOG (also while a batch waits for a lock), reload (good and broken), SIGTERM
 * in the middle of a run, a database restart under the daemon, startup failures. Every check
 * reads what really happened: notifications received, rows left in the table, the audit trail. */
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
#include "writer.h"

#define SEC UINT64_C(1000000)
#define WATCHDOG_USEC UINT64_C(400000)
/* sd-event pings between 1/2 and 3/4 of WATCHDOG_USEC; systemd acts after the whole of it. */
#define WATCHDOG_MAX_GAP_USEC (WATCHDOG_USEC * 3 / 4 + 50000)

static bool wait_events(PGconn *c, long long expected, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        for (;;) {
                if (dt_events(c) == expected)
                        return true;
                if (now_usec() >= deadline)
                        return false;
                usleep(50000);
        }
}

/* Waits until `sql` (one integer) says `expected`: a run is over when its row says so, not when
 * its last due row is gone (the rule run still ends after it: its last batch, the count, the seal). */
static bool wait_sql(PGconn *c, const char *sql, long long expected, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        for (;;) {
                if (pgtest_int(c, "%s", sql) == expected)
                        return true;
                if (now_usec() >= deadline)
                        return false;
                usleep(50000);
        }
}

static Daemon *start_daemon(const char *policy, const char *ci, uint64_t watchdog_usec, const char *extra1,
                            const char *extra2) {
        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", extra1, extra2, NULL };
        return daemon_start(args, watchdog_usec);
}

static void test_notify_watchdog_reload_stop(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = dt_setup_db("daemon_notify", 500, 50, &c);
        char *policy = dt_write_events_policy("notify", 100);

        /* lock_timeout longer than the watchdog interval: the worker waits for the lock below
         * for seconds, and the loop must keep feeding the watchdog meanwhile. */
        uint64_t t_start = now_usec();
        Daemon *d = start_daemon(policy, ci, WATCHDOG_USEC, "--lock-timeout", "5000");
        long ready = daemon_wait_msg(d, "READY=1", 0, 10 * SEC);
        if (ready < 0)
                dt_dump_stderr(d);
        assert_true(ready >= 0);
        NotifyMsg m = daemon_msg(d, (size_t) ready);
        assert_int_equal(m.pid, daemon_pid(d));
        assert_non_null(strstr(m.text, "STATUS="));
        free(m.text);

        /* The first run starts at once and deletes every due row. */
        assert_true(wait_events(c, 50, 15 * SEC));
        long st = daemon_wait_msg(d, "500 deleted, 0 anonymised, 0 held, 0 failed; next run ", 0, 5 * SEC);
        if (st < 0)
                dt_dump_stderr(d);
        assert_true(st >= 0);
        m = daemon_msg(d, (size_t) st);
        assert_non_null(strstr(m.text, "STATUS=last run "));
        assert_non_null(strstr(m.text, "; database ok"));
        free(m.text);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE mode = 'daemon' AND outcome = 'success'"), 1);
        assert_int_equal(pgtest_int(c, "SELECT rows_deleted FROM retention.rule_runs WHERE rule = 'old-events'"), 500);

        /* A slow batch: another session holds an ACCESS EXCLUSIVE lock on the table for 3.2 s
         * (less than lock_timeout) while SIGUSR1 asks for a run. */
        pgtest_exec(c, "INSERT INTO events (created_at) SELECT now() - interval '30 days' - g * interval '1 second' FROM generate_series(1, 200) g");
        PGconn *locker = pgtest_connect(ci);
        pgtest_exec(locker, "BEGIN");
        pgtest_exec(locker, "LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE");
        uint64_t t_lock = now_usec();
        size_t before_usr1 = daemon_n_msgs(d);
        daemon_kill(d, SIGUSR1);
        long running = daemon_wait_msg(d, "STATUS=running: run 2, rule old-events (1 of 1)", before_usr1, 5 * SEC);
        assert_true(running >= 0);
        usleep(3200000);
        /* Still blocked: nothing was deleted, the run is still in progress. */
        assert_int_equal(pgtest_int(locker, "SELECT count(*) FROM events"), 250);
        assert_int_equal(pgtest_int(locker, "SELECT count(*) FROM retention.runs WHERE outcome = 'running'"), 1);
        pgtest_exec(locker, "COMMIT");
        uint64_t t_release = now_usec();
        PQfinish(locker);

        size_t n_wd = 0;
        uint64_t gap_locked = dt_watchdog_max_gap(d, 0, t_lock, t_release, &n_wd);
        print_message("watchdog while the batch waited %.2f s for the lock: %zu pings, longest gap %.3f s (WATCHDOG_USEC %.3f s)\n",
                      (double) (t_release - t_lock) / 1e6, n_wd, (double) gap_locked / 1e6, (double) WATCHDOG_USEC / 1e6);
        assert_true(t_release - t_lock >= 3 * SEC);
        assert_true(n_wd >= (t_release - t_lock) / WATCHDOG_MAX_GAP_USEC);
        assert_true(gap_locked > 0 && gap_locked <= WATCHDOG_MAX_GAP_USEC);

        assert_true(wait_events(c, 50, 10 * SEC));
        assert_true(daemon_wait_msg(d, "STATUS=last run ", (size_t) running, 5 * SEC) >= 0);
        assert_int_equal(pgtest_int(c, "SELECT sum(rows_deleted) FROM retention.rule_runs WHERE outcome = 'success'"), 700);

        /* SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1. */
        size_t before_hup = daemon_n_msgs(d);
        uint64_t t_hup = now_usec();
        daemon_kill(d, SIGHUP);
        long rl = daemon_wait_msg(d, "RELOADING=1", before_hup, 5 * SEC);
        assert_true(rl >= 0);
        m = daemon_msg(d, (size_t) rl);
        const char *mono = strstr(m.text, "MONOTONIC_USEC=");
        assert_non_null(mono);
        unsigned long long mu = strtoull(mono + strlen("MONOTONIC_USEC="), NULL, 10);
        assert_true(mu >= t_hup && mu <= m.usec); /* the same clock as ours, sent when reloading began */
        free(m.text);
        long rd = daemon_wait_msg(d, "READY=1", (size_t) rl + 1, 5 * SEC);
        assert_true(rd > rl);

        /* Watchdog over the whole life so far (well over 3 s), every ping from the daemon itself. */
        uint64_t t_now = now_usec();
        uint64_t gap_all = dt_watchdog_max_gap(d, 0, 0, t_now, &n_wd);
        print_message("watchdog over %.2f s: %zu pings, longest gap %.3f s\n", (double) (t_now - t_start) / 1e6, n_wd,
                      (double) gap_all / 1e6);
        assert_true(t_now - t_start >= 3 * SEC);
        assert_true(gap_all > 0 && gap_all <= WATCHDOG_MAX_GAP_USEC);
        for (size_t i = 0; i < daemon_n_msgs(d); i++) {
                m = daemon_msg(d, i);
                assert_int_equal(m.pid, daemon_pid(d));
                free(m.text);
        }

        /* SIGTERM: STOPPING=1, exit 0 well within 10 s. */
        size_t before_term = daemon_n_msgs(d);
        uint64_t t_term = now_usec();
        daemon_kill(d, SIGTERM);
        assert_true(daemon_wait_msg(d, "STOPPING=1", before_term, 10 * SEC) >= 0);
        int rc = daemon_wait_exit(d, 10 * SEC);
        print_message("idle daemon stopped %.3f s after SIGTERM\n", (double) (now_usec() - t_term) / 1e6);
        if (rc != 0)
                dt_dump_stderr(d);
        assert_int_equal(rc, 0);
        char *err = daemon_stderr(d);
        assert_int_equal(count_substr(err, "retentiond: rule old-events enforced on public.events: "), 2);
        assert_non_null(strstr(err, "retentiond: run of every rule requested by signal SIGUSR1\n"));
        assert_non_null(strstr(err, "retentiond: policy reloaded: 1 rules from 1 files\n"));
        assert_non_null(strstr(err, "retentiond: stopping on SIGTERM\n"));
        free(err);

        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

static void test_reload_broken_policy_keeps_old(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = dt_setup_db("daemon_reload", 300, 20, &c);
        char *policy = dt_write_events_policy("reload", 100);

        Daemon *d = start_daemon(policy, ci, 0, NULL, NULL);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        assert_true(wait_events(c, 20, 15 * SEC));
        assert_true(daemon_wait_msg(d, "STATUS=last run ", 0, 5 * SEC) >= 0);

        /* A YAML error: an unclosed flow sequence, reported at line 5, column 1. */
        dt_write_file(policy, "version: 1\nrules:\n  old-events:\n    table: [public.events\n");
        size_t before = daemon_n_msgs(d);
        daemon_kill(d, SIGHUP);
        long rl = daemon_wait_msg(d, "RELOADING=1", before, 5 * SEC);
        assert_true(rl >= 0);
        assert_true(daemon_wait_msg(d, "READY=1", (size_t) rl + 1, 5 * SEC) > rl);

        /* The old policy still runs. */
        pgtest_exec(c, "INSERT INTO events (created_at) SELECT now() - interval '30 days' - g * interval '1 second' FROM generate_series(1, 150) g");
        daemon_kill(d, SIGUSR1);
        if (!wait_events(c, 20, 15 * SEC))
                dt_dump_stderr(d);
        assert_int_equal(dt_events(c), 20);
        assert_true(wait_sql(c, "SELECT count(*) FROM retention.rule_runs WHERE rule = 'old-events' AND outcome = 'success'", 2,
                             10 * SEC));

        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        char *err = daemon_stderr(d);
        char *expected = rt_asprintf("retentiond: error: policy not reloaded: %s:5:1: YAML syntax error: ", policy);
        if (!strstr(err, expected))
                print_message("expected %s in:\n%s", expected, err);
        assert_non_null(strstr(err, expected));
        assert_non_null(strstr(err, "the policy loaded before (1 rules) stays in force"));
        assert_null(strstr(err, "policy reloaded"));
        free(expected);
        free(err);

        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

static void test_sigterm_during_run(void **state) {
        (void) state;
        PGconn *c = NULL;
        const long old = 30000, young = 10;
        char *ci = dt_setup_db("daemon_sigterm", old, young, &c);
        char *policy = dt_write_events_policy("sigterm", 10);

        Daemon *d = start_daemon(policy, ci, 0, NULL, NULL);
        /* Let the first batches commit, then stop in the middle of the run. */
        uint64_t deadline = now_usec() + 15 * SEC;
        long long done = 0;
        while (now_usec() < deadline) {
                char *v = pgtest_value(c, "SELECT coalesce(max(rows_deleted), 0)::text FROM retention.rule_runs");
                done = strtoll(v, NULL, 10);
                free(v);
                if (done >= 50)
                        break;
                usleep(5000);
        }
        assert_true(done >= 50);
        uint64_t t_term = now_usec();
        daemon_kill(d, SIGTERM);
        int rc = daemon_wait_exit(d, 10 * SEC);
        uint64_t stop_usec = now_usec() - t_term;
        print_message("daemon stopped %.3f s after SIGTERM in the middle of a run\n", (double) stop_usec / 1e6);
        if (rc != 0)
                dt_dump_stderr(d);
        assert_int_equal(rc, 0);
        assert_true(stop_usec < 10 * SEC);

        long long left = dt_events(c);
        long long gone = old + young - left;
        long long recorded = pgtest_int(c, "SELECT rows_deleted FROM retention.rule_runs WHERE rule = 'old-events'");
        print_message("interrupted after %lld of %ld due rows; the audit trail says %lld\n", gone, old, recorded);
        assert_true(gone > 0 && gone < old);
        assert_int_equal(recorded, gone);
        /* The counter moves in the batch's own statement: equal counts mean no batch was half done
         * or half recorded (the engine adapts the batch size, so the count need not be a multiple). */
        assert_true(pgtest_int(c, "SELECT batches FROM retention.rule_runs WHERE rule = 'old-events'") >= 1);
        char *o = pgtest_value(c, "SELECT outcome FROM retention.rule_runs WHERE rule = 'old-events'");
        assert_string_equal(o, "interrupted");
        free(o);
        o = pgtest_value(c, "SELECT outcome || ' ' || mode || ' ' || (finished_at IS NOT NULL) FROM retention.runs");
        assert_string_equal(o, "interrupted daemon true");
        free(o);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM events WHERE created_at > now() - interval '1 day'"), young);

        char *err = daemon_stderr(d);
        assert_non_null(strstr(err, "retentiond: stopping on SIGTERM: interrupting the run in flight\n"));
        assert_non_null(strstr(err, "retentiond: warning: rule old-events interrupted after "));
        assert_non_null(strstr(err, "finished (interrupted): "));
        free(err);

        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* SIGTERM while the worker waits between two batches (pacing: another session writes): the
 * wait ends at once. Each batch is made to take 20 ms (a statement trigger sleeps), so with
 * --pace 100 the wait after it is at least 2 s; the daemon must stop long before. */
static void test_sigterm_during_pause(void **state) {
        (void) state;
        PGconn *c = NULL;
        const long old = 30000, young = 10;
        char *ci = dt_setup_db("daemon_pause", old, young, &c);
        pgtest_exec(c, "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS"
                       " $$BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END$$");
        pgtest_exec(c, "CREATE TRIGGER slow BEFORE DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION public.slow()");
        char *policy = dt_write_events_policy("pause", 1000);

        Writer *w = writer_start(ci);
        Daemon *d = start_daemon(policy, ci, 0, "--pace", "100");
        uint64_t deadline = now_usec() + 15 * SEC;
        long long done = 0;
        while (now_usec() < deadline && done == 0) {
                done = pgtest_int(c, "SELECT coalesce(max(rows_deleted), 0) FROM retention.rule_runs");
                if (done == 0)
                        usleep(5000);
        }
        assert_true(done > 0);
        usleep(100000); /* well inside the first pause */
        uint64_t t_term = now_usec();
        daemon_kill(d, SIGTERM);
        int rc = daemon_wait_exit(d, 10 * SEC);
        uint64_t stop_usec = now_usec() - t_term;
        long long commits = writer_stop(w);
        print_message("daemon stopped %.3f s after SIGTERM during a pause (writer committed %lld)\n",
                      (double) stop_usec / 1e6, commits);
        if (rc != 0)
                dt_dump_stderr(d);
        assert_int_equal(rc, 0);
        assert_true(stop_usec < SEC);
        /* Stopped in the pause after the first batch: no second batch ran. */
        assert_int_equal(pgtest_int(c, "SELECT batches FROM retention.rule_runs WHERE rule = 'old-events'"), 1);
        long long recorded = pgtest_int(c, "SELECT rows_deleted FROM retention.rule_runs WHERE rule = 'old-events'");
        assert_int_equal(recorded, old + young - dt_events(c));
        char *o = pgtest_value(c, "SELECT outcome FROM retention.rule_runs WHERE rule = 'old-events'");
        assert_string_equal(o, "interrupted");
        free(o);

        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

static void test_database_restart(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = dt_setup_db("daemon_outage", 200, 30, &c);
        char *policy = dt_write_events_policy("outage", 100);

        Daemon *d = start_daemon(policy, ci, 0, NULL, NULL);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        assert_true(wait_events(c, 30, 15 * SEC));
        assert_true(wait_sql(c, "SELECT count(*) FROM retention.runs WHERE outcome = 'success'", 1, 10 * SEC));
        assert_true(daemon_wait_msg(d, "database ok", 0, 5 * SEC) >= 0);
        PQfinish(c);

        /* The server goes away under the idle daemon, stays away for a few reconnect attempts,
         * and comes back. */
        pgtest_stop_server(rt_pg);
        uint64_t t_stop = now_usec();
        if (!daemon_wait_stderr(d, "database unavailable", 5 * SEC))
                dt_dump_stderr(d);
        assert_true(daemon_wait_msg(d, "STATUS=waiting for database: ", 0, 5 * SEC) >= 0);
        usleep(3500000);
        assert_int_equal(daemon_wait_exit(d, 0), -1); /* still running */
        pgtest_start_server(rt_pg);
        print_message("database down for %.1f s\n", (double) (now_usec() - t_stop) / 1e6);

        c = pgtest_connect(ci);
        pgtest_exec(c, "INSERT INTO events (created_at) SELECT now() - interval '30 days' - g * interval '1 second' FROM generate_series(1, 120) g");
        daemon_kill(d, SIGUSR1);
        if (!wait_events(c, 30, 20 * SEC))
                dt_dump_stderr(d);
        assert_int_equal(dt_events(c), 30);
        assert_true(daemon_wait_stderr(d, "connection to the database restored", 5 * SEC));
        assert_true(wait_sql(c, "SELECT count(*) FROM retention.runs WHERE outcome = 'success'", 2, 10 * SEC));

        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        char *err = daemon_stderr(d);
        assert_int_equal(count_substr(err, "database unavailable"), 1);
        assert_int_equal(count_substr(err, "retentiond: warning: database unavailable: "), 1);
        assert_int_equal(count_substr(err, "connection to the database restored"), 1);
        assert_int_equal(count_substr(err, "rule old-events enforced on public.events: "), 2);
        assert_null(strstr(err, "error:"));
        free(err);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE outcome = 'success'"), 2);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs WHERE outcome <> 'success'"), 0);

        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

static void test_database_down_at_start(void **state) {
        (void) state;
        /* Nobody listens on this socket: READY=1 anyway, STATUS says why it waits, no exit. */
        char *policy = dt_write_events_policy("nodb", 100);
        char *ci = rt_asprintf("host=%s port=1 dbname=nothing user=postgres", rt_dir);
        Daemon *d = start_daemon(policy, ci, 0, NULL, NULL);
        long ready = daemon_wait_msg(d, "READY=1", 0, 10 * SEC);
        assert_true(ready >= 0);
        long st = daemon_wait_msg(d, "STATUS=waiting for database: could not connect to the database: ", 0, 5 * SEC);
        assert_true(st >= 0);
        usleep(2500000); /* attempts at ~1 s and ~3 s: logged once */
        assert_int_equal(daemon_wait_exit(d, 0), -1);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        char *err = daemon_stderr(d);
        assert_int_equal(count_substr(err, "database unavailable"), 1);
        free(err);
        daemon_free(d);
        free(policy);
        free(ci);
}

static void test_startup_failures_exit_78(void **state) {
        (void) state;
        char *broken = rt_asprintf("%s/broken.yaml", rt_dir);
        dt_write_file(broken, "version: 1\nrules:\n  old-events:\n    table: [public.events\n");
        const char *a1[] = { "daemon", "-p", broken, "-d", "dbname=unused", "--log-target=console", NULL };
        char *err = NULL;
        assert_int_equal(pgtest_run(a1, NULL, NULL, &err), 78);
        char *expected = rt_asprintf("%s:5:1: error: YAML syntax error", broken);
        assert_non_null(strstr(err, expected));
        free(expected);
        free(err);

        char *hashy = rt_asprintf("%s/hash.yaml", rt_dir);
        dt_write_file(hashy, "version: 1\n"
                          "rules:\n"
                          "  hash-mail:\n"
                          "    clause: \"Addresses are pseudonymised after 30 days\"\n"
                          "    table: public.events\n"
                          "    column: created_at\n"
                          "    retain: 30 days\n"
                          "    action: anonymise\n"
                          "    columns: { email: hash }\n");
        const char *a2[] = { "daemon", "-p", hashy, "-d", "dbname=unused", "--log-target=console", NULL };
        const char *env[] = { "CREDENTIALS_DIRECTORY=", "RETENTIOND_HASH_KEY_FILE=", NULL };
        err = NULL;
        assert_int_equal(pgtest_run(a2, env, NULL, &err), 78);
        assert_non_null(strstr(err, "the hash method needs a key, and none was found"));
        free(err);
        free(hashy);
        free(broken);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_notify_watchdog_reload_stop),
                cmocka_unit_test(test_reload_broken_policy_keeps_old),
                cmocka_unit_test(test_sigterm_during_run),
                cmocka_unit_test(test_sigterm_during_pause),
                cmocka_unit_test(test_database_restart),
                cmocka_unit_test(test_database_down_at_start),
                cmocka_unit_test(test_startup_failures_exit_78),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
