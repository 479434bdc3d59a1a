/* test-sqlfrag.c — unit tests for the lexical check of a rule's `where:` (engine/sqlfrag.c): the
 * escape of issue 12 and hostile variants of it are refused at the exact offset; expressions whose
 * strings, identifiers and dollar quotes hold parentheses, quotes, semicolons and comment markers
 * pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqlfrag.h"

static void ok(const char *s) {
        size_t off = 999;
        SqlFragError e = sqlfrag_check(s, &off);
        if (e != SQLFRAG_OK)
                fail_msg("\"%s\": unexpected error \"%s\" at %zu", s, sqlfrag_error_to_string(e), off);
        assert_int_equal(off, 0);
}

static void bad(const char *s, SqlFragError want, size_t want_off) {
        size_t off = 999;
        SqlFragError e = sqlfrag_check(s, &off);
        if (e != want)
                fail_msg("\"%s\": got \"%s\", want \"%s\"", s, sqlfrag_error_to_string(e), sqlfrag_error_to_string(want));
        if (off != want_off)
                fail_msg("\"%s\": \"%s\" at offset %zu, want %zu", s, sqlfrag_error_to_string(e), off, want_off);
}

static void test_escape_of_issue_12(void **state) {
        (void) state;
        /* coalesce((true), false) OR true OR coalesce((true), false): made audit say 0 due and run
         * delete held rows */
        bad("true), false) OR true OR coalesce((true", SQLFRAG_CLOSE_UNOPENED, 4);
        bad("true)) OR true OR ((true", SQLFRAG_CLOSE_UNOPENED, 4);
        bad(") OR (", SQLFRAG_CLOSE_UNOPENED, 0);
        bad("t.a = 1) OR (t.b = 2", SQLFRAG_CLOSE_UNOPENED, 7);
        /* balanced overall, but closes first */
        bad("true) OR true OR (true", SQLFRAG_CLOSE_UNOPENED, 4);
        bad(")(", SQLFRAG_CLOSE_UNOPENED, 0);
        bad("(true))((true)", SQLFRAG_CLOSE_UNOPENED, 6);
        /* unbalanced at the end */
        bad("(true", SQLFRAG_UNCLOSED_PAREN, 0);
        bad("f(a, g(b)", SQLFRAG_UNCLOSED_PAREN, 1);
        bad("(t.a = (1)", SQLFRAG_UNCLOSED_PAREN, 0);
        bad("((((", SQLFRAG_UNCLOSED_PAREN, 3);
}

static void test_strings(void **state) {
        (void) state;
        ok("t.status = 'closed'");
        ok("t.note = ')'");
        ok("t.note = '('");
        ok("t.note = ') OR true OR ('");
        ok("t.note = 'it''s )'");
        ok("t.note = ''''");       /* a single quote */
        ok("t.note = ''");
        ok("t.note = ';'");
        ok("t.note = '-- not a comment'");
        ok("t.note = '/* not a comment */'");
        ok("t.note = '$$'");
        ok("t.note = '\"'");
        ok("t.note LIKE '%)%' AND t.x = ','");
        ok("t.a = 'x'\n'y'");      /* continued on the next line */
        ok("t.path ~ '^/api/\\d+$'"); /* a backslash not before a quote */
        ok("t.path = 'C:\\x'");
        ok("t.n = B'0101' AND t.h = X'FF' AND t.c = N'x'");
        ok("t.u = U&'d\\0061t\\+000061'");
        ok("t.name <> 'J\xc3\xbcrgen'");
        /* E'...': backslash escapes, \' is a quote inside */
        ok("t.note = E'\\')'");
        ok("t.note = E'\\''");
        ok("t.note = e'\\\\'");
        ok("t.note = E'a\\nb\\x41\\101\\u0041'");
        ok("t.note = E'it''s'");
        ok("t.note = E'\\\\' AND (true)");
        /* unterminated */
        bad("t.note = 'abc", SQLFRAG_UNTERMINATED_STRING, 9);
        bad("t.note = ')", SQLFRAG_UNTERMINATED_STRING, 9);
        bad("t.note = 'it''s", SQLFRAG_UNTERMINATED_STRING, 9);
        bad("'", SQLFRAG_UNTERMINATED_STRING, 0);
        bad("t.note = E'\\'", SQLFRAG_UNTERMINATED_STRING, 10);
        bad("t.note = E'abc\\", SQLFRAG_UNTERMINATED_STRING, 10);
        /* E'\'' read as a plain string would end early: the parenthesis after it is outside */
        bad("t.x = E'\\'' ) OR true OR (''", SQLFRAG_CLOSE_UNOPENED, 12);
        /* E'\\' ends at its third quote: what follows is outside */
        bad("t.x = E'\\\\' ) OR true OR (E'", SQLFRAG_CLOSE_UNOPENED, 12);
}

static void test_backslash_before_quote(void **state) {
        (void) state;
        /* With standard_conforming_strings off '\'' is one string holding a quote, and the ) is
         * outside; with it on, the string ends after the backslash. Either way: refused. */
        bad("'\\'' OR true) OR (''", SQLFRAG_BACKSLASH_QUOTE, 1);
        bad("t.x = '\\' OR true OR t.y = '", SQLFRAG_BACKSLASH_QUOTE, 7);
        bad("t.x = 'C:\\\\'", SQLFRAG_BACKSLASH_QUOTE, 10);
        bad("t.u = U&'\\' ) OR true OR ('", SQLFRAG_BACKSLASH_QUOTE, 9);
        /* continued after an E'...': PostgreSQL reads the continuation with backslash escapes */
        bad("t.x = E'a'\n'\\' ) OR true OR ('", SQLFRAG_BACKSLASH_QUOTE, 12);
        ok("t.x = E'a'\n'b'");
}

static void test_identifiers(void **state) {
        (void) state;
        ok("\"odd)name\" = 1");
        ok("t.\"a\"\"b(\" = 1");
        ok("t.\"--\" = 1 AND t.\"/*\" = 2 AND t.\";\" = 3 AND t.\",\" = 4");
        ok("t.\"$$\" = 1");
        ok("t.\"'\" = 1");
        ok("t.U&\"d\\0061t\" = 1");
        ok("\"\" = 1"); /* PostgreSQL refuses a zero-length identifier; the lexer need not */
        bad("\"odd)name = 1", SQLFRAG_UNTERMINATED_IDENTIFIER, 0);
        bad("t.\"a\"\" = 1", SQLFRAG_UNTERMINATED_IDENTIFIER, 2);
        /* $ inside an identifier starts no dollar quote: a$$ is a name and the ) is outside */
        ok("t.a$$ = 1");
        ok("t.a$b$c = 1 AND t.x$1 = 2");
        bad("t.a$$ = 1) OR true OR (t.b$$ = 2", SQLFRAG_CLOSE_UNOPENED, 9);
        bad("E$$)$$ = 1", SQLFRAG_CLOSE_UNOPENED, 3);
        /* identifiers that end in e/E are followed by a plain string */
        ok("t.d > date'2020-01-01'");
        bad("t.d > date'\\' ) OR true OR ('", SQLFRAG_BACKSLASH_QUOTE, 11);
        ok("t.d > timestamptz '2020-01-01 00:00+00'");
}

static void test_dollar_quotes(void **state) {
        (void) state;
        ok("t.note = $$)$$");
        ok("t.note = $$ ) OR true OR ( $$");
        ok("t.note = $x$ ) $$ $x$");
        ok("t.note = $x$)$y$($x$");
        ok("t.note = $a1$)$a1$");
        ok("t.note = $_$;$_$");
        ok("t.note = $$'$$ AND t.y = '$$'");
        ok("t.note = $$--$$ AND t.y = $$/*$$");
        ok("t.note = $a$b$a$");   /* $a$ then b then $a$ */
        ok("t.note = $a$$ba$a$"); /* $ba$ inside does not end $a$ */
        ok("t.note = $\xc3\xa9$)$\xc3\xa9$");
        ok("1$$)$$ IS NOT NULL"); /* a number, then a dollar quote */
        bad("t.note = $$)", SQLFRAG_UNTERMINATED_DOLLAR, 9);
        bad("t.note = $x$ ) $X$", SQLFRAG_UNTERMINATED_DOLLAR, 9);
        bad("t.note = $x$ ) $x", SQLFRAG_UNTERMINATED_DOLLAR, 9);
        bad("t.note = $x$ ) $$ OR true OR ($x", SQLFRAG_UNTERMINATED_DOLLAR, 9);
        /* a lone $ quotes nothing */
        bad("$ ) OR (", SQLFRAG_CLOSE_UNOPENED, 2);
        bad("$x ) $x", SQLFRAG_CLOSE_UNOPENED, 3);
}

static void test_parameters(void **state) {
        (void) state;
        bad("t.created_at < $1", SQLFRAG_PARAMETER, 15);
        bad("t.x = $12", SQLFRAG_PARAMETER, 6);
        bad("$1$ = 1", SQLFRAG_PARAMETER, 0); /* no dollar tag starts with a digit */
        ok("t.x = '$1'");
        ok("t.x = $$$1$$");
}

static void test_comments_semicolons(void **state) {
        (void) state;
        bad("true -- )", SQLFRAG_COMMENT, 5);
        bad("true --", SQLFRAG_COMMENT, 5);
        bad("t.x = 1--1", SQLFRAG_COMMENT, 7);
        bad("true /* ) */", SQLFRAG_COMMENT, 5);
        bad("t.x /**/ = 1", SQLFRAG_COMMENT, 4);
        ok("t.x = 1 / 2 > 0");
        ok("t.x = 2 / 1 AND t.y = 1 - -1 AND t.z = 3 * 2");
        ok("t.x */ 1 IS NULL"); /* no comment starts here (PostgreSQL refuses the operator) */
        bad("true; DELETE FROM app.events", SQLFRAG_SEMICOLON, 4);
        bad("(SELECT true; )", SQLFRAG_SEMICOLON, 12);
        bad("true;", SQLFRAG_SEMICOLON, 4);
        bad("x = 'y'; DROP TABLE t; --", SQLFRAG_SEMICOLON, 7);
}

static void test_lists_and_brackets(void **state) {
        (void) state;
        bad("1 = 1, 2 = 2", SQLFRAG_TOP_LEVEL_COMMA, 5);
        bad("true, false", SQLFRAG_TOP_LEVEL_COMMA, 4);
        ok("(1 = 1, 2 = 2) IS NOT NULL"); /* a row: lexically fine, PostgreSQL says it is no boolean */
        ok("t.x IN (1, 2, 3)");
        ok("coalesce(t.a, t.b) > 0");
        ok("ARRAY[1, 2] @> ARRAY[t.x]");
        ok("t.tags[1] = 'a' AND t.m[1:2] = ARRAY[1,2]");
        ok("(t.a, t.b) OVERLAPS (now(), now())");
        bad("ARRAY[1, 2", SQLFRAG_UNCLOSED_BRACKET, 5);
        bad("t.a] = 1", SQLFRAG_CLOSE_UNOPENED_BRACKET, 3);
        bad("t.a[1] = 1, true", SQLFRAG_TOP_LEVEL_COMMA, 10);
}

static void test_numbers(void **state) {
        (void) state;
        ok("t.x = 1 AND t.y = 1.5 AND t.z = .5 AND t.w = 1e5 AND t.v = 1.5E-3 AND t.u = 2.");
        ok("t.x BETWEEN 1 AND 2");
        ok("t.r = ANY ('{1..2}')");
        ok("t.x = 1'x'"); /* a number and then a string: PostgreSQL reads it so too */
        /* PostgreSQL 15 refuses these; 13 and 14 read 1e'x' as 1 and E'x' */
        bad("t.x = 1e'\\'' ) OR true OR (''", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 1.5E'x'", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = .5e'x'", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 0x1F", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 12abc", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 1_000", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 1e5e'x'", SQLFRAG_NUMBER_JUNK, 6);
        bad("t.x = 1.a", SQLFRAG_NUMBER_JUNK, 6);
}

static void test_plain(void **state) {
        (void) state;
        ok("true");
        ok("t.status <> 'open'");
        ok("kind IS DISTINCT FROM 'vip'");
        ok("(SELECT pg_sleep(5)) IS NOT NULL");
        ok("nextval('app.some_seq') > 0");
        ok("EXISTS (SELECT 1 FROM app.accounts a WHERE a.id = t.account_id AND a.closed)");
        ok("t.a = 1\n  AND t.b = 2\r\n  AND t.c = 3\t");
        ok("CASE WHEN t.a THEN t.b ELSE false END");
        ok("t.x::text = '1'");
        bad("", SQLFRAG_EMPTY, 0);
        bad("   \n\t ", SQLFRAG_EMPTY, 0);
        /* messages and hints exist for every error */
        for (int e = 0; e < _SQLFRAG_MAX; e++) {
                assert_non_null(sqlfrag_error_to_string((SqlFragError) e));
                assert_non_null(sqlfrag_error_hint((SqlFragError) e));
                if (e)
                        assert_true(strlen(sqlfrag_error_hint((SqlFragError) e)) > 0);
        }
        size_t off = 5;
        assert_int_equal(sqlfrag_check("true", NULL), SQLFRAG_OK);
        assert_int_equal(sqlfrag_check(")", &off), SQLFRAG_CLOSE_UNOPENED);
        assert_int_equal(off, 0);
}

/* Deep nesting needs no stack of the caller's and reports the innermost unclosed parenthesis. */
static void test_deep(void **state) {
        (void) state;
        size_t n = 100000;
        char *s = malloc(2 * n + 8);
        assert_non_null(s);
        memset(s, '(', n);
        strcpy(s + n, "true");
        memset(s + n + 4, ')', n);
        s[2 * n + 4] = '\0';
        ok(s);
        s[2 * n + 3] = '\0'; /* one ) short */
        bad(s, SQLFRAG_UNCLOSED_PAREN, 0);
        s[2 * n + 3] = ')';
        s[2 * n + 4] = ')';
        s[2 * n + 5] = '\0'; /* one ) too many */
        bad(s, SQLFRAG_CLOSE_UNOPENED, 2 * n + 4);
        free(s);
}

/* Every accepted fragment stays inside the parentheses it is wrapped in: after "coalesce((",
 * the fragment and "), false)", the depth is 0 again only at the very end. Checked over every
 * cut of a set of hostile texts, so that no prefix or suffix of them slips through. */
static void test_cuts(void **state) {
        (void) state;
        static const char *const texts[] = {
                "true), false) OR true OR coalesce((true",
                "t.x = E'\\'' ) OR true OR ('' = '')",
                "t.a$$ = 1) OR true OR (t.b$$ = 2",
                "t.n = $q$ ) $q$ ) OR ( $q$ ( $q$",
                "\"a)\" = ')' ) OR ( \"(b\" = '('",
                "'\\'' OR true) OR (''",
        };
        for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
                size_t len = strlen(texts[k]);
                for (size_t a = 0; a <= len; a++)
                        for (size_t b = a; b <= len; b++) {
                                char buf[128];
                                snprintf(buf, sizeof(buf), "%.*s", (int) (b - a), texts[k] + a);
                                if (sqlfrag_check(buf, NULL) != SQLFRAG_OK)
                                        continue;
                                /* accepted: the wrapped text, read by the same rules, closes the
                                 * wrapper's parentheses only at its end */
                                char w[256];
                                snprintf(w, sizeof(w), "coalesce((%s), false) AND x", buf);
                                size_t off = 0;
                                assert_int_equal(sqlfrag_check(w, &off), SQLFRAG_OK);
                                char w2[256];
                                snprintf(w2, sizeof(w2), "(%s", buf);
                                assert_int_equal(sqlfrag_check(w2, &off), SQLFRAG_UNCLOSED_PAREN);
                                assert_int_equal(off, 0);
                        }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_of_issue_12),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_backslash_before_quote),
                cmocka_unit_test(test_identifiers),
                cmocka_unit_test(test_dollar_quotes),
                cmocka_unit_test(test_parameters),
                cmocka_unit_test(test_comments_semicolons),
                cmocka_unit_test(test_lists_and_brackets),
                cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_deep),
                cmocka_unit_test(test_cuts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
