/* cmd-prune.c — `retentiond prune --older-than DURATION`: remove the oldest sealed rule runs of
 * the audit trail, a prefix of the hash chain, and record a checkpoint (the position and digest
 * of the last one removed) from which `retentiond verify` goes on proving what is kept. All of it
 * is retention.prune() (sql/retention/006-prune.sql), one call in one transaction, under the
 * chain head's lock; it is not granted to the engine's role: pruning is an operator's act.
 * In the same transaction the checkpoint is signed with the service's hash key
 * (007-checkpoint-signature.sql, checkpoint.c). Without a key there is no prune (a dry run
 * excepted): an unsigned checkpoint could not be told from one written by someone who deleted
 * the start of the trail, so it would make the trail weaker, not shorter. It never leaves a hole
 * in the chain, and prints counts and digests only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "checkpoint.h"
#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "duration.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "json.h"
#include "util.h"

/* Less than this is refused without --force: the trail of the last month is what an operator
 * looks at when something went wrong. A month counts as 30 days. */
#define PRUNE_MIN_DAYS 30

/* --older-than as an interval literal (cmd_no_policy_each_database() passes no userdata). */
static char prune_interval[128];
static char prune_shown[64]; /* and in its canonical human form, "1 year" */
static HashKey *prune_key;   /* signs the checkpoint; NULL only for a dry run */

enum { P_CHECKPOINT, P_FIRST, P_UPTO, P_HASH, P_RULE_RUNS, P_RUNS, P_DELETED, P_ANONYMISED };

static int prune_database(Cli *cli, const Policy *p, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_pgresult_ PGresult *res = NULL;
        const char *interval = prune_interval;
        PgError err = {};
        int r, k;
        (void) p;
        (void) userdata;

        _cleanup_free_ char *by = cmd_operator_name(cli);
        size_t off;
        if (strlen(by) > 200 || !utf8_valid(by, strlen(by)) || text_find_control(by, NULL, &off)) {
                log_pg_style(LOG_ERR, NULL, "invalid --by", "--by is at most 200 bytes of printable UTF-8.", NULL);
                return EXIT_USAGE;
        }
        r = cmd_connect(cli, false, &pg);
        if (r)
                return r;
        k = pg_exec0(pg, NULL, &err, "BEGIN");
        if (!k)
                k = trail_check_schema(pg, &err);
        if (!k && prune_key)
                k = checkpoint_key_install(pg, prune_key, &err);
        const char *params[] = { interval, by, cli->dry_run ? "true" : "false" };
        if (!k)
                k = pg_exec(pg, &res, &err,
                            "SELECT checkpoint_id, first_seq, upto_seq, encode(upto_hash, 'hex'), rule_runs_pruned, runs_pruned,"
                            " rows_deleted, rows_anonymised FROM retention.prune($1::interval, $2, $3::boolean)",
                            3, params);
        if (!k && !cli->dry_run && PQntuples(res) == 1)
                k = checkpoint_sign(pg, PQgetvalue(res, 0, P_CHECKPOINT), &err);
        if (!k)
                k = pg_exec0(pg, NULL, &err, cli->dry_run ? "ROLLBACK" : "COMMIT");
        if (k) {
                if (streq(err.sqlstate, "42501") && !err.hint)
                        err.hint = xstrdup("Pruning is an operator's act: run it as the role that migrates the schema, or"
                                           " GRANT EXECUTE ON FUNCTION retention.prune(interval, text, boolean),"
                                           " retention.sign_checkpoint(bigint, bytea) and SELECT ON retention.checkpoints"
                                           " TO the role.");
                return cmd_fail(&err, k);
        }

        bool none = PQntuples(res) == 0;
        if (cli->json) {
                StrBuf b = {};
                strbuf_appendf(&b, "{\"dry_run\":%s,\"older_than\":", cli->dry_run ? "true" : "false");
                json_append_string(&b, prune_shown);
                if (none)
                        strbuf_append(&b, ",\"checkpoint\":null,\"first_seq\":null,\"upto_seq\":null,\"upto_hash\":null,"
                                          "\"rule_runs_pruned\":0,\"runs_pruned\":0,\"rows_deleted\":0,\"rows_anonymised\":0}\n");
                else {
                        strbuf_appendf(&b, ",\"checkpoint\":%s,\"first_seq\":%s,\"upto_seq\":%s,\"upto_hash\":",
                                       PQgetisnull(res, 0, P_CHECKPOINT) ? "null" : PQgetvalue(res, 0, P_CHECKPOINT),
                                       PQgetvalue(res, 0, P_FIRST), PQgetvalue(res, 0, P_UPTO));
                        json_append_string(&b, PQgetvalue(res, 0, P_HASH));
                        strbuf_appendf(&b, ",\"rule_runs_pruned\":%s,\"runs_pruned\":%s,\"rows_deleted\":%s,\"rows_anonymised\":%s}\n",
                                       PQgetvalue(res, 0, P_RULE_RUNS), PQgetvalue(res, 0, P_RUNS), PQgetvalue(res, 0, P_DELETED),
                                       PQgetvalue(res, 0, P_ANONYMISED));
                }
                fputs(strbuf_str(&b), out);
                strbuf_done(&b);
        } else if (none) {
                if (!cli->quiet)
                        fprintf(out, "nothing to prune: no sealed rule run at the start of the chain finished more than %s ago\n",
                                prune_shown);
        } else if (cli->dry_run) {
                fprintf(out, "would prune %s rule runs (#%s to #%s) and %s runs (rows deleted %s, anonymised %s); nothing changed\n",
                        PQgetvalue(res, 0, P_RULE_RUNS), PQgetvalue(res, 0, P_FIRST), PQgetvalue(res, 0, P_UPTO),
                        PQgetvalue(res, 0, P_RUNS), PQgetvalue(res, 0, P_DELETED), PQgetvalue(res, 0, P_ANONYMISED));
        } else if (!cli->quiet) {
                fprintf(out, "pruned %s rule runs (#%s to #%s) and %s runs (rows deleted %s, anonymised %s)\n"
                             "checkpoint %s (signed): the chain kept starts after #%s, hash %s\n",
                        PQgetvalue(res, 0, P_RULE_RUNS), PQgetvalue(res, 0, P_FIRST), PQgetvalue(res, 0, P_UPTO),
                        PQgetvalue(res, 0, P_RUNS), PQgetvalue(res, 0, P_DELETED), PQgetvalue(res, 0, P_ANONYMISED),
                        PQgetvalue(res, 0, P_CHECKPOINT), PQgetvalue(res, 0, P_UPTO), PQgetvalue(res, 0, P_HASH));
        }
        return EXIT_OK;
}

int cmd_prune(Cli *cli) {
        Duration d;
        size_t off = 0;
        char shown[64];

        if (cli->n_args != 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL,
                             "Usage: retentiond prune --older-than DURATION [--dry-run] [--force] [--by NAME] [--json]");
                return EXIT_USAGE;
        }
        if (!cli->older_than) {
                log_pg_style(LOG_ERR, NULL, "prune needs --older-than", "Rule runs that finished longer ago than DURATION are pruned.",
                             "Usage: retentiond prune --older-than DURATION, e.g. --older-than \"2 years\".");
                return EXIT_USAGE;
        }
        DurationError e = duration_parse(cli->older_than, &d, &off);
        if (e != DURATION_OK) {
                _cleanup_free_ char *detail = xasprintf("At byte %zu: %s.", off + 1, duration_error_to_string(e));
                log_pg_style(LOG_ERR, NULL, "invalid --older-than", detail, "Give a duration such as \"400 days\" or \"P2Y\".");
                return EXIT_USAGE;
        }
        if ((int64_t) d.months * 30 + d.days + d.usecs / (INT64_C(86400) * 1000000) < PRUNE_MIN_DAYS && !cli->force) {
                _cleanup_free_ char *detail = xasprintf("--older-than %s is less than %d days (a month counts as 30).",
                                                        duration_format(&d, shown, sizeof(shown)), PRUNE_MIN_DAYS);
                log_pg_style(LOG_ERR, NULL, "refusing to prune the audit trail of the last month", detail,
                             "Give --force to prune it anyway.");
                return EXIT_USAGE;
        }
        duration_to_interval(&d, prune_interval, sizeof(prune_interval));
        duration_format(&d, prune_shown, sizeof(prune_shown));
        int r = cli->dry_run ? 0 : cmd_read_hash_key(cli, &prune_key);
        if (r)
                return r;
        if (!prune_key && !cli->dry_run) {
                log_pg_style(LOG_ERR, NULL, "prune signs its checkpoint with the hash key, and none was found",
                             "An unsigned checkpoint could not be told from one written by someone who deleted the start of"
                             " the audit trail; \"retentiond verify\" reports it as a break.",
                             "Give the service's key: --hash-key-file FILE, the systemd credential \"hash-key\", or"
                             " RETENTIOND_HASH_KEY_FILE (as root, /etc/retentiond/hash-key is found by itself).");
                return EXIT_CONFIG;
        }
        r = cmd_no_policy_each_database(cli, "prune", prune_database);
        hash_key_free(prune_key);
        prune_key = NULL;
        return r;
}
