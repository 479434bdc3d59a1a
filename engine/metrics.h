/* metrics.h — the Prometheus node_exporter textfile (--metrics-file PATH): per rule its last
 * success, last outcome, last run's counts and duration, failures and breaker trips; per
 * database whether it is up. Rendered from the rules' health (health.h, read from the audit
 * trail) in the text exposition format, and written atomically (a temporary file in the same
 * directory, fsync, rename). Names and counts only, never a row's contents. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "health.h"
#include "util.h"

typedef struct MetricsDatabase {
        const char *name;           /* label value: the policy's name of the database, or "default" */
        bool up;                    /* connected (the daemon), or the run reached it */
        const HealthReport *health; /* NULL: nothing known about its rules */
} MetricsDatabase;

/* Appends v to b escaped as a label value of the text format: \ " and newline. */
void metrics_escape_label(StrBuf *b, const char *v);
/* Appends a HELP text escaped (\ and newline). */
void metrics_escape_help(StrBuf *b, const char *v);
/* The whole file: every metric family once, with its HELP and TYPE lines. written_at: unix
 * seconds (retentiond_metrics_written_timestamp_seconds, for a staleness alert). */
void metrics_render(const MetricsDatabase *dbs, size_t n, double written_at, StrBuf *b);
/* Writes text to path atomically: PATH's directory gets ".NAME.XXXXXX" (node_exporter reads only
 * *.prom), mode 0644, fsync'ed, renamed over PATH, the directory fsync'ed. Returns 0 or -errno. */
int metrics_write_file(const char *path, const char *text);

/* For the daemon: a thread that writes the latest text it was given, so that a slow disk never
 * stalls the event loop. Submitting replaces what is not written yet. */
typedef struct MetricsWriter MetricsWriter;
int metrics_writer_new(const char *path, MetricsWriter **ret); /* 0 or -errno */
void metrics_writer_submit(MetricsWriter *w, char *text);      /* takes text */
/* The last write's error (a negative errno) once, then 0: the loop logs it. */
int metrics_writer_take_error(MetricsWriter *w);
/* Writes what is pending, stops and joins the thread. NULL-safe. */
void metrics_writer_free(MetricsWriter *w);
