/* util.c — allocation, string buffers and small parsers used everywhere.
 * Must stay free of policy and database knowledge. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
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
        if (b->s && b->len + extra + 1 <= b->cap) /* b->s: a StrBuf {} has none, whatever cap says */
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

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
        unsigned c = s[0];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || len > n)
                return 0;
        for (size_t i = 1; i < len; i++)
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
        /* overlong forms, surrogates, beyond U+10FFFF */
        if (len == 2 && c < 0xC2)
                return 0;
        if (len == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
                return 0;
        if (len == 4 && ((c == 0xF0 && s[1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[1] >= 0x90)))
                return 0;
        return len;
}

static bool is_c1(const unsigned char *p, size_t n) {
        return n >= 2 && p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F;
}

bool text_find_control(const char *s, const char *allow, size_t *offset) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strlen(s);
        for (size_t i = 0; i < n; i++) {
                bool c0 = p[i] < 0x20 || p[i] == 0x7F;
                if ((c0 && !(p[i] && allow && strchr(allow, p[i]))) || is_c1(p + i, n - i)) {
                        if (offset)
                                *offset = i;
                        return true;
                }
        }
        return false;
}

void strbuf_append_escaped(StrBuf *b, const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
                unsigned c = p[i];
                if (c == '\n')
                        strbuf_append(b, "\\n");
                else if (c == '\r')
                        strbuf_append(b, "\\r");
                else if (c == '\t')
                        strbuf_append(b, "\\t");
                else if (c < 0x20 || c == 0x7F)
                        strbuf_appendf(b, "\\x%02x", c);
                else if (c < 0x80)
                        strbuf_appendc(b, (char) c);
                else {
                        size_t len = utf8_seq(p + i, n - i);
                        if (len == 0)
                                strbuf_appendf(b, "\\x%02x", c);
                        else if (is_c1(p + i, len))
                                strbuf_appendf(b, "\\u%04x", p[i + 1]);
                        else
                                strbuf_appendn(b, s + i, len);
                        i += len ? len : 1;
                        continue;
                }
                i++;
        }
}

char *text_escape(const char *s) {
        if (!s)
                return NULL;
        StrBuf b = {};
        strbuf_append_escaped(&b, s);
        return strbuf_steal(&b);
}

size_t text_width(const char *s) {
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *) s; p && *p; p++)
                n += (*p & 0xC0) != 0x80;
        return n;
}

const char *esc_pool(EscPool *p, const char *s) {
        if (!s)
                return NULL;
        p->v = xreallocarray(p->v, p->n + 1, sizeof(char *));
        return p->v[p->n++] = text_escape(s);
}

void esc_pool_done(EscPool *p) {
        for (size_t i = 0; i < p->n; i++)
                free(p->v[i]);
        free(p->v);
        *p = (EscPool) {};
}

int open_regular(const char *path, int not_regular, struct stat *ret_st) {
        /* O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused below. */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return not_regular;
        }
        if (ret_st)
                *ret_st = st;
        return fd;
}

const char *closest_name(const char *s, const char *const *cands, size_t n) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX, len = strlen(s);
        for (size_t i = 0; i < n; i++) {
                if (!cands[i])
                        continue;
                size_t d = edit_distance(s, cands[i]);
                if (d <= 2 && d < len &&
                    (d < best_d || (d == best_d && best && labs((long) strlen(cands[i]) - (long) len) <
                                                           labs((long) strlen(best) - (long) len)))) {
                        best = cands[i];
                        best_d = d;
                }
        }
        return best;
}
