/* explain.c — the facts and decisions of `explain` (explain.h): for one row and each rule on its
 * table, the statements of plan_explain() run with the rule's cutoffs and the row's key, and
 * what they mean in words. Reads only; never prints, never keeps a column value but the key and
 * the dates; every date is computed by PostgreSQL. */
#include "explain.h"

#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "rule-where.h"
#include "util.h"

static void registry_rows_free(ExplainRegistryRow *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(r[i].id);
                free(r[i].reason);
                free(r[i].placed_by);
                free(r[i].placed_at);
                free(r[i].until);
        }
        free(r);
}

static void flags_free(ExplainFlag *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(f[i].name);
        free(f);
}

static void rule_done(ExplainRule *ri) {
        free(ri->error);
        free(ri->cutoff);
        free(ri->overdue_cutoff);
        free(ri->age);
        free(ri->due_at);
        free(ri->overdue_at);
        for (size_t i = 0; i < ri->n_holds; i++) {
                free(ri->holds[i].until);
                free(ri->holds[i].evidence);
                free(ri->holds[i].cutoff);
                registry_rows_free(ri->holds[i].rows, ri->holds[i].n_rows);
        }
        free(ri->holds);
        flags_free(ri->cascade, ri->n_cascade);
        flags_free(ri->others, ri->n_others);
        flags_free(ri->refs, ri->n_refs);
        for (size_t i = 0; i < ri->n_with; i++) {
                free(ri->with[i].table);
                free(ri->with[i].key);
        }
        free(ri->with);
        free(ri->decision);
        free(ri->own_at);
        free(ri->own_note);
        free(ri->action_at);
        free(ri->note);
}

void explain_row_done(ExplainRow *r) {
        for (size_t i = 0; i < r->n_key; i++) {
                free(r->pk[i]);
                free(r->key[i]);
        }
        free(r->pk);
        free(r->key);
        for (size_t i = 0; i < r->n_rules; i++)
                rule_done(&r->rules[i]);
        free(r->rules);
        *r = (ExplainRow) {};
}

static char *dup_value(const PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static bool bool_value(const PGresult *r, int row, int col) {
        return !PQgetisnull(r, row, col) && streq(PQgetvalue(r, row, col), "t");
}

/* Runs a plan statement: constants, cutoffs (slot values) and key values bound. */
static int exec_plan_stmt(Pg *pg, const PlanStatement *st, char *const *slots, size_t n_slots, char *const *key,
                          size_t n_key, PGresult **ret, PgError *err) {
        const char **v = xcalloc(st->n_params ? st->n_params : 1, sizeof(char *));
        for (size_t i = 0; i < st->n_params; i++) {
                const PlanParam *p = &st->params[i];
                if (p->kind == PARAM_CONST)
                        v[i] = p->value;
                else if (p->kind == PARAM_TIME)
                        v[i] = p->slot < n_slots ? slots[p->slot] : NULL;
                else if (p->kind == PARAM_KEY)
                        v[i] = p->slot < n_key ? key[p->slot] : NULL;
        }
        int k = pg_exec(pg, ret, err, st->sql, (int) st->n_params, v);
        free(v);
        return k;
}

/* greatest() of timestamps, by PostgreSQL. */
static int pg_greatest(Pg *pg, char *const *v, size_t n, char **ret, PgError *err) {
        StrBuf b = {};
        strbuf_append(&b, "SELECT greatest(");
        for (size_t i = 0; i < n; i++)
                strbuf_appendf(&b, "%s$%zu::timestamptz", i ? ", " : "", i + 1);
        strbuf_append(&b, ")::text");
        _cleanup_free_ char *sql = strbuf_steal(&b);
        return pg_value(pg, ret, err, sql, (int) n, (const char *const *) v);
}

static ssize_t find_slot(const Plan *p, TimeSlotKind kind, const void *ref) {
        for (size_t i = 0; i < p->n_slots; i++)
                if (p->slots[i].kind == kind && p->slots[i].ref == ref)
                        return (ssize_t) i;
        return -1;
}

char *explain_columns_text(const ColumnMethod *c, size_t n) {
        StrBuf b = {};
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *col = ident_display(c[i].column);
                strbuf_appendf(&b, "%s%s %s", i ? ", " : "", col, method_to_string(c[i].method));
        }
        return strbuf_steal(&b);
}

static void add_str(char ***v, size_t *n, char *s) {
        *v = xreallocarray(*v, *n + 1, sizeof(char *));
        (*v)[(*n)++] = s;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* The facts of one rule for the row, all from PostgreSQL. Returns 0, or a PgErrorClass. */
static int explain_rule(Pg *pg, const Policy *policy, CatCache *cache, ExplainRow *row, ExplainRule *ri, PgError *err) {
        _cleanup_(plan_freep) Plan *plan = NULL;
        _cleanup_free_ char *error = NULL;
        if (plan_build(policy, ri->rule, cache, &plan, &error) < 0) {
                ri->error = TAKE_PTR(error);
                ri->state = "error";
                return 0;
        }
        /* The where this statement pastes, parsed by PostgreSQL on its own first. */
        PgError we = {};
        int kw = rule_where_check(pg, policy, ri->rule, cache, &we);
        if (kw && !rule_where_refused(kw)) {
                *err = we;
                return kw;
        }
        if (kw) {
                ri->error = we.detail ? xasprintf("%s (%s)", we.primary, we.detail) : xstrdup(we.primary);
                ri->state = "error";
                pg_error_done(&we);
                return 0;
        }
        ExplainPlan e = {};
        plan_explain(plan, policy, cache, row->pk, row->n_key, &e);

        _cleanup_pgresult_ PGresult *cr = NULL, *rr = NULL;
        char **slots = NULL;
        size_t n_slots = 0;
        int k = exec_plan_stmt(pg, &plan->cutoffs, NULL, 0, NULL, 0, &cr, err);
        if (k)
                goto out;
        n_slots = (size_t) PQnfields(cr);
        slots = xcalloc(n_slots ? n_slots : 1, sizeof(char *));
        for (size_t i = 0; i < n_slots; i++)
                slots[i] = xstrdup(PQgetvalue(cr, 0, (int) i));
        ri->cutoff = xstrdup(slots[0]);
        ssize_t od = find_slot(plan, SLOT_OVERDUE, ri->rule);
        if (od >= 0)
                ri->overdue_cutoff = xstrdup(slots[od]);

        k = exec_plan_stmt(pg, &e.row, slots, n_slots, row->key, row->n_key, &rr, err);
        if (k)
                goto out;
        if (PQntuples(rr) != 1) {
                ri->error = xstrdup("the row disappeared");
                ri->state = "error";
                goto out;
        }
        ri->age = dup_value(rr, 0, EXPLAIN_AGE);
        ri->due_at = dup_value(rr, 0, EXPLAIN_DUE_AT);
        ri->age_due = bool_value(rr, 0, EXPLAIN_AGE_DUE);
        ri->matches = bool_value(rr, 0, EXPLAIN_MATCHES);
        ri->covered = bool_value(rr, 0, EXPLAIN_COVERED);
        ri->done = bool_value(rr, 0, EXPLAIN_DONE);
        ri->overdue_at = dup_value(rr, 0, EXPLAIN_OVERDUE_AT);
        ri->overdue_age = bool_value(rr, 0, EXPLAIN_OVERDUE_AGE);
        ri->while_held_done = bool_value(rr, 0, EXPLAIN_WHILE_HELD_DONE);
        int c = _EXPLAIN_FIXED;
        const Rule *r = ri->rule;
        size_t nh = r->subject ? r->n_holds : 0;
        ri->holds = xcalloc(nh ? nh : 1, sizeof(ExplainHold));
        ri->n_holds = nh;
        for (size_t i = 0; i < nh; i++, c += EXPLAIN_PER_HOLD) {
                ExplainHold *h = &ri->holds[i];
                h->hold = r->holds[i];
                h->applies = bool_value(rr, 0, c + EXPLAIN_HOLD_APPLIES);
                h->until = dup_value(rr, 0, c + EXPLAIN_HOLD_UNTIL);
                h->forever = bool_value(rr, 0, c + EXPLAIN_HOLD_FOREVER);
                h->evidence = dup_value(rr, 0, c + EXPLAIN_HOLD_EVIDENCE);
                ssize_t hs = find_slot(plan, SLOT_HOLD, h->hold);
                if (!h->hold->registry && hs >= 0)
                        h->cutoff = xstrdup(slots[hs]);
        }
        ri->cascade = xcalloc(e.n_cascade_fks ? e.n_cascade_fks : 1, sizeof(ExplainFlag));
        for (size_t i = 0; i < e.n_cascade_fks; i++, c++)
                ri->cascade[ri->n_cascade++] = (ExplainFlag) { qualified_name_display(&e.cascade_fks[i]->child), bool_value(rr, 0, c) };
        ri->others = xcalloc(e.n_other_rules ? e.n_other_rules : 1, sizeof(ExplainFlag));
        for (size_t i = 0; i < e.n_other_rules; i++, c++)
                ri->others[ri->n_others++] = (ExplainFlag) { xstrdup(e.other_rules[i]->name), bool_value(rr, 0, c) };
        ri->refs = xcalloc(e.n_restrict_fks ? e.n_restrict_fks : 1, sizeof(ExplainFlag));
        for (size_t i = 0; i < e.n_restrict_fks; i++, c++)
                ri->refs[ri->n_refs++] = (ExplainFlag) { qualified_name_display(&e.restrict_fks[i]->child), bool_value(rr, 0, c) };
        ri->with = xcalloc(e.n_with ? e.n_with : 1, sizeof(ExplainWith));
        for (size_t i = 0; i < e.n_with; i++, c += 2)
                ri->with[ri->n_with++] = (ExplainWith) { qualified_name_display(&e.with[i]->table), dup_value(rr, 0, c),
                                                         bool_value(rr, 0, c + 1) };

        if (e.registry.sql) {
                _cleanup_pgresult_ PGresult *hr = NULL;
                k = exec_plan_stmt(pg, &e.registry, slots, n_slots, row->key, row->n_key, &hr, err);
                if (k)
                        goto out;
                /* one row per active operator hold, column 5 the registry hold it is of */
                for (size_t i = 0; i < ri->n_holds; i++) {
                        ExplainHold *h = &ri->holds[i];
                        if (!h->hold->registry)
                                continue;
                        h->rows = xcalloc((size_t) PQntuples(hr) + 1, sizeof(ExplainRegistryRow));
                        for (int j = 0; j < PQntuples(hr); j++)
                                if (streq(PQgetvalue(hr, j, 5), h->hold->name))
                                        h->rows[h->n_rows++] = (ExplainRegistryRow) {
                                                dup_value(hr, j, 0), dup_value(hr, j, 1), dup_value(hr, j, 2),
                                                dup_value(hr, j, 3), dup_value(hr, j, 4),
                                        };
                }
        }
        k = 0;
out:
        strv_free(slots, n_slots);
        explain_plan_done(&e);
        return k;
}

static char *registry_text(const ExplainHold *h) {
        StrBuf b = {};
        for (size_t j = 0; j < h->n_rows; j++) {
                const ExplainRegistryRow *x = &h->rows[j];
                strbuf_appendf(&b, "%shold %s placed by %s on %.10s", j ? ", " : "", x->id, x->placed_by ? x->placed_by : "?",
                               x->placed_at ? x->placed_at : "?");
        }
        return strbuf_steal(&b);
}

/* The flags the facts add up to: held (a hold applies, or a delete would cascade into held
 * rows), kept by another rule, referenced. */
static void decide_flags(ExplainRule *ri) {
        for (size_t i = 0; i < ri->n_holds; i++)
                if (ri->holds[i].applies)
                        ri->held = true;
        for (size_t i = 0; i < ri->n_cascade; i++)
                if (ri->cascade[i].on)
                        ri->held = true;
        for (size_t i = 0; i < ri->n_others; i++)
                if (ri->others[i].on)
                        ri->kept_by_rule = true;
        for (size_t i = 0; i < ri->n_refs; i++)
                if (ri->refs[i].on)
                        ri->referenced = true;
        const Rule *r = ri->rule;
        ri->overdue = r->has_deadline && ri->overdue_age && ri->matches && !ri->done && !ri->held && !ri->kept_by_rule;
}

/* "held by ...": the applying holds and cascade protections in words. */
static char *held_by_text(const ExplainRule *ri) {
        StrBuf why = {};
        for (size_t i = 0; i < ri->n_holds; i++) {
                const ExplainHold *h = &ri->holds[i];
                if (!h->applies)
                        continue;
                strbuf_append(&why, why.len ? ", " : "");
                if (h->hold->registry) {
                        _cleanup_free_ char *rt = registry_text(h);
                        strbuf_appendf(&why, "%s (%s)", h->hold->name, rt);
                } else {
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        strbuf_appendf(&why, "%s (evidence in %s dated %s%s)", h->hold->name, et,
                                       h->evidence ? h->evidence : "(no date)",
                                       h->forever ? ", and evidence without a date" : "");
                }
        }
        for (size_t i = 0; i < ri->n_cascade; i++)
                if (ri->cascade[i].on) {
                        strbuf_append(&why, why.len ? ", " : "");
                        strbuf_appendf(&why, "cascade protection (deleting it would cascade into held rows of %s)",
                                       ri->cascade[i].name);
                }
        return strbuf_steal(&why);
}

/* The names of the flags that are on, joined by " and "; rules as rule "NAME". */
static void flags_on_text(StrBuf *d, const ExplainFlag *f, size_t n, bool rules) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (f[i].on) {
                        strbuf_append(d, k++ ? " and " : "");
                        if (rules)
                                strbuf_appendf(d, "rule \"%s\"", f[i].name);
                        else
                                strbuf_append(d, f[i].name);
                }
}

/* The state and the decision in words, for a row whose age is due. */
static void decide_due(ExplainRule *ri, const char *held_by) {
        const Rule *r = ri->rule;
        bool anon = r->action == ACTION_ANONYMISE;
        StrBuf d = {};
        if (ri->held) {
                ri->state = "held";
                strbuf_appendf(&d, "kept: held by %s — a hold always beats %s", held_by, anon ? "anonymisation" : "deletion");
                if (r->has_while_held) {
                        _cleanup_free_ char *cols = explain_columns_text(r->while_held_columns, r->n_while_held_columns);
                        strbuf_appendf(&d, "; anonymised while held (%s): %s", cols,
                                       ri->while_held_done ? "done" : "the next run anonymises it");
                }
        } else if (ri->kept_by_rule) {
                ri->state = "kept";
                strbuf_append(&d, "kept: ");
                flags_on_text(&d, ri->others, ri->n_others, true);
                strbuf_appendf(&d, " keeps it longer (of the delete rules on a table, the longest retention wins)");
        } else if (ri->referenced) {
                ri->state = "referenced";
                strbuf_append(&d, "kept: still referenced from ");
                flags_on_text(&d, ri->refs, ri->n_refs, false);
                strbuf_append(&d, " (ON DELETE RESTRICT / NO ACTION); deleted once nothing references it");
        } else {
                ri->state = "due";
                strbuf_appendf(&d, "due: will be %s by the next run", anon ? "anonymised" : "deleted");
        }
        ri->decision = strbuf_steal(&d);
}

/* The state and the decision in words. Returns false when the row never goes by this rule
 * (its age is NULL, the where does not match, it is already anonymised). */
static bool decide_state(ExplainRule *ri, const char *held_by) {
        const Rule *r = ri->rule;
        _cleanup_free_ char *agecol = ident_display(r->column);
        if (!ri->age) {
                ri->state = "never";
                ri->decision = xasprintf("kept: its age value (%s) is NULL, which never expires", agecol);
                ri->own_note = xasprintf("never, while %s is NULL", agecol);
        } else if (!ri->matches) {
                ri->state = "not_covered";
                ri->decision = xstrdup("not covered: the rule's where filter does not match this row");
                ri->own_note = xstrdup("never, while the where filter does not match");
        } else if (!ri->covered) {
                _cleanup_free_ char *rt = qualified_name_display(&r->referrer.table);
                _cleanup_free_ char *rc = ident_display(r->referrer.column);
                ri->state = "not_covered";
                ri->decision = xasprintf("not covered: it is not the subject's alone (no row of %s refers to it through %s,"
                                         " or a row of another table refers to it too)",
                                         rt, rc);
                ri->own_note = xasprintf("never, while it is not referred to from %s alone", rt);
        } else if (ri->done) {
                _cleanup_free_ char *cols = explain_columns_text(r->columns, r->n_columns);
                ri->state = "anonymised";
                ri->decision = xasprintf("already anonymised (%s): nothing left to do", cols);
                ri->own_note = xstrdup("already anonymised");
        } else if (ri->age_due) {
                decide_due(ri, held_by);
                return true;
        } else {
                ri->state = "not_due";
                if (ri->held)
                        ri->decision = xasprintf("not yet due: due after %s; held now by %s", ri->due_at, held_by);
                else
                        ri->decision = xasprintf("not yet due: due after %s", ri->due_at);
                return true;
        }
        ri->never = true;
        return false;
}

/* When, if nothing changes: the latest of the moment it is due and the moments the holds that
 * keep it now lapse; unknown while something without a date keeps it. */
static int decide_own_at(Pg *pg, ExplainRule *ri, PgError *err) {
        char **cand = NULL, **unknown = NULL;
        size_t n_cand = 0, n_unknown = 0;
        int k = 0;
        add_str(&cand, &n_cand, xstrdup(ri->due_at));
        for (size_t i = 0; i < ri->n_holds; i++) {
                const ExplainHold *h = &ri->holds[i];
                if (!h->applies)
                        continue;
                if (h->forever && h->hold->registry) {
                        StrBuf u = {};
                        for (size_t j = 0; j < h->n_rows; j++)
                                if (!h->rows[j].until)
                                        strbuf_appendf(&u, "%s%s", u.len ? ", " : "", h->rows[j].id);
                        add_str(&unknown, &n_unknown,
                                xasprintf("unknown while registry hold %s (placed without --until) is active", strbuf_str(&u)));
                        strbuf_done(&u);
                } else if (h->forever) {
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        add_str(&unknown, &n_unknown,
                                xasprintf("unknown while %s has evidence for hold %s without a date", et, h->hold->name));
                } else if (h->until)
                        add_str(&cand, &n_cand, xstrdup(h->until));
        }
        for (size_t i = 0; i < ri->n_cascade; i++)
                if (ri->cascade[i].on)
                        add_str(&unknown, &n_unknown,
                                xasprintf("unknown: it depends on the held rows of %s that a delete would cascade into",
                                          ri->cascade[i].name));
        for (size_t i = 0; i < ri->n_refs; i++)
                if (ri->refs[i].on)
                        add_str(&unknown, &n_unknown, xasprintf("unknown: once no row of %s references it", ri->refs[i].name));
        if (n_unknown == 0) {
                k = pg_greatest(pg, cand, n_cand, &ri->own_at, err);
                if (!k)
                        ri->own_known = true;
        } else {
                StrBuf u = {};
                for (size_t i = 0; i < n_unknown; i++)
                        strbuf_appendf(&u, "%s%s", i ? "; " : "", unknown[i]);
                ri->own_note = strbuf_steal(&u);
        }
        strv_free(cand, n_cand);
        strv_free(unknown, n_unknown);
        return k;
}

/* What the facts mean: the state, the decision in words, and when the row goes. */
static int decide_rule(Pg *pg, ExplainRule *ri, PgError *err) {
        decide_flags(ri);
        _cleanup_free_ char *held_by = held_by_text(ri);
        if (!decide_state(ri, held_by))
                return 0;
        return decide_own_at(pg, ri, err);
}

/* The other delete rules that keep the row: it goes at the latest of their moments. */
static int decide_row(Pg *pg, ExplainRow *row, PgError *err) {
        for (size_t i = 0; i < row->n_rules; i++) {
                ExplainRule *ri = &row->rules[i];
                if (ri->error)
                        continue;
                char **cand = NULL;
                size_t n_cand = 0;
                bool known = ri->own_known;
                ri->note = ri->own_note ? xstrdup(ri->own_note) : NULL;
                if (known)
                        add_str(&cand, &n_cand, xstrdup(ri->own_at));
                for (size_t j = 0; known && j < ri->n_others; j++) {
                        if (!ri->others[j].on)
                                continue;
                        const ExplainRule *o = NULL;
                        for (size_t m = 0; m < row->n_rules; m++)
                                if (streq(row->rules[m].rule->name, ri->others[j].name))
                                        o = &row->rules[m];
                        if (o && o->own_known)
                                add_str(&cand, &n_cand, xstrdup(o->own_at));
                        else {
                                known = false;
                                free(ri->note);
                                ri->note = xasprintf("%s while rule \"%s\" keeps it (%s)", o && o->never ? "never" : "unknown",
                                                     ri->others[j].name, o && o->own_note ? o->own_note : "see that rule");
                        }
                }
                ri->known = known;
                int k = 0;
                if (known)
                        k = pg_greatest(pg, cand, n_cand, &ri->action_at, err);
                strv_free(cand, n_cand);
                if (k)
                        return k;
        }
        return 0;
}

/* ---- finding the rows ---- */

static const CatTable *table_for(Pg *pg, CatCache *cache, const QualifiedName *name, PgError *err, int *k) {
        _cleanup_(cat_table_freep) CatTable *t = NULL;
        *k = catalog_load_table(pg, name, &t, err);
        if (*k)
                return NULL;
        const CatTable *c = cat_cache_find_oid(cache, t->oid);
        if (c)
                return c;
        return cat_cache_add(cache, TAKE_PTR(t));
}

static void row_rules(const Policy *policy, const CatCache *cache, ExplainRow *row) {
        row->rules = xcalloc(policy->n_rules ? policy->n_rules : 1, sizeof(ExplainRule));
        for (size_t i = 0; i < policy->n_rules; i++) {
                const CatTable *rt = cat_cache_find_name(cache, &policy->rules[i].table);
                if (rt && rt->oid == row->table->oid)
                        row->rules[row->n_rules++] = (ExplainRule) { .rule = &policy->rules[i] };
        }
}

int explain_row(Pg *pg, const Policy *policy, CatCache *cache, ExplainRow *row, PgError *err) {
        row_rules(policy, cache, row);
        for (size_t i = 0; i < row->n_rules; i++) {
                int k = explain_rule(pg, policy, cache, row, &row->rules[i], err);
                if (!k && !row->rules[i].error)
                        k = decide_rule(pg, &row->rules[i], err);
                if (k)
                        return k;
        }
        return decide_row(pg, row, err);
}

void explain_targets_free(ExplainTarget *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                strv_free(t[i].pk, t[i].n_pk);
        free(t);
}

static void target_add(ExplainTarget **v, size_t *n, const CatTable *t, const char *column, const CatForeignKey *via) {
        for (size_t j = 0; j < *n; j++)
                if ((*v)[j].table->oid == t->oid && streq_ptr((*v)[j].column, column) && (*v)[j].via == via)
                        return;
        *v = xreallocarray(*v, *n + 1, sizeof(ExplainTarget));
        (*v)[(*n)++] = (ExplainTarget) { .table = t, .column = column, .via = via };
}

int explain_targets(Pg *pg, const Policy *policy, CatCache *cache, const Subject *subject, const QualifiedName *table,
                    ExplainTarget **ret, size_t *n, PgError *err) {
        ExplainTarget *v = NULL;
        size_t nv = 0;
        int k = 0;
        if (!subject) {
                const CatTable *t = table_for(pg, cache, table, err, &k);
                if (!t)
                        return k;
                target_add(&v, &nv, t, NULL, NULL);
        } else {
                const CatTable *st = cat_cache_find_name(cache, &subject->table);
                if (st)
                        target_add(&v, &nv, st, subject->key, NULL);
                for (size_t i = 0; i < policy->n_rules; i++) {
                        const Rule *ru = &policy->rules[i];
                        const CatTable *t = ru->subject == subject ? cat_cache_find_name(cache, &ru->table) : NULL;
                        if (t && ru->subject_column)
                                target_add(&v, &nv, t, ru->subject_column, NULL);
                        /* referenced_by: the rows the subject's rows refer to (a customer's address) */
                        const CatForeignKey *fk = t && ru->has_referrer ? plan_referrer_fk(cache, ru) : NULL;
                        if (fk)
                                target_add(&v, &nv, t, ru->referrer.subject_column ? ru->referrer.subject_column : subject->key, fk);
                }
        }
        for (size_t i = 0; i < nv; i++) {
                k = catalog_primary_key(pg, v[i].table->oid, &v[i].pk, &v[i].n_pk, err);
                if (k) {
                        explain_targets_free(v, nv);
                        return k;
                }
        }
        *ret = v;
        *n = nv;
        return 0;
}

int explain_target_keys(Pg *pg, const ExplainTarget *t, char *const *key, unsigned limit, PGresult **ret, PgError *err) {
        PlanStatement st = {};
        plan_row_keys_via(t->table, t->pk, t->n_pk, t->column, t->via, limit, &st);
        /* The operator's keys, read as the key columns' types: a data exception is about them. */
        pg->input_errors = true;
        int k = exec_plan_stmt(pg, &st, NULL, 0, key, t->column ? 1 : t->n_pk, ret, err);
        pg->input_errors = false;
        plan_statement_done(&st);
        return k;
}
