/* diag.c — collect and print located diagnostics (text with caret, or JSON through json.c).
 * Formatting only: never reads files, never exits, never decides whether something is an error. */
#include "diag.h"

#include <stdarg.h>
#include <stdint.h>

#include "json.h"

#define SOURCE_MAX 512 /* bytes of a source line kept for echoing */

Diagnostics *diagnostics_new(void) {
        return xcalloc(1, sizeof(Diagnostics));
}

static void diagnostic_done(Diagnostic *x) {
        free(x->file);
        free(x->message);
        free(x->detail);
        free(x->hint);
        free(x->source);
}

void diagnostics_free(Diagnostics *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                diagnostic_done(&d->items[i]);
        free(d->items);
        free(d);
}

Diagnostic *diag_add(Diagnostics *d, Severity sev, const char *file, unsigned line, unsigned column,
                     const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = diag_addv(d, sev, file, line, column, fmt, ap);
        va_end(ap);
        return x;
}

Diagnostic *diag_addv(Diagnostics *d, Severity sev, const char *file, unsigned line, unsigned column,
                      const char *fmt, va_list ap) {
        d->items = xreallocarray(d->items, d->n + 1, sizeof(Diagnostic));
        Diagnostic *x = &d->items[d->n];
        *x = (Diagnostic) {
                .file = file ? xstrdup(file) : NULL,
                .line = line,
                .column = column,
                .severity = sev,
                .seq = d->n,
        };
        x->message = xvasprintf(fmt, ap);
        d->n++;
        if (sev == SEVERITY_ERROR)
                d->n_errors++;
        else if (sev == SEVERITY_WARNING)
                d->n_warnings++;
        return x;
}

void diag_set_detail(Diagnostic *x, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        free(x->detail);
        x->detail = xvasprintf(fmt, ap);
        va_end(ap);
}

void diag_set_hint(Diagnostic *x, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        free(x->hint);
        x->hint = xvasprintf(fmt, ap);
        va_end(ap);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t n) {
        unsigned c = p[0];
        size_t len;
        unsigned min, v;
        if (c < 0x80)
                return 1;
        if ((c & 0xE0) == 0xC0) {
                len = 2;
                min = 0x80;
                v = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
                len = 3;
                min = 0x800;
                v = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
                len = 4;
                min = 0x10000;
                v = c & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return 0;
                v = (v << 6) | (p[i] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                return 0;
        return len;
}

void diag_set_source(Diagnostic *x, const char *line, size_t n) {
        StrBuf b = {};
        const unsigned char *p = (const unsigned char *) line;
        if (n > SOURCE_MAX)
                n = SOURCE_MAX;
        /* Trailing CR of a CRLF file. */
        if (n > 0 && p[n - 1] == '\r')
                n--;
        for (size_t i = 0; i < n;) {
                size_t l = utf8_seq_len(p + i, n - i);
                if (l == 0 || (l == 1 && ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7F))) {
                        /* invalid byte or control character: one visible placeholder each */
                        strbuf_appendc(&b, '?');
                        i++;
                        continue;
                }
                strbuf_appendn(&b, line + i, l);
                i += l;
        }
        free(x->source);
        x->source = strbuf_steal(&b);
}

bool diagnostics_has_errors(const Diagnostics *d) {
        return d && d->n_errors > 0;
}

static int diagnostic_cmp(const void *a, const void *b) {
        const Diagnostic *x = a, *y = b;
        if (x->sort_key != y->sort_key)
                return x->sort_key < y->sort_key ? -1 : 1;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        if (x->column != y->column)
                return x->column < y->column ? -1 : 1;
        if (x->seq != y->seq)
                return x->seq < y->seq ? -1 : 1;
        return 0;
}

void diagnostics_sort(Diagnostics *d) {
        if (d && d->n > 1)
                qsort(d->items, d->n, sizeof(Diagnostic), diagnostic_cmp);
}

const char *severity_to_string(Severity s) {
        return s == SEVERITY_ERROR ? "error" : s == SEVERITY_WARNING ? "warning" : "note";
}

/* Appends the caret line: the first column-1 characters of the source become blanks (tabs
 * stay tabs so the caret lines up), then '^'. False when the column lies beyond the line. */
static bool append_caret(StrBuf *out, const char *src, unsigned column) {
        const unsigned char *p = (const unsigned char *) src;
        size_t n = strlen(src), i = 0;
        StrBuf b = {};
        for (unsigned c = 1; c < column; c++) {
                if (i >= n) {
                        if (c + 1 < column) {
                                strbuf_done(&b);
                                return false;
                        }
                        strbuf_appendc(&b, ' '); /* one past the end: e.g. end of line */
                        continue;
                }
                strbuf_appendc(&b, p[i] == '\t' ? '\t' : ' ');
                size_t l = utf8_seq_len(p + i, n - i);
                i += l ? l : 1;
        }
        strbuf_appendc(&b, '^');
        strbuf_append(out, strbuf_str(&b));
        strbuf_done(&b);
        return true;
}

void diagnostic_format(const Diagnostic *x, StrBuf *out) {
        if (x->file) {
                strbuf_append(out, x->file);
                if (x->line > 0) {
                        strbuf_appendf(out, ":%u", x->line);
                        if (x->column > 0)
                                strbuf_appendf(out, ":%u", x->column);
                }
                strbuf_append(out, ": ");
        } else
                strbuf_append(out, "retentiond: ");
        strbuf_appendf(out, "%s: %s\n", severity_to_string(x->severity), x->message);

        if (x->source && x->line > 0 && x->column > 0) {
                StrBuf caret = {};
                if (append_caret(&caret, x->source, x->column)) {
                        int w = snprintf(NULL, 0, "%u", x->line);
                        if (w < 5)
                                w = 5;
                        strbuf_appendf(out, "%*u | %s\n", w, x->line, x->source);
                        strbuf_appendf(out, "%*s | %s\n", w, "", strbuf_str(&caret));
                }
                strbuf_done(&caret);
        }
        if (x->detail)
                strbuf_appendf(out, "DETAIL:  %s\n", x->detail);
        if (x->hint)
                strbuf_appendf(out, "HINT:  %s\n", x->hint);
}

void diagnostics_print(const Diagnostics *d, FILE *f) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                StrBuf b = {};
                diagnostic_format(&d->items[i], &b);
                fputs(strbuf_str(&b), f);
                strbuf_done(&b);
        }
        fflush(f);
}

void diagnostics_to_json(const Diagnostics *d, StrBuf *out) {
        strbuf_appendc(out, '[');
        for (size_t i = 0; d && i < d->n; i++) {
                const Diagnostic *x = &d->items[i];
                strbuf_append(out, i ? ",{" : "{");
                strbuf_append(out, "\"file\":");
                json_append_string(out, x->file);
                if (x->line > 0)
                        strbuf_appendf(out, ",\"line\":%u", x->line);
                else
                        strbuf_append(out, ",\"line\":null");
                if (x->column > 0)
                        strbuf_appendf(out, ",\"column\":%u", x->column);
                else
                        strbuf_append(out, ",\"column\":null");
                strbuf_append(out, ",\"severity\":");
                json_append_string(out, severity_to_string(x->severity));
                strbuf_append(out, ",\"message\":");
                json_append_string(out, x->message);
                strbuf_append(out, ",\"detail\":");
                json_append_string(out, x->detail);
                strbuf_append(out, ",\"hint\":");
                json_append_string(out, x->hint);
                strbuf_appendc(out, '}');
        }
        strbuf_appendc(out, ']');
}
