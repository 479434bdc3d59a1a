/* check-db.h — the database half of `retentiond check -d`: compare a loaded Policy with the
 * catalog (tables, columns, types, privileges, the retention schema). Reads only; must never
 * change data. */
#pragma once

#include <stddef.h>

#include "catalog.h"
#include "diag.h"
#include "pg.h"
#include "policy.h"

/* What the check found, the first that applies: what `check` turns into its exit code. */
typedef enum CheckVerdict {
        CHECK_OK = 0,
        CHECK_POLICY,     /* the policy cannot apply to the catalog (65) */
        CHECK_PERMISSION, /* the role lacks a privilege (77) */
        CHECK_SCHEMA,     /* the retention schema is missing or not usable (78) */
} CheckVerdict;

/* Checks the policy's rules of database_name (NULL: the policy's rules without `databases:`)
 * against pg's catalog and appends what it finds to d, after the policy's own diagnostics.
 * Return convention (as pg.h): 0 with *n_checked (the rules checked) and *verdict, or a
 * PgErrorClass with *err when the check could not be done. */
int check_database(Pg *pg, const Policy *p, const char *database_name, Diagnostics *d, size_t *n_checked,
                   CheckVerdict *verdict, PgError *err);

/* Rows of a table (its statistics) from which an anonymise rule is worth the partial index of the
 * rows still to anonymise (plan_todo_index()). */
#define TODO_INDEX_MIN_ROWS 10000

/* An anonymise rule on a table of TODO_INDEX_MIN_ROWS rows or more for which the planner would use
 * no partial index of the rows still to anonymise: every run reads every due row again, those it
 * anonymised before included. *warning says so and ends with the CREATE INDEX that makes a run
 * with nothing to change read (almost) none (caller frees), or is NULL: the index serves, the
 * table is small, or the rule's methods cannot be an index's predicate. Reads only (an EXPLAIN,
 * with enable_seqscan set back to the session's value after it); check -d and audit use it.
 * Return convention (as pg.h): 0, or a PgErrorClass with *err. */
int check_todo_index(Pg *pg, const Rule *r, const CatTable *t, char **warning, PgError *err);
