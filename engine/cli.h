/* cli.h — the parsed command line shared by every subcommand (cmd-*.c).
 * main.c fills it; commands read it and return an exit code from exitcode.h. The library must
 * never include it (tests/unit/layers.py). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "knobs.h"

typedef struct Cli {
        const char *argv0;
        /* global */
        char **policy_paths; /* -p/--policy, repeatable; default RETENTIOND_SYSCONFDIR/policies.d */
        size_t n_policy_paths;
        bool policy_paths_given;
        const char *conninfo; /* -d/--database, or NULL: libpq environment decides */
        const char *database_name; /* the policy's database (`databases:`) being worked on, or NULL */
        bool json;
        const char *log_target; /* auto|journal|console */
        bool quiet;

        /* command options */
        char **rules; /* --rule, repeatable */
        size_t n_rules;
        bool dry_run, force, sql, fail_on_overdue, all;
        bool no_live;             /* --no-live (status): the trail only, no counts of the rows due now */
        const char *hash_key_file;
        const char *reason, *until, *by;
        const char *subject; /* explain --subject */
        long lock_timeout_ms, statement_timeout_ms; /* <0: default */
        EngineKnobs knobs;        /* --pace, --max-clock-skew */
        const char *metrics_file; /* --metrics-file: the Prometheus textfile (daemon, run), or NULL */
        unsigned fail_on;         /* --fail-on (audit, status): HEALTH_FAIL_* bits */
        bool fail_on_given;
        long stale_after;         /* --stale-after N schedules (audit, status); <0: default */
        const char *older_than;   /* --older-than DURATION (prune) */

        /* positional arguments after the command */
        char **args;
        int n_args;
} Cli;

int cmd_check(Cli *cli);
int cmd_audit(Cli *cli);
int cmd_run(Cli *cli);
int cmd_migrate(Cli *cli);
int cmd_hold(Cli *cli);
int cmd_daemon(Cli *cli);
int cmd_explain(Cli *cli);
int cmd_verify(Cli *cli);
int cmd_receipt(Cli *cli);
int cmd_prune(Cli *cli);
int cmd_coverage(Cli *cli);
int cmd_status(Cli *cli);
