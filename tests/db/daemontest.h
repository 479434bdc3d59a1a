/* daemontest.h — what the tests of `retentiond daemon` and its health share (test-daemon.c,
 * test-unattended.c, test-instances.c, test-health.c, test-daemon-journal.c): a migrated
 * database with public.events, the one-rule policy on it, policy files replaced the way an
 * editor does, the daemon's stderr when a check fails, the longest gap between watchdog pings.
 * Header-only (static inline) like rtest.h; the Daemon functions need notify-harness.c linked
 * only where they are used. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify-harness.h"
#include "pgtest.h"
#include "rtest.h"

/* Writes text to path through path.tmp and rename(), as an editor or a config manager would:
 * a reader sees the old file or the new one, never half of it. */
static inline void dt_write_file(const char *path, const char *text) {
        char *tmp = rt_asprintf("%s.tmp", path);
        FILE *f = fopen(tmp, "we");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
        free(tmp);
}

/* Writes text as RT_DIR/NAME.yaml (dt_write_file); returns the path (caller frees). */
static inline char *dt_write_policy(const char *name, const char *text) {
        char *path = rt_asprintf("%s/%s.yaml", rt_dir, name);
        dt_write_file(path, text);
        return path;
}

/* `retentiond migrate -d CI`; fails the test with its exit code and stderr if it fails. */
static inline void dt_migrate(const char *ci) {
        const char *margs[] = { "migrate", "-d", ci, NULL };
        char *err = NULL;
        int rc = pgtest_run(margs, NULL, NULL, &err);
        if (rc != 0)
                fail_msg("retentiond migrate failed (%d): %s", rc, err);
        free(err);
}

/* Creates public.events: `old` rows 30 days old and more (due under a 7-day rule), `young`
 * rows of today. */
static inline void dt_events_table(PGconn *c, long old, long young) {
        pgtest_exec(c, "CREATE TABLE public.events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL)");
        pgtest_exec(c, "INSERT INTO events (created_at) SELECT now() - interval '30 days' - g * interval '1 second' FROM generate_series(1, %ld) g", old);
        pgtest_exec(c, "INSERT INTO events (created_at) SELECT now() FROM generate_series(1, %ld)", young);
}

/* A new database of rt_pg with the retention schema and public.events (dt_events_table);
 * *ret a connection to it. Returns its conninfo (caller frees). */
static inline char *dt_setup_db(const char *name, long old, long young, PGconn **ret) {
        char *ci = pgtest_create_db(rt_pg, name);
        dt_migrate(ci);
        PGconn *c = pgtest_connect(ci);
        dt_events_table(c, old, young);
        *ret = c;
        return ci;
}

/* The start of a policy whose first rule, old-events, deletes public.events after 7 days; the
 * rule's other keys and further rules follow. */
#define DT_EVENTS_POLICY_HEAD                          \
        "version: 1\n"                                 \
        "rules:\n"                                     \
        "  old-events:\n"                              \
        "    clause: \"Events are kept for 7 days\"\n" \
        "    table: public.events\n"                   \
        "    column: created_at\n"                     \
        "    retain: 7 days\n"                         \
        "    action: delete\n"

/* The policy of one rule, old-events: public.events kept 7 days, then deleted, in batches of
 * batch_size, once an hour (caller frees). */
static inline char *dt_events_policy(long batch_size) {
        return rt_asprintf(DT_EVENTS_POLICY_HEAD
                           "    batch_size: %ld\n"
                           "    max_fraction: 100%%\n"
                           "    schedule: 1 hour\n",
                           batch_size);
}

/* dt_events_policy(batch_size) written as RT_DIR/NAME.yaml; returns the path (caller frees). */
static inline char *dt_write_events_policy(const char *name, long batch_size) {
        char *text = dt_events_policy(batch_size);
        char *path = dt_write_policy(name, text);
        free(text);
        return path;
}

static inline long long dt_events(PGconn *c) {
        return pgtest_int(c, "SELECT count(*) FROM events");
}

static inline void dt_dump_stderr(Daemon *d) {
        char *s = daemon_stderr(d);
        print_message("daemon stderr:\n%s", s);
        free(s);
}

/* Longest gap between WATCHDOG=1 messages with index >= from that arrived between since and
 * until (and the number of pings seen). */
static inline uint64_t dt_watchdog_max_gap(Daemon *d, size_t from, uint64_t since, uint64_t until, size_t *ret_n) {
        uint64_t last = 0, max = 0;
        size_t n = 0;
        for (size_t i = from; i < daemon_n_msgs(d); i++) {
                NotifyMsg m = daemon_msg(d, i);
                bool wd = strstr(m.text, "WATCHDOG=1") != NULL;
                free(m.text);
                if (!wd || m.usec < since || m.usec > until)
                        continue;
                if (last && m.usec - last > max)
                        max = m.usec - last;
                last = m.usec;
                n++;
        }
        *ret_n = n;
        return max;
}
