/* fuzz-sqlfrag.c — libFuzzer target for the lexical check of a rule's `where:` (engine/sqlfrag.c):
 * any bytes (NUL-terminated copy) through sqlfrag_check(). Never crash, leak or hit undefined
 * behaviour; an error's offset lies inside the text; and an accepted fragment cannot leave the
 * parentheses it is pasted in: "(" + s + ")" is accepted, "(" + s leaves the first parenthesis
 * open, s + ")" closes one it did not open, exactly at the added character. Built and run by
 * tests/fuzz/run-fuzzers.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqlfrag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 3);
        if (!s)
                return 0;
        memcpy(s + 1, data, size);
        s[size + 1] = '\0';
        char *frag = s + 1;
        size_t len = strlen(frag);

        size_t off = (size_t) -1;
        SqlFragError e = sqlfrag_check(frag, &off);
        if (!sqlfrag_error_to_string(e) || !sqlfrag_error_hint(e))
                abort();
        if (e != SQLFRAG_OK) {
                if (e != SQLFRAG_EMPTY && off >= len)
                        abort();
                free(s);
                return 0;
        }
        if (off != 0)
                abort();

        s[0] = '(';
        /* "(" + s */
        if (sqlfrag_check(s, &off) != SQLFRAG_UNCLOSED_PAREN || off != 0)
                abort();
        /* "(" + s + ")" */
        s[len + 1] = ')';
        s[len + 2] = '\0';
        if (sqlfrag_check(s, &off) != SQLFRAG_OK)
                abort();
        /* s + ")" */
        if (sqlfrag_check(frag, &off) != SQLFRAG_CLOSE_UNOPENED || off != len)
                abort();
        free(s);
        return 0;
}
