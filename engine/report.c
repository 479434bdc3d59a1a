/* report.c — text and JSON reports of runs and audits (JSON through json.c), and their journald
 * events. Prints counts, rule and table names, cutoffs and durations; never row contents. */
#include "report.h"

#include <inttypes.h>
#include <string.h>
#include <syslog.h>

#include "diag.h"
#include "event.h"
#include "json.h"
#include "util.h"

static void json_named(StrBuf *b, const char *k, const NamedCount *v, size_t n) {
        strbuf_appendf(b, ",\"%s\":{", k);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_append_string(b, v[i].name);
                strbuf_appendf(b, ":%" PRId64, v[i].rows);
        }
        strbuf_append(b, "}");
}

/* The tables a rule's deletions cascaded into, with what they did there: a JSON array of
 * {"table", "rows_deleted", "rows_nulled"}, only tables where something happened. */
static void json_cascades(StrBuf *b, const RuleResult *r) {
        strbuf_append(b, "[");
        bool first = true;
        for (size_t i = 0; i < r->n_cascades; i++) {
                const CascadeCount *c = &r->cascades[i];
                if (c->deleted == 0 && c->nulled == 0)
                        continue;
                strbuf_append(b, first ? "{" : ",{");
                first = false;
                json_kv_str(b, "table", c->table);
                json_kv_int(b, "rows_deleted", c->deleted);
                json_kv_int(b, "rows_nulled", c->nulled);
                strbuf_append(b, "}");
        }
        strbuf_append(b, "]");
}

static void json_error(StrBuf *b, const PgError *e) {
        if (!e->primary) {
                strbuf_append(b, ",\"error\":null");
                return;
        }
        strbuf_append(b, ",\"error\":{");
        json_kv_str(b, "message", e->primary);
        json_kv_str(b, "detail", e->detail);
        json_kv_str(b, "hint", e->hint);
        json_kv_str(b, "sqlstate", e->sqlstate[0] ? e->sqlstate : NULL);
        strbuf_append(b, "}");
}

static void json_rule_common(StrBuf *b, const RuleResult *r) {
        _cleanup_free_ char *tn = qualified_name_display(&r->rule->table);
        json_kv_str(b, "rule", r->rule->name);
        json_kv_str(b, "clause", r->rule->clause);
        json_kv_str(b, "table", tn);
        json_kv_str(b, "action", action_to_string(r->rule->action));
        json_kv_str(b, "cutoff", r->cutoff);
        json_kv_str(b, "outcome", rule_outcome_to_string(r->outcome));
}

/* Microseconds as seconds: "0.123 s". */
static const char *format_seconds(uint64_t usec, char *buf, size_t n) {
        snprintf(buf, n, "%" PRIu64 ".%03" PRIu64 " s", usec / 1000000, (usec / 1000) % 1000);
        return buf;
}

static int64_t held_total(const RuleResult *r) {
        return r->held;
}

/* One rule of a run as a JSON object's members. */
static void json_run_rule(StrBuf *b, const RuleResult *r) {
        json_rule_common(b, r);
        json_kv_int(b, "rule_run_id", r->rule_run_id);
        json_kv_int(b, "rows_deleted", r->deleted);
        json_kv_int(b, "rows_anonymised", r->anonymised);
        json_kv_int(b, "rows_held", r->held);
        json_kv_int(b, "rows_skipped", r->actionable + r->fk_blocked);
        json_kv_int(b, "rows_skipped_locked", r->skipped_locked);
        json_kv_int(b, "rows_skipped_fk", r->fk_blocked);
        json_kv_int(b, "rows_skipped_refused", r->skipped_refused);
        json_kv_int(b, "rows_skipped_unfinished", r->skipped_unfinished);
        json_kv_int(b, "rows_cascade_deleted", r->cascade_deleted);
        json_kv_int(b, "rows_cascade_nulled", r->cascade_nulled);
        strbuf_append(b, ",\"cascades\":");
        json_cascades(b, r);
        json_kv_int(b, "rows_overdue", r->overdue);
        json_kv_int(b, "batches", r->batches);
        json_kv_int(b, "batches_predicted", r->batches_predicted);
        json_kv_int(b, "batches_redone", r->batches_redone);
        json_kv_int(b, "longest_batch_usec", r->longest_batch_usec);
        json_kv_int(b, "paused_usec", r->paused_usec);
        json_kv_int(b, "partitions_dropped", r->partitions_dropped);
        json_kv_int(b, "duration_usec", (int64_t) r->duration_usec);
        json_kv_bool(b, "breaker_tripped", r->breaker_tripped);
        /* the limit (-1: none), and the rows counted against it before the run (-1:
         * not counted, the planner's estimate was far below the limit) */
        json_kv_int(b, "breaker_limit", r->breaker_limit);
        json_kv_int(b, "breaker_counted", r->breaker_checked && r->breaker_rows >= 0 ? r->breaker_rows : -1);
        json_kv_bool(b, "forced", r->forced);
        json_named(b, "held_by", r->holds, r->n_holds);
        json_named(b, "skipped_fk_by", r->fks, r->n_fks);
        strbuf_append(b, ",\"untrusted_code\":[");
        for (size_t j = 0; j < r->n_untrusted; j++) {
                if (j)
                        strbuf_append(b, ",");
                json_append_string(b, r->untrusted[j]);
        }
        strbuf_append(b, "]");
        json_error(b, &r->error);
}

/* One rule of a run in text; names from the catalog, clauses and errors escaped. */
static void text_run_rule(FILE *f, EscPool *ep, const RuleResult *r) {
        char buf[32];
        fprintf(f, "%-24s %-9s %10" PRId64 " %10" PRId64 " %10" PRId64 " %8" PRId64 " %8" PRId64 " %8" PRId64 " %10s  %s%s\n",
                r->rule->name, action_to_string(r->rule->action), r->deleted, r->anonymised, r->partitions_dropped,
                held_total(r), r->actionable + r->fk_blocked, r->batches,
                format_seconds(r->duration_usec, buf, sizeof(buf)), rule_outcome_to_string(r->outcome),
                r->forced ? " (breaker overridden by --force)" : "");
        for (size_t j = 0; j < r->n_holds; j++)
                if (r->holds[j].rows > 0)
                        fprintf(f, "  held by %s: %" PRId64 "\n", r->holds[j].name, r->holds[j].rows);
        for (size_t j = 0; j < r->n_fks; j++)
                if (r->fks[j].rows > 0)
                        fprintf(f, "  skipped, still referenced from %s: %" PRId64 "\n", esc_pool(ep, r->fks[j].name),
                                r->fks[j].rows);
        for (size_t j = 0; j < r->n_cascades; j++) {
                const CascadeCount *c = &r->cascades[j];
                if (c->deleted > 0 && c->nulled > 0)
                        fprintf(f, "  cascaded into %s: %" PRId64 " deleted, %" PRId64 " set to NULL\n", esc_pool(ep, c->table),
                                c->deleted, c->nulled);
                else if (c->deleted > 0)
                        fprintf(f, "  cascaded into %s: %" PRId64 " deleted\n", esc_pool(ep, c->table), c->deleted);
                else if (c->nulled > 0)
                        fprintf(f, "  cascaded into %s: %" PRId64 " set to NULL\n", esc_pool(ep, c->table), c->nulled);
        }
        if (r->skipped_locked > 0)
                fprintf(f, "  skipped, locked by another session (left for the next run): %" PRId64 "\n",
                        r->skipped_locked);
        if (r->skipped_refused > 0)
                fprintf(f, "  skipped, not changed by the database although no other session held them"
                           " (a trigger, row security or a rule refused, or they changed during the run): %" PRId64 "\n",
                        r->skipped_refused);
        if (r->skipped_unfinished > 0)
                fprintf(f, "  %s: %" PRId64 "\n",
                        r->outcome == RULE_BREAKER    ? "not enforced, circuit breaker (see the error below)"
                        : r->outcome == RULE_SKIPPED  ? "not enforced, could not take a lock in time (next run)"
                        : r->outcome == RULE_INTERRUPTED ? "left for the next run (interrupted)"
                                                      : "not enforced, the rule failed (see the error below)",
                        r->skipped_unfinished);
        if (r->overdue > 0)
                fprintf(f, "  OVERDUE: %" PRId64 " rows are past their deadline\n", r->overdue);
        for (size_t j = 0; j < r->n_untrusted; j++)
                fprintf(f, "  WARNING: %s\n", r->untrusted[j]);
}

void report_run(const RunResult *res, bool json, bool quiet, FILE *f) {
        int64_t del = 0, anon = 0, held = 0, skipped = 0, cdel = 0, cnull = 0;
        char buf[32];
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *r = &res->rules[i];
                cdel += r->cascade_deleted;
                cnull += r->cascade_nulled;
                del += r->deleted;
                anon += r->anonymised;
                held += held_total(r);
                skipped += r->actionable + r->fk_blocked;
        }
        if (json) {
                StrBuf b = {};
                strbuf_appendf(&b, "{\"run_id\":%" PRId64, res->run_id);
                json_kv_bool(&b, "interrupted", res->interrupted);
                json_kv_int(&b, "duration_usec", (int64_t) res->duration_usec);
                strbuf_append(&b, ",\"rules\":[");
                for (size_t i = 0; i < res->n_rules; i++) {
                        strbuf_append(&b, i ? ",{" : "{");
                        json_run_rule(&b, &res->rules[i]);
                        strbuf_append(&b, "}");
                }
                strbuf_appendf(&b,
                               "],\"total\":{\"rows_deleted\":%" PRId64 ",\"rows_anonymised\":%" PRId64
                               ",\"rows_held\":%" PRId64 ",\"rows_skipped\":%" PRId64 ",\"rows_cascade_deleted\":%" PRId64
                               ",\"rows_cascade_nulled\":%" PRId64 "}}\n",
                               del, anon, held, skipped, cdel, cnull);
                fputs(strbuf_str(&b), f);
                strbuf_done(&b);
                return;
        }

        /* Names from the catalog, clauses and errors are printed escaped (text_escape). */
        _cleanup_(esc_pool_done) EscPool ep = {};
        if (quiet) {
                /* -q: only what needs attention, one line each (the errors themselves are logged) */
                for (size_t i = 0; i < res->n_rules; i++) {
                        const RuleResult *r = &res->rules[i];
                        if (r->outcome != RULE_SUCCESS)
                                fprintf(f, "%s: %s\n", r->rule->name, rule_outcome_to_string(r->outcome));
                        if (r->overdue > 0)
                                fprintf(f, "%s: OVERDUE: %" PRId64 " rows are past their deadline\n", r->rule->name, r->overdue);
                }
                return;
        }
        fprintf(f, "run %" PRId64 "%s\n", res->run_id, res->interrupted ? " (interrupted)" : "");
        fprintf(f, "%-24s %-9s %10s %10s %10s %8s %8s %8s %10s  %s\n", "RULE", "ACTION", "DELETED", "ANONYMISED", "PARTITIONS",
                "HELD", "SKIPPED", "BATCHES", "TIME", "OUTCOME");
        for (size_t i = 0; i < res->n_rules; i++)
                text_run_rule(f, &ep, &res->rules[i]);
        if (cdel > 0 || cnull > 0)
                fprintf(f, "cascades: %" PRId64 " rows deleted, %" PRId64 " set to NULL in referencing tables\n", cdel, cnull);
        fprintf(f, "total: %" PRId64 " deleted, %" PRId64 " anonymised, %" PRId64 " held, %" PRId64 " skipped in %s\n", del,
                anon, held, skipped, format_seconds(res->duration_usec, buf, sizeof(buf)));
}

static void fill_fields(EventFields *ev, const RuleResult *r, int64_t run_id, const char *table) {
        ev->rule = r->rule->name;
        ev->clause = r->rule->clause;
        ev->table = table;
        ev->action = action_to_string(r->rule->action);
        ev->cutoff = r->cutoff;
        ev->run_id = run_id;
        ev->duration_usec = (int64_t) r->duration_usec;
        ev->sqlstate = r->error.sqlstate[0] ? r->error.sqlstate : NULL;
        ev->policy_file = r->rule->loc.file;
        ev->policy_line = r->rule->loc.line;
}

void report_run_started(int64_t run_id, const char *mode, size_t n_rules) {
        EventFields ev = EVENT_FIELDS_INIT;
        ev.run_id = run_id;
        event_emit(EVENT_RUN_STARTED, event_priority(EVENT_RUN_STARTED), &ev, "run %" PRId64 " started (%s, %zu rules)",
                   run_id, mode, n_rules);
}

/* The events of one rule's details: rows held per hold, overdue rows, untrusted code, rows kept
 * by references, rows skipped (locked, refused). */
static void rule_detail_events(const RuleResult *r, const EventFields *base, const char *tn) {
        EventFields ev = *base;
        if (r->held > 0) {
                for (size_t j = 0; j < r->n_holds; j++) {
                        if (r->holds[j].rows == 0)
                                continue;
                        EventFields hv = ev;
                        hv.hold = r->holds[j].name;
                        hv.rows_held = r->holds[j].rows;
                        event_emit(EVENT_ROWS_HELD, event_priority(EVENT_ROWS_HELD), &hv,
                                   "rule %s: %" PRId64 " due rows of %s kept by hold %s", r->rule->name,
                                   r->holds[j].rows, tn, r->holds[j].name);
                }
        }
        if (r->overdue > 0)
                event_emit(EVENT_OVERDUE_FOUND, event_priority(EVENT_OVERDUE_FOUND), &ev,
                           "rule %s: %" PRId64 " rows of %s are past their deadline", r->rule->name, r->overdue, tn);
        for (size_t j = 0; j < r->n_untrusted; j++)
                event_emit(EVENT_UNTRUSTED_CODE, event_priority(EVENT_UNTRUSTED_CODE), &ev, "rule %s: %s", r->rule->name,
                           r->untrusted[j]);
        for (size_t j = 0; j < r->n_fks; j++) {
                if (r->fks[j].rows == 0)
                        continue;
                EventFields fv = ev;
                fv.rows_skipped = r->fks[j].rows;
                event_emit(EVENT_FK_ISOLATED, event_priority(EVENT_FK_ISOLATED), &fv,
                           "rule %s: %" PRId64 " rows of %s are still referenced from %s and were not deleted",
                           r->rule->name, r->fks[j].rows, tn, r->fks[j].name);
        }
        if (r->skipped_locked > 0) {
                EventFields sv = ev;
                sv.rows_skipped = r->skipped_locked;
                sv.skip_reason = "locked";
                event_emit(EVENT_ROWS_SKIPPED, event_priority(EVENT_ROWS_SKIPPED), &sv,
                           "rule %s: %" PRId64 " due rows of %s were locked by another session and are left for the next run",
                           r->rule->name, r->skipped_locked, tn);
        }
        if (r->skipped_refused > 0) {
                EventFields sv = ev;
                sv.rows_skipped = r->skipped_refused;
                sv.skip_reason = "refused";
                event_emit(EVENT_ROWS_SKIPPED, event_priority(EVENT_ROWS_SKIPPED), &sv,
                           "rule %s: %" PRId64 " due rows of %s were not changed although no other session held them"
                           " (a trigger, row security or a rule refused, or they changed during the run)",
                           r->rule->name, r->skipped_refused, tn);
        }
}

void report_run_events(const RunResult *res) {
        int64_t del = 0, anon = 0, held = 0, skipped = 0, cdel = 0, cnull = 0;
        int failed = 0;
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *r = &res->rules[i];
                _cleanup_free_ char *tn = qualified_name_display(&r->rule->table);
                skipped += r->actionable + r->fk_blocked;
                EventFields ev = EVENT_FIELDS_INIT;
                fill_fields(&ev, r, res->run_id, tn);
                ev.rows_deleted = r->deleted;
                ev.rows_anonymised = r->anonymised;
                ev.rows_held = r->held;
                ev.rows_overdue = r->overdue;
                ev.rows_skipped = r->actionable + r->fk_blocked;
                StrBuf cj = {};
                if (r->cascade_deleted > 0 || r->cascade_nulled > 0) {
                        json_cascades(&cj, r);
                        ev.cascades = strbuf_str(&cj);
                        ev.rows_cascade_deleted = r->cascade_deleted;
                        ev.rows_cascade_nulled = r->cascade_nulled;
                        cdel += r->cascade_deleted;
                        cnull += r->cascade_nulled;
                }
                _cleanup_free_ char *by_cascade =
                        r->cascade_deleted > 0 || r->cascade_nulled > 0
                                ? xasprintf("; by cascade %" PRId64 " deleted, %" PRId64 " set to NULL", r->cascade_deleted,
                                            r->cascade_nulled)
                                : xstrdup("");
                del += r->deleted;
                anon += r->anonymised;
                held += r->held;
                switch (r->outcome) {
                case RULE_SUCCESS:
                        event_emit(EVENT_RULE_ENFORCED, event_priority(EVENT_RULE_ENFORCED), &ev,
                                   "rule %s enforced on %s: %" PRId64 " deleted, %" PRId64 " anonymised, %" PRId64 " held%s",
                                   r->rule->name, tn, r->deleted, r->anonymised, r->held, by_cascade);
                        break;
                case RULE_BREAKER:
                        failed++;
                        event_emit_pg_style(EVENT_BREAKER_TRIPPED, event_priority(EVENT_BREAKER_TRIPPED), &ev,
                                            r->error.primary, r->error.detail, r->error.hint);
                        break;
                case RULE_INTERRUPTED:
                        event_emit(EVENT_RUN_INTERRUPTED, event_priority(EVENT_RUN_INTERRUPTED), &ev,
                                   "rule %s interrupted after %" PRId64 " deleted, %" PRId64 " anonymised", r->rule->name,
                                   r->deleted, r->anonymised);
                        break;
                default: {
                        failed++;
                        /* the primary message is one line: a PostgreSQL error raised with a newline or
                         * an escape sequence in it (say, by a where: function) is shown escaped */
                        _cleanup_free_ char *primary = text_escape(r->error.primary ? r->error.primary : "rule failed");
                        event_emit_pg_style(EVENT_RULE_FAILED, event_priority(EVENT_RULE_FAILED), &ev, primary, r->error.detail,
                                            r->error.hint);
                        break;
                }
                }
                rule_detail_events(r, &ev, tn);
                strbuf_done(&cj);
        }
        EventFields ev = EVENT_FIELDS_INIT;
        ev.run_id = res->run_id;
        ev.rows_deleted = del;
        ev.rows_anonymised = anon;
        ev.rows_held = held;
        ev.rows_skipped = skipped;
        if (cdel > 0 || cnull > 0) {
                ev.rows_cascade_deleted = cdel;
                ev.rows_cascade_nulled = cnull;
        }
        ev.duration_usec = (int64_t) res->duration_usec;
        /* The chain's digest after the run, for a copy outside the database (chain_hash). */
        int64_t chain_seq = 0;
        for (size_t i = 0; i < res->n_rules; i++)
                if (res->rules[i].chain_hash && res->rules[i].chain_seq > chain_seq) {
                        chain_seq = res->rules[i].chain_seq;
                        ev.chain_hash = res->rules[i].chain_hash;
                }
        event_emit(EVENT_RUN_FINISHED, failed ? LOG_WARNING : event_priority(EVENT_RUN_FINISHED), &ev,
                   "run %" PRId64 " finished%s: %" PRId64 " deleted, %" PRId64 " anonymised, %" PRId64 " held, %d of %zu rules failed",
                   res->run_id, res->interrupted ? " (interrupted)" : "", del, anon, held, failed, res->n_rules);
}

void report_audit(const RunResult *res, bool json, bool quiet, FILE *f) {
        if (json) {
                StrBuf b = {};
                strbuf_append(&b, "{\"read_only\":true,\"rules\":[");
                for (size_t i = 0; i < res->n_rules; i++) {
                        const RuleResult *r = &res->rules[i];
                        strbuf_append(&b, i ? ",{" : "{");
                        json_rule_common(&b, r);
                        /* the text's "due now": what a run would take now; rows_past_cutoff also
                         * counts those a hold, a longer rule or a reference keeps */
                        json_kv_int(&b, "rows_due", r->actionable);
                        json_kv_int(&b, "rows_actionable", r->actionable);
                        json_kv_int(&b, "rows_past_cutoff", r->due);
                        json_kv_int(&b, "rows_held", r->held);
                        json_kv_int(&b, "rows_overdue", r->overdue);
                        json_kv_int(&b, "rows_skipped_fk", r->fk_blocked);
                        json_kv_int(&b, "rows_while_held", r->while_held_due);
                        json_kv_str(&b, "oldest_due_age", r->oldest_age);
                        json_named(&b, "held_by", r->holds, r->n_holds);
                        json_named(&b, "skipped_fk_by", r->fks, r->n_fks);
                        if (r->rule->n_delete_with > 0)
                                json_named(&b, "deleted_with", r->with, r->n_with);
                        json_kv_bool(&b, "breaker_would_trip", r->breaker_tripped);
                        json_kv_int(&b, "breaker_limit", r->breaker_limit);
                        json_kv_int(&b, "table_rows_estimate", r->table_rows);
                        json_kv_bool(&b, "index_range_scan", r->has_index);
                        strbuf_append(&b, ",\"warnings\":[");
                        for (size_t j = 0; j < r->n_warnings; j++) {
                                if (j)
                                        strbuf_append(&b, ",");
                                json_append_string(&b, r->warnings[j]);
                        }
                        strbuf_append(&b, "]");
                        json_error(&b, &r->error);
                        strbuf_append(&b, "}");
                }
                strbuf_append(&b, "]}\n");
                fputs(strbuf_str(&b), f);
                strbuf_done(&b);
                return;
        }

        _cleanup_(esc_pool_done) EscPool ep = {};
        if (quiet) {
                /* -q: only the rules that failed and the rows past their deadline */
                for (size_t i = 0; i < res->n_rules; i++) {
                        const RuleResult *r = &res->rules[i];
                        if (r->outcome == RULE_FAILED || r->outcome == RULE_SKIPPED) {
                                fprintf(f, "%s: ERROR: %s\n", r->rule->name,
                                        r->error.primary ? esc_pool(&ep, r->error.primary) : "failed");
                                if (r->error.detail)
                                        fprintf(f, "%s: DETAIL: %s\n", r->rule->name, esc_pool(&ep, r->error.detail));
                        } else if (r->overdue > 0)
                                fprintf(f, "%s: OVERDUE: %" PRId64 " rows are past their deadline\n", r->rule->name, r->overdue);
                }
                return;
        }
        fprintf(f, "audit: a dry run inside a READ ONLY transaction; nothing was changed\n");
        int64_t due = 0, held = 0, overdue = 0;
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *r = &res->rules[i];
                _cleanup_free_ char *summary = rule_summary(r->rule);
                fprintf(f, "\n%s — \"%s\"\n", r->rule->name, esc_pool(&ep, r->rule->clause));
                fprintf(f, "  %s\n", summary);
                if (r->outcome == RULE_FAILED || r->outcome == RULE_SKIPPED) {
                        fprintf(f, "  ERROR: %s\n", r->error.primary ? esc_pool(&ep, r->error.primary) : "failed");
                        if (r->error.detail)
                                fprintf(f, "  DETAIL: %s\n", esc_pool(&ep, r->error.detail));
                        if (r->error.hint)
                                fprintf(f, "  HINT: %s\n", esc_pool(&ep, r->error.hint));
                        continue;
                }
                due += r->actionable;
                held += r->held;
                overdue += r->overdue;
                _cleanup_free_ char *from = period_start_describe(&r->rule->start);
                fprintf(f, "  cutoff:       %s%s%s%s\n", r->cutoff ? r->cutoff : "-", from ? "  (counted from " : "",
                        from ? from : "", from ? ")" : "");
                fprintf(f, "  due now:      %" PRId64 "%s\n", r->actionable,
                        r->rule->action == ACTION_ANONYMISE ? " (not yet anonymised)" : "");
                fprintf(f, "  held:         %" PRId64 "\n", r->held);
                for (size_t j = 0; j < r->n_holds; j++)
                        if (r->holds[j].rows > 0)
                                fprintf(f, "    by %-20s %" PRId64 "\n", r->holds[j].name, r->holds[j].rows);
                if (r->rule->has_while_held)
                        fprintf(f, "  held, to anonymise while held: %" PRId64 "\n", r->while_held_due);
                if (r->rule->has_deadline)
                        fprintf(f, "  overdue:      %" PRId64 "%s\n", r->overdue, r->overdue ? "  <-- past the deadline" : "");
                fprintf(f, "  oldest due:   %s\n", r->oldest_age ? r->oldest_age : "-");
                if (r->fk_blocked > 0) {
                        fprintf(f, "  skipped (still referenced): %" PRId64 "\n", r->fk_blocked);
                        for (size_t j = 0; j < r->n_fks; j++)
                                if (r->fks[j].rows > 0)
                                        fprintf(f, "    from %-18s %" PRId64 "\n", esc_pool(&ep, r->fks[j].name), r->fks[j].rows);
                }
                for (size_t j = 0; j < r->n_with; j++)
                        fprintf(f, "  with them:    %" PRId64 " rows of %s (delete_with)\n", r->with[j].rows,
                                esc_pool(&ep, r->with[j].name));
                if (r->breaker_tripped)
                        fprintf(f, "  breaker:      WOULD TRIP (%" PRId64 " rows due, limit %" PRId64 "; run needs --force)\n",
                                r->breaker_rows, r->breaker_limit);
                else if (r->breaker_checked)
                        fprintf(f, "  breaker:      would not trip (limit %" PRId64 " of about %" PRId64 " rows)\n",
                                r->breaker_limit, r->table_rows);
                else
                        fprintf(f, "  breaker:      not applied (table of about %" PRId64 " rows is below breaker_min_rows)\n",
                                r->table_rows);
                fprintf(f, "  probe:        %s\n", r->has_index ? "index range scan on the age column" : "SEQUENTIAL SCAN (no index)");
                for (size_t j = 0; j < r->n_warnings; j++)
                        fprintf(f, "  WARNING: %s\n", esc_pool(&ep, r->warnings[j]));
        }
        fprintf(f, "\ntotal: %" PRId64 " rows due, %" PRId64 " held, %" PRId64 " overdue\n", due, held, overdue);
}

void report_audit_events(const RunResult *res) {
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *r = &res->rules[i];
                _cleanup_free_ char *tn = qualified_name_display(&r->rule->table);
                EventFields ev = EVENT_FIELDS_INIT;
                fill_fields(&ev, r, -1, tn);
                ev.rows_overdue = r->overdue;
                ev.rows_held = r->held;
                if (r->overdue > 0)
                        event_emit(EVENT_OVERDUE_FOUND, event_priority(EVENT_OVERDUE_FOUND), &ev,
                                   "audit: rule %s: %" PRId64 " rows of %s are past their deadline", r->rule->name, r->overdue, tn);
                if (r->outcome == RULE_FAILED) {
                        _cleanup_free_ char *primary = text_escape(r->error.primary ? r->error.primary : "audit failed");
                        event_emit_pg_style(EVENT_RULE_FAILED, event_priority(EVENT_RULE_FAILED), &ev, primary, r->error.detail,
                                            r->error.hint);
                }
        }
}
