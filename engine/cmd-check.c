/* cmd-check.c — `retentiond check`: load the policy, print every problem (text or JSON), and a
 * one-line summary per rule when it is valid. Offline unless -d is given; never changes data. */
#include <stdio.h>

#include "check-db.h"
#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "exitcode.h"
#include "json.h"
#include "policy-load.h"
#include "util.h"

/* The one JSON document of `check`: with -d (db_checked) also "database": the rules checked
 * against the catalog, or null when the database could not be checked. */
static void print_json(const Policy *p, const Diagnostics *diags, int code, bool with_db, bool db_checked, size_t n_db_rules) {
        StrBuf b = {};
        strbuf_appendf(&b, "{\"valid\":%s,\"exit_code\":%d,\"diagnostics\":", p ? "true" : "false", code);
        diagnostics_to_json(diags, &b);
        if (p) {
                strbuf_append(&b, ",\"rules\":[");
                for (size_t i = 0; i < p->n_rules; i++) {
                        const Rule *r = &p->rules[i];
                        _cleanup_free_ char *summary = rule_summary(r);
                        strbuf_append(&b, i ? ",{\"name\":" : "{\"name\":");
                        json_append_string(&b, r->name);
                        strbuf_append(&b, ",\"clause\":");
                        json_append_string(&b, r->clause);
                        strbuf_append(&b, ",\"file\":");
                        json_append_string(&b, r->loc.file);
                        strbuf_appendf(&b, ",\"line\":%u,\"action\":", r->loc.line);
                        json_append_string(&b, action_to_string(r->action));
                        strbuf_append(&b, ",\"summary\":");
                        json_append_string(&b, summary);
                        strbuf_appendc(&b, '}');
                }
                strbuf_appendf(&b, "],\"counts\":{\"rules\":%zu,\"holds\":%zu,\"subjects\":%zu,\"files\":%zu}",
                               p->n_rules, p->n_holds, p->n_subjects, p->n_files);
        }
        if (with_db) {
                if (db_checked)
                        strbuf_appendf(&b, ",\"database\":{\"rules_checked\":%zu}", n_db_rules);
                else
                        strbuf_append(&b, ",\"database\":null");
        }
        strbuf_appendf(&b, ",\"errors\":%zu,\"warnings\":%zu}\n", diags->n_errors, diags->n_warnings);
        fputs(strbuf_str(&b), stdout);
        strbuf_done(&b);
}

static const char *plural(size_t n, const char *one, const char *many) {
        return n == 1 ? one : many;
}

static size_t count_notes(const Diagnostics *d) {
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++)
                n += d->items[i].severity == SEVERITY_NOTE;
        return n;
}

/* "2 errors, 1 warning" (and ", 3 notes" when there are any) */
static char *counts(const Diagnostics *d) {
        size_t notes = count_notes(d);
        _cleanup_free_ char *n = notes ? xasprintf(", %zu %s", notes, plural(notes, "note", "notes")) : xstrdup("");
        return xasprintf("%zu %s, %zu %s%s", d->n_errors, plural(d->n_errors, "error", "errors"), d->n_warnings,
                         plural(d->n_warnings, "warning", "warnings"), n);
}

/* check -d against cli->conninfo. Returns 0 with *code (the verdict's exit code), or the exit
 * code of a check that could not be done (the error printed). */
static int check_one_database(Cli *cli, const Policy *p, Diagnostics *diags, size_t *n_checked, int *code) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        PgError err = {};
        CheckVerdict v = CHECK_OK;
        int r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        int k = check_database(pg, p, cli->database_name, diags, n_checked, &v, &err);
        if (k)
                return cmd_fail(&err, k);
        *code = v == CHECK_POLICY ? EXIT_POLICY : v == CHECK_PERMISSION ? EXIT_NOPERM : v == CHECK_SCHEMA ? EXIT_CONFIG : EXIT_OK;
        return 0;
}

int cmd_check(Cli *cli) {
        _cleanup_diagnostics_ Diagnostics *diags = diagnostics_new();
        _cleanup_policy_ Policy *p = NULL;

        if (cli->n_args > 0) {
                fprintf(stderr, "retentiond: check takes no arguments, got \"%s\"\n"
                                "HINT:  Give policy paths with -p PATH.\n", cli->args[0]);
                return EXIT_USAGE;
        }

        int r = policy_load(cli->policy_paths, cli->n_policy_paths, &p, diags);
        int code = policy_load_exit_code(r, diags);
        bool with_db = r >= 0 && cli->conninfo;
        if (r < 0) {
                if (cli->json)
                        print_json(NULL, diags, code, false, false, 0);
                else {
                        diagnostics_print(diags, stderr);
                        _cleanup_free_ char *c = counts(diags);
                        fprintf(stderr, "retentiond: policy is not valid: %s\n", c);
                }
                return code;
        }

        /* -d NAME of the policy's databases: that database, its rules. The database's findings join
         * the policy's: one list, one summary line at the end, one JSON document. */
        size_t n_db_rules = 0;
        bool db_checked = false;
        if (with_db) {
                const Database *db = policy_find_database(p, cli->conninfo);
                if (db) {
                        cli->conninfo = db->conninfo;
                        cli->database_name = db->name;
                }
                int k = check_one_database(cli, p, diags, &n_db_rules, &code);
                if (k)
                        code = k; /* could not check: the error is printed */
                else
                        db_checked = true;
        }

        if (cli->json) {
                print_json(p, diags, code, with_db, db_checked, n_db_rules);
                return code;
        }
        diagnostics_print(diags, stderr);
        if (!cli->quiet)
                for (size_t i = 0; i < p->n_rules; i++) {
                        _cleanup_free_ char *s = rule_summary(&p->rules[i]);
                        printf("%s: %s\n", p->rules[i].name, s);
                }
        fflush(stdout);
        _cleanup_free_ char *c = counts(diags);
        if (with_db && !db_checked)
                fprintf(stderr, "retentiond: the policy is valid, the database could not be checked: %s\n", c);
        else if (with_db && code != EXIT_OK)
                fprintf(stderr, "retentiond: the policy does not fit the database: %s\n", c);
        else if (with_db)
                printf("database OK: %zu %s checked against the catalog: %s\n", n_db_rules,
                       plural(n_db_rules, "rule", "rules"), c);
        else
                printf("configuration OK: %zu %s, %zu %s, %zu %s in %zu %s\n", p->n_rules,
                       plural(p->n_rules, "rule", "rules"), p->n_holds, plural(p->n_holds, "hold", "holds"),
                       p->n_subjects, plural(p->n_subjects, "subject", "subjects"), p->n_files,
                       plural(p->n_files, "file", "files"));
        return code;
}
