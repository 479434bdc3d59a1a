/* diag.h — diagnostics: located problems (file, line, column, message, detail, hint, the
 * echoed source line) collected in one place and printed as text or JSON. Never decides
 * anything about policies; it only records and formats what the loader found. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

typedef enum Severity {
        SEVERITY_ERROR,
        SEVERITY_WARNING,
        SEVERITY_NOTE, /* not a problem: what will happen, e.g. `check -d` on what the role may do */
} Severity;

typedef struct Diagnostic {
        char *file;      /* NULL: not about a file */
        unsigned line;   /* 1-based; 0: the whole file */
        unsigned column; /* 1-based, in characters; 0: no column */
        Severity severity;
        int os_error;    /* errno of an I/O failure (ENOENT, EACCES, ...), else 0 */
        char *message;   /* short primary message, PostgreSQL style: lower case, no period */
        char *detail;    /* optional full sentences */
        char *hint;      /* optional full sentences: how to fix it */
        char *source;    /* optional echoed source line (sanitised, no newline) */
        unsigned sort_key; /* callers' ordering of files; see diagnostics_sort() */
        size_t seq;
} Diagnostic;

typedef struct Diagnostics {
        Diagnostic *items;
        size_t n;
        size_t n_errors, n_warnings;
} Diagnostics;

Diagnostics *diagnostics_new(void);
void diagnostics_free(Diagnostics *d); /* NULL-safe */
static inline void diagnostics_freep(Diagnostics **d) {
        diagnostics_free(*d);
}
#define _cleanup_diagnostics_ __attribute__((cleanup(diagnostics_freep)))

/* Adds a diagnostic and returns it so detail, hint and source can be attached. The returned
 * pointer is valid until the next diag_add(). line/column 0 mean "none". */
Diagnostic *diag_add(Diagnostics *d, Severity sev, const char *file, unsigned line, unsigned column,
                     const char *fmt, ...) _printf_(6, 7);
Diagnostic *diag_addv(Diagnostics *d, Severity sev, const char *file, unsigned line, unsigned column,
                      const char *fmt, va_list ap) _printf_(6, 0);
void diag_set_detail(Diagnostic *x, const char *fmt, ...) _printf_(2, 3);
void diag_set_hint(Diagnostic *x, const char *fmt, ...) _printf_(2, 3);
/* Stores a sanitised copy of the source line (n bytes, without its newline). */
void diag_set_source(Diagnostic *x, const char *line, size_t n);

bool diagnostics_has_errors(const Diagnostics *d);
/* Stable sort by (sort_key, line, column, insertion order). */
void diagnostics_sort(Diagnostics *d);

/* Text form of one diagnostic:
 *   FILE:LINE:COLUMN: error: MESSAGE
 *      12 |     retian: 7 days
 *         |     ^
 *   DETAIL:  ...
 *   HINT:  ...
 */
void diagnostic_format(const Diagnostic *x, StrBuf *out);
void diagnostics_print(const Diagnostics *d, FILE *f);
/* JSON array of objects {file, line, column, severity, message, detail, hint}; absent
 * parts are null. */
void diagnostics_to_json(const Diagnostics *d, StrBuf *out);

const char *severity_to_string(Severity s);
