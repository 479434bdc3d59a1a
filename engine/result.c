/* result.c — what a rule run and a whole run leave behind: outcomes and counts, and freeing them.
 * Plain data: must never talk to the database, log or decide anything. */
#include "result.h"

#include <stdlib.h>

#include "util.h"

const char *rule_outcome_to_string(RuleOutcome o) {
        switch (o) {
        case RULE_RUNNING: return "running";
        case RULE_SUCCESS: return "success";
        case RULE_FAILED: return "failed";
        case RULE_BREAKER: return "breaker";
        case RULE_INTERRUPTED: return "interrupted";
        case RULE_SKIPPED: return "skipped";
        }
        return "unknown";
}

void named_counts_free(NamedCount *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i].name);
        free(v);
}

void rule_result_done(RuleResult *r) {
        if (!r)
                return;
        free(r->cutoff);
        free(r->oldest_age);
        free(r->chain_hash);
        named_counts_free(r->holds, r->n_holds);
        named_counts_free(r->fks, r->n_fks);
        named_counts_free(r->with, r->n_with);
        for (size_t i = 0; i < r->n_cascades; i++)
                free(r->cascades[i].table);
        free(r->cascades);
        for (size_t i = 0; i < r->n_warnings; i++)
                free(r->warnings[i]);
        free(r->warnings);
        for (size_t i = 0; i < r->n_untrusted; i++)
                free(r->untrusted[i]);
        free(r->untrusted);
        pg_error_done(&r->error);
        *r = (RuleResult) {};
}

void run_result_free(RunResult *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_rules; i++)
                rule_result_done(&r->rules[i]);
        free(r->rules);
        free(r);
}
