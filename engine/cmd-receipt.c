/* cmd-receipt.c — `retentiond receipt RUN_ID`: the command's glue for a deletion receipt
 * (receipt.c reads it from the audit trail): the run, and per rule what the policy promised (the
 * clause), what was done with which cutoff and counts, and the rule run's place and digest in the
 * hash chain, with whether the chain verifies up to this run, as text or JSON. A read-only
 * session and one READ ONLY REPEATABLE READ transaction: it never writes, and prints counts,
 * names from the policy, times and digests only (escaped), never personal data. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "event.h"
#include "exitcode.h"
#include "json.h"
#include "receipt.h"
#include "util.h"

static const char *val(const PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Rows of a (rule_run_id, name, rows) result that belong to one rule run, as {"name":rows}. */
static void json_named(StrBuf *b, const char *k, const PGresult *r, const char *rule_run) {
        strbuf_appendf(b, ",\"%s\":{", k);
        bool first = true;
        for (int i = 0; i < PQntuples(r); i++) {
                if (!streq(PQgetvalue(r, i, 0), rule_run))
                        continue;
                if (!first)
                        strbuf_append(b, ",");
                first = false;
                json_append_string(b, PQgetvalue(r, i, 1));
                strbuf_appendf(b, ":%s", PQgetvalue(r, i, 2));
        }
        strbuf_append(b, "}");
}

/* The cascades of one rule run from a (rule_run_id, table, deleted, nulled) result, as
 * [{"table", "rows_deleted", "rows_nulled"}], in the result's (bytewise) order. */
static void json_cascades(StrBuf *b, const PGresult *r, const char *rule_run) {
        strbuf_append(b, ",\"cascades\":[");
        bool first = true;
        for (int i = 0; i < PQntuples(r); i++) {
                if (!streq(PQgetvalue(r, i, 0), rule_run))
                        continue;
                strbuf_append(b, first ? "{\"table\":" : ",{\"table\":");
                first = false;
                json_append_string(b, PQgetvalue(r, i, 1));
                strbuf_appendf(b, ",\"rows_deleted\":%s,\"rows_nulled\":%s}", PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
        }
        strbuf_append(b, "]");
}

static void text_named(const char *label, const PGresult *r, const char *rule_run) {
        for (int i = 0; i < PQntuples(r); i++)
                if (streq(PQgetvalue(r, i, 0), rule_run)) {
                        _cleanup_free_ char *name = text_escape(PQgetvalue(r, i, 1));
                        printf("    %s %-24s %s\n", label, name, PQgetvalue(r, i, 2));
                }
}

/* A value for the terminal: control characters escaped (see text_escape). */
static const char *tval(EscPool *ep, const PGresult *r, int row, int col) {
        return esc_pool(ep, val(r, row, col));
}

static void print_json(const Receipt *x) {
        const PGresult *run = x->run, *rr = x->rule_runs, *holds = x->holds, *fks = x->fks, *cascades = x->cascades;
        const ChainStatus *chain = &x->chain;
        int64_t run_id = x->run_id, up_to = x->up_to;
        bool checked = x->checked, chain_ok = receipt_chain_ok(x);
        StrBuf b = {};
        strbuf_appendf(&b, "{\"run_id\":%" PRId64, run_id);
        json_kv_str(&b, "host", val(run, 0, RECEIPT_RUN_HOST));
        json_kv_str(&b, "version", val(run, 0, RECEIPT_RUN_VERSION));
        json_kv_str(&b, "mode", val(run, 0, RECEIPT_RUN_MODE));
        json_kv_str(&b, "started_at", val(run, 0, RECEIPT_RUN_STARTED));
        json_kv_str(&b, "finished_at", val(run, 0, RECEIPT_RUN_FINISHED));
        json_kv_str(&b, "outcome", val(run, 0, RECEIPT_RUN_OUTCOME));
        json_kv_num(&b, "rules_total", val(run, 0, RECEIPT_RUN_RULES_TOTAL));
        json_kv_num(&b, "rules_failed", val(run, 0, RECEIPT_RUN_RULES_FAILED));
        strbuf_append(&b, ",\"rules\":[");
        for (int i = 0; i < PQntuples(rr); i++) {
                const char *rid = PQgetvalue(rr, i, RR_ID);
                strbuf_appendf(&b, "%s{\"rule_run_id\":%s", i ? "," : "", rid);
                json_kv_str(&b, "rule", val(rr, i, RR_RULE));
                json_kv_str(&b, "clause", val(rr, i, RR_CLAUSE));
                json_kv_str(&b, "table", val(rr, i, RR_TABLE));
                json_kv_str(&b, "action", val(rr, i, RR_ACTION));
                json_kv_str(&b, "cutoff", val(rr, i, RR_CUTOFF));
                json_kv_str(&b, "started_at", val(rr, i, RR_STARTED));
                json_kv_str(&b, "finished_at", val(rr, i, RR_FINISHED));
                json_kv_num(&b, "rows_deleted", val(rr, i, RR_DELETED));
                json_kv_num(&b, "rows_anonymised", val(rr, i, RR_ANONYMISED));
                json_kv_num(&b, "rows_held", val(rr, i, RR_HELD));
                json_named(&b, "held_by", holds, rid);
                json_kv_num(&b, "rows_skipped", val(rr, i, RR_SKIPPED));
                json_kv_num(&b, "rows_skipped_locked", val(rr, i, RR_SKIPPED_LOCKED));
                json_kv_num(&b, "rows_skipped_fk", val(rr, i, RR_SKIPPED_FK));
                json_named(&b, "skipped_fk_by", fks, rid);
                json_kv_num(&b, "rows_skipped_refused", val(rr, i, RR_SKIPPED_REFUSED));
                json_kv_num(&b, "rows_skipped_unfinished", val(rr, i, RR_SKIPPED_UNFINISHED));
                json_cascades(&b, cascades, rid);
                json_kv_num(&b, "rows_overdue", val(rr, i, RR_OVERDUE));
                json_kv_num(&b, "partitions_dropped", val(rr, i, RR_PARTITIONS));
                json_kv_num(&b, "batches", val(rr, i, RR_BATCHES));
                json_kv_str(&b, "outcome", val(rr, i, RR_OUTCOME));
                json_kv_str(&b, "sqlstate", val(rr, i, RR_SQLSTATE));
                json_kv_str(&b, "error", val(rr, i, RR_ERROR));
                strbuf_append(&b, ",\"chain\":");
                if (PQgetisnull(rr, i, RR_SEQ))
                        strbuf_append(&b, "null");
                else {
                        int64_t seq = strtoll(PQgetvalue(rr, i, RR_SEQ), NULL, 10);
                        strbuf_appendf(&b, "{\"seq\":%" PRId64, seq);
                        json_kv_str(&b, "prev_hash", val(rr, i, RR_PREV_HASH));
                        json_kv_str(&b, "hash", val(rr, i, RR_HASH));
                        json_kv_str(&b, "sealed_at", val(rr, i, RR_SEALED_AT));
                        strbuf_appendf(&b, ",\"verified\":%s}", receipt_seq_verified(x, seq) ? "true" : "false");
                }
                strbuf_append(&b, "}");
        }
        strbuf_appendf(&b, "],\"chain\":{\"verified\":%s,\"up_to_seq\":",
                       !checked ? "null" : chain_ok ? "true" : "false");
        if (checked)
                strbuf_appendf(&b, "%" PRId64 ",\"checked\":%" PRId64, up_to, chain->checked);
        else
                strbuf_append(&b, "null,\"checked\":0");
        json_kv_str(&b, "break", checked && !chain_ok ? chain->message : NULL);
        json_kv_str(&b, "detail", checked && !chain_ok ? chain->detail : NULL);
        strbuf_append(&b, "}}\n");
        fputs(strbuf_str(&b), stdout);
        strbuf_done(&b);
}

static void print_text(const Receipt *x) {
        const PGresult *run = x->run, *rr = x->rule_runs, *holds = x->holds, *fks = x->fks, *cascades = x->cascades;
        const ChainStatus *chain = &x->chain;
        int64_t run_id = x->run_id, up_to = x->up_to;
        bool checked = x->checked, chain_ok = receipt_chain_ok(x);
        /* Everything from the trail is printed escaped: a clause, an error message or a hold
         * name with a newline or an escape sequence must not forge a line or rewrite the screen. */
        _cleanup_(esc_pool_done) EscPool ep = {};
        printf("deletion receipt: run %" PRId64 "\n", run_id);
        printf("  host:       %s\n", tval(&ep, run, 0, RECEIPT_RUN_HOST));
        printf("  version:    retentiond %s\n", tval(&ep, run, 0, RECEIPT_RUN_VERSION));
        printf("  mode:       %s\n", tval(&ep, run, 0, RECEIPT_RUN_MODE));
        printf("  started:    %s\n", tval(&ep, run, 0, RECEIPT_RUN_STARTED));
        printf("  finished:   %s\n", tval(&ep, run, 0, RECEIPT_RUN_FINISHED) ? tval(&ep, run, 0, RECEIPT_RUN_FINISHED) : "- (not finished)");
        printf("  outcome:    %s (%s rules, %s failed)\n", tval(&ep, run, 0, RECEIPT_RUN_OUTCOME), tval(&ep, run, 0, RECEIPT_RUN_RULES_TOTAL), tval(&ep, run, 0, RECEIPT_RUN_RULES_FAILED));
        for (int i = 0; i < PQntuples(rr); i++) {
                const char *rid = PQgetvalue(rr, i, RR_ID);
                const char *cutoff = tval(&ep, rr, i, RR_CUTOFF), *fin = tval(&ep, rr, i, RR_FINISHED);
                printf("\nrule %s — \"%s\"\n", tval(&ep, rr, i, RR_RULE), tval(&ep, rr, i, RR_CLAUSE));
                printf("  rule run:   %s\n", rid);
                printf("  table:      %s\n", tval(&ep, rr, i, RR_TABLE));
                printf("  action:     %s\n", tval(&ep, rr, i, RR_ACTION));
                printf("  cutoff:     %s\n", cutoff ? cutoff : "-");
                printf("  started:    %s\n", tval(&ep, rr, i, RR_STARTED));
                printf("  finished:   %s\n", fin ? fin : "- (not finished)");
                printf("  deleted:    %s\n", tval(&ep, rr, i, RR_DELETED));
                printf("  anonymised: %s\n", tval(&ep, rr, i, RR_ANONYMISED));
                printf("  held:       %s\n", tval(&ep, rr, i, RR_HELD));
                text_named("by", holds, rid);
                if (val(rr, i, RR_DIGEST_FORMAT))
                        printf("  skipped:    %s (locked by another session %s, still referenced %s, not changed by the"
                               " database %s, rule run did not finish %s)\n",
                               tval(&ep, rr, i, RR_SKIPPED), tval(&ep, rr, i, RR_SKIPPED_LOCKED), tval(&ep, rr, i, RR_SKIPPED_FK),
                               tval(&ep, rr, i, RR_SKIPPED_REFUSED), tval(&ep, rr, i, RR_SKIPPED_UNFINISHED));
                else /* recorded before schema version 5, when every reason but a reference counted as locked */
                        printf("  skipped:    %s (locked or changing %s, still referenced %s)\n", tval(&ep, rr, i, RR_SKIPPED),
                               tval(&ep, rr, i, RR_SKIPPED_LOCKED), tval(&ep, rr, i, RR_SKIPPED_FK));
                text_named("from", fks, rid);
                for (int j = 0; j < PQntuples(cascades); j++)
                        if (streq(PQgetvalue(cascades, j, 0), rid))
                                printf("  cascaded into %s: %s deleted, %s set to NULL\n", esc_pool(&ep, PQgetvalue(cascades, j, 1)),
                                       PQgetvalue(cascades, j, 2), PQgetvalue(cascades, j, 3));
                printf("  overdue:    %s\n", tval(&ep, rr, i, RR_OVERDUE));
                printf("  partitions dropped: %s\n", tval(&ep, rr, i, RR_PARTITIONS));
                printf("  outcome:    %s\n", tval(&ep, rr, i, RR_OUTCOME));
                if (tval(&ep, rr, i, RR_ERROR))
                        printf("  error:      %s%s%s%s\n", tval(&ep, rr, i, RR_ERROR), tval(&ep, rr, i, RR_SQLSTATE) ? " (SQLSTATE " : "",
                               tval(&ep, rr, i, RR_SQLSTATE) ? tval(&ep, rr, i, RR_SQLSTATE) : "", tval(&ep, rr, i, RR_SQLSTATE) ? ")" : "");
                if (PQgetisnull(rr, i, RR_SEQ))
                        printf("  chain:      not sealed (the rule run never finished)\n");
                else {
                        int64_t seq = strtoll(PQgetvalue(rr, i, RR_SEQ), NULL, 10);
                        printf("  chain:      #%" PRId64 ", sealed %s%s\n", seq, tval(&ep, rr, i, RR_SEALED_AT),
                               receipt_seq_verified(x, seq) ? "" : " — DOES NOT VERIFY");
                        printf("  hash:       %s\n", tval(&ep, rr, i, RR_HASH));
                        printf("  prev hash:  %s\n", tval(&ep, rr, i, RR_PREV_HASH) ? tval(&ep, rr, i, RR_PREV_HASH) : "- (first in the chain)");
                }
        }
        if (!checked)
                printf("\nchain: no rule run of this run is sealed; nothing to verify\n");
        else if (chain_ok && chain->checkpoint_id > 0)
                printf("\nchain: verifies from checkpoint %" PRId64 " (#%" PRId64 ") to #%" PRId64 " (the last rule run of this run)\n",
                       chain->checkpoint_id, chain->checkpoint_seq, up_to);
        else if (chain_ok)
                printf("\nchain: verifies from #1 to #%" PRId64 " (the last rule run of this run)\n", up_to);
        else {
                printf("\nchain: BROKEN at #%" PRId64 ", before the end of this run: %s\n", chain->break_seq, esc_pool(&ep, chain->message));
                printf("DETAIL: %s\n", esc_pool(&ep, chain->detail));
        }
}

int cmd_receipt(Cli *cli) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(receipt_done) Receipt x = {};
        PgError err = {};
        int64_t run_id;
        int r, k;

        if (cli->n_args != 1) {
                log_pg_style(LOG_ERR, NULL, cli->n_args == 0 ? "receipt needs a RUN_ID" : "too many arguments", NULL,
                             "Usage: retentiond receipt RUN_ID [--json] (run numbers are in \"retentiond run\" output and"
                             " retention.runs).");
                return EXIT_USAGE;
        }
        if (!parse_int64(cli->args[0], &run_id)) {
                log_pg_style(LOG_ERR, NULL, "invalid RUN_ID", "A run number is a whole number, e.g. 42.", NULL);
                return EXIT_USAGE;
        }
        _cleanup_policy_ Policy *policy = NULL; /* only with -p, for -d NAME */
        r = cmd_load_policy_if_given(cli, "receipt", &policy);
        if (r)
                return r;
        r = cmd_connect_snapshot(cli, &pg);
        if (r)
                return r;
        k = receipt_read(pg, run_id, &x, &err);
        if (k)
                return cmd_fail(&err, k);
        if (x.found == RECEIPT_PRUNED) {
                _cleanup_free_ char *primary = xasprintf("run %" PRId64 " was pruned by checkpoint %s on %s", run_id,
                                                         x.checkpoint_id, x.checkpoint_made_at);
                _cleanup_free_ char *detail = xasprintf("\"retentiond prune\" removed its rule runs from the audit trail"
                                                        " with the chain up to #%s; the checkpoint keeps their count and"
                                                        " the last digest, not the receipt.",
                                                        x.checkpoint_upto_seq);
                log_pg_style(LOG_ERR, NULL, primary, detail, "The checkpoint is in retention.checkpoints.");
                return EXIT_NOINPUT;
        }
        if (x.found == RECEIPT_NO_SUCH_RUN) {
                _cleanup_free_ char *primary = xasprintf("run %" PRId64 " does not exist", run_id);
                log_pg_style(LOG_ERR, NULL, primary, "The audit trail (retention.runs) has no run with this number.",
                             "Runs are numbered in the output of \"retentiond run\" and in the RUN_ID field of the journal.");
                return EXIT_NOINPUT;
        }
        PgError ig = {};
        (void) pg_exec0(pg, NULL, &ig, "COMMIT");
        pg_error_done(&ig);
        if (cli->json)
                print_json(&x);
        else
                print_text(&x);
        return x.checked && !receipt_chain_ok(&x) ? EXIT_ATTENTION : EXIT_OK;
}
