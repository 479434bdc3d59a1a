/* cmdutil.h — what every command does the same way: load the policy and show its
 * diagnostics, connect and show connection errors, map failures to exit codes, print
 * runtime errors in PostgreSQL's style. Only commands (cmd-*.c) use this. */
#pragma once

#include "cli.h"
#include "hashkey.h"
#include "pg.h"
#include "policy.h"

/* Loads cli->policy_paths; prints diagnostics (errors and warnings) to stderr.
 * Returns 0 or the exit code. */
int cmd_load_policy(Cli *cli, Policy **ret);
/* Connects with the CLI's timeouts; prints the error. Returns 0 or the exit code. */
int cmd_connect(Cli *cli, bool read_only, Pg **ret);
/* Prints a runtime error (PostgreSQL style) through the log sink. */
void cmd_print_error(const PgError *e);
/* Exit code for a failure of class k (PgErrorClass or -1: configuration). */
int cmd_exit_code(int k, const PgError *e);
/* Checks that every --rule names a rule of the policy. Returns 0 or EXIT_USAGE. */
int cmd_check_rule_names(Cli *cli, const Policy *p);
/* Loads the hash key when a selected rule needs it (or --hash-key-file was given). Prints
 * the error; returns 0 or the exit code. */
int cmd_load_hash_key(Cli *cli, const Policy *p, HashKey **ret);
/* Prints microseconds as seconds "0.123 s". */
const char *format_seconds(uint64_t usec, char *buf, size_t n);
