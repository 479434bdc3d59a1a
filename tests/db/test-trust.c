/* test-trust.c — the engine runs no code it does not trust, and writes its audit trail and hold
 * registry only through the schema's functions (issue #12, point 3), against a real PostgreSQL:
 * a table owner (not a superuser) adds an AFTER DELETE trigger (SECURITY INVOKER PL/pgSQL) that
 * releases every hold and rewrites the unsealed rule run, so that the next rule would delete held
 * rows while `verify` says OK. The engine runs as the role sql/retentiond-role.sql makes.
 * - refused: the rule fails before it changes anything, with the error naming the table, the
 *   trigger and its owner (and a HINT); no row deleted, every hold intact;
 * - trust_triggers: true: the rule runs and warns (report line, event), and the trigger's own
 *   writes to retention.* fail, since the role has no direct write privilege there;
 * - triggers owned by the engine's role or a superuser, and triggers that cannot fire, do not
 *   refuse; a trigger on a table a cascade reaches, on a partition, rules and row-level security
 *   do; `check -d` reports them at the rule with FILE:LINE:COLUMN;
 * - the role writes retention.* only through the functions; a forged INSERT of a sealed or
 *   finished rule run is refused, a release always has its event, a negative count is refused. */
#include "rtest.h"

#include <sys/wait.h>
#include <unistd.h>

static const char *POLICY_HEAD =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"litigation\", subject: account, registry: true }\n"
        "rules:\n"
        "  logs:\n"
        "    clause: \"logs are kept 7 days\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: delete\n";
static const char *POLICY_TAIL =
        "  tickets:\n"
        "    clause: \"tickets are kept 1 year\"\n"
        "    table: app.tickets\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: created_at\n"
        "    retain: 1 year\n"
        "    holds: [legal]\n"
        "    action: delete\n";

static char *policy(bool trust) {
        char *yaml = rt_asprintf("%s%s%s", POLICY_HEAD, trust ? "    trust_triggers: true\n" : "", POLICY_TAIL);
        char *p = rt_policy(yaml);
        free(yaml);
        return p;
}

/* A database whose app tables belong to tr_owner (an ordinary role), with 10 old and 5 young
 * logs, accounts 1-3 and for each an old (2 years) and a young ticket (10a+1, 10a+2), a legal
 * hold on account 2, and the engine's role tr_engine made by sql/retentiond-role.sql; *eci is its
 * conninfo. With `sweep`, tr_owner's trigger on app.logs that releases every hold and zeroes the
 * unsealed rule runs' counts. */
static PGconn *trust_db(const char *name, char **ci, char **eci, bool sweep) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE tr_owner NOLOGIN NOSUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        pgtest_exec(c, "GRANT USAGE, CREATE ON SCHEMA app TO tr_owner");
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY)");
        pgtest_exec(c, "INSERT INTO app.accounts SELECT generate_series(1, 3)");
        pgtest_exec(c, "CREATE TABLE app.logs (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.logs (at)");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '30 days' + i * interval '1 minute'"
                       " FROM generate_series(1, 10) i");
        pgtest_exec(c, "INSERT INTO app.logs SELECT i, now() - interval '1 day' FROM generate_series(11, 15) i");
        pgtest_exec(c, "CREATE TABLE app.tickets (id int PRIMARY KEY, account_id int REFERENCES app.accounts,"
                       " created_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.tickets (created_at)");
        pgtest_exec(c, "INSERT INTO app.tickets SELECT 10 * a + 1, a, now() - interval '2 years' FROM generate_series(1, 3) a");
        pgtest_exec(c, "INSERT INTO app.tickets SELECT 10 * a + 2, a, now() - interval '1 month' FROM generate_series(1, 3) a");
        if (sweep) {
                pgtest_exec(c, "CREATE FUNCTION app.sweep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                               " UPDATE retention.holds SET released_at = now(), released_by = 'sweep' WHERE released_at IS NULL;"
                               " UPDATE retention.rule_runs SET rows_deleted = 0 WHERE seq IS NULL;"
                               " RETURN NULL; END $$");
                pgtest_exec(c, "CREATE TRIGGER sweep AFTER DELETE ON app.logs FOR EACH ROW EXECUTE FUNCTION app.sweep()");
        }
        pgtest_exec(c, "RESET ROLE");
        pgtest_exec(c, "ANALYZE");
        char *pol = policy(false);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", *ci, "hold", "add", "account", "2", "--reason", "case 12", "--by", "dpo");
        free(pol);
        *eci = pgtest_engine_role(*ci, "tr_engine", "app.logs, app.tickets", "app.accounts");
        return c;
}

static const char *SWEEP = "trigger \"sweep\" on app.logs (function app.sweep(), owned by role \"tr_owner\")";

/* Nothing of app.* changed but the tickets rule's own work; the hold is intact, without a release. */
static void assert_held_intact(PGconn *c) {
        rt_assert_sql(c, "1|dpo|-", "SELECT count(*) || '|' || min(placed_by) || '|' || coalesce(min(released_by), '-')"
                                    " FROM retention.holds WHERE released_at IS NULL");
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.holds WHERE released_at IS NOT NULL");
        rt_assert_sql(c, "placed", "SELECT string_agg(event, ',' ORDER BY id) FROM retention.hold_events");
        /* tickets: the old ones of accounts 1 and 3 deleted, the held one of account 2 kept */
        rt_assert_sql(c, "12,21,22,32", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.tickets");
}

static void test_untrusted_trigger_refused(void **state) {
        (void) state;
        char *ci, *eci, *out, *err;
        PGconn *c = trust_db("tr_refused", &ci, &eci, true);
        char *pol = policy(false);

        rt_expect(1, &out, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "retentiond: error: rule \"logs\" refused: trigger \"sweep\" on table app.logs runs code of role"
                                " \"tr_owner\"\n");
        char *detail = rt_asprintf("DETAIL:  The %s would run with the privileges of the role retentiond runs as when the rule"
                                   " deletes rows of app.logs, and its owner, role \"tr_owner\", is neither that role nor a"
                                   " superuser. Nothing was changed.\n",
                                   SWEEP);
        rt_assert_contains(err, detail);
        free(detail);
        rt_assert_contains(err, "HINT:  Drop the trigger, or have its function owned by the role retentiond runs as or by a"
                                " superuser; to run the rule anyway, set \"trust_triggers: true\" on it.\n");
        rt_assert_contains(out, "\nlogs                     delete             0          0          0        0        0        0");
        rt_assert_contains(out, "  failed\n");
        free(out);
        free(err);

        /* not a row of app.logs deleted, the hold intact, the held ticket kept */
        rt_assert_sql(c, "15", "SELECT count(*) FROM app.logs");
        assert_held_intact(c);
        /* the trail says so, sealed */
        rt_assert_sql(c, "failed|0|0|true", "SELECT outcome || '|' || rows_deleted || '|' || batches || '|' || (seq IS NOT NULL)"
                                         " FROM retention.rule_runs WHERE rule = 'logs'");
        rt_assert_sql(c, "rule \"logs\" refused: trigger \"sweep\" on table app.logs runs code of role \"tr_owner\"",
                      "SELECT error FROM retention.rule_runs WHERE rule = 'logs'");
        rt_assert_sql(c, "success|2|1", "SELECT outcome || '|' || rows_deleted || '|' || rows_held"
                                        " FROM retention.rule_runs WHERE rule = 'tickets'");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");

        /* audit says what run would do */
        rt_expect(1, &out, NULL, "-p", pol, "-d", eci, "audit");
        rt_assert_contains(out, "  ERROR: rule \"logs\" refused: trigger \"sweep\" on table app.logs runs code of role"
                                " \"tr_owner\"\n");
        free(out);

        /* the trigger disabled: nothing runs it, the rule goes through */
        pgtest_exec(c, "ALTER TABLE app.logs DISABLE TRIGGER sweep");
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "5", "SELECT count(*) FROM app.logs");
        assert_held_intact(c);
        /* enabled again, between two rules of a run: looked up again right before each rule */
        pgtest_exec(c, "ALTER TABLE app.logs ENABLE TRIGGER sweep");
        pgtest_exec(c, "INSERT INTO app.logs VALUES (100, now() - interval '30 days')");
        rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "rule \"logs\" refused: trigger \"sweep\"");
        free(err);
        rt_assert_sql(c, "6", "SELECT count(*) FROM app.logs");
        assert_held_intact(c);

        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

static void test_untrusted_trigger_trusted(void **state) {
        (void) state;
        char *ci, *eci, *out, *err;
        PGconn *c = trust_db("tr_trusted", &ci, &eci, true);
        char *pol = policy(true);

        /* it runs, and warns; the trigger's own writes fail: the role may not write retention.* */
        rt_expect(1, &out, &err, "-p", pol, "-d", eci, "run");
        char *warning = rt_asprintf("  WARNING: %s ran with this role's privileges when the rule deletes rows of app.logs"
                                    " (trust_triggers: true)\n",
                                    SWEEP);
        rt_assert_contains(out, warning);
        free(warning);
        char *event = rt_asprintf("retentiond: warning: rule logs: %s ran with this role's privileges", SWEEP);
        rt_assert_contains(err, event);
        free(event);
        rt_assert_contains(err, "retentiond: error: rule \"logs\": permission denied for table holds\n");
        free(out);
        free(err);
        rt_assert_sql(c, "failed|42501|permission denied for table holds|0",
                      "SELECT outcome || '|' || sqlstate || '|' || error || '|' || rows_deleted"
                      " FROM retention.rule_runs WHERE rule = 'logs'");
        rt_assert_sql(c, "15", "SELECT count(*) FROM app.logs");
        assert_held_intact(c);
        rt_expect(0, NULL, NULL, "-d", eci, "verify");

        /* nor through the functions the role may call: none of them from a trigger */
        static const char *through[][2] = {
                { "PERFORM retention.release_hold(h.id, 'sweep') FROM retention.holds h WHERE h.released_at IS NULL;",
                  "retention.release_hold() cannot be called from a trigger" },
                { "PERFORM retention.add_rule_run_counts(max(id), 0, 1000, 0, 0) FROM retention.rule_runs WHERE seq IS NULL;",
                  "a write of the audit trail cannot be called from a trigger" },
                { "PERFORM retention.place_hold('account', '1', 'r', 'sweep', now() - interval '1 day');",
                  "retention.place_hold() cannot be called from a trigger" },
                { "PERFORM retention.record_rule_run(max(id), 'forged', 'c', 'app.logs', 'delete', now(), now(), 'success',"
                  " NULL, NULL, 0, 0, 0, 0, 0, 0, 0) FROM retention.runs WHERE finished_at IS NULL;",
                  "retention.record_rule_run() cannot be called from a trigger" },
        };
        for (size_t i = 0; i < sizeof(through) / sizeof(through[0]); i++) {
                pgtest_exec(c, "SET ROLE tr_owner");
                pgtest_exec(c, "CREATE OR REPLACE FUNCTION app.sweep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN %s"
                               " RETURN NULL; END $$",
                            through[i][0]);
                pgtest_exec(c, "RESET ROLE");
                rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
                char *line = rt_asprintf("retentiond: error: rule \"logs\": %s\n", through[i][1]);
                rt_assert_contains(err, line);
                free(line);
                free(err);
                rt_assert_sql(c, "15", "SELECT count(*) FROM app.logs");
                assert_held_intact(c);
        }
        rt_assert_sql(c, "0|0", "SELECT sum(rows_deleted) || '|' || sum(rows_anonymised) FROM retention.rule_runs"
                                " WHERE rule = 'logs'");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");

        /* the JSON report lists it too */
        rt_expect(1, &out, NULL, "-p", pol, "-d", eci, "run", "--json");
        rt_assert_contains(out, "\"untrusted_code\":[\"trigger \\\"sweep\\\" on app.logs (function app.sweep(), owned by role"
                                " \\\"tr_owner\\\") ran with this role's privileges when the rule deletes rows of app.logs"
                                " (trust_triggers: true)\"]");
        free(out);

        /* a trigger that only writes what the role may write runs, with the warning */
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE TABLE app.gone (id int)");
        pgtest_exec(c, "CREATE OR REPLACE FUNCTION app.sweep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " INSERT INTO app.gone VALUES (OLD.id); RETURN NULL; END $$");
        pgtest_exec(c, "GRANT INSERT ON app.gone TO tr_engine");
        pgtest_exec(c, "RESET ROLE");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_contains(out, "  WARNING: trigger \"sweep\" on app.logs");
        free(out);
        rt_assert_sql(c, "5|10", "SELECT (SELECT count(*) FROM app.logs) || '|' || (SELECT count(*) FROM app.gone)");
        assert_held_intact(c);

        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

/* Triggers owned by the engine's role or a superuser, and triggers that cannot fire on what the
 * rule does, are no reason to refuse. */
static void test_trusted_triggers(void **state) {
        (void) state;
        char *ci, *eci, *out;
        PGconn *c = trust_db("tr_ok", &ci, &eci, false);
        /* a superuser's "last_update" trigger */
        pgtest_exec(c, "ALTER TABLE app.logs ADD COLUMN updated_at timestamptz");
        pgtest_exec(c, "CREATE FUNCTION app.last_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " NEW.updated_at := now(); RETURN NEW; END $$");
        pgtest_exec(c, "CREATE TRIGGER last_update BEFORE UPDATE ON app.logs FOR EACH ROW EXECUTE FUNCTION app.last_update()");
        pgtest_exec(c, "CREATE FUNCTION app.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$");
        pgtest_exec(c, "CREATE TRIGGER superuser_noop AFTER DELETE ON app.logs FOR EACH ROW EXECUTE FUNCTION app.noop()");
        /* one whose function the engine's role owns */
        pgtest_exec(c, "CREATE FUNCTION app.engine_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$");
        pgtest_exec(c, "ALTER FUNCTION app.engine_noop() OWNER TO tr_engine");
        pgtest_exec(c, "CREATE TRIGGER engine_noop AFTER DELETE ON app.tickets FOR EACH ROW EXECUTE FUNCTION app.engine_noop()");
        /* the table owner's, on INSERT and on UPDATE only: a delete never fires them */
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE FUNCTION app.owner_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$");
        pgtest_exec(c, "CREATE TRIGGER owner_insert BEFORE INSERT OR UPDATE ON app.logs FOR EACH ROW"
                       " EXECUTE FUNCTION app.owner_noop()");
        pgtest_exec(c, "RESET ROLE");
        char *pol = policy(false);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "check");
        rt_assert_contains(out, "database OK: 2 rules checked against the catalog: 0 errors, 0 warnings\n");
        free(out);
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_not_contains(out, "WARNING");
        free(out);
        rt_assert_sql(c, "5", "SELECT count(*) FROM app.logs");
        assert_held_intact(c);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

/* Runs `retentiond ARGS...` in a child process; rt_wait_bg() waits for it and returns its exit
 * status and output. */
typedef struct Bg {
        pid_t pid;
        char *out, *err;
} Bg;

static void rt_spawn_bg(Bg *b, const char *const *args) {
        b->out = rt_asprintf("%s/bg-%d.out", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int) getpid());
        b->err = rt_asprintf("%s.err", b->out);
        b->pid = fork();
        assert_true(b->pid >= 0);
        if (b->pid == 0) {
                char *o = NULL, *e = NULL;
                int st = rt_runv(&o, &e, NULL, args);
                FILE *f = fopen(b->out, "w");
                fputs(o ? o : "", f);
                fclose(f);
                f = fopen(b->err, "w");
                fputs(e ? e : "", f);
                fclose(f);
                _exit(st);
        }
}

static char *slurp(const char *path) {
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        int ch;
        while ((ch = fgetc(f)) != EOF)
                fputc(ch, m);
        fclose(m);
        fclose(f);
        unlink(path);
        return buf;
}

static int rt_wait_bg(Bg *b, char **out, char **err) {
        int st;
        assert_int_equal(waitpid(b->pid, &st, 0), b->pid);
        *out = slurp(b->out);
        *err = slurp(b->err);
        free(b->out);
        free(b->err);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Polls (2 ms) until the query returns 1 while the run goes on; fails after 30 s. */
static void wait_for(PGconn *c, Bg *b, const char *sql) {
        for (int i = 0; pgtest_int(c, "%s", sql) != 1; i++) {
                int st;
                if (waitpid(b->pid, &st, WNOHANG) == b->pid)
                        fail_msg("the run ended (status %d) before: %s\n%s%s", st, sql, slurp(b->out), slurp(b->err));
                if (i > 15000)
                        fail_msg("timed out waiting for: %s", sql);
                usleep(2000);
        }
}

/* A trigger the table owner creates while the rule runs (the known gap before: it fired in the
 * rule's remaining batches, with the engine's privileges). The rule deletes one row per batch;
 * its where: blocks the batch of the fifth row (rows 1-4 committed) on an advisory lock the test
 * holds. That batch's statement holds app.logs' ROW EXCLUSIVE lock, so the owner's CREATE
 * TRIGGER waits for it; released, the fifth row goes, the trigger is committed, and the sixth
 * batch's DELETE fires it: that batch rolls back, the rule fails with the refusal, and nothing
 * the trigger wrote remains. */
static void test_trigger_created_mid_run(void **state) {
        (void) state;
        char *ci, *eci, *out, *err;
        PGconn *c = trust_db("tr_midrun", &ci, &eci, false);
        pgtest_exec(c, "CREATE FUNCTION app.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
                       " IF id = 5 AND current_query() ~ '^(WITH batch|DELETE FROM)'"
                       "  AND NOT EXISTS (SELECT 1 FROM app.logs l WHERE l.id < 5) THEN"
                       "  PERFORM pg_advisory_xact_lock_shared(4242); END IF;"
                       " RETURN true; END $$");
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE TABLE app.fired (id int)");
        pgtest_exec(c, "GRANT INSERT ON app.fired TO PUBLIC"); /* the trigger can write as the engine */
        pgtest_exec(c, "CREATE FUNCTION app.late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " INSERT INTO app.fired VALUES (OLD.id); RETURN NULL; END $$");
        pgtest_exec(c, "RESET ROLE");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  logs:\n"
                              "    clause: \"logs are kept 7 days\"\n"
                              "    table: app.logs\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"app.gate(id)\"\n"
                              "    batch_size: 1\n");
        PGconn *lock = pgtest_connect(ci), *owner = pgtest_connect(ci);
        pgtest_exec(lock, "SELECT pg_advisory_lock(4242)");
        Bg bg;
        rt_spawn_bg(&bg, (const char *const[]) { "-p", pol, "-d", eci, "run", NULL });
        wait_for(c, &bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    " AND query ~ '^(WITH batch|DELETE FROM)'");
        rt_assert_sql(c, "5", "SELECT min(id) FROM app.logs");
        pgtest_exec(owner, "SET ROLE tr_owner");
        assert_int_equal(PQsendQuery(owner, "CREATE TRIGGER late AFTER DELETE ON app.logs FOR EACH ROW"
                                            " EXECUTE FUNCTION app.late()"),
                         1);
        wait_for(c, &bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'relation'"
                    " AND query ~ '^CREATE TRIGGER late'");
        pgtest_exec(lock, "SELECT pg_advisory_unlock(4242)");
        PGresult *r;
        while ((r = PQgetResult(owner))) {
                assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
                PQclear(r);
        }
        int st = rt_wait_bg(&bg, &out, &err);
        if (st != 1)
                fail_msg("exit %d, want 1:\n%s%s", st, out, err);
        rt_assert_contains(err, "retentiond: error: rule \"logs\" refused: trigger \"late\" on table app.logs runs code of role"
                                " \"tr_owner\"\n");
        rt_assert_contains(err, "DETAIL:  The trigger \"late\" on app.logs (function app.late(), owned by role \"tr_owner\") would"
                                " run with the privileges of the role retentiond runs as when the rule deletes rows of"
                                " app.logs, and its owner, role \"tr_owner\", is neither that role nor a superuser. It"
                                " appeared while the rule ran: the batch that would have run it was rolled back; the"
                                " rule's earlier batches stand.\n");
        rt_assert_contains(out, "\nlogs                     delete             5");
        rt_assert_contains(out, "  failed\n");
        /* the trigger's writes never committed; exactly rows 1-5 (the batches before it) are gone */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.fired");
        rt_assert_sql(c, "6-15|10", "SELECT min(id) || '-' || max(id) || '|' || count(*) FROM app.logs");
        rt_assert_sql(c, "failed|5|10|true", "SELECT outcome || '|' || rows_deleted || '|' || batches || '|' || (seq IS NOT NULL)"
                                            " FROM retention.rule_runs WHERE rule = 'logs'");
        rt_assert_sql(c, "rule \"logs\" refused: trigger \"late\" on table app.logs runs code of role \"tr_owner\"",
                      "SELECT error FROM retention.rule_runs WHERE rule = 'logs'");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");
        free(out);
        free(err);
        PQfinish(owner);
        PQfinish(lock);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

/* The same for a trigger that was there from the start, firing on INSERT only (no code the delete
 * rule runs), which the owner replaces while the rule runs by one that fires on DELETE: CREATE OR
 * REPLACE TRIGGER keeps the trigger's oid, function and enabled state, and only its events
 * (tgtype) change. The check before each COMMIT must see that too. The rule deletes one row per batch;
 * its where: blocks the batch of the fifth row (rows 1-4 committed) on an advisory lock the test
 * holds. That batch's statement holds app.logs' ROW EXCLUSIVE lock, so the owner's CREATE
 * TRIGGER waits for it; released, the fifth row goes, the trigger is committed, and the sixth
 * batch's DELETE fires it: that batch rolls back, the rule fails with the refusal, and nothing
 * the trigger wrote remains. */
static void test_trigger_replaced_mid_run(void **state) {
        (void) state;
        char *ci, *eci, *out, *err;
        PGconn *c = trust_db("tr_midreplace", &ci, &eci, false);
        pgtest_exec(c, "CREATE FUNCTION app.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
                       " IF id = 5 AND current_query() ~ '^(WITH batch|DELETE FROM)'"
                       "  AND NOT EXISTS (SELECT 1 FROM app.logs l WHERE l.id < 5) THEN"
                       "  PERFORM pg_advisory_xact_lock_shared(4242); END IF;"
                       " RETURN true; END $$");
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE TABLE app.fired (id int)");
        pgtest_exec(c, "GRANT INSERT ON app.fired TO PUBLIC"); /* the trigger can write as the engine */
        pgtest_exec(c, "CREATE FUNCTION app.late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " INSERT INTO app.fired VALUES (coalesce(OLD.id, NEW.id)); RETURN NULL; END $$");
        pgtest_exec(c, "CREATE TRIGGER late AFTER INSERT ON app.logs FOR EACH ROW EXECUTE FUNCTION app.late()");
        pgtest_exec(c, "RESET ROLE");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  logs:\n"
                              "    clause: \"logs are kept 7 days\"\n"
                              "    table: app.logs\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"app.gate(id)\"\n"
                              "    batch_size: 1\n");
        PGconn *lock = pgtest_connect(ci), *owner = pgtest_connect(ci);
        pgtest_exec(lock, "SELECT pg_advisory_lock(4242)");
        Bg bg;
        rt_spawn_bg(&bg, (const char *const[]) { "-p", pol, "-d", eci, "run", NULL });
        wait_for(c, &bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    " AND query ~ '^(WITH batch|DELETE FROM)'");
        rt_assert_sql(c, "5", "SELECT min(id) FROM app.logs");
        pgtest_exec(owner, "SET ROLE tr_owner");
        assert_int_equal(PQsendQuery(owner, "CREATE OR REPLACE TRIGGER late AFTER DELETE ON app.logs FOR EACH ROW"
                                            " EXECUTE FUNCTION app.late()"),
                         1);
        wait_for(c, &bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'relation'"
                    " AND query ~ '^CREATE OR REPLACE TRIGGER late'");
        pgtest_exec(lock, "SELECT pg_advisory_unlock(4242)");
        PGresult *r;
        while ((r = PQgetResult(owner))) {
                assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
                PQclear(r);
        }
        int st = rt_wait_bg(&bg, &out, &err);
        if (st != 1)
                fail_msg("exit %d, want 1:\n%s%s", st, out, err);
        rt_assert_contains(err, "retentiond: error: rule \"logs\" refused: trigger \"late\" on table app.logs runs code of role"
                                " \"tr_owner\"\n");
        rt_assert_contains(err, "DETAIL:  The trigger \"late\" on app.logs (function app.late(), owned by role \"tr_owner\") would"
                                " run with the privileges of the role retentiond runs as when the rule deletes rows of"
                                " app.logs, and its owner, role \"tr_owner\", is neither that role nor a superuser. It"
                                " appeared while the rule ran: the batch that would have run it was rolled back; the"
                                " rule's earlier batches stand.\n");
        rt_assert_contains(out, "\nlogs                     delete             5");
        rt_assert_contains(out, "  failed\n");
        /* the trigger's writes never committed; exactly rows 1-5 (the batches before it) are gone */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.fired");
        rt_assert_sql(c, "6-15|10", "SELECT min(id) || '-' || max(id) || '|' || count(*) FROM app.logs");
        rt_assert_sql(c, "failed|5|10|true", "SELECT outcome || '|' || rows_deleted || '|' || batches || '|' || (seq IS NOT NULL)"
                                            " FROM retention.rule_runs WHERE rule = 'logs'");
        rt_assert_sql(c, "rule \"logs\" refused: trigger \"late\" on table app.logs runs code of role \"tr_owner\"",
                      "SELECT error FROM retention.rule_runs WHERE rule = 'logs'");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");
        free(out);
        free(err);
        PQfinish(owner);
        PQfinish(lock);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

/* The same for a table the rule's deletes cascade into: there the batch's statement locks the
 * table only when the cascade runs, so the trigger is committed while the batch waits (before it
 * deletes the fifth row) and fires in that same batch; the check before its COMMIT rolls it back. */
static void test_cascade_trigger_created_mid_run(void **state) {
        (void) state;
        char *ci, *eci, *out, *err;
        PGconn *c = trust_db("tr_midcascade", &ci, &eci, false);
        pgtest_exec(c, "CREATE FUNCTION app.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
                       " IF id = 5 AND current_query() ~ '^(WITH batch|DELETE FROM)'"
                       "  AND NOT EXISTS (SELECT 1 FROM app.parents p WHERE p.id < 5) THEN"
                       "  PERFORM pg_advisory_xact_lock_shared(4243); END IF;"
                       " RETURN true; END $$");
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "CREATE TABLE app.parents (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.parents (at)");
        pgtest_exec(c, "INSERT INTO app.parents SELECT i, now() - interval '30 days' + i * interval '1 minute'"
                       " FROM generate_series(1, 10) i");
        pgtest_exec(c, "CREATE TABLE app.children (id int PRIMARY KEY, parent int REFERENCES app.parents ON DELETE CASCADE)");
        pgtest_exec(c, "INSERT INTO app.children SELECT i, i FROM generate_series(1, 10) i");
        pgtest_exec(c, "CREATE TABLE app.fired (id int)");
        pgtest_exec(c, "GRANT INSERT ON app.fired TO PUBLIC");
        pgtest_exec(c, "CREATE FUNCTION app.late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " INSERT INTO app.fired VALUES (OLD.id); RETURN NULL; END $$");
        pgtest_exec(c, "GRANT SELECT, UPDATE, DELETE ON app.parents TO tr_engine");
        pgtest_exec(c, "GRANT SELECT ON app.children TO tr_engine");
        pgtest_exec(c, "RESET ROLE");
        pgtest_exec(c, "ANALYZE");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  parents:\n"
                              "    clause: \"parents are kept 7 days\"\n"
                              "    table: app.parents\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    where: \"app.gate(id)\"\n"
                              "    batch_size: 1\n");
        PGconn *lock = pgtest_connect(ci), *owner = pgtest_connect(ci);
        pgtest_exec(lock, "SELECT pg_advisory_lock(4243)");
        Bg bg;
        rt_spawn_bg(&bg, (const char *const[]) { "-p", pol, "-d", eci, "run", NULL });
        wait_for(c, &bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                         " AND query ~ '^(WITH batch|DELETE FROM)'");
        rt_assert_sql(c, "5", "SELECT min(id) FROM app.parents");
        pgtest_exec(owner, "SET ROLE tr_owner");
        /* not blocked: the batch has not reached app.children yet */
        pgtest_exec(owner, "CREATE TRIGGER late AFTER DELETE ON app.children FOR EACH ROW EXECUTE FUNCTION app.late()");
        pgtest_exec(lock, "SELECT pg_advisory_unlock(4243)");
        int st = rt_wait_bg(&bg, &out, &err);
        if (st != 1)
                fail_msg("exit %d, want 1:\n%s%s", st, out, err);
        rt_assert_contains(err, "retentiond: error: rule \"parents\" refused: trigger \"late\" on table app.children runs code of"
                                " role \"tr_owner\"\n");
        rt_assert_contains(err, " It appeared while the rule ran: the batch that would have run it was rolled back; the"
                                " rule's earlier batches stand.\n");
        rt_assert_contains(out, "\nparents                  delete             4");
        rt_assert_contains(out, "  failed\n");
        /* the fifth batch rolled back whole: its parent, its cascade and the trigger's write */
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.fired");
        rt_assert_sql(c, "5-10|6", "SELECT min(id) || '-' || max(id) || '|' || count(*) FROM app.parents");
        rt_assert_sql(c, "5-10|6", "SELECT min(id) || '-' || max(id) || '|' || count(*) FROM app.children");
        rt_assert_sql(c, "failed|4", "SELECT outcome || '|' || rows_deleted FROM retention.rule_runs WHERE rule = 'parents'");
        rt_assert_sql(c, "app.children|4|0", "SELECT table_name || '|' || rows_deleted || '|' || rows_nulled"
                                            " FROM retention.rule_run_cascades");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");
        free(out);
        free(err);
        PQfinish(owner);
        PQfinish(lock);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

/* check -d names the untrusted code at the rule, FILE:LINE:COLUMN; so for a table a cascade
 * reaches, a partition, a rule and row-level security. */
static void test_check_database(void **state) {
        (void) state;
        char *ci, *eci, *err, *out;
        PGconn *c = trust_db("tr_check", &ci, &eci, true);
        char *pol = policy(false);
        rt_expect(65, NULL, &err, "-p", pol, "-d", eci, "check");
        char *line = rt_asprintf("%s:7:3: error: %s would run with this role's privileges when the rule deletes rows of"
                                 " app.logs; the owner is neither this role nor a superuser\n",
                                 pol, SWEEP);
        rt_assert_contains(err, line);
        free(line);
        rt_assert_contains(err, "    7 |   logs:\n");
        free(err);
        char *trusting = policy(true);
        rt_expect(0, &out, &err, "-p", trusting, "-d", eci, "check");
        line = rt_asprintf("%s:7:3: warning: %s runs with this role's privileges when the rule deletes rows of app.logs"
                           " (trusted: trust_triggers is true)\n",
                           trusting, SWEEP);
        rt_assert_contains(err, line);
        free(line);
        rt_assert_contains(out, "database OK: 2 rules checked against the catalog: 0 errors, 1 warning\n");
        free(out);
        free(err);

        /* a cascade, a partition, a rule, row-level security: all of tr_owner */
        pgtest_exec(c, "ALTER TABLE app.logs DISABLE TRIGGER sweep");
        pgtest_exec(c, "SET ROLE tr_owner");
        pgtest_exec(c, "ALTER TABLE app.accounts ADD COLUMN gone_at timestamptz");
        pgtest_exec(c, "CREATE TABLE app.notes (id int PRIMARY KEY, account_id int REFERENCES app.accounts ON DELETE CASCADE)");
        pgtest_exec(c, "CREATE TRIGGER note_gone AFTER DELETE ON app.notes FOR EACH ROW EXECUTE FUNCTION app.sweep()");
        pgtest_exec(c, "CREATE TABLE app.events (id int, at timestamptz) PARTITION BY RANGE (at)");
        pgtest_exec(c, "CREATE TABLE app.events_old PARTITION OF app.events FOR VALUES FROM ('2000-01-01') TO ('2100-01-01')");
        pgtest_exec(c, "CREATE TRIGGER event_gone AFTER DELETE ON app.events_old FOR EACH ROW EXECUTE FUNCTION app.sweep()");
        pgtest_exec(c, "CREATE TABLE app.visits (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "CREATE RULE keep AS ON DELETE TO app.visits DO INSTEAD NOTHING");
        pgtest_exec(c, "CREATE TABLE app.secrets (id int PRIMARY KEY, at timestamptz)");
        pgtest_exec(c, "ALTER TABLE app.secrets ENABLE ROW LEVEL SECURITY");
        pgtest_exec(c, "CREATE POLICY mine ON app.secrets USING (true)");
        pgtest_exec(c, "RESET ROLE");
        free(pgtest_engine_role(ci, "tr_engine", "app.logs, app.tickets, app.accounts, app.events, app.visits, app.secrets",
                                NULL));
        char *many = rt_policy("version: 1\n"
                               "rules:\n"
                               "  accounts:\n"
                               "    clause: \"c\"\n"
                               "    table: app.accounts\n"
                               "    column: gone_at\n"
                               "    retain: 0 days\n"
                               "    action: delete\n"
                               "  events:\n"
                               "    clause: \"c\"\n"
                               "    table: app.events\n"
                               "    column: at\n"
                               "    retain: 1 day\n"
                               "    action: delete\n"
                               "  visits:\n"
                               "    clause: \"c\"\n"
                               "    table: app.visits\n"
                               "    column: at\n"
                               "    retain: 1 day\n"
                               "    action: delete\n"
                               "  secrets:\n"
                               "    clause: \"c\"\n"
                               "    table: app.secrets\n"
                               "    column: at\n"
                               "    retain: 1 day\n"
                               "    action: delete\n");
        rt_expect(65, NULL, &err, "-p", many, "-d", eci, "check");
        line = rt_asprintf("%s:3:3: error: trigger \"note_gone\" on app.notes (function app.sweep(), owned by role \"tr_owner\")"
                           " would run with this role's privileges when a delete from app.accounts cascades into app.notes"
                           " (constraint notes_account_id_fkey);",
                           many);
        rt_assert_contains(err, line);
        free(line);
        line = rt_asprintf("%s:9:3: error: trigger \"event_gone\" on app.events_old (function app.sweep(), owned by role"
                           " \"tr_owner\") would run with this role's privileges when the rule deletes rows of app.events;",
                           many);
        rt_assert_contains(err, line);
        free(line);
        line = rt_asprintf("%s:15:3: error: rule \"keep\" on app.visits (owned by role \"tr_owner\", the table's owner) would"
                           " run with this role's privileges when the rule deletes rows of app.visits;",
                           many);
        rt_assert_contains(err, line);
        free(line);
        line = rt_asprintf("%s:21:3: error: row-level security on app.secrets (policies mine, owned by role \"tr_owner\", the"
                           " table's owner) would run with this role's privileges when the rule deletes rows of app.secrets;",
                           many);
        rt_assert_contains(err, line);
        free(line);
        free(err);

        /* and run refuses each, naming what it found */
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (9, now() - interval '1 day')");
        pgtest_exec(c, "INSERT INTO app.notes VALUES (1, 9)");
        rt_expect(1, NULL, &err, "-p", many, "-d", eci, "run");
        rt_assert_contains(err, "rule \"accounts\" refused: trigger \"note_gone\" on table app.notes runs code of role"
                                " \"tr_owner\"\n");
        rt_assert_contains(err, "when a delete from app.accounts cascades into app.notes (constraint notes_account_id_fkey)");
        rt_assert_contains(err, "rule \"events\" refused: trigger \"event_gone\" on table app.events_old runs code of role"
                                " \"tr_owner\"\n");
        rt_assert_contains(err, "rule \"visits\" refused: rule \"keep\" on table app.visits runs code of role \"tr_owner\"\n");
        rt_assert_contains(err, "rule \"secrets\" refused: row-level security on table app.secrets runs code of role"
                                " \"tr_owner\"\n");
        rt_assert_contains(err, "HINT:  Disable row-level security on the table, or have the table owned by the role retentiond"
                                " runs as or by a superuser; to run the rule anyway, set \"trust_triggers: true\" on it.\n");
        free(err);
        rt_assert_sql(c, "4|1", "SELECT (SELECT count(*) FROM app.accounts) || '|' || (SELECT count(*) FROM app.notes)");
        rt_assert_sql(c, "4", "SELECT count(*) FROM retention.rule_runs WHERE outcome = 'failed' AND error LIKE '%% refused: %%'");

        free(many);
        free(trusting);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

static const char *sqlstate_of(PGconn *c, const char *sql, char *buf, size_t n) {
        PGresult *r = PQexec(c, sql);
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        ExecStatusType st = PQresultStatus(r);
        snprintf(buf, n, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "ok" : s ? s : "?");
        PQclear(r);
        return buf;
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

#define assert_error(conn, sql, expected)            \
        do {                                         \
                char *e_ = error_of((conn), (sql));  \
                assert_string_equal(e_, (expected)); \
                free(e_);                            \
        } while (0)

/* The role writes retention.* only through the functions; the guards refuse forged INSERTs, even
 * a superuser's; a release always has its event; counts are never negative. */
static void test_trail_writes(void **state) {
        (void) state;
        char *ci, *eci, b[16];
        PGconn *c = trust_db("tr_writes", &ci, &eci, false);
        char *pol = policy(false);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "2", "SELECT count(*) FROM retention.rule_runs WHERE seq IS NOT NULL");
        PGconn *e = pgtest_connect(eci);

        /* no direct write of the role on any table of the schema */
        static const char *direct[] = {
                "INSERT INTO retention.runs (host, version, mode) VALUES ('h', 'v', 'run')",
                "UPDATE retention.runs SET outcome = 'failed'",
                "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action) VALUES (1, 'r', 'c', 't', 'delete')",
                "UPDATE retention.rule_runs SET rows_deleted = 0 WHERE seq IS NULL",
                "INSERT INTO retention.rule_run_holds VALUES (1, 'x', 1)",
                "INSERT INTO retention.rule_run_fk VALUES (1, 'x', 1)",
                "UPDATE retention.holds SET released_at = now(), released_by = 'x'",
                "INSERT INTO retention.holds (subject, subject_key, reason, placed_by) VALUES ('account', '1', 'r', 'x')",
                "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (1, 'released', 'x')",
                "INSERT INTO retention.rule_slots (rule, last_started, host) VALUES ('r', now(), 'h')",
                "UPDATE retention.rule_slots SET last_started = now()",
                "DELETE FROM retention.rule_slots",
                "SELECT retention.seal_rule_run(1)",
                "SELECT nextval('retention.runs_id_seq')",
        };
        for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
                if (strcmp(sqlstate_of(e, direct[i], b, sizeof(b)), "42501") != 0) {
                        print_error("%s: %s, expected 42501\n", direct[i], b);
                        fail();
                }
        /* it reads them */
        rt_assert_sql(e, "2|1|0", "SELECT (SELECT count(*) FROM retention.rule_runs) || '|' || (SELECT count(*) FROM"
                                  " retention.holds) || '|' || (SELECT count(*) FROM retention.rule_slots)");

        /* the functions check what they change */
        assert_error(e, "SELECT retention.add_rule_run_counts(1, 5, 0, 1, 0)",
                     "55000: rule run 1 has finished and can no longer change");
        assert_error(e, "SELECT retention.end_run(1, 'success', 2, 0)", "55000: run 1 is not running");
        assert_error(e, "SELECT retention.begin_rule_run(1, 'r', 'c', 't', 'delete')", "55000: run 1 is not running");
        pgtest_exec(e, "SELECT retention.begin_run('h', 'v', 'run')");
        char *rr = pgtest_value(e, "SELECT retention.begin_rule_run(2, 'r', 'c', 't', 'delete')");
        char *sql = rt_asprintf("SELECT retention.add_rule_run_counts(%s, -5, 0, 1, 0)", rr);
        char *expect = rt_asprintf("23514: the counts of rule run %s only grow", rr);
        assert_error(e, sql, expect);
        free(sql);
        free(expect);
        pgtest_exec(e, "SELECT retention.add_rule_run_counts(%s, 5, 0, 1, 0)", rr);
        rt_assert_sql(c, "5|1", "SELECT rows_deleted || '|' || batches FROM retention.rule_runs WHERE id = %s", rr);

        /* a negative count is refused by the table itself, even a superuser's */
        sql = rt_asprintf("UPDATE retention.rule_runs SET rows_deleted = -1 WHERE id = %s", rr);
        assert_error(c, sql,
                     "23514: new row for relation \"rule_runs\" violates check constraint \"rule_runs_counts_check\"");
        free(sql);
        free(rr);
        assert_error(c, "UPDATE retention.runs SET rules_failed = -1 WHERE id = 2",
                     "23514: new row for relation \"runs\" violates check constraint \"runs_counts_check\"");

        /* forged INSERTs: sealed, finished, with counts; even a superuser's */
        assert_error(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, finished_at, outcome, seq,"
                        " prev_hash, hash, sealed_at) SELECT 2, 'r', 'c', 't', 'delete', now(), 'success', 3, hash, '\\x00', now()"
                        " FROM retention.chain_head",
                     "42501: a rule run cannot be inserted sealed");
        assert_error(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, finished_at, outcome)"
                        " VALUES (2, 'r', 'c', 't', 'delete', now(), 'success')",
                     "42501: a rule run cannot be inserted finished");
        assert_error(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action, rows_held)"
                        " VALUES (2, 'r', 'c', 't', 'delete', 7)",
                     "42501: a rule run cannot be inserted with counts");
        assert_error(c, "INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action)"
                        " VALUES (1, 'r', 'c', 't', 'delete')",
                     "55000: run 1 is not running");
        assert_error(c, "INSERT INTO retention.runs (host, version, mode, finished_at, outcome) VALUES"
                        " ('h', 'v', 'run', now(), 'success')",
                     "42501: a run cannot be inserted finished");
        assert_error(c, "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (4242, 'placed', 'x')",
                     "23503: hold 4242 does not exist");
        assert_error(c, "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (1, 'released', 'x')",
                     "23514: hold 1 was not released");
        assert_error(c, "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (1, 'placed', 'x')",
                     "23505: hold 1 already has its placed event");

        /* a release without its event is impossible: a superuser's direct UPDATE writes it too */
        pgtest_exec(c, "INSERT INTO retention.holds (subject, subject_key, reason, placed_by) VALUES ('account', '3', 'r', 'op')");
        pgtest_exec(c, "UPDATE retention.holds SET released_at = now(), released_by = 'direct' WHERE id = 2");
        rt_assert_sql(c, "released|direct|true", "SELECT e.event || '|' || e.by || '|' || (e.at = h.released_at)"
                                              " FROM retention.hold_events e JOIN retention.holds h ON h.id = e.hold_id"
                                              " WHERE e.hold_id = 2");
        assert_error(c, "INSERT INTO retention.hold_events (hold_id, event, by) VALUES (2, 'released', 'x')",
                     "23505: hold 2 already has its released event");
        /* and the CLI, as the engine's role, through release_hold() */
        char *out;
        rt_expect(0, &out, NULL, "-d", eci, "hold", "release", "1", "--by", "dpo2");
        rt_assert_contains(out, "hold 1 released by dpo2");
        free(out);
        rt_expect(1, NULL, &out, "-d", eci, "hold", "release", "1", "--by", "dpo3");
        rt_assert_contains(out, "hold 1 was already released");
        free(out);
        rt_expect(66, NULL, NULL, "-d", eci, "hold", "release", "4242");
        rt_assert_sql(c, "1:placed:dpo,1:released:dpo2,2:released:direct",
                      "SELECT string_agg(hold_id || ':' || event || ':' || by, ',' ORDER BY hold_id, id) FROM retention.hold_events");
        rt_expect(0, &out, NULL, "-p", pol, "-d", eci, "hold", "add", "account", "1", "--reason", "case 13", "--by", "dpo");
        rt_assert_contains(out, "hold 3 placed on account 1");
        free(out);
        rt_assert_sql(c, "placed:dpo", "SELECT string_agg(event || ':' || by, ',') FROM retention.hold_events WHERE hold_id = 3");

        /* the chain is whole, and the next run goes on */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_expect(0, NULL, NULL, "-d", eci, "verify");

        PQfinish(e);
        free(pol);
        PQfinish(c);
        free(eci);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_untrusted_trigger_refused),
                cmocka_unit_test(test_untrusted_trigger_trusted),
                cmocka_unit_test(test_trusted_triggers),
                cmocka_unit_test(test_trigger_created_mid_run),
                cmocka_unit_test(test_trigger_replaced_mid_run),
                cmocka_unit_test(test_cascade_trigger_created_mid_run),
                cmocka_unit_test(test_check_database),
                cmocka_unit_test(test_trail_writes),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
