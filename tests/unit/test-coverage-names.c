/* test-coverage-names.c — unit tests for what `retentiond coverage` decides without a database: which
 * column names look personal (per kind of column), the `coverage: ignore:` pattern syntax with
 * its located errors, and which columns an ignore pattern matches. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coverage.h"
#include "diag.h"
#include "policy-load.h"
#include "util.h"

static void test_personal_names(void **state) {
        (void) state;
        static const struct {
                const char *column;
                CoverageKind kind;
                const char *want; /* NULL: not personal */
        } cases[] = {
                { "email", COVKIND_TEXT, "email" },
                { "billing_email", COVKIND_TEXT, "email" },
                { "e_mail", COVKIND_TEXT, "e_mail" },
                { "email", COVKIND_OTHER, NULL },         /* a boolean "email" is a flag */
                { "email_verified_at", COVKIND_DATE, NULL }, /* a timestamp about an e-mail */
                { "emails", COVKIND_TEXT, NULL },         /* whole words only */
                { "phone", COVKIND_NUMBER, "phone" },
                { "mobile_phone", COVKIND_TEXT, "phone" },
                { "ip", COVKIND_NET, "ip" },
                { "client_ip_address", COVKIND_TEXT, "ip_address" },
                { "ipv4_address", COVKIND_TEXT, "ipv4" },
                { "zip", COVKIND_NUMBER, "zip" },
                { "ship_date", COVKIND_DATE, NULL },
                { "name", COVKIND_TEXT, "name" },
                { "first_name", COVKIND_TEXT, "first_name" },
                { "firstName", COVKIND_TEXT, "first_name" },
                { "LastName", COVKIND_TEXT, "last_name" },
                { "display_name", COVKIND_TEXT, "display_name" },
                { "file_name", COVKIND_TEXT, NULL },
                { "product_name", COVKIND_TEXT, NULL },
                { "hostname", COVKIND_TEXT, NULL },
                { "name", COVKIND_NUMBER, NULL },
                { "date_of_birth", COVKIND_DATE, "date_of_birth" },
                { "dob", COVKIND_DATE, "dob" },
                { "birth_date", COVKIND_DATE, "birth" },
                { "city", COVKIND_DATE, NULL },
                { "street_address", COVKIND_TEXT, "address" },
                { "user_agent", COVKIND_TEXT, "user_agent" },
                { "iban", COVKIND_TEXT, "iban" },
                { "created_at", COVKIND_DATE, NULL },
                { "status", COVKIND_TEXT, NULL },
                { "", COVKIND_TEXT, NULL },
                { "__", COVKIND_TEXT, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *got = coverage_personal_name(cases[i].column, cases[i].kind);
                if (!streq_ptr(got, cases[i].want))
                        fail_msg("\"%s\" (kind %d): got %s, want %s", cases[i].column, cases[i].kind, got ? got : "NULL",
                                 cases[i].want ? cases[i].want : "NULL");
        }
        /* Every documented word is found in a text column of that very name. */
        for (size_t i = 0; coverage_personal_words[i]; i++)
                assert_string_equal(coverage_personal_name(coverage_personal_words[i], COVKIND_TEXT), coverage_personal_words[i]);
        /* A very long name with many words does not overflow. */
        char longname[400];
        memset(longname, 'a', sizeof(longname) - 1);
        for (size_t i = 1; i < sizeof(longname) - 1; i += 2)
                longname[i] = '_';
        longname[sizeof(longname) - 1] = 0;
        assert_null(coverage_personal_name(longname, COVKIND_TEXT));
}

static void test_ignore_patterns(void **state) {
        (void) state;
        static const struct {
                const char *pattern;
                const char *schema, *table, *column;
        } ok[] = {
                { "app.users", "app", "users", NULL },
                { "app.*", "app", NULL, NULL },
                { "app.users.email", "app", "users", "email" },
                { "app.*.email", "app", NULL, "email" },
                { "app.users.*", "app", "users", NULL },
                { "App.Users", "app", "users", NULL },
                { "\"Sales Data\".\"In.voices\".\"Email\"", "Sales Data", "In.voices", "Email" },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                CoverageIgnore c = {};
                size_t off = 99;
                const char *err = NULL;
                if (!coverage_ignore_parse(ok[i].pattern, &c, &off, &err))
                        fail_msg("\"%s\": %s at %zu", ok[i].pattern, err, off);
                assert_string_equal(c.pattern, ok[i].pattern);
                assert_true(streq_ptr(c.schema, ok[i].schema));
                assert_true(streq_ptr(c.table, ok[i].table));
                assert_true(streq_ptr(c.column, ok[i].column));
                coverage_ignore_done(&c);
        }
        static const struct {
                const char *pattern;
                size_t offset;
        } bad[] = {
                { "users", 0 }, { "*.users", 0 }, { "app.users.email.x", 15 }, { "app..email", 4 },
                { "app.us ers", 6 }, { "app.\"unterminated", 4 }, { "", 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                CoverageIgnore c = {};
                size_t off = 99;
                const char *err = NULL;
                if (coverage_ignore_parse(bad[i].pattern, &c, &off, &err))
                        fail_msg("\"%s\" was accepted", bad[i].pattern);
                assert_non_null(err);
                if (off != bad[i].offset)
                        fail_msg("\"%s\": offset %zu, want %zu (%s)", bad[i].pattern, off, bad[i].offset, err);
        }

        CoverageIgnore whole = {}, col = {}, any = {};
        size_t off;
        const char *err;
        assert_true(coverage_ignore_parse("app.users", &whole, &off, &err));
        assert_true(coverage_ignore_parse("app.users.email", &col, &off, &err));
        assert_true(coverage_ignore_parse("app.*.email", &any, &off, &err));
        assert_true(coverage_ignore_matches(&whole, "app", "users", "phone"));
        assert_true(coverage_ignore_matches(&whole, "app", "users", NULL));
        assert_false(coverage_ignore_matches(&whole, "app", "users2", "phone"));
        assert_false(coverage_ignore_matches(&whole, "public", "users", "phone"));
        assert_true(coverage_ignore_matches(&col, "app", "users", "email"));
        assert_false(coverage_ignore_matches(&col, "app", "users", "phone"));
        assert_false(coverage_ignore_matches(&col, "app", "users", NULL)); /* not the whole table */
        assert_true(coverage_ignore_matches(&any, "app", "orders", "email"));
        assert_false(coverage_ignore_matches(&any, "app", "orders", "Email"));
        coverage_ignore_done(&whole);
        coverage_ignore_done(&col);
        coverage_ignore_done(&any);
}

static char *first_line(const Diagnostic *x) {
        StrBuf b = {};
        diagnostic_format(x, &b);
        char *s = strbuf_steal(&b);
        char *nl = strchr(s, '\n');
        if (nl)
                *nl = 0;
        return s;
}

static void expect_errors(const char *yaml, const char *const *want, size_t n) {
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load_string("t.yaml", yaml, strlen(yaml), &p, d);
        assert_int_equal(r, -EINVAL);
        assert_null(p);
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t j = 0; j < d->n && !found; j++) {
                        _cleanup_free_ char *l = first_line(&d->items[j]);
                        found = streq(l, want[i]);
                }
                if (!found) {
                        for (size_t j = 0; j < d->n; j++) {
                                _cleanup_free_ char *l = first_line(&d->items[j]);
                                print_message("  got: %s\n", l);
                        }
                        fail_msg("missing: %s", want[i]);
                }
        }
        assert_int_equal(d->n_errors, n);
        diagnostics_free(d);
}

static void test_coverage_section(void **state) {
        (void) state;
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        static const char good[] = "version: 1\n"
                                   "coverage:\n"
                                   "  ignore:\n"
                                   "    - app.products\n"
                                   "    - \"staging.*\"\n"
                                   "    - 'app.\"Users\".Email'\n";
        assert_int_equal(policy_load_string("t.yaml", good, strlen(good), &p, d), 0);
        assert_int_equal(p->n_coverage_ignores, 3);
        assert_string_equal(p->coverage_ignores[0].pattern, "app.products");
        assert_int_equal(p->coverage_ignores[0].loc.line, 4);
        assert_int_equal(p->coverage_ignores[0].loc.column, 7);
        assert_null(p->coverage_ignores[1].table);
        assert_string_equal(p->coverage_ignores[2].table, "Users");
        assert_string_equal(p->coverage_ignores[2].column, "email");
        assert_non_null(policy_coverage_ignored(p, "app", "Users", "email"));
        assert_null(policy_coverage_ignored(p, "app", "Users", "phone"));
        assert_non_null(policy_coverage_ignored(p, "staging", "x", "y"));
        policy_free(p);
        diagnostics_free(d);

        static const char *const e1[] = {
                "t.yaml:4:8: error: invalid pattern \"app\" in \"coverage: ignore\"",
                "t.yaml:5:19: error: invalid pattern \"app.users.x.y\" in \"coverage: ignore\"",
                "t.yaml:6:8: error: invalid pattern \"*.users\" in \"coverage: ignore\"",
                "t.yaml:7:14: error: invalid pattern \"app.us ers\" in \"coverage: ignore\"",
                "t.yaml:8:7: error: expected a string for \"ignore\" in \"coverage\", found a mapping",
                "t.yaml:9:3: error: unknown key \"ignored\" in \"coverage\"",
        };
        expect_errors("version: 1\n"
                      "coverage:\n"
                      "  ignore:\n"
                      "    - \"app\"\n"
                      "    - \"app.users.x.y\"\n"
                      "    - \"*.users\"\n"
                      "    - \"app.us ers\"\n"
                      "    - { a: b }\n"
                      "  ignored: []\n",
                      e1, ELEMENTSOF(e1));
        static const char *const e2[] = {
                "t.yaml:2:21: error: expected a list for \"ignore\" in \"coverage\", found a string",
        };
        expect_errors("version: 1\ncoverage: { ignore: app.users }\n", e2, ELEMENTSOF(e2));
        static const char *const e3[] = {
                "t.yaml:2:11: error: expected a mapping for \"coverage\", found a list",
        };
        expect_errors("version: 1\ncoverage: [app.users]\n", e3, ELEMENTSOF(e3));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_personal_names),
                cmocka_unit_test(test_ignore_patterns),
                cmocka_unit_test(test_coverage_section),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
