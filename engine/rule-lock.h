/* rule-lock.h — who enforces a rule now: its advisory lock, and for daemons its schedule slot.
 * Must never change a row of the application, nor keep a lock it did not report as taken.
 *
 * Return convention (as pg.h): 0, a PgErrorClass (> 0) with *err, or OUTCOME_RULE_BUSY (< 0). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pg.h"
#include "policy.h"

/* Per-rule locks: pg_try_advisory_lock(ADVISORY_CLASS_RULE, hashtext(rule name)), "RTNR". */
#define ADVISORY_CLASS_RULE 0x52544E52

/* Takes one rule's advisory lock (session level): every session that enforces a rule holds it
 * while it does. Returns 0, OUTCOME_RULE_BUSY when another session holds it (err names the rule
 * and, when it is recorded, the run, host and backend), or a PgErrorClass. */
int rule_lock(Pg *pg, const char *rule, PgError *err);
void rule_unlock(Pg *pg, const char *rule);
/* rule_lock() of n rules in one statement, all or none: when one is held elsewhere, the others
 * are released again and err names the first such rule (OUTCOME_RULE_BUSY). */
int rule_lock_all(Pg *pg, const char *const *rules, size_t n, PgError *err);
void rule_unlock_all(Pg *pg, const char *const *rules, size_t n);

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

