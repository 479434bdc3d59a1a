/* fuzz-duration.c — libFuzzer target for the duration parser: any bytes (NUL-terminated copy)
 * through duration_parse(). Never crash, leak or hit undefined behaviour; an error's offset lies
 * inside the text; a parsed duration is within 10000 years and non-negative, and its canonical
 * form parses back to exactly the same duration. Built and run by tests/fuzz/run-fuzzers.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        Duration d = { -1, -1, -1 };
        size_t off = (size_t) -1;
        DurationError e = duration_parse(s, &d, &off);
        if (e != DURATION_OK) {
                if (off > strlen(s) || !duration_error_to_string(e))
                        abort();
                free(s);
                return 0;
        }
        if (d.months < 0 || d.days < 0 || d.usecs < 0 || d.months > 10000 * 12)
                abort();

        char buf[DURATION_FORMAT_MAX], ival[DURATION_FORMAT_MAX];
        duration_format(&d, buf, sizeof(buf));
        duration_to_interval(&d, ival, sizeof(ival));
        (void) duration_is_zero(&d);
        (void) duration_approx_usec(&d);

        Duration back = { -1, -1, -1 };
        if (duration_parse(buf, &back, NULL) != DURATION_OK || back.months != d.months || back.days != d.days ||
            back.usecs != d.usecs)
                abort();
        free(s);
        return 0;
}
