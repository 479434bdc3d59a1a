/* test-batch-aim.c — what a batch aims at (pace_batch_aim_usec()) and how the next batch is sized
 * from the last one's rate (pace_adapt_batch_size()): 6 ms for a delete, 20 ms for an
 * anonymisation, 3 ms for either while other sessions write, 100 ms on Citus whatever happens;
 * growth by half at most, shrinking by half at most unless a batch was far over its aim. No
 * database: the RuleRun is built by hand, as pacing sees it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rule-run-private.h"

typedef struct Fixture {
        CatTable table;
        Plan plan;
        Rule rule;
        RuleRun rr;
} Fixture;

static void fixture(Fixture *f, Action action, CatDistKind dist, int64_t batch_size, int64_t current) {
        *f = (Fixture) {};
        f->table.dist = dist;
        f->plan.table = &f->table;
        f->rule.action = action;
        f->rule.batch_size = batch_size;
        f->rr.plan = &f->plan;
        f->rr.rule = &f->rule;
        f->rr.batch_size = current;
}

static void test_aims(void **state) {
        (void) state;
        Fixture f;
        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 50000, 1000);
        assert_int_equal(pace_batch_aim_usec(&f.rr), 6000);
        f.rr.contended = true;
        assert_int_equal(pace_batch_aim_usec(&f.rr), 3000);

        fixture(&f, ACTION_ANONYMISE, CAT_DIST_NONE, 50000, 1000);
        assert_int_equal(pace_batch_aim_usec(&f.rr), 20000);
        f.rr.contended = true;
        assert_int_equal(pace_batch_aim_usec(&f.rr), 3000);

        /* Citus is never paced: a batch is a distributed transaction whatever the load */
        fixture(&f, ACTION_DELETE, CAT_DIST_DISTRIBUTED, 50000, 1000);
        assert_int_equal(pace_batch_aim_usec(&f.rr), 100000);
        f.rr.contended = true;
        assert_int_equal(pace_batch_aim_usec(&f.rr), 100000);
}

/* 1,000 rows in 6 ms: on target alone; while others write, the next batch is sized for 3 ms. */
static void test_contended_batches_halve(void **state) {
        (void) state;
        Fixture f;
        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 50000, 1000);
        pace_adapt_batch_size(&f.rr, 1000, 6000);
        assert_int_equal(f.rr.batch_size, 1000);

        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 50000, 1000);
        f.rr.contended = true;
        pace_adapt_batch_size(&f.rr, 1000, 6000);
        assert_int_equal(f.rr.batch_size, 500);

        /* an anonymisation at 20 ms: three times over the contended aim, sized from its rate at once */
        fixture(&f, ACTION_ANONYMISE, CAT_DIST_NONE, 50000, 2000);
        f.rr.contended = true;
        pace_adapt_batch_size(&f.rr, 2000, 20000);
        assert_int_equal(f.rr.batch_size, 300);

        /* and back to its own aim once the others stop: growth by half a batch at most */
        f.rr.contended = false;
        pace_adapt_batch_size(&f.rr, 300, 3000);
        assert_int_equal(f.rr.batch_size, 450);
}

/* The bounds: never above the rule's batch_size, never below the least (100 rows). */
static void test_bounds(void **state) {
        (void) state;
        Fixture f;
        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 1200, 1000);
        pace_adapt_batch_size(&f.rr, 1000, 1000);
        assert_int_equal(f.rr.batch_size, 1200);

        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 50000, 1000);
        f.rr.contended = true;
        pace_adapt_batch_size(&f.rr, 1000, 500000);
        assert_int_equal(f.rr.batch_size, BATCH_MIN_ROWS);

        fixture(&f, ACTION_DELETE, CAT_DIST_NONE, 50, 50);
        pace_adapt_batch_size(&f.rr, 50, 500000);
        assert_int_equal(f.rr.batch_size, 50);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_aims),
                cmocka_unit_test(test_contended_batches_halve),
                cmocka_unit_test(test_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
