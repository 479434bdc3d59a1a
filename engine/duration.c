/* duration.c — parse and print retention periods.
 * Never converts calendar units to fixed lengths except in duration_approx_usec(),
 * which only ever feeds timers, never a cutoff. */
#include "duration.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define USEC_PER_SEC INT64_C(1000000)
#define MAX_MONTHS (INT32_C(12) * 10000) /* 10000 years */
#define MAX_DAYS (INT32_C(366) * 10000)
#define MAX_USECS (INT64_C(24) * 3600 * USEC_PER_SEC * 366 * 10000)

typedef enum Unit { U_SECOND, U_MINUTE, U_HOUR, U_DAY, U_WEEK, U_MONTH, U_YEAR, U_INVALID } Unit;

static const struct {
        const char *name;
        Unit unit;
} unit_names[] = {
        { "second", U_SECOND }, { "seconds", U_SECOND }, { "minute", U_MINUTE }, { "minutes", U_MINUTE },
        { "hour", U_HOUR },     { "hours", U_HOUR },     { "day", U_DAY },       { "days", U_DAY },
        { "week", U_WEEK },     { "weeks", U_WEEK },     { "month", U_MONTH },   { "months", U_MONTH },
        { "year", U_YEAR },     { "years", U_YEAR },
};

static Unit unit_lookup(const char *s, size_t n) {
        for (size_t i = 0; i < sizeof(unit_names) / sizeof(unit_names[0]); i++)
                if (strlen(unit_names[i].name) == n && strncmp(unit_names[i].name, s, n) == 0)
                        return unit_names[i].unit;
        return U_INVALID;
}

static DurationError add_unit(Duration *d, Unit u, uint64_t v) {
        switch (u) {
        case U_YEAR:
                if (v > (uint64_t) MAX_MONTHS / 12 || d->months + (int64_t) v * 12 > MAX_MONTHS)
                        return DURATION_OVERFLOW;
                d->months += (int32_t) v * 12;
                return DURATION_OK;
        case U_MONTH:
                if (v > (uint64_t) MAX_MONTHS || d->months + (int64_t) v > MAX_MONTHS)
                        return DURATION_OVERFLOW;
                d->months += (int32_t) v;
                return DURATION_OK;
        case U_WEEK:
                if (v > (uint64_t) MAX_DAYS / 7 || d->days + (int64_t) v * 7 > MAX_DAYS)
                        return DURATION_OVERFLOW;
                d->days += (int32_t) v * 7;
                return DURATION_OK;
        case U_DAY:
                if (v > (uint64_t) MAX_DAYS || d->days + (int64_t) v > MAX_DAYS)
                        return DURATION_OVERFLOW;
                d->days += (int32_t) v;
                return DURATION_OK;
        case U_HOUR:
        case U_MINUTE:
        case U_SECOND: {
                int64_t mult = u == U_HOUR ? 3600 * USEC_PER_SEC : u == U_MINUTE ? 60 * USEC_PER_SEC : USEC_PER_SEC;
                if (v > (uint64_t) (MAX_USECS / mult) || d->usecs + (int64_t) v * mult > MAX_USECS)
                        return DURATION_OVERFLOW;
                d->usecs += (int64_t) v * mult;
                return DURATION_OK;
        }
        default:
                return DURATION_UNKNOWN_UNIT;
        }
}

/* Reads digits at *p; fails on sign, fraction or overflow. */
static DurationError read_number(const char *s, size_t *i, uint64_t *ret) {
        size_t start = *i;
        uint64_t v = 0;
        if (s[*i] == '-')
                return DURATION_NEGATIVE;
        if (s[*i] == '+')
                return DURATION_SYNTAX;
        if (!isdigit((unsigned char) s[*i]))
                return DURATION_SYNTAX;
        while (isdigit((unsigned char) s[*i])) {
                unsigned d = (unsigned) (s[*i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return DURATION_OVERFLOW;
                v = v * 10 + d;
                (*i)++;
                if (*i - start > 12)
                        return DURATION_OVERFLOW;
        }
        if (s[*i] == '.' || s[*i] == ',')
                return DURATION_FRACTION;
        *ret = v;
        return DURATION_OK;
}

static DurationError parse_iso(const char *s, Duration *d, size_t *off) {
        size_t i = 1; /* after 'P' */
        bool time = false, any = false;
        int last_rank = -1;

        if (!s[i]) {
                *off = i;
                return DURATION_SYNTAX;
        }
        while (s[i]) {
                if (s[i] == 'T') {
                        if (time) {
                                *off = i;
                                return DURATION_SYNTAX;
                        }
                        time = true;
                        i++;
                        if (!s[i]) {
                                *off = i;
                                return DURATION_SYNTAX;
                        }
                        continue;
                }
                size_t numstart = i;
                uint64_t v;
                DurationError e = read_number(s, &i, &v);
                if (e != DURATION_OK) {
                        *off = i;
                        return e;
                }
                char c = s[i];
                Unit u;
                int rank;
                if (!time) {
                        switch (c) {
                        case 'Y': u = U_YEAR; rank = 0; break;
                        case 'M': u = U_MONTH; rank = 1; break;
                        case 'W': u = U_WEEK; rank = 2; break;
                        case 'D': u = U_DAY; rank = 3; break;
                        case 0: *off = i; return DURATION_SYNTAX;
                        default: *off = i; return DURATION_UNKNOWN_UNIT;
                        }
                } else {
                        switch (c) {
                        case 'H': u = U_HOUR; rank = 4; break;
                        case 'M': u = U_MINUTE; rank = 5; break;
                        case 'S': u = U_SECOND; rank = 6; break;
                        case 0: *off = i; return DURATION_SYNTAX;
                        default: *off = i; return DURATION_UNKNOWN_UNIT;
                        }
                }
                if (rank <= last_rank) {
                        *off = numstart;
                        return DURATION_SYNTAX;
                }
                last_rank = rank;
                e = add_unit(d, u, v);
                if (e != DURATION_OK) {
                        *off = numstart;
                        return e;
                }
                any = true;
                i++;
        }
        if (!any) {
                *off = i;
                return DURATION_SYNTAX;
        }
        return DURATION_OK;
}

DurationError duration_parse(const char *s, Duration *ret, size_t *err_offset) {
        Duration d = {};
        size_t off = 0, i = 0;
        DurationError e;

        if (!s)
                s = "";
        while (s[i] == ' ')
                i++;
        if (!s[i]) {
                e = DURATION_EMPTY;
                off = i;
                goto fail;
        }
        if (s[i] == 'P' && i == 0) {
                e = parse_iso(s, &d, &off);
                if (e != DURATION_OK)
                        goto fail;
                *ret = d;
                return DURATION_OK;
        }

        /* "N unit [N unit ...]" */
        while (s[i]) {
                size_t numstart = i;
                uint64_t v;
                e = read_number(s, &i, &v);
                if (e != DURATION_OK) {
                        off = e == DURATION_FRACTION ? i : numstart;
                        goto fail;
                }
                if (s[i] != ' ') {
                        off = i;
                        e = s[i] ? DURATION_UNKNOWN_UNIT : DURATION_SYNTAX;
                        if (s[i] && !isalpha((unsigned char) s[i]))
                                e = DURATION_SYNTAX;
                        goto fail;
                }
                while (s[i] == ' ')
                        i++;
                size_t ustart = i;
                while (isalpha((unsigned char) s[i]))
                        i++;
                if (i == ustart) {
                        off = ustart;
                        e = DURATION_SYNTAX;
                        goto fail;
                }
                Unit u = unit_lookup(s + ustart, i - ustart);
                if (u == U_INVALID) {
                        off = ustart;
                        e = DURATION_UNKNOWN_UNIT;
                        goto fail;
                }
                e = add_unit(&d, u, v);
                if (e != DURATION_OK) {
                        off = numstart;
                        goto fail;
                }
                if (s[i] && s[i] != ' ') {
                        off = i;
                        e = DURATION_SYNTAX;
                        goto fail;
                }
                while (s[i] == ' ')
                        i++;
        }
        *ret = d;
        return DURATION_OK;

fail:
        if (err_offset)
                *err_offset = off;
        return e;
}

const char *duration_error_to_string(DurationError e) {
        switch (e) {
        case DURATION_OK: return "no error";
        case DURATION_EMPTY: return "empty duration";
        case DURATION_SYNTAX: return "invalid duration syntax";
        case DURATION_NEGATIVE: return "negative durations are not allowed";
        case DURATION_FRACTION: return "fractional durations are not allowed";
        case DURATION_UNKNOWN_UNIT: return "unknown time unit";
        case DURATION_OVERFLOW: return "duration out of range";
        }
        return "invalid duration";
}

bool duration_is_zero(const Duration *d) {
        return d->months == 0 && d->days == 0 && d->usecs == 0;
}

static void append_part(char *buf, size_t n, size_t *len, int64_t v, const char *unit) {
        if (v == 0 || *len >= n)
                return;
        int r = snprintf(buf + *len, n - *len, "%s%" PRId64 " %s%s", *len ? " " : "", v, unit, v == 1 ? "" : "s");
        if (r > 0)
                *len += (size_t) r;
}

char *duration_format(const Duration *d, char *buf, size_t n) {
        size_t len = 0;
        if (n == 0)
                return buf;
        buf[0] = 0;
        append_part(buf, n, &len, d->months / 12, "year");
        append_part(buf, n, &len, d->months % 12, "month");
        append_part(buf, n, &len, d->days, "day"); /* "7 days", never "1 week": reads like the policy text */
        int64_t s = d->usecs / USEC_PER_SEC;
        append_part(buf, n, &len, s / 3600, "hour");
        append_part(buf, n, &len, (s / 60) % 60, "minute");
        append_part(buf, n, &len, s % 60, "second");
        if (len == 0)
                snprintf(buf, n, "0 days");
        return buf;
}

char *duration_to_interval(const Duration *d, char *buf, size_t n) {
        snprintf(buf, n, "%" PRId32 " months %" PRId32 " days %" PRId64 " microseconds", d->months, d->days, d->usecs);
        return buf;
}

uint64_t duration_approx_usec(const Duration *d) {
        return (uint64_t) d->months * 30 * 86400 * USEC_PER_SEC + (uint64_t) d->days * 86400 * USEC_PER_SEC +
               (uint64_t) d->usecs;
}
