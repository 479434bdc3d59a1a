/* enforce.c — execute plans: breaker, batches, foreign-key isolation, tallies, audit trail.
 * Every batch is one short statement (its own transaction) that also advances the audit
 * trail's counters, so the trail never claims more than happened. Never logs row contents. */
#include "enforce.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "event.h"
#include "rule-where.h"
#include "util.h"

/* Adaptive batch size: aim each batch at BATCH_TARGET_USEC, never above the rule's
 * batch_size, never below BATCH_MIN_ROWS; start at BATCH_START_ROWS. */
#define BATCH_TARGET_USEC 10000
#define BATCH_MIN_ROWS 100
#define BATCH_START_ROWS 1000

/* The COMMENT on a partition this engine detaches to drop; then the parent's oid, the rule run,
 * and the bound it had. */
#define DETACHED_COMMENT_PREFIX "retentiond: detached from relation "

/* How far the database's clock may be from this host's before enforcement refuses; 0: no check. */
static int64_t max_clock_skew_sec = ENFORCE_DEFAULT_MAX_CLOCK_SKEW_SEC;

void enforce_set_max_clock_skew(int64_t sec) {
        max_clock_skew_sec = sec;
}

static double pace_ratio = ENFORCE_DEFAULT_PACE;

void enforce_set_pace(double ratio) {
        pace_ratio = ratio;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

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

static void named_counts_free(NamedCount *v, size_t n) {
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

/* ---- audit trail ---- */

int trail_check_schema(Pg *pg, PgError *err) {
        _cleanup_free_ char *v = NULL;
        int k = pg_value(pg, &v, err, "SELECT to_regclass('retention.schema_version') IS NOT NULL", 0, NULL);
        if (k)
                return k;
        if (!streq_ptr(v, "t")) {
                pg_error_set(err, NULL, "The schema \"retention\" (hold registry and audit trail) is not installed in this database.",
                             "Run \"retentiond migrate\" against this database first.",
                             "the retention schema is not installed");
                return OUTCOME_SCHEMA_MISMATCH;
        }
        free(TAKE_PTR(v));
        k = pg_value(pg, &v, err, "SELECT coalesce(max(version), 0)::text FROM retention.schema_version", 0, NULL);
        if (k)
                return k;
        int found = v ? atoi(v) : 0;
        if (found != RETENTION_SCHEMA_VERSION) {
                _cleanup_free_ char *detail =
                        xasprintf("Found schema version %d; this retentiond (" RETENTIOND_VERSION ") needs version %d.",
                                  found, RETENTION_SCHEMA_VERSION);
                pg_error_set(err, NULL, detail,
                             found < RETENTION_SCHEMA_VERSION ? "Run \"retentiond migrate\" to upgrade the schema."
                                                              : "Upgrade retentiond to a version that knows this schema.",
                             "retention schema version %d is not supported", found);
                return OUTCOME_SCHEMA_MISMATCH;
        }
        return 0;
}

/* ---- per-rule locks and schedule slots (several instances) ---- */

int rule_lock(Pg *pg, const char *rule, PgError *err) {
        _cleanup_free_ char *got = NULL;
        char cls[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS_RULE);
        const char *p[] = { cls, rule };
        int k = pg_value(pg, &got, err, "SELECT pg_try_advisory_lock($1::int, hashtext($2))", 2, p);
        if (k)
                return k;
        if (streq_ptr(got, "t"))
                return 0;

        _cleanup_pgresult_ PGresult *r = NULL;
        PgError ignore = {};
        k = pg_exec(pg, &r, &ignore,
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

void rule_unlock(Pg *pg, const char *rule) {
        char cls[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS_RULE);
        const char *p[] = { cls, rule };
        PgError e = {};
        (void) pg_exec(pg, NULL, &e, "SELECT pg_advisory_unlock($1::int, hashtext($2))", 2, p);
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

int trail_run_begin(Pg *pg, const char *mode, int64_t *ret, PgError *err) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) < 0)
                snprintf(host, sizeof(host), "unknown");
        const char *p[] = { host, RETENTIOND_VERSION, mode };
        _cleanup_free_ char *id = NULL;
        int k = pg_value(pg, &id, err,
                         "SELECT retention.begin_run($1, $2, $3)", 3, p);
        if (k)
                return k;
        *ret = strtoll(id, NULL, 10);
        return 0;
}

int trail_run_end(Pg *pg, int64_t run_id, const char *outcome, int rules_total, int rules_failed, PgError *err) {
        char id[32], tot[16], fail[16];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        snprintf(tot, sizeof(tot), "%d", rules_total);
        snprintf(fail, sizeof(fail), "%d", rules_failed);
        const char *p[] = { id, outcome, tot, fail };
        return pg_exec(pg, NULL, err, "SELECT retention.end_run($1::bigint, $2, $3::int, $4::int)", 4, p);
}

/* ---- catalog ---- */

static int load_into(Pg *pg, CatCache *cache, const QualifiedName *name, PgError *err) {
        CatTable *t = NULL;
        int k = catalog_load_table(pg, name, &t, err);
        if (k == PG_ERR_UNDEFINED)
                return 0; /* reported per rule */
        if (k)
                return k;
        cat_cache_add(cache, t);
        return 0;
}

/* Tables reachable from t through ON DELETE CASCADE / SET NULL / SET DEFAULT, a few levels. */
static int load_referencing(Pg *pg, CatCache *cache, const CatTable *t, unsigned depth, PgError *err) {
        if (depth >= 5)
                return 0;
        uint32_t oid = t->oid;
        for (size_t i = 0;; i++) {
                const CatTable *cur = cat_cache_find_oid(cache, oid);
                if (!cur || i >= cur->n_referenced_by)
                        break;
                const CatForeignKey *fk = &cur->referenced_by[i];
                if (fk->on_delete == 'a' || fk->on_delete == 'r')
                        continue;
                if (cat_cache_find_oid(cache, fk->child_oid))
                        continue;
                uint32_t child_oid = fk->child_oid;
                CatTable *c = NULL;
                int k = catalog_load_table_oid(pg, child_oid, &c, err);
                if (k)
                        return k;
                const CatTable *added = cat_cache_add(cache, c);
                k = load_referencing(pg, cache, added, depth + 1, err);
                if (k)
                        return k;
        }
        return 0;
}

int enforce_load_catalog(Pg *pg, const Policy *p, CatCache *cache, PgError *err) {
        int k;
        for (size_t i = 0; i < p->n_rules; i++)
                if (!cat_cache_find_name(cache, &p->rules[i].table) && (k = load_into(pg, cache, &p->rules[i].table, err)))
                        return k;
        for (size_t i = 0; i < p->n_holds; i++)
                if (!p->holds[i].registry && !cat_cache_find_name(cache, &p->holds[i].table) &&
                    (k = load_into(pg, cache, &p->holds[i].table, err)))
                        return k;
        for (size_t i = 0; i < p->n_subjects; i++)
                if (!cat_cache_find_name(cache, &p->subjects[i].table) &&
                    (k = load_into(pg, cache, &p->subjects[i].table, err)))
                        return k;
        size_t n = cache->n_tables;
        for (size_t i = 0; i < n; i++)
                if ((k = load_referencing(pg, cache, cache->tables[i], 0, err)))
                        return k;
        return 0;
}

/* ---- a rule run ---- */

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
        char **slot_values;
        size_t n_slots;
        char *last_key;
        int64_t batch_size;
        Phase phase;
        unsigned stalls;
        bool fast_ok;        /* the range fast path is usable for this rule run */
        bool short_lock_wait; /* the session's lock_timeout is lowered for the fast path */
        bool prepared;        /* the fast path's statement is prepared on the session */
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
        bool fatal_connection;
        bool hash_key_installed; /* HASH_KEY_TABLE holds the pads: dropped by rule_run_finish() */
        bool probe_prepared; /* UNTRUSTED_PROBE is prepared on the session */
        CatCache *cache;     /* the catalog the rule was planned on: batch_untrusted() reads it again */
        char *probe_oids;    /* batch_untrusted(): the tables as an oid[] literal; NULL: not yet */
        char *probe_seen;    /* its probe's answer when check_untrusted() last let the rule go on */
        /* Tables the rule's deletions can cascade into (ON DELETE CASCADE, SET NULL, SET DEFAULT),
         * as a PostgreSQL oid[] literal, in the order of res.cascades; NULL: none, and batches
         * need no transaction of their own. cascade_self: the rule's own table is one of them
         * (a self-reference), at that index; its own deletions are not cascades. */
        char *cascade_oids;
        char *cascade_names; /* text[] literal of their display names */
        long cascade_self; /* -1: not one of them */
        bool held_tallied; /* the tally ran before the while_held phase could move any age */
};

/* The daemon stops a run by setting o->stop and cancelling the statement in flight (PQcancel):
 * the server then reports 57014, which is the interruption asked for, not a failure. */
static bool cancelled_by_stop(const RuleRun *rr, int k) {
        return k == PG_ERR_STATEMENT_TIMEOUT && rr->o->stop && *rr->o->stop;
}

static void rule_run_fail(RuleRun *rr, RuleOutcome outcome, const PgError *e) {
        rr->res.outcome = outcome;
        pg_error_done(&rr->res.error);
        if (e) {
                memcpy(rr->res.error.sqlstate, e->sqlstate, sizeof(e->sqlstate));
                rr->res.error.primary = e->primary ? xstrdup(e->primary) : NULL;
                rr->res.error.detail = e->detail ? xstrdup(e->detail) : NULL;
                rr->res.error.hint = e->hint ? xstrdup(e->hint) : NULL;
        }
        rr->phase = PHASE_DONE;
}

typedef struct Bind {
        const char **values;
        char **owned;
        size_t n_owned;
} Bind;

static void bind_done(Bind *b, size_t n) {
        for (size_t i = 0; i < b->n_owned; i++)
                free(b->owned[i]);
        free(b->owned);
        free(b->values);
        (void) n;
        *b = (Bind) {};
}

static const char *own(Bind *b, char *s) {
        b->owned = xreallocarray(b->owned, b->n_owned + 1, sizeof(char *));
        b->owned[b->n_owned++] = s;
        return s;
}

/* The rows the rule's normal action changed: what the breaker counted before it started
 * (while_held anonymisation of held rows is not part of that count). */
static int64_t main_changed(const RuleRun *rr) {
        return rr->res.deleted + rr->res.anonymised - rr->while_held_changed;
}

/* The rows the running breaker still allows this run to change, INT64_MAX when it does not apply. */
static int64_t breaker_budget(const RuleRun *rr) {
        if (rr->o->force || rr->res.breaker_limit < 0)
                return INT64_MAX;
        int64_t left = rr->res.breaker_limit - main_changed(rr);
        return left > 0 ? left : 0;
}

/* The size of the next batch: the adaptive size, and in the main phase never more rows than the
 * breaker's limit has left, so that a run the estimate let start stops at the limit, not one
 * batch beyond it. */
static int64_t batch_rows(const RuleRun *rr) {
        if (rr->isolation_rows > 0)
                return rr->isolation_rows;
        int64_t n = rr->batch_size;
        if (rr->phase == PHASE_MAIN) {
                int64_t left = breaker_budget(rr);
                if (left < n)
                        n = left > 0 ? left : 1;
        }
        return n;
}

static void bind(RuleRun *rr, const PlanStatement *st, Bind *b, const char *ctid, const char *tableoid, int64_t breaker_limit) {
        *b = (Bind) {};
        b->values = xcalloc(st->n_params ? st->n_params : 1, sizeof(char *));
        int64_t rows = batch_rows(rr);
        for (size_t i = 0; i < st->n_params; i++) {
                const PlanParam *p = &st->params[i];
                switch (p->kind) {
                case PARAM_CONST:
                        b->values[i] = p->value;
                        break;
                case PARAM_TIME:
                        b->values[i] = p->slot < rr->n_slots ? rr->slot_values[p->slot] : NULL;
                        break;
                case PARAM_LAST_KEY:
                        b->values[i] = rr->last_key ? rr->last_key : "-infinity";
                        break;
                case PARAM_LIMIT:
                        b->values[i] = own(b, xasprintf("%" PRId64, rows));
                        break;
                case PARAM_OFFSET:
                        b->values[i] = own(b, xasprintf("%" PRId64, rows > 1 ? rows - 1 : 0));
                        break;
                case PARAM_RULE_RUN:
                        b->values[i] = own(b, xasprintf("%" PRId64, rr->res.rule_run_id));
                        break;
                case PARAM_BREAKER_LIMIT:
                        b->values[i] = own(b, xasprintf("%" PRId64, breaker_limit));
                        break;
                case PARAM_CTID:
                        b->values[i] = ctid;
                        break;
                case PARAM_TABLEOID:
                        b->values[i] = tableoid;
                        break;
                case PARAM_KEY:   /* explain only */
                case PARAM_UPPER: /* set by exec_fast() */
                        b->values[i] = NULL;
                        break;
                }
        }
}

static int exec_stmt(RuleRun *rr, const PlanStatement *st, PGresult **ret, PgError *err, const char *ctid,
                     const char *tableoid, int64_t breaker_limit) {
        Bind b;
        bind(rr, st, &b, ctid, tableoid, breaker_limit);
        int k = pg_exec(rr->pg, ret, err, st->sql, (int) st->n_params, b.values);
        bind_done(&b, st->n_params);
        return k;
}

static int64_t int_at(const PGresult *r, int row, int col) {
        if (PQgetisnull(r, row, col))
                return 0;
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int run_tally(RuleRun *rr, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = exec_stmt(rr, &rr->plan->tally, &r, err, NULL, NULL, 0);
        if (k)
                return k;
        RuleResult *res = &rr->res;
        res->due = int_at(r, 0, TALLY_DUE);
        res->held = int_at(r, 0, TALLY_HELD);
        res->actionable = int_at(r, 0, TALLY_ACTIONABLE);
        res->overdue = int_at(r, 0, TALLY_OVERDUE);
        res->fk_blocked = int_at(r, 0, TALLY_FK_BLOCKED);
        res->while_held_due = int_at(r, 0, TALLY_WHILE_HELD_DUE);
        free(res->oldest_age);
        res->oldest_age = PQgetisnull(r, 0, TALLY_OLDEST_AGE) ? NULL : xstrdup(PQgetvalue(r, 0, TALLY_OLDEST_AGE));
        named_counts_free(res->holds, res->n_holds);
        named_counts_free(res->fks, res->n_fks);
        res->holds = xcalloc(rr->plan->n_tally_holds ? rr->plan->n_tally_holds : 1, sizeof(NamedCount));
        res->n_holds = rr->plan->n_tally_holds;
        for (size_t i = 0; i < res->n_holds; i++)
                res->holds[i] = (NamedCount) { xstrdup(rr->plan->tally_holds[i]), int_at(r, 0, _TALLY_FIXED + (int) i) };
        res->fks = xcalloc(rr->plan->n_tally_fks ? rr->plan->n_tally_fks : 1, sizeof(NamedCount));
        res->n_fks = rr->plan->n_tally_fks;
        for (size_t i = 0; i < res->n_fks; i++)
                res->fks[i] = (NamedCount) { xstrdup(rr->plan->tally_fks[i]),
                                             int_at(r, 0, _TALLY_FIXED + (int) (res->n_holds + i)) };
        return 0;
}

static int compute_cutoffs(RuleRun *rr, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = exec_stmt(rr, &rr->plan->cutoffs, &r, err, NULL, NULL, 0);
        if (k)
                return k;
        int nf = PQnfields(r);
        rr->n_slots = nf > 0 ? (size_t) nf - 1 : 0; /* the last column is the database's clock */
        rr->slot_values = xcalloc(rr->n_slots ? rr->n_slots : 1, sizeof(char *));
        for (size_t i = 0; i < rr->n_slots; i++)
                rr->slot_values[i] = xstrdup(PQgetvalue(r, 0, (int) i));
        rr->res.cutoff = xstrdup(rr->slot_values[0]);

        /* The database's clock decides every cutoff; this host's clock only checks it. When the
         * two disagree by more than max_clock_skew_sec, one of them is wrong, and a clock ahead
         * would make every row look expired: the rule trips the breaker until they agree. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double db = strtod(PQgetvalue(r, 0, nf - 1), NULL);
        double skew = db - (double) ts.tv_sec - (double) ts.tv_nsec / 1e9;
        if (max_clock_skew_sec > 0 && (skew > (double) max_clock_skew_sec || skew < -(double) max_clock_skew_sec)) {
                _cleanup_free_ char *detail = xasprintf(
                        "The database clock (now()) is %.0f seconds %s this host's clock; at most %" PRId64 " are allowed.",
                        skew < 0 ? -skew : skew, skew > 0 ? "ahead of" : "behind", max_clock_skew_sec);
                pg_error_set(err, NULL, detail,
                             "Fix the clock (NTP) of the database server or of this host; nothing is enforced while they"
                             " disagree. --max-clock-skew changes the limit (0 turns the check off).",
                             "circuit breaker tripped for rule \"%s\": the database clock and this host's clock disagree",
                             rr->rule->name);
                return OUTCOME_BREAKER;
        }
        return 0;
}

/* *ret: the planner's estimate of the due rows (from the table's statistics), or INT64_MAX when
 * there is none (then the rows are counted). Returns 0, or PG_ERR_CONNECTION with *err: a lost
 * connection is the rule's error, not a missing estimate. */
static int planner_estimate(RuleRun *rr, int64_t *ret, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        PgError e = {};
        *ret = INT64_MAX;
        int k = exec_stmt(rr, &rr->plan->breaker_estimate, &r, &e, NULL, NULL, 0);
        if (k == PG_ERR_CONNECTION) {
                *err = e;
                return k;
        }
        pg_error_done(&e);
        if (k || PQntuples(r) < 1)
                return 0;
        const char *s = strstr(PQgetvalue(r, 0, 0), "\"Plan Rows\": ");
        if (s)
                *ret = strtoll(s + strlen("\"Plan Rows\": "), NULL, 10);
        return 0;
}

/* The rule table's rows, counted (every partition). */
static int count_table_rows(RuleRun *rr, int64_t *ret, PgError *err) {
        _cleanup_free_ char *q = qualified_name_quote(&rr->plan->table->name);
        _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s", q);
        _cleanup_free_ char *v = NULL;
        int k = pg_value(rr->pg, &v, err, sql, 0, NULL);
        if (k)
                return k;
        *ret = strtoll(v, NULL, 10);
        return 0;
}

/* The circuit breaker: refuse to change more than max_rows, or more than max_fraction of a
 * table above breaker_min_rows, in one run. A wrong retain or a clock jump must not wipe a table. */
static int check_breaker(RuleRun *rr, PgError *err) {
        const Rule *r = rr->rule;
        RuleResult *res = &rr->res;
        int64_t rows = 0;
        bool analysed = false;
        int k = catalog_row_estimate(rr->pg, rr->plan->table, &rows, &analysed, err);
        if (k)
                return k;
        if (analysed && rows < r->breaker_min_rows) {
                /* Statistics that call the table small exempt it from max_fraction: they must not be
                 * taken on trust, since a table analysed while empty, statistics gone stale, or a
                 * table whose rows PostgreSQL's catalog does not see (a Citus coordinator's shell)
                 * all say 0. Count: the count is cheap exactly when the table is small, and when
                 * it is not, the estimate was wrong and the count is what keeps the breaker. */
                k = count_table_rows(rr, &rows, err);
                if (k)
                        return k;
                /* Small after all: only max_rows can apply, and the planner's estimate of the due
                 * rows may spare their count as before (the running limit still holds). Not small:
                 * the statistics were wrong, and so is any estimate from them: the due rows are
                 * counted too. */
                if (rows >= r->breaker_min_rows)
                        analysed = false;
        }
        int64_t limit = INT64_MAX;
        if (r->max_rows > 0)
                limit = r->max_rows;
        if (rows >= r->breaker_min_rows) {
                int64_t f = (int64_t) ((double) rows * r->max_fraction);
                if (f < limit)
                        limit = f;
        }
        res->table_rows = rows;
        res->table_rows_analysed = analysed;
        res->breaker_limit = limit == INT64_MAX ? -1 : limit;
        if (limit == INT64_MAX)
                return 0;
        res->breaker_checked = true;

        int64_t due, estimate = INT64_MAX;
        if (!rr->o->dry_run && !rr->o->force && res->table_rows_analysed) {
                k = planner_estimate(rr, &estimate, err);
                if (k)
                        return k;
        }
        if (rr->o->dry_run)
                due = res->actionable; /* the tally already counted them */
        else if (estimate < limit / 2) {
                /* Far below the limit by the planner's statistics: no need to count; the
                 * running limit in rule_run_step() still stops the rule if it was wrong. */
                res->breaker_rows = -1;
                return 0;
        } else {
                _cleanup_pgresult_ PGresult *c = NULL;
                k = exec_stmt(rr, &rr->plan->breaker_count, &c, err, NULL, NULL, limit + 1);
                if (k)
                        return k;
                due = int_at(c, 0, 0);
        }
        res->breaker_rows = due;
        if (due <= limit)
                return 0;
        res->breaker_tripped = true;
        if (rr->o->force) {
                res->forced = true;
                return 0;
        }
        _cleanup_free_ char *tn = qualified_name_display(&rr->plan->table->name);
        _cleanup_free_ char *detail = NULL;
        if (r->max_rows > 0 && limit == r->max_rows)
                detail = xasprintf("%s%" PRId64 " rows of %s are due; max_rows is %" PRId64 ".",
                                   rr->o->dry_run ? "" : "At least ", due, tn, r->max_rows);
        else
                detail = xasprintf("%s%" PRId64 " rows of about %" PRId64 " in %s are due; max_fraction %.0f%% allows %" PRId64 ".",
                                   rr->o->dry_run ? "" : "At least ", due, rows, tn, r->max_fraction * 100.0, limit);
        PgError e = {};
        pg_error_set(&e, NULL, detail,
                     "Check retain, the database clock and the age column. If the backlog is expected (a first run),"
                     " run once with --force, or raise max_fraction / max_rows for this rule.",
                     "circuit breaker tripped for rule \"%s\": more rows are due than its limit allows", r->name);
        rule_run_fail(rr, RULE_BREAKER, &e);
        pg_error_done(&e);
        return 0;
}

static void rollback_quietly(Pg *pg) {
        if (!pg_connection_ok(pg))
                return;
        PgError ig = {};
        (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
        pg_error_done(&ig);
}

/* Moves this rule run's audit-trail counters in the caller's transaction: `deleted` and
 * `anonymised` rows, `batches` batches, `partitions` dropped partitions, through
 * retention.add_rule_run_counts(). Fails when the rule run's row is missing or has finished: no
 * change commits without its record. *next_xid (may be NULL) gets the
 * next transaction id as this transaction sees it, for pacing, without another round trip. */
static int trail_count(RuleRun *rr, int64_t deleted, int64_t anonymised, int64_t batches, int64_t partitions,
                       uint64_t *next_xid, PgError *err) {
        char id[32], d[32], a[32], b[32], pt[32];
        snprintf(id, sizeof(id), "%" PRId64, rr->res.rule_run_id);
        snprintf(d, sizeof(d), "%" PRId64, deleted);
        snprintf(a, sizeof(a), "%" PRId64, anonymised);
        snprintf(b, sizeof(b), "%" PRId64, batches);
        snprintf(pt, sizeof(pt), "%" PRId64, partitions);
        const char *p[] = { id, d, a, b, pt };
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(rr->pg, &r, err,
                        "SELECT retention.add_rule_run_counts($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::bigint), "
                        NEXT_XID_SQL,
                        5, p);
        if (k)
                return k;
        if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
                pg_error_set(err, NULL, NULL, NULL, "the audit trail's rule run %" PRId64 " does not exist",
                             rr->res.rule_run_id);
                return PG_ERR_OTHER;
        }
        if (next_xid)
                *next_xid = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        return 0;
}

/* Takes an exclusive lock on the detached (or to-be-dropped) partition, checks again that
 * every row is older than the cutoff and that no row is held, and drops it, recording the
 * rows in the audit trail in the same transaction. Returns 0 and *dropped; OUTCOME_REFUSED when
 * the check refused (nothing changed); or a PgErrorClass. */
static int drop_partition_checked(RuleRun *rr, CatCache *cache, const QualifiedName *part, const char *parent_detach_sql,
                                  int64_t *dropped, PgError *err) {
        PlanStatement check = {};
        _cleanup_free_ char *pq = qualified_name_quote(part);
        _cleanup_free_ char *lock = xasprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", pq);
        _cleanup_free_ char *drop = xasprintf("DROP TABLE %s", pq);
        _cleanup_pgresult_ PGresult *r = NULL;
        int k;

        plan_partition_check(rr->plan, rr->policy, cache, part, &check);
        k = pg_exec0(rr->pg, NULL, err, "BEGIN");
        if (k)
                goto out;
        if (parent_detach_sql) {
                k = pg_exec0(rr->pg, NULL, err, parent_detach_sql);
                if (k)
                        goto rollback;
        }
        k = pg_exec0(rr->pg, NULL, err, lock);
        if (k)
                goto rollback;
        k = exec_stmt(rr, &check, &r, err, NULL, NULL, 0);
        if (k)
                goto rollback;
        int64_t rows = int_at(r, 0, 0), kept = int_at(r, 0, 1), young = int_at(r, 0, 2);
        /* More rows than the breaker's limit has left: they go in batches, which stop at it. */
        if (kept > 0 || young > 0 || rows > breaker_budget(rr)) {
                rollback_quietly(rr->pg);
                k = 1;
                goto out;
        }
        k = pg_exec0(rr->pg, NULL, err, drop);
        if (k)
                goto rollback;
        k = trail_count(rr, rows, 0, 0, 1, NULL, err);
        if (k)
                goto rollback;
        k = pg_exec0(rr->pg, NULL, err, "COMMIT");
        if (k)
                goto out;
        *dropped = rows;
        goto out;
rollback:
        rollback_quietly(rr->pg);
out:
        plan_statement_done(&check);
        return k;
}

/* Partitions whose whole range is older than the cutoff go as a whole: DETACH ... CONCURRENTLY
 * (the application keeps reading and writing the parent), then a checked DROP. A partition
 * that holds a held row, or a row not yet expired, stays and is handled row by row. If the
 * engine dies between the detach and the drop, the detached table still carries every row:
 * nothing is lost, and the COMMENT names it for the operator. */
static void partition_dropped(RuleRun *rr, const char *pd, int64_t dropped) {
        rr->res.deleted += dropped;
        rr->res.partitions_dropped++;
        EventFields ev = EVENT_FIELDS_INIT;
        ev.rule = rr->rule->name;
        ev.table = pd;
        ev.rows_deleted = dropped;
        ev.run_id = -1;
        event_emit(EVENT_PARTITION_DROPPED, event_priority(EVENT_PARTITION_DROPPED), &ev,
                   "rule %s dropped partition %s (%" PRId64 " rows, all expired)", rr->rule->name, pd, dropped);
}

static void reattach_partition(RuleRun *rr, const char *parent, const char *pq, const char *pd, const char *bound) {
        _cleanup_free_ char *attach = xasprintf("ALTER TABLE %s ATTACH PARTITION %s %s", parent, pq, bound);
        PgError ae = {};
        int ka = pg_exec0(rr->pg, NULL, &ae, attach);
        pg_error_done(&ae);
        if (ka) {
                log_warning("partition %s was detached but could not be attached again;"
                            " it still holds all its rows, and the next run tries again", pd);
                return;
        }
        /* A partition again: the note that it was detached to be dropped no longer holds. */
        _cleanup_free_ char *uncomment = xasprintf("COMMENT ON TABLE %s IS NULL", pq);
        (void) pg_exec0(rr->pg, NULL, &ae, uncomment);
        pg_error_done(&ae);
}

/* A DETACH ... CONCURRENTLY whose second transaction failed (lock_timeout while it waited for
 * the application's transactions, or the engine was stopped there) leaves the partition half
 * detached: its rows are no longer seen through the table, so no later run would count or
 * delete them. FINALIZE completes it; when that fails too, the next run tries again. */
static int finalize_detach(RuleRun *rr, const char *parent, const char *pq, const char *pd) {
        _cleanup_free_ char *sql = xasprintf("ALTER TABLE %s DETACH PARTITION %s FINALIZE", parent, pq);
        PgError e = {};
        int k = pg_exec0(rr->pg, NULL, &e, sql);
        if (k) {
                log_warning("partition %s is left half detached (its rows are not seen through its table): %s;"
                            " the next run completes the detach",
                            pd, e.primary ? e.primary : "unknown error");
                /* Not a success: its rows are due and were neither dropped nor deleted. */
                if (rr->res.outcome == RULE_RUNNING) {
                        rr->res.outcome = RULE_SKIPPED;
                        pg_error_set(&rr->res.error, e.sqlstate, e.primary,
                                     "DETACH PARTITION ... CONCURRENTLY waits for the application's open transactions;"
                                     " the next run completes it (ALTER TABLE ... DETACH PARTITION ... FINALIZE).",
                                     "partition %s is left half detached; its rows are not deleted yet", pd);
                }
        }
        pg_error_done(&e);
        return k;
}

static bool detach_pending(RuleRun *rr, const char *pq) {
        _cleanup_free_ char *v = NULL;
        PgError e = {};
        const char *p[] = { pq };
        int k = pg_value(rr->pg, &v, &e,
                         "SELECT coalesce(bool_or(inhdetachpending), false) FROM pg_inherits WHERE inhrelid = $1::regclass", 1, p);
        pg_error_done(&e);
        return k == 0 && streq_ptr(v, "t");
}

/* A table an earlier run detached to drop: dropped if every row is still expired and unheld
 * (checked under its lock), else attached again with `bound`; left as it is when busy (the next
 * run tries again). 0, or the error that stops the rule. */
static int drop_or_reattach(RuleRun *rr, CatCache *cache, const char *parent, const QualifiedName *part, const char *pq,
                            const char *pd, const char *bound, PgError *err) {
        int64_t dropped = 0;
        int k = drop_partition_checked(rr, cache, part, NULL, &dropped, err);
        if (k == OUTCOME_REFUSED) {
                reattach_partition(rr, parent, pq, pd, bound);
                return 0;
        }
        if (k == PG_ERR_LOCK_TIMEOUT) {
                pg_error_done(err);
                return 0;
        }
        if (k == 0)
                partition_dropped(rr, pd, dropped);
        return k;
}

/* Tables an earlier run detached from this table and did not drop (it was killed between the
 * detach and the DROP): no longer partitions, so no run would see their rows. Found by their
 * COMMENT, which names this table's oid and the partition bound; dropped when every row is
 * still expired and unheld (checked under the lock, as always), else attached again. */
static int finish_detached_orphans(RuleRun *rr, CatCache *cache, const char *parent, PgError *err) {
        _cleanup_pgresult_ PGresult *orph = NULL;
        _cleanup_free_ char *prefix = xasprintf(DETACHED_COMMENT_PREFIX "%u by rule run ", rr->plan->table->oid);
        const char *p[] = { prefix };
        int k = pg_exec(rr->pg, &orph, err,
                        "SELECT n.nspname, c.relname, substr(d.description, strpos(d.description, '; bound ') + 8)"
                        " FROM pg_description d JOIN pg_class c ON c.oid = d.objoid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind = 'r'"
                        " AND NOT c.relispartition AND left(d.description, length($1)) = $1"
                        " AND strpos(d.description, '; bound FOR VALUES ') > 0",
                        1, p);
        if (k)
                return k;
        for (int i = 0; i < PQntuples(orph); i++) {
                QualifiedName part = { .schema = PQgetvalue(orph, i, 0), .name = PQgetvalue(orph, i, 1) };
                _cleanup_free_ char *pq = qualified_name_quote(&part);
                _cleanup_free_ char *pd = qualified_name_display(&part);
                k = drop_or_reattach(rr, cache, parent, &part, pq, pd, PQgetvalue(orph, i, 2), err);
                if (k)
                        return k;
        }
        return 0;
}

/* Partitions of this table that an earlier run left half detached (see finalize_detach()):
 * complete the detach, then drop them if every row is still expired and unheld, or attach them
 * again. Only ours, by the COMMENT put on them before the detach. */
static int finish_pending_detaches(RuleRun *rr, CatCache *cache, const char *parent, PgError *err) {
        _cleanup_pgresult_ PGresult *pend = NULL;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", rr->plan->table->oid);
        const char *p[] = { oid };
        int k = pg_exec(rr->pg, &pend, err,
                        "SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE i.inhparent = $1::oid AND i.inhdetachpending"
                        " AND obj_description(c.oid, 'pg_class') LIKE 'retentiond: detached %'",
                        1, p);
        if (k)
                return k;
        for (int i = 0; i < PQntuples(pend); i++) {
                QualifiedName part = { .schema = PQgetvalue(pend, i, 0), .name = PQgetvalue(pend, i, 1) };
                _cleanup_free_ char *pq = qualified_name_quote(&part);
                _cleanup_free_ char *pd = qualified_name_display(&part);
                k = finalize_detach(rr, parent, pq, pd);
                if (k == PG_ERR_CONNECTION)
                        return k;
                if (k)
                        continue;
                k = drop_or_reattach(rr, cache, parent, &part, pq, pd, PQgetvalue(pend, i, 2), err);
                if (k)
                        return k;
        }
        return 0;
}

/* A partition detached by this run, waiting for the one transaction that drops them all. */
typedef struct Detached {
        QualifiedName name; /* points into the partitions' PGresult */
        char *quoted;
        char *display;
        char *bound;
} Detached;

static void detached_done(Detached *d, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(d[i].quoted);
                free(d[i].display);
                free(d[i].bound);
        }
        free(d);
}

/* Drops every detached partition in one transaction, each checked under its lock: one commit
 * (PostgreSQL scans shared_buffers once per commit that drops relations, not once per table).
 * A partition whose check refuses is attached again afterwards. Returns 0, or a PgErrorClass
 * with nothing dropped (the caller then takes the partitions one at a time). */
static int drop_detached_together(RuleRun *rr, CatCache *cache, const char *parent, Detached *d, size_t n,
                                  PgError *err) {
        int64_t *rows = xcalloc(n, sizeof(int64_t));
        bool *refused = xcalloc(n, sizeof(bool));
        int64_t total = 0, dropped = 0;
        int k = pg_exec0(rr->pg, NULL, err, "BEGIN");
        for (size_t i = 0; k == 0 && i < n; i++) {
                _cleanup_free_ char *lock = xasprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", d[i].quoted);
                k = pg_exec0(rr->pg, NULL, err, lock);
                if (k)
                        break;
                PlanStatement check = {};
                _cleanup_pgresult_ PGresult *r = NULL;
                plan_partition_check(rr->plan, rr->policy, cache, &d[i].name, &check);
                k = exec_stmt(rr, &check, &r, err, NULL, NULL, 0);
                plan_statement_done(&check);
                if (k)
                        break;
                if (int_at(r, 0, 1) > 0 || int_at(r, 0, 2) > 0 || total + int_at(r, 0, 0) > breaker_budget(rr)) {
                        refused[i] = true;
                        continue;
                }
                rows[i] = int_at(r, 0, 0);
                _cleanup_free_ char *drop = xasprintf("DROP TABLE %s", d[i].quoted);
                k = pg_exec0(rr->pg, NULL, err, drop);
                total += rows[i];
                dropped++;
        }
        if (k == 0 && dropped > 0)
                k = trail_count(rr, total, 0, 0, dropped, NULL, err);
        if (k == 0)
                k = pg_exec0(rr->pg, NULL, err, "COMMIT");
        else
                rollback_quietly(rr->pg);
        if (k == 0)
                for (size_t i = 0; i < n; i++) {
                        if (refused[i])
                                /* Something changed between the look and the detach, or its rows
                                 * are more than the breaker's limit has left: put it back. */
                                reattach_partition(rr, parent, d[i].quoted, d[i].display, d[i].bound);
                        else
                                partition_dropped(rr, d[i].display, rows[i]);
                }
        free(rows);
        free(refused);
        return k;
}

/* The partitions this run detached, after the loop, however it ended: dropped together in one
 * transaction; when that fails, one at a time; any that cannot be dropped now is attached
 * again. A fully detached table is no longer seen through its parent, and no later run would
 * find it: none may be left behind but when the connection itself is gone (then the COMMENT
 * names it). Returns the first error, or 0. */
static int settle_detached(RuleRun *rr, CatCache *cache, const char *parent, Detached *d, size_t n, PgError *err) {
        if (n == 0)
                return 0;
        PgError e = {};
        int k = drop_detached_together(rr, cache, parent, d, n, &e);
        if (k == 0 || k == PG_ERR_CONNECTION) {
                if (k)
                        *err = e;
                else
                        pg_error_done(&e);
                return k;
        }
        pg_error_done(&e);
        int first = 0;
        for (size_t i = 0; i < n; i++) {
                int64_t dropped = 0;
                int kd = drop_partition_checked(rr, cache, &d[i].name, NULL, &dropped, &e);
                if (kd == 0) {
                        partition_dropped(rr, d[i].display, dropped);
                        continue;
                }
                if (kd == PG_ERR_CONNECTION) {
                        *err = e;
                        return kd;
                }
                /* Refused (a row is kept now), busy, or failed: back under its parent, where the
                 * batches (or the next run) take its rows. */
                reattach_partition(rr, parent, d[i].quoted, d[i].display, d[i].bound);
                if (kd != OUTCOME_REFUSED && kd != PG_ERR_LOCK_TIMEOUT && !first) {
                        first = kd;
                        *err = e;
                        e = (PgError) {};
                }
                pg_error_done(&e);
        }
        return first;
}

/* Whether this session's role may drop the relation `rel` (an oid or a quoted name): it owns
 * it, or is a member of its owner with the owner's privileges (a superuser always may). DETACH is
 * an ALTER TABLE of the parent; the COMMENT, the DROP and a re-ATTACH need the partition too.
 * And no foreign key of another table references it: the DROP would fail (2BP01) on every
 * run, and its rows must go one by one anyway, the referenced ones kept. */
static int may_drop(RuleRun *rr, const char *rel, bool *ret, PgError *err) {
        _cleanup_free_ char *v = NULL;
        const char *p[] = { rel };
        int k = pg_value(rr->pg, &v, err,
                         "SELECT coalesce((SELECT pg_has_role(current_user, c.relowner, 'USAGE')"
                         " AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.oid"
                         " AND f.conrelid <> c.oid) FROM pg_class c WHERE c.oid = $1::regclass), false)",
                         1, p);
        if (k)
                return k;
        *ret = streq_ptr(v, "t");
        return 0;
}

/* The partition is still attached and will not be dropped by this run: the COMMENT that would
 * let a later run finish a detach no longer holds. */
static void uncomment_partition(RuleRun *rr, const char *pq) {
        _cleanup_free_ char *sql = xasprintf("COMMENT ON TABLE %s IS NULL", pq);
        PgError e = {};
        (void) pg_exec0(rr->pg, NULL, &e, sql);
        pg_error_done(&e);
}

static int drop_expired_partitions(RuleRun *rr, CatCache *cache, PgError *err) {
        _cleanup_pgresult_ PGresult *parts = NULL;
        _cleanup_free_ char *parent = qualified_name_quote(&rr->plan->table->name);
        Detached *detached = NULL;
        size_t n_detached = 0;
        int64_t detached_rows = 0; /* the statistics' rows of the partitions detached so far */
        char oid[16];
        bool owner = false;
        /* Decided from the catalog before anything changes: a role that may not detach and drop
         * (the least-privilege role of sql/retentiond-role.sql owns nothing) leaves every
         * partition attached, and the batches delete their rows through the parent, for which
         * SELECT and DELETE on the parent suffice. */
        snprintf(oid, sizeof(oid), "%u", rr->plan->table->oid);
        int k = may_drop(rr, oid, &owner, err);
        if (k)
                return k;
        if (!owner) {
                log_debug("rule %s: partitions of %s are deleted row by row: the role does not own the table",
                          rr->rule->name, parent);
                return 0;
        }
        k = finish_pending_detaches(rr, cache, parent, err);
        if (k == 0)
                k = finish_detached_orphans(rr, cache, parent, err);
        if (k)
                return k;
        k = exec_stmt(rr, &rr->plan->partitions, &parts, err, NULL, NULL, 0);
        if (k)
                return k;
        /* From the first detach on, every way out of this loop goes through settle_detached(). */
        for (int i = 0; i < PQntuples(parts); i++) {
                if (rr->o->stop && *rr->o->stop)
                        break;
                QualifiedName part = { .schema = PQgetvalue(parts, i, 0), .name = PQgetvalue(parts, i, 1) };
                _cleanup_free_ char *pq = qualified_name_quote(&part);
                _cleanup_free_ char *pd = qualified_name_display(&part);
                const char *bound = PQgetvalue(parts, i, 2);
                int64_t dropped = 0;
                /* Its rows, by the statistics, must fit in what the breaker's limit has left; the
                 * count under the lock decides, but a partition that will not fit is not taken
                 * from the application for nothing. */
                int64_t est = strtoll(PQgetvalue(parts, i, 3), NULL, 10);
                if (breaker_budget(rr) != INT64_MAX && detached_rows + est > breaker_budget(rr))
                        continue;

                /* First a look without detaching, when anything could keep a row (a hold, a
                 * longer rule of the table, a cascade into held rows): a partition with a kept
                 * row is never taken from the application, not even for a moment. Otherwise
                 * every row of the range is expired by its bound; the check under the lock
                 * below still proves it. */
                if (!rr->plan->nothing_keeps) {
                        PlanStatement check = {};
                        plan_partition_check(rr->plan, rr->policy, cache, &part, &check);
                        _cleanup_pgresult_ PGresult *c = NULL;
                        k = exec_stmt(rr, &check, &c, err, NULL, NULL, 0);
                        plan_statement_done(&check);
                        if (k)
                                break;
                        if (int_at(c, 0, 1) > 0 || int_at(c, 0, 2) > 0)
                                continue; /* held or young rows: row by row */
                }
                /* A partition the role does not own, or that another table references, stays:
                 * its rows go by batches. */
                bool own_part = false;
                k = may_drop(rr, pq, &own_part, err);
                if (k)
                        break;
                if (!own_part)
                        continue;
                /* The COMMENT says whose partition it was and with which bound, so that a run
                 * killed before the DROP leaves the next run all it needs to finish it
                 * (finish_detached_orphans()). No COMMENT, no detach. */
                _cleanup_free_ char *note = xasprintf(DETACHED_COMMENT_PREFIX "%u by rule run %" PRId64
                                                      " to be dropped; all rows expired; bound %s",
                                                      rr->plan->table->oid, rr->res.rule_run_id, bound);
                _cleanup_free_ char *lit = pg_literal(note);
                _cleanup_free_ char *comment = xasprintf("COMMENT ON TABLE %s IS %s", pq, lit);
                PgError ce = {};
                k = pg_exec0(rr->pg, NULL, &ce, comment);
                if (k == PG_ERR_CONNECTION) {
                        *err = ce;
                        break;
                }
                pg_error_done(&ce);
                if (k) {
                        k = 0;
                        continue; /* busy or refused: still attached, its rows go row by row */
                }

                _cleanup_free_ char *detach = xasprintf("ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY", parent, pq);
                PgError de = {};
                k = pg_exec0(rr->pg, NULL, &de, detach);
                if (k == PG_ERR_PERMISSION) {
                        /* Ownership changed since the look above: nothing was detached. Every
                         * partition left goes by batches, as for a role that owns nothing. */
                        log_warning("rule %s: may not detach partition %s (%s); its rows are deleted row by row",
                                    rr->rule->name, pd, de.primary ? de.primary : "permission denied");
                        pg_error_done(&de);
                        uncomment_partition(rr, pq);
                        k = 0;
                        break;
                }
                if (k && k != PG_ERR_CONNECTION && detach_pending(rr, pq)) {
                        /* The first transaction committed, the second did not finish. */
                        pg_error_done(&de);
                        k = 0;
                        if (finalize_detach(rr, parent, pq, pd) != 0)
                                continue;
                }
                if (k == 0) {
                        /* Dropped below, with the others, in one transaction. */
                        detached = xreallocarray(detached, n_detached + 1, sizeof(Detached));
                        detached[n_detached++] = (Detached) { .name = part, .quoted = TAKE_PTR(pq),
                                                              .display = TAKE_PTR(pd), .bound = xstrdup(bound) };
                        detached_rows += est;
                        continue;
                }
                if (k == PG_ERR_CONNECTION) {
                        *err = de;
                        break;
                }
                /* CONCURRENTLY is impossible (a default partition exists, or we are in a
                 * transaction): detach and drop atomically under lock_timeout instead. */
                pg_error_done(&de);
                _cleanup_free_ char *detach2 = xasprintf("ALTER TABLE %s DETACH PARTITION %s", parent, pq);
                k = drop_partition_checked(rr, cache, &part, detach2, &dropped, err);
                if (k != 0 && k != PG_ERR_CONNECTION)
                        uncomment_partition(rr, pq); /* rolled back: still attached */
                if (k == OUTCOME_REFUSED) {
                        k = 0;
                        continue;
                }
                if (k == PG_ERR_LOCK_TIMEOUT || k == PG_ERR_PERMISSION) {
                        pg_error_done(err);
                        k = 0;
                        continue; /* busy or not allowed: still attached, its rows go row by row */
                }
                if (k)
                        break;
                partition_dropped(rr, pd, dropped);
        }
        /* k: the loop's error, if it ended on one (err holds it). */
        PgError se = {};
        int ks = settle_detached(rr, cache, parent, detached, n_detached, &se);
        if (k == 0 && ks) {
                k = ks;
                *err = se;
        } else
                pg_error_done(&se);
        detached_done(detached, n_detached);
        return k;
}

/* The hash method's pads reach the server by COPY into a temporary table of this session
 * (HASH_KEY_TABLE), never as a statement parameter: the server logs parameters for any role that
 * may not set log_parameter_max_length (log_statement = all, log_min_duration_statement), but
 * never COPY data, and binary COPY quotes no data in an error's context either. The table lives
 * in this session's temporary buffers (not WAL-logged, invisible to other sessions) until
 * drop_hash_key() at the end of the rule run, or the end of the session. A role that may not
 * create temporary tables cannot run a hash rule: there is no fallback to parameters. */
static int install_hash_key(RuleRun *rr, PgError *err) {
        PgError e = {};
        int k = pg_exec0(rr->pg, NULL, &e,
                         "CREATE TEMPORARY TABLE IF NOT EXISTS " HASH_KEY_TABLE " (ipad bytea NOT NULL, opad bytea NOT NULL)"
                         " ON COMMIT PRESERVE ROWS");
        if (k == PG_ERR_PERMISSION) {
                _cleanup_free_ char *detail = xasprintf(
                        "%s. The hash key reaches the database only through a temporary table of retentiond's session,"
                        " never as a statement parameter, which the server may log.",
                        e.primary ? e.primary : "permission denied");
                pg_error_set(err, e.sqlstate, detail,
                             "Grant the role the TEMPORARY privilege on the database (GRANT TEMPORARY ON DATABASE ... TO"
                             " ...; PUBLIC has it unless it was revoked).",
                             "rule \"%s\" uses the hash method, and the role may not create temporary tables",
                             rr->rule->name);
                pg_error_done(&e);
                return k;
        }
        if (k) {
                *err = e;
                return k;
        }
        rr->hash_key_installed = true;
        k = pg_exec0(rr->pg, NULL, err, "TRUNCATE " HASH_KEY_TABLE);
        if (k)
                return k;
        k = pg_copy_in(rr->pg, err, "COPY " HASH_KEY_TABLE " (ipad, opad) FROM STDIN (FORMAT binary)",
                       rr->o->hash_key->copy_data, sizeof(rr->o->hash_key->copy_data));
        if (k)
                return k;
        /* Exactly one row, or the anonymising statement fails (plan.c, HASH_PAD_SQL). */
        return 0;
}

static void drop_hash_key(RuleRun *rr) {
        if (!rr->hash_key_installed || !pg_connection_ok(rr->pg))
                return;
        if (PQtransactionStatus(rr->pg->conn) != PQTRANS_IDLE)
                rollback_quietly(rr->pg);
        PgError e = {};
        if (pg_exec0(rr->pg, NULL, &e, "DROP TABLE IF EXISTS " HASH_KEY_TABLE) == 0)
                rr->hash_key_installed = false;
        pg_error_done(&e);
}

static int trail_rule_begin(RuleRun *rr, int64_t run_id, PgError *err) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        _cleanup_free_ char *tn = qualified_name_display(&rr->rule->table);
        const char *p[] = { id, rr->rule->name, rr->rule->clause, tn, action_to_string(rr->rule->action) };
        _cleanup_free_ char *v = NULL;
        int k = pg_value(rr->pg, &v, err, "SELECT retention.begin_rule_run($1::bigint, $2, $3, $4, $5)", 5, p);
        if (k)
                return k;
        rr->res.rule_run_id = strtoll(v, NULL, 10);
        return 0;
}

/* Code of another role that the rule would make PostgreSQL run with this role's privileges: a
 * trigger, a rule or row-level security on its table, a table its deletes cascade into, their
 * partitions, or its holds' evidence (plan_untrusted). The catalog is read again for these tables
 * right before the rule, so that one added during the run counts too. Unless the rule trusts it
 * (trust_triggers: true), the rule is refused before it changes anything: returns 0 with *refused
 * and *err set (a PgErrorClass if the catalog could not be read). Trusted, it is listed in the
 * rule's result and reported as a warning. mid_run: the check of a batch (batch_untrusted()). */
static int check_untrusted(RuleRun *rr, CatCache *cache, bool mid_run, bool *refused, PgError *err) {
        *refused = false;
        _cleanup_free_ uint32_t *oids = NULL;
        size_t n = plan_untrusted_tables(rr->rule, cache, &oids);
        _cleanup_free_ CatTable **tables = xcalloc(n ? n : 1, sizeof(CatTable *));
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < cache->n_tables; j++)
                        if (cache->tables[j]->oid == oids[i]) {
                                tables[m++] = cache->tables[j];
                                break;
                        }
        int k = catalog_load_untrusted(rr->pg, tables, m, err);
        if (k)
                return k;

        UntrustedUse *uses = NULL;
        size_t nu = plan_untrusted(rr->rule, cache, &uses);
        if (nu == 0)
                return 0;
        if (rr->rule->trust_triggers) {
                for (size_t i = 0; i < nu; i++) {
                        _cleanup_free_ char *what = untrusted_describe(uses[i].code);
                        rr->res.untrusted = xreallocarray(rr->res.untrusted, rr->res.n_untrusted + 1, sizeof(char *));
                        rr->res.untrusted[rr->res.n_untrusted++] =
                                xasprintf("%s ran with this role's privileges %s (trust_triggers: true)", what, uses[i].when);
                }
                untrusted_uses_free(uses, nu);
                return 0;
        }
        const CatUntrusted *c = uses[0].code;
        _cleanup_free_ char *what = untrusted_describe(c);
        StrBuf more = {};
        for (size_t i = 1; i < nu; i++) {
                _cleanup_free_ char *w = untrusted_describe(uses[i].code);
                strbuf_appendf(&more, "%s%s %s", i == 1 ? " Also: " : "; ", w, uses[i].when);
                if (i + 1 == nu)
                        strbuf_append(&more, ".");
        }
        _cleanup_free_ char *detail = xasprintf("The %s would run with the privileges of the role retentiond runs as %s,"
                                                " and its owner, role \"%s\", is neither that role nor a superuser."
                                                " %s%s",
                                                what, uses[0].when, c->owner,
                                                mid_run ? "It appeared while the rule ran: the batch that would have run it"
                                                          " was rolled back; the rule's earlier batches stand."
                                                        : "Nothing was changed.",
                                                more.len ? strbuf_str(&more) : "");
        strbuf_done(&more);
        if (c->kind == CAT_CODE_RLS)
                pg_error_set(err, NULL, detail,
                             "Disable row-level security on the table, or have the table owned by the role retentiond runs as"
                             " or by a superuser; to run the rule anyway, set \"trust_triggers: true\" on it.",
                             "rule \"%s\" refused: row-level security on table %s runs code of role \"%s\"", rr->rule->name,
                             c->relation, c->owner);
        else
                pg_error_set(err, NULL, detail,
                             c->kind == CAT_CODE_TRIGGER
                                     ? "Drop the trigger, or have its function owned by the role retentiond runs as or by a"
                                       " superuser; to run the rule anyway, set \"trust_triggers: true\" on it."
                                     : "Drop the rule, or have the table owned by the role retentiond runs as or by a superuser;"
                                       " to run the rule anyway, set \"trust_triggers: true\" on it.",
                             "rule \"%s\" refused: %s \"%s\" on table %s runs code of role \"%s\"", rr->rule->name,
                             cat_code_kind_to_string(c->kind), c->name, c->relation, c->owner);
        untrusted_uses_free(uses, nu);
        *refused = true;
        return 0;
}

/* ---- rows removed or set to NULL by cascades ---- */

static void array_append_text(StrBuf *b, const char *v) {
        strbuf_append(b, b->len > 1 ? ",\"" : "\"");
        for (const char *c = v; *c; c++) {
                if (*c == '"' || *c == '\\')
                        strbuf_appendc(b, '\\');
                strbuf_appendc(b, *c);
        }
        strbuf_appendc(b, '"');
}

/* Every table the rule's deletions can reach through ON DELETE CASCADE (followed down) or change
 * through SET NULL / SET DEFAULT, from the catalog facts the plan was built from: the plan keeps
 * every due row whose cascade would go further than those facts reach, so nothing beyond them can
 * be touched. */
static void cascade_walk(RuleRun *rr, const CatCache *cache, const CatTable *t, uint32_t **oids, size_t *n) {
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                const CatForeignKey *fk = &t->referenced_by[i];
                if (fk->on_delete != 'c' && fk->on_delete != 'n' && fk->on_delete != 'd')
                        continue;
                bool seen = false;
                for (size_t j = 0; j < *n; j++)
                        seen = seen || (*oids)[j] == fk->child_oid;
                if (seen)
                        continue;
                *oids = xreallocarray(*oids, *n + 1, sizeof(uint32_t));
                (*oids)[(*n)++] = fk->child_oid;
                rr->res.cascades = xreallocarray(rr->res.cascades, rr->res.n_cascades + 1, sizeof(CascadeCount));
                rr->res.cascades[rr->res.n_cascades++] = (CascadeCount) { .table = qualified_name_display(&fk->child) };
                const CatTable *child = cat_cache_find_oid(cache, fk->child_oid);
                if (fk->on_delete == 'c' && child)
                        cascade_walk(rr, cache, child, oids, n);
        }
}

static void cascade_targets(RuleRun *rr, const CatCache *cache) {
        uint32_t *oids = NULL;
        size_t n = 0;
        rr->cascade_self = -1;
        if (rr->rule->action != ACTION_DELETE)
                return;
        cascade_walk(rr, cache, rr->plan->table, &oids, &n);
        if (n == 0)
                return;
        /* In bytewise order of their names, as the receipt and the seal list them. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && strcmp(rr->res.cascades[j - 1].table, rr->res.cascades[j].table) > 0; j--) {
                        CascadeCount c = rr->res.cascades[j];
                        rr->res.cascades[j] = rr->res.cascades[j - 1];
                        rr->res.cascades[j - 1] = c;
                        uint32_t o = oids[j];
                        oids[j] = oids[j - 1];
                        oids[j - 1] = o;
                }
        rr->cascade_self = -1;
        for (size_t i = 0; i < n; i++)
                if (oids[i] == rr->plan->table->oid)
                        rr->cascade_self = (long) i;
        StrBuf o = {}, t = {};
        strbuf_append(&o, "{");
        strbuf_append(&t, "{");
        for (size_t i = 0; i < n; i++) {
                strbuf_appendf(&o, "%s%u", i ? "," : "", oids[i]);
                array_append_text(&t, rr->res.cascades[i].table);
        }
        strbuf_append(&o, "}");
        strbuf_append(&t, "}");
        rr->cascade_oids = strbuf_steal(&o);
        rr->cascade_names = strbuf_steal(&t);
        free(oids);
}

/* Rows deleted and updated in this transaction in each cascade target (all its leaf partitions),
 * from PostgreSQL's statistics of the transaction: they count every row a statement and the
 * cascades it fired changed, also in subtransactions rolled back since. */
#define CASCADE_COUNTERS_SQL                                                                                           \
        "SELECT u.i, (SELECT coalesce(sum(pg_stat_get_xact_tuples_deleted(x)), 0) FROM unnest(l.leaves) x)::bigint AS d," \
        " (SELECT coalesce(sum(pg_stat_get_xact_tuples_updated(x)), 0) FROM unnest(l.leaves) x)::bigint AS n"          \
        " FROM unnest($1::oid[]) WITH ORDINALITY u(relid, i) CROSS JOIN LATERAL"                                        \
        " (SELECT CASE WHEN count(*) = 0 THEN ARRAY[u.relid] ELSE array_agg(pt.relid) FILTER (WHERE pt.isleaf) END"   \
        "  FROM pg_partition_tree(u.relid) pt) l(leaves)"

typedef struct CascadeMark {
        int64_t *deleted, *nulled;
} CascadeMark;

static void cascade_mark_done(CascadeMark *m) {
        free(m->deleted);
        free(m->nulled);
        *m = (CascadeMark) {};
}

/* Reads the counters into *m (in the caller's transaction). No-op without cascade targets. */
static int cascade_mark(RuleRun *rr, CascadeMark *m, PgError *err) {
        if (!rr->cascade_oids)
                return 0;
        const char *p[] = { rr->cascade_oids };
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(rr->pg, &r, err, CASCADE_COUNTERS_SQL " ORDER BY u.i", 1, p);
        if (k)
                return k;
        size_t n = rr->res.n_cascades;
        if (!m->deleted) {
                m->deleted = xcalloc(n, sizeof(int64_t));
                m->nulled = xcalloc(n, sizeof(int64_t));
        }
        for (int i = 0; i < PQntuples(r) && (size_t) i < n; i++) {
                m->deleted[i] = int_at(r, i, 1);
                m->nulled[i] = int_at(r, i, 2);
        }
        return 0;
}

/* In the batch's transaction, after its statement: what the batch cascaded since *before (less
 * `own` rows of the rule's own table, deleted by the statement itself: not a cascade) goes into
 * retention.rule_run_cascades, and into *delta (allocated) for the caller to add once the
 * transaction commits. No-op without cascade targets. */
static int cascade_record(RuleRun *rr, const CascadeMark *before, int64_t own, CascadeMark *delta, PgError *err) {
        if (!rr->cascade_oids)
                return 0;
        size_t n = rr->res.n_cascades;
        StrBuf bd = {}, bn = {};
        strbuf_append(&bd, "{");
        strbuf_append(&bn, "{");
        for (size_t i = 0; i < n; i++) {
                strbuf_appendf(&bd, "%s%" PRId64, i ? "," : "", before->deleted[i] + ((long) i == rr->cascade_self ? own : 0));
                strbuf_appendf(&bn, "%s%" PRId64, i ? "," : "", before->nulled[i]);
        }
        strbuf_append(&bd, "}");
        strbuf_append(&bn, "}");
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, rr->res.rule_run_id);
        const char *p[] = { rr->cascade_oids, id, rr->cascade_names, strbuf_str(&bd), strbuf_str(&bn) };
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(rr->pg, &r, err,
                        "WITH a AS (" CASCADE_COUNTERS_SQL "),"
                        " x AS (SELECT a.i, ($3::text[])[a.i] AS t, a.d - ($4::bigint[])[a.i] AS d,"
                        "  a.n - ($5::bigint[])[a.i] AS n FROM a),"
                        " w AS MATERIALIZED (SELECT retention.add_rule_run_cascades($2::bigint, array_agg(x.t ORDER BY x.i),"
                        "  array_agg(x.d ORDER BY x.i), array_agg(x.n ORDER BY x.i)) FROM x)"
                        " SELECT x.i, x.d, x.n, (SELECT count(*) FROM w) FROM x ORDER BY x.i",
                        5, p);
        strbuf_done(&bd);
        strbuf_done(&bn);
        if (k)
                return k;
        delta->deleted = xcalloc(n, sizeof(int64_t));
        delta->nulled = xcalloc(n, sizeof(int64_t));
        for (int i = 0; i < PQntuples(r) && (size_t) i < n; i++) {
                delta->deleted[i] = int_at(r, i, 1);
                delta->nulled[i] = int_at(r, i, 2);
        }
        return 0;
}

/* After the batch's COMMIT: its cascades count in the result. */
static void cascade_commit(RuleRun *rr, CascadeMark *delta) {
        for (size_t i = 0; delta->deleted && i < rr->res.n_cascades; i++) {
                rr->res.cascades[i].deleted += delta->deleted[i];
                rr->res.cascades[i].nulled += delta->nulled[i];
                rr->res.cascade_deleted += delta->deleted[i];
                rr->res.cascade_nulled += delta->nulled[i];
        }
        cascade_mark_done(delta);
}

/* A batch's own transaction: READ COMMITTED whatever default_transaction_isolation says, so
 * that each statement, batch_untrusted()'s among them, reads the catalog as committed when it
 * starts (after the batch's statement took its locks), not as at the transaction's first one. */
#define BATCH_BEGIN "BEGIN ISOLATION LEVEL READ COMMITTED"

/* batch_untrusted()'s probe: everything check_untrusted() looks at for the tables %s (an oid[])
 * and their partitions, as one string that changes whenever any of it does: triggers (enabled or
 * not, their function and its owner), rules, row-level security, policies, the tables' owners,
 * and whether the owners are superusers. The oids (numbers, from the catalog) are in its text, so
 * that the prepared statement has no parameter and is planned once per rule run. */
#define UNTRUSTED_PROBE "retentiond_untrusted_probe"
#define UNTRUSTED_PROBE_SQL \
        "SELECT concat_ws('|'," \
        "  (SELECT string_agg(concat_ws(':', tg.oid, tg.tgenabled, tg.tgfoid, p.proowner," \
        "                               (SELECT o.rolsuper FROM pg_roles o WHERE o.oid = p.proowner)), ',' ORDER BY tg.oid)" \
        "     FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid WHERE tg.tgrelid = ANY(r.a) AND NOT tg.tgisinternal)," \
        "  (SELECT string_agg(concat_ws(':', w.oid, w.ev_enabled), ',' ORDER BY w.oid)" \
        "     FROM pg_rewrite w WHERE w.ev_class = ANY(r.a))," \
        "  (SELECT string_agg(concat_ws(':', c.oid, c.relowner, (SELECT o.rolsuper FROM pg_roles o WHERE o.oid = c.relowner)," \
        "                               c.relrowsecurity, c.relforcerowsecurity," \
        "                               (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid = c.oid)), ',' ORDER BY c.oid)" \
        "     FROM pg_class c WHERE c.oid = ANY(r.a))," \
        "  (SELECT concat_ws(':', o.rolsuper, o.rolbypassrls) FROM pg_roles o WHERE o.rolname = current_user))" \
        " FROM (SELECT array_agg(DISTINCT t.relid) AS a FROM unnest('%s'::oid[]) AS u(root)," \
        "  LATERAL (SELECT u.root AS relid UNION ALL SELECT pt.relid FROM pg_partition_tree(u.root) pt) t) r"

/* Whether each batch must run batch_untrusted() before its COMMIT. */
static bool batch_guarded(const RuleRun *rr) {
        return !rr->rule->trust_triggers && rr->cache;
}

/* In the batch's transaction, after its statements and right before its COMMIT: the check of
 * check_untrusted() again, so that a trigger, rule or row-level security of another role that
 * appeared while the rule ran never commits anything done with this role's privileges. Returns
 * PG_ERR_OTHER with the refusal in *err: the caller rolls the batch back (with whatever that code
 * did in it) and the rule fails (step_failed()) with the error of a refusal at its start.
 *
 * Why this is race-free: CREATE TRIGGER, CREATE RULE, CREATE POLICY and ALTER TABLE ... ENABLE
 * ROW LEVEL SECURITY take a lock on their table (SHARE ROW EXCLUSIVE or stronger) that conflicts
 * with the ROW EXCLUSIVE lock the batch's DELETE/UPDATE holds on the rule's table (and its
 * partitions), and a cascade holds on each table it reaches, until COMMIT; and the ACCESS SHARE
 * lock a read of a hold's evidence holds conflicts with the ACCESS EXCLUSIVE of CREATE POLICY and
 * ALTER TABLE. So such code either committed before the batch locked the table (then this
 * check, a later statement of the same READ COMMITTED transaction with a newer snapshot, sees it,
 * and the batch rolls back), or it waits for the batch's COMMIT and the next batch sees it. What
 * remains: the code did run inside the rolled-back batch, so effects that a ROLLBACK does not undo
 * (nextval(), dblink) happened with this role's privileges, once. */
static int batch_untrusted(RuleRun *rr, PgError *err) {
        if (!batch_guarded(rr))
                return 0;
        if (!rr->probe_oids) {
                _cleanup_free_ uint32_t *oids = NULL;
                size_t n = plan_untrusted_tables(rr->rule, rr->cache, &oids);
                StrBuf b = {};
                strbuf_append(&b, "{");
                for (size_t i = 0; i < n; i++)
                        strbuf_appendf(&b, "%s%u", i ? "," : "", oids[i]);
                strbuf_append(&b, "}");
                rr->probe_oids = xstrdup(strbuf_str(&b));
                strbuf_done(&b);
        }
        if (!rr->probe_prepared) {
                _cleanup_free_ char *sql = xasprintf(UNTRUSTED_PROBE_SQL, rr->probe_oids);
                int kp = pg_prepare(rr->pg, err, UNTRUSTED_PROBE, sql, 0);
                if (kp)
                        return kp;
                rr->probe_prepared = true;
        }
        /* The probe first, the full check after it: what the probe saw, the check (a later
         * snapshot) saw too, so an answer the check let through may stand for the next batches. */
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec_prepared(rr->pg, &r, err, UNTRUSTED_PROBE, 0, NULL);
        if (k)
                return k;
        const char *seen = PQgetvalue(r, 0, 0);
        if (rr->probe_seen && streq(seen, rr->probe_seen))
                return 0;
        bool refused;
        k = check_untrusted(rr, rr->cache, true, &refused, err);
        if (k)
                return k;
        if (refused)
                return PG_ERR_OTHER;
        free(rr->probe_seen);
        rr->probe_seen = xstrdup(seen);
        return 0;
}

int rule_run_start(Pg *pg, const Policy *p, const Rule *rule, CatCache *cache, const EnforceOptions *o, int64_t run_id,
                   RuleRun **ret) {
        RuleRun *rr = xcalloc(1, sizeof(RuleRun));
        _cleanup_free_ char *perr = NULL; /* declared before any goto out: its cleanup runs there */
        PgError err = {};
        int k = 0;

        rr->pg = pg;
        rr->policy = p;
        rr->rule = rule;
        rr->o = o;
        rr->started = now_usec();
        rr->res.rule = rule;
        rr->res.rule_run_id = -1;
        rr->res.breaker_limit = -1;
        rr->res.outcome = RULE_RUNNING;
        rr->batch_size = rule->batch_size < BATCH_START_ROWS ? rule->batch_size : BATCH_START_ROWS;
        rr->swept_cleanly = true;
        rr->cascade_self = -1;
        rr->cache = cache;
        *ret = rr;

        if (!o->dry_run) {
                k = trail_rule_begin(rr, run_id, &err);
                if (k) {
                        rr->fatal_connection = k == PG_ERR_CONNECTION;
                        rule_run_fail(rr, RULE_FAILED, &err);
                        goto out;
                }
        }

        /* An earlier rule of this run dropped partitions: the facts loaded before may name
         * them (a foreign key declared on a partition, a cascade child), and a plan built from
         * them would fail with "relation ... does not exist". No plan of an earlier rule is
         * alive here; load everything again. */
        if (cache->stale) {
                cat_cache_done(cache); /* stays stale until a load succeeds */
                k = enforce_load_catalog(pg, p, cache, &err);
                if (k)
                        goto fail;
                cache->stale = false;
        }

        bool refused;
        k = check_untrusted(rr, cache, false, &refused, &err);
        if (k)
                goto fail;
        if (refused) {
                rule_run_fail(rr, RULE_FAILED, &err);
                goto out;
        }

        if (plan_build(p, rule, cache, &rr->plan, &perr) < 0) {
                pg_error_set(&err, NULL, perr, "Run \"retentiond check --database\" to see every catalog problem.",
                             "rule \"%s\" does not fit the database", rule->name);
                rule_run_fail(rr, RULE_FAILED, &err);
                goto out;
        }
        /* Every where this rule's statements paste, parsed by PostgreSQL on its own first. */
        k = rule_where_check(pg, p, rule, cache, &err);
        if (k)
                goto fail;
        if (!o->dry_run)
                cascade_targets(rr, cache);
        rr->res.has_index = rr->plan->has_age_index;
        rr->fast_ok = rr->plan->batch_range.sql != NULL;
        for (size_t i = 0; i < rr->plan->n_warnings; i++) {
                rr->res.warnings = xreallocarray(rr->res.warnings, rr->res.n_warnings + 1, sizeof(char *));
                rr->res.warnings[rr->res.n_warnings++] = xstrdup(rr->plan->warnings[i]);
        }
        if (!o->dry_run && rule_needs_hash_key(rule) && !o->hash_key) {
                pg_error_set(&err, NULL, NULL,
                             "Give --hash-key-file FILE, the systemd credential hash-key, or RETENTIOND_HASH_KEY_FILE.",
                             "rule \"%s\" uses the hash method, but no hash key was found", rule->name);
                rule_run_fail(rr, RULE_FAILED, &err);
                goto out;
        }
        if (!o->dry_run && rule_needs_hash_key(rule)) {
                k = install_hash_key(rr, &err);
                if (k)
                        goto fail;
        }

        k = compute_cutoffs(rr, &err);
        if (k)
                goto fail;
        if (!o->dry_run) {
                char id[32];
                snprintf(id, sizeof(id), "%" PRId64, rr->res.rule_run_id);
                const char *pp[] = { id, rr->res.cutoff };
                k = pg_exec(pg, NULL, &err, "SELECT retention.set_rule_run_cutoff($1::bigint, $2::timestamptz)", 2, pp);
                if (k)
                        goto fail;
        } else {
                /* The audit: count now, decide what the breaker would do, nothing else. */
                k = run_tally(rr, &err);
                if (k)
                        goto fail;
        }
        k = check_breaker(rr, &err);
        if (k)
                goto fail;
        if (o->dry_run)
                rr->phase = PHASE_DONE;
        else if (rr->phase != PHASE_DONE && rr->plan->can_drop_partitions) {
                k = drop_expired_partitions(rr, cache, &err);
                if (rr->res.partitions_dropped > 0)
                        cache->stale = true; /* for the next rule: this one's plan still uses it */
                if (k)
                        goto fail;
        }
        goto out;

fail:
        rr->fatal_connection = k == PG_ERR_CONNECTION;
        if (cancelled_by_stop(rr, k))
                rule_run_fail(rr, RULE_INTERRUPTED, NULL);
        else
                rule_run_fail(rr, k == PG_ERR_LOCK_TIMEOUT ? RULE_SKIPPED : k == OUTCOME_BREAKER ? RULE_BREAKER : RULE_FAILED, &err);
out:
        pg_error_done(&err);
        return 0;
}

bool rule_run_done(const RuleRun *rr) {
        return rr->phase == PHASE_DONE;
}

/* A batch was refused by a foreign key (a RESTRICT reference below a cascade, or a row that
 * became referenced after it was selected): redo it one row at a time, each in a savepoint,
 * keep every row that can go, and count the ones that cannot. */
static int isolate_foreign_keys(RuleRun *rr, PgError *err) {
        _cleanup_pgresult_ PGresult *rows = NULL;
        PgError e = {};
        rr->next_xid = 0; /* every row takes a subtransaction id: pacing starts counting afresh */
        CascadeMark before = {}, pre = {}, post = {}, delta = {};
        int k = pg_exec0(rr->pg, NULL, err, BATCH_BEGIN);
        if (k)
                return k;
        k = cascade_mark(rr, &before, err);
        if (k)
                goto rollback;
        /* After an isolation that could delete nothing and did not move the key, look further:
         * the refused rows come first in age order and would otherwise fill every batch. */
        int64_t limit = rr->batch_size;
        for (unsigned i = 0; i < rr->isolate_widen && limit < POLICY_MAX_BATCH_SIZE; i++)
                limit *= 2;
        /* The selection is not cut to the breaker's limit (refused rows change nothing and must
         * not hide the rows after them); the deletions below are. */
        rr->isolation_rows = limit;
        k = exec_stmt(rr, &rr->plan->row_by_row_select, &rows, err, NULL, NULL, 0);
        rr->isolation_rows = 0;
        if (k)
                goto rollback;
        int n = PQntuples(rows), seen = n;
        int64_t deleted = 0, refused = 0, budget = breaker_budget(rr);
        for (int i = 0; i < n; i++) {
                if (deleted >= budget) {
                        seen = i; /* the limit is reached: the rest is for the next step to judge */
                        break;
                }
                /* A row's cascades rolled back with its savepoint still count in the transaction's
                 * statistics: what happened between these two readings is taken off again. */
                k = cascade_mark(rr, &pre, err);
                if (k)
                        goto rollback;
                k = pg_exec0(rr->pg, NULL, err, "SAVEPOINT retentiond_row");
                if (k)
                        goto rollback;
                _cleanup_pgresult_ PGresult *d = NULL;
                k = exec_stmt(rr, &rr->plan->row_by_row_delete, &d, &e, PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 1), 0);
                if (k == PG_ERR_FOREIGN_KEY) {
                        refused++;
                        if (!rr->fk_refused_table && e.table)
                                rr->fk_refused_table = xstrdup(e.table);
                        pg_error_done(&e);
                        k = pg_exec0(rr->pg, NULL, err, "ROLLBACK TO SAVEPOINT retentiond_row");
                        if (k == 0)
                                k = cascade_mark(rr, &post, err);
                        if (k)
                                goto rollback;
                        for (size_t j = 0; rr->cascade_oids && j < rr->res.n_cascades; j++) {
                                before.deleted[j] += post.deleted[j] - pre.deleted[j];
                                before.nulled[j] += post.nulled[j] - pre.nulled[j];
                        }
                        continue;
                }
                if (k) {
                        pg_error_done(err);
                        *err = e;
                        e = (PgError) {};
                        goto rollback;
                }
                deleted += strtoll(PQcmdTuples(d), NULL, 10);
        }
        k = trail_count(rr, deleted, 0, 1, 0, NULL, err);
        if (k == 0)
                k = cascade_record(rr, &before, deleted, &delta, err);
        if (k == 0)
                k = batch_untrusted(rr, err);
        if (k) {
                cascade_mark_done(&delta);
                goto rollback;
        }
        k = pg_exec0(rr->pg, NULL, err, "COMMIT");
        if (k) {
                cascade_mark_done(&delta);
                goto done;
        }
        cascade_commit(rr, &delta);
        pg_error_done(&e);
        rr->res.deleted += deleted;
        rr->res.batches++;
        const char *last = seen > 0 ? PQgetvalue(rows, seen - 1, 2) : NULL;
        if (n > 0 && deleted == 0 && streq_ptr(last, rr->last_key)) {
                /* Every row was refused and the key did not move: the next batch would select the
                 * same rows and be refused again. Rows after them are still due: select more
                 * next time, until one can go; when fewer rows than asked came back, none is left
                 * (and past the largest batch, leave them for the next run). Only rows refused
                 * for the first time are counted. */
                if (refused > rr->isolate_refused)
                        rr->fk_refused += refused - rr->isolate_refused;
                rr->isolate_refused = refused;
                rr->isolate_widen++;
                rr->stalls = n < limit || limit >= POLICY_MAX_BATCH_SIZE ? 3 : 1;
        } else {
                rr->stalls = 0;
                rr->isolate_widen = 0;
                rr->isolate_refused = 0;
                rr->fk_refused += refused;
        }
        if (n == 0 || rr->stalls >= 3) {
                rr->phase = PHASE_WHILE_HELD;
                free(rr->last_key);
                rr->last_key = NULL; /* the while_held phase starts from the oldest row */
                rr->stalls = 0;
                rr->isolate_widen = 0;
                rr->isolate_refused = 0;
        } else {
                free(rr->last_key);
                rr->last_key = xstrdup(last);
        }
        k = 0;
        goto done;

rollback:
        pg_error_done(&e);
        if (pg_connection_ok(rr->pg)) {
                PgError ig = {};
                (void) pg_exec0(rr->pg, NULL, &ig, "ROLLBACK");
                pg_error_done(&ig);
        }
done:
        cascade_mark_done(&before);
        cascade_mark_done(&pre);
        cascade_mark_done(&post);
        return k;
}

static void adapt_batch_size(RuleRun *rr, int64_t rows, uint64_t usec) {
        int64_t max = rr->rule->batch_size;
        if (rows <= 0 || usec == 0)
                return;
        double rate = (double) rows / (double) usec; /* rows per microsecond */
        double want = rate * BATCH_TARGET_USEC;
        /* Grow by at most half and shrink by at most half per batch, so one odd batch does not
         * swing the size; the target sits well below the 20 ms a batch may take. */
        double n = (double) rr->batch_size;
        if (want > 1.5 * n)
                want = 1.5 * n;
        if (want < n / 2)
                want = n / 2;
        int64_t next = (int64_t) want;
        if (next > max)
                next = max;
        if (next < BATCH_MIN_ROWS)
                next = max < BATCH_MIN_ROWS ? max : BATCH_MIN_ROWS;
        rr->batch_size = next;
}

static void end_phase(RuleRun *rr) {
        rr->phase = rr->phase == PHASE_MAIN ? PHASE_WHILE_HELD : PHASE_DONE;
        free(rr->last_key);
        rr->last_key = NULL;
        rr->stalls = 0;
        /* No pause at a phase's end, and pacing starts a fresh count with the next phase. */
        rr->pause_usec = 0;
        rr->next_xid = 0;
}

static int step_failed(RuleRun *rr, int k, PgError *err) {
        if (cancelled_by_stop(rr, k)) {
                /* The cancelled batch rolled back whole, its audit-trail counters with it. */
                pg_error_done(err);
                rr->res.outcome = RULE_INTERRUPTED;
                rr->phase = PHASE_DONE;
                return 0;
        }
        rr->fatal_connection = k == PG_ERR_CONNECTION;
        if (k == PG_ERR_LOCK_TIMEOUT && !err->hint)
                err->hint = xstrdup("The application holds a lock on this table longer than lock_timeout;"
                                    " the rows are left for the next run.");
        rule_run_fail(rr, k == PG_ERR_LOCK_TIMEOUT ? RULE_SKIPPED : RULE_FAILED, err);
        pg_error_done(err);
        return k;
}

/* The running breaker: even when the planner's estimate let the rule start without a count,
 * it never changes more rows in one run than its limit allows. Partitions are dropped only when
 * their rows fit, batches are cut to what the limit has left (batch_rows(); the fast path only
 * runs while a whole batch fits), and once it is used up, one more row due trips the breaker.
 * Returns OUTCOME_BREAKER when the rule must stop, 0 to go on, or a PgErrorClass. */
static int running_limit_reached(RuleRun *rr, PgError *err) {
        if (rr->phase != PHASE_MAIN || breaker_budget(rr) > 0)
                return 0;
        if (main_changed(rr) > rr->res.breaker_limit)
                return OUTCOME_BREAKER;
        _cleanup_pgresult_ PGresult *c = NULL;
        int k = exec_stmt(rr, &rr->plan->breaker_count, &c, err, NULL, NULL, 1);
        if (k)
                return k;
        if (int_at(c, 0, 0) == 0) {
                end_phase(rr); /* exactly at the limit, and nothing more is due */
                return 0;
        }
        return OUTCOME_BREAKER;
}

static void trip_running_limit(RuleRun *rr) {
        PgError e = {};
        int64_t n = main_changed(rr), limit = rr->res.breaker_limit;
        _cleanup_free_ char *detail =
                n > limit ? xasprintf("The run changed %" PRId64 " rows, more than the limit of %" PRId64 "; it stopped there.",
                                      n, limit)
                          : xasprintf("The run changed %" PRId64 " rows, the limit, and more are due; it stopped there.", n);
        pg_error_set(&e, NULL, detail,
                     "Check retain, the database clock and the age column; run with --force if this is expected.",
                     "circuit breaker tripped for rule \"%s\" during the run", rr->rule->name);
        rule_run_fail(rr, RULE_BREAKER, &e);
        pg_error_done(&e);
}

/* The fast path may meet a row the application has locked; it must not wait for it longer
 * than a moment. The session's own lock_timeout (for table locks) comes back afterwards. */
#define FAST_PATH_LOCK_TIMEOUT_MS 50
#define FAST_PATH_STATEMENT "retentiond_batch"
#define FAST_PATH_BOUND "retentiond_bound"

static void set_lock_timeout(RuleRun *rr, long ms) {
        char v[32];
        snprintf(v, sizeof(v), "%ld", ms);
        const char *p[] = { v };
        PgError e = {};
        (void) pg_exec(rr->pg, NULL, &e, "SELECT set_config('lock_timeout', $1, false)", 1, p);
        pg_error_done(&e);
}

static void restore_lock_timeout(RuleRun *rr) {
        if (!rr->short_lock_wait)
                return;
        rr->short_lock_wait = false;
        if (pg_connection_ok(rr->pg))
                set_lock_timeout(rr, rr->pg->settings.lock_timeout_ms);
}

/* Pacing: after a batch of `usec` that took one transaction id of its own, were others taken?
 * The next transaction id to be assigned, from any snapshot, costs nothing to read and needs no
 * privilege; other roles' sessions' activity in pg_stat_activity would need pg_read_all_stats.
 * Read-only traffic takes no id and is not seen: it does not compete for WAL. */
static uint64_t next_xid(RuleRun *rr) {
        _cleanup_free_ char *v = NULL;
        PgError e = {};
        int k = pg_value(rr->pg, &v, &e, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text", 0, NULL);
        pg_error_done(&e);
        return k || !v ? 0 : strtoull(v, NULL, 10);
}

/* Before a batch: where the count starts, unless the last batch left it. */
static void pace_before_batch(RuleRun *rr) {
        if (pace_ratio > 0 && rr->next_xid == 0)
                rr->next_xid = next_xid(rr);
}

/* While other sessions write, this session's WAL is compressed (wal_compression, when the role
 * may set it and the server does not already): a batch's WAL is mostly full-page images of the
 * pages it deletes from, and the application's commits must flush it along with their own.
 * Measured on the benchmark (pgbench's p99 while retentiond deletes 1M rows with --pace 1):
 * 1.6-2.2x its p99 alone with plain WAL, 1.2x with lz4, 1.05x on an unlogged copy (no WAL).
 * On an idle database it stays off: compressing costs the run about 6 %. */
static void gentle_wal(RuleRun *rr, bool on) {
        Pg *pg = rr->pg;
        if (!pg->wal_compression[0] || pg->wal_compressing == on || !pg_connection_ok(pg))
                return;
        const char *p[] = { pg->wal_compression };
        PgError e = {};
        /* Off: back to the server's (or role's) setting, whatever it is by now. */
        int k = on ? pg_exec(pg, NULL, &e, "SELECT set_config('wal_compression', $1, false)", 1, p)
                   : pg_exec0(pg, NULL, &e, "RESET wal_compression");
        if (k && on && streq(pg->wal_compression, "lz4") && pg_connection_ok(pg)) {
                /* A server built without lz4 refuses it (22023): pglz is always there. */
                pg_error_done(&e);
                snprintf(pg->wal_compression, sizeof(pg->wal_compression), "pglz");
                k = pg_exec(pg, NULL, &e, "SELECT set_config('wal_compression', $1, false)", 1, p);
        }
        if (k == 0)
                pg->wal_compressing = on;
        else if (on)
                pg->wal_compression[0] = '\0'; /* not again */
        pg_error_done(&e);
}

/* After a batch: `next`, the next transaction id as the batch's own transaction saw it at its
 * end, or 0 to read it now. */
static void pace_after_batch(RuleRun *rr, uint64_t usec, unsigned own_xids, uint64_t next) {
        rr->pause_usec = 0;
        if (pace_ratio <= 0)
                return;
        if (next == 0)
                next = next_xid(rr);
        if (next == 0) {
                rr->next_xid = 0;
                return;
        }
        if (rr->next_xid > 0) {
                bool others = next > rr->next_xid + own_xids;
                if (others) {
                        double p = pace_ratio * (double) usec;
                        rr->pause_usec = p > 10e6 ? 10000000u : (uint64_t) p;
                        rr->res.paused_usec += (int64_t) rr->pause_usec;
                }
                gentle_wal(rr, others);
        }
        rr->next_xid = next;
}

uint64_t rule_run_pause_usec(const RuleRun *rr) {
        return rr->phase == PHASE_DONE ? 0 : rr->pause_usec;
}

/* Prepares the fast path's two statements on first use. 0, OUTCOME_SLOW_PATH (the table's lock
 * is held by the application: take this batch the slow way), or a PgErrorClass with err set (a
 * lost connection among them: never a reason to try the slow way). */
static int prepare_fast(RuleRun *rr, PgError *err) {
        if (rr->prepared)
                return 0;
        const PlanStatement *sts[] = { &rr->plan->batch_bound, &rr->plan->batch_range };
        const char *names[] = { FAST_PATH_BOUND, FAST_PATH_STATEMENT };
        for (size_t i = 0; i < 2; i++) {
                int kp = pg_prepare(rr->pg, err, names[i], sts[i]->sql, (int) sts[i]->n_params);
                if (kp == PG_ERR_LOCK_TIMEOUT) {
                        /* Preparing the DELETE or UPDATE takes the table's lock already: a lock
                         * the application holds is met here first. */
                        pg_error_done(err);
                        if (i > 0)
                                pg_deallocate(rr->pg, names[0]);
                        return OUTCOME_SLOW_PATH;
                }
                if (kp) {
                        if (i > 0)
                                pg_deallocate(rr->pg, names[0]);
                        return kp;
                }
        }
        rr->prepared = true;
        return 0;
}

static int exec_fast(RuleRun *rr, const PlanStatement *st, const char *name, const char *upper, PGresult **r,
                     PgError *err) {
        Bind b;
        bind(rr, st, &b, NULL, NULL, 0);
        for (size_t i = 0; i < st->n_params; i++)
                if (st->params[i].kind == PARAM_UPPER)
                        b.values[i] = upper;
        int k = pg_exec_prepared(rr->pg, r, err, name, (int) st->n_params, b.values);
        bind_done(&b, st->n_params);
        return k;
}

/* One fast-path batch, in one transaction: the range's upper end, the change, and the audit
 * trail's counters, so the trail never claims more than happened. Returns 0, OUTCOME_SLOW_PATH
 * (take this batch with SKIP LOCKED), or the PgErrorClass that ended the rule (step_failed()). */
static int step_fast(RuleRun *rr) {
        PgError err = {};
        _cleanup_pgresult_ PGresult *rb = NULL, *rc = NULL;
        uint64_t next = 0; /* the next transaction id, read by the batch's counter update */
        if (!rr->short_lock_wait && rr->pg->settings.lock_timeout_ms > FAST_PATH_LOCK_TIMEOUT_MS) {
                set_lock_timeout(rr, FAST_PATH_LOCK_TIMEOUT_MS);
                rr->short_lock_wait = true;
        }
        int k = prepare_fast(rr, &err);
        if (k == OUTCOME_SLOW_PATH) {
                rr->swept_cleanly = false;
                return OUTCOME_SLOW_PATH;
        }
        if (k)
                return step_failed(rr, k, &err);

        pace_before_batch(rr);
        uint64_t t0 = now_usec();
        const char *upper = NULL;
        int64_t changed = 0;
        CascadeMark before = {}, delta = {};
        k = pg_exec0(rr->pg, NULL, &err, BATCH_BEGIN);
        if (k == 0)
                k = cascade_mark(rr, &before, &err);
        if (k == 0)
                k = exec_fast(rr, &rr->plan->batch_bound, FAST_PATH_BOUND, NULL, &rb, &err);
        if (k == 0) {
                upper = PQgetisnull(rb, 0, 0) ? NULL : PQgetvalue(rb, 0, 0);
                /* No range can follow (batch_size rows aged -infinity): the rest of this rule run
                 * takes the SKIP LOCKED batches, whose keyset includes its start. */
                bool stuck = upper && streq(upper, rr->last_key ? rr->last_key : "-infinity");
                /* batch_size rows or more share the range's one age value (a busy day of a date
                 * column): a range of them has no size limit. This batch goes by SKIP LOCKED,
                 * LIMIT batch_size; the fast path resumes after it. */
                bool tie = streq(PQgetvalue(rb, 0, 1), "t");
                if (stuck || tie) {
                        rollback_quietly(rr->pg);
                        cascade_mark_done(&before);
                        if (stuck)
                                rr->fast_ok = false;
                        rr->swept_cleanly = false;
                        return OUTCOME_SLOW_PATH;
                }
                k = exec_fast(rr, &rr->plan->batch_range, FAST_PATH_STATEMENT, upper, &rc, &err);
        }
        if (k == 0) {
                changed = strtoll(PQcmdTuples(rc), NULL, 10);
                bool del = rr->rule->action == ACTION_DELETE;
                k = trail_count(rr, del ? changed : 0, del ? 0 : changed, 1, 0, &next, &err);
        }
        if (k == 0)
                k = cascade_record(rr, &before, changed, &delta, &err);
        if (k == 0)
                k = batch_untrusted(rr, &err);
        if (k == 0)
                k = pg_exec0(rr->pg, NULL, &err, "COMMIT");
        else
                rollback_quietly(rr->pg);
        if (k == 0)
                cascade_commit(rr, &delta);
        cascade_mark_done(&before);
        cascade_mark_done(&delta);
        uint64_t dt = now_usec() - t0;
        if ((int64_t) dt > rr->res.longest_batch_usec)
                rr->res.longest_batch_usec = (int64_t) dt;

        if (k == PG_ERR_LOCK_TIMEOUT) {
                /* A row of this range is locked by the application: take this batch row by row,
                 * skipping locked rows, then come back to the fast path. */
                pg_error_done(&err);
                rr->next_xid = 0; /* the failed statement may have taken an id too */
                rr->swept_cleanly = false;
                return OUTCOME_SLOW_PATH;
        }
        if (k == PG_ERR_FOREIGN_KEY && rr->rule->action == ACTION_DELETE) {
                pg_error_done(&err);
                rr->swept_cleanly = false;
                k = isolate_foreign_keys(rr, &err);
                return k ? step_failed(rr, k, &err) : 0;
        }
        if (k)
                return step_failed(rr, k, &err);

        rr->res.batches++;
        if (rr->rule->action == ACTION_DELETE)
                rr->res.deleted += changed;
        else
                rr->res.anonymised += changed;
        adapt_batch_size(rr, rr->batch_size, dt);
        pace_after_batch(rr, dt, 1, next);
        if (!upper) {
                end_phase(rr);
                return 0;
        }
        free(rr->last_key);
        rr->last_key = xstrdup(upper);
        return 0;
}

int rule_run_step(RuleRun *rr) {
        PgError err = {};
        int k;

        rr->pause_usec = 0;
        if (rr->phase == PHASE_DONE)
                return 0;
        if (rr->o->stop && *rr->o->stop) {
                rr->res.outcome = RULE_INTERRUPTED;
                rr->phase = PHASE_DONE;
                return 0;
        }
        k = running_limit_reached(rr, &err);
        if (k == OUTCOME_BREAKER) {
                trip_running_limit(rr);
                return 0;
        }
        if (k)
                return step_failed(rr, k, &err);
        if (rr->phase == PHASE_DONE)
                return 0;
        /* The fast path's ranges hold fewer than batch_size rows; once the breaker's limit has
         * less left than that, the SKIP LOCKED batches, whose LIMIT is exact, finish the rule. */
        if (rr->phase == PHASE_MAIN && rr->fast_ok && breaker_budget(rr) >= rr->batch_size) {
                k = step_fast(rr);
                if (k != OUTCOME_SLOW_PATH)
                        return k;
        }
        /* This batch with SKIP LOCKED. It waits for the table's lock as long as --lock-timeout
         * says: the fast path's short wait is meant for locked rows, and a table lock held a
         * little longer must not make the rule skip. */
        restore_lock_timeout(rr);
        const PlanStatement *st = rr->phase == PHASE_MAIN ? &rr->plan->batch : &rr->plan->while_held_batch;
        if (!st->sql) {
                rr->phase = PHASE_DONE;
                return 0;
        }
        if (rr->phase == PHASE_WHILE_HELD && !rr->held_tallied) {
                /* The held rows are counted right before the first of them is anonymised, whichever
                 * way the main phase ended (also at the breaker's exact limit, in this same step): a
                 * trigger of the table may move their age column on that UPDATE (a last_update
                 * column), and a tally after it would no longer see them as due, nor as held.
                 * Nothing of the main action changes after this point, so the rest of the tally is
                 * as exact now as later. */
                k = run_tally(rr, &err);
                if (k)
                        return step_failed(rr, k, &err);
                rr->held_tallied = true;
        }

        pace_before_batch(rr);
        uint64_t t0 = now_usec();
        _cleanup_pgresult_ PGresult *r = NULL;
        bool cascades = rr->phase == PHASE_MAIN && rr->cascade_oids;
        if (cascades || batch_guarded(rr)) {
                /* Its cascades are counted, and code of other roles is checked for
                 * (batch_untrusted()), in its own transaction, around its statement. */
                CascadeMark before = {}, delta = {};
                k = pg_exec0(rr->pg, NULL, &err, BATCH_BEGIN);
                if (k == 0 && cascades)
                        k = cascade_mark(rr, &before, &err);
                if (k == 0)
                        k = exec_stmt(rr, st, &r, &err, NULL, NULL, 0);
                if (k == 0 && cascades)
                        k = cascade_record(rr, &before, int_at(r, 0, 1), &delta, &err);
                if (k == 0)
                        k = batch_untrusted(rr, &err);
                if (k == 0)
                        k = pg_exec0(rr->pg, NULL, &err, "COMMIT");
                else
                        rollback_quietly(rr->pg);
                if (k == 0)
                        cascade_commit(rr, &delta);
                cascade_mark_done(&before);
                cascade_mark_done(&delta);
        } else
                k = exec_stmt(rr, st, &r, &err, NULL, NULL, 0);
        uint64_t dt = now_usec() - t0;
        if ((int64_t) dt > rr->res.longest_batch_usec)
                rr->res.longest_batch_usec = (int64_t) dt;
        if (rr->phase == PHASE_MAIN)
                rr->swept_cleanly = false;

        if (k == PG_ERR_FOREIGN_KEY && rr->phase == PHASE_MAIN && rr->rule->action == ACTION_DELETE) {
                pg_error_done(&err);
                k = isolate_foreign_keys(rr, &err);
                if (k == 0)
                        return 0;
        }
        if (k)
                return step_failed(rr, k, &err);

        int64_t selected = int_at(r, 0, 0), changed = int_at(r, 0, 1);
        uint64_t next = PQgetisnull(r, 0, 3) ? 0 : strtoull(PQgetvalue(r, 0, 3), NULL, 10);
        rr->res.batches++;
        if (rr->phase == PHASE_MAIN && rr->rule->action == ACTION_DELETE)
                rr->res.deleted += changed;
        else
                rr->res.anonymised += changed;
        if (rr->phase == PHASE_WHILE_HELD)
                rr->while_held_changed += changed;
        pace_after_batch(rr, dt, 1, next);

        if (selected == 0) {
                end_phase(rr);
                return 0;
        }
        const char *last = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2);
        if (changed == 0 && streq_ptr(last, rr->last_key)) {
                /* Selected rows that the recheck refused, twice at the same position: the rows
                 * are changing under us. Leave them for the next run rather than spin. */
                if (++rr->stalls >= 3)
                        end_phase(rr);
                return 0;
        }
        rr->stalls = 0;
        free(rr->last_key);
        rr->last_key = last ? xstrdup(last) : NULL;
        return 0;
}

/* The rule run's per-hold and per-table counts (retention.add_rule_run_hold/_fk), recorded while
 * it is still running: retention.finish_rule_run() then finishes and seals it. */
static int trail_rule_record(RuleRun *rr, PgError *err) {
        RuleResult *res = &rr->res;
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, res->rule_run_id);
        int k;
        for (size_t i = 0; i < res->n_holds; i++) {
                if (res->holds[i].rows == 0)
                        continue;
                char rows[32];
                snprintf(rows, sizeof(rows), "%" PRId64, res->holds[i].rows);
                const char *hp[] = { id, res->holds[i].name, rows };
                k = pg_exec(rr->pg, NULL, err, "SELECT retention.add_rule_run_hold($1::bigint, $2, $3::bigint)", 3, hp);
                if (k)
                        return k;
        }
        for (size_t i = 0; i < res->n_fks; i++) {
                if (res->fks[i].rows == 0)
                        continue;
                char rows[32];
                snprintf(rows, sizeof(rows), "%" PRId64, res->fks[i].rows);
                const char *fp[] = { id, res->fks[i].name, rows };
                k = pg_exec(rr->pg, NULL, err, "SELECT retention.add_rule_run_fk($1::bigint, $2, $3::bigint)", 3, fp);
                if (k)
                        return k;
        }
        return 0;
}

/* The rule run's per-hold and per-table counts, its final row and its seal into the hash chain
 * (retention.finish_rule_run, which seals with retention.seal_rule_run), in one transaction: a
 * finished rule run is always sealed, and a sealed one is always complete. A seal waits for a
 * concurrent one (the chain head's row lock); a transient failure is retried a few times. */
static int trail_rule_end(RuleRun *rr, PgError *err) {
        RuleResult *res = &rr->res;
        char id[32], held[32], skipped[32], locked[32], fk[32], overdue[32], refused[32], unfinished[32];
        snprintf(id, sizeof(id), "%" PRId64, res->rule_run_id);
        snprintf(held, sizeof(held), "%" PRId64, res->held);
        snprintf(skipped, sizeof(skipped), "%" PRId64, res->actionable + res->fk_blocked);
        snprintf(locked, sizeof(locked), "%" PRId64, res->skipped_locked);
        snprintf(fk, sizeof(fk), "%" PRId64, res->fk_blocked);
        snprintf(overdue, sizeof(overdue), "%" PRId64, res->overdue);
        snprintf(refused, sizeof(refused), "%" PRId64, res->skipped_refused);
        snprintf(unfinished, sizeof(unfinished), "%" PRId64, res->skipped_unfinished);
        const char *sqlstate = res->error.sqlstate[0] ? res->error.sqlstate : NULL;
        const char *p[] = { id, rule_outcome_to_string(res->outcome), sqlstate, res->error.primary, held, skipped, locked,
                            fk, overdue, refused, unfinished };
        int k = 0;
        for (unsigned attempt = 0; attempt < 3; attempt++) {
                if (attempt > 0) {
                        pg_error_done(err);
                        usleep(50000u * attempt);
                }
                if (PQtransactionStatus(rr->pg->conn) == PQTRANS_INERROR)
                        rollback_quietly(rr->pg);
                k = pg_exec0(rr->pg, NULL, err, "BEGIN");
                if (k)
                        return k;
                k = trail_rule_record(rr, err);
                _cleanup_pgresult_ PGresult *r = NULL;
                if (k == 0)
                        k = pg_exec(rr->pg, &r, err,
                                    "SELECT sealed_seq, encode(sealed_hash, 'hex') FROM retention.finish_rule_run($1::bigint, $2,"
                                    " $3, $4, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint)",
                                    11, p);
                if (k == 0)
                        k = pg_exec0(rr->pg, NULL, err, "COMMIT");
                if (k == 0) {
                        rr->res.chain_seq = int_at(r, 0, 0);
                        free(rr->res.chain_hash);
                        rr->res.chain_hash = xstrdup(PQgetvalue(r, 0, 1));
                        return 0;
                }
                rollback_quietly(rr->pg);
                if (k != PG_ERR_TRANSIENT && k != PG_ERR_LOCK_TIMEOUT)
                        return k;
        }
        return k;
}

/* Can the database itself keep a due row from the engine's DELETE/UPDATE on this table: a BEFORE
 * row trigger that may return NULL, row security that applies to this role, or a rule? Then a
 * clean sweep does not prove that nothing is left. True when it cannot tell. */
static bool may_refuse(RuleRun *rr) {
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", rr->plan->table->oid);
        const char *p[] = { oid, rr->rule->action == ACTION_DELETE ? "8" : "16" };
        _cleanup_free_ char *v = NULL;
        PgError e = {};
        int k = pg_value(rr->pg, &v, &e,
                         "SELECT coalesce(bool_or(c.relhasrules OR row_security_active(c.oid) OR EXISTS (SELECT 1 FROM pg_trigger tg"
                         " WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'"
                         " AND tg.tgtype::int & 3 = 3 AND tg.tgtype::int & $2::int <> 0)), true)"
                         " FROM pg_class c WHERE c.oid = $1::oid"
                         " OR c.oid IN (SELECT pt.relid FROM pg_partition_tree($1::oid) pt)",
                         2, p);
        pg_error_done(&e);
        return k != 0 || !streq_ptr(v, "f");
}

/* Why the due rows the tally still finds (unheld, unreferenced) were left, each reason only when
 * it is what happened: a rule run that did not run to its end tried nothing on them; of one that
 * did, those another session's transaction holds now were locked, and the others the database
 * did not let the engine change (or they changed during the run). */
static void classify_skipped(RuleRun *rr) {
        RuleResult *res = &rr->res;
        res->skipped_locked = res->skipped_refused = res->skipped_unfinished = 0;
        if (rr->o->dry_run || res->actionable <= 0)
                return;
        if (res->outcome != RULE_SUCCESS) {
                res->skipped_unfinished = res->actionable;
                return;
        }
        int64_t locked = 0;
        if (rr->plan && !rr->fatal_connection && pg_connection_ok(rr->pg)) {
                _cleanup_pgresult_ PGresult *r = NULL;
                PgError e = {};
                if (exec_stmt(rr, &rr->plan->skipped_locked, &r, &e, NULL, NULL, 0) == 0)
                        locked = int_at(r, 0, 0);
                pg_error_done(&e);
        }
        if (locked > res->actionable)
                locked = res->actionable;
        res->skipped_locked = locked;
        res->skipped_refused = res->actionable - locked;
}

int rule_run_finish(RuleRun *rr, bool interrupted, RuleResult *out) {
        PgError err = {};
        int k = 0;

        restore_lock_timeout(rr);
        gentle_wal(rr, false);
        if (rr->prepared) {
                pg_deallocate(rr->pg, FAST_PATH_STATEMENT);
                pg_deallocate(rr->pg, FAST_PATH_BOUND);
                rr->prepared = false;
        }
        if (rr->probe_prepared) {
                pg_deallocate(rr->pg, UNTRUSTED_PROBE);
                rr->probe_prepared = false;
        }

        if (interrupted && rr->res.outcome == RULE_RUNNING)
                rr->res.outcome = RULE_INTERRUPTED;
        if (rr->res.outcome == RULE_RUNNING)
                rr->res.outcome = RULE_SUCCESS;

        /* Count what is left, unless the plan never got that far or the connection is gone. */
        /* After a clean sweep to the cutoff of a rule nothing can keep, every due row is gone:
         * counting them again would only walk the index entries the run just made dead. */
        bool nothing_left = rr->plan && rr->plan->nothing_keeps && rr->swept_cleanly && rr->res.outcome == RULE_SUCCESS &&
                            rr->phase == PHASE_DONE && !may_refuse(rr);
        if (!rr->o->dry_run && rr->plan && rr->slot_values && !nothing_left && !rr->held_tallied && !rr->fatal_connection &&
            pg_connection_ok(rr->pg)) {
                k = run_tally(rr, &err);
                if (k) {
                        rr->fatal_connection = k == PG_ERR_CONNECTION;
                        if (rr->res.outcome == RULE_SUCCESS)
                                rule_run_fail(rr, RULE_FAILED, &err);
                        pg_error_done(&err);
                }
        }
        /* Rows the database refused for a reference the tally cannot see (below a cascade) are
         * still due and unheld in the tally: report them as kept by a foreign key, not as locked. */
        if (rr->fk_refused > 0 && rr->res.actionable > 0) {
                int64_t n = rr->fk_refused < rr->res.actionable ? rr->fk_refused : rr->res.actionable;
                rr->res.actionable -= n;
                rr->res.fk_blocked += n;
                rr->res.fks = xreallocarray(rr->res.fks, rr->res.n_fks + 1, sizeof(NamedCount));
                rr->res.fks[rr->res.n_fks++] = (NamedCount) {
                        xstrdup(rr->fk_refused_table ? rr->fk_refused_table : "a table further down a cascade"), n
                };
        }
        drop_hash_key(rr);
        classify_skipped(rr);
        if (!rr->o->dry_run && rr->res.rule_run_id >= 0 && !rr->fatal_connection && pg_connection_ok(rr->pg)) {
                k = trail_rule_end(rr, &err);
                if (k) {
                        rr->fatal_connection = k == PG_ERR_CONNECTION;
                        if (rr->res.outcome == RULE_SUCCESS)
                                rule_run_fail(rr, RULE_FAILED, &err);
                }
                pg_error_done(&err);
        }
        rr->res.duration_usec = now_usec() - rr->started;
        *out = rr->res;
        rr->res = (RuleResult) {};
        return rr->fatal_connection ? PG_ERR_CONNECTION : 0;
}

void rule_run_free(RuleRun *rr) {
        if (!rr)
                return;
        rule_result_done(&rr->res);
        plan_free(rr->plan);
        for (size_t i = 0; i < rr->n_slots; i++)
                free(rr->slot_values[i]);
        free(rr->slot_values);
        free(rr->last_key);
        free(rr->probe_oids);
        free(rr->probe_seen);
        free(rr->fk_refused_table);
        free(rr->cascade_oids);
        free(rr->cascade_names);
        free(rr);
}

/* The pause between two batches of `run` (see pace_after_batch()). A signal ends it early:
 * SIGINT and SIGTERM are installed without SA_RESTART, and the next step sees the stop. */
static void pace_wait(uint64_t usec, volatile sig_atomic_t *stop) {
        if (usec == 0 || (stop && *stop))
                return;
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000u), .tv_nsec = (long) (usec % 1000000u) * 1000 };
        (void) clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static bool rule_selected(const EnforceOptions *o, const Rule *r) {
        if (!o->only_rules || o->n_only_rules == 0)
                return true;
        for (size_t i = 0; i < o->n_only_rules; i++)
                if (streq(o->only_rules[i], r->name))
                        return true;
        return false;
}

int enforce_run(Pg *pg, const Policy *p, const EnforceOptions *o, RunResult **ret, PgError *err) {
        _cleanup_(run_result_freep) RunResult *res = xcalloc(1, sizeof(RunResult));
        _cleanup_(cat_cache_done) CatCache cache = {};
        uint64_t t0 = now_usec();
        bool locked = false;
        int k;

        res->run_id = -1;
        k = trail_check_schema(pg, err);
        if (k)
                return k;

        if (o->dry_run) {
                k = pg_exec0(pg, NULL, err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
                if (k)
                        return k;
        } else {
                /* Every rule this run wants, before anything starts: all or none. */
                for (size_t i = 0; i < p->n_rules; i++) {
                        if (!rule_selected(o, &p->rules[i]))
                                continue;
                        k = rule_lock(pg, p->rules[i].name, err);
                        if (k) {
                                for (size_t j = 0; j < i; j++)
                                        if (rule_selected(o, &p->rules[j]) && pg_connection_ok(pg))
                                                rule_unlock(pg, p->rules[j].name);
                                return k;
                        }
                }
                locked = true;
                k = trail_run_begin(pg, o->mode ? o->mode : "run", &res->run_id, err);
                if (k)
                        goto out;
                EventFields ev = EVENT_FIELDS_INIT;
                ev.run_id = res->run_id;
                event_emit(EVENT_RUN_STARTED, event_priority(EVENT_RUN_STARTED), &ev, "run %" PRId64 " started (%s)",
                           res->run_id, o->mode ? o->mode : "run");
        }

        k = enforce_load_catalog(pg, p, &cache, err);
        if (k)
                goto out;

        res->rules = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(RuleResult));
        int failed = 0;
        bool lost = false;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *rule = &p->rules[i];
                if (!rule_selected(o, rule))
                        continue;
                RuleRun *rr = NULL;
                if (o->dry_run) {
                        /* One failing rule must not abort the audit's transaction for the others. */
                        PgError ig = {};
                        (void) pg_exec0(pg, NULL, &ig, "SAVEPOINT retentiond_rule");
                        pg_error_done(&ig);
                }
                rule_run_start(pg, p, rule, &cache, o, res->run_id, &rr);
                while (!rule_run_done(rr)) {
                        (void) rule_run_step(rr);
                        pace_wait(rule_run_pause_usec(rr), o->stop);
                }
                bool stop = o->stop && *o->stop;
                k = rule_run_finish(rr, stop, &res->rules[res->n_rules]);
                rule_run_free(rr);
                RuleResult *rr_res = &res->rules[res->n_rules++];
                if (o->dry_run && k != PG_ERR_CONNECTION) {
                        PgError ig = {};
                        (void) pg_exec0(pg, NULL, &ig,
                                        rr_res->outcome == RULE_FAILED || rr_res->outcome == RULE_SKIPPED
                                                ? "ROLLBACK TO SAVEPOINT retentiond_rule"
                                                : "RELEASE SAVEPOINT retentiond_rule");
                        pg_error_done(&ig);
                }
                if (rr_res->outcome != RULE_SUCCESS)
                        failed++;
                if (k == PG_ERR_CONNECTION) {
                        lost = true;
                        break;
                }
                if (stop) {
                        res->interrupted = true;
                        break;
                }
        }

        if (o->dry_run) {
                PgError ig = {};
                (void) pg_exec0(pg, NULL, &ig, "COMMIT");
                pg_error_done(&ig);
        } else if (!lost) {
                const char *outcome = res->interrupted ? "interrupted" : failed == 0 ? "success"
                                                                     : failed == (int) res->n_rules ? "failed"
                                                                                                     : "partial";
                k = trail_run_end(pg, res->run_id, outcome, (int) res->n_rules, failed, err);
                if (k)
                        goto out;
        }
        if (lost) {
                const RuleResult *last = &res->rules[res->n_rules - 1];
                pg_error_set(err, last->error.sqlstate, last->error.primary,
                             "Check that the database server is running; the next run continues where this one stopped.",
                             "lost the connection to the database during rule \"%s\"", last->rule->name);
                k = PG_ERR_CONNECTION;
                goto out;
        }
        k = 0;
out:
        for (size_t i = 0; locked && i < p->n_rules && pg_connection_ok(pg); i++)
                if (rule_selected(o, &p->rules[i]))
                        rule_unlock(pg, p->rules[i].name);
        res->duration_usec = now_usec() - t0;
        if (k == 0 || k == PG_ERR_CONNECTION)
                *ret = TAKE_PTR(res);
        return k;
}
