/* check-db.c — `retentiond check --database`: compare a valid policy with the live catalog:
 * tables, columns and types, methods against column types, indexes on age columns, foreign-key
 * hazards, the engine role's privileges, the retention schema. Reads only, in a READ ONLY session. */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "check-db.h"
#include "cmdutil.h"
#include "diag.h"
#include "enforce.h"
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

static void add_for_rule(Diagnostics *d, Severity sev, const Rule *r, const char *msg) {
        /* The message starts with 'rule "name": '; the location already names the rule. */
        const char *m = msg;
        _cleanup_free_ char *prefix = xasprintf("rule \"%s\": ", r->name);
        if (strncmp(m, prefix, strlen(prefix)) == 0)
                m += strlen(prefix);
        Diagnostic *x = diag_add(d, sev, r->loc.file, r->loc.line, r->loc.column, "%s", m);
        diag_set_detail(x, "In rule \"%s\", checked against the database.", r->name);
        echo_line(x, &r->loc);
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
                /* The engine looks at the direct partitions the same way (enforce.c may_drop()). */
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

/* A rule that anonymises rows (action anonymise, or while_held) on a table with a trigger that
 * writes the rule's age column on UPDATE restarts the row's retention period each time it
 * anonymises it (a last_update column set to now()): the row is kept longer than the policy says.
 * Heuristic: an enabled BEFORE UPDATE row trigger whose function's source assigns NEW.<column>
 * (NEW.col = ..., NEW.col := ..., any case, the column quoted or not); a trigger that only
 * compares it matches too, and one written in C, or that sets it through a helper, is missed. */
static int warn_age_triggers(Pg *pg, Diagnostics *d, const Rule *r, const CatCache *cache, PgError *err) {
        if (r->action != ACTION_ANONYMISE && !r->has_while_held)
                return 0;
        const CatTable *t = cat_cache_find_name(cache, &r->table);
        if (!t)
                return 0;
        /* The column as the source may write it: its name with every character that is not a
         * letter, a digit or _ escaped for the regular expression, quoted or not. */
        StrBuf re = {};
        strbuf_append(&re, "(^|[^a-z0-9_$])new[[:space:]]*\\.[[:space:]]*(\"?)");
        for (const char *c = r->column; *c; c++) {
                char ch = *c;
                if (ch >= 'A' && ch <= 'Z')
                        ch = (char) (ch - 'A' + 'a'); /* the source is compared in lower case */
                if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || (unsigned char) ch >= 0x80))
                        strbuf_appendc(&re, '\\');
                strbuf_appendc(&re, ch);
        }
        strbuf_append(&re, "\\2[[:space:]]*:?=");
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *params[] = { oid, strbuf_str(&re) };
        _cleanup_pgresult_ PGresult *res = NULL;
        int k = pg_exec(pg, &res, err,
                        "SELECT tg.tgname, p.proname FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid"
                        " WHERE tg.tgrelid = $1::oid AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'"
                        " AND tg.tgtype::int & 1 = 1 AND tg.tgtype::int & 2 = 2 AND tg.tgtype::int & 16 = 16"
                        " AND lower(p.prosrc) ~ $2 ORDER BY tg.tgname",
                        2, params);
        strbuf_done(&re);
        if (k)
                return k;
        _cleanup_free_ char *tn = qualified_name_display(&t->name);
        _cleanup_free_ char *cn = ident_display(r->column);
        for (int i = 0; i < PQntuples(res); i++) {
                _cleanup_free_ char *tg = ident_display(PQgetvalue(res, i, 0));
                _cleanup_free_ char *fn = ident_display(PQgetvalue(res, i, 1));
                _cleanup_free_ char *msg = xasprintf(
                        "trigger %s on %s sets the age column %s on UPDATE (its function %s assigns NEW.%s): every row"
                        " this rule anonymises%s gets a new age, so its retention period starts again",
                        tg, tn, cn, fn, cn, r->action == ACTION_ANONYMISE ? "" : " while held");
                add_for_rule(d, SEVERITY_WARNING, r, msg);
                Diagnostic *x = &d->items[d->n - 1];
                diag_set_hint(x, "Use a column the application does not touch on every UPDATE (created_at, closed_at) as the"
                                 " rule's column, or make the trigger leave it alone for this role (e.g. WHEN (current_user <>"
                                 " 'retentiond')).");
        }
        return 0;
}

int check_database(Cli *cli, const Policy *p) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(cat_cache_done) CatCache cache = {};
        _cleanup_diagnostics_ Diagnostics *d = diagnostics_new();
        PgError err = {};
        int r = cmd_connect(cli, true, &pg);
        if (r)
                return r;

        int k = trail_check_schema(pg, &err);
        if (k > 0) /* the database failed (a lost connection: 69), not the schema */
                return cmd_fail(&err, k);
        if (k) {
                Diagnostic *x = diag_add(d, SEVERITY_ERROR, NULL, 0, 0, "%s", err.primary);
                if (err.detail)
                        diag_set_detail(x, "%s", err.detail);
                if (err.hint)
                        diag_set_hint(x, "%s", err.hint);
                pg_error_done(&err);
        } else {
                /* The engine reads holds and writes its audit trail, holds and slots through the
                 * schema's functions (schema version 5). */
                _cleanup_pgresult_ PGresult *pr = NULL;
                k = pg_exec0(pg, &pr, &err,
                             "SELECT has_schema_privilege('retention', 'USAGE'),"
                             " has_table_privilege('retention.holds', 'SELECT'),"
                             " has_table_privilege('retention.rule_slots', 'SELECT'),"
                             " has_function_privilege('retention.begin_run(text, text, text)', 'EXECUTE')"
                             " AND has_function_privilege('retention.end_run(bigint, text, int, int)', 'EXECUTE')"
                             " AND has_function_privilege('retention.begin_rule_run(bigint, text, text, text, text)', 'EXECUTE')"
                             " AND has_function_privilege('retention.set_rule_run_cutoff(bigint, timestamptz)', 'EXECUTE')"
                             " AND has_function_privilege('retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint)',"
                             " 'EXECUTE')"
                             " AND has_function_privilege('retention.add_rule_run_hold(bigint, text, bigint)', 'EXECUTE')"
                             " AND has_function_privilege('retention.add_rule_run_fk(bigint, text, bigint)', 'EXECUTE')"
                             " AND has_function_privilege('retention.finish_rule_run(bigint, text, text, text, bigint, bigint,"
                             " bigint, bigint, bigint, bigint, bigint)', 'EXECUTE')"
                             " AND has_function_privilege('retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[])',"
                             " 'EXECUTE'),"
                             " has_function_privilege('retention.claim_rule_slot(text, text, timestamptz)', 'EXECUTE')");
                if (k) {
                        return cmd_fail(&err, k);
                }
                static const char *what[] = { "USAGE on schema retention", "SELECT on retention.holds",
                                              "SELECT on retention.rule_slots (the daemons' schedule slots)",
                                              "EXECUTE on the audit trail's functions (retention.begin_run, finish_rule_run, ...)",
                                              "EXECUTE on retention.claim_rule_slot (the daemons' schedule slots)" };
                for (int i = 0; i < (int) ELEMENTSOF(what); i++)
                        if (!streq(PQgetvalue(pr, 0, i), "t")) {
                                Diagnostic *x = diag_add(d, SEVERITY_ERROR, NULL, 0, 0,
                                                         "permission denied: the role lacks %s", what[i]);
                                diag_set_hint(x, "Grant it with sql/retentiond-role.sql.");
                        }
        }

        k = enforce_load_catalog(pg, p, &cache, &err);
        if (k) {
                return cmd_fail(&err, k);
        }
        const Database *db = policy_find_database(p, cli->database_name);
        size_t n_checked = 0;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *rule = &p->rules[i];
                if (!rule_in_database(rule, db))
                        continue; /* another database's rule */
                n_checked++;
                char **errors = NULL, **warnings = NULL;
                size_t ne = 0, nw = 0;
                plan_check_rule(p, rule, &cache, &errors, &ne, &warnings, &nw);
                for (size_t j = 0; j < ne; j++) {
                        add_for_rule(d, SEVERITY_ERROR, rule, errors[j]);
                        free(errors[j]);
                }
                for (size_t j = 0; j < nw; j++) {
                        add_for_rule(d, SEVERITY_WARNING, rule, warnings[j]);
                        free(warnings[j]);
                }
                free(errors);
                free(warnings);
                k = check_rule_role(pg, d, p, rule, &cache, &err);
                if (k == 0)
                        k = warn_age_triggers(pg, d, rule, &cache, &err);
                if (k)
                        return cmd_fail(&err, k);
                /* The where, parsed by PostgreSQL on its own against the rule's table. */
                if (rule->where) {
                        k = rule_where_check_one(pg, rule, cat_cache_find_name(&cache, &rule->table), &err);
                        if (k && !rule_where_refused(k))
                                return cmd_fail(&err, k);
                        if (k)
                                add_for_where(d, rule, &err);
                        pg_error_done(&err);
                }
        }
        diagnostics_sort(d);
        if (cli->json) {
                StrBuf b = {};
                strbuf_appendf(&b, "{\"database_ok\":%s,\"diagnostics\":", d->n_errors ? "false" : "true");
                diagnostics_to_json(d, &b);
                strbuf_append(&b, "}\n");
                fputs(strbuf_str(&b), stdout);
                strbuf_done(&b);
        } else
                diagnostics_print(d, stderr);
        if (d->n_errors > 0)
                return EXIT_CONFIG;
        if (!cli->json && !cli->quiet)
                printf("database OK: %zu rules checked against the catalog%s\n", n_checked,
                       d->n_warnings ? " (with warnings)" : "");
        return EXIT_OK;
}
