/* test-receipts.c — the tamper-evident audit trail against a real PostgreSQL: every finished rule
 * run is sealed into the hash chain in order; the documented serialization, rebuilt here
 * independently; `verify` after runs, after a sealed row is edited (also its hold counts and its
 * run), deleted (in the middle and at the end), rewritten with a recomputed digest, reordered;
 * rule runs that never finished are outside the chain and no break; two sessions sealing at the
 * same time keep one linear chain; `receipt` in text and JSON, exactly; the migration from
 * version 1 with runs recorded; the append-only triggers; the engine's least-privilege role. */
#include <pthread.h>

#include "rtest.h"

static const char *POLICY =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
        "rules:\n"
        "  logs:\n"
        "    clause: \"Privacy policy 4.2: access logs are kept 7 days\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "  tickets:\n"
        "    clause: \"Privacy policy 5.1: support tickets are kept 1 year\"\n"
        "    table: app.tickets\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: created_at\n"
        "    retain: 1 year\n"
        "    holds: [legal]\n"
        "    action: delete\n";

/* logs 1-10 expired, 11-15 young; accounts 1-3, each with two tickets two years old and one a
 * month old; a legal hold on account 2. A run deletes 10 logs and 4 tickets and keeps 2 held. */
static PGconn *receipts_db(const char *name, char **ci, char **pol) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 minute'"
                       " FROM generate_series(1, 10) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' FROM generate_series(11, 15) i");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT generate_series(1, 3)");
        pgtest_exec(c, "CREATE TABLE app.tickets (id int PRIMARY KEY, account_id int REFERENCES app.accounts,"
                       " created_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.tickets (created_at)");
        pgtest_exec(c, "INSERT INTO app.tickets SELECT 10 * a + t, a, now() - interval '2 years'"
                       " FROM generate_series(1, 3) a, generate_series(1, 2) t");
        pgtest_exec(c, "INSERT INTO app.tickets SELECT 10 * a + 9, a, now() - interval '1 month' FROM generate_series(1, 3) a");
        *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", *pol, "-d", *ci, "hold", "add", "account", "2", "--reason", "case 7", "--by", "dpo");
        return c;
}

static void run_ok(const char *pol, const char *ci) {
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
}

static const char *sqlstate_of(PGconn *c, const char *sql, char *buf, size_t n) {
        PGresult *r = PQexec(c, sql);
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        ExecStatusType st = PQresultStatus(r);
        snprintf(buf, n, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "ok" : s ? s : "?");
        PQclear(r);
        return buf;
}

/* The hash of the rule run at seq, hex. Caller frees. */
static char *hash_at(PGconn *c, int seq) {
        return pgtest_value(c, "SELECT encode(hash, 'hex') FROM retention.rule_runs WHERE seq = %d", seq);
}

/* Every trigger of the audit trail off (a superuser tampering on purpose), or on again. */
static void triggers(PGconn *c, bool on) {
        const char *t[] = { "runs", "rule_runs", "rule_run_holds", "rule_run_fk" };
        for (size_t i = 0; i < 4; i++)
                pgtest_exec(c, "ALTER TABLE retention.%s %s TRIGGER USER", t[i], on ? "ENABLE" : "DISABLE");
}

/* ---- sealing -------------------------------------------------------------------------------- */

static void test_sealed_after_runs(void **state) {
        (void) state;
        char *ci, *pol, *out;
        PGconn *c = receipts_db("rc_sealed", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);

        /* every rule run finished and sealed, in the order they finished, linked */
        rt_assert_sql(c, "4", "SELECT count(*) FROM retention.rule_runs WHERE finished_at IS NOT NULL");
        rt_assert_sql(c, "1,2,3,4", "SELECT string_agg(seq::text, ',' ORDER BY id) FROM retention.rule_runs");
        rt_assert_sql(c, "4", "SELECT count(*) FROM retention.rule_runs r WHERE hash = retention.rule_run_digest(r)"
                              " AND sealed_at >= finished_at AND octet_length(hash) = 32");
        rt_assert_sql(c, "t", "SELECT prev_hash IS NULL FROM retention.rule_runs WHERE seq = 1");
        rt_assert_sql(c, "3", "SELECT count(*) FROM retention.rule_runs r JOIN retention.rule_runs p ON p.seq = r.seq - 1"
                              " WHERE r.prev_hash = p.hash");
        rt_assert_sql(c, "t", "SELECT h.seq = 4 AND h.hash = r.hash FROM retention.chain_head h, retention.rule_runs r"
                              " WHERE r.seq = 4");
        rt_assert_sql(c, "10/0/0,4/2/0,0/0/0,0/2/0",
                      "SELECT string_agg(rows_deleted || '/' || rows_held || '/' || rows_skipped, ',' ORDER BY id)"
                      " FROM retention.rule_runs");

        char *last = hash_at(c, 4);
        char *expect = rt_asprintf("chain OK: 4 sealed rule runs, last hash %s\n", last);
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        expect = rt_asprintf("{\"ok\":true,\"sealed\":4,\"last_seq\":4,\"last_hash\":\"%s\",\"head_seq\":4,\"unsealed\":0,"
                             "\"break\":null}\n",
                             last);
        rt_expect(0, &out, NULL, "-d", ci, "verify", "--json");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        /* -q: nothing on success */
        rt_expect(0, &out, NULL, "-d", ci, "-q", "verify");
        assert_string_equal(out, "");
        free(out);
        /* a dry run and an audit seal nothing */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "audit");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run", "--dry-run");
        rt_assert_sql(c, "4", "SELECT seq FROM retention.chain_head");
        /* verify takes no arguments */
        rt_expect(64, NULL, NULL, "-d", ci, "verify", "now");

        free(last);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* "NAME=BYTES:VALUE\n", or "NAME=-\n" for NULL: the documented line of the serialization. */
static void field(char **s, const char *name, const char *value) {
        char *n = value ? rt_asprintf("%s%s=%zu:%s\n", *s, name, strlen(value), value) : rt_asprintf("%s%s=-\n", *s, name);
        free(*s);
        *s = n;
}

/* A timestamp as the serialization writes it, from PostgreSQL's text form in UTC
 * ("2026-01-02 03:04:05.5+00"): "2026-01-02T03:04:05.500000Z". */
static char *utc(const char *pg) {
        if (!pg)
                return NULL;
        char date[11], time[9], frac[7] = "000000";
        assert_int_equal(sscanf(pg, "%10s %8s", date, time), 2);
        const char *dot = strchr(pg, '.');
        if (dot)
                for (size_t i = 0; i < 6 && dot[1 + i] >= '0' && dot[1 + i] <= '9'; i++)
                        frac[i] = dot[1 + i];
        assert_non_null(strstr(pg, "+00"));
        return rt_asprintf("%sT%s.%sZ", date, time, frac);
}

static void test_serialization(void **state) {
        (void) state;
        char *ci, *pol;
        PGconn *c = receipts_db("rc_serial", &ci, &pol);
        run_ok(pol, ci);
        pgtest_exec(c, "SET TimeZone = 'UTC'");
        char *id = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE rule = 'tickets'");

        /* The serialization, rebuilt from the row's values by the README's description. */
        static const char *cols[] = { "seq",     "prev_hash",  "id",         "run_id",    "run_host",   "run_version",
                                      "run_mode", "run_started_at", "rule",  "clause",    "table_name", "action",
                                      "cutoff",  "started_at", "finished_at", "rows_deleted", "rows_anonymised", "rows_held",
                                      "rows_skipped", "rows_skipped_locked", "rows_skipped_fk", "rows_overdue",
                                      "partitions_dropped", "batches", "outcome", "sqlstate", "error" };
        char *s = strdup("retentiond-rule-run-v1\n");
        for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
                const char *col = cols[i];
                char *v;
                if (strcmp(col, "prev_hash") == 0)
                        v = pgtest_value(c, "SELECT encode(prev_hash, 'hex') FROM retention.rule_runs WHERE id = %s", id);
                else if (strncmp(col, "run_", 4) == 0 && strcmp(col, "run_id") != 0)
                        v = pgtest_value(c, "SELECT u.%s::text FROM retention.runs u JOIN retention.rule_runs r ON r.run_id = u.id"
                                            " WHERE r.id = %s", col + 4, id);
                else
                        v = pgtest_value(c, "SELECT %s::text FROM retention.rule_runs WHERE id = %s", col, id);
                if (strstr(col, "_at") || strcmp(col, "cutoff") == 0) {
                        char *u = utc(v);
                        free(v);
                        v = u;
                }
                field(&s, col, v);
                free(v);
        }
        field(&s, "hold", "legal");
        field(&s, "hold_rows", "2");
        char *sealed = pgtest_value(c, "SELECT sealed_at::text FROM retention.rule_runs WHERE id = %s", id);
        char *su = utc(sealed);
        field(&s, "sealed_at", su);
        rt_assert_contains(s, "rows_held=1:2\n");
        rt_assert_contains(s, "clause=51:Privacy policy 5.1: support tickets are kept 1 year\n");

        char *got = pgtest_value(c, "SELECT retention.rule_run_serialization(r) FROM retention.rule_runs r WHERE id = %s", id);
        assert_string_equal(got, s);
        /* the digest is sha256 of that text in UTF-8 */
        rt_assert_sql(c, "t", "SELECT hash = sha256(convert_to($rc$%s$rc$, 'UTF8')) FROM retention.rule_runs WHERE id = %s", s, id);
        /* and does not depend on the session's time zone or date style */
        pgtest_exec(c, "SET TimeZone = 'America/St_Johns'");
        pgtest_exec(c, "SET DateStyle = 'SQL, DMY'");
        rt_assert_sql(c, "2", "SELECT count(*) FROM retention.rule_runs r WHERE hash = retention.rule_run_digest(r)");

        free(got);
        free(sealed);
        free(su);
        free(s);
        free(id);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* ---- tampering -------------------------------------------------------------------------------- */

static void expect_break(const char *ci, const char *first_line, const char *kind, const char *json_part) {
        char *out;
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        if (strncmp(out, first_line, strlen(first_line)) != 0) {
                print_error("verify printed:\n%s\nexpected it to begin with:\n%s\n", out, first_line);
                fail();
        }
        free(out);
        rt_expect(1, &out, NULL, "-d", ci, "verify", "--json");
        rt_assert_contains(out, "\"ok\":false");
        char *k = rt_asprintf("\"break\":{\"kind\":\"%s\"", kind);
        rt_assert_contains(out, k);
        if (json_part)
                rt_assert_contains(out, json_part);
        free(k);
        free(out);
}

static void test_edit_detected(void **state) {
        (void) state;
        char *ci, *pol, *out, b[16];
        PGconn *c = receipts_db("rc_edit", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        char *logs1 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 1");
        char *tickets1 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 2");

        /* the triggers refuse, even a superuser's UPDATE */
        assert_string_equal(sqlstate_of(c, "UPDATE retention.rule_runs SET rows_deleted = 9 WHERE seq = 1", b, sizeof(b)), "42501");

        /* a superuser turns them off and edits a count */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.rule_runs SET rows_deleted = 9 WHERE seq = 1");
        char *line = rt_asprintf("chain BROKEN at #1: rule run %s (run 1, rule logs) was changed after it was sealed\n", logs1);
        char *json = rt_asprintf("\"seq\":1,\"rule_run_id\":%s,\"run_id\":1,\"rule\":\"logs\"", logs1);
        expect_break(ci, line, "changed", json);
        free(line);
        free(json);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "verified before the break: nothing\n");
        free(out);
        pgtest_exec(c, "UPDATE retention.rule_runs SET rows_deleted = 10 WHERE seq = 1");
        rt_expect(0, NULL, NULL, "-d", ci, "verify");

        /* a hold's count */
        pgtest_exec(c, "UPDATE retention.rule_run_holds SET rows = 1 WHERE rule_run_id = %s", tickets1);
        line = rt_asprintf("chain BROKEN at #2: rule run %s (run 1, rule tickets) was changed after it was sealed\n", tickets1);
        expect_break(ci, line, "changed", NULL);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        char *h1 = hash_at(c, 1);
        char *before = rt_asprintf("verified before the break: 1 sealed rule run, #1 to #1, last hash %s\n", h1);
        rt_assert_contains(out, before);
        free(before);
        free(h1);
        free(out);
        /* a hold row removed, or one added */
        pgtest_exec(c, "DELETE FROM retention.rule_run_holds WHERE rule_run_id = %s", tickets1);
        expect_break(ci, line, "changed", NULL);
        pgtest_exec(c, "INSERT INTO retention.rule_run_holds VALUES (%s, 'legal', 2)", tickets1);
        rt_expect(0, NULL, NULL, "-d", ci, "verify");
        pgtest_exec(c, "INSERT INTO retention.rule_run_fk VALUES (%s, 'app.other', 1)", tickets1);
        expect_break(ci, line, "changed", NULL);
        pgtest_exec(c, "DELETE FROM retention.rule_run_fk");
        free(line);

        /* the run's identity */
        pgtest_exec(c, "UPDATE retention.runs SET host = 'elsewhere' WHERE id = 2");
        char *logs2 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 3");
        line = rt_asprintf("chain BROKEN at #3: rule run %s (run 2, rule logs) was changed after it was sealed\n", logs2);
        expect_break(ci, line, "changed", NULL);
        free(line);
        free(logs2);
        pgtest_exec(c, "UPDATE retention.runs SET host = (SELECT host FROM retention.runs WHERE id = 1) WHERE id = 2");
        rt_expect(0, NULL, NULL, "-d", ci, "verify");

        /* the seal itself: a NULL hash */
        pgtest_exec(c, "ALTER TABLE retention.rule_runs DROP CONSTRAINT rule_runs_sealed_check");
        pgtest_exec(c, "UPDATE retention.rule_runs SET hash = NULL WHERE seq = 4");
        expect_break(ci, "chain BROKEN at #4: ", "changed", NULL);

        triggers(c, true);
        free(logs1);
        free(tickets1);
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_delete_detected(void **state) {
        (void) state;
        char *ci, *pol, *out;
        PGconn *c = receipts_db("rc_delete", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        char b[16];
        assert_string_equal(sqlstate_of(c, "DELETE FROM retention.rule_runs WHERE seq = 2", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "TRUNCATE retention.rule_runs CASCADE", b, sizeof(b)), "42501");

        /* in the middle */
        triggers(c, false);
        pgtest_exec(c, "DELETE FROM retention.rule_run_holds WHERE rule_run_id = (SELECT id FROM retention.rule_runs WHERE seq = 2)");
        pgtest_exec(c, "DELETE FROM retention.rule_runs WHERE seq = 2");
        expect_break(ci, "chain BROKEN at #2: the rule run sealed after #1 is missing\n", "missing",
                     "\"seq\":2,\"rule_run_id\":null,\"run_id\":null,\"rule\":null");
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        char *id3 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 3");
        char *detail = rt_asprintf("DETAIL: The chain goes from #1 (rule run 1) to #3 (rule run %s)", id3);
        rt_assert_contains(out, detail);
        free(detail);
        free(id3);
        free(out);
        /* the seal removed instead of the row: the same gap */
        triggers(c, true);
        PQfinish(c);
        free(ci);
        free(pol);

        c = receipts_db("rc_delete2", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.rule_runs SET seq = NULL, prev_hash = NULL, hash = NULL, sealed_at = NULL WHERE seq = 1");
        expect_break(ci, "chain BROKEN at #1: the first sealed rule run (#1) is missing\n", "missing", NULL);
        triggers(c, true);
        PQfinish(c);
        free(ci);
        free(pol);

        /* at the end: only the chain's head knows */
        c = receipts_db("rc_delete3", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        triggers(c, false);
        pgtest_exec(c, "DELETE FROM retention.rule_run_holds WHERE rule_run_id = (SELECT id FROM retention.rule_runs WHERE seq = 4)");
        pgtest_exec(c, "DELETE FROM retention.rule_runs WHERE seq = 4");
        expect_break(ci, "chain BROKEN at #4: the rule run sealed after #3 is missing\n", "tail", NULL);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "DETAIL: The chain's head (retention.chain_head) is at #4");
        rt_assert_contains(out, "verified before the break: 3 sealed rule runs, #1 to #3");
        free(out);
        /* the documented limit: whoever also moves the head back hides it */
        pgtest_exec(c, "UPDATE retention.chain_head SET seq = 3, hash = (SELECT hash FROM retention.rule_runs WHERE seq = 3)");
        rt_expect(0, NULL, NULL, "-d", ci, "verify");
        triggers(c, true);

        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_rewritten_and_reordered(void **state) {
        (void) state;
        char *ci, *pol;
        PGconn *c = receipts_db("rc_rewrite", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);

        /* edit #2 and recompute its digest with the schema's own function: #2 verifies by itself,
         * but #3 was sealed on the old digest */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.rule_runs SET rows_deleted = 0 WHERE seq = 2");
        pgtest_exec(c, "UPDATE retention.rule_runs r SET hash = retention.rule_run_digest(r) WHERE seq = 2");
        rt_assert_sql(c, "t", "SELECT hash = retention.rule_run_digest(r) FROM retention.rule_runs r WHERE seq = 2");
        char *id3 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 3");
        char *id2 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 2");
        char *line = rt_asprintf("chain BROKEN at #3: rule run %s (run 2, rule logs) does not chain to the rule run sealed"
                                 " before it\n", id3);
        expect_break(ci, line, "relinked", NULL);
        free(line);
        char *out;
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        char *detail = rt_asprintf("DETAIL: Its prev_hash is not the hash of #2 (rule run %s)", id2);
        rt_assert_contains(out, detail);
        rt_assert_contains(out, "verified before the break: 2 sealed rule runs, #1 to #2");
        free(detail);
        free(out);
        /* the whole rest of the chain rewritten: only the head still knows */
        for (int s = 3; s <= 4; s++) {
                pgtest_exec(c, "UPDATE retention.rule_runs SET prev_hash = (SELECT hash FROM retention.rule_runs WHERE seq = %d)"
                               " WHERE seq = %d", s - 1, s);
                pgtest_exec(c, "UPDATE retention.rule_runs r SET hash = retention.rule_run_digest(r) WHERE seq = %d", s);
        }
        char *id4 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 4");
        line = rt_asprintf("chain BROKEN at #4: rule run %s (run 2, rule tickets), the last sealed, does not match the chain's"
                           " head\n", id4);
        expect_break(ci, line, "tail", NULL);
        free(line);
        free(id4);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "verified before the break: 3 sealed rule runs, #1 to #3, last hash ");
        free(out);

        /* reordered: #2 and #3 swap places */
        PQfinish(c);
        free(ci);
        free(pol);
        c = receipts_db("rc_reorder", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.rule_runs SET seq = 1000 WHERE seq = 2");
        pgtest_exec(c, "UPDATE retention.rule_runs SET seq = 2 WHERE seq = 3");
        pgtest_exec(c, "UPDATE retention.rule_runs SET seq = 3 WHERE seq = 1000");
        expect_break(ci, "chain BROKEN at #2: ", "changed", NULL);
        /* a rule run slipped in after the head */
        PQfinish(c);
        free(ci);
        free(pol);
        c = receipts_db("rc_beyond", &ci, &pol);
        run_ok(pol, ci);
        triggers(c, false);
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, finished_at, outcome,"
                       " seq, prev_hash, sealed_at, hash)"
                       " SELECT 1, 'logs', 'x', 'app.logs', 'delete', now(), 'success', 3, hash, now(), '\\x00'"
                       " FROM retention.rule_runs WHERE seq = 2");
        pgtest_exec(c, "UPDATE retention.rule_runs r SET hash = retention.rule_run_digest(r) WHERE seq = 3");
        char *id = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 3");
        line = rt_asprintf("chain BROKEN at #3: rule run %s (run 1, rule logs) claims position #3, after the chain's head\n", id);
        expect_break(ci, line, "beyond-head", NULL);
        free(line);
        free(id);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "verified before the break: 2 sealed rule runs, #1 to #2, last hash ");
        free(out);

        triggers(c, true);
        free(id2);
        free(id3);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* ---- what is not a break ---------------------------------------------------------------------- */

static void test_unfinished_not_a_break(void **state) {
        (void) state;
        char *ci, *pol, *out;
        PGconn *c = receipts_db("rc_unfinished", &ci, &pol);
        run_ok(pol, ci);
        /* an engine killed in the middle of a rule: run and rule run rows that never finished, as
         * trail_run_begin and trail_rule_begin leave them */
        pgtest_exec(c, "INSERT INTO retention.runs (host, version, mode) VALUES ('h', 'v', 'daemon')");
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, rows_deleted, batches)"
                       " VALUES (2, 'logs', 'c', 'app.logs', 'delete', 100, 1)");
        /* ... and one the daemon later marked interrupted after losing its connection */
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action) VALUES (2, 'tickets', 'c', 'app.tickets', 'delete')");
        pgtest_exec(c, "UPDATE retention.rule_runs SET outcome = 'interrupted', finished_at = clock_timestamp(),"
                       " error = 'the connection to the database was lost' WHERE run_id = 2 AND rule = 'tickets'");
        char b[16];
        assert_string_equal(sqlstate_of(c, "SELECT retention.seal_rule_run((SELECT id FROM retention.rule_runs WHERE run_id = 2"
                                           " AND rule = 'logs'))", b, sizeof(b)), "55000");

        rt_expect(0, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "chain OK: 2 sealed rule runs, last hash ");
        rt_assert_contains(out, "2 rule runs are outside the chain: still running, or never finished (not a break)\n");
        free(out);
        rt_expect(0, &out, NULL, "-d", ci, "receipt", "2");
        rt_assert_contains(out, "  finished:   - (not finished)\n");
        rt_assert_contains(out, "  chain:      not sealed (the rule run never finished)\n");
        rt_assert_contains(out, "\nchain: no rule run of this run is sealed; nothing to verify\n");
        free(out);
        rt_expect(0, &out, NULL, "-d", ci, "receipt", "2", "--json");
        rt_assert_contains(out, "\"chain\":null");
        rt_assert_contains(out, "\"chain\":{\"verified\":null,\"up_to_seq\":null,\"checked\":0,\"break\":null,\"detail\":null}}\n");
        free(out);

        /* the next run goes on from the chain's head */
        run_ok(pol, ci);
        rt_assert_sql(c, "3,4", "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM retention.rule_runs WHERE run_id = 3");
        rt_assert_sql(c, "t", "SELECT r.prev_hash = p.hash FROM retention.rule_runs r, retention.rule_runs p"
                              " WHERE r.seq = 3 AND p.seq = 2");
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "chain OK: 4 sealed rule runs");
        free(out);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* ---- concurrency -------------------------------------------------------------------------------- */

typedef struct Sealer {
        const char *conninfo;
        long long first, last; /* rule run ids to seal, in order */
        int failures;
        char error[256];
} Sealer;

static void *sealer(void *arg) {
        Sealer *s = arg;
        PGconn *c = PQconnectdb(s->conninfo);
        if (PQstatus(c) != CONNECTION_OK) {
                snprintf(s->error, sizeof(s->error), "%s", PQerrorMessage(c));
                s->failures++;
                PQfinish(c);
                return NULL;
        }
        for (long long id = s->first; id <= s->last; id++) {
                char sql[128];
                snprintf(sql, sizeof(sql), "SELECT * FROM retention.seal_rule_run(%lld)", id);
                PGresult *r = PQexec(c, sql);
                if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                        snprintf(s->error, sizeof(s->error), "%s", PQresultErrorMessage(r));
                        s->failures++;
                }
                PQclear(r);
        }
        PQfinish(c);
        return NULL;
}

static void finished_rule_runs(PGconn *c, int n) {
        pgtest_exec(c, "INSERT INTO retention.runs (host, version, mode) VALUES ('h', 'v', 'run')");
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, finished_at, outcome,"
                       " rows_deleted) SELECT (SELECT max(id) FROM retention.runs), 'r' || i, 'c', 'app.t', 'delete',"
                       " clock_timestamp(), 'success', i FROM generate_series(1, %d) i",
                    n);
}

static void test_concurrent_seals(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("rc_concurrent", &ci);
        /* Only one enforcement run per database at a time (the advisory lock), so two engines'
         * seals are emulated by two sessions calling the engine's seal at the same time. */
        finished_rule_runs(c, 2);
        PGconn *a = pgtest_connect(ci), *b = pgtest_connect(ci);
        pgtest_exec(a, "BEGIN");
        char *ha = pgtest_value(a, "SELECT encode(sealed_hash, 'hex') FROM retention.seal_rule_run(1)");
        assert_int_equal(PQsendQuery(b, "SELECT sealed_seq, encode(sealed_hash, 'hex') FROM retention.seal_rule_run(2)"), 1);
        /* b waits for a's lock on the chain's head */
        int waited = 0;
        for (; waited < 500; waited++) {
                char *w = pgtest_value(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
                                       PQbackendPID(b));
                bool waiting = strcmp(w, "1") == 0;
                free(w);
                if (waiting)
                        break;
                usleep(10000);
        }
        assert_true(waited < 500);
        pgtest_exec(a, "COMMIT");
        PGresult *r = PQgetResult(b);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "2");
        PQclear(r);
        assert_null(PQgetResult(b));
        rt_assert_sql(c, ha, "SELECT encode(prev_hash, 'hex') FROM retention.rule_runs WHERE id = 2");
        free(ha);
        PQfinish(a);
        PQfinish(b);

        /* two sessions sealing 150 rule runs each, interleaved */
        finished_rule_runs(c, 300);
        Sealer s[2] = { { ci, 3, 152, 0, "" }, { ci, 153, 302, 0, "" } };
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&t[i], NULL, sealer, &s[i]), 0);
        for (int i = 0; i < 2; i++) {
                pthread_join(t[i], NULL);
                if (s[i].failures)
                        print_error("sealer %d: %d failures: %s\n", i, s[i].failures, s[i].error);
                assert_int_equal(s[i].failures, 0);
        }
        /* one linear chain: positions 1..302 without a gap, each linked to the one before */
        rt_assert_sql(c, "302/302/1/302", "SELECT count(*) || '/' || count(DISTINCT seq) || '/' || min(seq) || '/' || max(seq)"
                                          " FROM retention.rule_runs");
        rt_assert_sql(c, "301", "SELECT count(*) FROM retention.rule_runs r JOIN retention.rule_runs p ON p.seq = r.seq - 1"
                                " WHERE r.prev_hash = p.hash");
        /* and they really interleaved (not one session after the other) — usually; not asserted */
        char *out;
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "chain OK: 302 sealed rule runs");
        free(out);
        PQfinish(c);
        free(ci);
}

/* ---- the receipt -------------------------------------------------------------------------------- */

typedef struct RuleRunRow {
        char *id, *cutoff, *started, *finished, *batches, *seq, *prev, *hash, *sealed;
} RuleRunRow;

static char *row_value(PGconn *c, const char *expr, const char *rule, int run) {
        return pgtest_value(c, "SELECT %s FROM retention.rule_runs WHERE rule = '%s' AND run_id = %d", expr, rule, run);
}

static void row_load(PGconn *c, const char *rule, int run, RuleRunRow *r) {
        r->id = row_value(c, "id", rule, run);
        r->cutoff = row_value(c, "cutoff::text", rule, run);
        r->started = row_value(c, "started_at::text", rule, run);
        r->finished = row_value(c, "finished_at::text", rule, run);
        r->batches = row_value(c, "batches", rule, run);
        r->seq = row_value(c, "seq", rule, run);
        r->prev = row_value(c, "encode(prev_hash, 'hex')", rule, run);
        r->hash = row_value(c, "encode(hash, 'hex')", rule, run);
        r->sealed = row_value(c, "sealed_at::text", rule, run);
}

static void row_done(RuleRunRow *r) {
        free(r->id);
        free(r->cutoff);
        free(r->started);
        free(r->finished);
        free(r->batches);
        free(r->seq);
        free(r->prev);
        free(r->hash);
        free(r->sealed);
}

static void test_receipt(void **state) {
        (void) state;
        char *ci, *pol, *out, *err;
        PGconn *c = receipts_db("rc_receipt", &ci, &pol);
        run_ok(pol, ci);
        run_ok(pol, ci);
        /* the engine's session shows timestamps in the server's time zone: UTC in the test cluster */
        pgtest_exec(c, "SET TimeZone = 'UTC'");
        char *host = pgtest_value(c, "SELECT host FROM retention.runs WHERE id = 1");
        char *version = pgtest_value(c, "SELECT version FROM retention.runs WHERE id = 1");
        char *rstart = pgtest_value(c, "SELECT started_at::text FROM retention.runs WHERE id = 1");
        char *rend = pgtest_value(c, "SELECT finished_at::text FROM retention.runs WHERE id = 1");
        RuleRunRow l, t;
        row_load(c, "logs", 1, &l);
        row_load(c, "tickets", 1, &t);
        assert_string_equal(l.seq, "1");
        assert_string_equal(t.seq, "2");
        assert_null(l.prev);

        char *json = rt_asprintf(
                "{\"run_id\":1,\"host\":\"%s\",\"version\":\"%s\",\"mode\":\"run\",\"started_at\":\"%s\",\"finished_at\":\"%s\","
                "\"outcome\":\"success\",\"rules_total\":2,\"rules_failed\":0,\"rules\":["
                "{\"rule_run_id\":%s,\"rule\":\"logs\",\"clause\":\"Privacy policy 4.2: access logs are kept 7 days\","
                "\"table\":\"app.logs\",\"action\":\"delete\",\"cutoff\":\"%s\",\"started_at\":\"%s\",\"finished_at\":\"%s\","
                "\"rows_deleted\":10,\"rows_anonymised\":0,\"rows_held\":0,\"held_by\":{},\"rows_skipped\":0,"
                "\"rows_skipped_locked\":0,\"rows_skipped_fk\":0,\"skipped_fk_by\":{},\"rows_overdue\":0,"
                "\"partitions_dropped\":0,\"batches\":%s,\"outcome\":\"success\",\"sqlstate\":null,\"error\":null,"
                "\"chain\":{\"seq\":1,\"prev_hash\":null,\"hash\":\"%s\",\"sealed_at\":\"%s\",\"verified\":true}},"
                "{\"rule_run_id\":%s,\"rule\":\"tickets\",\"clause\":\"Privacy policy 5.1: support tickets are kept 1 year\","
                "\"table\":\"app.tickets\",\"action\":\"delete\",\"cutoff\":\"%s\",\"started_at\":\"%s\",\"finished_at\":\"%s\","
                "\"rows_deleted\":4,\"rows_anonymised\":0,\"rows_held\":2,\"held_by\":{\"legal\":2},\"rows_skipped\":0,"
                "\"rows_skipped_locked\":0,\"rows_skipped_fk\":0,\"skipped_fk_by\":{},\"rows_overdue\":0,"
                "\"partitions_dropped\":0,\"batches\":%s,\"outcome\":\"success\",\"sqlstate\":null,\"error\":null,"
                "\"chain\":{\"seq\":2,\"prev_hash\":\"%s\",\"hash\":\"%s\",\"sealed_at\":\"%s\",\"verified\":true}}],"
                "\"chain\":{\"verified\":true,\"up_to_seq\":2,\"checked\":2,\"break\":null,\"detail\":null}}\n",
                host, version, rstart, rend, l.id, l.cutoff, l.started, l.finished,
                l.batches, l.hash, l.sealed, t.id, t.cutoff, t.started, t.finished, t.batches, l.hash, t.hash, t.sealed);
        char *env[] = { "PGTZ=UTC", NULL };
        const char *args[] = { "-d", ci, "receipt", "1", "--json", NULL };
        assert_int_equal(rt_runv(&out, &err, (const char *const *) env, args), 0);
        assert_string_equal(out, json);
        free(out);
        free(err);
        free(json);

        const char *targs[] = { "-d", ci, "receipt", "1", NULL };
        assert_int_equal(rt_runv(&out, &err, (const char *const *) env, targs), 0);
        char *head = rt_asprintf("deletion receipt: run 1\n"
                                 "  host:       %s\n"
                                 "  version:    retentiond %s\n"
                                 "  mode:       run\n"
                                 "  started:    %s\n"
                                 "  finished:   %s\n"
                                 "  outcome:    success (2 rules, 0 failed)\n"
                                 "\n"
                                 "rule logs — \"Privacy policy 4.2: access logs are kept 7 days\"\n"
                                 "  rule run:   %s\n"
                                 "  table:      app.logs\n"
                                 "  action:     delete\n"
                                 "  cutoff:     %s\n",
                                 host, version, rstart, rend, l.id, l.cutoff);
        if (strncmp(out, head, strlen(head)) != 0) {
                print_error("receipt:\n%s\nexpected it to begin with:\n%s\n", out, head);
                fail();
        }
        char *tickets = rt_asprintf("rule tickets — \"Privacy policy 5.1: support tickets are kept 1 year\"\n"
                                    "  rule run:   %s\n"
                                    "  table:      app.tickets\n"
                                    "  action:     delete\n"
                                    "  cutoff:     %s\n"
                                    "  started:    %s\n"
                                    "  finished:   %s\n"
                                    "  deleted:    4\n"
                                    "  anonymised: 0\n"
                                    "  held:       2\n"
                                    "    by legal                    2\n"
                                    "  skipped:    0 (locked or changing 0, still referenced 0)\n"
                                    "  overdue:    0\n"
                                    "  partitions dropped: 0\n"
                                    "  outcome:    success\n"
                                    "  chain:      #2, sealed %s\n"
                                    "  hash:       %s\n"
                                    "  prev hash:  %s\n"
                                    "\n"
                                    "chain: verifies from #1 to #2 (the last rule run of this run)\n",
                                    t.id, t.cutoff, t.started, t.finished, t.sealed, t.hash, l.hash);
        rt_assert_contains(out, tickets);
        rt_assert_contains(out, "  prev hash:  - (first in the chain)\n");
        /* nothing from the application's rows: no key of a held account, no ticket id */
        rt_assert_not_contains(out, "account");
        rt_assert_not_contains(out, "case 7");
        free(tickets);
        free(head);
        free(out);
        free(err);

        /* usage and unknown runs */
        rt_expect(66, NULL, &err, "-d", ci, "receipt", "99");
        rt_assert_contains(err, "run 99 does not exist");
        free(err);
        rt_expect(64, NULL, &err, "-d", ci, "receipt", "one");
        rt_assert_contains(err, "invalid RUN_ID");
        free(err);
        rt_expect(64, NULL, &err, "-d", ci, "receipt");
        rt_assert_contains(err, "receipt needs a RUN_ID");
        free(err);

        /* a receipt whose chain no longer verifies up to it */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.rule_runs SET rows_held = 0 WHERE id = %s", t.id);
        rt_expect(1, &out, NULL, "-d", ci, "receipt", "1");
        rt_assert_contains(out, " — DOES NOT VERIFY\n");
        char *broken = rt_asprintf("\nchain: BROKEN at #2, before the end of this run: rule run %s (run 1, rule tickets) was"
                                   " changed after it was sealed\n", t.id);
        rt_assert_contains(out, broken);
        free(broken);
        free(out);
        rt_expect(1, &out, NULL, "-d", ci, "receipt", "1", "--json");
        rt_assert_contains(out, "\"verified\":true}},{");
        rt_assert_contains(out, "\"verified\":false}}],\"chain\":{\"verified\":false,\"up_to_seq\":2,\"checked\":1,");
        free(out);
        /* the run before the break is still fine; verify reports the break */
        rt_expect(1, NULL, NULL, "-d", ci, "verify");
        triggers(c, true);

        row_done(&l);
        row_done(&t);
        free(host);
        free(version);
        free(rstart);
        free(rend);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* ---- migration, guards, role ------------------------------------------------------------------- */

static void test_migrate_1_to_2(void **state) {
        (void) state;
        char *ci = pgtest_create_db(rt_pg, "rc_migrate");
        PGconn *c = pgtest_connect(ci);
        /* a version 1 database, as `retentiond migrate` of version 1 left it, with a trail: run 1
         * finished; run 2 died in its second rule */
        pgtest_exec_file(c, "sql/retention/001-init.sql");
        pgtest_exec(c, "INSERT INTO retention.runs (host, version, mode, finished_at, outcome, rules_total)"
                       " VALUES ('old', '0.9', 'daemon', now(), 'success', 2)");
        pgtest_exec(c, "INSERT INTO retention.runs (host, version, mode) VALUES ('old', '0.9', 'daemon')");
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, finished_at, outcome,"
                       " rows_deleted, rows_held) VALUES"
                       " (1, 'logs', 'c1', 'app.logs', 'delete', now(), 'success', 5, 0),"
                       " (1, 'tickets', 'c2', 'app.tickets', 'delete', now(), 'success', 3, 2),"
                       " (2, 'logs', 'c1', 'app.logs', 'delete', now(), 'success', 1, 0),"
                       " (2, 'tickets', 'c2', 'app.tickets', 'delete', NULL, 'running', 0, 0)");
        pgtest_exec(c, "INSERT INTO retention.rule_run_holds VALUES (2, 'legal', 2)");
        pgtest_exec(c, "CREATE SCHEMA app");
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.logs VALUES (1, now() - interval '30 days')");
        char *pol = rt_policy("version: 1\nrules:\n  logs:\n    clause: \"c1\"\n    table: app.logs\n    column: at\n"
                              "    retain: 7 days\n    action: delete\n");

        char *out, *err;
        rt_expect(78, NULL, &err, "-p", pol, "-d", ci, "run");
        rt_assert_contains(err, "retention schema version 1 is not supported");
        rt_assert_contains(err, "Run \"retentiond migrate\" to upgrade the schema.");
        free(err);
        rt_expect(78, NULL, &err, "-d", ci, "verify");
        rt_assert_contains(err, "retention schema version 1 is not supported");
        free(err);

        rt_expect(0, &out, NULL, "-d", ci, "migrate", "--json");
        assert_string_equal(out, "{\"schema_version\":4,\"previous_version\":1,\"migrations_applied\":3}\n");
        free(out);
        /* the finished rule runs are sealed in id order; the one that died is not */
        rt_assert_sql(c, "1,2,3,-", "SELECT string_agg(coalesce(seq::text, '-'), ',' ORDER BY id) FROM retention.rule_runs");
        rt_assert_sql(c, "3", "SELECT count(*) FROM retention.rule_runs r WHERE hash = retention.rule_run_digest(r)");
        rt_assert_sql(c, "3", "SELECT seq FROM retention.chain_head");
        rt_assert_sql(c, "t", "SELECT min(sealed_at) >= (SELECT applied_at FROM retention.schema_version WHERE version = 2)"
                              " FROM retention.rule_runs");
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        char *h3 = hash_at(c, 3);
        char *expect = rt_asprintf("chain OK: 3 sealed rule runs, last hash %s\n"
                                   "1 rule run is outside the chain: still running, or never finished (not a break)\n",
                                   h3);
        assert_string_equal(out, expect);
        free(expect);
        free(out);
        rt_expect(0, &out, NULL, "-d", ci, "migrate");
        rt_assert_contains(out, "already at version 4");
        free(out);

        /* the next run appends to the chain */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_sql(c, "4", "SELECT seq FROM retention.rule_runs WHERE run_id = 3");
        rt_assert_sql(c, h3, "SELECT encode(prev_hash, 'hex') FROM retention.rule_runs WHERE seq = 4");
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "chain OK: 4 sealed rule runs");
        free(out);
        /* the migration applied twice (the file is idempotent) changes nothing */
        pgtest_exec_file(c, "sql/retention/002-receipts.sql");
        rt_assert_sql(c, "4", "SELECT seq FROM retention.chain_head");
        rt_expect(0, NULL, NULL, "-d", ci, "verify");

        free(h3);
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_append_only(void **state) {
        (void) state;
        char *ci, *pol, b[16];
        PGconn *c = receipts_db("rc_guards", &ci, &pol);
        run_ok(pol, ci);
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action) VALUES (1, 'x', 'c', 't', 'delete')");
        struct {
                const char *sql, *state;
        } cases[] = {
                { "UPDATE retention.rule_runs SET error = 'x' WHERE seq = 1", "42501" },
                { "UPDATE retention.rule_runs SET seq = NULL, hash = NULL, prev_hash = NULL, sealed_at = NULL WHERE seq = 2", "42501" },
                { "DELETE FROM retention.rule_runs WHERE seq = 2", "42501" },
                { "DELETE FROM retention.rule_runs WHERE seq IS NULL", "42501" },
                { "TRUNCATE retention.rule_runs CASCADE", "42501" },
                { "INSERT INTO retention.rule_run_holds SELECT id, 'other', 1 FROM retention.rule_runs WHERE seq = 2", "42501" },
                { "UPDATE retention.rule_run_holds SET rows = 7", "42501" },
                { "DELETE FROM retention.rule_run_holds", "42501" },
                { "INSERT INTO retention.rule_run_fk SELECT id, 'app.x', 1 FROM retention.rule_runs WHERE seq = 1", "42501" },
                { "TRUNCATE retention.rule_run_fk", "42501" },
                { "UPDATE retention.runs SET host = 'x'", "42501" },
                { "UPDATE retention.runs SET started_at = now()", "42501" },
                { "DELETE FROM retention.runs", "42501" },
                { "TRUNCATE retention.runs CASCADE", "42501" },
                /* what the engine does: an unsealed rule run and a run's end may change */
                { "UPDATE retention.rule_runs SET batches = batches + 1 WHERE seq IS NULL", "ok" },
                { "INSERT INTO retention.rule_run_holds SELECT id, 'legal', 1 FROM retention.rule_runs WHERE seq IS NULL", "ok" },
                { "UPDATE retention.runs SET outcome = 'success', finished_at = now()", "ok" },
                /* a seal needs a finished rule run; sealing again returns the same seal */
                { "SELECT retention.seal_rule_run((SELECT id FROM retention.rule_runs WHERE seq IS NULL))", "55000" },
                { "SELECT retention.seal_rule_run(4242)", "P0002" },
                /* the seal's columns only together */
                { "UPDATE retention.rule_runs SET seq = 9 WHERE seq IS NULL", "23514" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *got = sqlstate_of(c, cases[i].sql, b, sizeof(b));
                if (strcmp(got, cases[i].state) != 0) {
                        print_error("%s: %s, expected %s\n", cases[i].sql, got, cases[i].state);
                        fail();
                }
        }
        rt_assert_sql(c, "1/true", "SELECT s.sealed_seq || '/' || (s.sealed_hash = r.hash) FROM retention.rule_runs r,"
                                " retention.seal_rule_run(r.id) s WHERE r.seq = 1");
        rt_assert_sql(c, "2", "SELECT seq FROM retention.chain_head");
        rt_expect(0, NULL, NULL, "-d", ci, "verify");
        free(pol);
        PQfinish(c);
        free(ci);
}

static void test_engine_role(void **state) {
        (void) state;
        char *ci, *pol, *out, b[16];
        PGconn *c = receipts_db("rc_role", &ci, &pol);
        /* the grants of sql/retentiond-role.sql, and nothing on chain_head but SELECT */
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE rc_engine LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        pgtest_exec(c, "GRANT USAGE ON SCHEMA retention, app TO rc_engine");
        pgtest_exec(c, "GRANT SELECT ON retention.schema_version, retention.chain_head TO rc_engine");
        pgtest_exec(c, "GRANT SELECT, INSERT, UPDATE ON retention.runs, retention.rule_runs, retention.rule_run_holds,"
                       " retention.rule_run_fk, retention.holds TO rc_engine");
        pgtest_exec(c, "GRANT SELECT, INSERT ON retention.hold_events TO rc_engine");
        pgtest_exec(c, "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA retention TO rc_engine");
        pgtest_exec(c, "GRANT SELECT, UPDATE, DELETE ON app.logs, app.tickets TO rc_engine");
        pgtest_exec(c, "GRANT SELECT ON app.accounts TO rc_engine");
        char *eci = rt_asprintf("%s user=rc_engine", ci);

        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "2", "SELECT count(*) FROM retention.rule_runs WHERE seq IS NOT NULL");
        rt_expect(0, &out, NULL, "-d", eci, "verify");
        rt_assert_contains(out, "chain OK: 2 sealed rule runs");
        free(out);
        rt_expect(0, NULL, NULL, "-d", eci, "receipt", "1");

        /* the role cannot move the head, nor edit a sealed rule run */
        PGconn *e = pgtest_connect(eci);
        assert_string_equal(sqlstate_of(e, "UPDATE retention.chain_head SET seq = 0, hash = NULL", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(e, "UPDATE retention.rule_runs SET rows_deleted = 0", b, sizeof(b)), "42501");
        PQfinish(e);
        free(eci);
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sealed_after_runs),
                cmocka_unit_test(test_serialization),
                cmocka_unit_test(test_edit_detected),
                cmocka_unit_test(test_delete_detected),
                cmocka_unit_test(test_rewritten_and_reordered),
                cmocka_unit_test(test_unfinished_not_a_break),
                cmocka_unit_test(test_concurrent_seals),
                cmocka_unit_test(test_receipt),
                cmocka_unit_test(test_migrate_1_to_2),
                cmocka_unit_test(test_append_only),
                cmocka_unit_test(test_engine_role),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
