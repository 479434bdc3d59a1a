/* test-periods.c — statutory start dates (`from:`) against a real PostgreSQL, asserting exact row
 * sets: rows on either side of a year end (timestamptz and date), of a month end, of a fiscal year
 * start (April), derived holds counted from the end of the year, the release dates of a leap-day
 * record (2016-02-29) with end_of_month and 1 month / 1 year, and rows on either side of the
 * local year end in America/New_York versus UTC; with end_of_day, rows on either side of a
 * midnight (timestamptz, timestamp, date, a deadline, New York versus UTC) and a table partitioned
 * by day whose expired days are dropped whole. Boundaries are computed from now() in SQL, so the
 * cutoff is exactly a period start: the record just before it goes, the one at it stays. */
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
        rt_assert_contains(out, "SELECT date_trunc('year', now() - $1::interval - interval '1 microsecond')::text, now()::text, extract(epoch FROM now())::float8;\n");
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

/* ---- from: end_of_day ------------------------------------------------------------------------ */

/* A retain for the day tests that puts now() - retain between 07:00 and 22:00 UTC of the day six
 * days ago, whatever the time of day: "6 days" most of the day, half a day more or less near
 * midnight. So the cutoff (the last midnight strictly before now() - retain) is always the start
 * of current_date - 6, no test runs across it, and that day is the same one in America/New_York
 * (whose midnight is 04:00 or 05:00 UTC). */
static const char *day_retain(PGconn *c) {
        long long h = pgtest_int(c, "SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int");
        return h >= 22 ? "6 days 12 hours" : h >= 7 ? "6 days" : "5 days 12 hours";
}

/* Asserts the explain --json of one row: cutoff, due_by_age, due_at (as SQL over app.m). */
static void assert_day_explain(PGconn *c, const char *pol, const char *ci, const char *table, const char *id,
                               const char *due, const char *due_at_sql) {
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", table, id, "--json", NULL);
        char *m = pgtest_value(c, "SELECT m::text FROM app.m");
        char *at = pgtest_value(c, "SELECT (%s)::text FROM app.m", due_at_sql);
        char *want = rt_asprintf("\"cutoff\":\"%s\",\"due_by_age\":%s,\"due_at\":\"%s\"", m, due, at);
        rt_assert_contains(out, want);
        free(want);
        free(at);
        free(m);
        free(out);
}

/* Rows on either side of a midnight, for timestamptz, timestamp and date columns: the row at
 * 23:59:59.999999 the day before the cutoff goes, the one at midnight stays (though older than
 * now() - retain), and the overdue cutoff of a deadline is the midnight a day earlier. */
static void test_day_end(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_day", &ci);
        const char *retain = day_retain(c);
        /* m: the cutoff, midnight (UTC) six days ago */
        pgtest_exec(c, "CREATE TABLE app.m AS SELECT (current_date - 6)::timestamptz AS m");
        pgtest_exec(c, "CREATE TABLE app.tz (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE TABLE app.ts (id int PRIMARY KEY, at timestamp)");
        pgtest_exec(c, "CREATE TABLE app.d (id int PRIMARY KEY, on_day date)");
        /* tz: 1 the last microsecond before m (due); 2 m itself (kept); 3 a microsecond after (kept);
         * 4 older than now() - retain, on m's day (kept); 5 the last microsecond before m - 1 day
         * (due and overdue); 6 m - 1 day (due, not overdue); 7 NULL */
        pgtest_exec(c, "INSERT INTO app.tz SELECT 1, m - interval '1 microsecond' FROM app.m UNION ALL SELECT 2, m FROM app.m"
                       " UNION ALL SELECT 3, m + interval '1 microsecond' FROM app.m"
                       " UNION ALL SELECT 4, now() - '%s'::interval - interval '1 second'"
                       " UNION ALL SELECT 5, m - interval '1 day 1 microsecond' FROM app.m"
                       " UNION ALL SELECT 6, m - interval '1 day' FROM app.m UNION ALL SELECT 7, NULL",
                    retain);
        rt_assert_sql(c, "t", "SELECT at::date = m::date FROM app.tz, app.m WHERE id = 4");
        /* ts: the same local times; d: the day before m's, m's, the day after */
        pgtest_exec(c, "INSERT INTO app.ts SELECT 1, m::timestamp - interval '1 microsecond' FROM app.m"
                       " UNION ALL SELECT 2, m::timestamp FROM app.m UNION ALL SELECT 3, m::timestamp + interval '1 microsecond'"
                       " FROM app.m UNION ALL SELECT 4, NULL");
        pgtest_exec(c, "INSERT INTO app.d SELECT 1, m::date - 1 FROM app.m UNION ALL SELECT 2, m::date FROM app.m"
                       " UNION ALL SELECT 3, m::date + 1 FROM app.m");
        char *yaml = rt_asprintf("version: 1\n"
                                 "rules:\n"
                                 "  tz:\n"
                                 "    clause: \"kept at most a week\"\n"
                                 "    table: app.tz\n"
                                 "    column: at\n"
                                 "    retain: %1$s\n"
                                 "    deadline: 1 day\n"
                                 "    from: end_of_day\n"
                                 "    action: delete\n"
                                 "  ts: { clause: c, table: app.ts, column: at, retain: %1$s, from: end_of_day, action: delete }\n"
                                 "  d: { clause: c, table: app.d, column: on_day, retain: %1$s, from: end_of_day, action: delete }\n",
                                 retain);
        char *pol = rt_policy(yaml);
        free(yaml);

        char *out = run_tz(0, "UTC", "-p", pol, "check", NULL);
        char *want = rt_asprintf("tz: delete app.tz rows whose at is older than %s counted from the end of the day;"
                                 " overdue 1 day after that\n",
                                 retain);
        rt_assert_contains(out, want);
        free(want);
        free(out);
        char *m = pgtest_value(c, "SELECT m::text FROM app.m");
        char *m1 = pgtest_value(c, "SELECT (m - interval '1 day')::text FROM app.m");
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "audit", "--rule", "tz", NULL);
        want = rt_asprintf("  cutoff:       %s  (counted from the end of the day)\n  due now:      3\n", m);
        rt_assert_contains(out, want);
        free(want);
        rt_assert_contains(out, "  overdue:      1  <-- past the deadline\n");
        free(out);
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "audit", "--sql", "--rule", "tz", NULL);
        rt_assert_contains(out, "SELECT date_trunc('day', now() - $1::interval - interval '1 microsecond')::text,"
                                " date_trunc('day', now() - $1::interval - $2::interval - interval '1 microsecond')::text,"
                                " now()::text, extract(epoch FROM now())::float8;\n");
        rt_assert_contains(out, "cutoff: now() - retain, counted from the end of the day");
        free(out);

        /* explain: due from the end of the row's day plus retain; the overdue cutoff a midnight */
        char *r = rt_asprintf("'%s'::interval", retain);
        char *s = rt_asprintf("m + %s", r);
        assert_day_explain(c, pol, ci, "app.tz", "1", "true", s);
        free(s);
        s = rt_asprintf("m + interval '1 day' + %s", r);
        assert_day_explain(c, pol, ci, "app.tz", "2", "false", s);
        assert_day_explain(c, pol, ci, "app.ts", "2", "false", s);
        assert_day_explain(c, pol, ci, "app.d", "2", "false", s);
        free(s);
        s = rt_asprintf("m + %s", r);
        assert_day_explain(c, pol, ci, "app.d", "1", "true", s);
        free(s);
        free(r);
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", "app.tz", "5", "--json", NULL);
        want = rt_asprintf("\"overdue_cutoff\":\"%s\"", m1);
        rt_assert_contains(out, want);
        free(want);
        rt_assert_contains(out, "\"overdue\":true");
        free(out);
        out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", "app.tz", "6", "--json", NULL);
        rt_assert_contains(out, "\"overdue\":false");
        free(out);

        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "2,3,4,7", IDS(c, "app.tz"));
        rt_assert_sql(c, "2,3,4", IDS(c, "app.ts"));
        rt_assert_sql(c, "2,3", IDS(c, "app.d"));
        rt_assert_sql(c, "tz 3,ts 1,d 1", "SELECT string_agg(rule || ' ' || rows_deleted, ',' ORDER BY id) FROM retention.rule_runs");
        /* the cutoff recorded is the midnight, for every column type */
        rt_assert_sql(c, "3", "SELECT count(*) FROM retention.rule_runs, app.m WHERE cutoff = m");
        rt_assert_sql(c, "00:00:00", "SELECT DISTINCT cutoff::time::text FROM retention.rule_runs");
        free(m1);
        free(m);
        free(pol);
        free(ci);
        PQfinish(c);
}

/* The same instants are in different days in America/New_York and in UTC, and the session's
 * TimeZone decides: 23:59:59.999999 in New York the day before the cutoff is 03:59 or 04:59 UTC
 * on the cutoff's day. The cutoff is New York's midnight there. */
static void test_day_time_zone(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_day_tz", &ci);
        const char *retain = day_retain(c);
        /* n: midnight in New York six days ago, u: midnight UTC */
        pgtest_exec(c, "CREATE TABLE app.n AS SELECT (current_date - 6)::timestamp AT TIME ZONE 'America/New_York' AS n,"
                       " (current_date - 6)::timestamptz AS u");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, at timestamptz)");
        /* 1: the last microsecond before n (due in New York, not in UTC); 2: n (kept); 3: the last
         * microsecond before u (due in both); 4: n + 1 hour (kept) */
        pgtest_exec(c, "INSERT INTO app.events SELECT 1, n - interval '1 microsecond' FROM app.n UNION ALL SELECT 2, n FROM app.n"
                       " UNION ALL SELECT 3, u - interval '1 microsecond' FROM app.n UNION ALL SELECT 4, n + interval '1 hour'"
                       " FROM app.n");
        rt_assert_sql(c, "t", "SELECT u < n - interval '1 hour' FROM app.n");
        char *yaml = rt_asprintf("version: 1\n"
                                 "rules:\n"
                                 "  events: { clause: c, table: app.events, column: at, retain: %s, from: end_of_day, action: delete }\n",
                                 retain);
        char *pol = rt_policy(yaml);
        free(yaml);
        /* In UTC, row 1 is on the cutoff's day: not yet due. */
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "explain", "app.events", "1", NULL);
        rt_assert_contains(out, "    decision:  not yet due: due after ");
        free(out);
        free(run_tz(0, "UTC", "-p", pol, "-d", ci, "run", NULL));
        rt_assert_sql(c, "1,2,4", IDS(c, "app.events"));
        rt_assert_sql(c, "t", "SELECT cutoff = u FROM retention.rule_runs, app.n");
        /* In New York, row 1 is in the day before: due. The same through libpq's options. */
        out = run_tz(0, "America/New_York", "-p", pol, "-d", ci, "explain", "app.events", "1", NULL);
        rt_assert_contains(out, "    decision:  due: will be deleted by the next run\n");
        free(out);
        out = run_tz(0, "America/New_York", "-p", pol, "-d", ci, "explain", "app.events", "2", NULL);
        rt_assert_contains(out, "    decision:  not yet due: due after ");
        free(out);
        char *ny = rt_asprintf("%s options='-c TimeZone=America/New_York'", ci);
        unsetenv("PGTZ");
        out = run_tz(0, NULL, "-p", pol, "-d", ny, "audit", NULL);
        rt_assert_contains(out, "  due now:      1\n");
        rt_assert_contains(out, " 00:00:00-0"); /* the cutoff: midnight, -04 or -05 */
        free(out);
        free(run_tz(0, NULL, "-p", pol, "-d", ny, "run", NULL));
        rt_assert_sql(c, "2,4", IDS(c, "app.events"));
        rt_assert_sql(c, "1,1", "SELECT string_agg(rows_deleted::text, ',' ORDER BY id) FROM retention.rule_runs");
        rt_assert_sql(c, "t", "SELECT cutoff = n FROM retention.rule_runs, app.n ORDER BY id DESC LIMIT 1");
        rt_assert_sql(c, "00:00:00",
                      "SELECT (cutoff AT TIME ZONE 'America/New_York')::time::text FROM retention.rule_runs ORDER BY id DESC LIMIT 1");
        free(ny);
        free(pol);
        free(ci);
        PQfinish(c);
}

/* A table range-partitioned by day: counted from the end of the day, the cutoff is a partition
 * bound, so the expired days' partitions are dropped whole and no row is deleted by a batch.
 * Counted from the row itself (the twin table), the cutoff falls inside a day partition whose
 * older rows are deleted one batch at a time. */
static void test_day_partitions(void **state) {
        (void) state;
        char *ci;
        PGconn *c = db("periods_day_parts", &ci);
        const char *retain = day_retain(c);
        const char *t[] = { "pd", "pr" };
        for (size_t i = 0; i < 2; i++) {
                pgtest_exec(c, "CREATE TABLE app.%s (id int NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at)", t[i]);
                /* one partition a day from 12 days ago to tomorrow, and a default one */
                pgtest_exec(c,
                            "DO $$ DECLARE d date; BEGIN"
                            " FOR d IN SELECT generate_series(current_date - 12, current_date + 1, '1 day')::date LOOP"
                            "   EXECUTE format('CREATE TABLE app.%%I PARTITION OF app.%s FOR VALUES FROM (%%L) TO (%%L)',"
                            "     '%s_' || to_char(d, 'YYYYMMDD'), d::timestamptz, (d + 1)::timestamptz);"
                            " END LOOP; END $$",
                            t[i], t[i]);
                pgtest_exec(c, "CREATE TABLE app.%s_default PARTITION OF app.%s DEFAULT", t[i], t[i]);
                pgtest_exec(c, "CREATE INDEX ON app.%s (at)", t[i]);
                /* 24 rows a day, one an hour, from 12 days ago to today: 312 */
                pgtest_exec(c, "INSERT INTO app.%s SELECT row_number() OVER (), a FROM generate_series((current_date - 12)::timestamptz,"
                               " current_date::timestamptz + interval '23 hours', '1 hour') a",
                            t[i]);
                rt_assert_sql(c, "312", "SELECT count(*) FROM app.%s", t[i]);
        }
        char *yaml = rt_asprintf("version: 1\n"
                                 "rules:\n"
                                 "  pd: { clause: c, table: app.pd, column: at, retain: %1$s, from: end_of_day, action: delete }\n"
                                 "  pr: { clause: c, table: app.pr, column: at, retain: %1$s, action: delete }\n",
                                 retain);
        char *pol = rt_policy(yaml);
        free(yaml);
        char *m = pgtest_value(c, "SELECT (current_date - 6)::timestamptz::text");
        char *out = run_tz(0, "UTC", "-p", pol, "-d", ci, "--json", "run", NULL);
        char *want = rt_asprintf("\"rule\":\"pd\",\"clause\":\"c\",\"table\":\"app.pd\",\"action\":\"delete\",\"cutoff\":\"%s\","
                                 "\"outcome\":\"success\"",
                                 m);
        rt_assert_contains(out, want);
        free(want);
        free(out);

        /* end_of_day: the six days before the cutoff went with their partitions, 6 x 24 rows, and
         * not one row more (the one batch statement found nothing left) */
        rt_assert_sql(c, "6 144", "SELECT partitions_dropped || ' ' || rows_deleted FROM retention.rule_runs WHERE rule = 'pd'");
        rt_assert_sql(c, "t", "SELECT cutoff = (current_date - 6)::timestamptz FROM retention.rule_runs WHERE rule = 'pd'");
        rt_assert_sql(c, "168", "SELECT count(*) FROM app.pd");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.pd WHERE at < (current_date - 6)::timestamptz");
        rt_assert_sql(c, "9", "SELECT count(*) FROM pg_inherits WHERE inhparent = 'app.pd'::regclass");
        rt_assert_sql(c, "0", "SELECT count(*) FROM pg_class WHERE relname = 'pd_' || to_char(current_date - 7, 'YYYYMMDD')");
        rt_assert_sql(c, "24", "SELECT count(*) FROM app.pd WHERE at < (current_date - 5)::timestamptz");

        /* from the record: the same six partitions, and the older rows of the cutoff's day one by
         * one, in batches */
        rt_assert_sql(c, "6", "SELECT partitions_dropped FROM retention.rule_runs WHERE rule = 'pr'");
        rt_assert_sql(c, "t", "SELECT batches >= 1 FROM retention.rule_runs WHERE rule = 'pr'");
        rt_assert_sql(c, "t", "SELECT rows_deleted - 144 = (SELECT count(*) FROM generate_series(0, 23) h"
                              " WHERE (current_date - 6)::timestamptz + h * interval '1 hour' < r.cutoff)"
                              " AND rows_deleted > 144 FROM retention.rule_runs r WHERE rule = 'pr'");
        rt_assert_sql(c, "t", "SELECT count(*) BETWEEN 1 AND 23 FROM app.pr WHERE at < (current_date - 5)::timestamptz");
        rt_assert_sql(c, "t", "SELECT (SELECT count(*) FROM app.pr) + rows_deleted = 312 FROM retention.rule_runs WHERE rule = 'pr'");
        free(m);
        free(pol);
        free(ci);
        PQfinish(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_year_end),      cmocka_unit_test(test_month_end), cmocka_unit_test(test_fiscal_year),
                cmocka_unit_test(test_derived_hold_from), cmocka_unit_test(test_leap_day), cmocka_unit_test(test_time_zone),
                cmocka_unit_test(test_day_end), cmocka_unit_test(test_day_time_zone), cmocka_unit_test(test_day_partitions),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
