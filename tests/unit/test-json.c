/* test-json.c — unit tests of the one JSON writer (engine/json.c): escaping of every control
 * character, and the comma rule of the key/value writers. Exact output; no database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static void test_string(void **state) {
        (void) state;
        StrBuf b = {};
        json_append_string(&b, "a\"b\\c\nd\re\tf\x01g\x7fh\xc2\x9bi\xc3\xa9");
        assert_string_equal(strbuf_str(&b), "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fh\\u009bi\xc3\xa9\"");
        strbuf_done(&b);
        json_append_string(&b, NULL);
        assert_string_equal(strbuf_str(&b), "null");
        strbuf_done(&b);
}

static void test_pairs(void **state) {
        (void) state;
        StrBuf b = {};
        strbuf_append(&b, "{");
        json_kv_str(&b, "s", "x");
        json_kv_str(&b, "n", NULL);
        json_kv_num(&b, "num", "12");
        json_kv_num(&b, "nonum", NULL);
        json_kv_int(&b, "i", -5);
        json_kv_bool(&b, "t", true);
        json_key(&b, "a");
        strbuf_append(&b, "[{");
        json_kv_bool(&b, "f", false);
        strbuf_append(&b, "}]}");
        assert_string_equal(strbuf_str(&b),
                            "{\"s\":\"x\",\"n\":null,\"num\":12,\"nonum\":null,\"i\":-5,\"t\":true,\"a\":[{\"f\":false}]}");
        strbuf_done(&b);
        json_kv_int(&b, "first", 1); /* an empty buffer: no comma */
        assert_string_equal(strbuf_str(&b), "\"first\":1");
        strbuf_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_string),
                cmocka_unit_test(test_pairs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
