/* cmd-check.c — `retentiond check`: load the policy, print every problem (text or JSON), and a
 * one-line summary per rule when it is valid. Offline unless -d is given; never changes data. */
#include <stdio.h>

#include "check-db.h"
#include "cli.h"
#include "diag.h"
#include "exitcode.h"
#include "policy-load.h"
#include "util.h"

static void print_json(const Policy *p, const Diagnostics *diags, int code) {
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
        strbuf_append(&b, "}\n");
        fputs(strbuf_str(&b), stdout);
        strbuf_done(&b);
}

static const char *plural(size_t n, const char *one, const char *many) {
        return n == 1 ? one : many;
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

        if (cli->json) {
                print_json(r >= 0 ? p : NULL, diags, code);
                if (r < 0)
                        return code;
        } else {
                diagnostics_print(diags, stderr);
                if (r < 0) {
                        fprintf(stderr, "retentiond: policy is not valid: %zu %s, %zu %s\n", diags->n_errors,
                                plural(diags->n_errors, "error", "errors"), diags->n_warnings,
                                plural(diags->n_warnings, "warning", "warnings"));
                        return code;
                }
                if (!cli->quiet)
                        for (size_t i = 0; i < p->n_rules; i++) {
                                _cleanup_free_ char *s = rule_summary(&p->rules[i]);
                                printf("%s: %s\n", p->rules[i].name, s);
                        }
                printf("configuration OK: %zu %s, %zu %s, %zu %s in %zu %s\n", p->n_rules,
                       plural(p->n_rules, "rule", "rules"), p->n_holds, plural(p->n_holds, "hold", "holds"),
                       p->n_subjects, plural(p->n_subjects, "subject", "subjects"), p->n_files,
                       plural(p->n_files, "file", "files"));
                fflush(stdout);
        }

        /* -d NAME of the policy's databases: that database, its rules */
        const Database *db = cli->conninfo ? policy_find_database(p, cli->conninfo) : NULL;
        if (db) {
                cli->conninfo = db->conninfo;
                cli->database_name = db->name;
        }
        if (cli->conninfo)
                return check_database(cli, p);
        return EXIT_OK;
}
