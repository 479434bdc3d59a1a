/* fuzz-policy.c — libFuzzer target for the policy loader: any bytes as one policy file.
 * policy_load_string() must return a validated policy or located errors, never crash, leak or
 * hit undefined behaviour; every diagnostic must format (text and JSON) and every loaded rule
 * must summarise. Built and run by tests/fuzz/run-fuzzers.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "diag.h"
#include "policy-load.h"
#include "policy.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        int r = policy_load_string("fuzz.yaml", (const char *) data, size, &p, d);

        /* Success and failure agree with the diagnostics collected. */
        if (r == 0 && (!p || diagnostics_has_errors(d)))
                abort();
        if (r < 0 && (p || !diagnostics_has_errors(d)))
                abort();

        StrBuf text = {}, json = {};
        diagnostics_sort(d);
        for (size_t i = 0; i < d->n; i++)
                diagnostic_format(&d->items[i], &text);
        diagnostics_to_json(d, &json);
        strbuf_done(&text);
        strbuf_done(&json);

        if (p) {
                for (size_t i = 0; i < p->n_rules; i++) {
                        char *s = rule_summary(&p->rules[i]);
                        if (!s || policy_find_rule(p, p->rules[i].name) != &p->rules[i])
                                abort();
                        free(s);
                }
                for (size_t i = 0; i < p->n_holds; i++)
                        if (policy_find_hold(p, p->holds[i].name) != &p->holds[i])
                                abort();
                (void) policy_needs_hash_key(p);
                policy_free(p);
        }
        diagnostics_free(d);
        return 0;
}
