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
#include "plan.h"
#include "util.h"

static void add_for_rule(Diagnostics *d, Severity sev, const Rule *r, const char *msg) {
        /* The message starts with 'rule "name": '; the location already names the rule. */
        const char *m = msg;
        _cleanup_free_ char *prefix = xasprintf("rule \"%s\": ", r->name);
        if (strncmp(m, prefix, strlen(prefix)) == 0)
                m += strlen(prefix);
        Diagnostic *x = diag_add(d, sev, r->loc.file, r->loc.line, r->loc.column, "%s", m);
        diag_set_detail(x, "In rule \"%s\", checked against the database.", r->name);
        /* Echo the rule's line, as every policy diagnostic does. */
        _cleanup_fclose_ FILE *f = r->loc.file ? fopen(r->loc.file, "re") : NULL;
        if (f) {
                char *line = NULL;
                size_t cap = 0;
                ssize_t n = 0;
                for (unsigned i = 0; i < r->loc.line && (n = getline(&line, &cap, f)) >= 0; i++)
                        ;
                if (n > 0) {
                        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                                n--;
                        diag_set_source(x, line, (size_t) n);
                }
                free(line);
        }
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
        if (k) {
                Diagnostic *x = diag_add(d, SEVERITY_ERROR, NULL, 0, 0, "%s", err.primary);
                if (err.detail)
                        diag_set_detail(x, "%s", err.detail);
                if (err.hint)
                        diag_set_hint(x, "%s", err.hint);
                pg_error_done(&err);
        } else {
                /* The engine writes its audit trail and reads holds. */
                _cleanup_pgresult_ PGresult *pr = NULL;
                k = pg_exec0(pg, &pr, &err,
                             "SELECT has_schema_privilege('retention', 'USAGE'),"
                             " has_table_privilege('retention.runs', 'INSERT, UPDATE'),"
                             " has_table_privilege('retention.rule_runs', 'INSERT, UPDATE'),"
                             " has_table_privilege('retention.rule_run_holds', 'INSERT'),"
                             " has_table_privilege('retention.rule_run_fk', 'INSERT'),"
                             " has_table_privilege('retention.holds', 'SELECT'),"
                             " has_table_privilege('retention.rule_slots', 'SELECT, INSERT, UPDATE')");
                if (k) {
                        return cmd_fail(&err, k);
                }
                static const char *what[] = { "USAGE on schema retention", "INSERT, UPDATE on retention.runs",
                                              "INSERT, UPDATE on retention.rule_runs", "INSERT on retention.rule_run_holds",
                                              "INSERT on retention.rule_run_fk", "SELECT on retention.holds",
                                              "SELECT, INSERT, UPDATE on retention.rule_slots (the daemons' schedule slots)" };
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
