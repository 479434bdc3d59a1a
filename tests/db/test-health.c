/* test-health.c — a rule that fails or trips its breaker is visible (issue 14): `retentiond
 * status` (text, JSON, exit codes), `retentiond audit --fail-on`, and the Prometheus textfile of
 * `retentiond run --metrics-file`, checked by Debian's promtool and for exact values. Against a
 * real PostgreSQL 15; every value is read from what the runs really recorded. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemontest.h"
#include "rtest.h"

/* Three rules on three tables: one works, one trips its breaker (max_rows 10, 100 due), one
 * fails (its where: divides by zero). */
static const char policy_text[] = DT_EVENTS_POLICY_HEAD
                                  "    schedule: 1 second\n"
                                  "  sessions:\n"
                                  "    clause: \"Sessions are kept for 7 days\"\n"
                                  "    table: public.sessions\n"
                                  "    column: created_at\n"
                                  "    retain: 7 days\n"
                                  "    action: delete\n"
                                  "    max_rows: 10\n"
                                  "  broken:\n"
                                  "    clause: \"Logs are kept for 7 days\"\n"
                                  "    table: public.logs\n"
                                  "    column: created_at\n"
                                  "    retain: 7 days\n"
                                  "    action: delete\n"
                                  "    where: \"id / 0 = 1\"\n";

static char *setup(const char *name, char **policy) {
        char *ci = pgtest_create_db(rt_pg, name);
        dt_migrate(ci);
        PGconn *c = pgtest_connect(ci);
        for (int i = 0; i < 3; i++) {
                const char *t = i == 0 ? "events" : i == 1 ? "sessions" : "logs";
                pgtest_exec(c, "CREATE TABLE public.%s (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL)", t);
                pgtest_exec(c, "INSERT INTO public.%s (created_at) SELECT now() - interval '30 days' FROM generate_series(1, %d)", t,
                            i == 0 ? 500 : 100);
                pgtest_exec(c, "INSERT INTO public.%s (created_at) SELECT now() FROM generate_series(1, 5)", t);
        }
        PQfinish(c);
        *policy = dt_write_policy(name, policy_text);
        return ci;
}

/* retentiond -p POLICY -d CI --log-target=console ARGS... (up to 6, NULL-terminated). */
static int run_args(const char *policy, const char *ci, char **out, char **err, const char *const *a) {
        const char *args[16] = { "-p", policy, "-d", ci, "--log-target=console" };
        size_t n = 5;
        for (; *a && n < 15; a++)
                args[n++] = *a;
        args[n] = NULL;
        return pgtest_run(args, NULL, out, err);
}
#define run(policy, ci, ...) run_args(policy, ci, &out, &err, (const char *const[]) { __VA_ARGS__ })

/* The value of the sample whose line starts with `series ` (name and labels exactly). */
static double sample(const char *text, const char *series) {
        char *needle = rt_asprintf("\n%s ", series);
        const char *p = strstr(text, needle);
        if (!p)
                fail_msg("no sample %s in:\n%s", series, text);
        double v = strtod(p + strlen(needle), NULL);
        free(needle);
        return v;
}

static char *read_all(const char *path) {
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char *buf = NULL;
        size_t n = 0;
        assert_true(getdelim(&buf, &n, '\0', f) > 0);
        fclose(f);
        return buf;
}

static void test_metrics_status_audit(void **state) {
        (void) state;
        char *policy = NULL;
        char *ci = setup("health_metrics", &policy);
        char *metrics = rt_asprintf("%s/retentiond.prom", rt_dir);
        char *out = NULL, *err = NULL;

        /* Two runs: the breaker trips twice, the broken rule fails twice. */
        for (int i = 0; i < 2; i++) {
                int rc = run(policy, ci, "run", "--metrics-file", metrics, NULL);
                if (rc != 1)
                        print_message("run %d exited %d:\n%s%s", i + 1, rc, out, err);
                assert_int_equal(rc, 1);
                free(out);
                free(err);
        }

        /* promtool, as a monitoring pipeline would: exit 0 and no complaint. */
        char *cmd = rt_asprintf("promtool check metrics < '%s' 2>&1", metrics);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char line[1024];
        size_t complaints = 0;
        while (fgets(line, sizeof(line), p)) {
                print_message("promtool: %s", line);
                complaints++;
        }
        int st = pclose(p);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(complaints, 0);
        free(cmd);

        PGconn *c = pgtest_connect(ci);
        char *m = read_all(metrics);
        /* Exact values from the trail. */
        assert_non_null(strstr(m, "# TYPE retentiond_rule_breaker_trips_total counter\n"));
        assert_non_null(strstr(m, "# HELP retentiond_database_up 1 when retentiond reaches the database, 0 when it does not.\n"));
        assert_true(sample(m, "retentiond_database_up{database=\"default\"}") == 1);
        assert_true(sample(m, "retentiond_rule_last_run_rows_deleted{database=\"default\",rule=\"old-events\"}") == 0);
        assert_true(sample(m, "retentiond_rule_rows_deleted_total{database=\"default\",rule=\"old-events\"}") == 500);
        assert_true(sample(m, "retentiond_rule_runs_total{database=\"default\",rule=\"old-events\"}") == 2);
        assert_true(sample(m, "retentiond_rule_last_outcome{database=\"default\",rule=\"old-events\",outcome=\"success\"}") == 1);
        assert_true(sample(m, "retentiond_rule_last_outcome{database=\"default\",rule=\"sessions\",outcome=\"breaker\"}") == 1);
        assert_true(sample(m, "retentiond_rule_last_outcome{database=\"default\",rule=\"sessions\",outcome=\"success\"}") == 0);
        assert_true(sample(m, "retentiond_rule_last_outcome{database=\"default\",rule=\"broken\",outcome=\"failed\"}") == 1);
        assert_true(sample(m, "retentiond_rule_breaker_trips_total{database=\"default\",rule=\"sessions\"}") == 2);
        assert_true(sample(m, "retentiond_rule_failures_total{database=\"default\",rule=\"broken\"}") == 2);
        assert_true(sample(m, "retentiond_rule_consecutive_failures{database=\"default\",rule=\"broken\"}") == 2);
        assert_true(sample(m, "retentiond_rule_consecutive_failures{database=\"default\",rule=\"sessions\"}") == 2);
        assert_true(sample(m, "retentiond_rule_consecutive_failures{database=\"default\",rule=\"old-events\"}") == 0);
        assert_true(sample(m, "retentiond_rule_last_success_timestamp_seconds{database=\"default\",rule=\"broken\"}") == 0);
        assert_true(sample(m, "retentiond_rule_health{database=\"default\",rule=\"broken\",state=\"failing\"}") == 1);
        assert_true(sample(m, "retentiond_rule_health{database=\"default\",rule=\"sessions\",state=\"breaker\"}") == 1);
        assert_true(sample(m, "retentiond_rule_health{database=\"default\",rule=\"old-events\",state=\"ok\"}") == 1);
        double last_ok = sample(m, "retentiond_rule_last_success_timestamp_seconds{database=\"default\",rule=\"old-events\"}");
        char *v = pgtest_value(c, "SELECT extract(epoch FROM max(finished_at))::text FROM retention.rule_runs"
                                  " WHERE rule = 'old-events' AND outcome = 'success'");
        assert_true(fabs(last_ok - strtod(v, NULL)) < 0.001);
        free(v);
        double dur = sample(m, "retentiond_rule_last_run_duration_seconds{database=\"default\",rule=\"sessions\"}");
        v = pgtest_value(c, "SELECT extract(epoch FROM finished_at - started_at)::text FROM retention.rule_runs"
                            " WHERE rule = 'sessions' ORDER BY id DESC LIMIT 1");
        assert_true(fabs(dur - strtod(v, NULL)) < 0.001);
        free(v);
        /* No temporary file left next to it. */
        char *ls = rt_asprintf("ls -A '%s' | grep -c retentiond.prom", rt_dir);
        p = popen(ls, "r");
        assert_non_null(fgets(line, sizeof(line), p));
        pclose(p);
        assert_string_equal(line, "1\n");
        free(ls);
        free(m);

        /* status: exit 1, the failing and blocked rules named. */
        int rc = run(policy, ci, "status", NULL);
        print_message("status:\n%s%s", out, err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(out, "\n1 rule ok, 1 blocked by its breaker: sessions (its last run (run 2, "));
        assert_non_null(strstr(out, ") tripped the circuit breaker, 2 failed runs since "));
        assert_non_null(strstr(out, "), 1 failing: broken (failed 2 times since "));
        assert_non_null(strstr(out, "old-events               ok       "));
        free(out);
        free(err);
        rc = run(policy, ci, "status", "--json", "--rule", "broken", NULL);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(out, "{\"healthy\":false,\"summary\":\"0 rules ok, 1 failing: broken (failed 2 times since "));
        assert_non_null(strstr(out, "\"rule\":\"broken\",\"state\":\"failing\",\"needs_attention\":true,"));
        assert_non_null(strstr(out, "\"last_success\":null,\"last_outcome\":\"failed\",\"last_run_id\":2,"));
        assert_non_null(strstr(out, "\"consecutive_failures\":2,"));
        assert_non_null(strstr(out, "\"last_sqlstate\":\"22012\""));
        free(out);
        free(err);
        rc = run(policy, ci, "status", "--rule", "old-events", NULL);
        assert_int_equal(rc, 0);
        free(out);
        free(err);

        /* audit: the breaker and the failures are told whatever --fail-on says; the exit code follows it.
         * The broken rule's where: fails the dry run too, so audit only the other two. */
        rc = run(policy, ci, "audit", "--rule", "sessions", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(err, "retentiond: warning: rule sessions needs attention: its last run (run 2, "));
        free(out);
        free(err);
        rc = run(policy, ci, "audit", "--rule", "sessions", "--fail-on", "breaker", NULL);
        assert_int_equal(rc, 1);
        free(out);
        free(err);
        rc = run(policy, ci, "audit", "--rule", "sessions", "--fail-on", "overdue,stale", NULL);
        assert_int_equal(rc, 0);
        free(out);
        free(err);
        /* old-events succeeds (again, now: the statuses above took their time); a second later,
         * with a 1-second schedule, it is stale after one. */
        rc = run(policy, ci, "run", "--rule", "old-events", NULL);
        assert_int_equal(rc, 0);
        free(out);
        free(err);
        usleep(1100000);
        rc = run(policy, ci, "audit", "--rule", "old-events", "--fail-on=stale", NULL);
        assert_int_equal(rc, 0); /* within 3 schedules? no: 1.1 s < 3 s */
        free(out);
        free(err);
        const char *a[] = { "-p", policy, "-d", ci, "--log-target=console", "audit", "--rule", "old-events", "--fail-on=stale",
                            "--stale-after", "1", NULL };
        rc = pgtest_run(a, NULL, &out, &err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, "retentiond: warning: rule old-events needs attention: no success since "));
        free(out);
        free(err);
        rc = run(policy, ci, "status", "--rule", "old-events", "--stale-after", "1", NULL);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(out, "\n0 rules ok, 1 stale: old-events (no success since "));
        free(out);
        free(err);

        /* An unwritable metrics path: the run still runs, then exit 78 says why. */
        rc = run(policy, ci, "run", "--rule", "old-events", "--metrics-file", "/nonexistent/dir/r.prom", NULL);
        assert_int_equal(rc, 78);
        assert_non_null(strstr(err, "could not write the metrics file \"/nonexistent/dir/r.prom\": No such file or directory"));
        free(out);
        free(err);

        PQfinish(c);
        free(metrics);
        free(policy);
        free(ci);
}

/* `status` counts the rows due now as the audit does (the same dry run), as the engine's
 * least-privilege role, read-only: 4 rows past retain + deadline, 3 more past retain, 5 young
 * ones; --no-live leaves them out; after a run none is due. */
static const char live_policy[] = "version: 1\n"
                                  "rules:\n"
                                  "  logs:\n"
                                  "    clause: \"Access logs are kept 30 days\"\n"
                                  "    table: public.access_log\n"
                                  "    column: seen_at\n"
                                  "    retain: 30 days\n"
                                  "    deadline: 5 days\n"
                                  "    schedule: 1 hour\n"
                                  "    action: delete\n";

/* The JSON string value of "key" in text (the first), malloc'd; NULL for null. */
static char *json_value(const char *text, const char *key) {
        char *needle = rt_asprintf("\"%s\":", key);
        const char *p = strstr(text, needle);
        if (!p)
                fail_msg("no \"%s\" in:\n%s", key, text);
        p += strlen(needle);
        free(needle);
        if (strncmp(p, "null", 4) == 0)
                return NULL;
        assert_true(*p == '"');
        const char *e = strchr(p + 1, '"');
        assert_non_null(e);
        return strndup(p + 1, (size_t) (e - p - 1));
}

static void test_status_live(void **state) {
        (void) state;
        char *out = NULL, *err = NULL;
        char *admin = pgtest_create_db(rt_pg, "health_live");
        dt_migrate(admin);
        PGconn *c = pgtest_connect(admin);
        pgtest_exec(c, "CREATE TABLE public.access_log (id bigint PRIMARY KEY, seen_at timestamptz NOT NULL, ip text NOT NULL)");
        pgtest_exec(c, "INSERT INTO public.access_log SELECT g, now() - interval '40 days', '192.0.2.1' FROM generate_series(1, 4) g");
        pgtest_exec(c, "INSERT INTO public.access_log SELECT g, now() - interval '31 days', '192.0.2.2' FROM generate_series(5, 7) g");
        pgtest_exec(c, "INSERT INTO public.access_log SELECT g, now() - interval '1 day', '192.0.2.3' FROM generate_series(8, 12) g");
        char *ci = pgtest_engine_role(admin, "health_live_role", "public.access_log", NULL);
        char *policy = dt_write_policy("health_live", live_policy);

        /* The oldest due row's age as the database says it, before and after the command. */
        char *before = pgtest_value(c, "SELECT date_trunc('second', now() - min(seen_at))::text FROM public.access_log");
        int rc = run(policy, ci, "status", NULL);
        char *after = pgtest_value(c, "SELECT date_trunc('second', now() - min(seen_at))::text FROM public.access_log");
        print_message("status:\n%s%s", out, err);
        assert_int_equal(rc, 1); /* overdue rows need attention */
        assert_string_equal(err, "");
        const char *head = "RULE                     STATE    LAST SUCCESS     LAST RUN         OUTCOME     FAILURES  OVERDUE"
                           "  DUE NOW  OLDEST DUE\n"
                           "logs                     overdue  never            never            -                  0        4"
                           "        7  ";
        if (strncmp(out, head, strlen(head)) != 0)
                fail_msg("status printed:\n%s\nexpected it to start with:\n%s", out, head);
        char *age = strndup(out + strlen(head), (size_t) (strchr(out + strlen(head), '\n') - (out + strlen(head))));
        rt_assert_sql(c, "t", "SELECT '%s'::interval BETWEEN '%s'::interval AND '%s'::interval"
                              " AND '%s'::interval >= interval '40 days'", age, before, after, age);
        free(out);
        free(err);

        /* --json: the same numbers; and the audit's own, which they must equal */
        rc = run(policy, ci, "status", "--json", NULL);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(out, ",\"stale_after\":3,\"live\":true,"));
        assert_non_null(strstr(out, "\"rule\":\"logs\",\"state\":\"overdue\",\"needs_attention\":true,"));
        assert_non_null(strstr(out, ",\"rows_overdue\":4,\"rows_due_now\":7,\"rows_held_now\":0,\"oldest_due_age\":\""));
        assert_non_null(strstr(out, ",\"live_error\":null,"));
        char *jage = json_value(out, "oldest_due_age");
        rt_assert_sql(c, "t", "SELECT '%s'::interval BETWEEN '%s'::interval AND now() - (SELECT min(seen_at) FROM public.access_log)",
                      jage, age);
        free(out);
        free(err);
        rc = run(policy, ci, "audit", "--json", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "\"rows_actionable\":7,"));
        assert_non_null(strstr(out, "\"rows_held\":0,\"rows_overdue\":4,"));
        free(out);
        free(err);

        /* --no-live: the trail only (nothing ran yet: pending, nothing overdue as far as it knows) */
        rc = run(policy, ci, "status", "--no-live", "--json", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, ",\"live\":false,"));
        assert_non_null(strstr(out, "\"state\":\"pending\","));
        assert_non_null(strstr(out, ",\"rows_overdue\":0,\"rows_due_now\":null,\"rows_held_now\":null,"
                                    "\"oldest_due_age\":null,\"live_error\":null,"));
        free(out);
        free(err);
        rc = run(policy, ci, "status", "--no-live", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "OUTCOME     FAILURES  OVERDUE\nlogs                     pending  never"));
        free(out);
        free(err);
        /* status changed nothing */
        rt_assert_sql(c, "12", "SELECT count(*) FROM public.access_log");

        /* a run deletes the 7; nothing is due any more */
        rc = run(policy, ci, "run", NULL);
        assert_int_equal(rc, 0);
        free(out);
        free(err);
        rc = run(policy, ci, "status", "--json", NULL);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "\"state\":\"ok\","));
        assert_non_null(strstr(out, ",\"rows_overdue\":0,\"rows_due_now\":0,\"rows_held_now\":0,\"oldest_due_age\":null,"));
        free(out);
        free(err);

        free(age);
        free(jage);
        free(before);
        free(after);
        PQfinish(c);
        free(policy);
        free(ci);
        free(admin);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_metrics_status_audit),
                cmocka_unit_test(test_status_live),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
