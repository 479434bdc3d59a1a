/* rule-run.c — one rule run as short steps: start (plan, audit-trail row, cutoffs, breaker,
 * partitions), one batch per step, finish (tally, seal). The other rule-run rooms (breaker.c,
 * partitions.c, fk-isolate.c, cascades.c, untrusted.c, pace.c, fast-path.c) do the parts.
 * Never touches a row that is not provably expired and unheld; never logs row contents. */
#include "rule-run-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "catalog.h"
#include "check-db.h"
#include "clock.h"
#include "rule-where.h"
#include "trail.h"
#include "util.h"

/* The daemon stops a run by setting o->stop and cancelling the statement in flight (PQcancel):
 * the server then reports 57014, which is the interruption asked for, not a failure. */
bool rule_run_cancelled(const RuleRun *rr, int k) {
        return k == PG_ERR_STATEMENT_TIMEOUT && enforce_stop_requested(rr->o);
}

/* A statement that exceeded statement_timeout: the error names what the statement was for and the
 * rule, and says what to do; the server's own words go to the detail. Not the cancel of a stop
 * (rule_run_cancelled()), which is no failure. */
void rule_run_name_timeout(const RuleRun *rr, const PlanStatement *st, int k, PgError *err) {
        if (k != PG_ERR_STATEMENT_TIMEOUT || rule_run_cancelled(rr, k) || !st->purpose || !rr->plan)
                return;
        _cleanup_free_ char *tn = qualified_name_display(&rr->plan->table->name);
        _cleanup_free_ char *hint = xasprintf("Raise --statement-timeout, or make the statement cheaper: \"retentiond audit --sql\""
                                              " prints it; indexes on the age column and on the referencing columns of each"
                                              " table that references %s let PostgreSQL use them.",
                                              tn);
        PgError e = {};
        pg_error_set(&e, "57014", err->primary ? err->primary : "canceling statement due to statement timeout", hint,
                     "%s of rule \"%s\" (%s) exceeded the statement timeout of %ld ms", st->purpose, rr->rule->name, tn,
                     rr->pg->settings.statement_timeout_ms);
        pg_error_done(err);
        *err = e;
}

void rule_run_fail(RuleRun *rr, RuleOutcome outcome, const PgError *e) {
        rr->res.outcome = outcome;
        pg_error_done(&rr->res.error);
        if (e) {
                memcpy(rr->res.error.sqlstate, e->sqlstate, sizeof(e->sqlstate));
                rr->res.error.primary = e->primary ? xstrdup(e->primary) : NULL;
                rr->res.error.detail = e->detail ? xstrdup(e->detail) : NULL;
                rr->res.error.hint = e->hint ? xstrdup(e->hint) : NULL;
                /* A privilege the role lacks, the server's words alone ("permission denied for
                 * table payment_d2"): check -d names each one the policy needs, and why. */
                if (!e->hint && streq(e->sqlstate, "42501"))
                        rr->res.error.hint = xstrdup(
                                "Run \"retentiond check --database\" as this role: it names every privilege the policy"
                                " needs that the role lacks, which sql/retentiond-role.sql grants (tables only read, such"
                                " as a foreign key's referencing table, in read_tables). Code the rule runs, a trigger"
                                " for instance, may need privileges of its own.");
        }
        rr->phase = PHASE_DONE;
}

void rule_run_bind_done(Bind *b, size_t n) {
        for (size_t i = 0; i < b->n_owned; i++)
                free(b->owned[i]);
        free(b->owned);
        free(b->values);
        (void) n;
        *b = (Bind) {};
}

static const char *own(Bind *b, char *s) {
        b->owned = xreallocarray(b->owned, b->n_owned + 1, sizeof(char *));
        b->owned[b->n_owned++] = s;
        return s;
}

int64_t batch_target(const RuleRun *rr) {
        int64_t n = rr->batch_size;
        if (rr->phase == PHASE_MAIN) {
                int64_t left = breaker_budget(rr);
                if (left < n)
                        n = left > 0 ? left : 1;
        }
        return n;
}

/* The size of the next batch: foreign-key isolation's, else batch_target(). */
static int64_t batch_rows(const RuleRun *rr) {
        return rr->isolation_rows > 0 ? rr->isolation_rows : batch_target(rr);
}

void rule_run_bind(RuleRun *rr, const PlanStatement *st, Bind *b, const char *ctid, const char *tableoid, int64_t breaker_limit) {
        *b = (Bind) {};
        b->values = xcalloc(st->n_params ? st->n_params : 1, sizeof(char *));
        int64_t rows = batch_rows(rr);
        for (size_t i = 0; i < st->n_params; i++) {
                const PlanParam *p = &st->params[i];
                switch (p->kind) {
                case PARAM_CONST:
                        b->values[i] = p->value;
                        break;
                case PARAM_TIME:
                        b->values[i] = p->slot < rr->n_slots ? rr->slot_values[p->slot] : NULL;
                        break;
                case PARAM_LAST_KEY:
                        b->values[i] = rr->last_key ? rr->last_key : "-infinity";
                        break;
                case PARAM_LIMIT:
                        b->values[i] = own(b, xasprintf("%" PRId64, rows));
                        break;
                case PARAM_OFFSET:
                        b->values[i] = own(b, xasprintf("%" PRId64, rows > 1 ? rows - 1 : 0));
                        break;
                case PARAM_RULE_RUN:
                        b->values[i] = own(b, xasprintf("%" PRId64, rr->res.rule_run_id));
                        break;
                case PARAM_BREAKER_LIMIT:
                        b->values[i] = own(b, xasprintf("%" PRId64, breaker_limit));
                        break;
                case PARAM_CTID:
                        b->values[i] = ctid;
                        break;
                case PARAM_TABLEOID:
                        b->values[i] = tableoid;
                        break;
                case PARAM_WIDTH:
                        b->values[i] = own(b, xasprintf("%" PRId64, rr->slice_width));
                        break;
                case PARAM_KEY:   /* explain only */
                case PARAM_UPPER: /* set by exec_fast() */
                        b->values[i] = NULL;
                        break;
                }
        }
}

int rule_run_exec(RuleRun *rr, const PlanStatement *st, PGresult **ret, PgError *err, const char *ctid,
                     const char *tableoid, int64_t breaker_limit) {
        Bind b;
        rule_run_bind(rr, st, &b, ctid, tableoid, breaker_limit);
        int k = pg_exec(rr->pg, ret, err, st->sql, (int) st->n_params, b.values);
        rule_run_bind_done(&b, st->n_params);
        rule_run_name_timeout(rr, st, k, err);
        return k;
}

int rule_run_tally(RuleRun *rr, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = rule_run_exec(rr, &rr->plan->tally, &r, err, NULL, NULL, 0);
        if (k)
                return k;
        RuleResult *res = &rr->res;
        res->due = pg_int64_at(r, 0, TALLY_DUE);
        res->held = pg_int64_at(r, 0, TALLY_HELD);
        res->actionable = pg_int64_at(r, 0, TALLY_ACTIONABLE);
        res->overdue = pg_int64_at(r, 0, TALLY_OVERDUE);
        res->fk_blocked = pg_int64_at(r, 0, TALLY_FK_BLOCKED);
        res->while_held_due = pg_int64_at(r, 0, TALLY_WHILE_HELD_DUE);
        free(res->oldest_age);
        res->oldest_age = PQgetisnull(r, 0, TALLY_OLDEST_AGE) ? NULL : xstrdup(PQgetvalue(r, 0, TALLY_OLDEST_AGE));
        named_counts_free(res->holds, res->n_holds);
        named_counts_free(res->fks, res->n_fks);
        res->holds = xcalloc(rr->plan->n_tally_holds ? rr->plan->n_tally_holds : 1, sizeof(NamedCount));
        res->n_holds = rr->plan->n_tally_holds;
        for (size_t i = 0; i < res->n_holds; i++)
                res->holds[i] = (NamedCount) { xstrdup(rr->plan->tally_holds[i]), pg_int64_at(r, 0, _TALLY_FIXED + (int) i) };
        res->fks = xcalloc(rr->plan->n_tally_fks ? rr->plan->n_tally_fks : 1, sizeof(NamedCount));
        res->n_fks = rr->plan->n_tally_fks;
        for (size_t i = 0; i < res->n_fks; i++)
                res->fks[i] = (NamedCount) { xstrdup(rr->plan->tally_fks[i]),
                                             pg_int64_at(r, 0, _TALLY_FIXED + (int) (res->n_holds + i)) };
        named_counts_free(res->with, res->n_with);
        res->with = xcalloc(rr->plan->n_tally_with ? rr->plan->n_tally_with : 1, sizeof(NamedCount));
        res->n_with = rr->plan->n_tally_with;
        for (size_t i = 0; i < res->n_with; i++)
                res->with[i] = (NamedCount) { xstrdup(rr->plan->tally_with[i]),
                                              pg_int64_at(r, 0, _TALLY_FIXED + (int) (res->n_holds + res->n_fks + i)) };
        return 0;
}

/* The cutoffs from r's first nf columns (plan->cutoffs' columns): one per slot, then the
 * database's clock as text (the rule run's start) and as epoch, checked against this host's. */
static int take_cutoffs(RuleRun *rr, PGresult *r, int nf, PgError *err) {
        rr->n_slots = nf > 1 ? (size_t) nf - 2 : 0;
        rr->started_db = xstrdup(PQgetvalue(r, 0, nf - 2));
        rr->slot_values = xcalloc(rr->n_slots ? rr->n_slots : 1, sizeof(char *));
        for (size_t i = 0; i < rr->n_slots; i++)
                rr->slot_values[i] = xstrdup(PQgetvalue(r, 0, (int) i));
        rr->res.cutoff = xstrdup(rr->slot_values[0]);
        return breaker_check_clock(rr, strtod(PQgetvalue(r, 0, nf - 1), NULL), err);
}

static int compute_cutoffs(RuleRun *rr, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        /* Its only values are the policy's durations and the clock: a data exception is about
         * them ("timestamp out of range") and shown whole. */
        rr->pg->input_errors = true;
        int k = rule_run_exec(rr, &rr->plan->cutoffs, &r, err, NULL, NULL, 0);
        rr->pg->input_errors = false;
        if (k)
                return k;
        return take_cutoffs(rr, r, PQnfields(r), err);
}

/* The cutoffs and whether any row is due at them, in one statement (plan->cutoffs_probe): the
 * round trip a rule with no row due saves. *done: it answered; else (no such statement, or it
 * failed other than by the connection: its error may be the rows', which are never shown whole)
 * the cutoffs and the probe go one by one, and their own errors say which failed. */
static int cutoffs_and_probe(RuleRun *rr, bool *idle, bool *done, PgError *err) {
        *idle = *done = false;
        if (!rr->plan->cutoffs_probe.sql || rr->plan->can_drop_partitions)
                return 0;
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = rule_run_exec(rr, &rr->plan->cutoffs_probe, &r, err, NULL, NULL, 0);
        if (k == PG_ERR_CONNECTION)
                return k;
        if (k) {
                pg_error_done(err);
                return 0;
        }
        int nf = PQnfields(r);
        *done = true;
        *idle = PQntuples(r) == 1 && streq(PQgetvalue(r, 0, nf - 1), "t");
        return take_cutoffs(rr, r, nf - 1, err);
}

/* The hash method's pads reach the server by COPY into a temporary table of this session
 * (HASH_KEY_TABLE), never as a statement parameter: the server logs parameters for any role that
 * may not set log_parameter_max_length (log_statement = all, log_min_duration_statement), but
 * never COPY data, and binary COPY quotes no data in an error's context either. The table lives
 * in this session's temporary buffers (not WAL-logged, invisible to other sessions) until
 * drop_hash_key() at the end of the rule run, or the end of the session. A role that may not
 * create temporary tables cannot run a hash rule: there is no fallback to parameters. */
static int install_hash_key(RuleRun *rr, PgError *err) {
        PgError e = {};
        int k = pg_exec0(rr->pg, NULL, &e,
                         "CREATE TEMPORARY TABLE IF NOT EXISTS " HASH_KEY_TABLE " (ipad bytea NOT NULL, opad bytea NOT NULL)"
                         " ON COMMIT PRESERVE ROWS");
        if (k == PG_ERR_PERMISSION) {
                _cleanup_free_ char *detail = xasprintf(
                        "%s. The hash key reaches the database only through a temporary table of retentiond's session,"
                        " never as a statement parameter, which the server may log.",
                        e.primary ? e.primary : "permission denied");
                pg_error_set(err, e.sqlstate, detail,
                             "Grant the role the TEMPORARY privilege on the database (GRANT TEMPORARY ON DATABASE ... TO"
                             " ...; PUBLIC has it unless it was revoked).",
                             "rule \"%s\" uses the hash method, and the role may not create temporary tables",
                             rr->rule->name);
                pg_error_done(&e);
                return k;
        }
        if (k) {
                *err = e;
                return k;
        }
        rr->hash_key_installed = true;
        k = pg_exec0(rr->pg, NULL, err, "TRUNCATE " HASH_KEY_TABLE);
        if (k)
                return k;
        k = pg_copy_in(rr->pg, err, "COPY " HASH_KEY_TABLE " (ipad, opad) FROM STDIN (FORMAT binary)",
                       rr->o->hash_key->copy_data, sizeof(rr->o->hash_key->copy_data));
        if (k)
                return k;
        /* Exactly one row, or the anonymising statement fails (plan.c, HASH_PAD_SQL). */
        return 0;
}

static void drop_hash_key(RuleRun *rr) {
        if (!rr->hash_key_installed || !pg_connection_ok(rr->pg))
                return;
        if (PQtransactionStatus(rr->pg->conn) != PQTRANS_IDLE)
                pg_rollback_quietly(rr->pg);
        PgError e = {};
        if (pg_exec0(rr->pg, NULL, &e, "DROP TABLE IF EXISTS " HASH_KEY_TABLE) == 0)
                rr->hash_key_installed = false;
        pg_error_done(&e);
}

/* Adds warning w (taken) to the rule's result. */
static void add_warning(RuleRun *rr, char *w) {
        rr->res.warnings = xreallocarray(rr->res.warnings, rr->res.n_warnings + 1, sizeof(char *));
        rr->res.warnings[rr->res.n_warnings++] = w;
}

/* The rule's plan, on the catalog as it is now: code of other roles refused, the plan built,
 * every where: parsed, the cascade targets found, the hash key installed. Returns 0 (the rule
 * may have ended: rule_run_done()) or the error for rule_run_start() to judge. */
static int start_plan(RuleRun *rr, CatCache *cache, PgError *err) {
        _cleanup_free_ char *perr = NULL;
        bool refused;
        /* On the run's lists: read again in start_cutoffs() once the rule has rows to change. */
        int k = untrusted_check_cached(rr, cache, &refused, err);
        if (k)
                return k;
        if (refused) {
                rule_run_fail(rr, RULE_FAILED, err);
                return 0;
        }

        if (plan_build(rr->policy, rr->rule, cache, &rr->plan, &perr) < 0) {
                pg_error_set(err, NULL, perr, "Run \"retentiond check --database\" to see every catalog problem.",
                             "rule \"%s\" does not fit the database", rr->rule->name);
                rule_run_fail(rr, RULE_FAILED, err);
                return 0;
        }
        /* Every where this rule's statements paste, parsed by PostgreSQL on its own first. */
        k = rule_where_check(rr->pg, rr->policy, rr->rule, cache, err);
        if (k)
                return k;
        if (!rr->o->dry_run)
                cascade_targets(rr, cache);
        rr->res.has_index = rr->plan->has_age_index;
        rr->fast_ok = rr->plan->batch_range.sql != NULL;
        /* Citus: batches aimed at BATCH_TARGET_USEC_CITUS start as many times larger. */
        if (cat_table_is_citus(rr->plan->table))
                rr->batch_size = rr->rule->batch_size < BATCH_START_ROWS_CITUS ? rr->rule->batch_size : BATCH_START_ROWS_CITUS;
        /* Deleting from a table a foreign key refers to (another table's or its own): each row
         * costs a lookup in the referencing table (in each of its partitions, when it is
         * partitioned; its referential actions, when it has some), milliseconds a row at worst.
         * The first batch, whose rate nothing has measured yet, starts at the least; the fast
         * path's batches then grow by at most half per batch. */
        else if (rr->rule->action == ACTION_DELETE && rr->plan->table->n_referenced_by > 0)
                rr->batch_size = rr->rule->batch_size < BATCH_MIN_ROWS ? rr->rule->batch_size : BATCH_MIN_ROWS;
        for (size_t i = 0; i < rr->plan->n_warnings; i++)
                add_warning(rr, xstrdup(rr->plan->warnings[i]));
        if (rr->o->dry_run) {
                /* the audit says, as check -d does, when the partial index of the rows still to
                 * anonymise is missing (one EXPLAIN; never in a run) */
                char *w = NULL;
                k = check_todo_index(rr->pg, rr->rule, rr->plan->table, &w, err);
                if (k)
                        return k;
                if (w)
                        add_warning(rr, w);
        }
        if (!rr->o->dry_run && rule_needs_hash_key(rr->rule) && !rr->o->hash_key) {
                pg_error_set(err, NULL, NULL,
                             "Give --hash-key-file FILE, the systemd credential hash-key, or RETENTIOND_HASH_KEY_FILE.",
                             "rule \"%s\" uses the hash method, but no hash key was found", rr->rule->name);
                rule_run_fail(rr, RULE_FAILED, err);
                return 0;
        }
        if (!rr->o->dry_run && rule_needs_hash_key(rr->rule))
                return install_hash_key(rr, err);
        return 0;
}

/* Whether no row is due (plan->idle_probe): then nothing is to change, hold or count, and the
 * rule run needs no more than its record. Never for a rule that may drop partitions, whose drop
 * does not go by the rows. */
static int probe_idle(RuleRun *rr, bool *idle, PgError *err) {
        *idle = false;
        if (!rr->plan->idle_probe.sql || rr->plan->can_drop_partitions)
                return 0;
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = rule_run_exec(rr, &rr->plan->idle_probe, &r, err, NULL, NULL, 0);
        if (k)
                return k;
        *idle = PQntuples(r) == 1 && streq(PQgetvalue(r, 0, 0), "t");
        return 0;
}

/* The cutoffs, computed by PostgreSQL, and the rule run's record: begun in the trail with them,
 * or (audit) the tally taken. A rule with no row due ends here: its record is written whole when
 * it finishes (trail_rule_end()), in one transaction. */
static int start_cutoffs(RuleRun *rr, PgError *err) {
        bool idle = false, done = false;
        int k = rr->o->dry_run ? 0 : cutoffs_and_probe(rr, &idle, &done, err);
        if (k)
                return k;
        if (!done) {
                k = compute_cutoffs(rr, err);
                if (k)
                        return k;
                if (rr->o->dry_run)
                        return rule_run_tally(rr, err); /* the audit: count now, decide what the breaker would do */
                k = probe_idle(rr, &idle, err);
                if (k)
                        return k;
        }
        if (idle) {
                rr->idle = true;
                rr->phase = PHASE_DONE;
                return 0;
        }
        /* Rows to change: code of another role as the catalog says it now (untrusted.c). */
        bool refused;
        k = untrusted_check(rr, rr->cache, false, &refused, err);
        if (k)
                return k;
        if (refused) {
                rule_run_fail(rr, RULE_FAILED, err);
                return 0;
        }
        k = trail_rule_begin(rr->pg, rr->run_id, rr->rule, rr->started_db, rr->res.cutoff, &rr->res.rule_run_id, err);
        if (k)
                rr->fatal_connection = k == PG_ERR_CONNECTION;
        return k;
}

int rule_run_start(Pg *pg, const Policy *p, const Rule *rule, CatCache *cache, const EnforceOptions *o, int64_t run_id,
                   RuleRun **ret) {
        RuleRun *rr = xcalloc(1, sizeof(RuleRun));
        PgError err = {};
        int k = 0;

        rr->pg = pg;
        rr->policy = p;
        rr->rule = rule;
        rr->o = o;
        rr->started = now_usec();
        rr->res.rule = rule;
        rr->res.rule_run_id = -1;
        rr->res.breaker_limit = -1;
        rr->res.outcome = RULE_RUNNING;
        rr->batch_size = rule->batch_size < BATCH_START_ROWS ? rule->batch_size : BATCH_START_ROWS;
        rr->swept_cleanly = true;
        rr->cascade_self = -1;
        rr->slice_estimate = -1;
        rr->cache = cache;
        rr->run_id = run_id;
        *ret = rr;

        /* Nothing before the cutoffs writes: the rule run's record is begun there (or, for a rule
         * that ends before, written whole by rule_run_finish()). */

        /* An earlier rule of this run dropped partitions: the facts loaded before may name
         * them (a foreign key declared on a partition, a cascade child), and a plan built from
         * them would fail with "relation ... does not exist". No plan of an earlier rule is
         * alive here; load everything again. */
        if (cache->stale) {
                cat_cache_done(cache); /* stays stale until a load succeeds */
                k = catalog_load_policy(pg, p, cache, &err);
                if (k)
                        goto fail;
                cache->stale = false;
        }

        k = start_plan(rr, cache, &err);
        if (k)
                goto fail;
        if (rr->phase == PHASE_DONE)
                goto out;
        k = start_cutoffs(rr, &err);
        if (k)
                goto fail;
        if (rr->phase == PHASE_DONE)
                goto out;
        k = breaker_check(rr, &err);
        if (k)
                goto fail;
        if (o->dry_run)
                rr->phase = PHASE_DONE;
        else if (rr->phase != PHASE_DONE && rr->plan->can_drop_partitions) {
                k = partitions_drop_expired(rr, cache, &err);
                if (rr->res.partitions_dropped > 0)
                        cache->stale = true; /* for the next rule: this one's plan still uses it */
                if (k)
                        goto fail;
        }
        goto out;

fail:
        rr->fatal_connection = k == PG_ERR_CONNECTION;
        if (rule_run_cancelled(rr, k))
                rule_run_fail(rr, RULE_INTERRUPTED, NULL);
        else
                rule_run_fail(rr, k == PG_ERR_LOCK_TIMEOUT ? RULE_SKIPPED : k == OUTCOME_BREAKER ? RULE_BREAKER : RULE_FAILED, &err);
out:
        pg_error_done(&err);
        return 0;
}

bool rule_run_done(const RuleRun *rr) {
        return rr->phase == PHASE_DONE;
}

void rule_run_end_phase(RuleRun *rr) {
        rr->phase = rr->phase == PHASE_MAIN ? PHASE_WHILE_HELD : PHASE_DONE;
        free(rr->last_key);
        rr->last_key = NULL;
        rr->stalls = 0;
        rr->slice_started = false; /* slices: the next phase reads its own start */
        rr->slice_undone = 0;
        slices_seed(rr, NULL);
        rr->slice_estimate = -1;
        /* No pause at a phase's end, and pacing starts a fresh count with the next phase. */
        rr->pause_usec = 0;
        rr->next_xid = 0;
}

int rule_run_step_failed(RuleRun *rr, int k, PgError *err) {
        if (rule_run_cancelled(rr, k)) {
                /* The cancelled batch rolled back whole, its audit-trail counters with it. */
                pg_error_done(err);
                rr->res.outcome = RULE_INTERRUPTED;
                rr->phase = PHASE_DONE;
                return 0;
        }
        rr->fatal_connection = k == PG_ERR_CONNECTION;
        if (k == PG_ERR_LOCK_TIMEOUT && !err->hint)
                err->hint = xstrdup("The application holds a lock on this table longer than lock_timeout;"
                                    " the rows are left for the next run.");
        rule_run_fail(rr, k == PG_ERR_LOCK_TIMEOUT ? RULE_SKIPPED : RULE_FAILED, err);
        pg_error_done(err);
        return k;
}

uint64_t rule_run_pause_usec(const RuleRun *rr) {
        return rr->phase == PHASE_DONE ? 0 : rr->pause_usec;
}

int rule_run_commit(RuleRun *rr, bool cascades, const CascadeMark *before, int64_t own, const PgPipeStmt *counts,
                    CascadeMark *delta, PgError *err) {
        CascadeRecord cr = {};
        PgPipeStmt c[3];
        size_t nc = 0;
        bool cascaded = cascades && cascade_record_stmt(rr, before, own, &cr, &c[nc]);
        if (cascaded)
                nc++;
        if (counts)
                c[nc++] = *counts;
        c[nc++] = (PgPipeStmt) { .sql = "COMMIT" };
        int k = pg_pipeline(rr->pg, c, nc, NULL, err);
        if (k == 0 && cascaded)
                cascade_record_result(rr, &cr, delta);
        cascade_record_done(&cr);
        return k;
}

/* One SKIP LOCKED batch's statement: in a transaction of its own when its cascades are counted
 * or code of other roles is checked for before its COMMIT, in two round trips (pg_pipeline()):
 * BEGIN, the cascade targets' counters, the statement and the code check; then what it cascaded
 * and COMMIT. The code check's verdict sits between the two. 0 or a PgErrorClass. */
static int exec_batch(RuleRun *rr, const PlanStatement *st, PGresult **r, PgError *err) {
        bool cascades = rr->phase == PHASE_MAIN && rr->cascade_oids;
        if (!cascades && !untrusted_batch_guarded(rr))
                return rule_run_exec(rr, st, r, err, NULL, NULL, 0);
        CascadeMark before = {}, delta = {};
        _cleanup_pgresult_ PGresult *rm = NULL;
        UntrustedBatch ub = {};
        Bind b;
        PgPipeStmt a[4];
        size_t na = 0, failed = 0;
        a[na++] = (PgPipeStmt) { .sql = BATCH_BEGIN };
        if (cascades && cascade_mark_stmt(rr, &a[na], &rm))
                na++;
        size_t st_at = na;
        rule_run_bind(rr, st, &b, NULL, NULL, 0);
        a[na++] = (PgPipeStmt) { .sql = st->sql, .nparams = (int) st->n_params, .params = b.values, .result = r };
        if (untrusted_batch_stmt(rr, &ub, &a[na]))
                na++;
        int k = pg_pipeline(rr->pg, a, na, &failed, err);
        rule_run_bind_done(&b, st->n_params);
        if (k && failed == st_at)
                rule_run_name_timeout(rr, st, k, err);
        if (k == 0 && rm)
                cascade_mark_result(rr, &before, rm);
        if (k == 0)
                k = untrusted_batch_verdict(rr, &ub, err);
        untrusted_batch_done(&ub);
        if (k == 0)
                k = rule_run_commit(rr, cascades, &before, pg_int64_at(*r, 0, 1), NULL, &delta, err);
        if (k) {
                pg_rollback_quietly(rr->pg);
                if (*r) {
                        PQclear(*r);
                        *r = NULL;
                }
        } else
                cascade_commit(rr, &delta);
        cascade_mark_done(&before);
        cascade_mark_done(&delta);
        return k;
}

int rule_run_step(RuleRun *rr) {
        PgError err = {};
        int k;

        rr->pause_usec = 0;
        if (rr->phase == PHASE_DONE)
                return 0;
        if (enforce_stop_requested(rr->o)) {
                rr->res.outcome = RULE_INTERRUPTED;
                rr->phase = PHASE_DONE;
                return 0;
        }
        k = breaker_running_limit(rr, &err);
        if (k == OUTCOME_BREAKER) {
                breaker_trip(rr);
                return 0;
        }
        if (k)
                return rule_run_step_failed(rr, k, &err);
        if (rr->phase == PHASE_DONE)
                return 0;
        /* The fast path's ranges hold fewer than batch_size rows; once the breaker's limit has
         * less left than that, the SKIP LOCKED batches, whose LIMIT is exact, finish the rule. */
        /* Citus has no SKIP LOCKED batch (below): a reference table's ranges are cut to what the
         * limit has left (batch_rows() sizes the bound's LIMIT), a distributed table's slices are
         * aimed at it and undone over it (fast-path.c, undo_over_limit()). */
        if (rr->phase == PHASE_MAIN && rr->fast_ok &&
            (breaker_budget(rr) >= rr->batch_size || cat_table_is_citus(rr->plan->table))) {
                k = fast_path_step(rr);
                if (k != OUTCOME_SLOW_PATH)
                        return k;
        }
        if (rr->phase == PHASE_MAIN && cat_table_is_citus(rr->plan->table)) {
                /* Citus: the SKIP LOCKED batch selects rows FOR UPDATE by ctid, which Citus refuses
                 * on a multi-shard table and which names no row across shards or copies. A range
                 * the fast path could not take (a row the application holds, the breaker's last
                 * rows, a tie) is left for the next run, counted as skipped. */
                rule_run_end_phase(rr);
                return 0;
        }
        /* This batch with SKIP LOCKED. It waits for the table's lock as long as --lock-timeout
         * says: the fast path's short wait is meant for locked rows, and a table lock held a
         * little longer must not make the rule skip. */
        fast_path_restore_lock_timeout(rr);
        const PlanStatement *st = rr->phase == PHASE_MAIN ? &rr->plan->batch : &rr->plan->while_held_batch;
        if (!st->sql) {
                rr->phase = PHASE_DONE;
                return 0;
        }
        if (rr->phase == PHASE_WHILE_HELD && !rr->held_tallied) {
                /* The held rows are counted right before the first of them is anonymised, whichever
                 * way the main phase ended (also at the breaker's exact limit, in this same step): a
                 * trigger of the table may move their age column on that UPDATE (a last_update
                 * column), and a tally after it would no longer see them as due, nor as held.
                 * Nothing of the main action changes after this point, so the rest of the tally is
                 * as exact now as later. */
                k = rule_run_tally(rr, &err);
                if (k)
                        return rule_run_step_failed(rr, k, &err);
                rr->held_tallied = true;
        }
        if (rr->phase == PHASE_WHILE_HELD && cat_table_is_citus(rr->plan->table)) {
                /* Citus: the held rows by age ranges (plan->while_held_range), as the main phase;
                 * what the ranges cannot take (a row the application holds, a tie) is left for
                 * the next run. */
                k = rr->plan->while_held_range.sql ? fast_path_step(rr) : OUTCOME_SLOW_PATH;
                if (k == OUTCOME_SLOW_PATH)
                        rule_run_end_phase(rr);
                return k == OUTCOME_SLOW_PATH ? 0 : k;
        }

        pace_before_batch(rr);
        uint64_t t0 = now_usec();
        _cleanup_pgresult_ PGresult *r = NULL;
        k = exec_batch(rr, st, &r, &err);
        uint64_t dt = now_usec() - t0;
        if ((int64_t) dt > rr->res.longest_batch_usec)
                rr->res.longest_batch_usec = (int64_t) dt;
        if (rr->phase == PHASE_MAIN)
                rr->swept_cleanly = false;

        if (k == PG_ERR_FOREIGN_KEY && rr->phase == PHASE_MAIN && rr->rule->action == ACTION_DELETE) {
                pg_error_done(&err);
                k = fk_isolate(rr, &err);
                if (k == 0)
                        return 0;
        }
        if (k)
                return rule_run_step_failed(rr, k, &err);

        int64_t selected = pg_int64_at(r, 0, 0), changed = pg_int64_at(r, 0, 1);
        uint64_t next = PQgetisnull(r, 0, 3) ? 0 : strtoull(PQgetvalue(r, 0, 3), NULL, 10);
        rr->res.batches++;
        if (rr->phase == PHASE_MAIN && rr->rule->action == ACTION_DELETE)
                rr->res.deleted += changed;
        else
                rr->res.anonymised += changed;
        if (rr->phase == PHASE_WHILE_HELD)
                rr->while_held_changed += changed;
        pace_after_batch(rr, dt, 1, next);

        if (selected == 0) {
                rule_run_end_phase(rr);
                return 0;
        }
        const char *last = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2);
        if (changed == 0 && streq_ptr(last, rr->last_key)) {
                /* Selected rows that the recheck refused, twice at the same position: the rows
                 * are changing under us. Leave them for the next run rather than spin. */
                if (++rr->stalls >= 3)
                        rule_run_end_phase(rr);
                return 0;
        }
        rr->stalls = 0;
        free(rr->last_key);
        rr->last_key = last ? xstrdup(last) : NULL;
        return 0;
}

/* Can the database itself keep a due row from the engine's DELETE/UPDATE on this table: a BEFORE
 * row trigger that may return NULL, row security that applies to this role, or a rule? Then a
 * clean sweep does not prove that nothing is left. True when it cannot tell. */
static bool may_refuse(RuleRun *rr) {
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", rr->plan->table->oid);
        const char *p[] = { oid, rr->rule->action == ACTION_DELETE ? "8" : "16" };
        _cleanup_free_ char *v = NULL;
        PgError e = {};
        int k = pg_value(rr->pg, &v, &e,
                         "SELECT coalesce(bool_or(c.relhasrules OR row_security_active(c.oid) OR EXISTS (SELECT 1 FROM pg_trigger tg"
                         " WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'"
                         " AND tg.tgtype::int & 3 = 3 AND tg.tgtype::int & $2::int <> 0)), true)"
                         " FROM pg_class c WHERE c.oid = $1::oid"
                         " OR c.oid IN (SELECT pt.relid FROM pg_partition_tree($1::oid) pt)",
                         2, p);
        pg_error_done(&e);
        return k != 0 || !streq_ptr(v, "f");
}

/* Why the due rows the tally still finds (unheld, unreferenced) were left, each reason only when
 * it is what happened: a rule run that did not run to its end tried nothing on them; of one that
 * did, those another session's transaction holds now were locked, and the others the database
 * did not let the engine change (or they changed during the run). */
static void classify_skipped(RuleRun *rr) {
        RuleResult *res = &rr->res;
        res->skipped_locked = res->skipped_refused = res->skipped_unfinished = 0;
        if (rr->o->dry_run || res->actionable <= 0)
                return;
        if (res->outcome != RULE_SUCCESS) {
                res->skipped_unfinished = res->actionable;
                return;
        }
        int64_t locked = 0;
        if (rr->plan && !rr->fatal_connection && pg_connection_ok(rr->pg)) {
                _cleanup_pgresult_ PGresult *r = NULL;
                PgError e = {};
                if (rule_run_exec(rr, &rr->plan->skipped_locked, &r, &e, NULL, NULL, 0) == 0)
                        locked = pg_int64_at(r, 0, 0);
                pg_error_done(&e);
        }
        if (locked > res->actionable)
                locked = res->actionable;
        res->skipped_locked = locked;
        res->skipped_refused = res->actionable - locked;
}

int rule_run_finish(RuleRun *rr, RuleResult *out) {
        PgError err = {};
        int k = 0;

        fast_path_release(rr);
        pace_gentle_wal(rr, false);

        if (rr->res.outcome == RULE_RUNNING)
                rr->res.outcome = RULE_SUCCESS;

        /* Count what is left, unless the plan never got that far or the connection is gone. */
        /* After a clean sweep to the cutoff of a rule nothing can keep, every due row is gone:
         * counting them again would only walk the index entries the run just made dead. */
        /* No row was due at the start (probe_idle()): the tally would count none. */
        bool nothing_left = rr->idle || (rr->plan && rr->plan->nothing_keeps && rr->swept_cleanly &&
                                         rr->res.outcome == RULE_SUCCESS && rr->phase == PHASE_DONE && !may_refuse(rr));
        if (!rr->o->dry_run && rr->plan && rr->slot_values && !nothing_left && !rr->held_tallied && !rr->fatal_connection &&
            pg_connection_ok(rr->pg)) {
                k = rule_run_tally(rr, &err);
                if (k) {
                        rr->fatal_connection = k == PG_ERR_CONNECTION;
                        if (rr->res.outcome == RULE_SUCCESS)
                                rule_run_fail(rr, RULE_FAILED, &err);
                        pg_error_done(&err);
                }
        }
        /* Rows the database refused for a reference the tally cannot see (below a cascade) are
         * still due and unheld in the tally: report them as kept by a foreign key, not as locked. */
        if (rr->fk_refused > 0 && rr->res.actionable > 0) {
                int64_t n = rr->fk_refused < rr->res.actionable ? rr->fk_refused : rr->res.actionable;
                rr->res.actionable -= n;
                rr->res.fk_blocked += n;
                rr->res.fks = xreallocarray(rr->res.fks, rr->res.n_fks + 1, sizeof(NamedCount));
                rr->res.fks[rr->res.n_fks++] = (NamedCount) {
                        xstrdup(rr->fk_refused_table ? rr->fk_refused_table : "a table further down a cascade"), n
                };
        }
        drop_hash_key(rr);
        classify_skipped(rr);
        if (!rr->o->dry_run && !rr->fatal_connection && pg_connection_ok(rr->pg)) {
                k = trail_rule_end(rr->pg, rr->run_id, rr->started_db, &rr->res, &err);
                if (k) {
                        rr->fatal_connection = k == PG_ERR_CONNECTION;
                        if (rr->res.outcome == RULE_SUCCESS)
                                rule_run_fail(rr, RULE_FAILED, &err);
                }
                pg_error_done(&err);
        }
        rr->res.duration_usec = now_usec() - rr->started;
        *out = rr->res;
        rr->res = (RuleResult) {};
        return rr->fatal_connection ? PG_ERR_CONNECTION : 0;
}

void rule_run_free(RuleRun *rr) {
        if (!rr)
                return;
        rule_result_done(&rr->res);
        plan_free(rr->plan);
        for (size_t i = 0; i < rr->n_slots; i++)
                free(rr->slot_values[i]);
        free(rr->slot_values);
        free(rr->last_key);
        free(rr->started_db);
        PQclear(rr->slice_seed);
        free(rr->fk_refused_table);
        free(rr->cascade_oids);
        free(rr->cascade_names);
        free(rr);
}
