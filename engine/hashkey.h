/* hashkey.h — the secret key of the `hash` anonymisation method: found, read, and turned
 * into HMAC-SHA256 pads. The key never appears in argv, logs, output, the audit trail, a
 * statement's text or parameters (which the server may log), or a core dump. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define HASH_KEY_MIN_BYTES 16
#define HASH_KEY_MAX_BYTES 64
#define HASH_PAD_BYTES 64 /* SHA-256's block */
/* The pads as the whole input of COPY (ipad, opad) FROM STDIN (FORMAT binary): the header (11 +
 * 4 + 4 bytes), one row (2 + 2 × (4 + 64)) and the trailer (2). */
#define HASH_COPY_BYTES (19 + 2 + 2 * (4 + HASH_PAD_BYTES) + 2)

/* Lives in a page of its own (mmap), excluded from core dumps (MADV_DONTDUMP) and zeroed when
 * freed. Only the pads are kept, never the key itself. */
typedef struct HashKey {
        unsigned char ipad[HASH_PAD_BYTES]; /* key XOR 0x36 */
        unsigned char opad[HASH_PAD_BYTES]; /* key XOR 0x5c */
        unsigned char copy_data[HASH_COPY_BYTES]; /* the two, as binary COPY input */
        char *source;                       /* where it came from (a path), for messages; malloc'd */
        unsigned mode;                      /* the file's permission bits (a warning when group or others may read) */
} HashKey;

/* Finds the key: explicit path, else $CREDENTIALS_DIRECTORY/hash-key, else
 * $RETENTIOND_HASH_KEY_FILE, and reads it. The file is opened without blocking (O_NONBLOCK: a
 * FIFO cannot hang the start) and must be a regular file (a symbolic link to one is followed).
 * Returns 0; -ENOENT when none is configured (*where NULL) or the file does not exist; -EINVAL
 * for a bad length; -ENOTSUP when it is not a regular file (a FIFO, a device, a directory);
 * other negative errno on read errors. *where names the file tried (caller frees).
 * Once a key is loaded, the process is no longer dumpable (prctl PR_SET_DUMPABLE 0). */
int hash_key_load(const char *explicit_path, HashKey **ret, char **where);
void hash_key_free(HashKey *k);

/* The key if one is configured (explicit_path, else the credential, else the environment, as
 * hash_key_load()): 0 with *ret NULL when none is. What is wrong is logged (PostgreSQL style;
 * a key that other users may read: a warning event). Returns 0 or hash_key_load()'s negative
 * errno (-ENOENT: a configured file that does not exist). */
int hash_key_configured(const char *explicit_path, HashKey **ret);
/* The key the rules need: those named by only (n_only 0: every rule), when one of them uses the
 * hash method, or whenever explicit_path is given. 0 with *ret NULL when none is needed;
 * -ENOKEY (logged) when one is needed and none is configured; else as hash_key_configured(). */
int hash_key_for_rules(const char *explicit_path, const Policy *p, char *const *only, size_t n_only, HashKey **ret);
