/* rule-lock.c — who enforces a rule now: its advisory lock (one session at a time) and, for
 * daemons sharing a database, its schedule slot in retention.rule_slots.
 * Must never change a row of the application, nor keep a lock it did not report as taken. */
#include "rule-lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* The error of rule_lock() when another session holds the rule: who, as far as the trail says. */
static int rule_busy(Pg *pg, const char *rule, PgError *err) {
        char cls[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS_RULE);
        const char *p[] = { cls, rule };
        _cleanup_pgresult_ PGresult *r = NULL;
        PgError ignore = {};
        int k = pg_exec(pg, &r, &ignore,
                        "SELECT l.pid, r.id, r.host, r.mode, r.started_at::text"
                        " FROM pg_locks l LEFT JOIN retention.runs r ON r.backend_pid = l.pid AND r.outcome = 'running'"
                        " WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid"
                        " AND l.objsubid = 2 AND l.granted ORDER BY r.id DESC NULLS LAST LIMIT 1",
                        2, p);
        pg_error_done(&ignore);
        _cleanup_free_ char *detail = NULL;
        if (k == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 1))
                detail = xasprintf("Run %s (mode %s) started at %s on host %s holds rule \"%s\", database backend PID %s.",
                                   PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 2),
                                   rule, PQgetvalue(r, 0, 0));
        else if (k == 0 && PQntuples(r) == 1)
                detail = xasprintf("Database backend PID %s holds rule \"%s\".", PQgetvalue(r, 0, 0), rule);
        else
                detail = xasprintf("Another session holds rule \"%s\".", rule);
        pg_error_set(err, "55P03", detail,
                     "Wait for that run to finish; a rule is enforced by one session at a time.",
                     "another enforcement run is in progress on this database");
        return OUTCOME_RULE_BUSY;
}

int rule_lock(Pg *pg, const char *rule, PgError *err) {
        return rule_lock_all(pg, &rule, 1, err);
}

int rule_lock_all(Pg *pg, const char *const *rules, size_t n, PgError *err) {
        if (n == 0)
                return 0;
        char cls[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS_RULE);
        _cleanup_free_ char *names = pg_text_array(rules, n);
        const char *p[] = { cls, names };
        _cleanup_pgresult_ PGresult *r = NULL;
        /* One statement for all of them (a round trip each was a third of a rule's cost when
         * nothing is due), in the rules' order, none waiting, and none tried after one that
         * another session holds, as one at a time did: two runs that want the same rules never
         * each take some and then both give up. */
        int k = pg_exec(pg, &r, err,
                        "WITH RECURSIVE t(i, ok) AS (SELECT 0, true UNION ALL"
                        " SELECT t.i + 1, pg_try_advisory_lock($1::int, hashtext(($2::text[])[t.i + 1]))"
                        " FROM t WHERE t.ok AND t.i < cardinality($2::text[]))"
                        " SELECT i, ok FROM t WHERE i > 0",
                        2, p);
        if (k) {
                /* The statement may have taken some before it failed (a stop's cancel): session
                 * locks outlive it. None of these was held before, so giving all back is exact. */
                if (pg_connection_ok(pg))
                        rule_unlock_all(pg, rules, n);
                return k;
        }
        _cleanup_free_ const char **got = xcalloc(n, sizeof(char *));
        size_t n_got = 0, busy = n;
        for (int row = 0; row < PQntuples(r); row++) {
                size_t i = (size_t) strtoull(PQgetvalue(r, row, 0), NULL, 10) - 1;
                if (i >= n)
                        continue;
                if (streq(PQgetvalue(r, row, 1), "t"))
                        got[n_got++] = rules[i];
                else if (i < busy)
                        busy = i;
        }
        if (busy == n && n_got == n)
                return 0;
        /* All or none: the ones taken go back, and the rule held elsewhere is named. */
        rule_unlock_all(pg, got, n_got);
        if (busy == n) {
                pg_error_set(err, NULL, NULL, NULL, "the rules' locks: %zu answers for %zu rules", n_got, n);
                return PG_ERR_OTHER;
        }
        return rule_busy(pg, rules[busy], err);
}

void rule_unlock(Pg *pg, const char *rule) {
        rule_unlock_all(pg, &rule, 1);
}

void rule_unlock_all(Pg *pg, const char *const *rules, size_t n) {
        if (n == 0)
                return;
        char cls[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS_RULE);
        _cleanup_free_ char *names = pg_text_array(rules, n);
        const char *p[] = { cls, names };
        PgError e = {};
        (void) pg_exec(pg, NULL, &e, "SELECT pg_advisory_unlock($1::int, hashtext(u.name)) FROM unnest($2::text[]) AS u(name)",
                       2, p);
        pg_error_done(&e);
}

/* The slot is free once the last start is older than the schedule less this tolerance; also when
 * that start lies in the future (the clock moved back, or a forged row: never trusted to keep a
 * rule from running), and when the rule's latest rule run did not finish (a stop, a lost
 * connection, a crash): an interrupted rule resumes at once instead of waiting a whole slot. */
#define SLOT_FREE_SQL                                                                                   \
        "(s.last_started <= now() - ($2::interval - least($2::interval / 10, interval '30 seconds'))" \
        " OR s.last_started > clock_timestamp()"                                                        \
        " OR (SELECT x.outcome FROM retention.rule_runs x WHERE x.rule = s.rule ORDER BY x.id DESC LIMIT 1)" \
        " IN ('interrupted', 'running'))"

static int slot_state(Pg *pg, const char *rule, const char *interval, bool *free_ret, int64_t *wait_usec, char **by,
                      PgError *err) {
        const char *p[] = { rule, interval };
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(pg, &r, err,
                        "SELECT " SLOT_FREE_SQL ","
                        " (extract(epoch FROM s.last_started + $2::interval - now()) * 1000000)::bigint,"
                        " s.host, s.backend_pid"
                        " FROM retention.rule_slots s WHERE s.rule = $1",
                        2, p);
        if (k)
                return k;
        *free_ret = PQntuples(r) == 0 || streq(PQgetvalue(r, 0, 0), "t");
        if (PQntuples(r) == 1) {
                *wait_usec = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
                if (by)
                        *by = xasprintf("host %s, backend PID %s", PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
        }
        return 0;
}

int rule_slot_claim(Pg *pg, const Rule *rule, bool force, SlotClaim *claim, int64_t *wait_usec, char **by, char **future,
                    PgError *err) {
        char interval[128], host[256] = "";
        bool locked = false, free_slot = true;
        _cleanup_pgresult_ PGresult *r = NULL;
        PgError ig = {};
        int k;

        *claim = SLOT_ERROR;
        *wait_usec = 0;
        if (by)
                *by = NULL;
        if (future)
                *future = NULL;
        duration_to_interval(&rule->schedule, interval, sizeof(interval));
        if (gethostname(host, sizeof(host) - 1) < 0)
                snprintf(host, sizeof(host), "unknown");

        k = pg_exec0(pg, NULL, err, "BEGIN");
        if (k)
                return k;
        k = rule_lock(pg, rule->name, err);
        if (k == OUTCOME_RULE_BUSY) {
                /* Someone enforces it now. Within the slot another daemon is at it: that is the
                 * slot taken; otherwise a long run or `retentiond run` holds it. */
                _cleanup_free_ char *holder = err->detail ? xstrdup(err->detail) : NULL, *slot_by = NULL;
                pg_error_done(err);
                k = slot_state(pg, rule->name, interval, &free_slot, wait_usec, &slot_by, err);
                if (k)
                        goto fail;
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
                pg_error_done(&ig);
                *claim = free_slot || force ? SLOT_LOCKED : SLOT_TAKEN;
                if (by && *claim == SLOT_TAKEN)
                        *by = TAKE_PTR(slot_by);
                else if (by && holder) {
                        size_t n = strlen(holder);
                        if (n > 0 && holder[n - 1] == '.')
                                holder[n - 1] = 0;
                        *by = TAKE_PTR(holder);
                }
                return 0;
        }
        if (k)
                goto fail;
        locked = true;

        /* Whether the slot is free (SLOT_FREE_SQL) and the last start it was judged on; then
         * retention.claim_rule_slot() (sql/retention/005-safety.sql, the role's only write of the
         * slots) claims it if that last start is still the same: the row lock of its UPDATE
         * serialises two daemons that try at the same moment, and the second sees it taken. */
        const char *p[] = { rule->name, interval, force ? "t" : "f" };
        k = pg_exec(pg, &r, err,
                    "SELECT $3::bool OR s.rule IS NULL OR " SLOT_FREE_SQL ", s.last_started::text,"
                    " CASE WHEN s.last_started > clock_timestamp() THEN s.last_started::text END"
                    " FROM (SELECT $1::text AS rule) q LEFT JOIN retention.rule_slots s ON s.rule = q.rule",
                    3, p);
        if (k)
                goto fail;
        bool claimed = false;
        if (PQntuples(r) == 1 && streq(PQgetvalue(r, 0, 0), "t")) {
                _cleanup_pgresult_ PGresult *c = NULL;
                const char *cp[] = { rule->name, host, PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1) };
                k = pg_exec(pg, &c, err, "SELECT retention.claim_rule_slot($1, $2, $3::timestamptz)", 3, cp);
                if (k)
                        goto fail;
                claimed = PQntuples(c) == 1 && !PQgetisnull(c, 0, 0);
        }
        if (!claimed) {
                k = slot_state(pg, rule->name, interval, &free_slot, wait_usec, by, err);
                if (k)
                        goto fail;
                *claim = SLOT_TAKEN;
        } else {
                *claim = SLOT_CLAIMED;
                if (future && !PQgetisnull(r, 0, 2))
                        *future = xstrdup(PQgetvalue(r, 0, 2));
        }
        k = pg_exec0(pg, NULL, err, "COMMIT");
        if (k)
                goto fail;
        if (*claim != SLOT_CLAIMED)
                rule_unlock(pg, rule->name);
        return 0;

fail:
        *claim = SLOT_ERROR;
        if (pg_connection_ok(pg)) {
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
                pg_error_done(&ig);
                if (locked)
                        rule_unlock(pg, rule->name);
        }
        if (by) {
                free(*by);
                *by = NULL;
        }
        if (future) {
                free(*future);
                *future = NULL;
        }
        return k;
}
