/* coverage.h — `retentiond coverage`: columns of a database that look personal (by name, by type,
 * by values in a small sample) and whether a rule of the policy deletes or anonymises them.
 * Reads only. Personal data never leaves PostgreSQL: the sample is matched by the server and the
 * queries return counts, never values. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pg.h"
#include "policy.h"
#include "util.h"

/* What a column's type says about the words of its name: a name rule only applies to the kinds
 * of column its word can be (a "phone" may be a number, a "birth" a date, an "email" never). */
typedef enum CoverageKind {
        COVKIND_TEXT = 1 << 0,   /* string types, json, jsonb, bytea, arrays of strings */
        COVKIND_DATE = 1 << 1,   /* date and time types */
        COVKIND_NUMBER = 1 << 2, /* numeric types */
        COVKIND_NET = 1 << 3,    /* inet, cidr, macaddr, macaddr8 */
        COVKIND_OTHER = 1 << 4,  /* boolean, uuid, ...: never personal by name */
} CoverageKind;

/* The personal word a column's name contains, or NULL. The name is split into words at "_",
 * "-", spaces and lower-to-upper case changes ("firstName" is first, name); a word of the list
 * (itself one or more words, "date_of_birth") must appear as whole consecutive words, and the
 * column's kind must be one the word can be. The longest match wins. */
const char *coverage_personal_name(const char *column, CoverageKind kind);
/* The whole list, NULL-terminated, for documentation and tests. */
extern const char *const coverage_personal_words[];

/* Sampled rows per table, at most. */
#define COVERAGE_SAMPLE_ROWS 200
/* Tables estimated larger than this are sampled with TABLESAMPLE SYSTEM (random pages). */
#define COVERAGE_TABLESAMPLE_MIN_ROWS 10000

/* The server-side patterns (PostgreSQL regular expressions, case-insensitive), exposed for tests. */
extern const char coverage_email_regex[];
extern const char coverage_ip_regex[];

typedef struct CoverageCover {
        const Rule *rule;
        bool whole_rows; /* a delete rule: every column, but only the rows it finds expired */
        bool while_held; /* listed under the rule's while_held (only rows a hold keeps) */
} CoverageCover;

typedef struct CoverageColumn {
        char *schema, *table, *column, *type;
        const char *name_word; /* its name contains this personal word, or NULL */
        bool by_type;          /* inet, cidr, macaddr, macaddr8 */
        int64_t sampled;       /* non-NULL values sampled; -1 when not sampled */
        int64_t email_values, ip_values;
        CoverageCover *covers;
        size_t n_covers;
} CoverageColumn;

typedef struct CoverageReport {
        CoverageColumn *columns; /* every column that looks personal and is not ignored, in catalog order */
        size_t n_columns;
        size_t n_uncovered;
        size_t n_tables, n_columns_scanned, n_tables_sampled, n_ignored;
        char **notes; /* tables that could not be sampled, ignore patterns that match nothing */
        size_t n_notes;
} CoverageReport;

void coverage_report_free(CoverageReport *r);
static inline void coverage_report_freep(CoverageReport **r) {
        coverage_report_free(*r);
}

/* Scans the database pg is connected to (in one READ ONLY REPEATABLE READ transaction that it
 * opens and closes) against the rules for which selected[i] is true (selected NULL: every rule).
 * Returns 0 with *ret, or a PgErrorClass with *err. */
int coverage_scan(Pg *pg, const Policy *p, const bool *selected, CoverageReport **ret, PgError *err);

/* The report as text (database: a name for the heading, or NULL) or as one JSON object. */
void coverage_print(const CoverageReport *r, const char *database, bool quiet, FILE *f);
void coverage_to_json(const CoverageReport *r, const char *database, StrBuf *b);
