/* json.c — the one JSON writer (json.h): escaping and key/value pairs into a StrBuf. Formatting
 * only: it never decides what is reported and never writes a string unescaped. */
#include "json.h"

#include <inttypes.h>

void json_append_string(StrBuf *out, const char *s) {
        if (!s) {
                strbuf_append(out, "null");
                return;
        }
        strbuf_appendc(out, '"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"': strbuf_append(out, "\\\""); break;
                case '\\': strbuf_append(out, "\\\\"); break;
                case '\n': strbuf_append(out, "\\n"); break;
                case '\r': strbuf_append(out, "\\r"); break;
                case '\t': strbuf_append(out, "\\t"); break;
                default:
                        if (*p < 0x20 || *p == 0x7F)
                                strbuf_appendf(out, "\\u%04x", *p);
                        else if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
                                /* C1 controls too: U+009B is CSI to some terminals */
                                strbuf_appendf(out, "\\u%04x", p[1]);
                                p++;
                        } else
                                strbuf_appendc(out, (char) *p);
                }
        }
        strbuf_appendc(out, '"');
}

void json_key(StrBuf *b, const char *k) {
        char last = '{';
        if (b->len)
                last = strbuf_str(b)[b->len - 1];
        if (last != '{' && last != '[')
                strbuf_appendc(b, ',');
        strbuf_appendc(b, '"');
        strbuf_append(b, k);
        strbuf_append(b, "\":");
}

void json_kv_str(StrBuf *b, const char *k, const char *v) {
        json_key(b, k);
        json_append_string(b, v);
}

void json_kv_num(StrBuf *b, const char *k, const char *v) {
        json_key(b, k);
        strbuf_append(b, v ? v : "null");
}

void json_kv_int(StrBuf *b, const char *k, int64_t v) {
        json_key(b, k);
        strbuf_appendf(b, "%" PRId64, v);
}

void json_kv_bool(StrBuf *b, const char *k, bool v) {
        json_key(b, k);
        strbuf_append(b, v ? "true" : "false");
}
