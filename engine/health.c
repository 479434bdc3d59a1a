/* health.c — each rule's health from the audit trail. Reads retention.rule_runs and
 * retention.runs only (trail_close_abandoned() below is the one writer, and says so); never
 * reads an application table, never decides anything about rows. */
#include "health.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "duration.h"

static const char *const state_names[_HEALTH_MAX] = {
        [HEALTH_OK] = "ok",           [HEALTH_PENDING] = "pending", [HEALTH_OVERDUE] = "overdue",
        [HEALTH_STALE] = "stale",     [HEALTH_FAILING] = "failing", [HEALTH_BREAKER] = "breaker",
};

const char *health_state_to_string(RuleHealthState s) {
        return (unsigned) s < _HEALTH_MAX ? state_names[s] : "unknown";
}

bool health_parse_fail_on(const char *s, unsigned *ret) {
        unsigned bits = 0;
        _cleanup_free_ char *copy = xstrdup(s);
        char *save = NULL;
        for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
                if (streq(w, "overdue"))
                        bits |= HEALTH_FAIL_OVERDUE;
                else if (streq(w, "failing"))
                        bits |= HEALTH_FAIL_FAILING;
                else if (streq(w, "breaker"))
                        bits |= HEALTH_FAIL_BREAKER;
                else if (streq(w, "stale"))
                        bits |= HEALTH_FAIL_STALE;
                else if (streq(w, "all"))
                        bits |= HEALTH_FAIL_ALL;
                else if (!streq(w, "none"))
                        return false;
        }
        *ret = bits;
        return true;
}

void health_report_free(HealthReport *h) {
        if (!h)
                return;
        for (size_t i = 0; i < h->n_rules; i++) {
                free(h->rules[i].name);
                free(h->rules[i].last_outcome);
                free(h->rules[i].last_sqlstate);
                free(h->rules[i].last_error);
        }
        free(h->rules);
        free(h->last_run_outcome);
        free(h);
}

static int64_t i64(PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double dbl(PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

static char *str(PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static double schedule_sec(const Rule *r) {
        uint64_t u = duration_approx_usec(&r->schedule);
        return u > 0 ? (double) u / 1e6 : 3600.0;
}

unsigned health_conditions(const RuleHealth *r) {
        unsigned c = 0;
        if (r->last_outcome && streq(r->last_outcome, "breaker"))
                c |= HEALTH_FAIL_BREAKER;
        if (r->last_outcome && streq(r->last_outcome, "failed"))
                c |= HEALTH_FAIL_FAILING;
        if (r->rows_overdue > 0)
                c |= HEALTH_FAIL_OVERDUE;
        if (r->stale)
                c |= HEALTH_FAIL_STALE;
        return c;
}

void health_classify(HealthReport *h) {
        for (size_t i = 0; i < h->n_rules; i++) {
                RuleHealth *r = &h->rules[i];
                double limit = (double) h->stale_after * (r->schedule_sec > 0 ? r->schedule_sec : 3600.0);
                /* A rule that never succeeded is stale once its first run is that old. */
                double since = r->last_success > 0 ? r->last_success : r->first_started;
                r->stale = h->stale_after > 0 && since > 0 && h->now - since > limit;
                unsigned c = health_conditions(r);
                r->state = c & HEALTH_FAIL_BREAKER   ? HEALTH_BREAKER
                           : c & HEALTH_FAIL_FAILING ? HEALTH_FAILING
                           : r->stale                ? HEALTH_STALE
                           : c & HEALTH_FAIL_OVERDUE ? HEALTH_OVERDUE
                           : !r->ever_run            ? HEALTH_PENDING
                                                     : HEALTH_OK;
        }
}

bool health_needs_attention(const RuleHealth *r, unsigned fail_on) {
        return (health_conditions(r) & fail_on) != 0;
}

const char *health_format_time(double t, char *buf, size_t n) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (t <= 0 || !localtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M", &tm) == 0)
                snprintf(buf, n, "never");
        return buf;
}

char *health_describe(const RuleHealth *r, unsigned fail_on) {
        StrBuf b = {};
        char t1[32], t2[32];
        unsigned c = health_conditions(r) & fail_on;
        const char *sep = "";
        if (c & HEALTH_FAIL_BREAKER) {
                strbuf_appendf(&b, "its last run (run %" PRId64 ", %s) tripped the circuit breaker", r->last_run_id,
                               health_format_time(r->last_started, t1, sizeof(t1)));
                if (r->failures > 1)
                        strbuf_appendf(&b, ", %" PRId64 " failed runs since %s", r->failures,
                                       health_format_time(r->failing_since, t2, sizeof(t2)));
                sep = "; ";
        } else if (c & HEALTH_FAIL_FAILING) {
                strbuf_appendf(&b, "failed %" PRId64 " time%s since %s", r->failures, r->failures == 1 ? "" : "s",
                               health_format_time(r->failing_since, t1, sizeof(t1)));
                sep = "; ";
        }
        if (c & HEALTH_FAIL_STALE) {
                if (r->last_success > 0)
                        strbuf_appendf(&b, "%sno success since %s", sep, health_format_time(r->last_success, t1, sizeof(t1)));
                else
                        strbuf_appendf(&b, "%snever succeeded (first run %s)", sep,
                                       health_format_time(r->first_started, t1, sizeof(t1)));
                sep = "; ";
        }
        if (c & HEALTH_FAIL_OVERDUE) {
                strbuf_appendf(&b, "%s%" PRId64 " row%s overdue", sep, r->rows_overdue, r->rows_overdue == 1 ? "" : "s");
                sep = "; ";
        }
        if (!*sep)
                strbuf_append(&b, health_state_to_string(r->state));
        return strbuf_steal(&b);
}

void health_summary(const HealthReport *h, StrBuf *b) {
        size_t n[_HEALTH_MAX] = {};
        for (size_t i = 0; i < h->n_rules; i++)
                n[h->rules[i].state]++;
        if (h->n_rules == 0) {
                strbuf_append(b, "no rules");
                return;
        }
        /* "3 rules ok" counts the pending ones too: not having run yet is no problem. */
        size_t ok = n[HEALTH_OK] + n[HEALTH_PENDING];
        strbuf_appendf(b, "%zu rule%s ok", ok, ok == 1 ? "" : "s");
        static const RuleHealthState order[] = { HEALTH_BREAKER, HEALTH_FAILING, HEALTH_STALE, HEALTH_OVERDUE };
        static const char *const words[] = { "blocked by its breaker", "failing", "stale", "overdue" };
        for (size_t k = 0; k < ELEMENTSOF(order); k++) {
                if (n[order[k]] == 0)
                        continue;
                strbuf_appendf(b, ", %zu %s: ", n[order[k]], k == 0 && n[order[k]] > 1 ? "blocked by their breakers" : words[k]);
                bool first = true;
                for (size_t i = 0; i < h->n_rules; i++) {
                        const RuleHealth *r = &h->rules[i];
                        if (r->state != order[k])
                                continue;
                        _cleanup_free_ char *d = health_describe(r, HEALTH_FAIL_ALL);
                        strbuf_appendf(b, "%s%s (%s)", first ? "" : ", ", r->name, d);
                        first = false;
                }
        }
}

/* One row per rule asked for, in that order; the counts of the whole trail, the latest finished
 * rule run and the last success, by the index of a rule's rule runs (rule, id; schema version 9).
 * The failures since the last success are a range of that index: written as a row comparison, so
 * that the planner does not walk the primary key from the last success of any rule instead. */
#define HEALTH_SQL                                                                                                   \
        "SELECT u.ord, extract(epoch FROM first.started_at), extract(epoch FROM ls.finished_at),"                   \
        " l.run_id, l.outcome, extract(epoch FROM l.started_at), extract(epoch FROM l.finished_at),"               \
        " l.rows_deleted, l.rows_anonymised, l.rows_held, l.rows_skipped, l.rows_overdue, l.sqlstate, l.error,"    \
        " f.n, extract(epoch FROM f.since), t.runs, t.deleted, t.anonymised, t.failed, t.breaker,"                 \
        " (cur.outcome = 'running')"                                                                                 \
        " FROM unnest($1::text[]) WITH ORDINALITY AS u(rule, ord)"                                                   \
        " LEFT JOIN LATERAL (SELECT x.* FROM retention.rule_runs x WHERE x.rule = u.rule AND x.outcome <> 'running'" \
        "   ORDER BY x.id DESC LIMIT 1) l ON true"                                                                   \
        " LEFT JOIN LATERAL (SELECT x.outcome FROM retention.rule_runs x WHERE x.rule = u.rule"                     \
        "   ORDER BY x.id DESC LIMIT 1) cur ON true"                                                                 \
        " LEFT JOIN LATERAL (SELECT x.id, x.finished_at FROM retention.rule_runs x"                                 \
        "   WHERE x.rule = u.rule AND x.outcome = 'success' ORDER BY x.id DESC LIMIT 1) ls ON true"                 \
        " LEFT JOIN LATERAL (SELECT x.started_at FROM retention.rule_runs x WHERE x.rule = u.rule"                  \
        "   ORDER BY x.id LIMIT 1) first ON true"                                                                    \
        " LEFT JOIN LATERAL (SELECT count(*) AS n, min(x.started_at) AS since FROM retention.rule_runs x"           \
        "   WHERE x.rule = u.rule AND (x.rule, x.id) > (u.rule, coalesce(ls.id, 0))"                                  \
        "   AND x.outcome IN ('failed', 'breaker')) f ON true"                                                       \
        " LEFT JOIN LATERAL (SELECT count(*) AS runs, sum(x.rows_deleted) AS deleted,"                             \
        "   sum(x.rows_anonymised) AS anonymised, count(*) FILTER (WHERE x.outcome = 'failed') AS failed,"         \
        "   count(*) FILTER (WHERE x.outcome = 'breaker') AS breaker"                                               \
        "   FROM retention.rule_runs x WHERE x.rule = u.rule) t ON true"                                            \
        " ORDER BY u.ord"

int health_read(Pg *pg, const Policy *p, const size_t *rules, size_t n_rules, const char *mode, unsigned stale_after,
                HealthReport **ret, PgError *err) {
        HealthReport *h = xcalloc(1, sizeof(HealthReport));
        size_t n = rules ? n_rules : p->n_rules;
        h->rules = xcalloc(n ? n : 1, sizeof(RuleHealth));
        h->n_rules = n;
        h->stale_after = stale_after;
        h->last_run_id = -1;
        for (size_t i = 0; i < n; i++) {
                h->rules[i].rule = &p->rules[rules ? rules[i] : i];
                h->rules[i].name = xstrdup(h->rules[i].rule->name);
                h->rules[i].schedule_sec = schedule_sec(h->rules[i].rule);
                h->rules[i].last_run_id = -1;
        }

        _cleanup_free_ char *now = NULL, *have = NULL;
        int k = pg_value(pg, &have, err, "SELECT to_regclass('retention.rule_runs') IS NOT NULL", 0, NULL);
        if (!k)
                k = pg_value(pg, &now, err, "SELECT extract(epoch FROM now())::text", 0, NULL);
        if (k) {
                health_report_free(h);
                return k;
        }
        h->now = now ? strtod(now, NULL) : (double) time(NULL);
        if (!streq_ptr(have, "t")) {
                health_classify(h);
                *ret = h;
                return 0;
        }

        /* The rule names as a text[] literal: {"a","b"}, every name quoted (names are
         * [a-z0-9_-], but quote anyway: the array is a parameter, never SQL). */
        StrBuf names = {};
        strbuf_appendc(&names, '{');
        for (size_t i = 0; i < n; i++) {
                strbuf_append(&names, i ? ",\"" : "\"");
                for (const char *c = h->rules[i].name; *c; c++) {
                        if (*c == '"' || *c == '\\')
                                strbuf_appendc(&names, '\\');
                        strbuf_appendc(&names, *c);
                }
                strbuf_appendc(&names, '"');
        }
        strbuf_appendc(&names, '}');
        const char *params[] = { strbuf_str(&names) };
        _cleanup_pgresult_ PGresult *r = NULL;
        k = pg_exec(pg, &r, err, HEALTH_SQL, 1, params);
        strbuf_done(&names);
        if (k) {
                health_report_free(h);
                return k;
        }
        for (int row = 0; row < PQntuples(r) && (size_t) row < n; row++) {
                RuleHealth *x = &h->rules[i64(r, row, 0) - 1];
                x->first_started = dbl(r, row, 1);
                x->last_success = dbl(r, row, 2);
                x->ever_run = !PQgetisnull(r, row, 4);
                x->last_run_id = x->ever_run ? i64(r, row, 3) : -1;
                x->last_outcome = str(r, row, 4);
                x->last_started = dbl(r, row, 5);
                x->last_finished = dbl(r, row, 6);
                x->rows_deleted = i64(r, row, 7);
                x->rows_anonymised = i64(r, row, 8);
                x->rows_held = i64(r, row, 9);
                x->rows_skipped = i64(r, row, 10);
                x->rows_overdue = i64(r, row, 11);
                x->last_sqlstate = str(r, row, 12);
                x->last_error = str(r, row, 13);
                x->failures = i64(r, row, 14);
                x->failing_since = dbl(r, row, 15);
                x->total_runs = i64(r, row, 16);
                x->total_deleted = i64(r, row, 17);
                x->total_anonymised = i64(r, row, 18);
                x->total_failed = i64(r, row, 19);
                x->total_breaker = i64(r, row, 20);
                x->running = streq(PQgetvalue(r, row, 21), "t");
        }

        /* The last finished run (of this mode): what STATUS= says after a restart. */
        _cleanup_pgresult_ PGresult *lr = NULL;
        const char *mp[] = { mode };
        k = pg_exec(pg, &lr, err,
                    "SELECT r.id, extract(epoch FROM r.finished_at), r.outcome,"
                    " (SELECT coalesce(sum(rows_deleted), 0) FROM retention.rule_runs WHERE run_id = r.id),"
                    " (SELECT coalesce(sum(rows_anonymised), 0) FROM retention.rule_runs WHERE run_id = r.id),"
                    " (SELECT coalesce(sum(rows_held), 0) FROM retention.rule_runs WHERE run_id = r.id),"
                    " (SELECT count(*) FROM retention.rule_runs WHERE run_id = r.id AND outcome IN ('failed', 'breaker', 'skipped'))"
                    " FROM retention.runs r WHERE r.outcome <> 'running' AND ($1::text IS NULL OR r.mode = $1)"
                    " ORDER BY r.id DESC LIMIT 1",
                    1, mp);
        if (k) {
                health_report_free(h);
                return k;
        }
        if (PQntuples(lr) == 1) {
                h->have_last_run = true;
                h->last_run_id = i64(lr, 0, 0);
                h->last_run_finished = dbl(lr, 0, 1);
                h->last_run_outcome = str(lr, 0, 2);
                h->last_run_deleted = i64(lr, 0, 3);
                h->last_run_anonymised = i64(lr, 0, 4);
                h->last_run_held = i64(lr, 0, 5);
                h->last_run_failed = (int) i64(lr, 0, 6);
        }
        health_classify(h);
        *ret = h;
        return 0;
}

int trail_close_abandoned(Pg *pg, char **ret_ids, PgError *err) {
        *ret_ids = NULL;
        /* One statement, its own transaction: pg_stat_activity is read after the snapshot that
         * shows the runs, so a run whose session is missing there had ended. A run of a live
         * session is never touched, wherever it comes from. retention.close_abandoned_runs()
         * (sql/retention/005-safety.sql): the role writes the trail only through its functions. */
        /* Most runs find none: a read first spares them the function's two UPDATEs (a run's
         * fixed cost, issue 15). It only decides whether to call it; the function decides again.
         * A role that may not read retention.runs calls it as before. The runs still running are
         * an index (schema version 9), and each one's session is looked up by its pid. */
        _cleanup_free_ char *any = NULL;
        PgError e = {};
        int k = pg_value(pg, &any, &e,
                         "SELECT EXISTS (SELECT 1 FROM retention.runs r WHERE r.outcome = 'running'"
                         " AND NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(r.backend_pid)))",
                         0, NULL);
        if (k == PG_ERR_CONNECTION) {
                *err = e;
                return k;
        }
        pg_error_done(&e);
        if (k == 0 && streq_ptr(any, "f"))
                return 0;
        return pg_value(pg, ret_ids, err, "SELECT retention.close_abandoned_runs()", 0, NULL);
}
