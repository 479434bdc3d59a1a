/* test-health-state.c — the rules' health without a database: --fail-on parsing, the states a trail's
 * facts give (breaker before failing before stale before overdue; pending is no problem), the
 * stale limit in schedules, and the summary line STATUS= and `status` print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "health.h"

static void test_parse_fail_on(void **state) {
        (void) state;
        unsigned v = 99;
        assert_true(health_parse_fail_on("overdue,breaker,stale", &v));
        assert_int_equal(v, HEALTH_FAIL_OVERDUE | HEALTH_FAIL_BREAKER | HEALTH_FAIL_STALE);
        assert_true(health_parse_fail_on("failing", &v));
        assert_int_equal(v, HEALTH_FAIL_FAILING);
        assert_true(health_parse_fail_on("all", &v));
        assert_int_equal(v, HEALTH_FAIL_ALL);
        assert_true(health_parse_fail_on("none", &v));
        assert_int_equal(v, 0);
        assert_true(health_parse_fail_on("stale, overdue", &v));
        assert_int_equal(v, HEALTH_FAIL_STALE | HEALTH_FAIL_OVERDUE);
        v = 7;
        assert_false(health_parse_fail_on("overdue,broken", &v));
        assert_int_equal(v, 7);
}

/* now = 100000; schedule 1 hour; stale after 3 schedules (10800 s). */
static HealthReport *report(void) {
        HealthReport *h = calloc(1, sizeof(HealthReport));
        h->now = 100000;
        h->stale_after = 3;
        h->n_rules = 6;
        h->rules = calloc(6, sizeof(RuleHealth));
        const char *names[] = { "fresh", "ok", "sessions", "blocked", "old", "late" };
        for (int i = 0; i < 6; i++) {
                h->rules[i].name = strdup(names[i]);
                h->rules[i].schedule_sec = 3600;
        }
        /* ok: succeeded an hour ago */
        h->rules[1] = (RuleHealth) { .name = h->rules[1].name, .schedule_sec = 3600, .ever_run = true,
                                     .last_outcome = strdup("success"), .last_success = 96400, .first_started = 1000 };
        /* failing 5 times */
        h->rules[2] = (RuleHealth) { .name = h->rules[2].name, .schedule_sec = 3600, .ever_run = true,
                                     .last_outcome = strdup("failed"), .last_success = 99000, .failures = 5,
                                     .failing_since = 99100, .first_started = 1000 };
        /* breaker, and no success for long: breaker wins */
        h->rules[3] = (RuleHealth) { .name = h->rules[3].name, .schedule_sec = 3600, .ever_run = true,
                                     .last_outcome = strdup("breaker"), .last_success = 1000, .failures = 2, .last_run_id = 7, .last_started = 99500,
                                     .failing_since = 90000, .first_started = 1000 };
        /* last success 3 schedules + 1 s ago: stale, although its last run was only skipped */
        h->rules[4] = (RuleHealth) { .name = h->rules[4].name, .schedule_sec = 3600, .ever_run = true,
                                     .last_outcome = strdup("skipped"), .last_success = 100000 - 10801, .first_started = 1000 };
        /* succeeded, but left overdue rows */
        h->rules[5] = (RuleHealth) { .name = h->rules[5].name, .schedule_sec = 3600, .ever_run = true,
                                     .last_outcome = strdup("success"), .last_success = 99999, .rows_overdue = 12,
                                     .first_started = 1000 };
        health_classify(h);
        return h;
}

static void test_classify(void **state) {
        (void) state;
        HealthReport *h = report();
        assert_int_equal(h->rules[0].state, HEALTH_PENDING);
        assert_int_equal(h->rules[1].state, HEALTH_OK);
        assert_int_equal(h->rules[2].state, HEALTH_FAILING);
        assert_int_equal(h->rules[3].state, HEALTH_BREAKER);
        assert_int_equal(h->rules[4].state, HEALTH_STALE);
        assert_int_equal(h->rules[5].state, HEALTH_OVERDUE);
        assert_false(health_needs_attention(&h->rules[0], HEALTH_FAIL_ALL));
        assert_false(health_needs_attention(&h->rules[1], HEALTH_FAIL_ALL));
        assert_true(health_needs_attention(&h->rules[2], HEALTH_FAIL_FAILING));
        assert_false(health_needs_attention(&h->rules[2], HEALTH_FAIL_OVERDUE | HEALTH_FAIL_BREAKER | HEALTH_FAIL_STALE));
        assert_true(health_needs_attention(&h->rules[3], HEALTH_FAIL_BREAKER));
        assert_true(health_needs_attention(&h->rules[3], HEALTH_FAIL_STALE)); /* both hold */
        assert_true(health_needs_attention(&h->rules[4], HEALTH_FAIL_STALE));
        assert_false(health_needs_attention(&h->rules[4], HEALTH_FAIL_OVERDUE));
        assert_true(health_needs_attention(&h->rules[5], HEALTH_FAIL_OVERDUE));
        assert_false(health_needs_attention(&h->rules[5], HEALTH_FAIL_STALE));

        /* One more second of grace and "old" is not stale: exactly 3 schedules is fine. */
        h->rules[4].last_success = 100000 - 10800;
        health_classify(h);
        assert_int_equal(h->rules[4].state, HEALTH_OK);
        /* stale_after 0: never stale. */
        h->rules[4].last_success = 1;
        h->stale_after = 0;
        health_classify(h);
        assert_int_equal(h->rules[4].state, HEALTH_OK);
        health_report_free(h);
}

static void test_summary(void **state) {
        (void) state;
        setenv("TZ", "UTC", 1);
        HealthReport *h = report();
        StrBuf b = {};
        health_summary(h, &b);
        assert_string_equal(strbuf_str(&b),
                            "2 rules ok, 1 blocked by its breaker: blocked (its last run (run 7, 1970-01-02 03:38) tripped the"
                            " circuit breaker, 2 failed runs since 1970-01-02 01:00; no success since 1970-01-01 00:16),"
                            " 1 failing: sessions (failed 5 times since 1970-01-02 03:31), 1 stale: old (no success since"
                            " 1970-01-02 00:46), 1 overdue: late (12 rows overdue)");
        strbuf_done(&b);
        health_report_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_fail_on),
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_summary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
