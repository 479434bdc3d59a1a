/* test-ident.c — unit tests for SQL identifier parsing (folding, quoting) and quoting back.
 * Identifiers must never reach SQL unquoted; these tests pin the exact forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ident.h"

static void ok(const char *s, const char *want) {
        char *v = NULL;
        size_t off = 999;
        IdentError e = ident_parse(s, &v, &off);
        if (e != IDENT_OK)
                fail_msg("\"%s\": unexpected error %s at %zu", s, ident_error_to_string(e), off);
        assert_string_equal(v, want);
        free(v);
}

static void bad(const char *s, IdentError want, size_t want_off) {
        char *v = NULL;
        size_t off = 999;
        IdentError e = ident_parse(s, &v, &off);
        if (e != want)
                fail_msg("\"%s\": got %s, want %s", s, ident_error_to_string(e), ident_error_to_string(want));
        assert_null(v);
        assert_int_equal(off, want_off);
}

static void qok(const char *s, const char *schema, const char *name) {
        QualifiedName q = {};
        size_t off = 999;
        IdentError e = qualified_name_parse(s, &q, &off);
        if (e != IDENT_OK)
                fail_msg("\"%s\": unexpected error %s at %zu", s, ident_error_to_string(e), off);
        if (schema)
                assert_string_equal(q.schema, schema);
        else
                assert_null(q.schema);
        assert_string_equal(q.name, name);
        qualified_name_done(&q);
}

static void qbad(const char *s, IdentError want, size_t want_off) {
        QualifiedName q = {};
        size_t off = 999;
        IdentError e = qualified_name_parse(s, &q, &off);
        if (e != want)
                fail_msg("\"%s\": got %s, want %s", s, ident_error_to_string(e), ident_error_to_string(want));
        assert_int_equal(off, want_off);
        assert_null(q.name);
}

static void test_fold(void **state) {
        (void) state;
        ok("foo", "foo");
        ok("Foo", "foo");
        ok("FOO_BAR", "foo_bar");
        ok("_a$1", "_a$1");
        ok("requested_at", "requested_at");
        ok("caf\xc3\xa9", "caf\xc3\xa9"); /* non-ASCII letters are identifier characters */
        ok("\xc3\x89t\xc3\xa9", "\xc3\x89t\xc3\xa9"); /* only ASCII folds, as in PostgreSQL */
}

static void test_quoted(void **state) {
        (void) state;
        ok("\"Foo\"", "Foo");
        ok("\"Foo Bar\"", "Foo Bar");
        ok("\"Issued At\"", "Issued At");
        ok("\"a.b\"", "a.b");
        ok("\"a\"\"b\"", "a\"b");
        ok("\"semi;colon\"", "semi;colon");
        ok("\"--comment\"", "--comment");
        ok("\"/* c */\"", "/* c */");
        ok("\"'\"", "'");
}

static void test_rejected(void **state) {
        (void) state;
        bad("", IDENT_EMPTY, 0);
        bad(NULL, IDENT_EMPTY, 0);
        bad("a b", IDENT_BAD_CHARACTER, 1);
        bad("a;drop table x", IDENT_BAD_CHARACTER, 1);
        bad("a--b", IDENT_BAD_CHARACTER, 1);
        bad("a/*b*/", IDENT_BAD_CHARACTER, 1);
        bad("1abc", IDENT_BAD_CHARACTER, 0);
        bad("a'b", IDENT_BAD_CHARACTER, 1);
        bad("\"abc", IDENT_UNTERMINATED_QUOTE, 0);
        bad("\"\"", IDENT_EMPTY_QUOTED, 0);
        bad("\"x\"y", IDENT_TRAILING_GARBAGE, 3);
        bad("a.b", IDENT_TOO_MANY_PARTS, 1);
        bad("\"\xff\"", IDENT_INVALID_UTF8, 0);
        bad("\xff", IDENT_INVALID_UTF8, 0);
}

static void test_length(void **state) {
        (void) state;
        char s[80];
        memset(s, 'a', 63);
        s[63] = 0;
        ok(s, s);
        memset(s, 'a', 64);
        s[64] = 0;
        bad(s, IDENT_TOO_LONG, 0);
        /* the limit is in bytes, after unquoting */
        s[0] = '"';
        memset(s + 1, 'b', 64);
        s[65] = '"';
        s[66] = 0;
        bad(s, IDENT_TOO_LONG, 0);
}

static void test_qualified(void **state) {
        (void) state;
        qok("app.access_log", "app", "access_log");
        qok("access_log", NULL, "access_log");
        qok("App.Access_Log", "app", "access_log");
        qok("\"Sales Data\".\"Invoices\"", "Sales Data", "Invoices");
        qok("\"a.b\".c", "a.b", "c");
        qbad("a.b.c", IDENT_TOO_MANY_PARTS, 3);
        qbad("a.", IDENT_EMPTY, 2);
        qbad(".a", IDENT_EMPTY, 0);
        qbad("app.access log", IDENT_BAD_CHARACTER, 10);
        qbad("app.\"x", IDENT_UNTERMINATED_QUOTE, 4);
        qbad("", IDENT_EMPTY, 0);
}

static void test_quote(void **state) {
        (void) state;
        char *s;
        s = ident_quote("foo");
        assert_string_equal(s, "\"foo\"");
        free(s);
        s = ident_quote("a\"b");
        assert_string_equal(s, "\"a\"\"b\"");
        free(s);
        s = ident_quote("x\"; DROP TABLE y; --");
        assert_string_equal(s, "\"x\"\"; DROP TABLE y; --\"");
        free(s);

        QualifiedName q = { .schema = (char *) "Sales Data", .name = (char *) "Invoices" };
        s = qualified_name_quote(&q);
        assert_string_equal(s, "\"Sales Data\".\"Invoices\"");
        free(s);
        s = qualified_name_display(&q);
        assert_string_equal(s, "\"Sales Data\".\"Invoices\"");
        free(s);
        QualifiedName r = { .schema = (char *) "app", .name = (char *) "access_log" };
        s = qualified_name_display(&r);
        assert_string_equal(s, "app.access_log");
        free(s);
        QualifiedName t = { .name = (char *) "t" };
        s = qualified_name_quote(&t);
        assert_string_equal(s, "\"t\"");
        free(s);

        s = ident_display("requested_at");
        assert_string_equal(s, "requested_at");
        free(s);
        s = ident_display("Issued At");
        assert_string_equal(s, "\"Issued At\"");
        free(s);
        s = ident_display("Foo");
        assert_string_equal(s, "\"Foo\"");
        free(s);
}

static void test_equal_copy(void **state) {
        (void) state;
        QualifiedName a = { .name = (char *) "t" }, b = { .schema = (char *) "public", .name = (char *) "t" },
                      c = { .schema = (char *) "app", .name = (char *) "t" }, d = {};
        assert_true(qualified_name_equal(&a, &b));
        assert_false(qualified_name_equal(&a, &c));
        qualified_name_copy(&d, &c);
        assert_true(qualified_name_equal(&c, &d));
        assert_ptr_not_equal(d.name, c.name);
        qualified_name_done(&d);
        assert_null(d.name);
}

static void test_utf8(void **state) {
        (void) state;
        assert_true(utf8_valid("abc", 3));
        assert_true(utf8_valid("caf\xc3\xa9", 5));
        assert_false(utf8_valid("a\0b", 3));
        assert_false(utf8_valid("\xc3", 1));
        assert_false(utf8_valid("\xc0\xaf", 2));         /* overlong */
        assert_false(utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
        assert_false(utf8_valid("\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fold),       cmocka_unit_test(test_quoted),
                cmocka_unit_test(test_rejected),   cmocka_unit_test(test_length),
                cmocka_unit_test(test_qualified),  cmocka_unit_test(test_quote),
                cmocka_unit_test(test_equal_copy), cmocka_unit_test(test_utf8),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
