/* fast-path.c — the main phase's batches as key ranges: one prepared DELETE/UPDATE of a range
 * of the age index, with a short lock wait; anything unusual goes back to the SKIP LOCKED batch.
 * Must never wait long for a row the application holds, nor change a row outside the range. */
#include "rule-run-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "trail.h"
#include "util.h"

/* The fast path may meet a row the application has locked; it must not wait for it longer
 * than a moment. The session's own lock_timeout (for table locks) comes back afterwards. */
#define FAST_PATH_LOCK_TIMEOUT_MS 50
#define FAST_PATH_STATEMENT "retentiond_batch"
#define FAST_PATH_BOUND "retentiond_bound"
#define FAST_PATH_STEP "retentiond_step"
/* A predicted range (plan->batch_step) has no LIMIT: the rows' density may have changed since the
 * last batch (a burst of traffic). Its statements run under a statement timeout of the short lock
 * wait plus four times the last batch's duration, at least PREDICT_GUARD_MIN_MS and at most four
 * times the batch's aim; a range that takes longer is rolled back and taken again after the
 * probe. The lock wait is in it, so that a row the application holds sends the batch to SKIP
 * LOCKED (55P03) as on a probed range, whatever work the range did before it met the row. */
#define PREDICT_GUARD_MIN_MS 10
/* After a predicted range redone, this many probed batches (doubling with each redone range, up
 * to PREDICT_BACKOFF_MAX, halving with each predicted range that commits) before the next. */
#define PREDICT_BACKOFF_MIN 2
#define PREDICT_BACKOFF_MAX 256
/* The widest predicted range, in the width's unit: a hundred years (microseconds; days). */
#define PREDICT_MAX_WIDTH_USEC INT64_C(3155760000000000)
#define PREDICT_MAX_WIDTH_DAYS INT64_C(36525)
/* Citus: the while_held phase's pair (plan->while_held_bound, while_held_range). */
#define WHILE_HELD_STATEMENT "retentiond_wh_batch"
#define WHILE_HELD_BOUND "retentiond_wh_bound"
/* The same wait on Citus's shards, for one transaction (FAST_PATH_LOCK_TIMEOUT_MS). */
#define CITUS_PROPAGATE_SET "SET LOCAL citus.propagate_set_commands = 'local'"
#define CITUS_SHORT_LOCK_WAIT "SET LOCAL lock_timeout = 50"

static void set_lock_timeout(RuleRun *rr, long ms) {
        char v[32];
        snprintf(v, sizeof(v), "%ld", ms);
        const char *p[] = { v };
        PgError e = {};
        (void) pg_exec(rr->pg, NULL, &e, "SELECT set_config('lock_timeout', $1, false)", 1, p);
        pg_error_done(&e);
}

void fast_path_restore_lock_timeout(RuleRun *rr) {
        if (!rr->short_lock_wait)
                return;
        rr->short_lock_wait = false;
        if (pg_connection_ok(rr->pg))
                set_lock_timeout(rr, rr->pg->settings.lock_timeout_ms);
}

void fast_path_release(RuleRun *rr) {
        fast_path_restore_lock_timeout(rr);
        if (rr->prepared) {
                pg_deallocate(rr->pg, FAST_PATH_STATEMENT);
                pg_deallocate(rr->pg, FAST_PATH_BOUND);
                rr->prepared = false;
        }
        if (rr->prepared_step) {
                pg_deallocate(rr->pg, FAST_PATH_STEP);
                rr->prepared_step = false;
        }
        if (rr->prepared_while_held) {
                pg_deallocate(rr->pg, WHILE_HELD_STATEMENT);
                pg_deallocate(rr->pg, WHILE_HELD_BOUND);
                rr->prepared_while_held = false;
        }
}

/* The phase's pair of statements and their names on the session: the main phase's, or (Citus)
 * the while_held phase's. */
typedef struct FastPair {
        const PlanStatement *bound, *range;
        const PlanStatement *start; /* slices: the phase's first age and density */
        const PlanStatement *step;  /* the predicted range's bound (sql NULL: none) */
        const char *bound_name, *range_name;
        bool *prepared;
        bool main; /* the main phase: the rule's own action, its cascades counted */
} FastPair;

static FastPair fast_pair(RuleRun *rr) {
        static const PlanStatement none = {};
        if (rr->phase == PHASE_WHILE_HELD)
                return (FastPair) { &rr->plan->while_held_bound, &rr->plan->while_held_range, &rr->plan->while_held_start, &none,
                                    WHILE_HELD_BOUND, WHILE_HELD_STATEMENT, &rr->prepared_while_held, false };
        return (FastPair) { &rr->plan->batch_bound, &rr->plan->batch_range, &rr->plan->batch_start, &rr->plan->batch_step,
                            FAST_PATH_BOUND, FAST_PATH_STATEMENT, &rr->prepared, true };
}

/* Prepares the fast path's two statements on first use (the predicted range's bound is prepared
 * in the pipeline of its first batch). 0, OUTCOME_SLOW_PATH (the table's lock
 * is held by the application: take this batch the slow way), or a PgErrorClass with err set (a
 * lost connection among them: never a reason to try the slow way). */
static int prepare_fast(RuleRun *rr, const FastPair *fp, PgError *err) {
        if (*fp->prepared)
                return 0;
        const PlanStatement *sts[] = { fp->bound, fp->range };
        const char *names[] = { fp->bound_name, fp->range_name };
        for (size_t i = 0; i < 2; i++) {
                int kp = pg_prepare(rr->pg, err, names[i], sts[i]->sql, (int) sts[i]->n_params);
                if (kp == PG_ERR_LOCK_TIMEOUT) {
                        /* Preparing the DELETE or UPDATE takes the table's lock already: a lock
                         * the application holds is met here first. */
                        pg_error_done(err);
                        for (size_t j = 0; j < i; j++)
                                pg_deallocate(rr->pg, names[j]);
                        return OUTCOME_SLOW_PATH;
                }
                if (kp) {
                        for (size_t j = 0; j < i; j++)
                                pg_deallocate(rr->pg, names[j]);
                        return kp;
                }
        }
        *fp->prepared = true;
        return 0;
}

/* The fast path's statement st of this batch in the pipeline: its parameters into *b (upper: the
 * range's upper end), which must live until the pipeline returned (rule_run_bind_done()). */
static PgPipeStmt fast_stmt(RuleRun *rr, const PlanStatement *st, const char *name, const char *upper, Bind *b,
                            PGresult **r) {
        rule_run_bind(rr, st, b, NULL, NULL, 0);
        for (size_t i = 0; i < st->n_params; i++)
                if (st->params[i].kind == PARAM_UPPER)
                        b->values[i] = upper;
        return (PgPipeStmt) { .name = name, .nparams = (int) st->n_params, .params = b->values, .result = r };
}

/* The range statement's: upper end (NULL: none), or else the width from the last key (a predicted
 * range; NULL: none, the range reaches the cutoff). */
static PgPipeStmt range_stmt(RuleRun *rr, const FastPair *fp, const char *upper, const char *width, Bind *b, PGresult **r) {
        PgPipeStmt s = fast_stmt(rr, fp->range, fp->range_name, upper, b, r);
        for (size_t i = 0; i < fp->range->n_params; i++)
                if (fp->range->params[i].kind == PARAM_WIDTH)
                        b->values[i] = width;
        return s;
}

/* The bound's answer: the range's upper end in *upper (NULL: the range reaches the cutoff) and
 * whether it is a tie. OUTCOME_SLOW_PATH when the range cannot be taken this way, else 0. */
static int read_bound(RuleRun *rr, PGresult *rb, bool citus, const char **upper, bool *tie) {
        *upper = PQgetisnull(rb, 0, 0) ? NULL : PQgetvalue(rb, 0, 0);
        /* No range can follow (batch_size rows aged -infinity): the rest of this rule run takes
         * the SKIP LOCKED batches, whose keyset includes its start. */
        bool stuck = *upper && streq(*upper, rr->last_key ? rr->last_key : "-infinity");
        /* batch_size rows or more share the range's one age value (a busy day of a date column):
         * a range of them has no size limit. This batch goes by SKIP LOCKED, LIMIT batch_size; the
         * fast path resumes after it. Citus has no SKIP LOCKED batch: the range of that one age
         * value is taken as it is, all its rows, unless the breaker's limit has fewer left. */
        *tie = streq(PQgetvalue(rb, 0, 1), "t");
        if (stuck)
                rr->fast_ok = false;
        return stuck || (*tie && !citus) ? OUTCOME_SLOW_PATH : 0;
}

/* Plain PostgreSQL: may the next range be predicted (plan->batch_step) instead of probed? Once a
 * batch of the main phase has shown the rows' density (rr->slice_width), when no redone range asks
 * to wait, and where the guard's statement timeout is the shorter one: the guard's milliseconds,
 * or 0 (probe). The range statement keeps every predicate of the rule
 * whatever its upper end: a prediction sizes a batch, it never selects a row. */
static long predict_guard_ms(const RuleRun *rr, const FastPair *fp, bool citus) {
        long st = rr->pg->settings.statement_timeout_ms;
        long most = (long) (4 * pace_batch_aim_usec(rr) / 1000);
        long work = (long) (rr->last_batch_usec * 4 / 1000);
        work = work < PREDICT_GUARD_MIN_MS ? PREDICT_GUARD_MIN_MS : work > most ? most : work;
        long guard = FAST_PATH_LOCK_TIMEOUT_MS + work;
        bool ok = fp->main && fp->step->sql && !rr->plan->slices && !citus && rr->slice_width > 0 && rr->predict_wait == 0 &&
                  (st <= 0 || st > 2 * guard);
        return ok ? guard : 0;
}

/* A predicted range was rolled back: the probe takes it again, and the next ones, for a while. */
static void predict_redo(RuleRun *rr) {
        rr->slice_width = 0;
        rr->res.batches_redone++;
        rr->predict_backoff = rr->predict_backoff == 0                          ? PREDICT_BACKOFF_MIN
                              : rr->predict_backoff * 2 > PREDICT_BACKOFF_MAX ? PREDICT_BACKOFF_MAX
                                                                              : rr->predict_backoff * 2;
        rr->predict_wait = rr->predict_backoff;
}

/* The next predicted range's width (rr->slice_width; 0: probe instead), aimed at the batch's
 * target (at most three quarters of batch_size): from the probe's rows (`found` over `span`, -1:
 * unknown) or the predicted range's own (`changed` over its width), at most twice the last width,
 * so that a sparse range does not throw the next one across a dense burst at once. A predicted range that found less than a quarter of
 * the target (a gap in time, rows already anonymised) hands over to the probe, which passes over
 * such rows in one walk. */
static void predict_next(RuleRun *rr, bool predicted, int64_t changed, int64_t found, int64_t span) {
        int64_t max = rr->plan->age_kind == COLKIND_DATE ? PREDICT_MAX_WIDTH_DAYS : PREDICT_MAX_WIDTH_USEC;
        /* Aimed a quarter below batch_size, which a range over it is redone for (undo_over_limit()). */
        double target = (double) batch_target(rr), w;
        if (target > (double) rr->rule->batch_size * 0.75)
                target = (double) rr->rule->batch_size * 0.75;
        if (!predicted) {
                if (span <= 0 || found < 2) {
                        rr->slice_width = 0;
                        return;
                }
                w = (double) span * target / (double) found;
        } else {
                double last = (double) rr->slice_width;
                if ((double) changed < target / 4) {
                        rr->slice_width = 0;
                        return;
                }
                w = last * target / (double) changed;
                if (w > 2 * last)
                        w = 2 * last;
        }
        rr->slice_width = w >= (double) max ? max : w < 1 ? 1 : (int64_t) w;
}

/* The guard of a predicted range ran out: a statement under it (`under`: the range or after it)
 * was cancelled for its time after the guard's time had passed; not the cancel of a stop, nor the
 * session's own statement_timeout, which predict_guard_ms() keeps the longer. */
static bool guarded_out(const RuleRun *rr, bool predicted, bool under, int k, uint64_t t0, long guard_ms) {
        return predicted && under && k == PG_ERR_STATEMENT_TIMEOUT && !rule_run_cancelled(rr, k) &&
               now_usec() - t0 >= (uint64_t) guard_ms * 1000;
}

/* Before the COMMIT of a range that has no size limit (Citus: a tie, or any slice) and changed
 * more rows than the breaker's limit has left: undone, and true. This is what keeps the limit on
 * Citus, where no batch has a LIMIT: each batch's count is compared with breaker_budget() in the
 * batch's own transaction, before its COMMIT, and a batch over it is rolled back whole (its trail
 * counter with it), so the committed batches never add up to more than the limit. A slice is then
 * tried again narrower (slices_narrow()); when it cannot be (one age value holds more rows than
 * are left, or too many tries), the breaker trips: more rows are due than the limit allows. A tie
 * of the probe's ranges leaves the rest of the rule for the next run. */
static bool undo_over_limit(RuleRun *rr, bool tie, bool predicted, int64_t changed, CascadeMark *before) {
        if (predicted && (changed > breaker_budget(rr) || changed > rr->rule->batch_size)) {
                /* A predicted range (plain PostgreSQL) over the limit, or over batch_size, which
                 * bounds every batch: the probe, whose LIMIT is both, takes it again. */
                pg_rollback_quietly(rr->pg);
                cascade_mark_done(before);
                /* The transaction id the undone range took is the engine's own, not another
                 * session's write: pacing counts afresh from the next batch (else it waited
                 * after every redone range, on a database nobody else wrote to). */
                rr->next_xid = 0;
                predict_redo(rr);
                return true;
        }
        if (!(tie || rr->plan->slices) || changed <= breaker_budget(rr))
                return false;
        pg_rollback_quietly(rr->pg);
        cascade_mark_done(before);
        rr->next_xid = 0;
        rr->swept_cleanly = false;
        if (!rr->plan->slices)
                rule_run_end_phase(rr);
        else if (!slices_narrow(rr, changed))
                breaker_trip(rr);
        return true;
}

/* After a committed batch that took `dt`, `written` rows written, `changed` of them deleted or
 * anonymised (they are counted; the written ones size the batches): the result's counts, the next batch's
 * size (and slice, or predicted width), pacing, and where the next range starts (`upper`; NULL:
 * the phase is over). */
static void batch_done(RuleRun *rr, const FastPair *fp, bool del, int64_t changed, int64_t written, uint64_t dt,
                       uint64_t next, const char *upper, bool predicted, int64_t found, int64_t span) {
        rr->res.batches++;
        if (del)
                rr->res.deleted += changed;
        else
                rr->res.anonymised += changed;
        if (!fp->main)
                rr->while_held_changed += changed;
        /* First: whether others wrote during this batch sets the aim the next is sized for. */
        pace_after_batch(rr, dt, 1, next);
        if (!rr->plan->slices) {
                if (!predicted)
                        pace_adapt_batch_size(rr, rr->batch_size, dt);
                else if (written >= batch_target(rr) / 2)
                        pace_adapt_batch_size(rr, written, dt);
                rr->last_batch_usec = dt;
                if (predicted)
                        rr->predict_backoff /= 2;
                else if (rr->predict_wait > 0)
                        rr->predict_wait--;
                if (upper && fp->step->sql)
                        predict_next(rr, predicted, written, found, span);
        } else {
                /* A slice holds what the density said, more or fewer: its own rows give the rate,
                 * unless they were too few to tell it from a distributed commit's fixed cost. */
                if (written >= batch_target(rr) / 2)
                        pace_adapt_batch_size(rr, written, dt);
                slices_next(rr, written);
        }
        if (!upper) {
                rule_run_end_phase(rr);
                return;
        }
        free(rr->last_key);
        rr->last_key = xstrdup(upper);
}

/* One fast-path batch, in one transaction: the range's upper end, the change, and the audit
 * trail's counters, so the trail never claims more than happened. Its statements go in three
 * round trips (pg_pipeline()): BEGIN and the bound; the range and the check of other roles' code;
 * the counters and COMMIT. A predicted range, whose bound the engine decides nothing on, goes in
 * two: BEGIN, the bound, the range and the check; the counters and COMMIT. The server runs each
 * statement as if sent alone, in that order; each decision of the engine (the probe's range, the
 * code check's verdict, the breaker's limit) sits between two round trips, never inside one.
 * Returns 0, OUTCOME_SLOW_PATH (take this batch with
 * SKIP LOCKED), or the PgErrorClass that ended the rule (rule_run_step_failed()). */
int fast_path_step(RuleRun *rr) {
        PgError err = {};
        _cleanup_pgresult_ PGresult *rb = NULL, *rc = NULL;
        uint64_t next = 0; /* the next transaction id, read by the batch's counter update */
        if (!rr->short_lock_wait && rr->pg->settings.lock_timeout_ms > FAST_PATH_LOCK_TIMEOUT_MS) {
                set_lock_timeout(rr, FAST_PATH_LOCK_TIMEOUT_MS);
                rr->short_lock_wait = true;
        }
        FastPair fp = fast_pair(rr);
        int k = prepare_fast(rr, &fp, &err);
        if (k == 0 && rr->plan->slices && !rr->slice_started) {
                k = slices_begin(rr, fp.start, &err);
                if (k == 0 && !rr->slice_started)
                        return 0; /* nothing left to change in this phase */
        }
        if (k == OUTCOME_SLOW_PATH) {
                rr->swept_cleanly = false;
                return OUTCOME_SLOW_PATH;
        }
        if (k)
                return rule_run_step_failed(rr, k, &err);

        pace_before_batch(rr);
        uint64_t t0 = now_usec();
        const char *upper = NULL;
        int64_t changed = 0;
        bool citus = cat_table_is_citus(rr->plan->table), tie = false;
        bool del = fp.main && rr->rule->action == ACTION_DELETE;
        CascadeMark before = {}, delta = {};
        size_t failed = 0;

        /* BEGIN, (Citus) the transaction's short lock wait on the shards, the range's upper end,
         * and the cascade targets' counters before the change. Citus: the session's lock_timeout
         * stays on the coordinator; the shards, where the application's row locks are, get this
         * transaction's SET LOCAL only when citus.propagate_set_commands says so. */
        Bind bb;
        _cleanup_pgresult_ PGresult *rm = NULL;
        PgPipeStmt a[8];
        size_t na = 0;
        a[na++] = (PgPipeStmt) { .sql = BATCH_BEGIN };
        if (citus) {
                a[na++] = (PgPipeStmt) { .sql = CITUS_PROPAGATE_SET };
                a[na++] = (PgPipeStmt) { .sql = CITUS_SHORT_LOCK_WAIT };
        }
        size_t bound_at = na;
        long guard_ms = predict_guard_ms(rr, &fp, citus);
        bool predicted = guard_ms > 0;
        const PlanStatement *bst = predicted ? fp.step : fp.bound;
        a[na] = fast_stmt(rr, bst, predicted ? FAST_PATH_STEP : fp.bound_name, NULL, &bb, &rb);
        if (predicted) {
                a[na].sql = bst->sql;
                a[na].prepared = &rr->prepared_step;
        }
        na++;
        if (fp.main && cascade_mark_stmt(rr, &a[na], &rm))
                na++;
        /* A predicted range needs no answer before it is sent: it goes in this same round trip,
         * its upper end computed by the server from the same last key and width as the bound's,
         * under the guard's statement timeout to the end of its transaction, and the check of
         * other roles' code after it (a later statement of the same transaction, with a newer
         * snapshot, as untrusted_batch_check() needs). */
        char guard_sql[64], width[32];
        Bind br = {};
        bool ranged = false;
        UntrustedBatch ub = {};
        size_t range_at = SIZE_MAX;
        if (predicted) {
                snprintf(guard_sql, sizeof(guard_sql), "SET LOCAL statement_timeout = %ld", guard_ms);
                snprintf(width, sizeof(width), "%" PRId64, rr->slice_width);
                a[na++] = (PgPipeStmt) { .sql = guard_sql };
                range_at = na;
                a[na++] = range_stmt(rr, &fp, NULL, width, &br, &rc);
                ranged = true;
                if (untrusted_batch_stmt(rr, &ub, &a[na]))
                        na++;
        }
        k = pg_pipeline(rr->pg, a, na, &failed, &err);
        rule_run_bind_done(&bb, bst->n_params);
        bool guard_hit = guarded_out(rr, predicted, k && failed != SIZE_MAX && failed >= range_at, k, t0, guard_ms);
        if (k && failed == bound_at)
                rule_run_name_timeout(rr, bst, k, &err);
        if (k && predicted && failed == range_at && !guard_hit)
                rule_run_name_timeout(rr, fp.range, k, &err);
        if (k == 0 && rm)
                cascade_mark_result(rr, &before, rm);
        /* A predicted bound is never a tie, nor stuck (its width is at least 1): the range it sent
         * along is only ever rolled back here if that changed. */
        if (k == 0 && read_bound(rr, rb, citus, &upper, &tie) == OUTCOME_SLOW_PATH) {
                pg_rollback_quietly(rr->pg);
                cascade_mark_done(&before);
                untrusted_batch_done(&ub);
                rr->swept_cleanly = false;
                return OUTCOME_SLOW_PATH;
        }

        /* After the probe, the range, unless no row from the last key to the cutoff is to change
         * (nothing for it to do, and nothing for it to walk again); and after it, the check of
         * other roles' code. */
        if (!predicted) {
                PgPipeStmt b[2];
                size_t nb = 0;
                if (k == 0 && !streq(PQgetvalue(rb, 0, 2), "0")) {
                        b[nb++] = range_stmt(rr, &fp, upper, NULL, &br, &rc);
                        ranged = true;
                }
                if (k == 0 && untrusted_batch_stmt(rr, &ub, &b[nb]))
                        nb++;
                if (k == 0 && nb > 0) {
                        k = pg_pipeline(rr->pg, b, nb, &failed, &err);
                        if (k && ranged && failed == 0)
                                rule_run_name_timeout(rr, fp.range, k, &err);
                }
        }
        if (ranged)
                rule_run_bind_done(&br, fp.range->n_params);
        /* written: the rows the range's statement wrote (they size the batches and bound them);
         * changed: those it deleted, or anonymised as they were written (plan->range_counted). */
        int64_t written = 0;
        if (k == 0) {
                bool counted = rc && fp.range == &rr->plan->batch_range && rr->plan->range_counted;
                written = !rc ? 0 : counted ? pg_int64_at(rc, 0, 0) : strtoll(PQcmdTuples(rc), NULL, 10);
                changed = counted ? pg_int64_at(rc, 0, 1) : written;
                k = untrusted_batch_verdict(rr, &ub, &err);
        }
        untrusted_batch_done(&ub);
        if (k == 0 && fp.main && undo_over_limit(rr, tie, predicted, written, &before))
                return 0;

        /* What the batch cascaded, the counters, and COMMIT (rule_run_commit()): no change
         * commits without its record; a failure is rolled back below. */
        if (k == 0) {
                TrailCount tc;
                PgPipeStmt counts;
                trail_count_stmt(rr->pg, &tc, rr->res.rule_run_id, del ? changed : 0, del ? 0 : changed, 1, 0, &counts);
                k = rule_run_commit(rr, fp.main, &before, changed, &counts, &delta, &err);
                guard_hit = guard_hit || guarded_out(rr, predicted, true, k, t0, guard_ms);
                if (k == 0)
                        k = trail_count_result(&tc, &next, &err);
                trail_count_done(&tc);
        }
        if (k)
                pg_rollback_quietly(rr->pg);
        else
                cascade_commit(rr, &delta);
        cascade_mark_done(&before);
        cascade_mark_done(&delta);
        uint64_t dt = now_usec() - t0;
        if ((int64_t) dt > rr->res.longest_batch_usec)
                rr->res.longest_batch_usec = (int64_t) dt;

        if (guard_hit) {
                /* The predicted range took longer than the guard allows (denser than the last
                 * batch said): rolled back whole, its counters with it; the probe sizes it again. */
                pg_error_done(&err);
                rr->next_xid = 0;
                predict_redo(rr);
                return 0;
        }
        if (k == PG_ERR_LOCK_TIMEOUT) {
                /* A row of this range is locked by the application: take this batch row by row,
                 * skipping locked rows, then come back to the fast path (Citus: the range and the
                 * rest of the rule are left for the next run, rule_run_step()). */
                pg_error_done(&err);
                rr->next_xid = 0; /* the failed statement may have taken an id too */
                rr->swept_cleanly = false;
                return OUTCOME_SLOW_PATH;
        }
        if (k == PG_ERR_FOREIGN_KEY && del) {
                pg_error_done(&err);
                rr->swept_cleanly = false;
                k = fk_isolate(rr, &err);
                return k ? rule_run_step_failed(rr, k, &err) : 0;
        }
        if (k)
                return rule_run_step_failed(rr, k, &err);
        int64_t found = predicted ? -1 : strtoll(PQgetvalue(rb, 0, 2), NULL, 10);
        int64_t span = predicted || PQnfields(rb) < 4 || PQgetisnull(rb, 0, 3) ? -1 : strtoll(PQgetvalue(rb, 0, 3), NULL, 10);
        if (predicted)
                rr->res.batches_predicted++;
        batch_done(rr, &fp, del, changed, written, dt, next, upper, predicted, found, span);
        return 0;
}
