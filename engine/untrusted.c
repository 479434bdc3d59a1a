/* untrusted.c — code of another role (trigger, rule, row-level security) that a rule would make
 * PostgreSQL run with retentiond's privileges: refused before the rule starts and before each
 * batch commits, unless the rule trusts it. Must never let such code commit a batch unchecked. */
#include "rule-run-private.h"

#include <stdlib.h>

#include "util.h"

/* The tables the rule's code check looks at (plan_untrusted_tables()), as the cache has them. */
static size_t rule_tables(const RuleRun *rr, CatCache *cache, CatTable ***ret) {
        _cleanup_free_ uint32_t *oids = NULL;
        size_t n = plan_untrusted_tables(rr->rule, cache, &oids);
        CatTable **tables = xcalloc(n ? n : 1, sizeof(CatTable *));
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < cache->n_tables; j++)
                        if (cache->tables[j]->oid == oids[i]) {
                                tables[m++] = cache->tables[j];
                                break;
                        }
        *ret = tables;
        return m;
}

/* The rule's tables' untrusted code as the catalog says it now: the lists the cache holds when
 * one cheap query finds that nothing they were read from changed (catalog_untrusted_unchanged()),
 * else read again for these tables. *reread: they were read again. */
static int untrusted_refresh(RuleRun *rr, CatCache *cache, bool *reread, PgError *err) {
        _cleanup_free_ CatTable **tables = NULL;
        size_t m = rule_tables(rr, cache, &tables);
        bool same = false;
        *reread = false;
        int k = catalog_untrusted_unchanged(rr->pg, tables, m, &same, err);
        if (k || same)
                return k;
        *reread = true;
        return catalog_load_untrusted(rr->pg, tables, m, err);
}

static int untrusted_judge(RuleRun *rr, CatCache *cache, bool mid_run, bool *refused, PgError *err);

/* Code of another role that the rule would make PostgreSQL run with this role's privileges: a
 * trigger, a rule or row-level security on its table, a table its deletes cascade into, their
 * partitions, or its holds' evidence (plan_untrusted). The catalog is looked at again for these
 * tables right before the rule, so that one added during the run counts too: the lists the
 * run's catalog read for every table at once stand when nothing they were read from changed
 * (untrusted_refresh()), else they are read again. Unless the rule trusts it
 * (trust_triggers: true), the rule is refused before it changes anything: returns 0 with *refused
 * and *err set (a PgErrorClass if the catalog could not be read). Trusted, it is listed in the
 * rule's result and reported as a warning. mid_run: the check of a batch (untrusted_batch_check()). */
int untrusted_check(RuleRun *rr, CatCache *cache, bool mid_run, bool *refused, PgError *err) {
        *refused = false;
        bool reread;
        int k = untrusted_refresh(rr, cache, &reread, err);
        if (k)
                return k;
        return untrusted_judge(rr, cache, mid_run, refused, err);
}

/* untrusted_check() on the lists as they are in the cache. Before the rule (!mid_run), the list
 * of trusted code in its result is this judgement's alone. */
static int untrusted_judge(RuleRun *rr, CatCache *cache, bool mid_run, bool *refused, PgError *err) {
        *refused = false;
        if (!mid_run) {
                for (size_t i = 0; i < rr->res.n_untrusted; i++)
                        free(rr->res.untrusted[i]);
                free(rr->res.untrusted);
                rr->res.untrusted = NULL;
                rr->res.n_untrusted = 0;
        }
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

/* untrusted_check() on the lists the run read at its start, without looking at the catalog
 * again: for a rule that may turn out to have nothing to change (then no code of another role
 * can run), a refusal is still reported. A rule that goes on to change rows runs
 * untrusted_check() first. */
int untrusted_check_cached(RuleRun *rr, CatCache *cache, bool *refused, PgError *err) {
        return untrusted_judge(rr, cache, false, refused, err);
}

/* Whether each batch must run untrusted_batch_check() before its COMMIT. */
bool untrusted_batch_guarded(const RuleRun *rr) {
        return !rr->rule->trust_triggers && rr->cache;
}

/* In the batch's transaction, after its statements and right before its COMMIT: the check of
 * untrusted_check() again, so that a trigger, rule or row-level security of another role that
 * appeared while the rule ran never commits anything done with this role's privileges. Returns
 * PG_ERR_OTHER with the refusal in *err: the caller rolls the batch back (with whatever that code
 * did in it) and the rule fails (rule_run_step_failed()) with the error of a refusal at its start.
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
int untrusted_batch_check(RuleRun *rr, PgError *err) {
        UntrustedBatch ub;
        PgPipeStmt st;
        int k = 0;
        if (untrusted_batch_stmt(rr, &ub, &st))
                k = pg_exec_cached(rr->pg, st.prepared, st.name, st.sql, st.nparams, st.params, st.result, err);
        if (k == 0)
                k = untrusted_batch_verdict(rr, &ub, err);
        untrusted_batch_done(&ub);
        return k;
}

bool untrusted_batch_stmt(RuleRun *rr, UntrustedBatch *ub, PgPipeStmt *st) {
        *ub = (UntrustedBatch) { .same = true };
        if (!untrusted_batch_guarded(rr))
                return false;
        ub->n = rule_tables(rr, rr->cache, &ub->tables);
        ub->asked = catalog_untrusted_stmt(rr->pg, ub->tables, ub->n, &ub->f, st, &ub->same);
        return ub->asked;
}

int untrusted_batch_verdict(RuleRun *rr, UntrustedBatch *ub, PgError *err) {
        if (ub->asked)
                ub->same = catalog_untrusted_same(ub->tables, ub->n, &ub->f);
        /* Unchanged since the lists were read (the start of the rule or a batch before): they
         * stand, and untrusted_check() let the rule go on with them. */
        if (ub->same)
                return 0;
        int k = catalog_load_untrusted(rr->pg, ub->tables, ub->n, err);
        bool refused;
        if (k == 0)
                k = untrusted_judge(rr, rr->cache, true, &refused, err);
        if (k)
                return k;
        return refused ? PG_ERR_OTHER : 0;
}

void untrusted_batch_done(UntrustedBatch *ub) {
        catalog_fingerprint_done(&ub->f);
        free(ub->tables);
        *ub = (UntrustedBatch) {};
}
