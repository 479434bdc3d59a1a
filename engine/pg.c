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

/* The innermost function of the database in an error's context (its lines go from the innermost
 * frame out): "arch()" of "PL/pgSQL function arch() line 3 at SQL statement", "f" of "SQL function
 * \"f\" statement 1", or of another PL's "PL/Python function \"f\"". NULL when none. Lines
 * that quote a statement's text ("SQL statement \"...\"") are skipped: they may hold values. */
static char *context_function(const char *context) {
        for (const char *l = context; l && *l;) {
                const char *end = strchr(l, '\n');
                size_t n = end ? (size_t) (end - l) : strlen(l);
                const char *rest = NULL, *stop = NULL;
                if (n > 18 && strncmp(l, "PL/pgSQL function ", 18) == 0) {
                        rest = l + 18;
                        /* the signature ends before " line N at ..." (or is the whole line) */
                        for (const char *q = l + n; q > rest; q--)
                                if (strncmp(q, " line ", 6) == 0 && q + 6 < l + n && q[6] >= '0' && q[6] <= '9') {
                                        stop = q;
                                        break;
                                }
                        if (!stop)
                                stop = l + n;
                } else if ((n > 14 && strncmp(l, "SQL function \"", 14) == 0) ||
                           (n > 3 && strncmp(l, "PL/", 3) == 0 && memchr(l, '"', n))) {
                        rest = (const char *) memchr(l, '"', n) + 1;
                        /* the name as quoted: up to the last double quote of the line */
                        for (const char *q = l + n - 1; q >= rest; q--)
                                if (*q == '"') {
                                        stop = q;
                                        break;
                                }
                }
                if (rest && stop && stop > rest)
                        return xstrndup(rest, (size_t) (stop - rest));
                l = end ? end + 1 : NULL;
        }
        return NULL;
}

/* Whether the server raised the error from a procedural language's RAISE (or its like): then its
 * words are the code's own, whatever SQLSTATE it chose. */
static bool raised_by_pl(const char *source_file) {
        static const char *const pl[] = { "pl_exec.c", "plpy_elog.c", "plpy_plpymodule.c", "plperl.c", "pltcl.c" };
        if (!source_file)
                return false;
        for (size_t i = 0; i < sizeof(pl) / sizeof(pl[0]); i++)
                if (streq(source_file, pl[i]))
                        return true;
        return false;
}

void pg_error_from_server(PgError *e, const PgServerError *s) {
        pg_error_done(e);
        const char *state = s->sqlstate ? s->sqlstate : "";
        snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", state);
        _cleanup_free_ char *fn = context_function(s->context);
        /* The retention schema's functions are the engine's own: their words are counts and names.
         * Only the schema's owner creates functions there; any other function that calls one is
         * outside it, and the innermost frame is the one that raised. (Code that sets out to forge a
         * context line, in the text of a statement it runs, chooses its own words: this screen is
         * against disclosure by accident, not by a table owner who could write the rows anywhere.) */
        bool own = fn && strncmp(fn, "retention.", 10) == 0;
        bool pl = !own && raised_by_pl(s->source_file);
        bool data = strncmp(state, "22", 2) == 0 && !s->input;
        bool integrity = strncmp(state, "23", 2) == 0;
        bool keep_primary = own || (!pl && !data);
        bool keep_detail = own || (!pl && !data && !integrity);
        if (keep_primary)
                e->primary = trim_newline(s->primary);
        else if (pl)
                e->primary = fn ? xasprintf("function %s of the database raised an error (SQLSTATE %s); its message is not "
                                            "shown, as it may hold row values", fn, state)
                                : xasprintf("code of the database raised an error (SQLSTATE %s); its message is not shown, as "
                                            "it may hold row values", state);
        else
                e->primary = xasprintf("the database could not convert or compute a value (SQLSTATE %s); its message is "
                                       "not shown, as it may hold row values", state);
        /* The detail: the server's when kept; where the error was raised when a function of the
         * database raised it (the trigger's function is what the operator looks for). */
        _cleanup_free_ char *d = keep_detail ? trim_newline(s->detail) : NULL;
        bool withheld = !keep_detail && s->detail && *s->detail;
        _cleanup_free_ char *where = fn && !own ? xasprintf("Raised in function %s, which the statement ran (a trigger's or "
                                                            "a rule's of a table it changed, or a function they call).", fn)
                                                : NULL;
        const char *parts[] = { d && *d ? d : NULL, where,
                                withheld ? "The server's detail is not shown, as it may hold row values." : NULL };
        StrBuf b = {};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                if (parts[i])
                        strbuf_appendf(&b, "%s%s", b.len ? " " : "", parts[i]);
        e->detail = b.len ? strbuf_steal(&b) : NULL;
        strbuf_done(&b);
        e->hint = keep_primary && !withheld ? trim_newline(s->hint) : xstrdup("The database server's log has the whole message.");
        if (s->table) {
                _cleanup_free_ char *sc = s->schema ? xstrdup(s->schema) : NULL, *tb = xstrdup(s->table);
                QualifiedName q = { .schema = sc, .name = tb };
                e->table = qualified_name_display(&q);
        }
}

static int error_from_result(Pg *pg, const PGresult *r, PgError *err) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (err) {
                PgServerError s = {
                        .sqlstate = state,
                        .primary = primary ? primary : PQerrorMessage(pg->conn),
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
        if (!state && PQstatus(pg->conn) != CONNECTION_OK)
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
        if (!pg_connection_ok(pg))
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
