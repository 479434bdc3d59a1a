/* cmd-daemon.c — `retentiond daemon`: check the command line, then hand over to the Manager.
 * Never does database work or scheduling itself; daemon.c owns all of that. */
#include <syslog.h>

#include "cli.h"
#include "daemon.h"
#include "event.h"
#include "exitcode.h"

int cmd_daemon(Cli *cli) {
        _cleanup_manager_ Manager *m = NULL;

        if (cli->n_args > 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "\"retentiond daemon\" takes options only.");
                return EXIT_USAGE;
        }
        if (cli->n_rules > 0 || cli->dry_run || cli->force || cli->sql || cli->fail_on_overdue || cli->json) {
                log_pg_style(LOG_ERR, NULL, "--rule, --dry-run, --force, --sql, --fail-on-overdue and --json do not apply to \"retentiond daemon\"",
                             "The daemon enforces every rule of the policy on its schedule.",
                             "Use \"retentiond run\" or \"retentiond audit\" for one-off runs.");
                return EXIT_USAGE;
        }

        const DaemonConfig cfg = {
                .policy_paths = cli->policy_paths,
                .n_policy_paths = cli->n_policy_paths,
                .conninfo = cli->conninfo,
                .lock_timeout_ms = cli->lock_timeout_ms,
                .statement_timeout_ms = cli->statement_timeout_ms,
                .metrics_file = cli->metrics_file,
                .hash_key_file = cli->hash_key_file,
                .knobs = cli->knobs,
        };
        int r = manager_new(&cfg, &m);
        if (r != 0)
                return r;
        return manager_run(m);
}
