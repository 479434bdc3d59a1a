/* test-duration.c — unit tests for duration_parse/format: every accepted form and every rejection.
 * Must never depend on the clock or on PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "duration.h"

static void ok(const char *s, int32_t months, int32_t days, int64_t usecs) {
        Duration d = { -1, -1, -1 };
        size_t off = 999;
        DurationError e = duration_parse(s, &d, &off);
        if (e != DURATION_OK)
                fail_msg("\"%s\": unexpected error %s at %zu", s, duration_error_to_string(e), off);
        assert_int_equal(d.months, months);
        assert_int_equal(d.days, days);
        assert_int_equal(d.usecs, usecs);
}

static void bad(const char *s, DurationError want, size_t want_off) {
        Duration d = {};
        size_t off = 999;
        DurationError e = duration_parse(s, &d, &off);
        if (e != want)
                fail_msg("\"%s\": got %s, want %s", s ? s : "(null)", duration_error_to_string(e), duration_error_to_string(want));
        assert_int_equal(off, want_off);
}

#define H (INT64_C(3600) * 1000000)
#define M (INT64_C(60) * 1000000)
#define S INT64_C(1000000)

static void test_units(void **state) {
        (void) state;
        ok("7 days", 0, 7, 0);
        ok("1 day", 0, 1, 0);
        ok("0 days", 0, 0, 0);
        ok("1 hour", 0, 0, H);
        ok("12 hours", 0, 0, 12 * H);
        ok("5 minutes", 0, 0, 5 * M);
        ok("1 minute", 0, 0, M);
        ok("30 seconds", 0, 0, 30 * S);
        ok("1 second", 0, 0, S);
        ok("2 weeks", 0, 14, 0);
        ok("1 week", 0, 7, 0);
        ok("6 years", 72, 0, 0);
        ok("1 year", 12, 0, 0);
        ok("10 years", 120, 0, 0);
        ok("10 years 6 months", 126, 0, 0);
        ok("1 year 2 days 3 hours", 12, 2, 3 * H);
        ok("  7   days  ", 0, 7, 0);
}

static void test_month_is_calendar(void **state) {
        (void) state;
        /* months and years are calendar units, never 30 or 365 days */
        ok("1 month", 1, 0, 0);
        ok("30 days", 0, 30, 0);
        ok("12 months", 12, 0, 0);
        ok("1 year", 12, 0, 0);
}

static void test_iso(void **state) {
        (void) state;
        ok("P7D", 0, 7, 0);
        ok("P6Y", 72, 0, 0);
        ok("PT12H", 0, 0, 12 * H);
        ok("P1M", 1, 0, 0);
        ok("PT1M", 0, 0, M);
        ok("P2W", 0, 14, 0);
        ok("P1Y2M3DT4H5M6S", 14, 3, 4 * H + 5 * M + 6 * S);
        ok("P0D", 0, 0, 0);
}

static void test_rejections(void **state) {
        (void) state;
        bad("", DURATION_EMPTY, 0);
        bad("   ", DURATION_EMPTY, 3);
        bad(NULL, DURATION_EMPTY, 0);
        bad("-7 days", DURATION_NEGATIVE, 0);
        bad("7 days -1 hour", DURATION_NEGATIVE, 7);
        bad("1.5 days", DURATION_FRACTION, 1);
        bad("1,5 days", DURATION_FRACTION, 1);
        bad("7 fortnights", DURATION_UNKNOWN_UNIT, 2);
        bad("7 dyas", DURATION_UNKNOWN_UNIT, 2);
        bad("7days", DURATION_UNKNOWN_UNIT, 1);
        bad("7", DURATION_SYNTAX, 1);
        bad("days", DURATION_SYNTAX, 0);
        bad("+7 days", DURATION_SYNTAX, 0);
        bad("7 days!", DURATION_SYNTAX, 6);
        bad("99999999999999 years", DURATION_OVERFLOW, 0);
        bad("10001 years", DURATION_OVERFLOW, 0);
        bad("120001 months", DURATION_OVERFLOW, 0);
        bad("9999999999 hours", DURATION_OVERFLOW, 0);
        bad("5000 years 5001 years", DURATION_OVERFLOW, 11);
}

static void test_iso_rejections(void **state) {
        (void) state;
        bad("P", DURATION_SYNTAX, 1);
        bad("PT", DURATION_SYNTAX, 2);
        bad("P1H", DURATION_UNKNOWN_UNIT, 2);
        bad("P1D1Y", DURATION_SYNTAX, 3);
        bad("P-1D", DURATION_NEGATIVE, 1);
        bad("P1.5D", DURATION_FRACTION, 2);
        bad("P7", DURATION_SYNTAX, 2);
        bad("PT1Y", DURATION_UNKNOWN_UNIT, 3);
        bad("P10001Y", DURATION_OVERFLOW, 1);
        bad("P1DT", DURATION_SYNTAX, 4);
}

static void fmt(int32_t months, int32_t days, int64_t usecs, const char *want) {
        Duration d = { months, days, usecs };
        char buf[DURATION_FORMAT_MAX];
        assert_string_equal(duration_format(&d, buf, sizeof(buf)), want);
}

static void test_format(void **state) {
        (void) state;
        fmt(0, 7, 0, "7 days");
        fmt(0, 14, 0, "14 days");
        fmt(0, 1, 0, "1 day");
        fmt(72, 0, 0, "6 years");
        fmt(18, 0, 0, "1 year 6 months");
        fmt(1, 0, 0, "1 month");
        fmt(0, 0, 12 * H, "12 hours");
        fmt(0, 0, H + 30 * M + 5 * S, "1 hour 30 minutes 5 seconds");
        fmt(0, 0, 0, "0 days");
        /* round trip */
        Duration d;
        char buf[DURATION_FORMAT_MAX];
        assert_int_equal(duration_parse("P1Y2M3DT4H5M6S", &d, NULL), DURATION_OK);
        assert_string_equal(duration_format(&d, buf, sizeof(buf)), "1 year 2 months 3 days 4 hours 5 minutes 6 seconds");
        Duration e;
        assert_int_equal(duration_parse(buf, &e, NULL), DURATION_OK);
        assert_memory_equal(&d, &e, sizeof(d));
}

static void test_interval(void **state) {
        (void) state;
        Duration d = { 72, 3, 5 * S };
        char buf[128];
        assert_string_equal(duration_to_interval(&d, buf, sizeof(buf)), "72 months 3 days 5000000 microseconds");
        assert_true(duration_is_zero(&(Duration) {}));
        assert_false(duration_is_zero(&d));
        assert_int_equal(duration_approx_usec(&(Duration) { 1, 1, 1 }), (uint64_t) 31 * 86400 * 1000000 + 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_month_is_calendar),
                cmocka_unit_test(test_iso),
                cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_iso_rejections),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_interval),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
