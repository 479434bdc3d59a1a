/* migrations.h — the retention schema's migrations, embedded at build time from
 * sql/retention/ by gen-sql.py. Applied in order by `retentiond migrate`. A landed migration is
 * never edited: a change is a new numbered file. */
#pragma once

#include <stddef.h>

typedef struct Migration {
        int version;
        const char *name;
        const char *sql;
} Migration;

extern const Migration migrations[];
extern const size_t n_migrations;
