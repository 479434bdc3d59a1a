/* holds.c — every statement on the registry of operator holds (holds.h): the canonical key,
 * place, list, release, and the holds in force that no rule can match. Values are parameters,
 * identifiers quoted; it never deletes or alters a hold (a release is retention.release_hold()'s
 * own record), never prints and never decides an exit code. */
#include "holds.h"

#include <stdio.h>

#include "catalog.h"
#include "util.h"

/* A hold stays in force until released or past its --until. */
#define HOLD_IN_FORCE "h.released_at IS NULL AND (h.expires_at IS NULL OR h.expires_at > now())"

/* A hold is matched at run time by text: its key against (row's key column)::text. So the key
 * is read as the subject key column's type and written back as text, whether or not the subject
 * table has that row; a key the type rejects is an error of class 22. */
int holds_key(Pg *pg, const Subject *s, const char *key, char **ret, bool *row_exists, PgError *err) {
        *ret = NULL;
        *row_exists = false;
        _cleanup_(cat_table_freep) CatTable *t = NULL;
        int k = catalog_load_table(pg, &s->table, &t, err);
        if (k)
                return k;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *cp[] = { key, oid, s->key };
        _cleanup_pgresult_ PGresult *cr = NULL;
        k = pg_exec(pg, &cr, err, "SELECT retention.hold_key_canonical($1, $2::oid::regclass, $3::name)", 3, cp);
        if (k || PQgetisnull(cr, 0, 0))
                return k;
        const char *canon = PQgetvalue(cr, 0, 0);
        /* The row's own text, when there is one (a type whose equality is wider than its text,
         * such as citext, keeps the row's spelling). */
        _cleanup_free_ char *tq = qualified_name_quote(&s->table);
        _cleanup_free_ char *kq = ident_quote(s->key);
        _cleanup_free_ char *norm_sql = xasprintf("SELECT (SELECT t.%s::text FROM %s t WHERE t.%s = $1 LIMIT 1)", kq, tq, kq);
        const char *kp[] = { canon };
        _cleanup_pgresult_ PGresult *nr = NULL;
        k = pg_exec(pg, &nr, err, norm_sql, 1, kp);
        if (k)
                return k;
        *row_exists = !PQgetisnull(nr, 0, 0);
        *ret = xstrdup(*row_exists ? PQgetvalue(nr, 0, 0) : canon);
        return 0;
}

void hold_placed_done(HoldPlaced *h) {
        free(h->id);
        free(h->placed_at);
        free(h->expires_at);
        *h = (HoldPlaced) {};
}

int holds_place(Pg *pg, const char *subject, const char *key, const char *reason, const char *by, const char *until,
                HoldPlaced *ret, PgError *err) {
        const char *p[] = { subject, key, reason, by, until };
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec_input(pg, &r, err,
                              "SELECT id, placed_at::text, expires_at::text, expires_at IS NOT NULL AND expires_at <= now()"
                              " FROM retention.place_hold($1, $2, $3, $4, $5::timestamptz)",
                              5, p);
        if (k)
                return k;
        *ret = (HoldPlaced) {
                .id = xstrdup(PQgetvalue(r, 0, 0)),
                .placed_at = xstrdup(PQgetvalue(r, 0, 1)),
                .expires_at = PQgetisnull(r, 0, 2) ? NULL : xstrdup(PQgetvalue(r, 0, 2)),
                .lapsed = streq(PQgetvalue(r, 0, 3), "t"),
        };
        return 0;
}

int holds_list(Pg *pg, bool all, PGresult **ret, PgError *err) {
        const char *p[] = { all ? "t" : "f" };
        return pg_exec(pg, ret, err,
                       "SELECT id, subject, subject_key, reason, placed_by, placed_at::text, expires_at::text,"
                       " released_at::text, released_by,"
                       " CASE WHEN released_at IS NOT NULL THEN 'released'"
                       "      WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired' ELSE 'active' END"
                       " FROM retention.holds h WHERE $1::bool OR (" HOLD_IN_FORCE ")"
                       " ORDER BY id",
                       1, p);
}

int holds_release(Pg *pg, const char *id, const char *by, HoldReleased *what, char **text, PgError *err) {
        const char *p[] = { id, by };
        _cleanup_pgresult_ PGresult *r = NULL;
        *text = NULL;
        int k = pg_exec(pg, &r, err,
                        /* retention.release_hold(): true released now (its event written with it),
                         * false released before, NULL no such hold; h is as it was before the call. */
                        "SELECT CASE WHEN r THEN h.subject END, h.released_at::text || ' by ' || h.released_by, r IS NOT NULL"
                        " FROM retention.release_hold($1::bigint, $2) r LEFT JOIN retention.holds h ON h.id = $1::bigint",
                        2, p);
        if (k)
                return k;
        if (streq(PQgetvalue(r, 0, 2), "f"))
                *what = HOLD_NO_SUCH_HOLD;
        else if (PQgetisnull(r, 0, 0)) {
                *what = HOLD_ALREADY_RELEASED;
                *text = xstrdup(PQgetvalue(r, 0, 1));
        } else {
                *what = HOLD_RELEASED;
                *text = xstrdup(PQgetvalue(r, 0, 0));
        }
        return 0;
}

void holds_registry_use(const Policy *p, const Subject *s, bool *used, bool *elsewhere) {
        *used = *elsewhere = false;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *r = &p->rules[i];
                for (size_t j = 0; j < r->n_holds; j++) {
                        if (!r->holds[j]->registry || !r->holds[j]->subject || !streq(r->holds[j]->subject->name, s->name))
                                continue;
                        *used = true;
                        if (!qualified_name_equal(&r->table, &s->table))
                                *elsewhere = true;
                }
        }
}

int holds_noncanonical(Pg *pg, const Subject *s, PGresult **ret, PgError *err) {
        _cleanup_free_ char *tq = qualified_name_quote(&s->table);
        const char *v[] = { s->name, tq, s->key };
        return pg_exec(pg, ret, err,
                       "SELECT h.id::text, h.subject_key, c.rel IS NOT NULL, retention.hold_key_type(c.rel, $3::name),"
                       " retention.hold_key_as_read(h.subject_key, c.rel, $3::name)"
                       " FROM retention.holds h, (SELECT to_regclass($2) AS rel) c"
                       " WHERE h.subject = $1 AND " HOLD_IN_FORCE
                       " AND (c.rel IS NULL OR retention.hold_key_type(c.rel, $3::name) IS NULL"
                       "      OR retention.hold_key_as_read(h.subject_key, c.rel, $3::name) IS DISTINCT FROM h.subject_key)"
                       " ORDER BY h.id",
                       3, v);
}

int holds_orphaned(Pg *pg, const Policy *p, PGresult **ret, PgError *err) {
        StrBuf names = {}; /* subject names are [a-z0-9_-]: a comma separates them */
        for (size_t i = 0; i < p->n_subjects; i++)
                strbuf_appendf(&names, "%s%s", i ? "," : "", p->subjects[i].name);
        _cleanup_free_ char *list = strbuf_steal(&names);
        const char *v[] = { list };
        return pg_exec(pg, ret, err,
                       "SELECT h.id::text, h.subject FROM retention.holds h WHERE " HOLD_IN_FORCE
                       " AND h.subject <> ALL (string_to_array($1, ',')) ORDER BY h.id",
                       1, v);
}

int holds_in_force(Pg *pg, char **ret, PgError *err) {
        return pg_value(pg, ret, err, "SELECT count(*)::text FROM retention.holds h WHERE " HOLD_IN_FORCE, 0, NULL);
}
