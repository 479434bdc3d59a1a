/* test-prune.c — `retentiond prune --older-than DURATION` against a real PostgreSQL: the oldest
 * sealed rule runs (a prefix of the hash chain, stopped by the first one too young) go with
 * their counts and the runs left empty, behind a checkpoint; verify proves the chain kept from
 * the checkpoint, also after later runs; receipt of a pruned run says so (66); a dry run changes
 * nothing; a changed checkpoint is a break; the engine's role can neither prune nor delete the
 * trail, also not through the door prune opens for itself (retention.prune_marks).
 * Signed checkpoints: no prune without the hash key; the signature is HMAC-SHA256 of the
 * checkpoint's message with the key; verify checks it with the key and says so without; a
 * checkpoint changed by a superuser, signed with another key, unsigned, or out of its place in
 * the series is a break; the key is in neither the server's log (log_statement = all) nor the trail. */
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

/* logs 1-10 expired; accounts 1-3 with two tickets two years old each; a legal hold on account 2:
 * the first run deletes 10 logs and 4 tickets and keeps 2 held. */
static PGconn *prune_db(const char *name, char **ci, char **pol) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' FROM generate_series(1, 10) i");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT generate_series(1, 3)");
        pgtest_exec(c, "CREATE TABLE app.tickets (id int PRIMARY KEY, account_id int REFERENCES app.accounts,"
                       " created_at timestamptz)");
        pgtest_exec(c, "INSERT INTO app.tickets SELECT 10 * a + t, a, now() - interval '2 years'"
                       " FROM generate_series(1, 3) a, generate_series(1, 2) t");
        *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", *pol, "-d", *ci, "hold", "add", "account", "2", "--reason", "case 7", "--by", "dpo");
        return c;
}

static char *hash_at(PGconn *c, int seq) {
        return pgtest_value(c, "SELECT encode(hash, 'hex') FROM retention.rule_runs WHERE seq = %d", seq);
}

static void triggers(PGconn *c, bool on) {
        const char *t[] = { "runs", "rule_runs", "rule_run_holds", "rule_run_fk", "checkpoints" };
        for (size_t i = 0; i < 5; i++)
                pgtest_exec(c, "ALTER TABLE retention.%s %s TRIGGER USER", t[i], on ? "ENABLE" : "DISABLE");
}

/* Runs 1 and 2 as if they had run 400 days ago (a superuser's fixture, the guards off): their
 * times moved, the chain sealed again over the new times, so that it verifies as the engine would
 * have sealed it then. */
static void backdate_runs_1_2(PGconn *c) {
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.runs SET started_at = started_at - interval '400 days',"
                       " finished_at = finished_at - interval '400 days' WHERE id IN (1, 2)");
        pgtest_exec(c, "UPDATE retention.rule_runs SET started_at = started_at - interval '400 days',"
                       " finished_at = finished_at - interval '400 days', sealed_at = sealed_at - interval '400 days',"
                       " cutoff = cutoff - interval '400 days' WHERE run_id IN (1, 2)");
        pgtest_exec(c, "DO $$ DECLARE r retention.rule_runs; prev bytea; BEGIN"
                       " FOR r IN SELECT * FROM retention.rule_runs WHERE seq IS NOT NULL ORDER BY seq LOOP"
                       "  r.prev_hash := prev; r.hash := retention.rule_run_digest(r);"
                       "  UPDATE retention.rule_runs SET prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;"
                       "  prev := r.hash; END LOOP;"
                       " UPDATE retention.chain_head SET hash = prev; END $$");
        triggers(c, true);
}

/* "SQLSTATE: message" of a statement that must fail. Caller frees. */
static char *error_of(PGconn *c, const char *sql) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_FATAL_ERROR)
                print_error("%s: did not fail\n", sql);
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        char *e = rt_asprintf("%s: %s", PQresultErrorField(r, PG_DIAG_SQLSTATE), PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        PQclear(r);
        return e;
}

static void assert_error(PGconn *c, const char *sql, const char *expected) {
        char *e = error_of(c, sql);
        assert_string_equal(e, expected);
        free(e);
}

/* The HMAC pads of the key in rt_key_file(), in hex, computed here (not by retentiond). */
static void pads_hex(const char *key_hex, char ipad[129], char opad[129]) {
        for (size_t i = 0; i < 64; i++) {
                unsigned b = 0;
                if (2 * i < strlen(key_hex))
                        assert_int_equal(sscanf(key_hex + 2 * i, "%2x", &b), 1);
                snprintf(ipad + 2 * i, 3, "%02x", b ^ 0x36);
                snprintf(opad + 2 * i, 3, "%02x", b ^ 0x5c);
        }
}

/* The server's log (a private cluster keeps it in its socket directory) from byte `from`. */
static char *server_log(size_t from) {
        char *path = rt_asprintf("%s/server.log", pgtest_host(rt_pg));
        FILE *f = fopen(path, "re");
        free(path);
        assert_non_null(f);
        char *all = NULL;
        size_t cap = 0;
        ssize_t n = getdelim(&all, &cap, '\0', f); /* the whole text file */
        fclose(f);
        size_t len = n > 0 ? (size_t) n : 0;
        char *r = strdup(from < len ? all + from : "");
        free(all);
        return r;
}

static void log_everything(PGconn *c, bool on) {
        pgtest_exec(c, on ? "ALTER SYSTEM SET log_statement = 'all'" : "ALTER SYSTEM RESET log_statement");
        pgtest_exec(c, on ? "ALTER SYSTEM SET log_parameter_max_length = -1" : "ALTER SYSTEM RESET log_parameter_max_length");
        pgtest_exec(c, "SELECT pg_reload_conf()");
        /* the reload is asynchronous: a new session sees it once the postmaster has read the file */
        for (int i = 0; i < 500; i++) {
                char *v = pgtest_value(c, "SELECT coalesce((SELECT setting FROM pg_file_settings"
                                          " WHERE name = 'log_statement' AND applied), '')");
                bool done = on ? strcmp(v, "all") == 0 : strcmp(v, "") == 0;
                free(v);
                if (done)
                        break;
                usleep(10000);
        }
        usleep(200000);
}

static void assert_no_key(const char *where, const char *text, const char *key_hex, const char *ipad, const char *opad) {
        const char *forms[] = { key_hex, ipad, opad };
        const char *names[] = { "the hash key in hex", "the HMAC inner pad", "the HMAC outer pad" };
        for (size_t i = 0; i < 3; i++)
                if (strcasestr(text, forms[i]))
                        fail_msg("%s appears in %s", names[i], where);
}

/* "t" when checkpoint `id`'s signature is the HMAC of its message with these pads. */
static char *signature_ok(PGconn *c, int id, const char *ipad, const char *opad) {
        return pgtest_value(c, "SELECT signature = sha256(decode('%s', 'hex') || sha256(decode('%s', 'hex')"
                               " || retention.checkpoint_message(c))) FROM retention.checkpoints c WHERE id = %d",
                            opad, ipad, id);
}

static void test_prune(void **state) {
        (void) state;
        char *ci, *pol, *out, *err, *expect;
        char *key_hex, ipad[129], opad[129];
        char *key = rt_key_file(&key_hex);
        pads_hex(key_hex, ipad, opad);
        char *other_hex;
        char *other_key = rt_key_file(&other_hex);
        /* another key: the same bytes but the last */
        FILE *f = fopen(other_key, "r+e");
        assert_non_null(f);
        assert_int_equal(fseek(f, 31, SEEK_SET), 0);
        assert_int_equal(fputc('x', f), 'x');
        assert_int_equal(fclose(f), 0);
        PGconn *c = prune_db("pr_prune", &ci, &pol);
        for (int i = 0; i < 3; i++)
                rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        rt_assert_sql(c, "1,2,3,4,5,6", "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM retention.rule_runs");
        backdate_runs_1_2(c);
        char *h4 = hash_at(c, 4), *h6 = hash_at(c, 6);
        expect = rt_asprintf("chain OK: 6 sealed rule runs, last hash %s\n", h6);
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        rt_assert_sql(c, "3/0/0/1", "SELECT (SELECT count(*) FROM retention.rule_run_holds) || '/' ||"
                                    " (SELECT count(*) FROM retention.rule_run_fk) || '/' ||"
                                    " (SELECT count(*) FROM retention.rule_run_cascades) || '/' ||"
                                    " (SELECT count(*) FROM retention.rule_run_holds h JOIN retention.rule_runs r"
                                    "  ON r.id = h.rule_run_id WHERE r.run_id = 3)");

        /* under 30 days without --force, no --older-than, a bad duration: usage */
        rt_expect(64, NULL, &err, "-d", ci, "prune", "--older-than", "7 days");
        rt_assert_contains(err, "refusing to prune the audit trail of the last month");
        free(err);
        rt_expect(64, NULL, NULL, "-d", ci, "prune");
        rt_expect(64, NULL, NULL, "-d", ci, "prune", "--older-than", "a while");

        /* the engine's role: not allowed to prune, nor to open the door prune uses, nor to delete */
        char *eci = pgtest_engine_role(ci, "pr_engine", "app.logs, app.tickets", "app.accounts");
        rt_expect(77, NULL, &err, "-d", eci, "--hash-key-file", key, "prune", "--older-than", "1 year");
        rt_assert_contains(err, "permission denied for function prune");
        rt_assert_contains(err, "GRANT EXECUTE ON FUNCTION retention.prune(interval, text, boolean), retention.sign_checkpoint(bigint, bytea)");
        free(err);
        PGconn *e = pgtest_connect(eci);
        assert_error(e, "SELECT * FROM retention.prune('1 year', 'x')", "42501: permission denied for function prune");
        assert_error(e, "INSERT INTO retention.prune_marks VALUES (pg_current_xact_id())",
                     "42501: permission denied for table prune_marks");
        assert_error(e, "DELETE FROM retention.rule_runs WHERE seq = 1", "42501: permission denied for table rule_runs");
        assert_error(e, "DELETE FROM retention.checkpoints", "42501: permission denied for table checkpoints");
        assert_error(e, "SELECT retention.sign_checkpoint(1, sha256('x'))", "42501: permission denied for function sign_checkpoint");
        PQfinish(e);
        /* and a role that may DELETE (here a superuser, triggers on) is still refused outside prune() */
        assert_error(c, "DELETE FROM retention.rule_runs WHERE seq = 1",
                     "42501: retention.rule_runs is append-only: DELETE is not allowed");
        assert_error(c, "DELETE FROM retention.rule_run_holds",
                     "42501: retention.rule_run_holds is append-only: DELETE is not allowed");
        assert_error(c, "DELETE FROM retention.runs WHERE id = 1", "42501: retention.runs is append-only: DELETE is not allowed");
        rt_assert_sql(c, "6", "SELECT count(*) FROM retention.rule_runs");

        /* a dry run: what would go, nothing changed */
        rt_expect(0, &out, NULL, "-d", ci, "prune", "--older-than", "1 year", "--dry-run");
        assert_string_equal(out, "would prune 4 rule runs (#1 to #4) and 2 runs (rows deleted 14, anonymised 0); nothing changed\n");
        free(out);
        expect = rt_asprintf("{\"dry_run\":true,\"older_than\":\"1 year\",\"checkpoint\":null,\"first_seq\":1,\"upto_seq\":4,"
                             "\"upto_hash\":\"%s\",\"rule_runs_pruned\":4,\"runs_pruned\":2,\"rows_deleted\":14,"
                             "\"rows_anonymised\":0}\n",
                             h4);
        rt_expect(0, &out, NULL, "-d", ci, "prune", "--older-than", "P1Y", "--dry-run", "--json");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        rt_assert_sql(c, "6/3/0", "SELECT (SELECT count(*) FROM retention.rule_runs) || '/' || (SELECT count(*) FROM retention.runs)"
                                  " || '/' || (SELECT count(*) FROM retention.checkpoints)");

        /* no prune without the key that signs the checkpoint */
        rt_expect(78, &out, &err, "-d", ci, "prune", "--older-than", "1 year", "--by", "dpo");
        assert_string_equal(out, "");
        rt_assert_contains(err, "prune signs its checkpoint with the hash key, and none was found");
        rt_assert_contains(err, "--hash-key-file FILE");
        free(out);
        free(err);
        rt_assert_sql(c, "6/0", "SELECT (SELECT count(*) FROM retention.rule_runs) || '/' || (SELECT count(*) FROM retention.checkpoints)");

        /* the prune: #1 to #4 (runs 1 and 2); #5 finished today and stops it. Every statement
         * logged with its parameters in full: the key must not be among them. */
        char *log_before = server_log(0);
        size_t log0 = strlen(log_before);
        free(log_before);
        log_everything(c, true);
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "prune", "--older-than", "1 year", "--by", "dpo");
        expect = rt_asprintf("pruned 4 rule runs (#1 to #4) and 2 runs (rows deleted 14, anonymised 0)\n"
                             "checkpoint 1 (signed): the chain kept starts after #4, hash %s\n",
                             h4);
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        rt_assert_sql(c, "5,6", "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM retention.rule_runs");
        rt_assert_sql(c, "3", "SELECT string_agg(id::text, ',') FROM retention.runs");
        rt_assert_sql(c, "1/0/0", "SELECT (SELECT count(*) FROM retention.rule_run_holds) || '/' ||"
                                  " (SELECT count(*) FROM retention.rule_run_fk) || '/' || (SELECT count(*) FROM retention.prune_marks)");
        expect = rt_asprintf("1|dpo|1 year|1|(null)|4|%s|4|2|{1,2}|14|0|true|true", h4);
        rt_assert_sql(c, expect,
                      "SELECT id || '|' || made_by || '|' || older_than || '|' || first_seq || '|' || coalesce(encode(from_hash, 'hex'), '(null)')"
                      " || '|' || upto_seq || '|' || encode(upto_hash, 'hex')"
                      " || '|' || rule_runs_pruned || '|' || runs_pruned || '|' || run_ids::text || '|' || rows_deleted"
                      " || '|' || rows_anonymised || '|' || (octet_length(signature) = 32) || '|' || (made_at BETWEEN now() - interval '1 hour' AND now())"
                      " FROM retention.checkpoints");
        free(expect);
        rt_assert_sql(c, "\\x00726574656e74696f6e642d636865636b706f696e742d76310a69643d313a310a",
                      "SELECT substr(retention.checkpoint_message(c), 1, 33)::text FROM retention.checkpoints c");

        /* verify across the cut: without the key it says the signature is not checked */
        expect = rt_asprintf("checkpoint 1: signature not checked (no hash key)\n"
                             "chain OK: 2 sealed rule runs since checkpoint 1 (4 pruned up to #4), last hash %s\n", h6);
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        expect = rt_asprintf("checkpoint 1: signature valid\n"
                             "chain OK: 2 sealed rule runs since checkpoint 1 (4 pruned up to #4), last hash %s\n", h6);
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        expect = rt_asprintf("{\"ok\":true,\"sealed\":2,\"last_seq\":6,\"last_hash\":\"%s\",\"head_seq\":6,\"unsealed\":0,"
                             "\"checkpoint\":{\"id\":1,\"upto_seq\":4,\"upto_hash\":\"%s\",\"pruned\":4},"
                             "\"checkpoints\":[{\"id\":1,\"first_seq\":1,\"upto_seq\":4,\"signature\":\"valid\",\"problem\":null}],"
                             "\"break\":null}\n",
                             h6, h4);
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "verify", "--json");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        /* the engine's least-privilege role checks it too (verify runs as the service's role) */
        rt_expect(0, &out, NULL, "-d", eci, "--hash-key-file", key, "verify");
        rt_assert_contains(out, "checkpoint 1: signature valid\nchain OK: 2 sealed rule runs since checkpoint 1");
        free(out);

        /* the key: in neither the server's log nor the trail */
        log_everything(c, false);
        char *slog = server_log(log0);
        rt_assert_contains(slog, "retention.sign_checkpoint"); /* the log did record the statements */
        rt_assert_contains(slog, "COPY pg_temp.retentiond_hash_key");
        assert_no_key("the server log (log_statement = all, log_parameter_max_length = -1)", slog, key_hex, ipad, opad);
        free(slog);
        char *trail = pgtest_value(c, "SELECT concat_ws(',', (SELECT string_agg(t::text, ',') FROM retention.checkpoints t),"
                                      " (SELECT string_agg(t::text, ',') FROM retention.rule_runs t),"
                                      " (SELECT string_agg(t::text, ',') FROM retention.runs t))");
        assert_no_key("the audit trail", trail, key_hex, ipad, opad);
        free(trail);
        /* the signature: HMAC-SHA256 with the key (pads computed here), over the checkpoint's message,
         * which starts with a zero byte (after the log check: this query holds the pads) */
        char *ok = signature_ok(c, 1, ipad, opad);
        assert_string_equal(ok, "t");
        free(ok);

        /* another key: the signature does not match */
        rt_expect(1, &out, NULL, "-d", ci, "--hash-key-file", other_key, "verify");
        expect = rt_asprintf("checkpoint 1: signature INVALID\n"
                             "DETAIL: The checkpoint was changed after its prune signed it, or it was signed with another hash key.\n"
                             "chain OK: 2 sealed rule runs since checkpoint 1 (4 pruned up to #4), last hash %s\n", h6);
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        rt_expect(1, &out, NULL, "-d", ci, "--hash-key-file", other_key, "verify", "--json");
        rt_assert_contains(out, "{\"ok\":false,");
        rt_assert_contains(out, "\"checkpoints\":[{\"id\":1,\"first_seq\":1,\"upto_seq\":4,\"signature\":\"invalid\",\"problem\":null}]");
        free(out);

        /* a superuser changes what the chain does not cover (the counts of the prune): the
         * signature tells; without the key nothing could */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.checkpoints SET rows_deleted = 0, made_by = 'nobody'");
        triggers(c, true);
        rt_expect(0, NULL, NULL, "-d", ci, "verify");
        rt_expect(1, &out, NULL, "-d", ci, "--hash-key-file", key, "verify");
        rt_assert_contains(out, "checkpoint 1: signature INVALID\n");
        free(out);
        rt_expect(1, &out, NULL, "-d", ci, "--hash-key-file", key, "-q", "verify");
        assert_string_equal(out, "checkpoint 1: signature INVALID\n"
                                 "DETAIL: The checkpoint was changed after its prune signed it, or it was signed with another"
                                 " hash key.\n");
        free(out);
        /* its signature removed: a break, with or without the key */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.checkpoints SET rows_deleted = 14, made_by = 'dpo', signature = NULL");
        triggers(c, true);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        rt_assert_contains(out, "checkpoint 1: NOT SIGNED\n");
        free(out);
        /* signed again as it was: valid */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.checkpoints c SET signature = sha256(decode('%s', 'hex') || sha256(decode('%s', 'hex')"
                       " || retention.checkpoint_message(c)))", opad, ipad);
        triggers(c, true);
        rt_expect(0, NULL, NULL, "-d", ci, "--hash-key-file", key, "verify");
        /* the guard: the signature is set once, by the prune's own transaction */
        assert_error(c, "UPDATE retention.checkpoints SET signature = sha256('x')",
                     "42501: retention.checkpoints is append-only: UPDATE is not allowed");
        assert_error(c, "SELECT retention.sign_checkpoint(1, sha256('x'))",
                     "42501: checkpoint 1 is not an unsigned checkpoint made by this transaction");

        /* the migrations applied again (they are idempotent) change nothing */
        pgtest_exec_file(c, "sql/retention/006-prune.sql");
        pgtest_exec_file(c, "sql/retention/007-checkpoint-signature.sql");
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "verify");
        rt_assert_contains(out, "chain OK: 2 sealed rule runs since checkpoint 1 (4 pruned up to #4)");
        free(out);
        rt_assert_sql(c, "1", "SELECT count(*) FROM retention.checkpoints");

        /* nothing more is old enough */
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "prune", "--older-than", "1 year");
        assert_string_equal(out, "nothing to prune: no sealed rule run at the start of the chain finished more than 1 year ago\n");
        free(out);

        /* receipts: a pruned run, a kept one */
        rt_expect(66, NULL, &err, "-d", ci, "receipt", "1");
        rt_assert_contains(err, "run 1 was pruned by checkpoint 1 on ");
        free(err);
        rt_expect(66, NULL, &err, "-d", ci, "receipt", "2");
        rt_assert_contains(err, "run 2 was pruned by checkpoint 1 on ");
        free(err);
        rt_expect(66, NULL, &err, "-d", ci, "receipt", "99");
        rt_assert_contains(err, "run 99 does not exist");
        free(err);
        rt_expect(0, &out, NULL, "-d", ci, "receipt", "3");
        rt_assert_contains(out, "\nchain: verifies from checkpoint 1 (#4) to #6 (the last rule run of this run)\n");
        free(out);

        /* a later run seals after the checkpoint */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        char *h8 = hash_at(c, 8);
        expect = rt_asprintf("checkpoint 1: signature not checked (no hash key)\n"
                             "chain OK: 4 sealed rule runs since checkpoint 1 (4 pruned up to #4), last hash %s\n", h8);
        rt_expect(0, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);

        /* the checkpoint cannot be changed, and a changed one is a break */
        assert_error(c, "UPDATE retention.checkpoints SET upto_seq = 3",
                     "42501: retention.checkpoints is append-only: UPDATE is not allowed");
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.checkpoints SET upto_hash = sha256('forged')");
        triggers(c, true);
        char *rr5 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 5");
        expect = rt_asprintf("checkpoint 1: signature not checked (no hash key)\n"
                             "chain BROKEN at #5: rule run %s (run 3, rule logs) does not chain to checkpoint 1\n"
                             "DETAIL: Its prev_hash is not the upto_hash of checkpoint 1 (#4): the checkpoint was changed after"
                             " the prune, or the rule run was replaced.\n"
                             "verified before the break: nothing\n",
                             rr5);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);
        rt_expect(1, &out, NULL, "-d", ci, "verify", "--json");
        rt_assert_contains(out, "\"break\":{\"kind\":\"relinked\",\"seq\":5,");
        free(out);

        /* the checkpoint as it was: the chain verifies again; then a gap right after it is a break */
        triggers(c, false);
        pgtest_exec(c, "UPDATE retention.checkpoints SET upto_hash = decode('%s', 'hex')", h4);
        triggers(c, true);
        rt_expect(0, NULL, NULL, "-d", ci, "verify");
        triggers(c, false);
        pgtest_exec(c, "DELETE FROM retention.rule_run_holds WHERE rule_run_id = %s", rr5);
        pgtest_exec(c, "DELETE FROM retention.rule_runs WHERE id = %s", rr5);
        triggers(c, true);
        char *rr6 = pgtest_value(c, "SELECT id FROM retention.rule_runs WHERE seq = 6");
        expect = rt_asprintf("checkpoint 1: signature not checked (no hash key)\n"
                             "chain BROKEN at #5: the rule runs sealed after checkpoint 1 (#4) are missing\n"
                             "DETAIL: The chain kept starts at #6 (rule run %s), not at #5: rule runs were deleted, or the"
                             " checkpoint was changed.\n"
                             "verified before the break: nothing\n",
                             rr6);
        rt_expect(1, &out, NULL, "-d", ci, "verify");
        assert_string_equal(out, expect);
        free(out);
        free(expect);

        free(rr6);
        free(rr5);
        free(key);
        free(key_hex);
        free(other_key);
        free(other_hex);
        free(h4);
        free(h6);
        free(h8);
        free(eci);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* Two prunes: the second checkpoint continues where the first ended (first_seq, from_hash),
 * both signed; the first one deleted by a superuser leaves the second out of place. */
static void test_checkpoint_series(void **state) {
        (void) state;
        char *ci, *pol, *out, *key_hex;
        char *key = rt_key_file(&key_hex);
        PGconn *c = prune_db("pr_series", &ci, &pol);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "prune", "--older-than", "0 seconds", "--force");
        rt_assert_contains(out, "pruned 2 rule runs (#1 to #2) and 1 runs");
        free(out);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "run");
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "prune", "--older-than", "0 seconds", "--force");
        rt_assert_contains(out, "pruned 2 rule runs (#3 to #4) and 1 runs");
        rt_assert_contains(out, "checkpoint 2 (signed): the chain kept starts after #4");
        free(out);
        rt_assert_sql(c, "1-2 from -, 3-4 from 1",
                      "SELECT string_agg(c.first_seq || '-' || c.upto_seq || ' from ' ||"
                      " coalesce((SELECT p.id::text FROM retention.checkpoints p WHERE p.upto_hash = c.from_hash), '-'), ', '"
                      " ORDER BY c.id) FROM retention.checkpoints c");
        rt_expect(0, &out, NULL, "-d", ci, "--hash-key-file", key, "verify");
        assert_string_equal(out, "checkpoint 1: signature valid\n"
                                 "checkpoint 2: signature valid\n"
                                 "chain OK: no sealed rule runs since checkpoint 2 (4 pruned up to #4)\n");
        free(out);
        triggers(c, false);
        pgtest_exec(c, "DELETE FROM retention.checkpoints WHERE id = 1");
        triggers(c, true);
        rt_expect(1, &out, NULL, "-d", ci, "--hash-key-file", key, "verify");
        assert_string_equal(out, "checkpoint 2: signature valid\n"
                                 "checkpoint 2: OUT OF PLACE: it starts at #3, but no checkpoint before it ends at #2\n"
                                 "chain OK: no sealed rule runs since checkpoint 2 (2 pruned up to #4)\n");
        free(out);
        free(key);
        free(key_hex);
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prune),
                cmocka_unit_test(test_checkpoint_series),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
