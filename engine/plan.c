/* plan.c — turn a rule and catalog facts into the SQL of a rule run (and of explain).
 * Pure text generation: never executes, never reads a clock or a file; tests/unit/test-plan.c
 * pins its output. Every identifier is quoted (ident_quote(), qualified_name_quote()); every value
 * from the policy or the catalog is a $n parameter. Pasted are only the administrator's `where:`
 * (checked lexically, and parenthesised) and the engine's own constants: SQL keywords and
 * literals such as interval '1 microsecond', and plan_row_keys()'s LIMIT. */
#include "plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sqlfrag.h"
#include "util.h"

#define MAX_CASCADE_DEPTH 5

/* ---- catalog cache ---- */

const CatTable *cat_cache_find_oid(const CatCache *c, uint32_t oid) {
        for (size_t i = 0; i < c->n_tables; i++)
                if (c->tables[i]->oid == oid)
                        return c->tables[i];
        return NULL;
}

static bool name_matches(const CatTable *t, const QualifiedName *n) {
        if (!streq(t->name.name, n->name))
                return false;
        if (n->schema)
                return streq(t->name.schema, n->schema);
        return true; /* unqualified names are resolved by the loader; any schema matches here */
}

const CatTable *cat_cache_find_name(const CatCache *c, const QualifiedName *name) {
        /* Prefer an exact schema match; unqualified names match the first loaded table
         * of that name, which is the one to_regclass() resolved through search_path. */
        for (size_t i = 0; i < c->n_tables; i++)
                if (name_matches(c->tables[i], name))
                        return c->tables[i];
        return NULL;
}

const CatTable *cat_cache_add(CatCache *c, CatTable *t) {
        const CatTable *e = cat_cache_find_oid(c, t->oid);
        if (e) {
                cat_table_free(t);
                return e;
        }
        c->tables = xreallocarray(c->tables, c->n_tables + 1, sizeof(CatTable *));
        c->tables[c->n_tables++] = t;
        return t;
}

void cat_cache_done(CatCache *c) {
        for (size_t i = 0; i < c->n_tables; i++)
                cat_table_free(c->tables[i]);
        free(c->tables);
        c->tables = NULL;
        c->n_tables = 0;
}

/* ---- statement builder ---- */

typedef struct Gen {
        const Policy *policy;
        const CatCache *cache;
        Plan *plan;
        /* current statement */
        PlanParam *params;
        size_t n_params;
        unsigned alias_counter;
        /* a cutoff is the column s<slot> of the subquery c instead of a parameter
         * (build_cutoffs_probe()) */
        bool inline_slots;
} Gen;

static char *param(Gen *g, ParamKind kind, size_t slot, const char *value, const char *label) {
        if (kind == PARAM_TIME && g->inline_slots)
                return xasprintf("c.s%zu", slot);
        for (size_t i = 0; i < g->n_params; i++) {
                PlanParam *p = &g->params[i];
                if (p->kind == kind && p->slot == slot && streq_ptr(p->value, value))
                        return xasprintf("$%zu", i + 1);
        }
        g->params = xreallocarray(g->params, g->n_params + 1, sizeof(PlanParam));
        g->params[g->n_params++] = (PlanParam) {
                .kind = kind,
                .slot = slot,
                .value = value ? xstrdup(value) : NULL,
                .label = xstrdup(label),
        };
        return xasprintf("$%zu", g->n_params);
}

static void finish_statement(Gen *g, PlanStatement *st, char *sql) {
        st->sql = sql;
        st->params = g->params;
        st->n_params = g->n_params;
        g->params = NULL;
        g->n_params = 0;
        g->alias_counter = 0;
}

void plan_statement_done(PlanStatement *st) {
        free(st->sql);
        for (size_t i = 0; i < st->n_params; i++) {
                free(st->params[i].value);
                free(st->params[i].label);
        }
        free(st->params);
        *st = (PlanStatement) {};
}

static size_t slot_get(Plan *p, TimeSlotKind kind, const void *ref, const Duration *d, const Duration *d2) {
        for (size_t i = 0; i < p->n_slots; i++)
                if (p->slots[i].kind == kind && p->slots[i].ref == ref)
                        return i;
        char buf[DURATION_FORMAT_MAX];
        p->slots = xreallocarray(p->slots, p->n_slots + 1, sizeof(TimeSlot));
        p->slots[p->n_slots] = (TimeSlot) {
                .kind = kind,
                .ref = ref,
                .start = kind == SLOT_HOLD ? ((const Hold *) ref)->start : ((const Rule *) ref)->start,
                .interval = xstrdup(duration_to_interval(d, buf, sizeof(buf))),
                .interval2 = d2 ? xstrdup(duration_to_interval(d2, buf, sizeof(buf))) : NULL,
        };
        return p->n_slots++;
}

static const char *kind_sql_type(ColumnKind k) {
        switch (k) {
        case COLKIND_TIMESTAMPTZ: return "timestamptz";
        case COLKIND_TIMESTAMP: return "timestamp";
        case COLKIND_DATE: return "date";
        default: return NULL;
        }
}

/* The cutoff parameter, converted to the age column's type. For a date column the cutoff
 * is truncated to its day: a date is older than the cutoff only when the whole day is. */
static char *cut_expr(Gen *g, size_t slot, ColumnKind k) {
        const TimeSlot *s = &g->plan->slots[slot];
        const char *label = s->kind == SLOT_CUTOFF    ? "cutoff: now() - retain"
                            : s->kind == SLOT_OVERDUE ? "overdue cutoff: now() - retain - deadline"
                            : s->kind == SLOT_HOLD    ? "hold cutoff: now() - hold retain"
                                                      : "cutoff of another rule on this table";
        _cleanup_free_ char *from = period_start_describe(&s->start);
        _cleanup_free_ char *full = from ? xasprintf("%s, counted from %s", label, from) : xstrdup(label);
        _cleanup_free_ char *p = param(g, PARAM_TIME, slot, NULL, full);
        if (k == COLKIND_TIMESTAMPTZ)
                return xasprintf("%s::timestamptz", p);
        return xasprintf("(%s::timestamptz)::%s", p, kind_sql_type(k));
}

/* alias.column; the column alone without an alias (an index predicate names no table). */
static char *col(const char *alias, const char *column) {
        _cleanup_free_ char *q = ident_quote(column);
        return alias ? xasprintf("%s.%s", alias, q) : TAKE_PTR(q);
}

static char *new_alias(Gen *g, const char *prefix) {
        return xasprintf("%s%u", prefix, ++g->alias_counter);
}

static const CatTable *table_of_rule(const Gen *g, const Rule *r) {
        return cat_cache_find_name(g->cache, &r->table);
}

/* The expression of the subject key of a row of rule r's table. */
static char *subject_key_expr(const Rule *r, const char *alias) {
        if (r->subject_column)
                return col(alias, r->subject_column);
        return col(alias, r->subject->key);
}

static char *fk_join(const CatForeignKey *fk, const char *child_alias, const char *parent_alias);

/* The subject keys of a row for one hold: one expression of the row (`key`, its column), or for a
 * rule reached through `referenced_by` the set of keys the referring rows hold (`set`: the
 * expression, `from`: FROM ... WHERE of the referring rows of the row), which may be empty. */
typedef struct SubjKey {
        char *key;
        char *set;
        char *from;
        const char *column; /* the column of the rule's table that holds it (Citus co-location), or NULL */
} SubjKey;

static void subj_key_done(SubjKey *k) {
        free(k->key);
        free(k->set);
        free(k->from);
        *k = (SubjKey) {};
}

/* The foreign key through which the rows of r's `referenced_by` table refer to the rows of t: one
 * column, the one `referenced_by` names. NULL when there is none. */
static const CatForeignKey *referrer_fk(const CatCache *cache, const CatTable *t, const Rule *r) {
        const CatTable *rt = r->has_referrer && t ? cat_cache_find_name(cache, &r->referrer.table) : NULL;
        if (!rt)
                return NULL;
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                const CatForeignKey *fk = &t->referenced_by[i];
                if (fk->child_oid == rt->oid && fk->n_columns == 1 && streq(fk->child_columns[0], r->referrer.column))
                        return fk;
        }
        return NULL;
}

/* Where the key of hold h's subject is for row `alias` of rule r: the rule's subject (its
 * subject_column, its own key, or the referring rows), or a subject whose table is the rule's. */
static void hold_key(Gen *g, const Rule *r, const Hold *h, const char *alias, SubjKey *ret) {
        *ret = (SubjKey) {};
        if (!rule_hold_of_own_subject(r, h)) {
                ret->key = col(alias, h->subject->key);
                ret->column = h->subject->key;
                return;
        }
        if (!r->has_referrer) {
                ret->key = subject_key_expr(r, alias);
                ret->column = r->subject_column ? r->subject_column : r->subject->key;
                return;
        }
        const CatForeignKey *fk = referrer_fk(g->cache, table_of_rule(g, r), r);
        _cleanup_free_ char *a = new_alias(g, "rf");
        _cleanup_free_ char *tq = qualified_name_quote(&r->referrer.table);
        /* plan_check_rule() refuses a rule without the foreign key: no statement is built then */
        _cleanup_free_ char *join = fk ? fk_join(fk, a, alias) : xstrdup("false");
        ret->set = col(a, r->referrer.subject_column ? r->referrer.subject_column : r->subject->key);
        ret->from = xasprintf("FROM %s %s WHERE %s", tq, a, join);
}

/* x = the key (as text when as_text), or x IN the keys of the referring rows. */
static char *key_eq(const SubjKey *k, const char *x, bool as_text) {
        const char *cast = as_text ? "::text" : "";
        if (k->set)
                return xasprintf("%s IN (SELECT (%s)%s %s)", x, k->set, cast, k->from);
        return as_text ? xasprintf("%s = (%s)::text", x, k->key) : xasprintf("%s = %s", x, k->key);
}

/* Does hold row `a` (of retention.holds) hold the subject key `key`? Its text is the key's, or
 * the key's text is what the hold's key reads as through the subject key column's type. */
static char *registry_key_match(Gen *g, const Subject *subj, const char *a, const SubjKey *key) {
        const CatTable *st = g->cache ? cat_cache_find_name(g->cache, &subj->table) : NULL;
        _cleanup_free_ char *sk = xasprintf("%s.subject_key", a);
        _cleanup_free_ char *plain = key_eq(key, sk, true);
        if (!st)
                return TAKE_PTR(plain);
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", st->oid);
        _cleanup_free_ char *o = param(g, PARAM_CONST, 0, oid, "subject table oid");
        _cleanup_free_ char *c = param(g, PARAM_CONST, 0, subj->key, "subject key column");
        _cleanup_free_ char *read = xasprintf("retention.hold_key_as_read(%s.subject_key, %s::oid::regclass, %s::name)", a, o, c);
        _cleanup_free_ char *m = key_eq(key, read, true);
        return xasprintf("(%s OR %s)", plain, m);
}

/* Citus: may the statements of this plan join the evidence table of derived hold h row by row
 * (a correlated EXISTS)? Yes without Citus; on a distributed or reference rule table, only when
 * Citus pushes the join down to the shards: evidence in a reference table, or distributed in the
 * same colocation group and matched on both distribution columns. Otherwise the young subjects go
 * as an array (evidence_as_array()). */
static bool evidence_joins(const Gen *g, const CatTable *ev, const Hold *h, const SubjKey *k) {
        const CatTable *t = g->plan ? g->plan->table : NULL;
        if (!t || !cat_table_is_citus(t) || !ev)
                return true;
        if (ev->dist == CAT_DIST_REFERENCE)
                return true;
        if (ev->dist != CAT_DIST_DISTRIBUTED || t->dist != CAT_DIST_DISTRIBUTED || ev->colocation_id != t->colocation_id ||
            !ev->dist_column || !t->dist_column || !streq(ev->dist_column, h->subject_column))
                return false;
        return k->column && streq(t->dist_column, k->column);
}

static bool evidence_as_array(const Gen *g, const CatTable *ev, const Hold *h, const SubjKey *k) {
        return !evidence_joins(g, ev, h, k);
}

/* Is the hold in force for a row whose subject keys are `sk`? (Citus's arrays only for a key of
 * the row itself: plan_check_rule() refuses `referenced_by` on Citus's tables.) */
static char *hold_expr(Gen *g, const Hold *h, const SubjKey *sk) {
        const char *key = sk->key;
        if (h->registry) {
                _cleanup_free_ char *s = param(g, PARAM_CONST, 0, h->subject->name, "subject name");
                _cleanup_free_ char *a = new_alias(g, "rh");
                const CatTable *st = g->cache ? cat_cache_find_name(g->cache, &h->subject->table) : NULL;
                if (!st) {
                        _cleanup_free_ char *sk_col = xasprintf("%s.subject_key", a);
                        _cleanup_free_ char *m = key_eq(sk, sk_col, true);
                        return xasprintf("EXISTS (SELECT 1 FROM retention.holds %s WHERE %s.subject = %s"
                                         " AND %s AND %s.released_at IS NULL"
                                         " AND (%s.expires_at IS NULL OR %s.expires_at > now()))",
                                         a, a, s, m, a, a, a);
                }
                /* Keys are canonical (hold add); as a second line of defence, the keys of holds in
                 * force that are not are matched by their canonical text too, read through the
                 * subject key column's type once per statement (an InitPlan, normally empty). One
                 * EXISTS over both, so that PostgreSQL still makes it an anti-join or a hashed
                 * subplan, and probes the registry's index per row otherwise. */
                char oid[16];
                snprintf(oid, sizeof(oid), "%u", st->oid);
                _cleanup_free_ char *o = param(g, PARAM_CONST, 0, oid, "subject table oid");
                _cleanup_free_ char *c = param(g, PARAM_CONST, 0, h->subject->key, "subject key column");
                _cleanup_free_ char *k = new_alias(g, "hk");
                if (g->plan->table && cat_table_is_citus(g->plan->table) && key)
                        /* Citus: the registry is a table of the coordinator, which a statement on a
                         * distributed or reference table cannot join ("direct joins between
                         * distributed and local tables are not supported"). The same keys as one
                         * uncorrelated ARRAY(): Citus computes it first on the coordinator and sends
                         * it to every shard with the statement (an intermediate result). A NULL key
                         * is held by nothing, as in the join. */
                        return xasprintf("((%s) IS NOT NULL AND (%s)::text = ANY (ARRAY(SELECT %s.subject_key FROM"
                                         " retention.holds %s WHERE %s.subject = %s AND %s.released_at IS NULL"
                                         " AND (%s.expires_at IS NULL OR %s.expires_at > now())"
                                         " UNION ALL SELECT %s FROM retention.hold_keys_noncanonical(%s, %s::oid::regclass,"
                                         " %s::name, now()) %s)))",
                                         key, key, a, a, a, s, a, a, a, k, s, o, c, k);
                _cleanup_free_ char *kk = xasprintf("%s.k", k);
                _cleanup_free_ char *m = key_eq(sk, kk, true);
                return xasprintf("EXISTS (SELECT 1 FROM (SELECT %s.subject_key AS k FROM retention.holds %s WHERE %s.subject = %s"
                                 " AND %s.released_at IS NULL AND (%s.expires_at IS NULL OR %s.expires_at > now())"
                                 " UNION ALL SELECT unnest((SELECT array_agg(nk) FROM retention.hold_keys_noncanonical(%s,"
                                 " %s::oid::regclass, %s::name, now()) nk))) %s WHERE %s)",
                                 a, a, a, s, a, a, a, s, o, c, k, m);
        }
        const CatTable *ev = cat_cache_find_name(g->cache, &h->table);
        const CatColumn *c = ev ? cat_table_column(ev, h->column) : NULL;
        ColumnKind k = c ? c->kind : COLKIND_TIMESTAMPTZ;
        size_t slot = slot_get(g->plan, SLOT_HOLD, h, &h->retain, NULL);
        _cleanup_free_ char *a = new_alias(g, "ev");
        _cleanup_free_ char *tq = qualified_name_quote(&h->table);
        _cleanup_free_ char *sc = col(a, h->subject_column);
        _cleanup_free_ char *ac = col(a, h->column);
        _cleanup_free_ char *cut = cut_expr(g, slot, k);
        /* Evidence is young unless provably older than the hold's cutoff: NULL holds. */
        if (key && evidence_as_array(g, ev, h, sk))
                /* Citus, evidence that cannot be joined on the shards (a table of the coordinator,
                 * or distributed otherwise): its young subjects as one uncorrelated array, computed
                 * first and sent with the statement. A NULL subject holds nothing, as in the join. */
                return xasprintf("(%s IS NOT NULL AND %s = ANY (ARRAY(SELECT %s FROM %s %s"
                                 " WHERE %s IS NOT NULL AND (%s >= %s OR %s IS NULL))))",
                                 key, key, sc, tq, a, sc, ac, cut, ac);
        _cleanup_free_ char *m = key_eq(sk, sc, false);
        return xasprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s AND (%s >= %s OR %s IS NULL))", tq, a, m, ac, cut, ac);
}

/* OR of the rule's holds for row `alias`; NULL when the rule has none. */
static char *rule_holds_expr(Gen *g, const Rule *r, const char *alias) {
        if (r->n_holds == 0 || !r->subject)
                return NULL;
        StrBuf b = {};
        for (size_t i = 0; i < r->n_holds; i++) {
                SubjKey k;
                hold_key(g, r, r->holds[i], alias, &k);
                _cleanup_free_ char *e = hold_expr(g, r->holds[i], &k);
                subj_key_done(&k);
                strbuf_append(&b, i ? " OR " : "(");
                strbuf_append(&b, e);
        }
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

/* Rows of table `t` (row alias `alias`) that a hold protects: rows of rules with holds on
 * that table which are held, and evidence rows of derived holds that are still young. */
static char *protected_rows_expr(Gen *g, const CatTable *t, const char *alias) {
        StrBuf b = {};
        for (size_t i = 0; i < g->policy->n_rules; i++) {
                const Rule *r = &g->policy->rules[i];
                const CatTable *rt = table_of_rule(g, r);
                if (!rt || rt->oid != t->oid)
                        continue;
                _cleanup_free_ char *e = rule_holds_expr(g, r, alias);
                if (!e)
                        continue;
                strbuf_append(&b, b.len ? " OR " : "(");
                strbuf_append(&b, e);
        }
        for (size_t i = 0; i < g->policy->n_holds; i++) {
                const Hold *h = &g->policy->holds[i];
                if (h->registry)
                        continue;
                const CatTable *ht = cat_cache_find_name(g->cache, &h->table);
                if (!ht || ht->oid != t->oid)
                        continue;
                const CatColumn *c = cat_table_column(ht, h->column);
                size_t slot = slot_get(g->plan, SLOT_HOLD, h, &h->retain, NULL);
                _cleanup_free_ char *ac = col(alias, h->column);
                _cleanup_free_ char *cut = cut_expr(g, slot, c ? c->kind : COLKIND_TIMESTAMPTZ);
                strbuf_append(&b, b.len ? " OR " : "(");
                strbuf_appendf(&b, "(%s >= %s OR %s IS NULL)", ac, cut, ac);
        }
        if (!b.len)
                return NULL;
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

static char *fk_join(const CatForeignKey *fk, const char *child_alias, const char *parent_alias) {
        StrBuf b = {};
        for (size_t j = 0; j < fk->n_columns; j++) {
                _cleanup_free_ char *cc = col(child_alias, fk->child_columns[j]);
                _cleanup_free_ char *pc = col(parent_alias, fk->parent_columns[j]);
                strbuf_appendf(&b, "%s%s = %s", j ? " AND " : "", cc, pc);
        }
        return strbuf_steal(&b);
}

/* The foreign key through which column `through` of t, alone, refers to w (`delete_with:`), or NULL. */
static const CatForeignKey *with_fk(const CatTable *t, const CatTable *w, const char *through) {
        for (size_t i = 0; t && w && through && i < w->n_referenced_by; i++) {
                const CatForeignKey *fk = &w->referenced_by[i];
                if (fk->child_oid == t->oid && fk->n_columns == 1 && streq(fk->child_columns[0], through))
                        return fk;
        }
        return NULL;
}

/* The CTEs of a delete rule's `delete_with:` (none without it), after the CTE `changed` that
 * deleted the rule's rows and returned their tableoid (toid), ctid (rid) and the value of the
 * entry's `through` column (w1, w2, ... in policy order): for each entry, the DELETE of the rows of
 * its table that a deleted row referred to and no row that stays refers to, through every foreign
 * key into that table, of any table. Every part of the statement sees one snapshot, in which the
 * rows `changed` deleted are still there: such a row of the rule's table is no reference that
 * stays, and is taken out by (tableoid, ctid). Any other row counts, even one a cascade of this
 * statement deletes: that row's is kept. A row that came to refer to it after the snapshot makes
 * the statement fail at its end (foreign keys into it are NO ACTION or RESTRICT: check -d refuses
 * any other), so the rule's row is then skipped (foreign-key isolation) with the other's kept. */
static char *with_ctes(Gen *g, const Rule *r) {
        StrBuf b = {};
        const CatTable *t = g->plan->table;
        for (size_t i = 0; i < r->n_delete_with; i++) {
                const CatTable *w = cat_cache_find_name(g->cache, &r->delete_with[i].table);
                const CatForeignKey *fk = with_fk(t, w, r->delete_with[i].through);
                if (!fk) /* plan_check_rule() refused the rule */
                        continue;
                _cleanup_free_ char *wq = qualified_name_quote(&w->name);
                _cleanup_free_ char *pc = col("w", fk->parent_columns[0]);
                /* ONLY: check_delete_with_catalog() refuses a table with partitions or inheriting
                 * tables; should one appear after the catalog was read, their rows stay out. A row
                 * a hold protects (a rule's hold on that table, a derived hold's young evidence)
                 * stays, as a cascade would leave it. */
                _cleanup_free_ char *prot = protected_rows_expr(g, w, "w");
                strbuf_appendf(&b, ", with%zu AS (DELETE FROM ONLY %s w WHERE %s IN (SELECT c.w%zu FROM changed c)%s%s%s", i + 1,
                               wq, pc, i + 1, prot ? " AND NOT coalesce(" : "", prot ? prot : "", prot ? ", false)" : "");
                for (size_t j = 0; j < w->n_referenced_by; j++) {
                        const CatForeignKey *o = &w->referenced_by[j];
                        _cleanup_free_ char *oq = qualified_name_quote(&o->child);
                        _cleanup_free_ char *on = fk_join(o, "x", "w");
                        strbuf_appendf(&b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s%s)", oq, on,
                                       o->child_oid == t->oid
                                               ? " AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.rid = x.ctid AND c.toid = x.tableoid)"
                                               : "");
                }
                strbuf_append(&b, " RETURNING 1)");
        }
        return strbuf_steal(&b);
}

/* What `changed` returns for with_ctes(): "1" without `delete_with:`. */
static char *with_returning(const Rule *r, const char *alias) {
        if (r->n_delete_with == 0)
                return xstrdup("1");
        StrBuf b = {};
        strbuf_appendf(&b, "%s.tableoid AS toid, %s.ctid AS rid", alias, alias);
        for (size_t i = 0; i < r->n_delete_with; i++) {
                _cleanup_free_ char *c = col(alias, r->delete_with[i].through);
                strbuf_appendf(&b, ", %s AS w%zu", c, i + 1);
        }
        return strbuf_steal(&b);
}

/* Would deleting row `alias` of `t` cascade through the foreign key fk into (or set NULL in)
 * rows a hold protects? NULL when it cannot. Beyond MAX_CASCADE_DEPTH, or around a cycle, the
 * mere existence of a referencing row counts as protected: we cannot prove it is not. */
static char *cascade_fk_expr(Gen *g, const CatForeignKey *fk, const char *alias, unsigned depth, uint32_t *path,
                             size_t n_path);

/* Would deleting row `alias` of `t` cascade into (or set NULL in) rows a hold protects?
 * NULL when no such path exists. */
static char *cascade_expr(Gen *g, const CatTable *t, const char *alias, unsigned depth, uint32_t *path, size_t n_path) {
        StrBuf b = {};
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                _cleanup_free_ char *e = cascade_fk_expr(g, &t->referenced_by[i], alias, depth, path, n_path);
                if (!e)
                        continue;
                strbuf_append(&b, b.len ? " OR " : "(");
                strbuf_append(&b, e);
        }
        if (!b.len)
                return NULL;
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

static char *cascade_fk_expr(Gen *g, const CatForeignKey *fk, const char *alias, unsigned depth, uint32_t *path,
                             size_t n_path) {
        if (fk->on_delete != 'c' && fk->on_delete != 'n' && fk->on_delete != 'd')
                return NULL;
        const CatTable *child = cat_cache_find_oid(g->cache, fk->child_oid);
        _cleanup_free_ char *a = new_alias(g, "cc");
        _cleanup_free_ char *inner = NULL;
        bool cycle = false;
        for (size_t j = 0; j < n_path; j++)
                if (path[j] == fk->child_oid)
                        cycle = true;
        if (!child || depth >= MAX_CASCADE_DEPTH || cycle)
                inner = xstrdup("true");
        else {
                _cleanup_free_ char *prot = protected_rows_expr(g, child, a);
                _cleanup_free_ char *deeper = NULL;
                if (fk->on_delete == 'c') {
                        uint32_t np[MAX_CASCADE_DEPTH + 2];
                        size_t nn = n_path < MAX_CASCADE_DEPTH ? n_path : MAX_CASCADE_DEPTH;
                        memcpy(np, path, nn * sizeof(uint32_t));
                        np[nn] = child->oid;
                        deeper = cascade_expr(g, child, a, depth + 1, np, nn + 1);
                }
                if (prot && deeper)
                        inner = xasprintf("%s OR %s", prot, deeper);
                else if (prot)
                        inner = TAKE_PTR(prot);
                else if (deeper)
                        inner = TAKE_PTR(deeper);
        }
        if (!inner)
                return NULL;
        _cleanup_free_ char *tq = qualified_name_quote(&fk->child);
        _cleanup_free_ char *join = fk_join(fk, a, alias);
        return xasprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s AND (%s))", tq, a, join, inner);
}

static char *restrict_expr_one(Gen *g, const CatForeignKey *fk, const char *alias) {
        _cleanup_free_ char *a = new_alias(g, "fr");
        _cleanup_free_ char *tq = qualified_name_quote(&fk->child);
        _cleanup_free_ char *join = fk_join(fk, a, alias);
        return xasprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s)", tq, a, join);
}

static bool fk_restricts(const CatForeignKey *fk) {
        return fk->on_delete == 'a' || fk->on_delete == 'r';
}

/* OR over RESTRICT/NO ACTION references; NULL when none. */
static char *restrict_expr(Gen *g, const CatTable *t, const char *alias) {
        StrBuf b = {};
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                if (!fk_restricts(&t->referenced_by[i]))
                        continue;
                _cleanup_free_ char *e = restrict_expr_one(g, &t->referenced_by[i], alias);
                strbuf_append(&b, b.len ? " OR " : "(");
                strbuf_append(&b, e);
        }
        if (!b.len)
                return NULL;
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

/* The one wrapper of a rule's `where:`, in every statement that pastes it (the due predicate,
 * other rules that keep a row, batches, breaker, tally, partition check, explain): the fragment
 * inside parentheses of its own, NULL read as false. plan_check_rule() refuses a fragment that could close them (sqlfrag.c), so the age,
 * hold and reference conditions around it are out of its reach. */
static char *where_expr(const Rule *r) {
        return r->where ? xasprintf("coalesce((%s), false)", r->where) : NULL;
}

char *plan_where_check_sql(const Rule *r, const CatTable *t) {
        if (!r->where)
                return NULL;
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        return xasprintf("SELECT (%s) FROM %s t WHERE (%s) IS NOT NULL", r->where, tq, r->where);
}

/* For a delete rule: the row must also be expired (and unheld) under every other delete
 * rule on the same table that covers it — the longest retention wins. NULL when none.
 * The expression is true when another rule keeps the row. */
static char *other_rules_keep_expr(Gen *g, const Rule *r, const char *alias, const Rule *only) {
        StrBuf b = {};
        if (r->action != ACTION_DELETE)
                return NULL;
        for (size_t i = 0; i < g->policy->n_rules; i++) {
                const Rule *o = &g->policy->rules[i];
                if (o == r || o->action != ACTION_DELETE || (only && o != only))
                        continue;
                const CatTable *ot = table_of_rule(g, o);
                if (!ot || ot->oid != g->plan->table->oid)
                        continue;
                const CatColumn *c = cat_table_column(ot, o->column);
                size_t slot = slot_get(g->plan, SLOT_OTHER_RULE, o, &o->retain, NULL);
                _cleanup_free_ char *oc = col(alias, o->column);
                _cleanup_free_ char *cut = cut_expr(g, slot, c ? c->kind : COLKIND_TIMESTAMPTZ);
                _cleanup_free_ char *holds = rule_holds_expr(g, o, alias);
                _cleanup_free_ char *w = where_expr(o);
                StrBuf e = {};
                strbuf_appendf(&e, "NOT (%s < %s)", oc, cut);
                strbuf_appendf(&e, " OR %s IS NULL", oc);
                if (holds)
                        strbuf_appendf(&e, " OR %s", holds);
                _cleanup_free_ char *es = strbuf_steal(&e);
                strbuf_append(&b, b.len ? " OR " : "(");
                if (w)
                        strbuf_appendf(&b, "(%s AND (%s))", w, es);
                else
                        strbuf_appendf(&b, "(%s)", es);
        }
        if (!b.len)
                return NULL;
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

/* ---- anonymisation expressions ---- */

static const char *HASH_PREFIX = "hmac-sha256:";
#define HASH_PAD_SQL(pad)                                                                                  \
        "(SELECT CASE count(*) WHEN 1 THEN (array_agg(" pad "))[1] ELSE ('retentiond: the hash key table holds '" \
        " || count(*) || ' rows, not 1')::int::text::bytea END FROM " HASH_KEY_TABLE ")"

static char *anon_expr(Gen *g, const ColumnMethod *m, ColumnKind k, const char *x) {
        switch (m->method) {
        case METHOD_NULL:
                return xstrdup("NULL");
        case METHOD_REDACT: {
                _cleanup_free_ char *p = param(g, PARAM_CONST, 0, m->redact_value, "redact constant");
                return xasprintf("CASE WHEN %s IS NULL THEN NULL ELSE %s END", x, p);
        }
        case METHOD_HASH:
                /* The pads come from the session's temporary table (HASH_KEY_TABLE), never from a
                 * parameter: uncorrelated scalar subqueries, evaluated once per statement. Without
                 * exactly one row of pads the statement fails (a cast that cannot succeed) rather
                 * than hash with NULL, which would set the column to NULL. */
                return xasprintf("CASE WHEN %s IS NULL OR (%s)::text ~ '^%s[0-9a-f]{64}$' THEN %s"
                                 " ELSE '%s' || encode(sha256(" HASH_PAD_SQL("opad") " || sha256(" HASH_PAD_SQL("ipad")
                                 " || convert_to((%s)::text, 'UTF8'))), 'hex') END",
                                 x, x, HASH_PREFIX, x, HASH_PREFIX, x);
        case METHOD_TRUNCATE_IP:
                if (k == COLKIND_INET)
                        return xasprintf("network(set_masklen(%s, least(masklen(%s),"
                                         " CASE family(%s) WHEN 4 THEN 24 ELSE 48 END)))::inet",
                                         x, x, x);
                if (k == COLKIND_CIDR)
                        return xasprintf("set_masklen(%s, least(masklen(%s), CASE family(%s) WHEN 4 THEN 24 ELSE 48 END))",
                                         x, x, x);
                return xasprintf("host(network(set_masklen((%s)::inet, least(masklen((%s)::inet),"
                                 " CASE family((%s)::inet) WHEN 4 THEN 24 ELSE 48 END))))",
                                 x, x, x);
        case METHOD_EMAIL_DOMAIN:
                return xasprintf("CASE WHEN strpos(%s, '@') > 0 THEN '*@' || split_part(%s, '@', -1) ELSE NULL END", x, x);
        case METHOD_TRUNCATE_DATE: {
                const char *unit = m->precision == PRECISION_YEAR ? "year" : "month";
                if (k == COLKIND_DATE)
                        return xasprintf("date_trunc('%s', %s)::date", unit, x);
                return xasprintf("date_trunc('%s', %s)", unit, x);
        }
        default:
                return xstrdup("NULL");
        }
}

/* A string as an SQL literal in ASCII alone: E'...' with quotes and backslashes doubled, control
 * and non-ASCII bytes as \xHH escapes: the policy's bytes as they are, and nothing in it can end
 * the literal, whatever standard_conforming_strings and an ASCII-based client encoding say. */
static char *sql_literal(const char *s) {
        StrBuf b = {};
        strbuf_append(&b, "E'");
        for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
                if (*c == '\'' || *c == '\\')
                        strbuf_appendf(&b, "%c%c", *c, *c);
                else if (*c < 0x20 || *c >= 0x7f)
                        strbuf_appendf(&b, "\\x%02x", *c);
                else
                        strbuf_appendf(&b, "%c", *c);
        }
        strbuf_append(&b, "'");
        return strbuf_steal(&b);
}

/* Is the column already in its anonymised form? Always true or false, never NULL. Constants and
 * the column only, never a parameter: PostgreSQL proves a partial index's predicate
 * (plan_todo_index()) from a statement's constants, and a parameter is not one in a generic plan
 * (a redact value is therefore a literal here, and a parameter in the SET list). */
static char *done_expr(Gen *g, const ColumnMethod *m, ColumnKind k, const char *x) {
        if (m->method == METHOD_NULL)
                return xasprintf("%s IS NULL", x);
        if (m->method == METHOD_HASH)
                return xasprintf("(%s IS NULL OR (%s)::text ~ '^%s[0-9a-f]{64}$')", x, x, HASH_PREFIX);
        if (m->method == METHOD_REDACT) {
                _cleanup_free_ char *v = sql_literal(m->redact_value);
                return xasprintf("(%s IS NULL OR %s IS NOT DISTINCT FROM %s::text)", x, x, v);
        }
        _cleanup_free_ char *a = anon_expr(g, m, k, x);
        return xasprintf("(%s IS NULL OR %s IS NOT DISTINCT FROM %s)", x, x, a);
}

static ColumnKind column_kind(const CatTable *t, const char *name) {
        const CatColumn *c = cat_table_column(t, name);
        return c ? c->kind : COLKIND_OTHER;
}

/* AND of done_expr over columns; used negated to find rows still to anonymise. */
static char *all_done_expr(Gen *g, const ColumnMethod *cols, size_t n, const char *alias) {
        StrBuf b = {};
        strbuf_append(&b, "(");
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *x = col(alias, cols[i].column);
                _cleanup_free_ char *d = done_expr(g, &cols[i], column_kind(g->plan->table, cols[i].column), x);
                strbuf_appendf(&b, "%s%s", i ? " AND " : "", d);
        }
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

/* Whether PostgreSQL can take the column's done_expr() as an index predicate: immutable functions
 * only (date_trunc of a timestamptz or a date, and a cast of a time to text, depend on TimeZone);
 * a type not named here is not proven immutable, so it is not offered. */
static bool done_indexable(const ColumnMethod *m, ColumnKind k) {
        switch (m->method) {
        case METHOD_NULL:
        case METHOD_REDACT:
                return true;
        case METHOD_HASH:
        case METHOD_TRUNCATE_IP:
                return k == COLKIND_TEXT || k == COLKIND_INET || k == COLKIND_CIDR;
        case METHOD_EMAIL_DOMAIN:
                return k == COLKIND_TEXT;
        case METHOD_TRUNCATE_DATE:
                return k == COLKIND_TIMESTAMP;
        default:
                return false;
        }
}

bool plan_todo_index(const Rule *r, const CatTable *t, char **create_sql, char **not_done_t) {
        *create_sql = *not_done_t = NULL;
        if (r->action != ACTION_ANONYMISE || !r->n_columns || !cat_table_column(t, r->column))
                return false;
        for (size_t i = 0; i < r->n_columns; i++) {
                const CatColumn *c = cat_table_column(t, r->columns[i].column);
                if (!c || !done_indexable(&r->columns[i], c->kind))
                        return false;
        }
        Plan pl = { .table = t, .rule = r };
        Gen g = { .plan = &pl };
        _cleanup_free_ char *bare = all_done_expr(&g, r->columns, r->n_columns, NULL);
        _cleanup_free_ char *with_t = all_done_expr(&g, r->columns, r->n_columns, "t");
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        _cleanup_free_ char *aq = ident_quote(r->column);
        /* CREATE INDEX CONCURRENTLY is refused on a partitioned table */
        *create_sql = xasprintf("CREATE INDEX%s ON %s (%s) WHERE NOT %s;", t->relkind == 'p' ? "" : " CONCURRENTLY", tq, aq,
                                bare);
        *not_done_t = xasprintf("NOT %s", with_t);
        free(g.params); /* none: done_expr() registers no parameter */
        return true;
}

static char *set_list(Gen *g, const ColumnMethod *cols, size_t n, const char *alias) {
        StrBuf b = {};
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *q = ident_quote(cols[i].column);
                _cleanup_free_ char *x = col(alias, cols[i].column);
                _cleanup_free_ char *a = anon_expr(g, &cols[i], column_kind(g->plan->table, cols[i].column), x);
                strbuf_appendf(&b, "%s%s = %s", i ? ", " : "", q, a);
        }
        return strbuf_steal(&b);
}

/* ---- the pieces of a rule's row predicate, for alias t ---- */

typedef struct Preds {
        char *age;        /* t.col < cutoff */
        char *where;      /* administrator filter or NULL */
        char *covered;    /* referenced_by: a row of that table refers to it and none of another, or NULL */
        char *not_done;   /* anonymise: NOT all done, or NULL */
        char *holds;      /* rule holds or NULL */
        char *cascade;    /* cascade protection or NULL */
        char *others;     /* longer rules keep it, or NULL */
        char *restricts;  /* RESTRICT references or NULL */
        char *overdue;    /* t.col < overdue cutoff, or NULL */
} Preds;

static void preds_done(Preds *p) {
        free(p->age);
        free(p->covered);
        free(p->where);
        free(p->not_done);
        free(p->holds);
        free(p->cascade);
        free(p->others);
        free(p->restricts);
        free(p->overdue);
}

/* The rows a rule with `referenced_by` covers: those a row of that table refers to (through the
 * foreign key), and no row of any other table does. An address no customer refers to (a store's)
 * is none of the customer's business, nor is one a store shares with a customer: it is the store's
 * too. NULL for a rule without `referenced_by`. */
static char *covered_expr(Gen *g, const Rule *r, const char *alias) {
        if (!r->has_referrer)
                return NULL;
        const CatTable *t = table_of_rule(g, r);
        const CatForeignKey *fk = referrer_fk(g->cache, t, r);
        if (!t || !fk)
                return xstrdup("false");
        _cleanup_free_ char *a = new_alias(g, "rf");
        _cleanup_free_ char *tq = qualified_name_quote(&fk->child);
        _cleanup_free_ char *join = fk_join(fk, a, alias);
        StrBuf b = {};
        strbuf_appendf(&b, "(EXISTS (SELECT 1 FROM %s %s WHERE %s)", tq, a, join);
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                const CatForeignKey *o = &t->referenced_by[i];
                if (o == fk)
                        continue;
                _cleanup_free_ char *oa = new_alias(g, "os");
                _cleanup_free_ char *oq = qualified_name_quote(&o->child);
                _cleanup_free_ char *oj = fk_join(o, oa, alias);
                strbuf_appendf(&b, " AND NOT EXISTS (SELECT 1 FROM %s %s WHERE %s)", oq, oa, oj);
        }
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

/* Only what due_expr() needs (age, where, not done): a statement must use every parameter it
 * declares, and PostgreSQL refuses a bind with more values than the statement uses. */
static void preds_build_due(Gen *g, const Rule *r, const char *alias, Preds *p) {
        Plan *plan = g->plan;
        size_t cut = slot_get(plan, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *c = col(alias, r->column);
        _cleanup_free_ char *ce = cut_expr(g, cut, plan->age_kind);
        *p = (Preds) {};
        p->age = xasprintf("%s < %s", c, ce);
        p->where = where_expr(r);
        p->covered = covered_expr(g, r, alias);
        if (r->action == ACTION_ANONYMISE) {
                _cleanup_free_ char *d = all_done_expr(g, r->columns, r->n_columns, alias);
                p->not_done = xasprintf("NOT %s", d);
        }
}

/* with_others: also the other rules' and the references' predicates. A statement must use every
 * parameter it registers (an unused one has no type), so the while_held batch, which does not
 * look at them, builds without. */
static void preds_build_ex(Gen *g, const Rule *r, const char *alias, Preds *p, bool with_others) {
        Plan *plan = g->plan;
        preds_build_due(g, r, alias, p);
        p->holds = rule_holds_expr(g, r, alias);
        if (r->action == ACTION_DELETE) {
                uint32_t path[1] = { plan->table->oid };
                p->cascade = cascade_expr(g, plan->table, alias, 0, path, 1);
                if (with_others) {
                        p->others = other_rules_keep_expr(g, r, alias, NULL);
                        p->restricts = restrict_expr(g, plan->table, alias);
                }
        }
}

static void preds_build(Gen *g, const Rule *r, const char *alias, Preds *p) {
        preds_build_ex(g, r, alias, p, true);
}

/* Only the tally counts overdue rows: a parameter no statement uses has no type. */
static void preds_add_overdue(Gen *g, const Rule *r, const char *alias, Preds *p) {
        if (!r->has_deadline)
                return;
        size_t od = slot_get(g->plan, SLOT_OVERDUE, r, &r->retain, &r->deadline);
        _cleanup_free_ char *c = col(alias, r->column);
        _cleanup_free_ char *oe = cut_expr(g, od, g->plan->age_kind);
        p->overdue = xasprintf("%s < %s", c, oe);
}

/* due: age and where and not_done */
static char *due_expr(const Preds *p) {
        StrBuf b = {};
        strbuf_append(&b, p->age);
        if (p->where)
                strbuf_appendf(&b, " AND %s", p->where);
        if (p->covered)
                strbuf_appendf(&b, " AND %s", p->covered);
        if (p->not_done)
                strbuf_appendf(&b, " AND %s", p->not_done);
        return strbuf_steal(&b);
}

/* held: holds or cascade protection */
static char *held_expr(const Preds *p) {
        if (p->holds && p->cascade)
                return xasprintf("(%s OR %s)", p->holds, p->cascade);
        if (p->holds)
                return xstrdup(p->holds);
        if (p->cascade)
                return xstrdup(p->cascade);
        return NULL;
}

/* kept: held or a longer rule keeps it */
static char *kept_expr(const Preds *p) {
        _cleanup_free_ char *h = held_expr(p);
        if (h && p->others)
                return xasprintf("(%s OR %s)", h, p->others);
        if (h)
                return TAKE_PTR(h);
        if (p->others)
                return xstrdup(p->others);
        return NULL;
}

/* Rows the normal action takes: due, not kept, not blocked by a reference. */
static char *actionable_expr(const Preds *p) {
        StrBuf b = {};
        _cleanup_free_ char *d = due_expr(p);
        _cleanup_free_ char *k = kept_expr(p);
        strbuf_append(&b, d);
        if (k)
                strbuf_appendf(&b, " AND NOT %s", k);
        if (p->restricts)
                strbuf_appendf(&b, " AND NOT %s", p->restricts);
        return strbuf_steal(&b);
}

/* ---- checks ---- */

static void add_msg(char ***v, size_t *n, char *m) {
        *v = xreallocarray(*v, *n + 1, sizeof(char *));
        (*v)[(*n)++] = m;
}

typedef struct Findings {
        PlanFinding *v;
        size_t n;
} Findings;

static PlanFinding *finding(Findings *fs, bool error, const Location *loc, char *msg) {
        fs->v = xreallocarray(fs->v, fs->n + 1, sizeof(PlanFinding));
        PlanFinding *x = &fs->v[fs->n++];
        *x = (PlanFinding) { .error = error, .message = msg, .loc = loc && loc->line ? loc : NULL };
        return x;
}

void plan_findings_free(PlanFinding *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i].message);
                free(v[i].hint);
        }
        free(v);
}

/* "Did you mean" among the table's columns, or NULL. */
static char *column_hint(const CatTable *t, const char *name) {
        _cleanup_free_ const char **names = xcalloc(t->n_columns + 1, sizeof(char *));
        for (size_t i = 0; i < t->n_columns; i++)
                names[i] = t->columns[i].name;
        const char *c = closest_name(name, names, t->n_columns);
        if (!c)
                return NULL;
        _cleanup_free_ char *d = ident_display(c);
        return xasprintf("Did you mean \"%s\"?", d);
}

static bool method_fits(Method m, ColumnKind k) {
        switch (m) {
        case METHOD_NULL: return true;
        case METHOD_REDACT:
        case METHOD_HASH:
        case METHOD_EMAIL_DOMAIN: return k == COLKIND_TEXT;
        case METHOD_TRUNCATE_IP: return k == COLKIND_INET || k == COLKIND_CIDR || k == COLKIND_TEXT;
        case METHOD_TRUNCATE_DATE: return k == COLKIND_DATE || k == COLKIND_TIMESTAMP || k == COLKIND_TIMESTAMPTZ;
        default: return false;
        }
}

/* The length limit of a character varying(n) or character(n) column, or 0. */
static long char_limit(const char *type) {
        const char *prefixes[] = { "character varying(", "character(" };
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0) {
                        char *end = NULL;
                        long n = strtol(type + strlen(prefixes[i]), &end, 10);
                        return end && *end == ')' && n > 0 ? n : 0;
                }
        return 0;
}

static size_t utf8_chars(const char *s) {
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                n += (*p & 0xC0) != 0x80;
        return n;
}

static void check_columns(const Rule *r, const CatTable *t, const ColumnMethod *cols, size_t n, Findings *fs) {
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        for (size_t i = 0; i < n; i++) {
                const ColumnMethod *cm = &cols[i];
                const CatColumn *c = cat_table_column(t, cm->column);
                _cleanup_free_ char *cn = ident_display(cm->column);
                const char *mn = method_to_string(cm->method);
                if (!c) {
                        PlanFinding *x = finding(fs, true, &cm->loc,
                                                 xasprintf("rule \"%s\": column \"%s\" does not exist in table %s", r->name, cn, tn));
                        x->hint = column_hint(t, cm->column);
                        continue;
                }
                if (!method_fits(cm->method, c->kind)) {
                        PlanFinding *x = finding(fs, true, &cm->loc,
                                                 xasprintf("rule \"%s\": method %s does not fit column %s.%s of type %s", r->name,
                                                           mn, tn, cn, c->type));
                        switch (cm->method) {
                        case METHOD_TRUNCATE_IP:
                                x->hint = xstrdup("truncate_ip takes inet, cidr or text holding IP addresses.");
                                break;
                        case METHOD_TRUNCATE_DATE:
                                x->hint = xstrdup("truncate_date takes date, timestamp or timestamptz.");
                                break;
                        default:
                                x->hint = xasprintf("%s takes text (text, varchar, char, citext); for a column of type %s, use null%s.",
                                                    mn, c->type, c->not_null ? " (after dropping its NOT NULL)" : "");
                        }
                } else if (cm->method == METHOD_NULL && c->not_null) {
                        PlanFinding *x = finding(fs, true, &cm->loc,
                                                 xasprintf("rule \"%s\": method null on column %s.%s, which is NOT NULL", r->name, tn, cn));
                        x->hint = c->kind == COLKIND_TEXT
                                          ? xstrdup("Use { redact: \"...\" } to overwrite the value with a constant, or hash.")
                                          : xstrdup("Drop the NOT NULL constraint, or leave the column out.");
                } else {
                        long limit = char_limit(c->type);
                        size_t len = cm->method == METHOD_REDACT ? utf8_chars(cm->redact_value)
                                     : cm->method == METHOD_HASH ? strlen("hmac-sha256:") + 64
                                                                 : 0;
                        if (limit > 0 && len > (size_t) limit) {
                                PlanFinding *x = finding(
                                        fs, true, &cm->loc,
                                        xasprintf("rule \"%s\": method %s writes %zu characters into column %s.%s of type %s", r->name,
                                                  mn, len, tn, cn, c->type));
                                x->hint = cm->method == METHOD_REDACT
                                                  ? xasprintf("Write a constant of at most %ld characters.", limit)
                                                  : xstrdup("Widen the column to at least 76 characters, or use redact or null.");
                        }
                }
                if (streq(cm->column, r->column))
                        finding(fs, true, &cm->loc,
                                xasprintf("rule \"%s\": column %s is the rule's age column and cannot be anonymised", r->name, cn));
        }
}

/* A where the loader did not check (a Rule built elsewhere) is refused here, before any statement
 * pastes it: its own, and that of every other delete rule whose where this rule's statements carry. */
static void check_where_lexically(const Rule *r, const Rule *of, Findings *fs) {
        size_t off = 0;
        SqlFragError e = of->where ? sqlfrag_check(of->where, &off) : SQLFRAG_OK;
        if (e == SQLFRAG_OK)
                return;
        if (of == r)
                finding(fs, true, &r->where_loc,
                        xasprintf("rule \"%s\": \"where\" %s (at byte %zu)", r->name, sqlfrag_error_to_string(e), off));
        else
                finding(fs, true, &r->where_loc,
                        xasprintf("rule \"%s\": the \"where\" of rule \"%s\", which also deletes from its table, %s (at byte %zu)",
                                  r->name, of->name, sqlfrag_error_to_string(e), off));
}

/* ---- code of other roles ---- */

char *untrusted_describe(const CatUntrusted *c) {
        switch (c->kind) {
        case CAT_CODE_TRIGGER:
                return xasprintf("trigger \"%s\" on %s (function %s, owned by role \"%s\")", c->name, c->relation,
                                 c->function ? c->function : "?", c->owner);
        case CAT_CODE_RULE:
                return xasprintf("rule \"%s\" on %s (owned by role \"%s\", the table's owner)", c->name, c->relation, c->owner);
        case CAT_CODE_RLS:
                return c->name[0] ? xasprintf("row-level security on %s (policies %s, owned by role \"%s\", the table's owner)",
                                              c->relation, c->name, c->owner)
                                  : xasprintf("row-level security on %s (owned by role \"%s\", the table's owner)",
                                              c->relation, c->owner);
        }
        return xstrdup("code");
}

void untrusted_uses_free(UntrustedUse *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i].when);
        free(v);
}

typedef struct UntrustedWalk {
        const CatCache *cache;
        UntrustedUse *uses;
        size_t n_uses;
        uint32_t *seen; /* oids walked, with their events: a table reached twice the same way adds nothing */
        unsigned *seen_events;
        size_t n_seen;
} UntrustedWalk;

static void untrusted_walk(UntrustedWalk *w, const CatTable *t, unsigned events, const char *when, unsigned depth) {
        for (size_t i = 0; i < w->n_seen; i++)
                if (w->seen[i] == t->oid && (w->seen_events[i] & events) == events)
                        return;
        w->seen = xreallocarray(w->seen, w->n_seen + 1, sizeof(uint32_t));
        w->seen_events = xreallocarray(w->seen_events, w->n_seen + 1, sizeof(unsigned));
        w->seen[w->n_seen] = t->oid;
        w->seen_events[w->n_seen++] = events;

        for (size_t i = 0; i < t->n_untrusted; i++) {
                const CatUntrusted *c = &t->untrusted[i];
                if (!(c->events & events))
                        continue;
                bool dup = false;
                for (size_t j = 0; j < w->n_uses; j++)
                        dup = dup || w->uses[j].code == c;
                if (dup)
                        continue;
                w->uses = xreallocarray(w->uses, w->n_uses + 1, sizeof(UntrustedUse));
                w->uses[w->n_uses++] = (UntrustedUse) { .code = c, .when = xstrdup(when) };
        }
        if (!(events & CAT_EVENT_DELETE) || depth >= 5)
                return;
        /* What a delete of t's rows does to the tables that reference them. */
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                const CatForeignKey *fk = &t->referenced_by[i];
                if (fk->on_delete != 'c' && fk->on_delete != 'n' && fk->on_delete != 'd')
                        continue;
                const CatTable *child = cat_cache_find_oid(w->cache, fk->child_oid);
                if (!child)
                        continue;
                _cleanup_free_ char *cn = qualified_name_display(&child->name);
                _cleanup_free_ char *w2 =
                        fk->on_delete == 'c'
                                ? xasprintf("when a delete from %s cascades into %s (constraint %s)", tn, cn, fk->name)
                                : xasprintf("when a delete from %s sets %s in %s (constraint %s)", tn,
                                            fk->on_delete == 'n' ? "NULL" : "DEFAULT", cn, fk->name);
                untrusted_walk(w, child, fk->on_delete == 'c' ? CAT_EVENT_DELETE | CAT_EVENT_READ : CAT_EVENT_UPDATE | CAT_EVENT_READ,
                               w2, depth + 1);
        }
}

static void untrusted_walk_rule(UntrustedWalk *w, const Rule *r);

size_t plan_untrusted(const Rule *r, const CatCache *cache, UntrustedUse **ret) {
        UntrustedWalk w = { .cache = cache };
        untrusted_walk_rule(&w, r);
        free(w.seen);
        free(w.seen_events);
        *ret = w.uses;
        return w.n_uses;
}

size_t plan_untrusted_tables(const Rule *r, const CatCache *cache, uint32_t **ret) {
        UntrustedWalk w = { .cache = cache };
        untrusted_walk_rule(&w, r);
        untrusted_uses_free(w.uses, w.n_uses);
        free(w.seen_events);
        /* distinct oids, in the order first walked */
        size_t n = 0;
        for (size_t i = 0; i < w.n_seen; i++) {
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                        dup = dup || w.seen[j] == w.seen[i];
                if (!dup)
                        w.seen[n++] = w.seen[i];
        }
        *ret = w.seen;
        return n;
}

static void untrusted_walk_rule(UntrustedWalk *w, const Rule *r) {
        const CatCache *cache = w->cache;
        const CatTable *t = cat_cache_find_name(cache, &r->table);
        if (t) {
                unsigned events = CAT_EVENT_READ;
                if (r->action == ACTION_DELETE)
                        events |= CAT_EVENT_DELETE;
                if (r->action == ACTION_ANONYMISE || r->has_while_held)
                        events |= CAT_EVENT_UPDATE;
                _cleanup_free_ char *tn = qualified_name_display(&t->name);
                _cleanup_free_ char *when = xasprintf("when the rule %s rows of %s",
                                                      r->action == ACTION_ANONYMISE ? "anonymises"
                                                      : r->has_while_held         ? "deletes or anonymises"
                                                                                  : "deletes",
                                                      tn);
                untrusted_walk(w, t, events, when, 0);
        }
        /* The rows that refer to the rule's rows (`referenced_by`) are read in every statement. */
        const CatTable *rft = r->has_referrer ? cat_cache_find_name(cache, &r->referrer.table) : NULL;
        if (rft) {
                _cleanup_free_ char *rn = qualified_name_display(&rft->name);
                _cleanup_free_ char *when = xasprintf("when the rule reads %s for the subjects of its rows", rn);
                untrusted_walk(w, rft, CAT_EVENT_READ, when, 5);
        }
        /* The rows deleted with the rule's rows (`delete_with:`), and every table that refers to
         * them, read for the references that stay. */
        for (size_t i = 0; t && r->action == ACTION_DELETE && i < r->n_delete_with; i++) {
                const CatTable *wt = cat_cache_find_name(cache, &r->delete_with[i].table);
                if (!wt)
                        continue;
                _cleanup_free_ char *wn = qualified_name_display(&wt->name);
                _cleanup_free_ char *when = xasprintf("when the rule deletes rows of %s with its own", wn);
                untrusted_walk(w, wt, CAT_EVENT_DELETE | CAT_EVENT_READ, when, 0);
                for (size_t j = 0; j < wt->n_referenced_by; j++) {
                        const CatTable *ct = cat_cache_find_oid(cache, wt->referenced_by[j].child_oid);
                        _cleanup_free_ char *rwhen = xasprintf("when the rule reads the rows that refer to %s", wn);
                        if (ct)
                                untrusted_walk(w, ct, CAT_EVENT_READ, rwhen, 5);
                }
        }
        /* The evidence of its derived holds is read in every statement: only row-level security
         * runs there. */
        for (size_t i = 0; i < r->n_holds; i++) {
                const Hold *h = r->holds[i];
                const CatTable *ht = h->registry ? NULL : cat_cache_find_name(cache, &h->table);
                if (!ht)
                        continue;
                _cleanup_free_ char *hn = qualified_name_display(&ht->name);
                _cleanup_free_ char *when = xasprintf("when the rule reads %s for hold \"%s\"", hn, h->name);
                untrusted_walk(w, ht, CAT_EVENT_READ, when, 5);
        }
}

/* "Did you mean" among the columns of rt through which a foreign key of one column refers to t. */
static char *referrer_hint(const CatTable *t, const CatTable *rt, const char *column) {
        _cleanup_free_ const char **names = xcalloc(t->n_referenced_by + 1, sizeof(char *));
        size_t n = 0;
        for (size_t i = 0; i < t->n_referenced_by; i++)
                if (t->referenced_by[i].child_oid == rt->oid && t->referenced_by[i].n_columns == 1)
                        names[n++] = t->referenced_by[i].child_columns[0];
        const char *c = closest_name(column, names, n);
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *rn = qualified_name_display(&rt->name);
        _cleanup_free_ char *cn = ident_display(column);
        if (c) {
                _cleanup_free_ char *d = ident_display(c);
                return xasprintf("Did you mean \"%s\"?", d);
        }
        if (n == 1) {
                _cleanup_free_ char *d = ident_display(names[0]);
                return xasprintf("The foreign key of %s that refers to %s is on column %s.", rn, tn, d);
        }
        return xasprintf("\"referenced_by\" follows a foreign key: ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s;", rn, cn, tn);
}

/* A rule's `referenced_by:` against the catalog: the table, its column, the foreign key through
 * which it refers to the rule's table, the subject's key in it, its index, the privilege to read it. */
static void check_referrer_catalog(const Rule *r, const CatTable *t, const CatCache *cache, Findings *fs) {
        const Referrer *x = &r->referrer;
        const CatTable *rt = cat_cache_find_name(cache, &x->table);
        _cleanup_free_ char *rn = qualified_name_display(&x->table);
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        const Location *tl = x->table_loc.line ? &x->table_loc : &x->loc, *cl = x->column_loc.line ? &x->column_loc : &x->loc;
        PlanFinding *f;
        if (!rt) {
                f = finding(fs, true, tl, xasprintf("rule \"%s\": relation \"%s\" does not exist", r->name, rn));
                f->missing_table = &x->table;
                return;
        }
        _cleanup_free_ char *cn = ident_display(x->column);
        if (!cat_table_column(rt, x->column)) {
                f = finding(fs, true, cl, xasprintf("rule \"%s\": column \"%s\" does not exist in table %s", r->name, cn, rn));
                f->hint = column_hint(rt, x->column);
        } else if (!referrer_fk(cache, t, r)) {
                f = finding(fs, true, cl,
                            xasprintf("rule \"%s\": no foreign key of %s refers to %s through column %s alone", r->name, rn, tn, cn));
                f->hint = referrer_hint(t, rt, x->column);
        } else if (!cat_table_has_index_on(rt, x->column))
                finding(fs, false, cl,
                        xasprintf("rule \"%s\": no index on %s (%s): every check of a row's subjects reads the table;"
                                  " fix: CREATE INDEX CONCURRENTLY ON %s (%s);",
                                  r->name, rn, cn, rn, cn));
        const char *sc = x->subject_column ? x->subject_column : r->subject->key;
        if (!cat_table_column(rt, sc)) {
                _cleanup_free_ char *scd = ident_display(sc);
                f = finding(fs, true, x->subject_column ? &x->subject_column_loc : tl,
                            xasprintf("rule \"%s\": subject column \"%s\" does not exist in table %s", r->name, scd, rn));
                f->hint = column_hint(rt, sc);
        }
        if (!rt->can_select)
                finding(fs, true, tl, xasprintf("rule \"%s\": permission denied: the role cannot SELECT from %s", r->name, rn))
                        ->permission = true;
        if (cat_table_is_citus(t) || cat_table_is_citus(rt))
                finding(fs, true, &x->loc,
                        xasprintf("rule \"%s\": \"referenced_by\" on tables of Citus is not supported (%s, %s)", r->name, tn, rn));
}

/* "Did you mean" among the columns of t through which a foreign key of one column refers to w. */
static char *with_hint(const CatTable *t, const CatTable *w, const char *through) {
        _cleanup_free_ const char **names = xcalloc(w->n_referenced_by + 1, sizeof(char *));
        size_t n = 0;
        for (size_t i = 0; i < w->n_referenced_by; i++)
                if (w->referenced_by[i].child_oid == t->oid && w->referenced_by[i].n_columns == 1)
                        names[n++] = w->referenced_by[i].child_columns[0];
        const char *c = closest_name(through, names, n);
        if (c || n == 1) {
                _cleanup_free_ char *d = ident_display(c ? c : names[0]);
                return c ? xasprintf("Did you mean \"%s\"?", d) : xasprintf("The foreign key to that table is on column %s.", d);
        }
        _cleanup_free_ char *tn = qualified_name_display(&t->name), *wn = qualified_name_display(&w->name);
        _cleanup_free_ char *cn = ident_display(through);
        return xasprintf("\"delete_with\" follows a foreign key: ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s;", tn, cn, wn);
}

/* Every foreign key into a `delete_with:` table: one that would delete or change rows (CASCADE, SET
 * NULL, SET DEFAULT) is refused, since a row that came to refer to the deleted one after the
 * statement's snapshot would go or change with it; the engine must be able to read every
 * referring table (each is read for the references that stay). */
static void check_with_referrers(const Rule *r, const DeleteWith *x, const CatTable *w, const CatCache *cache, Findings *fs) {
        _cleanup_free_ char *wn = qualified_name_display(&w->name);
        const Location *tl = x->table_loc.line ? &x->table_loc : &x->loc;
        for (size_t i = 0; i < w->n_referenced_by; i++) {
                const CatForeignKey *fk = &w->referenced_by[i];
                _cleanup_free_ char *cn = qualified_name_display(&fk->child);
                if (!fk_restricts(fk)) {
                        const char *how = fk->on_delete == 'c' ? "CASCADE" : fk->on_delete == 'n' ? "SET NULL" : "SET DEFAULT";
                        PlanFinding *f = finding(fs, true, tl,
                                                 xasprintf("rule \"%s\": %s cannot be deleted with the rule's rows: foreign key %s of %s"
                                                           " is ON DELETE %s",
                                                           r->name, wn, fk->name, cn, how));
                        f->hint = xasprintf("A row of %s that comes to refer to a row of %s while the rule deletes it would be %s"
                                            " with it, unchecked. Make the foreign key ON DELETE NO ACTION or RESTRICT (PostgreSQL"
                                            " then refuses such a delete, and the rule skips the row), or remove this entry.",
                                            cn, wn, fk->on_delete == 'c' ? "deleted" : "changed");
                        continue;
                }
                const CatTable *ct = cat_cache_find_oid(cache, fk->child_oid);
                if (!ct || !ct->can_select)
                        finding(fs, true, tl,
                                xasprintf("rule \"%s\": permission denied: the role cannot SELECT from %s, which refers to %s"
                                          " (constraint %s): the rule reads it for the references that stay",
                                          r->name, cn, wn, fk->name))
                                ->permission = true;
                else if (fk->n_columns == 1 && !cat_table_has_index_on(ct, fk->child_columns[0]))
                        finding(fs, false, tl,
                                xasprintf("rule \"%s\": no index on %s (%s): every row deleted with the rule's rows reads the"
                                          " table; fix: CREATE INDEX CONCURRENTLY ON %s (%s);",
                                          r->name, cn, fk->child_columns[0], cn, fk->child_columns[0]));
        }
}

/* A delete rule's `delete_with:` against the catalog: the table, the column of the rule's table
 * and its foreign key to it, the foreign keys into it, the privileges, Citus (refused). */
static void check_delete_with_catalog(const Rule *r, const CatTable *t, const CatCache *cache, Findings *fs) {
        for (size_t i = 0; i < r->n_delete_with; i++) {
                const DeleteWith *x = &r->delete_with[i];
                const CatTable *w = cat_cache_find_name(cache, &x->table);
                _cleanup_free_ char *wn = qualified_name_display(&x->table);
                _cleanup_free_ char *tn = qualified_name_display(&t->name);
                const Location *tl = x->table_loc.line ? &x->table_loc : &x->loc;
                const Location *cl = x->through_loc.line ? &x->through_loc : &x->loc;
                PlanFinding *f;
                if (!w) {
                        f = finding(fs, true, tl, xasprintf("rule \"%s\": relation \"%s\" does not exist", r->name, wn));
                        f->missing_table = &x->table;
                        continue;
                }
                _cleanup_free_ char *cn = ident_display(x->through);
                if (!cat_table_column(t, x->through)) {
                        f = finding(fs, true, cl, xasprintf("rule \"%s\": column \"%s\" does not exist in table %s", r->name, cn, tn));
                        f->hint = column_hint(t, x->through);
                } else if (!with_fk(t, w, x->through)) {
                        f = finding(fs, true, cl,
                                    xasprintf("rule \"%s\": no foreign key of %s refers to %s through column %s alone", r->name, tn,
                                              wn, cn));
                        f->hint = with_hint(t, w, x->through);
                }
                if (cat_table_is_citus(t) || cat_table_is_citus(w))
                        finding(fs, true, &x->loc,
                                xasprintf("rule \"%s\": \"delete_with\" on tables of Citus is not supported (%s, %s)", r->name, tn, wn));
                if (!w->can_delete)
                        finding(fs, true, tl, xasprintf("rule \"%s\": permission denied: the role cannot DELETE from %s", r->name, wn))
                                ->permission = true;
                /* A foreign key may refer to a partition or an inheriting table alone, and a
                 * partition's rows are reached through its parent's foreign keys too: what refers
                 * to such rows is not what refers to the table. Refused rather than half-checked. */
                if (w->relkind == 'p' || w->has_children || w->is_partition) {
                        f = finding(fs, true, tl,
                                    xasprintf("rule \"%s\": \"delete_with\" on %s, which %s, is not supported", r->name, wn,
                                              w->is_partition ? "is a partition"
                                              : w->relkind == 'p' ? "is partitioned"
                                                                  : "has inheriting tables"));
                        f->hint = xstrdup("delete_with deletes from one plain table, whose foreign keys are all the references"
                                          " to its rows; delete the rows of a partitioned table with a rule of their own.");
                }
                check_with_referrers(r, x, w, cache, fs);
        }
}

/* The rule's subject key in its own table (subject_column, or the subject's key). */
static void check_subject_catalog(const Rule *r, const CatTable *t, Findings *fs) {
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        const char *sc = r->subject_column ? r->subject_column : r->subject->key;
        if (!cat_table_column(t, sc)) {
                _cleanup_free_ char *scd = ident_display(sc);
                PlanFinding *x = finding(fs, true, r->subject_column ? &r->subject_column_loc : &r->subject->loc,
                            xasprintf("rule \"%s\": subject column \"%s\" does not exist in table %s", r->name, scd, tn));
                x->hint = column_hint(t, sc);
        }
}

/* The evidence tables of the rule's derived holds: the table, its age and subject columns, the index. */
static void check_hold_tables(const Rule *r, const CatCache *cache, Findings *fs) {
        PlanFinding *x;
        for (size_t i = 0; i < r->n_holds; i++) {
                const Hold *h = r->holds[i];
                if (h->registry)
                        continue;
                const CatTable *ht = cat_cache_find_name(cache, &h->table);
                _cleanup_free_ char *hn = qualified_name_display(&h->table);
                if (!ht) {
                        x = finding(fs, true, h->table_loc.line ? &h->table_loc : &h->loc,
                                    xasprintf("hold \"%s\": relation \"%s\" does not exist", h->name, hn));
                        x->missing_table = &h->table;
                        continue;
                }
                const CatColumn *hc = cat_table_column(ht, h->column);
                if (!hc || !kind_sql_type(hc->kind)) {
                        x = finding(fs, true, h->column_loc.line ? &h->column_loc : &h->loc,
                                    xasprintf("hold \"%s\": column \"%s\" of %s must exist and be timestamptz, timestamp or date",
                                              h->name, h->column, hn));
                        if (!hc)
                                x->hint = column_hint(ht, h->column);
                }
                if (!cat_table_column(ht, h->subject_column)) {
                        x = finding(fs, true, h->subject_column_loc.line ? &h->subject_column_loc : &h->loc,
                                    xasprintf("hold \"%s\": subject column \"%s\" does not exist in table %s", h->name,
                                              h->subject_column, hn));
                        x->hint = column_hint(ht, h->subject_column);
                } else if (!cat_table_has_index_on(ht, h->subject_column))
                        finding(fs, false, h->subject_column_loc.line ? &h->subject_column_loc : &h->loc,
                                xasprintf("hold \"%s\": no index on %s (%s): every held-row check reads the table;"
                                          " fix: CREATE INDEX CONCURRENTLY ON %s (%s);",
                                          h->name, hn, h->subject_column, hn, h->subject_column));
        }
}

size_t plan_check_rule_findings(const Policy *policy, const Rule *r, const CatCache *cache, PlanFinding **ret, size_t *n_ret) {
        Findings fs = { .v = *ret, .n = *n_ret };
        size_t n_errors = 0;
        const CatTable *t = cat_cache_find_name(cache, &r->table);
        _cleanup_free_ char *rt = qualified_name_display(&r->table);
        PlanFinding *x;
        if (!t) {
                x = finding(&fs, true, &r->table_loc, xasprintf("rule \"%s\": relation \"%s\" does not exist", r->name, rt));
                x->missing_table = &r->table;
                *ret = fs.v;
                *n_ret = fs.n;
                return 1;
        }
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *an = ident_display(r->column);
        const CatColumn *age = cat_table_column(t, r->column);
        if (!age) {
                x = finding(&fs, true, &r->column_loc,
                            xasprintf("rule \"%s\": column \"%s\" does not exist in table %s", r->name, an, tn));
                x->hint = column_hint(t, r->column);
        } else if (!kind_sql_type(age->kind))
                finding(&fs, true, &r->column_loc,
                        xasprintf("rule \"%s\": age column %s.%s has type %s; it must be timestamptz, timestamp or date", r->name,
                                  tn, an, age->type));
        else if (!cat_table_has_index_on(t, r->column))
                finding(&fs, false, &r->column_loc,
                        xasprintf("rule \"%s\": no index serves the age column %s.%s, so every run reads the whole table;"
                                  " fix: CREATE INDEX CONCURRENTLY ON %s (%s);",
                                  r->name, tn, an, tn, an));

        if (r->action == ACTION_ANONYMISE)
                check_columns(r, t, r->columns, r->n_columns, &fs);
        if (r->has_while_held)
                check_columns(r, t, r->while_held_columns, r->n_while_held_columns, &fs);

        check_delete_with_catalog(r, t, cache, &fs);
        if (r->subject && r->has_referrer)
                check_referrer_catalog(r, t, cache, &fs);
        else if (r->subject)
                check_subject_catalog(r, t, &fs);
        check_hold_tables(r, cache, &fs);

        if (!t->can_select)
                finding(&fs, true, &r->loc, xasprintf("rule \"%s\": permission denied: the role cannot SELECT from %s", r->name, tn))
                        ->permission = true;
        if (r->action == ACTION_DELETE && !t->can_delete)
                finding(&fs, true, &r->loc, xasprintf("rule \"%s\": permission denied: the role cannot DELETE from %s", r->name, tn))
                        ->permission = true;
        if ((r->action == ACTION_ANONYMISE || r->has_while_held) && !t->can_update)
                finding(&fs, true, &r->loc, xasprintf("rule \"%s\": permission denied: the role cannot UPDATE %s", r->name, tn))
                        ->permission = true;

        if (r->action == ACTION_DELETE)
                for (size_t i = 0; i < t->n_referenced_by; i++) {
                        const CatForeignKey *fk = &t->referenced_by[i];
                        _cleanup_free_ char *cn = qualified_name_display(&fk->child);
                        if (fk_restricts(fk))
                                finding(&fs, false, &r->loc,
                                        xasprintf("rule \"%s\": rows of %s referenced from %s (constraint %s, ON DELETE %s)"
                                                  " cannot be deleted while referenced; they are skipped and reported",
                                                  r->name, tn, cn, fk->name, fk->on_delete == 'r' ? "RESTRICT" : "NO ACTION"));
                        else if (!cat_cache_find_oid(cache, fk->child_oid))
                                finding(&fs, false, &r->loc,
                                        xasprintf("rule \"%s\": deleting from %s cascades into %s (constraint %s)", r->name, tn, cn,
                                                  fk->name));
                }
        /* Citus: a delete whose rows other tables reference is isolated row by row, by ctid, when
         * a reference blocks a batch (isolate_foreign_keys()); a ctid names no row across a
         * distributed table's shards or a reference table's copies. Refused rather than risked. */
        if (r->action == ACTION_DELETE && cat_table_is_citus(t) && t->n_referenced_by > 0) {
                _cleanup_free_ char *cn = qualified_name_display(&t->referenced_by[0].child);
                x = finding(&fs, true, &r->table_loc,
                            xasprintf("rule \"%s\": %s is a %s table of Citus that foreign keys reference (%s, constraint %s):"
                                      " deleting from it is not supported",
                                      r->name, tn, cat_dist_kind_to_string(t->dist), cn, t->referenced_by[0].name));
                x->hint = xstrdup("A referenced row is isolated by its ctid, which names no row across Citus's shards and"
                                  " copies. Delete the referencing rows first with their own rule, and drop the foreign key,"
                                  " or enforce this table's retention another way.");
        }
        check_where_lexically(r, r, &fs);
        if (r->action == ACTION_DELETE)
                for (size_t i = 0; i < policy->n_rules; i++) {
                        const Rule *o = &policy->rules[i];
                        const CatTable *ot = o != r && o->action == ACTION_DELETE ? cat_cache_find_name(cache, &o->table) : NULL;
                        if (ot && ot->oid == t->oid)
                                check_where_lexically(r, o, &fs);
                }

        /* Code of another role that would run as this role: refused unless the rule trusts it. */
        UntrustedUse *uses = NULL;
        size_t n_uses = plan_untrusted(r, cache, &uses);
        for (size_t i = 0; i < n_uses; i++) {
                _cleanup_free_ char *what = untrusted_describe(uses[i].code);
                if (r->trust_triggers)
                        finding(&fs, false, &r->loc,
                                xasprintf("rule \"%s\": %s runs with this role's privileges %s (trusted: trust_triggers is true)",
                                          r->name, what, uses[i].when));
                else
                        finding(&fs, true, &r->loc,
                                xasprintf("rule \"%s\": %s would run with this role's privileges %s; the owner is neither this"
                                          " role nor a superuser",
                                          r->name, what, uses[i].when));
        }
        untrusted_uses_free(uses, n_uses);
        for (size_t i = *n_ret; i < fs.n; i++)
                n_errors += fs.v[i].error;
        *ret = fs.v;
        *n_ret = fs.n;
        return n_errors;
}

size_t plan_check_rule(const Policy *policy, const Rule *r, const CatCache *cache, char ***errors, size_t *n_errors,
                       char ***warnings, size_t *n_warnings) {
        PlanFinding *v = NULL;
        size_t n = 0, before = *n_errors;
        plan_check_rule_findings(policy, r, cache, &v, &n);
        for (size_t i = 0; i < n; i++) {
                if (v[i].error)
                        add_msg(errors, n_errors, TAKE_PTR(v[i].message));
                else
                        add_msg(warnings, n_warnings, TAKE_PTR(v[i].message));
        }
        plan_findings_free(v, n);
        return *n_errors - before;
}

/* ---- plan ---- */

void plan_free(Plan *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_slots; i++) {
                free(p->slots[i].interval);
                free(p->slots[i].interval2);
        }
        free(p->slots);
        plan_statement_done(&p->cutoffs);
        plan_statement_done(&p->batch);
        plan_statement_done(&p->batch_range);
        plan_statement_done(&p->batch_bound);
        plan_statement_done(&p->batch_step);
        plan_statement_done(&p->batch_start);
        plan_statement_done(&p->batch_first);
        plan_statement_done(&p->while_held_start);
        plan_statement_done(&p->while_held_batch);
        plan_statement_done(&p->while_held_bound);
        plan_statement_done(&p->while_held_range);
        plan_statement_done(&p->breaker_count);
        plan_statement_done(&p->breaker_estimate);
        plan_statement_done(&p->idle_probe);
        plan_statement_done(&p->cutoffs_probe);
        plan_statement_done(&p->tally);
        plan_statement_done(&p->skipped_locked);
        plan_statement_done(&p->row_by_row_select);
        plan_statement_done(&p->row_by_row_delete);
        plan_statement_done(&p->partitions);
        for (size_t i = 0; i < p->n_tally_holds; i++)
                free(p->tally_holds[i]);
        free(p->tally_holds);
        for (size_t i = 0; i < p->n_tally_fks; i++)
                free(p->tally_fks[i]);
        free(p->tally_fks);
        for (size_t i = 0; i < p->n_tally_with; i++)
                free(p->tally_with[i]);
        free(p->tally_with);
        for (size_t i = 0; i < p->n_warnings; i++)
                free(p->warnings[i]);
        free(p->warnings);
        free(p);
}

/* The statement's change, as the CTE `changed` for alias `a`: DELETE FROM, or UPDATE ... SET with
 * the anonymisation of `cols`. */
static char *change_head(Gen *g, const char *tq, const char *a, bool delete, const ColumnMethod *cols, size_t n) {
        if (delete)
                return xasprintf("DELETE FROM %s %s", tq, a);
        _cleanup_free_ char *set = set_list(g, cols, n, a);
        return xasprintf("UPDATE %s %s SET %s", tq, a, set);
}

/* How many rows a SKIP LOCKED batch changed: every row its DELETE removed; of the rows its UPDATE
 * wrote, those anonymised as they are now (`changed` returns `ok`, the done predicate on the row
 * written). A BEFORE UPDATE trigger of the table may have put an old value back (a column it
 * keeps unchanged): such a row was written but not anonymised; it is neither counted in the trail
 * nor taken for progress, so a batch that found only such rows ends the phase (the stall rule of
 * rule_run_step()) instead of selecting them again forever. */
#define CHANGED_ROWS "(SELECT count(*) FROM changed)"
#define CHANGED_OK_ROWS "(SELECT count(*) FROM changed WHERE ok)"
#define CHANGED_COUNT(del) ((del) ? CHANGED_ROWS : CHANGED_OK_ROWS)

/* The CTE that adds the batch's count to the audit trail in the batch's own transaction, so
 * the trail never claims more than happened: rows deleted (or anonymised) and one batch, through
 * retention.add_rule_run_counts() (the engine's role writes the trail only through its functions).
 * A CTE that changes nothing runs only when used: the statement selects FROM trail (TRAIL_FROM). */
static char *trail_cte(bool delete, const char *rule_run_param) {
        return xasprintf(", trail AS (SELECT retention.add_rule_run_counts(%s::bigint, %s, %s, 1, 0) AS rule_run)",
                         rule_run_param, delete ? CHANGED_ROWS : "0", delete ? "0" : CHANGED_OK_ROWS);
}
#define TRAIL_FROM " FROM trail"

/* The fast path, two statements in the batch's transaction. batch_bound: the upper end of the
 * range of the next batch_size actionable rows by age (NULL: the range reaches the cutoff), whether
 * the range is one age value shared by at least batch_size rows (then it could hold any number of
 * rows: the caller takes that batch with the SKIP LOCKED statement, whose LIMIT is exact), and the
 * number of actionable rows it found from the last key on, at most batch_size (0: nothing is left
 * to change, the range statement need not run). A rule without holds, references, other rules or
 * an anonymisation to check probes the age index alone (index-only). The aggregate keeps the probe
 * a subquery of its own: pulled up, it was copied into every use of its value and ran three times
 * per batch (EXPLAIN ANALYZE: three InitPlans, 2.2 of a 10,000-row batch's 8.5 ms). batch_range: the plain DELETE (or UPDATE) of every
 * actionable row of that range, with the same predicates a bulk DELETE would have; its count is
 * the command tag's. No RETURNING and
 * no CTE: collecting the changed rows for a count cost 40 % more than the change itself
 * (EXPLAIN ANALYZE, 10,000-row batches: 8.4 ms against 6.0 ms). It waits for a row the
 * application has locked only up to lock_timeout; the caller then redoes the batch with the
 * SKIP LOCKED statement. */
/* The fast path's bound statement (see build_batch_range()) over the rows `act` selects (alias t),
 * whose parameters are registered already. */
static void finish_bound(Gen *g, const Rule *r, PlanStatement *st, const char *act) {
        Plan *p = g->plan;
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        const char *ty = kind_sql_type(p->age_kind);
        const char *eps = p->age_kind == COLKIND_DATE ? "1" : "interval '1 microsecond'";
        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
        _cleanup_free_ char *lim = param(g, PARAM_LIMIT, 0, NULL, "batch size");
        /* The fourth column, the span of the rows found (first to last age) in the width's unit,
         * gives the rows' density, from which the next ranges may be predicted (batch_step). */
        const char *span = p->age_kind == COLKIND_DATE ? "s.b - s.a" : "(extract(epoch FROM s.b - s.a) * 1000000)::bigint";
        _cleanup_free_ char *spanc = xasprintf("CASE WHEN isfinite(s.a) AND isfinite(s.b) THEN %s END", span);
        /* The LIMIT's value goes through a subquery, out of the planner's sight: seen, a small one
         * (10 rows: a rule's batch_size may be that small) was planned as if that many rows would
         * come at once, as a nested loop that looks each row up in every partition of a
         * referencing table, which walks every due row when most of them are kept (the
         * benchmark's rentals, a repeat run: 161 ms against 6 ms with the hash anti-join a LIMIT
         * it cannot see is planned with; at 100 rows it chose the hash anti-join either way). */
        finish_statement(g, st,
                         xasprintf("SELECT (CASE WHEN s.n < %s::bigint OR s.b IS NULL THEN NULL WHEN s.b = %s::%s"
                                   " THEN s.b + %s ELSE s.b END)::text, coalesce(s.n >= %s::bigint AND s.b = %s::%s, false),"
                                   " s.n, %s FROM (SELECT min(q.k) AS a, max(q.k) AS b, count(*) AS n FROM (SELECT %s AS k"
                                   " FROM %s t WHERE %s >= %s::%s AND %s ORDER BY %s LIMIT (SELECT %s::bigint)) q) s",
                                   lim, last, ty, eps, lim, last, ty, spanc, age, tq, age, last, ty, act, age, lim));
}

/* Citus, a distributed table: the fast path's batches are slices of the age span (Plan.slices),
 * and the bound probe's ORDER BY ... LIMIT, which Citus answers by shipping up to batch_size keys
 * from every shard to the coordinator, is never run. `st`: one aggregate over the rows `act`
 * selects (alias t, its parameters registered already), from the last key on when `from_last`:
 * their number, their first age (as text), and the span from it to the cutoff in the width's unit
 * (microseconds; days for a date column; NULL when the first age is -infinity). Citus computes
 * count() and min() on every shard and combines them on the coordinator. The breaker's count is
 * the same statement from the start (slices.c takes the first slice from it). Without `count`, the
 * number is NULL and the statement an index probe on every shard (batch_first: the breaker's
 * estimate gives the number). */
static void finish_slice_start(Gen *g, const Rule *r, PlanStatement *st, const char *act, bool from_last, bool count) {
        Plan *p = g->plan;
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        const char *ty = kind_sql_type(p->age_kind);
        _cleanup_free_ char *last = from_last ? param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached") : NULL;
        _cleanup_free_ char *from = last ? xasprintf("%s >= %s::%s AND ", age, last, ty) : xstrdup("");
        size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(g, cut, p->age_kind);
        _cleanup_free_ char *span = p->age_kind == COLKIND_DATE
                                            ? xasprintf("%s - s.m", ce)
                                            : xasprintf("(extract(epoch FROM %s - s.m) * 1000000)::bigint", ce);
        finish_statement(g, st,
                         xasprintf("SELECT s.n, s.m::text, CASE WHEN isfinite(s.m) THEN %s END FROM (SELECT %s AS n,"
                                   " min(%s) AS m FROM %s t WHERE %s%s) s",
                                   span, count ? "count(*)" : "NULL::bigint", age, tq, from, act));
}

/* Slices: the bound, the slice's upper end: the last key plus the width, computed on the
 * coordinator alone, in finish_bound()'s three columns (the upper end, never a tie, and a
 * non-zero count so that the range statement runs). NULL once it reaches the cutoff: then the
 * range statement ends at the cutoff exclusive (its own `age < cutoff`), never beyond. A slice's
 * ends are age values: every row is in exactly one slice, ties and all. */
static void finish_slice_bound(Gen *g, const Rule *r, PlanStatement *bound) {
        Plan *p = g->plan;
        const char *ty = kind_sql_type(p->age_kind);
        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
        _cleanup_free_ char *w = param(g, PARAM_WIDTH, 0, NULL, "slice width (microseconds; days for a date column)");
        size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(g, cut, p->age_kind);
        _cleanup_free_ char *h = p->age_kind == COLKIND_DATE ? xasprintf("%s::date + %s::int", last, w)
                                                             : xasprintf("%s::%s + %s::bigint * interval '1 microsecond'", last, ty, w);
        finish_statement(g, bound, xasprintf("SELECT CASE WHEN s.h < %s THEN s.h::text END, false, 1 FROM (SELECT %s AS h) s", ce, h));
}

/* A ctid names a row only within one relation: with partitions or inheriting tables, a batch's
 * rows are matched by (tableoid, ctid). */
static bool by_tableoid(const Plan *p) {
        return p->partitioned || p->table->has_children;
}

static void build_batch_range(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        /* `delete_with:` deletes other tables' rows in the batch's statement, which needs the
         * deleted rows (RETURNING): the SKIP LOCKED batch, never the plain range DELETE. */
        if (r->n_delete_with > 0)
                return;
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        const char *ty = kind_sql_type(p->age_kind);

        if (p->slices) {
                Preds ps;
                preds_build(g, r, "t", &ps);
                _cleanup_free_ char *acts = actionable_expr(&ps);
                finish_slice_start(g, r, &p->batch_start, acts, true, true);
                preds_done(&ps);
                preds_build(g, r, "t", &ps);
                _cleanup_free_ char *actf = actionable_expr(&ps);
                finish_slice_start(g, r, &p->batch_first, actf, true, false);
                preds_done(&ps);
                finish_slice_bound(g, r, &p->batch_bound);
        } else {
                /* Only rows the range statement would change count: those it would leave (already
                 * anonymised, held, kept by a reference or a longer rule) are passed over in this
                 * one walk, so a run with nothing to change is one batch whatever their number,
                 * and each is looked at once per run, not once per batch. The reference checks are
                 * NOT EXISTS in the WHERE clause: anti-joins the planner may hash. */
                Preds pb;
                preds_build(g, r, "t", &pb);
                _cleanup_free_ char *actb = actionable_expr(&pb);
                finish_bound(g, r, &p->batch_bound, actb);
                preds_done(&pb);
                /* Once a batch has shown the rows' density: the next range without the probe,
                 * the last key plus the width that density says holds a batch (fast-path.c). */
                if (!cat_table_is_citus(p->table))
                        finish_slice_bound(g, r, &p->batch_step);
        }
        /* The parameters of the statement built next are numbered from here on. */
        Preds pr;
        preds_build(g, r, "t", &pr);
        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
        _cleanup_free_ char *upper = param(g, PARAM_UPPER, 0, NULL, "upper end of the batch's range (NULL: none)");
        /* A predicted range (fast-path.c) gives the width instead of the upper end, so that the
         * range goes in the same round trip as the bound (batch_step), which computes the same
         * upper end from the same last key and width. Not on Citus, which predicts no range and
         * refuses a function that is not IMMUTABLE (timestamptz + interval) in a COALESCE. */
        bool citus = cat_table_is_citus(p->table);
        _cleanup_free_ char *w = citus ? NULL
                                       : param(g, PARAM_WIDTH, 0, NULL, "predicted range: its width from the last key (NULL: none)");
        _cleanup_free_ char *h = citus                         ? xstrdup("")
                                 : p->age_kind == COLKIND_DATE ? xasprintf(", %s::date + %s::int", last, w)
                                                               : xasprintf(", %s::%s + %s::bigint * interval '1 microsecond'", last, ty, w);
        _cleanup_free_ char *act = actionable_expr(&pr);
        bool del = r->action == ACTION_DELETE;
        _cleanup_free_ char *head = change_head(g, tq, "t", del, r->columns, r->n_columns);
        _cleanup_free_ char *range = xasprintf("%s WHERE %s >= %s::%s AND %s < coalesce(%s::%s%s, 'infinity'::%s) AND %s", head, age,
                                               last, ty, age, upper, ty, h, ty, act);
        /* A trigger (or rule) that may rewrite the UPDATE, e.g. one that keeps a column's old
         * value: the rows written are not all anonymised. Only those the done predicate finds
         * anonymised as written are counted (the rest stay due: skipped, refused by the
         * database); the rows written still size the batches. Elsewhere the command tag counts,
         * without the cost of collecting the rows (see above). */
        p->range_counted = !del && p->table->rewrites_update && !citus;
        if (p->range_counted) {
                _cleanup_free_ char *done = all_done_expr(g, r->columns, r->n_columns, "t");
                finish_statement(g, &p->batch_range,
                                 xasprintf("WITH changed AS (%s RETURNING %s AS ok) SELECT count(*), " CHANGED_OK_ROWS " FROM changed",
                                           range, done));
        } else
                finish_statement(g, &p->batch_range, TAKE_PTR(range));
        preds_done(&pr);
}

static void build_batch(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        Preds pr;
        preds_build(g, r, "t", &pr);
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        _cleanup_free_ char *dage = col("d", r->column);
        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
        _cleanup_free_ char *lim = param(g, PARAM_LIMIT, 0, NULL, "batch size");
        _cleanup_free_ char *rr = param(g, PARAM_RULE_RUN, 0, NULL, "audit trail rule run id");
        _cleanup_free_ char *act = actionable_expr(&pr);
        size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(g, cut, p->age_kind);
        const char *ty = kind_sql_type(p->age_kind);
        bool part = by_tableoid(p);

        StrBuf b = {};
        strbuf_appendf(&b,
                       "WITH batch AS MATERIALIZED (SELECT t.ctid AS rid%s, %s AS k FROM %s t"
                       " WHERE %s >= %s::%s AND %s ORDER BY %s LIMIT %s FOR UPDATE OF t SKIP LOCKED)",
                       part ? ", t.tableoid AS toid" : "", age, tq, age, last, ty, act, age, lim);
        bool del = r->action == ACTION_DELETE;
        _cleanup_free_ char *head = change_head(g, tq, "d", del, r->columns, r->n_columns);
        _cleanup_free_ char *trail = trail_cte(del, rr);
        _cleanup_free_ char *done = del ? NULL : all_done_expr(g, r->columns, r->n_columns, "d");
        _cleanup_free_ char *ret = del ? with_returning(r, "d") : xasprintf("%s AS ok", done);
        _cleanup_free_ char *with = del ? with_ctes(g, r) : xstrdup("");
        strbuf_appendf(&b, ", changed AS (%s %s batch b WHERE d.ctid = b.rid%s AND %s < %s RETURNING %s)%s%s", head,
                       del ? "USING" : "FROM", part ? " AND d.tableoid = b.toid" : "", dage, ce, ret, with, trail);
        strbuf_appendf(&b, " SELECT (SELECT count(*) FROM batch), %s, (SELECT max(k)::text FROM batch), " NEXT_XID_SQL TRAIL_FROM,
                       CHANGED_COUNT(del));
        finish_statement(g, &p->batch, strbuf_steal(&b));

        if (r->action == ACTION_DELETE) {
                /* Foreign-key isolation: the same selection, then one row at a time. */
                Preds p2;
                preds_build(g, r, "t", &p2);
                _cleanup_free_ char *act2 = actionable_expr(&p2);
                _cleanup_free_ char *last2 = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
                _cleanup_free_ char *lim2 = param(g, PARAM_LIMIT, 0, NULL, "batch size");
                finish_statement(g, &p->row_by_row_select,
                                 xasprintf("SELECT t.ctid::text, t.tableoid::text, %s::text FROM %s t"
                                           " WHERE %s >= %s::%s AND %s ORDER BY %s LIMIT %s FOR UPDATE OF t SKIP LOCKED",
                                           age, tq, age, last2, ty, act2, age, lim2));
                preds_done(&p2);

                _cleanup_free_ char *ctid = param(g, PARAM_CTID, 0, NULL, "row ctid");
                _cleanup_free_ char *toid = param(g, PARAM_TABLEOID, 0, NULL, "row tableoid");
                _cleanup_free_ char *ce2 = cut_expr(g, cut, p->age_kind);
                _cleanup_free_ char *one = xasprintf("DELETE FROM %s d WHERE d.ctid = %s::tid AND d.tableoid = %s::oid AND %s < %s",
                                                     tq, ctid, toid, dage, ce2);
                /* With `delete_with:`, the rows that go with it in the same statement; the count is
                 * then the statement's one value instead of its command tag. */
                _cleanup_free_ char *wret = with_returning(r, "d");
                _cleanup_free_ char *wctes = with_ctes(g, r);
                finish_statement(g, &p->row_by_row_delete,
                                 r->n_delete_with == 0 ? xstrdup(one)
                                                       : xasprintf("WITH changed AS (%s RETURNING %s)%s SELECT count(*) FROM changed",
                                                                   one, wret, wctes));
        }
        preds_done(&pr);
}

static void build_while_held(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        if (!r->has_while_held)
                return;
        Preds pr;
        preds_build_ex(g, r, "t", &pr, false);
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        _cleanup_free_ char *dage = col("d", r->column);
        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
        _cleanup_free_ char *lim = param(g, PARAM_LIMIT, 0, NULL, "batch size");
        _cleanup_free_ char *rr = param(g, PARAM_RULE_RUN, 0, NULL, "audit trail rule run id");
        _cleanup_free_ char *held = held_expr(&pr);
        _cleanup_free_ char *due = due_expr(&pr);
        _cleanup_free_ char *done = all_done_expr(g, r->while_held_columns, r->n_while_held_columns, "t");
        _cleanup_free_ char *ddone = all_done_expr(g, r->while_held_columns, r->n_while_held_columns, "d");
        _cleanup_free_ char *head = change_head(g, tq, "d", false, r->while_held_columns, r->n_while_held_columns);
        _cleanup_free_ char *trail = trail_cte(false, rr);
        size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(g, cut, p->age_kind);
        bool part = by_tableoid(p);
        /* Held rows only: a row that is not held is the normal action's business. */
        finish_statement(g, &p->while_held_batch,
                         xasprintf("WITH batch AS MATERIALIZED (SELECT t.ctid AS rid%s, %s AS k FROM %s t"
                                   " WHERE %s >= %s::%s AND %s AND %s AND NOT %s ORDER BY %s LIMIT %s FOR UPDATE OF t SKIP LOCKED)"
                                   ", changed AS (%s FROM batch b WHERE d.ctid = b.rid%s AND %s < %s RETURNING %s AS ok)%s"
                                   " SELECT (SELECT count(*) FROM batch), " CHANGED_OK_ROWS ", (SELECT max(k)::text FROM batch), "
                                   NEXT_XID_SQL TRAIL_FROM,
                                   part ? ", t.tableoid AS toid" : "", age, tq, age, last, kind_sql_type(p->age_kind), due,
                                   held ? held : "false", done, age, lim, head, part ? " AND d.tableoid = b.toid" : "",
                                   dage, ce, ddone, trail));
        preds_done(&pr);
}

/* Citus: the while_held phase by age ranges, as the main phase's fast path: the SKIP LOCKED batch
 * selects rows FOR UPDATE by ctid, which Citus refuses on a multi-shard table and which names no
 * row across shards or copies. The bound over the held rows still to anonymise, then one UPDATE of
 * those in [last key, upper end); its count is the command tag. */
static void build_while_held_range(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        if (!r->has_while_held || !cat_table_is_citus(p->table))
                return;
        for (int i = 0; i < 2; i++) {
                Preds pr;
                preds_build_ex(g, r, "t", &pr, false);
                _cleanup_free_ char *held = held_expr(&pr);
                _cleanup_free_ char *due = due_expr(&pr);
                _cleanup_free_ char *done = all_done_expr(g, r->while_held_columns, r->n_while_held_columns, "t");
                _cleanup_free_ char *sel = xasprintf("%s AND %s AND NOT %s", due, held ? held : "false", done);
                if (i == 0 && p->slices) {
                        finish_slice_start(g, r, &p->while_held_start, sel, true, true);
                        finish_slice_bound(g, r, &p->while_held_bound);
                } else if (i == 0)
                        finish_bound(g, r, &p->while_held_bound, sel);
                else {
                        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
                        _cleanup_free_ char *age = col("t", r->column);
                        const char *ty = kind_sql_type(p->age_kind);
                        _cleanup_free_ char *head = change_head(g, tq, "t", false, r->while_held_columns, r->n_while_held_columns);
                        _cleanup_free_ char *last = param(g, PARAM_LAST_KEY, 0, NULL, "keyset: last age value reached");
                        _cleanup_free_ char *upper = param(g, PARAM_UPPER, 0, NULL, "upper end of the batch's range (NULL: none)");
                        finish_statement(g, &p->while_held_range,
                                         xasprintf("%s WHERE %s >= %s::%s AND %s < coalesce(%s::%s, 'infinity'::%s) AND %s", head, age,
                                                   last, ty, age, upper, ty, ty, sel));
                }
                preds_done(&pr);
        }
}

/* Whether no row is due, as a boolean expression: the first due row by age, not EXISTS.
 * PostgreSQL drops an ORDER BY and LIMIT inside EXISTS and, expecting an early match, takes a
 * sequential scan; in order, the age column's index serves, and for an anonymise rule the partial
 * index of the rows still to anonymise (plan_todo_index()) finds none without reading the
 * anonymised ones (1M rows, all anonymised: 1,000 ms as EXISTS, 0.3 ms so). Citus keeps EXISTS,
 * with LIMIT 1: a plain EXISTS over a distributed table is planned as a subplan whose every row
 * the shards ship to the coordinator first (1.0-1.3 s for the benchmark's 200,000 due rows); with
 * LIMIT 1 each shard sends one row at most (10-40 ms). */
static char *idle_probe_sql(Gen *g, const Rule *r, const char *due) {
        _cleanup_free_ char *tq = qualified_name_quote(&g->plan->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        if (cat_table_is_citus(g->plan->table))
                return xasprintf("NOT EXISTS (SELECT 1 FROM %s t WHERE %s LIMIT 1)", tq, due);
        return xasprintf("(SELECT 1 FROM %s t WHERE %s ORDER BY %s LIMIT 1) IS NULL", tq, due, age);
}

static void build_breaker(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        Preds pr;
        preds_build(g, r, "t", &pr);
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *act = actionable_expr(&pr);
        if (p->slices) {
                /* Citus, a distributed table: a LIMIT in the subquery is not pushed down whole;
                 * Citus ran it on every shard and shipped up to the limit's rows from each to the
                 * coordinator to count them there (1.6 s of a 2.5 s benchmark run). A plain
                 * count(*) is counted on the shards, in parallel, and only their sums come back;
                 * it counts every due row, never fewer than the limit would have. With the first
                 * slice's start (finish_slice_start()), in the same pass. */
                finish_slice_start(g, r, &p->breaker_count, act, false, true);
        } else {
                _cleanup_free_ char *lim = param(g, PARAM_BREAKER_LIMIT, 0, NULL, "breaker threshold + 1");
                finish_statement(g, &p->breaker_count,
                                 xasprintf("SELECT count(*) FROM (SELECT 1 FROM %s t WHERE %s LIMIT %s) s", tq, act, lim));
        }
        preds_done(&pr);

        /* Holds only lower the count, so the estimate of the due rows alone errs on the safe side. */
        Preds p2;
        preds_build_due(g, r, "t", &p2);
        _cleanup_free_ char *due = due_expr(&p2);
        finish_statement(g, &p->breaker_estimate, xasprintf("EXPLAIN (FORMAT JSON) SELECT 1 FROM %s t WHERE %s", tq, due));
        /* The rows of every statement that changes a row one by one (batches, ranges, while_held,
         * foreign-key isolation) and of the tally are among these due rows: none, and there is
         * nothing to change, hold or count. */
        preds_done(&p2);
        Preds p3; /* a statement's parameters are its own: the predicates built again */
        preds_build_due(g, r, "t", &p3);
        _cleanup_free_ char *due3 = due_expr(&p3);
        _cleanup_free_ char *probe = idle_probe_sql(g, r, due3);
        finish_statement(g, &p->idle_probe, xasprintf("SELECT %s", probe));
        preds_done(&p3);
}

/* The tally's reference checks as one set operation per RESTRICT/NO ACTION reference, not a probe
 * per row (which, with a partitioned referencing table, scanned every partition once per due row):
 * the distinct referencing keys among the due rows' keys (a semi-join the planner may hash, or run
 * as index probes when few rows are due), LEFT JOINed to the rows. *joins gets the joins; per[i]
 * the expression "row i's reference holds it" of the i-th restricting reference; returns their OR,
 * or NULL when there is none. `age` is the rule's age condition for alias t2 (a superset of the
 * due rows is enough: the joins only decide for the rows the tally counts). */
static char *restrict_joins(Gen *g, const CatTable *t, const char *alias, const char *age2, StrBuf *joins, char ***per,
                            size_t *n_per) {
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        StrBuf any = {};
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                const CatForeignKey *fk = &t->referenced_by[i];
                if (!fk_restricts(fk))
                        continue;
                _cleanup_free_ char *a = new_alias(g, "fr");
                _cleanup_free_ char *cq = qualified_name_quote(&fk->child);
                StrBuf keys = {}, sel = {}, on = {}, parents = {};
                for (size_t j = 0; j < fk->n_columns; j++) {
                        _cleanup_free_ char *cc = col("fr", fk->child_columns[j]);
                        _cleanup_free_ char *pc = col("t2", fk->parent_columns[j]);
                        _cleanup_free_ char *rc = col(alias, fk->parent_columns[j]);
                        strbuf_appendf(&keys, "%s%s", j ? ", " : "", cc);
                        strbuf_appendf(&sel, "%s%s AS k%zu", j ? ", " : "", cc, j + 1);
                        strbuf_appendf(&parents, "%s%s", j ? ", " : "", pc);
                        strbuf_appendf(&on, "%s%s.k%zu = %s", j ? " AND " : "", a, j + 1, rc);
                }
                strbuf_appendf(joins, " LEFT JOIN (SELECT DISTINCT %s FROM %s fr WHERE (%s) IN (SELECT %s FROM %s t2 WHERE %s)) %s ON %s",
                               sel.s, cq, keys.s, parents.s, tq, age2, a, on.s);
                strbuf_done(&keys);
                strbuf_done(&sel);
                strbuf_done(&on);
                strbuf_done(&parents);
                add_msg(per, n_per, xasprintf("%s.k1 IS NOT NULL", a));
                strbuf_appendf(&any, "%s%s.k1 IS NOT NULL", any.len ? " OR " : "(", a);
        }
        if (!any.len)
                return NULL;
        strbuf_append(&any, ")");
        return strbuf_steal(&any);
}

/* The count of the rows of the i-th `delete_with:` table that the rows a run takes now would take
 * with them: a row such a row refers to, that no row of any other table refers to, nor a row of
 * the rule's table that the run would leave. The rule's own rows are aliased t inside (the `where:`
 * is about t). NULL when the rule was refused. */
static char *with_count_expr(Gen *g, const Rule *r, size_t i) {
        const CatTable *t = g->plan->table;
        const CatTable *w = cat_cache_find_name(g->cache, &r->delete_with[i].table);
        const CatForeignKey *fk = with_fk(t, w, r->delete_with[i].through);
        if (!fk)
                return NULL;
        _cleanup_free_ char *wq = qualified_name_quote(&w->name);
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        _cleanup_free_ char *pc = col("w", fk->parent_columns[0]);
        _cleanup_free_ char *gc = col("t", r->delete_with[i].through);
        Preds pg;
        preds_build(g, r, "t", &pg);
        _cleanup_free_ char *act = actionable_expr(&pg);
        preds_done(&pg);
        StrBuf b = {};
        strbuf_appendf(&b, "(SELECT count(*) FROM ONLY %s w WHERE %s IN (SELECT %s FROM %s t WHERE %s)", wq, pc, gc, tq, act);
        _cleanup_free_ char *prot = protected_rows_expr(g, w, "w");
        if (prot)
                strbuf_appendf(&b, " AND NOT coalesce(%s, false)", prot);
        for (size_t j = 0; j < w->n_referenced_by; j++) {
                const CatForeignKey *o = &w->referenced_by[j];
                _cleanup_free_ char *oq = qualified_name_quote(&o->child);
                if (o->child_oid != t->oid) {
                        _cleanup_free_ char *on = fk_join(o, "x", "w");
                        strbuf_appendf(&b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s)", oq, on);
                        continue;
                }
                _cleanup_free_ char *on = fk_join(o, "t", "w");
                Preds px;
                preds_build(g, r, "t", &px);
                _cleanup_free_ char *stays = actionable_expr(&px);
                preds_done(&px);
                strbuf_appendf(&b, " AND NOT EXISTS (SELECT 1 FROM %s t WHERE %s AND NOT coalesce(%s, false))", oq, on, stays);
        }
        strbuf_append(&b, ")");
        return strbuf_steal(&b);
}

static void build_tally(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        Preds pr;
        preds_build(g, r, "t", &pr);
        preds_add_overdue(g, r, "t", &pr);
        _cleanup_free_ char *tq = qualified_name_quote(&p->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        _cleanup_free_ char *due = due_expr(&pr);
        _cleanup_free_ char *kept = kept_expr(&pr);
        _cleanup_free_ char *held = held_expr(&pr);
        const char *k = kept ? kept : "false";
        StrBuf joins = {};
        char **per_fk = NULL;
        size_t n_per_fk = 0;
        _cleanup_free_ char *rsj = NULL;
        if (r->action == ACTION_DELETE) {
                size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
                _cleanup_free_ char *age2 = col("t2", r->column);
                _cleanup_free_ char *ce2 = cut_expr(g, cut, p->age_kind);
                _cleanup_free_ char *cond = xasprintf("%s < %s", age2, ce2);
                rsj = restrict_joins(g, p->table, "t", cond, &joins, &per_fk, &n_per_fk);
        }
        const char *rs = rsj ? rsj : "false";
        StrBuf b = {};

        strbuf_append(&b, "SELECT count(*)");
        strbuf_appendf(&b, ", count(*) FILTER (WHERE %s)", k);
        strbuf_appendf(&b, ", count(*) FILTER (WHERE NOT %s AND NOT %s)", k, rs);
        if (pr.overdue)
                strbuf_appendf(&b, ", count(*) FILTER (WHERE NOT %s AND %s)", k, pr.overdue);
        else
                strbuf_append(&b, ", 0");
        strbuf_appendf(&b, ", count(*) FILTER (WHERE NOT %s AND %s)", k, rs);
        if (r->has_while_held && held) {
                _cleanup_free_ char *done = all_done_expr(g, r->while_held_columns, r->n_while_held_columns, "t");
                strbuf_appendf(&b, ", count(*) FILTER (WHERE %s AND NOT %s)", held, done);
        } else
                strbuf_append(&b, ", 0");
        strbuf_appendf(&b, ", date_trunc('second', now() - (min(%s) FILTER (WHERE NOT %s AND NOT %s))::timestamptz)::text", age, k, rs);

        /* per hold */
        if (r->subject)
                for (size_t i = 0; i < r->n_holds; i++) {
                        SubjKey key;
                        hold_key(g, r, r->holds[i], "t", &key);
                        _cleanup_free_ char *h = hold_expr(g, r->holds[i], &key);
                        subj_key_done(&key);
                        strbuf_appendf(&b, ", count(*) FILTER (WHERE %s)", h);
                        add_msg(&p->tally_holds, &p->n_tally_holds, xstrdup(r->holds[i]->name));
                }
        if (pr.cascade) {
                strbuf_appendf(&b, ", count(*) FILTER (WHERE %s)", pr.cascade);
                add_msg(&p->tally_holds, &p->n_tally_holds, xstrdup("cascade-into-held-rows"));
        }
        if (r->action == ACTION_DELETE)
                for (size_t i = 0; i < g->policy->n_rules; i++) {
                        const Rule *o = &g->policy->rules[i];
                        _cleanup_free_ char *e = other_rules_keep_expr(g, r, "t", o);
                        if (!e || o == r)
                                continue;
                        strbuf_appendf(&b, ", count(*) FILTER (WHERE %s)", e);
                        add_msg(&p->tally_holds, &p->n_tally_holds, xasprintf("rule:%s", o->name));
                }
        /* per restricting reference, in the order of restrict_joins() */
        size_t nf = 0;
        if (r->action == ACTION_DELETE)
                for (size_t i = 0; i < p->table->n_referenced_by; i++) {
                        const CatForeignKey *fk = &p->table->referenced_by[i];
                        if (!fk_restricts(fk))
                                continue;
                        strbuf_appendf(&b, ", count(*) FILTER (WHERE NOT %s AND %s)", k, per_fk[nf++]);
                        add_msg(&p->tally_fks, &p->n_tally_fks, qualified_name_display(&fk->child));
                }
        /* per `delete_with:` table, after the references: the rows that would go with them */
        for (size_t i = 0; r->action == ACTION_DELETE && i < r->n_delete_with; i++) {
                _cleanup_free_ char *e = with_count_expr(g, r, i);
                if (!e)
                        continue;
                strbuf_appendf(&b, ", %s", e);
                add_msg(&p->tally_with, &p->n_tally_with, qualified_name_display(&r->delete_with[i].table));
        }
        strbuf_appendf(&b, " FROM %s t%s WHERE %s", tq, joins.len ? joins.s : "", due);
        finish_statement(g, &p->tally, strbuf_steal(&b));
        strbuf_done(&joins);
        for (size_t i = 0; i < n_per_fk; i++)
                free(per_fk[i]);
        free(per_fk);

        /* A row another session's transaction holds (FOR UPDATE/SHARE, or an UPDATE or DELETE not
         * yet committed) has that transaction's id as its xmax while it runs: the ids in progress
         * are the snapshot's xip. Needs no privilege and takes no lock; row security and triggers
         * do not change it. (A lock several sessions share has a multixact id there instead: that
         * row is not seen as held.) */
        Preds p3;
        preds_build(g, r, "t", &p3);
        _cleanup_free_ char *act = actionable_expr(&p3);
        finish_statement(g, &p->skipped_locked,
                         xasprintf("SELECT count(*) FROM %s t WHERE %s AND t.xmax <> '0'::xid AND t.xmax::text::bigint IN"
                                   " (SELECT x::text::bigint %% 4294967296 FROM pg_snapshot_xip(pg_current_snapshot()) x)",
                                   tq, act));
        preds_done(&p3);
        p->nothing_keeps = !pr.holds && !pr.cascade && !pr.others && !pr.restricts && !r->has_while_held;
        preds_done(&pr);
}

static bool partitions_droppable(const Gen *g, const Rule *r) {
        const Plan *p = g->plan;
        /* A key that refers to one partition alone keeps that partition from being dropped
         * (partitions.c checks each before its drop, check -d notes it), not the others. */
        size_t refs = 0;
        for (size_t i = 0; i < p->table->n_referenced_by; i++)
                refs += !p->table->referenced_by[i].to_partition;
        /* Citus: DETACH ... CONCURRENTLY is not supported on a distributed table, and the check
         * before a drop joins the coordinator's tables: the rows of expired partitions go in
         * batches like any others (check -d says so). */
        if (cat_table_is_citus(p->table))
                return false;
        if (r->action != ACTION_DELETE || r->where || !p->partitioned || !p->table->partition_column ||
            !streq(p->table->partition_column, r->column) || refs > 0 || r->n_delete_with > 0)
                return false;
        for (size_t i = 0; i < g->policy->n_rules; i++) {
                const Rule *o = &g->policy->rules[i];
                const CatTable *ot = table_of_rule(g, o);
                if (o != r && o->action == ACTION_DELETE && ot && ot->oid == p->table->oid)
                        return false;
        }
        return true;
}

static void build_partitions(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        if (!partitions_droppable(g, r))
                return;
        p->can_drop_partitions = true;
        size_t cut = slot_get(p, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(g, cut, p->age_kind);
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", p->table->oid);
        _cleanup_free_ char *op = param(g, PARAM_CONST, 0, oid, "partitioned table oid");
        /* The upper bound of a single-column range partition, as PostgreSQL prints it; MAXVALUE
         * and the default partition never match, so they are never dropped. */
        finish_statement(g, &p->partitions,
                         xasprintf("SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid), greatest(c.reltuples, 0)::bigint"
                                   " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                                   " JOIN pg_namespace n ON n.oid = c.relnamespace"
                                   " CROSS JOIN LATERAL (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid),"
                                   " 'TO \\(''([^'']+)''\\)$'))[1] AS upper) b"
                                   " WHERE i.inhparent = %s::oid AND c.relkind = 'r' AND NOT i.inhdetachpending"
                                   " AND b.upper IS NOT NULL AND b.upper::%s <= %s ORDER BY b.upper::%s",
                                   op, kind_sql_type(p->age_kind), ce, kind_sql_type(p->age_kind)));
}

int plan_partition_check(Plan *plan, const Policy *policy, const CatCache *cache, const QualifiedName *partition,
                         PlanStatement *ret) {
        Gen g = { .policy = policy, .cache = cache, .plan = plan };
        const Rule *r = plan->rule;
        Preds pr;
        preds_build(&g, r, "t", &pr);
        _cleanup_free_ char *tq = qualified_name_quote(partition);
        _cleanup_free_ char *kept = kept_expr(&pr);
        _cleanup_free_ char *age = col("t", r->column);
        /* A young row (not older than the cutoff, or NULL) shows as the first row in descending age
         * order, NULLs first: one index probe instead of reading every row's age. Without a hold
         * the count is the only full pass. */
        _cleanup_free_ char *young = xasprintf("coalesce((SELECT CASE WHEN %s THEN 0 ELSE 1 END FROM %s t"
                                               " ORDER BY %s DESC NULLS FIRST LIMIT 1), 0)",
                                               pr.age, tq, age);
        finish_statement(&g, ret,
                         kept ? xasprintf("SELECT count(*), count(*) FILTER (WHERE %s), %s FROM %s t", kept, young, tq)
                              : xasprintf("SELECT count(*), 0, %s FROM %s t", young, tq));
        ret->purpose = "the check of a partition before it is dropped";
        preds_done(&pr);
        return 0;
}

/* The fiscal year's start as an offset from January: "3 months" for April. */
static char *fiscal_offset(Gen *g, const PeriodStart *s) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%d months", s->fiscal_year_start > 0 ? s->fiscal_year_start - 1 : 0);
        return param(g, PARAM_CONST, 0, buf, "fiscal year start: months after 1 January");
}

/* The start of the day/month/year/fiscal year in which the timestamptz x falls (x itself for
 * FROM_RECORD), in the session's TimeZone. */
static char *period_floor(Gen *g, const PeriodStart *s, const char *x) {
        switch (s->from) {
        case FROM_END_OF_DAY: return xasprintf("date_trunc('day', %s)", x);
        case FROM_END_OF_MONTH: return xasprintf("date_trunc('month', %s)", x);
        case FROM_END_OF_YEAR: return xasprintf("date_trunc('year', %s)", x);
        case FROM_END_OF_FISCAL_YEAR: {
                _cleanup_free_ char *off = fiscal_offset(g, s);
                return xasprintf("(date_trunc('year', %s - %s::interval) + %s::interval)", x, off, off);
        }
        default: return xstrdup(x);
        }
}

/* The end of the period in which x falls: the next period start after it. */
static char *period_end(Gen *g, const PeriodStart *s, const char *x) {
        _cleanup_free_ char *fl = period_floor(g, s, x);
        switch (s->from) {
        case FROM_END_OF_DAY: return xasprintf("(%s + interval '1 day')", fl);
        case FROM_END_OF_MONTH: return xasprintf("(%s + interval '1 month')", fl);
        case FROM_END_OF_YEAR:
        case FROM_END_OF_FISCAL_YEAR: return xasprintf("(%s + interval '1 year')", fl);
        default: return TAKE_PTR(fl);
        }
}

/* The cutoff of a slot, computed by PostgreSQL. A row is due when end_of_period(col) < X
 * (X = now() - retain [- deadline]). end_of_period(col) is a period start, so that holds exactly
 * when col is before the last period start strictly before X:
 *     col < date_trunc(period, X - 1 microsecond)     (fiscal years shifted by the start month)
 * which equals ceil_period(X - 1 period). The column is compared as it is (index-friendly);
 * only the cutoff is transformed. */
static char *slot_cutoff_sql(Gen *g, const TimeSlot *s) {
        _cleanup_free_ char *a = param(g, PARAM_CONST, 0, s->interval, "interval");
        _cleanup_free_ char *x = NULL;
        if (s->interval2) {
                _cleanup_free_ char *a2 = param(g, PARAM_CONST, 0, s->interval2, "interval");
                x = xasprintf("now() - %s::interval - %s::interval", a, a2);
        } else
                x = xasprintf("now() - %s::interval", a);
        if (s->start.from == FROM_RECORD)
                return xasprintf("(%s)::text", x);
        _cleanup_free_ char *strict = xasprintf("%s - interval '1 microsecond'", x);
        _cleanup_free_ char *fl = period_floor(g, &s->start, strict);
        return xasprintf("%s::text", fl);
}

static void build_cutoffs(Gen *g) {
        Plan *p = g->plan;
        StrBuf b = {};
        strbuf_append(&b, "SELECT ");
        for (size_t i = 0; i < p->n_slots; i++) {
                _cleanup_free_ char *e = slot_cutoff_sql(g, &p->slots[i]);
                strbuf_appendf(&b, "%s%s", i ? ", " : "", e);
        }
        /* Last: the database's clock itself, as the rule run's start in the trail and for the
         * sanity check against this host's clock. */
        strbuf_append(&b, ", now()::text, extract(epoch FROM now())::float8");
        finish_statement(g, &p->cutoffs, strbuf_steal(&b));
}

/* The cutoffs and whether any row is due at them, in one statement: what a rule with no row due
 * asks (most rule runs of a daemon), in one round trip instead of two. Plain PostgreSQL only. The cutoffs are
 * computed once, in the subquery c, exactly as the cutoffs statement computes them (the same
 * expressions, the same now(): one statement), and the probe compares with them as the
 * idle probe compares with their text sent back as parameters: c.s<slot>::timestamptz. After
 * build_cutoffs(): every slot is known, and generating the probe again must add none. */
static void build_cutoffs_probe(Gen *g, const Rule *r) {
        Plan *p = g->plan;
        /* Not on Citus: a subquery that refers to the outer query's cutoff is not pushed down to
         * the shards as the probe with a parameter is (one row from each at most). */
        if (!p->idle_probe.sql || cat_table_is_citus(p->table))
                return;
        size_t n_slots = p->n_slots;
        g->inline_slots = true;
        Preds pr;
        preds_build_due(g, r, "t", &pr);
        _cleanup_free_ char *due = due_expr(&pr);
        _cleanup_free_ char *probe = idle_probe_sql(g, r, due);
        preds_done(&pr);
        g->inline_slots = false;
        StrBuf b = {};
        strbuf_append(&b, "SELECT c.*, ");
        strbuf_append(&b, probe);
        strbuf_append(&b, " FROM (SELECT ");
        for (size_t i = 0; i < p->n_slots; i++) {
                _cleanup_free_ char *e = slot_cutoff_sql(g, &p->slots[i]);
                strbuf_appendf(&b, "%s AS s%zu, ", e, i);
        }
        strbuf_append(&b, "now()::text AS started, extract(epoch FROM now())::float8 AS clock) c");
        finish_statement(g, &p->cutoffs_probe, strbuf_steal(&b));
        if (p->n_slots != n_slots) /* never: the probe's slots are the plan's */
                plan_statement_done(&p->cutoffs_probe);
}

static void plan_set_purposes(Plan *p) {
        bool del = p->rule->action == ACTION_DELETE;
        p->cutoffs.purpose = "the computation of the cutoffs";
        p->batch_bound.purpose = "the search for the next batch's range of rows";
        p->batch_step.purpose = "the next batch's range of ages, predicted from the rows' density";
        p->batch_range.purpose = del ? "the DELETE of a batch" : "the UPDATE of a batch";
        p->batch.purpose = del ? "the DELETE of a batch (skipping locked rows)" : "the UPDATE of a batch (skipping locked rows)";
        p->while_held_batch.purpose = "the UPDATE of a batch of held rows (while_held)";
        p->while_held_bound.purpose = "the search for the next range of held rows (while_held)";
        p->batch_start.purpose = "the first due age and the number of due rows (slices)";
        p->batch_first.purpose = "the first due age (slices)";
        p->while_held_start.purpose = "the first held age and the number of held rows to anonymise (slices)";
        p->while_held_range.purpose = "the UPDATE of a range of held rows (while_held)";
        p->breaker_count.purpose = "the circuit breaker's count of the due rows";
        p->breaker_estimate.purpose = "the circuit breaker's estimate of the due rows";
        p->idle_probe.purpose = "the check whether any row is due";
        p->cutoffs_probe.purpose = "the computation of the cutoffs and the check whether any row is due";
        p->tally.purpose = "the count of the due, held and still referenced rows";
        p->skipped_locked.purpose = "the count of the skipped rows that other sessions lock";
        p->row_by_row_select.purpose = "the selection of rows to delete one by one (foreign-key isolation)";
        p->row_by_row_delete.purpose = "the DELETE of one row (foreign-key isolation)";
        p->partitions.purpose = "the search for expired partitions";
}

int plan_build(const Policy *policy, const Rule *rule, const CatCache *cache, Plan **ret, char **error) {
        char **errors = NULL, **warnings = NULL;
        size_t n_errors = 0, n_warnings = 0;

        plan_check_rule(policy, rule, cache, &errors, &n_errors, &warnings, &n_warnings);
        if (n_errors > 0) {
                *error = errors[0];
                for (size_t i = 1; i < n_errors; i++)
                        free(errors[i]);
                free(errors);
                for (size_t i = 0; i < n_warnings; i++)
                        free(warnings[i]);
                free(warnings);
                return -1;
        }

        Plan *p = xcalloc(1, sizeof(Plan));
        p->rule = rule;
        p->table = cat_cache_find_name(cache, &rule->table);
        p->partitioned = p->table->relkind == 'p';
        p->age_kind = cat_table_column(p->table, rule->column)->kind;
        p->has_age_index = cat_table_has_index_on(p->table, rule->column);
        p->slices = p->table->dist == CAT_DIST_DISTRIBUTED;
        p->warnings = warnings;
        p->n_warnings = n_warnings;

        Gen g = { .policy = policy, .cache = cache, .plan = p };
        /* The cutoff is always slot 0. */
        slot_get(p, SLOT_CUTOFF, rule, &rule->retain, NULL);
        build_batch(&g, rule);
        build_batch_range(&g, rule);
        build_while_held(&g, rule);
        build_while_held_range(&g, rule);
        build_breaker(&g, rule);
        build_tally(&g, rule);
        build_partitions(&g, rule);
        build_cutoffs(&g); /* last: every slot is known now */
        build_cutoffs_probe(&g, rule);
        free(g.params);
        plan_set_purposes(p);
        *ret = p;
        return 0;
}

/* ---- explain: the predicates of one row, by its primary key ---- */

/* The moment after which `base` (a timestamptz expression) is older than now() - d, exactly as
 * PostgreSQL subtracts an interval (months, then days, then time): the first t with
 * t - d > base. A month added to the 29th-31st may be clamped to a shorter month's last day;
 * then the first such t is the start of the following month. */
static char *due_at_sql(Gen *g, const char *base, const Duration *d) {
        char m[32], dd[32], u[48];
        snprintf(m, sizeof(m), "%" PRId32 " months", d->months);
        snprintf(dd, sizeof(dd), "%" PRId32 " days", d->days);
        snprintf(u, sizeof(u), "%" PRId64 " microseconds", d->usecs);
        _cleanup_free_ char *pm = param(g, PARAM_CONST, 0, m, "interval: months");
        _cleanup_free_ char *pd = param(g, PARAM_CONST, 0, dd, "interval: days");
        _cleanup_free_ char *pu = param(g, PARAM_CONST, 0, u, "interval: time");
        return xasprintf("(SELECT CASE WHEN z.t1 - %s::interval < z.b THEN date_trunc('month', z.t1) + interval '1 month'"
                         " ELSE z.t1 END FROM (SELECT y.b + %s::interval AS t1, y.b FROM"
                         " (SELECT (%s)::timestamptz + %s::interval + %s::interval AS b) y) z)",
                         pm, pm, base, pu, pd);
}

/* Where the retention of an age value x (of kind k) starts, as a timestamptz: the value itself,
 * the next day's start for a date (a date is due only once the whole day is), or the end of
 * its month/year/fiscal year. */
static char *age_base(Gen *g, const char *x, ColumnKind k, const PeriodStart *s) {
        if (s->from == FROM_RECORD)
                return k == COLKIND_DATE ? xasprintf("((%s) + 1)::timestamptz", x) : xasprintf("(%s)::timestamptz", x);
        _cleanup_free_ char *ts = xasprintf("(%s)::timestamptz", x);
        return period_end(g, s, ts);
}

static void explain_hold_columns(Gen *g, const Hold *h, const SubjKey *key, StrBuf *b) {
        _cleanup_free_ char *applies = hold_expr(g, h, key);
        if (h->registry) {
                _cleanup_free_ char *s = param(g, PARAM_CONST, 0, h->subject->name, "subject name");
                _cleanup_free_ char *m = registry_key_match(g, h->subject, "rh", key);
                strbuf_appendf(b, ", %s", applies);
                strbuf_appendf(b, ", (SELECT max(rh.expires_at)::text FROM retention.holds rh WHERE rh.subject = %s"
                                  " AND %s AND rh.released_at IS NULL AND rh.expires_at > now())",
                               s, m);
                strbuf_appendf(b, ", EXISTS (SELECT 1 FROM retention.holds rh WHERE rh.subject = %s"
                                  " AND %s AND rh.released_at IS NULL AND rh.expires_at IS NULL)",
                               s, m);
                strbuf_append(b, ", NULL::text");
                return;
        }
        const CatTable *ev = cat_cache_find_name(g->cache, &h->table);
        const CatColumn *c = ev ? cat_table_column(ev, h->column) : NULL;
        ColumnKind k = c ? c->kind : COLKIND_TIMESTAMPTZ;
        _cleanup_free_ char *tq = qualified_name_quote(&h->table);
        _cleanup_free_ char *sc = col("ev", h->subject_column);
        _cleanup_free_ char *ac = col("ev", h->column);
        _cleanup_free_ char *base = age_base(g, "e.m", k, &h->start);
        _cleanup_free_ char *until = due_at_sql(g, base, &h->retain);
        _cleanup_free_ char *m = key_eq(key, sc, false);
        strbuf_appendf(b, ", %s", applies);
        strbuf_appendf(b, ", (SELECT (%s)::text FROM (SELECT max(%s) AS m FROM %s ev WHERE %s) e)", until, ac, tq, m);
        strbuf_appendf(b, ", EXISTS (SELECT 1 FROM %s ev WHERE %s AND %s IS NULL)", tq, m, ac);
        strbuf_appendf(b, ", (SELECT max(%s)::text FROM %s ev WHERE %s)", ac, tq, m);
}

static char *key_match(Gen *g, char *const *pk, size_t n_pk, const char *alias) {
        StrBuf b = {};
        for (size_t i = 0; i < n_pk; i++) {
                _cleanup_free_ char *c = col(alias, pk[i]);
                _cleanup_free_ char *p = param(g, PARAM_KEY, i, NULL, "primary-key value");
                strbuf_appendf(&b, "%s%s = %s", i ? " AND " : "", c, p);
        }
        return strbuf_steal(&b);
}

/* SELECT `sel` FROM the row of table `tq` that `km` names (alias t). Citus: the row first, as an
 * intermediate result Citus reads from its shard (or copy), then everything else on the
 * coordinator, which may join it to its own tables (the hold registry); a statement that joins a
 * distributed table to them is refused. */
static char *explain_row_sql(bool citus, const char *tq, const char *km, const char *sel) {
        return citus ? xasprintf("WITH t AS MATERIALIZED (SELECT * FROM %s t WHERE %s) %s FROM t", tq, km, sel)
                     : xasprintf("%s FROM %s t WHERE %s", sel, tq, km);
}

/* explain, per `delete_with:` entry: the key of the row the row refers to (text, NULL: none), and
 * whether it would go with it (no other row refers to it: of any table, through any foreign key
 * into it, this row excepted). */
static void explain_with_columns(Gen *g, const Rule *r, StrBuf *b, ExplainPlan *e) {
        const CatTable *t = g->plan->table;
        for (size_t i = 0; i < r->n_delete_with; i++) {
                const CatTable *w = cat_cache_find_name(g->cache, &r->delete_with[i].table);
                const CatForeignKey *fk = with_fk(t, w, r->delete_with[i].through);
                if (!fk)
                        continue;
                _cleanup_free_ char *wq = qualified_name_quote(&w->name);
                _cleanup_free_ char *pc = col("w", fk->parent_columns[0]);
                _cleanup_free_ char *tc = col("t", r->delete_with[i].through);
                strbuf_appendf(b, ", (SELECT %s::text FROM %s w WHERE %s = %s), EXISTS (SELECT 1 FROM %s w WHERE %s = %s", pc, wq, pc, tc,
                               wq, pc, tc);
                for (size_t j = 0; j < w->n_referenced_by; j++) {
                        const CatForeignKey *o = &w->referenced_by[j];
                        _cleanup_free_ char *oq = qualified_name_quote(&o->child);
                        _cleanup_free_ char *on = fk_join(o, "x", "w");
                        strbuf_appendf(b, " AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s%s)", oq, on,
                                       o->child_oid == t->oid ? " AND NOT (x.ctid = t.ctid AND x.tableoid = t.tableoid)" : "");
                }
                strbuf_append(b, ")");
                e->with = xreallocarray(e->with, e->n_with + 1, sizeof(DeleteWith *));
                e->with[e->n_with++] = &r->delete_with[i];
        }
}

void plan_explain(Plan *plan, const Policy *policy, const CatCache *cache, char *const *pk, size_t n_pk, ExplainPlan *ret) {
        Gen g = { .policy = policy, .cache = cache, .plan = plan };
        const Rule *r = plan->rule;
        ExplainPlan e = {};
        StrBuf b = {};
        _cleanup_free_ char *tq = qualified_name_quote(&plan->table->name);
        _cleanup_free_ char *age = col("t", r->column);
        ColumnKind k = plan->age_kind;

        size_t cut = slot_get(plan, SLOT_CUTOFF, r, &r->retain, NULL);
        _cleanup_free_ char *ce = cut_expr(&g, cut, k);
        _cleanup_free_ char *base = age_base(&g, age, k, &r->start);
        _cleanup_free_ char *due_at = due_at_sql(&g, base, &r->retain);
        _cleanup_free_ char *w = where_expr(r);
        strbuf_appendf(&b, "SELECT %s::text, (%s)::text, %s < %s, %s", age, due_at, age, ce, w ? w : "true");
        _cleanup_free_ char *cov = covered_expr(&g, r, "t");
        strbuf_appendf(&b, ", %s", cov ? cov : "true");
        if (r->action == ACTION_ANONYMISE) {
                _cleanup_free_ char *d = all_done_expr(&g, r->columns, r->n_columns, "t");
                strbuf_appendf(&b, ", %s", d);
        } else
                strbuf_append(&b, ", false");
        if (r->has_deadline) {
                size_t od = slot_get(plan, SLOT_OVERDUE, r, &r->retain, &r->deadline);
                _cleanup_free_ char *oe = cut_expr(&g, od, k);
                _cleanup_free_ char *dl = due_at_sql(&g, base, &r->deadline);
                _cleanup_free_ char *oat = due_at_sql(&g, dl, &r->retain);
                strbuf_appendf(&b, ", (%s)::text, %s < %s", oat, age, oe);
        } else
                strbuf_append(&b, ", NULL::text, false");
        if (r->has_while_held) {
                _cleanup_free_ char *d = all_done_expr(&g, r->while_held_columns, r->n_while_held_columns, "t");
                strbuf_appendf(&b, ", %s", d);
        } else
                strbuf_append(&b, ", false");

        if (r->subject)
                for (size_t i = 0; i < r->n_holds; i++) {
                        SubjKey key;
                        hold_key(&g, r, r->holds[i], "t", &key);
                        explain_hold_columns(&g, r->holds[i], &key, &b);
                        subj_key_done(&key);
                }
        if (r->action == ACTION_DELETE) {
                const CatTable *t = plan->table;
                for (size_t i = 0; i < t->n_referenced_by; i++) {
                        uint32_t path[1] = { t->oid };
                        _cleanup_free_ char *x = cascade_fk_expr(&g, &t->referenced_by[i], "t", 0, path, 1);
                        if (!x)
                                continue;
                        strbuf_appendf(&b, ", %s", x);
                        e.cascade_fks = xreallocarray(e.cascade_fks, e.n_cascade_fks + 1, sizeof(CatForeignKey *));
                        e.cascade_fks[e.n_cascade_fks++] = &t->referenced_by[i];
                }
                for (size_t i = 0; i < policy->n_rules; i++) {
                        const Rule *o = &policy->rules[i];
                        if (o == r)
                                continue;
                        _cleanup_free_ char *x = other_rules_keep_expr(&g, r, "t", o);
                        if (!x)
                                continue;
                        strbuf_appendf(&b, ", coalesce(%s, false)", x);
                        e.other_rules = xreallocarray(e.other_rules, e.n_other_rules + 1, sizeof(Rule *));
                        e.other_rules[e.n_other_rules++] = o;
                }
                for (size_t i = 0; i < t->n_referenced_by; i++) {
                        if (!fk_restricts(&t->referenced_by[i]))
                                continue;
                        _cleanup_free_ char *x = restrict_expr_one(&g, &t->referenced_by[i], "t");
                        strbuf_appendf(&b, ", %s", x);
                        e.restrict_fks = xreallocarray(e.restrict_fks, e.n_restrict_fks + 1, sizeof(CatForeignKey *));
                        e.restrict_fks[e.n_restrict_fks++] = &t->referenced_by[i];
                }
                explain_with_columns(&g, r, &b, &e);
        }
        _cleanup_free_ char *km = key_match(&g, pk, n_pk, "t");
        bool citus = cat_table_is_citus(plan->table);
        _cleanup_free_ char *sel = strbuf_steal(&b);
        finish_statement(&g, &e.row, explain_row_sql(citus, tq, km, sel));

        /* The active operator holds of each registry hold, by the hold's name (its subject's keys). */
        StrBuf reg = {};
        for (size_t i = 0; r->subject && i < r->n_holds; i++) {
                const Hold *h = r->holds[i];
                if (!h->registry)
                        continue;
                SubjKey key;
                hold_key(&g, r, h, "t", &key);
                _cleanup_free_ char *hn = param(&g, PARAM_CONST, 0, h->name, "hold name");
                _cleanup_free_ char *s = param(&g, PARAM_CONST, 0, h->subject->name, "subject name");
                _cleanup_free_ char *km2 = citus ? NULL : key_match(&g, pk, n_pk, "t");
                _cleanup_free_ char *m = registry_key_match(&g, h->subject, "rh", &key);
                subj_key_done(&key);
                strbuf_appendf(&reg,
                               "%sSELECT rh.id::text, rh.reason, rh.placed_by, rh.placed_at::text, rh.expires_at::text, %s::text AS hold,"
                               " rh.id FROM %s t JOIN retention.holds rh ON rh.subject = %s AND %s"
                               " WHERE %s AND rh.released_at IS NULL AND (rh.expires_at IS NULL OR rh.expires_at > now())",
                               reg.len ? " UNION ALL " : "", hn, citus ? "row_t" : tq, s, m, citus ? "true" : km2);
        }
        if (reg.len) {
                strbuf_append(&reg, " ORDER BY 6, 7");
                /* Citus: the row read first from its shard, as for e.row. */
                _cleanup_free_ char *kmc = citus ? key_match(&g, pk, n_pk, "t") : NULL;
                _cleanup_free_ char *body = strbuf_steal(&reg);
                finish_statement(&g, &e.registry,
                                 citus ? xasprintf("WITH row_t AS MATERIALIZED (SELECT * FROM %s t WHERE %s) %s", tq, kmc, body)
                                       : xstrdup(body));
        }

        /* Every slot the statements use is known now. */
        plan_statement_done(&plan->cutoffs);
        build_cutoffs(&g);
        plan->cutoffs.purpose = "the computation of the cutoffs";
        e.row.purpose = "the look at the row";
        e.registry.purpose = "the look up of the row's holds";
        free(g.params);
        *ret = e;
}

void explain_plan_done(ExplainPlan *e) {
        plan_statement_done(&e->row);
        plan_statement_done(&e->registry);
        free(e->cascade_fks);
        free(e->with);
        free(e->other_rules);
        free(e->restrict_fks);
        *e = (ExplainPlan) {};
}

const CatForeignKey *plan_referrer_fk(const CatCache *cache, const Rule *r) {
        return referrer_fk(cache, cat_cache_find_name(cache, &r->table), r);
}

void plan_row_keys(const CatTable *t, char *const *pk, size_t n_pk, const char *where_column, unsigned limit,
                   PlanStatement *ret) {
        plan_row_keys_via(t, pk, n_pk, where_column, NULL, limit, ret);
}

void plan_row_keys_via(const CatTable *t, char *const *pk, size_t n_pk, const char *where_column, const CatForeignKey *via,
                       unsigned limit, PlanStatement *ret) {
        Gen g = {};
        StrBuf b = {};
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        strbuf_append(&b, "SELECT ");
        for (size_t i = 0; i < n_pk; i++) {
                _cleanup_free_ char *c = col("t", pk[i]);
                strbuf_appendf(&b, "%s%s::text", i ? ", " : "", c);
        }
        strbuf_appendf(&b, " FROM %s t WHERE ", tq);
        if (where_column) {
                /* via: the column is the referring table's, whose rows refer to t's through the key */
                _cleanup_free_ char *c = col(via ? "rv" : "t", where_column);
                _cleanup_free_ char *p = param(&g, PARAM_KEY, 0, NULL, "subject key");
                if (via) {
                        _cleanup_free_ char *rq = qualified_name_quote(&via->child);
                        _cleanup_free_ char *on = fk_join(via, "rv", "t");
                        strbuf_appendf(&b, "EXISTS (SELECT 1 FROM %s rv WHERE %s AND %s = %s) ORDER BY ", rq, on, c, p);
                } else
                        strbuf_appendf(&b, "%s = %s ORDER BY ", c, p);
                for (size_t i = 0; i < n_pk; i++) {
                        _cleanup_free_ char *o = col("t", pk[i]);
                        strbuf_appendf(&b, "%s%s", i ? ", " : "", o);
                }
                strbuf_appendf(&b, " LIMIT %u", limit);
        } else {
                _cleanup_free_ char *km = key_match(&g, pk, n_pk, "t");
                strbuf_append(&b, km);
        }
        finish_statement(&g, ret, strbuf_steal(&b));
}
