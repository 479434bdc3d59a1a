/* test-truth.c — the audit trail tells the whole truth (issue 12, points 4-7): the circuit breaker
 * is not bypassed by statistics that call a table empty; rows removed or set to NULL by a cascade
 * are counted per referencing table in the run, the trail, its seal, the receipt and the journal
 * event; held rows are counted when a trigger moves the age column of the rows anonymised while
 * held; and every reason given for a row left behind is what happened. Exact values throughout. */
#include "rtest.h"

/* ---- 4. the breaker and statistics that say "empty" ------------------------------------------ */

static const char *BREAKER_POLICY = "version: 1\n"
                                    "rules:\n"
                                    "  t:\n"
                                    "    clause: \"kept 7 days\"\n"
                                    "    table: app.t\n"
                                    "    column: at\n"
                                    "    retain: 7 days\n"
                                    "    action: delete\n";

/* 1000 rows, 990 of them due. */
static void fill_breaker_table(PGconn *c) {
        pgtest_exec(c, "INSERT INTO app.t SELECT i, CASE WHEN i <= 990 THEN now() - interval '30 days'"
                       " ELSE now() END FROM generate_series(1, 1000) i");
}

static void breaker_trips(PGconn *c, const char *ci) {
        char *pol = rt_policy(BREAKER_POLICY);
        char *out, *err;
        rt_expect(1, &out, &err, "-p", pol, "-d", ci, "--json", "run");
        rt_assert_contains(err, "retentiond: error: circuit breaker tripped for rule \"t\": more rows are due than its limit allows\n"
                                "DETAIL:  At least 501 rows of about 1000 in app.t are due; max_fraction 50% allows 500.\n");
        rt_assert_contains(out, "\"rows_deleted\":0,");
        rt_assert_contains(out, "\"breaker_tripped\":true,\"breaker_limit\":500,\"breaker_counted\":501,");
        free(out);
        free(err);
        rt_assert_sql(c, "1000", "SELECT count(*) FROM app.t");
        rt_assert_sql(c, "breaker/0", "SELECT outcome || '/' || rows_deleted FROM retention.rule_runs");
        /* the audit says the same */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(out, "breaker:      WOULD TRIP (990 rows due, limit 500; run needs --force)");
        free(out);
        free(pol);
}

/* ANALYZE of the empty table: reltuples 0, then 1000 rows that no statistics know of. */
static void test_breaker_analysed_empty(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("truth_breaker_zero", &ci);
        pgtest_exec(c, "CREATE TABLE app.t (id int PRIMARY KEY, at timestamptz) WITH (autovacuum_enabled = false)");
        pgtest_exec(c, "CREATE INDEX ON app.t (at)");
        pgtest_exec(c, "ANALYZE app.t");
        fill_breaker_table(c);
        rt_assert_sql(c, "0", "SELECT reltuples FROM pg_class WHERE oid = 'app.t'::regclass");
        breaker_trips(c, ci);
        PQfinish(c);
        free(ci);
}

/* Never analysed: reltuples -1. */
static void test_breaker_never_analysed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("truth_breaker_fresh", &ci);
        pgtest_exec(c, "CREATE TABLE app.t (id int PRIMARY KEY, at timestamptz) WITH (autovacuum_enabled = false)");
        pgtest_exec(c, "CREATE INDEX ON app.t (at)");
        fill_breaker_table(c);
        rt_assert_sql(c, "-1", "SELECT reltuples FROM pg_class WHERE oid = 'app.t'::regclass");
        breaker_trips(c, ci);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_breaker_analysed_empty),
                cmocka_unit_test(test_breaker_never_analysed),
        };
        const char *only = getenv("TRUTH_ONLY");
        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
