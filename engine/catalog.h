/* catalog.h — what PostgreSQL's catalog says about the tables a policy names: columns and
 * types, indexes on age columns, partitions, foreign keys, size estimates, privileges.
 * Read-only: never changes the database. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "pg.h"
#include "policy.h"

typedef enum ColumnKind {
        COLKIND_OTHER,
        COLKIND_TIMESTAMPTZ,
        COLKIND_TIMESTAMP,
        COLKIND_DATE,
        COLKIND_INET,
        COLKIND_CIDR,
        COLKIND_TEXT, /* text, varchar, bpchar, citext and other string types */
} ColumnKind;

typedef struct CatColumn {
        char *name;
        char *type; /* format_type() */
        ColumnKind kind;
        bool not_null;
        int attnum;
} CatColumn;

typedef struct CatForeignKey {
        char *name;
        uint32_t child_oid;
        QualifiedName child; /* the referencing table */
        char **child_columns;
        char **parent_columns;
        size_t n_columns;
        char on_delete; /* 'a' no action, 'r' restrict, 'c' cascade, 'n' set null, 'd' set default */
        bool to_partition; /* declared to refer to one partition of the table alone */
} CatForeignKey;

/* Code that PostgreSQL would run as the engine's role when it changes or reads a table, and that
 * belongs to another role: a trigger whose function's owner, a rule (pg_rewrite, other than a
 * view's _RETURN) or row-level security whose table's owner is neither the connected role
 * (current_user) nor a superuser. Disabled triggers and rules are not listed. */
typedef enum CatCodeKind {
        CAT_CODE_TRIGGER,
        CAT_CODE_RULE,
        CAT_CODE_RLS,
} CatCodeKind;

#define CAT_EVENT_DELETE 1u /* fires on DELETE (a rule's delete, a cascade) */
#define CAT_EVENT_UPDATE 2u /* fires on UPDATE (anonymisation, ON DELETE SET NULL / SET DEFAULT) */
#define CAT_EVENT_READ 4u   /* applies to every statement, reads included (row-level security) */

typedef struct CatUntrusted {
        CatCodeKind kind;
        char *relation; /* quoted schema.name of the table that has it: this table or one of its partitions */
        char *name;     /* trigger or rule name; row-level security: its policies' names ("" for none) */
        char *function; /* trigger: its function, schema.name(); else NULL */
        char *owner;    /* the role that owns the code */
        unsigned events; /* CAT_EVENT_* */
} CatUntrusted;

/* What Citus makes of a table (pg_dist_partition), CAT_DIST_NONE without Citus. */
typedef enum CatDistKind {
        CAT_DIST_NONE,        /* no Citus, or a plain table of the coordinator */
        CAT_DIST_DISTRIBUTED, /* hash (or range/append) distributed: shards on the workers */
        CAT_DIST_REFERENCE,   /* a copy on every node */
        CAT_DIST_CITUS_LOCAL, /* a Citus local table (in Citus's metadata, on the coordinator only) */
        CAT_DIST_SINGLE_SHARD, /* distributed without a distribution column (schema-based sharding) */
} CatDistKind;

typedef struct CatTable {
        uint32_t oid;
        QualifiedName name; /* schema always set */
        char relkind;       /* 'r' table, 'p' partitioned */
        CatColumn *columns;
        size_t n_columns;
        double reltuples; /* < 0: never analysed */
        char **indexed_first_columns; /* first key column of every valid index */
        size_t n_indexed_first_columns;
        /* range partitioning on one column */
        char *partition_column; /* NULL when not range-partitioned on a single column */
        CatForeignKey *referenced_by; /* foreign keys of other tables pointing here */
        size_t n_referenced_by;
        bool can_select, can_delete, can_update;
        /* Partitions or inheritance children (pg_class.relhassubclass, which may stay true after
         * the last one went: a reason to be careful, never to be less so); a partition itself. */
        bool has_children, is_partition;
        /* An UPDATE of it may write other values than the statement's: an enabled BEFORE UPDATE
         * row trigger (of any role) on it or one of its partitions, or a rule. */
        bool rewrites_update;
        CatUntrusted *untrusted; /* code of another role on it or its partitions (catalog_load_untrusted) */
        size_t n_untrusted;
        /* what the list above was read from, as one string (catalog.c, UNTRUSTED_FINGERPRINT_SQL),
         * read in the same statement; NULL: not read */
        char *untrusted_seen;
        bool citus;         /* the database has Citus (pg_dist_partition exists) */
        CatDistKind dist;   /* Citus: what kind of table it is */
        char *dist_column;  /* CAT_DIST_DISTRIBUTED: the distribution column; else NULL */
        uint32_t colocation_id; /* Citus colocation group (0: none) */
} CatTable;

/* Loads a table. Returns 0; PG_ERR_UNDEFINED with *err ("relation ... does not exist") when
 * missing; OUTCOME_TABLE_GONE with *err when it was dropped while it was read; another
 * PgErrorClass on failure. */
int catalog_load_table(Pg *pg, const QualifiedName *name, CatTable **ret, PgError *err);
/* Same by oid (used while walking foreign keys). */
int catalog_load_table_oid(Pg *pg, uint32_t oid, CatTable **ret, PgError *err);
void cat_table_free(CatTable *t);
/* (Re)loads the untrusted code of each table (and of its partitions), in one query: the catalog
 * loads it with the table; enforcement loads it again right before each rule. */
int catalog_load_untrusted(Pg *pg, CatTable *const *tables, size_t n, PgError *err);
/* Whether the catalog still says of each table (and its partitions) exactly what its untrusted
 * list was read from (*same), by one cheap query: then the list loaded before stands, as a new
 * catalog_load_untrusted() would give it. *same is false when a table was never read that way.
 * Returns 0 or a PgErrorClass. */
int catalog_untrusted_unchanged(Pg *pg, CatTable *const *tables, size_t n, bool *same, PgError *err);
/* catalog_untrusted_unchanged() in two halves, for a pipeline (pg_pipeline()): the statement into
 * *st (true), or false when no statement is needed, *same then being the answer; and, after the
 * statement ran, the answer from its result (f->result). catalog_fingerprint_done() frees *f. */
typedef struct CatFingerprint {
        char *oids;
        const char *params[1];
        PGresult *result;
} CatFingerprint;
bool catalog_untrusted_stmt(Pg *pg, CatTable *const *tables, size_t n, CatFingerprint *f, PgPipeStmt *st, bool *same);
bool catalog_untrusted_same(CatTable *const *tables, size_t n, const CatFingerprint *f);
void catalog_fingerprint_done(CatFingerprint *f);
const char *cat_code_kind_to_string(CatCodeKind k); /* "trigger", "rule", "row-level security" */
static inline void cat_table_freep(CatTable **t) {
        cat_table_free(*t);
}

const CatColumn *cat_table_column(const CatTable *t, const char *name);
/* "local", "distributed", "reference", "Citus local", "single-shard distributed" */
const char *cat_dist_kind_to_string(CatDistKind k);
/* Its rows live on Citus's workers or in copies (distributed, single-shard, reference): a ctid names
 * no row there, and a statement that joins a coordinator's table is not pushed down. */
static inline bool cat_table_is_citus(const CatTable *t) {
        return t->dist == CAT_DIST_DISTRIBUTED || t->dist == CAT_DIST_REFERENCE || t->dist == CAT_DIST_SINGLE_SHARD;
}
bool cat_table_has_index_on(const CatTable *t, const char *column);
const char *column_kind_to_string(ColumnKind k);

/* The primary key's columns, in key order (*n = 0: the table has none). Caller frees. */
int catalog_primary_key(Pg *pg, uint32_t oid, char ***ret, size_t *n, PgError *err);

/* Row count estimate: reltuples (summed over partitions); when the table (or a partition)
 * was never analysed, an exact count(*) — a missing estimate is never read as zero. */
int catalog_row_estimate(Pg *pg, const CatTable *t, int64_t *ret, bool *analysed, PgError *err);

/* A cache of catalog facts for every table a plan may need (the rule's table, tables of
 * other rules and holds, tables reached through foreign keys). Owned by the caller. */
typedef struct CatCache {
        CatTable **tables;
        size_t n_tables;
        /* A rule dropped a partition: facts of other tables may name it (foreign keys declared
         * on partitions, cascade children). rule_run_start() loads the catalog again first. */
        bool stale;
} CatCache;

const CatTable *cat_cache_find_oid(const CatCache *c, uint32_t oid);
const CatTable *cat_cache_find_name(const CatCache *c, const QualifiedName *name);
void cat_cache_done(CatCache *c);
/* Adds (takes ownership); ignores duplicates (frees t). */
const CatTable *cat_cache_add(CatCache *c, CatTable *t);

/* Loads catalog facts for every table a policy's rules, holds and subjects need, and the tables
 * their deletions cascade into, into cache. Returns 0, or a PgErrorClass or OUTCOME_TABLE_GONE
 * (first failure); a missing table is left out and reported per rule by plan_build(). */
int catalog_load_policy(Pg *pg, const Policy *p, CatCache *cache, PgError *err);
