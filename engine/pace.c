/* pace.c — how fast a rule run goes: the adaptive batch size, the pause between batches while
 * other sessions write, gentler WAL meanwhile, and the terminal's wait between batches.
 * Must never sleep on the daemon's event loop, nor make a batch wait for a lock. */
#include "rule-run-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pace.h"
#include "util.h"

uint64_t pace_batch_aim_usec(const RuleRun *rr) {
        /* Citus: a batch is a distributed transaction, its commit two-phase on every worker it
         * touched (10-20 ms whatever its size); aimed at 10 ms, batches shrank to their least.
         * Never paced, so never contended (paced()). */
        if (cat_table_is_citus(rr->plan->table))
                return BATCH_TARGET_USEC_CITUS;
        if (rr->contended)
                return BATCH_TARGET_USEC_CONTENDED;
        return rr->rule->action == ACTION_ANONYMISE ? BATCH_TARGET_USEC_ANONYMISE : BATCH_TARGET_USEC;
}

void pace_adapt_batch_size(RuleRun *rr, int64_t rows, uint64_t usec) {
        int64_t max = rr->rule->batch_size;
        if (rows <= 0 || usec == 0)
                return;
        double rate = (double) rows / (double) usec; /* rows per microsecond */
        bool citus = cat_table_is_citus(rr->plan->table);
        uint64_t aim = pace_batch_aim_usec(rr);
        double want = rate * (double) aim;
        /* Grow by at most half per batch (Citus: twice, since each batch pays its two-phase
         * commit whatever its size); the delete's target sits well below the 10 ms a batch should
         * take (an anonymise rule's at 20 ms, BATCH_TARGET_USEC_ANONYMISE). Shrink by at most
         * half while the batch took at most twice its aim; a batch further over it held its row
         * locks that long, and the next is sized from its rate at once, even after one odd stall
         * (then it grows back by half per batch): halved step by step, rows that each cost a
         * lookup in every partition of a referencing table took 1.15 s, 0.7 s, 0.37 s, ... */
        double n = (double) rr->batch_size;
        if (want > (citus ? 2.0 : 1.5) * n)
                want = (citus ? 2.0 : 1.5) * n;
        if (want < n / 2 && usec <= 2 * aim)
                want = n / 2;
        int64_t next = (int64_t) want;
        if (next > max)
                next = max;
        if (next < BATCH_MIN_ROWS)
                next = max < BATCH_MIN_ROWS ? max : BATCH_MIN_ROWS;
        rr->batch_size = next;
}

/* Pacing: after a batch of `usec` that took one transaction id of its own, were others taken?
 * The next transaction id to be assigned, from any snapshot, costs nothing to read and needs no
 * privilege; other roles' sessions' activity in pg_stat_activity would need pg_read_all_stats.
 * Read-only traffic takes no id and is not seen: it does not compete for WAL. */
static uint64_t next_xid(RuleRun *rr) {
        _cleanup_free_ char *v = NULL;
        PgError e = {};
        int k = pg_value(rr->pg, &v, &e, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text", 0, NULL);
        pg_error_done(&e);
        return k || !v ? 0 : strtoull(v, NULL, 10);
}

/* Citus: the coordinator's transaction ids move with Citus's own bookkeeping (two-phase commit
 * records, its maintenance daemon) and not with the application's writes, which go to the
 * shards on the workers; the batch's WAL is written there too. No signal on the coordinator means
 * application load, so a rule on a distributed or reference table is not paced. */
static bool paced(const RuleRun *rr) {
        return enforce_knobs(rr->o).pace_ratio > 0 && !(rr->plan && cat_table_is_citus(rr->plan->table));
}

/* Before a batch: where the count starts, unless the last batch left it. */
void pace_before_batch(RuleRun *rr) {
        if (paced(rr) && rr->next_xid == 0)
                rr->next_xid = next_xid(rr);
}

/* While other sessions write, this session's WAL is compressed (wal_compression, when the role
 * may set it and the server does not already): a batch's WAL is mostly full-page images of the
 * pages it deletes from, and the application's commits must flush it along with their own.
 * Measured on the benchmark (pgbench's p99 while retentiond deletes 1M rows with --pace 1):
 * 1.6-2.2x its p99 alone with plain WAL, 1.2x with lz4, 1.05x on an unlogged copy (no WAL).
 * On an idle database it stays off: compressing costs the run about 6 %. */
void pace_gentle_wal(RuleRun *rr, bool on) {
        Pg *pg = rr->pg;
        if (!pg->wal_compression[0] || pg->wal_compressing == on || !pg_connection_ok(pg))
                return;
        const char *p[] = { pg->wal_compression };
        PgError e = {};
        /* Off: back to the server's (or role's) setting, whatever it is by now. */
        int k = on ? pg_exec(pg, NULL, &e, "SELECT set_config('wal_compression', $1, false)", 1, p)
                   : pg_exec0(pg, NULL, &e, "RESET wal_compression");
        if (k && on && streq(pg->wal_compression, "lz4") && pg_connection_ok(pg)) {
                /* A server built without lz4 refuses it (22023): pglz is always there. */
                pg_error_done(&e);
                snprintf(pg->wal_compression, sizeof(pg->wal_compression), "pglz");
                k = pg_exec(pg, NULL, &e, "SELECT set_config('wal_compression', $1, false)", 1, p);
        }
        if (k == 0)
                pg->wal_compressing = on;
        else if (on)
                pg->wal_compression[0] = '\0'; /* not again */
        pg_error_done(&e);
}

/* After a batch: `next`, the next transaction id as the batch's own transaction saw it at its
 * end, or 0 to read it now. */
void pace_after_batch(RuleRun *rr, uint64_t usec, unsigned own_xids, uint64_t next) {
        double pace_ratio = enforce_knobs(rr->o).pace_ratio;
        rr->pause_usec = 0;
        if (!paced(rr))
                return;
        if (next == 0)
                next = next_xid(rr);
        if (next == 0) {
                rr->next_xid = 0;
                return;
        }
        if (rr->next_xid > 0) {
                bool others = next > rr->next_xid + own_xids;
                if (others) {
                        double p = pace_ratio * (double) usec;
                        rr->pause_usec = p > 10e6 ? 10000000u : (uint64_t) p;
                        rr->res.paused_usec += (int64_t) rr->pause_usec;
                }
                rr->contended = others;
                pace_gentle_wal(rr, others);
        }
        rr->next_xid = next;
}

/* The pause between two batches of `run` (see pace_after_batch()). A signal ends it early:
 * SIGINT and SIGTERM are installed without SA_RESTART, and the next step sees the stop. */
void pace_wait(uint64_t usec, const atomic_bool *stop) {
        if (usec == 0 || (stop && atomic_load(stop)))
                return;
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000u), .tv_nsec = (long) (usec % 1000000u) * 1000 };
        (void) clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}
