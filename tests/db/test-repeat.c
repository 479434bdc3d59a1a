/* test-repeat.c — a run costs what changes (issue 15): a repeat run of an anonymise rule with
 * nothing left to change runs no batch (no row is due), and a row written back into its
 * original form is found again; a delete rule does not walk the rows a foreign key keeps once per
 * batch, and counts them exactly; the count after the run is a set operation that a partitioned
 * referencing table does not turn into a probe of every partition per row; a batch's range
 * predicted from the rows' density is redone when a burst, its time or the breaker's limit says
 * it is too big, and goes to SKIP LOCKED for a row the application holds. As the least-privilege role;
 * exact counts in the run's output and the audit trail. */
#include "rtest.h"

#include <sys/stat.h>

static const char *ANON_POLICY = "version: 1\n"
                                 "rules:\n"
                                 "  logs:\n"
                                 "    clause: \"client data removed after 7 days\"\n"
                                 "    table: app.logs\n"
                                 "    column: at\n"
                                 "    retain: 7 days\n"
                                 "    action: anonymise\n"
                                 "    columns: { ip: truncate_ip, ua: null, email: email_domain, note: { redact: \"[redacted]\" } }\n"
                                 "    max_fraction: 1\n"
                                 "    batch_size: 100\n";

/* app.logs kept 7 days, deleted then. */
static const char *LOGS_POLICY = "version: 1\n"
                                 "rules:\n"
                                 "  logs:\n"
                                 "    clause: \"logs kept 7 days\"\n"
                                 "    table: app.logs\n"
                                 "    column: at\n"
                                 "    retain: 7 days\n"
                                 "    action: delete\n";

/* The rule runs' rows / batches (the first run's adapt to the server's speed) / rows skipped in the
 * trail, newest first. */
#define TRAIL_ANON "SELECT string_agg(rows_anonymised || '/' || CASE WHEN id = 1 THEN 'n' ELSE batches::text END || '/'" \
                   " || rows_skipped || '/' || outcome, ' ' ORDER BY id DESC) FROM retention.rule_runs"

static void test_anonymise_repeat_one_batch(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("repeat_anon", &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz NOT NULL, ip inet, ua text, email text,"
                       " note text)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        /* 3000 due rows (a third of them with NULLs already, a tenth of the IPs already /24),
         * 500 young ones. */
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 minute',"
                       " CASE WHEN i %% 3 = 0 THEN NULL WHEN i %% 10 = 1 THEN ('10.1.' || i %% 200 || '.0/24')::inet"
                       " ELSE ('10.1.' || i %% 200 || '.' || i %% 250 + 1)::inet END,"
                       " CASE WHEN i %% 3 = 1 THEN NULL ELSE 'Mozilla ' || i END, 'user' || i || '@example.org',"
                       " CASE WHEN i %% 3 = 2 THEN NULL ELSE 'note ' || i END FROM generate_series(1, 3000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - i * interval '1 minute', '192.0.2.7', 'ua', 'a@b.c', 'n'"
                       " FROM generate_series(3001, 3500) i");
        pgtest_exec(c, "ANALYZE app.logs");
        char *eci = pgtest_engine_role(ci, "repeat_engine", "app.logs", NULL);
        char *pol = rt_policy(ANON_POLICY);
        char *out;

        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_anonymised\":3000,");
        free(out);
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.logs WHERE at < now() - interval '7 days' AND (ua IS NOT NULL"
                              " OR masklen(ip) <> 24 OR email NOT LIKE '*@%%' OR note <> '[redacted]')");

        /* Nothing left to change: no batch (the check whether any row is due finds none),
         * nothing changed, nothing skipped; the rule run recorded and sealed all the same. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":0,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":0,");
        rt_assert_contains(out, "\"batches\":0,");
        free(out);
        rt_assert_sql(c, "0/0/0/success/true/true", "SELECT rows_anonymised || '/' || batches || '/' || rows_skipped || '/' || outcome"
                                              " || '/' || (seq IS NOT NULL) || '/' || (cutoff IS NOT NULL AND started_at <= finished_at)"
                                              " FROM retention.rule_runs ORDER BY id DESC LIMIT 1");

        /* The application writes one old row back in its original form (and another one's IP
         * only): both are found again, whatever the age of the rows around them, in one batch. */
        pgtest_exec(c, "UPDATE app.logs SET ip = '10.9.8.7', ua = 'again', email = 'x@y.z', note = 'again' WHERE id = 1500");
        pgtest_exec(c, "UPDATE app.logs SET ip = '10.9.8.6' WHERE id = 2999");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_anonymised\":2,\"rows_held\":0,\"rows_skipped\":0,");
        rt_assert_contains(out, "\"batches\":1,");
        free(out);
        rt_assert_sql(c, "10.9.8.0/24|*@y.z|[redacted]|true", "SELECT ip || '|' || email || '|' || note || '|' || (ua IS NULL)"
                                                          " FROM app.logs WHERE id = 1500");
        rt_assert_sql(c, "10.9.8.0/24", "SELECT ip::text FROM app.logs WHERE id = 2999");
        rt_assert_sql(c, "2/1/0/success 0/0/0/success 3000/n/0/success", TRAIL_ANON);
        rt_assert_sql(c, "500", "SELECT count(*) FROM app.logs WHERE ip = '192.0.2.7'");
        rt_expect(0, &out, NULL, "-d", eci, "verify");
        rt_assert_contains(out, "chain OK: 3 sealed rule runs");
        free(out);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* Rows still to anonymise under ANON_POLICY, written independently of the engine's expressions. */
#define ORACLE_TODO "(ua IS NOT NULL OR (ip IS NOT NULL AND (masklen(ip) <> 24 OR ip <> network(ip)))" \
                    " OR (email IS NOT NULL AND email NOT LIKE '*@%%') OR (note IS NOT NULL AND note <> '[redacted]'))"
/* The partial index check -d asks for on app.logs under ANON_POLICY: exactly the engine's "not done". */
static const char *TODO_INDEX =
        "CREATE INDEX CONCURRENTLY ON \"app\".\"logs\" (\"at\") WHERE NOT ((\"ip\" IS NULL OR \"ip\" IS NOT DISTINCT FROM"
        " network(set_masklen(\"ip\", least(masklen(\"ip\"), CASE family(\"ip\") WHEN 4 THEN 24 ELSE 48 END)))::inet) AND"
        " \"ua\" IS NULL AND (\"email\" IS NULL OR \"email\" IS NOT DISTINCT FROM CASE WHEN strpos(\"email\", '@') > 0 THEN"
        " '*@' || split_part(\"email\", '@', -1) ELSE NULL END) AND (\"note\" IS NULL OR \"note\" IS NOT DISTINCT FROM"
        " E'[redacted]'::text));";
#define TODO_IDX_SCANS "SELECT coalesce(sum(s.idx_scan), -1) FROM pg_stat_user_indexes s JOIN pg_index i USING (indexrelid)" \
                       " WHERE i.indrelid = 'app.logs'::regclass AND i.indpred IS NOT NULL"

/* The scenario of the partial index of rows still to anonymise, with it (created from check -d's
 * own words, as an operator would) or without: 12,000 due rows (a quarter already anonymised),
 * 1,000 young ones (half already in the anonymised form). Returns the md5 of every row's values
 * after the runs (ages left out: they are now()-relative). */
static char *todo_index_scenario(const char *name, bool with_index) {
        char *ci;
        PGconn *c = rt_db(name, &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz NOT NULL, ip inet, ua text, email text,"
                       " note text)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 second',"
                       " CASE WHEN i %% 4 = 0 THEN ('10.1.' || i %% 200 || '.0/24')::inet"
                       " ELSE ('10.1.' || i %% 200 || '.' || i %% 250 + 1)::inet END,"
                       " CASE WHEN i %% 4 = 0 THEN NULL ELSE 'Mozilla ' || i END,"
                       " CASE WHEN i %% 4 = 0 THEN '*@example.org' ELSE 'user' || i || '@example.org' END,"
                       " CASE WHEN i %% 4 = 0 THEN '[redacted]' ELSE 'note ' || i END FROM generate_series(1, 12000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - (i %% 100) * interval '1 minute',"
                       " CASE WHEN i %% 2 = 0 THEN '192.0.2.0/24'::inet ELSE '192.0.2.7' END,"
                       " CASE WHEN i %% 2 = 0 THEN NULL ELSE 'ua' END, CASE WHEN i %% 2 = 0 THEN '*@b.c' ELSE 'a@b.c' END,"
                       " CASE WHEN i %% 2 = 0 THEN '[redacted]' ELSE 'n' END FROM generate_series(12001, 13000) i");
        pgtest_exec(c, "ANALYZE app.logs");
        char *eci = pgtest_engine_role(ci, "todo_engine", "app.logs", NULL);
        char *pol = rt_policy(ANON_POLICY);
        char *out, *err;

        /* check -d asks for the index (a table of 13,000 rows), with the statement to paste */
        assert_int_equal(rt_cmd(NULL, &err, "-p", pol, "-d", eci, "check", NULL), 0);
        rt_assert_contains(err, "warning: no partial index of the rows still to anonymise on app.logs, so every run reads"
                                " every due row again, those it anonymised already included; fix: CREATE INDEX");
        const char *at = strstr(err, "fix: ");
        assert_non_null(at);
        at += strlen("fix: ");
        char *fix = strndup(at, strcspn(at, "\n"));
        free(err);
        assert_string_equal(fix, TODO_INDEX);
        /* audit says the same */
        char *want = rt_asprintf("  WARNING: no partial index of the rows still to anonymise on app.logs, so every run reads"
                                 " every due row again, those it anonymised already included; fix: %s\n", TODO_INDEX);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "audit");
        rt_assert_contains(out, want);
        free(out);
        free(want);
        if (with_index) {
                pgtest_exec(c, "%s", fix);
                rt_expect(0, NULL, &err, "-p", pol, "-d", eci, "check");
                rt_assert_not_contains(err, "partial index");
                assert_string_equal(err, "");
                free(err);
                rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "audit");
                rt_assert_not_contains(out, "WARNING");
                free(out);
        }
        free(fix);
        rt_assert_sql(c, with_index ? "t" : "f",
                      "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = 'app.logs'::regclass AND indpred IS NOT NULL)");

        char *young = pgtest_value(c, "SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM app.logs l WHERE id > 12000");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_anonymised\":9000,\"rows_held\":0,\"rows_skipped\":0,");
        free(out);
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.logs WHERE at < now() - interval '7 days' AND " ORACLE_TODO);
        rt_assert_sql(c, "500", "SELECT count(*) FROM app.logs WHERE at >= now() - interval '7 days' AND " ORACLE_TODO);
        rt_assert_sql(c, young, "SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM app.logs l WHERE id > 12000");

        /* Nothing left to change: no batch (no row is due); with the index, the engine's
         * statements read it. */
        char *scans = pgtest_value(c, TODO_IDX_SCANS);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":0,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":0,");
        rt_assert_contains(out, "\"batches\":0,");
        free(out);
        /* the engine's backend reports its statistics as it exits, just after the engine does */
        char *read = NULL;
        for (int i = 0; i < 50; i++) {
                free(read);
                read = pgtest_value(c, "SELECT (" TODO_IDX_SCANS ") > %s AND %s >= 0", scans, scans);
                if (!with_index || strcmp(read, "t") == 0)
                        break;
                usleep(100 * 1000);
        }
        assert_string_equal(read, with_index ? "t" : "f");
        free(read);
        free(scans);

        /* A late old row (written after that run, already past the cutoff, not anonymised) is
         * anonymised; an old row written already anonymised and a row the application anonymised
         * while it was young, now past the cutoff, are neither changed nor counted; young rows
         * are never altered. */
        pgtest_exec(c, "INSERT INTO app.logs VALUES (13001, now() - interval '20 days', '10.9.8.7', 'late', 'x@y.z', 'late'),"
                       " (13002, now() - interval '20 days', '10.9.9.0/24', NULL, '*@y.z', '[redacted]')");
        pgtest_exec(c, "UPDATE app.logs SET at = now() - interval '20 days' WHERE id = 12002");
        char *kept = pgtest_value(c, "SELECT string_agg(l::text, ',' ORDER BY id) FROM app.logs l WHERE id IN (12002, 13002)");
        char *young2 = pgtest_value(c, "SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM app.logs l"
                                       " WHERE at >= now() - interval '7 days'");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":0,\"rows_anonymised\":1,\"rows_held\":0,\"rows_skipped\":0,");
        rt_assert_contains(out, "\"batches\":1,");
        free(out);
        rt_assert_sql(c, "10.9.8.0/24|*@y.z|[redacted]|true", "SELECT ip || '|' || email || '|' || note || '|' || (ua IS NULL)"
                                                          " FROM app.logs WHERE id = 13001");
        rt_assert_sql(c, kept, "SELECT string_agg(l::text, ',' ORDER BY id) FROM app.logs l WHERE id IN (12002, 13002)");
        rt_assert_sql(c, young2, "SELECT md5(string_agg(l::text, ',' ORDER BY id)) FROM app.logs l"
                                 " WHERE at >= now() - interval '7 days'");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.logs WHERE at < now() - interval '7 days' AND " ORACLE_TODO);
        rt_assert_sql(c, "500", "SELECT count(*) FROM app.logs WHERE at >= now() - interval '7 days' AND " ORACLE_TODO);
        rt_assert_sql(c, "1/1/0/success 0/0/0/success 9000/n/0/success", TRAIL_ANON);
        char *digest = pgtest_value(c, "SELECT md5(string_agg(concat_ws('|', id, ip, ua, email, note), ',' ORDER BY id))"
                                       " FROM app.logs");
        free(kept);
        free(young2);
        free(young);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
        return digest;
}

/* With the partial index check -d suggests, a repeat run reads it (not every due row), and the
 * rows it must change are changed all the same; without it, the same statements give the same
 * rows, counts and trail. */
static void test_anonymise_todo_index(void **state) {
        (void) state;
        char *with = todo_index_scenario("todo_with", true);
        char *without = todo_index_scenario("todo_without", false);
        assert_string_equal(with, without);
        free(with);
        free(without);
}

static const char *RENTALS_POLICY = "version: 1\n"
                                    "rules:\n"
                                    "  rentals:\n"
                                    "    clause: \"rentals kept 7 days unless a payment references them\"\n"
                                    "    table: app.rentals\n"
                                    "    column: at\n"
                                    "    retain: 7 days\n"
                                    "    action: delete\n"
                                    "    max_fraction: 1\n"
                                    "    batch_size: 50\n";

/* rentals 1..n over 30 days and now (a tenth of them young), payments partitioned into `parts`
 * day partitions referencing every rental whose id % 10 < refd (NO ACTION). */
static void make_rentals(PGconn *c, int n, int parts, int refd) {
        pgtest_exec(c, "CREATE TABLE app.rentals (id int PRIMARY KEY, at timestamptz NOT NULL, who text)");
        pgtest_exec(c, "CREATE INDEX ON app.rentals (at)");
        char *sql = rt_asprintf("INSERT INTO app.rentals SELECT i, CASE WHEN i %% 10 = 9 THEN now() - interval '1 day'"
                                " ELSE now() - interval '30 days' + i * (interval '20 days' / %d) END, 'who ' || i"
                                " FROM generate_series(1, %d) i",
                                n, n);
        pgtest_exec(c, "%s", sql);
        free(sql);
        pgtest_exec(c, "CREATE TABLE app.payments (id int NOT NULL, rental_id int REFERENCES app.rentals (id),"
                       " paid_at date NOT NULL) PARTITION BY RANGE (paid_at)");
        sql = rt_asprintf("DO $$ BEGIN FOR i IN 0..%d LOOP EXECUTE format('CREATE TABLE app.payments_%%s PARTITION OF"
                          " app.payments FOR VALUES FROM (%%L) TO (%%L)', i, current_date - i, current_date - i + 1);"
                          " END LOOP; END $$",
                          parts - 1);
        pgtest_exec(c, "%s", sql);
        free(sql);
        pgtest_exec(c, "CREATE INDEX ON app.payments (rental_id)");
        sql = rt_asprintf("INSERT INTO app.payments SELECT i, i, current_date - i %% %d FROM generate_series(1, %d) i"
                          " WHERE i %% 10 < %d",
                          parts, n, refd);
        pgtest_exec(c, "%s", sql);
        free(sql);
        pgtest_exec(c, "ANALYZE app.rentals");
        pgtest_exec(c, "ANALYZE app.payments");
}

#define TRAIL_DEL "SELECT string_agg(rows_deleted || '/' || batches || '/' || rows_skipped || '/' || rows_skipped_fk || '/'" \
                  " || outcome, ' ' ORDER BY id DESC) FROM retention.rule_runs"

static void test_delete_repeat_referenced(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("repeat_refs", &ci);
        /* 1000 rentals, 900 due, 300 of them referenced from 60 partitions */
        make_rentals(c, 1000, 60, 3);
        char *eci = pgtest_engine_role(ci, "repeat_engine", "app.rentals", "app.payments");
        char *pol = rt_policy(RENTALS_POLICY);
        char *out;
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":600,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":300,"
                                "\"rows_skipped_locked\":0,\"rows_skipped_fk\":300,");
        free(out);
        /* Nothing to delete: one batch, the 300 still counted, each exactly once. */
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":0,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":300,"
                                "\"rows_skipped_locked\":0,\"rows_skipped_fk\":300,");
        rt_assert_contains(out, "\"batches\":1,");
        free(out);
        /* A payment goes: its rental is deleted by the next run, in one batch. */
        pgtest_exec(c, "DELETE FROM app.payments WHERE rental_id = 500");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":1,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":299,");
        rt_assert_contains(out, "\"batches\":1,");
        free(out);
        rt_assert_sql(c, "1/1/299/299/success 0/1/300/300/success", "SELECT string_agg(rows_deleted || '/' || batches || '/'"
                                                                    " || rows_skipped || '/' || rows_skipped_fk || '/' || outcome,"
                                                                    " ' ' ORDER BY id DESC) FROM retention.rule_runs WHERE id > 1");
        rt_assert_sql(c, "app.payments:299", "SELECT string_agg(referencing_table || ':' || rows, ',') FROM retention.rule_run_fk"
                                             " WHERE rule_run_id = 3");
        rt_assert_sql(c, "399", "SELECT count(*) FROM app.rentals");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* The count after the run, with 60 partitions referencing 8,000 due rows: as a probe per row into
 * every partition it took longer than the statement timeout; as a join it does not. */
static void test_tally_partitioned_references_in_time(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("repeat_tally", &ci);
        make_rentals(c, 20000, 60, 4);
        char *eci = pgtest_engine_role(ci, "repeat_engine", "app.rentals", "app.payments");
        char *pol = rt_policy(RENTALS_POLICY);
        char *out, *err;
        /* 18,000 due, 7,200 of them referenced: the audit and a dry run count them */
        rt_expect(0, &out, &err, "-p", pol, "-d", eci, "--statement-timeout", "1500", "--json", "run", "--dry-run");
        rt_assert_contains(out, "\"rows_skipped_fk\":8000,");
        free(out);
        free(err);
        pgtest_exec(c, "DELETE FROM app.rentals r WHERE at < now() - interval '7 days' AND NOT EXISTS"
                       " (SELECT 1 FROM app.payments p WHERE p.rental_id = r.id)");
        pgtest_exec(c, "ANALYZE app.rentals");
        rt_expect(0, &out, &err, "-p", pol, "-d", eci, "--statement-timeout", "1500", "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":0,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":8000,"
                                "\"rows_skipped_locked\":0,\"rows_skipped_fk\":8000,");
        rt_assert_contains(out, "\"batches\":1,");
        free(out);
        free(err);
        rt_assert_sql(c, "0/1/8000/8000/success", TRAIL_DEL);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

static const char *SLOW_POLICY = "version: 1\n"
                                 "rules:\n"
                                 "  rentals:\n"
                                 "    clause: \"rentals kept 7 days unless a payment references them\"\n"
                                 "    table: app.rentals\n"
                                 "    column: at\n"
                                 "    retain: 7 days\n"
                                 "    action: delete\n"
                                 "    where: \"pg_sleep(0.01) IS NOT NULL\"\n"
                                 "    max_fraction: 1\n";


/* A rule with no row due writes nothing before it knows so: no batch, and its rule run is written
 * whole at its end (begun and finished in one transaction), sealed, with the cutoff PostgreSQL
 * computed and, as its start, the now() that cutoff was computed from, in one statement with the
 * question whether any row is due. Code of another role on
 * such a rule's table is refused all the same (from the run's catalog read). A row that becomes
 * due is then found and deleted by the normal path, whose rule run has the same start. */
static void test_nothing_due_recorded_whole(void **state) {
        (void) state;
        char *ci, *out, *err;
        PGconn *c = rt_db("repeat_idle", &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' FROM generate_series(1, 50) i");
        pgtest_exec(c, "ANALYZE app.logs");
        char *eci = pgtest_engine_role(ci, "idle_engine", "app.logs", NULL);
        char *pol = rt_policy(LOGS_POLICY);

        /* Every statement of the engine's session into the server log: the cutoffs and the
         * question whether any row is due go as one statement (one round trip, one now()). */
        pgtest_exec(c, "ALTER ROLE idle_engine SET log_min_duration_statement = 0");
        char *logpath = rt_asprintf("%s/server.log", pgtest_host(rt_pg));
        struct stat st;
        long from = stat(logpath, &st) == 0 ? (long) st.st_size : 0;
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"outcome\":\"success\",\"rule_run_id\":1,\"rows_deleted\":0,");
        rt_assert_contains(out, "\"batches\":0,");
        free(out);
        int together = 0, apart = 0, probe = 0, code = 0;
        FILE *lf = fopen(logpath, "re");
        assert_non_null(lf);
        fseek(lf, from, SEEK_SET);
        char line[8192];
        while (fgets(line, sizeof(line), lf)) {
                together += strstr(line, "execute <unnamed>: SELECT c.*, (SELECT 1 FROM \"app\".\"logs\" t") != NULL;
                apart += strstr(line, "execute <unnamed>: SELECT (now() - ") != NULL;
                probe += strstr(line, "execute <unnamed>: SELECT (SELECT 1 FROM \"app\".\"logs\" t") != NULL;
                code += strstr(line, "execute <unnamed>: WITH me AS (SELECT oid, rolsuper, rolbypassrls") != NULL;
        }
        fclose(lf);
        free(logpath);
        assert_int_equal(together, 1);
        assert_int_equal(apart, 0);
        assert_int_equal(probe, 0);
        /* A table with no trigger, rule or row-level security: its code of other roles is known
         * to be none without the query that lists it (catalog.c, untrusted_quick_sql); with the
         * trigger below, that query runs and refuses the rule. */
        assert_int_equal(code, 0);
        pgtest_exec(c, "ALTER ROLE idle_engine RESET log_min_duration_statement");
        rt_assert_sql(c, "success/0/0/1/true/true/true",
                      "SELECT outcome || '/' || rows_deleted || '/' || batches || '/' || seq || '/'"
                      " || (cutoff = started_at - interval '7 days') || '/' || (started_at <= finished_at)"
                      " || '/' || (started_at >= (SELECT u.started_at FROM retention.runs u WHERE u.id = run_id))"
                      " FROM retention.rule_runs");
        /* The start is required; the function is the engine role's only way in. */
        PGconn *e = pgtest_connect(eci);
        PGresult *r = PQexec(e, "SELECT retention.begin_rule_run(1, 'r', 'c', 't', 'delete', NULL, now())");
        assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23502");
        PQclear(r);
        PQfinish(e);
        rt_assert_sql(c, "50", "SELECT count(*) FROM app.logs");

        /* Code of another role on the table: refused although nothing is due, and recorded so. */
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE idle_owner NOLOGIN NOSUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL;"
                       " END $$");
        pgtest_exec(c, "CREATE FUNCTION app.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$");
        pgtest_exec(c, "ALTER FUNCTION app.noop() OWNER TO idle_owner");
        pgtest_exec(c, "CREATE TRIGGER noop BEFORE DELETE ON app.logs FOR EACH ROW EXECUTE FUNCTION app.noop()");
        rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "retentiond: error: rule \"logs\" refused: trigger \"noop\" on table app.logs runs code of role"
                                " \"idle_owner\"\n");
        free(err);
        rt_assert_sql(c, "failed/0/2/true", "SELECT outcome || '/' || batches || '/' || seq || '/' || (cutoff IS NULL)"
                                            " FROM retention.rule_runs WHERE id = 2");
        pgtest_exec(c, "DROP TRIGGER noop ON app.logs");

        /* The database's clock two hours ahead of this host's (a now() of its own, searched first
         * by the engine role's sessions): still no row due, and the one statement that computes
         * the cutoffs and asks whether any row is due brings the database's clock back with them;
         * the breaker trips on it as for a rule with rows due, and the rule run is recorded so,
         * not as a success. */
        pgtest_exec(c, "CREATE SCHEMA clockhack");
        pgtest_exec(c, "CREATE FUNCTION clockhack.now() RETURNS timestamptz LANGUAGE sql STABLE"
                       " AS $$ SELECT pg_catalog.now() + interval '2 hours' $$");
        pgtest_exec(c, "GRANT USAGE ON SCHEMA clockhack TO idle_engine");
        pgtest_exec(c, "ALTER ROLE idle_engine SET search_path = clockhack, pg_catalog, public");
        rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "the database clock and this host's clock disagree");
        free(err);
        rt_assert_sql(c, "breaker/0/3/0", "SELECT outcome || '/' || rows_deleted || '/' || seq || '/' || batches"
                                          " FROM retention.rule_runs WHERE id = 3");
        rt_assert_sql(c, "3", "SELECT count(*) FROM retention.rule_runs");
        pgtest_exec(c, "ALTER ROLE idle_engine RESET search_path");

        /* A row due now: found, deleted, and the rule run begun before its batch with the same start. */
        pgtest_exec(c, "UPDATE app.logs SET at = now() - interval '8 days' WHERE id = 7");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":1,");
        free(out);
        rt_assert_sql(c, "success/1/4/true", "SELECT outcome || '/' || rows_deleted || '/' || seq || '/'"
                                             " || (cutoff = started_at - interval '7 days') FROM retention.rule_runs WHERE id = 4");
        rt_assert_sql(c, "49|0", "SELECT count(*) || '|' || count(*) FILTER (WHERE id = 7) FROM app.logs");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");
        free(pol);
        free(eci);
        free(ci);
        PQfinish(c);
}

/* Sequential scans of the audit trail's tables, once the sessions of role `role` have ended and
 * their statistics are in (each backend reports them as it exits), and this session's own (it
 * reports them when it is next idle, at once when asked to; PostgreSQL 15). */
static char *trail_seq_scans(PGconn *c, const char *role, long inserted_runs) {
        pgtest_exec(c, "SELECT pg_stat_force_next_flush()");
        pgtest_exec(c, "DO $$ BEGIN FOR i IN 1..400 LOOP PERFORM pg_stat_clear_snapshot();"
                       " EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = '%s')"
                       " AND (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'retention.runs'::regclass) >= %ld;"
                       " PERFORM pg_sleep(0.025); END LOOP; END $$",
                    role, inserted_runs);
        /* Not a timeout: every session has ended and reported. */
        rt_assert_sql(c, "t", "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE usename = '%s')"
                              " AND (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'retention.runs'::regclass) >= %ld",
                      role, inserted_runs);
        return pgtest_value(c, "SELECT string_agg(relname || '=' || seq_scan, ' ' ORDER BY relname) FROM pg_stat_user_tables"
                               " WHERE schemaname = 'retention' AND relname IN ('runs', 'rule_runs')");
}

/* A trail of two years (20,000 runs, 100,000 rule runs of five rules): the start of a run (any
 * run abandoned by its session?) and `status` (each rule's latest rule runs) read it through its
 * indexes, never the whole of it; the cost of a run must not grow with the trail (schema version 9). */
static void test_trail_read_by_index(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("repeat_trail", &ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' FROM generate_series(1, 50) i");
        char *eci = pgtest_engine_role(ci, "trail_engine", "app.logs", NULL);
        /* The past, written as a superuser past the trail's guards (they refuse finished rows). */
        pgtest_exec(c, "SET session_replication_role = replica");
        pgtest_exec(c, "INSERT INTO retention.runs (host, version, mode, started_at, finished_at, outcome, backend_pid,"
                       " rules_total) SELECT 'old', 'v', 'daemon', now() - g * interval '1 hour',"
                       " now() - g * interval '1 hour' + interval '1 second', 'success', 1, 5 FROM generate_series(20000, 1, -1) g");
        pgtest_exec(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, started_at, finished_at,"
                       " outcome, cutoff) SELECT u.id, r.rule, 'c', 'app.logs', 'delete', u.started_at, u.finished_at,"
                       " 'success', u.started_at - interval '7 days' FROM retention.runs u,"
                       " unnest(ARRAY['logs', 'other-1', 'other-2', 'other-3', 'other-4']) r(rule) ORDER BY u.id, r.rule");
        pgtest_exec(c, "RESET session_replication_role");
        pgtest_exec(c, "VACUUM ANALYZE retention.runs, retention.rule_runs");
        rt_assert_sql(c, "20000/100000", "SELECT (SELECT count(*) FROM retention.runs) || '/' || count(*) FROM retention.rule_runs");
        char *before = trail_seq_scans(c, "trail_engine", 20000);
        char *pol = rt_policy(LOGS_POLICY);

        /* status first: the run's INSERT, seen in the statistics, then comes from the later session */
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "status");
        rt_assert_contains(out, "\"rule\":\"logs\"");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"outcome\":\"success\",\"rule_run_id\":100001,\"rows_deleted\":0,");
        free(out);
        char *after = trail_seq_scans(c, "trail_engine", 20001);
        assert_string_equal(after, before);
        free(before);
        free(after);
        free(pol);
        free(eci);
        free(ci);
        PQfinish(c);
}

/* A statement that exceeds statement_timeout fails the rule with an error that names the statement
 * and the rule, and says what to do; the server's own words in the detail. */
static void test_timeout_names_statement(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("repeat_timeout", &ci);
        make_rentals(c, 1000, 60, 3);
        char *eci = pgtest_engine_role(ci, "repeat_engine", "app.rentals", "app.payments");
        char *pol = rt_policy(SLOW_POLICY);
        char *out, *err;
        /* The dry run counts first: 900 due rows at 10 ms each */
        rt_expect(1, &out, &err, "-p", pol, "-d", eci, "--statement-timeout", "500", "run", "--dry-run");
        rt_assert_contains(out, "  ERROR: the count of the due, held and still referenced rows of rule \"rentals\" (app.rentals)"
                                " exceeded the statement timeout of 500 ms\n"
                                "  DETAIL: canceling statement due to statement timeout\n"
                                "  HINT: Raise --statement-timeout, or make the statement cheaper: \"retentiond audit --sql\""
                                " prints it; indexes on the age column and on the referencing columns of each table that"
                                " references app.rentals let PostgreSQL use them.\n");
        free(out);
        free(err);
        /* A run: whichever statement meets the timeout first is named, with the rule; nothing changed */
        rt_expect(1, &out, &err, "-p", pol, "-d", eci, "--statement-timeout", "500", "run");
        rt_assert_contains(err, " of rule \"rentals\" (app.rentals) exceeded the statement timeout of 500 ms\n"
                                "DETAIL:  canceling statement due to statement timeout\n"
                                "HINT:  Raise --statement-timeout, or make the statement cheaper:");
        free(out);
        free(err);
        rt_assert_sql(c, "1000", "SELECT count(*) FROM app.rentals");
        rt_assert_sql(c, "failed/57014", "SELECT outcome || '/' || sqlstate FROM retention.rule_runs");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* The number after "key": in a --json report (the first rule's). */
static int64_t json_int(const char *out, const char *key) {
        char *k = rt_asprintf("\"%s\":", key);
        const char *p = strstr(out, k);
        assert_non_null(p);
        int64_t v = strtoll(p + strlen(k), NULL, 10);
        free(k);
        return v;
}

/* The table of the predicted-range tests: rows by age, NOT NULL columns, the age index. */
static void make_predict_logs(PGconn *c) {
        pgtest_exec(c, "CREATE TABLE app.logs (id bigint PRIMARY KEY, at timestamptz NOT NULL, note text NOT NULL)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
}

/* Their policy: app.logs deleted after 7 days, with `limits` (YAML lines of the rule). */
static char *predict_policy(const char *limits) {
        char *yaml = rt_asprintf("version: 1\nrules:\n  logs:\n    clause: \"logs kept 7 days\"\n    table: app.logs\n"
                                 "    column: at\n    retain: 7 days\n    action: delete\n    %s", limits);
        char *pol = rt_policy(yaml);
        free(yaml);
        return pol;
}

/* Predicted ranges (fast-path.c): after the first batch, each range's end is the last key plus
 * the width the rows' density says holds a batch. A burst of 300,000 rows within 0.3 s, after
 * rows five minutes apart, lies inside one such range: its DELETE outlasts the guard's statement
 * timeout (60 ms), is rolled back and taken again after the probe. Every due row goes, no other. As the
 * least-privilege role. */
static void test_predicted_range_burst(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("predict_burst", &ci);
        make_predict_logs(c);
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '5 minutes', 'sparse'"
                       " FROM generate_series(1, 3000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '19 days' + i * interval '1 microsecond', 'burst'"
                       " FROM generate_series(3001, 303000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '18 days' + (i - 303000) * interval '7 minutes', 'after'"
                       " FROM generate_series(303001, 305000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '3 days' + (i - 305000) * interval '1 minute', 'young'"
                       " FROM generate_series(305001, 306000) i");
        pgtest_exec(c, "VACUUM ANALYZE app.logs");
        /* The oracle: what is older than 7 days now (no row is within a day of the cutoff). */
        rt_assert_sql(c, "305000", "SELECT count(*) FROM app.logs WHERE at < now() - interval '7 days'");
        char *eci = pgtest_engine_role(ci, "predict_engine", "app.logs", NULL);
        char *pol = predict_policy("max_fraction: 1\n    batch_size: 1000\n");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":305000,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":0,");
        assert_true(json_int(out, "batches_redone") >= 1);
        assert_true(json_int(out, "batches_predicted") >= 100);
        assert_true(json_int(out, "batches_predicted") < json_int(out, "batches"));
        free(out);
        rt_assert_sql(c, "1000/305001/306000/young", "SELECT count(*) || '/' || min(id) || '/' || max(id) || '/' || string_agg(DISTINCT note, ',')"
                                                    " FROM app.logs");
        rt_assert_sql(c, "305000/success", "SELECT rows_deleted || '/' || outcome FROM retention.rule_runs");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A predicted range never commits more rows than the breaker's limit has left. Statistics from
 * before the old rows came make the planner's estimate of the due rows small, so the rule starts
 * without a count; the running limit (1000 rows) then meets a predicted range that holds a dense
 * second part of them. It is rolled back; the probe and the SKIP LOCKED batch take exactly the
 * 1000 oldest rows, and the breaker stops the rule. */
static void test_predicted_range_breaker_limit(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("predict_limit", &ci);
        make_predict_logs(c);
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' + i * interval '1 second', 'young'"
                       " FROM generate_series(1, 1000) i");
        pgtest_exec(c, "ANALYZE app.logs");
        /* 600 rows a minute apart, then 3000 within a second right after the last of them */
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + (i - 1000) * interval '1 minute', 'sparse'"
                       " FROM generate_series(1001, 1600) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + interval '600 minutes'"
                       " + (i - 1600) * interval '300 microseconds', 'dense' FROM generate_series(1601, 4600) i");
        char *eci = pgtest_engine_role(ci, "predict_engine", "app.logs", NULL);
        char *pol = predict_policy("max_rows: 1000\n    max_fraction: 1\n    batch_size: 100\n");
        rt_expect(1, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"outcome\":\"breaker\",\"rule_run_id\":1,\"rows_deleted\":1000,");
        assert_int_equal(json_int(out, "breaker_counted"), -1); /* started on the estimate, no count */
        assert_true(json_int(out, "batches_redone") >= 1);
        free(out);
        rt_assert_sql(c, "3600/1/1000/2001", "SELECT count(*) || '/' || min(id) || '/' || max(id) FILTER (WHERE note = 'young')"
                                            " || '/' || min(id) FILTER (WHERE note <> 'young') FROM app.logs");
        rt_assert_sql(c, "1000", "SELECT rows_deleted FROM retention.rule_runs");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A predicted range that holds few rows but takes long (a superuser's trigger that waits 0.3 s for
 * one row): its guard's statement timeout rolls it back, and the probed batch takes it without
 * a guard; every due row goes. The batch_size bound does not see this one: only the time does. */
static void test_predicted_range_slow_row(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("predict_slow", &ci);
        make_predict_logs(c);
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 minute',"
                       " CASE WHEN i = 3000 THEN 'slow' ELSE 'old' END FROM generate_series(1, 5000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' + (i - 5000) * interval '1 minute', 'young'"
                       " FROM generate_series(5001, 5100) i");
        pgtest_exec(c, "CREATE FUNCTION app.slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
                       " BEGIN IF OLD.note = 'slow' THEN PERFORM pg_sleep(0.3); END IF; RETURN OLD; END $$");
        pgtest_exec(c, "CREATE TRIGGER slow_delete BEFORE DELETE ON app.logs FOR EACH ROW EXECUTE FUNCTION app.slow_delete()");
        pgtest_exec(c, "VACUUM ANALYZE app.logs");
        char *eci = pgtest_engine_role(ci, "predict_engine", "app.logs", NULL);
        char *pol = predict_policy("max_fraction: 1\n    batch_size: 200\n");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":5000,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":0,");
        assert_int_equal(json_int(out, "batches_redone"), 1);
        assert_true(json_int(out, "batches_predicted") >= 10);
        free(out);
        rt_assert_sql(c, "100/5001", "SELECT count(*) || '/' || min(id) FROM app.logs");
        rt_assert_sql(c, "5000/success", "SELECT rows_deleted || '/' || outcome FROM retention.rule_runs");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A row the application holds inside a predicted range: the range waits for it no longer than
 * the probed one would (lock_timeout, shorter than the guard), then goes to the SKIP LOCKED batch,
 * which leaves that row for the next run; no range is redone for it. */
static void test_predicted_range_locked_row(void **state) {
        (void) state;
        char *ci, *out;
        PGconn *c = rt_db("predict_locked", &ci);
        make_predict_logs(c);
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 minute', 'old'"
                       " FROM generate_series(1, 5000) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' + (i - 5000) * interval '1 minute', 'young'"
                       " FROM generate_series(5001, 5100) i");
        pgtest_exec(c, "VACUUM ANALYZE app.logs");
        char *eci = pgtest_engine_role(ci, "predict_engine", "app.logs", NULL);
        char *pol = predict_policy("max_fraction: 1\n    batch_size: 200\n");
        PGconn *app = pgtest_connect(ci);
        pgtest_exec(app, "BEGIN");
        pgtest_exec(app, "SELECT * FROM app.logs WHERE id = 3000 FOR UPDATE");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":4999,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":1,"
                                "\"rows_skipped_locked\":1,");
        assert_int_equal(json_int(out, "batches_redone"), 0);
        assert_true(json_int(out, "batches_predicted") >= 10);
        free(out);
        rt_assert_sql(c, "101/3000", "SELECT count(*) || '/' || min(id) FROM app.logs");
        pgtest_exec(app, "COMMIT");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "--json", "run");
        rt_assert_contains(out, "\"rows_deleted\":1,\"rows_anonymised\":0,\"rows_held\":0,\"rows_skipped\":0,");
        free(out);
        rt_assert_sql(c, "100/5001", "SELECT count(*) || '/' || min(id) FROM app.logs");
        PQfinish(app);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_anonymise_repeat_one_batch),
                cmocka_unit_test(test_anonymise_todo_index),
                cmocka_unit_test(test_delete_repeat_referenced),
                cmocka_unit_test(test_tally_partitioned_references_in_time),
                cmocka_unit_test(test_timeout_names_statement),
                cmocka_unit_test(test_nothing_due_recorded_whole),
                cmocka_unit_test(test_trail_read_by_index),
                cmocka_unit_test(test_predicted_range_burst),
                cmocka_unit_test(test_predicted_range_breaker_limit),
                cmocka_unit_test(test_predicted_range_locked_row),
                cmocka_unit_test(test_predicted_range_slow_row),
        };
        const char *only = getenv("REPEAT_ONLY");
        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
