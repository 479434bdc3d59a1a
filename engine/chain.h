/* chain.h — the audit trail's hash chain (sql/retention/002-receipts.sql): walk it, recompute
 * every sealed rule run's digest in the database (retention.rule_run_digest, the same function
 * that sealed it) and report the first break. Reads only. */
#pragma once

#include <stdint.h>

#include "pg.h"

typedef enum ChainBreakKind {
        CHAIN_OK,
        CHAIN_CHANGED,     /* a sealed rule run no longer matches its digest: edited after the seal */
        CHAIN_MISSING,     /* positions missing between two sealed rule runs: deleted (or unsealed) */
        CHAIN_RELINKED,    /* prev_hash is not the previous rule run's hash: rewritten or reordered */
        CHAIN_BEYOND_HEAD, /* a rule run claims a position after the chain's head: not sealed by retentiond */
        CHAIN_TAIL,        /* the head is past the last sealed rule run, or does not match it */
} ChainBreakKind;

const char *chain_break_kind_to_string(ChainBreakKind k); /* "ok", "changed", "missing", ... */

typedef struct ChainStatus {
        int64_t checked;   /* sealed rule runs that verify, from #1 (or the checkpoint) up to the break (or the end) */
        int64_t last_seq;  /* position of the last of them; 0: none */
        char *last_hash;   /* its hash, lowercase hex; NULL: none */
        int64_t head_seq;  /* retention.chain_head */
        int64_t unsealed;  /* rule runs outside the chain: still running, or never finished */
        int64_t checkpoint_id;   /* the last checkpoint of `retentiond prune` (retention.checkpoints); 0: none */
        int64_t checkpoint_seq;  /* its upto_seq: #1 to here were pruned, the chain kept starts after it */
        char *checkpoint_hash;   /* its upto_hash, lowercase hex */
        int64_t pruned;          /* rule runs pruned by every checkpoint */

        ChainBreakKind kind;
        int64_t break_seq;       /* position where the chain breaks */
        int64_t break_rule_run;  /* the rule run there (-1: none, e.g. it is missing) */
        int64_t break_run;       /* its run (-1: none) */
        char *break_rule;        /* its rule name (NULL: none) */
        char *message;           /* the break in one sentence (NULL when OK) */
        char *detail;            /* what was found there (NULL when OK) */
} ChainStatus;

void chain_status_done(ChainStatus *s);

/* Walks the chain from #1 in seq order, up to position up_to (< 0: the whole chain, and then
 * the head too), inside the caller's transaction (verify uses a READ ONLY REPEATABLE READ one),
 * whose search_path it sets to pg_catalog (SET LOCAL).
 * Returns 0 with *ret filled (ret->kind says whether it verifies), or a PgErrorClass or
 * OUTCOME_NO_CHAIN_HEAD with *err. */
int chain_verify(Pg *pg, int64_t up_to, ChainStatus *ret, PgError *err);
