/* receipt.c — the statements of a deletion receipt (receipt.h) on retention.runs, rule_runs and
 * their per-hold, per-reference and cascade counts, and the chain's verification up to the run.
 * Reads only; counts, names from the policy, times and digests: never personal data, never
 * printed here. */
#include "receipt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static const char rule_runs_sql[] =
        "SELECT id, rule, clause, table_name, action, cutoff::text, started_at::text, finished_at::text,"
        " rows_deleted, rows_anonymised, rows_held, rows_skipped, rows_skipped_locked, rows_skipped_fk,"
        " rows_overdue, partitions_dropped, batches, outcome, sqlstate, error,"
        " seq, encode(prev_hash, 'hex'), encode(hash, 'hex'), sealed_at::text,"
        " rows_skipped_refused, rows_skipped_unfinished, digest_format"
        " FROM retention.rule_runs WHERE run_id = $1::bigint ORDER BY id";

/* A pruned run: the checkpoint that took it, if any. */
static int read_pruned(Pg *pg, const char *const *p, Receipt *ret, PgError *err) {
        _cleanup_pgresult_ PGresult *cp = NULL;
        int k = pg_exec(pg, &cp, err,
                        "SELECT id, made_at::text, upto_seq FROM retention.checkpoints WHERE $1::bigint = ANY (run_ids)"
                        " ORDER BY id LIMIT 1",
                        1, p);
        if (k)
                return k;
        if (PQntuples(cp) != 1) {
                ret->found = RECEIPT_NO_SUCH_RUN;
                return 0;
        }
        ret->found = RECEIPT_PRUNED;
        ret->checkpoint_id = xstrdup(PQgetvalue(cp, 0, 0));
        ret->checkpoint_made_at = xstrdup(PQgetvalue(cp, 0, 1));
        ret->checkpoint_upto_seq = xstrdup(PQgetvalue(cp, 0, 2));
        return 0;
}

int receipt_read(Pg *pg, int64_t run_id, Receipt *ret, PgError *err) {
        *ret = (Receipt) { .run_id = run_id };
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        const char *p[] = { id };
        int k = pg_exec(pg, &ret->run, err,
                        "SELECT host, version, mode, started_at::text, finished_at::text, outcome, rules_total, rules_failed"
                        " FROM retention.runs WHERE id = $1::bigint",
                        1, p);
        if (k)
                return k;
        if (PQntuples(ret->run) != 1)
                return read_pruned(pg, p, ret, err);
        ret->found = RECEIPT_FOUND;
        k = pg_exec(pg, &ret->rule_runs, err, rule_runs_sql, 1, p);
        if (!k)
                k = pg_exec(pg, &ret->holds, err,
                            "SELECT h.rule_run_id, h.hold, h.rows FROM retention.rule_run_holds h"
                            " JOIN retention.rule_runs r ON r.id = h.rule_run_id WHERE r.run_id = $1::bigint"
                            " ORDER BY h.rule_run_id, h.hold COLLATE \"C\"",
                            1, p);
        if (!k)
                k = pg_exec(pg, &ret->fks, err,
                            "SELECT f.rule_run_id, f.referencing_table, f.rows FROM retention.rule_run_fk f"
                            " JOIN retention.rule_runs r ON r.id = f.rule_run_id WHERE r.run_id = $1::bigint"
                            " ORDER BY f.rule_run_id, f.referencing_table COLLATE \"C\"",
                            1, p);
        if (!k)
                k = pg_exec(pg, &ret->cascades, err,
                            "SELECT c.rule_run_id, c.table_name, c.rows_deleted, c.rows_nulled FROM retention.rule_run_cascades c"
                            " JOIN retention.rule_runs r ON r.id = c.rule_run_id WHERE r.run_id = $1::bigint"
                            " ORDER BY c.rule_run_id, c.table_name COLLATE \"C\"",
                            1, p);
        if (k)
                return k;
        for (int i = 0; i < PQntuples(ret->rule_runs); i++)
                if (!PQgetisnull(ret->rule_runs, i, RR_SEQ)) {
                        int64_t seq = strtoll(PQgetvalue(ret->rule_runs, i, RR_SEQ), NULL, 10);
                        if (seq > ret->up_to)
                                ret->up_to = seq;
                }
        ret->checked = ret->up_to > 0;
        return ret->checked ? chain_verify(pg, ret->up_to, &ret->chain, err) : 0;
}

void receipt_done(Receipt *r) {
        PQclear(r->run);
        PQclear(r->rule_runs);
        PQclear(r->holds);
        PQclear(r->fks);
        PQclear(r->cascades);
        chain_status_done(&r->chain);
        free(r->checkpoint_id);
        free(r->checkpoint_made_at);
        free(r->checkpoint_upto_seq);
        *r = (Receipt) {};
}

bool receipt_chain_ok(const Receipt *r) {
        return r->checked && r->chain.kind == CHAIN_OK;
}

bool receipt_seq_verified(const Receipt *r, int64_t seq) {
        return r->chain.kind == CHAIN_OK ? seq <= r->chain.last_seq : seq < r->chain.break_seq;
}
