/* rule-run-private.h — the inside of a rule run, shared by its rooms only: rule-run.c, breaker.c,
 * partitions.c, fk-isolate.c, cascades.c, untrusted.c, pace.c, fast-path.c, slices.c. Nothing else may
 * include it: the rest of the engine sees rule-run.h.
 *
 * Return convention: as rule-run.h (0, a PgErrorClass > 0, or the PgOutcome < 0 a function's
 * comment names); a room records the rule's own outcome with rule_run_fail(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "plan.h"
#include "rule-run.h"

/* Adaptive batch size: aim each batch at BATCH_TARGET_USEC, never above the rule's
 * batch_size, never below BATCH_MIN_ROWS; start at BATCH_START_ROWS (at BATCH_MIN_ROWS for a
 * delete from a table a foreign key refers to, rule-run.c). The aim sits below the 10 ms
 * a transaction should last, not at it: batches of one run vary around it by half again (aimed at
 * 10 ms, the longest of a 1M-row delete took 16 ms; at 6 ms, 7-10 ms, for the same total time of
 * the run). An aim, not a bound: one batch may still run long (a cold page, a checkpoint). */
#define BATCH_TARGET_USEC 6000
/* An anonymise rule's batches: an UPDATE changes a row at several times a DELETE's cost, so a
 * batch of 6 ms held a few hundred rows and each batch's fixed cost (three round trips, the check
 * of other roles' code, the trail's counters: about 2 ms) was a third of the run; aimed at 20 ms,
 * a 200,000-row anonymisation went from 1.2-1.5x one bulk UPDATE to 1.05-1.15x. Its rows stay
 * where they are (no index entry goes), and the pacing waits in proportion to the batch. */
#define BATCH_TARGET_USEC_ANONYMISE 20000
#define BATCH_TARGET_USEC_CITUS 100000 /* Citus: see pace_adapt_batch_size() */
/* While other sessions write (pacing saw their transaction ids during the last batch), a delete's
 * or an anonymisation's batches aim at this instead: the application's commits that overlap a
 * batch wait behind its WAL flush, its row locks and its CPU, and a shorter batch leaves them
 * less to wait for. On the benchmark (pgbench, 2 clients, 2 cores, --pace 4, 400,000 rows
 * deleted) the application's pooled p99 during the run went from 3.44-3.71 ms (aimed at 6 ms,
 * four runs) to 2.79-2.84 ms (at 3 ms, three runs), and the run from 5.1-5.5 s to 7.5-10.1 s;
 * aimed at 2 ms, 2.29-2.59 ms and 15-21 s: each batch's round trips then outweigh its rows. */
#define BATCH_TARGET_USEC_CONTENDED 3000
/* The least, and where a delete from a table a foreign key refers to starts (rule-run.c). Not
 * lower: the batch size is also the LIMIT of the SKIP LOCKED batches, which do not adapt (ties,
 * while_held, delete_with), and the number of rows one age value must hold to be a tie. */
#define BATCH_MIN_ROWS 100
#define BATCH_START_ROWS 1000
#define BATCH_START_ROWS_CITUS 10000 /* the same start for BATCH_TARGET_USEC_CITUS */

typedef enum Phase {
        PHASE_MAIN,
        PHASE_WHILE_HELD,
        PHASE_DONE,
} Phase;

struct RuleRun {
        Pg *pg;
        const Policy *policy;
        const Rule *rule;
        const EnforceOptions *o;
        Plan *plan;
        RuleResult res;
        int64_t run_id;    /* the run's row in the trail */
        char *started_db;  /* the database's now() when the cutoffs were computed: the rule run's start */
        char **slot_values;
        size_t n_slots;
        char *last_key;
        int64_t batch_size;
        Phase phase;
        unsigned stalls;
        bool fast_ok;        /* the range fast path is usable for this rule run */
        bool short_lock_wait; /* the session's lock_timeout is lowered for the fast path */
        bool prepared;        /* the fast path's statement is prepared on the session */
        bool prepared_step;   /* ... and the predicted range's bound (plan->batch_step), on its first use */
        bool prepared_while_held; /* Citus: the while_held phase's range statements are prepared */
        int64_t fk_refused;  /* rows the database refused for a reference deeper than the rule's table */
        char *fk_refused_table;
        unsigned isolate_widen;   /* foreign-key isolation selects batch_size << this many rows */
        int64_t isolate_refused;  /* rows refused by the last isolation that made no progress */
        int64_t while_held_changed; /* rows anonymised by the while_held phase */
        bool swept_cleanly;  /* every main batch went through the fast path to the cutoff */
        int64_t isolation_rows; /* > 0: the row-by-row selection's size, not cut to the breaker */
        uint64_t next_xid;   /* the cluster's next transaction id after the last batch; 0: unknown */
        uint64_t pause_usec; /* to wait before the next batch (pacing) */
        uint64_t started;
        bool contended;      /* other sessions wrote during the last batch: shorter batches (pacing) */
        bool fatal_connection;
        bool hash_key_installed; /* HASH_KEY_TABLE holds the pads: dropped by rule_run_finish() */
        CatCache *cache;     /* the catalog the rule was planned on: untrusted_batch_check() reads it again */
        /* Tables the rule's deletions can cascade into (ON DELETE CASCADE, SET NULL, SET DEFAULT),
         * as a PostgreSQL oid[] literal, in the order of res.cascades; NULL: none, and batches
         * need no transaction of their own. cascade_self: the rule's own table is one of them
         * (a self-reference), at that index; its own deletions are not cascades. */
        char *cascade_oids;
        char *cascade_names; /* text[] literal of their display names */
        long cascade_self; /* -1: not one of them */
        bool held_tallied; /* the tally ran before the while_held phase could move any age */
        bool idle;         /* no row was due at the start (probe_idle()): nothing was begun */
        /* Citus, a distributed table (Plan.slices): the batches are slices of the age span, cut in
         * slices.c. Reset at each phase's start. */
        bool slice_started;        /* the phase's first age and its rows are read (batch_start) */
        int64_t slice_width;       /* the next slice's width: microseconds, or days for a date column;
                                    * plain PostgreSQL: the next predicted range's (0: probe instead) */
        uint64_t last_batch_usec;  /* the last fast-path batch's duration (the predicted range's guard) */
        unsigned predict_backoff;  /* plain PostgreSQL: probed batches to wait after a predicted range redone */
        unsigned predict_wait;     /* ... and those still to wait before the next prediction */
        int64_t slice_span;        /* from the first due age to the cutoff, same unit: no slice is wider */
        double slice_density;      /* actionable rows per unit of age, as the last slice found them */
        unsigned slice_undone;     /* slices undone in a row because the breaker's limit had fewer rows left */
        PGresult *slice_seed;      /* the breaker's count, which is also the main phase's start, or NULL */
        int64_t slice_estimate;    /* the breaker's estimate of the due rows (the shards'), or -1 */
};

/* A batch's own transaction: READ COMMITTED whatever default_transaction_isolation says, so
 * that each statement, untrusted_batch_check()'s among them, reads the catalog as committed when it
 * starts (after the batch's statement took its locks), not as at the transaction's first one. */
#define BATCH_BEGIN "BEGIN ISOLATION LEVEL READ COMMITTED"

/* ---- rule-run.c ---- */

/* The daemon stops a run by setting o->stop and cancelling the statement in flight (PQcancel):
 * the server then reports 57014, which is the interruption asked for, not a failure. */
bool rule_run_cancelled(const RuleRun *rr, int k);
/* After statement st failed with k: a statement timeout becomes an error that names st's purpose
 * and the rule, with a hint (the server's message in the detail). Anything else is left as it is. */
void rule_run_name_timeout(const RuleRun *rr, const PlanStatement *st, int k, PgError *err);
/* Ends the rule with outcome and (a copy of) e. */
void rule_run_fail(RuleRun *rr, RuleOutcome outcome, const PgError *e);
/* The rows the next batch or slice aims at: the adaptive batch size, and in the main phase never
 * more rows than the breaker's limit has left, so that a run the estimate let start stops at the
 * limit, not one batch beyond it. */
int64_t batch_target(const RuleRun *rr);
/* A statement's parameters for this rule run (cutoffs, last key, batch size, ...). */
typedef struct Bind {
        const char **values;
        char **owned;
        size_t n_owned;
} Bind;
void rule_run_bind(RuleRun *rr, const PlanStatement *st, Bind *b, const char *ctid, const char *tableoid,
                   int64_t breaker_limit);
void rule_run_bind_done(Bind *b, size_t n);
int rule_run_exec(RuleRun *rr, const PlanStatement *st, PGresult **ret, PgError *err, const char *ctid,
                  const char *tableoid, int64_t breaker_limit);
int rule_run_tally(RuleRun *rr, PgError *err);
/* The main phase ends (the while_held phase follows), or the while_held phase (done). */
void rule_run_end_phase(RuleRun *rr);
/* A step's error k: the rule is interrupted (a stop's cancel), skipped (lock_timeout) or failed.
 * Returns 0 for an interruption, else k. */
int rule_run_step_failed(RuleRun *rr, int k, PgError *err);

/* ---- breaker.c ---- */

/* The rows the rule's normal action changed so far (not while_held's). */
int64_t breaker_main_changed(const RuleRun *rr);
/* The rows the running breaker still allows this run to change, INT64_MAX when it does not apply. */
int64_t breaker_budget(const RuleRun *rr);
/* The database clock (db_epoch, seconds) against this host's. Returns 0 or OUTCOME_BREAKER with *err. */
int breaker_check_clock(const RuleRun *rr, double db_epoch, PgError *err);
/* Before the rule: trips it (rule_run_fail(RULE_BREAKER)) when more rows are due than its limit
 * allows. Returns 0 (tripped or not) or a PgErrorClass. */
int breaker_check(RuleRun *rr, PgError *err);
/* Before a step: OUTCOME_BREAKER when the rule must stop, 0 to go on, or a PgErrorClass. */
int breaker_running_limit(RuleRun *rr, PgError *err);
void breaker_trip(RuleRun *rr);

/* ---- partitions.c ---- */

/* Drops the partitions whose every row is expired and unheld (and finishes earlier runs'
 * detaches). Returns 0 or the error that stops the rule. */
int partitions_drop_expired(RuleRun *rr, CatCache *cache, PgError *err);

/* ---- fk-isolate.c ---- */

/* Redoes a batch a foreign key refused one row at a time. 0 or a PgErrorClass. */
int fk_isolate(RuleRun *rr, PgError *err);

/* ---- cascades.c ---- */

typedef struct CascadeMark {
        int64_t *deleted, *nulled;
} CascadeMark;
void cascade_targets(RuleRun *rr, const CatCache *cache);
void cascade_mark_done(CascadeMark *m);
int cascade_mark(RuleRun *rr, CascadeMark *m, PgError *err);
int cascade_record(RuleRun *rr, const CascadeMark *before, int64_t own, CascadeMark *delta, PgError *err);
/* cascade_mark() and cascade_record() in two halves, for a batch's pipeline (pg_pipeline()): the
 * statement into *st (false: no cascade target, nothing to run), and once it ran, its result into
 * the mark or the delta. The record's parameters live in *cr (cascade_record_done() frees them). */
bool cascade_mark_stmt(RuleRun *rr, PgPipeStmt *st, PGresult **r);
void cascade_mark_result(RuleRun *rr, CascadeMark *m, const PGresult *r);
typedef struct CascadeRecord {
        char *deleted, *nulled;
        char id[32];
        const char *params[5];
        PGresult *result;
} CascadeRecord;
bool cascade_record_stmt(RuleRun *rr, const CascadeMark *before, int64_t own, CascadeRecord *cr, PgPipeStmt *st);
void cascade_record_result(RuleRun *rr, const CascadeRecord *cr, CascadeMark *delta);
void cascade_record_done(CascadeRecord *cr);
/* (rule-run.c) The end of a batch's transaction, in one round trip (pg_pipeline()): what the
 * batch cascaded (cascades: the targets' counters since *before, less `own` rows of the rule's own table), the
 * trail's counters (`counts`, trail_count_stmt()'s; NULL when the batch's statement moved them),
 * and COMMIT. The trail's functions raise when the rule run is not open: the server then runs no
 * COMMIT. On success *delta holds the cascades for cascade_commit(). 0 or a PgErrorClass; the
 * caller rolls back on failure. */
int rule_run_commit(RuleRun *rr, bool cascades, const CascadeMark *before, int64_t own, const PgPipeStmt *counts,
                    CascadeMark *delta, PgError *err);
void cascade_commit(RuleRun *rr, CascadeMark *delta);

/* ---- untrusted.c ---- */

int untrusted_check(RuleRun *rr, CatCache *cache, bool mid_run, bool *refused, PgError *err);
int untrusted_check_cached(RuleRun *rr, CatCache *cache, bool *refused, PgError *err);
bool untrusted_batch_guarded(const RuleRun *rr);
int untrusted_batch_check(RuleRun *rr, PgError *err);
/* untrusted_batch_check() in two halves, for a batch's pipeline (pg_pipeline()): its statement
 * into *st (false: none is needed, the verdict needs no result), to be run after the batch's
 * statements and before its COMMIT; then the verdict, as untrusted_batch_check() returns it.
 * untrusted_batch_done() frees *ub, always. */
typedef struct UntrustedBatch {
        CatTable **tables;
        size_t n;
        CatFingerprint f;
        bool asked; /* the statement is the caller's to run */
        bool same;
} UntrustedBatch;
bool untrusted_batch_stmt(RuleRun *rr, UntrustedBatch *ub, PgPipeStmt *st);
int untrusted_batch_verdict(RuleRun *rr, UntrustedBatch *ub, PgError *err);
void untrusted_batch_done(UntrustedBatch *ub);

/* ---- pace.c ---- */

/* The duration a batch of this rule aims at: BATCH_TARGET_USEC, or its anonymise or Citus twin. */
uint64_t pace_batch_aim_usec(const RuleRun *rr);
void pace_adapt_batch_size(RuleRun *rr, int64_t rows, uint64_t usec);
void pace_before_batch(RuleRun *rr);
void pace_after_batch(RuleRun *rr, uint64_t usec, unsigned own_xids, uint64_t next);
void pace_gentle_wal(RuleRun *rr, bool on);

/* ---- slices.c ---- */

/* Before a phase's first slice: reads where its due rows start and how dense they are, and sets
 * the last key to the first of them. 0 (rr->phase is over when none is left), OUTCOME_SLOW_PATH
 * (the first age is -infinity: no slice can start there), or a PgErrorClass with err set. */
int slices_begin(RuleRun *rr, const PlanStatement *start, PgError *err);
/* The breaker's count on a slices plan (its statement is batch_start's from the first row):
 * kept, and taken by slices_begin() for the main phase instead of a second pass. Takes `count`. */
void slices_seed(RuleRun *rr, PGresult *count);
/* After a slice of `changed` rows committed: the next slice's width. */
void slices_next(RuleRun *rr, int64_t changed);
/* A slice of `changed` rows was undone because the breaker's limit has fewer left: narrows the
 * next one. False when it cannot be narrowed further (the rule must stop: the breaker). */
bool slices_narrow(RuleRun *rr, int64_t changed);

/* ---- fast-path.c ---- */

/* One fast-path batch. 0, OUTCOME_SLOW_PATH (take it with SKIP LOCKED), or the PgErrorClass
 * that ended the rule. */
int fast_path_step(RuleRun *rr);
void fast_path_restore_lock_timeout(RuleRun *rr);
/* Deallocates the fast path's prepared statements, if any. */
void fast_path_release(RuleRun *rr);
