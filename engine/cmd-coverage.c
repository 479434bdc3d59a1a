/* cmd-coverage.c — `retentiond coverage`: which columns look personal, and which of them no rule
 * deletes or anonymises. Reads only: a read-only session and one READ ONLY transaction; the
 * queries return counts, never values. Exit 1 when something is uncovered (a CI gate). */
#include <stdio.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "coverage.h"
#include "event.h"
#include "exitcode.h"
#include "util.h"

/* One database (cli->conninfo): connect (read-only), scan against the rules of that database,
 * print. Returns the exit code. */
static int coverage_database(Cli *cli, const Policy *p, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(coverage_report_freep) CoverageReport *rep = NULL;
        _cleanup_free_ bool *selected = NULL;
        PgError err = {};
        (void) userdata;
        const Database *db = policy_find_database(p, cli->database_name);
        if (db) {
                selected = xcalloc(p->n_rules + 1, sizeof(bool));
                for (size_t i = 0; i < p->n_rules; i++)
                        selected[i] = rule_in_database(&p->rules[i], db);
        }
        int r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        int k = coverage_scan(pg, p, selected, &rep, &err);
        if (k) {
                return cmd_fail(&err, k);
        }
        if (cli->json) {
                StrBuf b = {};
                coverage_to_json(rep, cli->database_name, &b);
                fprintf(out, "%s\n", strbuf_str(&b));
                strbuf_done(&b);
        } else
                coverage_print(rep, NULL, cli->quiet, out);
        return rep->n_uncovered > 0 ? EXIT_ATTENTION : EXIT_OK;
}

int cmd_coverage(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        int r;

        if (cli->n_args > 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "\"retentiond coverage\" takes options only.");
                return EXIT_USAGE;
        }
        if (cli->n_rules > 0 || cli->dry_run || cli->force || cli->sql || cli->fail_on_overdue) {
                log_pg_style(LOG_ERR, NULL, "--rule, --dry-run, --force, --sql and --fail-on-overdue do not apply to \"retentiond coverage\"",
                             "Coverage always compares the database with every rule of the policy.", NULL);
                return EXIT_USAGE;
        }
        r = cmd_load_policy(cli, &policy);
        if (r)
                return r;

        return cmd_each_database(cli, policy, true, coverage_database, NULL);
}
