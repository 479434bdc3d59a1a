/* test-audit.c — `retentiond audit` (and `run --dry-run`) change nothing: a checksum of every
 * table, the application's and retention.*, every sequence and the list of relations are equal
 * before and after; the session is READ ONLY, so a write attempted inside it (a `where:` calling
 * nextval() or a function that inserts) fails with SQLSTATE 25006 and changes nothing; and what
 * the audit predicts is what the next run does; `audit --sql` shows every statement of every
 * rule's plan, the fast path's, foreign-key isolation's and the partitions' included. */
#include "rtest.h"
#include "rtengine.h"

/* Everything an audit could change, as one text. */
static const char *CHECKSUM_FN =
        "CREATE FUNCTION public.everything() RETURNS text LANGUAGE plpgsql AS $f$"
        " DECLARE r record; h text; acc text := ''; BEGIN"
        "  FOR r IN SELECT c.oid::regclass::text AS t, c.relkind FROM pg_class c"
        "   JOIN pg_namespace n ON n.oid = c.relnamespace"
        "   WHERE n.nspname IN ('app', 'retention') AND c.relkind IN ('r', 'p', 'S') ORDER BY 1 LOOP"
        "   IF r.relkind = 'S' THEN EXECUTE format('SELECT last_value || ''/'' || is_called FROM %s', r.t) INTO h;"
        "   ELSE EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM %s x', r.t)"
        "    INTO h; END IF;"
        "   acc := acc || r.t || '=' || h || E'\\n';"
        "  END LOOP;"
        "  RETURN acc || (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class"
        "   WHERE relnamespace IN ('app'::regnamespace, 'retention'::regnamespace));"
        " END $f$";

static const char *POLICY =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
        "rules:\n"
        "  accounts:\n"
        "    clause: \"deleted once deletion is requested\"\n"
        "    table: app.accounts\n"
        "    subject: account\n"
        "    column: deletion_requested_at\n"
        "    retain: 0 days\n"
        "    deadline: 10 days\n"
        "    holds: [legal]\n"
        "    action: delete\n"
        "    while_held: { columns: { email: hash } }\n"
        "  logs:\n"
        "    clause: \"logs kept 7 days\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "  log-ip:\n"
        "    clause: \"IPs shortened\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 0 days\n"
        "    action: anonymise\n"
        "    columns: { ip: truncate_ip }\n"
        "  parts:\n"
        "    clause: \"partitioned events kept 7 days\"\n"
        "    table: app.parts\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n";

static PGconn *audit_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "%s", CHECKSUM_FN);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, email text, deletion_requested_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.accounts (deletion_requested_at)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT i, 'u' || i || '@example.com',"
                       " CASE WHEN i <= 6 THEN now() - i * interval '3 days' END FROM generate_series(1, 10) i");
        pgtest_exec(c, "CREATE TABLE app.logs (id serial PRIMARY KEY, at timestamptz, ip inet)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - i * interval '1 day' + interval '1 hour',"
                       " ('10.1.2.' || i)::inet FROM generate_series(1, 12) i");
        pgtest_exec(c, "CREATE TABLE app.parts (id int, at timestamptz) PARTITION BY RANGE (at)");
        pgtest_exec(c, "CREATE TABLE app.parts_old PARTITION OF app.parts FOR VALUES FROM (MINVALUE) TO (now() - interval '20 days')");
        pgtest_exec(c, "CREATE TABLE app.parts_new PARTITION OF app.parts FOR VALUES FROM (now() - interval '20 days') TO (MAXVALUE)");
        pgtest_exec(c, "CREATE INDEX ON app.parts (at)");
        pgtest_exec(c, "INSERT INTO app.parts VALUES (1, now() - interval '30 days'), (2, now() - interval '10 days'), (3, now())");
        pgtest_exec(c, "CREATE SEQUENCE app.some_seq");
        pgtest_exec(c, "SELECT nextval('app.some_seq')");
        pgtest_exec(c, "ANALYZE");
        return c;
}

static void test_audit_changes_nothing(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = audit_db("audit_nothing", &ci);
        char *pol = rt_policy(POLICY);
        /* a non-empty audit trail and hold registry */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "2", "--reason", "case 2");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run", "--rule", "logs");
        rt_assert_sql(c, "7", "SELECT count(*) FROM app.logs");
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - i * interval '1 day', ('10.1.3.' || i)::inet"
                       " FROM generate_series(8, 9) i");

        char *before = pgtest_value(c, "SELECT public.everything()");
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(out, "audit: a dry run inside a READ ONLY transaction; nothing was changed");
        /* accounts: 1, 3..6 due (2 held; 7..10 never asked); 4..6 are past the 10-day deadline */
        rt_assert_contains(out, "due now:      5");
        rt_assert_contains(out, "overdue:      3");
        rt_assert_contains(out, "held, to anonymise while held: 1");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "audit");
        rt_assert_contains(out, "{\"read_only\":true,");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--sql", "audit");
        rt_assert_contains(out, "DELETE FROM \"app\".\"accounts\"");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--dry-run", "run");
        rt_assert_contains(out, "READ ONLY");
        free(out);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "--fail-on-overdue", "audit", "--rule", "logs");
        rt_expect(1, NULL, NULL, "-p", pol, "-d", ci, "--fail-on-overdue", "audit", "--rule", "accounts");
        char *after = pgtest_value(c, "SELECT public.everything()");
        assert_string_equal(before, after);
        rt_assert_sql(c, "1", "SELECT count(*) FROM retention.runs");
        rt_assert_sql(c, "2", "SELECT count(*) FROM pg_inherits WHERE inhparent = 'app.parts'::regclass");

        /* what the audit predicted is what the run does */
        char *key, *hex;
        key = rt_key_file(&hex);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "--hash-key-file", key, "--force", "run");
        rt_assert_sql(c, "accounts=5/1/1,log-ip=0/7/0,logs=2/0/0,parts=2/0/0",
                      "SELECT string_agg(rule || '=' || rows_deleted || '/' || rows_anonymised || '/' || rows_held, ','"
                      " ORDER BY rule) FROM retention.rule_runs WHERE run_id = 2");
        rt_assert_sql(c, "2,7,8,9,10", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        rt_assert_sql(c, "3", "SELECT string_agg(id::text, ',') FROM app.parts");
        free(key);
        free(hex);
        free(before);
        free(after);
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_audit_write_attempt_fails(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = audit_db("audit_write", &ci);
        pgtest_exec(c, "CREATE TABLE app.victim (x int)");
        pgtest_exec(c, "CREATE FUNCTION app.evil() RETURNS boolean LANGUAGE sql AS"
                       " $$ INSERT INTO app.victim VALUES (1) RETURNING true $$");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  sneaky:\n"
                              "    clause: \"a where: that writes\"\n"
                              "    table: app.logs\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"nextval('app.some_seq') > 0\"\n"
                              "  evil:\n"
                              "    clause: \"a where: that inserts\"\n"
                              "    table: app.logs\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"app.evil()\"\n"
                              "  honest:\n"
                              "    clause: \"events kept 7 days\"\n"
                              "    table: app.parts\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n");
        char *before = pgtest_value(c, "SELECT public.everything()");
        rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(out, "READ ONLY");
        rt_assert_contains(out, "ERROR: cannot execute nextval() in a read-only transaction");
        rt_assert_contains(out, "ERROR: cannot execute INSERT in a read-only transaction");
        /* one failing rule does not spoil the others (on another table: a delete rule's rows
         * must also be expired under every other delete rule of its table, where: included) */
        rt_assert_contains(out, "honest — \"events kept 7 days\"\n"
                                "  delete app.parts rows whose at is older than 7 days\n"
                                "  cutoff:");
        rt_assert_contains(out, "due now:      2");
        free(out);
        rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "--json", "audit", "--rule", "sneaky");
        rt_assert_contains(out, "\"sqlstate\":\"25006\"");
        free(out);
        char *after = pgtest_value(c, "SELECT public.everything()");
        assert_string_equal(before, after);
        rt_assert_sql(c, "1/true", "SELECT last_value || '/' || is_called FROM app.some_seq");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.victim");
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.runs");
        free(before);
        free(after);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* st's SQL, verbatim, is in out (a statement the plan does not have: nothing to find). */
static void assert_shown(const char *out, const char *rule, const char *what, const PlanStatement *st) {
        if (st->sql && !strstr(out, st->sql))
                fail_msg("audit --sql does not show rule %s's %s:\n%s", rule, what, st->sql);
}

static void test_audit_sql_shows_every_statement(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = audit_db("audit_sql", &ci);
        char *pol = rt_policy(POLICY);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--sql", "audit");

        /* The plans as the engine builds them from the same catalog. */
        RtEngine en;
        rt_engine_open(&en, pol, ci);
        const Policy *p = en.policy;
        size_t partitioned = 0;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *r = &p->rules[i];
                Plan *plan = NULL;
                char *error = NULL;
                assert_int_equal(plan_build(p, r, &en.cache, &plan, &error), 0);
                assert_non_null(plan->batch_range.sql);
                assert_shown(out, r->name, "cutoffs", &plan->cutoffs);
                assert_shown(out, r->name, "breaker estimate", &plan->breaker_estimate);
                assert_shown(out, r->name, "breaker count", &plan->breaker_count);
                assert_shown(out, r->name, "partitions", &plan->partitions);
                assert_shown(out, r->name, "fast path bound", &plan->batch_bound);
                assert_shown(out, r->name, "fast path predicted bound", &plan->batch_step);
                assert_shown(out, r->name, "fast path range", &plan->batch_range);
                assert_shown(out, r->name, "batch", &plan->batch);
                assert_shown(out, r->name, "foreign-key isolation select", &plan->row_by_row_select);
                assert_shown(out, r->name, "foreign-key isolation delete", &plan->row_by_row_delete);
                assert_shown(out, r->name, "while held", &plan->while_held_batch);
                assert_shown(out, r->name, "tally", &plan->tally);
                assert_shown(out, r->name, "locked rows", &plan->skipped_locked);
                if (plan->partitions.sql) {
                        char pname[] = "PARTITION";
                        QualifiedName part = { .schema = plan->table->name.schema, .name = pname };
                        PlanStatement check = {};
                        plan_partition_check(plan, p, &en.cache, &part, &check);
                        assert_shown(out, r->name, "partition check", &check);
                        plan_statement_done(&check);
                        partitioned++;
                }
                plan_free(plan);
        }
        assert_int_equal(partitioned, 1); /* parts */
        rt_assert_contains(out, "-- fast path, each batch: the rows of that range, in the same transaction\n"
                                "DELETE FROM \"app\".\"logs\" t WHERE");
        rt_assert_contains(out, "-- foreign-key isolation: then each row on its own\nDELETE FROM \"app\".\"accounts\" d WHERE");
        rt_engine_close(&en);
        free(out);
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_audit_changes_nothing),
                cmocka_unit_test(test_audit_write_attempt_fails),
                cmocka_unit_test(test_audit_sql_shows_every_statement),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
