/* pg.h — the one place that talks libpq: connect with our session settings, run
 * parameterised statements, classify errors by SQLSTATE. Values are always parameters;
 * nothing here ever builds SQL from data. */
#pragma once

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct PgError {
        char sqlstate[6]; /* "" when the error did not come from the server */
        char *primary;
        char *detail;
        char *hint;
        char *table; /* schema.table the server named (PG_DIAG_SCHEMA_NAME/TABLE_NAME), or NULL */
} PgError;

/* An error as the server sent it (libpq's PG_DIAG_* fields; any may be NULL). */
typedef struct PgServerError {
        const char *sqlstate, *primary, *detail, *hint, *context, *source_file, *schema, *table;
        bool input; /* the statement's only values are the caller's parameters: a data exception is about them */
} PgServerError;

/* Fills *e from the server's error, keeping out what may hold row values: a message raised by
 * code of the database (a table owner's trigger or function, RAISE in any PL) other than the
 * retention schema's own, the message of a data exception (class 22: "invalid input syntax for
 * type inet: ..."), and the detail of either or of an integrity violation (class 23: "Key
 * (email)=(...) already exists", "Failing row contains (...)"). What is withheld is said, with the
 * function that raised it when the context names one (a name from the catalog, never a value). */
void pg_error_from_server(PgError *e, const PgServerError *s);

void pg_error_done(PgError *e);
void pg_error_set(PgError *e, const char *sqlstate, const char *detail, const char *hint, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

typedef enum PgErrorClass {
        PG_OK = 0,
        PG_ERR_CONNECTION,        /* 08xxx, 57P01-57P03, lost connection: retry after reconnect */
        PG_ERR_LOCK_TIMEOUT,      /* 55P03: lock_timeout or NOWAIT: skip, next run */
        PG_ERR_STATEMENT_TIMEOUT, /* 57014 */
        PG_ERR_TRANSIENT,         /* 40001, 40P01, 53xxx: retry */
        PG_ERR_FOREIGN_KEY,       /* 23503 */
        PG_ERR_PERMISSION,        /* 42501 */
        PG_ERR_UNDEFINED,         /* 42P01, 42703, 3F000: missing table, column, schema */
        PG_ERR_READ_ONLY,         /* 25006 */
        PG_ERR_OTHER,
} PgErrorClass;

PgErrorClass pg_error_class(const char *sqlstate);

/* Return conventions. A function that talks to the database returns 0 on success or a
 * PgErrorClass (> 0: PG_ERR_CONNECTION is 1) with its PgError filled. A function that also has
 * outcomes of its own (another session holds the lock, the fast path declines a batch, ...)
 * returns them as one of these: always negative, so that no outcome can be taken for an error
 * class or the reverse, and distinct from each other, so that one passed up through several
 * callers keeps its meaning. Each function's comment in its header says which it returns; the
 * commands map every one to an exit code (cmd_exit_code(), cmdutil.c, one case per value). */
typedef enum PgOutcome {
        OUTCOME_SCHEMA_MISMATCH = -1, /* trail_check_schema(): the retention schema is missing or at another version */
        OUTCOME_RULE_BUSY = -2,       /* rule_lock(), run_rules(): another session holds a rule's lock */
        OUTCOME_BREAKER = -3,         /* breaker.c: the rule's circuit breaker tripped (err says why) */
        OUTCOME_SLOW_PATH = -4,       /* fast-path.c: the fast path declines this batch: take it with SKIP LOCKED */
        OUTCOME_REFUSED = -5,         /* partitions.c: the check under a partition's lock refused its drop */
        OUTCOME_TABLE_GONE = -6,      /* catalog_load_table_oid(): no table has that oid (dropped meanwhile) */
        OUTCOME_NO_CHAIN_HEAD = -7,   /* chain_verify(): retention.chain_head has no row */
} PgOutcome;

typedef struct PgSettings {
        long lock_timeout_ms;      /* default 2000 */
        long statement_timeout_ms; /* default 60000 */
        bool read_only;            /* default_transaction_read_only = on */
} PgSettings;

#define PG_DEFAULT_LOCK_TIMEOUT_MS 2000
#define PG_DEFAULT_STATEMENT_TIMEOUT_MS 60000

typedef struct Pg {
        PGconn *conn;
        int server_version;
        PgSettings settings;
        /* The wal_compression this session may switch on while other sessions write (see
         * pace.c, pace_gentle_wal): "lz4", "pglz" or "on"; NULL when the server already compresses
         * or the role may not set it. */
        char wal_compression[8];
        bool wal_compressing; /* switched on now */
        bool fingerprint_prepared; /* catalog_untrusted_unchanged()'s statement lives on this session */
        bool counts_prepared;      /* trail_rule_count()'s statement lives on this session */
        bool record_prepared;      /* trail_rule_whole()'s statement lives on this session */
        bool input_errors;         /* set around a statement whose only values are the operator's or the policy's
                                    * (a hold's key and expiry, explain's keys, the cutoffs): its data exceptions are
                                    * shown whole */
        /* trail_check_schema() found the schema right on this session, and no one has relied on
         * that yet: run_rules() takes it (and clears it) instead of asking again. */
        bool schema_checked;
} Pg;

/* Connects (conninfo NULL or "": libpq's environment decides, as psql does), sets
 * application_name=retentiond and the session settings: lock_timeout, statement_timeout,
 * synchronous_commit=off, jit=off, DateStyle=ISO, IntervalStyle=postgres,
 * idle_in_transaction_session_timeout. Returns 0, or -1 with *err filled. */
int pg_connect(const char *conninfo, const PgSettings *s, Pg **ret, PgError *err);
void pg_free(Pg *pg);
static inline void pg_freep(Pg **p) {
        pg_free(*p);
}

/* Runs one statement with text parameters (NULL entries are SQL NULL). On success returns
 * 0 and, if ret is not NULL, the result (caller PQclear()s). On failure returns the
 * PgErrorClass (> 0) and fills *err. */
int pg_exec(Pg *pg, PGresult **ret, PgError *err, const char *sql, int nparams, const char *const *params);
/* Same, without parameters. */
int pg_exec0(Pg *pg, PGresult **ret, PgError *err, const char *sql);
/* pg_exec() of a statement whose only values are the operator's own parameters (pg->input_errors). */
int pg_exec_input(Pg *pg, PGresult **ret, PgError *err, const char *sql, int nparams, const char *const *params);
/* Convenience: single value of a single-row result, malloc'd copy; NULL for SQL NULL. */
int pg_value(Pg *pg, char **ret, PgError *err, const char *sql, int nparams, const char *const *params);
/* Is the connection still good? */
bool pg_connection_ok(const Pg *pg);
/* ROLLBACK, its error ignored; nothing when the connection is gone or no transaction is open. */
void pg_rollback_quietly(Pg *pg);
/* The integer in a result's field; 0 for SQL NULL. */
int64_t pg_int64_at(const PGresult *r, int row, int col);

static inline void pqclearp(PGresult **r) {
        if (*r)
                PQclear(*r);
}
#define _cleanup_pgresult_ __attribute__((cleanup(pqclearp)))

/* Quote a string literal for the few places where a value cannot be a parameter (never
 * needed for data; used to print --sql output). Caller frees. */
char *pg_literal(const char *s);
/* A text[] literal of the n strings, for one parameter: each double-quoted, " and \ escaped.
 * Caller frees. */
char *pg_text_array(const char *const *v, size_t n);

/* Runs a script of several statements (simple query protocol), e.g. a migration file.
 * Only for SQL text shipped with retentiond, never for anything built from input. */
int pg_exec_script(Pg *pg, PgError *err, const char *sql);

/* Prepared statements, for the statement a rule run repeats once per batch: parsed and
 * planned once. */
int pg_prepare(Pg *pg, PgError *err, const char *name, const char *sql, int nparams);
int pg_exec_prepared(Pg *pg, PGresult **ret, PgError *err, const char *name, int nparams, const char *const *params);
/* A statement prepared once a session as `name` (*prepared says it is): prepared when it is not,
 * then executed; prepared again when the server no longer has it (SQLSTATE 26000). */
int pg_exec_cached(Pg *pg, bool *prepared, const char *name, const char *sql, int nparams, const char *const *params,
                   PGresult **ret, PgError *err);
/* One statement of a pipeline (pg_pipeline()): a prepared statement (`name`), prepared first when
 * `prepared` is given and false (pg_exec_cached()'s flag: `sql` is its text), or `sql` run as it
 * is. `params` must live until pg_pipeline() returns. */
typedef struct PgPipeStmt {
        const char *name;
        const char *sql;
        bool *prepared;
        int nparams;
        const char *const *params;
        PGresult **result; /* the statement's result (caller PQclear()s), or NULL: not wanted */
} PgPipeStmt;

/* Sends n statements at once and reads their answers (libpq's pipeline mode): one round trip to
 * the server instead of n. The server runs them in order, each as if sent alone; once one fails,
 * it runs none of the rest. Returns 0 when every statement ran (even if the session ended right
 * after), or the failed statement's PgErrorClass with *err filled, *failed (may be NULL) its index
 * (SIZE_MAX: before any statement) and every *result NULL. A statement prepared by it
 * that the server no longer has (26000) gets its flag cleared, as pg_exec_cached() does, and is
 * prepared again at the next pipeline. */
int pg_pipeline(Pg *pg, PgPipeStmt *stmts, size_t n, size_t *failed, PgError *err);

/* The description of a prepared statement (PQnparams, PQnfields, PQftype), without running it. */
int pg_describe_prepared(Pg *pg, PGresult **ret, PgError *err, const char *name);
void pg_deallocate(Pg *pg, const char *name);

/* COPY ... FROM STDIN with `data` as its whole input (the caller formats it). The one way a
 * secret reaches the server: COPY data is never written to the server log (log_statement and
 * log_min_duration_statement log the COPY statement, not its data), where statement parameters
 * are (log_parameter_max_length). With FORMAT binary no error message quotes it either. Returns
 * 0 or a PgErrorClass with *err filled. */
int pg_copy_in(Pg *pg, PgError *err, const char *sql, const void *data, size_t len);
