/* test-policy-load.c — unit tests for the policy loader: the full example into exact model
 * values, and every error class with its exact FILE:LINE:COLUMN and message, all in one pass.
 * Works in private temporary directories only; never touches the real policies except to read them. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "diag.h"
#include "exitcode.h"
#include "json.h"
#include "policy-load.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *first_line(const Diagnostic *x) {
        StrBuf b = {};
        diagnostic_format(x, &b);
        char *s = strbuf_steal(&b);
        char *nl = strchr(s, '\n');
        if (nl)
                *nl = 0;
        return s;
}

static void dump(const Diagnostics *d) {
        for (size_t i = 0; i < d->n; i++) {
                StrBuf b = {};
                diagnostic_format(&d->items[i], &b);
                print_message("  %s", strbuf_str(&b));
                strbuf_done(&b);
        }
}

/* The diagnostic whose first line is exactly `want`, or fail. */
static const Diagnostic *find(const Diagnostics *d, const char *want) {
        for (size_t i = 0; i < d->n; i++) {
                _cleanup_free_ char *l = first_line(&d->items[i]);
                if (streq(l, want))
                        return &d->items[i];
        }
        print_message("missing: %s\ngot:\n", want);
        dump(d);
        fail();
        return NULL;
}

static Diagnostics *load(const char *yaml, Policy **ret) {
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load_string("t.yaml", yaml, strlen(yaml), &p, d);
        if (ret)
                *ret = p;
        else
                policy_free(p);
        assert_true(r == 0 || r == -EINVAL);
        return d;
}

/* Loading `yaml` fails with exactly one error whose first line is `want`; returns a copy of it
 * via find() on the kept diagnostics (caller frees the collection). */
static Diagnostics *expect_error(const char *yaml, const char *want) {
        Policy *p = NULL;
        Diagnostics *d = load(yaml, &p);
        assert_null(p);
        if (d->n_errors != 1) {
                print_message("want exactly one error: %s\ngot %zu:\n", want, d->n_errors);
                dump(d);
                fail();
        }
        (void) find(d, want);
        return d;
}

static void expect_one(const char *yaml, const char *want) {
        Diagnostics *d = expect_error(yaml, want);
        diagnostics_free(d);
}

static void expect_hint(const char *yaml, const char *want, const char *hint) {
        Diagnostics *d = expect_error(yaml, want);
        const Diagnostic *x = find(d, want);
        assert_non_null(x->hint);
        assert_string_equal(x->hint, hint);
        diagnostics_free(d);
}

static Policy *expect_valid(const char *yaml) {
        Policy *p = NULL;
        Diagnostics *d = load(yaml, &p);
        if (!p || d->n_errors) {
                dump(d);
                fail();
        }
        diagnostics_free(d);
        return p;
}

static void write_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        chmod(path, 0644);
}

static char *make_tmpdir(void) {
        char *t = xstrdup("/tmp/test-policy-load.XXXXXX");
        assert_non_null(mkdtemp(t));
        return t;
}

static void rm_rf(const char *dir) {
        _cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

/* ---- the full example of the issue -------------------------------------------------------- */

static const char example[] =
        "version: 1\n"                                                              /* 1 */
        "defaults:\n"                                                               /* 2 */
        "  batch_size: 5000\n"                                                      /* 3 */
        "  schedule: 1 hour\n"                                                      /* 4 */
        "subjects:\n"                                                               /* 5 */
        "  account: { table: app.accounts, key: id }\n"                             /* 6 */
        "holds:\n"                                                                  /* 7 */
        "  tax-records:\n"                                                          /* 8 */
        "    reason: \"Tax law: invoices and payment records are kept 10 years\"\n" /* 9 */
        "    subject: account\n"                                                    /* 10 */
        "    table: app.invoices\n"                                                 /* 11 */
        "    subject_column: account_id\n"                                          /* 12 */
        "    column: issued_at\n"                                                   /* 13 */
        "    retain: 10 years\n"                                                    /* 14 */
        "  legal:\n"                                                                /* 15 */
        "    reason: \"Explicit holds placed by an operator\"\n"                    /* 16 */
        "    subject: account\n"                                                    /* 17 */
        "    registry: true\n"                                                      /* 18 */
        "rules:\n"                                                                  /* 19 */
        "  access-logs:\n"                                                          /* 20 */
        "    clause: \"Usage data & log files: stored at most seven days\"\n"       /* 21 */
        "    table: app.access_log\n"                                               /* 22 */
        "    column: requested_at      # the age basis; NULL never expires\n"       /* 23 */
        "    retain: 7 days\n"                                                      /* 24 */
        "    action: delete\n"                                                      /* 25 */
        "  access-log-ip:\n"                                                        /* 26 */
        "    clause: \"Usage data & log files: IP address shortened\"\n"            /* 27 */
        "    table: app.access_log\n"                                               /* 28 */
        "    column: requested_at\n"                                                /* 29 */
        "    retain: 0 days\n"                                                      /* 30 */
        "    action: anonymise\n"                                                   /* 31 */
        "    columns: { ip: truncate_ip }\n"                                        /* 32 */
        "  account-deletion:\n"                                                     /* 33 */
        "    clause: \"Account registration: deleted within 10 days of the revocation\"\n"
        "    table: app.accounts\n"                                                 /* 35 */
        "    subject: account\n"                                                    /* 36 */
        "    column: deletion_requested_at\n"                                       /* 37 */
        "    retain: 0 days\n"                                                      /* 38 */
        "    deadline: 10 days\n"                                                   /* 39 */
        "    holds: [tax-records, legal]\n"                                         /* 40 */
        "    action: delete\n"                                                      /* 41 */
        "    while_held:\n"                                                         /* 42 */
        "      action: anonymise\n"                                                 /* 43 */
        "      columns: { email: hash, full_name: null, phone: null }\n"            /* 44 */
        "  support-records:\n"                                                      /* 45 */
        "    clause: \"Contact and support form: stored for up to 6 years\"\n"      /* 46 */
        "    table: app.support_tickets\n"                                          /* 47 */
        "    subject: account\n"                                                    /* 48 */
        "    subject_column: account_id\n"                                          /* 49 */
        "    column: created_at\n"                                                  /* 50 */
        "    retain: 6 years\n"                                                     /* 51 */
        "    holds: [legal]\n"                                                      /* 52 */
        "    action: delete\n";                                                     /* 53 */

static void test_example_model(void **state) {
        (void) state;
        _cleanup_policy_ Policy *p = expect_valid(example);

        assert_int_equal(p->n_files, 1);
        assert_string_equal(p->files[0], "t.yaml");
        assert_int_equal(p->n_subjects, 1);
        assert_int_equal(p->n_holds, 2);
        assert_int_equal(p->n_rules, 4);

        const Subject *s = policy_find_subject(p, "account");
        assert_non_null(s);
        assert_string_equal(s->table.schema, "app");
        assert_string_equal(s->table.name, "accounts");
        assert_string_equal(s->key, "id");
        assert_int_equal(s->loc.line, 6);
        assert_int_equal(s->loc.column, 3);
        assert_ptr_equal(s->loc.file, p->files[0]);

        const Hold *tax = policy_find_hold(p, "tax-records");
        assert_non_null(tax);
        assert_string_equal(tax->reason, "Tax law: invoices and payment records are kept 10 years");
        assert_string_equal(tax->subject_name, "account");
        assert_ptr_equal(tax->subject, s);
        assert_false(tax->registry);
        assert_string_equal(tax->table.schema, "app");
        assert_string_equal(tax->table.name, "invoices");
        assert_string_equal(tax->subject_column, "account_id");
        assert_string_equal(tax->column, "issued_at");
        assert_int_equal(tax->retain.months, 120);
        assert_int_equal(tax->retain.days, 0);
        assert_int_equal(tax->retain.usecs, 0);
        assert_int_equal(tax->loc.line, 8);
        assert_int_equal(tax->loc.column, 3);

        const Hold *legal = policy_find_hold(p, "legal");
        assert_non_null(legal);
        assert_true(legal->registry);
        assert_ptr_equal(legal->subject, s);
        assert_null(legal->table.name);
        assert_null(legal->column);

        const Rule *r = &p->rules[0];
        assert_string_equal(r->name, "access-logs");
        assert_ptr_equal(policy_find_rule(p, "access-logs"), r);
        assert_string_equal(r->clause, "Usage data & log files: stored at most seven days");
        assert_string_equal(r->table.schema, "app");
        assert_string_equal(r->table.name, "access_log");
        assert_string_equal(r->column, "requested_at");
        assert_int_equal(r->retain.months, 0);
        assert_int_equal(r->retain.days, 7);
        assert_int_equal(r->retain.usecs, 0);
        assert_int_equal(r->action, ACTION_DELETE);
        assert_int_equal(r->n_columns, 0);
        assert_false(r->has_deadline);
        assert_null(r->subject_name);
        assert_null(r->subject);
        assert_int_equal(r->n_holds, 0);
        assert_false(r->has_while_held);
        assert_int_equal(r->batch_size, 5000);
        assert_int_equal(r->schedule.usecs, POLICY_DEFAULT_SCHEDULE_USEC);
        assert_null(r->window);
        assert_true(r->max_fraction == 0.5);
        assert_int_equal(r->max_rows, 0);
        assert_int_equal(r->breaker_min_rows, POLICY_DEFAULT_BREAKER_MIN_ROWS);
        assert_null(r->where);
        assert_int_equal(r->loc.line, 20);
        assert_int_equal(r->loc.column, 3);
        assert_false(rule_needs_hash_key(r));

        r = &p->rules[1];
        assert_string_equal(r->name, "access-log-ip");
        assert_int_equal(r->action, ACTION_ANONYMISE);
        assert_true(duration_is_zero(&r->retain));
        assert_int_equal(r->n_columns, 1);
        assert_string_equal(r->columns[0].column, "ip");
        assert_int_equal(r->columns[0].method, METHOD_TRUNCATE_IP);
        assert_int_equal(r->columns[0].loc.line, 32);
        assert_int_equal(r->columns[0].loc.column, 16);

        r = &p->rules[2];
        assert_string_equal(r->name, "account-deletion");
        assert_string_equal(r->table.name, "accounts");
        assert_string_equal(r->subject_name, "account");
        assert_ptr_equal(r->subject, s);
        assert_null(r->subject_column);
        assert_string_equal(r->column, "deletion_requested_at");
        assert_true(r->has_deadline);
        assert_int_equal(r->deadline.days, 10);
        assert_int_equal(r->n_holds, 2);
        assert_string_equal(r->hold_names[0], "tax-records");
        assert_string_equal(r->hold_names[1], "legal");
        assert_ptr_equal(r->holds[0], tax);
        assert_ptr_equal(r->holds[1], legal);
        assert_int_equal(r->action, ACTION_DELETE);
        assert_true(r->has_while_held);
        assert_int_equal(r->while_held_action, ACTION_ANONYMISE);
        assert_int_equal(r->n_while_held_columns, 3);
        assert_string_equal(r->while_held_columns[0].column, "email");
        assert_int_equal(r->while_held_columns[0].method, METHOD_HASH);
        assert_string_equal(r->while_held_columns[1].column, "full_name");
        assert_int_equal(r->while_held_columns[1].method, METHOD_NULL);
        assert_string_equal(r->while_held_columns[2].column, "phone");
        assert_int_equal(r->while_held_columns[2].method, METHOD_NULL);
        assert_true(rule_needs_hash_key(r));
        assert_true(policy_needs_hash_key(p));

        r = &p->rules[3];
        assert_string_equal(r->name, "support-records");
        assert_string_equal(r->subject_column, "account_id");
        assert_int_equal(r->retain.months, 72);
        assert_int_equal(r->n_holds, 1);
        assert_ptr_equal(r->holds[0], legal);

        assert_null(policy_find_rule(p, "nope"));
        assert_null(policy_find_hold(p, "nope"));
        assert_null(policy_find_subject(p, "nope"));
}

static void test_summaries(void **state) {
        (void) state;
        _cleanup_policy_ Policy *p = expect_valid(example);
        static const char *const want[] = {
                "delete app.access_log rows whose requested_at is older than 7 days",
                "anonymise app.access_log rows whose requested_at is older than 0 days: ip truncate_ip",
                "delete app.accounts rows whose deletion_requested_at is older than 0 days; unless held by "
                "tax-records or legal (subject account); while held: anonymise email hash, full_name null, "
                "phone null; overdue 10 days after that",
                "delete app.support_tickets rows whose created_at is older than 6 years; unless held by legal "
                "(subject account)",
        };
        for (size_t i = 0; i < p->n_rules; i++) {
                _cleanup_free_ char *s = rule_summary(&p->rules[i]);
                assert_string_equal(s, want[i]);
        }
}

static void test_helpers(void **state) {
        (void) state;
        assert_string_equal(action_to_string(ACTION_DELETE), "delete");
        assert_string_equal(action_to_string(ACTION_ANONYMISE), "anonymise");
        for (int m = 0; m < _METHOD_MAX; m++)
                assert_int_equal(method_from_string(method_to_string((Method) m)), m);
        assert_int_equal(method_from_string("truncate_ip"), METHOD_TRUNCATE_IP);
        assert_int_equal(method_from_string("nope"), -1);
        assert_int_equal(method_from_string(NULL), -1);
        policy_free(NULL);
        diagnostics_free(NULL);
}

/* ---- the smaller pieces of the grammar ------------------------------------------------------ */

#define RULE_HEAD                       \
        "version: 1\n"          /* 1 */ \
        "rules:\n"              /* 2 */ \
        "  r:\n"                /* 3 */ \
        "    clause: c\n"       /* 4 */ \
        "    table: app.t\n"    /* 5 */ \
        "    column: at\n"      /* 6 */

static void test_methods_and_settings(void **state) {
        (void) state;
        _cleanup_policy_ Policy *p = expect_valid(
                RULE_HEAD
                "    retain: P1M\n"
                "    action: anonymize\n"
                "    columns:\n"
                "      a: null\n"
                "      b: ~\n"
                "      c: 'null'\n"
                "      d: {redact: \"[deleted]\"}\n"
                "      e: {truncate_date: month}\n"
                "      f: {truncate_date: year}\n"
                "      g: email_domain\n"
                "      '\"Mixed Case\"': hash\n"
                "      H: truncate_ip\n"
                "    batch_size: 1000000\n"
                "    schedule: 15 minutes\n"
                "    window: 22:00-06:00\n"
                "    max_fraction: 12.5%\n"
                "    max_rows: 1\n"
                "    breaker_min_rows: 0\n"
                "    where: \"status <> 'open'\"\n");
        const Rule *r = &p->rules[0];
        assert_int_equal(r->retain.months, 1);
        assert_int_equal(r->retain.days, 0);
        assert_int_equal(r->action, ACTION_ANONYMISE);
        assert_int_equal(r->n_columns, 9);
        static const struct {
                const char *col;
                Method m;
        } want[] = {
                { "a", METHOD_NULL },          { "b", METHOD_NULL },           { "c", METHOD_NULL },
                { "d", METHOD_REDACT },        { "e", METHOD_TRUNCATE_DATE },  { "f", METHOD_TRUNCATE_DATE },
                { "g", METHOD_EMAIL_DOMAIN },  { "Mixed Case", METHOD_HASH },  { "h", METHOD_TRUNCATE_IP },
        };
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_string_equal(r->columns[i].column, want[i].col);
                assert_int_equal(r->columns[i].method, want[i].m);
        }
        assert_string_equal(r->columns[3].redact_value, "[deleted]");
        assert_int_equal(r->columns[4].precision, PRECISION_MONTH);
        assert_int_equal(r->columns[5].precision, PRECISION_YEAR);
        assert_int_equal(r->batch_size, 1000000);
        assert_int_equal(r->schedule.usecs, INT64_C(15) * 60 * 1000000);
        assert_string_equal(r->window, "22:00-06:00");
        assert_true(r->max_fraction == 0.125);
        assert_int_equal(r->max_rows, 1);
        assert_int_equal(r->breaker_min_rows, 0);
        assert_string_equal(r->where, "status <> 'open'");
        _cleanup_free_ char *s = rule_summary(r);
        assert_string_equal(s, "anonymise app.t rows whose at is older than 1 month and that match its where filter: "
                               "a null, b null, c null, d redact \"[deleted]\", e truncate_date to month, "
                               "f truncate_date to year, g email_domain, \"Mixed Case\" hash, h truncate_ip");
}

static void test_quoted_identifiers(void **state) {
        (void) state;
        _cleanup_policy_ Policy *p = expect_valid(
                "version: 1\n"
                "rules:\n"
                "  sales:\n"
                "    clause: c\n"
                "    table: '\"Sales Data\".\"Invoices\"'\n"
                "    column: '\"Issued At\"'\n"
                "    retain: 10 years\n"
                "    action: delete\n"
                "    max_fraction: 1\n");
        const Rule *r = &p->rules[0];
        assert_string_equal(r->table.schema, "Sales Data");
        assert_string_equal(r->table.name, "Invoices");
        assert_string_equal(r->column, "Issued At");
        assert_true(r->max_fraction == 1.0);
        _cleanup_free_ char *s = rule_summary(r);
        assert_string_equal(s, "delete \"Sales Data\".\"Invoices\" rows whose \"Issued At\" is older than 10 years");
}

static void test_max_fraction_forms(void **state) {
        (void) state;
        _cleanup_policy_ Policy *p = expect_valid(RULE_HEAD "    retain: 1 day\n    action: delete\n    max_fraction: 0.5\n");
        assert_true(p->rules[0].max_fraction == 0.5);
        _cleanup_policy_ Policy *q = expect_valid(RULE_HEAD "    retain: 1 day\n    action: delete\n    max_fraction: 50%\n");
        assert_true(q->rules[0].max_fraction == 0.5);
        _cleanup_policy_ Policy *r = expect_valid(RULE_HEAD "    retain: 1 day\n    action: delete\n    max_fraction: \"100%\"\n");
        assert_true(r->rules[0].max_fraction == 1.0);
}

/* ---- errors: YAML itself ------------------------------------------------------------------- */

static void test_yaml_syntax(void **state) {
        (void) state;
        /* a tab used for indentation */
        expect_hint("version: 1\nrules:\n\tr: 1\n",
                    "t.yaml:3:1: error: YAML syntax error: found character that cannot start any token",
                    "Indent with spaces: YAML does not allow tabs here.");
        /* an unclosed quote: libyaml finds the end of the file */
        expect_hint("version: 1\nrules:\n  r:\n    clause: \"abc\n",
                    "t.yaml:5:1: error: YAML syntax error: found unexpected end of stream",
                    "Close the quoted string that starts at line 4, column 13.");
        /* bad indentation */
        expect_one(RULE_HEAD "   retain: 7 days\n",
                   "t.yaml:7:4: error: YAML syntax error: did not find expected key");
        expect_one("version: 1\nrules: x: y\n",
                   "t.yaml:2:9: error: YAML syntax error: mapping values are not allowed in this context");
        /* the detail names the context */
        Diagnostics *d = expect_error("version: 1\nrules:\n  r:\n    clause: \"abc\n",
                                      "t.yaml:5:1: error: YAML syntax error: found unexpected end of stream");
        assert_string_equal(d->items[0].detail, "While scanning a quoted scalar at line 4, column 13.");
        diagnostics_free(d);
}

/* A rule without a table (a typo of the key) whose hold protects another subject: both errors,
 * the hold's of an undefined subject names no table (found by fuzz-policy: a NULL table name was
 * displayed). */
static void test_hold_subject_rule_without_table(void **state) {
        (void) state;
        Policy *p = NULL;
        Diagnostics *d = load("version: 1\n"
                              "subjects:\n"
                              "  a: { table: s.a, key: id }\n"
                              "  b: { table: s.b, key: id }\n"
                              "holds:\n"
                              "  h: { reason: \"derived\", subject: zz, table: s.ev, subject_column: a_id, column: at,"
                              " retain: \"1 day\" }\n"
                              "rules:\n"
                              "  r:\n"
                              "    clause: \"abc\"\n"
                              "    tabel: s.a\n"
                              "    column: at\n"
                              "    retain: 7 days\n"
                              "    action: delete\n"
                              "    subject: a\n"
                              "    holds: [h]\n",
                              &p);
        assert_null(p);
        const Diagnostic *x = find(d, "t.yaml:15:13: error: hold \"h\" protects subject \"zz\", but rule \"r\" is about subject \"a\"");
        assert_non_null(x->detail);
        assert_non_null(strstr(x->detail, "(the rule's table)"));
        diagnostics_free(d);
}

static void test_duplicate_key(void **state) {
        (void) state;
        Diagnostics *d = expect_error(RULE_HEAD "    retain: 7 days\n    action: delete\n    column: other\n",
                                      "t.yaml:9:5: error: duplicate key \"column\"");
        assert_string_equal(d->items[0].detail,
                            "The key \"column\" is already given at line 6, column 5; YAML would keep only one of the two values.");
        diagnostics_free(d);
        /* in flow mappings and at the top level too */
        expect_one(RULE_HEAD "    retain: 7 days\n    action: anonymise\n    columns: { ip: null, ip: hash }\n",
                   "t.yaml:9:26: error: duplicate key \"ip\"");
        expect_one("version: 1\nversion: 1\n", "t.yaml:2:1: error: duplicate key \"version\"");
        /* unquoted names fold: the same column twice */
        expect_one(RULE_HEAD "    retain: 7 days\n    action: anonymise\n    columns: { ip: null, IP: hash }\n",
                   "t.yaml:9:26: error: column \"ip\" is listed twice in rule \"r\"");
}

static void test_aliases_anchors(void **state) {
        (void) state;
        Policy *p = NULL;
        Diagnostics *d = load("version: 1\nholds: &h\n  x: *h\n", &p);
        assert_null(p);
        find(d, "t.yaml:2:8: error: anchors are not supported");
        find(d, "t.yaml:3:6: error: aliases are not supported");
        assert_int_equal(d->n_errors, 2);
        diagnostics_free(d);

        /* an alias bomb is refused at the first alias, long before it could expand */
        d = load("version: 1\n"
                 "a: &a [x, x, x, x, x, x, x, x, x]\n"
                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", &p);
        assert_null(p);
        find(d, "t.yaml:3:8: error: aliases are not supported");
        assert_int_equal(d->n_errors, 5); /* 3 unknown keys; one anchor and one alias error per file */
        diagnostics_free(d);

        expect_one("version: !!int 1\n", "t.yaml:1:10: error: YAML tags are not supported");
}

static void test_documents_and_empty(void **state) {
        (void) state;
        expect_hint("version: 1\n---\nversion: 1\n", "t.yaml:2:1: error: multiple YAML documents in one policy file",
                    "Put each document in its own file, or remove the \"---\" line.");
        expect_one("", "t.yaml:1:1: error: policy file is empty");
        expect_one("# just a comment\n\n", "t.yaml:1:1: error: policy file is empty");
        expect_one("---\n", "t.yaml:1:1: error: policy file is empty");
        expect_one("- a\n- b\n", "t.yaml:1:1: error: expected a mapping at the top of the policy file, found a list");
}

static void test_binary_and_encoding(void **state) {
        (void) state;
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        static const char nul[] = "version: 1\nru\0les:\n";
        assert_int_equal(policy_load_string("t.yaml", nul, sizeof(nul) - 1, &p, d), -EINVAL);
        find(d, "t.yaml:2:3: error: policy file contains a NUL byte");
        diagnostics_free(d);

        expect_one("version: 1\n# caf\xe9\n", "t.yaml:2:6: error: invalid byte sequence for encoding \"UTF8\": 0xe9");
        expect_one("version: 1\n# \xc3\xa9\xc3\n", "t.yaml:2:4: error: invalid byte sequence for encoding \"UTF8\": 0xc3");
        expect_one("version: 1\x01\n", "t.yaml:1:11: error: policy file contains the control character 0x01");
        /* Escapes produce control characters the raw-text check never sees: refused after
         * parsing, at the value, in every field (keys too); a tab and a line break are allowed. */
        const char *head = "version: 1\nrules:\n  r:\n";
        const char *tail = "    table: app.t\n    column: at\n    retain: 7 days\n    action: delete\n";
        static const struct {
                const char *clause, *want;
        } bad[] = {
                { "\"deleted\\e[2J\"", "t.yaml:4:13: error: strings must not contain control characters (U+001B)" },
                { "\"bell\\a\"", "t.yaml:4:13: error: strings must not contain control characters (U+0007)" },
                { "\"line\\rforged\"", "t.yaml:4:13: error: strings must not contain control characters (U+000D)" },
                { "\"del\\x7f\"", "t.yaml:4:13: error: strings must not contain control characters (U+007F)" },
                { "\"csi\\x9b2J\"", "t.yaml:4:13: error: strings must not contain control characters (U+009B)" },
                { "\"nel\\N\"", "t.yaml:4:13: error: strings must not contain control characters (U+0085)" },
                { "\"nul\\0\"", "t.yaml:4:13: error: strings must not contain NUL characters" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *y = xasprintf("%s    clause: %s\n%s", head, bad[i].clause, tail);
                expect_one(y, bad[i].want);
        }
        Diagnostics *dc = expect_error("version: 1\nrules:\n  r:\n    clause: \"ab\\ec\"\n    table: app.t\n    column: at\n"
                                       "    retain: 7 days\n    action: delete\n",
                                       "t.yaml:4:13: error: strings must not contain control characters (U+001B)");
        const Diagnostic *xc = find(dc, "t.yaml:4:13: error: strings must not contain control characters (U+001B)");
        assert_string_equal(xc->detail, "The value contains U+001B at character 3, after its escapes are read.");
        assert_string_equal(xc->hint, "Remove it: only a tab and a line break are allowed in a value.");
        diagnostics_free(dc);
        /* in a key, and in a hold's reason */
        expect_one("version: 1\n\"ver\\bsion\": 1\n", "t.yaml:2:1: error: strings must not contain control characters (U+0008)");
        expect_one("version: 1\nsubjects:\n  account: { table: app.accounts, key: id }\nholds:\n"
                   "  legal: { reason: \"x\\e]0;title\\a\", subject: account, registry: true }\n",
                   "t.yaml:5:20: error: strings must not contain control characters (U+001B)");
        /* a tab and line breaks are fine */
        _cleanup_free_ char *ok = xasprintf("%s    clause: \"a\\tb\\nc\"\n%s", head, tail);
        _cleanup_policy_ Policy *pc = expect_valid(ok);
        assert_string_equal(pc->rules[0].clause, "a\tb\nc");
        _cleanup_free_ char *ok2 = xasprintf("%s    clause: |\n      two\n      lines\n%s", head, tail);
        _cleanup_policy_ Policy *pc2 = expect_valid(ok2);
        assert_string_equal(pc2->rules[0].clause, "two\nlines\n");

        /* valid UTF-8 is fine, also in strings */
        _cleanup_policy_ Policy *q = expect_valid(RULE_HEAD "    retain: 7 days\n    action: delete\n"
                                                  "    where: \"name <> 'J\xc3\xbcrgen'\"\n");
        assert_string_equal(q->rules[0].where, "name <> 'J\xc3\xbcrgen'");
}

static void test_limits(void **state) {
        (void) state;
        /* too large */
        size_t n = POLICY_FILE_SIZE_MAX + 1;
        char *big = xmalloc(n + 1);
        memset(big, '#', n);
        big[n] = 0;
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        assert_int_equal(policy_load_string("t.yaml", big, n, &p, d), -EINVAL);
        find(d, "t.yaml: error: policy file is too large (4194305 bytes; the limit is 4 MiB)");
        diagnostics_free(d);
        free(big);

        /* many errors: at most 100 per file, then one note */
        StrBuf m = {};
        strbuf_append(&m, "version: 1\n");
        for (int i = 0; i < 500; i++)
                strbuf_appendf(&m, "unknown%d: x\n", i);
        Diagnostics *md = load(strbuf_str(&m), NULL);
        assert_int_equal(md->n_errors, 101);
        _cleanup_free_ char *last = first_line(&md->items[100]);
        assert_string_equal(last, "t.yaml:102:1: error: too many errors in this file; the rest are not reported");
        diagnostics_free(md);
        strbuf_done(&m);

        /* nesting deeper than 64 */
        StrBuf b = {};
        strbuf_append(&b, "version: 1\nx: ");
        for (int i = 0; i < 100; i++)
                strbuf_appendc(&b, '[');
        for (int i = 0; i < 100; i++)
                strbuf_appendc(&b, ']');
        strbuf_appendc(&b, '\n');
        expect_one(strbuf_str(&b), "t.yaml:2:67: error: policy file nests deeper than 64 levels");
        strbuf_done(&b);
}

/* ---- errors: the policy grammar ------------------------------------------------------------ */

static void test_version(void **state) {
        (void) state;
        expect_hint("rules: {}\n", "t.yaml:1:1: error: missing required key \"version\" at the top level",
                    "Add \"version: 1\" as the first line.");
        expect_one("version: 2\n", "t.yaml:1:10: error: unsupported policy version \"2\"");
        expect_one("version: 1.0\n", "t.yaml:1:10: error: unsupported policy version \"1.0\"");
        expect_one("version: [1]\n", "t.yaml:1:10: error: expected a string for \"version\" at the top level, found a list");
}

static void test_unknown_keys(void **state) {
        (void) state;
        expect_hint(RULE_HEAD "    retian: 7 days\n    action: delete\n    retain: 7 days\n",
                    "t.yaml:7:5: error: unknown key \"retian\" in rule \"r\"", "Did you mean \"retain\"?");
        /* retentiond.policy(5) lists the settings under SETTINGS; they are keys of the rule */
        expect_hint(RULE_HEAD "    retain: 7 days\n    action: delete\n    settings: { batch_size: 10 }\n",
                    "t.yaml:9:5: error: unknown key \"settings\" in rule \"r\"",
                    "Write the settings (batch_size, schedule, window, max_fraction, max_rows, breaker_min_rows) as keys"
                    " of their own, without \"settings:\".");
        expect_hint("version: 1\ndefaults:\n  settings: { batch_size: 10 }\n", "t.yaml:3:3: error: unknown key \"settings\" in \"defaults\"",
                    "Write the settings (batch_size, schedule, window, max_fraction, max_rows, breaker_min_rows) as keys"
                    " of their own, without \"settings:\".");
        expect_hint("version: 1\nrule: {}\n", "t.yaml:2:1: error: unknown key \"rule\" at the top level",
                    "Did you mean \"rules\"?");
        expect_hint("version: 1\ndefaults:\n  batchsize: 10\n", "t.yaml:3:3: error: unknown key \"batchsize\" in \"defaults\"",
                    "Did you mean \"batch_size\"?");
        Diagnostics *d = expect_error("version: 1\nsubjects:\n  s: { table: t, key: id, colour: red }\n",
                                      "t.yaml:3:27: error: unknown key \"colour\" in subject \"s\"");
        assert_null(d->items[0].hint);
        diagnostics_free(d);
        expect_one(RULE_HEAD "    retain: 7 days\n    action: delete\n    key: secret\n",
                   "t.yaml:9:5: error: the hash key cannot be given in a policy file");
}

static void test_wrong_types(void **state) {
        (void) state;
        expect_one("version: 1\nrules: [a, b]\n", "t.yaml:2:8: error: expected a mapping for \"rules\", found a list");
        expect_one("version: 1\nrules:\n  r: delete\n", "t.yaml:3:6: error: expected a mapping for rule \"r\", found a string");
        expect_one("version: 1\nrules:\n  r:\n", "t.yaml:3:5: error: expected a mapping for rule \"r\", found an empty value");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: anonymise\n    columns: [ip]\n",
                   "t.yaml:9:14: error: expected a mapping for \"columns\" in rule \"r\", found a list");
        expect_one("version: 1\nsubjects:\n  s: { table: t, key: id }\n"
                   "rules:\n  r:\n    clause: c\n    table: t\n    column: at\n    retain: 1 day\n    action: delete\n"
                   "    subject: s\n    holds: {a: b}\n",
                   "t.yaml:12:12: error: expected a list for \"holds\" in rule \"r\", found a mapping");
        expect_one(RULE_HEAD "    retain: {days: 7}\n    action: delete\n",
                   "t.yaml:7:13: error: expected a string for \"retain\" in rule \"r\", found a mapping");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: delete\n    {a: 1}: x\n",
                   "t.yaml:9:5: error: mapping keys must be strings, not mappings");
}

static void test_missing_keys(void **state) {
        (void) state;
        /* reported at the start of the mapping: the first key of the rule */
        expect_hint(RULE_HEAD "    action: delete\n", "t.yaml:4:5: error: missing required key \"retain\" in rule \"r\"",
                    "Say how long rows are kept, e.g. retain: 7 days.");
        expect_one("version: 1\nrules:\n  r: { table: t, column: at, retain: 1 day, action: delete }\n",
                   "t.yaml:3:6: error: missing required key \"clause\" in rule \"r\"");
        Policy *p = NULL;
        Diagnostics *d = load("version: 1\nrules:\n  r: { clause: c }\n", &p);
        assert_null(p);
        assert_int_equal(d->n_errors, 4);
        find(d, "t.yaml:3:6: error: missing required key \"table\" in rule \"r\"");
        find(d, "t.yaml:3:6: error: missing required key \"column\" in rule \"r\"");
        find(d, "t.yaml:3:6: error: missing required key \"retain\" in rule \"r\"");
        find(d, "t.yaml:3:6: error: missing required key \"action\" in rule \"r\"");
        diagnostics_free(d);
        expect_one(RULE_HEAD "    retain: 7 days\n    action: delete\n    clause: ''\n",
                   "t.yaml:9:5: error: duplicate key \"clause\"");
        expect_one("version: 1\nrules:\n  r:\n    clause:\n    table: t\n    column: at\n    retain: 1 day\n    action: delete\n",
                   "t.yaml:4:12: error: missing value for \"clause\" in rule \"r\"");
}

static void test_durations(void **state) {
        (void) state;
        Diagnostics *d = expect_error(RULE_HEAD "    retain: 7 dyas\n    action: delete\n",
                                      "t.yaml:7:15: error: invalid duration \"7 dyas\" for \"retain\" in rule \"r\"");
        assert_string_equal(d->items[0].detail, "Unknown time unit.");
        assert_string_equal(d->items[0].hint, "Did you mean \"days\"?");
        diagnostics_free(d);
        /* quoted on one line: the column still points into the value */
        expect_one(RULE_HEAD "    retain: '7 dyas'\n    action: delete\n",
                   "t.yaml:7:16: error: invalid duration \"7 dyas\" for \"retain\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: -7 days\n    action: delete\n",
                   "t.yaml:7:13: error: invalid duration \"-7 days\" for \"retain\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: 1.5 days\n    action: delete\n",
                   "t.yaml:7:14: error: invalid duration \"1.5 days\" for \"retain\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: 99999999999 years\n    action: delete\n",
                   "t.yaml:7:13: error: invalid duration \"99999999999 years\" for \"retain\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: P1H\n    action: delete\n",
                   "t.yaml:7:15: error: invalid duration \"P1H\" for \"retain\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: delete\n    deadline: soon\n",
                   "t.yaml:9:15: error: invalid duration \"soon\" for \"deadline\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: delete\n    schedule: 0 days\n",
                   "t.yaml:9:15: error: invalid value \"0 days\" for \"schedule\" in rule \"r\"");
        /* a block scalar: the column of the scalar */
        expect_one(RULE_HEAD "    retain: >-\n      7 fortnights\n    action: delete\n",
                   "t.yaml:7:13: error: invalid duration \"7 fortnights\" for \"retain\" in rule \"r\"");

        /* a cutoff before PostgreSQL's first timestamp (4713 BC): refused at load, at the retain */
        d = expect_error(RULE_HEAD "    retain: 9999 years\n    action: delete\n",
                         "t.yaml:7:13: error: retain \"9999 years\" in rule \"r\" reaches back before 4713 BC, the"
                         " earliest time PostgreSQL can represent");
        assert_true(strncmp(d->items[0].detail, "Every run computes the cutoff now() - retain; it would fail with"
                                                " \"timestamp out of range\". At most ", 90) == 0);
        diagnostics_free(d);
        /* with the deadline: the overdue cutoff is now() - retain - deadline */
        expect_one(RULE_HEAD "    retain: 6000 years\n    deadline: 1000 years\n    action: delete\n",
                   "t.yaml:7:13: error: retain \"6000 years\" in rule \"r\" reaches back before 4713 BC, the"
                   " earliest time PostgreSQL can represent");
        expect_one(RULE_HEAD "    retain: P3000000D\n    action: delete\n",
                   "t.yaml:7:13: error: retain \"P3000000D\" in rule \"r\" reaches back before 4713 BC, the"
                   " earliest time PostgreSQL can represent");
        expect_one("version: 1\nsubjects:\n  s: { table: app.s, key: id }\nholds:\n"
                   "  h: { reason: r, subject: s, table: app.e, subject_column: sid, column: at, retain: 7000 years }\n"
                   "rules:\n  r: { clause: c, table: app.s, column: at, retain: 1 day, action: delete, subject: s, holds: [h] }\n",
                   "t.yaml:5:86: error: retain \"7000 years\" in hold \"h\" reaches back before 4713 BC, the earliest"
                   " time PostgreSQL can represent");
        /* long, but within range: 6000 years back is 3975 BC */
        policy_free(expect_valid(RULE_HEAD "    retain: 6000 years\n    action: delete\n"));
}

static void test_identifiers(void **state) {
        (void) state;
        Diagnostics *d = expect_error("version: 1\nrules:\n  r:\n    clause: c\n    table: app.access log\n"
                                      "    column: at\n    retain: 1 day\n    action: delete\n",
                                      "t.yaml:5:22: error: invalid table name \"app.access log\" for \"table\" in rule \"r\"");
        assert_string_equal(d->items[0].detail, "Invalid character in unquoted identifier.");
        diagnostics_free(d);
        expect_one("version: 1\nrules:\n  r:\n    clause: c\n    table: a.b.c\n"
                   "    column: at\n    retain: 1 day\n    action: delete\n",
                   "t.yaml:5:15: error: invalid table name \"a.b.c\" for \"table\" in rule \"r\"");
        expect_one("version: 1\nrules:\n  r:\n    clause: c\n    table: t\n"
                   "    column: x;drop\n    retain: 1 day\n    action: delete\n",
                   "t.yaml:6:14: error: invalid column name \"x;drop\" for \"column\" in rule \"r\"");
        expect_one("version: 1\nrules:\n  r:\n    clause: c\n    table: t\n"
                   "    column: '\"unterminated'\n    retain: 1 day\n    action: delete\n",
                   "t.yaml:6:14: error: invalid column name \"\"unterminated\" for \"column\" in rule \"r\"");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: anonymise\n    columns: { a b: null }\n",
                   "t.yaml:9:17: error: invalid column name \"a b\" in rule \"r\"");
        expect_one("version: 1\nrules:\n  Access Logs: { clause: c, table: t, column: at, retain: 1 day, action: delete }\n",
                   "t.yaml:3:3: error: invalid rule name \"Access Logs\"");
        expect_one("version: 1\nsubjects:\n  -x: { table: t, key: id }\n", "t.yaml:3:3: error: invalid subject name \"-x\"");
}

static void test_method_errors(void **state) {
        (void) state;
#define ANON(cols) RULE_HEAD "    retain: 7 days\n    action: anonymise\n    columns: " cols "\n"
        expect_hint(ANON("{ ip: trunc_ip }"),
                    "t.yaml:9:20: error: unknown anonymisation method \"trunc_ip\" for column \"ip\" in rule \"r\"",
                    "Known methods: null, hash, truncate_ip, email_domain, {redact: \"text\"}, {truncate_date: month|year}.");
        expect_hint(ANON("{ ip: truncate-ip }"),
                    "t.yaml:9:20: error: unknown anonymisation method \"truncate-ip\" for column \"ip\" in rule \"r\"",
                    "Did you mean \"truncate_ip\"?");
        expect_hint(ANON("{ note: redact }"),
                    "t.yaml:9:22: error: method \"redact\" needs a replacement text for column \"note\" in rule \"r\"",
                    "Write {redact: \"[deleted]\"}.");
        expect_one(ANON("{ note: {redact: } }"),
                   "t.yaml:9:31: error: method \"redact\" needs a replacement text for column \"note\" in rule \"r\", found an empty value");
        expect_hint(ANON("{ at: truncate_date }"),
                    "t.yaml:9:20: error: method \"truncate_date\" needs a precision for column \"at\" in rule \"r\"",
                    "Write {truncate_date: month} or {truncate_date: year}.");
        expect_one(ANON("{ at: {truncate_date: day} }"),
                   "t.yaml:9:36: error: invalid precision \"day\" for method \"truncate_date\" for column \"at\" in rule \"r\"");
        expect_one(ANON("{ email: {hash: {key: abc}} }"),
                   "t.yaml:9:24: error: method \"hash\" takes no argument for column \"email\" in rule \"r\"");
        expect_one(ANON("{ email: {key: abc} }"),
                   "t.yaml:9:24: error: the hash key cannot be given in a policy file");
        expect_one(ANON("{ email: }"), "t.yaml:9:16: error: missing method for column \"email\" in rule \"r\"");
        expect_one(ANON("{ email: [hash] }"),
                   "t.yaml:9:23: error: expected a method for column \"email\" in rule \"r\", found a list");
        expect_one(ANON("{ email: {redact: x, hash: } }"),
                   "t.yaml:9:23: error: expected exactly one method for column \"email\" in rule \"r\", found 2");
        expect_one(ANON("{}"), "t.yaml:9:14: error: \"columns\" is empty in rule \"r\"");
#undef ANON
}

static void test_action_errors(void **state) {
        (void) state;
        expect_hint(RULE_HEAD "    retain: 7 days\n    action: delet\n",
                    "t.yaml:8:13: error: unknown action \"delet\" in rule \"r\"", "Did you mean \"delete\"?");
        expect_one(RULE_HEAD "    retain: 7 days\n    action: anonymise\n",
                   "t.yaml:8:13: error: rule \"r\" anonymises but has no \"columns\"");
        expect_hint(RULE_HEAD "    retain: 7 days\n    action: delete\n    columns: { ip: null }\n",
                    "t.yaml:9:5: error: rule \"r\" deletes rows but lists \"columns\"",
                    "Remove \"columns\", or write \"action: anonymise\".");
}

#define HOLDS_HEAD                                                   \
        "version: 1\n"                                        /* 1 */ \
        "subjects:\n"                                         /* 2 */ \
        "  account: { table: app.accounts, key: id }\n"       /* 3 */ \
        "  visitor: { table: app.visitors, key: id }\n"       /* 4 */ \
        "holds:\n"                                            /* 5 */ \
        "  legal: { reason: r, subject: account, registry: true }\n" /* 6 */ \
        "  visits: { reason: r, subject: visitor, registry: true }\n" /* 7 */

static void test_holds_and_subjects(void **state) {
        (void) state;
#define RULE_ON(table) "rules:\n  r:\n    clause: c\n    table: " table "\n    column: at\n    retain: 1 day\n    action: delete\n"
        /* lines: 8 rules, 9 r, 10 clause, 11 table, 12 column, 13 retain, 14 action, 15... */
        expect_hint(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [lgal]\n",
                    "t.yaml:16:13: error: rule \"r\" refers to undefined hold \"lgal\"", "Did you mean \"legal\"?");
        expect_hint(HOLDS_HEAD RULE_ON("app.accounts") "    subject: acount\n",
                    "t.yaml:15:14: error: rule \"r\" refers to undefined subject \"acount\"", "Did you mean \"account\"?");
        expect_hint(HOLDS_HEAD RULE_ON("app.accounts") "    subject: zzz\n",
                    "t.yaml:15:14: error: rule \"r\" refers to undefined subject \"zzz\"",
                    "Define it under \"subjects:\" in one of the policy files.");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [legal, visits]\n",
                   "t.yaml:16:20: error: hold \"visits\" protects subject \"visitor\", but rule \"r\" is about subject \"account\"");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    holds: [legal]\n",
                   "t.yaml:15:5: error: rule \"r\" lists holds but has no subject");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [legal, legal]\n",
                   "t.yaml:16:20: error: hold \"legal\" is listed twice in rule \"r\"");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: []\n",
                   "t.yaml:16:12: error: \"holds\" is empty in rule \"r\"");
        expect_one(HOLDS_HEAD RULE_ON("app.tickets") "    subject: account\n",
                   "t.yaml:15:14: error: rule \"r\" needs \"subject_column\": its table app.tickets is not the table of "
                   "subject \"account\" (app.accounts)");
        expect_one(HOLDS_HEAD RULE_ON("app.tickets") "    subject_column: account_id\n",
                   "t.yaml:15:5: error: rule \"r\" has \"subject_column\" but no \"subject\"");
        expect_hint(HOLDS_HEAD RULE_ON("app.accounts") "    while_held: { columns: { email: hash } }\n",
                    "t.yaml:15:5: error: rule \"r\" has \"while_held\" but no \"holds\"",
                    "Add \"holds: [...]\", or remove \"while_held\".");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [legal]\n    while_held: { action: delete, columns: { email: hash } }\n",
                   "t.yaml:17:27: error: \"while_held\" can only anonymise in rule \"r\"");
        expect_one(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [legal]\n    while_held: { action: anonymise }\n",
                   "t.yaml:17:17: error: missing required key \"columns\" in \"while_held\" of rule \"r\"");
        /* a valid one, for contrast: the table is the subject's table, with a default schema */
        _cleanup_policy_ Policy *p = expect_valid(HOLDS_HEAD RULE_ON("app.accounts") "    subject: account\n    holds: [legal]\n"
                                                  "  v:\n    clause: c\n    table: app.visitors\n    column: at\n    retain: 1 day\n"
                                                  "    action: delete\n    subject: visitor\n    holds: [visits]\n");
        assert_ptr_equal(p->rules[0].holds[0], policy_find_hold(p, "legal"));
        assert_ptr_equal(p->rules[1].subject, policy_find_subject(p, "visitor"));
#undef RULE_ON
}

/* referenced_by: a rule's rows are the subject's through the rows that refer to them (issue 17) */
static void test_referenced_by(void **state) {
        (void) state;
#define ANON_ON(table)                                                                                                  \
        "rules:\n  r:\n    clause: c\n    table: " table "\n    column: at\n    retain: 1 day\n    action: anonymise\n" \
        "    columns: { street: null }\n"
        /* lines: 8 rules, 9 r, 10 clause, 11 table, 12 column, 13 retain, 14 action, 15 columns, 16... */
        _cleanup_policy_ Policy *p = expect_valid(HOLDS_HEAD ANON_ON("app.addresses")
                                                  "    subject: account\n"
                                                  "    referenced_by: { table: app.accounts, column: address_id }\n"
                                                  "    holds: [legal]\n");
        assert_true(p->rules[0].has_referrer);
        assert_string_equal(p->rules[0].referrer.table.name, "accounts");
        assert_string_equal(p->rules[0].referrer.column, "address_id");
        assert_null(p->rules[0].referrer.subject_column);
        assert_null(p->rules[0].subject_column);
        assert_int_equal(p->rules[0].referrer.loc.line, 17);
        assert_int_equal(p->rules[0].referrer.column_loc.line, 17);
        assert_int_equal(p->rules[0].referrer.column_loc.column, 51);
        expect_one(HOLDS_HEAD ANON_ON("app.addresses") "    subject: account\n"
                                                       "    referenced_by: { table: app.orders, column: address_id }\n",
                   "t.yaml:17:29: error: \"referenced_by\" of rule \"r\" needs \"subject_column\": app.orders is not the table of"
                   " subject \"account\" (app.accounts)");
        policy_free(expect_valid(HOLDS_HEAD ANON_ON("app.addresses")
                                 "    subject: account\n"
                                 "    referenced_by: { table: app.orders, column: address_id, subject_column: account_id }\n"));
        expect_one(HOLDS_HEAD ANON_ON("app.addresses") "    subject: account\n    subject_column: account_id\n"
                                                       "    referenced_by: { table: app.accounts, column: address_id }\n",
                   "t.yaml:18:5: error: rule \"r\" has both \"subject_column\" and \"referenced_by\"");
        expect_one(HOLDS_HEAD ANON_ON("app.addresses") "    referenced_by: { table: app.accounts, column: address_id }\n",
                   "t.yaml:16:5: error: rule \"r\" has \"referenced_by\" but no \"subject\"");
        /* a typo: the unknown key with its hint, and the key it meant, missing */
        Diagnostics *d = load(HOLDS_HEAD ANON_ON("app.addresses") "    subject: account\n"
                                                                  "    referenced_by: { table: app.accounts, colum: address_id }\n",
                              NULL);
        assert_int_equal(d->n_errors, 2);
        assert_string_equal(find(d, "t.yaml:17:43: error: unknown key \"colum\" in \"referenced_by\" of rule \"r\"")->hint,
                            "Did you mean \"column\"?");
        (void) find(d, "t.yaml:17:20: error: missing required key \"column\" in \"referenced_by\" of rule \"r\"");
        diagnostics_free(d);
        expect_one(HOLDS_HEAD "rules:\n  r:\n    clause: c\n    table: app.addresses\n    column: at\n    retain: 1 day\n"
                              "    action: delete\n    subject: account\n"
                              "    referenced_by: { table: app.accounts, column: address_id }\n",
                   "t.yaml:16:5: error: rule \"r\" deletes rows whose subject it reaches through \"referenced_by\"");
        /* holds of two subjects: the account's, and the visitor's, whose table is the rule's */
        _cleanup_policy_ Policy *q = expect_valid(HOLDS_HEAD ANON_ON("app.visitors")
                                                  "    subject: account\n    subject_column: account_id\n"
                                                  "    holds: [legal, visits]\n");
        assert_true(rule_hold_of_own_subject(&q->rules[0], q->rules[0].holds[0]));
        assert_false(rule_hold_of_own_subject(&q->rules[0], q->rules[0].holds[1]));
#undef ANON_ON
}

/* delete_with: a delete rule deletes, with each row, the row its column refers to (issue 17) */
static void test_delete_with(void **state) {
        (void) state;
#define DEL_ON(table) "rules:\n  r:\n    clause: c\n    table: " table "\n    column: at\n    retain: 1 day\n    action: delete\n"
        /* lines: 8 rules, 9 r, 10 clause, 11 table, 12 column, 13 retain, 14 action, 15... */
        _cleanup_policy_ Policy *p = expect_valid(HOLDS_HEAD DEL_ON("app.accounts")
                                                  "    delete_with:\n"
                                                  "      - { table: app.addresses, through: address_id }\n"
                                                  "      - { table: app.cards, through: card_id }\n");
        assert_int_equal(p->rules[0].n_delete_with, 2);
        assert_string_equal(p->rules[0].delete_with[0].table.name, "addresses");
        assert_string_equal(p->rules[0].delete_with[0].through, "address_id");
        assert_string_equal(p->rules[0].delete_with[1].through, "card_id");
        assert_int_equal(p->rules[0].delete_with[1].through_loc.line, 17);
        assert_int_equal(p->rules[0].delete_with[1].through_loc.column, 38);
        assert_int_equal(p->rules[0].delete_with[0].table_loc.column, 18);
        expect_hint(HOLDS_HEAD "rules:\n  r:\n    clause: c\n    table: app.accounts\n    column: at\n    retain: 1 day\n"
                               "    action: anonymise\n    columns: { email: null }\n"
                               "    delete_with: [{ table: app.addresses, through: address_id }]\n",
                    "t.yaml:16:5: error: rule \"r\" has \"delete_with\" but does not delete",
                    "Write \"action: delete\", or remove \"delete_with\" (an anonymise rule on the other table with"
                    " \"referenced_by\" anonymises such rows).");
        expect_one(HOLDS_HEAD DEL_ON("app.accounts") "    delete_with: [{ table: app.accounts, through: parent_id }]\n",
                   "t.yaml:15:28: error: \"delete_with\" of rule \"r\" names the rule's own table");
        expect_one(HOLDS_HEAD DEL_ON("app.accounts") "    delete_with: []\n", "t.yaml:15:18: error: \"delete_with\" is empty in rule \"r\"");
        expect_one(HOLDS_HEAD DEL_ON("app.accounts") "    delete_with: { table: app.addresses, through: address_id }\n",
                   "t.yaml:15:18: error: expected a list for \"delete_with\" in rule \"r\", found a mapping");
        expect_one(HOLDS_HEAD DEL_ON("app.accounts") "    delete_with: [{ table: app.addresses }]\n",
                   "t.yaml:15:19: error: missing required key \"through\" in \"delete_with\" of rule \"r\"");
        expect_one(HOLDS_HEAD DEL_ON("app.accounts")
                   "    delete_with: [{ table: app.addresses, through: a }, { table: app.addresses, through: a }]\n",
                   "t.yaml:15:57: error: \"delete_with\" of rule \"r\" lists the same table and column twice");
        Diagnostics *d = load(HOLDS_HEAD DEL_ON("app.accounts") "    delete_with: [{ table: app.addresses, throug: a }]\n", NULL);
        assert_string_equal(find(d, "t.yaml:15:43: error: unknown key \"throug\" in \"delete_with\" of rule \"r\"")->hint,
                            "Did you mean \"through\"?");
        diagnostics_free(d);
#undef DEL_ON
}

/* The second example policy, for the rental shop's schema (sql/examples/rental-shop.sql). */
static void test_rental_shop_policy(void **state) {
        (void) state;
        char *paths[] = { (char *) SOURCE_ROOT "/policies/examples/rental-shop.yaml" };
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load(paths, 1, &p, d);
        if (r != 0 || d->n_errors || d->n_warnings)
                dump(d);
        assert_int_equal(r, 0);
        assert_int_equal(d->n_errors + d->n_warnings, 0);
        assert_true(policy_find_rule(p, "customer-addresses")->has_referrer);
        const Rule *accounts = policy_find_rule(p, "customer-accounts");
        assert_int_equal(accounts->n_delete_with, 1);
        assert_string_equal(accounts->delete_with[0].through, "address_id");
        const Rule *rentals = policy_find_rule(p, "rentals");
        assert_int_equal(rentals->n_holds, 2);
        assert_ptr_equal(rentals->holds[1]->subject, policy_find_subject(p, "rental"));
        policy_free(p);
        diagnostics_free(d);
}

static void test_hold_forms(void **state) {
        (void) state;
        const char *head = "version: 1\nsubjects:\n  account: { table: app.accounts, key: id }\nholds:\n";
        _cleanup_free_ char *a = xasprintf("%s  tax:\n    reason: r\n    subject: account\n    table: app.invoices\n", head);
        Policy *p = NULL;
        Diagnostics *d = load(a, &p);
        assert_null(p);
        assert_int_equal(d->n_errors, 3);
        find(d, "t.yaml:6:5: error: missing required key \"subject_column\" in derived hold \"tax\"");
        find(d, "t.yaml:6:5: error: missing required key \"column\" in derived hold \"tax\"");
        find(d, "t.yaml:6:5: error: missing required key \"retain\" in derived hold \"tax\"");
        diagnostics_free(d);

        _cleanup_free_ char *b = xasprintf("%s  legal:\n    reason: r\n    subject: account\n    registry: true\n    table: app.x\n", head);
        expect_hint(b, "t.yaml:9:5: error: registry hold \"legal\" cannot have \"table\"",
                    "Remove \"table\", or remove \"registry: true\".");
        _cleanup_free_ char *c = xasprintf("%s  legal:\n    subject: account\n    registry: true\n", head);
        expect_one(c, "t.yaml:6:5: error: missing required key \"reason\" in hold \"legal\"");
        _cleanup_free_ char *e = xasprintf("%s  legal:\n    reason: r\n    subject: account\n    registry: yes please\n", head);
        expect_one(e, "t.yaml:8:15: error: invalid value \"yes please\" for \"registry\" in hold \"legal\"");
        _cleanup_free_ char *f = xasprintf("%s  legal:\n    reason: r\n    subject: acount\n    registry: true\n", head);
        expect_hint(f, "t.yaml:7:14: error: hold \"legal\" refers to undefined subject \"acount\"", "Did you mean \"account\"?");
        expect_one("version: 1\nsubjects:\n  s: { table: t }\n", "t.yaml:3:6: error: missing required key \"key\" in subject \"s\"");
}

/* Statutory start dates: `from` and `fiscal_year_start` on rules and derived holds. */
static void test_period_start(void **state) {
        (void) state;
#define FROM(s) RULE_HEAD "    retain: 10 years\n    action: delete\n" s
        /* valid forms, and their summaries */
        Policy *p = expect_valid(FROM("    from: end_of_year\n"));
        assert_int_equal(p->rules[0].start.from, FROM_END_OF_YEAR);
        _cleanup_free_ char *s1 = rule_summary(&p->rules[0]);
        assert_string_equal(s1, "delete app.t rows whose at is older than 10 years counted from the end of the calendar year");
        policy_free(p);
        p = expect_valid(FROM("    from: end_of_month\n"));
        assert_int_equal(p->rules[0].start.from, FROM_END_OF_MONTH);
        _cleanup_free_ char *s2 = rule_summary(&p->rules[0]);
        assert_string_equal(s2, "delete app.t rows whose at is older than 10 years counted from the end of the calendar month");
        policy_free(p);
        p = expect_valid(RULE_HEAD "    retain: 6 days\n    action: delete\n    from: end_of_day\n");
        assert_int_equal(p->rules[0].start.from, FROM_END_OF_DAY);
        assert_int_equal(p->rules[0].start.fiscal_year_start, 0);
        assert_string_equal(start_from_to_string(p->rules[0].start.from), "end_of_day");
        _cleanup_free_ char *s4 = rule_summary(&p->rules[0]);
        assert_string_equal(s4, "delete app.t rows whose at is older than 6 days counted from the end of the day");
        policy_free(p);
        p = expect_valid(FROM("    from: end_of_fiscal_year\n    fiscal_year_start: 4\n"));
        assert_int_equal(p->rules[0].start.from, FROM_END_OF_FISCAL_YEAR);
        assert_int_equal(p->rules[0].start.fiscal_year_start, 4);
        _cleanup_free_ char *s3 = rule_summary(&p->rules[0]);
        assert_string_equal(s3, "delete app.t rows whose at is older than 10 years counted from the end of the fiscal year starting in April");
        policy_free(p);
        p = expect_valid(FROM(""));
        assert_int_equal(p->rules[0].start.from, FROM_RECORD);
        policy_free(p);

        /* errors, with their exact positions (line 9 is the first line after action) */
        expect_hint(FROM("    from: end_of_yaer\n"), "t.yaml:9:11: error: invalid value \"end_of_yaer\" for \"from\" in rule \"r\"",
                    "Did you mean \"end_of_year\"?");
        expect_hint(FROM("    from: issue date\n"), "t.yaml:9:11: error: invalid value \"issue date\" for \"from\" in rule \"r\"",
                    "Write end_of_day, end_of_month, end_of_year or end_of_fiscal_year.");
        expect_hint(FROM("    from: end_of_dya\n"), "t.yaml:9:11: error: invalid value \"end_of_dya\" for \"from\" in rule \"r\"",
                    "Did you mean \"end_of_day\"?");
        expect_hint(FROM("    from: end_of_days\n"), "t.yaml:9:11: error: invalid value \"end_of_days\" for \"from\" in rule \"r\"",
                    "Did you mean \"end_of_day\"?");
        expect_hint(FROM("    from: day\n"), "t.yaml:9:11: error: invalid value \"day\" for \"from\" in rule \"r\"",
                    "Write end_of_day, end_of_month, end_of_year or end_of_fiscal_year.");
        expect_one(FROM("    from: [end_of_year]\n"), "t.yaml:9:11: error: expected a string for \"from\" in rule \"r\", found a list");
        expect_hint(FROM("    from: end_of_fiscal_year\n"),
                    "t.yaml:9:11: error: \"from: end_of_fiscal_year\" needs \"fiscal_year_start\" in rule \"r\"",
                    "Add e.g. \"fiscal_year_start: 4\" for a fiscal year from 1 April to 31 March.");
        expect_one(FROM("    from: end_of_fiscal_year\n    fiscal_year_start: 13\n"),
                   "t.yaml:10:24: error: invalid value \"13\" for \"fiscal_year_start\" in rule \"r\"");
        expect_one(FROM("    from: end_of_fiscal_year\n    fiscal_year_start: 0\n"),
                   "t.yaml:10:24: error: invalid value \"0\" for \"fiscal_year_start\" in rule \"r\"");
        expect_one(FROM("    from: end_of_fiscal_year\n    fiscal_year_start: April\n"),
                   "t.yaml:10:24: error: invalid value \"April\" for \"fiscal_year_start\" in rule \"r\"");
        expect_hint(FROM("    from: end_of_year\n    fiscal_year_start: 4\n"),
                    "t.yaml:10:5: error: \"fiscal_year_start\" needs \"from: end_of_fiscal_year\" in rule \"r\", not \"from: end_of_year\"",
                    "Remove \"fiscal_year_start\", or write \"from: end_of_fiscal_year\".");
        expect_hint(FROM("    from: end_of_day\n    fiscal_year_start: 4\n"),
                    "t.yaml:10:5: error: \"fiscal_year_start\" needs \"from: end_of_fiscal_year\" in rule \"r\", not \"from: end_of_day\"",
                    "Remove \"fiscal_year_start\", or write \"from: end_of_fiscal_year\".");
        expect_hint(FROM("    fiscal_year_start: 4\n"),
                    "t.yaml:9:5: error: \"fiscal_year_start\" needs \"from: end_of_fiscal_year\" in rule \"r\"",
                    "Add \"from: end_of_fiscal_year\", or remove \"fiscal_year_start\".");
        expect_one(RULE_HEAD "    retain: 10 years\n    action: delete\n    from: end_of_year\n    frm: end_of_year\n",
                   "t.yaml:10:5: error: unknown key \"frm\" in rule \"r\"");
#undef FROM

        /* derived holds take them too; registry holds do not */
        const char *head = "version: 1\nsubjects:\n  account: { table: app.accounts, key: id }\nholds:\n"
                           "  tax:\n    reason: r\n    subject: account\n    table: app.invoices\n"
                           "    subject_column: account_id\n    column: issued_at\n    retain: 10 years\n"; /* lines 5-11 */
        _cleanup_free_ char *a = xasprintf("%s    from: end_of_fiscal_year\n    fiscal_year_start: 7\n", head);
        p = expect_valid(a);
        assert_int_equal(p->holds[0].start.from, FROM_END_OF_FISCAL_YEAR);
        assert_int_equal(p->holds[0].start.fiscal_year_start, 7);
        policy_free(p);
        _cleanup_free_ char *b = xasprintf("%s    from: end_of_fiscal_year\n", head);
        expect_one(b, "t.yaml:12:11: error: \"from: end_of_fiscal_year\" needs \"fiscal_year_start\" in hold \"tax\"");
        _cleanup_free_ char *c = xasprintf("%s    from: end_of_decade\n", head);
        expect_one(c, "t.yaml:12:11: error: invalid value \"end_of_decade\" for \"from\" in hold \"tax\"");
        _cleanup_free_ char *dd = xasprintf("%s    from: end_of_day\n", head);
        p = expect_valid(dd);
        assert_int_equal(p->holds[0].start.from, FROM_END_OF_DAY);
        policy_free(p);
        _cleanup_free_ char *e = xasprintf("%s    from: end_of_month\n    fiscal_year_start: 1\n", head);
        expect_one(e, "t.yaml:13:5: error: \"fiscal_year_start\" needs \"from: end_of_fiscal_year\" in hold \"tax\", not \"from: end_of_month\"");
        expect_hint("version: 1\nsubjects:\n  account: { table: app.accounts, key: id }\nholds:\n"
                    "  legal:\n    reason: r\n    subject: account\n    registry: true\n    from: end_of_year\n",
                    "t.yaml:9:5: error: registry hold \"legal\" cannot have \"from\"", "Remove \"from\", or remove \"registry: true\".");
}

static void test_settings_errors(void **state) {
        (void) state;
#define SET(s) RULE_HEAD "    retain: 7 days\n    action: delete\n    " s "\n"
        expect_one(SET("batch_size: 0"), "t.yaml:9:17: error: invalid value \"0\" for \"batch_size\" in rule \"r\"");
        expect_one(SET("batch_size: 1000001"), "t.yaml:9:17: error: invalid value \"1000001\" for \"batch_size\" in rule \"r\"");
        expect_one(SET("batch_size: -5"), "t.yaml:9:17: error: invalid value \"-5\" for \"batch_size\" in rule \"r\"");
        expect_one(SET("batch_size: 10.5"), "t.yaml:9:17: error: invalid value \"10.5\" for \"batch_size\" in rule \"r\"");
        expect_one(SET("max_fraction: 0"), "t.yaml:9:19: error: invalid value \"0\" for \"max_fraction\" in rule \"r\"");
        expect_one(SET("max_fraction: 1.5"), "t.yaml:9:19: error: invalid value \"1.5\" for \"max_fraction\" in rule \"r\"");
        expect_one(SET("max_fraction: 150%"), "t.yaml:9:19: error: invalid value \"150%\" for \"max_fraction\" in rule \"r\"");
        expect_one(SET("max_fraction: nan"), "t.yaml:9:19: error: invalid value \"nan\" for \"max_fraction\" in rule \"r\"");
        expect_one(SET("max_rows: 0"), "t.yaml:9:15: error: invalid value \"0\" for \"max_rows\" in rule \"r\"");
        expect_one(SET("breaker_min_rows: many"), "t.yaml:9:23: error: invalid value \"many\" for \"breaker_min_rows\" in rule \"r\"");
        expect_one(SET("window: 25:00-01:00"), "t.yaml:9:13: error: invalid window \"25:00-01:00\" in rule \"r\"");
        expect_one(SET("window: 1:00-5:00"), "t.yaml:9:13: error: invalid window \"1:00-5:00\" in rule \"r\"");
        expect_one(SET("window: 02:00-02:00"), "t.yaml:9:13: error: invalid window \"02:00-02:00\" in rule \"r\"");
        expect_one(SET("where: ''"), "t.yaml:9:12: error: missing value for \"where\" in rule \"r\"");
        /* a where that could close the parentheses it is pasted in, or end the statement (sqlfrag.c):
         * located at the character, in plain, single- and double-quoted scalars */
        expect_hint(SET("where: \"true), false) OR true OR coalesce((true\""),
                    "t.yaml:9:17: error: \"where\" in rule \"r\" closes a parenthesis it did not open",
                    "Balance the parentheses: the expression is pasted inside parentheses of its own and must not close them.");
        expect_one(SET("where: t.a = 1) OR (true"), "t.yaml:9:19: error: \"where\" in rule \"r\" closes a parenthesis it did not open");
        expect_one(SET("where: 't.a = 1; DROP TABLE x'"), "t.yaml:9:20: error: \"where\" in rule \"r\" contains a semicolon");
        expect_one(SET("where: \"t.a = $$)\""), "t.yaml:9:19: error: \"where\" in rule \"r\" has an unterminated dollar-quoted string");
        expect_one(SET("where: \"1 = 1, 2 = 2\""), "t.yaml:9:18: error: \"where\" in rule \"r\" is a list, not one expression");
        /* with escapes in the scalar, at its start */
        expect_one(SET("where: \"'\\\\'' OR true) OR (''\""), "t.yaml:9:12: error: \"where\" in rule \"r\" has a backslash before a quote in a string");
        expect_one("version: 1\ndefaults:\n  batch_size: 0\n", "t.yaml:3:15: error: invalid value \"0\" for \"batch_size\" in \"defaults\"");
#undef SET
}

static void test_all_errors_at_once(void **state) {
        (void) state;
        Policy *p = NULL;
        Diagnostics *d = load("version: 1\n"                /* 1 */
                              "rules:\n"                    /* 2 */
                              "  a:\n"                      /* 3 */
                              "    clause: c\n"             /* 4 */
                              "    table: t\n"              /* 5 */
                              "    column: at\n"            /* 6 */
                              "    retain: 7 dys\n"         /* 7 */
                              "    action: delete\n"        /* 8 */
                              "  b:\n"                      /* 9 */
                              "    clause: c\n"             /* 10 */
                              "    table: t\n"              /* 11 */
                              "    colum: at\n"             /* 12 */
                              "    retain: 7 days\n"        /* 13 */
                              "    action: delete\n"        /* 14 */
                              "    batch_size: 0\n",        /* 15 */
                              &p);
        assert_null(p);
        assert_int_equal(d->n_errors, 4);
        /* sorted by position */
        _cleanup_free_ char *e0 = first_line(&d->items[0]), *e1 = first_line(&d->items[1]),
                           *e2 = first_line(&d->items[2]), *e3 = first_line(&d->items[3]);
        assert_string_equal(e0, "t.yaml:7:15: error: invalid duration \"7 dys\" for \"retain\" in rule \"a\"");
        assert_string_equal(e1, "t.yaml:10:5: error: missing required key \"column\" in rule \"b\"");
        assert_string_equal(e2, "t.yaml:12:5: error: unknown key \"colum\" in rule \"b\"");
        assert_string_equal(e3, "t.yaml:15:17: error: invalid value \"0\" for \"batch_size\" in rule \"b\"");
        diagnostics_free(d);
}

/* ---- the text and JSON forms ------------------------------------------------------------------ */

static void test_format(void **state) {
        (void) state;
        /* the escaping of values for terminals (text_escape) and for JSON */
        _cleanup_free_ char *esc = text_escape("a\x1b[2J\nb\tc\rd\x7f\x01\xc2\x9b\xc2\x85\xff\xc3\xa9\\");
        assert_string_equal(esc, "a\\x1b[2J\\nb\\tc\\rd\\x7f\\x01\\u009b\\u0085\\xff\xc3\xa9\\");
        assert_null(text_escape(NULL));
        size_t off = 0;
        assert_true(text_find_control("ab\ncd", NULL, &off));
        assert_int_equal(off, 2);
        assert_false(text_find_control("ab\ncd\t", "\n\t", NULL));
        assert_true(text_find_control("\xc3\xa9\xc2\x9b", "\n\t", &off));
        assert_int_equal(off, 2);
        assert_false(text_find_control("\xc3\xa9\xc2\xa0", NULL, NULL));
        StrBuf jb = {};
        json_append_string(&jb, "a\x1b\x7f\xc2\x9b\xc3\xa9\n");
        assert_string_equal(strbuf_str(&jb), "\"a\\u001b\\u007f\\u009b\xc3\xa9\\n\"");
        strbuf_done(&jb);
        Diagnostics *d = expect_error(RULE_HEAD "    retian: 7 days\n    action: delete\n    retain: 7 days\n",
                                      "t.yaml:7:5: error: unknown key \"retian\" in rule \"r\"");
        StrBuf b = {};
        diagnostic_format(&d->items[0], &b);
        assert_string_equal(strbuf_str(&b), "t.yaml:7:5: error: unknown key \"retian\" in rule \"r\"\n"
                                            "    7 |     retian: 7 days\n"
                                            "      |     ^\n"
                                            "HINT:  Did you mean \"retain\"?\n");
        strbuf_done(&b);
        diagnostics_to_json(d, &b);
        assert_string_equal(strbuf_str(&b),
                            "[{\"file\":\"t.yaml\",\"line\":7,\"column\":5,\"severity\":\"error\","
                            "\"message\":\"unknown key \\\"retian\\\" in rule \\\"r\\\"\",\"detail\":null,"
                            "\"hint\":\"Did you mean \\\"retain\\\"?\"}]");
        strbuf_done(&b);
        diagnostics_free(d);

        /* tabs before the column stay tabs so the caret lines up; DETAIL comes before HINT */
        d = diagnostics_new();
        Diagnostic *x = diag_add(d, SEVERITY_WARNING, "f.yaml", 12, 4, "something %s", "odd");
        diag_set_source(x, "\tab\x01", 4);
        diag_set_detail(x, "Details.");
        diag_set_hint(x, "Hint.");
        diagnostic_format(x, &b);
        assert_string_equal(strbuf_str(&b), "f.yaml:12:4: warning: something odd\n"
                                            "   12 | \tab?\n"
                                            "      | \t  ^\n"
                                            "DETAIL:  Details.\n"
                                            "HINT:  Hint.\n");
        strbuf_done(&b);
        diagnostics_free(d);
}

/* ---- files and directories ----------------------------------------------------------------------- */

static void test_directory_order_and_defaults(void **state) {
        (void) state;
        _cleanup_free_ char *dir = make_tmpdir();
        write_file(dir, "b.yaml",
                   "version: 1\nrules:\n  b:\n    clause: c\n    table: t\n    column: at\n    retain: 1 day\n    action: delete\n");
        write_file(dir, "a.yaml",
                   "version: 1\ndefaults:\n  batch_size: 10\n  window: 01:00-05:00\n"
                   "rules:\n  a:\n    clause: c\n    table: t\n    column: at\n    retain: 1 day\n    action: delete\n");
        write_file(dir, ".hidden.yaml", "garbage: [\n");
        write_file(dir, "notes.txt", "garbage: [\n");
        write_file(dir, "c.yml", "garbage: [\n");
        _cleanup_free_ char *sub = xasprintf("%s/sub.yaml", dir);
        assert_int_equal(mkdir(sub, 0755), 0);

        char *paths[] = { dir };
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load(paths, 1, &p, d);
        if (r != 0)
                dump(d);
        assert_int_equal(r, 0);
        assert_int_equal(d->n_errors, 0);
        assert_int_equal(p->n_files, 2);
        _cleanup_free_ char *fa = xasprintf("%s/a.yaml", dir), *fb = xasprintf("%s/b.yaml", dir);
        assert_string_equal(p->files[0], fa);
        assert_string_equal(p->files[1], fb);
        assert_string_equal(p->rules[0].name, "a");
        assert_string_equal(p->rules[1].name, "b");
        /* defaults apply to the rules of their own file only */
        assert_int_equal(p->rules[0].batch_size, 10);
        assert_string_equal(p->rules[0].window, "01:00-05:00");
        assert_int_equal(p->rules[1].batch_size, POLICY_DEFAULT_BATCH_SIZE);
        assert_null(p->rules[1].window);
        assert_int_equal(policy_load_exit_code(r, d), EXIT_OK);
        policy_free(p);
        diagnostics_free(d);
        rm_rf(dir);
}

static void test_errors_of_several_files(void **state) {
        (void) state;
        _cleanup_free_ char *dir = make_tmpdir();
        write_file(dir, "10-base.yaml",
                   "version: 1\n"
                   "subjects:\n"
                   "  account: { table: app.accounts, key: id }\n"
                   "holds:\n"
                   "  legal: { reason: r, subject: account, registry: true }\n"
                   "rules:\n"
                   "  logs:\n"
                   "    clause: c\n"
                   "    table: t\n"
                   "    column: at\n"
                   "    retain: 7 dayz\n"
                   "    action: delete\n");
        write_file(dir, "20-more.yaml",
                   "version: 1\n"
                   "holds:\n"
                   "  legal: { reason: again, subject: account, registry: true }\n"
                   "rules:\n"
                   "  logs:\n"
                   "    clause: c\n"
                   "    table: t\n"
                   "    column: at\n"
                   "    retain: 7 days\n"
                   "    action: delete\n"
                   "  accounts:\n"
                   "    clause: c\n"
                   "    table: app.accounts\n"
                   "    column: at\n"
                   "    retain: 0 days\n"
                   "    action: delete\n"
                   "    subject: account\n"
                   "    holds: [legl]\n");
        write_file(dir, "30-broken.yaml", "version: 1\nrules:\n\tx: 1\n");
        write_file(dir, "40-fine.yaml", "version: 1\n");

        char *paths[] = { dir };
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load(paths, 1, &p, d);
        assert_int_equal(r, -EINVAL);
        assert_null(p);
        _cleanup_free_ char *l1 = xasprintf("%s/10-base.yaml:11:15: error: invalid duration \"7 dayz\" for \"retain\" in rule \"logs\"", dir);
        _cleanup_free_ char *l2 = xasprintf("%s/20-more.yaml:3:3: error: duplicate hold name \"legal\"", dir);
        _cleanup_free_ char *l3 = xasprintf("%s/20-more.yaml:5:3: error: duplicate rule name \"logs\"", dir);
        _cleanup_free_ char *l4 = xasprintf("%s/30-broken.yaml:3:1: error: YAML syntax error: found character that cannot start any token", dir);
        find(d, l1);
        const Diagnostic *x = find(d, l2);
        _cleanup_free_ char *detail = xasprintf("The hold \"legal\" is already defined at %s/10-base.yaml:5:3; names of rules, "
                                                "holds and subjects are unique across all policy files.", dir);
        assert_string_equal(x->detail, detail);
        find(d, l3);
        find(d, l4);
        /* with a file that could not be parsed, undefined references are not reported: its
         * names are unknown (here "legl" would be one) */
        assert_int_equal(d->n_errors, 4);
        /* sorted: file order, then position */
        _cleanup_free_ char *f0 = first_line(&d->items[0]), *f3 = first_line(&d->items[3]);
        assert_string_equal(f0, l1);
        assert_string_equal(f3, l4);
        assert_int_equal(policy_load_exit_code(r, d), EXIT_POLICY);
        diagnostics_free(d);

        /* fix the broken file: now the undefined reference shows, with a suggestion */
        write_file(dir, "30-broken.yaml", "version: 1\n");
        d = diagnostics_new();
        r = policy_load(paths, 1, &p, d);
        assert_int_equal(r, -EINVAL);
        _cleanup_free_ char *l5 = xasprintf("%s/20-more.yaml:18:13: error: rule \"accounts\" refers to undefined hold \"legl\"", dir);
        x = find(d, l5);
        assert_string_equal(x->hint, "Did you mean \"legal\"?");
        assert_int_equal(d->n_errors, 4);
        diagnostics_free(d);
        rm_rf(dir);
}

static void test_io_errors(void **state) {
        (void) state;
        _cleanup_free_ char *dir = make_tmpdir();
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;

        /* a directory without policy files */
        char *paths[] = { dir };
        int r = policy_load(paths, 1, &p, d);
        assert_int_equal(r, -ENOENT);
        _cleanup_free_ char *want = xasprintf("retentiond: error: no policy files in directory \"%s\"", dir);
        find(d, want);
        assert_int_equal(policy_load_exit_code(r, d), EXIT_NOINPUT);
        diagnostics_free(d);

        /* a path that does not exist */
        _cleanup_free_ char *missing = xasprintf("%s/missing.yaml", dir);
        char *paths2[] = { missing };
        d = diagnostics_new();
        r = policy_load(paths2, 1, &p, d);
        assert_int_equal(r, -ENOENT);
        _cleanup_free_ char *want2 = xasprintf("retentiond: error: could not open file \"%s\": No such file or directory", missing);
        find(d, want2);
        assert_int_equal(d->items[0].os_error, ENOENT);
        assert_int_equal(policy_load_exit_code(r, d), EXIT_NOINPUT);
        diagnostics_free(d);

        /* no paths at all */
        d = diagnostics_new();
        r = policy_load(NULL, 0, &p, d);
        assert_int_equal(policy_load_exit_code(r, d), EXIT_NOINPUT);
        diagnostics_free(d);

        /* a file that cannot be read. As root (e.g. in a container), mode 000 does not stop
         * reading, so this single assertion only runs for ordinary users. */
        write_file(dir, "secret.yaml", "version: 1\n");
        _cleanup_free_ char *secret = xasprintf("%s/secret.yaml", dir);
        assert_int_equal(chmod(secret, 0), 0);
        if (geteuid() != 0) {
                char *paths3[] = { secret };
                d = diagnostics_new();
                r = policy_load(paths3, 1, &p, d);
                assert_int_equal(r, -EACCES);
                _cleanup_free_ char *want3 = xasprintf("retentiond: error: could not open file \"%s\": Permission denied", secret);
                find(d, want3);
                assert_int_equal(policy_load_exit_code(r, d), EXIT_NOPERM);
                diagnostics_free(d);
        }
        /* the mapping itself does not depend on who runs the test */
        Diagnostics *e = diagnostics_new();
        assert_int_equal(policy_load_exit_code(-EACCES, e), EXIT_NOPERM);
        assert_int_equal(policy_load_exit_code(-ENOENT, e), EXIT_NOINPUT);
        assert_int_equal(policy_load_exit_code(-EINVAL, e), EXIT_POLICY);
        assert_int_equal(policy_load_exit_code(0, e), EXIT_OK);
        diagnostics_free(e);
        rm_rf(dir);
}

static void test_writable_warning(void **state) {
        (void) state;
        _cleanup_free_ char *dir = make_tmpdir();
        write_file(dir, "p.yaml", "version: 1\nrules:\n  r: { clause: c, table: t, column: at, retain: 1 day, action: delete }\n");
        _cleanup_free_ char *path = xasprintf("%s/p.yaml", dir);
        assert_int_equal(chmod(path, 0666), 0);
        char *paths[] = { path };
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        assert_int_equal(policy_load(paths, 1, &p, d), 0);
        assert_non_null(p);
        assert_int_equal(d->n_errors, 0);
        assert_int_equal(d->n_warnings, 1);
        _cleanup_free_ char *want = xasprintf("%s: warning: policy file is writable by others", path);
        find(d, want);
        policy_free(p);
        diagnostics_free(d);

        assert_int_equal(chmod(path, 0664), 0);
        d = diagnostics_new();
        assert_int_equal(policy_load(paths, 1, &p, d), 0);
        _cleanup_free_ char *want2 = xasprintf("%s: warning: policy file is writable by its group", path);
        find(d, want2);
        policy_free(p);
        diagnostics_free(d);
        rm_rf(dir);
}

static void test_company_policy(void **state) {
        (void) state;
        char *paths[] = { (char *) SOURCE_ROOT "/policies" };
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load(paths, 1, &p, d);
        if (r != 0 || d->n_errors)
                dump(d);
        assert_int_equal(r, 0);
        assert_int_equal(d->n_errors, 0);
        const Rule *r1 = policy_find_rule(p, "access-logs");
        assert_non_null(r1);
        assert_int_equal(r1->retain.days, 7);
        const Rule *r2 = policy_find_rule(p, "account-deletion");
        assert_non_null(r2);
        assert_true(r2->has_deadline);
        assert_int_equal(r2->deadline.days, 10);
        assert_true(r2->has_while_held);
        const Hold *tax = policy_find_hold(p, "tax-records");
        assert_non_null(tax);
        assert_non_null(strstr(tax->reason, "ASSUMPTION"));
        assert_int_equal(tax->retain.months, 120);
        for (size_t i = 0; i < p->n_rules; i++)
                assert_true(p->rules[i].clause && *p->rules[i].clause);
        policy_free(p);
        diagnostics_free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_example_model),
                cmocka_unit_test(test_summaries),
                cmocka_unit_test(test_helpers),
                cmocka_unit_test(test_methods_and_settings),
                cmocka_unit_test(test_quoted_identifiers),
                cmocka_unit_test(test_max_fraction_forms),
                cmocka_unit_test(test_yaml_syntax),
                cmocka_unit_test(test_duplicate_key),
                cmocka_unit_test(test_hold_subject_rule_without_table),
                cmocka_unit_test(test_aliases_anchors),
                cmocka_unit_test(test_documents_and_empty),
                cmocka_unit_test(test_binary_and_encoding),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_version),
                cmocka_unit_test(test_unknown_keys),
                cmocka_unit_test(test_wrong_types),
                cmocka_unit_test(test_missing_keys),
                cmocka_unit_test(test_durations),
                cmocka_unit_test(test_identifiers),
                cmocka_unit_test(test_method_errors),
                cmocka_unit_test(test_action_errors),
                cmocka_unit_test(test_holds_and_subjects),
                cmocka_unit_test(test_referenced_by),
                cmocka_unit_test(test_delete_with),
                cmocka_unit_test(test_rental_shop_policy),
                cmocka_unit_test(test_hold_forms),
                cmocka_unit_test(test_settings_errors),
                cmocka_unit_test(test_period_start),
                cmocka_unit_test(test_all_errors_at_once),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_directory_order_and_defaults),
                cmocka_unit_test(test_errors_of_several_files),
                cmocka_unit_test(test_io_errors),
                cmocka_unit_test(test_writable_warning),
                cmocka_unit_test(test_company_policy),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
