/* rtest.h — helpers shared by the enforcement tests (test-enforce.c, test-holds.c, test-audit.c,
 * test-identifiers.c): a fresh migrated database per test, policy files in a private temporary
 * directory, running the binary with a policy, and SQL assertions on exact values.
 * Header-only (static inline) so that each test program stays one source file plus pgtest.c. */
#pragma once

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgtest.h"

static PgTest *rt_pg;
static char *rt_dir;    /* private temporary directory for policy and key files */
static unsigned rt_seq; /* file name counter */

static inline int rt_group_setup(void **state) {
        (void) state;
        char tmpl[] = "/tmp/retentiond-test-XXXXXX";
        if (!mkdtemp(tmpl)) {
                fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
                return -1;
        }
        rt_dir = strdup(tmpl);
        rt_pg = pgtest_start();
        return 0;
}

static inline int rt_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

static inline int rt_group_teardown(void **state) {
        (void) state;
        pgtest_stop(rt_pg);
        rt_pg = NULL;
        if (rt_dir)
                (void) nftw(rt_dir, rt_rm, 16, FTW_DEPTH | FTW_PHYS);
        free(rt_dir);
        rt_dir = NULL;
        return 0;
}

static inline char *rt_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static inline char *rt_vasprintf(const char *fmt, va_list ap) {
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                abort();
        return s;
}

static inline char *rt_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *rt_asprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = rt_vasprintf(fmt, ap);
        va_end(ap);
        return s;
}

/* Writes `len` bytes into a new file in the private directory; returns its path (caller frees). */
static inline char *rt_write_file(const char *suffix, const void *data, size_t len) {
        char *path = rt_asprintf("%s/f%u%s", rt_dir, ++rt_seq, suffix);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        return path;
}

/* A policy file with this YAML text; returns its path (caller frees). */
static inline char *rt_policy(const char *yaml) {
        return rt_write_file(".yaml", yaml, strlen(yaml));
}

/* Runs the binary: args is a NULL-terminated list. Returns the exit status; *out and *err
 * (either may be NULL) receive stdout and stderr (caller frees). */
static inline int rt_runv(char **out, char **err, const char *const *env, const char *const *args) {
        char *o = NULL, *e = NULL;
        int r = pgtest_run(args, env, &o, &e);
        if (out)
                *out = o;
        else
                free(o);
        if (err)
                *err = e;
        else
                free(e);
        return r;
}

/* rt_cmd(&out, &err, "-p", policy, "-d", conninfo, "run", NULL) */
static inline int rt_cmd(char **out, char **err, ...) {
        const char *args[64];
        size_t n = 0;
        va_list ap;
        va_start(ap, err);
        const char *a;
        while ((a = va_arg(ap, const char *)) && n < 63)
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        return rt_runv(out, err, NULL, args);
}

/* A fresh database NAME with the retention schema installed by `retentiond migrate` and a
 * schema `app`; returns a connection, and its conninfo in *ci (caller frees both). */
static inline PGconn *rt_db(const char *name, char **ci) {
        char *conninfo = pgtest_create_db(rt_pg, name);
        char *out = NULL, *err = NULL;
        int r = rt_cmd(&out, &err, "-d", conninfo, "migrate", NULL);
        if (r != 0)
                fprintf(stderr, "migrate failed (%d): %s%s", r, out, err);
        assert_int_equal(r, 0);
        assert_non_null(strstr(out, "migrated from version 0 to 10"));
        free(out);
        free(err);
        PGconn *c = pgtest_connect(conninfo);
        pgtest_exec(c, "CREATE SCHEMA app");
        *ci = conninfo;
        return c;
}

/* Asserts that the first value of a query equals `expected` (NULL: SQL NULL). */
static inline void rt_assert_sql_(PGconn *c, const char *expected, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static inline void rt_assert_sql_(PGconn *c, const char *expected, const char *file, int line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *sql = rt_vasprintf(fmt, ap);
        va_end(ap);
        char *v = pgtest_value(c, "%s", sql);
        bool ok = expected ? v && strcmp(v, expected) == 0 : !v;
        if (!ok) {
                print_error("%s:%d: query returned \"%s\", expected \"%s\"\n    query: %s\n", file, line,
                            v ? v : "(null)", expected ? expected : "(null)", sql);
                free(v);
                free(sql);
                _fail(file, line);
        }
        free(v);
        free(sql);
}
#define rt_assert_sql(c, expected, ...) rt_assert_sql_(c, expected, __FILE__, __LINE__, __VA_ARGS__)

/* Asserts that haystack contains needle, printing both when it does not. */
static inline void rt_assert_contains_(const char *haystack, const char *needle, const char *file, int line) {
        if (!haystack || !strstr(haystack, needle)) {
                print_error("%s:%d: expected to find \"%s\" in:\n%s\n", file, line, needle, haystack ? haystack : "(null)");
                _fail(file, line);
        }
}
#define rt_assert_contains(h, n) rt_assert_contains_(h, n, __FILE__, __LINE__)

static inline void rt_assert_not_contains_(const char *haystack, const char *needle, const char *file, int line) {
        if (haystack && strstr(haystack, needle)) {
                print_error("%s:%d: did not expect \"%s\" in:\n%s\n", file, line, needle, haystack);
                _fail(file, line);
        }
}
#define rt_assert_not_contains(h, n) rt_assert_not_contains_(h, n, __FILE__, __LINE__)

/* Runs and asserts the exit status, printing the output when it differs. Frees nothing the
 * caller asked for: out and err (may be NULL) as in rt_cmd. */
#define rt_expect(code, out, err, ...)                                                                \
        do {                                                                                          \
                char *rt_o_ = NULL, *rt_e_ = NULL;                                                    \
                int rt_r_ = rt_cmd(&rt_o_, &rt_e_, __VA_ARGS__, NULL);                                \
                if (rt_r_ != (code))                                                                  \
                        print_error("%s:%d: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s\n", __FILE__, \
                                    __LINE__, rt_r_, (code), rt_o_, rt_e_);                           \
                assert_int_equal(rt_r_, (code));                                                      \
                char **rt_po_ = (out), **rt_pe_ = (err);                                              \
                if (rt_po_)                                                                           \
                        *rt_po_ = rt_o_;                                                              \
                else                                                                                  \
                        free(rt_o_);                                                                  \
                if (rt_pe_)                                                                           \
                        *rt_pe_ = rt_e_;                                                              \
                else                                                                                  \
                        free(rt_e_);                                                                  \
        } while (0)

/* md5 of a table's rows in key order: changes when any value changes. */
static inline char *rt_checksum(PGconn *c, const char *table) {
        return pgtest_value(c, "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM %s t", table);
}

/* A 32-byte hash key file; its hex in *hex (caller frees both). */
static inline char *rt_key_file(char **hex) {
        unsigned char key[32];
        for (size_t i = 0; i < sizeof(key); i++)
                key[i] = (unsigned char) (i * 37 + 11); /* fixed, includes bytes >= 0x80 */
        key[5] = '\n';                                  /* a newline inside is part of the key */
        char *h = malloc(65);
        assert_non_null(h);
        for (size_t i = 0; i < sizeof(key); i++)
                snprintf(h + 2 * i, 3, "%02x", key[i]);
        *hex = h;
        return rt_write_file(".key", key, sizeof(key));
}
