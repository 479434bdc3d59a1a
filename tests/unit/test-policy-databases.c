/* test-policy-databases.c — unit tests for `databases:` and a rule's `database:` in the policy
 * loader: conninfo or service, every rule resolved to exactly one database, and the located
 * errors (a password in a conninfo above all). No database is contacted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diag.h"
#include "policy-load.h"
#include "util.h"

static char *first_line(const Diagnostic *x) {
        StrBuf b = {};
        diagnostic_format(x, &b);
        char *s = strbuf_steal(&b);
        char *nl = strchr(s, '\n');
        if (nl)
                *nl = 0;
        return s;
}

/* Loading fails with exactly these errors (first lines); returns the diagnostics for more checks. */
static Diagnostics *expect_errors(const char *yaml, const char *const *want, size_t n) {
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
        if (d->n_errors != n) {
                for (size_t j = 0; j < d->n; j++) {
                        _cleanup_free_ char *l = first_line(&d->items[j]);
                        print_message("  got: %s\n", l);
                }
                fail_msg("%zu errors, want %zu", d->n_errors, n);
        }
        return d;
}

#define RULE(name, extra)                                                                              \
        "  " name ":\n    clause: \"c\"\n    table: app.t\n    column: at\n    retain: 1 day\n"          \
        "    action: delete\n" extra

static void test_databases_resolved(void **state) {
        (void) state;
        static const char yaml[] = "version: 1\n"
                                   "databases:\n"
                                   "  main: { conninfo: \"host=db1 dbname=app user=retentiond\" }\n"
                                   "  billing: { service: billing-prod }\n"
                                   "  uri: { conninfo: \"postgresql://db2:5433/app?sslmode=require\" }\n"
                                   "rules:\n" RULE("a", "    database: main\n") RULE("b", "    database: billing\n")
                                           RULE("c", "    database: uri\n");
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        assert_int_equal(policy_load_string("t.yaml", yaml, strlen(yaml), &p, d), 0);
        assert_int_equal(d->n_errors, 0);
        assert_int_equal(p->n_databases, 3);
        assert_string_equal(p->databases[0].name, "main");
        assert_string_equal(p->databases[0].conninfo, "host=db1 dbname=app user=retentiond");
        assert_null(p->databases[0].service);
        assert_string_equal(p->databases[1].conninfo, "service=billing-prod");
        assert_string_equal(p->databases[1].service, "billing-prod");
        assert_int_equal(p->databases[1].loc.line, 4);
        assert_ptr_equal(p->rules[0].database, &p->databases[0]);
        assert_ptr_equal(p->rules[1].database, &p->databases[1]);
        assert_ptr_equal(p->rules[2].database, &p->databases[2]);
        assert_ptr_equal(policy_find_database(p, "billing"), &p->databases[1]);
        assert_null(policy_find_database(p, "nope"));
        assert_true(rule_in_database(&p->rules[0], &p->databases[0]));
        assert_false(rule_in_database(&p->rules[0], &p->databases[1]));
        assert_true(rule_in_database(&p->rules[0], NULL));
        policy_free(p);
        diagnostics_free(d);

        /* one database: the rules without "database:" are for it */
        static const char one[] = "version: 1\n"
                                  "databases:\n"
                                  "  only: { service: app }\n"
                                  "rules:\n" RULE("a", "") RULE("b", "    database: only\n");
        d = diagnostics_new();
        assert_int_equal(policy_load_string("t.yaml", one, strlen(one), &p, d), 0);
        assert_ptr_equal(p->rules[0].database, &p->databases[0]);
        assert_ptr_equal(p->rules[1].database, &p->databases[0]);
        policy_free(p);
        diagnostics_free(d);

        /* no databases: nothing changes, the rules have none */
        static const char none[] = "version: 1\nrules:\n" RULE("a", "");
        d = diagnostics_new();
        assert_int_equal(policy_load_string("t.yaml", none, strlen(none), &p, d), 0);
        assert_int_equal(p->n_databases, 0);
        assert_null(p->rules[0].database);
        assert_true(rule_in_database(&p->rules[0], NULL));
        policy_free(p);
        diagnostics_free(d);
}

static void test_database_errors(void **state) {
        (void) state;
        static const char *const e1[] = {
                "t.yaml:3:42: error: a password in the \"conninfo\" of database \"main\"",
                "t.yaml:4:36: error: a password in the \"conninfo\" of database \"uri\"",
                "t.yaml:5:33: error: database \"both\" has both \"conninfo\" and \"service\"",
                "t.yaml:6:12: error: missing \"conninfo\" or \"service\" in database \"neither\"",
                "t.yaml:7:20: error: invalid \"conninfo\" in database \"bad\"",
                "t.yaml:8:19: error: invalid service name \"a b\" in database \"svc\"",
                "t.yaml:9:3: error: invalid database name \"Bad_Name\"",
                "t.yaml:9:28: error: unknown key \"host\" in database \"Bad_Name\"",
        };
        Diagnostics *d = expect_errors("version: 1\n"
                                       "databases:\n"
                                       "  main: { conninfo: \"host=db1 dbname=app password=secret\" }\n"
                                       "  uri: { conninfo: \"postgresql://u:secret@db1/app\" }\n"
                                       "  both: { conninfo: \"dbname=x\", service: x }\n"
                                       "  neither: {}\n"
                                       "  bad: { conninfo: \"host=db1 dbname\" }\n"
                                       "  svc: { service: \"a b\" }\n"
                                       "  Bad_Name: { service: ok, host: x }\n",
                                       e1, ELEMENTSOF(e1));
        /* the password error says where passwords go, and never repeats the password */
        for (size_t i = 0; i < d->n; i++) {
                StrBuf b = {};
                diagnostic_format(&d->items[i], &b);
                if (strstr(strbuf_str(&b), "a password in")) {
                        assert_non_null(strstr(strbuf_str(&b), "pgpass"));
                        const char *caret_line = strstr(strbuf_str(&b), "secret");
                        /* the offending line is echoed (it is the file's own text), but the
                         * message, detail and hint do not quote the password */
                        assert_null(strstr(d->items[i].message, "secret"));
                        (void) caret_line;
                }
                strbuf_done(&b);
        }
        diagnostics_free(d);

        static const char *const e2[] = {
                "t.yaml:12:15: error: rule \"a\" refers to undefined database \"mian\"",
                "t.yaml:13:3: error: rule \"b\" does not say which database it is for",
        };
        d = expect_errors("version: 1\n"
                          "databases:\n"
                          "  main: { service: a }\n"
                          "  billing: { service: b }\n"
                          "rules:\n" RULE("a", "    database: mian\n") RULE("b", ""),
                          e2, ELEMENTSOF(e2));
        bool hinted = false;
        for (size_t i = 0; i < d->n; i++)
                if (d->items[i].hint && strstr(d->items[i].hint, "Did you mean \"main\"?"))
                        hinted = true;
        assert_true(hinted);
        diagnostics_free(d);

        static const char *const e3[] = {
                "t.yaml:9:15: error: rule \"a\" names database \"main\", but the policy has no \"databases:\"",
        };
        diagnostics_free(expect_errors("version: 1\nrules:\n" RULE("a", "    database: main\n"), e3, ELEMENTSOF(e3)));

        static const char *const e4[] = {
                "t.yaml:2:12: error: expected a mapping for \"databases\", found a list",
        };
        diagnostics_free(expect_errors("version: 1\ndatabases: [a, b]\n", e4, ELEMENTSOF(e4)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_databases_resolved),
                cmocka_unit_test(test_database_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
