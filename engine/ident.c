/* ident.c — SQL identifiers: parse as PostgreSQL does, quote always.
 * The only way an identifier reaches SQL text is ident_quote(). */
#include "ident.h"

#include <string.h>

#include "util.h"

bool utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;
        while (p < end) {
                unsigned c = *p;
                size_t len;
                unsigned min;
                if (c == 0)
                        return false;
                if (c < 0x80) {
                        p++;
                        continue;
                } else if ((c & 0xE0) == 0xC0) {
                        len = 2;
                        min = 0x80;
                        c &= 0x1F;
                } else if ((c & 0xF0) == 0xE0) {
                        len = 3;
                        min = 0x800;
                        c &= 0x0F;
                } else if ((c & 0xF8) == 0xF0) {
                        len = 4;
                        min = 0x10000;
                        c &= 0x07;
                } else
                        return false;
                if ((size_t) (end - p) < len)
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        c = (c << 6) | (p[i] & 0x3F);
                }
                if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
                        return false;
                p += len;
        }
        return true;
}

static bool ident_start(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c) {
        return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Parses one identifier starting at s[*i]; stops at '.', end, or error. */
static IdentError parse_one(const char *s, size_t *i, char **ret, size_t *off) {
        StrBuf b = {};
        if (s[*i] == '"') {
                size_t start = *i;
                (*i)++;
                for (;;) {
                        if (!s[*i]) {
                                strbuf_done(&b);
                                *off = start;
                                return IDENT_UNTERMINATED_QUOTE;
                        }
                        if (s[*i] == '"') {
                                if (s[*i + 1] == '"') {
                                        strbuf_appendc(&b, '"');
                                        *i += 2;
                                        continue;
                                }
                                (*i)++;
                                break;
                        }
                        strbuf_appendc(&b, s[*i]);
                        (*i)++;
                }
                if (b.len == 0) {
                        strbuf_done(&b);
                        *off = start;
                        return IDENT_EMPTY_QUOTED;
                }
        } else {
                if (!s[*i] || s[*i] == '.') {
                        *off = *i;
                        return IDENT_EMPTY;
                }
                if (!ident_start((unsigned char) s[*i])) {
                        *off = *i;
                        return IDENT_BAD_CHARACTER;
                }
                while (s[*i] && s[*i] != '.') {
                        unsigned char c = (unsigned char) s[*i];
                        if (!ident_cont(c)) {
                                strbuf_done(&b);
                                *off = *i;
                                return IDENT_BAD_CHARACTER;
                        }
                        /* unquoted identifiers fold ASCII to lower case, as PostgreSQL does */
                        strbuf_appendc(&b, (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
                        (*i)++;
                }
        }
        if (!utf8_valid(b.s, b.len)) {
                strbuf_done(&b);
                *off = 0;
                return IDENT_INVALID_UTF8;
        }
        if (b.len > IDENT_MAX_LEN) {
                strbuf_done(&b);
                *off = 0;
                return IDENT_TOO_LONG;
        }
        *ret = strbuf_steal(&b);
        return IDENT_OK;
}

IdentError ident_parse(const char *s, char **ret, size_t *err_offset) {
        size_t i = 0, off = 0;
        char *v = NULL;
        IdentError e;

        if (!s || !*s) {
                e = IDENT_EMPTY;
                goto fail;
        }
        e = parse_one(s, &i, &v, &off);
        if (e != IDENT_OK)
                goto fail;
        if (s[i]) {
                free(v);
                off = i;
                e = s[i] == '.' ? IDENT_TOO_MANY_PARTS : IDENT_TRAILING_GARBAGE;
                goto fail;
        }
        *ret = v;
        return IDENT_OK;
fail:
        if (err_offset)
                *err_offset = off;
        return e;
}

IdentError qualified_name_parse(const char *s, QualifiedName *ret, size_t *err_offset) {
        size_t i = 0, off = 0;
        char *a = NULL, *b = NULL;
        IdentError e;

        if (!s || !*s) {
                e = IDENT_EMPTY;
                goto fail;
        }
        e = parse_one(s, &i, &a, &off);
        if (e != IDENT_OK)
                goto fail;
        if (s[i] == '.') {
                i++;
                e = parse_one(s, &i, &b, &off);
                if (e != IDENT_OK) {
                        free(a);
                        goto fail;
                }
        }
        if (s[i]) {
                free(a);
                free(b);
                off = i;
                e = s[i] == '.' ? IDENT_TOO_MANY_PARTS : IDENT_TRAILING_GARBAGE;
                goto fail;
        }
        if (b) {
                ret->schema = a;
                ret->name = b;
        } else {
                ret->schema = NULL;
                ret->name = a;
        }
        return IDENT_OK;
fail:
        if (err_offset)
                *err_offset = off;
        return e;
}

const char *ident_error_to_string(IdentError e) {
        switch (e) {
        case IDENT_OK: return "no error";
        case IDENT_EMPTY: return "empty identifier";
        case IDENT_UNTERMINATED_QUOTE: return "unterminated quoted identifier";
        case IDENT_BAD_CHARACTER: return "invalid character in unquoted identifier";
        case IDENT_TOO_LONG: return "identifier longer than 63 bytes";
        case IDENT_TOO_MANY_PARTS: return "too many dotted parts in name";
        case IDENT_TRAILING_GARBAGE: return "unexpected text after quoted identifier";
        case IDENT_EMPTY_QUOTED: return "zero-length quoted identifier";
        case IDENT_INVALID_UTF8: return "identifier is not valid UTF-8";
        }
        return "invalid identifier";
}

char *ident_quote(const char *name) {
        StrBuf b = {};
        strbuf_appendc(&b, '"');
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        strbuf_appendc(&b, '"');
                strbuf_appendc(&b, *p);
        }
        strbuf_appendc(&b, '"');
        return strbuf_steal(&b);
}

char *qualified_name_quote(const QualifiedName *q) {
        _cleanup_free_ char *n = ident_quote(q->name);
        if (!q->schema)
                return TAKE_PTR(n);
        _cleanup_free_ char *s = ident_quote(q->schema);
        return xasprintf("%s.%s", s, n);
}

static bool needs_quotes(const char *name) {
        if (!name[0] || !ident_start((unsigned char) name[0]) || (name[0] >= 'A' && name[0] <= 'Z'))
                return true;
        for (const char *p = name; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (!ident_cont(c) || (c >= 'A' && c <= 'Z'))
                        return true;
        }
        return false;
}

char *ident_display(const char *name) {
        return needs_quotes(name) ? ident_quote(name) : xstrdup(name);
}

char *qualified_name_display(const QualifiedName *q) {
        _cleanup_free_ char *n = ident_display(q->name);
        if (!q->schema)
                return TAKE_PTR(n);
        _cleanup_free_ char *s = ident_display(q->schema);
        return xasprintf("%s.%s", s, n);
}

bool qualified_name_equal(const QualifiedName *a, const QualifiedName *b) {
        const char *sa = a->schema ? a->schema : "public", *sb = b->schema ? b->schema : "public";
        return streq(sa, sb) && streq(a->name, b->name);
}

void qualified_name_done(QualifiedName *q) {
        free(q->schema);
        free(q->name);
        q->schema = q->name = NULL;
}

int qualified_name_copy(QualifiedName *dst, const QualifiedName *src) {
        dst->schema = src->schema ? xstrdup(src->schema) : NULL;
        dst->name = xstrdup(src->name);
        return 0;
}
