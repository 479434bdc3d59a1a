/* pg.c — libpq connection, session settings, parameterised execution, SQLSTATE classes.
 * Never interpolates a value into SQL text and never logs parameter values (they may
 * be keys or personal data). */
#include "pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ident.h"
#include "util.h"

void pg_error_done(PgError *e) {
        if (!e)
                return;
        free(e->primary);
        free(e->detail);
        free(e->hint);
        free(e->table);
        *e = (PgError) {};
}

void pg_error_set(PgError *e, const char *sqlstate, const char *detail, const char *hint, const char *fmt, ...) {
        if (!e)
                return;
        pg_error_done(e);
        va_list ap;
        va_start(ap, fmt);
        e->primary = xvasprintf(fmt, ap);
        va_end(ap);
        snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate ? sqlstate : "");
        e->detail = detail ? xstrdup(detail) : NULL;
        e->hint = hint ? xstrdup(hint) : NULL;
}

PgErrorClass pg_error_class(const char *s) {
        if (!s || !*s)
                return PG_ERR_CONNECTION; /* no SQLSTATE: the client lost the server */
        if (strncmp(s, "08", 2) == 0 || streq(s, "57P01") || streq(s, "57P02") || streq(s, "57P03"))
                return PG_ERR_CONNECTION;
        if (streq(s, "55P03"))
                return PG_ERR_LOCK_TIMEOUT;
        if (streq(s, "57014"))
                return PG_ERR_STATEMENT_TIMEOUT;
        if (streq(s, "40001") || streq(s, "40P01") || strncmp(s, "53", 2) == 0)
                return PG_ERR_TRANSIENT;
        if (streq(s, "23503"))
                return PG_ERR_FOREIGN_KEY;
        if (streq(s, "42501"))
                return PG_ERR_PERMISSION;
        if (streq(s, "42P01") || streq(s, "42703") || streq(s, "3F000") || streq(s, "42883"))
                return PG_ERR_UNDEFINED;
        if (streq(s, "25006"))
                return PG_ERR_READ_ONLY;
        return PG_ERR_OTHER;
}

static char *trim_newline(const char *s) {
        if (!s)
                return NULL;
        char *r = xstrdup(s);
        size_t n = strlen(r);
        while (n > 0 && (r[n - 1] == '\n' || r[n - 1] == ' '))
                r[--n] = 0;
        return r;
}

/* Whether the line l (n bytes) is exactly one of PostgreSQL 15's frames of a function call, and
 * then that function's name as the frame prints it (*name, *len):
 *     PL/pgSQL function NAME(ARGS) line N at STATEMENT      (or: line N; during ...; while ...)
 *     SQL function "NAME" statement N                       (or: during startup; during inlining)
 *     PL/Python function "NAME"   PL/Perl function "NAME"   PL/Tcl function "NAME"
 * Any other line is not a frame: the text of a statement ("SQL statement \"...\"", "SQL
 * expression", "PL/pgSQL assignment"), which may hold values and span lines, is never taken for
 * one unless a line of it is exactly a frame's form. */
static bool frame_line(const char *l, size_t n, const char **name, size_t *len) {
        static const char plpgsql[] = "PL/pgSQL function ";
        static const char sqlfn[] = "SQL function \"";
        static const char *const quoted[] = { "PL/Python function \"", "PL/Perl function \"", "PL/Tcl function \"" };
        static const char *const tails[] = { " line ", " during ", " while " };
        const char *end = l + n;
        if (n > sizeof(plpgsql) - 1 && strncmp(l, plpgsql, sizeof(plpgsql) - 1) == 0) {
                const char *sig = l + sizeof(plpgsql) - 1;
                /* the signature ends at the first ")" after which the line ends or a tail begins */
                for (const char *q = sig; q < end; q++) {
                        if (*q != ')' || !memchr(sig, '(', (size_t) (q - sig)))
                                continue;
                        bool tail = q + 1 == end;
                        for (size_t i = 0; !tail && i < sizeof(tails) / sizeof(tails[0]); i++)
                                tail = (size_t) (end - q - 1) > strlen(tails[i]) && strncmp(q + 1, tails[i], strlen(tails[i])) == 0;
                        if (tail) {
                                *name = sig;
                                *len = (size_t) (q + 1 - sig);
                                return true;
                        }
                }
                return false;
        }
        const char *open = NULL;
        bool sql = false;
        if (n > sizeof(sqlfn) - 1 && strncmp(l, sqlfn, sizeof(sqlfn) - 1) == 0) {
                open = l + sizeof(sqlfn) - 1;
                sql = true;
        }
        for (size_t i = 0; !open && i < sizeof(quoted) / sizeof(quoted[0]); i++)
                if (n > strlen(quoted[i]) && strncmp(l, quoted[i], strlen(quoted[i])) == 0)
                        open = l + strlen(quoted[i]);
        if (!open)
                return false;
        const char *close = NULL;
        if (!sql)
                close = end[-1] == '"' && end - 1 > open ? end - 1 : NULL; /* the line ends the name */
        else
                for (const char *q = open; q < end && !close; q++) {
                        static const char *const sql_tails[] = { "\" statement ", "\" during startup", "\" during inlining" };
                        for (size_t i = 0; i < sizeof(sql_tails) / sizeof(sql_tails[0]) && !close; i++)
                                if ((size_t) (end - q) >= strlen(sql_tails[i]) && strncmp(q, sql_tails[i], strlen(sql_tails[i])) == 0)
                                        close = q;
                }
        if (!close || close == open)
                return false;
        *name = open;
        *len = (size_t) (close - open);
        return true;
}

/* The innermost function of the database in an error's context (its frames go from the innermost
 * out). NULL when no line is a frame. *plpgsql: that frame is PL/pgSQL's, which qualifies the
 * name with its schema whenever the function is not visible from the search_path in force. */
static char *context_function(const char *context, bool *plpgsql) {
        *plpgsql = false;
        for (const char *l = context; l && *l;) {
                const char *end = strchr(l, '\n');
                size_t n = end ? (size_t) (end - l) : strlen(l);
                const char *name;
                size_t len;
                if (frame_line(l, n, &name, &len)) {
                        *plpgsql = l[3] == 'p'; /* "PL/pgSQL" */
                        return xstrndup(name, len);
                }
                l = end ? end + 1 : NULL;
        }
        return NULL;
}

/* Whether the server raised the error from a procedural language's RAISE (or its like): then its
 * words are the code's own, whatever SQLSTATE it chose. Class P0 is PL/pgSQL's own. */
static bool raised_by_pl(const char *state, const char *source_file) {
        static const char *const pl[] = { "pl_exec.c", "plpy_elog.c", "plpy_plpymodule.c", "plperl.c", "pltcl.c" };
        if (strncmp(state, "P0", 2) == 0)
                return true;
        if (!source_file)
                return false;
        for (size_t i = 0; i < sizeof(pl) / sizeof(pl[0]); i++)
                if (streq(source_file, pl[i]))
                        return true;
        return false;
}

static bool state_in(const char *state, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strncmp(state, list[i], strlen(list[i])) == 0)
                        return true;
        return false;
}

void pg_error_from_server(PgError *e, const PgServerError *s) {
        /* Raised inside a function of the database: its message is kept only for these, whose
         * words PostgreSQL writes from names alone (locks, timeouts, conflicts, a permission, the
         * server's resources and connection, a violated constraint's name, a write in a read-only
         * transaction, an unsupported feature). */
        static const char *const in_function_safe[] = { "55P03", "57014", "40001", "40P01", "42501", "08", "53", "57P0", "23",
                                                        "25", "0A" };
        /* Raised by the engine's own statement: a detail is kept for these classes, which quote no
         * row (connection, transaction state, conflicts, names, resources, locks, operator
         * intervention, unsupported features). */
        static const char *const detail_safe[] = { "08", "25", "40", "42", "53", "55", "57", "0A" };
        pg_error_done(e);
        const char *state = s->sqlstate ? s->sqlstate : "";
        snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", state);
        bool plpgsql;
        _cleanup_free_ char *fn = context_function(s->context, &plpgsql);
        /* The retention schema's PL/pgSQL functions are the engine's own: their words are counts
         * and names. Only the schema's owner creates functions there; PL/pgSQL prints the schema
         * (pinned search_paths never include it), quoted when a name needs it, so "retention."
         * unquoted is that schema. The innermost frame is the one that raised. Code that sets out
         * to forge a frame line, in the text of a statement it runs, chooses its own words: this
         * screen is against disclosure by accident, not by a table owner who could write the rows
         * anywhere. */
        bool own = fn && plpgsql && strncmp(fn, "retention.", 10) == 0;
        bool foreign = fn && !own;
        bool pl = !own && raised_by_pl(state, s->source_file);
        bool data = (strncmp(state, "22", 2) == 0 && !s->input) || strncmp(state, "44", 2) == 0;
        bool keep_primary = own || (!pl && (foreign ? state_in(state, in_function_safe, sizeof(in_function_safe) /
                                                                                          sizeof(in_function_safe[0]))
                                                    : !data));
        bool keep_detail = own || (!pl && !foreign && state_in(state, detail_safe, sizeof(detail_safe) / sizeof(detail_safe[0])));
        if (keep_primary)
                e->primary = trim_newline(s->primary);
        else if (pl || foreign)
                e->primary = fn ? xasprintf("function %s of the database raised an error (SQLSTATE %s); its message is not "
                                            "shown, as it may hold row values", fn, state)
                                : xasprintf("code of the database raised an error (SQLSTATE %s); its message is not shown, as "
                                            "it may hold row values", state);
        else
                e->primary = xasprintf("the database could not convert, compute or check a value (SQLSTATE %s); its message "
                                       "is not shown, as it may hold row values", state);
        /* The detail: the server's when kept; where the error was raised when a function of the
         * database raised it (a trigger's function is what the operator looks for). */
        _cleanup_free_ char *d = keep_detail ? trim_newline(s->detail) : NULL;
        bool withheld = !keep_detail && s->detail && *s->detail;
        _cleanup_free_ char *where = foreign ? xasprintf("Raised in function %s, which the statement ran.", fn) : NULL;
        const char *parts[] = { d && *d ? d : NULL, where,
                                withheld ? "The server's detail is not shown, as it may hold row values." : NULL };
        StrBuf b = {};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                if (parts[i])
                        strbuf_appendf(&b, "%s%s", b.len ? " " : "", parts[i]);
        e->detail = b.len ? strbuf_steal(&b) : NULL;
        strbuf_done(&b);
        /* The server's hint only with its whole message: a hint of the code's may hold values too. */
        if (keep_primary && !withheld && !pl)
                e->hint = trim_newline(s->hint);
        else if (!keep_primary || withheld)
                e->hint = xstrdup("The database server's log has the whole message.");
        if (s->table) {
                _cleanup_free_ char *sc = s->schema ? xstrdup(s->schema) : NULL, *tb = xstrdup(s->table);
                QualifiedName q = { .schema = sc, .name = tb };
                e->table = qualified_name_display(&q);
        }
}

static int error_from_result(Pg *pg, const PGresult *r, PgError *err) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        /* A pipeline left on a lost connection (pg_pipeline()): libpq's message would be about
         * the pipeline, not the connection. */
        bool stuck = !state && PQpipelineStatus(pg->conn) != PQ_PIPELINE_OFF;
        if (err) {
                PgServerError s = {
                        .sqlstate = state,
                        .primary = primary ? primary : stuck ? "lost connection to the database server" : PQerrorMessage(pg->conn),
                        .detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL,
                        .hint = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL,
                        .context = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL,
                        .source_file = r ? PQresultErrorField(r, PG_DIAG_SOURCE_FILE) : NULL,
                        .schema = r ? PQresultErrorField(r, PG_DIAG_SCHEMA_NAME) : NULL,
                        .table = r ? PQresultErrorField(r, PG_DIAG_TABLE_NAME) : NULL,
                        .input = pg->input_errors,
                };
                pg_error_from_server(err, &s);
                if (!err->primary || !*err->primary) {
                        free(err->primary);
                        err->primary = xstrdup("lost connection to the database server");
                }
        }
        if (!state && (PQstatus(pg->conn) != CONNECTION_OK || stuck))
                return PG_ERR_CONNECTION;
        if (!state)
                return PG_ERR_OTHER;
        return (int) pg_error_class(state);
}

/* Takes ownership of r: returns 0 and hands it to *ret (or frees it), or classifies the error. */
static int result_status(Pg *pg, PGresult *r, PGresult **ret, PgError *err) {
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                int k = error_from_result(pg, r, err);
                if (r)
                        PQclear(r);
                if (ret)
                        *ret = NULL;
                return k;
        }
        if (ret)
                *ret = r;
        else
                PQclear(r);
        return 0;
}

int pg_exec(Pg *pg, PGresult **ret, PgError *err, const char *sql, int nparams, const char *const *params) {
        return result_status(pg, PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0), ret, err);
}

int pg_exec_input(Pg *pg, PGresult **ret, PgError *err, const char *sql, int nparams, const char *const *params) {
        pg->input_errors = true;
        int k = pg_exec(pg, ret, err, sql, nparams, params);
        pg->input_errors = false;
        return k;
}

int pg_exec0(Pg *pg, PGresult **ret, PgError *err, const char *sql) {
        return pg_exec(pg, ret, err, sql, 0, NULL);
}

int pg_value(Pg *pg, char **ret, PgError *err, const char *sql, int nparams, const char *const *params) {
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(pg, &r, err, sql, nparams, params);
        if (k)
                return k;
        if (PQntuples(r) < 1 || PQnfields(r) < 1) {
                pg_error_set(err, NULL, NULL, NULL, "query returned no rows");
                return PG_ERR_OTHER;
        }
        *ret = PQgetisnull(r, 0, 0) ? NULL : xstrdup(PQgetvalue(r, 0, 0));
        return 0;
}

bool pg_connection_ok(const Pg *pg) {
        return pg && pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

static void notice_ignore(void *arg, const PGresult *res) {
        (void) arg;
        (void) res;
}

int pg_connect(const char *conninfo, const PgSettings *s, Pg **ret, PgError *err) {
        const char *keys[] = { "dbname", "application_name", "options", NULL };
        const char *vals[] = { conninfo && *conninfo ? conninfo : NULL, "retentiond", NULL, NULL };
        PgSettings settings = s ? *s : (PgSettings) {};
        if (settings.lock_timeout_ms < 0 || (!s))
                settings.lock_timeout_ms = PG_DEFAULT_LOCK_TIMEOUT_MS;
        if (settings.statement_timeout_ms < 0 || (!s))
                settings.statement_timeout_ms = PG_DEFAULT_STATEMENT_TIMEOUT_MS;

        /* Session settings travel in the startup packet, so they hold from the first
         * statement on and cannot be forgotten after a reconnect. */
        /* The caller's own options (conninfo "options=", else PGOPTIONS), e.g. "-c TimeZone=...",
         * come first; ours follow and win for the settings we need. */
        _cleanup_free_ char *user_options = NULL;
        if (conninfo && *conninfo) {
                PQconninfoOption *co = PQconninfoParse(conninfo, NULL);
                for (PQconninfoOption *o = co; o && o->keyword; o++)
                        if (streq(o->keyword, "options") && o->val && *o->val)
                                user_options = xstrdup(o->val);
                PQconninfoFree(co);
        }
        const char *pgoptions = getenv("PGOPTIONS");
        if (!user_options && pgoptions && *pgoptions)
                user_options = xstrdup(pgoptions);
        _cleanup_free_ char *options = xasprintf(
                "%s%s-c lock_timeout=%ld -c statement_timeout=%ld -c synchronous_commit=off -c jit=off"
                " -c DateStyle=ISO -c IntervalStyle=postgres -c idle_in_transaction_session_timeout=%ld"
                " -c log_parameter_max_length_on_error=0%s",
                user_options ? user_options : "", user_options ? " " : "", settings.lock_timeout_ms, settings.statement_timeout_ms,
                settings.statement_timeout_ms * 2 + 10000,
                settings.read_only ? " -c default_transaction_read_only=on" : "");
        vals[2] = options;
        if (!vals[0]) {
                keys[0] = "application_name";
                vals[0] = "retentiond";
                keys[1] = "options";
                vals[1] = options;
                keys[2] = NULL;
        }

        PGconn *c = PQconnectdbParams(keys, vals, 1);
        if (!c)
                oom();
        if (PQstatus(c) != CONNECTION_OK) {
                _cleanup_free_ char *m = trim_newline(PQerrorMessage(c));
                pg_error_set(err, "08006", NULL,
                             "Check the connection string given with -d/--database or the PG* environment variables, "
                             "and that the server is running.",
                             "could not connect to the database: %s", m);
                PQfinish(c);
                return PG_ERR_CONNECTION;
        }
        PQsetNoticeReceiver(c, notice_ignore, NULL);
        Pg *pg = xcalloc(1, sizeof(Pg));
        pg->conn = c;
        pg->server_version = PQserverVersion(c);
        pg->settings = settings;
        if (pg->server_version < 130000) {
                pg_error_set(err, NULL, NULL, "Upgrade PostgreSQL to version 13 or later.",
                             "PostgreSQL %d.%d is not supported", pg->server_version / 10000,
                             pg->server_version % 10000);
                pg_free(pg);
                return PG_ERR_OTHER;
        }
        /* No statement parameter ever carries a secret (the hash key reaches the server by COPY
         * only: pg_copy_in()), but they carry personal values such as hold keys: keep them out
         * of the server log where the role may. log_parameter_max_length_on_error (any role)
         * is set in the startup packet above; log_parameter_max_length only a superuser, or from
         * PostgreSQL 15 a role granted SET on it, may set; for others nothing changes. */
        PGresult *lr = PQexec(c, pg->server_version >= 150000
                                         ? "SELECT set_config('log_parameter_max_length', '0', false),"
                                           " set_config('log_parameter_max_length_on_error', '0', false)"
                                           " WHERE has_parameter_privilege('log_parameter_max_length', 'SET')"
                                           " AND has_parameter_privilege('log_parameter_max_length_on_error', 'SET')"
                                         : "SELECT set_config('log_parameter_max_length', '0', false),"
                                           " set_config('log_parameter_max_length_on_error', '0', false)"
                                           " WHERE (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)");
        PQclear(lr);
        /* Whether wal_compression may be switched on for this session (and with which
         * algorithm), for the batches that run while the application writes. */
        /* (Not from pg_settings: reading that view costs a millisecond. Whether the server has
         * lz4 shows when it is first set: see pace.c, pace_gentle_wal().) */
        lr = PQexec(c, pg->server_version >= 150000
                               ? "SELECT 'lz4' WHERE current_setting('wal_compression') = 'off'"
                                 " AND has_parameter_privilege('wal_compression', 'SET')"
                               : "SELECT 'on' WHERE current_setting('wal_compression') = 'off'"
                                 " AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)");
        if (PQresultStatus(lr) == PGRES_TUPLES_OK && PQntuples(lr) == 1)
                snprintf(pg->wal_compression, sizeof(pg->wal_compression), "%s", PQgetvalue(lr, 0, 0));
        PQclear(lr);
        *ret = pg;
        return 0;
}

void pg_free(Pg *pg) {
        if (!pg)
                return;
        if (pg->conn)
                PQfinish(pg->conn);
        free(pg);
}

char *pg_literal(const char *s) {
        StrBuf b = {};
        bool backslash = strchr(s, '\\') != NULL;
        if (backslash)
                strbuf_appendc(&b, 'E');
        strbuf_appendc(&b, '\'');
        for (const char *p = s; *p; p++) {
                if (*p == '\'' || *p == '\\')
                        strbuf_appendc(&b, *p);
                strbuf_appendc(&b, *p);
        }
        strbuf_appendc(&b, '\'');
        return strbuf_steal(&b);
}

char *pg_text_array(const char *const *v, size_t n) {
        StrBuf b = {};
        strbuf_append(&b, "{");
        for (size_t i = 0; i < n; i++) {
                strbuf_append(&b, i ? ",\"" : "\"");
                for (const char *c = v[i]; *c; c++) {
                        if (*c == '"' || *c == '\\')
                                strbuf_appendc(&b, '\\');
                        strbuf_appendc(&b, *c);
                }
                strbuf_appendc(&b, '"');
        }
        strbuf_append(&b, "}");
        return strbuf_steal(&b);
}

int pg_exec_script(Pg *pg, PgError *err, const char *sql) {
        if (!PQsendQuery(pg->conn, sql)) {
                pg_error_set(err, NULL, NULL, NULL, "could not send script: %s", PQerrorMessage(pg->conn));
                return PG_ERR_CONNECTION;
        }
        int k = 0;
        PGresult *r;
        while ((r = PQgetResult(pg->conn))) {
                ExecStatusType st = PQresultStatus(r);
                if (k == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
                        k = error_from_result(pg, r, err);
                PQclear(r);
        }
        return k;
}


int pg_prepare(Pg *pg, PgError *err, const char *name, const char *sql, int nparams) {
        return result_status(pg, PQprepare(pg->conn, name, sql, nparams, NULL), NULL, err);
}

int pg_exec_prepared(Pg *pg, PGresult **ret, PgError *err, const char *name, int nparams, const char *const *params) {
        return result_status(pg, PQexecPrepared(pg->conn, name, nparams, params, NULL, NULL, 0), ret, err);
}

int pg_exec_cached(Pg *pg, bool *prepared, const char *name, const char *sql, int nparams, const char *const *params,
                   PGresult **ret, PgError *err) {
        for (unsigned attempt = 0;; attempt++) {
                PgError e = {};
                int k = 0;
                if (!*prepared) {
                        k = pg_prepare(pg, &e, name, sql, nparams);
                        *prepared = k == 0;
                }
                if (k == 0)
                        k = pg_exec_prepared(pg, ret, &e, name, nparams, params);
                /* Gone from the session (DISCARD ALL, a pooler's reset): prepared again at the next
                 * use, or now when no transaction was open (a failed one must be rolled back first). */
                if (k && streq(e.sqlstate, "26000")) {
                        *prepared = false;
                        if (attempt == 0 && PQtransactionStatus(pg->conn) == PQTRANS_IDLE) {
                                pg_error_done(&e);
                                continue;
                        }
                }
                if (k) {
                        pg_error_done(err);
                        *err = e;
                }
                return k;
        }
}

/* Reads one statement's answer in a pipeline: its result, then the NULL that ends it. */
static PGresult *pipeline_result(PGconn *c) {
        PGresult *r = PQgetResult(c), *extra;
        if (r)
                while ((extra = PQgetResult(c)))
                        PQclear(extra);
        return r;
}

int pg_pipeline(Pg *pg, PgPipeStmt *stmts, size_t n, size_t *failed, PgError *err) {
        PGconn *c = pg->conn;
        if (failed)
                *failed = SIZE_MAX;
        for (size_t i = 0; i < n; i++)
                if (stmts[i].result)
                        *stmts[i].result = NULL;
        if (!PQenterPipelineMode(c)) {
                _cleanup_free_ char *m = trim_newline(PQerrorMessage(c));
                pg_error_set(err, NULL, NULL, NULL, "could not start a pipeline: %s", m);
                return PQstatus(c) == CONNECTION_OK ? PG_ERR_OTHER : PG_ERR_CONNECTION;
        }
        /* What was sent, per statement: 2 its Prepare, 1 its execution. */
        _cleanup_free_ unsigned char *sent = xcalloc(n ? n : 1, 1);
        size_t n_sent = 0;
        bool send_failed = false;
        for (size_t i = 0; i < n && !send_failed; i++) {
                PgPipeStmt *s = &stmts[i];
                if (s->prepared && !*s->prepared) {
                        if (!PQsendPrepare(c, s->name, s->sql, s->nparams, NULL)) {
                                send_failed = true;
                                break;
                        }
                        sent[i] = 2;
                }
                int ok = s->name ? PQsendQueryPrepared(c, s->name, s->nparams, s->params, NULL, NULL, 0)
                                 : PQsendQueryParams(c, s->sql, s->nparams, NULL, s->params, NULL, NULL, 0);
                if (!ok) {
                        send_failed = true;
                        break;
                }
                sent[i] |= 1;
                n_sent = i + 1;
        }
        int k = 0;
        if (send_failed) {
                _cleanup_free_ char *m = trim_newline(PQerrorMessage(c));
                pg_error_set(err, NULL, NULL, NULL, "could not send a statement: %s", m);
                k = PQstatus(c) == CONNECTION_OK ? PG_ERR_OTHER : PG_ERR_CONNECTION;
                if (failed)
                        *failed = n_sent;
        }
        if (!PQpipelineSync(c)) {
                /* Without the Sync the server answers nothing: there is nothing to read. */
                if (k == 0) {
                        _cleanup_free_ char *m = trim_newline(PQerrorMessage(c));
                        pg_error_set(err, NULL, NULL, NULL, "could not send a statement: %s", m);
                        k = PG_ERR_CONNECTION;
                }
                memset(sent, 0, n ? n : 1);
        }
        for (size_t i = 0; i < n && sent[i]; i++) {
                PgPipeStmt *s = &stmts[i];
                if ((sent[i] & 2) && s->prepared) {
                        PGresult *r = pipeline_result(c);
                        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
                        if (st == PGRES_COMMAND_OK)
                                *s->prepared = true;
                        else if (st != PGRES_PIPELINE_ABORTED && k == 0) {
                                k = error_from_result(pg, r, err);
                                if (failed)
                                        *failed = i;
                        }
                        if (r)
                                PQclear(r);
                }
                if (!(sent[i] & 1))
                        break;
                PGresult *r = pipeline_result(c);
                ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
                if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                        if (s->result && k == 0) {
                                *s->result = r;
                                r = NULL;
                        }
                } else if (st == PGRES_PIPELINE_ABORTED) {
                        /* Not run: right after a failure, and never otherwise. */
                        if (k == 0) {
                                pg_error_set(err, NULL, NULL, NULL, "a statement of a pipeline was not run");
                                k = PG_ERR_OTHER;
                                if (failed)
                                        *failed = i;
                        }
                } else {
                        /* Gone from the session (DISCARD ALL, a pooler's reset): prepared again at
                         * the next use. */
                        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
                        if (s->prepared && streq_ptr(state, "26000"))
                                *s->prepared = false;
                        if (k == 0) {
                                k = error_from_result(pg, r, err);
                                if (failed)
                                        *failed = i;
                        }
                }
                if (r)
                        PQclear(r);
                if (!r && st == PGRES_FATAL_ERROR && PQstatus(c) != CONNECTION_OK)
                        break; /* the connection is gone: nothing more will come */
        }
        /* The Sync's answer (PGRES_PIPELINE_SYNC), after which the pipeline may end. An error may
         * come in its place (the server ended the session after the last statement: 57P01): every
         * statement did run, their answers say so, and that is what this returns; the next
         * statement finds the connection gone. A NULL ends one answer; a few in a row mean
         * nothing more will come. */
        for (unsigned nulls = 0; nulls < 3 && PQstatus(c) == CONNECTION_OK;) {
                PGresult *r = PQgetResult(c);
                if (!r) {
                        nulls++;
                        continue;
                }
                nulls = 0;
                ExecStatusType st = PQresultStatus(r);
                PQclear(r);
                if (st == PGRES_PIPELINE_SYNC)
                        break;
        }
        /* Left on a lost connection (libpq keeps what it could not deliver): pg_exec() and the
         * rest then say the connection is lost (error_from_result()). */
        if (!PQexitPipelineMode(c) && k == 0 && PQstatus(c) == CONNECTION_OK) {
                _cleanup_free_ char *m = trim_newline(PQerrorMessage(c));
                pg_error_set(err, NULL, NULL, NULL, "could not end a pipeline: %s", m);
                k = PQstatus(c) == CONNECTION_OK ? PG_ERR_OTHER : PG_ERR_CONNECTION;
        }
        if (k)
                for (size_t i = 0; i < n; i++)
                        if (stmts[i].result && *stmts[i].result) {
                                PQclear(*stmts[i].result);
                                *stmts[i].result = NULL;
                        }
        return k;
}

int pg_describe_prepared(Pg *pg, PGresult **ret, PgError *err, const char *name) {
        return result_status(pg, PQdescribePrepared(pg->conn, name), ret, err);
}

void pg_deallocate(Pg *pg, const char *name) {
        if (!pg_connection_ok(pg))
                return;
        _cleanup_free_ char *q = ident_quote(name);
        _cleanup_free_ char *sql = xasprintf("DEALLOCATE %s", q);
        PgError e = {};
        (void) pg_exec0(pg, NULL, &e, sql);
        pg_error_done(&e);
}

int pg_copy_in(Pg *pg, PgError *err, const char *sql, const void *data, size_t len) {
        PGresult *r;
        if (!PQsendQuery(pg->conn, sql)) {
                pg_error_set(err, NULL, NULL, NULL, "could not send COPY: %s", PQerrorMessage(pg->conn));
                return PG_ERR_CONNECTION;
        }
        r = PQgetResult(pg->conn);
        if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
                int k = result_status(pg, r, NULL, err); /* an error, or a statement that is no COPY FROM STDIN */
                while ((r = PQgetResult(pg->conn)))
                        PQclear(r);
                if (k == 0) {
                        pg_error_set(err, NULL, NULL, NULL, "not a COPY FROM STDIN");
                        k = PG_ERR_OTHER;
                }
                return k;
        }
        PQclear(r);
        if (PQputCopyData(pg->conn, data, (int) len) != 1 || PQputCopyEnd(pg->conn, NULL) != 1) {
                _cleanup_free_ char *m = trim_newline(PQerrorMessage(pg->conn));
                pg_error_set(err, NULL, NULL, NULL, "could not send COPY data: %s", m);
                while ((r = PQgetResult(pg->conn)))
                        PQclear(r);
                return PG_ERR_CONNECTION;
        }
        int k = result_status(pg, PQgetResult(pg->conn), NULL, err);
        while ((r = PQgetResult(pg->conn)))
                PQclear(r);
        return k;
}

void pg_rollback_quietly(Pg *pg) {
        if (!pg_connection_ok(pg) || PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
                return;
        PgError ig = {};
        (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
        pg_error_done(&ig);
}

int64_t pg_int64_at(const PGresult *r, int row, int col) {
        if (PQgetisnull(r, row, col))
                return 0;
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}
