/* cmd-audit.c — `retentiond audit`: the dry run. Everything happens in one READ ONLY
 * transaction on a read-only session, so it never writes, even by mistake. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "catalog.h"
#include "run.h"
#include "event.h"
#include "exitcode.h"
#include "health.h"
#include "plan.h"
#include "report.h"
#include "util.h"

static void print_statement(FILE *f, const char *title, const PlanStatement *st) {
        if (!st->sql)
                return;
        fprintf(f, "-- %s\n%s;\n", title, st->sql);
        for (size_t i = 0; i < st->n_params; i++) {
                const PlanParam *p = &st->params[i];
                if (p->kind == PARAM_CONST && p->value) {
                        _cleanup_free_ char *lit = pg_literal(p->value);
                        fprintf(f, "--   $%zu = %s  (%s)\n", i + 1, lit, p->label);
                } else
                        fprintf(f, "--   $%zu: %s\n", i + 1, p->label);
        }
        fputc('\n', f);
}

/* Every statement of the rule's plan, in the order a run may execute them: all of them, also those
 * a run needs only sometimes (the fast path, foreign-key isolation, partitions). */
static void print_plan(FILE *f, const Policy *policy, const CatCache *cache, Plan *plan) {
        print_statement(f, "cutoffs, computed by PostgreSQL once per rule run", &plan->cutoffs);
        print_statement(f, "is any row due? (run: a rule with none writes its record at its end, and nothing else)",
                        &plan->idle_probe);
        print_statement(f, "circuit breaker: the planner's estimate of the due rows", &plan->breaker_estimate);
        print_statement(f, "circuit breaker: rows this run would change, counted up to the limit (unless the estimate"
                           " is under half of it)",
                        &plan->breaker_count);
        if (plan->partitions.sql) {
                print_statement(f, "partitions whose whole range is older than the cutoff (dropped instead of deleted)",
                                &plan->partitions);
                char pname[] = "PARTITION";
                QualifiedName part = { .schema = plan->table->name.schema, .name = pname };
                PlanStatement check = {};
                plan_partition_check(plan, policy, cache, &part, &check);
                print_statement(f, "each of them checked (rows, held rows, rows not yet expired) before it goes (here \"PARTITION\")",
                                &check);
                plan_statement_done(&check);
        }
        print_statement(f, "slices (Citus, a distributed table), once: the first due age, the due rows and the span to the"
                           " cutoff, from which the slices' width is cut",
                        &plan->batch_start);
        print_statement(f, "slices, once, when the circuit breaker estimated the due rows: the first due age and the span",
                        &plan->batch_first);
        print_statement(f, plan->slices ? "slices, each batch: the upper end of the next slice, the last key plus its width"
                                        : "fast path, each batch: the upper end of the next batch's range of age values, by the index",
                        &plan->batch_bound);
        print_statement(f, "fast path, each batch once one has shown the rows' density, in place of the search: the upper"
                           " end of the next range, the last key plus the width that density says holds a batch (a range"
                           " that takes longer than the short lock wait and four times the last batch is rolled back and"
                           " searched again)",
                        &plan->batch_step);
        print_statement(f, "fast path, each batch: the rows of that range, in the same transaction", &plan->batch_range);
        print_statement(f, "one batch (its own transaction), repeated from the last key until it selects nothing, where the"
                           " fast path does not serve: rows one by one, skipping those another session has locked",
                        &plan->batch);
        print_statement(f, "foreign-key isolation (a batch failed on a reference): the batch's rows", &plan->row_by_row_select);
        print_statement(f, "foreign-key isolation: then each row on its own", &plan->row_by_row_delete);
        print_statement(f, "while held: anonymise held rows, in batches", &plan->while_held_batch);
        print_statement(f, "while held on Citus, slices, once: the first held age to anonymise, their rows and the span",
                        &plan->while_held_start);
        print_statement(f, "while held on Citus, each batch: the upper end of the next range of held rows", &plan->while_held_bound);
        print_statement(f, "while held on Citus: the held rows of that range, in the same transaction", &plan->while_held_range);
        print_statement(f, "tally: due, held, skipped and overdue rows after the run", &plan->tally);
        print_statement(f, "tally: of the rows left, those another session's open transaction holds", &plan->skipped_locked);
}

static int print_sql(Cli *cli, Pg *pg, const Policy *policy, FILE *out) {
        _cleanup_(cat_cache_done) CatCache cache = {};
        PgError err = {};
        int k = catalog_load_policy(pg, policy, &cache, &err);
        if (k) {
                return cmd_fail(&err, k);
        }
        int ret = 0;
        for (size_t i = 0; i < policy->n_rules; i++) {
                const Rule *r = &policy->rules[i];
                bool selected = cli->n_rules == 0;
                for (size_t j = 0; j < cli->n_rules; j++)
                        if (streq(cli->rules[j], r->name))
                                selected = true;
                if (!selected)
                        continue;
                _cleanup_(plan_freep) Plan *plan = NULL;
                _cleanup_free_ char *error = NULL;
                fprintf(out, "-- rule %s: %s\n", r->name, r->clause);
                if (plan_build(policy, r, &cache, &plan, &error) < 0) {
                        fprintf(out, "-- cannot plan: %s\n\n", error);
                        ret = EXIT_ATTENTION;
                        continue;
                }
                print_plan(out, policy, &cache, plan);
        }
        return ret;
}

static int audit_database(Cli *cli, const Policy *policy, FILE *out, void *userdata);

/* The rules' health: the trail's (failing, breaker, stale) with the overdue rows the audit just
 * counted. Every condition that holds is told (rule-needs-attention, a warning), overdue rows
 * only when --fail-on asks for them (overdue-found tells them otherwise); *attention: one of
 * the --fail-on conditions holds. Returns 0 or an exit code. */
static int audit_health(Cli *cli, Pg *pg, const Policy *policy, const RunResult *res, bool *attention) {
        unsigned fail_on = (cli->fail_on_given ? cli->fail_on : 0) | (cli->fail_on_overdue ? HEALTH_FAIL_OVERDUE : 0);
        _cleanup_(health_report_freep) HealthReport *h = NULL;
        _cleanup_free_ size_t *rules = xcalloc(res->n_rules ? res->n_rules : 1, sizeof(size_t));
        for (size_t i = 0; i < res->n_rules; i++)
                rules[i] = (size_t) (res->rules[i].rule - policy->rules);
        PgError err = {};
        int k = health_read(pg, policy, rules, res->n_rules, NULL,
                            cli->stale_after > 0 ? (unsigned) cli->stale_after : HEALTH_DEFAULT_STALE_AFTER, &h, &err);
        if (k) {
                if (fail_on & (HEALTH_FAIL_BREAKER | HEALTH_FAIL_STALE | HEALTH_FAIL_FAILING))
                        return cmd_fail(&err, k);
                pg_error_done(&err);
                *attention = false;
                for (size_t i = 0; i < res->n_rules; i++)
                        if ((fail_on & HEALTH_FAIL_OVERDUE) && res->rules[i].overdue > 0)
                                *attention = true;
                return 0;
        }
        /* Overdue now, as the audit counted it, not as the last run left it. */
        for (size_t i = 0; i < res->n_rules; i++)
                h->rules[i].rows_overdue = res->rules[i].overdue;
        health_classify(h);

        *attention = false;
        for (size_t i = 0; i < h->n_rules; i++) {
                const RuleHealth *x = &h->rules[i];
                unsigned told = HEALTH_FAIL_BREAKER | HEALTH_FAIL_STALE | HEALTH_FAIL_FAILING | (fail_on & HEALTH_FAIL_OVERDUE);
                if (health_needs_attention(x, fail_on))
                        *attention = true;
                if (!health_needs_attention(x, told))
                        continue;
                _cleanup_free_ char *d = health_describe(x, told);
                _cleanup_free_ char *last_error = text_escape(x->last_error); /* from the trail */
                EventFields ev = EVENT_FIELDS_INIT;
                ev.rule = x->name;
                ev.database = cli->database_name;
                if (x->rows_overdue > 0)
                        ev.rows_overdue = x->rows_overdue;
                event_emit(EVENT_RULE_ATTENTION, event_priority(EVENT_RULE_ATTENTION), &ev, "rule %s needs attention: %s%s%s",
                           x->name, d, x->last_error && (x->state == HEALTH_FAILING || x->state == HEALTH_BREAKER) ? ": " : "",
                           x->last_error && (x->state == HEALTH_FAILING || x->state == HEALTH_BREAKER) ? last_error : "");
        }
        return 0;
}

int cmd_audit(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        int r;

        if (cli->n_args > 0) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "\"retentiond audit\" takes options only.");
                return EXIT_USAGE;
        }
        if (cli->force) {
                log_pg_style(LOG_ERR, NULL, "--force belongs to \"retentiond run\"", "An audit never changes anything.", NULL);
                return EXIT_USAGE;
        }
        r = cmd_load_policy(cli, &policy);
        if (r)
                return r;
        r = cmd_check_rule_names(cli, policy);
        if (r)
                return r;
        return cmd_each_database(cli, policy, false, audit_database, NULL);
}

/* The audit of one database (cli->conninfo), for cli->rules (none: every rule). */
static int audit_database(Cli *cli, const Policy *policy, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(run_result_freep) RunResult *res = NULL;
        HashKey *key = NULL;
        PgError err = {};
        int r;

        (void) userdata;
        r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        if (cli->sql)
                return print_sql(cli, pg, policy, out);

        /* The audit never needs the key: it computes nothing with it. A key is loaded only
         * to report a broken one early. */
        if (cli->hash_key_file) {
                r = cmd_load_hash_key(cli, policy, &key);
                if (r)
                        return r;
        }
        EnforceOptions o = {
                .dry_run = true,
                .only_rules = cli->rules,
                .n_only_rules = cli->n_rules,
                .knobs = &cli->knobs,
                .hash_key = key,
        };
        int k = run_rules(pg, policy, &o, NULL, &res, &err);
        hash_key_free(key);
        if (k) {
                return cmd_fail(&err, k);
        }
        report_audit(res, cli->json, cli->quiet, out);
        if (log_target() == LOG_TARGET_JOURNAL)
                report_audit_events(res);

        bool failed = false;
        for (size_t i = 0; i < res->n_rules; i++)
                if (res->rules[i].outcome == RULE_FAILED || res->rules[i].outcome == RULE_SKIPPED)
                        failed = true;
        bool attention = false;
        r = audit_health(cli, pg, policy, res, &attention);
        if (r)
                return r;
        if (failed || attention)
                return EXIT_ATTENTION;
        return EXIT_OK;
}
