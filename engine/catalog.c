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
        free(t->untrusted_seen);
        t->untrusted_seen = NULL;
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

/* The tables of `n` oids, set-based: each kind of fact is one query for all of them (= ANY of an
 * oid[]), not one per table, so a policy of fifty rules reads the catalog in a handful of round
 * trips. A row belongs to its table by oid; facts of a table come in the order a query for that
 * table alone gave them. */
typedef struct Many {
        const uint32_t *oids;
        size_t n;
        CatTable **t; /* n entries; NULL: no table has that oid (dropped meanwhile) */
        char *array;  /* the oids as an oid[] literal */
} Many;

static CatTable *many_find(const Many *m, const char *oidtext) {
        uint32_t oid = (uint32_t) strtoul(oidtext, NULL, 10);
        for (size_t i = 0; i < m->n; i++)
                if (m->t[i] && m->t[i]->oid == oid)
                        return m->t[i];
        return NULL;
}

/* One of the set-based reads: sql takes the tables' oids as $1 (oid[]). */
static int many_exec(Pg *pg, const Many *m, PGresult **r, PgError *err, const char *sql) {
        const char *p[] = { m->array };
        return pg_exec(pg, r, err, sql, 1, p);
}

static int many_facts(Pg *pg, Many *m, bool *citus, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = many_exec(pg, m, &r, err,
                        "SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples,"
                        " has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'DELETE'),"
                        " has_table_privilege(c.oid, 'UPDATE'),"
                        " (SELECT a.attname FROM pg_partitioned_table pt"
                        "    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]"
                        "   WHERE pt.partrelid = c.oid AND pt.partstrat = 'r' AND pt.partnatts = 1),"
                        " to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL,"
                        " c.relhassubclass OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid),"
                        " c.relispartition,"
                        " EXISTS (SELECT 1 FROM pg_class r WHERE (r.oid = c.oid OR r.oid IN (SELECT pt.relid FROM pg_partition_tree(c.oid) pt))"
                        "  AND (r.relhasrules OR EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = r.oid AND NOT tg.tgisinternal"
                        "   AND tg.tgenabled <> 'D' AND tg.tgtype::int & 3 = 3 AND tg.tgtype::int & 16 <> 0)))"
                        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.oid = ANY($1::oid[])");
        if (k)
                return k;
        for (int row = 0; row < PQntuples(r); row++) {
                uint32_t oid = (uint32_t) strtoul(PQgetvalue(r, row, 0), NULL, 10);
                for (size_t i = 0; i < m->n; i++) {
                        if (m->oids[i] != oid || m->t[i])
                                continue;
                        CatTable *t = m->t[i] = xcalloc(1, sizeof(CatTable));
                        t->oid = oid;
                        t->name.schema = xstrdup(PQgetvalue(r, row, 1));
                        t->name.name = xstrdup(PQgetvalue(r, row, 2));
                        t->relkind = PQgetvalue(r, row, 3)[0];
                        t->reltuples = strtod(PQgetvalue(r, row, 4), NULL);
                        t->can_select = streq(PQgetvalue(r, row, 5), "t");
                        t->can_delete = streq(PQgetvalue(r, row, 6), "t");
                        t->can_update = streq(PQgetvalue(r, row, 7), "t");
                        if (!PQgetisnull(r, row, 8))
                                t->partition_column = xstrdup(PQgetvalue(r, row, 8));
                        t->citus = streq(PQgetvalue(r, row, 9), "t");
                        t->has_children = streq(PQgetvalue(r, row, 10), "t");
                        t->is_partition = streq(PQgetvalue(r, row, 11), "t");
                        t->rewrites_update = streq(PQgetvalue(r, row, 12), "t");
                        *citus = *citus || t->citus;
                        break;
                }
        }
        return 0;
}

/* Citus: each table's kind and distribution column. partkey is the distribution column as a Var
 * node's text ({VAR :varno 1 :varattno N ...}); pg_dist_partition is readable by every role,
 * Citus's functions need not be. */
static int many_citus(Pg *pg, Many *m, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = many_exec(pg, m, &r, err,
                        "SELECT d.logicalrelid::oid, d.partmethod, d.repmodel, d.colocationid, a.attname"
                        " FROM pg_catalog.pg_dist_partition d"
                        " LEFT JOIN pg_attribute a ON a.attrelid = d.logicalrelid"
                        "  AND a.attnum = (regexp_match(d.partkey, ':varattno ([0-9]+)'))[1]::int"
                        " WHERE d.logicalrelid = ANY($1::oid[])");
        if (k)
                return k;
        for (int row = 0; row < PQntuples(r); row++) {
                CatTable *t = many_find(m, PQgetvalue(r, row, 0));
                if (!t)
                        continue;
                char method = PQgetvalue(r, row, 1)[0], model = PQgetvalue(r, row, 2)[0];
                t->colocation_id = (uint32_t) strtoul(PQgetvalue(r, row, 3), NULL, 10);
                if (method != 'n') {
                        t->dist = CAT_DIST_DISTRIBUTED;
                        if (!PQgetisnull(r, row, 4))
                                t->dist_column = xstrdup(PQgetvalue(r, row, 4));
                } else if (model == 't')
                        t->dist = CAT_DIST_REFERENCE;
                else if (t->colocation_id != 0)
                        t->dist = CAT_DIST_SINGLE_SHARD;
                else
                        t->dist = CAT_DIST_CITUS_LOCAL;
        }
        return 0;
}

static int many_columns(Pg *pg, Many *m, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = many_exec(pg, m, &r, err,
                        "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum,"
                        " CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,"
                        " (SELECT bt.typcategory FROM pg_type bt"
                        "   WHERE bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)"
                        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                        " WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped"
                        " ORDER BY a.attrelid, a.attnum");
        if (k)
                return k;
        for (int row = 0; row < PQntuples(r); row++) {
                CatTable *t = many_find(m, PQgetvalue(r, row, 0));
                if (!t)
                        continue;
                t->columns = xreallocarray(t->columns, t->n_columns + 1, sizeof(CatColumn));
                CatColumn *c = &t->columns[t->n_columns++];
                c->name = xstrdup(PQgetvalue(r, row, 1));
                c->type = xstrdup(PQgetvalue(r, row, 2));
                c->not_null = streq(PQgetvalue(r, row, 3), "t");
                c->attnum = atoi(PQgetvalue(r, row, 4));
                c->kind = kind_from((uint32_t) strtoul(PQgetvalue(r, row, 5), NULL, 10), PQgetvalue(r, row, 6));
        }
        return 0;
}

static int many_indexes(Pg *pg, Many *m, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = many_exec(pg, m, &r, err,
                        "SELECT i.indrelid, a.attname FROM pg_index i"
                        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
                        " WHERE i.indrelid = ANY($1::oid[]) AND i.indisvalid AND i.indpred IS NULL");
        if (k)
                return k;
        for (int row = 0; row < PQntuples(r); row++) {
                CatTable *t = many_find(m, PQgetvalue(r, row, 0));
                if (!t)
                        continue;
                t->indexed_first_columns = xreallocarray(t->indexed_first_columns, t->n_indexed_first_columns + 1,
                                                         sizeof(char *));
                t->indexed_first_columns[t->n_indexed_first_columns++] = xstrdup(PQgetvalue(r, row, 1));
        }
        return 0;
}

/* Foreign keys of other tables (and this one) that reference each table or one of its
 * partitions: a key declared to refer to one partition alone holds (NO ACTION), or is deleted
 * with (CASCADE), the rows of that partition as much as one to the whole table, and is listed on
 * the table. Clones of a partitioned table's constraint (conparentid <> 0), on either side, are
 * represented by their parent. Names by scalar subqueries, not joins: a join of eight relations
 * took 3 ms to plan in a warm session and 6-10 ms in a new one; this form plans in 0.3 ms. */
static int many_foreign_keys(Pg *pg, Many *m, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = many_exec(pg, m, &r, err,
                        "SELECT pt.root, con.conname, con.conrelid,"
                        " (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.oid = con.conrelid),"
                        " (SELECT c.relname FROM pg_class c WHERE c.oid = con.conrelid), con.confdeltype,"
                        " (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.conrelid AND a.attnum = k.ck),"
                        " (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attnum = k.pk),"
                        " con.confrelid <> pt.root"
                        " FROM (SELECT r.root, r.root AS relid FROM unnest($1::oid[]) AS r(root)"
                        " UNION SELECT r.root, p.relid FROM unnest($1::oid[]) AS r(root), pg_partition_tree(r.root) p) pt"
                        " JOIN pg_constraint con ON con.confrelid = pt.relid"
                        " CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(ck, pk, ord)"
                        " WHERE con.contype = 'f' AND con.conparentid = 0"
                        " ORDER BY pt.root, con.conrelid, con.conname, con.confrelid, k.ord");
        if (k)
                return k;
        for (int i = 0; i < PQntuples(r); i++) {
                CatTable *t = many_find(m, PQgetvalue(r, i, 0));
                if (!t)
                        continue;
                const char *name = PQgetvalue(r, i, 1);
                uint32_t child = (uint32_t) strtoul(PQgetvalue(r, i, 2), NULL, 10);
                CatForeignKey *fk = t->n_referenced_by ? &t->referenced_by[t->n_referenced_by - 1] : NULL;
                if (!fk || fk->child_oid != child || !streq(fk->name, name)) {
                        t->referenced_by = xreallocarray(t->referenced_by, t->n_referenced_by + 1, sizeof(CatForeignKey));
                        fk = &t->referenced_by[t->n_referenced_by++];
                        *fk = (CatForeignKey) {
                                .name = xstrdup(name),
                                .child_oid = child,
                                .child = { .schema = xstrdup(PQgetvalue(r, i, 3)), .name = xstrdup(PQgetvalue(r, i, 4)) },
                                .on_delete = PQgetvalue(r, i, 5)[0],
                                .to_partition = streq(PQgetvalue(r, i, 8), "t"),
                        };
                }
                fk->child_columns = xreallocarray(fk->child_columns, fk->n_columns + 1, sizeof(char *));
                fk->parent_columns = xreallocarray(fk->parent_columns, fk->n_columns + 1, sizeof(char *));
                fk->child_columns[fk->n_columns] = xstrdup(PQgetvalue(r, i, 6));
                fk->parent_columns[fk->n_columns] = xstrdup(PQgetvalue(r, i, 7));
                fk->n_columns++;
        }
        return 0;
}

static char *oid_array(const uint32_t *oids, size_t n) {
        StrBuf b = {};
        strbuf_append(&b, "{");
        for (size_t i = 0; i < n; i++)
                strbuf_appendf(&b, "%s%u", i ? "," : "", oids[i]);
        strbuf_append(&b, "}");
        return strbuf_steal(&b);
}

static int load_untrusted(Pg *pg, CatTable *const *tables, size_t n, bool fingerprints, PgError *err);

/* Loads the tables of oids[0..n) into ret[0..n) (NULL where no table has that oid any more).
 * Returns 0 or a PgErrorClass (then nothing is returned). */
static int load_many(Pg *pg, const uint32_t *oids, size_t n, CatTable **ret, PgError *err) {
        Many m = { .oids = oids, .n = n, .t = ret, .array = oid_array(oids, n) };
        for (size_t i = 0; i < n; i++)
                ret[i] = NULL;
        bool citus = false;
        int k = many_facts(pg, &m, &citus, err);
        if (k == 0 && citus)
                k = many_citus(pg, &m, err);
        if (k == 0)
                k = many_columns(pg, &m, err);
        if (k == 0)
                k = many_indexes(pg, &m, err);
        if (k == 0)
                k = many_foreign_keys(pg, &m, err);
        _cleanup_free_ CatTable **found = xcalloc(n ? n : 1, sizeof(CatTable *));
        size_t nf = 0;
        for (size_t i = 0; k == 0 && i < n; i++)
                if (ret[i])
                        found[nf++] = ret[i];
        if (k == 0)
                k = load_untrusted(pg, found, nf, false, err);
        free(m.array);
        if (k)
                for (size_t i = 0; i < n; i++) {
                        cat_table_free(ret[i]);
                        ret[i] = NULL;
                }
        return k;
}

/* One table by oid: 0, OUTCOME_TABLE_GONE with *err when no table has it, or a PgErrorClass. */
static int load_one(Pg *pg, uint32_t oid, CatTable **ret, PgError *err) {
        CatTable *t = NULL;
        int k = load_many(pg, &oid, 1, &t, err);
        if (k)
                return k;
        if (!t) {
                pg_error_set(err, NULL, NULL, "Run again: the catalog changed while it was read.",
                             "table with oid %u was dropped while its catalog was read", oid);
                return OUTCOME_TABLE_GONE;
        }
        *ret = t;
        return 0;
}

/* Everything the list of untrusted_sql for the root table u.root depends on, as one string that
 * changes whenever any of it does: the tree's tables (the root and its partitions) with their
 * names, owners, whether each owner is a superuser, row-level security, rules and policies; their
 * triggers (enabled or not, events, function, the function's owner and whether it is a
 * superuser); their rules (enabled or not, event); and the connected role (oid, superuser,
 * bypasses row-level security). CREATE OR REPLACE TRIGGER and RULE keep the oid and change the
 * events: tgtype and ev_type are in it. Computed in the same statement as the list (the same
 * snapshot), the list stands for as long as the string is unchanged (catalog_untrusted_unchanged()). */
#define UNTRUSTED_FINGERPRINT_SQL \
        "(SELECT concat_ws('|'," \
        "   coalesce((SELECT string_agg(concat_ws(':', tg.oid, tg.tgname, tg.tgenabled, tg.tgtype, tg.tgfoid, tg.tgparentid," \
        "                                        p.proowner, po.rolsuper), ',' ORDER BY tg.oid)" \
        "               FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid LEFT JOIN pg_roles po ON po.oid = p.proowner" \
        "              WHERE tg.tgrelid = ANY(x.a) AND NOT tg.tgisinternal), '')," \
        "   coalesce((SELECT string_agg(concat_ws(':', w.oid, w.rulename, w.ev_enabled, w.ev_type), ',' ORDER BY w.oid)" \
        "               FROM pg_rewrite w WHERE w.ev_class = ANY(x.a)), '')," \
        "   coalesce((SELECT string_agg(concat_ws(':', c.oid, c.relname, c.relnamespace, c.relowner, co.rolsuper," \
        "                                        c.relrowsecurity, c.relforcerowsecurity, c.relhasrules," \
        "                                        (SELECT string_agg(pol.polname, ',' ORDER BY pol.oid) FROM pg_policy pol" \
        "                                          WHERE pol.polrelid = c.oid)), ',' ORDER BY c.oid)" \
        "               FROM pg_class c LEFT JOIN pg_roles co ON co.oid = c.relowner WHERE c.oid = ANY(x.a)), '')," \
        "   coalesce((SELECT concat_ws(':', o.oid, o.rolsuper, o.rolbypassrls) FROM pg_roles o" \
        "              WHERE o.rolname = current_user), ''))" \
        "  FROM (SELECT array_agg(t.relid) AS a" \
        "          FROM (SELECT u.root AS relid UNION SELECT pt.relid FROM pg_partition_tree(u.root) pt) t) x)"

#define UNTRUSTED_FINGERPRINT_STATEMENT "retentiond_fingerprint"

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
        " UNION ALL"
        " SELECT u.root, 'f', " UNTRUSTED_FINGERPRINT_SQL ", NULL, NULL, NULL, 0 FROM unnest($1::oid[]) AS u(root)"
        " ORDER BY 1, 2 DESC, 3, 4";

/* For each root table ($1) its fingerprint (as untrusted_sql's 'f' rows) and whether any table
 * of its tree has a trigger, a rule or row-level security at all: pg_class says so
 * (relhastriggers and relhasrules stay true once set, until a VACUUM finds none; a foreign key's
 * internal triggers count too). Where no tree has any, untrusted_sql would list nothing but the
 * fingerprints: this one cheap statement stands for it (untrusted_sql took 9-13 ms to plan in a
 * new session, most of a run's catalog read). */
#define UNTRUSTED_MAYBE_SQL \
        "EXISTS (SELECT 1 FROM pg_class c" \
        "         WHERE (c.oid = u.root OR c.oid IN (SELECT pt.relid FROM pg_partition_tree(u.root) pt))" \
        "           AND (c.relhastriggers OR c.relhasrules OR c.relrowsecurity))"
static const char untrusted_quick_sql[] =
        "SELECT u.root, " UNTRUSTED_FINGERPRINT_SQL ", " UNTRUSTED_MAYBE_SQL " FROM unnest($1::oid[]) AS u(root)";
/* The same without the fingerprints, for the run's first read of the catalog: computing them
 * reads catalogs (pg_trigger, pg_rewrite, pg_policy, pg_roles) that a new session has not read
 * yet, 10 ms and more, and nothing compares them before a rule has rows to change. A table with
 * no fingerprint has its code read again, with one, before its rule changes a row
 * (untrusted_refresh(), untrusted_batch_verdict()). */
static const char untrusted_maybe_sql[] =
        "SELECT u.root, NULL, " UNTRUSTED_MAYBE_SQL " FROM unnest($1::oid[]) AS u(root)";

/* The quick answer (untrusted_quick_sql) in r: true, with every table's fingerprint set and no
 * code listed, when no tree has a trigger, rule or row-level security; false when untrusted_sql
 * must list them (nothing changed then). */
static bool untrusted_none(CatTable *const *tables, size_t n, const PGresult *r) {
        if (PQntuples(r) != (int) n)
                return false;
        for (int row = 0; row < PQntuples(r); row++)
                if (!streq(PQgetvalue(r, row, 2), "f"))
                        return false;
        for (size_t i = 0; i < n; i++)
                untrusted_free(tables[i]);
        /* The fingerprint is NULL in every row (untrusted_maybe_sql) or in none. */
        for (int row = 0; row < PQntuples(r) && !PQgetisnull(r, row, 1); row++) {
                uint32_t root = (uint32_t) strtoul(PQgetvalue(r, row, 0), NULL, 10);
                for (size_t i = 0; i < n; i++)
                        if (tables[i]->oid == root)
                                tables[i]->untrusted_seen = xstrdup(PQgetvalue(r, row, 1));
        }
        return true;
}

int catalog_load_untrusted(Pg *pg, CatTable *const *tables, size_t n, PgError *err) {
        return load_untrusted(pg, tables, n, true, err);
}

/* fingerprints: false only where nothing compares them yet (load_many()); a table with code of
 * another role gets its fingerprint either way (untrusted_sql). */
static int load_untrusted(Pg *pg, CatTable *const *tables, size_t n, bool fingerprints, PgError *err) {
        if (n == 0)
                return 0;
        StrBuf b = {};
        strbuf_append(&b, "{");
        for (size_t i = 0; i < n; i++)
                strbuf_appendf(&b, "%s%u", i ? "," : "", tables[i]->oid);
        strbuf_append(&b, "}");
        _cleanup_pgresult_ PGresult *q = NULL;
        const char *p[] = { strbuf_str(&b) };
        int k = pg_exec(pg, &q, err, fingerprints ? untrusted_quick_sql : untrusted_maybe_sql, 1, p);
        if (k == 0 && untrusted_none(tables, n, q)) {
                strbuf_done(&b);
                return 0;
        }
        _cleanup_pgresult_ PGresult *r = NULL;
        if (k == 0)
                k = pg_exec(pg, &r, err, untrusted_sql, 1, p);
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
                        if (kind == 'f') {
                                free(t->untrusted_seen);
                                t->untrusted_seen = xstrdup(PQgetvalue(r, row, 2));
                                continue;
                        }
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

/* The fingerprint statement's text: prepared once a session, as it runs before every rule and
 * batch, and planning it cost more than running it. The array goes through a subquery, so that no
 * plan knows its length: the generic plan then costs what a custom one does, and PostgreSQL keeps
 * it from the sixth execution on instead of planning every batch's check again (0.8 ms). */
#define UNTRUSTED_FINGERPRINT_QUERY "SELECT u.root, " UNTRUSTED_FINGERPRINT_SQL " FROM unnest((SELECT $1::oid[])) AS u(root)"

bool catalog_untrusted_stmt(Pg *pg, CatTable *const *tables, size_t n, CatFingerprint *f, PgPipeStmt *st, bool *same) {
        *f = (CatFingerprint) {};
        *same = n == 0;
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!tables[i]->untrusted_seen)
                        return false;
        StrBuf b = {};
        strbuf_append(&b, "{");
        for (size_t i = 0; i < n; i++)
                strbuf_appendf(&b, "%s%u", i ? "," : "", tables[i]->oid);
        strbuf_append(&b, "}");
        f->oids = strbuf_steal(&b);
        f->params[0] = f->oids;
        *st = (PgPipeStmt) { .name = UNTRUSTED_FINGERPRINT_STATEMENT, .sql = UNTRUSTED_FINGERPRINT_QUERY,
                             .prepared = &pg->fingerprint_prepared, .nparams = 1, .params = f->params,
                             .result = &f->result };
        return true;
}

bool catalog_untrusted_same(CatTable *const *tables, size_t n, const CatFingerprint *f) {
        const PGresult *r = f->result;
        if (!r || PQntuples(r) != (int) n)
                return false;
        for (int row = 0; row < PQntuples(r); row++) {
                uint32_t root = (uint32_t) strtoul(PQgetvalue(r, row, 0), NULL, 10);
                const CatTable *t = NULL;
                for (size_t i = 0; i < n && !t; i++)
                        if (tables[i]->oid == root)
                                t = tables[i];
                if (!t || !streq(t->untrusted_seen, PQgetvalue(r, row, 1)))
                        return false;
        }
        return true;
}

void catalog_fingerprint_done(CatFingerprint *f) {
        free(f->oids);
        if (f->result)
                PQclear(f->result);
        *f = (CatFingerprint) {};
}

int catalog_untrusted_unchanged(Pg *pg, CatTable *const *tables, size_t n, bool *same, PgError *err) {
        CatFingerprint f;
        PgPipeStmt st;
        if (!catalog_untrusted_stmt(pg, tables, n, &f, &st, same))
                return 0;
        int k = pg_exec_cached(pg, st.prepared, st.name, st.sql, st.nparams, st.params, st.result, err);
        if (k == 0)
                *same = catalog_untrusted_same(tables, n, &f);
        catalog_fingerprint_done(&f);
        return k;
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
        k = load_one(pg, (uint32_t) strtoul(oid, NULL, 10), ret, err);
        if (k < 0) {
                _cleanup_free_ char *d = qualified_name_display(name);
                pg_error_set(err, "42P01", NULL, NULL, "relation \"%s\" does not exist", d);
                return PG_ERR_UNDEFINED;
        }
        return k;
}

int catalog_load_table_oid(Pg *pg, uint32_t oid, CatTable **ret, PgError *err) {
        int k = load_one(pg, oid, ret, err);
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

/* Every name resolved in one query: ret[i] the oid of names[i] (0: no such table). */
static int resolve_names(Pg *pg, const QualifiedName *const *names, size_t n, uint32_t *ret, PgError *err) {
        char **quoted = xcalloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                quoted[i] = qualified_name_quote(names[i]);
                ret[i] = 0;
        }
        _cleanup_free_ char *arr = pg_text_array((const char *const *) quoted, n);
        for (size_t i = 0; i < n; i++)
                free(quoted[i]);
        free(quoted);
        _cleanup_pgresult_ PGresult *r = NULL;
        const char *p[] = { arr };
        int k = pg_exec(pg, &r, err,
                        "SELECT u.i, c.oid FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i)"
                        " JOIN pg_class c ON c.oid = to_regclass(u.name) AND c.relkind IN ('r', 'p')",
                        1, p);
        if (k)
                return k;
        for (int row = 0; row < PQntuples(r); row++) {
                long i = strtol(PQgetvalue(r, row, 0), NULL, 10);
                if (i >= 1 && (size_t) i <= n)
                        ret[i - 1] = (uint32_t) strtoul(PQgetvalue(r, row, 1), NULL, 10);
        }
        return 0;
}

/* The policy's own tables (rules, holds, subjects), in policy order: a name that matches a table
 * loaded before it (an unqualified name, cat_cache_find_name()) is not loaded again; a missing
 * table is left out (plan_build() reports it per rule). */
static int load_named(Pg *pg, const Policy *p, CatCache *cache, PgError *err) {
        size_t cap = 2 * p->n_rules + p->n_holds + p->n_subjects;
        for (size_t i = 0; i < p->n_rules; i++)
                cap += p->rules[i].n_delete_with;
        _cleanup_free_ const QualifiedName **names = xcalloc(cap ? cap : 1, sizeof(QualifiedName *));
        size_t n = 0;
        for (size_t i = 0; i < p->n_rules; i++)
                names[n++] = &p->rules[i].table;
        for (size_t i = 0; i < p->n_holds; i++)
                if (!p->holds[i].registry)
                        names[n++] = &p->holds[i].table;
        for (size_t i = 0; i < p->n_rules; i++)
                if (p->rules[i].has_referrer) /* the rows that refer to the rule's rows (referenced_by) */
                        names[n++] = &p->rules[i].referrer.table;
        for (size_t i = 0; i < p->n_rules; i++) /* the rows deleted with the rule's rows (delete_with) */
                for (size_t j = 0; j < p->rules[i].n_delete_with; j++)
                        names[n++] = &p->rules[i].delete_with[j].table;
        for (size_t i = 0; i < p->n_subjects; i++)
                names[n++] = &p->subjects[i].table;
        _cleanup_free_ uint32_t *oids = xcalloc(n ? n : 1, sizeof(uint32_t));
        int k = resolve_names(pg, names, n, oids, err);
        if (k)
                return k;
        /* Load each oid once, those the cache has already aside. */
        _cleanup_free_ uint32_t *want = xcalloc(n ? n : 1, sizeof(uint32_t));
        size_t nw = 0;
        for (size_t i = 0; i < n; i++) {
                bool dup = oids[i] == 0 || cat_cache_find_oid(cache, oids[i]);
                for (size_t j = 0; j < nw && !dup; j++)
                        dup = want[j] == oids[i];
                if (!dup)
                        want[nw++] = oids[i];
        }
        _cleanup_free_ CatTable **t = xcalloc(nw ? nw : 1, sizeof(CatTable *));
        k = nw ? load_many(pg, want, nw, t, err) : 0;
        if (k)
                return k;
        for (size_t i = 0; i < n; i++) {
                if (cat_cache_find_name(cache, names[i]))
                        continue;
                for (size_t j = 0; j < nw; j++)
                        if (t[j] && t[j]->oid == oids[i]) {
                                cat_cache_add(cache, TAKE_PTR(t[j]));
                                break;
                        }
        }
        for (size_t j = 0; j < nw; j++)
                cat_table_free(t[j]);
        return 0;
}

/* Tables reachable from the first `n` tables of the cache through ON DELETE CASCADE / SET NULL /
 * SET DEFAULT, up to five levels down, loaded one level at a time (one set of queries per
 * level). A child that disappeared meanwhile fails the load (PG_ERR_UNDEFINED). */
static int load_referencing(Pg *pg, CatCache *cache, size_t n, PgError *err) {
        size_t from = 0, to = n;
        for (unsigned depth = 0; depth < 5 && from < to; depth++) {
                uint32_t *want = NULL;
                size_t nw = 0;
                for (size_t i = from; i < to; i++) {
                        const CatTable *cur = cache->tables[i];
                        for (size_t f = 0; f < cur->n_referenced_by; f++) {
                                const CatForeignKey *fk = &cur->referenced_by[f];
                                bool dup = fk->on_delete == 'a' || fk->on_delete == 'r' ||
                                           cat_cache_find_oid(cache, fk->child_oid);
                                for (size_t j = 0; j < nw && !dup; j++)
                                        dup = want[j] == fk->child_oid;
                                if (dup)
                                        continue;
                                want = xreallocarray(want, nw + 1, sizeof(uint32_t));
                                want[nw++] = fk->child_oid;
                        }
                }
                _cleanup_free_ CatTable **t = xcalloc(nw ? nw : 1, sizeof(CatTable *));
                int k = nw ? load_many(pg, want, nw, t, err) : 0;
                for (size_t j = 0; k == 0 && j < nw; j++)
                        if (!t[j]) {
                                pg_error_set(err, "42P01", NULL, NULL, "relation with OID %u does not exist", want[j]);
                                k = PG_ERR_UNDEFINED;
                        }
                free(want);
                if (k) {
                        for (size_t j = 0; j < nw; j++)
                                cat_table_free(t[j]);
                        return k;
                }
                from = to;
                for (size_t j = 0; j < nw; j++)
                        cat_cache_add(cache, t[j]);
                to = cache->n_tables;
        }
        return 0;
}

/* Every table that refers to a table of a rule's `delete_with:` (whatever its ON DELETE): the rule
 * reads each of them for the rows that still refer to a row it would delete with its own. */
static int load_with_referrers(Pg *pg, const Policy *p, CatCache *cache, PgError *err) {
        _cleanup_free_ uint32_t *want = NULL;
        size_t nw = 0;
        for (size_t i = 0; i < p->n_rules; i++)
                for (size_t j = 0; j < p->rules[i].n_delete_with; j++) {
                        const CatTable *w = cat_cache_find_name(cache, &p->rules[i].delete_with[j].table);
                        for (size_t f = 0; w && f < w->n_referenced_by; f++) {
                                uint32_t o = w->referenced_by[f].child_oid;
                                bool dup = cat_cache_find_oid(cache, o) != NULL;
                                for (size_t x = 0; x < nw && !dup; x++)
                                        dup = want[x] == o;
                                if (dup)
                                        continue;
                                want = xreallocarray(want, nw + 1, sizeof(uint32_t));
                                want[nw++] = o;
                        }
                }
        if (nw == 0)
                return 0;
        _cleanup_free_ CatTable **t = xcalloc(nw, sizeof(CatTable *));
        int k = load_many(pg, want, nw, t, err);
        for (size_t j = 0; j < nw; j++)
                if (k == 0 && t[j])
                        cat_cache_add(cache, TAKE_PTR(t[j]));
                else
                        cat_table_free(t[j]);
        return k;
}

int catalog_load_policy(Pg *pg, const Policy *p, CatCache *cache, PgError *err) {
        int k = load_named(pg, p, cache, err);
        if (k)
                return k;
        k = load_with_referrers(pg, p, cache, err);
        if (k)
                return k;
        return load_referencing(pg, cache, cache->n_tables, err);
}
