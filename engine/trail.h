/* trail.h — the audit trail's writes during a run (the schema "retention", sql/retention/): the
 * schema check, the run's row, each rule run's row, its counters and its seal.
 * Must never record row contents, nor a change that did not commit in the same transaction.
 *
 * Return convention (as pg.h): 0, a PgErrorClass (> 0) with *err, or a PgOutcome (< 0) named in
 * the function's comment; the caller decides, nothing here retries but trail_rule_end(). */
#pragma once

#include <stdint.h>

#include "pg.h"
#include "policy.h"
#include "result.h"

#define RETENTION_SCHEMA_VERSION 10
/* pg_advisory_lock(int4, int4) keys: "RTND" and a purpose. */
#define ADVISORY_CLASS 0x52544E44
/* 1 was the whole-database enforcement lock of schema versions 1 and 2, replaced by per-rule locks. */
#define ADVISORY_MIGRATE 2

/* Checks that the retention schema is installed at the version this build knows.
 * Returns 0; otherwise a PgErrorClass or OUTCOME_SCHEMA_MISMATCH (missing, or another version)
 * with *err filled. */
int trail_check_schema(Pg *pg, PgError *err);

/* The run's row (retention.begin_run / end_run): mode "run" or "daemon"; outcome "success",
 * "partial", "failed" or "interrupted". */
int trail_run_begin(Pg *pg, const char *mode, int64_t *ret, PgError *err);
int trail_run_end(Pg *pg, int64_t run_id, const char *outcome, int rules_total, int rules_failed, PgError *err);

/* A rule run's row in run run_id, begun at `started` (the database's clock when its cutoffs were
 * computed; NULL: now) with its cutoff (NULL: none computed); *ret gets its id. */
int trail_rule_begin(Pg *pg, int64_t run_id, const Rule *rule, const char *started, const char *cutoff, int64_t *ret,
                     PgError *err);
/* Moves the rule run's counters in the caller's transaction: `deleted` and `anonymised` rows,
 * `batches` batches, `partitions` dropped partitions (retention.add_rule_run_counts()). Fails
 * (PG_ERR_OTHER) when the rule run's row is missing or has finished: no change commits without
 * its record. *next_xid (may be NULL) gets the next transaction id as this transaction sees it,
 * for pacing, without another round trip. */
int trail_rule_count(Pg *pg, int64_t rule_run_id, int64_t deleted, int64_t anonymised, int64_t batches,
                     int64_t partitions, uint64_t *next_xid, PgError *err);
/* trail_rule_count() in two halves, for a batch's pipeline (pg_pipeline()): the statement into *st
 * (its parameters live in *c), and its answer once it ran. trail_count_done() frees the result. */
typedef struct TrailCount {
        int64_t rule_run_id;
        char v[5][24];
        const char *params[5];
        PGresult *result;
} TrailCount;
void trail_count_stmt(Pg *pg, TrailCount *c, int64_t rule_run_id, int64_t deleted, int64_t anonymised,
                      int64_t batches, int64_t partitions, PgPipeStmt *st);
int trail_count_result(TrailCount *c, uint64_t *next_xid, PgError *err);
void trail_count_done(TrailCount *c);
/* The rule run's per-hold and per-table counts, its final row and its seal into the hash chain
 * (its row begun first, in run run_id, when res->rule_run_id < 0), in one transaction (retried a few times on a transient failure); res->chain_seq and
 * res->chain_hash get the seal. */
int trail_rule_end(Pg *pg, int64_t run_id, const char *started, RuleResult *res, PgError *err);
