/* cmdutil.c — shared plumbing of the subcommands: policy, connection, errors, exit codes.
 * Never prints parameter values or row contents. */
#include "cmdutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "diag.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "json.h"
#include "policy-load.h"
#include "util.h"

int cmd_load_policy(Cli *cli, Policy **ret) {
        _cleanup_diagnostics_ Diagnostics *d = diagnostics_new();
        int r = policy_load(cli->policy_paths, cli->n_policy_paths, ret, d);
        diagnostics_print(d, stderr);
        if (r < 0)
                return policy_load_exit_code(r, d);
        const Database *db = cli->conninfo ? policy_find_database(*ret, cli->conninfo) : NULL;
        if (db) {
                cli->conninfo = db->conninfo;
                cli->database_name = db->name;
        }
        return 0;
}

int cmd_load_policy_if_given(Cli *cli, const char *one_database_command, Policy **ret) {
        *ret = NULL;
        if (!cli->policy_paths_given)
                return 0;
        int r = cmd_load_policy(cli, ret);
        if (r)
                return r;
        const Policy *p = *ret;
        if (one_database_command && p->n_databases > 0 && !cli->conninfo) {
                StrBuf names = {};
                for (size_t i = 0; i < p->n_databases; i++)
                        strbuf_appendf(&names, "%s%s", i ? ", " : "", p->databases[i].name);
                _cleanup_free_ char *primary = xasprintf("%s needs -d NAME with this policy", one_database_command);
                _cleanup_free_ char *detail = xasprintf("The policy names %zu database%s: %s.", p->n_databases,
                                                        p->n_databases == 1 ? "" : "s", strbuf_str(&names));
                _cleanup_free_ char *hint = xasprintf("Give -d NAME, e.g. -d %s.", p->databases[0].name);
                strbuf_done(&names);
                log_pg_style(LOG_ERR, NULL, primary, detail, hint);
                policy_free(*ret);
                *ret = NULL;
                return EXIT_USAGE;
        }
        return 0;
}

int cmd_no_policy_each_database(Cli *cli, const char *name, CmdDatabaseFn fn) {
        if (cli->n_args > 0) {
                _cleanup_free_ char *hint = xasprintf("\"retentiond %s\" takes options only.", name);
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, hint);
                return EXIT_USAGE;
        }
        _cleanup_policy_ Policy *policy = NULL;
        int r = cmd_load_policy_if_given(cli, NULL, &policy);
        if (r)
                return r;
        if (!policy)
                return fn(cli, NULL, stdout, NULL);
        return cmd_each_database(cli, policy, true, fn, NULL);
}

/* cli->rules narrowed to the rules of db (NULL: every rule); *n 0 when there are none. Returns
 * EXIT_USAGE when --rule names a rule of another database. */
static int rules_of(Cli *cli, const Policy *p, const Database *db, char ***ret, size_t *n) {
        char **v = xcalloc(p->n_rules + 1, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; i < cli->n_rules; i++) {
                const Rule *r = policy_find_rule(p, cli->rules[i]);
                if (r && !rule_in_database(r, db)) {
                        _cleanup_free_ char *primary = xasprintf("rule \"%s\" is not for database \"%s\"", r->name, db->name);
                        _cleanup_free_ char *detail = xasprintf("It is enforced in database \"%s\".",
                                                                r->database ? r->database->name : "?");
                        log_pg_style(LOG_ERR, NULL, primary, detail, "Leave out -d to work on every database of the policy.");
                        free(v);
                        return EXIT_USAGE;
                }
                v[k++] = cli->rules[i];
        }
        if (cli->n_rules == 0)
                for (size_t i = 0; i < p->n_rules; i++)
                        if (rule_in_database(&p->rules[i], db))
                                v[k++] = p->rules[i].name;
        *ret = v;
        *n = k;
        return 0;
}

int cmd_each_database(Cli *cli, const Policy *p, bool every_database, CmdDatabaseFn fn, void *userdata) {
        bool named = cli->database_name != NULL;
        if (p->n_databases == 0 || (cli->conninfo && !named))
                return fn(cli, p, stdout, userdata);

        char **saved_rules = cli->rules;
        size_t saved_n = cli->n_rules;
        const char *saved_conninfo = cli->conninfo, *saved_name = cli->database_name;
        StrBuf json = {};
        int code = EXIT_OK;
        size_t done = 0;
        for (size_t i = 0; i < p->n_databases; i++) {
                const Database *db = &p->databases[i];
                if (named && !streq(db->name, saved_name))
                        continue;
                char **rules = NULL;
                size_t n = 0;
                cli->rules = saved_rules; /* --rule as given, not the last database's */
                cli->n_rules = saved_n;
                int r = rules_of(cli, p, db, &rules, &n);
                if (r) {
                        code = r;
                        break;
                }
                if (n == 0 && !every_database) {
                        if (named && !cli->json && !cli->quiet)
                                printf("database %s: no rules\n", db->name);
                        free(rules);
                        continue;
                }
                cli->rules = rules;
                cli->n_rules = n;
                cli->conninfo = db->conninfo;
                cli->database_name = db->name;
                if (named)
                        r = fn(cli, p, stdout, userdata);
                else if (cli->json) {
                        char *buf = NULL;
                        size_t len = 0;
                        FILE *out = open_memstream(&buf, &len);
                        if (!out)
                                oom();
                        r = fn(cli, p, out, userdata);
                        fclose(out);
                        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
                                buf[--len] = 0;
                        strbuf_append(&json, done ? ",{\"database\":" : "{\"databases\":[{\"database\":");
                        json_append_string(&json, db->name);
                        strbuf_appendf(&json, ",\"exit_code\":%d,\"report\":%s}", r, len > 0 ? buf : "null");
                        free(buf);
                } else {
                        if (!cli->quiet) /* --quiet: nothing but errors */
                                printf("%sdatabase %s:\n", done ? "\n" : "", db->name);
                        fflush(stdout);
                        r = fn(cli, p, stdout, userdata);
                }
                fflush(stdout);
                free(rules);
                done++;
                if (r > code)
                        code = r;
        }
        if (!named && cli->json) {
                if (done == 0)
                        strbuf_append(&json, "{\"databases\":[");
                printf("%s]}\n", strbuf_str(&json));
        }
        strbuf_done(&json);
        cli->rules = saved_rules;
        cli->n_rules = saved_n;
        cli->conninfo = saved_conninfo;
        cli->database_name = saved_name;
        return code;
}

void cmd_print_error(const PgError *e) {
        log_pg_style(LOG_ERR, NULL, e->primary ? e->primary : "unknown error", e->detail, e->hint);
}

int cmd_fail(PgError *err, int k) {
        cmd_print_error(err);
        int code = cmd_exit_code(k, err);
        pg_error_done(err);
        return code;
}

/* The engine's own outcomes (pg.h): one case each, and no default, so that a new one cannot go
 * unmapped (-Wswitch). Those that never leave the rule-run rooms are a bug if they reach a command. */
static int outcome_exit_code(PgOutcome o) {
        switch (o) {
        case OUTCOME_SCHEMA_MISMATCH:
        case OUTCOME_NO_CHAIN_HEAD:
        case OUTCOME_TABLE_GONE:
                return EXIT_CONFIG;
        case OUTCOME_RULE_BUSY:
                return EXIT_TEMPFAIL;
        case OUTCOME_BREAKER:
        case OUTCOME_SLOW_PATH:
        case OUTCOME_REFUSED:
                return EXIT_SOFTWARE;
        }
        return EXIT_SOFTWARE;
}

int cmd_exit_code(int k, const PgError *e) {
        if (k == 0)
                return EXIT_OK;
        if (k < 0)
                return outcome_exit_code((PgOutcome) k);
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

int cmd_connect_snapshot(Cli *cli, Pg **ret) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        PgError err = {};
        int r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        int k = pg_exec0(pg, NULL, &err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (!k)
                k = trail_check_schema(pg, &err);
        if (k)
                return cmd_fail(&err, k);
        *ret = TAKE_PTR(pg);
        return 0;
}

char *cmd_operator_name(const Cli *cli) {
        if (cli->by)
                return xstrdup(cli->by);
        const char *s = getenv("SUDO_USER");
        if (s && *s)
                return xstrdup(s);
        struct passwd *pw = getpwuid(getuid());
        if (pw && pw->pw_name)
                return xstrdup(pw->pw_name);
        return xasprintf("uid %u", (unsigned) getuid());
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

/* A hash-key error (logged by hashkey.c) as an exit code. */
static int hash_key_exit_code(int r) {
        if (r == 0)
                return EXIT_OK;
        return r == -EACCES || r == -EPERM ? EXIT_NOPERM : r == -ENOENT ? EXIT_NOINPUT : EXIT_CONFIG;
}

int cmd_load_hash_key(Cli *cli, const Policy *p, HashKey **ret) {
        return hash_key_exit_code(hash_key_for_rules(cli->hash_key_file, p, cli->rules, cli->n_rules, ret));
}

int cmd_read_hash_key(Cli *cli, HashKey **ret) {
        return hash_key_exit_code(hash_key_configured(cli->hash_key_file, ret));
}
