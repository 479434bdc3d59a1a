/* rely.h — helpers shared by the reliability tests (test-oracle.c, test-kill.c, test-faults.c,
 * test-hostile.c): a seeded PRNG, a growable string, SQL that returns a result or fails the test,
 * private files, and running retentiond (waiting for it, or in the background to kill it).
 * Header-only (static inline), so each test program stays one source file plus pgtest.c. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgtest.h"

/* ---- PRNG: splitmix64, so a seed replays a scenario exactly on every machine ---- */

typedef struct Rng {
        uint64_t s;
} Rng;

static inline uint64_t rng_next(Rng *r) {
        uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

/* 0 <= result < n (n > 0) */
static inline unsigned rnd(Rng *r, unsigned n) {
        return n ? (unsigned) (rng_next(r) % n) : 0;
}

static inline bool chance(Rng *r, unsigned percent) {
        return rnd(r, 100) < percent;
}

#define PICK(rng, array) ((array)[rnd((rng), sizeof(array) / sizeof((array)[0]))])

/* A seed from the environment variable `name` (decimal or 0x hex), else from the clock. */
static inline uint64_t rely_seed(const char *name) {
        const char *e = getenv(name);
        if (e && *e)
                return strtoull(e, NULL, 0);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        Rng r = { (uint64_t) ts.tv_sec * 1000000007u ^ (uint64_t) ts.tv_nsec ^ (uint64_t) getpid() << 32 };
        return rng_next(&r) & UINT64_C(0xFFFFFFFFFFFF); /* short enough to type */
}

static inline long rely_env_long(const char *name, long dflt) {
        const char *e = getenv(name);
        if (!e || !*e)
                return dflt;
        return strtol(e, NULL, 10);
}

/* ---- strings ---- */

typedef struct Sb {
        char *s;
        size_t len, cap;
} Sb;

static inline void sb_add(Sb *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 1024;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->s, cap);
                if (!p)
                        abort();
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

static inline void sb_printf(Sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sb_printf(Sb *b, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                abort();
        sb_add(b, s, (size_t) n);
        free(s);
}

static inline char *sb_steal(Sb *b) {
        char *s = b->s;
        if (!s) {
                s = strdup("");
                if (!s)
                        abort();
        }
        *b = (Sb) {};
        return s;
}

static inline void sb_done(Sb *b) {
        free(b->s);
        *b = (Sb) {};
}

static inline char *rely_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *rely_asprintf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                abort();
        return s;
}

/* ---- SQL ---- */

/* Runs sql (may hold several statements); fails the test with the server's error and the query. */
static inline PGresult *rely_query(PGconn *c, const char *sql) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                print_error("rely: query failed (SQLSTATE %s): %s    query: %.4000s\n", state ? state : "none",
                            r ? PQresultErrorMessage(r) : PQerrorMessage(c), sql);
                PQclear(r);
                fail();
        }
        return r;
}

static inline void rely_exec(PGconn *c, const char *sql) {
        PQclear(rely_query(c, sql));
}

static inline long long rely_int(PGconn *c, const char *sql) {
        PGresult *r = rely_query(c, sql);
        if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) {
                PQclear(r);
                fail_msg("rely: expected an integer from: %s", sql);
        }
        long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return v;
}

/* First value as a malloc'd string, NULL for SQL NULL or no row. */
static inline char *rely_value(PGconn *c, const char *sql) {
        PGresult *r = rely_query(c, sql);
        char *v = NULL;
        if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
                v = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
        return v;
}

/* ---- files ---- */

static inline char *rely_tmpdir(void) {
        char tmpl[] = "/tmp/retentiond-rely-XXXXXX";
        if (!mkdtemp(tmpl))
                fail_msg("mkdtemp: %s", strerror(errno));
        char *d = strdup(tmpl);
        if (!d)
                abort();
        return d;
}

static inline int rely_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        (void) remove(path);
        return 0;
}

static inline void rely_rm_rf(const char *dir) {
        if (dir)
                (void) nftw(dir, rely_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void rely_write(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "we");
        if (!f)
                fail_msg("cannot write %s: %s", path, strerror(errno));
        if (len && fwrite(data, 1, len, f) != len)
                fail_msg("cannot write %s: %s", path, strerror(errno));
        if (fclose(f) != 0)
                fail_msg("cannot write %s: %s", path, strerror(errno));
}

/* ---- the binary ---- */

static inline const char *rely_bin(void) {
        const char *b = getenv("RETENTIOND_BIN");
        if (!b || !*b)
                fail_msg("RETENTIOND_BIN is not set (meson sets it for the db suite)");
        return b;
}

/* Starts retentiond with args (NULL-terminated, without argv0) in the background, stdout and
 * stderr into out_path (appended), stdin /dev/null, in its own process group. Returns the pid. */
static inline pid_t rely_spawn(const char *const *args, const char *out_path) {
        size_t n = 0;
        while (args[n])
                n++;
        char **argv = calloc(n + 2, sizeof(char *));
        if (!argv)
                abort();
        argv[0] = strdup(rely_bin());
        for (size_t i = 0; i < n; i++)
                argv[i + 1] = strdup(args[i]);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                        _exit(127);
                (void) setpgid(0, 0);
                signal(SIGPIPE, SIG_DFL);
                execv(argv[0], argv);
                _exit(127);
        }
        for (size_t i = 0; i <= n; i++)
                free(argv[i]);
        free(argv);
        return pid;
}

/* Waits for pid; returns its exit status or 128+signal. */
static inline int rely_wait(pid_t pid) {
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return -1;
}

/* Waits at most timeout_ms; returns the status, or -2 when it is still running. */
static inline int rely_wait_timeout(pid_t pid, long timeout_ms) {
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                int status;
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid) {
                        if (WIFEXITED(status))
                                return WEXITSTATUS(status);
                        if (WIFSIGNALED(status))
                                return 128 + WTERMSIG(status);
                        return -1;
                }
                if (r < 0 && errno != EINTR)
                        return -1;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                if (el >= timeout_ms)
                        return -2;
                usleep(2000);
        }
}

static inline long rely_ms_since(const struct timespec *start) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* The whole content of a file (malloc'd, NUL-terminated), "" when it does not exist. */
static inline char *rely_slurp(const char *path) {
        Sb b = {};
        FILE *f = fopen(path, "re");
        if (f) {
                char chunk[65536];
                size_t n;
                while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                        sb_add(&b, chunk, n);
                fclose(f);
        }
        return sb_steal(&b);
}

static inline size_t rely_count(const char *haystack, const char *needle) {
        size_t n = 0;
        for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}
