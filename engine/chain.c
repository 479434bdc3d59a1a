/* chain.c — verify the audit trail's hash chain. Every digest is recomputed by PostgreSQL with
 * retention.rule_run_digest(), the one function the seal used, so the engine and the check can
 * never disagree on the serialization. Reads only: names, counts, positions and digests. */
#include "chain.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

const char *chain_break_kind_to_string(ChainBreakKind k) {
        switch (k) {
        case CHAIN_OK: return "ok";
        case CHAIN_CHANGED: return "changed";
        case CHAIN_MISSING: return "missing";
        case CHAIN_RELINKED: return "relinked";
        case CHAIN_BEYOND_HEAD: return "beyond-head";
        case CHAIN_TAIL: return "tail";
        }
        return "unknown";
}

void chain_status_done(ChainStatus *s) {
        if (!s)
                return;
        free(s->last_hash);
        free(s->break_rule);
        free(s->checkpoint_hash);
        free(s->message);
        free(s->detail);
        *s = (ChainStatus) {};
}

static int64_t int_at(const PGresult *r, int row, int col) {
        if (PQgetisnull(r, row, col))
                return 0;
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static char *str_at(const PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

/* The first sealed rule run, in seq order, that does not follow from the one before: a gap, a
 * repeated position, a digest that no longer matches, or a prev_hash that is not the previous
 * rule run's hash. */
static const char walk_sql[] =
        "WITH c AS ("
        " SELECT r.id, r.run_id, r.rule, r.seq,"
        "  r.hash IS NOT DISTINCT FROM retention.rule_run_digest(r) AS intact,"
        "  r.prev_hash IS NOT DISTINCT FROM CASE WHEN lag(r.seq) OVER w IS NULL THEN decode($3, 'hex')"
        "                                        ELSE lag(r.hash) OVER w END AS linked,"
        "  coalesce(lag(r.seq) OVER w, $2::bigint) AS prev_seq,"
        "  lag(r.id) OVER w AS prev_id"
        " FROM retention.rule_runs r"
        " WHERE r.seq IS NOT NULL AND ($1::bigint < 0 OR r.seq <= $1::bigint)"
        " WINDOW w AS (ORDER BY r.seq))"
        " SELECT id, run_id, rule, seq, prev_seq, prev_id, intact, linked FROM c"
        " WHERE seq <> prev_seq + 1 OR NOT intact OR NOT linked"
        " ORDER BY seq LIMIT 1";

/* The last checkpoint of a prune (retention.checkpoints): the chain kept starts after it. */
static const char checkpoint_sql[] =
        "SELECT id, upto_seq, encode(upto_hash, 'hex'), (SELECT sum(rule_runs_pruned) FROM retention.checkpoints)"
        " FROM retention.checkpoints ORDER BY upto_seq DESC, id DESC LIMIT 1";

static const char summary_sql[] =
        "SELECT (SELECT count(*) FROM retention.rule_runs WHERE seq < $1::bigint),"
        " (SELECT count(*) FROM retention.rule_runs WHERE seq IS NULL),"
        " coalesce(l.seq, $2::bigint), coalesce(encode(l.hash, 'hex'), $3), h.seq, encode(h.hash, 'hex')"
        " FROM retention.chain_head h"
        " LEFT JOIN LATERAL (SELECT seq, hash FROM retention.rule_runs WHERE seq < $1::bigint"
        "                    ORDER BY seq DESC LIMIT 1) l ON true";

static void set_break_row(ChainStatus *s, const PGresult *r, int id_col) {
        s->break_rule_run = int_at(r, 0, id_col);
        s->break_run = int_at(r, 0, id_col + 1);
        free(s->break_rule);
        s->break_rule = str_at(r, 0, id_col + 2);
}

int chain_verify(Pg *pg, int64_t up_to, ChainStatus *ret, PgError *err) {
        ChainStatus s = { .break_rule_run = -1, .break_run = -1 };
        _cleanup_pgresult_ PGresult *w = NULL, *sum = NULL;
        char lim[32], bound[32];
        int k;

        /* Only pg_catalog's operators and functions, whatever the role's search_path holds. */
        k = pg_exec0(pg, NULL, err, "SELECT set_config('search_path', 'pg_catalog, pg_temp', true)");
        if (k)
                return k;
        _cleanup_pgresult_ PGresult *cp = NULL;
        k = pg_exec(pg, &cp, err, checkpoint_sql, 0, NULL);
        if (k)
                return k;
        char base_seq[32] = "0";
        if (PQntuples(cp) == 1) {
                s.checkpoint_id = int_at(cp, 0, 0);
                s.checkpoint_seq = int_at(cp, 0, 1);
                s.checkpoint_hash = str_at(cp, 0, 2);
                s.pruned = int_at(cp, 0, 3);
                snprintf(base_seq, sizeof(base_seq), "%" PRId64, s.checkpoint_seq);
        }
        snprintf(lim, sizeof(lim), "%" PRId64, up_to < 0 ? (int64_t) -1 : up_to);
        const char *wp[] = { lim, base_seq, s.checkpoint_hash };
        k = pg_exec(pg, &w, err, walk_sql, 3, wp);
        if (k) {
                chain_status_done(&s);
                return k;
        }

        if (PQntuples(w) == 1) {
                int64_t seq = int_at(w, 0, 3), prev_seq = int_at(w, 0, 4), prev_id = int_at(w, 0, 5);
                bool intact = streq(PQgetvalue(w, 0, 6), "t"), linked = streq(PQgetvalue(w, 0, 7), "t");
                set_break_row(&s, w, 0);
                s.break_seq = seq;
                const char *rule = s.break_rule ? s.break_rule : "?";
                bool first = PQgetisnull(w, 0, 5) && s.checkpoint_id > 0; /* the first rule run kept by a prune */
                if (first && seq <= prev_seq) {
                        s.kind = CHAIN_RELINKED;
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) is at #%" PRId64
                                              ", in the part of the chain checkpoint %" PRId64 " pruned",
                                              s.break_rule_run, s.break_run, rule, seq, s.checkpoint_id);
                        s.detail = xasprintf("Checkpoint %" PRId64 " removed #1 to #%" PRId64
                                             ": this rule run was not sealed by retentiond, or the checkpoint was changed.",
                                             s.checkpoint_id, s.checkpoint_seq);
                } else if (first && seq > prev_seq + 1) {
                        s.kind = CHAIN_MISSING;
                        s.break_seq = prev_seq + 1;
                        s.message = xasprintf("the rule runs sealed after checkpoint %" PRId64 " (#%" PRId64 ") are missing",
                                              s.checkpoint_id, prev_seq);
                        s.detail = xasprintf("The chain kept starts at #%" PRId64 " (rule run %" PRId64 "), not at #%" PRId64
                                             ": rule runs were deleted, or the checkpoint was changed.",
                                             seq, s.break_rule_run, prev_seq + 1);
                        s.break_rule_run = -1;
                        s.break_run = -1;
                        free(s.break_rule);
                        s.break_rule = NULL;
                } else if (first && intact && !linked) {
                        s.kind = CHAIN_RELINKED;
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) does not chain to checkpoint %" PRId64,
                                              s.break_rule_run, s.break_run, rule, s.checkpoint_id);
                        s.detail = xasprintf("Its prev_hash is not the upto_hash of checkpoint %" PRId64 " (#%" PRId64
                                             "): the checkpoint was changed after the prune, or the rule run was replaced.",
                                             s.checkpoint_id, s.checkpoint_seq);
                } else if (seq <= prev_seq) {
                        s.kind = CHAIN_RELINKED;
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) repeats position #%" PRId64
                                              " of the chain",
                                              s.break_rule_run, s.break_run, rule, seq);
                        s.detail = xasprintf("Rule run %" PRId64 " is sealed at #%" PRId64 " too: the chain was reordered.",
                                             prev_id, prev_seq);
                } else if (seq > prev_seq + 1) {
                        int64_t n = seq - prev_seq - 1;
                        s.kind = CHAIN_MISSING;
                        s.break_seq = prev_seq + 1;
                        if (prev_seq == 0)
                                s.message = n == 1 ? xstrdup("the first sealed rule run (#1) is missing")
                                                   : xasprintf("the first %" PRId64 " sealed rule runs (#1 to #%" PRId64 ") are missing",
                                                               n, seq - 1);
                        else if (n == 1)
                                s.message = xasprintf("the rule run sealed after #%" PRId64 " is missing", prev_seq);
                        else
                                s.message = xasprintf("the %" PRId64 " rule runs sealed after #%" PRId64 " are missing", n, prev_seq);
                        s.detail = prev_seq == 0
                                ? xasprintf("The chain starts at #%" PRId64 " (rule run %" PRId64 "): earlier rule runs were"
                                            " deleted, or their seal was removed.",
                                            seq, s.break_rule_run)
                                : xasprintf("The chain goes from #%" PRId64 " (rule run %" PRId64 ") to #%" PRId64
                                            " (rule run %" PRId64 "): the rule runs in between were deleted, or their seal"
                                            " was removed.",
                                            prev_seq, prev_id, seq, s.break_rule_run);
                        /* The break is the missing position, not the rule run after it. */
                        s.break_rule_run = -1;
                        s.break_run = -1;
                        free(s.break_rule);
                        s.break_rule = NULL;
                } else if (!intact) {
                        s.kind = CHAIN_CHANGED;
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) was changed after it was sealed",
                                              s.break_rule_run, s.break_run, rule);
                        s.detail = xasprintf("Its fields, its per-hold or per-table counts, or its run's host, version, mode"
                                             " or start no longer match the digest sealed at #%" PRId64 ".",
                                             seq);
                } else {
                        (void) linked;
                        s.kind = CHAIN_RELINKED;
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) does not chain to the rule run"
                                              " sealed before it",
                                              s.break_rule_run, s.break_run, rule);
                        s.detail = xasprintf("Its prev_hash is not the hash of #%" PRId64 " (rule run %" PRId64
                                             "): #%" PRId64 " was replaced, or its digest recomputed, after #%" PRId64
                                             " was sealed.",
                                             prev_seq, prev_id, prev_seq, seq);
                }
        }

        /* Everything before the break (or the end) verifies. */
        int64_t end = s.kind != CHAIN_OK ? s.break_seq : up_to >= 0 ? up_to + 1 : INT64_MAX;
        snprintf(bound, sizeof(bound), "%" PRId64, end);
        const char *sp[] = { bound, base_seq, s.checkpoint_hash };
        k = pg_exec(pg, &sum, err, summary_sql, 3, sp);
        if (k) {
                chain_status_done(&s);
                return k;
        }
        if (PQntuples(sum) != 1) {
                chain_status_done(&s);
                pg_error_set(err, NULL, "The table retention.chain_head has no row.",
                             "Run \"retentiond migrate\"; if it says there is nothing to do, the table was emptied on purpose.",
                             "the hash chain has no head");
                return OUTCOME_NO_CHAIN_HEAD;
        }
        s.checked = int_at(sum, 0, 0);
        s.unsealed = int_at(sum, 0, 1);
        s.last_seq = int_at(sum, 0, 2);
        s.last_hash = str_at(sum, 0, 3);
        s.head_seq = int_at(sum, 0, 4);
        _cleanup_free_ char *head_hash = str_at(sum, 0, 5);

        if (s.kind == CHAIN_OK && up_to < 0) {
                if (s.head_seq > s.last_seq) {
                        int64_t n = s.head_seq - s.last_seq;
                        s.kind = CHAIN_TAIL;
                        s.break_seq = s.last_seq + 1;
                        s.message = n == 1 ? xasprintf("the rule run sealed after #%" PRId64 " is missing", s.last_seq)
                                           : xasprintf("the %" PRId64 " rule runs sealed after #%" PRId64 " are missing", n,
                                                       s.last_seq);
                        s.detail = xasprintf("The chain's head (retention.chain_head) is at #%" PRId64
                                             ": the last rule runs were deleted, or their seal was removed.",
                                             s.head_seq);
                } else if (s.head_seq < s.last_seq) {
                        _cleanup_pgresult_ PGresult *b = NULL;
                        char hs[32];
                        snprintf(hs, sizeof(hs), "%" PRId64, s.head_seq);
                        const char *bp[] = { hs };
                        k = pg_exec(pg, &b, err,
                                    "SELECT id, run_id, rule, seq FROM retention.rule_runs WHERE seq > $1::bigint"
                                    " ORDER BY seq LIMIT 1",
                                    1, bp);
                        if (k) {
                                chain_status_done(&s);
                                return k;
                        }
                        s.kind = CHAIN_BEYOND_HEAD;
                        set_break_row(&s, b, 0);
                        s.break_seq = int_at(b, 0, 3);
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s) claims position #%" PRId64
                                              ", after the chain's head",
                                              s.break_rule_run, s.break_run, s.break_rule ? s.break_rule : "?", s.break_seq);
                        s.detail = xasprintf("The chain's head (retention.chain_head) is at #%" PRId64
                                             ": this rule run was not sealed by retentiond.",
                                             s.head_seq);
                } else if (!streq_ptr(head_hash, s.last_hash)) {
                        _cleanup_pgresult_ PGresult *b = NULL;
                        char ls[32];
                        snprintf(ls, sizeof(ls), "%" PRId64, s.last_seq);
                        const char *bp[] = { ls };
                        k = pg_exec(pg, &b, err, "SELECT id, run_id, rule FROM retention.rule_runs WHERE seq = $1::bigint", 1, bp);
                        if (k) {
                                chain_status_done(&s);
                                return k;
                        }
                        s.kind = CHAIN_TAIL;
                        s.break_seq = s.last_seq;
                        if (PQntuples(b) == 1)
                                set_break_row(&s, b, 0);
                        if (PQntuples(b) == 0 && s.checkpoint_id > 0 && s.last_seq == s.checkpoint_seq) {
                                s.message = xasprintf("checkpoint %" PRId64 " does not match the chain's head", s.checkpoint_id);
                                s.detail = xasprintf("The head (retention.chain_head) holds another digest for #%" PRId64
                                                     ", the last rule run the checkpoint pruned: the checkpoint was changed.",
                                                     s.last_seq);
                                *ret = s;
                                return 0;
                        }
                        s.message = xasprintf("rule run %" PRId64 " (run %" PRId64 ", rule %s), the last sealed, does not match"
                                              " the chain's head",
                                              s.break_rule_run, s.break_run, s.break_rule ? s.break_rule : "?");
                        s.detail = xasprintf("The head (retention.chain_head) holds another digest for #%" PRId64
                                             ": the rule run was replaced and its digest recomputed.",
                                             s.last_seq);
                }
                if (s.kind != CHAIN_OK && s.break_seq <= s.last_seq) {
                        /* The break is inside what the walk accepted: the verified part ends before it. */
                        _cleanup_pgresult_ PGresult *p = NULL;
                        snprintf(bound, sizeof(bound), "%" PRId64, s.break_seq);
                        k = pg_exec(pg, &p, err, summary_sql, 3, sp);
                        if (k) {
                                chain_status_done(&s);
                                return k;
                        }
                        s.checked = int_at(p, 0, 0);
                        s.last_seq = int_at(p, 0, 2);
                        free(s.last_hash);
                        s.last_hash = str_at(p, 0, 3);
                }
        }
        *ret = s;
        return 0;
}
