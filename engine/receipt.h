/* receipt.h — a deletion receipt from the audit trail: one run, its rule runs with their counts
 * (per hold, per referencing table, per cascade), and whether the hash chain verifies up to the
 * last rule run of that run. Reads only, inside the caller's READ ONLY REPEATABLE READ
 * transaction; never changes the trail and never prints (cmd-receipt.c does). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "chain.h"
#include "pg.h"

/* Columns of Receipt.run (one row), text. */
enum {
        RECEIPT_RUN_HOST,
        RECEIPT_RUN_VERSION,
        RECEIPT_RUN_MODE,
        RECEIPT_RUN_STARTED,
        RECEIPT_RUN_FINISHED,
        RECEIPT_RUN_OUTCOME,
        RECEIPT_RUN_RULES_TOTAL,
        RECEIPT_RUN_RULES_FAILED,
};

/* Columns of Receipt.rule_runs (one row per rule run, by id), text. */
enum {
        RR_ID, RR_RULE, RR_CLAUSE, RR_TABLE, RR_ACTION, RR_CUTOFF, RR_STARTED, RR_FINISHED,
        RR_DELETED, RR_ANONYMISED, RR_HELD, RR_SKIPPED, RR_SKIPPED_LOCKED, RR_SKIPPED_FK, RR_OVERDUE,
        RR_PARTITIONS, RR_BATCHES, RR_OUTCOME, RR_SQLSTATE, RR_ERROR, RR_SEQ, RR_PREV_HASH, RR_HASH,
        RR_SEALED_AT, RR_SKIPPED_REFUSED, RR_SKIPPED_UNFINISHED,
        RR_DIGEST_FORMAT, /* NULL: recorded before schema version 5 */
};

typedef enum ReceiptFound {
        RECEIPT_FOUND,
        RECEIPT_PRUNED,      /* retentiond prune removed it: see checkpoint_* */
        RECEIPT_NO_SUCH_RUN,
} ReceiptFound;

typedef struct Receipt {
        int64_t run_id;
        ReceiptFound found;
        PGresult *run;       /* RECEIPT_RUN_* */
        PGresult *rule_runs; /* RR_* */
        PGresult *holds;     /* (rule_run_id, hold, rows), by rule run and hold name (bytewise) */
        PGresult *fks;       /* (rule_run_id, referencing_table, rows), likewise */
        PGresult *cascades;  /* (rule_run_id, table, rows_deleted, rows_nulled), likewise */
        bool checked;        /* a rule run of it is sealed: the chain was verified up to up_to */
        int64_t up_to;       /* the last seq of its rule runs; 0: none sealed */
        ChainStatus chain;
        char *checkpoint_id, *checkpoint_made_at, *checkpoint_upto_seq; /* RECEIPT_PRUNED */
} Receipt;

/* Reads the receipt of run run_id and verifies the chain up to it. Returns 0 (ret->found says
 * whether there is one) or a PgErrorClass with *err. */
int receipt_read(Pg *pg, int64_t run_id, Receipt *ret, PgError *err);
void receipt_done(Receipt *r);
/* The chain verifies up to the last rule run of the run. */
bool receipt_chain_ok(const Receipt *r);
/* A sealed rule run at seq lies in the verified part of the chain. */
bool receipt_seq_verified(const Receipt *r, int64_t seq);
