/* pace.h — pacing between batches: the ratio knob's default (knobs.h) and the terminal's wait.
 * Must never sleep on the daemon's event loop (the worker waits on its own condition). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Pacing: while other sessions write (they were assigned transaction ids during the last batch),
 * wait this many times the batch's duration before the next one; on an idle database batches
 * follow each other at once. 0: never wait. The default 4 keeps the application's p99 within
 * 1.3x of its p99 alone on the benchmark (pgbench, 2 clients, 2 cores; pooled over 3 runs:
 * pace 1 1.09-1.56x, pace 4 1.21-1.28x, pace 10 1.14-1.16x): while a batch runs, the
 * application's commits flush its WAL with theirs, so what pacing buys is fewer of them
 * overlapping a batch. */
#define PACE_DEFAULT_RATIO 4.0
#define PACE_MAX_RATIO 100.0

/* The pause between two batches of `run` (see pace_after_batch()). A signal ends it early:
 * SIGINT and SIGTERM are installed without SA_RESTART, and the next step sees the stop. */
void pace_wait(uint64_t usec, const atomic_bool *stop);
