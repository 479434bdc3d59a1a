/* explain.h — why is a row still here, and when will it go: for one row, every rule that covers
 * its table, the facts PostgreSQL gives (age, cutoffs, holds, cascades, references, other rules),
 * the state and decision in words, and the moment it will be deleted or anonymised if nothing
 * changes. Reads only, through plan_explain()'s statements; never changes a row, never prints
 * (cmd-explain.c does), and never keeps a column value but the key and the dates. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "pg.h"
#include "plan.h"
#include "policy.h"

/* A subject's rows in one table: at most this many are explained. */
#define EXPLAIN_SUBJECT_ROWS_MAX 1000

/* An active operator hold of the registry on the row's subject. */
typedef struct ExplainRegistryRow {
        char *id, *reason, *placed_by, *placed_at, *until;
} ExplainRegistryRow;

typedef struct ExplainHold {
        const Hold *hold;
        bool applies, forever;
        char *until;    /* registry: latest --until of the active holds; derived: when the evidence lapses */
        char *evidence; /* derived: youngest evidence date */
        char *cutoff;   /* derived: the hold's own cutoff */
        ExplainRegistryRow *rows;
        size_t n_rows;
} ExplainHold;

typedef struct ExplainFlag {
        char *name; /* table or rule */
        bool on;
} ExplainFlag;

/* A `delete_with:` entry of a delete rule, for the row: the row of `table` it refers to. */
typedef struct ExplainWith {
        char *table;
        char *key;  /* that row's key as text; NULL: it refers to none */
        bool alone; /* no other row refers to it: it goes with this row */
} ExplainWith;

typedef struct ExplainRule {
        const Rule *rule;
        char *error; /* the rule cannot be planned or its where is refused: nothing else is set */
        char *cutoff, *overdue_cutoff;
        char *age, *due_at, *overdue_at;
        bool age_due, matches, covered, done, overdue_age, while_held_done;
        ExplainHold *holds;
        size_t n_holds;
        ExplainFlag *cascade, *others, *refs;
        size_t n_cascade, n_others, n_refs;
        ExplainWith *with;
        size_t n_with;

        bool held, kept_by_rule, referenced, overdue;
        const char *state; /* never, not_covered, anonymised, held, kept, referenced, due, not_due, error */
        char *decision;
        /* when it will be deleted or anonymised if nothing changes */
        bool own_known;   /* without looking at other rules */
        char *own_at;     /* PostgreSQL's greatest() of the candidates; NULL when never or unknown */
        char *own_note;   /* why unknown or never */
        bool never;       /* never (age NULL, where does not match, already anonymised) */
        bool known;
        char *action_at;
        char *note;
} ExplainRule;

typedef struct ExplainRow {
        const CatTable *table;
        char **pk;  /* key columns, in key order */
        char **key; /* the row's key values as text */
        size_t n_key;
        ExplainRule *rules;
        size_t n_rules;
} ExplainRow;

/* Explains row (table, pk and key set; rules filled here) for every rule of the policy on its
 * table. A rule that cannot be planned gets ->error, not a failure. Call inside one READ ONLY
 * REPEATABLE READ transaction. Returns 0 or a PgErrorClass with *err. */
int explain_row(Pg *pg, const Policy *policy, CatCache *cache, ExplainRow *row, PgError *err);
void explain_row_done(ExplainRow *row);

/* Where to look for rows: a table (and its key columns), and in subject mode the column that
 * holds the subject's key. */
typedef struct ExplainTarget {
        const CatTable *table;
        char **pk;
        size_t n_pk;
        const char *column; /* subject mode: the column holding the subject key; NULL: the key */
        const CatForeignKey *via; /* `referenced_by:` rules: the rows of `via->child` refer to the table's
                                   * rows through it, and `column` is theirs; NULL otherwise */
} ExplainTarget;

/* The targets: the table `table` (subject NULL), or the subject's table, every rule table
 * with subject_column, and every rule table whose rows the subject's reach through
 * `referenced_by:`. Every target gets its primary-key columns (n_pk 0: it has none).
 * Returns 0 or a PgErrorClass with *err (PG_ERR_UNDEFINED: no such table). */
int explain_targets(Pg *pg, const Policy *policy, CatCache *cache, const Subject *subject, const QualifiedName *table,
                    ExplainTarget **ret, size_t *n, PgError *err);
void explain_targets_free(ExplainTarget *t, size_t n);
/* The keys (text, one column per key column) of the target's rows with this key (one value per
 * key column), or in subject mode this subject key (one value), at most `limit` rows. Returns 0
 * or a PgErrorClass with *err (class 22: the key does not fit the column's type). */
int explain_target_keys(Pg *pg, const ExplainTarget *t, char *const *key, unsigned limit, PGresult **ret, PgError *err);
/* "col1 method, col2 method": a rule's columns and their methods in words; caller frees. */
char *explain_columns_text(const ColumnMethod *c, size_t n);
