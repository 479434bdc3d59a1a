/* cmd-run.c — `retentiond run`: enforce the policy now, from the terminal, and report.
 * run_rules() takes every selected rule's lock and records everything in the audit trail;
 * this file prints counts only and maps the result to an exit code. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "run.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "health.h"
#include "metrics.h"
#include "report.h"
#include "util.h"

static atomic_bool stop_requested; /* lock-free: set by the signal handler */

/* --metrics-file: what each database of this run left, written once at the end. */
static MetricsDatabase *metrics_dbs;
static HealthReport **metrics_health;
static size_t n_metrics_dbs;

static void metrics_add(Cli *cli, const Policy *p, Pg *pg) {
        if (!cli->metrics_file)
                return;
        HealthReport *h = NULL;
        if (pg) {
                /* Every rule of this database, not only --rule: the file describes them all. */
                size_t *rules = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(size_t)), n = 0;
                for (size_t i = 0; i < p->n_rules; i++)
                        if (!cli->database_name || (p->rules[i].database && streq(p->rules[i].database->name, cli->database_name)))
                                rules[n++] = i;
                PgError e = {};
                if (health_read(pg, p, rules, n, NULL, HEALTH_DEFAULT_STALE_AFTER, &h, &e))
                        log_warning("metrics: could not read the audit trail: %s", e.primary ? e.primary : "error");
                pg_error_done(&e);
                free(rules);
        }
        metrics_dbs = xreallocarray(metrics_dbs, n_metrics_dbs + 1, sizeof(MetricsDatabase));
        metrics_health = xreallocarray(metrics_health, n_metrics_dbs + 1, sizeof(HealthReport *));
        metrics_health[n_metrics_dbs] = h;
        metrics_dbs[n_metrics_dbs++] = (MetricsDatabase) {
                .name = cli->database_name ? cli->database_name : "default",
                .up = pg != NULL,
                .health = h,
        };
}

static int metrics_flush(Cli *cli) {
        if (!cli->metrics_file)
                return 0;
        StrBuf b = {};
        metrics_render(metrics_dbs, n_metrics_dbs, (double) time(NULL), &b);
        int r = metrics_write_file(cli->metrics_file, strbuf_str(&b));
        strbuf_done(&b);
        for (size_t i = 0; i < n_metrics_dbs; i++)
                health_report_free(metrics_health[i]);
        free(metrics_health);
        free(metrics_dbs);
        metrics_dbs = NULL;
        metrics_health = NULL;
        n_metrics_dbs = 0;
        if (r < 0) {
                _cleanup_free_ char *primary = xasprintf("could not write the metrics file \"%s\": %s", cli->metrics_file,
                                                         strerror(-r));
                log_pg_style(LOG_ERR, NULL, primary, NULL, "The directory must exist and be writable.");
                return EXIT_CONFIG;
        }
        return 0;
}

static void on_signal(int sig) {
        (void) sig;
        atomic_store(&stop_requested, true);
}

static int run_database(Cli *cli, const Policy *policy, FILE *out, void *userdata);

int cmd_run(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        int r;

        if (cli->dry_run)
                return cmd_audit(cli);
        if (cli->n_args > 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "\"retentiond run\" takes options only.");
                return EXIT_USAGE;
        }
        if (cli->sql || cli->fail_on_overdue) {
                log_pg_style(LOG_ERR, NULL, "--sql and --fail-on-overdue belong to \"retentiond audit\"", NULL, NULL);
                return EXIT_USAGE;
        }

        r = cmd_load_policy(cli, &policy);
        if (r)
                return r;
        r = cmd_check_rule_names(cli, policy);
        if (r)
                return r;
        r = cmd_each_database(cli, policy, false, run_database, NULL);
        int mr = metrics_flush(cli);
        return r ? r : mr;
}

/* The run against one database (cli->conninfo), for cli->rules (none: every rule). */
static int run_database(Cli *cli, const Policy *policy, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(run_result_freep) RunResult *res = NULL;
        HashKey *key = NULL;
        PgError err = {};
        int r;

        (void) userdata;
        if (atomic_load(&stop_requested))
                return EXIT_ATTENTION;
        r = cmd_load_hash_key(cli, policy, &key);
        if (r)
                return r;
        r = cmd_connect(cli, false, &pg);
        if (r) {
                hash_key_free(key);
                metrics_add(cli, policy, NULL);
                return r;
        }

        /* Runs that dead sessions left `running` (a crash, an abandoned daemon worker) are
         * recorded as interrupted first: the trail must not keep saying they are in progress. */
        _cleanup_free_ char *closed = NULL;
        PgError ce = {};
        /* Only on a schema of this version: otherwise the run says what is wrong, once. */
        int kc = trail_check_schema(pg, &ce);
        if (kc != 0 && kc != PG_ERR_CONNECTION) {
                pg_error_done(&ce);
                kc = 0;
        } else if (kc == 0)
                kc = trail_close_abandoned(pg, &closed, &ce);
        if (kc == PG_ERR_CONNECTION) {
                /* The session is gone: that is the run's one error (69), not a warning followed by
                 * "no connection to the server" from the next statement. */
                hash_key_free(key);
                metrics_add(cli, policy, NULL);
                return cmd_fail(&ce, kc);
        }
        if (kc == 0 && closed) {
                EventFields ev = EVENT_FIELDS_INIT;
                ev.database = cli->database_name;
                event_emit(EVENT_RUNS_CLOSED, event_priority(EVENT_RUNS_CLOSED), &ev,
                           "runs %s were still marked running, but their database sessions had ended: recorded as interrupted",
                           closed);
        } else if (kc)
                log_warning("runs left running by ended sessions could not be recorded as interrupted: %s",
                            ce.primary ? ce.primary : "error");
        pg_error_done(&ce);

        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        /* On a terminal the report on stdout tells the story; events are for the journal. */
        bool console = log_target() == LOG_TARGET_CONSOLE;
        if (console)
                log_set_thread_max_level(LOG_ERR - 1);
        EnforceOptions o = {
                .force = cli->force,
                .only_rules = cli->rules,
                .n_only_rules = cli->n_rules,
                .knobs = &cli->knobs,
                .hash_key = key,
                .mode = "run",
                .stop = &stop_requested,
        };
        int k = run_rules(pg, policy, &o, NULL, &res, &err);
        hash_key_free(key);
        if (console)
                log_set_thread_max_level(-1); /* errors and the report below must be seen */
        metrics_add(cli, policy, pg_connection_ok(pg) ? pg : NULL);
        if (k && (!res || res->n_rules == 0)) {
                cmd_print_error(&err);
                int code = cmd_exit_code(k, &err); /* OUTCOME_RULE_BUSY: 75, PG_ERR_CONNECTION: 69 */
                pg_error_done(&err);
                return code;
        }

        report_run(res, cli->json, cli->quiet, out);
        if (!console)
                report_run_events(res);
        bool attention = false;
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *rr = &res->rules[i];
                if (rr->outcome != RULE_SUCCESS)
                        attention = true;
                /* Code of another role that ran as this role (trust_triggers): the event's text. */
                for (size_t j = 0; console && j < rr->n_untrusted; j++)
                        log_warning("rule %s: %s", rr->rule->name, rr->untrusted[j]);
                if (!rr->error.primary || rr->outcome == RULE_INTERRUPTED || !console)
                        continue;
                /* A lost connection is told once, by the run's error below, which names the rule. */
                if (k == PG_ERR_CONNECTION && i == res->n_rules - 1)
                        continue;
                /* Every error says which rule it stopped; PostgreSQL's text is shown escaped (a
                 * where: function may raise a message with a newline or an escape sequence). */
                _cleanup_free_ char *quoted = xasprintf("\"%s\"", rr->rule->name);
                _cleanup_free_ char *escaped = text_escape(rr->error.primary);
                _cleanup_free_ char *primary = strstr(escaped, quoted) ? xstrdup(escaped)
                                                                       : xasprintf("rule %s: %s", quoted, escaped);
                log_pg_style(rr->outcome == RULE_SKIPPED ? LOG_WARNING : LOG_ERR, NULL, primary, rr->error.detail,
                             rr->error.hint);
        }
        if (k) {
                return cmd_fail(&err, k);
        }
        if (res->interrupted) {
                log_warning("run %" PRId64 " interrupted by signal; the next run continues where it stopped", res->run_id);
                return EXIT_ATTENTION;
        }
        return attention ? EXIT_ATTENTION : EXIT_OK;
}
