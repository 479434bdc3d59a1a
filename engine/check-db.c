/* check-db.c — `retentiond check --database`: compare a valid policy with the live catalog:
 * tables, columns and types, methods against column types, indexes on age columns, foreign-key
 * hazards, the engine role's privileges, the retention schema. Reads only, in a READ ONLY session. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "check-db.h"
#include "diag.h"
#include "catalog.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "ident.h"
#include "plan.h"
#include "rule-where.h"
#include "util.h"

/* Echo the located line, as every policy diagnostic does. */
static void echo_line(Diagnostic *x, const Location *loc) {
        _cleanup_fclose_ FILE *f = loc->file ? fopen(loc->file, "re") : NULL;
        if (!f)
                return;
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = 0;
        for (unsigned i = 0; i < loc->line && (n = getline(&line, &cap, f)) >= 0; i++)
                ;
        if (n > 0) {
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        n--;
                diag_set_source(x, line, (size_t) n);
        }
        free(line);
}

/* What a check found, and which exit status it asks for: 65 the policy cannot apply to this
 * catalog (a missing table or column, a method the column cannot take, a trigger that moves the
 * age, code of another role, a where PostgreSQL refuses), 77 the role lacks a privilege, 78 the
 * retention schema is missing or not usable. The worst wins in that order. */
typedef struct Check {
        Diagnostics *d;
        bool policy, permission, config;
        char *role; /* current_user, quoted for a hint */
} Check;

/* A finding about rule r, at loc (NULL or line 0: the rule's name). The message may start with
 * 'rule "name": '; the location already names the rule. */
static Diagnostic *add_at(Diagnostics *d, Severity sev, const Rule *r, const Location *loc, const char *msg) {
        const char *m = msg;
        _cleanup_free_ char *prefix = xasprintf("rule \"%s\": ", r->name);
        if (strncmp(m, prefix, strlen(prefix)) == 0)
                m += strlen(prefix);
        if (!loc || !loc->line)
                loc = &r->loc;
        Diagnostic *x = diag_add(d, sev, loc->file, loc->line, loc->column, "%s", m);
        diag_set_detail(x, "In rule \"%s\", checked against the database.", r->name);
        echo_line(x, loc);
        return x;
}

static void add_for_rule(Diagnostics *d, Severity sev, const Rule *r, const char *msg) {
        (void) add_at(d, sev, r, NULL, msg);
}

/* A rule's where that PostgreSQL refuses, located at its `where:` key. */
static void add_for_where(Diagnostics *d, const Rule *r, const PgError *err) {
        const Location *loc = r->where_loc.line ? &r->where_loc : &r->loc;
        Diagnostic *x = diag_add(d, SEVERITY_ERROR, loc->file, loc->line, loc->column, "%s", err->primary);
        if (err->detail)
                diag_set_detail(x, "%s", err->detail);
        if (err->hint)
                diag_set_hint(x, "%s", err->hint);
        echo_line(x, loc);
}

/* Partitions as a list of display names, from (schema, name) rows of r starting at column 0. */
static char *display_list(PGresult *r) {
        StrBuf b = {};
        for (int i = 0; i < PQntuples(r); i++) {
                QualifiedName q = { .schema = PQgetvalue(r, i, 0), .name = PQgetvalue(r, i, 1) };
                _cleanup_free_ char *d = qualified_name_display(&q);
                strbuf_appendf(&b, "%s%s", i ? ", " : "", d);
        }
        char *s = xstrdup(strbuf_str(&b));
        strbuf_done(&b);
        return s;
}

/* What the engine's role may and may not do for one rule beyond the privileges on the rule's
 * table (plan_check_rule()): read the evidence of its holds and the tables whose foreign keys
 * reference the table (a delete checks them, also when the key is declared on a partition),
 * and drop whole expired partitions, which needs ownership: without it the engine deletes
 * their rows in batches, and a note says so. */
static int check_rule_role(Pg *pg, Diagnostics *d, const Policy *p, const Rule *rule, const CatCache *cache,
                           PgError *err) {
        const CatTable *t = cat_cache_find_name(cache, &rule->table);
        if (!t)
                return 0;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        char oid[16];
        int k;

        for (size_t i = 0; i < rule->n_holds; i++) {
                const Hold *h = rule->holds[i];
                const CatTable *ht = h->registry ? NULL : cat_cache_find_name(cache, &h->table);
                if (!ht || ht->can_select)
                        continue;
                _cleanup_free_ char *hn = qualified_name_display(&ht->name);
                _cleanup_free_ char *m = xasprintf("permission denied: the role cannot SELECT from %s, the evidence of hold \"%s\"",
                                                   hn, h->name);
                add_for_rule(d, SEVERITY_ERROR, rule, m);
                diag_set_hint(&d->items[d->n - 1], "List it in read_tables of sql/retentiond-role.sql and run the script again.");
        }

        if (rule->action == ACTION_DELETE)
                for (size_t i = 0; i < t->n_referenced_by; i++) {
                        const CatForeignKey *fk = &t->referenced_by[i];
                        _cleanup_free_ char *v = NULL;
                        snprintf(oid, sizeof(oid), "%u", fk->child_oid);
                        const char *pp[] = { oid };
                        k = pg_value(pg, &v, err,
                                     "SELECT has_table_privilege(c.oid, 'SELECT') AND has_schema_privilege(c.relnamespace, 'USAGE')"
                                     " FROM pg_class c WHERE c.oid = $1::oid",
                                     1, pp);
                        if (k)
                                return k;
                        if (streq_ptr(v, "t"))
                                continue;
                        _cleanup_free_ char *cn = qualified_name_display(&fk->child);
                        _cleanup_free_ char *m = xasprintf("permission denied: the role cannot SELECT from %s, which references %s"
                                                           " (constraint %s); every delete checks it",
                                                           cn, tn, fk->name);
                        add_for_rule(d, SEVERITY_ERROR, rule, m);
                        diag_set_hint(&d->items[d->n - 1],
                                      "List it in read_tables of sql/retentiond-role.sql and run the script again; for a"
                                      " partition, list its partitioned table: the script grants SELECT on every partition"
                                      " that exists when it runs.");
                }

        /* Whole partitions: only when the plan would drop them at all. */
        _cleanup_(plan_freep) Plan *plan = NULL;
        _cleanup_free_ char *perr = NULL;
        if (plan_build(p, rule, cache, &plan, &perr) < 0 || !plan->can_drop_partitions)
                return 0;
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *pp[] = { oid };
        _cleanup_pgresult_ PGresult *r = NULL;
        k = pg_exec(pg, &r, err,
                    "SELECT current_user, pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = $1::oid",
                    1, pp);
        if (k)
                return k;
        if (PQntuples(r) != 1)
                return 0;
        _cleanup_free_ char *role = ident_display(PQgetvalue(r, 0, 0));
        bool owns_parent = streq(PQgetvalue(r, 0, 1), "t");
        PQclear(TAKE_PTR(r));
        _cleanup_free_ char *m = NULL;
        if (!owns_parent)
                m = xasprintf("partitions of %s will be deleted row by row: role %s does not own them"
                              " (dropping whole partitions needs ownership)",
                              tn, role);
        else {
                /* The engine looks at the direct partitions the same way (partitions.c may_drop()). */
                k = pg_exec(pg, &r, err,
                            "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE i.inhparent = $1::oid AND c.relkind = 'r'"
                            " AND NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY n.nspname, c.relname",
                            1, pp);
                if (k)
                        return k;
                if (PQntuples(r) > 0) {
                        _cleanup_free_ char *list = display_list(r);
                        m = xasprintf("partition%s %s of %s will be deleted row by row: role %s does not own %s"
                                      " (dropping whole partitions needs ownership)",
                                      PQntuples(r) > 1 ? "s" : "", list, tn, role, PQntuples(r) > 1 ? "them" : "it");
                }
        }
        if (owns_parent) {
                /* A partition another table's foreign key references is never dropped either. */
                PQclear(TAKE_PTR(r));
                k = pg_exec(pg, &r, err,
                            "SELECT n.nspname, c.relname, fn.nspname, fc.relname, f.conname FROM pg_inherits i"
                            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " JOIN pg_constraint f ON f.contype = 'f' AND f.confrelid = c.oid AND f.conrelid <> c.oid"
                            " JOIN pg_class fc ON fc.oid = f.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace"
                            " WHERE i.inhparent = $1::oid AND c.relkind = 'r'"
                            " ORDER BY n.nspname, c.relname, fn.nspname, fc.relname, f.conname",
                            1, pp);
                if (k)
                        return k;
                for (int i = 0; i < PQntuples(r); i++) {
                        QualifiedName part = { .schema = PQgetvalue(r, i, 0), .name = PQgetvalue(r, i, 1) };
                        QualifiedName ref = { .schema = PQgetvalue(r, i, 2), .name = PQgetvalue(r, i, 3) };
                        _cleanup_free_ char *pd = qualified_name_display(&part);
                        _cleanup_free_ char *rd = qualified_name_display(&ref);
                        _cleanup_free_ char *mr = xasprintf("partition %s of %s will be deleted row by row: %s references it"
                                                            " (constraint %s)",
                                                            pd, tn, rd, PQgetvalue(r, i, 4));
                        add_for_rule(d, SEVERITY_NOTE, rule, mr);
                        diag_set_detail(&d->items[d->n - 1],
                                        "In rule \"%s\", checked against the database. A referenced partition cannot be"
                                        " dropped; its rows that are still referenced are kept and reported.",
                                        rule->name);
                }
        }
        if (m) {
                add_for_rule(d, SEVERITY_NOTE, rule, m);
                diag_set_detail(&d->items[d->n - 1],
                                "In rule \"%s\", checked against the database. Expired partitions are detached and dropped"
                                " whole only by a role that owns the partitioned table and the partition (or is a member"
                                " of their owner); otherwise the engine deletes their rows in batches through %s,"
                                " which SELECT and DELETE on it allow.",
                                rule->name, tn);
        }
        return 0;
}

/* The regular expression that finds an assignment to NEW.<column> in a function's source, compared
 * in lower case: the column's name with every character that is not a letter, a digit or _
 * escaped, quoted or not, then = or :=. Caller frees. */
static char *assign_regex(const char *column) {
        StrBuf re = {};
        strbuf_append(&re, "(^|[^a-z0-9_$])new[[:space:]]*\\.[[:space:]]*(\"?)");
        for (const char *c = column; *c; c++) {
                char ch = *c;
                if (ch >= 'A' && ch <= 'Z')
                        ch = (char) (ch - 'A' + 'a'); /* the source is compared in lower case */
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || (unsigned char) ch >= 0x80))
                        strbuf_appendc(&re, '\\');
                strbuf_appendc(&re, ch);
        }
        strbuf_append(&re, "\\2[[:space:]]*:?=");
        return strbuf_steal(&re);
}

/* Citus: what kind of table the rule acts on, and what that changes, as a note. */
static void note_citus_kind(Diagnostics *d, const Rule *rule, const CatCache *cache) {
        const CatTable *t = cat_cache_find_name(cache, &rule->table);
        if (!t || !t->citus)
                return;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *m = NULL;
        const char *detail = NULL;
        switch (t->dist) {
        case CAT_DIST_DISTRIBUTED: {
                _cleanup_free_ char *dc = t->dist_column ? ident_display(t->dist_column) : xstrdup("(none)");
                m = xasprintf("%s is a distributed table of Citus (distribution column %s, co-location group %u)", tn, dc,
                              t->colocation_id);
                detail = "Batches are statements on the whole table that Citus runs on every shard. Holds in the registry,"
                         " and derived holds whose evidence is not co-located with it, reach the shards as arrays of keys"
                         " computed first on the coordinator. Expired partitions are not dropped whole: their rows go in"
                         " batches.";
                break;
        }
        case CAT_DIST_REFERENCE:
                m = xasprintf("%s is a reference table of Citus (a copy on every node)", tn);
                detail = "Batches are statements on the whole table that Citus runs on every copy. Holds in the registry, and"
                         " derived holds whose evidence is a table of the coordinator or a distributed table, reach the"
                         " copies as arrays of keys computed first on the coordinator.";
                break;
        case CAT_DIST_CITUS_LOCAL:
                m = xasprintf("%s is a Citus local table (on the coordinator only)", tn);
                detail = "Enforced as on PostgreSQL without Citus.";
                break;
        case CAT_DIST_SINGLE_SHARD:
                m = xasprintf("%s is a single-shard distributed table of Citus (no distribution column)", tn);
                detail = "Batches are statements on the whole table that Citus runs on its one shard; holds reach it as"
                         " arrays of keys. Expired partitions are not dropped whole: their rows go in batches.";
                break;
        case CAT_DIST_NONE:
                m = xasprintf("%s is a local table of the Citus coordinator (not distributed)", tn);
                detail = "Enforced as on PostgreSQL without Citus.";
                break;
        }
        if (!m || !detail)
                return;
        add_for_rule(d, SEVERITY_NOTE, rule, m);
        diag_set_detail(&d->items[d->n - 1], "In rule \"%s\", checked against the database. %s", rule->name, detail);
}

/* An anonymising rule (action anonymise, or while_held) whose UPDATE fires a trigger that sets an
 * age column of its table (its own, or that of another rule on the same table) gives every row it
 * anonymises a new age: its retention period starts again, and the row is kept longer than the
 * policy says. The engine's role cannot stop the trigger (DISABLE TRIGGER needs the owner;
 * session_replication_role a superuser, and it would silence foreign keys too), so it is refused:
 *   error:   an enabled (origin or always) BEFORE UPDATE row trigger of the table or of one of its
 *            partitions, without a WHEN condition, whose UPDATE OF list is empty or names a column
 *            the rule anonymises, and whose PL/pgSQL function's source assigns NEW.<column>
 *            (NEW.col = ..., NEW.col := ..., any case, quoted or not);
 *   warning: the same with a WHEN condition that does not mention CURRENT_USER or SESSION_USER (it
 *            may or may not exclude the engine's role), or a function in another language than
 *            PL/pgSQL, whose source cannot be read (C, plperl, ...);
 *   nothing: a WHEN condition that mentions CURRENT_USER or SESSION_USER (the fix the hint gives).
 * Missed: an assignment through another function, or NEW assigned as a whole; a trigger that only
 * compares NEW.<column> is taken for one that sets it. */
static int check_age_triggers(Pg *pg, Check *ck, const Policy *p, const Rule *r, const CatCache *cache, PgError *err) {
        if (r->action != ACTION_ANONYMISE && !r->has_while_held)
                return 0;
        const CatTable *t = cat_cache_find_name(cache, &r->table);
        if (!t)
                return 0;
        /* the columns this rule updates, as attribute numbers */
        StrBuf att = {};
        strbuf_append(&att, "{");
        const ColumnMethod *sets[] = { r->action == ACTION_ANONYMISE ? r->columns : NULL,
                                       r->has_while_held ? r->while_held_columns : NULL };
        size_t n_sets[] = { r->action == ACTION_ANONYMISE ? r->n_columns : 0, r->has_while_held ? r->n_while_held_columns : 0 };
        bool first = true;
        for (size_t s = 0; s < 2; s++)
                for (size_t i = 0; i < n_sets[s]; i++) {
                        const CatColumn *c = cat_table_column(t, sets[s][i].column);
                        if (c) {
                                strbuf_appendf(&att, "%s%d", first ? "" : ",", c->attnum);
                                first = false;
                        }
                }
        strbuf_append(&att, "}");
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        int k = 0;
        /* every rule's age column on this table, this rule's first */
        for (size_t o = 0; o <= p->n_rules && !k; o++) {
                const Rule *other = o == 0 ? r : &p->rules[o - 1];
                if (o > 0) {
                        if (other == r || !other->column)
                                continue;
                        const CatTable *ot = cat_cache_find_name(cache, &other->table);
                        if (!ot || ot->oid != t->oid || streq_ptr(other->column, r->column))
                                continue;
                        bool seen = false; /* an earlier rule with the same column */
                        for (size_t e = 0; e + 1 < o && !seen; e++) {
                                const Rule *x = &p->rules[e];
                                const CatTable *xt = x != r ? cat_cache_find_name(cache, &x->table) : NULL;
                                seen = xt && xt->oid == t->oid && streq_ptr(x->column, other->column);
                        }
                        if (seen)
                                continue;
                }
                if (!other->column || !cat_table_column(t, other->column))
                        continue;
                _cleanup_free_ char *re = assign_regex(other->column);
                const char *params[] = { oid, re, strbuf_str(&att) };
                _cleanup_pgresult_ PGresult *res = NULL;
                k = pg_exec(pg, &res, err,
                            "SELECT tg.tgname, tg.tgrelid::regclass::text, p.proname, l.lanname, tg.tgqual IS NOT NULL,"
                            " pg_get_triggerdef(tg.oid) ~* '\\m(current_user|session_user)\\M',"
                            " lower(p.prosrc) ~ $2"
                            " FROM (SELECT $1::oid AS relid UNION SELECT relid FROM pg_partition_tree($1::oid::regclass)) pt"
                            " JOIN pg_trigger tg ON tg.tgrelid = pt.relid"
                            " JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_language l ON l.oid = p.prolang"
                            " WHERE NOT tg.tgisinternal AND tg.tgparentid = 0 AND tg.tgenabled IN ('O', 'A')"
                            " AND tg.tgtype::int & 1 = 1 AND tg.tgtype::int & 2 = 2 AND tg.tgtype::int & 16 = 16"
                            " AND (cardinality(tg.tgattr::int2[]) = 0 OR tg.tgattr::int2[] && $3::int2[])"
                            " ORDER BY tg.tgrelid::regclass::text, tg.tgname",
                            3, params);
                if (k)
                        break;
                _cleanup_free_ char *cn = ident_display(other->column);
                for (int i = 0; i < PQntuples(res); i++) {
                        bool plpgsql = streq(PQgetvalue(res, i, 3), "plpgsql");
                        bool has_when = streq(PQgetvalue(res, i, 4), "t");
                        bool when_role = streq(PQgetvalue(res, i, 5), "t");
                        bool assigns = streq(PQgetvalue(res, i, 6), "t");
                        if ((has_when && when_role) || (plpgsql && !assigns))
                                continue;
                        _cleanup_free_ char *tg = ident_display(PQgetvalue(res, i, 0));
                        _cleanup_free_ char *fn = ident_display(PQgetvalue(res, i, 2));
                        const char *rel = PQgetvalue(res, i, 1);
                        _cleanup_free_ char *whose = other == r ? xasprintf("the age column %s", cn)
                                                                : xasprintf("%s, the age column of rule \"%s\",", cn, other->name);
                        _cleanup_free_ char *effect =
                                other == r ? xasprintf("every row this rule anonymises%s gets a new age, so its retention"
                                                       " period starts again",
                                                       r->action == ACTION_ANONYMISE ? "" : " while held")
                                           : xasprintf("every row this rule anonymises%s gets a new age under rule \"%s\", so"
                                                       " its retention period there starts again",
                                                       r->action == ACTION_ANONYMISE ? "" : " while held", other->name);
                        _cleanup_free_ char *msg = NULL;
                        Severity sev = SEVERITY_ERROR;
                        if (!plpgsql) {
                                sev = SEVERITY_WARNING;
                                msg = xasprintf("trigger %s on %s runs %s (language %s) before every UPDATE, which may set %s:"
                                                " if it does, %s",
                                                tg, rel, fn, PQgetvalue(res, i, 3), whose, effect);
                        } else if (has_when) {
                                sev = SEVERITY_WARNING;
                                msg = xasprintf("trigger %s on %s sets %s on UPDATE when its WHEN condition holds (its function"
                                                " %s assigns NEW.%s): unless the condition excludes this role, %s",
                                                tg, rel, whose, fn, cn, effect);
                        } else
                                msg = xasprintf("trigger %s on %s sets %s on UPDATE (its function %s assigns NEW.%s): %s", tg,
                                                rel, whose, fn, cn, effect);
                        Diagnostic *x = add_at(ck->d, sev, r, other == r ? &r->column_loc : NULL, msg);
                        diag_set_hint(x,
                                      "The age column must not be maintained by a trigger. Use one the application does not"
                                      " touch on every UPDATE (created_at, closed_at) as the rule's column, or have the"
                                      " table's owner exempt this role: CREATE OR REPLACE TRIGGER ... WHEN (current_user"
                                      " <> %s). The engine's role cannot keep the trigger from firing: DISABLE TRIGGER"
                                      " needs the table's owner, session_replication_role a superuser (and it would"
                                      " switch off foreign keys too).",
                                      ck->role);
                        if (sev == SEVERITY_ERROR)
                                ck->policy = true;
                }
        }
        strbuf_done(&att);
        return k;
}

/* "Did you mean" for a table that does not exist: the same name in another schema, else the
 * closest schema-qualified name of a table the catalog has. */
static int hint_table(Pg *pg, Diagnostic *x, const QualifiedName *want, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec0(pg, &r, err,
                         "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                         " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
                         " AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
                         " ORDER BY n.nspname, c.relname");
        if (k)
                return k;
        int n = PQntuples(r);
        _cleanup_free_ char *wd = qualified_name_display(want);
        char **names = xcalloc((size_t) n + 1, sizeof(char *));
        const char *same = NULL;
        for (int i = 0; i < n; i++) {
                QualifiedName q = { .schema = PQgetvalue(r, i, 0), .name = PQgetvalue(r, i, 1) };
                names[i] = qualified_name_display(&q);
                if (!same && streq(q.name, want->name))
                        same = names[i];
        }
        const char *c = same ? same : closest_name(wd, (const char *const *) names, (size_t) n);
        if (c)
                diag_set_hint(x, "Did you mean \"%s\"?", c);
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return 0;
}

/* What the catalog says about an anonymised column beyond its type: a generated column cannot be
 * updated; a unique index refuses the second row that redact gives the same constant (and may
 * refuse values the other methods make equal); truncate_ip casts a text column to inet, which
 * fails on any value that is not an address (''), and email_domain makes a value without @ NULL,
 * which NOT NULL refuses. The last two read the table (every row, not only the due ones). */
static int check_column_catalog(Pg *pg, Check *ck, const Rule *r, const CatTable *t, const ColumnMethod *cm, PgError *err) {
        const CatColumn *c = cat_table_column(t, cm->column);
        if (!c || !t->can_select)
                return 0;
        char oid[16], att[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        snprintf(att, sizeof(att), "%d", c->attnum);
        const char *pp[] = { oid, att };
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = pg_exec(pg, &res, err,
                        "SELECT a.attgenerated <> '', EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid"
                        " AND i.indisunique AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum)"
                        " FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum = $2::int2",
                        2, pp);
        if (k || PQntuples(res) != 1)
                return k;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *cn = ident_display(cm->column);
        const char *mn = method_to_string(cm->method);
        Diagnostic *x;
        if (streq(PQgetvalue(res, 0, 0), "t")) {
                _cleanup_free_ char *m = xasprintf("column %s.%s is generated: it cannot be anonymised", tn, cn);
                x = add_at(ck->d, SEVERITY_ERROR, r, &cm->loc, m);
                diag_set_hint(x, "Anonymise the columns it is computed from.");
                ck->policy = true;
                return 0;
        }
        if (streq(PQgetvalue(res, 0, 1), "t") && cm->method != METHOD_NULL && cm->method != METHOD_HASH) {
                bool same = cm->method == METHOD_REDACT;
                _cleanup_free_ char *m =
                        same ? xasprintf("column %s.%s has a unique index: redact gives every row the same value, and the"
                                         " second row it anonymises fails",
                                         tn, cn)
                             : xasprintf("column %s.%s has a unique index: two rows that %s makes equal fail the batch", tn, cn,
                                         mn);
                x = add_at(ck->d, same ? SEVERITY_ERROR : SEVERITY_WARNING, r, &cm->loc, m);
                diag_set_hint(x, "Use hash (distinct values stay distinct) or null.");
                ck->policy = ck->policy || same;
        }
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        _cleanup_free_ char *cq = ident_quote(cm->column);
        if (cm->method == METHOD_TRUNCATE_IP && c->kind == COLKIND_TEXT) {
                /* PostgreSQL's error would show the value: only its SQLSTATE is looked at */
                _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s t WHERE t.%s IS NOT NULL AND t.%s::inet IS NULL", tq, cq, cq);
                PQclear(TAKE_PTR(res));
                k = pg_exec0(pg, &res, err, sql);
                if (k && streq(err->sqlstate, "22P02")) {
                        pg_error_done(err);
                        _cleanup_free_ char *m = xasprintf("method truncate_ip on column %s.%s of type %s: the column holds"
                                                           " values that are not IP addresses, and the rule would fail on them",
                                                           tn, cn, c->type);
                        x = add_at(ck->d, SEVERITY_ERROR, r, &cm->loc, m);
                        diag_set_hint(x, "Set the values that are no address to NULL (or store addresses as inet), or use"
                                         " hash, redact or null for this column.");
                        ck->policy = true;
                        return 0;
                }
                if (k == PG_ERR_CONNECTION)
                        return k;
                pg_error_done(err);
                return 0;
        }
        if (cm->method == METHOD_EMAIL_DOMAIN && c->not_null) {
                _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s t WHERE strpos(t.%s, '@') = 0", tq, cq);
                _cleanup_free_ char *v = NULL;
                k = pg_value(pg, &v, err, sql, 0, NULL);
                if (k == PG_ERR_CONNECTION)
                        return k;
                if (k) {
                        pg_error_done(err);
                        return 0;
                }
                if (v && !streq(v, "0")) {
                        _cleanup_free_ char *m = xasprintf("method email_domain on column %s.%s, which is NOT NULL: %s row%s"
                                                           " hold%s a value without @, which it makes NULL",
                                                           tn, cn, v, streq(v, "1") ? "" : "s", streq(v, "1") ? "s" : "");
                        x = add_at(ck->d, SEVERITY_ERROR, r, &cm->loc, m);
                        diag_set_hint(x, "Use hash or { redact: \"...\" } for this column, or drop its NOT NULL.");
                        ck->policy = true;
                }
        }
        return 0;
}

/* A table without a primary key: enforced all the same, but explain cannot name its rows. */
static int check_primary_key(Pg *pg, Check *ck, const Rule *r, const CatTable *t, PgError *err) {
        char **pk = NULL;
        size_t n = 0;
        int k = catalog_primary_key(pg, t->oid, &pk, &n, err);
        if (k)
                return k;
        for (size_t i = 0; i < n; i++)
                free(pk[i]);
        free(pk);
        if (n > 0)
                return 0;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *m = xasprintf("table %s has no primary key: explain cannot name its rows", tn);
        Diagnostic *x = add_at(ck->d, SEVERITY_WARNING, r, &r->table_loc, m);
        diag_set_hint(x, "Add one (ALTER TABLE %s ADD PRIMARY KEY (...)); the rule itself is enforced without it.", tn);
        return 0;
}

/* A delete rule's table referenced by foreign keys declared on partitions of another table (not on
 * that partitioned table, which would give each partition its own): a partition without the key
 * its siblings have does not keep the rows its rows refer to from being deleted, because the
 * engine sees references only through foreign keys. */
static int check_partition_fks(Pg *pg, Check *ck, const Rule *r, const CatTable *t, PgError *err) {
        if (r->action != ACTION_DELETE)
                return 0;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *pp[] = { oid };
        _cleanup_pgresult_ PGresult *res = NULL;
#define FK_COLS(c) "(SELECT array_agg(a.attname ORDER BY k.o) FROM unnest(" c ".conkey) WITH ORDINALITY k(n, o)" \
                   " JOIN pg_attribute a ON a.attrelid = " c ".conrelid AND a.attnum = k.n)"
        int k = pg_exec(pg, &res, err,
                        "WITH fk AS (SELECT c.conname, c.conrelid, i.inhparent, " FK_COLS("c") " AS cols"
                        " FROM pg_constraint c JOIN pg_inherits i ON i.inhrelid = c.conrelid"
                        " WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conparentid = 0),"
                        " missing AS (SELECT DISTINCT ON (s.inhrelid, fk.cols) s.inhrelid, fk.inhparent, fk.conrelid, fk.conname,"
                        " array_to_string(fk.cols, ', ') AS cols FROM fk JOIN pg_inherits s ON s.inhparent = fk.inhparent"
                        " AND s.inhrelid <> fk.conrelid"
                        " WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c2 WHERE c2.contype = 'f' AND c2.conrelid = s.inhrelid"
                        " AND c2.confrelid = $1::oid AND " FK_COLS("c2") " = fk.cols)"
                        " ORDER BY s.inhrelid, fk.cols, fk.conname)"
                        " SELECT m.inhrelid::regclass::text, m.inhparent::regclass::text, m.conname, m.conrelid::regclass::text,"
                        " m.cols FROM missing m ORDER BY 1, 3",
                        1, pp);
#undef FK_COLS
        if (k)
                return k;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        for (int i = 0; i < PQntuples(res); i++) {
                const char *part = PQgetvalue(res, i, 0), *parent = PQgetvalue(res, i, 1), *sib = PQgetvalue(res, i, 3);
                _cleanup_free_ char *con = ident_display(PQgetvalue(res, i, 2));
                _cleanup_free_ char *m = xasprintf("partition %s of %s has no foreign key to %s like its siblings (constraint"
                                                   " %s of %s): its rows do not keep the rows of %s they refer to from"
                                                   " being deleted",
                                                   part, parent, tn, con, sib, tn);
                Diagnostic *x = add_at(ck->d, SEVERITY_WARNING, r, &r->table_loc, m);
                diag_set_hint(x, "ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s; or declare the key on %s, which gives every"
                                 " partition its own.",
                              part, PQgetvalue(res, i, 4), tn, parent);
        }
        return 0;
}

/* Whether PostgreSQL would scan a partial index on the age column for `not_done` (alias t):
 * planned with sequential scans off, a scan with no condition on an index's columns has only an
 * index whose predicate the statement implies, so an index name in the plan that is such an index
 * of the table (or of a partition) is the proof. enable_seqscan is the session's again after. */
static int todo_index_used(Pg *pg, const CatTable *t, const char *column, const char *not_done, bool *used, PgError *err) {
        _cleanup_pgresult_ PGresult *was = NULL, *off = NULL, *ex = NULL, *back = NULL, *res = NULL;
        int k = pg_exec0(pg, &was, err, "SELECT current_setting('enable_seqscan')");
        if (k)
                return k;
        k = pg_exec0(pg, &off, err, "SELECT set_config('enable_seqscan', 'off', false)");
        if (k)
                return k;
        _cleanup_free_ char *tq = qualified_name_quote(&t->name);
        _cleanup_free_ char *sql = xasprintf("EXPLAIN (FORMAT JSON) SELECT 1 FROM %s t WHERE %s", tq, not_done);
        k = pg_exec0(pg, &ex, err, sql);
        const char *bp[] = { PQgetvalue(was, 0, 0) };
        PgError e2 = {};
        int k2 = pg_exec(pg, &back, k ? &e2 : err, "SELECT set_config('enable_seqscan', $1, false)", 1, bp);
        pg_error_done(&e2);
        if (k || k2)
                return k ? k : k2;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *p[] = { PQgetvalue(ex, 0, 0), oid, column };
        k = pg_exec(pg, &res, err,
                    "SELECT EXISTS (SELECT 1 FROM jsonb_path_query($1::jsonb, '$.**.\"Index Name\"') n"
                    " JOIN pg_class c ON c.relname = n #>> '{}' JOIN pg_index i ON i.indexrelid = c.oid"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
                    " WHERE (i.indrelid = $2::oid OR i.indrelid IN (SELECT relid FROM pg_partition_tree($2::oid))) AND a.attname = $3"
                    " AND i.indpred IS NOT NULL AND i.indisvalid)",
                    3, p);
        if (k)
                return k;
        *used = streq(PQgetvalue(res, 0, 0), "t");
        return 0;
}

int check_todo_index(Pg *pg, const Rule *r, const CatTable *t, char **warning, PgError *err) {
        *warning = NULL;
        _cleanup_free_ char *create = NULL, *not_done = NULL;
        if (!t->can_select || t->reltuples < TODO_INDEX_MIN_ROWS || cat_table_is_citus(t)
            || !plan_todo_index(r, t, &create, &not_done))
                return 0;
        bool used = false;
        int k = todo_index_used(pg, t, r->column, not_done, &used, err);
        if (k || used)
                return k;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        *warning = xasprintf("no partial index of the rows still to anonymise on %s, so every run reads every due row"
                             " again, those it anonymised already included; fix: %s",
                             tn, create);
        return 0;
}

/* check -d's warning of check_todo_index(), located at the rule's age column. */
static int add_todo_index(Pg *pg, Check *ck, const Rule *r, const CatTable *t, PgError *err) {
        _cleanup_free_ char *m = NULL;
        int k = check_todo_index(pg, r, t, &m, err);
        if (k || !m)
                return k;
        Diagnostic *x = add_at(ck->d, SEVERITY_WARNING, r, &r->column_loc, m);
        diag_set_hint(x, "With it a run with nothing to change reads none of them, whatever the size of the table; the"
                         " index must keep exactly this WHERE clause (PostgreSQL uses it only for the statements whose"
                         " conditions imply it), and a change of the rule's columns needs a new one.");
        return 0;
}

/* Locates a finding of plan_check_rule_findings() and says what exit status it asks for. */
static int add_finding(Pg *pg, Check *ck, const Rule *rule, const PlanFinding *f, PgError *err) {
        /* A hold's finding is located at the hold: once, however many rules use it. */
        if (f->loc && strncmp(f->message, "hold \"", 6) == 0)
                for (size_t i = 0; i < ck->d->n; i++) {
                        const Diagnostic *y = &ck->d->items[i];
                        if (y->line == f->loc->line && y->column == f->loc->column && streq_ptr(y->file, f->loc->file) &&
                            streq(y->message, f->message))
                                return 0;
                }
        Diagnostic *x = add_at(ck->d, f->error ? SEVERITY_ERROR : SEVERITY_WARNING, rule, f->loc, f->message);
        if (f->hint)
                diag_set_hint(x, "%s", f->hint);
        if (f->error && f->permission)
                ck->permission = true;
        else if (f->error)
                ck->policy = true;
        if (f->missing_table)
                return hint_table(pg, x, f->missing_table, err);
        return 0;
}

/* The retention schema at this engine's version, and the role's privileges on it. Returns 0
 * (what is wrong is in ck), or a PgErrorClass with *err: the database failed, not the schema. */
static int check_schema(Pg *pg, Check *ck, PgError *err) {
        int k = trail_check_schema(pg, err);
        if (k > 0)
                return k;
        if (k) {
                Diagnostic *x = diag_add(ck->d, SEVERITY_ERROR, NULL, 0, 0, "%s", err->primary);
                if (err->detail)
                        diag_set_detail(x, "%s", err->detail);
                if (err->hint)
                        diag_set_hint(x, "%s", err->hint);
                pg_error_done(err);
                ck->config = true;
                return 0;
        }
        /* The engine reads holds and writes its audit trail, holds and slots through the
         * schema's functions (schema version 5; record_rule_run from version 10). */
        _cleanup_pgresult_ PGresult *pr = NULL;
        k = pg_exec0(pg, &pr, err,
                     "SELECT has_schema_privilege('retention', 'USAGE'),"
                     " has_table_privilege('retention.holds', 'SELECT'),"
                     " has_table_privilege('retention.rule_slots', 'SELECT'),"
                     " has_function_privilege('retention.begin_run(text, text, text)', 'EXECUTE')"
                     " AND has_function_privilege('retention.end_run(bigint, text, int, int)', 'EXECUTE')"
                     " AND has_function_privilege('retention.begin_rule_run(bigint, text, text, text, text, timestamptz,"
                     " timestamptz)', 'EXECUTE')"
                     " AND has_function_privilege('retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint)',"
                     " 'EXECUTE')"
                     " AND has_function_privilege('retention.add_rule_run_hold(bigint, text, bigint)', 'EXECUTE')"
                     " AND has_function_privilege('retention.add_rule_run_fk(bigint, text, bigint)', 'EXECUTE')"
                     " AND has_function_privilege('retention.finish_rule_run(bigint, text, text, text, bigint, bigint,"
                     " bigint, bigint, bigint, bigint, bigint)', 'EXECUTE')"
                     " AND has_function_privilege('retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[])',"
                     " 'EXECUTE')"
                     " AND has_function_privilege('retention.record_rule_run(bigint, text, text, text, text, timestamptz,"
                     " timestamptz, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint)', 'EXECUTE'),"
                     " has_function_privilege('retention.claim_rule_slot(text, text, timestamptz)', 'EXECUTE')");
        if (k)
                return k;
        static const char *what[] = { "USAGE on schema retention", "SELECT on retention.holds",
                                      "SELECT on retention.rule_slots (the daemons' schedule slots)",
                                      "EXECUTE on the audit trail's functions (retention.begin_run, finish_rule_run, ...)",
                                      "EXECUTE on retention.claim_rule_slot (the daemons' schedule slots)" };
        for (int i = 0; i < (int) ELEMENTSOF(what); i++)
                if (!streq(PQgetvalue(pr, 0, i), "t")) {
                        Diagnostic *x = diag_add(ck->d, SEVERITY_ERROR, NULL, 0, 0, "permission denied: the role lacks %s",
                                                 what[i]);
                        diag_set_hint(x, "Grant it with sql/retentiond-role.sql.");
                        ck->permission = true;
                }
        return 0;
}

/* One rule against the catalog. Returns 0 (findings in ck), or a PgErrorClass with *err. */
static int check_rule(Pg *pg, Check *ck, const Policy *p, const Rule *rule, const CatCache *cache, PgError *err) {
        Diagnostics *d = ck->d;
        PlanFinding *fs = NULL;
        size_t nf = 0;
        int k = 0;

        plan_check_rule_findings(p, rule, cache, &fs, &nf);
        for (size_t j = 0; j < nf && !k; j++)
                k = add_finding(pg, ck, rule, &fs[j], err);
        plan_findings_free(fs, nf);
        if (k)
                return k;
        note_citus_kind(d, rule, cache);
        size_t before = d->n_errors;
        k = check_rule_role(pg, d, p, rule, cache, err);
        if (d->n_errors > before)
                ck->permission = true;
        if (k == 0)
                k = check_age_triggers(pg, ck, p, rule, cache, err);
        const CatTable *t = cat_cache_find_name(cache, &rule->table);
        if (k == 0 && t) {
                k = check_primary_key(pg, ck, rule, t, err);
                if (k == 0)
                        k = check_partition_fks(pg, ck, rule, t, err);
                for (size_t j = 0; k == 0 && rule->action == ACTION_ANONYMISE && j < rule->n_columns; j++)
                        k = check_column_catalog(pg, ck, rule, t, &rule->columns[j], err);
                if (k == 0)
                        k = add_todo_index(pg, ck, rule, t, err);
                for (size_t j = 0; k == 0 && rule->has_while_held && j < rule->n_while_held_columns; j++)
                        k = check_column_catalog(pg, ck, rule, t, &rule->while_held_columns[j], err);
        }
        if (k)
                return k;
        /* The where, parsed by PostgreSQL on its own against the rule's table. */
        if (rule->where && t) {
                k = rule_where_check_one(pg, rule, t, err);
                if (k && !rule_where_refused(k))
                        return k;
                if (k) {
                        add_for_where(d, rule, err);
                        ck->policy = true;
                }
                pg_error_done(err);
        }
        return 0;
}

/* The findings, sorted, into the caller's collection after the policy's own. */
static void append_findings(Diagnostics *out, Diagnostics *d) {
        diagnostics_sort(d);
        for (size_t i = 0; i < d->n; i++) {
                const Diagnostic *s = &d->items[i];
                Diagnostic *x = diag_add(out, s->severity, s->file, s->line, s->column, "%s", s->message);
                if (s->detail)
                        diag_set_detail(x, "%s", s->detail);
                if (s->hint)
                        diag_set_hint(x, "%s", s->hint);
                if (s->source)
                        diag_set_source(x, s->source, strlen(s->source));
                x->sort_key = UINT_MAX;
        }
}

int check_database(Pg *pg, const Policy *p, const char *database_name, Diagnostics *out, size_t *n_checked_ret,
                   CheckVerdict *verdict, PgError *err) {
        _cleanup_(cat_cache_done) CatCache cache = {};
        _cleanup_diagnostics_ Diagnostics *d = diagnostics_new();
        Check ck = { .d = d };

        int k = check_schema(pg, &ck, err);
        if (k)
                return k;
        _cleanup_free_ char *role = NULL;
        k = pg_value(pg, &role, err, "SELECT quote_literal(current_user)", 0, NULL);
        if (k)
                return k;
        ck.role = role;
        k = catalog_load_policy(pg, p, &cache, err);
        if (k)
                return k;
        const Database *db = policy_find_database(p, database_name);
        size_t n_checked = 0;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *rule = &p->rules[i];
                if (!rule_in_database(rule, db))
                        continue; /* another database's rule */
                n_checked++;
                k = check_rule(pg, &ck, p, rule, &cache, err);
                if (k)
                        return k;
        }
        append_findings(out, d);
        *n_checked_ret = n_checked;
        *verdict = ck.policy ? CHECK_POLICY : ck.permission ? CHECK_PERMISSION : ck.config ? CHECK_SCHEMA
                   : d->n_errors                                              ? CHECK_POLICY
                                                                              : CHECK_OK;
        return 0;
}
