/* check-db.h — the database half of `retentiond check -d`: compare a loaded Policy with the
 * catalog (tables, columns, types, privileges). Declared here so cmd-check.c can call it; it
 * must never change data. cmd-check.c holds a weak fallback until the real one lands. */
#pragma once

#include "cli.h"
#include "policy.h"

/* Prints its findings and returns an exit code from exitcode.h (0 when everything matches). */
int check_database(Cli *cli, const Policy *p);
