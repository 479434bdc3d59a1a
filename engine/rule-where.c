/* rule-where.c — a rule's `where:` checked by PostgreSQL on its own (see rule-where.h). Must
 * never execute the fragment: it is prepared, never run. */
#include <stdio.h>
#include <string.h>

#include "rule-where.h"
#include "util.h"

#define BOOLOID 16
#define RECORDOID 2249

/* Rewrites *err (PostgreSQL's error) so that its primary names the rule; DETAIL and HINT stay
 * PostgreSQL's, or say what the where must be when it gave none. */
static void name_rule(PgError *err, const Rule *of, const char *table) {
        char *primary = xasprintf("invalid \"where\" in rule \"%s\": %s", of->name, err->primary ? err->primary : "");
        free(err->primary);
        err->primary = primary;
        if (!err->detail)
                err->detail = xasprintf("\"where\" is checked on its own, as a condition on the row t of %s.", table);
        if (!err->hint)
                err->hint = xstrdup("Write one boolean expression about the row t, e.g. \"t.status = 'closed'\".");
}

bool rule_where_refused(int k) {
        /* not: a lost connection, a lock the table is under (lock_timeout), a timeout, a retry */
        return k == PG_ERR_OTHER || k == PG_ERR_UNDEFINED || k == PG_ERR_PERMISSION || k == PG_ERR_FOREIGN_KEY;
}

static int check(Pg *pg, const Rule *of, const CatTable *t, PgError *err) {
        _cleanup_free_ char *sql = plan_where_check_sql(of, t);
        _cleanup_free_ char *table = qualified_name_display(&t->name);
        _cleanup_pgresult_ PGresult *d = NULL;
        int k = pg_prepare(pg, err, "", sql, 0);
        if (!k)
                k = pg_describe_prepared(pg, &d, err, "");
        if (k) {
                if (rule_where_refused(k))
                        name_rule(err, of, table);
                return k;
        }
        if (PQnparams(d) != 0 || PQnfields(d) != 1) {
                pg_error_set(err, "42601", NULL, "Write one boolean expression about the row t, e.g. \"t.status = 'closed'\".",
                             "invalid \"where\" in rule \"%s\": %s", of->name,
                             PQnparams(d) != 0 ? "it refers to a statement parameter" : "it is not one expression");
                return PG_ERR_OTHER;
        }
        Oid type = PQftype(d, 0);
        if (type == BOOLOID)
                return 0;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", type);
        const char *p[] = { oid };
        _cleanup_free_ char *name = NULL;
        PgError ig = {};
        k = pg_value(pg, &name, &ig, "SELECT format_type($1::oid, NULL)", 1, p);
        pg_error_done(&ig);
        if (k == PG_ERR_CONNECTION) {
                pg_error_set(err, "08006", NULL, NULL, "lost the connection to the database");
                return k;
        }
        _cleanup_free_ char *detail = xasprintf("\"where\" is a single boolean expression about the row t of %s.", table);
        pg_error_set(err, "42804", detail,
                     type == RECORDOID ? "Join conditions with AND or OR: a list in parentheses is a row, not a condition."
                                       : "Write a condition, e.g. \"t.status = 'closed'\" or \"t.flag IS TRUE\".",
                     "\"where\" in rule \"%s\" is of type %s, not boolean", of->name, name ? name : oid);
        return PG_ERR_OTHER;
}

int rule_where_check_one(Pg *pg, const Rule *of, const CatTable *t, PgError *err) {
        if (!of->where || !t)
                return 0;
        /* A refused statement aborts the transaction it is in: keep the caller's usable. */
        bool in_tx = PQtransactionStatus(pg->conn) == PQTRANS_INTRANS;
        PgError ig = {};
        if (in_tx) {
                int k = pg_exec0(pg, NULL, err, "SAVEPOINT retentiond_where");
                if (k)
                        return k;
        }
        int k = check(pg, of, t, err);
        if (in_tx && k != PG_ERR_CONNECTION) {
                int k2 = pg_exec0(pg, NULL, &ig, k ? "ROLLBACK TO SAVEPOINT retentiond_where" : "RELEASE SAVEPOINT retentiond_where");
                if (k2 == PG_ERR_CONNECTION && !k) {
                        pg_error_done(err);
                        *err = ig;
                        return k2;
                }
                if (k)
                        (void) pg_exec0(pg, NULL, &ig, "RELEASE SAVEPOINT retentiond_where");
                pg_error_done(&ig);
        }
        return k;
}

int rule_where_check(Pg *pg, const Policy *p, const Rule *r, const CatCache *cache, PgError *err) {
        const CatTable *t = cat_cache_find_name(cache, &r->table);
        if (!t)
                return 0;
        int k = rule_where_check_one(pg, r, t, err);
        if (k || r->action != ACTION_DELETE)
                return k;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *o = &p->rules[i];
                if (o == r || o->action != ACTION_DELETE || !o->where)
                        continue;
                const CatTable *ot = cat_cache_find_name(cache, &o->table);
                if (!ot || ot->oid != t->oid)
                        continue;
                k = rule_where_check_one(pg, o, t, err);
                if (k)
                        return k;
        }
        return 0;
}
