/* policy.h — the validated, immutable model of a retention policy.
 * A Policy is built only by policy-load.c and never changes afterwards; nothing here
 * talks to PostgreSQL or reads files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duration.h"
#include "ident.h"

/* Where something came from in a policy file: 1-based line and column. */
typedef struct Location {
        const char *file; /* owned by Policy.files */
        unsigned line;
        unsigned column;
} Location;

typedef enum Action {
        ACTION_DELETE,
        ACTION_ANONYMISE,
} Action;

typedef enum Method {
        METHOD_NULL,          /* column := NULL */
        METHOD_REDACT,        /* column := constant text */
        METHOD_HASH,          /* column := 'hmac-sha256:' || hex(HMAC-SHA256(key, column::text)) */
        METHOD_TRUNCATE_IP,   /* IPv4 to /24, IPv6 to /48, host bits cleared */
        METHOD_EMAIL_DOMAIN,  /* 'user@example.com' -> '*@example.com' */
        METHOD_TRUNCATE_DATE, /* date_trunc(month|year, column) */
        _METHOD_MAX,
} Method;

typedef enum DatePrecision {
        PRECISION_MONTH,
        PRECISION_YEAR,
} DatePrecision;

/* Where a retention period starts (`from:`): at the age value itself, or at the end of the
 * day, calendar month, calendar year or fiscal year in which the age value falls, in the session's
 * TimeZone (statutory periods: "10 years from the end of the calendar year"; day: cutoffs at
 * midnight, so whole day partitions expire at once). */
typedef enum StartFrom {
        FROM_RECORD,
        FROM_END_OF_DAY,
        FROM_END_OF_MONTH,
        FROM_END_OF_YEAR,
        FROM_END_OF_FISCAL_YEAR,
} StartFrom;

typedef struct PeriodStart {
        StartFrom from;
        int fiscal_year_start; /* 1..12: first month of the fiscal year (FROM_END_OF_FISCAL_YEAR) */
} PeriodStart;

typedef struct ColumnMethod {
        char *column; /* identifier, unquoted (exact catalog name) */
        Method method;
        char *redact_value;      /* METHOD_REDACT */
        DatePrecision precision; /* METHOD_TRUNCATE_DATE */
        Location loc;
} ColumnMethod;

typedef struct Subject {
        char *name;
        QualifiedName table;
        char *key; /* identifier of the subject's key column in `table` */
        Location loc;
} Subject;

typedef struct Hold {
        char *name;
        char *reason;
        char *subject_name;
        const struct Subject *subject; /* resolved */
        bool registry;                 /* true: operator holds in retention.holds */
        /* derived holds (registry == false): held while `table` has a row whose
         * `subject_column` equals the subject's key and whose `column` is not older
         * than now() - retain (a NULL age counts as young: it never expires). */
        QualifiedName table;
        char *subject_column;
        char *column;
        Duration retain;
        PeriodStart start; /* the evidence's retain runs from here */
        Location loc;
        /* the values of `table:`, `subject_column:`, `column:` and `retain:` (line 0: not given),
         * where `check -d` locates what it finds wrong with them */
        Location table_loc, subject_column_loc, column_loc, retain_loc;
} Hold;

/* A target database of `databases:`: a libpq connection string or a service name (never a
 * password: the loader rejects one). */
typedef struct Database {
        char *name;
        char *conninfo; /* what libpq gets: the conninfo as written, or "service=NAME" */
        char *service;  /* given as `service:`, else NULL */
        Location loc;
} Database;

/* `referenced_by:` of a rule: its rows belong to their subject through the rows of another table
 * that refer to them (an address is a customer's when customer.address_id refers to it). A row's
 * subjects are the subject keys of every row of `table` whose `column` refers to it through a
 * foreign key (one row may have several, or none); `subject_column` holds that key in `table`,
 * NULL when `table` is the subject's own table (its key). */
typedef struct Referrer {
        QualifiedName table;
        char *column;
        char *subject_column;
        Location loc; /* the `referenced_by:` key */
        Location table_loc, column_loc, subject_column_loc;
} Referrer;

/* One entry of a delete rule's `delete_with:`: the row of `table` that the deleted row's column
 * `through` refers to (by a foreign key of that column alone) is deleted in the same statement,
 * when no row that stays refers to it through any foreign key (the address of a customer deleted
 * with the customer; an address a store, a staff member or a kept customer also has stays). */
typedef struct DeleteWith {
        QualifiedName table;
        char *through;
        Location loc; /* the entry */
        Location table_loc, through_loc;
} DeleteWith;

typedef struct Rule {
        char *name;
        char *clause;
        QualifiedName table;
        char *column; /* age basis; NULL never expires */
        Duration retain;
        PeriodStart start; /* retain (and deadline) run from here */
        bool has_deadline;
        Duration deadline; /* overdue once older than retain + deadline */

        Action action;
        ColumnMethod *columns; /* anonymise */
        size_t n_columns;

        char *subject_name; /* optional */
        const struct Subject *subject;
        char *subject_column; /* column holding the subject key; NULL when table is the subject's table */
        bool has_referrer;    /* the subject is reached through `referenced_by:` (subject_column is NULL) */
        Referrer referrer;
        DeleteWith *delete_with; /* action delete only; in policy order */
        size_t n_delete_with;
        Location delete_with_loc; /* the `delete_with:` key */

        char **hold_names;
        const struct Hold **holds; /* each of the rule's subject, or of a subject whose table is the rule's
                                    * table (the row is that subject: its key column is the subject's key) */
        size_t n_holds;

        bool has_while_held;
        Action while_held_action; /* always ACTION_ANONYMISE in version 1 */
        ColumnMethod *while_held_columns;
        size_t n_while_held_columns;

        int64_t batch_size;
        Duration schedule;
        char *window; /* "HH:MM-HH:MM" local time, or NULL */
        double max_fraction;      /* 0 < x <= 1; default 0.5 */
        int64_t max_rows;         /* 0: no limit */
        int64_t breaker_min_rows; /* default 1000 */
        char *where;              /* trusted administrator SQL, or NULL: one boolean expression about the row t
                                   * that cannot leave its parentheses (sqlfrag.h); checked by the loader */
        Location where_loc;       /* the `where:` key */
        bool trust_triggers;      /* run although code of another role (triggers, rules, row-level security)
                                   * would run as the engine's role; warn instead of refusing */

        char *database_name;         /* `database:` as written, or NULL */
        const struct Database *database; /* resolved (the only one when not named); NULL without `databases:` */

        Location loc;
        /* the values of `table:`, `column:`, `retain:` and `subject_column:` (line 0: not given),
         * where `check -d` locates what it finds wrong with them */
        Location table_loc, column_loc, retain_loc, subject_column_loc;
} Rule;

/* One entry of `coverage: { ignore: [...] }`: columns `retentiond coverage` does not report.
 * "schema.*" (every table of the schema), "schema.table" (every column of the table),
 * "schema.table.column", "schema.*.column" (that column in every table of the schema). */
typedef struct CoverageIgnore {
        char *pattern; /* as written */
        char *schema;  /* exact catalog name */
        char *table;   /* NULL: every table */
        char *column;  /* NULL: every column */
        Location loc;
} CoverageIgnore;

typedef struct Policy {
        char **files; /* every file that was read, in order */
        size_t n_files;

        Subject *subjects;
        size_t n_subjects;
        Hold *holds;
        size_t n_holds;
        Rule *rules;
        size_t n_rules;

        CoverageIgnore *coverage_ignores; /* from every file's `coverage: { ignore: }` */
        size_t n_coverage_ignores;

        Database *databases; /* `databases:` of every file; none: the CLI's -d (or libpq's environment) */
        size_t n_databases;
} Policy;

/* Defaults that apply when neither the rule nor the policy's `defaults:` says otherwise. */
#define POLICY_DEFAULT_BATCH_SIZE 5000
#define POLICY_DEFAULT_SCHEDULE_USEC (INT64_C(3600) * 1000000) /* 1 hour */
#define POLICY_DEFAULT_MAX_FRACTION 0.5
#define POLICY_DEFAULT_BREAKER_MIN_ROWS 1000
#define POLICY_MAX_BATCH_SIZE 1000000

void policy_free(Policy *p);
static inline void policy_freep(Policy **p) {
        policy_free(*p);
}
#define _cleanup_policy_ __attribute__((cleanup(policy_freep)))

const Rule *policy_find_rule(const Policy *p, const char *name);
const Hold *policy_find_hold(const Policy *p, const char *name);
const Subject *policy_find_subject(const Policy *p, const char *name);
const Database *policy_find_database(const Policy *p, const char *name);
/* Is the rule enforced in database db (db NULL: in the only target there is)? */
bool rule_in_database(const Rule *r, const Database *db);
/* Does hold h of rule r protect the rule's own subject (else: a subject whose table is the rule's
 * table, keyed by that subject's key column)? */
bool rule_hold_of_own_subject(const Rule *r, const struct Hold *h);

const char *action_to_string(Action a);
const char *method_to_string(Method m);
/* Parses a method name ("null", "hash", ...); returns -1 when unknown. */
int method_from_string(const char *s);

/* Does `rule` need the hash key (some column uses METHOD_HASH)? */
bool rule_needs_hash_key(const Rule *rule);
bool policy_needs_hash_key(const Policy *p);

/* "end_of_year", ... ("record" for FROM_RECORD). */
const char *start_from_to_string(StartFrom f);
/* Words for reports: "the end of the day", "the end of the calendar year", "the end of the fiscal
 * year starting in April", ...; NULL for FROM_RECORD. Caller frees. */
char *period_start_describe(const PeriodStart *s);

/* Parses a `coverage: ignore:` pattern into *ret (pattern, schema, table, column; loc untouched).
 * On error returns false with *err_offset (0-based byte offset) and *err (a sentence). */
bool coverage_ignore_parse(const char *s, CoverageIgnore *ret, size_t *err_offset, const char **err);
void coverage_ignore_done(CoverageIgnore *c);
/* Does an ignore entry match this column (column NULL: the table as a whole)? */
bool coverage_ignore_matches(const CoverageIgnore *c, const char *schema, const char *table, const char *column);
/* The first entry of the policy that matches, or NULL. */
const CoverageIgnore *policy_coverage_ignored(const Policy *p, const char *schema, const char *table, const char *column);

/* One-line human summary for `check`, e.g.
 * "delete app.access_log rows whose requested_at is older than 7 days". Caller frees. */
char *rule_summary(const Rule *rule);
