/* main.c — parse the command line, call one command, return its exit code.
 * Nothing else lives here: every command is in cmd-*.c, every piece of logic in the library. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <libpq-fe.h>

#include "cli.h"
#include "conf.h"
#include "config.h"
#include "breaker.h"
#include "pace.h"
#include "event.h"
#include "exitcode.h"
#include "health.h"
#include "util.h"

static void help(FILE *f) {
        fprintf(f,
                "Usage: retentiond [OPTIONS] COMMAND [ARGS...]\n"
                "\n"
                "Enforce a privacy policy's retention periods inside PostgreSQL.\n"
                "\n"
                "Commands:\n"
                "  check                 Validate the policy files (add -d to check the database too)\n"
                "  audit                 Dry run: report what is due, held and overdue; changes nothing\n"
                "  run                   Delete or anonymise expired rows now (--dry-run = audit)\n"
                "  migrate               Create or upgrade the retention schema in the database\n"
                "  hold add SUBJECT KEY  Place an operator hold (--reason required; --until, --by)\n"
                "  hold list             List active holds (--all: released and expired too)\n"
                "  hold release ID       Release a hold (--by)\n"
                "  daemon                Run as a service: enforce on schedule (systemd Type=notify)\n"
                "  explain TABLE KEY...  Why is this row still here, and when will it go? (one KEY per\n"
                "                        primary-key column; --subject SUBJECT KEY: all its rows)\n"
                "  verify                Check the audit trail's hash chain; report the first break\n"
                "  receipt RUN_ID        Deletion receipt of one run, with its chain hashes\n"
                "  prune --older-than DURATION  Remove sealed rule runs that finished longer ago than\n"
                "                        DURATION from the audit trail, behind a checkpoint that\n"
                "                        verify checks (--dry-run, --force, --by)\n"
                "  coverage              Columns that look personal and that no rule deletes or\n"
                "                        anonymises (exit 1 when there are any)\n"
                "  status                Each rule's health from the audit trail: last success,\n"
                "                        failures, breaker; and rows due and overdue now, oldest due,\n"
                "                        counted as audit does (exit 1: needs attention)\n"
                "\n"
                "Options:\n"
                "  -p, --policy PATH         Policy file or directory of *.yaml (repeatable;\n"
                "                            default " RETENTIOND_SYSCONFDIR "/policies.d)\n"
                "  -d, --database CONNINFO   libpq connection string or URI (default: libpq environment,\n"
                "                            PGHOST, PGDATABASE, PGSERVICE, PGPASSFILE ...), or the name\n"
                "                            of one of the policy's databases:\n"
                "      --json                Machine-readable output\n"
                "  -r, --rule NAME           Only this rule (repeatable; audit, run)\n"
                "      --dry-run             With run: report only, like audit\n"
                "      --force               With run: override the circuit breaker for this run;\n"
                "                            with prune: allow --older-than under 30 days\n"
                "      --older-than DURATION With prune: what finished longer ago than this goes\n"
                "      --no-live             With status: the audit trail only; no counts of the rows\n"
                "                            due now (which read every rule's table)\n"
                "      --sql                 With audit: print the statements run would execute\n"
                "      --fail-on-overdue     With audit: exit 1 when any row is past its deadline\n"
                "      --fail-on LIST        With audit, status: exit 1 on these conditions, comma-separated:\n"
                "                            overdue, breaker, stale, failing, all, none (status: all)\n"
                "      --stale-after N       With audit, status: a rule without a success within N of its\n"
                "                            schedules is stale (default 3)\n"
                "      --metrics-file PATH   With daemon, run: write Prometheus metrics to PATH (textfile)\n"
                "      --hash-key-file FILE  Key for the hash method and the checkpoints' signatures (prune,\n"
                "                            verify); else $CREDENTIALS_DIRECTORY/hash-key, else\n"
                "                            $RETENTIOND_HASH_KEY_FILE\n"
                "      --lock-timeout MS     lock_timeout per statement (default 2000)\n"
                "      --statement-timeout MS statement_timeout per statement (default 60000)\n"
                "      --max-clock-skew SEC  refuse to enforce when the database clock and this host's differ\n"
                "                            by more than SEC seconds (default 3600; 0: no check)\n"
                "      --pace RATIO          while other sessions write, wait RATIO times each batch's\n"
                "                            duration before the next (default 4; 0: never wait)\n"
                "      --reason TEXT, --until TIMESTAMP, --by NAME, --all   hold options\n"
                "      --log-target TARGET   auto, journal or console (daemon)\n"
                "      --no-config           Do not read " RETENTIOND_SYSCONFDIR "/retentiond.conf (the service's\n"
                "                            libpq settings; $RETENTIOND_CONFIG names another file) nor\n"
                "                            take its pgpass and hash-key files\n"
                "  -q, --quiet               Print only errors\n"
                "  -h, --help                Show this help\n"
                "      --version             Show the version\n"
                "\n"
                "Exit status: 0 ok, 1 needs attention, 64 usage, 65 invalid policy, 66 input not found,\n"
                "69 database unavailable, 75 temporary failure, 77 permission denied, 78 configuration error.\n"
                "\n"
                "See retentiond(8) and retentiond.policy(5) for details.\n");
}

enum {
        OPT_JSON = 0x100,
        OPT_DRY_RUN,
        OPT_FORCE,
        OPT_SQL,
        OPT_FAIL_ON_OVERDUE,
        OPT_HASH_KEY_FILE,
        OPT_REASON,
        OPT_UNTIL,
        OPT_BY,
        OPT_ALL,
        OPT_LOG_TARGET,
        OPT_LOCK_TIMEOUT,
        OPT_MAX_CLOCK_SKEW,
        OPT_PACE,
        OPT_STATEMENT_TIMEOUT,
        OPT_VERSION,
        OPT_SUBJECT,
        OPT_METRICS_FILE,
        OPT_FAIL_ON,
        OPT_STALE_AFTER,
        OPT_NO_CONFIG,
        OPT_OLDER_THAN,
        OPT_NO_LIVE,
};

static bool parse_ms(const char *s, long *ret) {
        int64_t v;
        if (!parse_int64(s, &v) || v > INT_MAX)
                return false;
        *ret = (long) v;
        return true;
}

/* A password given in -d stays in the process's arguments, which every user can read in ps:
 * overwrite it there (the connection uses a copy). Passwords belong in a pgpass file. */
static void scrub_password(char *arg) {
        PQconninfoOption *opts = PQconninfoParse(arg, NULL);
        if (!opts)
                return;
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                if (!streq(o->keyword, "password") || !o->val || !*o->val)
                        continue;
                size_t n = strlen(o->val);
                for (char *p = strstr(arg, o->val); p; p = strstr(p + n, o->val))
                        memset(p, '*', n);
        }
        PQconninfoFree(opts);
}

/* The service's configuration (conf.h): what the units' EnvironmentFile= gives the daemon, for
 * the commands run from a shell. The caller's environment and explicit options win; the units
 * themselves pass --no-config, since systemd has read the file for them. */
static int load_config(Cli *cli, bool no_config) {
        if (no_config)
                return 0;
        const char *env = getenv("RETENTIOND_CONFIG");
        bool given = env && *env;
        const char *path = given ? env : RETENTIOND_SYSCONFDIR "/retentiond.conf";
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = 0;
        else {
                free(dir);
                dir = xstrdup(".");
        }

        Conf c = {};
        int r = conf_read(path, &c);
        if (r < 0) {
                if (!given && (r == -ENOENT || r == -EACCES || r == -EPERM))
                        /* No file, or one this user may not read (it is 0640 root:retentiond): the
                         * environment and the options alone decide, as before. */
                        log_debug("configuration file %s not read: %s", path, strerror(-r));
                else {
                        _cleanup_free_ char *primary = xasprintf("could not read configuration file \"%s\": %s", path,
                                                                 r == -EINVAL ? "not a regular file"
                                                                 : r == -EFBIG ? "larger than 1 MiB"
                                                                                : strerror(-r));
                        log_pg_style(LOG_ERR, NULL, primary,
                                     given ? "RETENTIOND_CONFIG names it." : NULL,
                                     "Fix the file, or give --no-config to use only the environment and the options.");
                        return r == -ENOENT ? EXIT_NOINPUT : r == -EACCES || r == -EPERM ? EXIT_NOPERM : EXIT_CONFIG;
                }
        }
        for (size_t i = 0; i < c.n_warnings; i++)
                log_warning("%s: %s", path, c.warnings[i]);
        ConfApplied a;
        conf_apply(r < 0 ? NULL : &c, dir, cli->hash_key_file != NULL, &a);
        conf_done(&c);
        if (r >= 0)
                log_debug("configuration file %s: %zu variables taken, %zu left to the environment", path, a.n_set,
                          a.n_kept);
        if (a.pgpass)
                log_debug("password file: %s/pgpass", dir);
        if (a.hash_key)
                log_debug("hash key file: %s/hash-key", dir);
        return 0;
}

static void cli_done(Cli *cli) {
        free(cli->policy_paths);
        free(cli->rules);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "policy", required_argument, NULL, 'p' },
                { "database", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, OPT_JSON },
                { "rule", required_argument, NULL, 'r' },
                { "dry-run", no_argument, NULL, OPT_DRY_RUN },
                { "force", no_argument, NULL, OPT_FORCE },
                { "sql", no_argument, NULL, OPT_SQL },
                { "fail-on-overdue", no_argument, NULL, OPT_FAIL_ON_OVERDUE },
                { "hash-key-file", required_argument, NULL, OPT_HASH_KEY_FILE },
                { "reason", required_argument, NULL, OPT_REASON },
                { "until", required_argument, NULL, OPT_UNTIL },
                { "by", required_argument, NULL, OPT_BY },
                { "all", no_argument, NULL, OPT_ALL },
                { "log-target", required_argument, NULL, OPT_LOG_TARGET },
                { "lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT },
                { "max-clock-skew", required_argument, NULL, OPT_MAX_CLOCK_SKEW },
                { "pace", required_argument, NULL, OPT_PACE },
                { "statement-timeout", required_argument, NULL, OPT_STATEMENT_TIMEOUT },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "subject", required_argument, NULL, OPT_SUBJECT },
                { "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
                { "fail-on", required_argument, NULL, OPT_FAIL_ON },
                { "stale-after", required_argument, NULL, OPT_STALE_AFTER },
                { "no-config", no_argument, NULL, OPT_NO_CONFIG },
                { "older-than", required_argument, NULL, OPT_OLDER_THAN },
                { "no-live", no_argument, NULL, OPT_NO_LIVE },
                {},
        };
        static const struct {
                const char *name;
                int (*fn)(Cli *);
        } commands[] = {
                { "check", cmd_check },   { "audit", cmd_audit }, { "run", cmd_run },
                { "migrate", cmd_migrate }, { "hold", cmd_hold },  { "daemon", cmd_daemon },
                { "explain", cmd_explain },
                { "verify", cmd_verify },   { "receipt", cmd_receipt }, { "prune", cmd_prune },
                { "coverage", cmd_coverage },
                { "status", cmd_status },
        };
        _cleanup_free_ char *conninfo = NULL;
        _cleanup_(cli_done) Cli cli = {
                .argv0 = argv[0],
                .log_target = "auto",
                .lock_timeout_ms = -1,
                .statement_timeout_ms = -1,
                .stale_after = -1,
                .knobs = ENGINE_KNOBS_DEFAULT,
        };
        bool no_config = false;
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":p:d:r:qh", options, NULL)) >= 0) {
                switch (c) {
                case 'p':
                        cli.policy_paths = xreallocarray(cli.policy_paths, cli.n_policy_paths + 1, sizeof(char *));
                        cli.policy_paths[cli.n_policy_paths++] = optarg;
                        cli.policy_paths_given = true;
                        break;
                case 'd':
                        free(conninfo);
                        cli.conninfo = conninfo = xstrdup(optarg);
                        scrub_password(optarg);
                        break;
                case OPT_JSON:
                        cli.json = true;
                        break;
                case 'r':
                        cli.rules = xreallocarray(cli.rules, cli.n_rules + 1, sizeof(char *));
                        cli.rules[cli.n_rules++] = optarg;
                        break;
                case OPT_DRY_RUN:
                        cli.dry_run = true;
                        break;
                case OPT_FORCE:
                        cli.force = true;
                        break;
                case OPT_SQL:
                        cli.sql = true;
                        break;
                case OPT_FAIL_ON_OVERDUE:
                        cli.fail_on_overdue = true;
                        break;
                case OPT_HASH_KEY_FILE:
                        cli.hash_key_file = optarg;
                        break;
                case OPT_REASON:
                        cli.reason = optarg;
                        break;
                case OPT_UNTIL:
                        cli.until = optarg;
                        break;
                case OPT_BY:
                        cli.by = optarg;
                        break;
                case OPT_ALL:
                        cli.all = true;
                        break;
                case OPT_SUBJECT:
                        cli.subject = optarg;
                        break;
                case OPT_METRICS_FILE:
                        cli.metrics_file = optarg;
                        break;
                case OPT_FAIL_ON:
                        if (!health_parse_fail_on(optarg, &cli.fail_on)) {
                                fprintf(stderr, "retentiond: invalid value for --fail-on: \"%s\"\n"
                                                "HINT:  Give a comma-separated list of overdue, breaker, stale and failing, or all or none.\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        cli.fail_on_given = true;
                        break;
                case OPT_STALE_AFTER: {
                        int64_t v;
                        if (!parse_int64(optarg, &v) || v < 1 || v > 1000000) {
                                fprintf(stderr, "retentiond: invalid value for --stale-after: \"%s\"\n"
                                                "HINT:  Give a whole number of schedules, 1 or more.\n", optarg);
                                return EXIT_USAGE;
                        }
                        cli.stale_after = (long) v;
                        break;
                }
                case OPT_NO_CONFIG:
                        no_config = true;
                        break;
                case OPT_OLDER_THAN:
                        cli.older_than = optarg;
                        break;
                case OPT_NO_LIVE:
                        cli.no_live = true;
                        break;
                case OPT_LOG_TARGET:
                        if (!streq(optarg, "auto") && !streq(optarg, "journal") && !streq(optarg, "console")) {
                                fprintf(stderr, "retentiond: invalid --log-target \"%s\"\n"
                                                "HINT:  Use auto, journal or console.\n", optarg);
                                return EXIT_USAGE;
                        }
                        cli.log_target = optarg;
                        break;
                case OPT_LOCK_TIMEOUT:
                case OPT_STATEMENT_TIMEOUT:
                        if (!parse_ms(optarg, c == OPT_LOCK_TIMEOUT ? &cli.lock_timeout_ms : &cli.statement_timeout_ms)) {
                                fprintf(stderr, "retentiond: invalid value for --%s: \"%s\"\n"
                                                "HINT:  Give a whole number of milliseconds.\n",
                                        c == OPT_LOCK_TIMEOUT ? "lock-timeout" : "statement-timeout", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case OPT_MAX_CLOCK_SKEW: {
                        int64_t v;
                        if (!parse_int64(optarg, &v)) {
                                fprintf(stderr, "retentiond: invalid value for --max-clock-skew: \"%s\"\n"
                                                "HINT:  Give a whole number of seconds (0 turns the check off).\n", optarg);
                                return EXIT_USAGE;
                        }
                        cli.knobs.max_clock_skew_sec = v;
                        break;
                }
                case OPT_PACE: {
                        char *end = NULL;
                        errno = 0;
                        double v = optarg[0] ? strtod(optarg, &end) : -1;
                        if (errno || !end || *end || !(v >= 0 && v <= PACE_MAX_RATIO)) {
                                fprintf(stderr, "retentiond: invalid value for --pace: \"%s\"\n"
                                                "HINT:  Give a number from 0 (never wait) to 100, such as 0.5 or 1.\n", optarg);
                                return EXIT_USAGE;
                        }
                        cli.knobs.pace_ratio = v;
                        break;
                }
                case 'q':
                        cli.quiet = true;
                        break;
                case 'h':
                        help(stdout);
                        return EXIT_OK;
                case OPT_VERSION:
                        printf("retentiond " RETENTIOND_VERSION "\n");
                        return EXIT_OK;
                case ':':
                        fprintf(stderr, "retentiond: option %s needs a value\n"
                                        "HINT:  Try \"retentiond --help\" for more information.\n", argv[optind - 1]);
                        return EXIT_USAGE;
                default:
                        fprintf(stderr, "retentiond: unknown option %s\n"
                                        "HINT:  Try \"retentiond --help\" for more information.\n", argv[optind - 1]);
                        return EXIT_USAGE;
                }
        }

        if (optind >= argc) {
                fprintf(stderr, "retentiond: no command given\n"
                                "HINT:  Try \"retentiond --help\" for the list of commands.\n");
                return EXIT_USAGE;
        }

        static char *default_policy[] = { RETENTIOND_SYSCONFDIR "/policies.d" };
        if (cli.n_policy_paths == 0) {
                cli.policy_paths = xmalloc(sizeof(char *));
                cli.policy_paths[0] = default_policy[0];
                cli.n_policy_paths = 1;
        }

        log_setup(log_target_from_string(cli.log_target));
        if (cli.quiet)
                log_set_max_level(LOG_WARNING);

        int r = load_config(&cli, no_config);
        if (r)
                return r;

        const char *command = argv[optind];
        cli.args = argv + optind + 1;
        cli.n_args = argc - optind - 1;

        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, command))
                        return commands[i].fn(&cli);

        fprintf(stderr, "retentiond: unknown command \"%s\"\n"
                        "HINT:  Try \"retentiond --help\" for the list of commands.\n", command);
        return EXIT_USAGE;
}
