/* checkpoint.c — sign and check the checkpoints of `retentiond prune`. Reads and writes names,
 * positions, counts and digests only; the key's pads reach the server by COPY alone. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "plan.h"
#include "util.h"

const char *checkpoint_signature_to_string(CheckpointSignature s) {
        switch (s) {
        case CHECKPOINT_SIG_VALID: return "valid";
        case CHECKPOINT_SIG_UNCHECKED: return "unchecked";
        case CHECKPOINT_SIG_INVALID: return "invalid";
        case CHECKPOINT_SIG_UNSIGNED: return "unsigned";
        }
        return "unknown";
}

void checkpoint_checks_done(CheckpointChecks *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n; i++)
                free(c->v[i].problem);
        free(c->v);
        *c = (CheckpointChecks) {};
}

int checkpoint_key_install(Pg *pg, const HashKey *k, PgError *err) {
        PgError e = {};
        int r = pg_exec0(pg, NULL, &e,
                         "CREATE TEMPORARY TABLE IF NOT EXISTS " HASH_KEY_TABLE " (ipad bytea NOT NULL, opad bytea NOT NULL)"
                         " ON COMMIT PRESERVE ROWS");
        if (r == PG_ERR_PERMISSION) {
                _cleanup_free_ char *detail = xasprintf(
                        "%s. The hash key reaches the database only through a temporary table of retentiond's session,"
                        " never as a statement parameter, which the server may log.",
                        e.primary ? e.primary : "permission denied");
                pg_error_set(err, e.sqlstate, detail,
                             "Grant the role the TEMPORARY privilege on the database (GRANT TEMPORARY ON DATABASE ... TO ...).",
                             "checkpoints are signed with the hash key, and the role may not create temporary tables");
                pg_error_done(&e);
                return r;
        }
        if (r) {
                *err = e;
                return r;
        }
        r = pg_exec0(pg, NULL, err, "TRUNCATE " HASH_KEY_TABLE);
        if (r)
                return r;
        return pg_copy_in(pg, err, "COPY " HASH_KEY_TABLE " (ipad, opad) FROM STDIN (FORMAT binary)", k->copy_data,
                          sizeof(k->copy_data));
}

/* HMAC-SHA256 of the checkpoint's message (retention.checkpoint_message()) with the session's pads. */
#define CHECKPOINT_HMAC_SQL "sha256(k.opad || sha256(k.ipad || retention.checkpoint_message(c)))"

int checkpoint_sign(Pg *pg, const char *id, PgError *err) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int r = pg_exec0(pg, NULL, err, "SELECT set_config('search_path', 'pg_catalog, pg_temp', true)");
        if (r)
                return r;
        const char *p[] = { id };
        r = pg_exec(pg, &res, err,
                    "SELECT retention.sign_checkpoint(c.id, " CHECKPOINT_HMAC_SQL ")"
                    " FROM retention.checkpoints c, " HASH_KEY_TABLE " k WHERE c.id = $1::bigint",
                    1, p);
        if (r)
                return r;
        if (PQntuples(res) != 1) {
                pg_error_set(err, NULL, "The session's hash key table or the checkpoint has no row.", NULL,
                             "checkpoint %s was not signed", id);
                return PG_ERR_OTHER;
        }
        return 0;
}

enum { C_ID, C_FIRST, C_UPTO, C_SIGNED, C_VALID, C_PREV_ID, C_PREV_UPTO, C_FOLLOWS_SEQ, C_FOLLOWS_HASH };

/* Each checkpoint in chain order, with the one before it. valid: NULL without a key. */
#define CHECK_SQL(VALID, FROM)                                                                                          \
        "SELECT c.id, c.first_seq, c.upto_seq, c.signature IS NOT NULL, " VALID ","                                     \
        " lag(c.id) OVER w, lag(c.upto_seq) OVER w,"                                                                    \
        " c.first_seq IS NOT DISTINCT FROM coalesce(lag(c.upto_seq) OVER w, 0) + 1,"                                    \
        " c.from_hash IS NOT DISTINCT FROM lag(c.upto_hash) OVER w"                                                     \
        " FROM retention.checkpoints c" FROM " WINDOW w AS (ORDER BY c.upto_seq, c.id) ORDER BY c.upto_seq, c.id"

static const char check_keyed_sql[] =
        CHECK_SQL("c.signature IS NOT DISTINCT FROM " CHECKPOINT_HMAC_SQL, " CROSS JOIN " HASH_KEY_TABLE " k");
static const char check_unkeyed_sql[] = CHECK_SQL("NULL::boolean", "");

static int64_t int_at(const PGresult *r, int row, int col) {
        return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool true_at(const PGresult *r, int row, int col) {
        return !PQgetisnull(r, row, col) && streq(PQgetvalue(r, row, col), "t");
}

int checkpoints_check(Pg *pg, bool keyed, CheckpointChecks *ret, PgError *err) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int r = pg_exec0(pg, NULL, err, "SELECT set_config('search_path', 'pg_catalog, pg_temp', true)");
        if (r)
                return r;
        r = pg_exec0(pg, &res, err, keyed ? check_keyed_sql : check_unkeyed_sql);
        if (r)
                return r;
        CheckpointChecks c = { .keyed = keyed, .ok = true };
        int n = PQntuples(res);
        c.v = xcalloc((size_t) n + 1, sizeof(CheckpointCheck));
        for (int i = 0; i < n; i++) {
                CheckpointCheck *k = &c.v[c.n++];
                k->id = int_at(res, i, C_ID);
                k->first_seq = int_at(res, i, C_FIRST);
                k->upto_seq = int_at(res, i, C_UPTO);
                k->signature = !true_at(res, i, C_SIGNED) ? CHECKPOINT_SIG_UNSIGNED
                               : !keyed                   ? CHECKPOINT_SIG_UNCHECKED
                               : true_at(res, i, C_VALID) ? CHECKPOINT_SIG_VALID
                                                          : CHECKPOINT_SIG_INVALID;
                /* The range and the hash it continues from were recorded since schema 7. */
                if (!PQgetisnull(res, i, C_FIRST) && !true_at(res, i, C_FOLLOWS_SEQ)) {
                        if (PQgetisnull(res, i, C_PREV_ID))
                                k->problem = xasprintf("it starts at #%" PRId64 ", but no checkpoint before it ends at #%" PRId64,
                                                       k->first_seq, k->first_seq - 1);
                        else
                                k->problem = xasprintf("it starts at #%" PRId64 ", but checkpoint %" PRId64 " before it ends at #%" PRId64,
                                                       k->first_seq, int_at(res, i, C_PREV_ID), int_at(res, i, C_PREV_UPTO));
                } else if (!PQgetisnull(res, i, C_FIRST) && !true_at(res, i, C_FOLLOWS_HASH))
                        k->problem = PQgetisnull(res, i, C_PREV_ID)
                                             ? xstrdup("its from_hash is not that of the start of the chain")
                                             : xasprintf("its from_hash is not the upto_hash of checkpoint %" PRId64,
                                                         int_at(res, i, C_PREV_ID));
                if (k->problem || k->signature == CHECKPOINT_SIG_INVALID || k->signature == CHECKPOINT_SIG_UNSIGNED)
                        c.ok = false;
        }
        *ret = c;
        return 0;
}
