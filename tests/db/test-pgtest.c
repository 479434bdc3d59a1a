/* test-pgtest.c — proves the db harness: a real PostgreSQL 15 starts, SQL helpers work, the retention
 * schema and the demo data load with exactly the counts the other db tests rely on, and the hold
 * registry is append-only. Must not test the engine itself: that belongs to the enforcement tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pgtest.h"

static PgTest *pg;

static int group_setup(void **state) {
        (void) state;
        pg = pgtest_start();
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        pgtest_stop(pg);
        pg = NULL;
        return 0;
}

static void test_cluster(void **state) {
        (void) state;
        assert_non_null(pgtest_host(pg));
        assert_true(pgtest_port(pg) > 0);

        char *ci = pgtest_create_db(pg, "pgtest_cluster");
        assert_non_null(strstr(ci, "dbname='pgtest_cluster'"));
        PGconn *c = pgtest_connect(ci);

        char *v = pgtest_value(c, "SELECT version()");
        assert_non_null(v);
        assert_true(strncmp(v, "PostgreSQL 15", 13) == 0);
        free(v);

        assert_null(pgtest_value(c, "SELECT NULL::text"));
        assert_int_equal(pgtest_int(c, "SELECT %d + %d", 40, 2), 42);

        pgtest_exec(c, "CREATE TABLE t (x int)");
        pgtest_exec(c, "INSERT INTO t SELECT generate_series(1, %d)", 1000);
        assert_int_equal(pgtest_int(c, "SELECT sum(x) FROM t"), 500500);
        PQfinish(c);

        /* Creating it again gives an empty database, even with a session still connected. */
        PGconn *other = pgtest_connect(ci);
        char *ci2 = pgtest_create_db(pg, "pgtest_cluster");
        PQfinish(other);
        c = pgtest_connect(ci2);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM pg_class WHERE relname = 't'"), 0);
        PQfinish(c);
        free(ci2);
        free(ci);
}

static void test_bool(void **state) {
        (void) state;
        char *ci = pgtest_create_db(pg, "pgtest_bool");
        PGconn *c = pgtest_connect(ci);
        char *v = pgtest_value(c, "SELECT current_setting('server_encoding') = 'UTF8' AND "
                                  "current_setting('fsync') = 'off' AND current_user = 'postgres' AND "
                                  "current_setting('listen_addresses') = ''");
        assert_string_equal(v, "t");
        free(v);
        PQfinish(c);
        free(ci);
}

static PGconn *demo_db(const char *name) {
        char *ci = pgtest_create_db(pg, name);
        PGconn *c = pgtest_connect(ci);
        free(ci);
        pgtest_exec_file(c, "sql/retention/001-init.sql");
        pgtest_exec_file(c, "sql/retention/001-init.sql"); /* idempotent */
        pgtest_exec_file(c, "sql/demo/schema.sql");
        pgtest_exec_file(c, "sql/demo/data.sql");
        return c;
}

static void test_demo_counts(void **state) {
        (void) state;
        PGconn *c = demo_db("pgtest_demo");

        assert_int_equal(pgtest_int(c, "SELECT max(version) FROM retention.schema_version"), 1);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.schema_version"), 1);

        /* access_log */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log"), 20000);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log "
                                       "WHERE requested_at < now() - interval '7 days'"), 4400);
        assert_int_equal(pgtest_int(c, "SELECT max(id) FROM app.access_log "
                                       "WHERE requested_at < now() - interval '7 days'"), 4400);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE family(ip) = 4"), 18000);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE family(ip) = 6"), 1920);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE ip IS NULL"), 80);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE requested_at < now() - "
                                       "interval '7 days' AND ip IS NOT NULL"), 4383);
        /* IPs older than a day are already shortened; the last day's 2250 are not. */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE ip IS NOT NULL AND ip <> "
                                       "network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END))::inet"), 2250);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.access_log WHERE ip IS NOT NULL AND ip <> "
                                       "network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END))::inet "
                                       "AND requested_at < now() - interval '1 day'"), 0);

        /* accounts */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts"), 300);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts WHERE deletion_requested_at < now()"), 39);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts "
                                       "WHERE deletion_requested_at < now() - interval '10 days'"), 34);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts a WHERE deletion_requested_at < now() "
                                       "AND EXISTS (SELECT 1 FROM app.invoices i WHERE i.account_id = a.id "
                                       "AND i.issued_at >= now() - interval '10 years')"), 16);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts a WHERE deletion_requested_at < now() "
                                       "AND EXISTS (SELECT 1 FROM app.support_tickets t WHERE t.account_id = a.id "
                                       "AND t.created_at >= now() - interval '6 years')"), 4);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts a WHERE deletion_requested_at < now() "
                                       "AND EXISTS (SELECT 1 FROM retention.holds h WHERE h.subject = 'account' "
                                       "AND h.subject_key = a.id::text AND h.released_at IS NULL "
                                       "AND (h.expires_at IS NULL OR h.expires_at > now()))"), 3);
        /* no due account is blocked by an old invoice: RESTRICT never refuses, whatever the rule order */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts a WHERE deletion_requested_at < now() "
                                       "AND EXISTS (SELECT 1 FROM app.invoices i WHERE i.account_id = a.id) "
                                       "AND NOT EXISTS (SELECT 1 FROM app.invoices i WHERE i.account_id = a.id "
                                       "AND i.issued_at >= now() - interval '10 years')"), 0);
        /* deletable: due, no young invoice, no young ticket, no active legal hold */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.accounts a WHERE deletion_requested_at < now() "
                                       "AND NOT EXISTS (SELECT 1 FROM app.invoices i WHERE i.account_id = a.id "
                                       "AND i.issued_at >= now() - interval '10 years') "
                                       "AND NOT EXISTS (SELECT 1 FROM app.support_tickets t WHERE t.account_id = a.id "
                                       "AND t.created_at >= now() - interval '6 years') "
                                       "AND NOT EXISTS (SELECT 1 FROM retention.holds h WHERE h.subject = 'account' "
                                       "AND h.subject_key = a.id::text AND h.released_at IS NULL "
                                       "AND (h.expires_at IS NULL OR h.expires_at > now()))"), 19);

        /* the other tables */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.invoices"), 2431);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.invoices "
                                       "WHERE issued_at < now() - interval '10 years'"), 45);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.support_tickets"), 1209);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.support_tickets "
                                       "WHERE created_at < now() - interval '6 years'"), 190);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.support_tickets "
                                       "WHERE created_at < now() - interval '6 years' "
                                       "AND account_id IN (293, 294, 295, 300)"), 5);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.contact_messages"), 1500);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.contact_messages "
                                       "WHERE created_at < now() - interval '6 years'"), 367);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.chat_transcripts"), 904);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM app.chat_transcripts "
                                       "WHERE started_at < now() - interval '6 years'"), 161);

        /* holds */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.holds"), 6);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.hold_events"), 7);
        char *v = pgtest_value(c, "SELECT string_agg(subject_key, ',' ORDER BY id) FROM retention.holds "
                                  "WHERE released_at IS NULL AND (expires_at IS NULL OR expires_at > now())");
        assert_string_equal(v, "293,294,295,300");
        free(v);

        /* statistics exist, so row estimates are not "never analysed" */
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace "
                                       "AND relkind = 'r' AND reltuples >= 0"), 6);
        PQfinish(c);
}

static const char *sqlstate_of(PGconn *c, const char *sql, char *buf, size_t n) {
        PGresult *r = PQexec(c, sql);
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(buf, n, "%s", PQresultStatus(r) == PGRES_COMMAND_OK ? "ok" : s ? s : "?");
        PQclear(r);
        return buf;
}

static void test_holds_append_only(void **state) {
        (void) state;
        char b[16];
        char *ci = pgtest_create_db(pg, "pgtest_holds");
        PGconn *c = pgtest_connect(ci);
        free(ci);
        pgtest_exec_file(c, "sql/retention/001-init.sql");
        pgtest_exec(c, "INSERT INTO retention.holds (subject, subject_key, reason, placed_by) "
                       "VALUES ('account', '7', 'case 1', 'op')");
        pgtest_exec(c, "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (1, 'placed', 'op')");

        assert_string_equal(sqlstate_of(c, "DELETE FROM retention.holds", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "TRUNCATE retention.holds CASCADE", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "UPDATE retention.holds SET reason = 'other'", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "UPDATE retention.holds SET released_at = now()", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "UPDATE retention.holds SET released_at = now(), released_by = 'op', "
                                           "expires_at = now()", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "INSERT INTO retention.holds (subject, subject_key, reason, placed_by) "
                                           "VALUES ('account', '8', '', 'op')", b, sizeof(b)), "23514");
        /* a release is recorded once */
        assert_string_equal(sqlstate_of(c, "UPDATE retention.holds SET released_at = now(), released_by = 'op2'",
                                        b, sizeof(b)), "ok");
        assert_string_equal(sqlstate_of(c, "UPDATE retention.holds SET released_at = now(), released_by = 'op3'",
                                        b, sizeof(b)), "23514");
        assert_string_equal(sqlstate_of(c, "UPDATE retention.hold_events SET by = 'x'", b, sizeof(b)), "42501");
        assert_string_equal(sqlstate_of(c, "DELETE FROM retention.hold_events", b, sizeof(b)), "42501");
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.holds WHERE released_by = 'op2'"), 1);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM retention.hold_events"), 1);
        PQfinish(c);
}

static void test_run(void **state) {
        (void) state;
        char *out = NULL, *err = NULL;
        const char *version[] = { "--version", NULL };
        assert_int_equal(pgtest_run(version, NULL, &out, &err), 0);
        assert_non_null(strstr(out, "retentiond"));
        free(out);
        free(err);

        const char *bogus[] = { "no-such-command", NULL };
        const char *env[] = { "PGHOST=/nonexistent", NULL };
        assert_int_equal(pgtest_run(bogus, env, &out, &err), 64);
        assert_true(strlen(err) > 0);
        free(out);
        free(err);

        assert_int_equal(pgtest_run(version, NULL, NULL, NULL), 0);

        /* Big outputs on both pipes at once, the exit status, a signal: with a shell as the binary. */
        char *bin = strdup(getenv("RETENTIOND_BIN"));
        assert_non_null(bin);
        setenv("RETENTIOND_BIN", "/bin/sh", 1);
        const char *big[] = { "-c", "yes o | head -c 1000000; yes e | head -c 700000 >&2; "
                                    "echo \"$EXTRA\" >&2; exit 3", NULL };
        const char *extra[] = { "EXTRA=marker-42", NULL };
        assert_int_equal(pgtest_run(big, extra, &out, &err), 3);
        assert_int_equal(strlen(out), 1000000);
        assert_int_equal(strlen(err), 700000 + strlen("marker-42\n"));
        assert_non_null(strstr(err, "marker-42"));
        free(out);
        free(err);
        const char *sig[] = { "-c", "kill -TERM $$", NULL };
        assert_int_equal(pgtest_run(sig, NULL, NULL, NULL), 128 + 15);
        setenv("RETENTIOND_BIN", bin, 1);
        free(bin);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cluster),
                cmocka_unit_test(test_bool),
                cmocka_unit_test(test_demo_counts),
                cmocka_unit_test(test_holds_append_only),
                cmocka_unit_test(test_run),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
