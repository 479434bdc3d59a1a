/* migrate.h — the retention schema in a database: its version, and the migrations embedded from
 * sql/retention/ applied in order, in one transaction, under the migration advisory lock. It
 * never touches application tables, never downgrades a schema and never prints. */
#pragma once

#include "pg.h"

/* The version of the retention schema in this database (0: there is none). Returns 0 or a
 * PgErrorClass with *err. */
int migrate_schema_version(Pg *pg, int *ret, PgError *err);

typedef struct MigrateResult {
        int previous; /* the version before */
        int latest;   /* the version after: the newest migration this retentiond has */
        int applied;  /* migrations applied */
} MigrateResult;

/* Brings the schema to the newest version, idempotently; on failure nothing is changed (the
 * transaction is rolled back). Returns 0, OUTCOME_SCHEMA_MISMATCH when the database's schema is
 * newer than this retentiond, or a PgErrorClass, with *err. */
int migrate_apply(Pg *pg, MigrateResult *ret, PgError *err);
