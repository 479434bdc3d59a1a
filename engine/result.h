/* result.h — what a rule run and a whole run leave behind: outcomes, counts, the error that ended
 * a rule, its place in the hash chain. Plain data, shared by the engine and the reports; must
 * never hold a row's contents. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg.h"
#include "policy.h"

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
        NamedCount *with; /* per `delete_with:` table: rows that would go with the rows due now (tally) */
        size_t n_with;

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
        /* Fast-path batches whose range was predicted from the rows' density, not probed; and
         * predicted ranges rolled back (over the guard's time or the breaker's limit) and taken
         * again after the probe. */
        int64_t batches_predicted, batches_redone;
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
/* Frees n NamedCounts and the array. */
void named_counts_free(NamedCount *v, size_t n);

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
