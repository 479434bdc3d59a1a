/* test-kill.c — SIGKILL `retentiond run` at random moments, at least 50 times (RETENTIOND_KILLS,
 * default 60; RETENTIOND_KILL_SEED replays the delays), across batches of a delete rule, an
 * anonymise rule with four target columns, and a delete rule whose held rows are anonymised
 * (while_held). Batches are small (10 to 25 rows) and the tables a few thousand rows, so most
 * kills land between or inside batches.
 *
 * After every kill:
 *   - no half-anonymised row: every row is exactly its original or exactly its anonymised form
 *     (all target columns; the expected hashes come from pgcrypto's hmac(), not from the engine);
 *   - no row gone that was not due and unheld, no row anonymised that was not due;
 *   - the audit trail never claims more than happened: the sum of rows_deleted over every run of
 *     the round equals the rows actually gone, rows_anonymised the rows actually anonymised;
 *   - a killed run is left 'running' with no finished_at (expected: nothing can record a SIGKILL),
 *     and a run the kill came too late for is 'success' with every rule finished.
 * A round ends when a run is allowed to finish: then the expected final state must be reached
 * exactly. Exit 75 right after a kill (the dead client's backend has not yet noticed and still
 * holds the session-level advisory lock) is retried after a short wait. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgtest.h"
#include "rely.h"

static PgTest *pg;

static const char *const POLICY =
        "version: 1\n"
        "defaults:\n"
        "  max_fraction: 1\n"
        "subjects:\n"
        "  kacct: { table: k.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"kill test\", subject: kacct, registry: true }\n"
        "rules:\n"
        "  k-del:\n"
        "    clause: \"kill test: logs go after 7 days\"\n"
        "    table: k.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n"
        "    batch_size: 25\n"
        "  k-anon:\n"
        "    clause: \"kill test: people are anonymised after 30 days\"\n"
        "    table: k.people\n"
        "    column: seen_at\n"
        "    retain: 30 days\n"
        "    action: anonymise\n"
        "    columns: { email: hash, name: { redact: \"[gone]\" }, phone: null, ip: truncate_ip }\n"
        "    batch_size: 20\n"
        "  k-acct:\n"
        "    clause: \"kill test: accounts go when asked, held ones are restricted\"\n"
        "    table: k.accounts\n"
        "    subject: kacct\n"
        "    column: req_at\n"
        "    retain: 0 days\n"
        "    holds: [legal]\n"
        "    action: delete\n"
        "    while_held: { columns: { email: hash, name: null } }\n"
        "    batch_size: 10\n";

/* The data (deterministic: setseed) and the originals the checks compare with. Ages keep a day
 * away from every cutoff, so the real clock moving during the test changes nothing. */
static const char *const SETUP =
        "CREATE EXTENSION pgcrypto;"
        "CREATE SCHEMA k;"
        "SELECT setseed(0.42);"
        "CREATE TABLE k.logs_orig AS SELECT g AS id, now() - (CASE WHEN random() < 0.5 THEN 8 + random() * 300"
        "  ELSE random() * 6 END) * interval '1 day' AS at, ('10.0.' || (g % 250) || '.' || (g % 200))::inet AS ip,"
        "  'agent ' || g AS ua FROM generate_series(1, 3000) g;"
        "CREATE TABLE k.people_orig AS SELECT g AS id, now() - (CASE WHEN random() < 0.5 THEN 31 + random() * 900"
        "  ELSE random() * 29 END) * interval '1 day' AS seen_at,"
        "  CASE WHEN g % 17 = 0 THEN NULL ELSE 'person' || g || '@example.org' END AS email,"
        "  CASE WHEN g % 13 = 0 THEN NULL ELSE 'Person ' || g END AS name,"
        "  CASE WHEN g % 11 = 0 THEN NULL ELSE '+49 30 ' || (1000000 + g) END AS phone,"
        "  CASE WHEN g % 19 = 0 THEN NULL WHEN g % 5 = 0 THEN ('2001:db8:' || to_hex(g) || ':1::' || to_hex(g))::inet"
        "   ELSE ('192.168.' || (g % 250) || '.' || (1 + g % 250))::inet END AS ip"
        "  FROM generate_series(1, 2500) g;"
        "CREATE TABLE k.accounts_orig AS SELECT g AS id,"
        "  CASE WHEN g % 2 = 0 THEN now() - (1 + random() * 100) * interval '1 day'"
        "   WHEN g % 4 = 1 THEN now() + interval '30 days' ELSE NULL END AS req_at,"
        "  'acct' || g || '@example.com' AS email, CASE WHEN g % 7 = 0 THEN NULL ELSE 'Account ' || g END AS name"
        "  FROM generate_series(1, 1200) g;"
        "CREATE TABLE k.logs (id int PRIMARY KEY, at timestamptz NOT NULL, ip inet, ua text);"
        "CREATE INDEX ON k.logs (at);"
        "CREATE TABLE k.people (id int PRIMARY KEY, seen_at timestamptz NOT NULL, email text, name text, phone text, ip inet);"
        "CREATE INDEX ON k.people (seen_at);"
        "CREATE TABLE k.accounts (id int PRIMARY KEY, req_at timestamptz, email text, name text);"
        "CREATE INDEX ON k.accounts (req_at);"
        /* legal holds on 40 % of the accounts that asked to be deleted, and on some that did not */
        "INSERT INTO retention.holds (subject, subject_key, reason, placed_by)"
        "  SELECT 'kacct', id::text, 'kill test hold', 'test' FROM k.accounts_orig WHERE id % 5 IN (0, 3);";

/* One row per original row: gone, still original, exactly anonymised, due, held. KEYHEX is
 * replaced by the key's bytes in hex. */
static const char *const VIEWS =
        "CREATE VIEW k.people_state AS SELECT o.id, c.id IS NULL AS gone, o.seen_at < now() - interval '30 days' AS due,"
        "  (c.email, c.name, c.phone, c.ip) IS NOT DISTINCT FROM (o.email, o.name, o.phone, o.ip) AS is_orig,"
        "  (c.email, c.name, c.phone, c.ip) IS NOT DISTINCT FROM ("
        "    CASE WHEN o.email IS NULL THEN NULL"
        "     ELSE 'hmac-sha256:' || encode(hmac(convert_to(o.email, 'UTF8'), '\\xKEYHEX'::bytea, 'sha256'), 'hex') END,"
        "    CASE WHEN o.name IS NULL THEN NULL ELSE '[gone]' END, NULL::text,"
        "    CASE WHEN o.ip IS NULL THEN NULL ELSE set_masklen(o.ip & netmask(set_masklen(o.ip,"
        "      least(masklen(o.ip), CASE WHEN family(o.ip) = 4 THEN 24 ELSE 48 END))),"
        "      least(masklen(o.ip), CASE WHEN family(o.ip) = 4 THEN 24 ELSE 48 END)) END) AS is_anon"
        "  FROM k.people_orig o LEFT JOIN k.people c ON c.id = o.id;"
        "CREATE VIEW k.accounts_state AS SELECT o.id, c.id IS NULL AS gone, o.req_at < now() AS due,"
        "  EXISTS (SELECT 1 FROM retention.holds h WHERE h.subject = 'kacct' AND h.subject_key = o.id::text"
        "    AND h.released_at IS NULL) AS held,"
        "  (c.email, c.name) IS NOT DISTINCT FROM (o.email, o.name) AS is_orig,"
        "  (c.email, c.name) IS NOT DISTINCT FROM ('hmac-sha256:' || encode(hmac(convert_to(o.email, 'UTF8'),"
        "    '\\xKEYHEX'::bytea, 'sha256'), 'hex'), NULL::text) AS is_anon"
        "  FROM k.accounts_orig o LEFT JOIN k.accounts c ON c.id = o.id;"
        "CREATE VIEW k.logs_state AS SELECT o.id, c.id IS NULL AS gone, o.at < now() - interval '7 days' AS due,"
        "  (c.*) IS NOT DISTINCT FROM (o.*) AS is_orig FROM k.logs_orig o LEFT JOIN k.logs c ON c.id = o.id;";

static const char *const RESET =
        "DELETE FROM k.logs; DELETE FROM k.people; DELETE FROM k.accounts;"
        "INSERT INTO k.logs SELECT * FROM k.logs_orig;"
        "INSERT INTO k.people SELECT * FROM k.people_orig;"
        "INSERT INTO k.accounts SELECT * FROM k.accounts_orig;"
        "ANALYZE k.logs, k.people, k.accounts;";

typedef struct Totals {
        long kills, kills_mid_batch_work, kills_before_start, late_kills, retries_75, rounds, runs_left_running;
        long long wrongly_deleted, corrupt, wrongly_anonymised;
} Totals;

/* Every invariant that must hold at any moment; `round_start` is the last run id before the
 * round. Fails the test with what is wrong. */
static void check_consistent(PGconn *c, long long round_start, Totals *t, const char *when) {
        char sql[2048];
        long long people_corrupt = rely_int(c, "SELECT count(*) FROM k.people_state WHERE gone OR (NOT is_orig AND NOT is_anon)");
        long long people_wrong = rely_int(c, "SELECT count(*) FROM k.people_state WHERE is_anon AND NOT is_orig AND NOT due");
        long long acct_corrupt = rely_int(c, "SELECT count(*) FROM k.accounts_state WHERE NOT gone AND NOT is_orig AND NOT is_anon");
        long long acct_wrong_del = rely_int(c, "SELECT count(*) FROM k.accounts_state WHERE gone AND (NOT due OR held)");
        long long acct_wrong_anon =
                rely_int(c, "SELECT count(*) FROM k.accounts_state WHERE NOT gone AND is_anon AND NOT is_orig AND NOT (due AND held)");
        long long logs_wrong_del = rely_int(c, "SELECT count(*) FROM k.logs_state WHERE gone AND NOT due");
        long long logs_corrupt = rely_int(c, "SELECT count(*) FROM k.logs_state WHERE NOT gone AND NOT is_orig");
        t->corrupt += people_corrupt + acct_corrupt + logs_corrupt;
        t->wrongly_deleted += acct_wrong_del + logs_wrong_del;
        t->wrongly_anonymised += people_wrong + acct_wrong_anon;

        /* the audit trail of this round against what actually changed */
        snprintf(sql, sizeof(sql),
                 "SELECT coalesce(sum(rows_deleted) FILTER (WHERE rule = 'k-del'), 0),"
                 " coalesce(sum(rows_anonymised) FILTER (WHERE rule = 'k-anon'), 0),"
                 " coalesce(sum(rows_deleted) FILTER (WHERE rule = 'k-acct'), 0),"
                 " coalesce(sum(rows_anonymised) FILTER (WHERE rule = 'k-acct'), 0),"
                 " (SELECT count(*) FROM k.logs_state WHERE gone),"
                 " (SELECT count(*) FROM k.people_state WHERE is_anon AND NOT is_orig),"
                 " (SELECT count(*) FROM k.accounts_state WHERE gone),"
                 " (SELECT count(*) FROM k.accounts_state WHERE NOT gone AND is_anon AND NOT is_orig)"
                 " FROM retention.rule_runs WHERE run_id > %lld",
                 round_start);
        PGresult *r = rely_query(c, sql);
        long long v[8];
        for (int i = 0; i < 8; i++)
                v[i] = strtoll(PQgetvalue(r, 0, i), NULL, 10);
        PQclear(r);

        /* killed runs: 'running', never finished, until the next run records them as interrupted
         * (with their rule runs); a finished run has every rule finished */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FILTER (WHERE r.outcome = 'running' AND r.finished_at IS NOT NULL)"
                 " + count(*) FILTER (WHERE r.outcome <> 'running' AND (r.finished_at IS NULL OR EXISTS (SELECT 1 FROM"
                 "   retention.rule_runs rr WHERE rr.run_id = r.id AND (rr.finished_at IS NULL OR (rr.outcome <> 'success'"
                 "   AND NOT (r.outcome = 'interrupted' AND rr.outcome = 'interrupted'))))))"
                 " FROM retention.runs r WHERE r.id > %lld",
                 round_start);
        long long bad_runs = rely_int(c, sql);

        if (people_corrupt || people_wrong || acct_corrupt || acct_wrong_del || acct_wrong_anon || logs_wrong_del || logs_corrupt ||
            v[0] != v[4] || v[1] != v[5] || v[2] != v[6] || v[3] != v[7] || bad_runs)
                fail_msg("%s: people: %lld half-anonymised or gone, %lld anonymised before due; accounts: %lld half-anonymised,"
                         " %lld wrongly deleted, %lld wrongly anonymised; logs: %lld wrongly deleted, %lld altered;"
                         " audit trail: k-del deleted %lld (really %lld), k-anon anonymised %lld (really %lld),"
                         " k-acct deleted %lld (really %lld), anonymised %lld (really %lld); %lld runs recorded wrongly",
                         when, people_corrupt, people_wrong, acct_corrupt, acct_wrong_del, acct_wrong_anon, logs_wrong_del,
                         logs_corrupt, v[0], v[4], v[1], v[5], v[2], v[6], v[3], v[7], bad_runs);
}

/* Everything due is done: the state the round must end in. */
static void check_final(PGconn *c, const char *when) {
        long long logs_left = rely_int(c, "SELECT count(*) FROM k.logs_state WHERE due AND NOT gone");
        long long people_left = rely_int(c, "SELECT count(*) FROM k.people_state WHERE due AND NOT is_anon");
        long long acct_left = rely_int(c, "SELECT count(*) FROM k.accounts_state WHERE due AND NOT held AND NOT gone");
        long long held_left = rely_int(c, "SELECT count(*) FROM k.accounts_state WHERE due AND held AND NOT is_anon");
        long long untouched = rely_int(c, "SELECT (SELECT count(*) FROM k.logs_state WHERE NOT due AND NOT is_orig)"
                                          " + (SELECT count(*) FROM k.people_state WHERE NOT due AND NOT is_orig)"
                                          " + (SELECT count(*) FROM k.accounts_state WHERE (NOT due OR due IS NULL) AND NOT is_orig)");
        if (logs_left || people_left || acct_left || held_left || untouched)
                fail_msg("%s: the final run did not finish the work: %lld due logs left, %lld due people not anonymised,"
                         " %lld due unheld accounts left, %lld held accounts not anonymised, %lld rows not due changed",
                         when, logs_left, people_left, acct_left, held_left, untouched);
}

static void test_kill(void **state) {
        (void) state;
        char *ci = pgtest_create_db(pg, "kill");
        PGconn *c = pgtest_connect(ci);
        char *dir = rely_tmpdir();
        char *policy = rely_asprintf("%s/kill.yaml", dir);
        char *keyfile = rely_asprintf("%s/hash-key", dir);
        char *outfile = rely_asprintf("%s/run.log", dir);
        rely_write(policy, POLICY, strlen(POLICY));
        const char key[] = "kill-test-key-0123456789abcdef01"; /* 32 bytes */
        rely_write(keyfile, key, strlen(key));
        char keyhex[2 * sizeof(key)];
        for (size_t i = 0; i < strlen(key); i++)
                snprintf(keyhex + 2 * i, 3, "%02x", (unsigned char) key[i]);

        const char *margs[] = { "-d", ci, "migrate", NULL };
        char *mout = NULL, *merr = NULL;
        int rc = pgtest_run(margs, NULL, &mout, &merr);
        if (rc != 0)
                fail_msg("migrate failed (%d): %s%s", rc, mout, merr);
        free(mout);
        free(merr);
        rely_exec(c, SETUP);
        Sb views = {};
        for (const char *p = VIEWS; *p;) {
                const char *k = strstr(p, "KEYHEX");
                if (!k) {
                        sb_add(&views, p, strlen(p));
                        break;
                }
                sb_add(&views, p, (size_t) (k - p));
                sb_add(&views, keyhex, strlen(keyhex));
                p = k + 6;
        }
        rely_exec(c, views.s);
        sb_done(&views);

        uint64_t seed = rely_seed("RETENTIOND_KILL_SEED");
        long want = rely_env_long("RETENTIOND_KILLS", 60);
        Rng rng = { seed };
        Totals t = {};
        fprintf(stderr, "kill: %ld kills, RETENTIOND_KILL_SEED=%llu\n", want, (unsigned long long) seed);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);

        /* Calibration: how long a whole run takes here (process start to exit); the kills come
         * at a uniformly random moment of that span. */
        long max_delay_ms, idle_ms;
        {
                rely_exec(c, RESET);
                long long round_start = rely_int(c, "SELECT coalesce(max(id), 0) FROM retention.runs");
                const char *args[] = { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console", "run", NULL };
                char *out = NULL, *err = NULL;
                struct timespec r0;
                clock_gettime(CLOCK_MONOTONIC, &r0);
                rc = pgtest_run(args, NULL, &out, &err);
                max_delay_ms = rely_ms_since(&r0) + 1;
                if (rc != 0)
                        fail_msg("the calibration run exited %d:\n%s%s", rc, out, err);
                check_consistent(c, round_start, &t, "after the calibration run");
                check_final(c, "after the calibration run");
                /* the same with nothing left to do: start-up, catalog, tallies */
                clock_gettime(CLOCK_MONOTONIC, &r0);
                free(out);
                free(err);
                rc = pgtest_run(args, NULL, &out, &err);
                idle_ms = rely_ms_since(&r0);
                if (rc != 0)
                        fail_msg("the second calibration run exited %d:\n%s%s", rc, out, err);
                free(out);
                free(err);
                fprintf(stderr, "kill: a whole run takes %ld ms here, %ld ms of it when there is nothing to do; kills come"
                                " at a random moment of what is left of the work\n",
                        max_delay_ms, idle_ms);
        }
        rely_exec(c, RESET);
        long long work_total = rely_int(c, "SELECT (SELECT count(*) FROM k.logs_state WHERE due)"
                                           " + (SELECT count(*) FROM k.people_state WHERE due AND NOT is_anon)"
                                           " + (SELECT count(*) FROM k.accounts_state WHERE due)");

        /* The calibration ran while every test of the suite started at once; runs get faster
         * when the load drops, and kills timed for the slower runs would all come too late: each
         * kill that comes too late makes the next ones come sooner (a quarter). */
        long work_ms = max_delay_ms > idle_ms ? max_delay_ms - idle_ms : 1;
        long busy_retries = 0;
        while (t.kills < want) {
                rely_exec(c, RESET);
                long long round_start = rely_int(c, "SELECT coalesce(max(id), 0) FROM retention.runs");
                t.rounds++;
                check_consistent(c, round_start, &t, "after reset");
                /* Kill runs until one finishes by itself (or 12 kills), then let one finish. */
                for (int n = 0; n < 12 && t.kills < want; n++) {
                        static const char *const only[][2] = { { NULL, NULL }, { "--rule", "k-del" }, { "--rule", "k-anon" },
                                                                { "--rule", "k-acct" } };
                        unsigned which = rnd(&rng, 6) < 3 ? 0 : 1 + rnd(&rng, 3);
                        const char *args[] = { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console", "run",
                                               only[which][0], only[which][1], NULL };
                        long long before = rely_int(c, "SELECT coalesce(max(id), 0) FROM retention.runs");
                        /* A random moment of what is left of the work (the earlier kills of the
                         * round did part of it), now and then during start-up. */
                        long long left = rely_int(c, "SELECT (SELECT count(*) FROM k.logs_state WHERE due AND NOT gone)"
                                                     " + (SELECT count(*) FROM k.people_state WHERE due AND NOT is_anon)"
                                                     " + (SELECT count(*) FROM k.accounts_state WHERE due AND NOT gone"
                                                     "    AND NOT (held AND is_anon))");
                        long span_us = (long) ((double) work_ms * 1000.0 * (double) left / (double) work_total) + 1000;
                        long delay_us = chance(&rng, 15) ? (long) rnd(&rng, (unsigned) idle_ms * 1000 + 1)
                                                         : idle_ms * 1000 / 2 + (long) rnd(&rng, (unsigned) span_us);
                        pid_t pid = rely_spawn(args, outfile);
                        usleep((useconds_t) delay_us);
                        int st = rely_wait_timeout(pid, 0);
                        bool finished = st != -2;
                        if (!finished) {
                                kill(pid, SIGKILL);
                                st = rely_wait(pid);
                                /* It may have exited by itself between the poll and the kill. */
                                finished = st != 128 + SIGKILL;
                        }
                        if (st == 75) {
                                /* The killed client's backend still holds the lock: wait for it. */
                                if (++busy_retries > 500)
                                        fail_msg("retentiond run exited 75 (busy) 500 times in a row after kill %ld:\n%s", t.kills,
                                                 rely_slurp(outfile));
                                t.retries_75++;
                                usleep(20000);
                                n--;
                                continue;
                        }
                        if (finished && st != 0) {
                                char *log = rely_slurp(outfile);
                                fail_msg("retentiond run exited %d before the kill:\n%s", st, log);
                        }
                        busy_retries = 0;
                        if (finished) {
                                /* too late: the work left was done before the kill */
                                t.late_kills++;
                                idle_ms = idle_ms * 3 / 4 > 20 ? idle_ms * 3 / 4 : 20;
                                work_ms = work_ms * 3 / 4 > 50 ? work_ms * 3 / 4 : 50;
                                check_consistent(c, round_start, &t, "after a run that finished before its kill");
                                break;
                        }
                        t.kills++;
                        /* Wait for the dead client's backend to go, so the next run finds the lock free
                         * most of the time (75 is still retried). */
                        for (int i = 0; i < 100 && rely_int(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'retentiond'") > 0;
                             i++)
                                usleep(5000);
                        char when[64];
                        snprintf(when, sizeof(when), "after kill %ld (%ld us after start)", t.kills, delay_us);
                        check_consistent(c, round_start, &t, when);
                        char sql[512];
                        snprintf(sql, sizeof(sql),
                                 "SELECT count(*) FILTER (WHERE outcome = 'running'),"
                                 " count(*) FILTER (WHERE rr_changed > 0 AND outcome = 'running') FROM (SELECT r.outcome,"
                                 " (SELECT coalesce(sum(rows_deleted + rows_anonymised), 0) FROM retention.rule_runs x WHERE x.run_id = r.id)"
                                 " AS rr_changed FROM retention.runs r WHERE r.id > %lld) s",
                                 before);
                        PGresult *r = rely_query(c, sql);
                        long running = strtol(PQgetvalue(r, 0, 0), NULL, 10);
                        long mid = strtol(PQgetvalue(r, 0, 1), NULL, 10);
                        PQclear(r);
                        t.runs_left_running += running;
                        t.kills_mid_batch_work += mid;
                        if (running == 0) {
                                t.kills_before_start++; /* killed before it recorded its run */
                                idle_ms += idle_ms / 4 + 1; /* too soon: the start-up takes longer now */
                        }
                }
                /* The next normal run finishes the work. */
                const char *args[] = { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console", "run", NULL };
                char *out = NULL, *err = NULL;
                for (int i = 0; i < 200; i++) {
                        free(out);
                        free(err);
                        rc = pgtest_run(args, NULL, &out, &err);
                        if (rc != 75)
                                break;
                        t.retries_75++;
                        usleep(20000);
                }
                if (rc != 0)
                        fail_msg("the run after the kills exited %d:\n%s%s", rc, out, err);
                free(out);
                free(err);
                check_consistent(c, round_start, &t, "after the final run of a round");
                check_final(c, "after the final run of a round");
                fprintf(stderr, "kill: round %ld: %ld kills so far, %ld too late, %ld before the run began; kills now %ld ms + up to %ld ms\n",
                        t.rounds, t.kills, t.late_kills, t.kills_before_start, idle_ms / 2, work_ms);
        }
        long ms = rely_ms_since(&t0);
        fprintf(stderr,
                "kill: %ld kills survived in %ld rounds (%ld.%03ld s, seed %llu): %ld left their run 'running' in the audit"
                " trail (%ld after changing rows), %ld before the run was recorded, %ld runs finished before their kill,"
                " %ld retries on exit 75; %lld rows wrongly deleted, %lld rows half-anonymised or lost, %lld wrongly anonymised\n",
                t.kills, t.rounds, ms / 1000, ms % 1000, (unsigned long long) seed, t.runs_left_running, t.kills_mid_batch_work,
                t.kills_before_start, t.late_kills, t.retries_75, t.wrongly_deleted, t.corrupt, t.wrongly_anonymised);
        assert_true(t.kills >= want);
        /* The kills must really have hit runs at work, not only their start-up. */
        assert_true(t.kills_mid_batch_work >= want / 6);

        PQfinish(c);
        rely_rm_rf(dir);
        free(dir);
        free(policy);
        free(keyfile);
        free(outfile);
        free(ci);
}

static int group_setup(void **state) {
        (void) state;
        pg = pgtest_start();
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        pgtest_stop(pg);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kill),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
