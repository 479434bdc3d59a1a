/* cmdutil.h — what every command does the same way: load the policy and show its
 * diagnostics, connect and show connection errors, map failures to exit codes, print
 * runtime errors in PostgreSQL's style. Only commands (cmd-*.c) use this. */
#pragma once

#include <stdio.h>

#include "cli.h"
#include "hashkey.h"
#include "pg.h"
#include "policy.h"
#include "util.h"

/* Loads cli->policy_paths; prints diagnostics (errors and warnings) to stderr.
 * When the policy names databases (`databases:`) and -d is one of their names, cli->conninfo
 * becomes that database's conninfo and cli->database_name its name (valid while *ret lives).
 * Returns 0 or the exit code. */
int cmd_load_policy(Cli *cli, Policy **ret);

/* For the commands that do not need the policy (migrate, verify, receipt, hold list and
 * release): only with an explicit -p is it loaded, so that -d may be one of its database names
 * (*ret NULL otherwise). one_database_command (e.g. "receipt"; NULL for a command that goes to
 * every database): a policy that names databases needs -d, a usage error otherwise. Returns 0
 * or the exit code. */
int cmd_load_policy_if_given(Cli *cli, const char *one_database_command, Policy **ret);

/* One command against one database: cli->conninfo, cli->database_name and cli->rules say which
 * and what; output goes to out. Returns an exit code. */
typedef int (*CmdDatabaseFn)(Cli *cli, const Policy *p, FILE *out, void *userdata);
/* Runs fn for the database(s) a command is for and returns the highest exit code:
 * - no `databases:`, or -d CONNINFO: once, as always (every rule, or --rule);
 * - -d NAME of `databases:`: once, for that database's rules (a --rule of another database is a
 *   usage error; no rule there: nothing to do, unless every_database);
 * - no -d: once per database of the policy, in policy order, each with its rules (databases
 *   without rules are skipped unless every_database); text output gets a "database NAME:" line
 *   before each, --json becomes {"databases": [{"database", "exit_code", "report"}, ...]}. */
int cmd_each_database(Cli *cli, const Policy *p, bool every_database, CmdDatabaseFn fn, void *userdata);
/* migrate and verify: `retentiond NAME` takes options only; fn runs once, or with -p once per
 * database of the policy (or for -d NAME), as cmd_each_database(). Returns the exit code. */
int cmd_no_policy_each_database(Cli *cli, const char *name, CmdDatabaseFn fn);
/* Connects with the CLI's timeouts; prints the error. Returns 0 or the exit code. */
int cmd_connect(Cli *cli, bool read_only, Pg **ret);
/* A read-only session inside one READ ONLY REPEATABLE READ transaction (one consistent view),
 * whose retention schema is the version this retentiond knows (explain, receipt, verify).
 * Prints the error; returns 0 or the exit code. */
int cmd_connect_snapshot(Cli *cli, Pg **ret);
/* Prints a runtime error (PostgreSQL style) through the log sink. */
void cmd_print_error(const PgError *e);
/* Prints *err (PostgreSQL style), frees it, and returns the exit code for class k. */
int cmd_fail(PgError *err, int k);
/* Exit code for k: a PgErrorClass (> 0) or a PgOutcome (< 0); 0 is EXIT_OK. */
int cmd_exit_code(int k, const PgError *e);
/* Who the operator is, for the registry and the trail: --by, else SUDO_USER, else the user's
 * login name, else "uid N". Caller frees. */
char *cmd_operator_name(const Cli *cli);
/* Checks that every --rule names a rule of the policy. Returns 0 or EXIT_USAGE. */
int cmd_check_rule_names(Cli *cli, const Policy *p);
/* Loads the hash key when a selected rule needs it (or --hash-key-file was given). Prints
 * the error; returns 0 or the exit code. */
int cmd_load_hash_key(Cli *cli, const Policy *p, HashKey **ret);
/* Loads the hash key if one is configured (--hash-key-file, the credential "hash-key",
 * RETENTIOND_HASH_KEY_FILE): 0 with *ret NULL when none is. Prints the error of a key that is
 * configured but cannot be used; returns 0 or the exit code. */
int cmd_read_hash_key(Cli *cli, HashKey **ret);
