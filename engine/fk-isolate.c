/* fk-isolate.c — a batch a foreign key refused, redone one row at a time, each in a savepoint:
 * every row that can go goes, the others are counted as kept by a reference.
 * Must never commit a row's deletion without its audit-trail count in the same transaction. */
#include "rule-run-private.h"

#include <stdlib.h>

#include "trail.h"
#include "util.h"

/* After an isolation's COMMIT: where the next batch starts (seen: the rows of `rows` that were
 * judged, limit: how many were asked for), and whether the rows refused hold the rule up. */
static void isolate_advance(RuleRun *rr, const PGresult *rows, int n, int seen, int64_t refused, int64_t limit,
                            int64_t deleted) {
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
}

/* A batch was refused by a foreign key (a RESTRICT reference below a cascade, or a row that
 * became referenced after it was selected): redo it one row at a time, each in a savepoint,
 * keep every row that can go, and count the ones that cannot. */
int fk_isolate(RuleRun *rr, PgError *err) {
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
        k = rule_run_exec(rr, &rr->plan->row_by_row_select, &rows, err, NULL, NULL, 0);
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
                k = rule_run_exec(rr, &rr->plan->row_by_row_delete, &d, &e, PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 1), 0);
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
                /* with `delete_with:` the statement is a SELECT of its count */
                deleted += PQresultStatus(d) == PGRES_TUPLES_OK && PQntuples(d) == 1 ? pg_int64_at(d, 0, 0)
                                                                                     : strtoll(PQcmdTuples(d), NULL, 10);
        }
        k = trail_rule_count(rr->pg, rr->res.rule_run_id, deleted, 0, 1, 0, NULL, err);
        if (k == 0)
                k = cascade_record(rr, &before, deleted, &delta, err);
        if (k == 0)
                k = untrusted_batch_check(rr, err);
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
        isolate_advance(rr, rows, n, seen, refused, limit, deleted);
        k = 0;
        goto done;

rollback:
        pg_error_done(&e);
        pg_rollback_quietly(rr->pg);
done:
        cascade_mark_done(&before);
        cascade_mark_done(&pre);
        cascade_mark_done(&post);
        return k;
}
