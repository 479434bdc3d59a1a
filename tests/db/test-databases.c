/* test-databases.c — a policy that names several databases (`databases:`, a rule's `database:`),
 * against real PostgreSQL databases: run, audit, coverage and check go to every database, or to
 * the one -d names, each with its own rules and audit trail; one database being unreachable
 * does not stop the others; -d CONNINFO keeps the behaviour without `databases:`; with -p,
 * migrate and verify go to every database too, and receipt and hold list take -d NAME. */
#include "rtest.h"

/* app.logs in c: `old` rows 30 days old, then `young` of today. */
static void logs_table(PGconn *c, int old, int young) {
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz, email text)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, CASE WHEN i <= %d THEN now() - interval '30 days' ELSE now() END, NULL"
                       " FROM generate_series(1, %d) i",
                    old, old + young);
}

/* A migrated database with app.logs: 10 rows 30 days old, 5 of today. */
static PGconn *logs_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        logs_table(c, 10, 5);
        return c;
}

static char *policy_for(const char *ci_a, const char *ci_b, const char *extra_db) {
        char *yaml = rt_asprintf("version: 1\n"
                                 "databases:\n"
                                 "  alpha: { conninfo: \"%s\" }\n"
                                 "  beta: { conninfo: \"%s\" }\n"
                                 "%s"
                                 "defaults: { max_fraction: 100%% }\n"
                                 "rules:\n"
                                 "  logs-alpha:\n"
                                 "    clause: \"kept 7 days\"\n"
                                 "    database: alpha\n"
                                 "    table: app.logs\n"
                                 "    column: at\n"
                                 "    retain: 7 days\n"
                                 "    action: delete\n"
                                 "  logs-beta:\n"
                                 "    clause: \"kept 14 days\"\n"
                                 "    database: beta\n"
                                 "    table: app.logs\n"
                                 "    column: at\n"
                                 "    retain: 14 days\n"
                                 "    action: delete\n",
                                 ci_a, ci_b, extra_db ? extra_db : "");
        char *p = rt_policy(yaml);
        free(yaml);
        return p;
}

static void test_run_every_database(void **state) {
        (void) state;
        char *ci_a, *ci_b, *out, *err;
        PGconn *a = logs_db("dbs_alpha", &ci_a);
        PGconn *b = logs_db("dbs_beta", &ci_b);
        char *pol = policy_for(ci_a, ci_b, NULL);

        /* check -d NAME: that database and its rules only */
        rt_expect(0, &out, NULL, "-p", pol, "-d", "alpha", "check");
        rt_assert_contains(out, "database OK: 1 rule checked against the catalog: 0 errors, ");
        free(out);

        /* audit without -d: every database, each with its rules; nothing changes */
        rt_expect(0, &out, NULL, "-p", pol, "audit");
        rt_assert_contains(out, "database alpha:\n");
        rt_assert_contains(out, "\ndatabase beta:\n");
        rt_assert_contains(out, "logs-alpha");
        rt_assert_contains(out, "logs-beta");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "audit", "--json");
        rt_assert_contains(out, "{\"databases\":[{\"database\":\"alpha\",\"exit_code\":0,\"report\":{");
        rt_assert_contains(out, ",{\"database\":\"beta\",\"exit_code\":0,\"report\":{");
        assert_true(out[strlen(out) - 1] == '\n' && out[strlen(out) - 2] == '}' && out[strlen(out) - 3] == ']');
        free(out);
        rt_assert_sql(a, "15", "SELECT count(*) FROM app.logs");

        /* run -d NAME: only that database */
        rt_expect(0, &out, NULL, "-p", pol, "-d", "alpha", "run");
        rt_assert_contains(out, "logs-alpha");
        rt_assert_not_contains(out, "logs-beta");
        free(out);
        rt_assert_sql(a, "5", "SELECT count(*) FROM app.logs");
        rt_assert_sql(b, "15", "SELECT count(*) FROM app.logs");
        rt_assert_sql(b, "0", "SELECT count(*) FROM retention.runs");
        /* a rule of another database with -d NAME */
        rt_expect(64, NULL, &err, "-p", pol, "-d", "alpha", "run", "--rule", "logs-beta");
        rt_assert_contains(err, "rule \"logs-beta\" is not for database \"alpha\"");
        free(err);

        /* run without -d: every database, each its own audit trail */
        rt_expect(0, &out, NULL, "-p", pol, "run");
        rt_assert_contains(out, "database beta:\n");
        free(out);
        rt_assert_sql(b, "5", "SELECT count(*) FROM app.logs");
        rt_assert_sql(b, "logs-beta", "SELECT string_agg(rule, ',') FROM retention.rule_runs");
        rt_assert_sql(a, "logs-alpha,logs-alpha", "SELECT string_agg(rule, ',' ORDER BY id) FROM retention.rule_runs");

        /* -d CONNINFO: as without databases:, every rule against that connection */
        pgtest_exec(a, "INSERT INTO app.logs SELECT i, now() - interval '30 days' FROM generate_series(100, 102) i");
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci_a, "run");
        rt_assert_contains(out, "logs-alpha");
        rt_assert_contains(out, "logs-beta");
        free(out);
        rt_assert_sql(a, "5", "SELECT count(*) FROM app.logs");

        /* coverage: every database */
        rt_expect(0, &out, NULL, "-p", pol, "coverage");
        rt_assert_contains(out, "database alpha:\n");
        rt_assert_contains(out, "database beta:\n");
        rt_assert_contains(out, "covered   app.logs.email (text): its name contains \"email\"\n"
                                "  by delete rule \"logs-alpha\" (only for expired rows)");
        rt_assert_contains(out, "covered   app.logs.email (text): its name contains \"email\"\n"
                                "  by delete rule \"logs-beta\" (only for expired rows)");
        free(out);

        free(pol);
        PQfinish(a);
        PQfinish(b);
        free(ci_a);
        free(ci_b);
}

static void test_one_database_down(void **state) {
        (void) state;
        char *ci_a, *ci_b, *out, *err;
        PGconn *a = logs_db("dbs_up_alpha", &ci_a);
        PGconn *b = logs_db("dbs_up_beta", &ci_b);
        char *down = rt_asprintf("  gamma: { conninfo: \"host=%s port=1 dbname=nothing\" }\n", pgtest_host(rt_pg));
        char *yaml_pol = policy_for(ci_a, ci_b, down);
        /* a rule for gamma too */
        char *pol2 = NULL;
        {
                FILE *f = fopen(yaml_pol, "ae");
                assert_non_null(f);
                fputs("  logs-gamma:\n    clause: \"x\"\n    database: gamma\n    table: app.logs\n    column: at\n"
                      "    retain: 1 day\n    action: delete\n",
                      f);
                assert_int_equal(fclose(f), 0);
                pol2 = yaml_pol;
        }
        rt_expect(69, &out, &err, "-p", pol2, "run");
        rt_assert_contains(out, "database alpha:\n");
        rt_assert_contains(out, "database gamma:\n");
        rt_assert_contains(err, "could not connect");
        free(out);
        free(err);
        /* the others ran */
        rt_assert_sql(a, "5", "SELECT count(*) FROM app.logs");
        rt_assert_sql(b, "5", "SELECT count(*) FROM app.logs");
        free(down);
        free(pol2);
        PQfinish(a);
        PQfinish(b);
        free(ci_a);
        free(ci_b);
}

/* The commands that do not need the policy read it when -p is given: migrate and verify go to
 * every database of it (or the one -d names), receipt and hold list/release to the one -d names. */
static void test_policy_free_commands(void **state) {
        (void) state;
        char *ci_a = pgtest_create_db(rt_pg, "dbs_free_alpha");
        char *ci_b = pgtest_create_db(rt_pg, "dbs_free_beta");
        char *pol = policy_for(ci_a, ci_b, NULL);
        char *out, *err;

        rt_expect(0, &out, NULL, "-p", pol, "migrate");
        rt_assert_contains(out, "database alpha:\nretention schema migrated from version 0 to 10 (10 migrations applied)\n");
        rt_assert_contains(out, "\ndatabase beta:\nretention schema migrated from version 0 to 10 (10 migrations applied)\n");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", "beta", "migrate", "--json");
        assert_string_equal(out, "{\"schema_version\":10,\"previous_version\":10,\"migrations_applied\":0}\n");
        free(out);

        PGconn *a = pgtest_connect(ci_a), *b = pgtest_connect(ci_b);
        pgtest_exec(a, "CREATE SCHEMA app");
        logs_table(a, 10, 0);
        pgtest_exec(b, "CREATE SCHEMA app");
        logs_table(b, 0, 0);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", "alpha", "run");

        rt_expect(0, &out, NULL, "-p", pol, "verify");
        rt_assert_contains(out, "database alpha:\nchain OK: 1 sealed rule run, last hash ");
        rt_assert_contains(out, "\ndatabase beta:\nchain OK: no sealed rule runs yet\n");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "verify", "--json");
        rt_assert_contains(out, "{\"databases\":[{\"database\":\"alpha\",\"exit_code\":0,\"report\":{\"ok\":true,\"sealed\":1,");
        rt_assert_contains(out, ",{\"database\":\"beta\",\"exit_code\":0,\"report\":{\"ok\":true,\"sealed\":0,");
        free(out);
        /* a break in beta's chain shows in beta's report and in the exit code, not in alpha's */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", "beta", "run");
        pgtest_exec(b, "ALTER TABLE retention.rule_runs DISABLE TRIGGER USER");
        pgtest_exec(b, "UPDATE retention.rule_runs SET rows_deleted = 99");
        pgtest_exec(b, "ALTER TABLE retention.rule_runs ENABLE TRIGGER USER");
        rt_expect(1, &out, NULL, "-p", pol, "verify");
        rt_assert_contains(out, "database alpha:\nchain OK: 1 sealed rule run");
        rt_assert_contains(out, "\ndatabase beta:\nchain BROKEN at #1: ");
        free(out);

        rt_expect(0, &out, NULL, "-p", pol, "-d", "alpha", "receipt", "1");
        rt_assert_contains(out, "deletion receipt: run 1\n");
        rt_assert_contains(out, "logs-alpha");
        free(out);
        /* a hold placed in beta is listed with -d beta, not with -d alpha */
        pgtest_exec(b, "INSERT INTO retention.holds (subject, subject_key, reason, placed_by)"
                       " VALUES ('account', '7', 'test: litigation', 'test')");
        rt_expect(0, &out, NULL, "-p", pol, "-d", "beta", "hold", "list");
        rt_assert_contains(out, "test: litigation");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", "alpha", "hold", "list");
        rt_assert_not_contains(out, "test: litigation");
        free(out);
        /* with -p and databases, these need -d */
        rt_expect(64, NULL, &err, "-p", pol, "hold", "list");
        rt_assert_contains(err, "hold list needs -d NAME with this policy");
        rt_assert_contains(err, "The policy names 2 databases: alpha, beta.");
        rt_assert_contains(err, "Give -d NAME, e.g. -d alpha.");
        free(err);
        rt_expect(64, NULL, &err, "-p", pol, "receipt", "1");
        rt_assert_contains(err, "receipt needs -d NAME with this policy");
        free(err);
        /* --quiet: a healthy chain in every database prints nothing at all */
        pgtest_exec(b, "ALTER TABLE retention.rule_runs DISABLE TRIGGER USER");
        pgtest_exec(b, "UPDATE retention.rule_runs SET rows_deleted = 0");
        pgtest_exec(b, "ALTER TABLE retention.rule_runs ENABLE TRIGGER USER");
        rt_expect(0, &out, NULL, "-p", pol, "verify", "--quiet");
        assert_string_equal(out, "");
        free(out);

        free(pol);
        PQfinish(a);
        PQfinish(b);
        free(ci_a);
        free(ci_b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_run_every_database),
                cmocka_unit_test(test_one_database_down),
                cmocka_unit_test(test_policy_free_commands),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
