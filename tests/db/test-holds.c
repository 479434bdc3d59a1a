/* test-holds.c — every kind of hold against a real PostgreSQL: registry holds across tables
 * through a subject, with an expiry in the past and in the future, released; derived (tax) holds
 * with young, old and NULL evidence, lapsing; a cascade into held rows refused; RESTRICT and
 * NO ACTION references isolated and reported, also below a cascade; `while_held` anonymising held
 * rows with exactly pgcrypto's HMAC, and the normal action once the hold lapses. */
#include "rtest.h"

static const char *ACCOUNTS_POLICY =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
        "  tax:\n"
        "    reason: \"invoices are kept 10 years\"\n"
        "    subject: account\n"
        "    table: app.invoices\n"
        "    subject_column: account_id\n"
        "    column: issued_at\n"
        "    retain: 10 years\n"
        "rules:\n"
        "  accounts:\n"
        "    clause: \"deleted once deletion is requested\"\n"
        "    table: app.accounts\n"
        "    subject: account\n"
        "    column: deletion_requested_at\n"
        "    retain: 0 days\n"
        "    holds: [legal, tax]\n"
        "    action: delete\n"
        "    while_held:\n"
        "      action: anonymise\n"
        "      columns: { email: hash, name: null }\n"
        "  tickets:\n"
        "    clause: \"tickets kept 1 year\"\n"
        "    table: app.tickets\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: created_at\n"
        "    retain: 1 year\n"
        "    holds: [legal]\n"
        "    action: delete\n"
        "  chats:\n"
        "    clause: \"chats kept 1 year\"\n"
        "    table: app.chats\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: started_at\n"
        "    retain: 1 year\n"
        "    holds: [legal]\n"
        "    action: delete\n";

/* accounts 1..n, all due (deletion requested yesterday); for each one old (2 years) and one young
 * (1 month) ticket and chat with ids 10*a+1 (old) and 10*a+2 (young). */
static PGconn *accounts_db(const char *name, char **ci, int n) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE EXTENSION pgcrypto");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, email text, name text, deletion_requested_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.accounts (deletion_requested_at)");
        pgtest_exec(c, "CREATE TABLE app.invoices (id serial PRIMARY KEY, account_id int, issued_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.invoices (account_id)");
        const char *child[] = { "tickets", "chats" };
        const char *col[] = { "created_at", "started_at" };
        for (size_t i = 0; i < 2; i++) {
                pgtest_exec(c, "CREATE TABLE app.%s (id int PRIMARY KEY, account_id int, %s timestamptz)", child[i], col[i]);
                pgtest_exec(c, "CREATE INDEX ON app.%s (%s)", child[i], col[i]);
                pgtest_exec(c, "CREATE INDEX ON app.%s (account_id)", child[i]);
                pgtest_exec(c, "INSERT INTO app.%s SELECT 10 * a + 1, a, now() - interval '2 years' FROM generate_series(1, %d) a",
                            child[i], n);
                pgtest_exec(c, "INSERT INTO app.%s SELECT 10 * a + 2, a, now() - interval '1 month' FROM generate_series(1, %d) a",
                            child[i], n);
        }
        pgtest_exec(c, "INSERT INTO app.accounts SELECT a, 'user' || a || '@example.com', 'Name ' || a,"
                       " now() - interval '1 day' FROM generate_series(1, %d) a",
                    n);
        /* one account that asked for nothing */
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (%d, 'keep@example.com', 'Keep', NULL)", n + 1);
        return c;
}

static void expected_hashes(PGconn *c, const char *hex) {
        pgtest_exec(c, "CREATE TABLE app.expected AS SELECT id, 'hmac-sha256:' || encode(hmac(convert_to(email, 'UTF8'),"
                       " decode('%s', 'hex'), 'sha256'), 'hex') AS h FROM app.accounts",
                    hex);
}

static void test_registry_holds(void **state) {
        (void) state;
        char *ci, *hex, *out, *err;
        PGconn *c = accounts_db("holds_registry", &ci, 6);
        char *key = rt_key_file(&hex);
        expected_hashes(c, hex);
        char *pol = rt_policy(ACCOUNTS_POLICY);

        /* 1: until released; 2: expired in the past; 3: expires in the future; 4: released at once */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "1", "--reason", "litigation 1", "--by", "tester");
        rt_assert_contains(out, "hold 1 placed on account 1");
        free(out);
        rt_expect(0, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "2", "--reason", "old case", "--until",
                  "2000-01-01 00:00:00+00");
        rt_assert_contains(err, "already lapsed");
        free(err);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "003", "--reason", "regulator", "--until",
                  "2999-01-01 00:00:00+00");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "4", "--reason", "mistake");
        rt_expect(0, &out, NULL, "-d", ci, "hold", "release", "4", "--by", "tester");
        rt_assert_contains(out, "hold 4 released by tester");
        free(out);
        /* the key is normalised through the key column's type: "003" is account 3 */
        rt_assert_sql(c, "1,2,3,4", "SELECT string_agg(subject_key, ',' ORDER BY id) FROM retention.holds");
        rt_expect(0, &out, NULL, "-d", ci, "hold", "list", "--all", "--json");
        rt_assert_contains(out, "\"id\":1,\"subject\":\"account\",\"key\":\"1\",\"reason\":\"litigation 1\",\"placed_by\":\"tester\"");
        rt_assert_contains(out, "\"state\":\"expired\"");
        rt_assert_contains(out, "\"released_by\":\"tester\",\"state\":\"released\"");
        free(out);
        rt_expect(0, &out, NULL, "-d", ci, "hold", "list");
        rt_assert_contains(out, "litigation 1");
        rt_assert_contains(out, "regulator");
        rt_assert_not_contains(out, "old case");
        rt_assert_not_contains(out, "mistake");
        free(out);

        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--hash-key-file", key, "run");
        rt_assert_contains(out, "held by legal: 2");
        free(out);
        /* accounts 1 and 3 are kept, anonymised while held; 2, 4, 5, 6 are gone; 7 never asked */
        rt_assert_sql(c, "1,3,7", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        rt_assert_sql(c, "1,3", "SELECT string_agg(a.id::text, ',' ORDER BY a.id) FROM app.accounts a JOIN app.expected e"
                                " USING (id) WHERE a.email = e.h AND a.email ~ '^hmac-sha256:[0-9a-f]{64}$' AND a.name IS NULL");
        rt_assert_sql(c, "keep@example.com/Keep", "SELECT email || '/' || name FROM app.accounts WHERE id = 7");
        /* the subject's rows in the other tables are held too; the young ones were never due */
        const char *child[] = { "tickets", "chats" };
        for (size_t i = 0; i < 2; i++) {
                rt_assert_sql(c, "11,12,22,31,32,42,52,62", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.%s", child[i]);
                rt_assert_sql(c, "4/2/success", "SELECT rows_deleted || '/' || rows_held || '/' || outcome FROM retention.rule_runs"
                                                " WHERE rule = '%s'", child[i]);
        }
        rt_assert_sql(c, "4/2/2", "SELECT rows_deleted || '/' || rows_anonymised || '/' || rows_held FROM retention.rule_runs"
                                  " WHERE rule = 'accounts'");
        rt_assert_sql(c, "accounts:legal=2,chats:legal=2,tickets:legal=2",
                      "SELECT string_agg(r.rule || ':' || h.hold || '=' || h.rows, ',' ORDER BY r.rule, h.hold)"
                      " FROM retention.rule_run_holds h JOIN retention.rule_runs r ON r.id = h.rule_run_id");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.runs");

        /* Release hold 1: the next run deletes account 1 and its due rows elsewhere. */
        rt_expect(0, NULL, NULL, "-d", ci, "hold", "release", "1", "--by", "tester");
        rt_expect(1, NULL, &err, "-d", ci, "hold", "release", "1", "--by", "tester");
        rt_assert_contains(err, "hold 1 was already released");
        free(err);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--hash-key-file", key, "run");
        free(out);
        rt_assert_sql(c, "3,7", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        for (size_t i = 0; i < 2; i++)
                rt_assert_sql(c, "12,22,31,32,42,52,62", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.%s", child[i]);
        rt_assert_sql(c, "accounts=1/0/1,chats=1/0/1,tickets=1/0/1",
                      "SELECT string_agg(rule || '=' || rows_deleted || '/' || rows_anonymised || '/' || rows_held, ','"
                      " ORDER BY rule) FROM retention.rule_runs WHERE run_id = 2");
        rt_assert_sql(c, "placed,placed,placed,placed,released,released",
                      "SELECT string_agg(event, ',' ORDER BY event) FROM retention.hold_events");

        free(pol);
        free(key);
        free(hex);
        PQfinish(c);
        free(ci);
}

static void test_derived_hold(void **state) {
        (void) state;
        char *ci, *hex, *out;
        PGconn *c = accounts_db("holds_derived", &ci, 6);
        char *key = rt_key_file(&hex);
        expected_hashes(c, hex);
        /* 1: young invoice (held); 2: invoice 11 years old (not held); 3: invoice without a date
         * (held: NULL evidence never expires); 4: none; 5: an old and a young one (held);
         * 6: 10 years less a day (held) */
        pgtest_exec(c, "INSERT INTO app.invoices (account_id, issued_at) VALUES (1, now() - interval '1 year'),"
                       " (2, now() - interval '11 years'), (3, NULL), (5, now() - interval '12 years'),"
                       " (5, now() - interval '2 years'), (6, now() - interval '10 years' + interval '1 day')");
        char *pol = rt_policy(ACCOUNTS_POLICY);

        /* the audit predicts it */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "audit", "--rule", "accounts");
        rt_assert_contains(out, "due now:      2");
        char line[64];
        snprintf(line, sizeof(line), "    by %-20s %d\n", "tax", 4);
        rt_assert_contains(out, line);
        rt_assert_contains(out, "held, to anonymise while held: 4");
        free(out);

        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--hash-key-file", key, "run", "--rule", "accounts");
        rt_assert_contains(out, "held by tax: 4");
        free(out);
        rt_assert_sql(c, "1,3,5,6,7", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        rt_assert_sql(c, "1,3,5,6", "SELECT string_agg(a.id::text, ',' ORDER BY a.id) FROM app.accounts a JOIN app.expected e"
                                    " USING (id) WHERE a.email = e.h AND a.name IS NULL");
        rt_assert_sql(c, "2/4/4", "SELECT rows_deleted || '/' || rows_anonymised || '/' || rows_held FROM retention.rule_runs");
        rt_assert_sql(c, "tax=4", "SELECT string_agg(hold || '=' || rows, ',') FROM retention.rule_run_holds");

        /* The evidence ages: account 1's invoice is now 11 years old. The hold lapses and the next
         * run applies the normal action. */
        pgtest_exec(c, "UPDATE app.invoices SET issued_at = now() - interval '11 years' WHERE account_id = 1");
        pgtest_exec(c, "CREATE TABLE app.accounts_before AS SELECT * FROM app.accounts");
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--hash-key-file", key, "run", "--rule", "accounts");
        rt_assert_contains(out, "total: 1 deleted, 0 anonymised, 3 held, 0 skipped");
        free(out);
        rt_assert_sql(c, "3,5,6,7", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        /* nothing else changed: the held rows were already anonymised */
        rt_assert_sql(c, "0", "SELECT count(*) FROM (SELECT * FROM app.accounts EXCEPT SELECT * FROM app.accounts_before) x");
        rt_assert_sql(c, "1/0/3", "SELECT rows_deleted || '/' || rows_anonymised || '/' || rows_held FROM retention.rule_runs"
                                  " WHERE run_id = 2");
        free(pol);
        free(key);
        free(hex);
        PQfinish(c);
        free(ci);
}

/* A delete whose ON DELETE CASCADE would reach rows that a hold protects is a held delete. */
static void test_cascade_into_held_rows(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("holds_cascade", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (7), (8)");
        pgtest_exec(c, "CREATE TABLE app.sessions (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.sessions (at)");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, session_id int REFERENCES app.sessions ON DELETE CASCADE,"
                       " account_id int, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.events (at)");
        pgtest_exec(c, "CREATE INDEX ON app.events (session_id)");
        pgtest_exec(c, "INSERT INTO app.sessions SELECT i, now() - interval '30 days' FROM generate_series(1, 4) i");
        /* session 1: a young event of held account 7; session 2: an event of account 8;
         * session 3: none; session 4: an old event of held account 7 */
        pgtest_exec(c, "INSERT INTO app.events VALUES (101, 1, 7, now()), (201, 2, 8, now()), (401, 4, 7, now() - interval '30 days')");
        char *pol = rt_policy("version: 1\n"
                              "subjects:\n"
                              "  account: { table: app.accounts, key: id }\n"
                              "holds:\n"
                              "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
                              "rules:\n"
                              "  sessions:\n"
                              "    clause: \"sessions kept 7 days\"\n"
                              "    table: app.sessions\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "  events:\n"
                              "    clause: \"events kept 7 days\"\n"
                              "    table: app.events\n"
                              "    subject: account\n"
                              "    subject_column: account_id\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    holds: [legal]\n"
                              "    action: delete\n");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "7", "--reason", "case 7");
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "held by cascade-into-held-rows: 2");
        rt_assert_contains(out, "held by legal: 1");
        free(out);
        rt_assert_sql(c, "1,4", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.sessions");
        rt_assert_sql(c, "101,401", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events");
        rt_assert_sql(c, "sessions=2/2", "SELECT rule || '=' || rows_deleted || '/' || rows_held FROM retention.rule_runs"
                                         " WHERE rule = 'sessions'");
        rt_assert_sql(c, "events:legal=1,sessions:cascade-into-held-rows=2",
                      "SELECT string_agg(r.rule || ':' || h.hold || '=' || h.rows, ',' ORDER BY r.rule, h.hold)"
                      " FROM retention.rule_run_holds h JOIN retention.rule_runs r ON r.id = h.rule_run_id");

        /* released: both sessions go, their events with them */
        rt_expect(0, NULL, NULL, "-d", ci, "hold", "release", "1");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.sessions");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.events");
        free(pol);
        PQfinish(c);
        free(ci);
}

/* The same, with sessions partitioned and the events' key declared to refer to one partition
 * alone (no key on the partitioned table): the catalog lists it on the table, so the session of
 * a held event stays and the cascade into the other is counted. As the least-privilege role. */
static void test_cascade_from_partition_key(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("holds_cascade_part", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (7), (8)");
        pgtest_exec(c, "CREATE TABLE app.sessions (id int, at timestamptz NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id)");
        pgtest_exec(c, "CREATE TABLE app.sessions_lo PARTITION OF app.sessions FOR VALUES FROM (MINVALUE) TO (100)");
        pgtest_exec(c, "CREATE TABLE app.sessions_hi PARTITION OF app.sessions FOR VALUES FROM (100) TO (MAXVALUE)");
        pgtest_exec(c, "CREATE INDEX ON app.sessions (at)");
        pgtest_exec(c, "CREATE TABLE app.events (id int PRIMARY KEY, session_id int REFERENCES app.sessions_lo ON DELETE CASCADE,"
                       " account_id int, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.events (at)");
        pgtest_exec(c, "CREATE INDEX ON app.events (session_id)");
        pgtest_exec(c, "INSERT INTO app.sessions SELECT i, now() - interval '30 days' FROM generate_series(1, 4) i");
        pgtest_exec(c, "INSERT INTO app.sessions VALUES (150, now() - interval '30 days')");
        /* session 1: a young event of held account 7; session 2: a young event of account 8;
         * sessions 3 and 150: none */
        pgtest_exec(c, "INSERT INTO app.events VALUES (101, 1, 7, now()), (201, 2, 8, now())");
        pgtest_exec(c, "ANALYZE");
        char *eci = pgtest_engine_role(ci, "cascade_part_engine", "app.sessions, app.events", "app.accounts");
        char *pol = rt_policy("version: 1\n"
                              "subjects:\n"
                              "  account: { table: app.accounts, key: id }\n"
                              "holds:\n"
                              "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
                              "rules:\n"
                              "  sessions:\n"
                              "    clause: \"sessions kept 7 days\"\n"
                              "    table: app.sessions\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    max_fraction: 1\n"
                              "  events:\n"
                              "    clause: \"events kept 7 days\"\n"
                              "    table: app.events\n"
                              "    subject: account\n"
                              "    subject_column: account_id\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    holds: [legal]\n"
                              "    action: delete\n");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "7", "--reason", "case 7");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run", "--rule", "sessions");
        rt_assert_contains(out, "\"rows_deleted\":4,\"rows_anonymised\":0,\"rows_held\":1,");
        rt_assert_contains(out, "\"cascades\":[{\"table\":\"app.events\",\"rows_deleted\":1,");
        free(out);
        rt_assert_sql(c, "1", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.sessions");
        rt_assert_sql(c, "101", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

static const char *PAYMENTS_POLICY = "version: 1\n"
                                     "rules:\n"
                                     "  accounts:\n"
                                     "    clause: \"deleted once deletion is requested\"\n"
                                     "    table: app.accounts\n"
                                     "    column: deletion_requested_at\n"
                                     "    retain: 0 days\n"
                                     "    action: delete\n"
                                     "    batch_size: 2\n";

/* RESTRICT and NO ACTION references: the referenced rows are skipped and reported, the rest of
 * every batch is deleted. */
static void test_restrict_isolated(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("holds_restrict", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, deletion_requested_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.accounts (deletion_requested_at)");
        pgtest_exec(c, "CREATE TABLE app.payments (id int PRIMARY KEY, account_id int REFERENCES app.accounts ON DELETE RESTRICT)");
        pgtest_exec(c, "CREATE TABLE app.refunds (id int PRIMARY KEY, account_id int REFERENCES app.accounts)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT i, now() - interval '1 day' - i * interval '1 minute'"
                       " FROM generate_series(21, 28) i");
        pgtest_exec(c, "INSERT INTO app.payments VALUES (1, 22), (2, 24), (3, 24)");
        pgtest_exec(c, "INSERT INTO app.refunds VALUES (1, 27)");
        char *pol = rt_policy(PAYMENTS_POLICY);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "audit");
        rt_assert_contains(out, "skipped (still referenced): 3");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "skipped, still referenced from app.payments: 2");
        rt_assert_contains(out, "skipped, still referenced from app.refunds: 1");
        rt_assert_contains(out, "total: 5 deleted, 0 anonymised, 0 held, 3 skipped");
        free(out);
        rt_assert_sql(c, "22,24,27", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        rt_assert_sql(c, "5/3/3/0/success", "SELECT rows_deleted || '/' || rows_skipped || '/' || rows_skipped_fk || '/'"
                                            " || rows_skipped_locked || '/' || outcome FROM retention.rule_runs");
        rt_assert_sql(c, "app.payments=2,app.refunds=1",
                      "SELECT string_agg(referencing_table || '=' || rows, ',' ORDER BY referencing_table) FROM retention.rule_run_fk");
        rt_assert_sql(c, "3", "SELECT count(*) FROM app.payments");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.runs");
        free(pol);
        PQfinish(c);
        free(ci);
}

/* A RESTRICT reference below an ON DELETE CASCADE refuses the batch's DELETE: the batch is
 * redone row by row, every row that can go goes, and the refused ones are reported. */
static void test_restrict_below_cascade(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("holds_restrict_deep", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, deletion_requested_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.accounts (deletion_requested_at)");
        pgtest_exec(c, "CREATE TABLE app.orders (id int PRIMARY KEY, account_id int REFERENCES app.accounts ON DELETE CASCADE)");
        pgtest_exec(c, "CREATE TABLE app.shipments (id int PRIMARY KEY, order_id int REFERENCES app.orders ON DELETE RESTRICT)");
        /* accounts 1..5 due, in that age order; each has an order; account 5's order (the last
         * row of the last batch) and account 2's order are shipped */
        pgtest_exec(c, "INSERT INTO app.accounts SELECT i, now() - interval '1 day' + i * interval '1 minute'"
                       " FROM generate_series(1, 5) i");
        pgtest_exec(c, "INSERT INTO app.orders SELECT 100 + i, i FROM generate_series(1, 5) i");
        pgtest_exec(c, "INSERT INTO app.shipments VALUES (1, 102), (2, 105)");
        char *pol = rt_policy(PAYMENTS_POLICY);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "total: 3 deleted");
        free(out);
        rt_assert_sql(c, "2,5", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        rt_assert_sql(c, "102,105", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.orders");
        rt_assert_sql(c, "3/2/success", "SELECT rows_deleted || '/' || rows_skipped || '/' || outcome FROM retention.rule_runs");
        /* a handful of batches, not a loop */
        rt_assert_sql(c, "t", "SELECT batches < 20 FROM retention.rule_runs");
        /* reported as refused by a foreign key, not as locked rows */
        rt_assert_sql(c, "2/0", "SELECT rows_skipped_fk || '/' || rows_skipped_locked FROM retention.rule_runs");
        free(pol);
        PQfinish(c);
        free(ci);
}

/* Hold keys are canonical: "042" and " 43" are accounts 42 and 43 whether or not app.accounts has
 * their row, and their rows in the other tables survive; a key the type rejects is refused; a
 * non-canonical key written by SQL still protects its subject at run time, a key the type
 * rejects breaks nothing, and `migrate -p` reports both. */
static void test_canonical_keys(void **state) {
        (void) state;
        char *ci, *out, *err;
        PGconn *c = accounts_db("holds_keys", &ci, 2);
        /* accounts 42..45 have no row in app.accounts; each has an old (due) and a young ticket
         * and chat: 100 * a + 1 and 100 * a + 2 */
        const char *child[] = { "tickets", "chats" };
        const char *col[] = { "created_at", "started_at" };
        for (size_t i = 0; i < 2; i++)
                pgtest_exec(c, "INSERT INTO app.%s (id, account_id, %s) SELECT 100 * a + o, a, now() - CASE o WHEN 1"
                               " THEN interval '2 years' ELSE interval '1 month' END FROM generate_series(42, 45) a,"
                               " generate_series(1, 2) o",
                            child[i], col[i]);
        char *pol = rt_policy(ACCOUNTS_POLICY);

        rt_expect(0, &out, &err, "-p", pol, "-d", ci, "hold", "add", "account", "042", "--reason", "case 42");
        assert_string_equal(out, "hold 1 placed on account 42\n");
        rt_assert_contains(err, "no row of app.accounts has id = 42; the hold still protects this subject's rows in other tables");
        free(out);
        free(err);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "hold", "add", "account", " 43", "--reason", "case 43");
        assert_string_equal(out, "hold 2 placed on account 43\n");
        free(out);
        /* keys the type (integer) rejects: exit 64, nothing stored */
        rt_expect(64, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "4x", "--reason", "typo");
        rt_assert_contains(err, "invalid input syntax for type integer: \"4x\"");
        rt_assert_contains(err, "KEY must be a value of the subject's key column");
        free(err);
        rt_expect(64, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "99999999999", "--reason", "too big");
        rt_assert_sql(c, "1=42,2=43", "SELECT string_agg(id || '=' || subject_key, ',' ORDER BY id) FROM retention.holds");

        /* Written by SQL, as before hold add normalised keys: "044" (account 44), a key the type
         * rejects, and a hold on a subject the policy does not define; account 45 is held by
         * nothing. */
        pgtest_exec(c, "WITH h AS (INSERT INTO retention.holds (subject, subject_key, reason, placed_by) VALUES"
                       " ('account', '044', 'case 44', 'sql'), ('account', 'zz', 'junk', 'sql'), ('acount', '5', 'typo', 'sql')"
                       " RETURNING id)"
                       " INSERT INTO retention.hold_events (hold_id, event, by) SELECT id, 'placed', 'sql' FROM h");
        rt_expect(1, &out, &err, "-p", pol, "-d", ci, "migrate");
        assert_string_equal(out, "retention schema is already at version 10; nothing to do\n"
                                 "3 holds in force with a key that is not canonical or on no subject of the policy: holds 3,4,5"
                                 " (see the warnings)\n");
        rt_assert_contains(err, "hold 3 on subject account has the key \"044\", which is not canonical");
        rt_assert_contains(err, "app.accounts.id (integer) reads it as \"44\"");
        rt_assert_contains(err, "retentiond hold add account 44 (same --reason and --until), then retentiond hold release 3.");
        rt_assert_contains(err, "hold 4 on subject account has the key \"zz\", which its key column's type rejects");
        rt_assert_contains(err, "hold 5 is on subject \"acount\", which the policy does not define");
        free(out);
        free(err);
        rt_expect(1, &out, NULL, "-p", pol, "-d", ci, "migrate", "--json");
        assert_string_equal(out, "{\"schema_version\":10,\"previous_version\":10,\"migrations_applied\":0,"
                                 "\"noncanonical_hold_keys\":[3,4,5]}\n");
        free(out);
        rt_expect(0, &out, &err, "-d", ci, "migrate");
        rt_assert_contains(err, "hold keys were not checked");
        rt_assert_contains(err, "retentiond -p POLICY migrate");
        free(out);
        free(err);

        /* the run goes as the least-privilege role of sql/retentiond-role.sql */
        char *eci = pgtest_engine_role(ci, "holds_keys_engine", "app.accounts, app.tickets, app.chats", "app.invoices");
        char *hex, *key = rt_key_file(&hex);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--hash-key-file", key, "run");
        free(out);
        free(eci);
        free(key);
        free(hex);
        /* accounts 1 and 2 (no holds) are gone with their old rows; 42, 43 and 44 keep theirs;
         * 45's old rows are gone */
        rt_assert_sql(c, "3", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.accounts");
        for (size_t i = 0; i < 2; i++) {
                rt_assert_sql(c, "12,22,4201,4202,4301,4302,4401,4402,4502",
                              "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.%s", child[i]);
                rt_assert_sql(c, "3/3/success", "SELECT rows_deleted || '/' || rows_held || '/' || outcome FROM retention.rule_runs"
                                                " WHERE rule = '%s'", child[i]);
        }
        rt_assert_sql(c, "chats:legal=3,tickets:legal=3",
                      "SELECT string_agg(r.rule || ':' || h.hold || '=' || h.rows, ',' ORDER BY r.rule, h.hold)"
                      " FROM retention.rule_run_holds h JOIN retention.rule_runs r ON r.id = h.rule_run_id");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.runs");

        /* explain names the hold that keeps account 44's old ticket, though its key is "044" */
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "explain", "app.tickets", "4401");
        rt_assert_contains(out, "    hold legal (registry): applies\n      hold 3: \"case 44\", placed by sql at ");
        free(out);

        /* A policy where nothing but the subject's own table keeps rows by the registry hold: the
         * CLI does not claim that the hold protects rows in other tables. */
        char *pol2 = rt_policy("version: 1\n"
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
                               "    holds: [legal]\n"
                               "    action: delete\n");
        rt_expect(0, &out, &err, "-p", pol2, "-d", ci, "hold", "add", "account", "0046", "--reason", "case 46");
        assert_string_equal(out, "hold 6 placed on account 46\n");
        rt_assert_contains(err, "no row of app.accounts has id = 46; the hold protects nothing until such a row exists");
        rt_assert_not_contains(err, "other tables");
        free(out);
        free(err);
        free(pol2);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* Control characters: hold add refuses them in KEY, --reason and --by (64, nothing stored); a
 * hold written by SQL with a newline and an escape sequence is printed escaped by hold list and
 * explain, and an error with them in the audit trail by receipt. */
static void test_control_characters(void **state) {
        (void) state;
        char *ci, *out, *err;
        PGconn *c = accounts_db("holds_controls", &ci, 2);
        char *pol = rt_policy(ACCOUNTS_POLICY);
        rt_expect(64, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "1", "--reason", "case\x1b[2J\nforged line");
        rt_assert_contains(err, "--reason contains a control character");
        rt_assert_contains(err, "Byte 5 is 0x1b");
        free(err);
        rt_expect(64, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "1", "--reason", "ok", "--by", "me\nroot");
        rt_assert_contains(err, "--by contains a control character");
        free(err);
        rt_expect(64, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "1\x1b", "--reason", "ok");
        rt_assert_contains(err, "KEY contains a control character");
        free(err);
        rt_expect(64, NULL, &err, "-p", pol, "-d", ci, "hold", "add", "account", "1", "--reason", "c1 \xc2\x9b" "2J");
        rt_assert_contains(err, "--reason contains a control character");
        free(err);
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.holds");

        /* written by SQL: the reason and the name hold a newline and escape sequences */
        pgtest_exec(c, "WITH h AS (INSERT INTO retention.holds (subject, subject_key, reason, placed_by) VALUES"
                       " ('account', '1', E'case\\n7\\x1b[2J', E'ev\\x1bil\\x7f') RETURNING id)"
                       " INSERT INTO retention.hold_events (hold_id, event, by) SELECT id, 'placed', 'sql' FROM h");
        rt_expect(0, &out, NULL, "-d", ci, "hold", "list");
        rt_assert_contains(out, "case\\n7\\x1b[2J\n");
        rt_assert_contains(out, "ev\\x1bil\\x7f ");
        rt_assert_not_contains(out, "\x1b");
        rt_assert_not_contains(out, "\x7f");
        /* one header line and one line for the hold */
        size_t lines = 0;
        for (const char *q = out; *q; q++)
                lines += *q == '\n';
        assert_int_equal(lines, 2);
        free(out);
        /* the JSON escapes them as JSON does */
        rt_expect(0, &out, NULL, "-d", ci, "hold", "list", "--json");
        rt_assert_contains(out, "\"reason\":\"case\\n7\\u001b[2J\",\"placed_by\":\"ev\\u001bil\\u007f\"");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "explain", "app.tickets", "11");
        rt_assert_contains(out, "      hold 1: \"case\\n7\\x1b[2J\", placed by ev\\x1bil\\x7f at ");
        rt_assert_not_contains(out, "\x1b");
        free(out);

        /* An error with control characters lands in the trail (from a where: whose function raises
         * it) and every report prints it escaped. The function's own message is withheld (it may
         * hold row values); its name, from the catalog, is said: here the control characters. */
        pgtest_exec(c, "CREATE FUNCTION app.\"boom\x1b[2J\"() RETURNS bool LANGUAGE plpgsql AS"
                       " $$BEGIN RAISE EXCEPTION E'boom\\nforged'; END$$");
        pgtest_exec(c, "CREATE FUNCTION app.boom() RETURNS bool LANGUAGE sql AS $$SELECT app.\"boom\x1b[2J\"()$$");
        char *pol3 = rt_policy("version: 1\n"
                               "rules:\n"
                               "  chats:\n"
                               "    clause: \"chats kept 1 year\"\n"
                               "    table: app.chats\n"
                               "    column: started_at\n"
                               "    retain: 1 year\n"
                               "    where: \"app.boom()\"\n"
                               "    action: delete\n");
        const char *said = "function app.\"boom\\x1b[2J\"() of the database raised an error (SQLSTATE P0001); its message is"
                           " not shown, as it may hold row values";
        char *line = rt_asprintf("retentiond: error: rule \"chats\": %s\n", said);
        rt_expect(1, NULL, &err, "-p", pol3, "-d", ci, "run");
        rt_assert_contains(err, line);
        rt_assert_not_contains(err, "forged");
        rt_assert_not_contains(err, "\x1b");
        free(err);
        rt_assert_sql(c, "true|false", "SELECT (error LIKE E'%%boom\\x1b[2J%%') || '|' || (error LIKE '%%forged%%')"
                                " FROM retention.rule_runs");
        rt_expect(1, &out, NULL, "-p", pol3, "-d", ci, "status");
        char *colon = rt_asprintf(": %s\n", said);
        rt_assert_contains(out, colon);
        rt_assert_not_contains(out, "\x1b");
        free(out);
        rt_expect(1, &out, &err, "-p", pol3, "-d", ci, "audit");
        rt_assert_contains(err, colon);
        rt_assert_not_contains(err, "forged");
        char *audit = rt_asprintf("  ERROR: %s\n", said);
        rt_assert_contains(out, audit);
        rt_assert_not_contains(out, "\x1b");
        free(out);
        free(err);
        rt_expect(0, &out, NULL, "-d", ci, "receipt", "1");
        rt_assert_contains(out, "boom\\x1b[2J");
        rt_assert_not_contains(out, "\x1b");
        rt_assert_not_contains(out, "forged");
        free(out);
        free(line);
        free(colon);
        free(audit);
        free(pol3);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* hold list: every column as wide as its widest value, so that wide keys, subjects and names do
 * not shift the columns after them (issue 17 item 4); the reason last, unpadded. */
static void test_hold_list_aligned(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = accounts_db("holds_aligned", &ci, 1);
        pgtest_exec(c, "SET TimeZone = 'UTC'");
        pgtest_exec(c, "WITH h AS (INSERT INTO retention.holds (subject, subject_key, reason, placed_by, placed_at, expires_at)"
                       " VALUES ('account', '1', 'short', 'me', '2026-01-02 03:04:05+00', NULL),"
                       " ('a-much-longer-subject', '0042-ÄÖÜ-very-long-key-value', 'wide', 'operator-with-a-long-name',"
                       " '2026-01-02 03:04:05+00', '2999-01-01 00:00:00+00') RETURNING id)"
                       " INSERT INTO retention.hold_events (hold_id, event, by) SELECT id, 'placed', 'sql' FROM h");
        char *ciz = rt_asprintf("%s options=-cTimeZone=UTC", ci);
        rt_expect(0, &out, NULL, "-d", ciz, "hold", "list");
        free(ciz);
        assert_string_equal(out,
                            "ID SUBJECT               KEY                          STATE  PLACED BY                 PLACED AT"
                            "              UNTIL                  REASON\n"
                            "1  account               1                            active me                        2026-01-02"
                            " 03:04:05+00 -                      short\n"
                            "2  a-much-longer-subject 0042-ÄÖÜ-very-long-key-value active operator-with-a-long-name 2026-01-02"
                            " 03:04:05+00 2999-01-01 00:00:00+00 wide\n");
        free(out);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_registry_holds),
                cmocka_unit_test(test_derived_hold),
                cmocka_unit_test(test_cascade_into_held_rows),
                cmocka_unit_test(test_cascade_from_partition_key),
                cmocka_unit_test(test_restrict_isolated),
                cmocka_unit_test(test_restrict_below_cascade),
                cmocka_unit_test(test_canonical_keys),
                cmocka_unit_test(test_control_characters),
                cmocka_unit_test(test_hold_list_aligned),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
