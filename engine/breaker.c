/* breaker.c — the circuit breaker of a rule run: the clock check, the count or estimate before
 * the rule starts, and the running limit that stops it during the run.
 * Must never let one run change more rows than the rule's limits allow, unless --force. */
#include "rule-run-private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker.h"
#include "util.h"

/* The database's clock decides every cutoff; this host's clock only checks it. When the two
 * disagree by more than max_clock_skew_sec, one of them is wrong, and a clock ahead would make
 * every row look expired: the rule trips the breaker until they agree. The limit is the run's
 * (EngineKnobs.max_clock_skew_sec). */
int breaker_check_clock(const RuleRun *rr, double db, PgError *err) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double skew = db - (double) ts.tv_sec - (double) ts.tv_nsec / 1e9;
        int64_t max_clock_skew_sec = enforce_knobs(rr->o).max_clock_skew_sec;
        if (max_clock_skew_sec > 0 && (skew > (double) max_clock_skew_sec || skew < -(double) max_clock_skew_sec)) {
                _cleanup_free_ char *detail = xasprintf(
                        "The database clock (now()) is %.0f seconds %s this host's clock; at most %" PRId64 " are allowed.",
                        skew < 0 ? -skew : skew, skew > 0 ? "ahead of" : "behind", max_clock_skew_sec);
                pg_error_set(err, NULL, detail,
                             "Fix the clock (NTP) of the database server or of this host; nothing is enforced while they"
                             " disagree. --max-clock-skew changes the limit (0 turns the check off).",
                             "circuit breaker tripped for rule \"%s\": the database clock and this host's clock disagree",
                             rr->rule->name);
                return OUTCOME_BREAKER;
        }
        return 0;
}

/* The rows the rule's normal action changed: what the breaker counted before it started
 * (while_held anonymisation of held rows is not part of that count). */
int64_t breaker_main_changed(const RuleRun *rr) {
        return rr->res.deleted + rr->res.anonymised - rr->while_held_changed;
}

/* The rows the running breaker still allows this run to change, INT64_MAX when it does not apply. */
int64_t breaker_budget(const RuleRun *rr) {
        if (rr->o->force || rr->res.breaker_limit < 0)
                return INT64_MAX;
        int64_t left = rr->res.breaker_limit - breaker_main_changed(rr);
        return left > 0 ? left : 0;
}

#define PLAN_ROWS "\"Plan Rows\": "
#define REMOTE_PLAN "\"Remote Plan\""

/* Citus, a distributed table (Plan.slices): the coordinator's statistics of it are a shell's (0
 * rows), and its planner answers 100,000 rows for any statement on it. The shards' own estimates
 * are in EXPLAIN when it shows every task (citus.explain_all_tasks): the top plan node of each
 * task's Remote Plan. Their sum, or -1 when the output does not show them all. */
static int64_t shards_plan_rows(const char *json) {
        if (!strstr(json, "\"Tasks Shown\": \"All\""))
                return -1;
        int64_t sum = 0;
        bool any = false;
        for (const char *p = strstr(json, REMOTE_PLAN); p; p = strstr(p + 1, REMOTE_PLAN)) {
                const char *s = strstr(p, PLAN_ROWS);
                if (!s)
                        return -1;
                sum += strtoll(s + strlen(PLAN_ROWS), NULL, 10);
                any = true;
        }
        return any ? sum : -1;
}

/* The rows of an EXPLAIN (FORMAT JSON) `st` (a statement of the plan, or `sql` without
 * parameters): the top node's, or on a slices plan the shards' sum. -1 when it failed or says
 * nothing; PG_ERR_CONNECTION (returned, with *err) is the rule's error. */
static int explain_rows(RuleRun *rr, const PlanStatement *st, const char *sql, int64_t *ret, PgError *err) {
        _cleanup_pgresult_ PGresult *r = NULL;
        PgError e = {};
        *ret = -1;
        int k = 0;
        if (rr->plan->slices) /* the session's: it changes what EXPLAIN shows, nothing else */
                k = pg_exec0(rr->pg, NULL, &e, "SELECT set_config('citus.explain_all_tasks', 'on', false)");
        if (k == 0)
                k = st ? rule_run_exec(rr, st, &r, &e, NULL, NULL, 0) : pg_exec(rr->pg, &r, &e, sql, 0, NULL);
        if (k == PG_ERR_CONNECTION) {
                *err = e;
                return k;
        }
        pg_error_done(&e);
        if (k || PQntuples(r) < 1)
                return 0;
        const char *json = PQgetvalue(r, 0, 0), *s = strstr(json, PLAN_ROWS);
        if (rr->plan->slices)
                *ret = shards_plan_rows(json);
        else if (s)
                *ret = strtoll(s + strlen(PLAN_ROWS), NULL, 10);
        return 0;
}

/* *ret: the planner's estimate of the due rows (from the table's statistics), or INT64_MAX when
 * there is none (then the rows are counted). Returns 0, or PG_ERR_CONNECTION with *err: a lost
 * connection is the rule's error, not a missing estimate. */
static int planner_estimate(RuleRun *rr, int64_t *ret, PgError *err) {
        int64_t n;
        int k = explain_rows(rr, &rr->plan->breaker_estimate, NULL, &n, err);
        *ret = n < 0 ? INT64_MAX : n;
        return k;
}

/* The table's rows by its statistics (catalog_row_estimate()); on a slices plan, by its shards'
 * (shards_plan_rows()), and by the coordinator's catalog only when they cannot be read. */
static int table_estimate(RuleRun *rr, int64_t *rows, bool *analysed, PgError *err) {
        if (rr->plan->slices) {
                _cleanup_free_ char *q = qualified_name_quote(&rr->plan->table->name);
                _cleanup_free_ char *sql = xasprintf("EXPLAIN (FORMAT JSON) SELECT 1 FROM %s t", q);
                int64_t n;
                int k = explain_rows(rr, NULL, sql, &n, err);
                if (k || n >= 0) {
                        *rows = n;
                        *analysed = true;
                        return k;
                }
        }
        return catalog_row_estimate(rr->pg, rr->plan->table, rows, analysed, err);
}

/* The rule table's rows, counted (every partition). */
static int count_table_rows(RuleRun *rr, int64_t *ret, PgError *err) {
        _cleanup_free_ char *q = qualified_name_quote(&rr->plan->table->name);
        _cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s", q);
        _cleanup_free_ char *v = NULL;
        int k = pg_value(rr->pg, &v, err, sql, 0, NULL);
        if (k)
                return k;
        *ret = strtoll(v, NULL, 10);
        return 0;
}

/* The circuit breaker: refuse to change more than max_rows, or more than max_fraction of a
 * table above breaker_min_rows, in one run. A wrong retain or a clock jump must not wipe a table. */
int breaker_check(RuleRun *rr, PgError *err) {
        const Rule *r = rr->rule;
        RuleResult *res = &rr->res;
        int64_t rows = 0;
        bool analysed = false;
        int k = table_estimate(rr, &rows, &analysed, err);
        if (k)
                return k;
        if (analysed && rows < r->breaker_min_rows) {
                /* Statistics that call the table small exempt it from max_fraction: they must not be
                 * taken on trust, since a table analysed while empty, statistics gone stale, or a
                 * table whose rows PostgreSQL's catalog does not see (a Citus coordinator's shell,
                 * when its shards' estimates cannot be read) all say 0. Count: the count is cheap exactly when the table is small, and when
                 * it is not, the estimate was wrong and the count is what keeps the breaker. */
                k = count_table_rows(rr, &rows, err);
                if (k)
                        return k;
                /* Small after all: only max_rows can apply, and the planner's estimate of the due
                 * rows may spare their count as before (the running limit still holds). Not small:
                 * the statistics were wrong, and so is any estimate from them: the due rows are
                 * counted too. */
                if (rows >= r->breaker_min_rows)
                        analysed = false;
        }
        int64_t limit = INT64_MAX;
        if (r->max_rows > 0)
                limit = r->max_rows;
        if (rows >= r->breaker_min_rows) {
                int64_t f = (int64_t) ((double) rows * r->max_fraction);
                if (f < limit)
                        limit = f;
        }
        res->table_rows = rows;
        res->table_rows_analysed = analysed;
        res->breaker_limit = limit == INT64_MAX ? -1 : limit;
        if (limit == INT64_MAX)
                return 0;
        res->breaker_checked = true;

        int64_t due, estimate = INT64_MAX;
        if (!rr->o->dry_run && !rr->o->force && res->table_rows_analysed) {
                k = planner_estimate(rr, &estimate, err);
                if (k)
                        return k;
                if (rr->plan->slices && estimate != INT64_MAX)
                        rr->slice_estimate = estimate; /* also the first slice's density */
        }
        if (rr->o->dry_run)
                due = res->actionable; /* the tally already counted them */
        else if (estimate < limit / 2) {
                /* Far below the limit by the planner's statistics: no need to count; the
                 * running limit in rule_run_step() still stops the rule if it was wrong. */
                res->breaker_rows = -1;
                return 0;
        } else {
                _cleanup_pgresult_ PGresult *c = NULL;
                k = rule_run_exec(rr, &rr->plan->breaker_count, &c, err, NULL, NULL, limit + 1);
                if (k)
                        return k;
                due = pg_int64_at(c, 0, 0);
                if (rr->plan->slices)
                        slices_seed(rr, TAKE_PTR(c)); /* also where the first slice starts */
        }
        res->breaker_rows = due;
        if (due <= limit)
                return 0;
        res->breaker_tripped = true;
        if (rr->o->force) {
                res->forced = true;
                return 0;
        }
        _cleanup_free_ char *tn = qualified_name_display(&rr->plan->table->name);
        _cleanup_free_ char *detail = NULL;
        if (r->max_rows > 0 && limit == r->max_rows)
                detail = xasprintf("%s%" PRId64 " rows of %s are due; max_rows is %" PRId64 ".",
                                   rr->o->dry_run ? "" : "At least ", due, tn, r->max_rows);
        else
                detail = xasprintf("%s%" PRId64 " rows of about %" PRId64 " in %s are due; max_fraction %.0f%% allows %" PRId64 ".",
                                   rr->o->dry_run ? "" : "At least ", due, rows, tn, r->max_fraction * 100.0, limit);
        PgError e = {};
        pg_error_set(&e, NULL, detail,
                     "Check retain, the database clock and the age column. If the backlog is expected (a first run),"
                     " run once with --force, or raise max_fraction / max_rows for this rule.",
                     "circuit breaker tripped for rule \"%s\": more rows are due than its limit allows", r->name);
        rule_run_fail(rr, RULE_BREAKER, &e);
        pg_error_done(&e);
        return 0;
}

/* The running breaker: even when the planner's estimate let the rule start without a count,
 * it never changes more rows in one run than its limit allows. Partitions are dropped only when
 * their rows fit, batches are cut to what the limit has left (batch_rows(); the fast path only
 * runs while a whole batch fits), and once it is used up, one more row due trips the breaker.
 * Returns OUTCOME_BREAKER when the rule must stop, 0 to go on, or a PgErrorClass. */
int breaker_running_limit(RuleRun *rr, PgError *err) {
        if (rr->phase != PHASE_MAIN || breaker_budget(rr) > 0)
                return 0;
        if (breaker_main_changed(rr) > rr->res.breaker_limit)
                return OUTCOME_BREAKER;
        _cleanup_pgresult_ PGresult *c = NULL;
        int k = rule_run_exec(rr, &rr->plan->breaker_count, &c, err, NULL, NULL, 1);
        if (k)
                return k;
        if (pg_int64_at(c, 0, 0) == 0) {
                rule_run_end_phase(rr); /* exactly at the limit, and nothing more is due */
                return 0;
        }
        return OUTCOME_BREAKER;
}

void breaker_trip(RuleRun *rr) {
        PgError e = {};
        int64_t n = breaker_main_changed(rr), limit = rr->res.breaker_limit;
        _cleanup_free_ char *detail =
                n > limit    ? xasprintf("The run changed %" PRId64 " rows, more than the limit of %" PRId64 "; it stopped there.",
                                         n, limit)
                : n == limit ? xasprintf("The run changed %" PRId64 " rows, the limit, and more are due; it stopped there.", n)
                             /* Citus's slices: the next slice held more rows than the limit had left. */
                             : xasprintf("The run changed %" PRId64 " rows; more are due than the %" PRId64
                                         " the limit of %" PRId64 " has left; it stopped there.",
                                         n, limit - n, limit);
        pg_error_set(&e, NULL, detail,
                     "Check retain, the database clock and the age column; run with --force if this is expected.",
                     "circuit breaker tripped for rule \"%s\" during the run", rr->rule->name);
        rule_run_fail(rr, RULE_BREAKER, &e);
        pg_error_done(&e);
}
