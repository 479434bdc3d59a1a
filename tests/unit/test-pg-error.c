/* test-pg-error.c — what of a server's error the engine repeats (pg_error_from_server()): never
 * a value of a row. The fields are the ones PostgreSQL 15 sends for each case (its context lines,
 * its source files), as seen from the engine's statements; exact texts, so that any change shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg.h"

#define VALUE "alice@example.com"
#define WITHHELD_DETAIL "The server's detail is not shown, as it may hold row values."
#define LOG_HINT "The database server's log has the whole message."

static void screened(const PgServerError *s, const char *primary, const char *detail, const char *hint) {
        PgError e = {};
        pg_error_from_server(&e, s);
        assert_string_equal(e.sqlstate, s->sqlstate ? s->sqlstate : "");
        assert_string_equal(e.primary, primary);
        if (detail)
                assert_string_equal(e.detail, detail);
        else
                assert_null(e.detail);
        if (hint)
                assert_string_equal(e.hint, hint);
        else
                assert_null(e.hint);
        const char *all[] = { e.primary, e.detail, e.hint };
        for (size_t i = 0; i < 3; i++)
                if (all[i] && strstr(all[i], VALUE))
                        fail_msg("a row value got through: %s", all[i]);
        pg_error_done(&e);
}

/* PostgreSQL's own integrity errors: the primary names objects, the detail holds the key. */
static void test_integrity(void **state) {
        (void) state;
        PgServerError s = { .sqlstate = "23505",
                            .primary = "duplicate key value violates unique constraint \"uniq_email_key\"",
                            .detail = "Key (email)=(" VALUE ") already exists.",
                            .source_file = "nbtinsert.c",
                            .schema = "public",
                            .table = "uniq" };
        screened(&s, "duplicate key value violates unique constraint \"uniq_email_key\"", WITHHELD_DETAIL, LOG_HINT);
        /* raised in a trigger's INSERT: the function is named, the statement's text is not read */
        s.context = "SQL statement \"INSERT INTO public.uniq VALUES ('" VALUE "')\"\n"
                    "PL/pgSQL function arch() line 1 at SQL statement";
        screened(&s, "duplicate key value violates unique constraint \"uniq_email_key\"",
                 "Raised in function arch(), which the statement ran. " WITHHELD_DETAIL,
                 LOG_HINT);
        PgServerError nn = { .sqlstate = "23502",
                             .primary = "null value in column \"email\" of relation \"people\" violates not-null constraint",
                             .detail = "Failing row contains (1, null, " VALUE ").",
                             .source_file = "execMain.c" };
        screened(&nn, nn.primary, WITHHELD_DETAIL, LOG_HINT);
        PgServerError fk = { .sqlstate = "23503",
                             .primary = "update or delete on table \"accounts\" violates foreign key constraint \"o_fk\" on "
                                        "table \"orders\"",
                             .detail = "Key (id)=(42) is still referenced from table \"orders\".",
                             .source_file = "ri_triggers.c" };
        screened(&fk, fk.primary, WITHHELD_DETAIL, LOG_HINT);
}

/* A RAISE in code of the database: its words are the code's, whatever the SQLSTATE. */
static void test_raised_by_code(void **state) {
        (void) state;
        PgServerError s = { .sqlstate = "P0001",
                            .primary = "no deleting " VALUE,
                            .detail = "email " VALUE,
                            .hint = "hint " VALUE,
                            .context = "PL/pgSQL function arch() line 1 at RAISE",
                            .source_file = "pl_exec.c" };
        screened(&s,
                 "function arch() of the database raised an error (SQLSTATE P0001); its message is not shown, as it may "
                 "hold row values",
                 "Raised in function arch(), which the statement ran. " WITHHELD_DETAIL,
                 LOG_HINT);
        /* with an SQLSTATE of PostgreSQL's own choosing: still the code's words */
        s.sqlstate = "23514";
        s.detail = NULL;
        s.hint = NULL;
        s.context = "PL/pgSQL function app.\"Guard\"() line 4 at RAISE\nSQL function \"outer_fn\" statement 1";
        screened(&s,
                 "function app.\"Guard\"() of the database raised an error (SQLSTATE 23514); its message is not shown, as "
                 "it may hold row values",
                 "Raised in function app.\"Guard\"(), which the statement ran.",
                 LOG_HINT);
        /* another language, no context: code of the database */
        PgServerError py = { .sqlstate = "XX000", .primary = "plpy: " VALUE, .source_file = "plpy_elog.c" };
        screened(&py, "code of the database raised an error (SQLSTATE XX000); its message is not shown, as it may hold row values",
                 NULL, LOG_HINT);
        /* a function outside the retention schema whose name merely starts so is not the engine's */
        PgServerError q = { .sqlstate = "P0001",
                            .primary = VALUE,
                            .context = "PL/pgSQL function \"retention.evil\"() line 1 at RAISE",
                            .source_file = "pl_exec.c" };
        screened(&q,
                 "function \"retention.evil\"() of the database raised an error (SQLSTATE P0001); its message is not "
                 "shown, as it may hold row values",
                 "Raised in function \"retention.evil\"(), which the statement ran.",
                 LOG_HINT);
        /* a SQL function's frame */
        PgServerError f = { .sqlstate = "P0001", .primary = VALUE, .context = "SQL function \"f\" statement 1",
                            .source_file = "pl_exec.c" };
        screened(&f,
                 "function f of the database raised an error (SQLSTATE P0001); its message is not shown, as it may hold "
                 "row values",
                 "Raised in function f, which the statement ran.",
                 LOG_HINT);
}

/* The retention schema's own functions: counts and names, kept whole, also when a table owner's
 * trigger called them. */
static void test_own(void **state) {
        (void) state;
        PgServerError s = { .sqlstate = "23514",
                            .primary = "the rows skipped by rule run 7 are not the sum of their reasons",
                            .detail = "Skipped 3; locked 1, still referenced 1, refused 0, unfinished 0.",
                            .context = "PL/pgSQL function retention.finish_rule_run(bigint,text,text,text,bigint,bigint,"
                                       "bigint,bigint,bigint,bigint,bigint) line 8 at RAISE",
                            .source_file = "pl_exec.c" };
        screened(&s, s.primary, s.detail, NULL);
        PgServerError t = { .sqlstate = "42501",
                            .primary = "retention.release_hold() cannot be called from a trigger",
                            .detail = "Only retentiond's own statements write the audit trail.",
                            .context = "PL/pgSQL function retention.outside_triggers(text) line 3 at RAISE\n"
                                       "SQL statement \"SELECT retention.outside_triggers('retention.release_hold()')\"\n"
                                       "PL/pgSQL function retention.release_hold(bigint,text) line 5 at PERFORM\n"
                                       "PL/pgSQL function app.sweep() line 1 at PERFORM",
                            .source_file = "pl_exec.c" };
        screened(&t, t.primary, t.detail, NULL);
}

/* Data exceptions quote the value they could not read; unless it is the operator's own input. */
static void test_data_exception(void **state) {
        (void) state;
        PgServerError s = { .sqlstate = "22P02",
                            .primary = "invalid input syntax for type inet: \"" VALUE "\"",
                            .source_file = "network.c" };
        screened(&s,
                 "the database could not convert, compute or check a value (SQLSTATE 22P02); its message is not shown, "
                 "as it may hold row values",
                 NULL, LOG_HINT);
        PgServerError in = { .sqlstate = "22P02", .primary = "invalid input syntax for type integer: \"five\"",
                             .source_file = "numutils.c", .input = true }; /* a hold's key as the operator typed it */
        screened(&in, in.primary, NULL, NULL);
        /* raised in a trigger's function: named */
        s.context = "PL/pgSQL function arch() line 1 at PERFORM";
        screened(&s,
                 "function arch() of the database raised an error (SQLSTATE 22P02); its message is not shown, as it may "
                 "hold row values",
                 "Raised in function arch(), which the statement ran.", LOG_HINT);
        /* WITH CHECK OPTION: its detail is the failing row */
        PgServerError wco = { .sqlstate = "44000",
                              .primary = "new row violates check option for view \"v\"",
                              .detail = "Failing row contains (-1, " VALUE ").",
                              .source_file = "execMain.c" };
        screened(&wco,
                 "the database could not convert, compute or check a value (SQLSTATE 44000); its message is not shown, as "
                 "it may hold row values",
                 WITHHELD_DETAIL, LOG_HINT);
}

/* Frames are read only in their exact forms: a statement's text, which may hold values and span
 * lines, is never taken for one. */
static void test_frames(void **state) {
        (void) state;
        /* a value with a line break and "PL/..." in it, in the text of a trigger's dynamic INSERT */
        PgServerError s = { .sqlstate = "23505",
                            .primary = "duplicate key value violates unique constraint \"u_key\"",
                            .detail = "Key (n)=(Note:) already exists.",
                            .context = "SQL statement \"INSERT INTO t VALUES ('Note:\n"
                                       "PL/SQL \"" VALUE "\" x')\"\n"
                                       "PL/pgSQL assignment \"n := '" VALUE "'\"\n"
                                       "PL/pgSQL function app.f() line 3 at EXECUTE",
                            .source_file = "nbtinsert.c" };
        screened(&s, s.primary, "Raised in function app.f(), which the statement ran. " WITHHELD_DETAIL, LOG_HINT);
        /* the signature ends at its ")": not "app.f() during function exit" */
        PgServerError x = { .sqlstate = "42804",
                            .primary = "returned record type does not match expected record type",
                            .context = "PL/pgSQL function app.f(integer,text) during function exit",
                            .source_file = "pl_exec.c" };
        screened(&x,
                 "function app.f(integer,text) of the database raised an error (SQLSTATE 42804); its message is not shown, "
                 "as it may hold row values",
                 "Raised in function app.f(integer,text), which the statement ran.", LOG_HINT);
        /* a name under a foreign frame is not repeated when PostgreSQL built it from a value */
        PgServerError nm = { .sqlstate = "42P01",
                             .primary = "relation \"archive." VALUE "\" does not exist",
                             .context = "SQL statement \"INSERT INTO archive.\"" VALUE "\" VALUES (1)\"\n"
                                        "PL/pgSQL function app.route() line 4 at EXECUTE",
                             .source_file = "namespace.c" };
        screened(&nm,
                 "function app.route() of the database raised an error (SQLSTATE 42P01); its message is not shown, as it "
                 "may hold row values",
                 "Raised in function app.route(), which the statement ran.", LOG_HINT);
        /* a language this screen does not know, raising P0001: the code's own words */
        PgServerError v8 = { .sqlstate = "P0001", .primary = VALUE, .source_file = "plv8.cc" };
        screened(&v8, "code of the database raised an error (SQLSTATE P0001); its message is not shown, as it may hold row values",
                 NULL, LOG_HINT);
        /* only PL/pgSQL frames of the schema retention are the engine's: not a bare SQL function name */
        PgServerError bare = { .sqlstate = "22P02",
                               .primary = "invalid input syntax for type integer: \"" VALUE "\"",
                               .context = "SQL function \"retention.x\" statement 1",
                               .source_file = "numutils.c" };
        screened(&bare,
                 "function retention.x of the database raised an error (SQLSTATE 22P02); its message is not shown, as it "
                 "may hold row values",
                 "Raised in function retention.x, which the statement ran.", LOG_HINT);
        /* a frame that is not at the start of a line is no frame */
        PgServerError mid = { .sqlstate = "P0001", .primary = VALUE,
                              .context = "SQL statement \"SELECT 1 -- PL/pgSQL function retention.y() line 1 at RAISE\"",
                              .source_file = "pl_exec.c" };
        screened(&mid, "code of the database raised an error (SQLSTATE P0001); its message is not shown, as it may hold row values",
                 NULL, LOG_HINT);
}

/* What carries no row value stays whole: locks, timeouts, permissions (with where, when a
 * trigger's function hit it), a lost connection. */
static void test_kept(void **state) {
        (void) state;
        PgServerError lock = { .sqlstate = "55P03", .primary = "canceling statement due to lock timeout",
                               .source_file = "postgres.c" };
        screened(&lock, lock.primary, NULL, NULL);
        PgServerError perm = { .sqlstate = "42501",
                               .primary = "permission denied for table audit_log",
                               .context = "SQL statement \"INSERT INTO app.audit_log VALUES (OLD.id)\"\n"
                                          "PL/pgSQL function app.log_delete() line 2 at SQL statement",
                               .source_file = "aclchk.c" };
        screened(&perm, "permission denied for table audit_log",
                 "Raised in function app.log_delete(), which the statement ran.",
                 NULL);
        PgServerError hint = { .sqlstate = "42703",
                               .primary = "column \"x\" does not exist",
                               .hint = "Perhaps you meant to reference the column \"t.y\".",
                               .source_file = "parse_relation.c" };
        screened(&hint, hint.primary, NULL, hint.hint);
        PgServerError conn = { .primary = "server closed the connection unexpectedly\n" };
        screened(&conn, "server closed the connection unexpectedly", NULL, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_integrity), cmocka_unit_test(test_raised_by_code), cmocka_unit_test(test_own),
                cmocka_unit_test(test_data_exception), cmocka_unit_test(test_frames), cmocka_unit_test(test_kept),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
