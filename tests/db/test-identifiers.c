/* test-identifiers.c — identifiers with mixed case, spaces, double quotes, semicolons and comment
 * markers in schema, table and column names work end to end (run, audit --sql, holds through a
 * subject, anonymise), and nothing in a policy file or on the hold command line can inject SQL
 * outside the documented `where:`: such text is stored verbatim and the victim table survives. */
#include "rtest.h"

#define INJECT "x'); DROP TABLE app.victim; --"

static void test_weird_identifiers(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("ident_weird", &ci);
        pgtest_exec(c, "CREATE TABLE app.victim (x int)");
        pgtest_exec(c, "CREATE SCHEMA \"Sales; Data\"");
        pgtest_exec(c, "CREATE TABLE \"Sales; Data\".\"Cust Omers\" (\"ID; --\" int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO \"Sales; Data\".\"Cust Omers\" VALUES (1), (2)");
        pgtest_exec(c, "CREATE TABLE \"Sales; Data\".\"In\"\"voices -- x\" (id int PRIMARY KEY, \"Cust;omer\" int,"
                       " \"Issued /* At\" timestamptz, \"E-Mail */ --\" text)");
        pgtest_exec(c, "CREATE INDEX ON \"Sales; Data\".\"In\"\"voices -- x\" (\"Issued /* At\")");
        /* 1: old, customer 1 (held); 2: old, customer 2; 3: 3 days old; 4: new */
        pgtest_exec(c, "INSERT INTO \"Sales; Data\".\"In\"\"voices -- x\" VALUES"
                       " (1, 1, now() - interval '10 days', 'a@one.example'), (2, 2, now() - interval '10 days', 'b@two.example'),"
                       " (3, 2, now() - interval '3 days', 'c@three.example'), (4, 1, now(), 'd@four.example')");
        char *pol = rt_policy("version: 1\n"
                              "subjects:\n"
                              "  customer: { table: '\"Sales; Data\".\"Cust Omers\"', key: '\"ID; --\"' }\n"
                              "holds:\n"
                              "  legal: { reason: \"" INJECT "\", subject: customer, registry: true }\n"
                              "rules:\n"
                              "  invoices:\n"
                              "    clause: \"" INJECT "\"\n"
                              "    table: '\"Sales; Data\".\"In\"\"voices -- x\"'\n"
                              "    subject: customer\n"
                              "    subject_column: '\"Cust;omer\"'\n"
                              "    column: '\"Issued /* At\"'\n"
                              "    retain: 7 days\n"
                              "    holds: [legal]\n"
                              "    action: delete\n"
                              "  invoice-mail:\n"
                              "    clause: \"/* */ -- ; \\\" '\"\n"
                              "    table: '\"Sales; Data\".\"In\"\"voices -- x\"'\n"
                              "    column: '\"Issued /* At\"'\n"
                              "    retain: 1 day\n"
                              "    action: anonymise\n"
                              "    columns: { '\"E-Mail */ --\"': email_domain }\n");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "customer", "1", "--reason", INJECT, "--by", INJECT);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--sql", "audit");
        rt_assert_contains(out, "\"Sales; Data\".\"In\"\"voices -- x\"");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(out, "due now:      1");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "held by legal: 1");
        free(out);

        rt_assert_sql(c, "1,3,4", "SELECT string_agg(id::text, ',' ORDER BY id) FROM \"Sales; Data\".\"In\"\"voices -- x\"");
        rt_assert_sql(c, "*@one.example,*@three.example,d@four.example",
                      "SELECT string_agg(\"E-Mail */ --\", ',' ORDER BY id) FROM \"Sales; Data\".\"In\"\"voices -- x\"");
        rt_assert_sql(c, "invoice-mail=0/2,invoices=1/0",
                      "SELECT string_agg(rule || '=' || rows_deleted || '/' || rows_anonymised, ',' ORDER BY rule)"
                      " FROM retention.rule_runs");
        /* stored verbatim, executed nowhere */
        rt_assert_sql(c, "t", "SELECT clause = $q$" INJECT "$q$ FROM retention.rule_runs WHERE rule = 'invoices'");
        rt_assert_sql(c, "t", "SELECT clause = $q$/* */ -- ; \" '$q$ FROM retention.rule_runs WHERE rule = 'invoice-mail'");
        rt_assert_sql(c, "t", "SELECT reason = $q$" INJECT "$q$ AND placed_by = $q$" INJECT "$q$ FROM retention.holds");
        rt_assert_sql(c, "\"Sales; Data\".\"In\"\"voices -- x\"", "SELECT DISTINCT table_name FROM retention.rule_runs");
        rt_assert_sql(c, "app.victim", "SELECT to_regclass('app.victim')::text");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.runs");
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_no_injection(void **state) {
        (void) state;
        char *ci, *err;
        PGconn *c = rt_db("ident_inject", &ci);
        pgtest_exec(c, "CREATE TABLE app.victim (x int)");
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz, t text)");
        pgtest_exec(c, "INSERT INTO app.logs VALUES (1, now() - interval '30 days', 'x')");
        pgtest_exec(c, "CREATE TABLE app.people (id text PRIMARY KEY)");

        static const char *const bad[] = {
                /* a rule name: names are restricted, the file is rejected */
                "version: 1\nrules:\n  \"" INJECT "\":\n    clause: c\n    table: app.logs\n    column: at\n"
                "    retain: 7 days\n    action: delete\n",
                /* a table name that is not an identifier */
                "version: 1\nrules:\n  r:\n    clause: c\n    table: \"app.logs; DROP TABLE app.victim; --\"\n"
                "    column: at\n    retain: 7 days\n    action: delete\n",
                /* a duration */
                "version: 1\nrules:\n  r:\n    clause: c\n    table: app.logs\n    column: at\n"
                "    retain: \"7 days'); DROP TABLE app.victim; --\"\n    action: delete\n",
                /* a redact constant is a parameter, but the method name is not SQL either */
                "version: 1\nrules:\n  r:\n    clause: c\n    table: app.logs\n    column: at\n"
                "    retain: 7 days\n    action: anonymise\n    columns: { t: \"null; DROP TABLE app.victim\" }\n",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *pol = rt_policy(bad[i]);
                rt_expect(65, NULL, NULL, "-p", pol, "-d", ci, "run");
                free(pol);
        }
        /* quoted identifiers that are valid but name nothing: the rule fails, nothing runs */
        char *pol = rt_policy("version: 1\nrules:\n  r:\n    clause: c\n    table: app.logs\n"
                              "    column: '\"at\"\"; DROP TABLE app.victim; --\"'\n    retain: 7 days\n    action: delete\n"
                              "  s:\n    clause: c\n    table: app.logs\n    column: at\n    retain: 7 days\n"
                              "    action: anonymise\n    columns: { t: { redact: \"" INJECT "\" } }\n");
        rt_expect(1, NULL, &err, "-p", pol, "-d", ci, "run");
        rt_assert_contains(err, "does not exist");
        free(err);
        /* the redact constant is a value: written verbatim */
        rt_assert_sql(c, "t", "SELECT t = $q$" INJECT "$q$ FROM app.logs");
        rt_assert_sql(c, "r=failed,s=success", "SELECT string_agg(rule || '=' || outcome, ',' ORDER BY rule) FROM retention.rule_runs");
        free(pol);

        /* a hold key is a value too, normalised through the key column's type */
        pol = rt_policy("version: 1\nsubjects:\n  person: { table: app.people, key: id }\n");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "person", INJECT, "--reason", "r");
        rt_assert_sql(c, "t", "SELECT subject_key = $q$" INJECT "$q$ FROM retention.holds");
        free(pol);

        rt_assert_sql(c, "app.victim", "SELECT to_regclass('app.victim')::text");
        rt_assert_sql(c, "1", "SELECT count(*) FROM app.logs");
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_weird_identifiers),
                cmocka_unit_test(test_no_injection),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
