/* breaker.h — the circuit breaker's process-wide knob: how far the database's clock may be from
 * this host's. Must never be set but from the command line. */
#pragma once

#include <stdint.h>

/* The database's clock decides every cutoff; this host's clock checks it. A rule whose
 * database clock is more than this many seconds away from the host's trips the breaker. */
#define BREAKER_DEFAULT_MAX_CLOCK_SKEW_SEC 3600
void breaker_set_max_clock_skew(int64_t sec); /* 0: no check */
