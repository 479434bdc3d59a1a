/* rtengine.h — for db tests that build plans as the engine does (test-audit.c, test-where.c): the
 * policy file loaded, a session with the engine's settings, and the catalog the engine loads for
 * the policy, opened and closed in one call each. Header-only; it never changes the database. */
#pragma once

#include "catalog.h"
#include "plan.h"
#include "policy-load.h"

typedef struct RtEngine {
        Policy *policy;
        Pg *pg;
        CatCache cache;
        PgError err; /* for the test's own calls on pg */
} RtEngine;

static inline void rt_engine_open(RtEngine *e, char *policy_path, const char *ci) {
        *e = (RtEngine) {};
        char *paths[] = { policy_path };
        Diagnostics *d = diagnostics_new();
        assert_int_equal(policy_load(paths, 1, &e->policy, d), 0);
        diagnostics_free(d);
        PgSettings s = { .lock_timeout_ms = 2000, .statement_timeout_ms = 60000 };
        assert_int_equal(pg_connect(ci, &s, &e->pg, &e->err), 0);
        assert_int_equal(catalog_load_policy(e->pg, e->policy, &e->cache, &e->err), 0);
}

static inline void rt_engine_close(RtEngine *e) {
        cat_cache_done(&e->cache);
        pg_free(e->pg);
        policy_free(e->policy);
        pg_error_done(&e->err);
        *e = (RtEngine) {};
}
