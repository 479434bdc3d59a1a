/* hashkey.c — locate and read the hash method's key and derive the HMAC pads.
 * Must never print, log or copy the key anywhere but into the pads it returns. */
#include "hashkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static void explicit_bzero_buf(void *p, size_t n) {
        explicit_bzero(p, n);
}

static int read_key(const char *path, HashKey **ret) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        unsigned char buf[HASH_KEY_MAX_BYTES + 2];
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, sizeof(buf) - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = -errno;
                        close(fd);
                        explicit_bzero_buf(buf, sizeof(buf));
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n == sizeof(buf))
                        break;
        }
        close(fd);
        /* A key written with `echo` ends in a newline: that newline is not part of it. */
        if (n > 0 && n <= HASH_KEY_MAX_BYTES + 1 && buf[n - 1] == '\n')
                n--;
        if (n < HASH_KEY_MIN_BYTES || n > HASH_KEY_MAX_BYTES) {
                explicit_bzero_buf(buf, sizeof(buf));
                return -EINVAL;
        }
        HashKey *k = xcalloc(1, sizeof(HashKey));
        static const char hex[] = "0123456789abcdef";
        k->ipad_hex[0] = k->opad_hex[0] = '\\';
        k->ipad_hex[1] = k->opad_hex[1] = 'x';
        for (size_t i = 0; i < 64; i++) {
                unsigned char b = i < n ? buf[i] : 0;
                unsigned char ib = b ^ 0x36, ob = b ^ 0x5c;
                k->ipad_hex[2 + 2 * i] = hex[ib >> 4];
                k->ipad_hex[3 + 2 * i] = hex[ib & 15];
                k->opad_hex[2 + 2 * i] = hex[ob >> 4];
                k->opad_hex[3 + 2 * i] = hex[ob & 15];
        }
        explicit_bzero_buf(buf, sizeof(buf));
        k->source = xstrdup(path);
        *ret = k;
        return 0;
}

int hash_key_load(const char *explicit_path, HashKey **ret, char **where) {
        _cleanup_free_ char *path = NULL;
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        const char *env = getenv("RETENTIOND_HASH_KEY_FILE");

        if (explicit_path)
                path = xstrdup(explicit_path);
        else if (creds && *creds) {
                path = xasprintf("%s/hash-key", creds);
                if (access(path, F_OK) < 0 && env && *env) {
                        free(path);
                        path = xstrdup(env);
                }
        } else if (env && *env)
                path = xstrdup(env);
        if (!path) {
                if (where)
                        *where = NULL;
                return -ENOENT;
        }
        if (where)
                *where = xstrdup(path);
        return read_key(path, ret);
}

void hash_key_free(HashKey *k) {
        if (!k)
                return;
        explicit_bzero(k->ipad_hex, sizeof(k->ipad_hex));
        explicit_bzero(k->opad_hex, sizeof(k->opad_hex));
        free(k->source);
        free(k);
}
