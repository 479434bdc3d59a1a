/* test-coverage.c — `retentiond coverage` against a real PostgreSQL: personal-looking columns by
 * name, by type and by sampled values; coverage by delete, anonymise and while_held rules; the
 * policy's ignore list; a role that cannot read a table; exit codes; and that no sampled value
 * ever appears in the output. */
#include "rtest.h"

#include "coverage.h"

#define SAMPLE_EMAIL "zelda.unique-sample@example.org"
#define SAMPLE_IP "2001:db8:85a3::8a2e:370:7334"

static const char *const coverage_policy =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"litigation\", subject: account, registry: true }\n"
        "rules:\n"
        "  access-logs:\n"
        "    clause: \"Logs: 7 days\"\n"
        "    table: app.access_log\n"
        "    column: requested_at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "  account-anon:\n"
        "    clause: \"Accounts: phone and name go after deletion\"\n"
        "    table: app.accounts\n"
        "    subject: account\n"
        "    column: deletion_requested_at\n"
        "    retain: 0 days\n"
        "    action: anonymise\n"
        "    columns: { phone: null }\n"
        "    holds: [legal]\n"
        "    while_held: { columns: { full_name: null } }\n"
        "coverage:\n"
        "  ignore:\n"
        "    - \"staging.*\"\n"
        "    - app.products.name\n"
        "    - '\"Odd Schema\".*.email'\n";

static PGconn *coverage_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.access_log (id bigserial PRIMARY KEY, requested_at timestamptz NOT NULL,"
                       " ip inet, path text, user_agent text, status int)");
        pgtest_exec(c, "INSERT INTO app.access_log (requested_at, ip, path, user_agent, status)"
                       " SELECT now(), '192.0.2.1', '/', 'curl', 200 FROM generate_series(1, 10)");
        pgtest_exec(c, "CREATE TABLE app.accounts (id bigserial PRIMARY KEY, email text, full_name text, phone text,"
                       " birth_date date, email_verified boolean, email_sent_at timestamptz, created_at timestamptz,"
                       " deletion_requested_at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.accounts (email) VALUES ('" SAMPLE_EMAIL "')");
        /* personal only by their values */
        pgtest_exec(c, "CREATE TABLE app.notes (id bigserial PRIMARY KEY, body text, payload jsonb, remark varchar(40), size int)");
        pgtest_exec(c, "INSERT INTO app.notes (body, payload, remark) VALUES"
                       " ('write to " SAMPLE_EMAIL " please', '{\"peer\": \"" SAMPLE_IP "\"}', 'version 1.2.3'),"
                       " ('nothing here', '{\"at\": \"12:30:45\"}', 'ok'), (NULL, NULL, 'aa:bb:cc:dd:ee:ff')");
        /* a thing's name is not a person's name; a person's name in a table the policy ignores */
        pgtest_exec(c, "CREATE TABLE app.products (id int PRIMARY KEY, product_name text, name text, file_name text)");
        pgtest_exec(c, "CREATE SCHEMA staging");
        pgtest_exec(c, "CREATE TABLE staging.import (id int, email text, ip inet)");
        pgtest_exec(c, "CREATE SCHEMA \"Odd Schema\"");
        pgtest_exec(c, "CREATE TABLE \"Odd Schema\".\"T\" (\"firstName\" text, email text)");
        /* a partitioned table: reported once, as the parent */
        pgtest_exec(c, "CREATE TABLE app.events (at timestamptz NOT NULL, client_ip cidr) PARTITION BY RANGE (at)");
        pgtest_exec(c, "CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')");
        /* big enough for TABLESAMPLE */
        pgtest_exec(c, "CREATE TABLE app.big (id int, comment text)");
        pgtest_exec(c, "INSERT INTO app.big SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 30000) g");
        pgtest_exec(c, "ANALYZE app.big");
        return c;
}

static void test_coverage_report(void **state) {
        (void) state;
        char *ci;
        PGconn *c = coverage_db("cov_report", &ci);
        char *pol = rt_policy(coverage_policy);
        char *out, *err;

        rt_expect(1, &out, &err, "-p", pol, "-d", ci, "coverage");
        /* by name */
        rt_assert_contains(out, "uncovered app.accounts.email (text): its name contains \"email\"; 1 of 1 sampled values look like e-mail addresses\n"
                                "  HINT: add an anonymise rule for app.accounts (columns: { email: ... }) or a delete rule for app.accounts\n");
        rt_assert_contains(out, "uncovered app.accounts.birth_date (date): its name contains \"birth\"\n");
        /* by values only */
        rt_assert_contains(out, "uncovered app.notes.body (text): 1 of 2 sampled values look like e-mail addresses\n");
        rt_assert_contains(out, "uncovered app.notes.payload (jsonb): 1 of 2 sampled values look like IP addresses\n");
        rt_assert_contains(out, "uncovered app.big.comment (text): ");
        rt_assert_contains(out, "sampled values look like e-mail addresses");
        /* by type, reported on the partitioned parent */
        rt_assert_contains(out, "uncovered app.events.client_ip (cidr): its name contains \"ip\"; its type is a network address\n");
        rt_assert_not_contains(out, "events_2026");
        /* covered: a delete rule (only its expired rows), anonymise and while_held */
        rt_assert_contains(out, "covered   app.access_log.ip (inet): its name contains \"ip\"; its type is a network address\n"
                                "  by delete rule \"access-logs\" (only for expired rows)\n");
        rt_assert_contains(out, "covered   app.access_log.user_agent (text): its name contains \"user_agent\"\n");
        rt_assert_contains(out, "covered   app.accounts.phone (text): its name contains \"phone\"\n"
                                "  by anonymise rule \"account-anon\" (only for expired rows)\n");
        rt_assert_contains(out, "covered   app.accounts.full_name (text): its name contains \"full_name\"\n"
                                "  by while_held of rule \"account-anon\" (only rows a hold keeps)\n");
        /* not personal: flags, timestamps, a version number, a time of day, a MAC-like remark, things' names */
        rt_assert_not_contains(out, "email_verified");
        rt_assert_not_contains(out, "email_sent_at");
        rt_assert_not_contains(out, "remark");
        rt_assert_not_contains(out, "product_name");
        rt_assert_not_contains(out, "file_name");
        rt_assert_not_contains(out, "app.access_log.path");
        /* ignored */
        rt_assert_not_contains(out, "staging");
        rt_assert_not_contains(out, "app.products.name");
        rt_assert_not_contains(out, "Odd Schema\".\"T\".email");
        rt_assert_contains(out, "\"Odd Schema\".\"T\".\"firstName\" (text): its name contains \"first_name\"");
        rt_assert_contains(out, "7 of 11 columns that look personal are not covered by any rule (33 columns in 8 tables scanned, 5 tables sampled");
        rt_assert_contains(out, "4 personal-looking columns ignored by the policy");
        /* no value ever leaves the database */
        rt_assert_not_contains(out, "zelda");
        rt_assert_not_contains(out, "8a2e");
        rt_assert_not_contains(out, "192.0.2");
        rt_assert_not_contains(err, "zelda");
        free(out);
        free(err);

        rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "coverage", "--json");
        rt_assert_contains(out, "{\"database\":null,\"uncovered\":7,\"looks_personal\":11,");
        rt_assert_contains(out, "{\"table\":\"app.accounts\",\"column\":\"email\",\"type\":\"text\",\"covered\":false,");
        rt_assert_contains(out, "\"covered_by\":[{\"rule\":\"access-logs\",\"how\":\"delete\",\"rows\":\"expired\"}]");
        rt_assert_contains(out, "{\"rule\":\"account-anon\",\"how\":\"while_held\",\"rows\":\"held\"}");
        rt_assert_not_contains(out, "zelda");
        free(out);

        /* Everything ignored or covered: exit 0, a CI gate passes. */
        char *all = rt_asprintf("%s    - app.accounts\n    - app.notes\n    - app.big\n    - app.events.client_ip\n"
                                "    - '\"Odd Schema\".\"T\"'\n",
                                coverage_policy);
        char *pol2 = rt_policy(all);
        rt_expect(0, &out, NULL, "-p", pol2, "-d", ci, "coverage");
        rt_assert_contains(out, "0 of 2 columns that look personal are not covered by any rule");
        free(out);
        /* nothing was written: no run, no rule run */
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.runs");
        free(all);
        free(pol2);
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_coverage_privileges_and_notes(void **state) {
        (void) state;
        char *ci;
        PGconn *c = coverage_db("cov_priv", &ci);
        pgtest_exec(c, "DROP ROLE IF EXISTS cov_reader");
        pgtest_exec(c, "CREATE ROLE cov_reader LOGIN");
        pgtest_exec(c, "GRANT USAGE ON SCHEMA app TO cov_reader");
        pgtest_exec(c, "GRANT SELECT ON app.accounts TO cov_reader");
        pgtest_exec(c, "GRANT SELECT (id) ON app.notes TO cov_reader");
        char *ci_reader = rt_asprintf("%s user=cov_reader", ci);
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  gone:\n"
                              "    clause: \"x\"\n"
                              "    table: app.no_such_table\n"
                              "    column: at\n"
                              "    retain: 1 day\n"
                              "    action: delete\n"
                              "coverage:\n"
                              "  ignore: [ \"nowhere.*\", \"staging.*\", '\"Odd Schema\".*' ]\n");
        char *out;
        rt_expect(1, &out, NULL, "-p", pol, "-d", ci_reader, "coverage");
        /* the name still counts where the values cannot be read */
        rt_assert_contains(out, "uncovered app.accounts.email (text): its name contains \"email\"; 1 of 1 sampled");
        rt_assert_contains(out, "uncovered app.access_log.ip (inet)");
        rt_assert_not_contains(out, "app.notes.body");
        rt_assert_contains(out, "note: ignore pattern \"nowhere.*\"");
        rt_assert_contains(out, "matches no column of this database");
        rt_assert_contains(out, "note: rule \"gone\" names table app.no_such_table, which does not exist: it covers nothing");
        free(out);

        /* a database that is unreachable: 69 */
        char *bad = rt_asprintf("%s port=1", ci);
        rt_expect(69, NULL, NULL, "-p", pol, "-d", bad, "coverage");
        /* usage errors */
        rt_expect(64, NULL, NULL, "-p", pol, "-d", ci, "coverage", "extra");
        rt_expect(64, NULL, NULL, "-p", pol, "-d", ci, "coverage", "--rule", "gone");
        free(bad);
        free(pol);
        free(ci_reader);
        pgtest_exec(c, "DROP OWNED BY cov_reader");
        PQfinish(c);
        free(ci);
}

/* The patterns, straight against PostgreSQL's regular expressions. */
static void test_coverage_patterns(void **state) {
        (void) state;
        char *ci = pgtest_create_db(rt_pg, "cov_patterns");
        PGconn *c = pgtest_connect(ci);
        char *pol = rt_policy("version: 1\n");
        char *out;
        /* An empty database: nothing to cover, exit 0, no retention schema needed. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "coverage");
        rt_assert_contains(out, "0 of 0 columns that look personal are not covered by any rule (0 columns in 0 tables");
        free(out);

        static const struct {
                const char *value;
                bool email, ip;
        } cases[] = {
                { "a@b.co", true, false },
                { "Mail: First.Last+tag@sub.example.ORG.", true, false },
                { "user@localhost", false, false },
                { "@example.com", false, false },
                { "192.168.0.1", false, true },
                { "from 10.0.0.255:8080 today", false, true },
                { "version 1.2.3", false, false },
                { "1.2.3.4.5", false, false },
                { "999.1.1.1", false, false },
                { "::1", false, true },
                { "fe80::1ff:fe23:4567:890a", false, true },
                { "2001:0db8:0000:0000:0000:ff00:0042:8329", false, true },
                { "12:30:45", false, false },
                { "aa:bb:cc:dd:ee:ff", false, false },
                { "{\"ip\": \"2001:db8::7\"}", false, true },
                { "nothing", false, false },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *params[] = { cases[i].value, coverage_email_regex, coverage_ip_regex };
                PGresult *r = PQexecParams(c, "SELECT $1 ~* $2, $1 ~* $3", 3, NULL, params, NULL, NULL, 0);
                assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                if (strcmp(PQgetvalue(r, 0, 0), cases[i].email ? "t" : "f") != 0 ||
                    strcmp(PQgetvalue(r, 0, 1), cases[i].ip ? "t" : "f") != 0)
                        fail_msg("\"%s\": e-mail %s, IP %s; expected %d, %d", cases[i].value, PQgetvalue(r, 0, 0),
                                 PQgetvalue(r, 0, 1), cases[i].email, cases[i].ip);
                PQclear(r);
        }
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_coverage_report),
                cmocka_unit_test(test_coverage_privileges_and_notes),
                cmocka_unit_test(test_coverage_patterns),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
