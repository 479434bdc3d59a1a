/* json.h — the one JSON writer every report and command uses: strings escaped for JSON and for
 * the terminal (control characters, C1 too), keys with their values appended to a StrBuf. It
 * only formats what it is given: it never reads a database, never decides what a report says,
 * and never writes a value unescaped but numbers the caller vouches for. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Appends s as a JSON string ("null" for NULL): quotes, backslashes and every C0/C1 control
 * character and DEL escaped. */
void json_append_string(StrBuf *out, const char *s);

/* Each json_kv_* appends "k":value to the object being written, preceded by a comma unless
 * the buffer is empty or ends with '{' or '['. */
/* v as a JSON string, or null when v is NULL. */
void json_kv_str(StrBuf *b, const char *k, const char *v);
/* v as it is, a number as PostgreSQL prints it (int8, numeric), or null when v is NULL. */
void json_kv_num(StrBuf *b, const char *k, const char *v);
void json_kv_int(StrBuf *b, const char *k, int64_t v);
void json_kv_bool(StrBuf *b, const char *k, bool v);
/* "k": followed by whatever the caller appends next (an object, an array). */
void json_key(StrBuf *b, const char *k);
