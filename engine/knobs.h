/* knobs.h — the engine's tunables that the command line sets (--pace, --max-clock-skew), passed
 * down in EnforceOptions, never kept in globals. */
#pragma once

#include <stdint.h>

#include "breaker.h"
#include "pace.h"

typedef struct EngineKnobs {
        double pace_ratio;          /* see pace.h; 0: never wait */
        int64_t max_clock_skew_sec; /* see breaker.h; 0: no check */
} EngineKnobs;

#define ENGINE_KNOBS_DEFAULT \
        ((EngineKnobs) { .pace_ratio = PACE_DEFAULT_RATIO, .max_clock_skew_sec = BREAKER_DEFAULT_MAX_CLOCK_SKEW_SEC })
