/* test-citus.c — retentiond against a real Citus 13 cluster (a coordinator and two workers started by
 * the test itself, tests/db/citustest.[ch]), as the least-privilege role of sql/retentiond-role.sql:
 * delete and anonymise rules on distributed tables (hash-distributed, 8 shards over two workers) and
 * on reference tables take exactly the rows strictly older than the cutoff the run recorded, and the
 * audit trail counts them. Every assertion is on exact rows and counts. */
#include "citustest.h"
#include "rtest.h"
#include "rely.h"

#include <signal.h>
#include <sys/wait.h>

#include <time.h>

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
        free(out);
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

/* Holds on a distributed table: an operator's hold in the registry (a table of the coordinator)
 * and derived holds whose evidence is a table of the coordinator (invoices), a distributed table
 * co-located with the rule's (tickets) and a reference table (contracts). Accounts 5 (registry),
 * 7 (a young invoice), 11 (a young ticket) and 13 (a young contract) keep all their rows; account 8
 * has only an old invoice and 12 only an old ticket: theirs go. */
static const char holds_policy[] = "version: 1\n"
                                   "subjects:\n"
                                   "  account: { table: app.accounts, key: id }\n"
                                   "holds:\n"
                                   "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
                                   "  tax: { reason: \"invoices\", subject: account, table: app.invoices,"
                                   " subject_column: account_id, column: issued_at, retain: 1 year }\n"
                                   "  support: { reason: \"tickets\", subject: account, table: app.tickets,"
                                   " subject_column: account_id, column: created_at, retain: 1 year }\n"
                                   "  contract: { reason: \"contracts\", subject: account, table: app.contracts,"
                                   " subject_column: account_id, column: signed_at, retain: 1 year }\n"
                                   "rules:\n"
                                   "  events-delete:\n"
                                   "    clause: \"Events are deleted after 30 days\"\n"
                                   "    table: app.events\n"
                                   "    subject: account\n"
                                   "    subject_column: account_id\n"
                                   "    column: at\n"
                                   "    retain: 30 days\n"
                                   "    holds: [legal, tax, support, contract]\n"
                                   "    action: delete\n"
                                   "    batch_size: 500\n"
                                   "    max_fraction: 1\n";

static void test_holds_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_holds", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id bigint PRIMARY KEY, name text)");
        pgtest_exec(c, "SELECT create_distributed_table('app.accounts', 'id')");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT g, 'account ' || g FROM generate_series(0, 96) g");
        make_events(c, "distributed");
        pgtest_exec(c, "CREATE TABLE app.invoices (id int PRIMARY KEY, account_id bigint, issued_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.invoices (account_id)");
        pgtest_exec(c, "INSERT INTO app.invoices VALUES (1, 7, now() - interval '2 months'), (2, 8, now() - interval '3 years')");
        pgtest_exec(c, "CREATE TABLE app.tickets (id int, account_id bigint NOT NULL, created_at timestamptz,"
                       " PRIMARY KEY (account_id, id))");
        pgtest_exec(c, "SELECT create_distributed_table('app.tickets', 'account_id', colocate_with => 'app.events')");
        pgtest_exec(c, "INSERT INTO app.tickets VALUES (1, 11, now() - interval '2 months'), (2, 12, now() - interval '3 years')");
        pgtest_exec(c, "CREATE TABLE app.contracts (id int PRIMARY KEY, account_id bigint, signed_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.contracts (account_id)");
        pgtest_exec(c, "SELECT create_reference_table('app.contracts')");
        pgtest_exec(c, "INSERT INTO app.contracts VALUES (1, 13, now() - interval '2 months')");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", "app.accounts, app.invoices, app.tickets, app.contracts");
        char *pol = rt_policy(holds_policy);
        char *out;
        rt_expect(0, NULL, NULL, "-p", pol, "-d", engine, "hold", "add", "account", "5", "--reason", "case 1", "--by", "dpo");
        /* The rows due of the held accounts: 4 accounts of 97, by id % 97. */
        char *held = pgtest_value(c, "SELECT count(*) FROM app.events_before WHERE account_id IN (5, 7, 11, 13)"
                                     " AND at < now() - interval '30 days'");
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "audit");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        rt_assert_contains(out, "success");
        free(out);
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.rule_runs ORDER BY id DESC LIMIT 1");
        rt_assert_sql(c, held, "SELECT rows_held FROM retention.rule_runs ORDER BY id DESC LIMIT 1");
        /* Exactly the unheld rows older than the recorded cutoff went: 0 wrong, 0 missed. */
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at IS NULL OR account_id IN (5, 7, 11, 13)"
                      "   OR at >= (SELECT cutoff FROM retention.rule_runs ORDER BY id DESC LIMIT 1))");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.events WHERE account_id IN (8, 12) AND at < now() - interval '31 days'");
        rt_assert_sql(c, "t", "SELECT count(*) > 100 FROM app.events WHERE account_id IN (5, 7, 11, 13)");
        free(held);
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* A delete rule with a registry hold and while_held on a distributed table, as the engine's role:
 * the unheld due rows go, the held account's due rows stay and are anonymised (0 held rows
 * deleted, its young rows untouched), and the trail counts both. explain names the registry hold
 * on a held row and the decision on an unheld due row; a second run changes nothing. */
static const char while_held_policy[] = "version: 1\n"
                                        "subjects:\n"
                                        "  account: { table: app.accounts, key: id }\n"
                                        "holds:\n"
                                        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
                                        "rules:\n"
                                        "  events-delete:\n"
                                        "    clause: \"Events are deleted after 30 days\"\n"
                                        "    table: app.events\n"
                                        "    subject: account\n"
                                        "    subject_column: account_id\n"
                                        "    column: at\n"
                                        "    retain: 30 days\n"
                                        "    holds: [legal]\n"
                                        "    action: delete\n"
                                        "    while_held: { columns: { email: email_domain, note: { redact: \"[held]\" } } }\n"
                                        "    batch_size: 500\n"
                                        "    max_fraction: 1\n";

static void test_while_held_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_while_held", &ci);
        pgtest_exec(c, "CREATE TABLE app.accounts (id bigint PRIMARY KEY, name text)");
        pgtest_exec(c, "SELECT create_distributed_table('app.accounts', 'id')");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT g, 'account ' || g FROM generate_series(0, 96) g");
        make_events(c, "distributed");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", "app.accounts");
        char *pol = rt_policy(while_held_policy);
        char *out, *err;
        rt_expect(0, NULL, NULL, "-p", pol, "-d", engine, "hold", "add", "account", "5", "--reason", "case 5", "--by", "dpo");
        /* check -d has nothing against it. */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", engine, "check");
        /* Account 5: ids 5, 102, 199, ... (id % 97 = 5), 42 rows; due: 37 of them (at < now() - 30
         * days, not NULL). All other due rows: 3,620 - 37. */
        rt_assert_sql(c, "42", "SELECT count(*) FROM app.events_before WHERE account_id = 5");
        rt_assert_sql(c, "37", "SELECT count(*) FROM app.events_before WHERE account_id = 5 AND at < now() - interval '30 days'");
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        rt_assert_contains(out, "success");
        free(out);
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.rule_runs");
        rt_assert_sql(c, "3583", "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "37", "SELECT rows_anonymised FROM retention.rule_runs");
        rt_assert_sql(c, "37", "SELECT rows_held FROM retention.rule_runs");
        /* 0 held rows deleted; exactly the unheld due rows went. */
        rt_assert_sql(c, "42", "SELECT count(*) FROM app.events WHERE account_id = 5");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at IS NULL OR account_id = 5 OR at >= (SELECT cutoff FROM retention.rule_runs))");
        /* The held due rows are anonymised, exactly; the held young rows and every other row kept
         * are unchanged; the age column is untouched. */
        rt_assert_sql(c, "t",
                      "SELECT (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM app.events e) ="
                      " (SELECT md5(string_agg(ROW(b.id, b.account_id, b.at,"
                      "   CASE WHEN b.account_id = 5 AND b.at < (SELECT cutoff FROM retention.rule_runs)"
                      "        THEN '*@example.com' ELSE b.email END,"
                      "   CASE WHEN b.account_id = 5 AND b.at < (SELECT cutoff FROM retention.rule_runs)"
                      "        THEN '[held]' ELSE b.note END)::text, ',' ORDER BY id)) FROM app.events_before b"
                      "   WHERE at IS NULL OR account_id = 5 OR at >= (SELECT cutoff FROM retention.rule_runs))");
        /* explain: a held row (id 102: account 5, 102 days old) and an unheld young one. */
        rt_expect(0, &out, &err, "-p", pol, "-d", engine, "explain", "app.events", "5", "102");
        rt_assert_contains(out, "app.events account_id=5 id=102\n");
        rt_assert_contains(out, "    hold legal (registry): applies\n");
        char *placed = pgtest_value(c, "SELECT placed_at::text FROM retention.holds WHERE id = 1");
        char *want = rt_asprintf("      hold 1: \"case 5\", placed by dpo at %s, until released (no --until)\n", placed);
        rt_assert_contains(out, want);
        free(want);
        want = rt_asprintf("    decision:  kept: held by legal (hold 1 placed by dpo on %.10s) — a hold always beats deletion;"
                           " anonymised while held (email email_domain, note redact): done\n",
                           placed);
        rt_assert_contains(out, want);
        free(want);
        free(placed);
        rt_assert_contains(out, "    deleted: unknown while registry hold 1 (placed without --until) is active\n");
        free(out);
        free(err);
        rt_expect(0, &out, &err, "-p", pol, "-d", engine, "explain", "app.events", "6", "6");
        rt_assert_contains(out, "app.events account_id=6 id=6\n");
        rt_assert_contains(out, "    hold legal (registry): does not apply (no active operator hold on the subject)\n");
        char *due = pgtest_value(c, "SELECT (at + interval '30 days')::text FROM app.events WHERE id = 6");
        want = rt_asprintf("    decision:  not yet due: due after %s\n", due);
        rt_assert_contains(out, want);
        free(want);
        free(due);
        free(out);
        free(err);
        /* A second run: nothing to delete, nothing left to anonymise. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        free(out);
        rt_assert_sql(c, "0|0|37", "SELECT rows_deleted || '|' || rows_anonymised || '|' || rows_held FROM retention.rule_runs"
                                   " ORDER BY id DESC LIMIT 1");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* Pacing on Citus: the coordinator's transaction ids move with Citus's own bookkeeping (two-phase
 * commit records, the maintenance daemon's recovery) and not with the application's writes, which
 * go to the shards. Pacing is off on a Citus table: a run while the coordinator takes ids (here a
 * session that does nothing else) pauses 0 s, at the default --pace. */
static void test_pace_off_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_pace", &ci);
        make_events(c, "distributed");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events-delete:\n"
                              "    clause: \"Events are deleted after 30 days\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "    batch_size: 100\n"
                              "    max_fraction: 1\n");
        /* Transaction ids taken on the coordinator all the time, by a session of its own. */
        PGconn *busy = pgtest_connect(ci);
        assert_int_equal(PQsendQuery(busy, "DO $$ BEGIN FOR i IN 1 .. 600 LOOP PERFORM pg_current_xact_id();"
                                           " COMMIT; PERFORM pg_sleep(0.01); END LOOP; END $$"),
                         1);
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "--json", "run");
        rt_assert_contains(out, "\"paused_usec\":0,");
        free(out);
        PGresult *r;
        (void) PQrequestCancel(busy);
        while ((r = PQgetResult(busy)))
                PQclear(r);
        PQfinish(busy);
        rt_assert_sql(c, DUE_ROWS, "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "t", "SELECT batches >= 10 FROM retention.rule_runs");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* SIGKILL mid-run on a distributed table, once batches have committed: no row that was not due is
 * gone, the trail counts exactly the rows gone; the next run (after the dead client's backend has
 * gone) closes the killed run as interrupted, completes, and leaves exactly the rows not due. */
static void test_sigkill_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_kill", &ci);
        make_events(c, "distributed");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events-delete:\n"
                              "    clause: \"Events are deleted after 30 days\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "    batch_size: 20\n"
                              "    max_fraction: 1\n");
        char *log = rt_asprintf("%s/kill.log", rt_dir);
        const char *args[] = { "-p", pol, "-d", engine, "run", NULL };
        pid_t pid = rely_spawn(args, log);
        /* Killed once some batches are committed (the trail counts them), mid-run. */
        long long deleted = 0;
        for (int i = 0; i < 3000 && deleted < 200; i++) {
                usleep(2000);
                deleted = pgtest_int(c, "SELECT coalesce(max(rows_deleted), 0) FROM retention.rule_runs");
        }
        int st = rely_wait_timeout(pid, 0);
        if (st != -2) {
                char *l = rely_slurp(log);
                fail_msg("the run ended (%d) before it could be killed:\n%s", st, l);
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(rely_wait(pid), 128 + SIGKILL);
        for (int i = 0; i < 1000 && pgtest_int(c, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'retentiond'") > 0; i++)
                usleep(5000);
        rt_assert_sql(c, "0", "SELECT count(*) FROM pg_stat_activity WHERE usename = 'retentiond'");
        rt_assert_sql(c, "running|running", "SELECT r.outcome || '|' || rr.outcome FROM retention.runs r"
                                            " JOIN retention.rule_runs rr ON rr.run_id = r.id");
        /* Mid-run: some due rows gone, not all; none that was not due; the trail counts them all. */
        rt_assert_sql(c, "t", "SELECT rows_deleted BETWEEN 200 AND 3619 FROM retention.rule_runs");
        rt_assert_sql(c, "t", "SELECT rows_deleted = 4000 - (SELECT count(*) FROM app.events) FROM retention.rule_runs");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.events_before b WHERE (b.at IS NULL OR b.at >= (SELECT cutoff FROM"
                              " retention.rule_runs)) AND b.id NOT IN (SELECT id FROM app.events)");
        /* The next run completes and closes the killed one. */
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        free(out);
        rt_assert_sql(c, "1|interrupted|interrupted|the engine's database session ended during the rule run",
                      "SELECT r.id || '|' || r.outcome || '|' || rr.outcome || '|' || rr.error FROM retention.runs r"
                      " JOIN retention.rule_runs rr ON rr.run_id = r.id WHERE r.id = 1");
        rt_assert_sql(c, "success|success", "SELECT r.outcome || '|' || rr.outcome FROM retention.runs r"
                                            " JOIN retention.rule_runs rr ON rr.run_id = r.id WHERE r.id = 2");
        rt_assert_sql(c, DUE_ROWS, "SELECT sum(rows_deleted) FROM retention.rule_runs");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at IS NULL OR at >= (SELECT cutoff FROM retention.rule_runs WHERE run_id = 2))");
        /* No transaction of the killed run is left prepared on a worker. */
        for (int i = 0; i < CITUSTEST_WORKERS; i++) {
                char *wci = citustest_worker_db(ct, i, "citus_kill");
                PGconn *w = pgtest_connect(wci);
                rt_assert_sql(w, "0", "SELECT count(*) FROM pg_prepared_xacts");
                PQfinish(w);
                free(wci);
        }
        free(log);
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* ---- the oracle's scenarios on distributed tables ----
 *
 * Each scenario (schema co<N>, seeded: RETENTIOND_CITUS_ORACLE_SEED replays them) has accounts,
 * logs and msgs distributed by the account (8 shards over two workers), and evidence (invoices)
 * that is a co-located distributed table, a reference table or a table of the coordinator, at
 * random. A delete rule on logs with a registry hold and/or a derived hold on the invoices, and
 * sometimes while_held; an anonymise rule on msgs, sometimes with the registry hold. Random
 * retains and batch sizes, ages on either side of every cutoff (10 minutes, a day, years away:
 * the real clock runs while the engine works) and NULL, young, old and NULL evidence, registry
 * holds placed through the CLI. The oracle is SQL written here from the README's rules on local
 * copies of the data; the engine's tables must equal it row for row (0 wrong, 0 missed) and the
 * trail must count what it predicts. Runs as the least-privilege role. */
static const char *const ORACLE_RETAINS[] = { "1 day", "7 days", "30 days", "1 year" };
static const char *const ORACLE_EVIDENCE[] = { "distributed", "reference", "local" };
static const unsigned ORACLE_BATCHES[] = { 7, 50, 500 };

typedef struct OracleScn {
        int n;
        const char *logs_retain, *msgs_retain, *tax_retain, *evidence;
        bool logs_legal, logs_tax, logs_while_held, msgs_legal;
        unsigned logs_batch, msgs_batch;
        int held_keys[3];
} OracleScn;

static char *oracle_policy(const OracleScn *o) {
        return rt_asprintf("version: 1\n"
                           "subjects:\n"
                           "  acct%d: { table: co%d.accounts, key: id }\n"
                           "holds:\n"
                           "  legal: { reason: \"operator holds\", subject: acct%d, registry: true }\n"
                           "  tax: { reason: \"invoices\", subject: acct%d, table: co%d.invoices, subject_column: account_id,"
                           " column: issued_at, retain: %s }\n"
                           "rules:\n"
                           "  logs:\n"
                           "    clause: \"Logs are deleted after %s\"\n"
                           "    table: co%d.logs\n"
                           "    subject: acct%d\n"
                           "    subject_column: acct_id\n"
                           "    column: at\n"
                           "    retain: %s\n"
                           "%s%s"
                           "    action: delete\n"
                           "    batch_size: %u\n"
                           "    max_fraction: 1\n"
                           "  msgs:\n"
                           "    clause: \"Messages are anonymised after %s\"\n"
                           "    table: co%d.msgs\n"
                           "    subject: acct%d\n"
                           "    subject_column: acct_id\n"
                           "    column: created_at\n"
                           "    retain: %s\n"
                           "%s"
                           "    action: anonymise\n"
                           "    columns: { body: { redact: \"[gone]\" }, email: email_domain }\n"
                           "    batch_size: %u\n"
                           "    max_fraction: 1\n",
                           o->n, o->n, o->n, o->n, o->n, o->tax_retain, o->logs_retain, o->n, o->n, o->logs_retain,
                           o->logs_legal && o->logs_tax ? "    holds: [legal, tax]\n"
                           : o->logs_legal              ? "    holds: [legal]\n"
                           : o->logs_tax                ? "    holds: [tax]\n"
                                                        : "",
                           o->logs_while_held && (o->logs_legal || o->logs_tax)
                                   ? "    while_held: { columns: { ua: { redact: \"[held]\" } } }\n"
                                   : "",
                           o->logs_batch, o->msgs_retain, o->n, o->n, o->msgs_retain, o->msgs_legal ? "    holds: [legal]\n" : "",
                           o->msgs_batch);
}

/* The scenario's tables: the original rows in co<N>.oo_* (local), the engine's as Citus tables. */
static void oracle_data(PGconn *c, const OracleScn *o, uint64_t seed) {
        int n = o->n;
        pgtest_exec(c, "CREATE SCHEMA co%d", n);
        pgtest_exec(c, "SELECT setseed(%f)", (double) (seed % 1000003) / 1000003.0);
        const char *offs = "(ARRAY['-3 years', '-1 day', '-10 minutes', '10 minutes', '1 day', '2 years'])"
                           "[1 + floor(random() * 6)::int]::interval";
        pgtest_exec(c, "CREATE TABLE co%d.oo_logs AS SELECT g AS id, (g * 7 + floor(random() * 30)::int) %% 30 AS acct_id,"
                       " CASE WHEN random() < 0.07 THEN NULL ELSE now() - interval '%s' + %s END AS at,"
                       " CASE WHEN random() < 0.1 THEN NULL ELSE 'agent ' || g END AS ua FROM generate_series(1, 400) g",
                    n, o->logs_retain, offs);
        pgtest_exec(c, "CREATE TABLE co%d.oo_msgs AS SELECT g AS id, floor(random() * 30)::int AS acct_id,"
                       " CASE WHEN random() < 0.07 THEN NULL ELSE now() - interval '%s' + %s END AS created_at,"
                       " CASE WHEN random() < 0.1 THEN NULL ELSE 'body ' || g END AS body,"
                       " CASE WHEN random() < 0.1 THEN NULL WHEN random() < 0.1 THEN 'no address' ELSE 'u' || g || '@ex' || g %% 3"
                       " || '.org' END AS email FROM generate_series(1, 250) g",
                    n, o->msgs_retain, offs);
        pgtest_exec(c, "CREATE TABLE co%d.oo_invoices AS SELECT g AS id, floor(random() * 30)::int AS account_id,"
                       " CASE WHEN random() < 0.15 THEN NULL ELSE now() - interval '%s' + %s END AS issued_at"
                       " FROM generate_series(1, 12) g",
                    n, o->tax_retain, offs);
        pgtest_exec(c, "CREATE TABLE co%d.accounts (id int PRIMARY KEY)", n);
        pgtest_exec(c, "SELECT create_distributed_table('co%d.accounts', 'id')", n);
        pgtest_exec(c, "INSERT INTO co%d.accounts SELECT generate_series(0, 29)", n);
        pgtest_exec(c, "CREATE TABLE co%d.logs (id int, acct_id int NOT NULL, at timestamptz, ua text, PRIMARY KEY (acct_id, id))", n);
        pgtest_exec(c, "CREATE INDEX ON co%d.logs (at)", n);
        pgtest_exec(c, "SELECT create_distributed_table('co%d.logs', 'acct_id', colocate_with => 'co%d.accounts')", n, n);
        pgtest_exec(c, "INSERT INTO co%d.logs SELECT * FROM co%d.oo_logs", n, n);
        pgtest_exec(c, "CREATE TABLE co%d.msgs (id int, acct_id int NOT NULL, created_at timestamptz, body text, email text,"
                       " PRIMARY KEY (acct_id, id))",
                    n);
        pgtest_exec(c, "CREATE INDEX ON co%d.msgs (created_at)", n);
        pgtest_exec(c, "SELECT create_distributed_table('co%d.msgs', 'acct_id', colocate_with => 'co%d.accounts')", n, n);
        pgtest_exec(c, "INSERT INTO co%d.msgs SELECT * FROM co%d.oo_msgs", n, n);
        pgtest_exec(c, "CREATE TABLE co%d.invoices (id int, account_id int NOT NULL, issued_at timestamptz, PRIMARY KEY (account_id, id))", n);
        if (strcmp(o->evidence, "distributed") == 0)
                pgtest_exec(c, "SELECT create_distributed_table('co%d.invoices', 'account_id', colocate_with => 'co%d.accounts')", n, n);
        else if (strcmp(o->evidence, "reference") == 0)
                pgtest_exec(c, "SELECT create_reference_table('co%d.invoices')", n);
        pgtest_exec(c, "INSERT INTO co%d.invoices SELECT * FROM co%d.oo_invoices", n, n);
        pgtest_exec(c, "ANALYZE co%d.logs, co%d.msgs", n, n);
}

/* The oracle, on local copies: co<N>.ox_logs and ox_msgs as the README says they must end. */
static void oracle_apply(PGconn *c, const OracleScn *o) {
        int n = o->n;
        char *legal = rt_asprintf("x.acct_id IN (%d, %d, %d)", o->held_keys[0], o->held_keys[1], o->held_keys[2]);
        /* Evidence is young unless provably older than the hold's cutoff: NULL holds. */
        char *tax = rt_asprintf("EXISTS (SELECT 1 FROM co%d.oo_invoices i WHERE i.account_id = x.acct_id"
                                " AND (i.issued_at IS NULL OR i.issued_at >= now() - interval '%s'))",
                                n, o->tax_retain);
        char *held = rt_asprintf("(%s OR %s)", o->logs_legal ? legal : "false", o->logs_tax ? tax : "false");
        pgtest_exec(c, "CREATE TABLE co%d.ox_logs AS SELECT * FROM co%d.oo_logs", n, n);
        pgtest_exec(c, "CREATE TABLE co%d.ox_msgs AS SELECT * FROM co%d.oo_msgs", n, n);
        char *due_l = rt_asprintf("x.at < now() - interval '%s'", o->logs_retain);
        pgtest_exec(c, "CREATE TABLE co%d.ox_counts AS SELECT"
                       " (SELECT count(*) FROM co%d.ox_logs x WHERE %s AND NOT %s) AS logs_deleted,"
                       " (SELECT count(*) FROM co%d.ox_logs x WHERE %s AND %s) AS logs_held,"
                       " (SELECT count(*) FROM co%d.ox_logs x WHERE %s AND %s AND x.ua IS DISTINCT FROM '[held]' AND x.ua IS NOT NULL"
                       "  AND %s) AS logs_anonymised",
                    n, n, due_l, held, n, due_l, held, n, due_l, held, o->logs_while_held ? "true" : "false");
        if (o->logs_while_held)
                pgtest_exec(c, "UPDATE co%d.ox_logs x SET ua = CASE WHEN ua IS NULL THEN NULL ELSE '[held]' END WHERE %s AND %s", n,
                            due_l, held);
        pgtest_exec(c, "DELETE FROM co%d.ox_logs x WHERE %s AND NOT %s", n, due_l, held);
        char *due_m = rt_asprintf("x.created_at < now() - interval '%s'", o->msgs_retain);
        const char *mheld = o->msgs_legal ? legal : "false";
        /* A row already in its anonymised form is not due for an anonymise rule, nor counted held. */
        const char *done = "(x.body IS NULL OR x.body = '[gone]') AND (x.email IS NULL OR x.email IS NOT DISTINCT FROM"
                           " CASE WHEN strpos(x.email, '@') > 0 THEN '*@' || split_part(x.email, '@', -1) ELSE NULL END)";
        pgtest_exec(c, "ALTER TABLE co%d.ox_counts ADD msgs_anonymised bigint, ADD msgs_held bigint", n);
        pgtest_exec(c, "UPDATE co%d.ox_counts SET msgs_anonymised = (SELECT count(*) FROM co%d.ox_msgs x WHERE %s AND NOT %s"
                       " AND NOT (%s)), msgs_held = (SELECT count(*) FROM co%d.ox_msgs x WHERE %s AND %s"
                       " AND NOT (%s))",
                    n, n, due_m, mheld, done, n, due_m, mheld, done);
        pgtest_exec(c, "UPDATE co%d.ox_msgs x SET body = CASE WHEN body IS NULL THEN NULL ELSE '[gone]' END,"
                       " email = CASE WHEN strpos(email, '@') > 0 THEN '*@' || split_part(email, '@', -1) ELSE NULL END"
                       " WHERE %s AND NOT %s",
                    n, due_m, mheld);
        free(due_m);
        free(due_l);
        free(held);
        free(tax);
        free(legal);
}

/* Wrong: rows the engine changed or deleted that the oracle leaves as they were, or changed
 * otherwise. Missed: rows the oracle changes or deletes that the engine left as they were. */
static void oracle_compare(PGconn *c, const OracleScn *o, const char *t, long long *wrong, long long *missed) {
        int n = o->n;
        pgtest_exec(c, "CREATE TABLE co%d.res_%s AS SELECT * FROM co%d.%s", n, t, n, t);
        char *j = rt_asprintf("FROM co%d.oo_%s oo LEFT JOIN co%d.ox_%s ox ON ox.id = oo.id LEFT JOIN co%d.res_%s re ON re.id = oo.id"
                              " WHERE (ox IS NULL) IS DISTINCT FROM (re IS NULL) OR ox::text IS DISTINCT FROM re::text",
                              n, t, n, t, n, t);
        *wrong += pgtest_int(c, "SELECT count(*) %s AND NOT (re IS NOT NULL AND re::text = oo::text)", j);
        *missed += pgtest_int(c, "SELECT count(*) %s AND re IS NOT NULL AND re::text = oo::text", j);
        free(j);
}

static void test_oracle_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_oracle", &ci);
        uint64_t seed = rely_seed("RETENTIOND_CITUS_ORACLE_SEED");
        long scenarios = rely_env_long("RETENTIOND_CITUS_ORACLE_SCENARIOS", 3);
        fprintf(stderr, "citus oracle: %ld scenarios, RETENTIOND_CITUS_ORACLE_SEED=%llu\n", scenarios, (unsigned long long) seed);
        Rng r = { seed };
        long long wrong = 0, missed = 0, changed = 0;
        for (int n = 0; n < scenarios; n++) {
                OracleScn o = { .n = n };
                o.logs_retain = PICK(&r, ORACLE_RETAINS);
                o.msgs_retain = PICK(&r, ORACLE_RETAINS);
                o.tax_retain = PICK(&r, ORACLE_RETAINS);
                o.evidence = n < 3 ? ORACLE_EVIDENCE[n] : PICK(&r, ORACLE_EVIDENCE);
                o.logs_legal = chance(&r, 70);
                o.logs_tax = chance(&r, 70);
                o.logs_while_held = chance(&r, 60);
                o.msgs_legal = chance(&r, 60);
                o.logs_batch = PICK(&r, ORACLE_BATCHES);
                o.msgs_batch = PICK(&r, ORACLE_BATCHES);
                for (int k = 0; k < 3; k++)
                        o.held_keys[k] = (int) rnd(&r, 30);
                oracle_data(c, &o, rng_next(&r));
                char *tables = rt_asprintf("co%d.logs, co%d.msgs", n, n);
                char *read = rt_asprintf("co%d.accounts, co%d.invoices", n, n);
                char *role = rt_asprintf("rt_oracle%d", n);
                char *engine = pgtest_engine_role(ci, role, tables, read);
                char *yaml = oracle_policy(&o);
                char *pol = rt_policy(yaml);
                char subj[16], key[16];
                snprintf(subj, sizeof(subj), "acct%d", n);
                for (int k = 0; k < 3; k++) {
                        snprintf(key, sizeof(key), "%d", o.held_keys[k]);
                        rt_expect(0, NULL, NULL, "-p", pol, "-d", engine, "hold", "add", subj, key, "--reason", "oracle", "--by", "t");
                }
                char *out = NULL, *err = NULL;
                int rc = rt_cmd(&out, &err, "-p", pol, "-d", engine, "run", NULL);
                oracle_apply(c, &o);
                long long w = 0, m = 0;
                oracle_compare(c, &o, "logs", &w, &m);
                oracle_compare(c, &o, "msgs", &w, &m);
                char *got = pgtest_value(c, "SELECT string_agg(rule || ' ' || outcome || ' ' || rows_deleted || ' ' || rows_anonymised"
                                            " || ' ' || rows_held, ', ' ORDER BY rule) FROM retention.rule_runs WHERE run_id ="
                                            " (SELECT max(id) FROM retention.runs)");
                char *want = pgtest_value(c, "SELECT 'logs success ' || logs_deleted || ' ' || logs_anonymised || ' ' || logs_held"
                                             " || ', msgs success 0 ' || msgs_anonymised || ' ' || msgs_held FROM co%d.ox_counts",
                                          n);
                changed += pgtest_int(c, "SELECT logs_deleted + logs_anonymised + msgs_anonymised FROM co%d.ox_counts", n);
                if (rc != 0 || w || m || strcmp(got, want) != 0)
                        fail_msg("citus oracle scenario %d (RETENTIOND_CITUS_ORACLE_SEED=%llu; evidence %s): exit %d, %lld wrong,"
                                 " %lld missed\ntrail:  %s\noracle: %s\npolicy:\n%s\nstdout:\n%s\nstderr:\n%s",
                                 n, (unsigned long long) seed, o.evidence, rc, w, m, got, want, yaml, out, err);
                wrong += w;
                missed += m;
                free(got);
                free(want);
                free(out);
                free(err);
                free(pol);
                free(yaml);
                free(engine);
                free(role);
                free(read);
                free(tables);
        }
        fprintf(stderr, "citus oracle: %ld scenarios, %lld rows changed or deleted, %lld wrong, %lld missed\n", scenarios, changed,
                wrong, missed);
        assert_int_equal(wrong, 0);
        assert_int_equal(missed, 0);
        free(ci);
        PQfinish(c);
}

/* A distributed table range-partitioned on its age column (30-day partitions), as the table's owner
 * (a superuser), who may drop partitions: Citus does not support DETACH ... CONCURRENTLY on it, so
 * the rows of expired partitions go in batches, exactly, every partition stays attached and none
 * carries the COMMENT of a detach. */
static void test_partitions_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_parts", &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id bigint NOT NULL, account_id bigint NOT NULL, at timestamptz NOT NULL)"
                       " PARTITION BY RANGE (at)");
        pgtest_exec(c, "DO $$ BEGIN FOR i IN -1 .. 14 LOOP"
                       " EXECUTE format('CREATE TABLE app.%%I PARTITION OF app.logs FOR VALUES FROM (%%L) TO (%%L)',"
                       "   'logs_' || (i + 1), (current_date - (i + 1) * 30)::timestamptz, (current_date - i * 30)::timestamptz);"
                       " END LOOP; END $$");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "SELECT create_distributed_table('app.logs', 'account_id')");
        pgtest_exec(c, "INSERT INTO app.logs SELECT g, g %% 97, now() - (g %% 400) * interval '1 day' + interval '1 hour'"
                       " FROM generate_series(1, 4000) g");
        pgtest_exec(c, "ANALYZE app.logs");
        pgtest_exec(c, "CREATE TABLE app.logs_before AS SELECT * FROM app.logs");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  logs-delete:\n"
                              "    clause: \"Logs are deleted after 30 days\"\n"
                              "    table: app.logs\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "    batch_size: 500\n"
                              "    max_fraction: 1\n");
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_contains(out, "success");
        free(out);
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.rule_runs");
        /* g % 400 in 31 .. 399: 369 of every 400 rows. */
        rt_assert_sql(c, "3690", "SELECT rows_deleted FROM retention.rule_runs");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.logs) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.logs_before"
                      "   WHERE at >= (SELECT cutoff FROM retention.rule_runs))");
        rt_assert_sql(c, "16", "SELECT count(*) FROM pg_inherits WHERE inhparent = 'app.logs'::regclass");
        rt_assert_sql(c, "0", "SELECT count(*) FROM pg_inherits i JOIN pg_description d ON d.objoid = i.inhrelid"
                              " WHERE i.inhparent = 'app.logs'::regclass");
        free(pol);
        free(ci);
        PQfinish(c);
}

/* check -d names each table's kind (distributed with its distribution column, reference, local)
 * and refuses a delete from a distributed table that a foreign key references. */
static void test_check_kinds(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_check", &ci);
        make_events(c, "distributed");
        pgtest_exec(c, "CREATE TABLE app.ref (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.ref (at)");
        pgtest_exec(c, "SELECT create_reference_table('app.ref')");
        pgtest_exec(c, "CREATE TABLE app.loc (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.loc (at)");
        pgtest_exec(c, "CREATE TABLE app.parent (account_id bigint NOT NULL, id bigint NOT NULL, at timestamptz,"
                       " PRIMARY KEY (account_id, id))");
        pgtest_exec(c, "CREATE INDEX ON app.parent (at)");
        pgtest_exec(c, "SELECT create_distributed_table('app.parent', 'account_id', colocate_with => 'app.events')");
        pgtest_exec(c, "CREATE TABLE app.child (account_id bigint NOT NULL, id bigint NOT NULL, parent_id bigint,"
                       " PRIMARY KEY (account_id, id), FOREIGN KEY (account_id, parent_id) REFERENCES app.parent ON DELETE CASCADE)");
        pgtest_exec(c, "SELECT create_distributed_table('app.child', 'account_id', colocate_with => 'app.events')");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events, app.ref, app.loc, app.parent", "app.child");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  events:\n"
                              "    clause: \"c\"\n"
                              "    table: app.events\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "  ref:\n"
                              "    clause: \"c\"\n"
                              "    table: app.ref\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "  loc:\n"
                              "    clause: \"c\"\n"
                              "    table: app.loc\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "  parent:\n"
                              "    clause: \"c\"\n"
                              "    table: app.parent\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n");
        char *err;
        rt_expect(65, NULL, &err, "-p", pol, "-d", engine, "check");
        rt_assert_contains(err, "app.events is a distributed table of Citus (distribution column account_id, co-location group");
        rt_assert_contains(err, "app.ref is a reference table of Citus (a copy on every node)");
        rt_assert_contains(err, "app.loc is a local table of the Citus coordinator (not distributed)");
        rt_assert_contains(err, "app.parent is a distributed table of Citus that foreign keys reference (app.child, constraint"
                                " child_account_id_parent_id_fkey): deleting from it is not supported");
        free(err);
        /* run refuses that rule and enforces the others. */
        char *out;
        rt_expect(1, &out, &err, "-p", pol, "-d", engine, "run", "--force");
        rt_assert_contains(err, "deleting from it is not supported");
        free(out);
        free(err);
        rt_assert_sql(c, "380", "SELECT count(*) FROM app.events");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* A row the application holds (SELECT ... FOR UPDATE in an open transaction) in a distributed table:
 * the batch that meets it waits a moment on the shard (the fast path's short lock_timeout, SET LOCAL
 * and propagated), not the whole statement_timeout, and the rule leaves the rest for the next run
 * rather than try FOR UPDATE SKIP LOCKED, which Citus refuses on a multi-shard table. Nothing that
 * is not due goes; the next run, after the application's COMMIT, takes exactly the due rows. */
static void test_locked_row_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_locked", &ci);
        make_events(c, "distributed");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.events", NULL);
        char *pol = rt_policy(delete_policy);
        PGconn *app = pgtest_connect(ci);
        pgtest_exec(app, "BEGIN");
        /* id 1001: account 31, 201 days old: due, in the middle of the due range. */
        pgtest_exec(app, "SELECT * FROM app.events WHERE account_id = 31 AND id = 1001 FOR UPDATE");
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char *out = NULL, *err = NULL;
        int r = rt_cmd(&out, &err, "-p", pol, "-d", engine, "--statement-timeout", "30000", "run", NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r != 0 || secs >= 20)
                print_error("exit %d after %.1f s\nstdout:\n%s\nstderr:\n%s\n", r, secs, out, err);
        assert_int_equal(r, 0);
        assert_true(secs < 20);
        free(out);
        free(err);
        rt_assert_sql(c, "1", "SELECT count(*) FROM app.events WHERE id = 1001");
        /* Only due rows went, and the trail counts them. */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.events_before b WHERE (b.at IS NULL OR b.at >= (SELECT cutoff FROM"
                              " retention.rule_runs)) AND b.id NOT IN (SELECT id FROM app.events)");
        rt_assert_sql(c, "t", "SELECT rows_deleted = 4000 - (SELECT count(*) FROM app.events) FROM retention.rule_runs");
        rt_assert_sql(c, "t", "SELECT rows_deleted < " DUE_ROWS " FROM retention.rule_runs");
        /* The slices go oldest first; the one that met the lock was undone and the rule stopped
         * there: no row as young as the locked one went. The rest is counted skipped (the lock,
         * on a shard, is not seen from the coordinator: not counted as locked). */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.events_before b WHERE b.at >= (SELECT at FROM app.events_before"
                              " WHERE id = 1001) AND b.id NOT IN (SELECT id FROM app.events)");
        rt_assert_sql(c, "success|true|0", "SELECT outcome || '|' || (rows_skipped = " DUE_ROWS " - rows_deleted) || '|'"
                                        " || rows_skipped_locked FROM retention.rule_runs");

        pgtest_exec(app, "COMMIT");
        PQfinish(app);
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        free(out);
        rt_assert_sql(c, "380", "SELECT count(*) FROM app.events");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.events_before"
                      "   WHERE at IS NULL OR at >= (SELECT max(cutoff) FROM retention.rule_runs))");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* ---- slices: the batches on a distributed table, cut from the rows' density ----
 *
 * The fast path on a distributed table takes the due age span in slices [lo, hi) of age values,
 * each as wide as the density of the rows says holds the batch's target, with no statement that
 * orders keys across shards. A delete rule on app.spread (3,000 rows one every 4 hours over 500
 * days, an hour younger than whole 4 hours; a burst of 3,000 rows within 3 ms, 100 days old; 50
 * NULL ages) with a registry hold on account 5, and one on app.visits, a date column (4,000 rows
 * over 200 days, 20 of them on the cutoff's own day, and a burst of 2,000 rows on one day). */
static const char slices_policy[] = "version: 1\n"
                                    "subjects:\n"
                                    "  account: { table: app.accounts, key: id }\n"
                                    "holds:\n"
                                    "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
                                    "rules:\n"
                                    "  spread:\n"
                                    "    clause: \"Spread rows are deleted after 30 days\"\n"
                                    "    table: app.spread\n"
                                    "    subject: account\n"
                                    "    subject_column: account_id\n"
                                    "    column: at\n"
                                    "    retain: 30 days\n"
                                    "    holds: [legal]\n"
                                    "    action: delete\n"
                                    "    batch_size: 500\n"
                                    "    max_fraction: 1\n"
                                    "  visits:\n"
                                    "    clause: \"Visits are deleted after 30 days\"\n"
                                    "    table: app.visits\n"
                                    "    column: day\n"
                                    "    retain: 30 days\n"
                                    "    action: delete\n"
                                    "    batch_size: 500\n"
                                    "    max_fraction: 1\n";

static void make_slices_data(PGconn *c) {
        pgtest_exec(c, "CREATE TABLE app.accounts (id bigint PRIMARY KEY, name text)");
        pgtest_exec(c, "SELECT create_distributed_table('app.accounts', 'id')");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT g, 'account ' || g FROM generate_series(0, 96) g");
        pgtest_exec(c, "CREATE TABLE app.spread (id bigint NOT NULL, account_id bigint NOT NULL, at timestamptz,"
                       " PRIMARY KEY (account_id, id))");
        pgtest_exec(c, "CREATE INDEX ON app.spread (at)");
        pgtest_exec(c, "SELECT create_distributed_table('app.spread', 'account_id', colocate_with => 'app.accounts')");
        pgtest_exec(c, "INSERT INTO app.spread SELECT g, g %% 97, now() - interval '1 hour' - g * interval '4 hours'"
                       " FROM generate_series(1, 3000) g");
        pgtest_exec(c, "INSERT INTO app.spread SELECT g, g %% 97, now() - interval '100 days' + (g - 10000) * interval '1 microsecond'"
                       " FROM generate_series(10001, 13000) g");
        pgtest_exec(c, "INSERT INTO app.spread SELECT g, g %% 97, NULL FROM generate_series(20001, 20050) g");
        pgtest_exec(c, "ANALYZE app.spread");
        pgtest_exec(c, "CREATE TABLE app.spread_before AS SELECT * FROM app.spread");
        pgtest_exec(c, "CREATE TABLE app.visits (id bigint NOT NULL, account_id bigint NOT NULL, day date NOT NULL,"
                       " PRIMARY KEY (account_id, id))");
        pgtest_exec(c, "CREATE INDEX ON app.visits (day)");
        pgtest_exec(c, "SELECT create_distributed_table('app.visits', 'account_id', colocate_with => 'app.accounts')");
        pgtest_exec(c, "INSERT INTO app.visits SELECT g, g %% 97, current_date - g %% 200 FROM generate_series(1, 4000) g");
        pgtest_exec(c, "INSERT INTO app.visits SELECT g, g %% 97, current_date - 100 FROM generate_series(5001, 7000) g");
        pgtest_exec(c, "ANALYZE app.visits");
        pgtest_exec(c, "CREATE TABLE app.visits_before AS SELECT * FROM app.visits");
}

static void test_slices_distributed(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_slices", &ci);
        make_slices_data(c);
        char *engine = pgtest_engine_role(ci, "retentiond", "app.spread, app.visits", "app.accounts");
        char *pol = rt_policy(slices_policy);
        char *out;
        /* Slices, not the bound probe: no ORDER BY across the shards. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "audit", "--sql");
        rt_assert_contains(out, "-- slices, each batch: the upper end of the next slice, the last key plus its width\n"
                                "SELECT CASE WHEN s.h < $3::timestamptz THEN s.h::text END, false, 1 FROM (SELECT $1::timestamptz"
                                " + $2::bigint * interval '1 microsecond' AS h) s;\n");
        rt_assert_contains(out, "SELECT CASE WHEN s.h < ($3::timestamptz)::date THEN s.h::text END, false, 1 FROM (SELECT $1::date + $2::int"
                                " AS h) s;\n");
        free(out);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", engine, "hold", "add", "account", "5", "--reason", "case 7", "--by", "dpo");
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        rt_assert_contains(out, "success");
        free(out);
        /* spread: 2,821 + 3,000 rows due (g >= 180, and the burst), 29 + 30 of them account 5's. */
        rt_assert_sql(c, "success|5762|59", "SELECT outcome || '|' || rows_deleted || '|' || rows_held FROM retention.rule_runs"
                                            " WHERE rule = 'spread'");
        rt_assert_sql(c, "288", "SELECT count(*) FROM app.spread");
        /* 0 wrong (a row kept by the recorded cutoff, the hold or a NULL age, gone), 0 missed. */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.spread_before b WHERE (b.at IS NULL OR b.account_id = 5 OR b.at >= (SELECT"
                              " cutoff FROM retention.rule_runs WHERE rule = 'spread')) AND b.id NOT IN (SELECT id FROM app.spread)");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.spread s WHERE s.account_id <> 5 AND s.at < (SELECT cutoff FROM"
                              " retention.rule_runs WHERE rule = 'spread')");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.spread) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.spread_before"
                      "   WHERE at IS NULL OR account_id = 5 OR at >= (SELECT cutoff FROM retention.rule_runs WHERE rule = 'spread'))");
        /* The held account keeps every row, due or not. */
        rt_assert_sql(c, "61", "SELECT count(*) FROM app.spread WHERE account_id = 5");
        /* visits: g % 200 in 31 .. 199 (3,380) and the burst day (2,000); the 20 rows of the cutoff's
         * own day are not older than it and stay, with the 600 younger ones. */
        rt_assert_sql(c, "success|5380", "SELECT outcome || '|' || rows_deleted FROM retention.rule_runs WHERE rule = 'visits'");
        rt_assert_sql(c, "620|20|0", "SELECT count(*) || '|' || count(*) FILTER (WHERE day = current_date - 30) || '|'"
                                     " || count(*) FILTER (WHERE day < current_date - 30) FROM app.visits");
        rt_assert_sql(c, "t",
                      "SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.visits) ="
                      " (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.visits_before WHERE day >= current_date - 30)");
        /* A second run finds nothing. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", engine, "run");
        free(out);
        rt_assert_sql(c, "0|0", "SELECT string_agg(rows_deleted::text, '|' ORDER BY rule) FROM retention.rule_runs"
                                " WHERE run_id = (SELECT max(id) FROM retention.runs)");
        free(pol);
        free(engine);
        free(ci);
        PQfinish(c);
}

/* Slices and the breaker's running limit. The breaker reads a distributed table's rows and due
 * rows from its shards' statistics (EXPLAIN with every task shown), as it reads a plain table's;
 * here they were taken when 10,000 young rows were all there was, and 210,000 rows a second apart,
 * all due, came after (no autovacuum): the estimate of the due rows is far under half of max_rows
 * (100,000), so nothing is counted first, and the slices, which have no LIMIT, must stop at the
 * limit themselves: a slice that changed more rows than the limit had left is undone before its
 * COMMIT, and the next one is cut narrower. The run stops with the breaker at the limit exactly,
 * having deleted the oldest rows only; the trail counts them. */
static void test_slices_breaker(void **state) {
        (void) state;
        char *ci;
        PGconn *c = citus_db("citus_slices_breaker", &ci);
        pgtest_exec(c, "CREATE TABLE app.big (id bigint PRIMARY KEY, at timestamptz NOT NULL) WITH (autovacuum_enabled = false)");
        pgtest_exec(c, "CREATE INDEX ON app.big (at)");
        pgtest_exec(c, "SELECT create_distributed_table('app.big', 'id')");
        pgtest_exec(c, "INSERT INTO app.big SELECT g, now() - interval '1 day' + g * interval '1 second' FROM generate_series(1, 10000) g");
        pgtest_exec(c, "ANALYZE app.big");
        /* The higher the id, the older. */
        pgtest_exec(c, "INSERT INTO app.big SELECT g, now() - interval '60 days' - (g - 10000) * interval '1 second'"
                       " FROM generate_series(10001, 220000) g");
        char *engine = pgtest_engine_role(ci, "retentiond", "app.big", NULL);
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  big:\n"
                              "    clause: \"Rows are deleted after 30 days\"\n"
                              "    table: app.big\n"
                              "    column: at\n"
                              "    retain: 30 days\n"
                              "    action: delete\n"
                              "    max_rows: 100000\n"
                              "    max_fraction: 1\n");
        char *out, *err;
        rt_expect(1, &out, &err, "-p", pol, "-d", engine, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":100000,");
        rt_assert_contains(out, "\"breaker_limit\":100000,\"breaker_counted\":-1,");
        rt_assert_contains(err, "circuit breaker tripped for rule \"big\" during the run");
        rt_assert_contains(err, "The run changed 100000 rows, the limit, and more are due; it stopped there.");
        free(out);
        free(err);
        rt_assert_sql(c, "breaker|100000", "SELECT outcome || '|' || rows_deleted FROM retention.rule_runs");
        /* The 100,000 oldest went: ids 120,001 .. 220,000; 1 .. 120,000 are left. */
        rt_assert_sql(c, "120000|120000|1", "SELECT count(*) || '|' || max(id) || '|' || min(id) FROM app.big");
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
                cmocka_unit_test(test_holds_distributed),
                cmocka_unit_test(test_partitions_distributed),
                cmocka_unit_test(test_check_kinds),
                cmocka_unit_test(test_locked_row_distributed),
                cmocka_unit_test(test_while_held_distributed),
                cmocka_unit_test(test_pace_off_distributed),
                cmocka_unit_test(test_sigkill_distributed),
                cmocka_unit_test(test_oracle_distributed),
                cmocka_unit_test(test_slices_distributed),
                cmocka_unit_test(test_slices_breaker),
        };
        /* CITUS_ONLY=test_name (a cmocka pattern): one test, for a quicker turn. */
        const char *only = getenv("CITUS_ONLY");
        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
