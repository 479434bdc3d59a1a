/* test-pace.c — pacing (--pace): while another session writes, `run` waits pace x each batch's
 * duration after it and compresses its WAL; on a database nobody else writes to, it never waits
 * and leaves wal_compression alone; --pace 0 does neither.
 * The writer is a real second connection committing inserts (writer.h); the waits are read
 * back from the JSON report (paused_usec), the deletions from the table and the audit trail.
 * And the adaptive batch size where a row costs milliseconds: where it starts on a table other
 * tables refer to, and how fast it shrinks after a batch far over its aim. */
#include "rtest.h"
#include "writer.h"

#define ROWS 20000

static const char *POLICY =
        "version: 1\n"
        "rules:\n"
        "  logs:\n"
        "    clause: \"access logs are kept 7 days\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "    batch_size: 500\n"
        "    max_fraction: 100%\n";

static int setup(void **state) {
        int r = rt_group_setup(state);
        if (r)
                return r;
        /* Autovacuum's ANALYZE takes transaction ids too: keep this cluster's only writers ours. */
        char *ci = pgtest_create_db(rt_pg, "pace_setup");
        PGconn *c = pgtest_connect(ci);
        pgtest_exec(c, "ALTER SYSTEM SET autovacuum = off");
        pgtest_exec(c, "SELECT pg_reload_conf()");
        PQfinish(c);
        free(ci);
        return 0;
}

static PGconn *make_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, ip inet)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - interval '8 days' - g * interval '1 second', '192.0.2.1'"
                       " FROM generate_series(1, %d) g",
                    ROWS);
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - g * interval '1 second', '192.0.2.2'"
                       " FROM generate_series(1, 100) g");
        pgtest_exec(c, "CREATE TABLE public.writer_noise (id bigserial PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "ANALYZE app.logs");
        /* Every statement of this database's sessions into the server log: the test reads back
         * what retentiond's session set. */
        pgtest_exec(c, "ALTER DATABASE %s SET log_min_duration_statement = 0", name);
        return c;
}

static long log_size(void) {
        char *path = rt_asprintf("%s/server.log", pgtest_host(rt_pg));
        struct stat st;
        long n = stat(path, &st) == 0 ? (long) st.st_size : 0;
        free(path);
        return n;
}

/* How many times the server log, from byte `from` on, shows retentiond switching
 * wal_compression on (while others write) or back to the server's setting (`off`). */
static int wal_compression_switches(long from, bool off) {
        char *path = rt_asprintf("%s/server.log", pgtest_host(rt_pg));
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        fseek(f, from, SEEK_SET);
        char line[4096];
        int n = 0;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, off ? "execute <unnamed>: RESET wal_compression"
                                     : "execute <unnamed>: SELECT set_config('wal_compression', $1, false)"))
                        n++;
        fclose(f);
        free(path);
        return n;
}

static long long json_int(const char *json, const char *key) {
        char *k = rt_asprintf("\"%s\":", key);
        const char *p = strstr(json, k);
        if (!p)
                fail_msg("no %s in %s", k, json);
        p += strlen(k);
        while (*p == ' ')
                p++;
        long long v = strtoll(p, NULL, 10);
        free(k);
        return v;
}

/* Runs the rule with `pace` ("1", "0", ...) while `writer` says; returns the JSON report. */
static char *run(const char *ci, const char *pace, bool writer, long long *commits) {
        char *pol = rt_policy(POLICY);
        Writer *w = writer ? writer_start(ci) : NULL;
        char *out = NULL;
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "--pace", pace, "run");
        long long n = w ? writer_stop(w) : 0;
        if (commits)
                *commits = n;
        free(pol);
        return out;
}

static void test_idle_never_waits(void **state) {
        (void) state;
        char *ci;
        PGconn *c = make_db("pace_idle", &ci);
        long from = log_size();
        char *out = run(ci, "1", false, NULL);
        assert_int_equal(wal_compression_switches(from, false), 0);
        assert_int_equal(wal_compression_switches(from, true), 0);
        assert_int_equal(json_int(out, "rows_deleted"), ROWS);
        assert_true(json_int(out, "batches") >= 10);
        assert_int_equal(json_int(out, "paused_usec"), 0);
        rt_assert_sql(c, "100", "SELECT count(*) FROM app.logs");
        rt_assert_sql(c, "20000", "SELECT rows_deleted FROM retention.rule_runs");
        free(out);
        PQfinish(c);
        free(ci);
}

/* Its own rolled-back transactions are not other sessions' writes: a predicted range that found
 * more rows than batch_size (a dense burst after sparse rows) is rolled back and taken again by
 * the probe; the transaction id it used must not make the next batch wait, nor compress WAL. */
static void test_idle_redone_never_waits(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("pace_redone", &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id bigserial PRIMARY KEY, at timestamptz NOT NULL, ip inet)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        /* 30 days old: 6,000 rows a second apart, 3,000 within 3 seconds, 6,000 a second apart */
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - interval '30 days' + g * interval '1 second', '192.0.2.1'"
                       " FROM generate_series(1, 6000) g");
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - interval '30 days' + interval '6000 seconds'"
                       " + g * interval '1 millisecond', '192.0.2.1' FROM generate_series(1, 3000) g");
        pgtest_exec(c, "INSERT INTO app.logs (at, ip) SELECT now() - interval '30 days' + interval '6010 seconds'"
                       " + g * interval '1 second', '192.0.2.1' FROM generate_series(1, 6000) g");
        pgtest_exec(c, "ANALYZE app.logs");
        pgtest_exec(c, "ALTER DATABASE pace_redone SET log_min_duration_statement = 0");
        long from = log_size();
        char *out = run(ci, "1", false, NULL);
        print_message("redone: %lld batches, %lld predicted, %lld redone, paused %lld us\n", json_int(out, "batches"),
                      json_int(out, "batches_predicted"), json_int(out, "batches_redone"), json_int(out, "paused_usec"));
        assert_int_equal(json_int(out, "rows_deleted"), 15000);
        assert_true(json_int(out, "batches_redone") >= 1);
        assert_int_equal(json_int(out, "paused_usec"), 0);
        assert_int_equal(wal_compression_switches(from, false), 0);
        assert_int_equal(wal_compression_switches(from, true), 0);
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.logs");
        free(out);
        PQfinish(c);
        free(ci);
}

static void test_writer_makes_it_wait(void **state) {
        (void) state;
        char *ci;
        PGconn *c = make_db("pace_writer", &ci);
        long long commits = 0;
        long from = log_size();
        char *out = run(ci, "2", true, &commits);
        /* WAL compressed while the writer wrote, and back to the server's setting at the end:
         * as many resets as switches on. */
        int on = wal_compression_switches(from, false), off = wal_compression_switches(from, true);
        print_message("wal_compression switched on %d times, reset %d times\n", on, off);
        assert_true(on >= 1);
        assert_int_equal(off, on);
        long long paused = json_int(out, "paused_usec");
        long long duration = json_int(strstr(out, "\"paused_usec\""), "duration_usec"); /* the rule's, not the run's */
        print_message("pace 2: paused %lld of %lld us, %lld batches, writer committed %lld\n", paused, duration,
                      json_int(out, "batches"), commits);
        assert_int_equal(json_int(out, "rows_deleted"), ROWS);
        assert_true(commits > 0);
        assert_true(paused > 0);
        /* The waits are part of the rule's time; with pace 2 they are twice its batches' time, a
         * good part of it (the rest: the audit trail, the catalog, the pacing's own reads). */
        assert_true(paused < duration);
        assert_true(paused * 4 > duration);
        rt_assert_sql(c, "100", "SELECT count(*) FROM app.logs");
        rt_assert_sql(c, "20000", "SELECT rows_deleted FROM retention.rule_runs");
        free(out);
        PQfinish(c);
        free(ci);
}

static void test_pace_zero_never_waits(void **state) {
        (void) state;
        char *ci;
        PGconn *c = make_db("pace_zero", &ci);
        long long commits = 0;
        long from = log_size();
        char *out = run(ci, "0", true, &commits);
        assert_int_equal(wal_compression_switches(from, false), 0);
        assert_int_equal(wal_compression_switches(from, true), 0);
        assert_true(commits > 0);
        assert_int_equal(json_int(out, "rows_deleted"), ROWS);
        assert_int_equal(json_int(out, "paused_usec"), 0);
        rt_assert_sql(c, "100", "SELECT count(*) FROM app.logs");
        free(out);
        PQfinish(c);
        free(ci);
}

/* Batch sizes, read back from the rows each transaction deleted: a trigger of the superuser
 * (code retentiond trusts) writes each deleted row's transaction id to app.txlog. `extra` is SQL
 * run after the table is made (a foreign key to it, a slower trigger). */
static PGconn *make_sized_db(const char *name, char **ci, int due, const char *extra) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.items (id bigint PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(c, "CREATE INDEX ON app.items (at)");
        pgtest_exec(c, "INSERT INTO app.items SELECT g, now() - interval '8 days' - g * interval '1 second'"
                       " FROM generate_series(1, %d) g",
                    due);
        pgtest_exec(c, "INSERT INTO app.items SELECT 100000 + g, now() - g * interval '1 second' FROM generate_series(1, 5) g");
        pgtest_exec(c, "CREATE TABLE app.txlog (id bigserial PRIMARY KEY, tx bigint NOT NULL)");
        pgtest_exec(c, "CREATE FUNCTION app.log_tx() RETURNS trigger LANGUAGE plpgsql AS"
                       " $$BEGIN INSERT INTO app.txlog (tx) VALUES (txid_current()); RETURN OLD; END$$");
        pgtest_exec(c, "CREATE TRIGGER log_tx AFTER DELETE ON app.items FOR EACH ROW EXECUTE FUNCTION app.log_tx()");
        if (extra)
                pgtest_exec(c, "%s", extra);
        pgtest_exec(c, "ANALYZE");
        return c;
}

static char *run_sized(const char *ci, int batch_size) {
        char *yaml = rt_asprintf("version: 1\n"
                                 "rules:\n"
                                 "  items:\n"
                                 "    clause: \"items are kept 7 days\"\n"
                                 "    table: app.items\n"
                                 "    column: at\n"
                                 "    retain: 7 days\n"
                                 "    action: delete\n"
                                 "    batch_size: %d\n"
                                 "    max_fraction: 100%%\n",
                                 batch_size);
        char *pol = rt_policy(yaml);
        char *out = NULL;
        rt_expect(0, &out, NULL, "-p", pol, "-d", ci, "--json", "--pace", "0", "run");
        free(pol);
        free(yaml);
        return out;
}

/* Every one of the `due` rows went, as the report and the trail say, and the 5 young ones stayed. */
static void assert_all_deleted(PGconn *c, const char *out, int due) {
        char n[16];
        snprintf(n, sizeof(n), "%d", due);
        assert_int_equal(json_int(out, "rows_deleted"), due);
        rt_assert_sql(c, n, "SELECT rows_deleted FROM retention.rule_runs WHERE outcome = 'success'");
        rt_assert_sql(c, "5", "SELECT count(*) FROM app.items");
}

/* The rows the n-th transaction (0: the first) deleted. A probed range of a batch of n rows ends
 * at the n-th row's age, which it excludes: n - 1 rows. */
#define NTH_BATCH_SQL "SELECT count(*) FROM app.txlog WHERE tx = (SELECT tx FROM app.txlog GROUP BY tx ORDER BY min(id) OFFSET %d LIMIT 1)"

/* A table a foreign key refers to: every row deleted costs a lookup in the referencing table, in
 * each of its partitions (milliseconds a row with many), so the first batch starts at the least
 * (100 rows) and grows from there; a table nothing refers to starts at 1,000 (here: all 300). */
static void test_referenced_table_starts_small(void **state) {
        (void) state;
        char *ci;
        PGconn *c = make_sized_db("pace_referenced", &ci, 300,
                                  "CREATE TABLE app.refs (id bigint PRIMARY KEY, item bigint REFERENCES app.items (id));"
                                  " INSERT INTO app.refs VALUES (1, 100001)");
        char *out = run_sized(ci, 5000);
        assert_all_deleted(c, out, 300);
        rt_assert_sql(c, "99", NTH_BATCH_SQL, 0);
        assert_true(json_int(out, "batches") >= 2);
        free(out);
        PQfinish(c);
        free(ci);

        c = make_sized_db("pace_unreferenced", &ci, 300, NULL);
        out = run_sized(ci, 5000);
        assert_all_deleted(c, out, 300);
        rt_assert_sql(c, "300", NTH_BATCH_SQL, 0); /* all there are: the range has no upper end */
        free(out);
        PQfinish(c);
        free(ci);
}

/* A batch far over its aim (999 rows at 0.5 ms each, half a second against 6 ms) held its row
 * locks that long: the next is sized from its rate at once (the least, 100 rows), not halved to
 * 500. All 1,300 due rows still go. */
static void test_slow_batch_shrinks_at_once(void **state) {
        (void) state;
        char *ci;
        PGconn *c = make_sized_db("pace_slow", &ci, 1300,
                                  "CREATE FUNCTION app.slow() RETURNS trigger LANGUAGE plpgsql AS"
                                  " $$BEGIN PERFORM pg_sleep(0.0005); RETURN OLD; END$$;"
                                  " CREATE TRIGGER slow BEFORE DELETE ON app.items FOR EACH ROW EXECUTE FUNCTION app.slow()");
        char *out = run_sized(ci, 1000);
        assert_all_deleted(c, out, 1300);
        rt_assert_sql(c, "999", NTH_BATCH_SQL, 0);
        rt_assert_sql(c, "t", "SELECT (" NTH_BATCH_SQL ") <= 110", 1);
        free(out);
        PQfinish(c);
        free(ci);
}

static void test_bad_values(void **state) {
        (void) state;
        char *err = NULL;
        rt_expect(64, NULL, &err, "--pace", "-1", "run");
        assert_string_equal(err, "retentiond: invalid value for --pace: \"-1\"\n"
                                 "HINT:  Give a number from 0 (never wait) to 100, such as 0.5 or 1.\n");
        free(err);
        rt_expect(64, NULL, &err, "--pace", "nan", "run");
        rt_assert_contains(err, "invalid value for --pace: \"nan\"");
        free(err);
        rt_expect(64, NULL, &err, "--pace", "101", "run");
        rt_assert_contains(err, "invalid value for --pace: \"101\"");
        free(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_idle_never_waits),
                cmocka_unit_test(test_idle_redone_never_waits),
                cmocka_unit_test(test_writer_makes_it_wait),
                cmocka_unit_test(test_pace_zero_never_waits),
                cmocka_unit_test(test_referenced_table_starts_small),
                cmocka_unit_test(test_slow_batch_shrinks_at_once),
                cmocka_unit_test(test_bad_values),
        };
        return cmocka_run_group_tests(tests, setup, rt_group_teardown);
}
