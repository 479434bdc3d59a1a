/* checkpoint.h — signed checkpoints of `retentiond prune` (sql/retention/007-checkpoint-signature.sql):
 * the hash key's pads into the session, a checkpoint signed in its prune's transaction, and every
 * checkpoint's signature and place in the series checked by `retentiond verify`. The HMAC is
 * computed by PostgreSQL in the caller's session, from the pads in a temporary table
 * (HASH_KEY_TABLE, as the `hash` method's): the key never appears in a statement's text or
 * parameters, a log, the output or the audit trail. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashkey.h"
#include "pg.h"

/* Creates HASH_KEY_TABLE in this session if needed (kept until the session ends or it is
 * dropped) and COPYs the key's pads into it, replacing any. Needs a read-write transaction (the
 * caller's, or the implicit one of each statement) and the TEMPORARY privilege. Returns 0 or a
 * PgErrorClass with *err filled. */
int checkpoint_key_install(Pg *pg, const HashKey *k, PgError *err);

/* Signs checkpoint `id`, which this transaction's retention.prune() just made, with the pads of
 * HASH_KEY_TABLE. Returns 0 or a PgErrorClass with *err filled. */
int checkpoint_sign(Pg *pg, const char *id, PgError *err);

typedef enum CheckpointSignature {
        CHECKPOINT_SIG_VALID,     /* it matches, with the key given */
        CHECKPOINT_SIG_UNCHECKED, /* signed, and no key to check it with */
        CHECKPOINT_SIG_INVALID,   /* it does not match: changed after the prune, or signed with another key */
        CHECKPOINT_SIG_UNSIGNED,  /* no signature at all */
} CheckpointSignature;

const char *checkpoint_signature_to_string(CheckpointSignature s); /* "valid", "unchecked", ... */

typedef struct CheckpointCheck {
        int64_t id;
        int64_t first_seq; /* 0: not recorded (a checkpoint of schema 6) */
        int64_t upto_seq;
        CheckpointSignature signature;
        char *problem; /* how it does not follow the checkpoint before it; NULL: it does */
} CheckpointCheck;

typedef struct CheckpointChecks {
        CheckpointCheck *v; /* in chain order (upto_seq) */
        size_t n;
        bool keyed;         /* checked with a key */
        bool ok;            /* every signature valid (or unchecked) and every checkpoint in place */
} CheckpointChecks;

void checkpoint_checks_done(CheckpointChecks *c);

/* Checks every checkpoint, inside the caller's transaction (verify's READ ONLY one): its
 * signature against the pads of HASH_KEY_TABLE when keyed (installed by
 * checkpoint_key_install() before), else only that there is one; and that each continues where
 * the one before ended (first_seq, from_hash). Sets search_path to pg_catalog (SET LOCAL).
 * Returns 0 with *ret filled, or a PgErrorClass with *err filled. */
int checkpoints_check(Pg *pg, bool keyed, CheckpointChecks *ret, PgError *err);
