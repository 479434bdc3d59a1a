/* util.c — allocation, string buffers and small parsers used everywhere.
 * Must stay free of policy and database knowledge. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

void oom(void) {
        static const char msg[] = "retentiond: out of memory\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void) r;
        abort();
}

void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p)
                oom();
        return p;
}

void *xcalloc(size_t n, size_t m) {
        void *p = calloc(n ? n : 1, m ? m : 1);
        if (!p)
                oom();
        return p;
}

void *xrealloc(void *p, size_t n) {
        void *q = realloc(p, n ? n : 1);
        if (!q)
                oom();
        return q;
}

void *xreallocarray(void *p, size_t n, size_t m) {
        if (m && n > SIZE_MAX / m)
                oom();
        return xrealloc(p, n * m);
}

char *xstrdup(const char *s) {
        char *r = strdup(s);
        if (!r)
                oom();
        return r;
}

char *xstrndup(const char *s, size_t n) {
        char *r = strndup(s, n);
        if (!r)
                oom();
        return r;
}

char *xvasprintf(const char *fmt, va_list ap) {
        char *r;
        if (vasprintf(&r, fmt, ap) < 0)
                oom();
        return r;
}

char *xasprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *r = xvasprintf(fmt, ap);
        va_end(ap);
        return r;
}

static void strbuf_reserve(StrBuf *b, size_t extra) {
        if (b->len + extra + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1) {
                if (cap > SIZE_MAX / 2)
                        oom();
                cap *= 2;
        }
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
}

void strbuf_appendn(StrBuf *b, const char *s, size_t n) {
        strbuf_reserve(b, n);
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
}

void strbuf_append(StrBuf *b, const char *s) {
        strbuf_appendn(b, s, strlen(s));
}

void strbuf_appendc(StrBuf *b, char c) {
        strbuf_appendn(b, &c, 1);
}

void strbuf_appendf(StrBuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *s = xvasprintf(fmt, ap);
        va_end(ap);
        strbuf_append(b, s);
}

char *strbuf_steal(StrBuf *b) {
        char *s = b->s ? b->s : xstrdup("");
        *b = (StrBuf) {};
        return s;
}

void strbuf_done(StrBuf *b) {
        free(b->s);
        *b = (StrBuf) {};
}

size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return SIZE_MAX;
        size_t row[65];
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t prev = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t cur = row[j];
                        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        size_t v = prev + cost;
                        if (row[j] + 1 < v)
                                v = row[j] + 1;
                        if (row[j - 1] + 1 < v)
                                v = row[j - 1] + 1;
                        row[j] = v;
                        prev = cur;
                }
        }
        return row[lb];
}

bool parse_int64(const char *s, int64_t *ret) {
        if (!s || !*s)
                return false;
        int64_t v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                int d = *p - '0';
                if (v > (INT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}
