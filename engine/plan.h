/* plan.h — a Rule plus catalog facts become the SQL of one rule run (every statement of Plan:
 * cutoffs, breaker, partitions, the fast path, batches, foreign-key isolation, while held,
 * tally) and of explain. Pure: builds text and parameter descriptions, never executes anything.
 * Identifiers are always quoted; values from the policy and the catalog are always parameters
 * (plan.c says what else is pasted). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "catalog.h"
#include "policy.h"

typedef enum ParamKind {
        PARAM_CONST,          /* value fixed at plan time (subject names, redact text) */
        PARAM_TIME,           /* a cutoff computed by PostgreSQL, slot index */
        PARAM_LAST_KEY,       /* keyset position */
        PARAM_LIMIT,          /* batch size */
        PARAM_OFFSET,         /* batch size - 1 */
        PARAM_UPPER,          /* fast path: the batch's range ends before this age value (NULL: no end) */
        PARAM_RULE_RUN,       /* retention.rule_runs.id */
        PARAM_BREAKER_LIMIT,  /* threshold + 1 */
        PARAM_CTID,           /* one row (foreign-key isolation) */
        PARAM_TABLEOID,       /* that row's partition */
        PARAM_KEY,            /* explain: the row's primary-key value, slot = key column index */
        PARAM_WIDTH,          /* Citus slices: the slice's width, microseconds (days for a date column) */
} ParamKind;

/* The hash method's key is never a parameter (the server may log parameters): a rule run that
 * hashes first fills this session's temporary table with the HMAC pads by COPY (rule-run.c), and
 * the anonymising expression reads them from it. */
#define HASH_KEY_TABLE "pg_temp.retentiond_hash_key"

typedef struct PlanParam {
        ParamKind kind;
        size_t slot;
        char *value; /* PARAM_CONST */
        char *label; /* for --sql output */
} PlanParam;

typedef struct PlanStatement {
        char *sql;
        PlanParam *params;
        size_t n_params;
        /* What the statement is for, in words ("the count of the rows left after the run"), for
         * an error that names it (a statement timeout); a static string, or NULL. */
        const char *purpose;
} PlanStatement;

typedef enum TimeSlotKind {
        SLOT_CUTOFF,     /* now() - rule.retain */
        SLOT_OVERDUE,    /* now() - rule.retain - rule.deadline */
        SLOT_HOLD,       /* now() - hold.retain */
        SLOT_OTHER_RULE, /* now() - other_rule.retain */
} TimeSlotKind;

typedef struct TimeSlot {
        TimeSlotKind kind;
        const void *ref; /* Hold* or Rule* */
        char *interval;  /* interval parameter text */
        char *interval2; /* subtracted too (overdue: deadline), or NULL */
        PeriodStart start; /* FROM_RECORD: now() - interval; else the last start of a day/month/year/fiscal
                            * year strictly before it (the retention runs from the end of the period) */
} TimeSlot;

/* The cluster's next transaction id as the statement's snapshot sees it (the newest finished
 * one + 1), for pacing: every batch reads it at the same point, inside its own transaction, so
 * that the ids of two batches compare; read after a COMMIT it would count the batch's own. */
#define NEXT_XID_SQL "pg_snapshot_xmax(pg_current_snapshot())::text"

typedef struct Plan {
        const Rule *rule;
        const CatTable *table;
        bool partitioned;
        bool has_age_index;
        ColumnKind age_kind;

        TimeSlot *slots;
        size_t n_slots;
        PlanStatement cutoffs; /* one row: text of every slot, in order */

        PlanStatement batch_bound;      /* fast path: the upper end of the next batch_size rows by age (NULL: the cutoff);
                                         * slices: last key + width (NULL: the cutoff), on the coordinator alone */
        PlanStatement batch_step;       /* fast path, not slices: last key + width (NULL: the cutoff), as slices' batch_bound:
                                         * the next range predicted from the rows' density, without the probe */
        /* Citus, a distributed table (slices): the fast path's batches are slices of the age span
         * [first due age, cutoff), cut by rule-run's slices.c from the rows' density, with no
         * statement that orders keys across shards. batch_start: once per phase, the first
         * actionable age from the last key on, their number, and the span to the cutoff in the
         * width's unit. while_held_start: the same over the held rows to anonymise. */
        bool slices;
        PlanStatement batch_start;
        PlanStatement batch_first; /* batch_start without the count (NULL): the breaker estimated it */
        PlanStatement while_held_start;
        PlanStatement batch_range;      /* fast path: DELETE/UPDATE of the actionable rows in [last key, upper end); count: command tag */
        /* batch_range returns one row, (rows written, rows anonymised as written), instead of its
         * command tag: an anonymise rule on a table whose UPDATE a trigger or rule may rewrite */
        bool range_counted;
        PlanStatement batch;            /* rows one by one, FOR UPDATE SKIP LOCKED -> selected, changed, last key, next xid */
        PlanStatement while_held_batch; /* sql NULL when the rule has no while_held */
        /* Citus: the while_held phase by ranges, as batch_bound and batch_range (sql NULL otherwise) */
        PlanStatement while_held_bound;
        PlanStatement while_held_range;
        PlanStatement breaker_count;    /* count of rows this run would change, LIMIT param */
        PlanStatement breaker_estimate; /* EXPLAIN (FORMAT JSON) of the due rows: the planner's estimate */
        PlanStatement idle_probe;       /* one row: true when no row is due (the tally's rows, a superset of any change's) */
        /* cutoffs' columns, then idle_probe's answer at those cutoffs, in one statement (one
         * now()); sql NULL where idle_probe's is */
        PlanStatement cutoffs_probe;
        PlanStatement tally;            /* see plan.c: fixed columns then per hold then per fk */
        PlanStatement skipped_locked;   /* of the tally's actionable rows, those another session's open transaction holds */
        PlanStatement row_by_row_select; /* batch selection FOR UPDATE (foreign-key isolation) */
        PlanStatement row_by_row_delete; /* delete one row by ctid (foreign-key isolation) */

        char **tally_holds; /* names, order of the per-hold tally columns */
        size_t n_tally_holds;
        char **tally_fks; /* referencing table display names, order of the per-fk columns */
        size_t n_tally_fks;
        char **tally_with; /* `delete_with:` table display names, order of their columns (after the per-fk ones) */
        size_t n_tally_with;

        /* Whole expired partitions can be dropped instead of deleted row by row: a delete
         * rule without `where`, on a table range-partitioned on the age column, that no
         * foreign key references and no other delete rule covers. */
        bool can_drop_partitions;
        /* Nothing can keep a due row of this rule (no holds, no references, no other rule on
         * the table, no while_held): after a clean sweep to the cutoff nothing is left to count. */
        bool nothing_keeps;
        PlanStatement partitions; /* leaf partitions whose whole range is older than the cutoff */

        char **warnings; /* e.g. no index on the age column */
        size_t n_warnings;
} Plan;

/* Fixed tally columns, in order. */
enum {
        TALLY_DUE,            /* rows whose age is past the cutoff (anonymise: and not yet anonymised) */
        TALLY_HELD,           /* of those, held (any hold, cascade protection, longer rule) */
        TALLY_ACTIONABLE,     /* not held and not blocked by a foreign key: the next run takes them */
        TALLY_OVERDUE,        /* not held and past retain + deadline */
        TALLY_FK_BLOCKED,     /* not held, blocked by a RESTRICT/NO ACTION reference */
        TALLY_WHILE_HELD_DUE, /* held rows not yet in the while_held form */
        TALLY_OLDEST_AGE,     /* age of the oldest actionable row, interval text or NULL */
        _TALLY_FIXED,
};

/* Builds the plan. Returns 0, or -1 with *error set (caller frees) when the catalog does
 * not fit the rule (missing column, wrong type ...). */
int plan_build(const Policy *policy, const Rule *rule, const CatCache *cache, Plan **ret, char **error);
/* The statement that checks rule r's `where:` on its own against table t (rule-where.c prepares it
 * and never runs it): SELECT (where) FROM table t WHERE (where) IS NOT NULL. Its one column has
 * the where's own type (boolean, or the where is refused); in a WHERE clause, as in every statement
 * that pastes it, aggregates, window and set-returning functions are errors. NULL when the rule
 * has no where. Caller frees. */
char *plan_where_check_sql(const Rule *r, const CatTable *t);
/* The partial index that serves an anonymise rule's runs over rows it already anonymised: on the
 * age column, of the rows still to anonymise, WHERE NOT (every column in its anonymised form) in
 * exactly the form of the rule's statements, so that PostgreSQL proves the statements' predicate
 * implies it and a repeat run reads an (almost) empty index instead of every due row. true with
 * *create_sql (the CREATE INDEX to paste) and *not_done_t (the predicate for alias t, to EXPLAIN
 * with), both the caller's to free; false (both NULL) for a delete rule, a missing column, or a
 * method whose expression PostgreSQL would not take in an index predicate (not immutable). */
bool plan_todo_index(const Rule *r, const CatTable *t, char **create_sql, char **not_done_t);
void plan_free(Plan *p);
static inline void plan_freep(Plan **p) {
        plan_free(*p);
}

/* The statement that checks one partition before it is dropped: one row with
 * (rows, rows kept by a hold, rows not older than the cutoff). */
int plan_partition_check(Plan *plan, const Policy *policy, const CatCache *cache, const QualifiedName *partition,
                         PlanStatement *ret);
void plan_statement_done(PlanStatement *st);

/* ---- explain: one row, by its primary key ---- */

/* Fixed columns of ExplainPlan.row, in order (text; booleans as "t"/"f"). */
enum {
        EXPLAIN_AGE,             /* the age value, NULL when NULL */
        EXPLAIN_DUE_AT,          /* the moment after which the age alone makes it due (NULL: age NULL) */
        EXPLAIN_AGE_DUE,         /* bool: older than the cutoff now */
        EXPLAIN_MATCHES,         /* bool: the rule's where filter matches (true without where) */
        EXPLAIN_COVERED,         /* bool: referenced_by: a row of that table refers to it, and none of another
                                  * table does (true without referenced_by) */
        EXPLAIN_DONE,            /* bool: anonymise rule and already anonymised (false for delete) */
        EXPLAIN_OVERDUE_AT,      /* the moment after which it is overdue; NULL without deadline */
        EXPLAIN_OVERDUE_AGE,     /* bool: older than the overdue cutoff (false without deadline) */
        EXPLAIN_WHILE_HELD_DONE, /* bool: already in the while_held form (false without while_held) */
        _EXPLAIN_FIXED,
};
/* Then per hold of the rule (rule order), EXPLAIN_PER_HOLD columns: */
enum {
        EXPLAIN_HOLD_APPLIES,  /* bool: the hold keeps the row now */
        EXPLAIN_HOLD_UNTIL,    /* registry: latest --until of the active holds; derived: when the youngest evidence lapses */
        EXPLAIN_HOLD_FOREVER,  /* bool: registry: an active hold without --until; derived: evidence without a date */
        EXPLAIN_HOLD_EVIDENCE, /* derived: the youngest evidence date; registry: NULL */
        EXPLAIN_PER_HOLD,
};
/* then one bool per cascade_fks, per other_rules, per restrict_fks. */

typedef struct ExplainPlan {
        PlanStatement row;      /* WHERE pk = PARAM_KEY...: exactly one row, or none */
        PlanStatement registry; /* the active operator holds on the row's subjects: id, reason, placed_by,
                                 * placed_at, expires_at, the registry hold's name (one row per hold of each
                                 * of the rule's registry holds that holds one of its subjects); sql NULL
                                 * when the rule has no registry hold */
        const CatForeignKey **cascade_fks; /* deleting cascades (or sets NULL) into rows a hold may protect */
        size_t n_cascade_fks;
        const Rule **other_rules; /* other delete rules on the table: true = it keeps the row longer */
        size_t n_other_rules;
        const CatForeignKey **restrict_fks; /* RESTRICT / NO ACTION: true = a row still references it */
        size_t n_restrict_fks;
        const DeleteWith **with; /* `delete_with:`: the key of the row it refers to (NULL: none), and true = it
                                  * would go with it (no other row refers to it); two columns each */
        size_t n_with;
} ExplainPlan;

/* The per-row statements of a rule for a row identified by its primary key (pk: the key
 * columns in order). Adds any cutoff they need to plan->slots and rebuilds plan->cutoffs, so
 * run plan->cutoffs after this. */
void plan_explain(Plan *plan, const Policy *policy, const CatCache *cache, char *const *pk, size_t n_pk, ExplainPlan *ret);
void explain_plan_done(ExplainPlan *e);
/* SELECT of the key columns as text of the row WHERE key = PARAM_KEY..., (`where` NULL), or of
 * every row WHERE column = PARAM_KEY 0 ordered by the key, at most `limit` rows. */
void plan_row_keys(const CatTable *t, char *const *pk, size_t n_pk, const char *where_column, unsigned limit,
                   PlanStatement *ret);
/* The same for the rows of t that rows of another table refer to through the foreign key `via`,
 * whose column `where_column` (of that table) is PARAM_KEY 0 (`referenced_by:`: the addresses of a
 * customer); via NULL: plan_row_keys(). */
void plan_row_keys_via(const CatTable *t, char *const *pk, size_t n_pk, const char *where_column, const CatForeignKey *via,
                       unsigned limit, PlanStatement *ret);
/* The foreign key through which a `referenced_by:` rule's referring rows refer to its table, or
 * NULL (no such table, column or key). */
const CatForeignKey *plan_referrer_fk(const CatCache *cache, const Rule *r);

/* Code of another role that a rule's statements would make PostgreSQL run as the engine's role
 * (catalog.h, CatUntrusted): triggers and rules that fire on what the rule does to its table
 * (DELETE; UPDATE to anonymise), and to the tables a delete cascades into (ON DELETE CASCADE:
 * DELETE; SET NULL, SET DEFAULT: UPDATE), on those tables and their partitions; row-level
 * security on any of them and on the evidence tables of its derived holds. */
typedef struct UntrustedUse {
        const CatUntrusted *code;
        char *when; /* "when the rule deletes rows of app.logs", "when a delete from app.accounts cascades ..." */
} UntrustedUse;
size_t plan_untrusted(const Rule *rule, const CatCache *cache, UntrustedUse **ret);
/* The tables plan_untrusted() looks at for the rule (those of the cache): *ret gets their oids. */
size_t plan_untrusted_tables(const Rule *rule, const CatCache *cache, uint32_t **ret);
void untrusted_uses_free(UntrustedUse *v, size_t n);
/* 'trigger "x" on app.t (function app.f(), owned by role "o")'; caller frees. */
char *untrusted_describe(const CatUntrusted *c);

/* One problem plan_check_rule_findings() found: located at the policy key it is about (a column
 * of `columns:`, the rule's `table:` or `column:`, a hold's `column:`), with a hint ("did you
 * mean" among the table's columns) when there is one. */
typedef struct PlanFinding {
        bool error;                         /* else a warning */
        bool permission;                    /* a privilege the role lacks */
        char *message;                      /* 'rule "x": ...' or 'hold "h": ...' */
        char *hint;                         /* or NULL */
        const Location *loc;                /* NULL: the rule itself */
        const QualifiedName *missing_table; /* "relation ... does not exist": the name as written */
} PlanFinding;
/* Appends the findings of a rule to *ret (*n entries). Returns the number of errors it added. */
size_t plan_check_rule_findings(const Policy *policy, const Rule *rule, const CatCache *cache, PlanFinding **ret, size_t *n);
void plan_findings_free(PlanFinding *v, size_t n);

/* Checks the catalog against a rule; appends human-readable problems (errors) and
 * warnings. Used by plan_build and by `check --database`. Returns number of errors. */
size_t plan_check_rule(const Policy *policy, const Rule *rule, const CatCache *cache, char ***errors,
                       size_t *n_errors, char ***warnings, size_t *n_warnings);
