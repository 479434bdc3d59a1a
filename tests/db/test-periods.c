/* test-periods.c — statutory start dates (`from:`) against a real PostgreSQL, asserting exact row
 * sets: rows on either side of a year end (timestamptz and date), of a month end, of a fiscal year
 * start (April), derived holds counted from the end of the year, the release dates of a leap-day
 * record (2016-02-29) with end_of_month and 1 month / 1 year, and rows on either side of the
 * local year end in America/New_York versus UTC. Boundaries are computed from now() in SQL, so
 * the cutoff is exactly a period start: the record just before it goes, the one at it stays. */
#include "rtest.h"

/* Runs the binary with PGTZ=tz (NULL: unset, the server's or libpq options' TimeZone); asserts the exit status; returns stdout (caller frees). */
static char *run_tz(int code, const char *tz, ...) {
        const char *args[32];
        size_t n = 0;
        va_list ap;
        va_start(ap, tz);
        const char *a;
        while ((a = va_arg(ap, const char *)) && n < 31)
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        char *env0 = tz ? rt_asprintf("PGTZ=%s", tz) : NULL;
        const char *env[] = { env0, NULL };
        char *out = NULL, *err = NULL;
        int r = rt_runv(&out, &err, env0 ? env : NULL, args);
        if (r != code)
                print_error("exit %d, expected %d\nstdout:\n%s\nstderr:\n%s\n", r, code, out, err);
        assert_int_equal(r, code);
        free(err);
        free(env0);
        return out;
}

static PGconn *db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "SET TimeZone = 'UTC'");
        return c;
}

#define IDS(c, t) "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM " t

static void test_year_end(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_year", &ci);
        /* b: the start of the year ten years ago, the cutoff of "10 years from the end of the year" */
        pgtest_exec(c, "CREATE TABLE app.b AS SELECT date_trunc('year', now() - interval '10 years') AS b");
        pgtest_exec(c, "CREATE TABLE app.invoices (id int PRIMARY KEY, issued_at timestamptz)");
        pgtest_exec(c, "CREATE TABLE app.receipts (id int PRIMARY KEY, issued_on date)");
        /* 1: the last second of the year before (due); 2: the first moment of b's year (kept,
         * though older than now() - 10 years); 3: a year earlier (due); 4: mid-year (kept); 5: NULL */
        pgtest_exec(c, "INSERT INTO app.invoices SELECT 1, b - interval '1 second' FROM app.b UNION ALL SELECT 2, b FROM app.b"
                       " UNION ALL SELECT 3, b - interval '1 year' FROM app.b UNION ALL SELECT 4, b + interval '6 months' FROM app.b"
                       " UNION ALL SELECT 5, NULL");
        pgtest_exec(c, "INSERT INTO app.receipts SELECT 1, (b - interval '1 day')::date FROM app.b UNION ALL SELECT 2, b::date FROM app.b"
                       " UNION ALL SELECT 3, (b + interval '1 day')::date FROM app.b");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  invoices:\n"
                              "    clause: \"tax law: 10 years from the end of the calendar year\"\n"
                              "    table: app.invoices\n"
                              "    column: issued_at\n"
                              "    retain: 10 years\n"
                              "    from: end_of_year\n"
                              "    action: delete\n"
                              "  receipts:\n"
                              "    clause: \"10 years from the end of the calendar year\"\n"
                              "    table: app.receipts\n"
                              "    column: issued_on\n"
                              "    retain: 10 years\n"
                              "    from: end_of_year\n"
                              "    action: delete\n");
        char *out = run_tz(0, "UTC", "-p", pol, "check", NULL);
        rt_assert_contains(out, "invoices: delete app.invoices rows whose issued_at is older than 10 years counted from the end of"
                                " the calendar year\n");
        free(out);
        char *b = pgtest_value(c, "SELECT b::text FROM app.b");
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "audit", NULL);
        char *want = rt_asprintf("  cutoff:       %s  (counted from the end of the calendar year)\n  due now:      2\n", b);
        rt_assert_contains(out, want);
        free(want);
        free(out);
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "audit", "--sql", NULL);
        rt_assert_contains(out, "SELECT date_trunc('year', now() - $1::interval - interval '1 microsecond')::text, extract(epoch FROM now())::float8;\n");
        rt_assert_contains(out, "cutoff: now() - retain, counted from the end of the calendar year");
        free(out);
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "2,4,5", IDS(c, "app.invoices"));
        rt_assert_sql(c, "2,3", IDS(c, "app.receipts"));
        rt_assert_sql(c, b, "SELECT cutoff::text FROM retention.rule_runs WHERE rule = 'invoices'");
        free(b);
        free(pol);
        free(ci);
        PQfinish(c);
}

static void test_month_end(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_month", &ci);
        /* p: the start of last month, the cutoff of "1 month from the end of the month" */
        pgtest_exec(c, "CREATE TABLE app.p AS SELECT date_trunc('month', now() - interval '1 month') AS p");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.events SELECT 1, p - interval '1 microsecond' FROM app.p UNION ALL SELECT 2, p FROM app.p"
                       " UNION ALL SELECT 3, '2016-02-29 12:00:00+00' UNION ALL SELECT 4, p + interval '15 days' FROM app.p");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events:\n"
                              "    clause: \"one month from the end of the month\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 1 month\n"
                              "    from: end_of_month\n"
                              "    action: delete\n");
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "2,4", IDS(c, "app.events"));
        free(pol);
        free(ci);
        PQfinish(c);
}

static void test_fiscal_year(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_fiscal", &ci);
        /* f: the start of the fiscal year (from 1 April) in which now() - 1 year falls */
        pgtest_exec(c, "CREATE TABLE app.f AS SELECT date_trunc('year', now() - interval '1 year' - interval '3 months')"
                       " + interval '3 months' AS f");
        rt_assert_sql(c, "4", "SELECT extract(month FROM f)::text FROM app.f");
        rt_assert_sql(c, "1", "SELECT extract(day FROM f)::text FROM app.f");
        pgtest_exec(c, "CREATE TABLE app.ledger (id int PRIMARY KEY, booked_on date)");
        /* 1: 31 March before f (due); 2: f itself (kept); 3: a fiscal year earlier (due); 4: 31 March after f (kept) */
        pgtest_exec(c, "INSERT INTO app.ledger SELECT 1, (f - interval '1 day')::date FROM app.f UNION ALL SELECT 2, f::date FROM app.f"
                       " UNION ALL SELECT 3, (f - interval '1 year')::date FROM app.f"
                       " UNION ALL SELECT 4, (f + interval '1 year' - interval '1 day')::date FROM app.f");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  ledger:\n"
                              "    clause: \"one year from the end of the fiscal year (April to March)\"\n"
                              "    table: app.ledger\n"
                              "    column: booked_on\n"
                              "    retain: 1 year\n"
                              "    from: end_of_fiscal_year\n"
                              "    fiscal_year_start: 4\n"
                              "    action: delete\n");
        char *f = pgtest_value(c, "SELECT f::text FROM app.f");
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "audit", NULL);
        char *want = rt_asprintf("  cutoff:       %s  (counted from the end of the fiscal year starting in April)\n"
                                 "  due now:      2\n", f);
        rt_assert_contains(out, want);
        free(want);
        free(out);
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "2,4", IDS(c, "app.ledger"));
        free(f);
        free(pol);
        free(ci);
        PQfinish(c);
}

static void test_derived_hold_from(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_hold", &ci);
        pgtest_exec(c, "CREATE TABLE app.b AS SELECT date_trunc('year', now() - interval '10 years') AS b");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, closed_at timestamptz)");
        pgtest_exec(c, "CREATE TABLE app.invoices (id int PRIMARY KEY, account_id int, issued_at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT a, now() - interval '1 day' FROM generate_series(1, 3) a");
        /* 1: an invoice at the first moment of b's year (held); 2: the last second before (lapsed);
         * 3: none */
        pgtest_exec(c, "INSERT INTO app.invoices SELECT 10, 1, b FROM app.b UNION ALL SELECT 20, 2, b - interval '1 second' FROM app.b");
        char *pol = rt_policy("version: 1\n"
                              "subjects:\n"
                              "  account: { table: app.accounts, key: id }\n"
                              "holds:\n"
                              "  tax:\n"
                              "    reason: \"invoices: 10 years from the end of the year\"\n"
                              "    subject: account\n"
                              "    table: app.invoices\n"
                              "    subject_column: account_id\n"
                              "    column: issued_at\n"
                              "    retain: 10 years\n"
                              "    from: end_of_year\n"
                              "rules:\n"
                              "  accounts:\n"
                              "    clause: \"closed accounts go\"\n"
                              "    table: app.accounts\n"
                              "    subject: account\n"
                              "    column: closed_at\n"
                              "    retain: 0 days\n"
                              "    holds: [tax]\n"
                              "    action: delete\n");
        /* the release date: the end of the evidence's year, plus 10 years */
        char *rel = pgtest_value(c, "SELECT (b + interval '11 years')::text FROM app.b");
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", "app.accounts", "1", NULL);
        char *want = rt_asprintf("      lapses: %s\n", rel);
        rt_assert_contains(out, want);
        free(want);
        want = rt_asprintf("    deleted: after %s, if nothing changes\n", rel);
        rt_assert_contains(out, want);
        free(want);
        free(out);
        free(rel);
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "1", IDS(c, "app.accounts"));
        free(pol);
        free(ci);
        PQfinish(c);
}

/* The leap day: 2016-02-29 counted from the end of its month (2016-03-01), plus one month or one
 * year; without `from`, one year after 2016-02-29 12:00 is due from 2017-03-01 (PostgreSQL's
 * 2017-02-28 12:00 minus a year is still before it). */
static void test_leap_day(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_leap", &ci);
        const char *t[] = { "m", "y", "p", "q" };
        for (size_t i = 0; i < 4; i++)
                pgtest_exec(c, "CREATE TABLE app.%s (id int PRIMARY KEY, d date, ts timestamptz)", t[i]);
        pgtest_exec(c, "INSERT INTO app.m VALUES (1, '2016-02-29', NULL)");
        pgtest_exec(c, "INSERT INTO app.y VALUES (1, '2016-02-29', NULL)");
        pgtest_exec(c, "INSERT INTO app.p VALUES (1, NULL, '2016-02-29 12:00:00+00')");
        pgtest_exec(c, "INSERT INTO app.q VALUES (1, NULL, '2016-02-28 12:00:00+00')");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  m: { clause: c, table: app.m, column: d, retain: 1 month, from: end_of_month, action: delete }\n"
                              "  y: { clause: c, table: app.y, column: d, retain: 1 year, from: end_of_month, action: delete }\n"
                              "  p: { clause: c, table: app.p, column: ts, retain: 1 year, action: delete }\n"
                              "  q: { clause: c, table: app.q, column: ts, retain: 1 year, action: delete }\n");
        const char *due[] = { "2016-04-01 00:00:00+00", "2017-03-01 00:00:00+00", "2017-03-01 00:00:00+00",
                              "2017-02-28 12:00:00+00" };
        for (size_t i = 0; i < 4; i++) {
                char *tn = rt_asprintf("app.%s", t[i]);
                char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", tn, "1", "--json", NULL);
                char *want = rt_asprintf("\"due_by_age\":true,\"due_at\":\"%s\"", due[i]);
                rt_assert_contains(out, want);
                free(want);
                free(out);
                free(tn);
        }
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        for (size_t i = 0; i < 4; i++)
                rt_assert_sql(c, "0", "SELECT count(*) FROM app.%s", t[i]);
        free(pol);
        free(ci);
        PQfinish(c);
}

/* Rows on either side of New York's year end: the same instants belong to different years in
 * America/New_York and in UTC, and the session's TimeZone decides. */
static void test_time_zone(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_tz", &ci);
        /* Right after a UTC new year, New York is still in the old year: the two sessions then
         * disagree about which year "now" is in, which this test does not model. */
        if (pgtest_int(c, "SELECT (extract(year FROM now() AT TIME ZONE 'UTC') <> extract(year FROM now() AT TIME ZONE"
                          " 'America/New_York'))::int")) {
                print_message("skipped: New York and UTC are in different years right now\n");
                free(ci);
                PQfinish(c);
                return;
        }
        /* n: the start of last year in New York (05:00 UTC on 1 January) */
        pgtest_exec(c, "CREATE TABLE app.n AS SELECT (date_trunc('year', now() AT TIME ZONE 'America/New_York') - interval '1 year')"
                       " AT TIME ZONE 'America/New_York' AS n");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, at timestamptz)");
        /* 1: 23:00 on 31 December in New York = 04:00 on 1 January UTC; 2: 01:00 on 1 January in New
         * York; 3: 18:00 on 31 December in New York = 23:00 UTC */
        pgtest_exec(c, "INSERT INTO app.events SELECT 1, n - interval '1 hour' FROM app.n UNION ALL SELECT 2, n + interval '1 hour'"
                       " FROM app.n UNION ALL SELECT 3, n - interval '6 hours' FROM app.n");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events:\n"
                              "    clause: \"one year from the end of the calendar year\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 1 year\n"
                              "    from: end_of_year\n"
                              "    action: delete\n");
        /* In UTC, row 1 is in last year: not yet due. */
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", "app.events", "1", NULL);
        rt_assert_contains(out, "    decision:  not yet due: due after ");
        free(out);
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "1,2", IDS(c, "app.events"));
        /* In New York, row 1 is in the year before: due. The same through libpq's options. */
        out = run_tz(0, "America/New_York", "-p", pol, "-d", ci, "explain", "app.events", "1", NULL);
        rt_assert_contains(out, "    decision:  due: will be deleted by the next run\n");
        free(out);
        char *ny = rt_asprintf("%s options='-c TimeZone=America/New_York'", ci);
        unsetenv("PGTZ");
        out = run_tz(0, NULL, "-p", pol, "-d", ny, "audit", NULL);
        rt_assert_contains(out, "  due now:      1\n");
        free(out);
        free(run_tz(0, NULL, "-p", pol, "-d", ny, "run", NULL));
        rt_assert_sql(c, "2", IDS(c, "app.events"));
        free(ny);
        free(pol);
        free(ci);
        PQfinish(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_year_end),      cmocka_unit_test(test_month_end), cmocka_unit_test(test_fiscal_year),
                cmocka_unit_test(test_derived_hold_from), cmocka_unit_test(test_leap_day), cmocka_unit_test(test_time_zone),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
