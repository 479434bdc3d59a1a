/* test-unattended.c — the service left alone (issue 14), against a real PostgreSQL 15 and a real
 * sd_notify socket: a server frozen mid-batch (SIGSTOP of the postmaster and all its children)
 * must not starve the watchdog nor keep SIGTERM from ending the daemon; the run the daemon
 * abandoned is recorded as interrupted by the next start; a rule interrupted by a crash resumes
 * first at the next start; a last start in the future does not disable a rule; STATUS= names
 * failing rules, also after a restart. Every check reads what really happened. */
#include <dirent.h>
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

/* Waits until SQL (a count) gives `expected`; false after timeout. */
static bool wait_sql(const char *ci, long long expected, uint64_t timeout_usec, const char *sql) {
        uint64_t deadline = now_usec() + timeout_usec;
        PGconn *c = pgtest_connect(ci);
        bool ok = false;
        for (;;) {
                if (pgtest_int(c, "%s", sql) == expected) {
                        ok = true;
                        break;
                }
                if (now_usec() >= deadline)
                        break;
                usleep(50000);
        }
        PQfinish(c);
        return ok;
}

/* The first message at index >= 0 that contains both needles; -1 after timeout. */
static long wait_msg2(Daemon *d, const char *n1, const char *n2, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        size_t from = 0;
        for (;;) {
                uint64_t now = now_usec();
                long i = daemon_wait_msg(d, n1, from, now < deadline ? deadline - now : 0);
                if (i < 0)
                        return -1;
                NotifyMsg m = daemon_msg(d, (size_t) i);
                bool both = strstr(m.text, n2) != NULL;
                free(m.text);
                if (both)
                        return i;
                from = (size_t) i + 1;
        }
}

/* ---- freezing the server ---- */

static pid_t frozen[256];
static size_t n_frozen;

static pid_t parent_of(pid_t pid) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        pid_t pp = -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "PPid:", 5) == 0)
                        pp = (pid_t) atoi(line + 5);
        fclose(f);
        return pp;
}

/* SIGSTOP to the postmaster (first: it forks nothing more) and every child of it. */
static void freeze_server(PGconn *c) {
        pid_t backend = (pid_t) pgtest_int(c, "SELECT pg_backend_pid()");
        pid_t postmaster = parent_of(backend);
        assert_true(postmaster > 1);
        n_frozen = 0;
        assert_int_equal(kill(postmaster, SIGSTOP), 0);
        frozen[n_frozen++] = postmaster;
        DIR *d = opendir("/proc");
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) && n_frozen < sizeof(frozen) / sizeof(frozen[0])) {
                pid_t pid = (pid_t) atoi(e->d_name);
                if (pid <= 0 || parent_of(pid) != postmaster)
                        continue;
                if (kill(pid, SIGSTOP) == 0)
                        frozen[n_frozen++] = pid;
        }
        closedir(d);
        print_message("froze the postmaster %d and %zu of its processes\n", (int) postmaster, n_frozen - 1);
}

static void thaw_server(void) {
        for (size_t i = n_frozen; i > 0; i--)
                (void) kill(frozen[i - 1], SIGCONT);
        n_frozen = 0;
}

/* Whatever happened in the test: the server runs again. */
static int teardown_thaw(void **state) {
        (void) state;
        thaw_server();
        return 0;
}

static void test_frozen_server(void **state) {
        (void) state;
        /* Freezing a server is only for the private cluster this program started. */
        if (getenv("RETENTIOND_TEST_PGHOST") && *getenv("RETENTIOND_TEST_PGHOST")) {
                print_message("skipped: RETENTIOND_TEST_PGHOST names a cluster this test must not freeze\n");
                skip();
        }
        PGconn *c = NULL;
        const long old = 3000, young = 7;
        char *ci = dt_setup_db("unattended_frozen", old, young, &c);
        /* Every batch takes 50 ms: the server is frozen in the middle of one. */
        pgtest_exec(c, "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS"
                       " $$BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END$$");
        pgtest_exec(c, "CREATE TRIGGER slow BEFORE DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION public.slow()");
        char *policy = dt_write_events_policy("frozen", 10);

        /* statement_timeout 1 s: the daemon's hard limit (3 x 1 s + 10 s = 13 s) passes while frozen,
         * so it tries to cancel the statement; WatchdogSec 2 s. */
        const uint64_t wd = 2 * SEC, max_gap = wd * 3 / 4 + 100000;
        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", "--statement-timeout", "1000", NULL };
        Daemon *d = daemon_start(args, wd);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        if (!wait_sql(ci, 1, 15 * SEC, "SELECT (coalesce(max(rows_deleted), 0) >= 50)::int FROM retention.rule_runs"))
                dt_dump_stderr(d);

        uint64_t t_freeze = now_usec();
        freeze_server(c);
        PQfinish(c); /* its backend is frozen too; never used again */
        c = NULL;
        /* Past the hard limit: the loop asks for a cancel (which cannot be delivered) and goes on. */
        if (!daemon_wait_stderr(d, "longer than the limit of 13 s: cancelling it", 20 * SEC))
                dt_dump_stderr(d);
        assert_true(daemon_wait_msg(d, "STATUS=database not answering: a statement has run for ", 0, 5 * SEC) >= 0);
        usleep(3 * SEC);
        assert_int_equal(daemon_wait_exit(d, 0), -1); /* not killed by anything */

        uint64_t t_term = now_usec();
        size_t before_term = daemon_n_msgs(d);
        daemon_kill(d, SIGTERM);
        assert_true(daemon_wait_msg(d, "STOPPING=1", before_term, 5 * SEC) >= 0);
        int rc = daemon_wait_exit(d, 29 * SEC);
        uint64_t t_exit = now_usec();
        print_message("frozen for %.1f s before SIGTERM; exit %d %.1f s after it\n", (double) (t_term - t_freeze) / 1e6, rc,
                      (double) (t_exit - t_term) / 1e6);
        if (rc != 69)
                dt_dump_stderr(d);
        assert_int_equal(rc, 69); /* documented: the worker abandoned, the database unavailable */
        assert_true(t_exit - t_term >= 24 * SEC && t_exit - t_term < 29 * SEC);

        /* The loop fed the watchdog the whole time: frozen, cancelling, stopping. */
        size_t n_wd = 0;
        uint64_t gap = dt_watchdog_max_gap(d, 0, t_freeze, t_exit, &n_wd);
        print_message("watchdog over %.1f s of frozen server: %zu pings, longest gap %.3f s\n",
                      (double) (t_exit - t_freeze) / 1e6, n_wd, (double) gap / 1e6);
        assert_true(gap > 0 && gap <= max_gap);
        assert_true(n_wd >= (t_exit - t_freeze) / max_gap);
        char *err = daemon_stderr(d);
        assert_non_null(strstr(err, "retentiond: stopping on SIGTERM: interrupting the run in flight\n"));
        assert_non_null(strstr(err, "retentiond: error: the database worker did not stop within 25 s (the database does not"
                                    " answer); exiting without it: the next start records its run as interrupted\n"));
        free(err);
        daemon_free(d);

        /* The server runs again; the abandoned session ends when it finds its client gone. */
        thaw_server();
        c = pgtest_connect(ci);
        assert_true(wait_sql(ci, 0, 20 * SEC,
                             "SELECT count(*) FROM retention.runs r JOIN pg_stat_activity a ON a.pid = r.backend_pid"));
        /* Until the next start the trail still says running. */
        char *o = pgtest_value(c, "SELECT string_agg(outcome || ' ' || (finished_at IS NULL), ',') FROM retention.runs");
        assert_string_equal(o, "running true");
        free(o);
        o = pgtest_value(c, "SELECT string_agg(outcome, ',') FROM retention.rule_runs");
        assert_string_equal(o, "running");
        free(o);
        long long gone = old + young - dt_events(c);
        assert_int_equal(pgtest_int(c, "SELECT rows_deleted FROM retention.rule_runs"), gone);
        assert_true(gone >= 50 && gone < old);

        /* The next start closes it, says so, and enforces the rest. */
        const char *args2[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", NULL };
        pgtest_exec(c, "DROP TRIGGER slow ON events");
        d = daemon_start(args2, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        if (!wait_sql(ci, young, 20 * SEC, "SELECT count(*) FROM events"))
                dt_dump_stderr(d);
        assert_true(wait_sql(ci, 1, 10 * SEC, "SELECT count(*) FROM retention.runs WHERE outcome = 'success'"));
        assert_true(daemon_wait_stderr(d, "retentiond: warning: runs 1 were still marked running, but their database sessions"
                                          " had ended: recorded as interrupted\n", 5 * SEC));
        o = pgtest_value(c, "SELECT string_agg(id || ' ' || outcome || ' ' || (finished_at IS NOT NULL), ',' ORDER BY id)"
                            " FROM retention.runs");
        assert_string_equal(o, "1 interrupted true,2 success true");
        free(o);
        o = pgtest_value(c, "SELECT string_agg(run_id || ' ' || outcome || ' ' || (finished_at IS NOT NULL) || ' '"
                            " || coalesce(error, '-'), ',' ORDER BY id) FROM retention.rule_runs");
        assert_string_equal(o, "1 interrupted true the engine's database session ended during the rule run,2 success true -");
        free(o);
        /* Every row gone is in the trail, none twice. */
        assert_int_equal(pgtest_int(c, "SELECT sum(rows_deleted) FROM retention.rule_runs"), old);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* A crash (SIGKILL) in the middle of a rule: at the next start that rule does not wait for its
 * slot and runs before the other due rule, although that one comes first in the policy. */
static void test_interrupted_rule_resumes_first(void **state) {
        (void) state;
        PGconn *c = NULL;
        const long old = 3000, young = 4;
        char *ci = dt_setup_db("unattended_resume", old, young, &c);
        pgtest_exec(c, "CREATE TABLE public.logs (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL)");
        pgtest_exec(c, "INSERT INTO logs (created_at) SELECT now() - interval '30 days' FROM generate_series(1, 100)");
        pgtest_exec(c, "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS"
                       " $$BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END$$");
        pgtest_exec(c, "CREATE TRIGGER slow BEFORE DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION public.slow()");
        char *policy = dt_write_policy("resume", "version: 1\n"
                                              "rules:\n"
                                              "  a-logs:\n"
                                              "    clause: \"Logs are kept for 7 days\"\n"
                                              "    table: public.logs\n"
                                              "    column: created_at\n"
                                              "    retain: 7 days\n"
                                              "    action: delete\n"
                                              "    schedule: 2 seconds\n"
                                              "  b-events:\n"
                                              "    clause: \"Events are kept for 7 days\"\n"
                                              "    table: public.events\n"
                                              "    column: created_at\n"
                                              "    retain: 7 days\n"
                                              "    action: delete\n"
                                              "    batch_size: 10\n"
                                              "    max_fraction: 100%\n"
                                              "    schedule: 1 hour\n");
        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", NULL };
        Daemon *d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        if (!wait_sql(ci, 1, 15 * SEC, "SELECT (coalesce(max(rows_deleted), 0) >= 50)::int FROM retention.rule_runs WHERE rule = 'b-events'"))
                dt_dump_stderr(d);
        daemon_kill(d, SIGKILL);
        assert_int_equal(daemon_wait_exit(d, 5 * SEC), 128 + SIGKILL);
        daemon_free(d);
        assert_true(wait_sql(ci, 0, 10 * SEC,
                             "SELECT count(*) FROM retention.runs r JOIN pg_stat_activity a ON a.pid = r.backend_pid"));
        char *o = pgtest_value(c, "SELECT string_agg(run_id || ' ' || rule || ' ' || outcome, ',' ORDER BY id) FROM retention.rule_runs");
        assert_string_equal(o, "1 a-logs success,1 b-events running");
        free(o);
        pgtest_exec(c, "DROP TRIGGER slow ON events");
        pgtest_exec(c, "INSERT INTO logs (created_at) SELECT now() - interval '30 days' FROM generate_series(1, 10)");
        usleep(2 * SEC); /* a-logs' 2-second slot is over: both rules are due */

        d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        if (!wait_sql(ci, young, 20 * SEC, "SELECT count(*) FROM events"))
                dt_dump_stderr(d);
        assert_true(wait_sql(ci, 1, 10 * SEC, "SELECT count(*) FROM retention.runs WHERE id = 2 AND outcome = 'success'"));
        o = pgtest_value(c, "SELECT string_agg(run_id || ' ' || rule || ' ' || outcome, ',' ORDER BY id) FROM retention.rule_runs"
                            " WHERE run_id <= 2");
        assert_string_equal(o, "1 a-logs success,1 b-events interrupted,2 b-events success,2 a-logs success");
        free(o);
        assert_int_equal(pgtest_int(c, "SELECT sum(rows_deleted) FROM retention.rule_runs WHERE rule = 'b-events'"), old);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM logs"), 0);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        char *err = daemon_stderr(d);
        assert_non_null(strstr(err, "retentiond: warning: runs 1 were still marked running, but their database sessions had ended:"
                                    " recorded as interrupted\n"));
        free(err);
        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* A last start in the future (a forged row, or the clock moved back) does not disable a rule. */
static void test_slot_in_future(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = dt_setup_db("unattended_future", 500, 6, &c);
        pgtest_exec(c, "INSERT INTO retention.rule_slots (rule, last_started, host, backend_pid)"
                       " VALUES ('old-events', '2030-01-01 00:00:00+00', 'forged', 1)");
        char *policy = dt_write_events_policy("future", 10);
        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", NULL };
        Daemon *d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        if (!wait_sql(ci, 6, 20 * SEC, "SELECT count(*) FROM events"))
                dt_dump_stderr(d);
        assert_int_equal(dt_events(c), 6);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.rule_slots WHERE last_started <= now() AND host <> 'forged'"), 1);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        char *err = daemon_stderr(d);
        assert_non_null(strstr(err, "retentiond: warning: rule old-events: its last start in retention.rule_slots, 20"));
        assert_non_null(strstr(err, ", lies in the future by the database's clock (the clock was moved back, or the row was forged);"
                                    " ignored, the rule runs\n"));
        free(err);
        daemon_free(d);
        PQfinish(c);
        free(policy);
        free(ci);
}

/* STATUS= names a failing rule, and still does after a restart (read from the trail), with
 * the last run instead of "no run yet"; the daemon's metrics file says the same. */
static void test_status_health_after_restart(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = dt_setup_db("unattended_status", 500, 6, &c);
        pgtest_exec(c, "CREATE TABLE public.logs (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL)");
        pgtest_exec(c, "INSERT INTO logs (created_at) SELECT now() - interval '30 days' FROM generate_series(1, 10)");
        char *events_text = dt_events_policy(10);
        char *text = rt_asprintf("%s"
                                 "  broken:\n"
                                 "    clause: \"Logs are kept for 7 days\"\n"
                                 "    table: public.logs\n"
                                 "    column: created_at\n"
                                 "    retain: 7 days\n"
                                 "    action: delete\n"
                                 "    where: \"id / 0 = 1\"\n",
                                 events_text);
        free(events_text);
        char *policy = dt_write_policy("status", text);
        free(text);
        char *metrics = rt_asprintf("%s/daemon.prom", rt_dir);
        const char *args[] = { "daemon", "-p", policy, "-d", ci, "--log-target=console", "--metrics-file", metrics, NULL };
        Daemon *d = daemon_start(args, 0);
        assert_true(daemon_wait_msg(d, "READY=1", 0, 10 * SEC) >= 0);
        long st = wait_msg2(d, "; 1 rule ok, 1 failing: broken (failed 1 time since ", "STATUS=last run ", 15 * SEC);
        if (st < 0)
                dt_dump_stderr(d);
        assert_true(st >= 0);
        NotifyMsg m = daemon_msg(d, (size_t) st);
        assert_non_null(strstr(m.text, "STATUS=last run "));
        assert_non_null(strstr(m.text, ": 500 deleted, 0 anonymised, 0 held, 1 failed; next run "));
        free(m.text);
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        daemon_free(d);
        unlink(metrics);

        /* Restarted: both rules wait for their slots; STATUS knows the last run and the failing rule. */
        d = daemon_start(args, 0);
        st = wait_msg2(d, "; 1 rule ok, 1 failing: broken (failed 1 time since ", "STATUS=last run ", 10 * SEC);
        if (st < 0)
                dt_dump_stderr(d);
        assert_true(st >= 0);
        m = daemon_msg(d, (size_t) st);
        print_message("after the restart: %s\n", m.text);
        assert_non_null(strstr(m.text, "STATUS=last run "));
        assert_non_null(strstr(m.text, ": 500 deleted, 0 anonymised, 0 held, 1 failed; next run "));
        assert_null(strstr(m.text, "no run yet"));
        free(m.text);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.runs"), 1);

        /* The metrics file, written after the connect. */
        uint64_t deadline = now_usec() + 5 * SEC;
        while (access(metrics, R_OK) != 0 && now_usec() < deadline)
                usleep(20000);
        char *cmd = rt_asprintf("promtool check metrics < '%s' && grep -c -e '^retentiond_database_up{database=\"default\"} 1$'"
                                " -e '^retentiond_rule_last_outcome{database=\"default\",rule=\"broken\",outcome=\"failed\"} 1$'"
                                " -e '^retentiond_rule_consecutive_failures{database=\"default\",rule=\"broken\"} 1$'"
                                " -e '^retentiond_rule_last_run_rows_deleted{database=\"default\",rule=\"old-events\"} 500$' '%s'",
                                metrics, metrics);
        FILE *p = popen(cmd, "r");
        char line[256] = "";
        assert_non_null(fgets(line, sizeof(line), p));
        assert_int_equal(pclose(p), 0);
        assert_string_equal(line, "4\n");
        free(cmd);

        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 10 * SEC), 0);
        daemon_free(d);
        PQfinish(c);
        free(metrics);
        free(policy);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_frozen_server, teardown_thaw),
                cmocka_unit_test(test_interrupted_rule_resumes_first),
                cmocka_unit_test(test_slot_in_future),
                cmocka_unit_test(test_status_health_after_restart),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
