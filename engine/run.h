/* run.h — the one loop over a policy's rules, for `run`, `audit`, `status` and the daemon's
 * worker alike. Must never run a rule whose lock it does not hold.
 *
 * Return convention (as pg.h): 0, a PgErrorClass (> 0) or a PgOutcome (< 0) with *err. */
#pragma once

#include "pg.h"
#include "policy.h"
#include "result.h"
#include "rule-run.h"

/* What the daemon adds to the loop. A NULL RunHooks, or any NULL member, is the terminal's way. */
typedef struct RunHooks {
        void *userdata;
        /* The rules to run (indices into p->rules), in this order (the daemon's: interrupted
         * rules first). NULL: o->only_rules (else every rule) in policy order. */
        const size_t *order;
        size_t n_order;
        /* Before each selected rule (index: into p->rules): takes its lock and claims its slot.
         * Returns 0 with *go (true: claimed, the lock is held: the rule runs and is unlocked after
         * it), PG_ERR_CONNECTION with *err (the session is gone: the run ends), or any other class
         * (the hook has kept what it needs of *err; the rule waits for its next slot).
         * NULL: every selected rule is locked up front, all or none (OUTCOME_RULE_BUSY), and the
         * run's audit-trail row is made before the first rule. With a claim hook the row is made
         * when the first rule is claimed: a run that claims nothing leaves no row. */
        int (*claim)(void *userdata, size_t index, const Rule *rule, bool *go, PgError *err);
        /* The run's audit-trail row exists; the hook tells it (RUN_STARTED). NULL: run.c emits
         * RUN_STARTED itself. */
        void (*run_started)(void *userdata, int64_t run_id);
        /* Rule index (into p->rules) starts now. */
        void (*rule_started)(void *userdata, size_t index);
        /* Around every database operation; step: a rule's start or batch, which a stop request may
         * cancel (never the audit-trail statements around them). */
        void (*op_begin)(void *userdata, bool step);
        void (*op_end)(void *userdata);
        /* The pause between two batches (pacing). NULL: pace_wait(usec, o->stop). */
        void (*pause)(void *userdata, uint64_t usec);
} RunHooks;

/* Every selected rule (o->only_rules, else all) in policy order, each to completion, unless
 * o->stop is set: then the rule in progress ends at its next batch and no other starts (a stop
 * seen only after the last rule finished leaves the run complete).
 * dry_run: one READ ONLY REPEATABLE READ transaction, tallies only, nothing recorded.
 * Returns 0 with *ret filled (rule failures are in the results), or, with *err, what stops the
 * whole run: a PgErrorClass (PG_ERR_CONNECTION once rules ran, or a catalog or trail failure
 * once the run row exists: *ret is filled too, the run row then says failed), OUTCOME_RULE_BUSY
 * (another session enforces a wanted rule), OUTCOME_SCHEMA_MISMATCH or OUTCOME_TABLE_GONE. */
int run_rules(Pg *pg, const Policy *p, const EnforceOptions *o, const RunHooks *h, RunResult **ret, PgError *err);
