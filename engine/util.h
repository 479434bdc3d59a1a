/* util.h — small helpers shared by every file: cleanup attributes, allocation that
 * cannot silently fail, a growable string buffer. No policy or database knowledge here. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *steal_ptr_impl(void *pp) {
        void **p = pp, *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) steal_ptr_impl(&(p))

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* Allocation failures abort: a daemon that cannot allocate a few bytes cannot do anything
 * safely, and checking every strdup would hide the real error paths. */
_noreturn_ void oom(void);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t m);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

/* Growable NUL-terminated string. */
typedef struct StrBuf {
        char *s;
        size_t len, cap;
} StrBuf;

void strbuf_append(StrBuf *b, const char *s);
void strbuf_appendn(StrBuf *b, const char *s, size_t n);
void strbuf_appendf(StrBuf *b, const char *fmt, ...) _printf_(2, 3);
void strbuf_appendc(StrBuf *b, char c);
char *strbuf_steal(StrBuf *b); /* never NULL; resets b */
void strbuf_done(StrBuf *b);
static inline const char *strbuf_str(const StrBuf *b) {
        return b->s ? b->s : "";
}

/* Levenshtein distance, for "did you mean". */
size_t edit_distance(const char *a, const char *b);
/* The candidate closest to s within edit distance 2 (and less than s's length), or NULL: for
 * "did you mean". NULL candidates are skipped. */
const char *closest_name(const char *s, const char *const *cands, size_t n);
/* Parse a non-negative decimal int64 with nothing around it; false on error/overflow. */
bool parse_int64(const char *s, int64_t *ret);

/* Control characters in text from outside (a command line, a policy value, the database):
 * C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F, in UTF-8 0xC2 0x80-0x9F). Returns
 * true and the byte offset of the first one in *offset (when not NULL); `allow` lists C0
 * characters to let through (e.g. "\n\t" for a multi-line value), or NULL. */
bool text_find_control(const char *s, const char *allow, size_t *offset);
/* The text as it can go to a terminal: each control character and each byte that is not valid
 * UTF-8 is shown escaped: \n, \r, \t, \xHH for the other C0 characters, DEL and bad
 * bytes, \uHHHH for C1 characters (ESC [ 2 J is shown as \x1b[2J). A backslash stays as it
 * is. NULL stays NULL. */
char *text_escape(const char *s);
/* Its width in characters (UTF-8 code points), for aligning columns of escaped text. */
size_t text_width(const char *s);
void strbuf_append_escaped(StrBuf *b, const char *s);

/* Escaped copies (text_escape) that live until the pool is done: for printf-heavy output.
 * esc_pool(p, NULL) is NULL. */
typedef struct EscPool {
        char **v;
        size_t n;
} EscPool;
const char *esc_pool(EscPool *p, const char *s);
void esc_pool_done(EscPool *p);

struct stat;
/* Opens path read-only (O_CLOEXEC, O_NOCTTY, O_NONBLOCK, so that a FIFO with no writer cannot
 * hang) and refuses anything but a regular file. Returns the fd, or a negative errno:
 * not_regular (the caller's choice, e.g. -EINVAL) for a file that is not regular. ret_st, when
 * not NULL, receives its fstat(). */
int open_regular(const char *path, int not_regular, struct stat *ret_st);
