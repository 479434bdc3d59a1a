/* hashkey.c — locate and read the hash method's key and derive the HMAC pads.
 * Must never print, log or copy the key anywhere but into the pads it returns. The pads live in
 * a page of their own that core dumps leave out, and a process that holds a key is not dumpable. */
#include "hashkey.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event.h"
#include "util.h"

/* The page: the pads, and the buffer the file is read into, so that the key itself never
 * touches the stack or the heap. */
typedef struct KeyPage {
        HashKey key;
        unsigned char buf[HASH_KEY_MAX_BYTES + 2];
} KeyPage;

static size_t key_page_size(void) {
        long ps = sysconf(_SC_PAGESIZE);
        size_t n = ps > 0 ? (size_t) ps : 4096;
        while (n < sizeof(KeyPage))
                n *= 2;
        return n;
}

static KeyPage *key_page_new(void) {
        void *p = mmap(NULL, key_page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                oom();
        /* Out of core dumps, and (best effort: RLIMIT_MEMLOCK may forbid it) out of swap. */
        (void) madvise(p, key_page_size(), MADV_DONTDUMP);
        (void) mlock(p, key_page_size());
        return p;
}

static void key_page_free(KeyPage *p) {
        if (!p)
                return;
        explicit_bzero(p, key_page_size());
        (void) munlock(p, key_page_size());
        (void) munmap(p, key_page_size());
}

#if defined(__SANITIZE_ADDRESS__)
#define KEEP_DUMPABLE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_DUMPABLE 1
#endif
#endif

/* No core dump and no ptrace by the same user once a key is in memory. (Not in AddressSanitizer
 * builds: LeakSanitizer stops the process's threads with ptrace from a helper that is not one of
 * them, which a process that is not dumpable refuses.) */
static void no_dumps(void) {
#ifndef KEEP_DUMPABLE
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

static int read_key(const char *path, HashKey **ret) {
        /* A FIFO with no writer must not hang the start: refused as not a regular file. */
        struct stat st;
        int fd = open_regular(path, -ENOTSUP, &st);
        if (fd < 0)
                return fd;
        KeyPage *page = key_page_new();
        unsigned char *buf = page->buf;
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, sizeof(page->buf) - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = -errno;
                        close(fd);
                        key_page_free(page);
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n == sizeof(page->buf))
                        break;
        }
        close(fd);
        /* A key written with `echo` ends in a newline: that newline is not part of it. */
        if (n > 0 && n <= HASH_KEY_MAX_BYTES + 1 && buf[n - 1] == '\n')
                n--;
        if (n < HASH_KEY_MIN_BYTES || n > HASH_KEY_MAX_BYTES) {
                key_page_free(page);
                return -EINVAL;
        }
        HashKey *k = &page->key;
        for (size_t i = 0; i < HASH_PAD_BYTES; i++) {
                unsigned char b = i < n ? buf[i] : 0;
                k->ipad[i] = b ^ 0x36;
                k->opad[i] = b ^ 0x5c;
        }
        explicit_bzero(page->buf, sizeof(page->buf));
        static const unsigned char header[19] = { 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0 };
        unsigned char *c = k->copy_data;
        memcpy(c, header, sizeof(header)); /* signature, flags 0, no header extension */
        c += sizeof(header);
        *c++ = 0, *c++ = 2; /* two fields */
        const unsigned char *pads[] = { k->ipad, k->opad };
        for (size_t f = 0; f < 2; f++) {
                *c++ = 0, *c++ = 0, *c++ = 0, *c++ = HASH_PAD_BYTES;
                memcpy(c, pads[f], HASH_PAD_BYTES);
                c += HASH_PAD_BYTES;
        }
        *c++ = 0xff, *c++ = 0xff; /* trailer */
        assert(c == k->copy_data + HASH_COPY_BYTES);
        k->source = xstrdup(path);
        k->mode = (unsigned) (st.st_mode & 07777);
        no_dumps();
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
        free(k->source);
        k->source = NULL;
        /* The HashKey is the first member of its page. */
        key_page_free((KeyPage *) (void *) k);
}

int hash_key_configured(const char *explicit_path, HashKey **ret) {
        _cleanup_free_ char *where = NULL;
        *ret = NULL;
        int r = hash_key_load(explicit_path, ret, &where);
        if (r == -ENOENT && !where)
                return 0;
        if (r == -EINVAL) {
                _cleanup_free_ char *primary = xasprintf("hash key file \"%s\" has the wrong length", where);
                log_pg_style(LOG_ERR, NULL, primary, "A hash key is 16 to 64 bytes long.",
                             "Create one with: head -c 32 /dev/urandom > FILE");
                return r;
        }
        if (r == -ENOTSUP) {
                struct stat st;
                const char *what = stat(where, &st) < 0 ? "not a regular file"
                                   : S_ISFIFO(st.st_mode)  ? "a FIFO"
                                   : S_ISDIR(st.st_mode)   ? "a directory"
                                   : S_ISCHR(st.st_mode)   ? "a character device"
                                   : S_ISBLK(st.st_mode)   ? "a block device"
                                   : S_ISSOCK(st.st_mode)  ? "a socket"
                                                           : "not a regular file";
                _cleanup_free_ char *primary = xasprintf("hash key file \"%s\" is not a regular file", where);
                _cleanup_free_ char *detail = xasprintf("It is %s; the key is read from a regular file only.", what);
                log_pg_style(LOG_ERR, NULL, primary, detail,
                             "Put the key in a regular file (mode 0600), e.g.: head -c 32 /dev/urandom > FILE");
                return r;
        }
        if (r < 0) {
                _cleanup_free_ char *primary = xasprintf("could not read hash key file \"%s\": %s", where, strerror(-r));
                log_pg_style(LOG_ERR, NULL, primary, NULL, NULL);
                return r;
        }
        if (*ret && ((*ret)->mode & (S_IRGRP | S_IROTH))) {
                _cleanup_free_ char *primary = xasprintf("hash key file \"%s\" is readable by other users", where);
                _cleanup_free_ char *detail = xasprintf("Its mode is %04o: %s may read the key that pseudonymises the data.",
                                                        (*ret)->mode, (*ret)->mode & S_IROTH ? "every user" : "its group");
                _cleanup_free_ char *hint = xasprintf("chmod go-rwx %s", where);
                EventFields ev = EVENT_FIELDS_INIT;
                ev.key_file = where;
                event_emit_pg_style(EVENT_HASH_KEY_READABLE, event_priority(EVENT_HASH_KEY_READABLE), &ev, primary, detail,
                                    hint);
        }
        return 0;
}

int hash_key_for_rules(const char *explicit_path, const Policy *p, char *const *only, size_t n_only, HashKey **ret) {
        bool needed = false;
        *ret = NULL;
        for (size_t i = 0; i < p->n_rules; i++) {
                bool selected = n_only == 0;
                for (size_t j = 0; j < n_only; j++)
                        if (streq(only[j], p->rules[i].name))
                                selected = true;
                if (selected && rule_needs_hash_key(&p->rules[i]))
                        needed = true;
        }
        if (!needed && !explicit_path)
                return 0;
        int r = hash_key_configured(explicit_path, ret);
        if (r == 0 && !*ret) {
                log_pg_style(LOG_ERR, NULL, "the hash method needs a key, and none was found",
                             "A rule of the policy anonymises a column with the hash method.",
                             "Give --hash-key-file FILE, the systemd credential \"hash-key\", or RETENTIOND_HASH_KEY_FILE.");
                return -ENOKEY;
        }
        return r;
}
