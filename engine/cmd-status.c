/* cmd-status.c — `retentiond status`: each rule's health from the audit trail (last success,
 * consecutive failures, breaker), and, live, the rows due now, overdue now and the age of the
 * oldest due, counted by the audit's own dry run (run_rules() with dry_run: the same tally
 * statement, so the same due predicate; --no-live: the trail only, with the rows its last run
 * left overdue), in text or JSON. Reads only: a read-only session, the counts in one READ ONLY
 * transaction. Exit 0 when every rule is healthy, 1 when one needs attention. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "event.h"
#include "exitcode.h"
#include "health.h"
#include "json.h"
#include "run.h"
#include "util.h"

static void json_time(StrBuf *b, const char *k, double t) {
        json_key(b, k);
        time_t tt = (time_t) t;
        struct tm tm;
        char buf[32];
        if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                strbuf_append(b, "null");
        else
                strbuf_appendf(b, "\"%s\"", buf);
}

/* A rule's rows as the audit counts them now. */
typedef struct LiveCount {
        bool counted;
        int64_t due, held, overdue; /* due: the rows the next run takes (the audit's "due now") */
        char *oldest_age;           /* age of the oldest of them, interval text; NULL: none */
        char *error;                /* why they could not be counted; NULL: counted */
} LiveCount;

static void live_counts_free(LiveCount *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].oldest_age);
                free(v[i].error);
        }
        free(v);
}

/* Counts the rules of h with the audit's dry run and puts the overdue rows now into h (then
 * classified again, as the audit's health is). live[i] for h->rules[i]. Returns 0 or a
 * PgErrorClass / PgOutcome with *err. */
static int count_live(Pg *pg, const Policy *policy, const EngineKnobs *knobs, HealthReport *h, LiveCount *live,
                      PgError *err) {
        _cleanup_free_ char **names = xcalloc(h->n_rules ? h->n_rules : 1, sizeof(char *));
        for (size_t i = 0; i < h->n_rules; i++)
                names[i] = h->rules[i].name;
        EnforceOptions o = {
                .dry_run = true,
                .only_rules = names,
                .n_only_rules = h->n_rules,
                .knobs = knobs,
        };
        _cleanup_(run_result_freep) RunResult *res = NULL;
        int k = run_rules(pg, policy, &o, NULL, &res, err);
        if (k)
                return k;
        for (size_t i = 0; i < res->n_rules; i++) {
                const RuleResult *r = &res->rules[i];
                for (size_t j = 0; j < h->n_rules; j++) {
                        if (h->rules[j].rule != r->rule)
                                continue;
                        LiveCount *l = &live[j];
                        if (r->outcome == RULE_FAILED || r->outcome == RULE_SKIPPED) {
                                l->error = xstrdup(r->error.primary ? r->error.primary : "the count failed");
                                break;
                        }
                        l->counted = true;
                        l->due = r->actionable;
                        l->held = r->held;
                        l->overdue = r->overdue;
                        l->oldest_age = r->oldest_age ? xstrdup(r->oldest_age) : NULL;
                        h->rules[j].rows_overdue = r->overdue; /* overdue now, not as the last run left it */
                }
        }
        health_classify(h);
        return 0;
}

static void json_i64_or_null(StrBuf *b, const char *k, bool have, int64_t v) {
        if (have)
                json_kv_int(b, k, v);
        else
                json_kv_num(b, k, NULL);
}

/* One rule's health (and its live counts l) as a JSON object. */
static void json_rule_health(StrBuf *b, const RuleHealth *x, const LiveCount *l, unsigned fail_on) {
        _cleanup_free_ char *d = health_describe(x, HEALTH_FAIL_ALL);
        strbuf_append(b, "{\"rule\":");
        json_append_string(b, x->name);
        json_kv_str(b, "state", health_state_to_string(x->state));
        strbuf_appendf(b, ",\"needs_attention\":%s",
                       health_needs_attention(x, fail_on) || l->error ? "true" : "false");
        json_kv_str(b, "description", d);
        strbuf_appendf(b, ",\"schedule_sec\":%.0f", x->schedule_sec);
        json_time(b, "last_success", x->last_success);
        json_kv_str(b, "last_outcome", x->last_outcome);
        if (x->last_run_id >= 0)
                strbuf_appendf(b, ",\"last_run_id\":%" PRId64, x->last_run_id);
        else
                strbuf_append(b, ",\"last_run_id\":null");
        json_time(b, "last_run_started", x->last_started);
        json_time(b, "last_run_finished", x->last_finished);
        strbuf_appendf(b, ",\"consecutive_failures\":%" PRId64, x->failures);
        json_time(b, "failing_since", x->failing_since);
        strbuf_appendf(b,
                       ",\"rows_deleted\":%" PRId64 ",\"rows_anonymised\":%" PRId64 ",\"rows_held\":%" PRId64
                       ",\"rows_skipped\":%" PRId64 ",\"rows_overdue\":%" PRId64,
                       x->rows_deleted, x->rows_anonymised, x->rows_held, x->rows_skipped, x->rows_overdue);
        json_i64_or_null(b, "rows_due_now", l->counted, l->due);
        json_i64_or_null(b, "rows_held_now", l->counted, l->held);
        json_kv_str(b, "oldest_due_age", l->oldest_age);
        json_kv_str(b, "live_error", l->error);
        json_kv_str(b, "last_sqlstate", x->last_sqlstate);
        json_kv_str(b, "last_error", x->last_error);
        strbuf_appendf(b, ",\"running\":%s}", x->running ? "true" : "false");
}

static int status_database(Cli *cli, const Policy *policy, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(health_report_freep) HealthReport *h = NULL;
        PgError err = {};
        unsigned fail_on = cli->fail_on_given ? cli->fail_on : HEALTH_FAIL_ALL;
        (void) userdata;

        int r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        size_t *rules = xcalloc(policy->n_rules ? policy->n_rules : 1, sizeof(size_t)), n = 0;
        for (size_t i = 0; i < policy->n_rules; i++) {
                bool selected = cli->n_rules == 0;
                for (size_t j = 0; j < cli->n_rules; j++)
                        if (streq(cli->rules[j], policy->rules[i].name))
                                selected = true;
                if (selected)
                        rules[n++] = i;
        }
        int k = health_read(pg, policy, rules, n, NULL,
                            cli->stale_after > 0 ? (unsigned) cli->stale_after : HEALTH_DEFAULT_STALE_AFTER, &h, &err);
        free(rules);
        if (k)
                return cmd_fail(&err, k);
        LiveCount *live = xcalloc(h->n_rules ? h->n_rules : 1, sizeof(LiveCount));
        if (!cli->no_live && h->n_rules > 0) {
                k = count_live(pg, policy, &cli->knobs, h, live, &err);
                if (k) {
                        live_counts_free(live, h->n_rules);
                        return cmd_fail(&err, k);
                }
        }

        /* A rule whose rows cannot be counted needs attention as much as one that fails. */
        bool attention = false;
        for (size_t i = 0; i < h->n_rules; i++)
                if (health_needs_attention(&h->rules[i], fail_on) || live[i].error)
                        attention = true;
        StrBuf summary = {};
        health_summary(h, &summary);

        StrBuf b = {};
        char t1[32], t2[32];
        if (cli->json) {
                strbuf_appendf(&b, "{\"healthy\":%s", attention ? "false" : "true");
                json_kv_str(&b, "summary", strbuf_str(&summary));
                strbuf_appendf(&b, ",\"stale_after\":%u,\"live\":%s", h->stale_after, cli->no_live ? "false" : "true");
                json_time(&b, "now", h->now);
                strbuf_append(&b, ",\"rules\":[");
                for (size_t i = 0; i < h->n_rules; i++) {
                        strbuf_append(&b, i ? "," : "");
                        json_rule_health(&b, &h->rules[i], &live[i], fail_on);
                }
                strbuf_append(&b, "]}\n");
        } else if (!cli->quiet || attention) {
                strbuf_appendf(&b, "%-24s %-8s %-16s %-16s %-11s %8s %8s", "RULE", "STATE", "LAST SUCCESS", "LAST RUN",
                               "OUTCOME", "FAILURES", "OVERDUE");
                strbuf_append(&b, cli->no_live ? "\n" : "  DUE NOW  OLDEST DUE\n");
                for (size_t i = 0; i < h->n_rules; i++) {
                        const RuleHealth *x = &h->rules[i];
                        strbuf_appendf(&b, "%-24s %-8s %-16s %-16s %-11s %8" PRId64 " %8" PRId64, x->name,
                                       health_state_to_string(x->state), health_format_time(x->last_success, t1, sizeof(t1)),
                                       health_format_time(x->last_finished, t2, sizeof(t2)),
                                       x->last_outcome ? x->last_outcome : "-", x->failures, x->rows_overdue);
                        if (cli->no_live)
                                strbuf_append(&b, "\n");
                        else if (live[i].counted)
                                strbuf_appendf(&b, " %8" PRId64 "  %s\n", live[i].due, live[i].oldest_age ? live[i].oldest_age : "-");
                        else
                                strbuf_append(&b, "        ?  ?\n");
                        if (live[i].error) {
                                /* the server's message may quote the policy's text: shown escaped */
                                strbuf_append(&b, "  rows not counted: ");
                                strbuf_append_escaped(&b, live[i].error);
                                strbuf_append(&b, "\n");
                        }
                        if (x->state == HEALTH_FAILING || x->state == HEALTH_BREAKER || x->state == HEALTH_STALE ||
                            x->state == HEALTH_OVERDUE) {
                                _cleanup_free_ char *d = health_describe(x, HEALTH_FAIL_ALL);
                                /* the error comes from the audit trail: shown escaped (text_escape) */
                                strbuf_appendf(&b, "  %s%s", d, x->last_error ? ": " : "");
                                strbuf_append_escaped(&b, x->last_error ? x->last_error : "");
                                strbuf_append(&b, "\n");
                        }
                }
                strbuf_appendf(&b, "%s\n", strbuf_str(&summary));
        }
        fputs(strbuf_str(&b), out);
        strbuf_done(&b);
        strbuf_done(&summary);
        live_counts_free(live, h->n_rules);
        return attention ? EXIT_ATTENTION : EXIT_OK;
}

int cmd_status(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;

        if (cli->n_args > 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "\"retentiond status\" takes options only.");
                return EXIT_USAGE;
        }
        int r = cmd_load_policy(cli, &policy);
        if (r)
                return r;
        r = cmd_check_rule_names(cli, policy);
        if (r)
                return r;
        return cmd_each_database(cli, policy, false, status_database, NULL);
}
