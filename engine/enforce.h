/* enforce.h — runs a policy against a database: the rule run as a sequence of short
 * steps (start, one batch at a time, finish), the dry-run audit, the audit trail.
 * Never touches a row that is not provably expired and unheld. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "hashkey.h"
#include "pg.h"
#include "plan.h"
#include "policy.h"

#define RETENTION_SCHEMA_VERSION 7
/* pg_advisory_lock(int4, int4) keys: "RTND" and a purpose. */
#define ADVISORY_CLASS 0x52544E44
/* 1 was the whole-database enforcement lock of schema versions 1 and 2, replaced by per-rule locks. */
#define ADVISORY_MIGRATE 2
/* Per-rule locks: pg_try_advisory_lock(ADVISORY_CLASS_RULE, hashtext(rule name)), "RTNR". */
#define ADVISORY_CLASS_RULE 0x52544E52

typedef enum RuleOutcome {
        RULE_RUNNING,
        RULE_SUCCESS,
        RULE_FAILED,
        RULE_BREAKER,
        RULE_INTERRUPTED,
        RULE_SKIPPED, /* could not take its locks in time: left for the next run */
} RuleOutcome;

const char *rule_outcome_to_string(RuleOutcome o);

typedef struct NamedCount {
        char *name;
        int64_t rows;
} NamedCount;

/* Rows of a referencing table that a rule run's deletions removed (ON DELETE CASCADE) or whose
 * reference they set to NULL or its default (SET NULL / SET DEFAULT), cascades of cascades too. */
typedef struct CascadeCount {
        char *table; /* display name, as in the audit trail */
        int64_t deleted, nulled;
} CascadeCount;

typedef struct RuleResult {
        const Rule *rule;
        int64_t rule_run_id; /* -1 in a dry run */
        char *cutoff;        /* as PostgreSQL computed it */

        /* tally (audit: before; run: after) */
        int64_t due, held, actionable, overdue, fk_blocked, while_held_due;
        char *oldest_age; /* interval text, NULL when nothing is due */
        NamedCount *holds;
        size_t n_holds;
        NamedCount *fks;
        size_t n_fks;

        /* what was done */
        int64_t deleted, anonymised, partitions_dropped, batches;
        CascadeCount *cascades; /* per referencing table, in the order of the engine's walk */
        size_t n_cascades;
        int64_t cascade_deleted, cascade_nulled; /* their sums */
        /* Why the `actionable` rows of the tally were left (run only; they add up to it): another
         * session's transaction held them when the rule run ended; nobody held them, so the
         * database did not let the change happen (trigger, row security, rule) or they changed
         * during the run; the rule run did not run to its end. */
        int64_t skipped_locked, skipped_refused, skipped_unfinished;
        int64_t longest_batch_usec;
        int64_t paused_usec; /* waited between batches while other sessions were writing (--pace) */

        /* breaker */
        bool breaker_checked, breaker_tripped, forced;
        int64_t breaker_rows, table_rows, breaker_limit;
        bool table_rows_analysed; /* table_rows came from statistics, not an exact count */

        bool has_index;
        char **warnings;
        size_t n_warnings;
        char **untrusted; /* code of another role that ran with the engine's privileges (trust_triggers) */
        size_t n_untrusted;

        RuleOutcome outcome;
        PgError error; /* when FAILED, BREAKER or SKIPPED */
        int64_t chain_seq; /* position in the audit trail's hash chain; 0: not sealed */
        char *chain_hash;  /* its digest, lowercase hex; NULL: not sealed */
        uint64_t duration_usec;
} RuleResult;

void rule_result_done(RuleResult *r);

/* The database's clock decides every cutoff; this host's clock checks it. A rule whose
 * database clock is more than this many seconds away from the host's trips the breaker. */
#define ENFORCE_DEFAULT_MAX_CLOCK_SKEW_SEC 3600
void enforce_set_max_clock_skew(int64_t sec); /* 0: no check */

/* Pacing: while other sessions write (they were assigned transaction ids during the last batch),
 * wait this many times the batch's duration before the next one; on an idle database batches
 * follow each other at once. 0: never wait. The default 4 keeps the application's p99 within
 * 1.3x of its p99 alone on the benchmark (pgbench, 2 clients, 2 cores; pooled over 3 runs:
 * pace 1 1.09-1.56x, pace 4 1.21-1.28x, pace 10 1.14-1.16x): while a batch runs, the
 * application's commits flush its WAL with theirs, so what pacing buys is fewer of them
 * overlapping a batch. */
#define ENFORCE_DEFAULT_PACE 4.0
#define ENFORCE_MAX_PACE 100.0
void enforce_set_pace(double ratio);

typedef struct EnforceOptions {
        bool dry_run;
        bool force;
        char *const *only_rules; /* NULL: every rule */
        size_t n_only_rules;
        const HashKey *hash_key;
        const char *mode; /* "run" or "daemon" for the audit trail */
        volatile sig_atomic_t *stop; /* checked between batches; set: finish cleanly, record interrupted */
} EnforceOptions;

typedef struct RunResult {
        int64_t run_id; /* -1 in a dry run */
        RuleResult *rules;
        size_t n_rules;
        bool interrupted;
        uint64_t duration_usec;
} RunResult;

void run_result_free(RunResult *r);
static inline void run_result_freep(RunResult **r) {
        run_result_free(*r);
}

/* Checks that the retention schema is installed at the version this build knows.
 * Returns 0; otherwise a PgErrorClass or OUTCOME_SCHEMA_MISMATCH (missing, or another version)
 * with *err filled. */
int trail_check_schema(Pg *pg, PgError *err);

/* Takes one rule's advisory lock (session level): every session that enforces a rule holds it
 * while it does. Returns 0, OUTCOME_RULE_BUSY when another session holds it (err names the rule
 * and, when it is recorded, the run, host and backend), or a PgErrorClass. */
int rule_lock(Pg *pg, const char *rule, PgError *err);
void rule_unlock(Pg *pg, const char *rule);

typedef enum SlotClaim {
        SLOT_NOT_TRIED = 0,
        SLOT_CLAIMED, /* the rule's lock is held and its slot recorded: run it, then rule_unlock() */
        SLOT_TAKEN,   /* another daemon (or this one before a restart) started it within the slot */
        SLOT_LOCKED,  /* another session enforces it now (a long run, or `retentiond run`) */
        SLOT_ERROR,   /* the claim failed (err); not a lost connection */
} SlotClaim;

/* For daemons: takes the rule's lock and claims its schedule slot in one transaction: the rule
 * may start only if its last start (retention.rule_slots, by any daemon) is older than its
 * schedule, less a tenth of it (at most 30 s) for the distance between the daemons' timers and
 * the database clock; or lies in the future (then *future gets it, as text: the caller warns;
 * caller frees); or the rule's latest rule run did not finish (it resumes at once).
 * force (a requested run): start whatever the slot says. On SLOT_TAKEN and
 * SLOT_LOCKED the lock is not kept; *wait_usec is how long until the next slot begins (the last
 * start plus the schedule: SLOT_TAKEN; a daemon that waits the whole slot keeps the period),
 * and *by says who took it ("host H, backend PID P"; caller frees). Returns 0, or a PgErrorClass
 * with *err (then *claim is SLOT_ERROR). */
int rule_slot_claim(Pg *pg, const Rule *rule, bool force, SlotClaim *claim, int64_t *wait_usec, char **by, char **future,
                    PgError *err);

/* Loads catalog facts for every table a set of rules needs into cache. Returns 0, or a
 * PgErrorClass or OUTCOME_TABLE_GONE (first failure) — missing tables are reported per rule by
 * plan_build(). */
int enforce_load_catalog(Pg *pg, const Policy *p, CatCache *cache, PgError *err);

/* The whole run from the terminal: every selected rule in policy order, each to completion.
 * dry_run: one READ ONLY REPEATABLE READ transaction, tallies only, nothing recorded.
 * Returns 0 with *ret filled (rule failures are in the results), or, with *err, what stops the
 * whole run: a PgErrorClass (PG_ERR_CONNECTION once rules ran: *ret is filled too), OUTCOME_RULE_BUSY (another
 * session enforces a wanted rule), OUTCOME_SCHEMA_MISMATCH or OUTCOME_TABLE_GONE. */
int enforce_run(Pg *pg, const Policy *p, const EnforceOptions *o, RunResult **ret, PgError *err);

/* ---- the steps, for the daemon ---- */
typedef struct RuleRun RuleRun;
/* Starts one rule: plan, audit-trail row, cutoffs, breaker, partition drops. On return
 * *ret is set even when the rule already ended (breaker, error): check rule_run_done(). */
int rule_run_start(Pg *pg, const Policy *p, const Rule *rule, CatCache *cache, const EnforceOptions *o,
                   int64_t run_id, RuleRun **ret);
/* One batch (one short transaction). Returns 0, or the PgErrorClass that ended the rule (in
 * its result too; PG_ERR_CONNECTION: the session is gone). */
int rule_run_step(RuleRun *rr);
bool rule_run_done(const RuleRun *rr);
/* How long to wait before the next rule_run_step() (pacing); 0: go on at once. */
uint64_t rule_run_pause_usec(const RuleRun *rr);
/* Tally, audit trail, result. Takes ownership of the result fields into *out. */
int rule_run_finish(RuleRun *rr, bool interrupted, RuleResult *out);
void rule_run_free(RuleRun *rr);

int trail_run_begin(Pg *pg, const char *mode, int64_t *ret, PgError *err);
int trail_run_end(Pg *pg, int64_t run_id, const char *outcome, int rules_total, int rules_failed, PgError *err);
