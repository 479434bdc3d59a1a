/* run.h — the one loop over a policy's rules, for `run`, `audit` and the daemon.
 * Must never run a rule whose lock it does not hold.
 *
 * Return convention (as pg.h): 0, a PgErrorClass (> 0) or a PgOutcome (< 0) with *err. */
#pragma once

#include "pg.h"
#include "policy.h"
#include "result.h"
#include "rule-run.h"

/* The whole run from the terminal: every selected rule in policy order, each to completion.
 * dry_run: one READ ONLY REPEATABLE READ transaction, tallies only, nothing recorded.
 * Returns 0 with *ret filled (rule failures are in the results), or, with *err, what stops the
 * whole run: a PgErrorClass (PG_ERR_CONNECTION once rules ran: *ret is filled too), OUTCOME_RULE_BUSY (another
 * session enforces a wanted rule), OUTCOME_SCHEMA_MISMATCH or OUTCOME_TABLE_GONE. */
int run_rules(Pg *pg, const Policy *p, const EnforceOptions *o, RunResult **ret, PgError *err);
