/* slices.c — Citus, a distributed table (Plan.slices): the fast path's batches as slices of the
 * age span [first due age, cutoff), each as wide as the rows' density says holds the batch's
 * target, so that no statement orders keys across the shards (the bound probe's ORDER BY ...
 * LIMIT, which Citus answers by shipping batch_size keys from every shard to the coordinator).
 * Must never let a slice reach past the cutoff (the range statement's own `age < cutoff` ends the
 * last one there, exclusive), nor let a slice commit more rows than the breaker's limit has left
 * (fast-path.c undoes such a slice before its COMMIT; slices_narrow() cuts the next narrower). */
#include "rule-run-private.h"

#include <stdlib.h>

#include "util.h"

/* Slices undone in a row (each more than the breaker's limit had left) before the rule stops. */
#define SLICES_MAX_UNDONE 8
/* The first slice from an estimate of the due rows covers at most this part of the span. */
#define SLICES_FIRST_OF_SPAN 16

/* The width in which `density` rows per unit make the target: at least one unit, at most the span. */
static int64_t width_for(const RuleRun *rr, double density) {
        double w = density > 0 ? (double) batch_target(rr) / density : (double) rr->slice_span;
        if (w > (double) rr->slice_span)
                return rr->slice_span;
        return w < 1 ? 1 : (int64_t) w;
}

/* The phase's start from a row of finish_slice_start()'s statement: 0, the phase over (no row is
 * left to change), or OUTCOME_SLOW_PATH (-infinity). */
static int start_from(RuleRun *rr, const PGresult *r, int64_t n, bool estimated) {
        if (n == 0 || PQgetisnull(r, 0, 1)) {
                rule_run_end_phase(rr); /* nothing actionable from the last key to the cutoff */
                return 0;
        }
        if (PQgetisnull(r, 0, 2))
                return OUTCOME_SLOW_PATH; /* -infinity: no width reaches past it */
        free(rr->last_key);
        rr->last_key = xstrdup(PQgetvalue(r, 0, 1));
        int64_t span = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        rr->slice_span = span > 1 ? span : 1;
        /* The first slice from the average density of the whole span; each next one from the
         * slice before it (slices_next()). */
        rr->slice_density = (double) n / (double) rr->slice_span;
        rr->slice_width = width_for(rr, rr->slice_density);
        /* An estimate from statistics gone stale may be far too low: the first slice then takes a
         * sixteenth of the span at most, and the next ones grow from what it found. */
        if (estimated && rr->slice_width > rr->slice_span / SLICES_FIRST_OF_SPAN)
                rr->slice_width = rr->slice_span / SLICES_FIRST_OF_SPAN > 1 ? rr->slice_span / SLICES_FIRST_OF_SPAN : 1;
        rr->slice_undone = 0;
        rr->slice_started = true;
        return 0;
}

void slices_seed(RuleRun *rr, PGresult *count) {
        PQclear(rr->slice_seed);
        rr->slice_seed = count;
}

int slices_begin(RuleRun *rr, const PlanStatement *start, PgError *err) {
        if (rr->slice_seed && rr->phase == PHASE_MAIN && !rr->last_key) {
                /* The breaker counted these rows a moment ago, from the first: no second pass.
                 * (A row inserted since, older than the first one then, is left for the next run.) */
                _cleanup_pgresult_ PGresult *seed = TAKE_PTR(rr->slice_seed);
                return start_from(rr, seed, pg_int64_at(seed, 0, 0), false);
        }
        /* The breaker estimated the due rows from the shards' statistics a moment ago: the first
         * slice's density from that, and the first age by an index probe on every shard, not a
         * count of them all. The estimate only sizes the first slice: the next ones follow the
         * rows each slice found, and the breaker's limit undoes any slice over it. */
        bool first = rr->phase == PHASE_MAIN && !rr->last_key && rr->slice_estimate > 0 && rr->plan->batch_first.sql;
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = rule_run_exec(rr, first ? &rr->plan->batch_first : start, &r, err, NULL, NULL, 0);
        if (k == PG_ERR_LOCK_TIMEOUT) {
                /* The application holds the table's lock: as the fast path's own prepare. */
                pg_error_done(err);
                return OUTCOME_SLOW_PATH;
        }
        return k ? k : start_from(rr, r, first ? rr->slice_estimate : pg_int64_at(r, 0, 0), first);
}

void slices_next(RuleRun *rr, int64_t changed) {
        int64_t w = rr->slice_width;
        /* An empty slice: twice as wide next time. */
        rr->slice_density = changed > 0 ? (double) changed / (double) w : rr->slice_density / 2;
        int64_t next = width_for(rr, rr->slice_density);
        /* At most twice as wide as the last: a sparse slice does not throw the next one across a
         * dense burst at once. */
        if (next / 2 > w)
                next = w * 2 < rr->slice_span ? w * 2 : rr->slice_span;
        rr->slice_width = next;
        rr->slice_undone = 0;
}

bool slices_narrow(RuleRun *rr, int64_t changed) {
        int64_t left = breaker_budget(rr);
        if (rr->slice_width <= 1 || ++rr->slice_undone > SLICES_MAX_UNDONE || left <= 0 || changed <= 0)
                return false;
        /* Aim at half of what is left, as dense as the undone slice was. */
        rr->slice_density = (double) changed / (double) rr->slice_width;
        int64_t w = (int64_t) ((double) rr->slice_width * (double) left / (double) changed / 2);
        rr->slice_width = w < 1 ? 1 : w;
        return true;
}
