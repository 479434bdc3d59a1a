/* test-plan.c — golden-SQL tests of plan_build() and plan_explain() without a database: a policy
 * (loaded from text) and a catalog built here in C, as catalog.c would load it, become the exact
 * statements and parameter lists of every rule, compared with tests/unit/test-plan.golden. The
 * rules cover delete, anonymise, a registry and a derived hold, while_held, a restricting and a
 * cascading reference, two delete rules with `where:` on one table, and a range-partitioned table
 * counted from the end of the day. Besides the golden text, the properties that keep a row safe
 * are asserted one by one. PLAN_GOLDEN_WRITE=1 writes the golden file instead of comparing (for a
 * deliberate change of the SQL, to be reviewed in the diff); it never runs in the suite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"
#include "policy-load.h"

#define GOLDEN SOURCE_ROOT "/tests/unit/test-plan.golden"

static const char POLICY[] =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
        "  orders:\n"
        "    reason: \"orders are kept 2 years\"\n"
        "    subject: account\n"
        "    table: app.orders\n"
        "    subject_column: account_id\n"
        "    column: ordered_at\n"
        "    retain: 2 years\n"
        "rules:\n"
        "  accounts:\n"
        "    clause: \"deleted once deletion is requested\"\n"
        "    table: app.accounts\n"
        "    subject: account\n"
        "    column: deletion_requested_at\n"
        "    retain: 0 days\n"
        "    deadline: 10 days\n"
        "    holds: [legal, orders]\n"
        "    action: delete\n"
        "    while_held: { columns: { email: hash } }\n"
        "  logs:\n"
        "    clause: \"logs kept 30 days, audit logs longer\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 30 days\n"
        "    where: \"t.level <> 'audit'\"\n"
        "    action: delete\n"
        "  debug-logs:\n"
        "    clause: \"debug logs kept 1 day\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 1 day\n"
        "    where: \"t.level = 'debug'\"\n"
        "    action: delete\n"
        "  log-ip:\n"
        "    clause: \"IPs shortened after 7 days\"\n"
        "    table: app.logs\n"
        "    column: at\n"
        "    retain: 7 days\n"
        "    action: anonymise\n"
        "    columns: { ip: truncate_ip, agent: { redact: \"[deleted]\" } }\n"
        "  events:\n"
        "    clause: \"events kept 90 days\"\n"
        "    table: app.events\n"
        "    column: at\n"
        "    retain: 90 days\n"
        "    from: end_of_day\n"
        "    action: delete\n";

/* ---- the fixture catalog ---- */

typedef struct ColSpec {
        const char *name, *type;
        ColumnKind kind;
} ColSpec;

static CatTable *table(uint32_t oid, const char *name, char relkind, const ColSpec *cols, size_t n, const char *const *indexed,
                       size_t n_indexed) {
        CatTable *t = calloc(1, sizeof(CatTable));
        assert_non_null(t);
        *t = (CatTable) {
                .oid = oid,
                .name = { strdup("app"), strdup(name) },
                .relkind = relkind,
                .columns = calloc(n, sizeof(CatColumn)),
                .n_columns = n,
                .reltuples = 100000,
                .indexed_first_columns = calloc(n_indexed ? n_indexed : 1, sizeof(char *)),
                .n_indexed_first_columns = n_indexed,
                .can_select = true,
                .can_delete = true,
                .can_update = true,
        };
        for (size_t i = 0; i < n; i++)
                t->columns[i] = (CatColumn) { strdup(cols[i].name), strdup(cols[i].type), cols[i].kind, false, (int) i + 1 };
        for (size_t i = 0; i < n_indexed; i++)
                t->indexed_first_columns[i] = strdup(indexed[i]);
        return t;
}

static void reference(CatTable *parent, const CatTable *child, const char *fk_name, const char *column, char on_delete) {
        parent->referenced_by = realloc(parent->referenced_by, (parent->n_referenced_by + 1) * sizeof(CatForeignKey));
        assert_non_null(parent->referenced_by);
        CatForeignKey *fk = &parent->referenced_by[parent->n_referenced_by++];
        *fk = (CatForeignKey) {
                .name = strdup(fk_name),
                .child_oid = child->oid,
                .child = { strdup(child->name.schema), strdup(child->name.name) },
                .child_columns = calloc(1, sizeof(char *)),
                .parent_columns = calloc(1, sizeof(char *)),
                .n_columns = 1,
                .on_delete = on_delete,
        };
        fk->child_columns[0] = strdup(column);
        fk->parent_columns[0] = strdup("id");
}

/* app.accounts, referenced by app.orders (RESTRICT; also a derived hold's evidence) and by
 * app.sessions (CASCADE); app.logs with two delete rules and an anonymise rule; app.events
 * range-partitioned on its age column. */
static void fixture(CatCache *cache) {
        static const ColSpec accounts[] = {
                { "id", "bigint", COLKIND_OTHER },
                { "email", "text", COLKIND_TEXT },
                { "deletion_requested_at", "timestamp with time zone", COLKIND_TIMESTAMPTZ },
        };
        static const ColSpec orders[] = {
                { "id", "bigint", COLKIND_OTHER },
                { "account_id", "bigint", COLKIND_OTHER },
                { "ordered_at", "date", COLKIND_DATE },
        };
        static const ColSpec sessions[] = {
                { "id", "bigint", COLKIND_OTHER },
                { "account_id", "bigint", COLKIND_OTHER },
        };
        static const ColSpec logs[] = {
                { "id", "bigint", COLKIND_OTHER },
                { "at", "timestamp with time zone", COLKIND_TIMESTAMPTZ },
                { "level", "text", COLKIND_TEXT },
                { "ip", "inet", COLKIND_INET },
                { "agent", "text", COLKIND_TEXT },
        };
        static const ColSpec events[] = {
                { "id", "bigint", COLKIND_OTHER },
                { "at", "timestamp without time zone", COLKIND_TIMESTAMP },
        };
        static const char *const acc_idx[] = { "id", "deletion_requested_at" }, *const ord_idx[] = { "id", "account_id" },
                                  *const ses_idx[] = { "id", "account_id" }, *const at_idx[] = { "id", "at" };
        CatTable *a = table(16401, "accounts", 'r', accounts, 3, acc_idx, 2);
        CatTable *o = table(16402, "orders", 'r', orders, 3, ord_idx, 2);
        CatTable *s = table(16403, "sessions", 'r', sessions, 2, ses_idx, 2);
        CatTable *l = table(16404, "logs", 'r', logs, 5, at_idx, 2);
        CatTable *e = table(16405, "events", 'p', events, 2, at_idx, 2);
        e->partition_column = strdup("at");
        reference(a, o, "orders_account_id_fkey", "account_id", 'r');
        reference(a, s, "sessions_account_id_fkey", "account_id", 'c');
        cat_cache_add(cache, a);
        cat_cache_add(cache, o);
        cat_cache_add(cache, s);
        cat_cache_add(cache, l);
        cat_cache_add(cache, e);
}

/* ---- the golden text ---- */

static const char *param_kind(ParamKind k) {
        static const char *const names[] = {
                [PARAM_CONST] = "const",       [PARAM_TIME] = "cutoff",   [PARAM_LAST_KEY] = "last key",
                [PARAM_LIMIT] = "limit",       [PARAM_OFFSET] = "offset", [PARAM_UPPER] = "upper",
                [PARAM_RULE_RUN] = "rule run", [PARAM_BREAKER_LIMIT] = "breaker limit", [PARAM_CTID] = "ctid",
                [PARAM_TABLEOID] = "tableoid", [PARAM_KEY] = "key", [PARAM_WIDTH] = "width",
        };
        return names[k];
}

static void print_statement(FILE *f, const char *rule, const char *what, const PlanStatement *st) {
        fprintf(f, "== %s: %s\n", rule, what);
        if (!st->sql) {
                fputs("(none)\n", f);
                return;
        }
        fprintf(f, "%s\n", st->sql);
        for (size_t i = 0; i < st->n_params; i++) {
                const PlanParam *p = &st->params[i];
                fprintf(f, "  $%zu %s %zu%s%s%s (%s)\n", i + 1, param_kind(p->kind), p->slot, p->value ? " '" : "",
                        p->value ? p->value : "", p->value ? "'" : "", p->label);
        }
}

static void print_plan(FILE *f, const Policy *policy, const CatCache *cache, Plan *p) {
        const char *n = p->rule->name;
        fprintf(f, "#### rule %s: partitioned %d, age index %d, can drop partitions %d, nothing keeps %d\n", n,
                p->partitioned, p->has_age_index, p->can_drop_partitions, p->nothing_keeps);
        for (size_t i = 0; i < p->n_slots; i++)
                fprintf(f, "slot %zu: kind %d, interval %s%s%s, from %d\n", i, (int) p->slots[i].kind, p->slots[i].interval,
                        p->slots[i].interval2 ? " - " : "", p->slots[i].interval2 ? p->slots[i].interval2 : "",
                        (int) p->slots[i].start.from);
        for (size_t i = 0; i < p->n_tally_holds; i++)
                fprintf(f, "tally hold column: %s\n", p->tally_holds[i]);
        for (size_t i = 0; i < p->n_tally_fks; i++)
                fprintf(f, "tally reference column: %s\n", p->tally_fks[i]);
        print_statement(f, n, "cutoffs", &p->cutoffs);
        print_statement(f, n, "batch_bound", &p->batch_bound);
        print_statement(f, n, "batch_step", &p->batch_step);
        print_statement(f, n, "batch_range", &p->batch_range);
        print_statement(f, n, "batch", &p->batch);
        print_statement(f, n, "while_held_batch", &p->while_held_batch);
        print_statement(f, n, "breaker_count", &p->breaker_count);
        print_statement(f, n, "breaker_estimate", &p->breaker_estimate);
        print_statement(f, n, "idle_probe", &p->idle_probe);
        print_statement(f, n, "cutoffs_probe", &p->cutoffs_probe);
        print_statement(f, n, "tally", &p->tally);
        print_statement(f, n, "skipped_locked", &p->skipped_locked);
        print_statement(f, n, "row_by_row_select", &p->row_by_row_select);
        print_statement(f, n, "row_by_row_delete", &p->row_by_row_delete);
        print_statement(f, n, "partitions", &p->partitions);
        if (p->partitions.sql) {
                QualifiedName part = { (char *) "app", (char *) "events_2026_01" };
                PlanStatement check = {};
                plan_partition_check(p, policy, cache, &part, &check);
                print_statement(f, n, "partition check", &check);
                plan_statement_done(&check);
        }
}

/* Every rule's plan, and the explain statements of accounts, as one text. */
static char *golden_text(Policy *policy, CatCache *cache, Plan **plans) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        for (size_t i = 0; i < policy->n_rules; i++)
                print_plan(f, policy, cache, plans[i]);
        char *pk[] = { (char *) "id" };
        ExplainPlan e = {};
        plan_explain(plans[0], policy, cache, pk, 1, &e);
        print_statement(f, "accounts", "explain row", &e.row);
        print_statement(f, "accounts", "explain registry", &e.registry);
        print_statement(f, "accounts", "cutoffs after explain", &plans[0]->cutoffs);
        explain_plan_done(&e);
        PlanStatement keys = {};
        plan_row_keys(plans[0]->table, pk, 1, NULL, 0, &keys);
        print_statement(f, "accounts", "row keys", &keys);
        plan_statement_done(&keys);
        fclose(f);
        return buf;
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                fail_msg("cannot open %s", path);
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        assert_non_null(m);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, n, m);
        fclose(f);
        fclose(m);
        return buf;
}

/* The first line where got and want differ, for the failure message. */
static void fail_at_first_difference(const char *got, const char *want) {
        size_t line = 1;
        const char *g = got, *w = want;
        while (*g && *g == *w) {
                if (*g == '\n')
                        line++;
                g++, w++;
        }
        const char *gl = g, *wl = w;
        while (gl > got && gl[-1] != '\n')
                gl--;
        while (wl > want && wl[-1] != '\n')
                wl--;
        FILE *f = fopen("test-plan.actual", "we");
        if (f) {
                fputs(got, f);
                fclose(f);
        }
        fail_msg("plan differs from %s at line %zu (the whole plan is in test-plan.actual):\n got: %.300s\nwant: %.300s",
                 GOLDEN, line, gl, wl);
}

typedef struct Fixture {
        Policy *policy;
        CatCache cache;
        Plan **plans;
} Fixture;

static int setup(void **state) {
        Fixture *x = calloc(1, sizeof(Fixture));
        assert_non_null(x);
        Diagnostics *d = diagnostics_new();
        int r = policy_load_string("plan.yaml", POLICY, strlen(POLICY), &x->policy, d);
        if (r < 0)
                diagnostics_print(d, stderr);
        diagnostics_free(d);
        assert_int_equal(r, 0);
        fixture(&x->cache);
        x->plans = calloc(x->policy->n_rules, sizeof(Plan *));
        for (size_t i = 0; i < x->policy->n_rules; i++) {
                char *error = NULL;
                if (plan_build(x->policy, &x->policy->rules[i], &x->cache, &x->plans[i], &error) < 0)
                        fail_msg("rule %s: %s", x->policy->rules[i].name, error);
        }
        *state = x;
        return 0;
}

static int teardown(void **state) {
        Fixture *x = *state;
        if (!x)
                return 0;
        for (size_t i = 0; i < x->policy->n_rules; i++)
                plan_free(x->plans[i]);
        free(x->plans);
        cat_cache_done(&x->cache);
        policy_free(x->policy);
        free(x);
        return 0;
}

static const Plan *plan_of(const Fixture *x, const char *rule) {
        for (size_t i = 0; i < x->policy->n_rules; i++)
                if (strcmp(x->policy->rules[i].name, rule) == 0)
                        return x->plans[i];
        fail_msg("no rule %s", rule);
        return NULL;
}

static void test_golden(void **state) {
        Fixture *x = *state;
        char *got = golden_text(x->policy, &x->cache, x->plans);
        const char *w = getenv("PLAN_GOLDEN_WRITE");
        if (w && strcmp(w, "1") == 0) {
                FILE *f = fopen(GOLDEN, "we");
                assert_non_null(f);
                fputs(got, f);
                fclose(f);
        }
        char *want = read_file(GOLDEN);
        if (strcmp(got, want) != 0)
                fail_at_first_difference(got, want);
        free(got);
        free(want);
}

static void assert_contains(const char *s, const char *what) {
        if (!s || !strstr(s, what))
                fail_msg("\"%s\" not in:\n%s", what, s ? s : "(none)");
}

/* The properties that keep rows safe, one by one (the golden text pins the rest). */
static void test_delete_with_holds(void **state) {
        Fixture *x = *state;
        const Plan *p = plan_of(x, "accounts");
        /* Held rows are never selected: both holds, the cascade into held rows and the RESTRICT
         * reference are in the batch's WHERE; the change re-checks the cutoff on the row itself. */
        assert_contains(p->batch.sql, "FROM retention.holds rh");
        assert_contains(p->batch.sql, "FROM \"app\".\"orders\" ev");
        assert_contains(p->batch.sql, "DELETE FROM \"app\".\"accounts\" d USING batch b WHERE d.ctid = b.rid AND "
                                      "d.\"deletion_requested_at\" < $");
        assert_contains(p->batch.sql, "FOR UPDATE OF t SKIP LOCKED");
        assert_contains(p->batch_range.sql, "DELETE FROM \"app\".\"accounts\" t WHERE");
        assert_non_null(p->row_by_row_delete.sql);
        assert_false(p->can_drop_partitions);
        assert_false(p->nothing_keeps);
        assert_null(p->partitions.sql);
        /* The cutoff is slot 0: now() - 0 days; the overdue cutoff adds the deadline. */
        assert_string_equal(p->slots[0].interval, "0 months 0 days 0 microseconds");
        assert_int_equal(p->n_tally_fks, 1);
        assert_string_equal(p->tally_fks[0], "app.orders");
}

static void test_while_held(void **state) {
        Fixture *x = *state;
        const Plan *p = plan_of(x, "accounts");
        /* Only held rows, only their while_held columns, never a delete. */
        assert_contains(p->while_held_batch.sql, "UPDATE \"app\".\"accounts\" d SET \"email\" = ");
        assert_null(strstr(p->while_held_batch.sql, "DELETE"));
        assert_null(plan_of(x, "logs")->while_held_batch.sql);
}

static void test_anonymise(void **state) {
        Fixture *x = *state;
        const Plan *p = plan_of(x, "log-ip");
        assert_contains(p->batch.sql, "UPDATE \"app\".\"logs\" d SET ");
        assert_null(strstr(p->batch.sql, "DELETE"));
        assert_null(p->row_by_row_delete.sql); /* foreign-key isolation is for deletes */
        assert_null(p->partitions.sql);
}

/* The partial index of the rows still to anonymise: exactly the statements' "not done" test, with
 * the column alone and constants (a redact value as a literal that nothing in it can end), and
 * nothing for a method PostgreSQL would refuse in an index or for a delete rule. */
static void test_todo_index(void **state) {
        Fixture *x = *state;
        const Plan *p = plan_of(x, "log-ip");
        const Rule *r = p->rule;
        char *create, *nd;
        assert_true(plan_todo_index(r, p->table, &create, &nd));
        assert_string_equal(create, "CREATE INDEX CONCURRENTLY ON \"app\".\"logs\" (\"at\") WHERE NOT ((\"ip\" IS NULL OR \"ip\""
                                    " IS NOT DISTINCT FROM network(set_masklen(\"ip\", least(masklen(\"ip\"), CASE family(\"ip\")"
                                    " WHEN 4 THEN 24 ELSE 48 END)))::inet) AND (\"agent\" IS NULL OR \"agent\" IS NOT DISTINCT"
                                    " FROM E'[deleted]'::text));");
        /* the same test as the batches', for alias t */
        assert_contains(p->batch_bound.sql, nd);
        assert_contains(p->tally.sql, nd);
        free(create);
        free(nd);

        ColumnMethod cm[2] = { r->columns[0], r->columns[1] };
        Rule copy = *r;
        copy.columns = cm;
        cm[1].redact_value = (char *) "it's \\'); DROP TABLE x; --\n\xc3\xa9";
        assert_true(plan_todo_index(&copy, p->table, &create, &nd));
        assert_contains(create, "(\"agent\" IS NULL OR \"agent\" IS NOT DISTINCT FROM"
                                " E'it''s \\\\''); DROP TABLE x; --\\x0a\\xc3\\xa9'::text));");
        free(create);
        free(nd);

        cm[0] = (ColumnMethod) { .column = (char *) "at", .method = METHOD_TRUNCATE_DATE, .precision = PRECISION_MONTH };
        assert_false(plan_todo_index(&copy, p->table, &create, &nd));
        assert_null(create);
        assert_null(nd);
        cm[0] = (ColumnMethod) { .column = (char *) "at", .method = METHOD_HASH };
        assert_false(plan_todo_index(&copy, p->table, &create, &nd));
        cm[0] = (ColumnMethod) { .column = (char *) "agent", .method = METHOD_HASH };
        assert_true(plan_todo_index(&copy, p->table, &create, &nd));
        free(create);
        free(nd);
        cm[0] = (ColumnMethod) { .column = (char *) "no_such_column", .method = METHOD_NULL };
        assert_false(plan_todo_index(&copy, p->table, &create, &nd));
        assert_false(plan_todo_index(plan_of(x, "logs")->rule, p->table, &create, &nd));
        assert_null(create);
}

static void test_where(void **state) {
        Fixture *x = *state;
        /* The administrator's where is pasted, parenthesised, in every statement that selects; the
         * other delete rule on the table keeps its rows longer (its where included). */
        const Plan *p = plan_of(x, "logs");
        assert_contains(p->batch.sql, "(t.level <> 'audit')");
        assert_contains(p->batch_range.sql, "(t.level <> 'audit')");
        assert_contains(p->tally.sql, "(t.level <> 'audit')");
        assert_contains(p->breaker_count.sql, "(t.level <> 'audit')");
        assert_contains(p->batch.sql, "(t.level = 'debug')");
        assert_false(p->can_drop_partitions);
        assert_int_equal(p->n_tally_holds, 1);
        assert_string_equal(p->tally_holds[0], "rule:debug-logs");
}

static void test_partitions(void **state) {
        Fixture *x = *state;
        const Plan *p = plan_of(x, "events");
        assert_true(p->partitioned);
        assert_true(p->can_drop_partitions);
        assert_true(p->nothing_keeps);
        assert_contains(p->partitions.sql, "WHERE i.inhparent = $2::oid");
        assert_int_equal(p->partitions.params[1].kind, PARAM_CONST);
        assert_string_equal(p->partitions.params[1].value, "16405");
        assert_contains(p->partitions.sql, "b.upper::timestamp <= ($1::timestamptz)::timestamp");
        /* Rows of a partitioned table are addressed by (tableoid, ctid). */
        assert_contains(p->batch.sql, "AND d.tableoid = b.toid");
        /* from: end_of_day: the cutoff is the start of its day. */
        assert_contains(p->cutoffs.sql, "date_trunc('day', ");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),    cmocka_unit_test(test_delete_with_holds), cmocka_unit_test(test_while_held),
                cmocka_unit_test(test_anonymise), cmocka_unit_test(test_where),             cmocka_unit_test(test_partitions),
                cmocka_unit_test(test_todo_index),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
