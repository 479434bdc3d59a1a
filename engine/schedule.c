/* schedule.c — jitter, windows and backoff for the daemon's timers.
 * No clock reads and no sleeping here: callers pass the time and the randomness in. */
#include "schedule.h"

#include <string.h>
#include <sys/random.h>

uint64_t schedule_jitter_usec(uint64_t period_usec, uint64_t random) {
        uint64_t max = period_usec / 100;
        if (max > SCHEDULE_JITTER_MAX_USEC)
                max = SCHEDULE_JITTER_MAX_USEC;
        return random % (max + 1);
}

static bool two_digits(const char *s, unsigned limit, unsigned *ret) {
        if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
                return false;
        unsigned v = (unsigned) (s[0] - '0') * 10 + (unsigned) (s[1] - '0');
        if (v >= limit)
                return false;
        *ret = v;
        return true;
}

bool window_parse(const char *window, unsigned *start_min, unsigned *end_min) {
        unsigned h1, m1, h2, m2;
        if (!window || strlen(window) != 11 || window[2] != ':' || window[5] != '-' || window[8] != ':')
                return false;
        if (!two_digits(window, 24, &h1) || !two_digits(window + 3, 60, &m1) || !two_digits(window + 6, 24, &h2) ||
            !two_digits(window + 9, 60, &m2))
                return false;
        if (h1 == h2 && m1 == m2)
                return false;
        *start_min = h1 * 60 + m1;
        *end_min = h2 * 60 + m2;
        return true;
}

bool window_contains(const char *window, time_t t) {
        unsigned start, end;
        struct tm tm;
        if (!window_parse(window, &start, &end) || !localtime_r(&t, &tm))
                return true; /* no (valid) window: always allowed */
        unsigned now = (unsigned) tm.tm_hour * 60 + (unsigned) tm.tm_min;
        if (start < end)
                return now >= start && now < end;
        return now >= start || now < end;
}

uint64_t window_delay_usec(const char *window, time_t t) {
        unsigned start, end;
        struct tm tm;
        if (window_contains(window, t) || !window_parse(window, &start, &end) || !localtime_r(&t, &tm))
                return 0;
        /* Today's start, or tomorrow's when today's has passed. mktime() normalises the day and
         * resolves daylight-saving time (tm_isdst = -1). */
        for (int add_days = 0; add_days <= 2; add_days++) {
                struct tm s = tm;
                s.tm_mday += add_days;
                s.tm_hour = (int) (start / 60);
                s.tm_min = (int) (start % 60);
                s.tm_sec = 0;
                s.tm_isdst = -1;
                time_t when = mktime(&s);
                if (when != (time_t) -1 && when > t)
                        return (uint64_t) (when - t) * USEC_PER_SEC;
        }
        return 60 * USEC_PER_SEC; /* cannot happen; try again in a minute */
}

uint64_t backoff_usec(unsigned attempt, uint64_t random) {
        uint64_t d = BACKOFF_INITIAL_USEC;
        for (unsigned i = 0; i < attempt && d < BACKOFF_MAX_USEC; i++)
                d *= 2;
        if (d > BACKOFF_MAX_USEC)
                d = BACKOFF_MAX_USEC;
        /* ±20%: d * (0.8 + 0.4 * r), r in [0, 1) with 1/1000 resolution */
        uint64_t per_mille = 800 + random % 401;
        return d / 1000 * per_mille;
}

uint64_t random_u64(void) {
        uint64_t v = 0;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v)) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                v = (uint64_t) ts.tv_nsec * UINT64_C(6364136223846793005) + (uint64_t) ts.tv_sec;
        }
        return v;
}
