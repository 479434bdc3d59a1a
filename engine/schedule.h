/* schedule.h — the daemon's time arithmetic: jitter on a rule's period, the local-time window
 * a rule may run in, the reconnect backoff. Pure functions of their arguments (plus the local
 * time zone): they never read a clock, sleep or talk to the database. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* Jitter added to a rule's next deadline: random in [0, min(1% of period, 30 s)]. */
#define SCHEDULE_JITTER_MAX_USEC (30 * USEC_PER_SEC)
uint64_t schedule_jitter_usec(uint64_t period_usec, uint64_t random);

/* Parses "HH:MM-HH:MM" into minutes of the day. False when malformed or empty (start == end). */
bool window_parse(const char *window, unsigned *start_min, unsigned *end_min);
/* Is local time t inside the window? A window with start > end wraps past midnight
 * ("22:00-06:00"); the start minute is inside, the end minute is not. */
bool window_contains(const char *window, time_t t);
/* Microseconds from local time t until the window next opens; 0 when t is inside it.
 * Follows the local clock across daylight-saving changes (mktime decides). */
uint64_t window_delay_usec(const char *window, time_t t);

/* Reconnect delay after `attempt` failed attempts (0: the first retry): 1 s doubling up to a
 * 60 s cap, then ±20% jitter from `random`. */
#define BACKOFF_INITIAL_USEC (1 * USEC_PER_SEC)
#define BACKOFF_MAX_USEC (60 * USEC_PER_SEC)
uint64_t backoff_usec(unsigned attempt, uint64_t random);

/* A random number for the functions above (getrandom; never blocks). */
uint64_t random_u64(void);
