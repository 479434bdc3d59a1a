/* catalog.c — read the PostgreSQL catalog for the tables a policy names.
 * Only SELECTs on pg_catalog (and count(*) when no estimate exists); never writes. */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define OID_DATE 1082
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_INET 869
#define OID_CIDR 650

static ColumnKind kind_from(uint32_t base, const char *category) {
        switch (base) {
        case OID_DATE: return COLKIND_DATE;
        case OID_TIMESTAMP: return COLKIND_TIMESTAMP;
        case OID_TIMESTAMPTZ: return COLKIND_TIMESTAMPTZ;
        case OID_INET: return COLKIND_INET;
        case OID_CIDR: return COLKIND_CIDR;
        }
        if (category && streq(category, "S"))
                return COLKIND_TEXT;
        return COLKIND_OTHER;
}

const char *column_kind_to_string(ColumnKind k) {
        switch (k) {
        case COLKIND_TIMESTAMPTZ: return "timestamptz";
        case COLKIND_TIMESTAMP: return "timestamp";
        case COLKIND_DATE: return "date";
        case COLKIND_INET: return "inet";
        case COLKIND_CIDR: return "cidr";
        case COLKIND_TEXT: return "text";
        default: return "other";
        }
}

static void untrusted_free(CatTable *t) {
        for (size_t i = 0; i < t->n_untrusted; i++) {
                free(t->untrusted[i].relation);
                free(t->untrusted[i].name);
                free(t->untrusted[i].function);
                free(t->untrusted[i].owner);
        }
        free(t->untrusted);
        t->untrusted = NULL;
        t->n_untrusted = 0;
}

const char *cat_dist_kind_to_string(CatDistKind k) {
        switch (k) {
        case CAT_DIST_NONE: return "local";
        case CAT_DIST_DISTRIBUTED: return "distributed";
        case CAT_DIST_REFERENCE: return "reference";
        case CAT_DIST_CITUS_LOCAL: return "Citus local";
        case CAT_DIST_SINGLE_SHARD: return "single-shard distributed";
        }
        return "local";
}

const char *cat_code_kind_to_string(CatCodeKind k) {
        switch (k) {
        case CAT_CODE_TRIGGER: return "trigger";
        case CAT_CODE_RULE: return "rule";
        case CAT_CODE_RLS: return "row-level security";
        }
        return "code";
}

void cat_table_free(CatTable *t) {
        if (!t)
                return;
        untrusted_free(t);
        qualified_name_done(&t->name);
        for (size_t i = 0; i < t->n_columns; i++) {
                free(t->columns[i].name);
                free(t->columns[i].type);
        }
        free(t->columns);
        for (size_t i = 0; i < t->n_indexed_first_columns; i++)
                free(t->indexed_first_columns[i]);
        free(t->indexed_first_columns);
        free(t->partition_column);
        free(t->dist_column);
        for (size_t i = 0; i < t->n_referenced_by; i++) {
                CatForeignKey *fk = &t->referenced_by[i];
                free(fk->name);
                qualified_name_done(&fk->child);
                for (size_t j = 0; j < fk->n_columns; j++) {
                        free(fk->child_columns[j]);
                        free(fk->parent_columns[j]);
                }
                free(fk->child_columns);
                free(fk->parent_columns);
        }
        free(t->referenced_by);
        free(t);
}

static int load_by_oid_text(Pg *pg, const char *oidtext, CatTable **ret, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        const char *p[] = { oidtext };
        int k;

        k = pg_exec(pg, &r, err,
                    "SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples,"
                    " has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'DELETE'),"
                    " has_table_privilege(c.oid, 'UPDATE'),"
                    " (SELECT a.attname FROM pg_partitioned_table pt"
                    "    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]"
                    "   WHERE pt.partrelid = c.oid AND pt.partstrat = 'r' AND pt.partnatts = 1),"
                    " to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.oid = $1::oid",
                    1, p);
        if (k)
                return k;
        if (PQntuples(r) != 1) {
                pg_error_set(err, NULL, NULL, "Run again: the catalog changed while it was read.",
                             "table with oid %s was dropped while its catalog was read", oidtext);
                return OUTCOME_TABLE_GONE;
        }

        _cleanup_(cat_table_freep) CatTable *t = xcalloc(1, sizeof(CatTable));
        t->oid = (uint32_t) strtoul(PQgetvalue(r, 0, 0), NULL, 10);
        t->name.schema = xstrdup(PQgetvalue(r, 0, 1));
        t->name.name = xstrdup(PQgetvalue(r, 0, 2));
        t->relkind = PQgetvalue(r, 0, 3)[0];
        t->reltuples = strtod(PQgetvalue(r, 0, 4), NULL);
        t->can_select = streq(PQgetvalue(r, 0, 5), "t");
        t->can_delete = streq(PQgetvalue(r, 0, 6), "t");
        t->can_update = streq(PQgetvalue(r, 0, 7), "t");
        if (!PQgetisnull(r, 0, 8))
                t->partition_column = xstrdup(PQgetvalue(r, 0, 8));
        t->citus = streq(PQgetvalue(r, 0, 9), "t");
        PQclear(TAKE_PTR(r));

        if (t->citus) {
                /* Citus: the table's kind and distribution column. partkey is the distribution
                 * column as a Var node's text ({VAR :varno 1 :varattno N ...}); pg_dist_partition
                 * is readable by every role, Citus's functions need not be. */
                k = pg_exec(pg, &r, err,
                            "SELECT d.partmethod, d.repmodel, d.colocationid, a.attname"
                            " FROM pg_catalog.pg_dist_partition d"
                            " LEFT JOIN pg_attribute a ON a.attrelid = d.logicalrelid"
                            "  AND a.attnum = (regexp_match(d.partkey, ':varattno ([0-9]+)'))[1]::int"
                            " WHERE d.logicalrelid = $1::oid",
                            1, p);
                if (k)
                        return k;
                if (PQntuples(r) == 1) {
                        char method = PQgetvalue(r, 0, 0)[0], model = PQgetvalue(r, 0, 1)[0];
                        t->colocation_id = (uint32_t) strtoul(PQgetvalue(r, 0, 2), NULL, 10);
                        if (method != 'n') {
                                t->dist = CAT_DIST_DISTRIBUTED;
                                if (!PQgetisnull(r, 0, 3))
                                        t->dist_column = xstrdup(PQgetvalue(r, 0, 3));
                        } else if (model == 't')
                                t->dist = CAT_DIST_REFERENCE;
                        else if (t->colocation_id != 0)
                                t->dist = CAT_DIST_SINGLE_SHARD;
                        else
                                t->dist = CAT_DIST_CITUS_LOCAL;
                }
                PQclear(TAKE_PTR(r));
        }

        k = pg_exec(pg, &r, err,
                    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum,"
                    " CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,"
                    " (SELECT bt.typcategory FROM pg_type bt"
                    "   WHERE bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)"
                    " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                    " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    1, p);
        if (k)
                return k;
        t->n_columns = (size_t) PQntuples(r);
        t->columns = xcalloc(t->n_columns, sizeof(CatColumn));
        for (size_t i = 0; i < t->n_columns; i++) {
                CatColumn *c = &t->columns[i];
                c->name = xstrdup(PQgetvalue(r, (int) i, 0));
                c->type = xstrdup(PQgetvalue(r, (int) i, 1));
                c->not_null = streq(PQgetvalue(r, (int) i, 2), "t");
                c->attnum = atoi(PQgetvalue(r, (int) i, 3));
                c->kind = kind_from((uint32_t) strtoul(PQgetvalue(r, (int) i, 4), NULL, 10), PQgetvalue(r, (int) i, 5));
        }
        PQclear(TAKE_PTR(r));

        k = pg_exec(pg, &r, err,
                    "SELECT a.attname FROM pg_index i"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
                    " WHERE i.indrelid = $1::oid AND i.indisvalid AND i.indpred IS NULL",
                    1, p);
        if (k)
                return k;
        t->n_indexed_first_columns = (size_t) PQntuples(r);
        t->indexed_first_columns = xcalloc(t->n_indexed_first_columns, sizeof(char *));
        for (size_t i = 0; i < t->n_indexed_first_columns; i++)
                t->indexed_first_columns[i] = xstrdup(PQgetvalue(r, (int) i, 0));
        PQclear(TAKE_PTR(r));

        /* Foreign keys of other tables (and this one) that reference this table. Clones of a
         * partitioned table's constraint (conparentid <> 0) are represented by their parent. */
        k = pg_exec(pg, &r, err,
                    "SELECT con.conname, con.conrelid, cn.nspname, cc.relname, con.confdeltype,"
                    " ca.attname, pa.attname"
                    " FROM pg_constraint con"
                    " JOIN pg_class cc ON cc.oid = con.conrelid"
                    " JOIN pg_namespace cn ON cn.oid = cc.relnamespace"
                    " CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(ck, pk, ord)"
                    " JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.ck"
                    " JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.pk"
                    " WHERE con.contype = 'f' AND con.confrelid = $1::oid AND con.conparentid = 0"
                    " ORDER BY con.conrelid, con.conname, k.ord",
                    1, p);
        if (k)
                return k;
        for (int i = 0; i < PQntuples(r); i++) {
                const char *name = PQgetvalue(r, i, 0);
                uint32_t child = (uint32_t) strtoul(PQgetvalue(r, i, 1), NULL, 10);
                CatForeignKey *fk = t->n_referenced_by ? &t->referenced_by[t->n_referenced_by - 1] : NULL;
                if (!fk || fk->child_oid != child || !streq(fk->name, name)) {
                        t->referenced_by = xreallocarray(t->referenced_by, t->n_referenced_by + 1, sizeof(CatForeignKey));
                        fk = &t->referenced_by[t->n_referenced_by++];
                        *fk = (CatForeignKey) {
                                .name = xstrdup(name),
                                .child_oid = child,
                                .child = { .schema = xstrdup(PQgetvalue(r, i, 2)), .name = xstrdup(PQgetvalue(r, i, 3)) },
                                .on_delete = PQgetvalue(r, i, 4)[0],
                        };
                }
                fk->child_columns = xreallocarray(fk->child_columns, fk->n_columns + 1, sizeof(char *));
                fk->parent_columns = xreallocarray(fk->parent_columns, fk->n_columns + 1, sizeof(char *));
                fk->child_columns[fk->n_columns] = xstrdup(PQgetvalue(r, i, 5));
                fk->parent_columns[fk->n_columns] = xstrdup(PQgetvalue(r, i, 6));
                fk->n_columns++;
        }

        k = catalog_load_untrusted(pg, &t, 1, err);
        if (k)
                return k;

        *ret = TAKE_PTR(t);
        return 0;
}

/* For each root table ($1, an array of oids) and its partitions: enabled user triggers whose
 * function, rules whose table, and row-level security (with policies, or forced) whose table
 * belongs to a role that is neither current_user nor a superuser. A trigger cloned from one on a
 * partitioned table of the same tree is listed once, on that table. Row-level security does not
 * apply to a role that bypasses it. tgtype: 4 INSERT, 8 DELETE, 16 UPDATE. */
static const char untrusted_sql[] =
        "WITH me AS (SELECT oid, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user),"
        " rels AS (SELECT r.root, t.relid FROM unnest($1::oid[]) AS r(root),"
        "          LATERAL (SELECT r.root AS relid UNION SELECT p.relid FROM pg_partition_tree(r.root) p) t),"
        " tbl AS (SELECT rels.root, c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS rel, c.relowner,"
        "                c.relrowsecurity, c.relforcerowsecurity"
        "           FROM rels JOIN pg_class c ON c.oid = rels.relid JOIN pg_namespace n ON n.oid = c.relnamespace),"
        " untrusted AS (SELECT o.oid, o.rolname FROM pg_roles o, me WHERE NOT o.rolsuper AND o.oid <> me.oid)"
        " SELECT tbl.root, 't', tbl.rel, tg.tgname::text,"
        "        quote_ident(pn.nspname) || '.' || quote_ident(p.proname) || '()', u.rolname::text,"
        "        (CASE WHEN tg.tgtype::int & 8 <> 0 THEN 1 ELSE 0 END) | (CASE WHEN tg.tgtype::int & 16 <> 0 THEN 2 ELSE 0 END)"
        "   FROM tbl JOIN pg_trigger tg ON tg.tgrelid = tbl.oid JOIN pg_proc p ON p.oid = tg.tgfoid"
        "   JOIN pg_namespace pn ON pn.oid = p.pronamespace JOIN untrusted u ON u.oid = p.proowner"
        "  WHERE NOT tg.tgisinternal AND tg.tgenabled IN ('O', 'A')"
        "    AND NOT EXISTS (SELECT 1 FROM pg_trigger pt JOIN rels r2 ON r2.relid = pt.tgrelid"
        "                     WHERE pt.oid = tg.tgparentid AND r2.root = tbl.root)"
        " UNION ALL"
        " SELECT tbl.root, 'r', tbl.rel, w.rulename::text, NULL, u.rolname::text,"
        "        CASE w.ev_type WHEN '4' THEN 1 WHEN '2' THEN 2 ELSE 0 END"
        "   FROM tbl JOIN pg_rewrite w ON w.ev_class = tbl.oid JOIN untrusted u ON u.oid = tbl.relowner"
        "  WHERE w.rulename <> '_RETURN' AND w.ev_enabled IN ('O', 'A')"
        " UNION ALL"
        " SELECT tbl.root, 'p', tbl.rel,"
        "        coalesce((SELECT string_agg(quote_ident(pol.polname), ', ' ORDER BY pol.polname)"
        "                    FROM pg_policy pol WHERE pol.polrelid = tbl.oid), ''), NULL, u.rolname::text, 7"
        "   FROM tbl JOIN untrusted u ON u.oid = tbl.relowner, me"
        "  WHERE tbl.relrowsecurity AND NOT me.rolbypassrls"
        "    AND (tbl.relforcerowsecurity OR EXISTS (SELECT 1 FROM pg_policy pol WHERE pol.polrelid = tbl.oid))"
        " ORDER BY 1, 2 DESC, 3, 4";

int catalog_load_untrusted(Pg *pg, CatTable *const *tables, size_t n, PgError *err) {
        if (n == 0)
                return 0;
        StrBuf b = {};
        strbuf_append(&b, "{");
        for (size_t i = 0; i < n; i++)
                strbuf_appendf(&b, "%s%u", i ? "," : "", tables[i]->oid);
        strbuf_append(&b, "}");
        _cleanup_pgresult_ PGresult *r = NULL;
        const char *p[] = { strbuf_str(&b) };
        int k = pg_exec(pg, &r, err, untrusted_sql, 1, p);
        strbuf_done(&b);
        if (k)
                return k;
        for (size_t i = 0; i < n; i++)
                untrusted_free(tables[i]);
        for (int row = 0; row < PQntuples(r); row++) {
                uint32_t root = (uint32_t) strtoul(PQgetvalue(r, row, 0), NULL, 10);
                for (size_t i = 0; i < n; i++) {
                        CatTable *t = tables[i];
                        if (t->oid != root)
                                continue;
                        char kind = PQgetvalue(r, row, 1)[0];
                        t->untrusted = xreallocarray(t->untrusted, t->n_untrusted + 1, sizeof(CatUntrusted));
                        t->untrusted[t->n_untrusted++] = (CatUntrusted) {
                                .kind = kind == 't' ? CAT_CODE_TRIGGER : kind == 'r' ? CAT_CODE_RULE : CAT_CODE_RLS,
                                .relation = xstrdup(PQgetvalue(r, row, 2)),
                                .name = xstrdup(PQgetvalue(r, row, 3)),
                                .function = PQgetisnull(r, row, 4) ? NULL : xstrdup(PQgetvalue(r, row, 4)),
                                .owner = xstrdup(PQgetvalue(r, row, 5)),
                                .events = (unsigned) strtoul(PQgetvalue(r, row, 6), NULL, 10),
                        };
                }
        }
        return 0;
}

int catalog_load_table(Pg *pg, const QualifiedName *name, CatTable **ret, PgError *err) {
        _cleanup_free_ char *q = qualified_name_quote(name);
        _cleanup_free_ char *oid = NULL;
        const char *p[] = { q };
        int k = pg_value(pg, &oid, err,
                         "SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')", 1, p);
        if (k == PG_ERR_OTHER && err && streq_ptr(err->primary, "query returned no rows"))
                k = -1;
        if (k < 0 || (k == 0 && !oid)) {
                _cleanup_free_ char *d = qualified_name_display(name);
                pg_error_set(err, "42P01", NULL,
                             "Check the table name in the policy, the database given with -d, and the search_path.",
                             "relation \"%s\" does not exist", d);
                return PG_ERR_UNDEFINED;
        }
        if (k)
                return k;
        k = load_by_oid_text(pg, oid, ret, err);
        if (k < 0) {
                _cleanup_free_ char *d = qualified_name_display(name);
                pg_error_set(err, "42P01", NULL, NULL, "relation \"%s\" does not exist", d);
                return PG_ERR_UNDEFINED;
        }
        return k;
}

int catalog_load_table_oid(Pg *pg, uint32_t oid, CatTable **ret, PgError *err) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%u", oid);
        int k = load_by_oid_text(pg, buf, ret, err);
        if (k < 0) {
                pg_error_set(err, "42P01", NULL, NULL, "relation with OID %u does not exist", oid);
                return PG_ERR_UNDEFINED;
        }
        return k;
}

const CatColumn *cat_table_column(const CatTable *t, const char *name) {
        for (size_t i = 0; i < t->n_columns; i++)
                if (streq(t->columns[i].name, name))
                        return &t->columns[i];
        return NULL;
}

bool cat_table_has_index_on(const CatTable *t, const char *column) {
        for (size_t i = 0; i < t->n_indexed_first_columns; i++)
                if (streq(t->indexed_first_columns[i], column))
                        return true;
        return false;
}

int catalog_row_estimate(Pg *pg, const CatTable *t, int64_t *ret, bool *analysed, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        char oid[16];
        snprintf(oid, sizeof(oid), "%u", t->oid);
        const char *p[] = { oid };
        int k = pg_exec(pg, &r, err,
                        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, coalesce(bool_or(c.reltuples < 0), false)"
                        " FROM pg_class c WHERE c.relkind = 'r' AND (c.oid = $1::oid"
                        " OR c.oid IN (SELECT pt.relid FROM pg_partition_tree($1::oid) pt WHERE pt.isleaf))",
                        1, p);
        if (k)
                return k;
        bool unknown = streq(PQgetvalue(r, 0, 1), "t");
        if (analysed)
                *analysed = !unknown;
        if (!unknown) {
                *ret = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                return 0;
        }
        /* Never analysed: count exactly rather than read a missing estimate as zero. */
        _cleanup_free_ char *q = qualified_name_quote(&t->name);
        _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s", q);
        _cleanup_free_ char *v = NULL;
        k = pg_value(pg, &v, err, sql, 0, NULL);
        if (k)
                return k;
        *ret = strtoll(v, NULL, 10);
        return 0;
}

int catalog_primary_key(Pg *pg, uint32_t oid, char ***ret, size_t *n, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        char buf[16];
        snprintf(buf, sizeof(buf), "%u", oid);
        const char *p[] = { buf };
        int k = pg_exec(pg, &r, err,
                        "SELECT a.attname FROM pg_index i"
                        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
                        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                        " WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord",
                        1, p);
        if (k)
                return k;
        *n = (size_t) PQntuples(r);
        *ret = xcalloc(*n ? *n : 1, sizeof(char *));
        for (size_t i = 0; i < *n; i++)
                (*ret)[i] = xstrdup(PQgetvalue(r, (int) i, 0));
        return 0;
}

/* ---- the tables a policy needs ---- */

static int load_into(Pg *pg, CatCache *cache, const QualifiedName *name, PgError *err) {
        CatTable *t = NULL;
        int k = catalog_load_table(pg, name, &t, err);
        if (k == PG_ERR_UNDEFINED)
                return 0; /* reported per rule */
        if (k)
                return k;
        cat_cache_add(cache, t);
        return 0;
}

/* Tables reachable from t through ON DELETE CASCADE / SET NULL / SET DEFAULT, a few levels. */
static int load_referencing(Pg *pg, CatCache *cache, const CatTable *t, unsigned depth, PgError *err) {
        if (depth >= 5)
                return 0;
        uint32_t oid = t->oid;
        for (size_t i = 0;; i++) {
                const CatTable *cur = cat_cache_find_oid(cache, oid);
                if (!cur || i >= cur->n_referenced_by)
                        break;
                const CatForeignKey *fk = &cur->referenced_by[i];
                if (fk->on_delete == 'a' || fk->on_delete == 'r')
                        continue;
                if (cat_cache_find_oid(cache, fk->child_oid))
                        continue;
                uint32_t child_oid = fk->child_oid;
                CatTable *c = NULL;
                int k = catalog_load_table_oid(pg, child_oid, &c, err);
                if (k)
                        return k;
                const CatTable *added = cat_cache_add(cache, c);
                k = load_referencing(pg, cache, added, depth + 1, err);
                if (k)
                        return k;
        }
        return 0;
}

int catalog_load_policy(Pg *pg, const Policy *p, CatCache *cache, PgError *err) {
        int k;
        for (size_t i = 0; i < p->n_rules; i++)
                if (!cat_cache_find_name(cache, &p->rules[i].table) && (k = load_into(pg, cache, &p->rules[i].table, err)))
                        return k;
        for (size_t i = 0; i < p->n_holds; i++)
                if (!p->holds[i].registry && !cat_cache_find_name(cache, &p->holds[i].table) &&
                    (k = load_into(pg, cache, &p->holds[i].table, err)))
                        return k;
        for (size_t i = 0; i < p->n_subjects; i++)
                if (!cat_cache_find_name(cache, &p->subjects[i].table) &&
                    (k = load_into(pg, cache, &p->subjects[i].table, err)))
                        return k;
        size_t n = cache->n_tables;
        for (size_t i = 0; i < n; i++)
                if ((k = load_referencing(pg, cache, cache->tables[i], 0, err)))
                        return k;
        return 0;
}
