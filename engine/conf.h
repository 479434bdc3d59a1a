/* conf.h — the service's configuration file, /etc/retentiond/retentiond.conf, for the commands run
 * from a terminal: read exactly as systemd reads the units' EnvironmentFile= (KEY=VALUE lines,
 * comments, quotes, backslash escapes and continuations), then put into the process's
 * environment where the caller's environment says nothing, so that `retentiond audit` in a root
 * shell reaches the database the service reaches. Never prints a value: only keys and lines. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct ConfEntry {
        char *key;
        char *value;
        unsigned line; /* 1-based line of the key */
} ConfEntry;

typedef struct Conf {
        ConfEntry *items; /* in file order; a key may repeat (the last one wins) */
        size_t n;
        char **warnings; /* "LINE: ..." for assignments systemd would ignore too; never a value */
        size_t n_warnings;
} Conf;

/* Parses text (len bytes; NUL bytes end nothing, they make the line's assignment invalid) as
 * systemd 252's parse_env_file(): never fails, invalid assignments become warnings. */
void conf_parse(const char *text, size_t len, Conf *ret);
/* Reads and parses the file at path (a regular file of at most 1 MiB). Returns 0 or -errno
 * (-EFBIG when larger, -EINVAL when not a regular file). */
int conf_read(const char *path, Conf *ret);
/* The value of the last assignment of key, or NULL. */
const char *conf_get(const Conf *c, const char *key);
void conf_done(Conf *c);

/* What conf_apply() did, for messages (names only). */
typedef struct ConfApplied {
        size_t n_set;      /* variables taken from the file */
        size_t n_kept;     /* variables of the file the environment already had (the environment wins) */
        bool pgpass;       /* PGPASSFILE was set to DIR/pgpass */
        bool hash_key;     /* RETENTIOND_HASH_KEY_FILE was set to DIR/hash-key */
} ConfApplied;

/* The variable the units pass on their command line; never taken into the environment. */
#define CONF_UNIT_OPTIONS "RETENTIOND_OPTIONS"

/* Puts c (may be NULL) into the environment: every variable the environment does not have yet
 * (present, even empty, means the caller decided), except CONF_UNIT_OPTIONS. Then, in dir (the
 * directory of the configuration, NULL: none) the service's credential files: PGPASSFILE=DIR/pgpass
 * when PGPASSFILE is still unset and that file is readable, and RETENTIOND_HASH_KEY_FILE=DIR/hash-key
 * when neither hash_key_given (--hash-key-file), RETENTIOND_HASH_KEY_FILE nor
 * $CREDENTIALS_DIRECTORY/hash-key names a key and that file is readable. */
void conf_apply(const Conf *c, const char *dir, bool hash_key_given, ConfApplied *ret);
