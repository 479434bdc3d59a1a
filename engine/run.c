/* run.c — the one loop over a policy's rules: locks (or the daemon's slot claims), the run's
 * audit-trail row, the catalog, each selected rule started, stepped and finished in the run's
 * order (policy order, or the daemon's). The terminal and the daemon's worker both drive it; the daemon's differences are its
 * RunHooks. Must never run a rule whose lock it does not hold, nor leave a rule's lock behind
 * on a live session. */
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

/* The rules to run, in order (see RunHooks.order). Caller frees. */
static size_t *selection(const Policy *p, const EnforceOptions *o, const RunHooks *h, size_t *n) {
        size_t *sel = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(size_t));
        *n = 0;
        if (h && h->order) {
                for (size_t i = 0; i < h->n_order && *n < p->n_rules; i++)
                        if (h->order[i] < p->n_rules)
                                sel[(*n)++] = h->order[i];
        } else
                for (size_t i = 0; i < p->n_rules; i++)
                        if (rule_selected(o, &p->rules[i]))
                                sel[(*n)++] = i;
        return sel;
}

/* One run in progress. */
typedef struct Loop {
        Pg *pg;
        const Policy *p;
        const EnforceOptions *o;
        const RunHooks *h;
        RunResult *res;
        size_t *sel; /* the rules to run, in order (indices into p->rules) */
        size_t n_sel;
        CatCache cache;
        bool locked_all;  /* the terminal's way: every selected rule's lock is held */
        bool began;       /* the run row exists (or, dry run, the transaction is open) */
        bool lost;        /* the session is gone */
        bool run_failed;  /* the catalog or the trail failed the run as a whole */
        int failed;       /* rules that did not succeed */
} Loop;

static void op_begin(const Loop *l, bool step) {
        if (l->h && l->h->op_begin)
                l->h->op_begin(l->h->userdata, step);
}

static void op_end(const Loop *l) {
        if (l->h && l->h->op_end)
                l->h->op_end(l->h->userdata);
}

static void unlock_rule(const Loop *l, const Rule *r) {
        if (!pg_connection_ok(l->pg))
                return;
        op_begin(l, false);
        rule_unlock(l->pg, r->name);
        op_end(l);
}

/* The names of the selected rules, in the run's order (the strings are the policy's). */
static const char **selected_names(const Loop *l) {
        const char **names = xcalloc(l->n_sel ? l->n_sel : 1, sizeof(char *));
        for (size_t i = 0; i < l->n_sel; i++)
                names[i] = l->p->rules[l->sel[i]].name;
        return names;
}

/* The terminal's way: every rule this run wants, before anything starts: all or none. */
static int lock_all(Loop *l, PgError *err) {
        _cleanup_free_ const char **names = selected_names(l);
        int k = rule_lock_all(l->pg, names, l->n_sel, err);
        if (k == 0)
                l->locked_all = true;
        return k;
}

static void unlock_all(Loop *l) {
        if (!l->locked_all || !pg_connection_ok(l->pg))
                return;
        _cleanup_free_ const char **names = selected_names(l);
        op_begin(l, false);
        rule_unlock_all(l->pg, names, l->n_sel);
        op_end(l);
        l->locked_all = false;
}

/* The run's row in the audit trail (or the dry run's transaction), then the catalog. */
static int begin(Loop *l, PgError *err) {
        const char *mode = l->o->mode ? l->o->mode : "run";
        int k;

        l->began = true;
        if (l->o->dry_run)
                k = pg_exec0(l->pg, NULL, err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        else {
                op_begin(l, false);
                k = trail_run_begin(l->pg, mode, &l->res->run_id, err);
                op_end(l);
        }
        if (k) {
                l->began = false;
                return k;
        }
        if (!l->o->dry_run && l->h && l->h->run_started)
                l->h->run_started(l->h->userdata, l->res->run_id);
        else if (!l->o->dry_run) {
                EventFields ev = EVENT_FIELDS_INIT;
                ev.run_id = l->res->run_id;
                event_emit(EVENT_RUN_STARTED, event_priority(EVENT_RUN_STARTED), &ev, "run %" PRId64 " started (%s)",
                           l->res->run_id, mode);
        }
        op_begin(l, false);
        k = catalog_load_policy(l->pg, l->p, &l->cache, err);
        op_end(l);
        return k;
}

/* One rule, start to finish. Returns 0 or PG_ERR_CONNECTION (the session is gone). */
static int run_one(Loop *l, size_t index) {
        const Rule *rule = &l->p->rules[index];
        const EnforceOptions *o = l->o;
        RuleRun *rr = NULL;
        int k;

        if (l->h && l->h->rule_started)
                l->h->rule_started(l->h->userdata, index);
        if (o->dry_run) {
                /* One failing rule must not abort the audit's transaction for the others. */
                PgError ig = {};
                (void) pg_exec0(l->pg, NULL, &ig, "SAVEPOINT retentiond_rule");
                pg_error_done(&ig);
        }
        op_begin(l, true);
        rule_run_start(l->pg, l->p, rule, &l->cache, o, l->res->run_id, &rr);
        op_end(l);
        while (!rule_run_done(rr)) {
                op_begin(l, true);
                (void) rule_run_step(rr);
                op_end(l);
                uint64_t pause = rule_run_pause_usec(rr);
                if (l->h && l->h->pause)
                        l->h->pause(l->h->userdata, pause);
                else
                        pace_wait(pause, o->stop);
        }
        /* A stop seen by a step made the rule interrupted there; one that arrives after its last
         * batch does not undo a rule that is complete. */
        op_begin(l, false);
        k = rule_run_finish(rr, &l->res->rules[l->res->n_rules]);
        op_end(l);
        rule_run_free(rr);
        const RuleResult *r = &l->res->rules[l->res->n_rules++];
        if (o->dry_run && k != PG_ERR_CONNECTION) {
                PgError ig = {};
                (void) pg_exec0(l->pg, NULL, &ig,
                                r->outcome == RULE_FAILED || r->outcome == RULE_SKIPPED ? "ROLLBACK TO SAVEPOINT retentiond_rule"
                                                                                      : "RELEASE SAVEPOINT retentiond_rule");
                pg_error_done(&ig);
        }
        if (r->outcome != RULE_SUCCESS)
                l->failed++;
        if (r->outcome == RULE_INTERRUPTED)
                l->res->interrupted = true;
        return k;
}

/* Claims rule index with the daemon's hook. Returns 0 with *go, or PG_ERR_CONNECTION. */
static int claim(Loop *l, size_t index, bool *go, PgError *err) {
        *go = false;
        op_begin(l, false);
        int k = l->h->claim(l->h->userdata, index, &l->p->rules[index], go, err);
        op_end(l);
        if (k)
                *go = false; /* the rule waits, whatever the hook left in *go */
        return k == PG_ERR_CONNECTION ? k : 0;
}

/* The selected rules, in the run's order (RunHooks.order, else policy order). Returns 0, PG_ERR_CONNECTION, or what failed the run as a
 * whole before a rule started (the run row or the catalog). */
static int each_rule(Loop *l, PgError *err) {
        bool per_rule = l->h && l->h->claim;
        int k;

        for (size_t s = 0; s < l->n_sel; s++) {
                size_t i = l->sel[s];
                const Rule *rule = &l->p->rules[i];
                if (enforce_stop_requested(l->o)) {
                        l->res->interrupted = true;
                        return 0;
                }
                if (per_rule) {
                        bool go;
                        k = claim(l, i, &go, err);
                        if (k)
                                return k;
                        if (!go)
                                continue;
                }
                if (!l->began) {
                        k = begin(l, err);
                        if (k) {
                                if (per_rule)
                                        unlock_rule(l, rule);
                                return k;
                        }
                }
                k = run_one(l, i);
                if (per_rule && k != PG_ERR_CONNECTION)
                        unlock_rule(l, rule);
                if (k == PG_ERR_CONNECTION) {
                        const RuleResult *last = &l->res->rules[l->res->n_rules - 1];
                        pg_error_set(err, last->error.sqlstate, last->error.primary,
                                     "Check that the database server is running; the next run continues where this one stopped.",
                                     "lost the connection to the database during rule \"%s\"", last->rule->name);
                        return k;
                }
                if (l->res->interrupted)
                        return 0;
        }
        return 0;
}

/* The run row's outcome, once the rules are done (not after a lost connection). */
static int end(Loop *l, PgError *err) {
        if (l->o->dry_run) {
                PgError ig = {};
                (void) pg_exec0(l->pg, NULL, &ig, "COMMIT");
                pg_error_done(&ig);
                return 0;
        }
        int n = (int) l->res->n_rules;
        const char *outcome = l->res->interrupted ? "interrupted"
                              : l->run_failed     ? "failed"
                              : l->failed == 0    ? "success"
                              : l->failed == n    ? "failed"
                                                  : "partial";
        op_begin(l, false);
        int k = trail_run_end(l->pg, l->res->run_id, outcome, n, l->failed, err);
        op_end(l);
        return k;
}

int run_rules(Pg *pg, const Policy *p, const EnforceOptions *o, const RunHooks *h, RunResult **ret, PgError *err) {
        _cleanup_(run_result_freep) RunResult *res = xcalloc(1, sizeof(RunResult));
        Loop l = { .pg = pg, .p = p, .o = o, .h = h, .res = res };
        _cleanup_free_ size_t *sel = l.sel = selection(p, o, h, &l.n_sel);
        uint64_t t0 = now_usec();
        int k;

        *ret = NULL;
        res->run_id = -1;
        res->rules = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(RuleResult));
        bool per_rule = h && h->claim;
        if (!per_rule) {
                /* The daemon's session checked its schema when it connected; `run` checked it
                 * right before (pg->schema_checked, good for this one use). */
                k = pg->schema_checked ? 0 : trail_check_schema(pg, err);
                pg->schema_checked = false;
                if (k)
                        goto out;
                if (!o->dry_run) {
                        k = lock_all(&l, err);
                        if (k)
                                goto out;
                }
                k = begin(&l, err);
        } else if (!pg_connection_ok(pg)) {
                pg_error_set(err, "08006", NULL, NULL, "not connected to the database");
                k = PG_ERR_CONNECTION;
        } else
                k = 0;
        if (k == 0)
                k = each_rule(&l, err);
        if (k == PG_ERR_CONNECTION)
                l.lost = true;
        else if (k && l.began) {
                /* The run row exists: it must not keep saying running. A stop that cancelled the
                 * catalog's statements interrupted the run; anything else failed it. */
                if (enforce_stop_requested(o))
                        res->interrupted = true;
                else
                        l.run_failed = true;
        }
        if (l.began && !l.lost) {
                PgError e = {};
                int ke = end(&l, k ? &e : err);
                if (ke == PG_ERR_CONNECTION)
                        l.lost = true;
                if (ke && k == 0)
                        k = ke;
                pg_error_done(&e);
        }
        if (l.lost)
                k = PG_ERR_CONNECTION;
        if (res->interrupted && k && k != PG_ERR_CONNECTION) {
                pg_error_done(err);
                k = 0;
        }
out:
        unlock_all(&l);
        cat_cache_done(&l.cache);
        res->duration_usec = now_usec() - t0;
        if (k == 0 || l.began || res->n_rules > 0)
                *ret = TAKE_PTR(res);
        return k;
}
