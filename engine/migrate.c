/* migrate.c — the retention schema's version and migrations (migrate.h): every migration newer
 * than the database's schema, in order, in one transaction under ADVISORY_MIGRATE, so that two
 * migrates never interleave. Never touches application tables, never downgrades, never prints. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "trail.h"
#include "migrations.h"
#include "util.h"

int migrate_schema_version(Pg *pg, int *ret, PgError *err) {
        _cleanup_free_ char *exists = NULL, *cur = NULL;
        *ret = 0;
        int k = pg_value(pg, &exists, err, "SELECT to_regclass('retention.schema_version') IS NOT NULL", 0, NULL);
        if (k || !streq_ptr(exists, "t"))
                return k;
        k = pg_value(pg, &cur, err, "SELECT coalesce(max(version), 0)::text FROM retention.schema_version", 0, NULL);
        if (!k)
                *ret = atoi(cur);
        return k;
}

/* Rolls back the migration's transaction (when the session still stands); returns k. */
static int fail(Pg *pg, int k) {
        PgError ig = {};
        if (pg_connection_ok(pg))
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
        pg_error_done(&ig);
        return k;
}

int migrate_apply(Pg *pg, MigrateResult *ret, PgError *err) {
        *ret = (MigrateResult) { .latest = n_migrations ? migrations[n_migrations - 1].version : 0 };
        int k = pg_exec0(pg, NULL, err, "BEGIN");
        if (k)
                return fail(pg, k);
        char cls[16], obj[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS);
        snprintf(obj, sizeof(obj), "%d", ADVISORY_MIGRATE);
        const char *lp[] = { cls, obj };
        k = pg_exec(pg, NULL, err, "SELECT pg_advisory_xact_lock($1::int, $2::int)", 2, lp);
        if (!k)
                k = migrate_schema_version(pg, &ret->previous, err);
        if (k)
                return fail(pg, k);
        if (ret->previous > ret->latest) {
                _cleanup_free_ char *detail = xasprintf("The database has schema version %d; this retentiond knows versions up to %d.",
                                                        ret->previous, ret->latest);
                pg_error_set(err, NULL, detail, "Upgrade retentiond; a schema is never downgraded.",
                             "the retention schema is newer than this retentiond");
                return fail(pg, OUTCOME_SCHEMA_MISMATCH);
        }
        for (size_t i = 0; i < n_migrations; i++) {
                if (migrations[i].version <= ret->previous)
                        continue;
                k = pg_exec_script(pg, err, migrations[i].sql);
                if (k) {
                        _cleanup_free_ char *primary = xasprintf("migration %s failed: %s", migrations[i].name,
                                                                 err->primary ? err->primary : "error");
                        free(err->primary);
                        err->primary = TAKE_PTR(primary);
                        return fail(pg, k);
                }
                ret->applied++;
        }
        k = pg_exec0(pg, NULL, err, "COMMIT");
        return k ? fail(pg, k) : 0;
}
