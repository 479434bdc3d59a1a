/* test-where.c — a rule's `where:` cannot escape its wrapper (issue 12, point 2).
 *
 *   escape     `where: "true), false) OR true OR coalesce((true"` (audit said 0 due, run deleted
 *              held and one-day-old rows) and hostile variants: refused by the loader, located at
 *              the offending character (FILE:LINE:COLUMN, exit 65); audit and run refuse too and
 *              not a row changes.
 *   server     fragments the lexer accepts but that are not one boolean expression over the row t
 *              (an integer, a row, text, another alias, a missing column, an aggregate, a
 *              set-returning function, a syntax error): `check -d` reports PostgreSQL's reason at
 *              the `where:` key (exit 78); audit, run and explain fail that rule with the message
 *              and go on with the others; not a row of its table changes.
 *   direct     the server-side check and plan_build() on a Rule that bypasses the loader
 *              ("1 = 1, 2 = 2", the escape): refused, and a transaction around the check stays
 *              usable.
 *   wrapper    every statement a plan builds (batches, breaker, tally, partition check, explain)
 *              has the rule's where, and another delete rule's, only inside coalesce((WHERE), false).
 *   agree      legitimate wheres with strings, dollar quotes and identifiers holding parentheses
 *              and quotes: audit's due and held counts are what run deletes and keeps, exactly;
 *              held and young rows stay. */
#include "rtest.h"

#include "rtengine.h"
#include "rule-where.h"

/* The `events` rule's where is on line 16 of this policy; the %s is the YAML scalar. */
#define POLICY_FMT \
        "version: 1\n" \
        "subjects:\n" \
        "  account: { table: app.accounts, key: id }\n" \
        "holds:\n" \
        "  legal: { reason: \"litigation\", subject: account, registry: true }\n" \
        "rules:\n" \
        "  events:\n" \
        "    clause: \"events kept 7 days\"\n" \
        "    table: app.events\n" \
        "    subject: account\n" \
        "    subject_column: account_id\n" \
        "    column: created_at\n" \
        "    retain: 7 days\n" \
        "    holds: [legal]\n" \
        "    action: delete\n" \
        "    where: %s\n" \
        "  logs:\n" \
        "    clause: \"logs kept 7 days\"\n" \
        "    table: app.logs\n" \
        "    column: at\n" \
        "    retain: 7 days\n" \
        "    action: delete\n"

/* w as a YAML double-quoted scalar */
static char *yaml_dq(const char *w) {
        size_t n = strlen(w);
        char *s = malloc(2 * n + 3), *p = s;
        assert_non_null(s);
        *p++ = '"';
        for (const char *c = w; *c; c++) {
                if (*c == '"' || *c == '\\')
                        *p++ = '\\';
                if (*c == '\n') {
                        *p++ = '\\';
                        *p++ = 'n';
                        continue;
                }
                *p++ = *c;
        }
        *p++ = '"';
        *p = '\0';
        return s;
}

static char *policy_with(const char *where) {
        char *q = yaml_dq(where);
        char *y = rt_asprintf(POLICY_FMT, q);
        char *path = rt_policy(y);
        free(q);
        free(y);
        return path;
}

/* Accounts 1..3; events: account 1 has six rows 30 days old (held by hold 1), account 2 two rows
 * one day old (young), account 3 four rows 30 days old with parentheses and quotes in them; logs:
 * three rows 30 days old, two of today. */
static void reset_data(PGconn *c) {
        pgtest_exec(c, "TRUNCATE app.events, app.logs");
        pgtest_exec(c, "INSERT INTO app.events SELECT i, 1, now() - interval '30 days', 'x', 'a)' FROM generate_series(1, 6) i");
        pgtest_exec(c, "INSERT INTO app.events SELECT i, 2, now() - interval '1 day', 'x', 'a)' FROM generate_series(7, 8) i");
        pgtest_exec(c, "INSERT INTO app.events VALUES"
                       " (9, 3, now() - interval '30 days', ')', 'a)'),"
                       " (10, 3, now() - interval '30 days', 'it''s )', '(b'),"
                       " (11, 3, now() - interval '30 days', '(keep)', E'\\'q\\''),"
                       " (12, 3, now() - interval '30 days', 'plain', 'keep')");
        pgtest_exec(c, "INSERT INTO app.logs (at) SELECT now() - interval '30 days' FROM generate_series(1, 3)");
        pgtest_exec(c, "INSERT INTO app.logs (at) SELECT now() FROM generate_series(1, 2)");
        pgtest_exec(c, "ANALYZE app.events, app.logs");
}

static PGconn *where_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (1), (2), (3)");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, account_id int, created_at timestamptz, note text, kind text)");
        pgtest_exec(c, "CREATE INDEX ON app.events (created_at)");
        pgtest_exec(c, "CREATE INDEX ON app.events (account_id)");
        pgtest_exec(c, "CREATE TABLE app.logs (id serial PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "CREATE TABLE app.other (x int)");
        reset_data(c);
        char *pol = policy_with("true");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", *ci, "hold", "add", "account", "1", "--reason", "case 1");
        free(pol);
        return c;
}

/* ---- escape: the loader refuses, nothing runs ---------------------------------------------------- */

static void test_escape_refused_at_load(void **state) {
        (void) state;
        char *ci, *err;
        PGconn *c = where_db("where_escape", &ci);
        char *before = rt_checksum(c, "app.events");

        /* the escape of the issue, exactly: column 17 is the first ) */
        char *pol = policy_with("true), false) OR true OR coalesce((true");
        /* the run first: no held or young row may go, whatever it exits with */
        int rc = rt_cmd(NULL, NULL, "-p", pol, "-d", ci, "run", NULL);
        rt_assert_sql(c, "12", "SELECT count(*) FROM app.events");
        rt_assert_sql(c, "6", "SELECT count(*) FROM app.events WHERE account_id = 1");
        assert_int_equal(rc, 65);
        rt_expect(65, NULL, &err, "-p", pol, "check");
        char *want = rt_asprintf("%s:16:17: error: \"where\" in rule \"events\" closes a parenthesis it did not open\n"
                                 "   16 |     where: \"true), false) OR true OR coalesce((true\"\n"
                                 "      |                 ^\n",
                                 pol);
        rt_assert_contains(err, want);
        rt_assert_contains(err, "DETAIL:  \"where\" is a single boolean expression about the row t of the rule's table.");
        rt_assert_contains(err, "HINT:  Balance the parentheses");
        free(want);
        free(err);
        /* audit and run load the same policy: refused before any connection */
        rt_expect(65, NULL, &err, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(err, ":16:17: error: \"where\" in rule \"events\" closes a parenthesis it did not open");
        free(err);
        rt_expect(65, NULL, &err, "-p", pol, "-d", ci, "run");
        rt_assert_contains(err, ":16:17: error: \"where\" in rule \"events\" closes a parenthesis it did not open");
        free(err);
        rt_expect(65, NULL, NULL, "-p", pol, "-d", ci, "--json", "check");
        free(pol);

        /* hostile variants, each at its column (the value starts at column 13) */
        static const struct {
                const char *where;
                unsigned column;
                const char *message;
        } cases[] = {
                { "true) OR true OR (true", 17, "closes a parenthesis it did not open" },
                { "t.a$$ = 1) OR true OR (t.b$$ = 2", 22, "closes a parenthesis it did not open" },
                { "t.note = $x$ ) $X$ OR true", 22, "has an unterminated dollar-quoted string" },
                { "t.note = ')' OR true) OR (t.note = '('", 33, "closes a parenthesis it did not open" },
                { "'\\'' OR true) OR (''", 0, "has a backslash before a quote in a string" },
                { "t.note = E'\\'' ) OR true OR (''", 0, "closes a parenthesis it did not open" },
                { "true; DELETE FROM app.events", 17, "contains a semicolon" },
                { "true -- )", 18, "contains a comment" },
                { "true /* ) */", 18, "contains a comment" },
                { "t.created_at < $1", 28, "refers to a statement parameter" },
                { "1 = 1, 2 = 2", 18, "is a list, not one expression" },
                { "(true", 13, "opens a parenthesis it does not close" },
                { "t.note = 'abc) OR (true", 22, "has an unterminated quoted string" },
                { "1e'x' = 'x'", 13, "has a number followed by a letter" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                pol = policy_with(cases[i].where);
                rt_expect(65, NULL, &err, "-p", pol, "check");
                /* a value with a backslash is written with escapes: located at the value's start */
                char *line = rt_asprintf("%s:16:%u: error: \"where\" in rule \"events\" %s\n", pol,
                                         cases[i].column ? cases[i].column : 12, cases[i].message);
                rt_assert_contains(err, line);
                free(line);
                free(err);
                rt_expect(65, NULL, NULL, "-p", pol, "-d", ci, "run");
                free(pol);
        }

        /* not a row changed, the held rows first of all */
        char *after = rt_checksum(c, "app.events");
        assert_string_equal(before, after);
        rt_assert_sql(c, "12", "SELECT count(*) FROM app.events");
        rt_assert_sql(c, "6", "SELECT count(*) FROM app.events WHERE account_id = 1");
        rt_assert_sql(c, "5", "SELECT count(*) FROM app.logs");
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.rule_runs");
        free(before);
        free(after);
        free(ci);
        PQfinish(c);
}

/* ---- server: PostgreSQL parses the where on its own ------------------------------------------------ */

static void test_where_checked_by_server(void **state) {
        (void) state;
        char *ci, *out, *err;
        PGconn *c = where_db("where_server", &ci);
        static const struct {
                const char *where;
                const char *message;
                const char *sqlstate;
        } cases[] = {
                { "t.id", "\"where\" in rule \"events\" is of type integer, not boolean", "42804" },
                { "(1 = 1, 2 = 2)", "\"where\" in rule \"events\" is of type record, not boolean", "42804" },
                { "'t'", "\"where\" in rule \"events\" is of type text, not boolean", "42804" },
                { "other.x = 1", "invalid \"where\" in rule \"events\": missing FROM-clause entry for table \"other\"", "42P01" },
                { "t.nope = 1", "invalid \"where\" in rule \"events\": column t.nope does not exist", "42703" },
                { "count(*) > 0", "invalid \"where\" in rule \"events\": aggregate functions are not allowed in WHERE", "42803" },
                { "generate_series(1, 2) = 1",
                  "invalid \"where\" in rule \"events\": set-returning functions are not allowed in WHERE", "0A000" },
                { "t.id = = 1", "invalid \"where\" in rule \"events\": syntax error at or near \"=\"", "42601" },
                { "(SELECT true FROM app.other o WHERE o.x = t.id) OR batch.k IS NULL",
                  "invalid \"where\" in rule \"events\": missing FROM-clause entry for table \"batch\"", "42P01" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *pol = policy_with(cases[i].where);
                char *q = yaml_dq(cases[i].where);

                /* check -d: located at the where: key, the line echoed, exit 65 */
                rt_expect(0, NULL, NULL, "-p", pol, "check");
                rt_expect(65, NULL, &err, "-p", pol, "-d", ci, "check");
                char *want = rt_asprintf("%s:16:5: error: %s\n   16 |     where: %s\n      |     ^\n", pol, cases[i].message, q);
                rt_assert_contains(err, want);
                free(want);
                free(err);

                /* audit: that rule failed with the message, the other goes on */
                rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "audit");
                want = rt_asprintf("  ERROR: %s\n", cases[i].message);
                rt_assert_contains(out, want);
                free(want);
                rt_assert_contains(out, "due now:      3");
                free(out);

                /* explain: the rule cannot say anything about the row */
                rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "explain", "app.events", "9");
                rt_assert_contains(out, cases[i].message);
                free(out);

                /* run: that rule failed and touched nothing; the other deleted its 3 rows */
                rt_expect(1, &out, &err, "-p", pol, "-d", ci, "run");
                rt_assert_contains(err, cases[i].message);
                free(out);
                free(err);
                rt_assert_sql(c, "12", "SELECT count(*) FROM app.events");
                rt_assert_sql(c, "2", "SELECT count(*) FROM app.logs");
                char *rr = rt_asprintf("failed %s %s", cases[i].sqlstate, cases[i].message);
                rt_assert_sql(c, rr,
                              "SELECT outcome || ' ' || sqlstate || ' ' || error FROM retention.rule_runs"
                              " WHERE rule = 'events' ORDER BY id DESC LIMIT 1");
                rt_assert_sql(c, "success 3",
                              "SELECT outcome || ' ' || rows_deleted FROM retention.rule_runs WHERE rule = 'logs' ORDER BY id DESC LIMIT 1");
                free(rr);
                reset_data(c);
                free(q);
                free(pol);
        }
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.rule_runs WHERE rule = 'events' AND outcome <> 'failed'");
        rt_assert_sql(c, "0", "SELECT coalesce(sum(rows_deleted), 0) FROM retention.rule_runs WHERE rule = 'events'");

        /* a second delete rule on the table pastes its where into the first one's statements: a
         * where PostgreSQL refuses fails both, and neither deletes a row */
        char *y = rt_asprintf("%s"
                              "  events-b:\n"
                              "    clause: \"some events kept 9 days\"\n"
                              "    table: app.events\n"
                              "    column: created_at\n"
                              "    retain: 9 days\n"
                              "    action: delete\n"
                              "    where: \"t.id\"\n",
                              "version: 1\n"
                              "rules:\n"
                              "  events-a:\n"
                              "    clause: \"events kept 7 days\"\n"
                              "    table: app.events\n"
                              "    column: created_at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"t.kind <> 'keep'\"\n");
        char *pol = rt_policy(y);
        rt_expect(1, &out, &err, "-p", pol, "-d", ci, "run");
        rt_assert_sql(c, "12", "SELECT count(*) FROM app.events");
        rt_assert_sql(c, "2", "SELECT count(*) FROM retention.rule_runs WHERE rule IN ('events-a', 'events-b')"
                              " AND outcome = 'failed' AND error = '\"where\" in rule \"events-b\" is of type integer, not boolean'");
        free(out);
        free(err);
        free(pol);
        free(y);
        free(ci);
        PQfinish(c);
}

/* ---- direct: a Rule that bypasses the loader ------------------------------------------------------- */

static void test_server_check_direct(void **state) {
        (void) state;
        char *ci;
        PGconn *c = where_db("where_direct", &ci);
        char *pol = policy_with("t.kind <> 'keep'");
        RtEngine en;
        rt_engine_open(&en, pol, ci);
        Policy *p = en.policy;
        Pg *pg = en.pg;
        CatCache *cache = &en.cache;
        PgError err = {};
        Rule *r = NULL;
        for (size_t i = 0; i < p->n_rules; i++)
                if (strcmp(p->rules[i].name, "events") == 0)
                        r = &p->rules[i];
        if (!r)
                fail_msg("no rule \"events\"");
        assert_int_equal(rule_where_check(pg, p, r, cache, &err), 0);

        char *legit = r->where;
        static const struct {
                const char *where;
                const char *server; /* rule_where_check's message */
                const char *plan;   /* plan_build's */
        } cases[] = {
                { "1 = 1, 2 = 2", "\"where\" in rule \"events\" is of type record, not boolean",
                  "rule \"events\": \"where\" is a list, not one expression (at byte 5)" },
                { "true), false) OR true OR coalesce((true", "invalid \"where\" in rule \"events\": syntax error at or near \")\"",
                  "rule \"events\": \"where\" closes a parenthesis it did not open (at byte 4)" },
                { "t.created_at < $1", "invalid \"where\" in rule \"events\": it refers to a statement parameter",
                  "rule \"events\": \"where\" refers to a statement parameter (at byte 15)" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                r->where = strdup(cases[i].where);
                /* inside a transaction: refused, and the transaction goes on */
                PGresult *b = PQexec(pg->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
                PQclear(b);
                int k = rule_where_check(pg, p, r, cache, &err);
                assert_int_not_equal(k, 0);
                assert_int_not_equal(k, PG_ERR_CONNECTION);
                assert_string_equal(err.primary, cases[i].server);
                pg_error_done(&err);
                char *one = NULL;
                assert_int_equal(pg_value(pg, &one, &err, "SELECT 1", 0, NULL), 0);
                assert_string_equal(one, "1");
                free(one);
                b = PQexec(pg->conn, "COMMIT");
                assert_int_equal(PQresultStatus(b), PGRES_COMMAND_OK);
                PQclear(b);
                /* outside one */
                k = rule_where_check(pg, p, r, cache, &err);
                assert_int_not_equal(k, 0);
                assert_string_equal(err.primary, cases[i].server);
                pg_error_done(&err);
                /* no statement is built around it */
                Plan *plan = NULL;
                char *error = NULL;
                assert_int_equal(plan_build(p, r, cache, &plan, &error), -1);
                assert_null(plan);
                assert_string_equal(error, cases[i].plan);
                free(error);
                free(r->where);
        }
        r->where = legit;
        Plan *plan = NULL;
        char *error = NULL;
        assert_int_equal(plan_build(p, r, cache, &plan, &error), 0);
        /* the wrapper, and the check statement built around it */
        assert_non_null(strstr(plan->tally.sql, " AND coalesce((t.kind <> 'keep'), false)"));
        char *sql = plan_where_check_sql(r, cat_cache_find_name(cache, &r->table));
        assert_string_equal(sql, "SELECT (t.kind <> 'keep') FROM \"app\".\"events\" t WHERE (t.kind <> 'keep') IS NOT NULL");
        free(sql);
        plan_free(plan);
        rt_engine_close(&en);
        free(pol);
        free(ci);
        PQfinish(c);
}

/* ---- one wrapper: every statement pastes a where only as coalesce((WHERE), false) ------------------ */

static size_t occurrences(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = hay; hay && (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* Every occurrence of the fragment is inside the wrapper; returns how many there are. */
static size_t wrapped(const char *sql, const char *where) {
        char *w = rt_asprintf("coalesce((%s), false)", where);
        size_t raw = occurrences(sql, where), in = occurrences(sql, w);
        if (raw != in)
                fail_msg("\"%s\" appears %zu times, %zu of them wrapped, in:\n%s", where, raw, in, sql);
        free(w);
        return in;
}

static void test_one_wrapper(void **state) {
        (void) state;
        char *ci;
        PGconn *c = where_db("where_wrapper", &ci);
        const char *w1 = "t.kind <> 'keep'", *w2 = "t.note <> ')'";
        char *q = yaml_dq(w1);
        char *y = rt_asprintf(POLICY_FMT "  events-b:\n"
                                         "    clause: \"some events kept 9 days\"\n"
                                         "    table: app.events\n"
                                         "    column: created_at\n"
                                         "    retain: 9 days\n"
                                         "    action: delete\n"
                                         "    where: \"t.note <> ')'\"\n",
                              q);
        char *pol = rt_policy(y);
        RtEngine en;
        rt_engine_open(&en, pol, ci);
        Policy *p = en.policy;
        CatCache *cache = &en.cache;
        const Rule *r = policy_find_rule(p, "events");
        assert_non_null(r);
        Plan *plan = NULL;
        char *error = NULL;
        assert_int_equal(plan_build(p, r, cache, &plan, &error), 0);

        /* the rule's own where in what decides due rows; the other rule's where in what keeps them */
        const PlanStatement *sts[] = { &plan->cutoffs, &plan->batch_bound, &plan->batch_step, &plan->batch_range, &plan->batch,
                                       &plan->while_held_batch, &plan->breaker_count, &plan->breaker_estimate,
                                       &plan->tally, &plan->row_by_row_select, &plan->row_by_row_delete,
                                       &plan->partitions };
        size_t n1 = 0, n2 = 0;
        for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++) {
                n1 += wrapped(sts[i]->sql, w1);
                n2 += wrapped(sts[i]->sql, w2);
        }
        assert_true(wrapped(plan->batch_range.sql, w1) == 1 && wrapped(plan->batch_range.sql, w2) == 1);
        assert_true(wrapped(plan->batch.sql, w1) == 1 && wrapped(plan->batch.sql, w2) == 1);
        assert_true(wrapped(plan->breaker_count.sql, w1) == 1 && wrapped(plan->breaker_estimate.sql, w1) == 1);
        assert_true(wrapped(plan->tally.sql, w1) >= 1 && wrapped(plan->tally.sql, w2) >= 1);
        assert_true(n1 >= 6 && n2 >= 4);

        PlanStatement pc = {};
        QualifiedName part = { .schema = (char[]) { "app" }, .name = (char[]) { "events" } };
        assert_int_equal(plan_partition_check(plan, p, cache, &part, &pc), 0);
        assert_int_equal(wrapped(pc.sql, w1), 0); /* only whether another rule keeps a row */
        assert_int_equal(wrapped(pc.sql, w2), 1);
        plan_statement_done(&pc);

        char *pk[] = { (char[]) { "id" } };
        ExplainPlan e = {};
        plan_explain(plan, p, cache, pk, 1, &e);
        assert_int_equal(wrapped(e.row.sql, w1), 1);
        assert_int_equal(wrapped(e.row.sql, w2), 1);
        explain_plan_done(&e);

        plan_free(plan);
        rt_engine_close(&en);
        free(pol);
        free(y);
        free(q);
        free(ci);
        PQfinish(c);
}

/* ---- agree: audit and run on legitimate wheres ------------------------------------------------------ */

/* The integer after "KEY": in the JSON object of rule "events". */
static long long json_rule_int(const char *json, const char *key) {
        const char *o = strstr(json, "\"rule\":\"events\"");
        assert_non_null(o);
        char *k = rt_asprintf("\"%s\":", key);
        const char *v = strstr(o, k);
        assert_non_null(v);
        long long n = strtoll(v + strlen(k), NULL, 10);
        free(k);
        return n;
}

static void test_audit_and_run_agree(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = where_db("where_agree", &ci);
        /* rows 9..12 are old and unheld; 1..6 are old and held (note 'x', kind 'a)'); 7, 8 are young */
        static const struct {
                const char *where;
                long long due, held;
                const char *deleted; /* ids, in order */
        } cases[] = {
                { "t.note <> ')' AND t.kind IN ('a)', '(b')", 1, 6, "10" },
                { "t.note NOT LIKE $$%(keep)%$$", 3, 6, "9,10,12" },
                { "t.kind = E'\\'q\\'' OR t.note = 'it''s )'", 2, 0, "10,11" },
                { "\"kind\" = '(b' OR kind = ')'", 1, 0, "10" },
                { "kind <> 'keep'", 3, 6, "9,10,11" },
                { "t.note ~ '^[^(]*\\)$'", 2, 0, "9,10" },
                { "t.note = $q$ ) OR ( $q$ OR t.note = $$;--$$ OR t.kind = ','", 0, 0, "" },
                { "t.note IN (')', '(keep)')\n  AND t.kind = ANY (ARRAY['a)', '''q'''])", 2, 0, "9,11" },
                { "EXISTS (SELECT 1 FROM app.accounts a WHERE a.id = t.account_id AND a.id = 3) AND t.kind <> 'keep'", 3, 0, "9,10,11" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *pol = policy_with(cases[i].where);
                char *o2 = NULL;
                rt_expect(0, &o2, NULL, "-p", pol, "-d", ci, "check");
                rt_assert_contains(o2, "database OK: 2 rules checked against the catalog");
                free(o2);
                rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "audit");
                assert_int_equal(json_rule_int(out, "rows_actionable"), cases[i].due);
                assert_int_equal(json_rule_int(out, "rows_held"), cases[i].held);
                free(out);
                rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "run");
                assert_int_equal(json_rule_int(out, "rows_deleted"), cases[i].due);
                assert_int_equal(json_rule_int(out, "rows_held"), cases[i].held);
                free(out);
                rt_assert_sql(c, cases[i].deleted,
                              "SELECT coalesce(string_agg(i::text, ',' ORDER BY i), '') FROM generate_series(1, 12) i"
                              " WHERE i NOT IN (SELECT id FROM app.events)");
                /* held and young rows stay */
                rt_assert_sql(c, "8", "SELECT count(*) FROM app.events WHERE id <= 8");
                /* the audit after the run finds nothing left */
                rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "audit");
                assert_int_equal(json_rule_int(out, "rows_actionable"), 0);
                free(out);
                reset_data(c);
                free(pol);
        }
        free(ci);
        PQfinish(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_refused_at_load),
                cmocka_unit_test(test_where_checked_by_server),
                cmocka_unit_test(test_server_check_direct),
                cmocka_unit_test(test_one_wrapper),
                cmocka_unit_test(test_audit_and_run_agree),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
