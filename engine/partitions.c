/* partitions.c — partitions whose whole range is expired go as a whole: DETACH ... CONCURRENTLY,
 * a check under the partition's lock, one DROP transaction; and the detaches an earlier run left
 * unfinished. Must never drop a partition that holds a held or unexpired row, nor leave a detached
 * table behind that no run would find. */
#include "rule-run-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "event.h"
#include "trail.h"
#include "util.h"

/* The COMMENT on a partition this engine detaches to drop; then the parent's oid, the rule run,
 * and the bound it had. */
#define DETACHED_COMMENT_PREFIX "retentiond: detached from relation "

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
        k = rule_run_exec(rr, &check, &r, err, NULL, NULL, 0);
        if (k)
                goto rollback;
        int64_t rows = pg_int64_at(r, 0, 0), kept = pg_int64_at(r, 0, 1), young = pg_int64_at(r, 0, 2);
        /* More rows than the breaker's limit has left: they go in batches, which stop at it. */
        if (kept > 0 || young > 0 || rows > breaker_budget(rr)) {
                pg_rollback_quietly(rr->pg);
                k = OUTCOME_REFUSED;
                goto out;
        }
        k = pg_exec0(rr->pg, NULL, err, drop);
        if (k)
                goto rollback;
        k = trail_rule_count(rr->pg, rr->res.rule_run_id, rows, 0, 0, 1, NULL, err);
        if (k)
                goto rollback;
        k = pg_exec0(rr->pg, NULL, err, "COMMIT");
        if (k)
                goto out;
        *dropped = rows;
        goto out;
rollback:
        pg_rollback_quietly(rr->pg);
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
                k = rule_run_exec(rr, &check, &r, err, NULL, NULL, 0);
                plan_statement_done(&check);
                if (k)
                        break;
                if (pg_int64_at(r, 0, 1) > 0 || pg_int64_at(r, 0, 2) > 0 || total + pg_int64_at(r, 0, 0) > breaker_budget(rr)) {
                        refused[i] = true;
                        continue;
                }
                rows[i] = pg_int64_at(r, 0, 0);
                _cleanup_free_ char *drop = xasprintf("DROP TABLE %s", d[i].quoted);
                k = pg_exec0(rr->pg, NULL, err, drop);
                total += rows[i];
                dropped++;
        }
        if (k == 0 && dropped > 0)
                k = trail_rule_count(rr->pg, rr->res.rule_run_id, total, 0, 0, dropped, NULL, err);
        if (k == 0)
                k = pg_exec0(rr->pg, NULL, err, "COMMIT");
        else
                pg_rollback_quietly(rr->pg);
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

/* The partitions this rule run detached so far, to be dropped together by settle_detached(). */
typedef struct PartitionScan {
        const char *parent; /* the rule's table, quoted */
        Detached *detached;
        size_t n_detached;
        int64_t detached_rows; /* the statistics' rows of the partitions detached so far */
} PartitionScan;

/* CONCURRENTLY is impossible (a default partition exists, or we are in a transaction): detach
 * and drop atomically under lock_timeout instead. 0 (dropped, or left attached: its rows go row
 * by row), or the error that stops the rule. */
static int detach_and_drop(RuleRun *rr, CatCache *cache, const char *parent, const QualifiedName *part, const char *pq,
                           const char *pd, PgError *err) {
        _cleanup_free_ char *detach = xasprintf("ALTER TABLE %s DETACH PARTITION %s", parent, pq);
        int64_t dropped = 0;
        int k = drop_partition_checked(rr, cache, part, detach, &dropped, err);
        if (k != 0 && k != PG_ERR_CONNECTION)
                uncomment_partition(rr, pq); /* rolled back: still attached */
        if (k == OUTCOME_REFUSED)
                return 0;
        if (k == PG_ERR_LOCK_TIMEOUT || k == PG_ERR_PERMISSION) {
                pg_error_done(err);
                return 0; /* busy or not allowed: still attached, its rows go row by row */
        }
        if (k)
                return k;
        partition_dropped(rr, pd, dropped);
        return 0;
}

/* First a look without detaching, when anything could keep a row (a hold, a longer rule of the
 * table, a cascade into held rows): a partition with a kept row is never taken from the
 * application, not even for a moment. Otherwise every row of the range is expired by its bound;
 * the check under the lock still proves it. *keeps: held or young rows (row by row). */
static int partition_keeps_rows(RuleRun *rr, CatCache *cache, const QualifiedName *part, bool *keeps, PgError *err) {
        *keeps = false;
        if (rr->plan->nothing_keeps)
                return 0;
        PlanStatement check = {};
        plan_partition_check(rr->plan, rr->policy, cache, part, &check);
        _cleanup_pgresult_ PGresult *c = NULL;
        int k = rule_run_exec(rr, &check, &c, err, NULL, NULL, 0);
        plan_statement_done(&check);
        if (k)
                return k;
        *keeps = pg_int64_at(c, 0, 1) > 0 || pg_int64_at(c, 0, 2) > 0;
        return 0;
}

/* Row i of the partitions' list (schema, name, bound, estimated rows): left attached (its rows go
 * by batches), detached for settle_detached() to drop, or detached and dropped at once. Returns 0
 * to go on, or the error that ends the loop (err); *last: end the loop without an error. */
static int take_partition(RuleRun *rr, CatCache *cache, PartitionScan *s, const PGresult *parts, int i, bool *last,
                          PgError *err) {
        QualifiedName part = { .schema = PQgetvalue(parts, i, 0), .name = PQgetvalue(parts, i, 1) };
        _cleanup_free_ char *pq = qualified_name_quote(&part);
        _cleanup_free_ char *pd = qualified_name_display(&part);
        const char *bound = PQgetvalue(parts, i, 2);
        /* Its rows, by the statistics, must fit in what the breaker's limit has left; the count
         * under the lock decides, but a partition that will not fit is not taken from the
         * application for nothing. */
        int64_t est = strtoll(PQgetvalue(parts, i, 3), NULL, 10);
        if (breaker_budget(rr) != INT64_MAX && s->detached_rows + est > breaker_budget(rr))
                return 0;
        bool keeps = false;
        int k = partition_keeps_rows(rr, cache, &part, &keeps, err);
        if (k || keeps)
                return k;
        /* A partition the role does not own, or that another table references, stays: its rows
         * go by batches. */
        bool own_part = false;
        k = may_drop(rr, pq, &own_part, err);
        if (k || !own_part)
                return k;
        /* The COMMENT says whose partition it was and with which bound, so that a run killed
         * before the DROP leaves the next run all it needs to finish it
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
                return k;
        }
        pg_error_done(&ce);
        if (k)
                return 0; /* busy or refused: still attached, its rows go row by row */

        _cleanup_free_ char *detach = xasprintf("ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY", s->parent, pq);
        PgError de = {};
        k = pg_exec0(rr->pg, NULL, &de, detach);
        if (k == PG_ERR_PERMISSION) {
                /* Ownership changed since the look above: nothing was detached. Every partition
                 * left goes by batches, as for a role that owns nothing. */
                log_warning("rule %s: may not detach partition %s (%s); its rows are deleted row by row", rr->rule->name,
                            pd, de.primary ? de.primary : "permission denied");
                pg_error_done(&de);
                uncomment_partition(rr, pq);
                *last = true;
                return 0;
        }
        if (k && k != PG_ERR_CONNECTION && detach_pending(rr, pq)) {
                /* The first transaction committed, the second did not finish. */
                pg_error_done(&de);
                k = 0;
                if (finalize_detach(rr, s->parent, pq, pd) != 0)
                        return 0;
        }
        if (k == 0) {
                /* Dropped by settle_detached(), with the others, in one transaction. */
                s->detached = xreallocarray(s->detached, s->n_detached + 1, sizeof(Detached));
                s->detached[s->n_detached++] = (Detached) { .name = part, .quoted = TAKE_PTR(pq),
                                                            .display = TAKE_PTR(pd), .bound = xstrdup(bound) };
                s->detached_rows += est;
                return 0;
        }
        if (k == PG_ERR_CONNECTION) {
                *err = de;
                return k;
        }
        pg_error_done(&de);
        return detach_and_drop(rr, cache, s->parent, &part, pq, pd, err);
}

int partitions_drop_expired(RuleRun *rr, CatCache *cache, PgError *err) {
        _cleanup_pgresult_ PGresult *parts = NULL;
        _cleanup_free_ char *parent = qualified_name_quote(&rr->plan->table->name);
        PartitionScan s = { .parent = parent };
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
        k = rule_run_exec(rr, &rr->plan->partitions, &parts, err, NULL, NULL, 0);
        if (k)
                return k;
        /* From the first detach on, every way out of this loop goes through settle_detached(). */
        bool last = false;
        for (int i = 0; i < PQntuples(parts) && !last && !enforce_stop_requested(rr->o); i++) {
                k = take_partition(rr, cache, &s, parts, i, &last, err);
                if (k)
                        break;
        }
        /* k: the loop's error, if it ended on one (err holds it). */
        PgError se = {};
        int ks = settle_detached(rr, cache, parent, s.detached, s.n_detached, &se);
        if (k == 0 && ks) {
                k = ks;
                *err = se;
        } else
                pg_error_done(&se);
        detached_done(s.detached, s.n_detached);
        return k;
}
