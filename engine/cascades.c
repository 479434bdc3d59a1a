/* cascades.c — the rows a rule run's deletions removed or set to NULL in referencing tables
 * (ON DELETE CASCADE / SET NULL / SET DEFAULT), and those its `delete_with:` deleted with them,
 * measured from the transaction's statistics and recorded with the batch. Must never count the rule's own table's rows as a cascade. */
#include "rule-run-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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

/* The tables of the rule's `delete_with:`: the rows its statements delete there count as the rows
 * cascaded into them (counted the same way, from the transaction's statistics). */
static void with_targets(RuleRun *rr, const CatCache *cache, uint32_t **oids, size_t *n) {
        for (size_t i = 0; i < rr->rule->n_delete_with; i++) {
                const CatTable *w = cat_cache_find_name(cache, &rr->rule->delete_with[i].table);
                bool seen = !w;
                for (size_t j = 0; j < *n && !seen; j++)
                        seen = (*oids)[j] == w->oid;
                if (seen)
                        continue;
                *oids = xreallocarray(*oids, *n + 1, sizeof(uint32_t));
                (*oids)[(*n)++] = w->oid;
                rr->res.cascades = xreallocarray(rr->res.cascades, rr->res.n_cascades + 1, sizeof(CascadeCount));
                rr->res.cascades[rr->res.n_cascades++] = (CascadeCount) { .table = qualified_name_display(&w->name) };
        }
}

void cascade_targets(RuleRun *rr, const CatCache *cache) {
        uint32_t *oids = NULL;
        size_t n = 0;
        rr->cascade_self = -1;
        if (rr->rule->action != ACTION_DELETE)
                return;
        cascade_walk(rr, cache, rr->plan->table, &oids, &n);
        with_targets(rr, cache, &oids, &n);
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

void cascade_mark_done(CascadeMark *m) {
        free(m->deleted);
        free(m->nulled);
        *m = (CascadeMark) {};
}

bool cascade_mark_stmt(RuleRun *rr, PgPipeStmt *st, PGresult **r) {
        if (!rr->cascade_oids)
                return false;
        *st = (PgPipeStmt) { .sql = CASCADE_COUNTERS_SQL " ORDER BY u.i", .nparams = 1,
                             .params = (const char *const *) &rr->cascade_oids, .result = r };
        return true;
}

void cascade_mark_result(RuleRun *rr, CascadeMark *m, const PGresult *r) {
        size_t n = rr->res.n_cascades;
        if (!m->deleted) {
                m->deleted = xcalloc(n ? n : 1, sizeof(int64_t));
                m->nulled = xcalloc(n ? n : 1, sizeof(int64_t));
        }
        for (int i = 0; i < PQntuples(r) && (size_t) i < n; i++) {
                m->deleted[i] = pg_int64_at(r, i, 1);
                m->nulled[i] = pg_int64_at(r, i, 2);
        }
}

/* Reads the counters into *m (in the caller's transaction). No-op without cascade targets. */
int cascade_mark(RuleRun *rr, CascadeMark *m, PgError *err) {
        PgPipeStmt st;
        _cleanup_pgresult_ PGresult *r = NULL;
        if (!cascade_mark_stmt(rr, &st, &r))
                return 0;
        int k = pg_exec(rr->pg, &r, err, st.sql, st.nparams, st.params);
        if (k == 0)
                cascade_mark_result(rr, m, r);
        return k;
}

/* In the batch's transaction, after its statement: what the batch cascaded since *before (less
 * `own` rows of the rule's own table, deleted by the statement itself: not a cascade) goes into
 * retention.rule_run_cascades, and into *delta (allocated) for the caller to add once the
 * transaction commits. No-op without cascade targets. */
bool cascade_record_stmt(RuleRun *rr, const CascadeMark *before, int64_t own, CascadeRecord *cr, PgPipeStmt *st) {
        *cr = (CascadeRecord) {};
        if (!rr->cascade_oids)
                return false;
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
        cr->deleted = strbuf_steal(&bd);
        cr->nulled = strbuf_steal(&bn);
        snprintf(cr->id, sizeof(cr->id), "%" PRId64, rr->res.rule_run_id);
        cr->params[0] = rr->cascade_oids;
        cr->params[1] = cr->id;
        cr->params[2] = rr->cascade_names;
        cr->params[3] = cr->deleted;
        cr->params[4] = cr->nulled;
        *st = (PgPipeStmt) { .sql = "WITH a AS (" CASCADE_COUNTERS_SQL "),"
                                    " x AS (SELECT a.i, ($3::text[])[a.i] AS t, a.d - ($4::bigint[])[a.i] AS d,"
                                    "  a.n - ($5::bigint[])[a.i] AS n FROM a),"
                                    " w AS MATERIALIZED (SELECT retention.add_rule_run_cascades($2::bigint,"
                                    "  array_agg(x.t ORDER BY x.i), array_agg(x.d ORDER BY x.i), array_agg(x.n ORDER BY x.i))"
                                    "  FROM x)"
                                    " SELECT x.i, x.d, x.n, (SELECT count(*) FROM w) FROM x ORDER BY x.i",
                             .nparams = 5, .params = cr->params, .result = &cr->result };
        return true;
}

void cascade_record_result(RuleRun *rr, const CascadeRecord *cr, CascadeMark *delta) {
        size_t n = rr->res.n_cascades;
        const PGresult *r = cr->result;
        delta->deleted = xcalloc(n ? n : 1, sizeof(int64_t));
        delta->nulled = xcalloc(n ? n : 1, sizeof(int64_t));
        for (int i = 0; r && i < PQntuples(r) && (size_t) i < n; i++) {
                delta->deleted[i] = pg_int64_at(r, i, 1);
                delta->nulled[i] = pg_int64_at(r, i, 2);
        }
}

void cascade_record_done(CascadeRecord *cr) {
        free(cr->deleted);
        free(cr->nulled);
        if (cr->result)
                PQclear(cr->result);
        *cr = (CascadeRecord) {};
}

int cascade_record(RuleRun *rr, const CascadeMark *before, int64_t own, CascadeMark *delta, PgError *err) {
        CascadeRecord cr;
        PgPipeStmt st;
        if (!cascade_record_stmt(rr, before, own, &cr, &st))
                return 0;
        int k = pg_exec(rr->pg, st.result, err, st.sql, st.nparams, st.params);
        if (k == 0)
                cascade_record_result(rr, &cr, delta);
        cascade_record_done(&cr);
        return k;
}

/* After the batch's COMMIT: its cascades count in the result. */
void cascade_commit(RuleRun *rr, CascadeMark *delta) {
        for (size_t i = 0; delta->deleted && i < rr->res.n_cascades; i++) {
                rr->res.cascades[i].deleted += delta->deleted[i];
                rr->res.cascades[i].nulled += delta->nulled[i];
                rr->res.cascade_deleted += delta->deleted[i];
                rr->res.cascade_nulled += delta->nulled[i];
        }
        cascade_mark_done(delta);
}
