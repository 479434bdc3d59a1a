/* breaker.h — the circuit breaker's default for its knob (knobs.h): how far the database's
 * clock may be from this host's. Never a global: the value travels in EngineKnobs. */
#pragma once

#include <stdint.h>

/* The database's clock decides every cutoff; this host's clock checks it. A rule whose
 * database clock is more than this many seconds away from the host's trips the breaker. */
#define BREAKER_DEFAULT_MAX_CLOCK_SKEW_SEC 3600
