/* hashkey.h — the secret key of the `hash` anonymisation method: found, read, and turned
 * into HMAC-SHA256 pads. The key never appears in argv, logs, output or the audit trail. */
#pragma once

#include <stdbool.h>

typedef struct HashKey {
        char ipad_hex[2 + 128 + 1]; /* "\x" + 64 bytes hex: key XOR 0x36 */
        char opad_hex[2 + 128 + 1]; /* key XOR 0x5c */
        char *source;               /* where it came from (a path), for messages */
} HashKey;

#define HASH_KEY_MIN_BYTES 16
#define HASH_KEY_MAX_BYTES 64

/* Finds the key: explicit path, else $CREDENTIALS_DIRECTORY/hash-key, else
 * $RETENTIOND_HASH_KEY_FILE. Returns 0; -ENOENT when none is configured; other negative
 * errno on read errors; -EINVAL for a bad length. *where names the file tried (caller frees). */
int hash_key_load(const char *explicit_path, HashKey **ret, char **where);
void hash_key_free(HashKey *k);
