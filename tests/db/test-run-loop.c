/* test-run-loop.c — run.c's one loop, driven as the daemon drives it (RunHooks): a stop that
 * arrives after a rule's last batch leaves the rule and the run complete; a stop before a batch
 * interrupts the rule and starts no other; the hooks see the run row and each rule, in the
 * order given. Exact outcomes in the result and the audit trail. As the least-privilege role of
 * sql/retentiond-role.sql; app.b is partitioned (partitions the role does not own: its rows go by
 * batches) and has a NOT NULL column. */
#include "rtest.h"
#include "rtengine.h"
#include "run.h"

#include <stdatomic.h>

static const char *POLICY = "version: 1\n"
                            "rules:\n"
                            "  a:\n"
                            "    clause: \"kept 7 days\"\n"
                            "    table: app.a\n"
                            "    column: at\n"
                            "    retain: 7 days\n"
                            "    action: delete\n"
                            "    max_fraction: 100%\n"
                            "  b:\n"
                            "    clause: \"kept 7 days\"\n"
                            "    table: app.b\n"
                            "    column: at\n"
                            "    retain: 7 days\n"
                            "    action: delete\n"
                            "    max_fraction: 100%\n";

typedef struct Probe {
        atomic_bool stop;
        bool stop_before_finish; /* set the stop at the first non-step operation after a step */
        bool stop_at_first_step; /* set the stop as the first step begins */
        bool in_rule;            /* a step ran since the last non-step operation */
        int64_t run_started;
        char started[64];        /* the rules started, in order */
} Probe;

static void probe_op_begin(void *u, bool step) {
        Probe *p = u;
        if (step && p->stop_at_first_step)
                atomic_store(&p->stop, true);
        if (!step && p->in_rule && p->stop_before_finish)
                atomic_store(&p->stop, true); /* after the last batch, before rule_run_finish() */
        p->in_rule = step;
}

static void probe_op_end(void *u) {
        (void) u;
}

static void probe_run_started(void *u, int64_t run_id) {
        ((Probe *) u)->run_started = run_id;
}

static void probe_rule_started(void *u, size_t index) {
        Probe *p = u;
        size_t n = strlen(p->started);
        snprintf(p->started + n, sizeof(p->started) - n, "%s%zu", n ? "," : "", index);
}

/* app.a plain, app.b partitioned by month of at (old rows, this month, a default); 50 due and 10
 * young rows each. *ci: the engine role's conninfo. */
static PGconn *setup(const char *name, char **ci) {
        char *admin = NULL;
        PGconn *c = rt_db(name, &admin);
        pgtest_exec(c, "CREATE TABLE app.a (id int PRIMARY KEY, at timestamptz NOT NULL)");
        pgtest_exec(c, "CREATE TABLE app.b (id int, at timestamptz NOT NULL, who text NOT NULL DEFAULT 'x',"
                       " PRIMARY KEY (id, at)) PARTITION BY RANGE (at)");
        pgtest_exec(c, "CREATE TABLE app.b_old PARTITION OF app.b FOR VALUES FROM (MINVALUE) TO (now() - interval '20 days')");
        pgtest_exec(c, "CREATE TABLE app.b_new PARTITION OF app.b FOR VALUES FROM (now() - interval '20 days') TO (MAXVALUE)");
        for (int i = 0; i < 2; i++) {
                const char *t = i ? "b" : "a";
                pgtest_exec(c, "CREATE INDEX ON app.%s (at)", t);
                pgtest_exec(c, "INSERT INTO app.%s (id, at) SELECT g, now() - interval '30 days' FROM generate_series(1, 50) g", t);
                pgtest_exec(c, "INSERT INTO app.%s (id, at) SELECT g, now() FROM generate_series(51, 60) g", t);
                pgtest_exec(c, "ANALYZE app.%s", t);
        }
        *ci = pgtest_engine_role(admin, "loop_engine", "app.a,app.b", NULL);
        free(admin);
        return c;
}

static int run(RtEngine *e, Probe *p, const size_t *order, size_t n_order, RunResult **res) {
        EnforceOptions o = { .mode = "daemon", .stop = &p->stop };
        RunHooks h = {
                .userdata = p,
                .order = order,
                .n_order = n_order,
                .run_started = probe_run_started,
                .rule_started = probe_rule_started,
                .op_begin = probe_op_begin,
                .op_end = probe_op_end,
        };
        return run_rules(e->pg, e->policy, &o, &h, res, &e->err);
}

/* The stop arrives once rule a's last batch is done: a is complete, b never starts, and the run
 * is interrupted (b was left) while a's rule run says success. */
static void test_stop_after_last_batch(void **state) {
        (void) state;
        char *ci;
        PGconn *c = setup("loop_stop_late", &ci);
        char *pol = rt_policy(POLICY);
        RtEngine e;
        rt_engine_open(&e, pol, ci);
        Probe p = { .stop_before_finish = true };
        const size_t order[] = { 0 };
        RunResult *res = NULL;
        assert_int_equal(run(&e, &p, order, 1, &res), 0);
        assert_non_null(res);
        assert_int_equal(res->n_rules, 1);
        assert_int_equal(res->rules[0].outcome, RULE_SUCCESS);
        assert_int_equal(res->rules[0].deleted, 50);
        /* Only rule a was asked for: nothing was left undone. */
        assert_false(res->interrupted);
        assert_int_equal(p.run_started, res->run_id);
        assert_string_equal(p.started, "0");
        rt_assert_sql(c, "success", "SELECT outcome FROM retention.runs");
        rt_assert_sql(c, "a success 50", "SELECT rule || ' ' || outcome || ' ' || rows_deleted FROM retention.rule_runs");
        run_result_free(res);

        /* Both asked for, the same late stop: a complete, b not started, the run interrupted. */
        p = (Probe) { .stop_before_finish = true };
        pgtest_exec(c, "INSERT INTO app.a SELECT g, now() - interval '30 days' FROM generate_series(100, 119) g");
        const size_t both[] = { 0, 1 };
        assert_int_equal(run(&e, &p, both, 2, &res), 0);
        assert_int_equal(res->n_rules, 1);
        assert_int_equal(res->rules[0].outcome, RULE_SUCCESS);
        assert_int_equal(res->rules[0].deleted, 20);
        assert_true(res->interrupted);
        assert_string_equal(p.started, "0");
        rt_assert_sql(c, "interrupted", "SELECT outcome FROM retention.runs ORDER BY id DESC LIMIT 1");
        rt_assert_sql(c, "60", "SELECT count(*) FROM app.b");
        run_result_free(res);
        rt_engine_close(&e);
        free(pol);
        PQfinish(c);
        free(ci);
}

/* The stop arrives as the first step begins: the rule is interrupted at its next batch, nothing
 * else starts; the order given is the order run (b before a). */
static void test_stop_before_batch_and_order(void **state) {
        (void) state;
        char *ci;
        PGconn *c = setup("loop_stop_early", &ci);
        char *pol = rt_policy(POLICY);
        RtEngine e;
        rt_engine_open(&e, pol, ci);

        Probe p = {};
        const size_t order[] = { 1, 0 };
        RunResult *res = NULL;
        assert_int_equal(run(&e, &p, order, 2, &res), 0);
        assert_string_equal(p.started, "1,0");
        assert_int_equal(res->n_rules, 2);
        assert_string_equal(res->rules[0].rule->name, "b");
        assert_string_equal(res->rules[1].rule->name, "a");
        assert_false(res->interrupted);
        rt_assert_sql(c, "b,a", "SELECT string_agg(rule, ',' ORDER BY id) FROM retention.rule_runs");
        /* As the engine's role, through the partitions it does not own: by batches, all 50 due. */
        assert_int_equal(res->rules[0].deleted, 50);
        assert_int_equal(res->rules[0].partitions_dropped, 0);
        char *who = NULL;
        assert_int_equal(pg_value(e.pg, &who, &e.err, "SELECT current_user", 0, NULL), 0);
        assert_string_equal(who, "loop_engine");
        free(who);
        run_result_free(res);

        pgtest_exec(c, "INSERT INTO app.a SELECT g, now() - interval '30 days' FROM generate_series(100, 119) g");
        pgtest_exec(c, "INSERT INTO app.b SELECT g, now() - interval '30 days' FROM generate_series(100, 119) g");
        p = (Probe) { .stop_at_first_step = true };
        assert_int_equal(run(&e, &p, order, 2, &res), 0);
        assert_true(res->interrupted);
        assert_int_equal(res->n_rules, 1);
        assert_int_equal(res->rules[0].outcome, RULE_INTERRUPTED);
        assert_string_equal(p.started, "1");
        rt_assert_sql(c, "interrupted", "SELECT outcome FROM retention.runs ORDER BY id DESC LIMIT 1");
        rt_assert_sql(c, "30", "SELECT count(*) FROM app.a");
        run_result_free(res);
        rt_engine_close(&e);
        free(pol);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stop_after_last_batch),
                cmocka_unit_test(test_stop_before_batch_and_order),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
