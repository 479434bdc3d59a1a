/* cmd-migrate.c — `retentiond migrate`: create or upgrade the retention schema, in one
 * transaction, under an advisory lock, idempotently. Never touches application tables. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "enforce.h"
#include "event.h"
#include "exitcode.h"
#include "migrations.h"
#include "policy.h"
#include "util.h"

static int fail(Pg *pg, PgError *err, int k) {
        PgError ig = {};
        if (pg_connection_ok(pg))
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
        pg_error_done(&ig);
        return cmd_fail(err, k);
}

static int migrate_database(Cli *cli, const Policy *p, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        PgError err = {};
        int r, k;
        (void) p;
        (void) userdata;

        r = cmd_connect(cli, false, &pg);
        if (r)
                return r;

        int latest = n_migrations ? migrations[n_migrations - 1].version : 0;
        k = pg_exec0(pg, NULL, &err, "BEGIN");
        if (k)
                return fail(pg, &err, k);
        char cls[16], obj[16];
        snprintf(cls, sizeof(cls), "%d", ADVISORY_CLASS);
        snprintf(obj, sizeof(obj), "%d", ADVISORY_MIGRATE);
        const char *lp[] = { cls, obj };
        k = pg_exec(pg, NULL, &err, "SELECT pg_advisory_xact_lock($1::int, $2::int)", 2, lp);
        if (k)
                return fail(pg, &err, k);

        _cleanup_free_ char *exists = NULL, *cur = NULL;
        k = pg_value(pg, &exists, &err, "SELECT to_regclass('retention.schema_version') IS NOT NULL", 0, NULL);
        if (k)
                return fail(pg, &err, k);
        int current = 0;
        if (streq_ptr(exists, "t")) {
                k = pg_value(pg, &cur, &err, "SELECT coalesce(max(version), 0)::text FROM retention.schema_version", 0, NULL);
                if (k)
                        return fail(pg, &err, k);
                current = atoi(cur);
        }
        if (current > latest) {
                _cleanup_free_ char *detail = xasprintf("The database has schema version %d; this retentiond knows versions up to %d.",
                                                        current, latest);
                pg_error_set(&err, NULL, detail, "Upgrade retentiond; a schema is never downgraded.",
                             "the retention schema is newer than this retentiond");
                return fail(pg, &err, -1);
        }
        int applied = 0;
        for (size_t i = 0; i < n_migrations; i++) {
                if (migrations[i].version <= current)
                        continue;
                k = pg_exec_script(pg, &err, migrations[i].sql);
                if (k) {
                        _cleanup_free_ char *primary = xasprintf("migration %s failed: %s", migrations[i].name,
                                                                 err.primary ? err.primary : "error");
                        free(err.primary);
                        err.primary = TAKE_PTR(primary);
                        return fail(pg, &err, k);
                }
                applied++;
        }
        k = pg_exec0(pg, NULL, &err, "COMMIT");
        if (k)
                return fail(pg, &err, k);

        if (!cli->quiet) {
                if (cli->json)
                        fprintf(out, "{\"schema_version\":%d,\"previous_version\":%d,\"migrations_applied\":%d}\n", latest, current,
                               applied);
                else if (applied == 0)
                        fprintf(out, "retention schema is already at version %d; nothing to do\n", latest);
                else
                        fprintf(out, "retention schema migrated from version %d to %d (%d migration%s applied)\n", current, latest,
                               applied, applied == 1 ? "" : "s");
        }
        return EXIT_OK;
}

/* With -p: -d NAME, or without -d every database of the policy. */
int cmd_migrate(Cli *cli) {
        return cmd_no_policy_each_database(cli, "migrate", migrate_database);
}
