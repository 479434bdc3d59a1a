/* run.c — the one loop over a policy's rules: locks, the run's audit-trail row, the catalog, each
 * selected rule started, stepped and finished in policy order. Must never run a rule whose lock
 * it does not hold, nor leave a rule's lock behind on a live session. */
#include "run.h"

#include <inttypes.h>
#include <stdlib.h>

#include "catalog.h"
#include "clock.h"
#include "event.h"
#include "pace.h"
#include "rule-lock.h"
#include "trail.h"
#include "util.h"

static bool rule_selected(const EnforceOptions *o, const Rule *r) {
        if (!o->only_rules || o->n_only_rules == 0)
                return true;
        for (size_t i = 0; i < o->n_only_rules; i++)
                if (streq(o->only_rules[i], r->name))
                        return true;
        return false;
}

int run_rules(Pg *pg, const Policy *p, const EnforceOptions *o, RunResult **ret, PgError *err) {
        _cleanup_(run_result_freep) RunResult *res = xcalloc(1, sizeof(RunResult));
        _cleanup_(cat_cache_done) CatCache cache = {};
        uint64_t t0 = now_usec();
        bool locked = false;
        int k;

        res->run_id = -1;
        k = trail_check_schema(pg, err);
        if (k)
                return k;

        if (o->dry_run) {
                k = pg_exec0(pg, NULL, err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
                if (k)
                        return k;
        } else {
                /* Every rule this run wants, before anything starts: all or none. */
                for (size_t i = 0; i < p->n_rules; i++) {
                        if (!rule_selected(o, &p->rules[i]))
                                continue;
                        k = rule_lock(pg, p->rules[i].name, err);
                        if (k) {
                                for (size_t j = 0; j < i; j++)
                                        if (rule_selected(o, &p->rules[j]) && pg_connection_ok(pg))
                                                rule_unlock(pg, p->rules[j].name);
                                return k;
                        }
                }
                locked = true;
                k = trail_run_begin(pg, o->mode ? o->mode : "run", &res->run_id, err);
                if (k)
                        goto out;
                EventFields ev = EVENT_FIELDS_INIT;
                ev.run_id = res->run_id;
                event_emit(EVENT_RUN_STARTED, event_priority(EVENT_RUN_STARTED), &ev, "run %" PRId64 " started (%s)",
                           res->run_id, o->mode ? o->mode : "run");
        }

        k = catalog_load_policy(pg, p, &cache, err);
        if (k)
                goto out;

        res->rules = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(RuleResult));
        int failed = 0;
        bool lost = false;
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *rule = &p->rules[i];
                if (!rule_selected(o, rule))
                        continue;
                RuleRun *rr = NULL;
                if (o->dry_run) {
                        /* One failing rule must not abort the audit's transaction for the others. */
                        PgError ig = {};
                        (void) pg_exec0(pg, NULL, &ig, "SAVEPOINT retentiond_rule");
                        pg_error_done(&ig);
                }
                rule_run_start(pg, p, rule, &cache, o, res->run_id, &rr);
                while (!rule_run_done(rr)) {
                        (void) rule_run_step(rr);
                        pace_wait(rule_run_pause_usec(rr), o->stop);
                }
                bool stop = o->stop && *o->stop;
                k = rule_run_finish(rr, stop, &res->rules[res->n_rules]);
                rule_run_free(rr);
                RuleResult *rr_res = &res->rules[res->n_rules++];
                if (o->dry_run && k != PG_ERR_CONNECTION) {
                        PgError ig = {};
                        (void) pg_exec0(pg, NULL, &ig,
                                        rr_res->outcome == RULE_FAILED || rr_res->outcome == RULE_SKIPPED
                                                ? "ROLLBACK TO SAVEPOINT retentiond_rule"
                                                : "RELEASE SAVEPOINT retentiond_rule");
                        pg_error_done(&ig);
                }
                if (rr_res->outcome != RULE_SUCCESS)
                        failed++;
                if (k == PG_ERR_CONNECTION) {
                        lost = true;
                        break;
                }
                if (stop) {
                        res->interrupted = true;
                        break;
                }
        }

        if (o->dry_run) {
                PgError ig = {};
                (void) pg_exec0(pg, NULL, &ig, "COMMIT");
                pg_error_done(&ig);
        } else if (!lost) {
                const char *outcome = res->interrupted ? "interrupted" : failed == 0 ? "success"
                                                                     : failed == (int) res->n_rules ? "failed"
                                                                                                     : "partial";
                k = trail_run_end(pg, res->run_id, outcome, (int) res->n_rules, failed, err);
                if (k)
                        goto out;
        }
        if (lost) {
                const RuleResult *last = &res->rules[res->n_rules - 1];
                pg_error_set(err, last->error.sqlstate, last->error.primary,
                             "Check that the database server is running; the next run continues where this one stopped.",
                             "lost the connection to the database during rule \"%s\"", last->rule->name);
                k = PG_ERR_CONNECTION;
                goto out;
        }
        k = 0;
out:
        for (size_t i = 0; locked && i < p->n_rules && pg_connection_ok(pg); i++)
                if (rule_selected(o, &p->rules[i]))
                        rule_unlock(pg, p->rules[i].name);
        res->duration_usec = now_usec() - t0;
        if (k == 0 || k == PG_ERR_CONNECTION)
                *ret = TAKE_PTR(res);
        return k;
}
