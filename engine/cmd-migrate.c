/* cmd-migrate.c — `retentiond migrate`: the command's glue. migrate.c creates or upgrades the
 * retention schema (one transaction, an advisory lock, idempotently); then the holds in force
 * that no rule can match are reported (holds.c). Never touches application tables. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cli.h"
#include "diag.h"
#include "cmdutil.h"
#include "event.h"
#include "exitcode.h"
#include "holds.h"
#include "migrate.h"
#include "ident.h"
#include "policy.h"
#include "util.h"

/* A hold is matched at run time by text, against (row's key column)::text: its key must be the
 * canonical text of the subject key column's type. Holds placed before `hold add` normalised
 * every key, or written by SQL, may not be; they are reported here, not changed: the registry is
 * append-only, and the engine matches a non-canonical key through the type anyway. Appends the
 * ids of the holds found to *ids; returns 0 or a PgErrorClass with *err. */
static int check_hold_keys(Pg *pg, const Policy *p, StrBuf *ids, size_t *n_found, PgError *err) {
        for (size_t i = 0; i < p->n_subjects; i++) {
                const Subject *s = &p->subjects[i];
                _cleanup_free_ char *tn = qualified_name_display(&s->table);
                _cleanup_pgresult_ PGresult *r = NULL;
                int k = holds_noncanonical(pg, s, &r, err);
                if (k)
                        return k;
                for (int j = 0; j < PQntuples(r); j++) {
                        const char *id = PQgetvalue(r, j, HOLDS_NC_ID);
                        _cleanup_free_ char *key = text_escape(PQgetvalue(r, j, HOLDS_NC_KEY));
                        _cleanup_free_ char *primary = NULL, *detail = NULL, *hint = NULL;
                        if (streq(PQgetvalue(r, j, HOLDS_NC_TABLE_EXISTS), "f") || PQgetisnull(r, j, HOLDS_NC_TYPE)) {
                                primary = xasprintf("the key of hold %s on subject %s could not be checked", id, s->name);
                                detail = xasprintf("Its key column %s of %s does not exist in this database.", s->key, tn);
                                hint = xstrdup("Run \"retentiond migrate\" with -d for the database of the subject's table.");
                        } else if (PQgetisnull(r, j, HOLDS_NC_CANONICAL)) {
                                primary = xasprintf("hold %s on subject %s has the key \"%s\", which its key column's type rejects",
                                                    id, s->name, key);
                                detail = xasprintf("%s.%s is of type %s: the hold protects no row whose key is of that type.", tn,
                                                   s->key, PQgetvalue(r, j, HOLDS_NC_TYPE));
                                hint = xasprintf("Release it (retentiond hold release %s) and place the hold on the right key.", id);
                        } else {
                                _cleanup_free_ char *canon = text_escape(PQgetvalue(r, j, HOLDS_NC_CANONICAL));
                                primary = xasprintf("hold %s on subject %s has the key \"%s\", which is not canonical", id,
                                                    s->name, key);
                                detail = xasprintf("%s.%s (%s) reads it as \"%s\"; the engine matches rows by \"%s\" too, but "
                                                   "the registry should say what it holds.",
                                                   tn, s->key, PQgetvalue(r, j, HOLDS_NC_TYPE), canon, canon);
                                hint = xasprintf("Place it again with retentiond hold add %s %s (same --reason and --until), then "
                                                 "retentiond hold release %s.",
                                                 s->name, canon, id);
                        }
                        log_pg_style(LOG_WARNING, NULL, primary, detail, hint);
                        strbuf_appendf(ids, "%s%s", (*n_found)++ ? "," : "", id);
                }
        }

        /* Holds in force on a subject the policy does not define (renamed, or written by SQL):
         * no rule reads them, so they protect nothing. */
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = holds_orphaned(pg, p, &r, err);
        if (k)
                return k;
        for (int j = 0; j < PQntuples(r); j++) {
                const char *id = PQgetvalue(r, j, 0);
                _cleanup_free_ char *subject = text_escape(PQgetvalue(r, j, 1));
                _cleanup_free_ char *primary = xasprintf("hold %s is on subject \"%s\", which the policy does not define", id,
                                                         subject);
                _cleanup_free_ char *hint = xasprintf("Place it again on a subject of the policy's subjects: section, then "
                                                      "retentiond hold release %s.",
                                                      id);
                log_pg_style(LOG_WARNING, NULL, primary, "No rule reads it: it protects nothing.", hint);
                strbuf_appendf(ids, "%s%s", (*n_found)++ ? "," : "", id);
        }
        return 0;
}

static int migrate_database(Cli *cli, const Policy *p, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        PgError err = {};
        int r, k;
        (void) userdata;

        r = cmd_connect(cli, false, &pg);
        if (r)
                return r;

        MigrateResult m = {};
        k = migrate_apply(pg, &m, &err);
        if (k)
                return cmd_fail(&err, k);
        int latest = m.latest, current = m.previous, applied = m.applied;

        /* Hold keys: checked against the policy's subjects; without the policy only said. */
        StrBuf ids = {};
        size_t n_bad = 0;
        if (p) {
                k = check_hold_keys(pg, p, &ids, &n_bad, &err);
                if (k) {
                        strbuf_done(&ids);
                        return cmd_fail(&err, k);
                }
        } else {
                _cleanup_free_ char *n = NULL;
                k = holds_in_force(pg, &n, &err);
                if (k)
                        return cmd_fail(&err, k);
                if (!streq(n, "0"))
                        log_pg_style(LOG_NOTICE, NULL, "hold keys were not checked",
                                     "Whether each hold's key is the canonical text of its subject's key column needs the policy.",
                                     "Run \"retentiond -p POLICY migrate\" to check them.");
        }

        if (!cli->quiet) {
                if (cli->json && n_bad)
                        fprintf(out, "{\"schema_version\":%d,\"previous_version\":%d,\"migrations_applied\":%d,"
                                     "\"noncanonical_hold_keys\":[%s]}\n",
                                latest, current, applied, strbuf_str(&ids));
                else if (cli->json)
                        fprintf(out, "{\"schema_version\":%d,\"previous_version\":%d,\"migrations_applied\":%d}\n", latest, current,
                               applied);
                else if (applied == 0)
                        fprintf(out, "retention schema is already at version %d; nothing to do\n", latest);
                else
                        fprintf(out, "retention schema migrated from version %d to %d (%d migration%s applied)\n", current, latest,
                               applied, applied == 1 ? "" : "s");
                if (!cli->json && n_bad)
                        fprintf(out, "%zu hold%s in force with a key that is not canonical or on no subject of the policy: hold%s %s"
                                     " (see the warnings)\n",
                                n_bad,
                                n_bad == 1 ? "" : "s", n_bad == 1 ? "" : "s", strbuf_str(&ids));
        }
        strbuf_done(&ids);
        return n_bad ? EXIT_ATTENTION : EXIT_OK;
}

/* With -p: -d NAME, or without -d every database of the policy. */
int cmd_migrate(Cli *cli) {
        return cmd_no_policy_each_database(cli, "migrate", migrate_database);
}
