/* check-db.h — the database half of `retentiond check -d`: compare a loaded Policy with the
 * catalog (tables, columns, types, privileges). Declared here so cmd-check.c can call it; it
 * must never change data. cmd-check.c holds a weak fallback until the real one lands. */
#pragma once

#include "cli.h"
#include "diag.h"
#include "policy.h"

/* Checks the policy against the database and appends what it finds to d (after the policy's own
 * diagnostics); prints nothing but a fatal error. Returns 0 with *n_checked (the rules of this
 * database) and *code: 0 when nothing is an error, else 65 when the policy cannot apply to the
 * catalog, 77 when the role lacks a privilege, 78 when the retention schema is not usable (the
 * first that applies). Returns an exit code (69, ...) when the check could not be done. */
int check_database(Cli *cli, const Policy *p, Diagnostics *d, size_t *n_checked, int *code);
