/* test-checkd.c — `retentiond check -d` catches, before any run, what a run would fail on or do
 * against the policy's intent (issue 17), located at the offending key as FILE:LINE:COLUMN with
 * the line echoed, "did you mean" for catalog names, one summary line, exit 65, one JSON
 * document. A schema like pagila's (NOT NULL names, a last_update trigger, payments partitioned
 * with foreign keys declared per partition), checked as the least-privilege role of
 * sql/retentiond-role.sql. Exact lines throughout. */
#include "rtest.h"

static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;
        for (const char *p = haystack; p && (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void schema(PGconn *c) {
        pgtest_exec(c, "CREATE TABLE app.customer (customer_id int PRIMARY KEY, first_name text NOT NULL, email text,"
                       " ip text, last_update timestamptz NOT NULL DEFAULT now(), created_at timestamptz NOT NULL DEFAULT now())");
        pgtest_exec(c, "CREATE INDEX ON app.customer (last_update)");
        pgtest_exec(c, "CREATE INDEX ON app.customer (created_at)");
        pgtest_exec(c, "CREATE FUNCTION app.last_updated() RETURNS trigger LANGUAGE plpgsql AS $$"
                       " BEGIN NEW.last_update = CURRENT_TIMESTAMP; RETURN NEW; END $$");
        pgtest_exec(c, "CREATE TRIGGER last_updated BEFORE UPDATE ON app.customer FOR EACH ROW EXECUTE FUNCTION app.last_updated()");
        /* one address that is no address: truncate_ip's cast to inet fails on it */
        pgtest_exec(c, "INSERT INTO app.customer (customer_id, first_name, email, ip) VALUES"
                       " (1, 'Mary', 'mary@example.com', '192.0.2.7'), (2, 'Pat', 'pat@example.com', '')");
        pgtest_exec(c, "CREATE TABLE app.tickets (customer_id int, opened_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.tickets (customer_id)");
        /* payments by month, their foreign keys declared per partition (as pagila does); p3 lacks it */
        pgtest_exec(c, "CREATE TABLE app.payment (payment_id int, customer_id int NOT NULL, paid_at timestamptz NOT NULL)"
                       " PARTITION BY RANGE (paid_at)");
        pgtest_exec(c, "CREATE TABLE app.payment_p1 PARTITION OF app.payment FOR VALUES FROM ('2020-01-01') TO ('2020-02-01')");
        pgtest_exec(c, "CREATE TABLE app.payment_p2 PARTITION OF app.payment FOR VALUES FROM ('2020-02-01') TO ('2020-03-01')");
        pgtest_exec(c, "CREATE TABLE app.payment_p3 PARTITION OF app.payment FOR VALUES FROM ('2020-03-01') TO ('2020-04-01')");
        pgtest_exec(c, "ALTER TABLE app.payment_p1 ADD CONSTRAINT payment_p1_customer_fkey FOREIGN KEY (customer_id)"
                       " REFERENCES app.customer");
        pgtest_exec(c, "ALTER TABLE app.payment_p2 ADD CONSTRAINT payment_p2_customer_fkey FOREIGN KEY (customer_id)"
                       " REFERENCES app.customer");
        /* a log without a primary key */
        pgtest_exec(c, "CREATE TABLE app.events (at timestamptz, what text)");
        pgtest_exec(c, "CREATE INDEX ON app.events (at)");
}

static const char *POLICY = "version: 1\n"                                                  /* 1 */
                            "subjects:\n"                                                   /* 2 */
                            "  customer: { table: app.customer, key: customer_id }\n"       /* 3 */
                            "holds:\n"                                                      /* 4 */
                            "  open-tickets:\n"                                             /* 5 */
                            "    reason: \"open tickets\"\n"                                /* 6 */
                            "    subject: customer\n"                                       /* 7 */
                            "    table: app.tickets\n"                                      /* 8 */
                            "    subject_column: customr_id\n"                              /* 9 */
                            "    column: opened_at\n"                                       /* 10 */
                            "    retain: 1 year\n"                                          /* 11 */
                            "rules:\n"                                                      /* 12 */
                            "  customers:\n"                                                /* 13 */
                            "    clause: \"customers are anonymised 2 years after\"\n"      /* 14 */
                            "    table: app.customer\n"                                     /* 15 */
                            "    column: last_update\n"                                     /* 16 */
                            "    retain: 2 years\n"                                         /* 17 */
                            "    action: anonymise\n"                                       /* 18 */
                            "    subject: customer\n"                                       /* 19 */
                            "    holds: [open-tickets]\n"                                   /* 20 */
                            "    columns:\n"                                                /* 21 */
                            "      first_name: null\n"                                      /* 22 */
                            "      emial: hash\n"                                           /* 23 */
                            "      ip: truncate_ip\n"                                       /* 24 */
                            "  gone:\n"                                                     /* 25 */
                            "    clause: \"customers are deleted 10 years after they joined\"\n" /* 26 */
                            "    table: app.customer\n"                                     /* 27 */
                            "    column: created_at\n"                                      /* 28 */
                            "    retain: 10 years\n"                                        /* 29 */
                            "    action: delete\n"                                          /* 30 */
                            "  logs:\n"                                                     /* 31 */
                            "    clause: \"logs 7 days\"\n"                                 /* 32 */
                            "    table: app.evnts\n"                                        /* 33 */
                            "    column: at\n"                                              /* 34 */
                            "    retain: 7 days\n"                                          /* 35 */
                            "    action: delete\n"                                          /* 36 */
                            "  events:\n"                                                   /* 37 */
                            "    clause: \"events 30 days\"\n"                              /* 38 */
                            "    table: app.events\n"                                       /* 39 */
                            "    column: at\n"                                              /* 40 */
                            "    retain: 30 days\n"                                         /* 41 */
                            "    action: delete\n";                                         /* 42 */

static PGconn *setup(const char *name, char **ci, char **eci, const char *role) {
        PGconn *c = rt_db(name, ci);
        schema(c);
        *eci = pgtest_engine_role(*ci, role, "app.customer, app.events", "app.tickets, app.payment");
        return c;
}

static void test_catalog_mismatches(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = setup("checkd_mismatch", &ci, &eci, "checkd_role");
        char *pol = rt_policy(POLICY);
        char *out, *err;
        rt_expect(65, &out, &err, "-p", pol, "-d", eci, "check");

        /* a hold's typo at the hold's subject_column, with the column it meant */
        char *e = rt_asprintf("%s:9:21: error: hold \"open-tickets\": subject column \"customr_id\" does not exist in table"
                              " app.tickets\n"
                              "    9 |     subject_column: customr_id\n"
                              "      |                     ^\n"
                              "DETAIL:  In rule \"customers\", checked against the database.\n"
                              "HINT:  Did you mean \"customer_id\"?\n",
                              pol);
        rt_assert_contains(err, e);
        free(e);
        /* the age column a trigger sets on every UPDATE: refused at the rule's column */
        e = rt_asprintf("%s:16:13: error: trigger last_updated on app.customer sets the age column last_update on UPDATE (its"
                        " function last_updated assigns NEW.last_update): every row this rule anonymises gets a new age, so"
                        " its retention period starts again\n"
                        "   16 |     column: last_update\n"
                        "      |             ^\n"
                        "DETAIL:  In rule \"customers\", checked against the database.\n"
                        "HINT:  The age column must not be maintained by a trigger. Use one the application does not touch on"
                        " every UPDATE (created_at, closed_at) as the rule's column, or have the table's owner exempt this"
                        " role: CREATE OR REPLACE TRIGGER ... WHEN (current_user <> 'checkd_role'). The engine's role cannot"
                        " keep the trigger from firing: DISABLE TRIGGER needs the table's owner, session_replication_role a"
                        " superuser (and it would switch off foreign keys too).\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        /* null on a NOT NULL column: redact instead */
        e = rt_asprintf("%s:22:7: error: method null on column app.customer.first_name, which is NOT NULL\n"
                        "   22 |       first_name: null\n"
                        "      |       ^\n"
                        "DETAIL:  In rule \"customers\", checked against the database.\n"
                        "HINT:  Use { redact: \"...\" } to overwrite the value with a constant, or hash.\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        e = rt_asprintf("%s:23:7: error: column \"emial\" does not exist in table app.customer\n"
                        "   23 |       emial: hash\n"
                        "      |       ^\n"
                        "DETAIL:  In rule \"customers\", checked against the database.\n"
                        "HINT:  Did you mean \"email\"?\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        /* truncate_ip on text that holds '': the run would fail with "invalid input syntax for type inet" */
        e = rt_asprintf("%s:24:7: error: method truncate_ip on column app.customer.ip of type text: the column holds values"
                        " that are not IP addresses, and the rule would fail on them\n"
                        "   24 |       ip: truncate_ip\n"
                        "      |       ^\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        rt_assert_not_contains(err, "invalid input syntax"); /* nor the value PostgreSQL's message would show */
        /* payments in a partition without the foreign key do not protect the customer they refer to */
        e = rt_asprintf("%s:27:12: warning: partition app.payment_p3 of app.payment has no foreign key to app.customer like its"
                        " siblings (constraint payment_p1_customer_fkey of app.payment_p1): its rows do not keep the rows of"
                        " app.customer they refer to from being deleted\n"
                        "   27 |     table: app.customer\n"
                        "      |            ^\n"
                        "DETAIL:  In rule \"gone\", checked against the database.\n"
                        "HINT:  ALTER TABLE app.payment_p3 ADD FOREIGN KEY (customer_id) REFERENCES app.customer; or declare"
                        " the key on app.payment, which gives every partition its own.\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        e = rt_asprintf("%s:33:12: error: relation \"app.evnts\" does not exist\n"
                        "   33 |     table: app.evnts\n"
                        "      |            ^\n"
                        "DETAIL:  In rule \"logs\", checked against the database.\n"
                        "HINT:  Did you mean \"app.events\"?\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        e = rt_asprintf("%s:39:12: warning: table app.events has no primary key: explain cannot name its rows\n", pol);
        rt_assert_contains(err, e);
        free(e);
        assert_int_equal(count(err, "error:"), 6);
        /* and the references that keep customers (existing warnings) */
        assert_int_equal(count(err, "warning: rows of app.customer referenced from app.payment_p"), 2);
        assert_int_equal(count(err, "warning:"), 4);
        /* no "configuration OK" before the database's errors; one summary line, the last */
        rt_assert_not_contains(out, "OK");
        rt_assert_contains(out, "customers: anonymise ");
        size_t n = strlen(err);
        const char *last = "retentiond: the policy does not fit the database: 6 errors, 4 warnings\n";
        assert_true(n >= strlen(last));
        assert_string_equal(err + n - strlen(last), last);
        free(out);
        free(err);

        /* --json: exactly one document, the policy's and the database's findings in it */
        rt_expect(65, &out, NULL, "-p", pol, "-d", eci, "--json", "check");
        assert_int_equal(count(out, "{\"valid\":"), 1);
        assert_int_equal(count(out, "\n"), 1);
        assert_true(out[0] == '{' && out[strlen(out) - 2] == '}');
        rt_assert_contains(out, "{\"valid\":true,\"exit_code\":65,\"diagnostics\":[");
        rt_assert_contains(out, ",\"database\":{\"rules_checked\":4},\"errors\":6,\"warnings\":4}\n");
        rt_assert_contains(out, "\"line\":24,\"column\":7,\"severity\":\"error\",\"message\":\"method truncate_ip on column"
                                " app.customer.ip of type text");
        free(out);

        /* fixed: the trigger exempts the engine's role, p3 gets its key, the columns and the hold are
         * right; what is left is a warning, and the line says so */
        pgtest_exec(c, "CREATE OR REPLACE TRIGGER last_updated BEFORE UPDATE ON app.customer FOR EACH ROW"
                       " WHEN (current_user <> 'checkd_role') EXECUTE FUNCTION app.last_updated()");
        pgtest_exec(c, "ALTER TABLE app.payment_p3 ADD FOREIGN KEY (customer_id) REFERENCES app.customer");
        pgtest_exec(c, "UPDATE app.customer SET ip = NULL WHERE ip = ''");
        char *pol2 = rt_policy("version: 1\n"
                               "rules:\n"
                               "  customers:\n"
                               "    clause: \"customers are anonymised 2 years after\"\n"
                               "    table: app.customer\n"
                               "    column: last_update\n"
                               "    retain: 2 years\n"
                               "    action: anonymise\n"
                               "    columns: { first_name: { redact: \"-\" }, email: hash, ip: truncate_ip }\n"
                               "  events:\n"
                               "    clause: \"events 30 days\"\n"
                               "    table: app.events\n"
                               "    column: at\n"
                               "    retain: 30 days\n"
                               "    action: delete\n");
        rt_expect(0, &out, &err, "-p", pol2, "-d", eci, "check");
        assert_int_equal(count(err, "error:"), 0);
        assert_int_equal(count(err, "warning:"), 1);
        rt_assert_contains(out, "database OK: 2 rules checked against the catalog: 0 errors, 1 warning\n");
        rt_assert_not_contains(out, "configuration OK");
        free(out);
        free(err);
        /* a trigger on UPDATE OF a column the rule does not anonymise does not fire on its UPDATE */
        pgtest_exec(c, "CREATE OR REPLACE TRIGGER last_updated BEFORE UPDATE OF created_at ON app.customer FOR EACH ROW"
                       " EXECUTE FUNCTION app.last_updated()");
        rt_expect(0, NULL, &err, "-p", pol2, "-d", eci, "check");
        rt_assert_not_contains(err, "trigger");
        free(err);
        /* one with a WHEN that does not name the role may or may not: a warning */
        pgtest_exec(c, "CREATE OR REPLACE TRIGGER last_updated BEFORE UPDATE ON app.customer FOR EACH ROW"
                       " WHEN (OLD.email IS DISTINCT FROM NEW.email) EXECUTE FUNCTION app.last_updated()");
        rt_expect(0, NULL, &err, "-p", pol2, "-d", eci, "check");
        e = rt_asprintf("%s:6:13: warning: trigger last_updated on app.customer sets the age column last_update on UPDATE when"
                        " its WHEN condition holds (its function last_updated assigns NEW.last_update): unless the condition"
                        " excludes this role, every row this rule anonymises gets a new age, so its retention period starts"
                        " again\n",
                        pol2);
        rt_assert_contains(err, e);
        free(e);
        free(err);
        /* the trigger of another rule's age column: refused at the anonymising rule */
        pgtest_exec(c, "CREATE OR REPLACE FUNCTION app.last_updated() RETURNS trigger LANGUAGE plpgsql AS $$"
                       " BEGIN NEW.\"created_at\" := now(); RETURN NEW; END $$");
        pgtest_exec(c, "CREATE OR REPLACE TRIGGER last_updated BEFORE UPDATE ON app.customer FOR EACH ROW"
                       " EXECUTE FUNCTION app.last_updated()");
        rt_expect(65, NULL, &err, "-p", pol, "-d", eci, "check");
        e = rt_asprintf("%s:13:3: error: trigger last_updated on app.customer sets created_at, the age column of rule \"gone\","
                        " on UPDATE (its function last_updated assigns NEW.created_at): every row this rule anonymises gets a"
                        " new age under rule \"gone\", so its retention period there starts again\n",
                        pol);
        rt_assert_contains(err, e);
        free(e);
        free(err);

        /* a hold two rules use: its typo once, at the hold */
        char *pol3 = rt_policy("version: 1\n"
                               "subjects:\n"
                               "  customer: { table: app.customer, key: customer_id }\n"
                               "holds:\n"
                               "  open-tickets: { reason: r, subject: customer, table: app.tickets, subject_column: customer_id,"
                               " column: opend_at, retain: 1 year }\n"
                               "rules:\n"
                               "  a: { clause: c, table: app.customer, column: created_at, retain: 10 years, action: delete,"
                               " subject: customer, holds: [open-tickets] }\n"
                               "  b: { clause: c, table: app.customer, column: created_at, retain: 11 years, action: delete,"
                               " subject: customer, holds: [open-tickets] }\n");
        rt_expect(65, NULL, &err, "-p", pol3, "-d", eci, "check");
        e = rt_asprintf("%s:5:106: error: hold \"open-tickets\": column \"opend_at\" of app.tickets must exist and be"
                        " timestamptz, timestamp or date\n",
                        pol3);
        rt_assert_contains(err, e);
        free(e);
        rt_assert_contains(err, "HINT:  Did you mean \"opened_at\"?\n");
        assert_int_equal(count(err, "error:"), 1);
        free(err);
        free(pol3);

        free(pol2);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* Methods against what the catalog says beyond the type: a unique index, a generated column, a
 * length limit, NOT NULL with email_domain, a type no method but null takes. */
static void test_methods_and_columns(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = rt_db("checkd_methods", &ci);
        pgtest_exec(c, "CREATE TABLE app.people (id int PRIMARY KEY, code text UNIQUE, label text GENERATED ALWAYS AS"
                       " (code || '!') STORED, short varchar(4), mail text NOT NULL, tag integer, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.people (at)");
        pgtest_exec(c, "INSERT INTO app.people (id, code, short, mail, tag, at) VALUES (1, 'a', 'ab', 'a@example.com', 1, now()),"
                       " (2, 'b', 'cd', 'nobody', 2, now()), (3, 'c', 'ef', 'none', 3, now())");
        eci = pgtest_engine_role(ci, "checkd_role2", "app.people", NULL);
        char *pol = rt_policy("version: 1\n"                          /* 1 */
                              "rules:\n"                              /* 2 */
                              "  people:\n"                           /* 3 */
                              "    clause: \"people after a year\"\n" /* 4 */
                              "    table: app.people\n"               /* 5 */
                              "    column: at\n"                      /* 6 */
                              "    retain: 1 year\n"                  /* 7 */
                              "    action: anonymise\n"               /* 8 */
                              "    columns:\n"                        /* 9 */
                              "      code: { redact: \"-\" }\n"       /* 10 */
                              "      label: { redact: \"-\" }\n"      /* 11 */
                              "      short: { redact: \"[gone]\" }\n" /* 12 */
                              "      mail: email_domain\n"            /* 13 */
                              "      tag: hash\n");                   /* 14 */
        char *out, *err;
        rt_expect(65, &out, &err, "-p", pol, "-d", eci, "check");
        const char *want[] = {
                ":10:7: error: column app.people.code has a unique index: redact gives every row the same value, and the second"
                " row it anonymises fails\n",
                ":11:7: error: column app.people.label is generated: it cannot be anonymised\n",
                ":12:7: error: method redact writes 6 characters into column app.people.short of type character varying(4)\n",
                ":13:7: error: method email_domain on column app.people.mail, which is NOT NULL: 2 rows hold a value without @,"
                " which it makes NULL\n",
                ":14:7: error: method hash does not fit column app.people.tag of type integer\n",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                char *e = rt_asprintf("%s%s", pol, want[i]);
                rt_assert_contains(err, e);
                free(e);
        }
        rt_assert_contains(err, "HINT:  Write a constant of at most 4 characters.\n");
        rt_assert_contains(err, "HINT:  hash takes text (text, varchar, char, citext); for a column of type integer, use null.\n");
        assert_int_equal(count(err, "error:"), 5);
        rt_assert_contains(err, "retentiond: the policy does not fit the database: 5 errors, 0 warnings\n");
        free(out);
        free(err);

        /* -q: the rules' lines go, the summary stays */
        char *ok = rt_policy("version: 1\nrules:\n  people:\n    clause: c\n    table: app.people\n    column: at\n"
                             "    retain: 1 year\n    action: anonymise\n    columns: { code: hash, short: null }\n");
        rt_expect(0, &out, &err, "-p", ok, "-d", eci, "-q", "check");
        assert_string_equal(out, "database OK: 1 rule checked against the catalog: 0 errors, 0 warnings\n");
        assert_string_equal(err, "");
        free(out);
        free(err);
        free(ok);

        /* a retain the timestamps cannot reach: at load, before the database */
        char *far = rt_policy("version: 1\nrules:\n  people:\n    clause: c\n    table: app.people\n    column: at\n"
                              "    retain: 9999 years\n    action: delete\n");
        rt_expect(65, &out, &err, "-p", far, "-d", eci, "check");
        char *e = rt_asprintf("%s:7:13: error: retain \"9999 years\" in rule \"people\" reaches back before 4713 BC, the earliest"
                              " time PostgreSQL can represent\n",
                              far);
        rt_assert_contains(err, e);
        rt_assert_contains(err, "retentiond: policy is not valid: 1 error, 0 warnings\n");
        free(e);
        free(out);
        free(err);
        free(far);
        /* and PostgreSQL agrees: the same cutoff is out of its range */
        PGresult *res = PQexec(c, "SELECT now() - interval '9999 years'");
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        rt_assert_contains(PQresultErrorMessage(res), "timestamp out of range");
        PQclear(res);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* ---- issue 17, item 4: the outputs agree, and -q is honoured ---------------------------------- */

static void test_output_consistency(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("checkd_output", &ci);
        pgtest_exec(c, "CREATE TABLE app.acc (id int PRIMARY KEY, at timestamptz NOT NULL, email text)");
        pgtest_exec(c, "CREATE INDEX ON app.acc (at)");
        pgtest_exec(c, "INSERT INTO app.acc SELECT i, CASE WHEN i <= 10 THEN now() - interval '30 days' ELSE now() END,"
                       " 'a' || i || '@example.com' FROM generate_series(1, 12) i");
        pgtest_exec(c, "INSERT INTO retention.holds (subject, subject_key, reason, placed_by)"
                       " SELECT 'acc', i::text, 'case 1', 'dpo' FROM generate_series(1, 3) i");
        /* events by day: the days 2..5 back are due whole (kept 1 day from the end of their day) */
        pgtest_exec(c, "CREATE TABLE app.ev (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)");
        pgtest_exec(c, "DO $$ BEGIN FOR k IN 0..5 LOOP EXECUTE format('CREATE TABLE app.ev_d%%s PARTITION OF app.ev"
                       " FOR VALUES FROM (%%L) TO (%%L)', k, current_date - k, current_date - k + 1); END LOOP; END $$");
        pgtest_exec(c, "CREATE INDEX ON app.ev (at)");
        pgtest_exec(c, "INSERT INTO app.ev SELECT k * 100 + i, (current_date - k) + time '12:00'"
                       " FROM generate_series(0, 5) k, generate_series(1, 10) i");
        char *pol = rt_policy("version: 1\n"
                              "subjects:\n"
                              "  acc: { table: app.acc, key: id }\n"
                              "holds:\n"
                              "  legal: { reason: \"operator holds\", subject: acc, registry: true }\n"
                              "rules:\n"
                              "  acc:\n"
                              "    clause: \"accounts 7 days\"\n"
                              "    table: app.acc\n"
                              "    subject: acc\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    holds: [legal]\n"
                              "  ev:\n"
                              "    clause: \"events 1 day from the end of their day\"\n"
                              "    table: app.ev\n"
                              "    column: at\n"
                              "    retain: 1 day\n"
                              "    from: end_of_day\n"
                              "    action: delete\n");
        char *out, *err;
        /* audit: "due now" in the text and rows_due in --json are the same number: 10 past the
         * cutoff, 3 of them held, 7 due */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--rule", "acc", "audit");
        rt_assert_contains(out, "  due now:      7\n  held:         3\n");
        rt_assert_contains(out, "\ntotal: 7 rows due, 3 held, 0 overdue\n");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--rule", "acc", "--json", "audit");
        rt_assert_contains(out, "\"rows_due\":7,\"rows_actionable\":7,\"rows_past_cutoff\":10,\"rows_held\":3,");
        free(out);
        /* -q: nothing but errors */
        rt_expect(0, &out, &err, "-p", pol, "-d", ci, "-q", "audit");
        assert_string_equal(out, "");
        free(out);
        free(err);
        rt_expect(0, &out, &err, "-p", pol, "-d", ci, "-q", "--rule", "acc", "run");
        assert_string_equal(out, "");
        free(out);
        free(err);
        rt_assert_sql(c, "5", "SELECT count(*) FROM app.acc");
        /* run's table: the partitions it dropped */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "RULE                     ACTION       DELETED ANONYMISED PARTITIONS     HELD  SKIPPED  BATCHES"
                                "       TIME  OUTCOME\n");
        char *line = rt_asprintf("\n%-24s %-9s %10d %10d %10d %8d %8d ", "ev", "delete", 40, 0, 4, 0, 0);
        rt_assert_contains(out, line);
        free(line);
        free(out);
        rt_assert_sql(c, "ev_d0,ev_d1", "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i"
                                        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'app.ev'::regclass");
        /* hold add --json: the key as stored and the end of the hold, as the text says them */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "hold", "add", "acc", "042", "--reason", "case 2", "--until",
                  "2030-01-01 00:00:00+00");
        rt_assert_contains(out, "{\"id\":4,\"subject\":\"acc\",\"key\":\"42\",\"until\":\"2030-01-01 00:00:00+00\",\"placed_at\":\"");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "hold", "add", "acc", "5", "--reason", "case 3");
        rt_assert_contains(out, "{\"id\":5,\"subject\":\"acc\",\"key\":\"5\",\"until\":null,\"placed_at\":\"");
        free(out);
        /* coverage -q: the uncovered columns only, no summary */
        pgtest_exec(c, "CREATE TABLE app.contacts (id int PRIMARY KEY, email text)");
        rt_expect(1, &out, &err, "-p", pol, "-d", ci, "-q", "coverage");
        assert_true(strncmp(out, "uncovered app.contacts.email (text): ", 37) == 0);
        rt_assert_not_contains(out, "covered  ");
        rt_assert_not_contains(out, "look personal");
        free(out);
        free(err);
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_catalog_mismatches),
                cmocka_unit_test(test_methods_and_columns),
                cmocka_unit_test(test_output_consistency),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
