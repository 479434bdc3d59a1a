/* test-citus.c — retentiond against a real Citus 13 cluster (a coordinator and two workers started by
 * the test itself, tests/db/citustest.[ch]), as the least-privilege role of sql/retentiond-role.sql:
 * delete and anonymise rules on distributed tables (hash-distributed, 8 shards over two workers) and
 * on reference tables take exactly the rows strictly older than the cutoff the run recorded, and the
 * audit trail counts them. Every assertion is on exact rows and counts. */
#include "citustest.h"
#include "rtest.h"

static CitusTest *ct;

static int group_setup(void **state) {
        (void) state;
        char tmpl[] = "/tmp/retentiond-test-XXXXXX";
        if (!mkdtemp(tmpl)) {
                fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
                return -1;
        }
        rt_dir = strdup(tmpl);
        ct = citustest_start();
        rt_pg = citustest_coordinator(ct);
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        citustest_stop(ct);
        ct = NULL;
        rt_pg = NULL;
        if (rt_dir)
                (void) nftw(rt_dir, rt_rm, 16, FTW_DEPTH | FTW_PHYS);
        free(rt_dir);
        rt_dir = NULL;
        return 0;
}

/* A fresh database on every node with Citus, the retention schema (migrate, on the coordinator)
 * and a schema app; returns a superuser connection to the coordinator, and its conninfo. */
static PGconn *citus_db(const char *name, char **ci) {
        char *conninfo = citustest_create_db(ct, name);
        char *out = NULL, *err = NULL;
        int r = rt_cmd(&out, &err, "-d", conninfo, "migrate", NULL);
        if (r != 0)
                fprintf(stderr, "migrate failed (%d): %s%s", r, out, err);
        assert_int_equal(r, 0);
        free(out);
        free(err);
        PGconn *c = pgtest_connect(conninfo);
        pgtest_exec(c, "CREATE SCHEMA app");
        *ci = conninfo;
        return c;
}

/* app.events: 4,000 rows of 97 accounts, one a day over 400 days (an hour younger than whole days,
 * so no row sits on the cutoff), every 50th with a NULL age; distributed by account_id
 * (`kind`: "distributed") or a reference table ("reference"). A copy in app.events_before. */
static void make_events(PGconn *c, const char *kind) {
        pgtest_exec(c, "CREATE TABLE app.events (id bigint NOT NULL, account_id bigint NOT NULL, at timestamptz,"
                       " email text, note text, PRIMARY KEY (account_id, id))");
        pgtest_exec(c, "CREATE INDEX ON app.events (at)");
        if (strcmp(kind, "distributed") == 0)
                pgtest_exec(c, "SELECT create_distributed_table('app.events', 'account_id')");
        else
                pgtest_exec(c, "SELECT create_reference_table('app.events')");
        pgtest_exec(c, "INSERT INTO app.events SELECT g, g %% 97,"
                       " CASE WHEN g %% 50 = 0 THEN NULL ELSE now() - (g %% 400) * interval '1 day' + interval '1 hour' END,"
                       " 'user' || g || '@example.com', 'note ' || g FROM generate_series(1, 4000) g");
        pgtest_exec(c, "ANALYZE app.events");
        pgtest_exec(c, "CREATE TABLE app.events_before AS SELECT * FROM app.events");
}

static const char delete_policy[] = "version: 1\n"
                                    "rules:\n"
                                    "  events-delete:\n"
                                    "    clause: \"Events are deleted after 30 days\"\n"
                                    "    table: app.events\n"
                                    "    column: at\n"
                                    "    retain: 30 days\n"
                                    "    action: delete\n"
                                    "    batch_size: 500\n"
                                    "    max_fraction: 1\n";

static const char anonymise_policy[] = "version: 1\n"
                                       "rules:\n"
                                       "  events-anonymise:\n"
                                       "    clause: \"Events are anonymised after 30 days\"\n"
                                       "    table: app.events\n"
                                       "    column: at\n"
                                       "    retain: 30 days\n"
                                       "    action: anonymise\n"
                                       "    columns: { email: email_domain, note: { redact: \"[gone]\" } }\n"
                                       "    batch_size: 500\n"
                                       "    max_fraction: 1\n";

/* The rows older than 30 days (an hour younger than whole days): g % 400 in 31 .. 399, without the
 * NULL ages: 369 of every 400, less the 7 of them with g % 50 = 0 (NULL): 3,620 of 4,000. */
#define DUE_ROWS "3620"

static void delete_case(const char *db, const char *kind) {
        char *ci;
        PGconn *c = citus_db(db, &ci);
        make_events(c, kind);
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy(delete_policy);
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        rt_assert_contains(out, "success");
        rt_assert_sql(c, DUE_ROWS, "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "0", "SELECT rows_anonymised FROM retention.rule_runs");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.rule_runs");
        /* Exactly the rows strictly older than the recorded cutoff went: 0 wrong, 0 missed. */
        rt_assert_sql(c, "380", "SELECT count(*) FROM app.events");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at IS NULL OR at >= (SELECT cutoff FROM retention.rule_runs))");
        /* Unchanged, row for row. */
        rt_assert_sql(c, "t",
                      "SELECT (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM app.events e) ="
                      " (SELECT md5(string_agg(b::text, ',' ORDER BY id)) FROM app.events_before b"
                      "   WHERE at IS NULL OR at >= (SELECT cutoff FROM retention.rule_runs))");
        /* A second run finds nothing. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        free(out);
        rt_assert_sql(c, "0", "SELECT rows_deleted FROM retention.rule_runs ORDER BY id DESC LIMIT 1");
        rt_assert_sql(c, "380", "SELECT count(*) FROM app.events");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

static void test_delete_distributed(void **state) {
        (void) state;
        delete_case("citus_delete", "distributed");
}

static void test_delete_reference(void **state) {
        (void) state;
        delete_case("citus_delete_ref", "reference");
}

static void test_anonymise_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_anon", &ci);
        make_events(c, "distributed");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy(anonymise_policy);
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        rt_assert_contains(out, "success");
        free(out);
        rt_assert_sql(c, DUE_ROWS, "SELECT rows_anonymised FROM retention.rule_runs");
        rt_assert_sql(c, "0", "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "4000", "SELECT count(*) FROM app.events");
        /* The due rows and only they are anonymised; the age column is never touched. */
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events WHERE note = '[gone]') ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at < (SELECT cutoff FROM retention.rule_runs))");
        rt_assert_sql(c, DUE_ROWS, "SELECT count(*) FROM app.events WHERE email = '*@example.com' AND note = '[gone]'");
        rt_assert_sql(c, "380", "SELECT count(*) FROM app.events WHERE email = 'user' || id || '@example.com'"
                                " AND note = 'note ' || id");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT md5(string_agg(id || ':' || coalesce(at::text, '-'), ',' ORDER BY id)) FROM app.events) ="
                      " (SELECT md5(string_agg(id || ':' || coalesce(at::text, '-'), ',' ORDER BY id)) FROM app.events_before)");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* The circuit breaker after ANALYZE on the coordinator, whose shell of a distributed table has no
 * rows of its own (reltuples 0): a rule that would delete 90% of the table is refused without
 * --force, and nothing changes. */
static void test_breaker_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_breaker", &ci);
        make_events(c, "distributed");
        pgtest_exec(c, "ANALYZE app.events");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events-typo:\n"
                              "    clause: \"Events are deleted after 30 days (a typo: meant 3000)\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n");
        char *err;
        rt_expect(1, NULL, &err, "-p", pol, "-d", engine, "run");
        rt_assert_contains(err, "circuit breaker tripped for rule \"events-typo\"");
        rt_assert_contains(err, "rows of about 4000 in app.events are due; max_fraction 50% allows 2000");
        free(err);
        rt_assert_sql(c, "breaker", "SELECT outcome FROM retention.rule_runs");
        rt_assert_sql(c, "0", "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "4000", "SELECT count(*) FROM app.events");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_delete_distributed),
                cmocka_unit_test(test_delete_reference),
                cmocka_unit_test(test_anonymise_distributed),
                cmocka_unit_test(test_breaker_distributed),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
