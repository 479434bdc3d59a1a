/* holds.h — the registry of operator holds (retention.holds): the key a hold is placed on,
 * placing, listing and releasing, and the holds in force that no rule can match (a key that is
 * not canonical, a subject the policy does not define). Every statement on the registry is here
 * (the run's own hold predicates are plan.c's). A hold is never deleted or changed but by its
 * release, which is recorded next to it; nothing here prints or decides an exit code. */
#pragma once

#include <stdbool.h>

#include "pg.h"
#include "policy.h"

/* The text a hold on `key` is placed on: the key as the subject key column's type reads it,
 * written back as text ("042" and " 42" are account 42), in the row's own spelling when the
 * subject table has such a row (*row_exists). *ret NULL (and 0 returned) when the subject's key
 * column does not exist. Returns 0 or a PgErrorClass with *err (class 22: the key does not fit
 * the column's type). */
int holds_key(Pg *pg, const Subject *s, const char *key, char **ret, bool *row_exists, PgError *err);

typedef struct HoldPlaced {
        char *id, *placed_at;
        char *expires_at; /* NULL: until released */
        bool lapsed;      /* expires_at is already past */
} HoldPlaced;
void hold_placed_done(HoldPlaced *h);
/* Places a hold (retention.place_hold(), which records its event); until NULL: until released.
 * Returns 0 or a PgErrorClass with *err. */
int holds_place(Pg *pg, const char *subject, const char *key, const char *reason, const char *by, const char *until,
                HoldPlaced *ret, PgError *err);

/* Columns of holds_list()'s result, all text. */
enum {
        HOLDS_ID,
        HOLDS_SUBJECT,
        HOLDS_KEY,
        HOLDS_REASON,
        HOLDS_PLACED_BY,
        HOLDS_PLACED_AT,
        HOLDS_EXPIRES_AT,
        HOLDS_RELEASED_AT,
        HOLDS_RELEASED_BY,
        HOLDS_STATE, /* active, expired or released */
        _HOLDS_COLUMNS,
};
/* The holds in force (all: every hold), by id. Returns 0 or a PgErrorClass with *err. */
int holds_list(Pg *pg, bool all, PGresult **ret, PgError *err);

typedef enum HoldReleased {
        HOLD_RELEASED,        /* released now; *subject is its subject */
        HOLD_ALREADY_RELEASED, /* *when is "TIME by NAME" */
        HOLD_NO_SUCH_HOLD,
} HoldReleased;
/* Releases hold id (retention.release_hold(), which records its event). *what says what
 * happened; *text (caller frees) the subject, or when and by whom it was released before.
 * Returns 0 or a PgErrorClass with *err. */
int holds_release(Pg *pg, const char *id, const char *by, HoldReleased *what, char **text, PgError *err);

/* Which rules keep rows by a registry hold on subject s: *used when any does, *elsewhere when
 * one is on another table than the subject's own. */
void holds_registry_use(const Policy *p, const Subject *s, bool *used, bool *elsewhere);

/* Columns of holds_noncanonical()'s result. */
enum {
        HOLDS_NC_ID,
        HOLDS_NC_KEY,
        HOLDS_NC_TABLE_EXISTS, /* "t"/"f": the subject's table exists in this database */
        HOLDS_NC_TYPE,         /* the key column's type; NULL: no such column */
        HOLDS_NC_CANONICAL,    /* the key as the type reads it; NULL: the type rejects it */
};
/* The holds in force on subject s whose key is not the canonical text of its key column's type
 * (or cannot be checked), by id. Returns 0 or a PgErrorClass with *err. */
int holds_noncanonical(Pg *pg, const Subject *s, PGresult **ret, PgError *err);
/* The holds in force (id, subject) on a subject the policy does not define, by id. */
int holds_orphaned(Pg *pg, const Policy *p, PGresult **ret, PgError *err);
/* How many holds are in force, as text. */
int holds_in_force(Pg *pg, char **ret, PgError *err);
