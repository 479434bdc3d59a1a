/* trail.c — the audit trail's writes during a run: the schema check, the run's row, each rule
 * run's row, its counters (in the batch's own transaction) and its seal into the hash chain.
 * Must never record row contents, nor claim a change that did not commit with it. */
#include "trail.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "plan.h"
#include "util.h"

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
        pg->schema_checked = true;
        return 0;
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

int trail_rule_begin(Pg *pg, int64_t run_id, const Rule *rule, const char *started, const char *cutoff, int64_t *ret,
                     PgError *err) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        _cleanup_free_ char *tn = qualified_name_display(&rule->table);
        const char *p[] = { id, rule->name, rule->clause, tn, action_to_string(rule->action), started, cutoff };
        _cleanup_free_ char *v = NULL;
        int k = pg_value(pg, &v, err,
                         "SELECT retention.begin_rule_run($1::bigint, $2, $3, $4, $5, coalesce($6::timestamptz, now()),"
                         " $7::timestamptz)",
                         7, p);
        if (k)
                return k;
        *ret = strtoll(v, NULL, 10);
        return 0;
}

#define COUNTS_STATEMENT "retentiond_counts"
#define RECORD_STATEMENT "retentiond_record"

void trail_count_stmt(Pg *pg, TrailCount *c, int64_t rule_run_id, int64_t deleted, int64_t anonymised,
                      int64_t batches, int64_t partitions, PgPipeStmt *st) {
        *c = (TrailCount) { .rule_run_id = rule_run_id };
        snprintf(c->v[0], sizeof(c->v[0]), "%" PRId64, rule_run_id);
        snprintf(c->v[1], sizeof(c->v[1]), "%" PRId64, deleted);
        snprintf(c->v[2], sizeof(c->v[2]), "%" PRId64, anonymised);
        snprintf(c->v[3], sizeof(c->v[3]), "%" PRId64, batches);
        snprintf(c->v[4], sizeof(c->v[4]), "%" PRId64, partitions);
        for (size_t i = 0; i < 5; i++)
                c->params[i] = c->v[i];
        /* Prepared once a session: every batch of every rule runs it (parsing it each time was
         * a tenth of a small batch's overhead). */
        *st = (PgPipeStmt) { .name = COUNTS_STATEMENT,
                             .sql = "SELECT retention.add_rule_run_counts($1::bigint, $2::bigint, $3::bigint, $4::bigint,"
                                    " $5::bigint), " NEXT_XID_SQL,
                             .prepared = &pg->counts_prepared, .nparams = 5, .params = c->params, .result = &c->result };
}

int trail_count_result(TrailCount *c, uint64_t *next_xid, PgError *err) {
        const PGresult *r = c->result;
        if (!r || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
                pg_error_set(err, NULL, NULL, NULL, "the audit trail's rule run %" PRId64 " does not exist", c->rule_run_id);
                return PG_ERR_OTHER;
        }
        if (next_xid)
                *next_xid = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        return 0;
}

void trail_count_done(TrailCount *c) {
        if (c->result)
                PQclear(c->result);
        c->result = NULL;
}

int trail_rule_count(Pg *pg, int64_t rule_run_id, int64_t deleted, int64_t anonymised, int64_t batches,
                     int64_t partitions, uint64_t *next_xid, PgError *err) {
        TrailCount c;
        PgPipeStmt st;
        trail_count_stmt(pg, &c, rule_run_id, deleted, anonymised, batches, partitions, &st);
        int k = pg_exec_cached(pg, st.prepared, st.name, st.sql, st.nparams, st.params, st.result, err);
        if (k == 0)
                k = trail_count_result(&c, next_xid, err);
        trail_count_done(&c);
        return k;
}

/* The rule run's per-hold and per-table counts (retention.add_rule_run_hold/_fk), recorded while
 * it is still running: retention.finish_rule_run() then finishes and seals it. */
static int trail_rule_record(Pg *pg, const RuleResult *res, PgError *err) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, res->rule_run_id);
        int k;
        for (size_t i = 0; i < res->n_holds; i++) {
                if (res->holds[i].rows == 0)
                        continue;
                char rows[32];
                snprintf(rows, sizeof(rows), "%" PRId64, res->holds[i].rows);
                const char *hp[] = { id, res->holds[i].name, rows };
                k = pg_exec(pg, NULL, err, "SELECT retention.add_rule_run_hold($1::bigint, $2, $3::bigint)", 3, hp);
                if (k)
                        return k;
        }
        for (size_t i = 0; i < res->n_fks; i++) {
                if (res->fks[i].rows == 0)
                        continue;
                char rows[32];
                snprintf(rows, sizeof(rows), "%" PRId64, res->fks[i].rows);
                const char *fp[] = { id, res->fks[i].name, rows };
                k = pg_exec(pg, NULL, err, "SELECT retention.add_rule_run_fk($1::bigint, $2, $3::bigint)", 3, fp);
                if (k)
                        return k;
        }
        return 0;
}

/* Whether the rule run has a per-hold or per-table count to record (trail_rule_record()). */
static bool has_counts_by_name(const RuleResult *res) {
        for (size_t i = 0; i < res->n_holds; i++)
                if (res->holds[i].rows != 0)
                        return true;
        for (size_t i = 0; i < res->n_fks; i++)
                if (res->fks[i].rows != 0)
                        return true;
        return false;
}

/* A rule run that never began (no row was due, or it ended before its cutoffs) and has no count
 * by hold or table: begun, finished and sealed by one statement, which is its own transaction.
 * fin: finish_rule_run()'s parameters after its id. */
static int trail_rule_whole(Pg *pg, int64_t run_id, const char *started, RuleResult *res, const char *const *fin,
                            PgError *err) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        _cleanup_free_ char *tn = qualified_name_display(&res->rule->table);
        const char *p[17] = { id, res->rule->name, res->rule->clause, tn, action_to_string(res->rule->action), started,
                              res->cutoff };
        for (size_t i = 0; i < 10; i++)
                p[7 + i] = fin[i];
        _cleanup_pgresult_ PGresult *r = NULL;
        /* retention.record_rule_run() (schema version 10): what begin_rule_run() and then
         * finish_rule_run() would store, in one INSERT and one UPDATE. Prepared once a session:
         * most rule runs of a daemon are recorded so. */
        int k = pg_exec_cached(pg, &pg->record_prepared, RECORD_STATEMENT,
                               "SELECT rule_run, sealed_seq, encode(sealed_hash, 'hex')"
                               " FROM retention.record_rule_run($1::bigint, $2, $3, $4, $5, coalesce($6::timestamptz, now()),"
                               " $7::timestamptz, $8, $9, $10, $11::bigint, $12::bigint, $13::bigint, $14::bigint,"
                               " $15::bigint, $16::bigint, $17::bigint)",
                               17, p, &r, err);
        if (k)
                return k;
        if (PQntuples(r) != 1) {
                pg_error_set(err, NULL, NULL, NULL, "the audit trail did not record the rule run of rule \"%s\"",
                             res->rule->name);
                return PG_ERR_OTHER;
        }
        res->rule_run_id = pg_int64_at(r, 0, 0);
        res->chain_seq = pg_int64_at(r, 0, 1);
        free(res->chain_hash);
        res->chain_hash = xstrdup(PQgetvalue(r, 0, 2));
        return 0;
}

/* The rule run's per-hold and per-table counts, its final row and its seal into the hash chain
 * (retention.finish_rule_run, which seals with retention.seal_rule_run), in one transaction: a
 * finished rule run is always sealed, and a sealed one is always complete. A seal waits for a
 * concurrent one (the chain head's row lock); a transient failure is retried a few times. */
int trail_rule_end(Pg *pg, int64_t run_id, const char *started, RuleResult *res, PgError *err) {
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
                if (PQtransactionStatus(pg->conn) == PQTRANS_INERROR)
                        pg_rollback_quietly(pg);
                if (res->rule_run_id < 0 && !has_counts_by_name(res)) {
                        k = trail_rule_whole(pg, run_id, started, res, p + 1, err);
                        if (k == 0 || (k != PG_ERR_TRANSIENT && k != PG_ERR_LOCK_TIMEOUT))
                                return k;
                        continue;
                }
                k = pg_exec0(pg, NULL, err, "BEGIN");
                if (k)
                        return k;
                /* A rule run that never began (no row was due, or it ended before its cutoffs):
                 * its row is begun here, in the transaction that finishes it. */
                bool begun = res->rule_run_id < 0;
                if (begun)
                        k = trail_rule_begin(pg, run_id, res->rule, started, res->cutoff, &res->rule_run_id, err);
                snprintf(id, sizeof(id), "%" PRId64, res->rule_run_id); /* p[0] */
                if (k == 0)
                        k = trail_rule_record(pg, res, err);
                _cleanup_pgresult_ PGresult *r = NULL;
                if (k == 0)
                        k = pg_exec(pg, &r, err,
                                    "SELECT sealed_seq, encode(sealed_hash, 'hex') FROM retention.finish_rule_run($1::bigint, $2,"
                                    " $3, $4, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint)",
                                    11, p);
                if (k == 0)
                        k = pg_exec0(pg, NULL, err, "COMMIT");
                if (k == 0) {
                        res->chain_seq = pg_int64_at(r, 0, 0);
                        free(res->chain_hash);
                        res->chain_hash = xstrdup(PQgetvalue(r, 0, 1));
                        return 0;
                }
                pg_rollback_quietly(pg);
                if (begun)
                        res->rule_run_id = -1; /* rolled back with the rest */
                if (k != PG_ERR_TRANSIENT && k != PG_ERR_LOCK_TIMEOUT)
                        return k;
        }
        return k;
}
