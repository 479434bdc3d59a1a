/* rule-run.h — one rule run as a sequence of short steps: start, one batch at a time, finish.
 * run.c drives them for the terminal and the daemon alike. Never touches a row that is not
 * provably expired and unheld.
 *
 * Return convention (as pg.h): 0, or a PgErrorClass (> 0) that ended the rule (also in its
 * result); PG_ERR_CONNECTION: the session is gone. Outcomes of the rule itself (breaker,
 * skipped, refused) are in its RuleResult, never in the return value. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "hashkey.h"
#include "knobs.h"
#include "pg.h"
#include "policy.h"
#include "result.h"

typedef struct EnforceOptions {
        bool dry_run;
        bool force;
        char *const *only_rules; /* NULL: every rule */
        size_t n_only_rules;
        const HashKey *hash_key;
        const char *mode; /* "run" or "daemon" for the audit trail */
        const atomic_bool *stop; /* checked between batches; set: finish cleanly, record interrupted */
        const EngineKnobs *knobs; /* NULL: ENGINE_KNOBS_DEFAULT */
} EnforceOptions;

static inline EngineKnobs enforce_knobs(const EnforceOptions *o) {
        return o->knobs ? *o->knobs : ENGINE_KNOBS_DEFAULT;
}

static inline bool enforce_stop_requested(const EnforceOptions *o) {
        return o->stop && atomic_load(o->stop);
}

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
/* Tally, audit trail, result. Takes ownership of the result fields into *out. A rule whose
 * steps all ran is complete, whatever o->stop says by now (a step that saw the stop made the
 * rule interrupted). */
int rule_run_finish(RuleRun *rr, RuleResult *out);
void rule_run_free(RuleRun *rr);
