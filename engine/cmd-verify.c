/* cmd-verify.c — `retentiond verify`: walk the audit trail's hash chain, recompute every sealed
 * rule run's digest and report the first break, and check every checkpoint of a prune: its
 * signature when the hash key is at hand (checkpoint.c), that it has one, and that it continues
 * the one before. A read-only session and one READ ONLY REPEATABLE READ transaction: it cannot
 * write, and it sees one consistent chain. (With the key, one READ WRITE transaction before it
 * creates the session's temporary table for the key's pads, and nothing else.) */
#include <inttypes.h>
#include <stdio.h>
#include <syslog.h>

#include "chain.h"
#include "checkpoint.h"
#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "json.h"
#include "policy.h"
#include "util.h"

static HashKey *verify_key; /* checks the checkpoints' signatures; NULL: none configured */

static void print_json(FILE *out, const ChainStatus *s, const CheckpointChecks *cc) {
        StrBuf b = {};
        strbuf_appendf(&b, "{\"ok\":%s,\"sealed\":%" PRId64 ",\"last_seq\":%" PRId64 ",\"last_hash\":",
                       s->kind == CHAIN_OK && cc->ok ? "true" : "false", s->checked, s->last_seq);
        if (s->last_hash)
                json_append_string(&b, s->last_hash);
        else
                strbuf_append(&b, "null");
        strbuf_appendf(&b, ",\"head_seq\":%" PRId64 ",\"unsealed\":%" PRId64 ",\"checkpoint\":", s->head_seq, s->unsealed);
        if (s->checkpoint_id > 0) {
                strbuf_appendf(&b, "{\"id\":%" PRId64 ",\"upto_seq\":%" PRId64 ",\"upto_hash\":", s->checkpoint_id,
                               s->checkpoint_seq);
                json_append_string(&b, s->checkpoint_hash ? s->checkpoint_hash : "");
                strbuf_appendf(&b, ",\"pruned\":%" PRId64 "}", s->pruned);
        } else
                strbuf_append(&b, "null");
        strbuf_append(&b, ",\"checkpoints\":[");
        for (size_t i = 0; i < cc->n; i++) {
                const CheckpointCheck *k = &cc->v[i];
                strbuf_appendf(&b, "%s{\"id\":%" PRId64 ",\"first_seq\":", i ? "," : "", k->id);
                if (k->first_seq > 0)
                        strbuf_appendf(&b, "%" PRId64, k->first_seq);
                else
                        strbuf_append(&b, "null");
                strbuf_appendf(&b, ",\"upto_seq\":%" PRId64 ",\"signature\":\"%s\",\"problem\":", k->upto_seq,
                               checkpoint_signature_to_string(k->signature));
                if (k->problem)
                        json_append_string(&b, k->problem);
                else
                        strbuf_append(&b, "null");
                strbuf_append(&b, "}");
        }
        strbuf_append(&b, "]");
        strbuf_append(&b, ",\"break\":");
        if (s->kind == CHAIN_OK)
                strbuf_append(&b, "null");
        else {
                strbuf_append(&b, "{\"kind\":");
                json_append_string(&b, chain_break_kind_to_string(s->kind));
                strbuf_appendf(&b, ",\"seq\":%" PRId64 ",\"rule_run_id\":", s->break_seq);
                if (s->break_rule_run >= 0)
                        strbuf_appendf(&b, "%" PRId64 ",\"run_id\":%" PRId64 ",\"rule\":", s->break_rule_run, s->break_run);
                else
                        strbuf_append(&b, "null,\"run_id\":null,\"rule\":");
                if (s->break_rule)
                        json_append_string(&b, s->break_rule);
                else
                        strbuf_append(&b, "null");
                strbuf_append(&b, ",\"message\":");
                json_append_string(&b, s->message);
                strbuf_append(&b, ",\"detail\":");
                json_append_string(&b, s->detail);
                strbuf_append(&b, "}");
        }
        strbuf_append(&b, "}\n");
        fputs(strbuf_str(&b), out);
        strbuf_done(&b);
}

/* One line per checkpoint (quiet: only those that fail). */
static void print_checkpoints(FILE *out, const CheckpointChecks *cc, bool quiet) {
        for (size_t i = 0; i < cc->n; i++) {
                const CheckpointCheck *k = &cc->v[i];
                bool bad = k->problem || k->signature == CHECKPOINT_SIG_INVALID || k->signature == CHECKPOINT_SIG_UNSIGNED;
                if (quiet && !bad)
                        continue;
                switch (k->signature) {
                case CHECKPOINT_SIG_VALID:
                        fprintf(out, "checkpoint %" PRId64 ": signature valid\n", k->id);
                        break;
                case CHECKPOINT_SIG_UNCHECKED:
                        fprintf(out, "checkpoint %" PRId64 ": signature not checked (no hash key)\n", k->id);
                        break;
                case CHECKPOINT_SIG_INVALID:
                        fprintf(out, "checkpoint %" PRId64 ": signature INVALID\n"
                                     "DETAIL: The checkpoint was changed after its prune signed it, or it was signed with"
                                     " another hash key.\n",
                                k->id);
                        break;
                case CHECKPOINT_SIG_UNSIGNED:
                        fprintf(out, "checkpoint %" PRId64 ": NOT SIGNED\n"
                                     "DETAIL: retentiond prune signs every checkpoint it makes: this one was written by"
                                     " other means, or its signature removed.\n",
                                k->id);
                        break;
                }
                if (k->problem)
                        fprintf(out, "checkpoint %" PRId64 ": OUT OF PLACE: %s\n", k->id, k->problem);
        }
}

static void print_text(FILE *out, const ChainStatus *s) {
        if (s->kind == CHAIN_OK && s->checkpoint_id > 0) {
                if (s->checked == 0)
                        fprintf(out, "chain OK: no sealed rule runs since checkpoint %" PRId64 " (%" PRId64 " pruned up to #%" PRId64 ")\n",
                                s->checkpoint_id, s->pruned, s->checkpoint_seq);
                else
                        fprintf(out, "chain OK: %" PRId64 " sealed rule run%s since checkpoint %" PRId64 " (%" PRId64
                                " pruned up to #%" PRId64 "), last hash %s\n",
                                s->checked, s->checked == 1 ? "" : "s", s->checkpoint_id, s->pruned, s->checkpoint_seq, s->last_hash);
        } else if (s->kind == CHAIN_OK) {
                if (s->checked == 0)
                        fprintf(out, "chain OK: no sealed rule runs yet\n");
                else
                        fprintf(out, "chain OK: %" PRId64 " sealed rule run%s, last hash %s\n", s->checked, s->checked == 1 ? "" : "s",
                               s->last_hash);
        } else {
                fprintf(out, "chain BROKEN at #%" PRId64 ": %s\n", s->break_seq, s->message);
                fprintf(out, "DETAIL: %s\n", s->detail);
                if (s->checked > 0)
                        fprintf(out, "verified before the break: %" PRId64 " sealed rule run%s, #%" PRId64 " to #%" PRId64
                                ", last hash %s\n",
                               s->checked, s->checked == 1 ? "" : "s", s->checkpoint_seq + 1, s->last_seq, s->last_hash);
                else
                        fprintf(out, "verified before the break: nothing\n");
        }
        if (s->unsealed > 0)
                fprintf(out, "%" PRId64 " rule run%s outside the chain: still running, or never finished (not a break)\n",
                       s->unsealed, s->unsealed == 1 ? " is" : "s are");
}

static int verify_database(Cli *cli, const Policy *p, FILE *out, void *userdata) {
        _cleanup_(pg_freep) Pg *pg = NULL;
        _cleanup_(chain_status_done) ChainStatus s = {};
        _cleanup_(checkpoint_checks_done) CheckpointChecks cc = {};
        PgError err = {};
        int r, k;
        (void) p;
        (void) userdata;

        r = cmd_connect(cli, true, &pg);
        if (r)
                return r;
        if (verify_key) {
                /* The session's read-only default is lifted for this one transaction: its only
                 * write is the temporary table of the key's pads. */
                k = pg_exec0(pg, NULL, &err, "BEGIN READ WRITE");
                if (!k)
                        k = checkpoint_key_install(pg, verify_key, &err);
                if (!k)
                        k = pg_exec0(pg, NULL, &err, "COMMIT");
                if (k)
                        return cmd_fail(&err, k);
        }
        k = pg_exec0(pg, NULL, &err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (k)
                return cmd_fail(&err, k);
        k = trail_check_schema(pg, &err);
        if (k)
                return cmd_fail(&err, k);
        k = chain_verify(pg, -1, &s, &err);
        if (k)
                return cmd_fail(&err, k);
        k = checkpoints_check(pg, verify_key != NULL, &cc, &err);
        if (k)
                return cmd_fail(&err, k);
        PgError ig = {};
        (void) pg_exec0(pg, NULL, &ig, "COMMIT");
        pg_error_done(&ig);

        if (cli->json)
                print_json(out, &s, &cc);
        else {
                print_checkpoints(out, &cc, cli->quiet);
                if (!cli->quiet || s.kind != CHAIN_OK)
                        print_text(out, &s);
        }
        return s.kind == CHAIN_OK && cc.ok ? EXIT_OK : EXIT_ATTENTION;
}

/* With -p: -d NAME, or without -d every database of the policy, each its own chain. The hash
 * key, when one is configured, checks the checkpoints' signatures. */
int cmd_verify(Cli *cli) {
        int r = cmd_read_hash_key(cli, &verify_key);
        if (r)
                return r;
        r = cmd_no_policy_each_database(cli, "verify", verify_database);
        hash_key_free(verify_key);
        verify_key = NULL;
        return r;
}
