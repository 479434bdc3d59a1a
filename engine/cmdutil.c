/* cmdutil.c — shared plumbing of the subcommands: policy, connection, errors, exit codes.
 * Never prints parameter values or row contents. */
#include "cmdutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "diag.h"
#include "event.h"
#include "exitcode.h"
#include "policy-load.h"
#include "util.h"

int cmd_load_policy(Cli *cli, Policy **ret) {
        _cleanup_diagnostics_ Diagnostics *d = diagnostics_new();
        int r = policy_load(cli->policy_paths, cli->n_policy_paths, ret, d);
        diagnostics_print(d, stderr);
        if (r < 0)
                return policy_load_exit_code(r, d);
        return 0;
}

void cmd_print_error(const PgError *e) {
        log_pg_style(LOG_ERR, NULL, e->primary ? e->primary : "unknown error", e->detail, e->hint);
}

int cmd_exit_code(int k, const PgError *e) {
        if (k == 0)
                return EXIT_OK;
        if (k < 0)
                return EXIT_CONFIG;
        switch ((PgErrorClass) k) {
        case PG_ERR_CONNECTION:
                if (e && e->primary && (strstr(e->primary, "authentication failed") || strstr(e->primary, "permission denied") ||
                                        strstr(e->primary, "no password supplied")))
                        return EXIT_NOPERM;
                return EXIT_UNAVAILABLE;
        case PG_ERR_LOCK_TIMEOUT:
        case PG_ERR_TRANSIENT:
        case PG_ERR_STATEMENT_TIMEOUT:
                return EXIT_TEMPFAIL;
        case PG_ERR_PERMISSION:
                return EXIT_NOPERM;
        case PG_ERR_UNDEFINED:
                return EXIT_CONFIG;
        default:
                return EXIT_SOFTWARE;
        }
}

int cmd_connect(Cli *cli, bool read_only, Pg **ret) {
        PgSettings s = {
                .lock_timeout_ms = cli->lock_timeout_ms,
                .statement_timeout_ms = cli->statement_timeout_ms,
                .read_only = read_only,
        };
        PgError e = {};
        int k = pg_connect(cli->conninfo, &s, ret, &e);
        if (k) {
                cmd_print_error(&e);
                int code = cmd_exit_code(k, &e);
                pg_error_done(&e);
                return code;
        }
        return 0;
}

int cmd_check_rule_names(Cli *cli, const Policy *p) {
        for (size_t i = 0; i < cli->n_rules; i++)
                if (!policy_find_rule(p, cli->rules[i])) {
                        _cleanup_free_ char *hint = NULL;
                        for (size_t j = 0; j < p->n_rules; j++)
                                if (edit_distance(cli->rules[i], p->rules[j].name) <= 2) {
                                        hint = xasprintf("Did you mean \"%s\"?", p->rules[j].name);
                                        break;
                                }
                        _cleanup_free_ char *primary = xasprintf("rule \"%s\" does not exist", cli->rules[i]);
                        log_pg_style(LOG_ERR, NULL, primary, "--rule names a rule of the policy files given with -p.",
                                     hint ? hint : "Run \"retentiond check\" to list the rules.");
                        return EXIT_USAGE;
                }
        return 0;
}

const char *format_seconds(uint64_t usec, char *buf, size_t n) {
        snprintf(buf, n, "%" PRIu64 ".%03" PRIu64 " s", usec / 1000000, (usec / 1000) % 1000);
        return buf;
}
