/* ident.h — SQL identifiers as PostgreSQL reads them: parsing (quoted or folded to lower
 * case), schema qualification and quoting. Identifiers are never pasted into SQL unquoted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define IDENT_MAX_LEN 63 /* NAMEDATALEN - 1, in bytes */

typedef struct QualifiedName {
        char *schema; /* NULL: resolved through search_path (public by default) */
        char *name;
} QualifiedName;

typedef enum IdentError {
        IDENT_OK = 0,
        IDENT_EMPTY,
        IDENT_UNTERMINATED_QUOTE,
        IDENT_BAD_CHARACTER,
        IDENT_TOO_LONG,
        IDENT_TOO_MANY_PARTS,
        IDENT_TRAILING_GARBAGE,
        IDENT_EMPTY_QUOTED,
        IDENT_INVALID_UTF8,
} IdentError;

/* Parses one identifier (no dot allowed outside quotes): `Foo` -> "foo", `"Foo Bar"` -> "Foo Bar".
 * On error returns the class and the 0-based offset of the problem. */
IdentError ident_parse(const char *s, char **ret, size_t *err_offset);
/* Parses `name` or `schema.name`, each part as ident_parse(). */
IdentError qualified_name_parse(const char *s, QualifiedName *ret, size_t *err_offset);
const char *ident_error_to_string(IdentError e);

/* Always-quoted SQL form: foo -> "foo", a"b -> "a""b". Caller frees. */
char *ident_quote(const char *name);
/* "schema"."name" or "name". Caller frees. */
char *qualified_name_quote(const QualifiedName *q);
/* Readable form for messages: schema.name, with quotes only where SQL would need them. Caller frees. */
char *qualified_name_display(const QualifiedName *q);
char *ident_display(const char *name);
bool qualified_name_equal(const QualifiedName *a, const QualifiedName *b);
void qualified_name_done(QualifiedName *q);
int qualified_name_copy(QualifiedName *dst, const QualifiedName *src);
/* Is the string valid UTF-8 without NUL bytes (length n)? */
bool utf8_valid(const char *s, size_t n);
