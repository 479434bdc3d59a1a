/* duration.h — retention periods with PostgreSQL interval semantics.
 * Months and years are calendar units, never 30 or 365 days; the database does the arithmetic. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Duration {
        int32_t months; /* years * 12 + months */
        int32_t days;   /* weeks * 7 + days */
        int64_t usecs;  /* hours, minutes, seconds */
} Duration;

typedef enum DurationError {
        DURATION_OK = 0,
        DURATION_EMPTY,
        DURATION_SYNTAX,
        DURATION_NEGATIVE,
        DURATION_FRACTION,
        DURATION_UNKNOWN_UNIT,
        DURATION_OVERFLOW,
} DurationError;

/* Parses "7 days", "1 hour", "6 years", "10 years 6 months", or ISO 8601 "P7D", "P6Y",
 * "PT12H", "P1Y2M3DT4H5M6S", "P2W". On error returns the class and, if err_offset is
 * not NULL, the 0-based byte offset in `s` where the problem is. */
DurationError duration_parse(const char *s, Duration *ret, size_t *err_offset);
const char *duration_error_to_string(DurationError e);

bool duration_is_zero(const Duration *d);
/* Canonical human form: "7 days", "6 years", "1 year 6 months", "12 hours", "0 days".
 * Writes at most n bytes including the NUL; returns buf. */
char *duration_format(const Duration *d, char *buf, size_t n);
/* A PostgreSQL interval literal that means exactly this duration, for use as a query
 * parameter cast to ::interval: "7 days", "72 months 0 days 0 microseconds"... */
char *duration_to_interval(const Duration *d, char *buf, size_t n);
/* Approximate length in microseconds (months as 30 days), only for scheduling timers. */
uint64_t duration_approx_usec(const Duration *d);

#define DURATION_FORMAT_MAX 96
