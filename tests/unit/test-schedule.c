/* test-schedule.c — the daemon's time arithmetic: jitter bounds, windows (also across midnight
 * and a daylight-saving change), reconnect backoff. Pure functions, no clock: exact values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "schedule.h"

#define SEC USEC_PER_SEC

/* Seconds since the epoch of a local time (TZ set by the test). */
static time_t local(int y, int mo, int d, int h, int mi, int s) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s,
                         .tm_isdst = -1 };
        return mktime(&tm);
}

static void set_tz(const char *tz) {
        setenv("TZ", tz, 1);
        tzset();
}

static void test_jitter(void **state) {
        (void) state;
        uint64_t hour = 3600 * SEC;
        assert_int_equal(schedule_jitter_usec(hour, 0), 0);
        assert_int_equal(schedule_jitter_usec(hour, 30 * SEC), 30 * SEC);     /* 1% of an hour = 36 s, capped at 30 s */
        assert_int_equal(schedule_jitter_usec(hour, 30 * SEC + 1), 0);        /* modulo (cap + 1) */
        assert_int_equal(schedule_jitter_usec(100 * SEC, 1 * SEC), 1 * SEC);   /* 1% of 100 s */
        assert_int_equal(schedule_jitter_usec(100 * SEC, 1 * SEC + 1), 0);
        for (uint64_t r = 0; r < 100000; r += 7777)
                assert_true(schedule_jitter_usec(24 * hour, r * 1000003) <= SCHEDULE_JITTER_MAX_USEC);
}

static void test_window_parse(void **state) {
        (void) state;
        unsigned s, e;
        assert_true(window_parse("01:00-05:00", &s, &e));
        assert_int_equal(s, 60);
        assert_int_equal(e, 300);
        assert_true(window_parse("22:30-06:15", &s, &e));
        assert_int_equal(s, 22 * 60 + 30);
        assert_int_equal(e, 6 * 60 + 15);
        assert_false(window_parse("01:00-01:00", &s, &e));
        assert_false(window_parse("24:00-05:00", &s, &e));
        assert_false(window_parse("01:60-05:00", &s, &e));
        assert_false(window_parse("1:00-05:00", &s, &e));
        assert_false(window_parse(NULL, &s, &e));
}

static void test_window(void **state) {
        (void) state;
        set_tz("UTC");
        /* plain window */
        assert_true(window_contains("01:00-05:00", local(2024, 3, 10, 1, 0, 0)));
        assert_true(window_contains("01:00-05:00", local(2024, 3, 10, 4, 59, 59)));
        assert_false(window_contains("01:00-05:00", local(2024, 3, 10, 5, 0, 0)));
        assert_false(window_contains("01:00-05:00", local(2024, 3, 10, 0, 59, 59)));
        assert_int_equal(window_delay_usec("01:00-05:00", local(2024, 3, 10, 2, 0, 0)), 0);
        assert_int_equal(window_delay_usec("01:00-05:00", local(2024, 3, 10, 0, 59, 30)), 30 * SEC);
        assert_int_equal(window_delay_usec("01:00-05:00", local(2024, 3, 10, 5, 0, 0)), 20 * 3600 * SEC);
        assert_int_equal(window_delay_usec("01:00-05:00", local(2024, 3, 10, 23, 0, 1)), (2 * 3600 - 1) * SEC);
        /* wrapping past midnight */
        assert_true(window_contains("22:00-06:00", local(2024, 3, 10, 23, 30, 0)));
        assert_true(window_contains("22:00-06:00", local(2024, 3, 10, 0, 0, 0)));
        assert_true(window_contains("22:00-06:00", local(2024, 3, 10, 5, 59, 59)));
        assert_false(window_contains("22:00-06:00", local(2024, 3, 10, 6, 0, 0)));
        assert_false(window_contains("22:00-06:00", local(2024, 3, 10, 21, 59, 0)));
        assert_int_equal(window_delay_usec("22:00-06:00", local(2024, 3, 10, 6, 0, 0)), 16 * 3600 * SEC);
        assert_int_equal(window_delay_usec("22:00-06:00", local(2024, 3, 10, 21, 59, 0)), 60 * SEC);
        /* no window: always */
        assert_true(window_contains(NULL, local(2024, 3, 10, 12, 0, 0)));
        assert_int_equal(window_delay_usec(NULL, local(2024, 3, 10, 12, 0, 0)), 0);
}

static void test_window_dst(void **state) {
        (void) state;
        /* Europe/Berlin springs forward on 2024-03-31 at 02:00 -> 03:00: from 00:00 local to 04:00
         * local is 3 real hours. Without zone data the zone name falls back to UTC: skip then. */
        set_tz("Europe/Berlin");
        time_t t = local(2024, 3, 31, 0, 0, 0);
        struct tm tm;
        localtime_r(&t, &tm);
        if (tm.tm_gmtoff != 3600) {
                set_tz("UTC");
                skip();
        }
        assert_int_equal(window_delay_usec("04:00-05:00", t), 3 * 3600 * SEC);
        set_tz("UTC");
}

static void test_backoff(void **state) {
        (void) state;
        /* random % 401 = 200: exactly the middle, no jitter */
        assert_int_equal(backoff_usec(0, 200), 1 * SEC);
        assert_int_equal(backoff_usec(1, 200), 2 * SEC);
        assert_int_equal(backoff_usec(2, 200), 4 * SEC);
        assert_int_equal(backoff_usec(5, 200), 32 * SEC);
        assert_int_equal(backoff_usec(6, 200), 60 * SEC);
        assert_int_equal(backoff_usec(100, 200), 60 * SEC);
        /* ±20% */
        assert_int_equal(backoff_usec(0, 0), 800000);
        assert_int_equal(backoff_usec(0, 400), 1200000);
        assert_int_equal(backoff_usec(100, 0), 48 * SEC);
        assert_int_equal(backoff_usec(100, 400), 72 * SEC);
        for (uint64_t r = 0; r < 5000; r += 13) {
                uint64_t d = backoff_usec(3, r * 2654435761u);
                assert_true(d >= 6400000 && d <= 9600000);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jitter),     cmocka_unit_test(test_window_parse), cmocka_unit_test(test_window),
                cmocka_unit_test(test_window_dst), cmocka_unit_test(test_backoff),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
