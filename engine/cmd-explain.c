/* cmd-explain.c — `retentiond explain TABLE KEY...` and `retentiond explain --subject SUBJECT KEY`:
 * why is this row still here, and when will it go? For one row (or every row of a subject):
 * every rule that covers its table, its age value and the cutoff, the holds that apply (who
 * placed them, until when, the evidence's date), cascade and RESTRICT references, the decision
 * in words, the deadline, and the moment it will be deleted or anonymised if nothing changes.
 * Reads only, in one READ ONLY REPEATABLE READ transaction on a read-only session. Prints no
 * column value but the key and the dates; every date is computed by PostgreSQL. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "catalog.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "json.h"
#include "plan.h"
#include "rule-where.h"
#include "util.h"

/* A subject's rows in one table: at most this many are explained. */
#define EXPLAIN_SUBJECT_ROWS_MAX 1000

typedef struct RegistryRow {
        char *id, *reason, *placed_by, *placed_at, *until;
} RegistryRow;

typedef struct HoldInfo {
        const Hold *hold;
        bool applies, forever;
        char *until;    /* registry: latest --until of the active holds; derived: when the evidence lapses */
        char *evidence; /* derived: youngest evidence date */
        char *cutoff;   /* derived: the hold's own cutoff */
        RegistryRow *rows;
        size_t n_rows;
} HoldInfo;

typedef struct Flag {
        char *name; /* table or rule */
        bool on;
} Flag;

typedef struct RuleInfo {
        const Rule *rule;
        char *error;
        char *cutoff, *overdue_cutoff;
        char *age, *due_at, *overdue_at;
        bool age_due, matches, done, overdue_age, while_held_done;
        HoldInfo *holds;
        size_t n_holds;
        Flag *cascade, *others, *refs;
        size_t n_cascade, n_others, n_refs;

        bool held, kept_by_rule, referenced, overdue;
        const char *state;
        char *decision;
        /* when it will be deleted or anonymised if nothing changes */
        bool own_known;   /* without looking at other rules */
        char *own_at;     /* PostgreSQL's greatest() of the candidates; NULL when never or unknown */
        char *own_note;   /* why unknown or never */
        bool never;       /* never (age NULL, where does not match, already anonymised) */
        bool known;
        char *action_at;
        char *note;
} RuleInfo;

typedef struct RowInfo {
        const CatTable *table;
        char **pk;
        char **key;
        size_t n_key;
        RuleInfo *rules;
        size_t n_rules;
} RowInfo;

static void registry_rows_free(RegistryRow *r, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(r[i].id);
                free(r[i].reason);
                free(r[i].placed_by);
                free(r[i].placed_at);
                free(r[i].until);
        }
        free(r);
}

static void flags_free(Flag *f, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(f[i].name);
        free(f);
}

static void rule_info_done(RuleInfo *ri) {
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
        free(ri->decision);
        free(ri->own_at);
        free(ri->own_note);
        free(ri->action_at);
        free(ri->note);
}

static void row_info_done(RowInfo *r) {
        for (size_t i = 0; i < r->n_key; i++) {
                free(r->pk[i]);
                free(r->key[i]);
        }
        free(r->pk);
        free(r->key);
        for (size_t i = 0; i < r->n_rules; i++)
                rule_info_done(&r->rules[i]);
        free(r->rules);
        *r = (RowInfo) {};
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

static char *columns_text(const ColumnMethod *c, size_t n) {
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
static int explain_rule(Pg *pg, const Policy *policy, CatCache *cache, RowInfo *row, RuleInfo *ri, PgError *err) {
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
        ri->done = bool_value(rr, 0, EXPLAIN_DONE);
        ri->overdue_at = dup_value(rr, 0, EXPLAIN_OVERDUE_AT);
        ri->overdue_age = bool_value(rr, 0, EXPLAIN_OVERDUE_AGE);
        ri->while_held_done = bool_value(rr, 0, EXPLAIN_WHILE_HELD_DONE);
        int c = _EXPLAIN_FIXED;
        const Rule *r = ri->rule;
        size_t nh = r->subject ? r->n_holds : 0;
        ri->holds = xcalloc(nh ? nh : 1, sizeof(HoldInfo));
        ri->n_holds = nh;
        for (size_t i = 0; i < nh; i++, c += EXPLAIN_PER_HOLD) {
                HoldInfo *h = &ri->holds[i];
                h->hold = r->holds[i];
                h->applies = bool_value(rr, 0, c + EXPLAIN_HOLD_APPLIES);
                h->until = dup_value(rr, 0, c + EXPLAIN_HOLD_UNTIL);
                h->forever = bool_value(rr, 0, c + EXPLAIN_HOLD_FOREVER);
                h->evidence = dup_value(rr, 0, c + EXPLAIN_HOLD_EVIDENCE);
                ssize_t hs = find_slot(plan, SLOT_HOLD, h->hold);
                if (!h->hold->registry && hs >= 0)
                        h->cutoff = xstrdup(slots[hs]);
        }
        ri->cascade = xcalloc(e.n_cascade_fks ? e.n_cascade_fks : 1, sizeof(Flag));
        for (size_t i = 0; i < e.n_cascade_fks; i++, c++)
                ri->cascade[ri->n_cascade++] = (Flag) { qualified_name_display(&e.cascade_fks[i]->child), bool_value(rr, 0, c) };
        ri->others = xcalloc(e.n_other_rules ? e.n_other_rules : 1, sizeof(Flag));
        for (size_t i = 0; i < e.n_other_rules; i++, c++)
                ri->others[ri->n_others++] = (Flag) { xstrdup(e.other_rules[i]->name), bool_value(rr, 0, c) };
        ri->refs = xcalloc(e.n_restrict_fks ? e.n_restrict_fks : 1, sizeof(Flag));
        for (size_t i = 0; i < e.n_restrict_fks; i++, c++)
                ri->refs[ri->n_refs++] = (Flag) { qualified_name_display(&e.restrict_fks[i]->child), bool_value(rr, 0, c) };

        if (e.registry.sql) {
                _cleanup_pgresult_ PGresult *hr = NULL;
                k = exec_plan_stmt(pg, &e.registry, slots, n_slots, row->key, row->n_key, &hr, err);
                if (k)
                        goto out;
                for (size_t i = 0; i < ri->n_holds; i++) {
                        HoldInfo *h = &ri->holds[i];
                        if (!h->hold->registry)
                                continue;
                        h->n_rows = (size_t) PQntuples(hr);
                        h->rows = xcalloc(h->n_rows ? h->n_rows : 1, sizeof(RegistryRow));
                        for (size_t j = 0; j < h->n_rows; j++)
                                h->rows[j] = (RegistryRow) {
                                        dup_value(hr, (int) j, 0), dup_value(hr, (int) j, 1), dup_value(hr, (int) j, 2),
                                        dup_value(hr, (int) j, 3), dup_value(hr, (int) j, 4),
                                };
                }
        }
        k = 0;
out:
        strv_free(slots, n_slots);
        explain_plan_done(&e);
        return k;
}

static char *registry_text(const HoldInfo *h) {
        StrBuf b = {};
        for (size_t j = 0; j < h->n_rows; j++) {
                const RegistryRow *x = &h->rows[j];
                strbuf_appendf(&b, "%shold %s placed by %s on %.10s", j ? ", " : "", x->id, x->placed_by ? x->placed_by : "?",
                               x->placed_at ? x->placed_at : "?");
        }
        return strbuf_steal(&b);
}

/* What the facts mean: the state, the decision in words, and when the row goes. */
static int decide_rule(Pg *pg, const CatTable *t, RuleInfo *ri, PgError *err) {
        const Rule *r = ri->rule;
        bool anon = r->action == ACTION_ANONYMISE;
        const char *verb = anon ? "anonymised" : "deleted";
        _cleanup_free_ char *agecol = ident_display(r->column);
        StrBuf why = {};
        char **cand = NULL, **unknown = NULL;
        size_t n_cand = 0, n_unknown = 0;
        int k = 0;

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

        /* held by ...: the applying holds in words */
        for (size_t i = 0; i < ri->n_holds; i++) {
                const HoldInfo *h = &ri->holds[i];
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
        _cleanup_free_ char *held_by = strbuf_steal(&why);

        ri->overdue = r->has_deadline && ri->overdue_age && ri->matches && !ri->done && !ri->held && !ri->kept_by_rule;

        if (!ri->age) {
                ri->state = "never";
                ri->decision = xasprintf("kept: its age value (%s) is NULL, which never expires", agecol);
                ri->never = true;
                ri->own_note = xasprintf("never, while %s is NULL", agecol);
                goto done;
        }
        if (!ri->matches) {
                ri->state = "not_covered";
                ri->decision = xstrdup("not covered: the rule's where filter does not match this row");
                ri->never = true;
                ri->own_note = xstrdup("never, while the where filter does not match");
                goto done;
        }
        if (ri->done) {
                _cleanup_free_ char *cols = columns_text(r->columns, r->n_columns);
                ri->state = "anonymised";
                ri->decision = xasprintf("already anonymised (%s): nothing left to do", cols);
                ri->never = true;
                ri->own_note = xstrdup("already anonymised");
                goto done;
        }
        if (ri->age_due) {
                if (ri->held) {
                        ri->state = "held";
                        StrBuf d = {};
                        strbuf_appendf(&d, "kept: held by %s — a hold always beats %s", held_by, anon ? "anonymisation" : "deletion");
                        if (r->has_while_held) {
                                _cleanup_free_ char *cols = columns_text(r->while_held_columns, r->n_while_held_columns);
                                strbuf_appendf(&d, "; anonymised while held (%s): %s", cols,
                                               ri->while_held_done ? "done" : "the next run anonymises it");
                        }
                        ri->decision = strbuf_steal(&d);
                } else if (ri->kept_by_rule) {
                        ri->state = "kept";
                        StrBuf d = {};
                        strbuf_append(&d, "kept: ");
                        size_t n = 0;
                        for (size_t i = 0; i < ri->n_others; i++)
                                if (ri->others[i].on)
                                        strbuf_appendf(&d, "%srule \"%s\"", n++ ? " and " : "", ri->others[i].name);
                        strbuf_appendf(&d, " keeps it longer (of the delete rules on a table, the longest retention wins)");
                        ri->decision = strbuf_steal(&d);
                } else if (ri->referenced) {
                        ri->state = "referenced";
                        StrBuf d = {};
                        strbuf_append(&d, "kept: still referenced from ");
                        size_t n = 0;
                        for (size_t i = 0; i < ri->n_refs; i++)
                                if (ri->refs[i].on)
                                        strbuf_appendf(&d, "%s%s", n++ ? " and " : "", ri->refs[i].name);
                        strbuf_append(&d, " (ON DELETE RESTRICT / NO ACTION); deleted once nothing references it");
                        ri->decision = strbuf_steal(&d);
                } else {
                        ri->state = "due";
                        ri->decision = xasprintf("due: will be %s by the next run", verb);
                }
        } else {
                ri->state = "not_due";
                if (ri->held)
                        ri->decision = xasprintf("not yet due: due after %s; held now by %s", ri->due_at, held_by);
                else
                        ri->decision = xasprintf("not yet due: due after %s", ri->due_at);
        }

        /* When, if nothing changes: the latest of the moment it is due and the moments the holds
         * that keep it now lapse. */
        add_str(&cand, &n_cand, xstrdup(ri->due_at));
        for (size_t i = 0; i < ri->n_holds; i++) {
                const HoldInfo *h = &ri->holds[i];
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
                if (k)
                        goto out;
                ri->own_known = true;
        } else {
                StrBuf u = {};
                for (size_t i = 0; i < n_unknown; i++)
                        strbuf_appendf(&u, "%s%s", i ? "; " : "", unknown[i]);
                ri->own_note = strbuf_steal(&u);
        }
done:
        k = 0;
out:
        strv_free(cand, n_cand);
        strv_free(unknown, n_unknown);
        (void) t;
        return k;
}

/* The other delete rules that keep the row: it goes at the latest of their moments. */
static int decide_row(Pg *pg, RowInfo *row, PgError *err) {
        for (size_t i = 0; i < row->n_rules; i++) {
                RuleInfo *ri = &row->rules[i];
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
                        const RuleInfo *o = NULL;
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

/* ---- output ---- */

static void json_flags(StrBuf *b, const char *k, const char *name_key, const char *flag_key, const Flag *f, size_t n) {
        strbuf_appendf(b, ",\"%s\":[", k);
        for (size_t i = 0; i < n; i++) {
                strbuf_appendf(b, "%s{\"%s\":", i ? "," : "", name_key);
                json_append_string(b, f[i].name);
                strbuf_appendf(b, ",\"%s\":%s}", flag_key, f[i].on ? "true" : "false");
        }
        strbuf_append(b, "]");
}

static void json_rule(StrBuf *b, const RuleInfo *ri) {
        const Rule *r = ri->rule;
        char d[DURATION_FORMAT_MAX];
        strbuf_append(b, "{\"rule\":");
        json_append_string(b, r->name);
        json_kv_str(b, "clause", r->clause);
        json_kv_str(b, "action", action_to_string(r->action));
        json_kv_str(b, "column", r->column);
        json_kv_str(b, "retain", duration_format(&r->retain, d, sizeof(d)));
        json_kv_str(b, "from", r->start.from == FROM_RECORD ? NULL : start_from_to_string(r->start.from));
        if (r->start.from == FROM_END_OF_FISCAL_YEAR)
                strbuf_appendf(b, ",\"fiscal_year_start\":%d", r->start.fiscal_year_start);
        else
                strbuf_append(b, ",\"fiscal_year_start\":null");
        if (ri->error) {
                json_kv_str(b, "state", "error");
                json_kv_str(b, "error", ri->error);
                strbuf_append(b, "}");
                return;
        }
        json_kv_str(b, "age_value", ri->age);
        json_kv_str(b, "cutoff", ri->cutoff);
        json_kv_bool(b, "due_by_age", ri->age_due);
        json_kv_str(b, "due_at", ri->due_at);
        json_kv_bool(b, "where_matches", ri->matches);
        json_kv_bool(b, "already_anonymised", ri->done);
        strbuf_append(b, ",\"holds\":[");
        for (size_t i = 0; i < ri->n_holds; i++) {
                const HoldInfo *h = &ri->holds[i];
                strbuf_append(b, i ? ",{\"hold\":" : "{\"hold\":");
                json_append_string(b, h->hold->name);
                json_kv_str(b, "kind", h->hold->registry ? "registry" : "derived");
                json_kv_str(b, "reason", h->hold->reason);
                json_kv_bool(b, "applies", h->applies);
                json_kv_str(b, "until", h->until);
                json_kv_bool(b, "indefinite", h->forever);
                if (h->hold->registry) {
                        strbuf_append(b, ",\"registry_holds\":[");
                        for (size_t j = 0; j < h->n_rows; j++) {
                                const RegistryRow *x = &h->rows[j];
                                strbuf_appendf(b, "%s{\"id\":%s", j ? "," : "", x->id);
                                json_kv_str(b, "reason", x->reason);
                                json_kv_str(b, "placed_by", x->placed_by);
                                json_kv_str(b, "placed_at", x->placed_at);
                                json_kv_str(b, "until", x->until);
                                strbuf_append(b, "}");
                        }
                        strbuf_append(b, "]");
                } else {
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        json_kv_str(b, "evidence_table", et);
                        json_kv_str(b, "youngest_evidence", h->evidence);
                        json_kv_str(b, "cutoff", h->cutoff);
                }
                strbuf_append(b, "}");
        }
        strbuf_append(b, "]");
        json_flags(b, "cascade", "table", "protected_rows", ri->cascade, ri->n_cascade);
        json_flags(b, "other_rules", "rule", "keeps", ri->others, ri->n_others);
        json_flags(b, "referenced_by", "table", "references", ri->refs, ri->n_refs);
        json_kv_str(b, "state", ri->state);
        json_kv_str(b, "decision", ri->decision);
        if (r->has_deadline)
                json_kv_str(b, "deadline", duration_format(&r->deadline, d, sizeof(d)));
        else
                json_kv_str(b, "deadline", NULL);
        json_kv_str(b, "overdue_cutoff", ri->overdue_cutoff);
        json_kv_str(b, "overdue_at", ri->overdue_at);
        json_kv_bool(b, "overdue", ri->overdue);
        if (r->has_while_held) {
                _cleanup_free_ char *cols = columns_text(r->while_held_columns, r->n_while_held_columns);
                strbuf_append(b, ",\"while_held\":{\"columns\":");
                json_append_string(b, cols);
                json_kv_bool(b, "done", ri->while_held_done);
                strbuf_append(b, "}");
        } else
                strbuf_append(b, ",\"while_held\":null");
        json_kv_str(b, "action_at", ri->action_at);
        json_kv_bool(b, "action_at_known", ri->known);
        json_kv_str(b, "action_at_note", ri->note);
        strbuf_append(b, "}");
}

static void json_row(StrBuf *b, const RowInfo *row) {
        _cleanup_free_ char *tn = qualified_name_display(&row->table->name);
        strbuf_append(b, "{\"table\":");
        json_append_string(b, tn);
        strbuf_append(b, ",\"key\":{");
        for (size_t i = 0; i < row->n_key; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_append_string(b, row->pk[i]);
                strbuf_append(b, ":");
                json_append_string(b, row->key[i]);
        }
        strbuf_append(b, "},\"rules\":[");
        for (size_t i = 0; i < row->n_rules; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_rule(b, &row->rules[i]);
        }
        strbuf_append(b, "]}");
}

/* Values from the database, the registry and the catalog are printed escaped (text_escape): a
 * reason, a key or a name with a newline or an escape sequence must not forge a line or rewrite
 * the terminal. */
static void text_row(FILE *f, const RowInfo *row) {
        _cleanup_(esc_pool_done) EscPool ep = {};
        _cleanup_free_ char *tn_raw = qualified_name_display(&row->table->name);
        const char *tn = esc_pool(&ep, tn_raw);
        fprintf(f, "%s", tn);
        for (size_t i = 0; i < row->n_key; i++) {
                _cleanup_free_ char *c = ident_display(row->pk[i]);
                fprintf(f, " %s=%s", esc_pool(&ep, c), esc_pool(&ep, row->key[i]));
        }
        fputc('\n', f);
        if (row->n_rules == 0)
                fprintf(f, "  no rule of the policy covers %s: nothing deletes or anonymises this row\n", tn);
        for (size_t i = 0; i < row->n_rules; i++) {
                const RuleInfo *ri = &row->rules[i];
                const Rule *r = ri->rule;
                char d[DURATION_FORMAT_MAX];
                _cleanup_free_ char *summary = rule_summary(r);
                _cleanup_free_ char *agecol = ident_display(r->column);
                _cleanup_free_ char *from = period_start_describe(&r->start);
                fprintf(f, "  rule %s — \"%s\"\n", r->name, esc_pool(&ep, r->clause));
                fprintf(f, "    %s\n", summary);
                if (ri->error) {
                        fprintf(f, "    ERROR: %s\n", esc_pool(&ep, ri->error));
                        continue;
                }
                fprintf(f, "    age:       %s = %s\n", esc_pool(&ep, agecol), ri->age ? esc_pool(&ep, ri->age) : "NULL");
                fprintf(f, "    cutoff:    %s%s%s%s\n", ri->cutoff, from ? "  (counted from " : "", from ? from : "",
                        from ? ")" : "");
                if (ri->age)
                        fprintf(f, "    due:       %s, by age after %s\n", ri->age_due ? "yes" : "no", ri->due_at);
                for (size_t j = 0; j < ri->n_holds; j++) {
                        const HoldInfo *h = &ri->holds[j];
                        fprintf(f, "    hold %s (%s): ", h->hold->name, h->hold->registry ? "registry" : "derived");
                        if (h->hold->registry) {
                                if (!h->applies) {
                                        fprintf(f, "does not apply (no active operator hold on the subject)\n");
                                        continue;
                                }
                                fprintf(f, "applies\n");
                                for (size_t m = 0; m < h->n_rows; m++) {
                                        const RegistryRow *x = &h->rows[m];
                                        fprintf(f, "      hold %s: \"%s\", placed by %s at %s, until %s\n", x->id,
                                                esc_pool(&ep, x->reason), esc_pool(&ep, x->placed_by), x->placed_at, x->until ? x->until : "released (no --until)");
                                }
                                continue;
                        }
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        _cleanup_free_ char *hf = period_start_describe(&h->hold->start);
                        fprintf(f, "%s\n", h->applies ? "applies" : "does not apply");
                        fprintf(f, "      evidence in %s: youngest %s%s; hold cutoff %s (retain %s%s%s)\n", esc_pool(&ep, et),
                                h->evidence ? h->evidence : "none", h->forever ? ", and some without a date" : "",
                                h->cutoff ? h->cutoff : "-", duration_format(&h->hold->retain, d, sizeof(d)),
                                hf ? " counted from " : "", hf ? hf : "");
                        if (h->applies)
                                fprintf(f, "      lapses: %s\n", h->forever ? "never, while evidence without a date exists"
                                                                  : h->until ? h->until : "-");
                }
                for (size_t j = 0; j < ri->n_cascade; j++)
                        fprintf(f, "    cascade into %s: %s\n", esc_pool(&ep, ri->cascade[j].name),
                                ri->cascade[j].on ? "rows a hold protects" : "no protected rows");
                for (size_t j = 0; j < ri->n_others; j++)
                        fprintf(f, "    rule %s: %s\n", ri->others[j].name, ri->others[j].on ? "keeps it longer" : "does not keep it");
                for (size_t j = 0; j < ri->n_refs; j++)
                        fprintf(f, "    referenced from %s: %s\n", esc_pool(&ep, ri->refs[j].name), ri->refs[j].on ? "yes" : "no");
                fprintf(f, "    decision:  %s\n", esc_pool(&ep, ri->decision));
                if (r->has_deadline && ri->age) {
                        fprintf(f, "    deadline:  %s after the retention: overdue after %s — %s\n",
                                duration_format(&r->deadline, d, sizeof(d)), ri->overdue_at ? ri->overdue_at : "-",
                                ri->overdue ? "OVERDUE" : ri->held ? "not overdue (a held row is never overdue)" : "not overdue");
                }
                const char *verb = r->action == ACTION_ANONYMISE ? "anonymised" : "deleted";
                if (ri->known && streq(ri->state, "due"))
                        fprintf(f, "    %s: by the next run (due since %s)\n", verb, ri->action_at);
                else if (ri->known)
                        fprintf(f, "    %s: after %s, if nothing changes\n", verb, ri->action_at);
                else
                        fprintf(f, "    %s: %s\n", verb, ri->note ? esc_pool(&ep, ri->note) : "unknown");
        }
}

/* ---- finding the rows ---- */

/* A key that PostgreSQL cannot read as the key column's type: a usage error. */
static bool is_data_error(const PgError *err) {
        return err->sqlstate[0] == '2' && err->sqlstate[1] == '2';
}

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

static void row_rules(const Policy *policy, const CatCache *cache, RowInfo *row) {
        row->rules = xcalloc(policy->n_rules ? policy->n_rules : 1, sizeof(RuleInfo));
        for (size_t i = 0; i < policy->n_rules; i++) {
                const CatTable *rt = cat_cache_find_name(cache, &policy->rules[i].table);
                if (rt && rt->oid == row->table->oid)
                        row->rules[row->n_rules++] = (RuleInfo) { .rule = &policy->rules[i] };
        }
}

static int explain_one(Pg *pg, const Policy *policy, CatCache *cache, RowInfo *row, PgError *err) {
        row_rules(policy, cache, row);
        for (size_t i = 0; i < row->n_rules; i++) {
                int k = explain_rule(pg, policy, cache, row, &row->rules[i], err);
                if (!k && !row->rules[i].error)
                        k = decide_rule(pg, row->table, &row->rules[i], err);
                if (k)
                        return k;
        }
        return decide_row(pg, row, err);
}

typedef struct Target {
        const CatTable *table;
        char **pk;
        size_t n_pk;
        const char *column; /* subject mode: the column holding the subject key */
} Target;

static void targets_free(Target *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                strv_free(t[i].pk, t[i].n_pk);
        free(t);
}

static void print_header(bool json, StrBuf *b, const char *subject, const char *key) {
        if (!json)
                return;
        strbuf_append(b, "{\"read_only\":true,\"subject\":");
        if (subject) {
                strbuf_append(b, "{\"name\":");
                json_append_string(b, subject);
                strbuf_append(b, ",\"key\":");
                json_append_string(b, key);
                strbuf_append(b, "}");
        } else
                strbuf_append(b, "null");
        strbuf_append(b, ",\"rows\":[");
}

int cmd_explain(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(cat_cache_done) CatCache cache = {};
        PgError err = {};
        int r, k;

        if (cli->subject ? cli->n_args != 1 : cli->n_args < 2) {
                log_pg_style(LOG_ERR, NULL, cli->subject ? "explain --subject needs SUBJECT and one KEY" : "explain needs TABLE and KEY",
                             NULL,
                             "Usage: retentiond explain TABLE KEY [KEY...] [--json] (one KEY per primary-key column, in key order),"
                             " or retentiond explain --subject SUBJECT KEY [--json]");
                return EXIT_USAGE;
        }
        if (cli->force || cli->dry_run || cli->sql || cli->n_rules > 0) {
                log_pg_style(LOG_ERR, NULL, "explain takes only --subject and --json", "It explains every rule that covers the row.",
                             NULL);
                return EXIT_USAGE;
        }
        QualifiedName tname = {};
        if (!cli->subject) {
                size_t off = 0;
                IdentError e = qualified_name_parse(cli->args[0], &tname, &off);
                if (e != IDENT_OK) {
                        _cleanup_free_ char *primary = xasprintf("invalid table name \"%s\"", cli->args[0]);
                        log_pg_style(LOG_ERR, NULL, primary, ident_error_to_string(e), "Write schema.table or table.");
                        return EXIT_USAGE;
                }
        }
        _cleanup_(qualified_name_done) QualifiedName tn = tname;

        r = cmd_load_policy(cli, &policy);
        if (r)
                return r;
        const Subject *subject = NULL;
        if (cli->subject) {
                subject = policy_find_subject(policy, cli->subject);
                if (!subject) {
                        _cleanup_free_ char *primary = xasprintf("subject \"%s\" is not defined in the policy", cli->subject);
                        log_pg_style(LOG_ERR, NULL, primary, "--subject names a subject of the policy's subjects: section.", NULL);
                        return EXIT_USAGE;
                }
        }
        r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        k = trail_check_schema(pg, &err);
        if (k)
                return cmd_fail(&err, k);
        k = pg_exec0(pg, NULL, &err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (k)
                return cmd_fail(&err, k);
        k = catalog_load_policy(pg, policy, &cache, &err);
        if (k)
                return cmd_fail(&err, k);

        /* Where to look: the table, or every table the subject's rows are in. */
        Target *targets = NULL;
        size_t n_targets = 0;
        int ret = EXIT_OK;
        if (!subject) {
                const CatTable *t = table_for(pg, &cache, &tn, &err, &k);
                if (!t) {
                        targets_free(targets, n_targets);
                        return k == PG_ERR_UNDEFINED ? (cmd_print_error(&err), pg_error_done(&err), EXIT_NOINPUT)
                                                     : cmd_fail(&err, k);
                }
                targets = xcalloc(1, sizeof(Target));
                targets[n_targets++] = (Target) { .table = t };
        } else {
                const CatTable *st = cat_cache_find_name(&cache, &subject->table);
                if (st) {
                        targets = xreallocarray(targets, n_targets + 1, sizeof(Target));
                        targets[n_targets++] = (Target) { .table = st, .column = subject->key };
                }
                for (size_t i = 0; i < policy->n_rules; i++) {
                        const Rule *ru = &policy->rules[i];
                        if (ru->subject != subject || !ru->subject_column)
                                continue;
                        const CatTable *t = cat_cache_find_name(&cache, &ru->table);
                        if (!t)
                                continue;
                        bool dup = false;
                        for (size_t j = 0; j < n_targets; j++)
                                if (targets[j].table->oid == t->oid && streq(targets[j].column, ru->subject_column))
                                        dup = true;
                        if (dup)
                                continue;
                        targets = xreallocarray(targets, n_targets + 1, sizeof(Target));
                        targets[n_targets++] = (Target) { .table = t, .column = ru->subject_column };
                }
        }
        for (size_t i = 0; i < n_targets; i++) {
                k = catalog_primary_key(pg, targets[i].table->oid, &targets[i].pk, &targets[i].n_pk, &err);
                if (k) {
                        targets_free(targets, n_targets);
                        return cmd_fail(&err, k);
                }
                if (targets[i].n_pk == 0) {
                        _cleanup_free_ char *d = qualified_name_display(&targets[i].table->name);
                        _cleanup_free_ char *primary = xasprintf("table %s has no primary key", d);
                        log_pg_style(LOG_ERR, NULL, primary, "explain identifies a row by its primary key.", NULL);
                        targets_free(targets, n_targets);
                        return EXIT_USAGE;
                }
        }
        if (!subject && (size_t) (cli->n_args - 1) != targets[0].n_pk) {
                _cleanup_free_ char *d = qualified_name_display(&targets[0].table->name);
                StrBuf cols = {}, args = {};
                for (size_t i = 0; i < targets[0].n_pk; i++) {
                        _cleanup_free_ char *c = ident_display(targets[0].pk[i]);
                        strbuf_appendf(&cols, "%s%s", i ? ", " : "", c);
                        strbuf_appendf(&args, " %s", c);
                }
                _cleanup_free_ char *primary = xasprintf("%s has a primary key of %zu column%s (%s), %d key value%s given", d,
                                                         targets[0].n_pk, targets[0].n_pk == 1 ? "" : "s", strbuf_str(&cols),
                                                         cli->n_args - 1, cli->n_args == 2 ? "" : "s");
                _cleanup_free_ char *hint = xasprintf("Give one KEY per primary-key column, in that order: retentiond explain %s%s",
                                                      cli->args[0], strbuf_str(&args));
                strbuf_done(&cols);
                strbuf_done(&args);
                log_pg_style(LOG_ERR, NULL, primary, NULL, hint);
                targets_free(targets, n_targets);
                return EXIT_USAGE;
        }

        StrBuf out = {};
        print_header(cli->json, &out, subject ? subject->name : NULL, subject ? cli->args[0] : NULL);
        size_t n_rows = 0;
        bool attention = false;
        for (size_t i = 0; i < n_targets && ret == EXIT_OK; i++) {
                Target *tg = &targets[i];
                PlanStatement st = {};
                plan_row_keys(tg->table, tg->pk, tg->n_pk, tg->column, EXPLAIN_SUBJECT_ROWS_MAX + 1, &st);
                _cleanup_pgresult_ PGresult *kr = NULL;
                char *const *keyv = subject ? cli->args : cli->args + 1;
                k = exec_plan_stmt(pg, &st, NULL, 0, keyv, subject ? 1 : tg->n_pk, &kr, &err);
                plan_statement_done(&st);
                if (k) {
                        if (is_data_error(&err)) {
                                _cleanup_free_ char *d = qualified_name_display(&tg->table->name);
                                _cleanup_free_ char *primary = xasprintf("invalid key for %s: %s", d, err.primary);
                                log_pg_style(LOG_ERR, NULL, primary, NULL, "Give the key as PostgreSQL reads the key column's type.");
                                pg_error_done(&err);
                                ret = EXIT_USAGE;
                        } else
                                ret = cmd_fail(&err, k);
                        break;
                }
                int n = PQntuples(kr);
                if (n > EXPLAIN_SUBJECT_ROWS_MAX) {
                        _cleanup_free_ char *d = qualified_name_display(&tg->table->name);
                        log_warning("the subject has more than %d rows in %s; only the first %d are explained",
                                    EXPLAIN_SUBJECT_ROWS_MAX, d, EXPLAIN_SUBJECT_ROWS_MAX);
                        n = EXPLAIN_SUBJECT_ROWS_MAX;
                }
                for (int j = 0; j < n; j++) {
                        RowInfo row = { .table = tg->table, .n_key = tg->n_pk };
                        row.pk = xcalloc(tg->n_pk, sizeof(char *));
                        row.key = xcalloc(tg->n_pk, sizeof(char *));
                        for (size_t m = 0; m < tg->n_pk; m++) {
                                row.pk[m] = xstrdup(tg->pk[m]);
                                row.key[m] = xstrdup(PQgetvalue(kr, j, (int) m));
                        }
                        k = explain_one(pg, policy, &cache, &row, &err);
                        if (k) {
                                row_info_done(&row);
                                ret = cmd_fail(&err, k);
                                break;
                        }
                        for (size_t m = 0; m < row.n_rules; m++)
                                if (row.rules[m].error)
                                        attention = true;
                        if (cli->json) {
                                if (n_rows)
                                        strbuf_append(&out, ",");
                                json_row(&out, &row);
                        } else {
                                if (n_rows)
                                        fputc('\n', stdout);
                                text_row(stdout, &row);
                        }
                        n_rows++;
                        row_info_done(&row);
                }
        }
        targets_free(targets, n_targets);
        if (ret != EXIT_OK) {
                strbuf_done(&out);
                return ret;
        }
        (void) pg_exec0(pg, NULL, &err, "COMMIT");
        pg_error_done(&err);
        if (n_rows == 0) {
                strbuf_done(&out);
                _cleanup_free_ char *primary =
                        subject ? xasprintf("subject %s %s has no rows", subject->name, cli->args[0])
                                : xasprintf("no row of %s has that key", cli->args[0]);
                log_pg_style(LOG_ERR, NULL, primary, NULL,
                             subject ? "Its rows are looked up in the subject's table and in every rule table with subject_column."
                                     : NULL);
                return EXIT_NOINPUT;
        }
        if (cli->json) {
                strbuf_append(&out, "]}\n");
                fputs(strbuf_str(&out), stdout);
        }
        strbuf_done(&out);
        return attention ? EXIT_ATTENTION : EXIT_OK;
}
