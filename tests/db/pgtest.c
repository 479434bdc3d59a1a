/* pgtest.c — starts and stops a private PostgreSQL cluster for the db tests, runs SQL and the
 * retentiond binary for them. No mock of anything: a real server, real libpq. Must never stop or
 * remove a cluster or directory it did not create itself. */
#include "pgtest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

extern char **environ;

struct PgTest {
        bool external;       /* a cluster we were pointed at: never stopped or removed */
        char *dir;           /* temporary directory: socket, data/, logs */
        char *datadir;
        char *bindir;
        char *host;
        char *user;
        int port;
        bool as_postgres;    /* we are root: server commands run as the postgres user */
        uid_t pg_uid;
        gid_t pg_gid;
        pid_t owner;         /* process that started it; forked children never stop it */
        pid_t watchdog;      /* stops the cluster and removes dir when the owner goes away */
        int watchdog_fd;     /* write end of the pipe the watchdog waits on */
};

/* ---- small helpers --------------------------------------------------------------------------- */

static void *xalloc(size_t n) {
        void *p = calloc(1, n ? n : 1);
        if (!p) {
                fputs("pgtest: out of memory\n", stderr);
                abort();
        }
        return p;
}

static char *xstrdup_(const char *s) {
        char *p = strdup(s);
        if (!p) {
                fputs("pgtest: out of memory\n", stderr);
                abort();
        }
        return p;
}

__attribute__((format(printf, 1, 0)))
static char *xvasprintf_(const char *fmt, va_list ap) {
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0) {
                fputs("pgtest: out of memory\n", stderr);
                abort();
        }
        return s;
}

__attribute__((format(printf, 1, 2)))
static char *xasprintf_(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = xvasprintf_(fmt, ap);
        va_end(ap);
        return s;
}

typedef struct Buf {
        char *s;
        size_t len, cap;
} Buf;

static void buf_append(Buf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->s, cap);
                if (!p) {
                        fputs("pgtest: out of memory\n", stderr);
                        abort();
                }
                b->s = p;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

static char *buf_steal(Buf *b) {
        char *s = b->s ? b->s : xstrdup_("");
        *b = (Buf) {};
        return s;
}

static bool is_executable(const char *dir, const char *name) {
        char *p = xasprintf_("%s/%s", dir, name);
        bool r = access(p, X_OK) == 0;
        free(p);
        return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        if (remove(path) < 0 && errno != ENOENT)
                fprintf(stderr, "pgtest: cannot remove %s: %s\n", path, strerror(errno));
        return 0;
}

static void rm_rf(const char *dir) {
        if (dir)
                (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Quote a value for a libpq conninfo string. */
static char *conninfo_quote(const char *v) {
        Buf b = {};
        buf_append(&b, "'", 1);
        for (const char *p = v; *p; p++) {
                if (*p == '\'' || *p == '\\')
                        buf_append(&b, "\\", 1);
                buf_append(&b, p, 1);
        }
        buf_append(&b, "'", 1);
        return buf_steal(&b);
}

/* ---- processes --------------------------------------------------------------------------------- */

typedef struct SpawnOpts {
        const char *const *env;  /* additions, "K=V" */
        const char *cwd;
        bool as_postgres;
        uid_t uid;
        gid_t gid;
        int deadline_sec; /* > 0: a child still running after this long is examined and killed */
} SpawnOpts;

static char **build_env(const char *const *add) {
        size_t n = 0, m = 0;
        for (char **e = environ; e && *e; e++)
                n++;
        for (const char *const *a = add; a && *a; a++)
                m++;
        char **env = xalloc((n + m + 1) * sizeof(char *));
        size_t k = 0;
        for (char **e = environ; e && *e; e++) {
                bool overridden = false;
                for (const char *const *a = add; a && *a && !overridden; a++) {
                        const char *eq = strchr(*a, '=');
                        size_t kl = eq ? (size_t) (eq - *a) : strlen(*a);
                        if (strncmp(*e, *a, kl) == 0 && (*e)[kl] == '=')
                                overridden = true;
                }
                if (!overridden)
                        env[k++] = *e;
        }
        for (const char *const *a = add; a && *a; a++)
                env[k++] = xstrdup_(*a);
        env[k] = NULL;
        return env;
}

static void free_env(char **env, const char *const *add) {
        size_t n = 0, m = 0;
        for (char **e = env; *e; e++)
                n++;
        for (const char *const *a = add; a && *a; a++)
                m++;
        for (size_t i = n - m; i < n; i++) /* the additions are the copies at the end */
                free(env[i]);
        free(env);
}

static char **copy_argv(const char *const *argv) {
        size_t n = 0;
        while (argv[n])
                n++;
        char **v = xalloc((n + 1) * sizeof(char *));
        for (size_t i = 0; i < n; i++)
                v[i] = xstrdup_(argv[i]);
        return v;
}

static void free_argv(char **v) {
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

/* fork+exec argv[0] (a path), stdin /dev/null, capture stdout and stderr completely by polling both
 * pipes (so a chatty child never blocks on a full pipe). Returns exit status or 128+signal, -1 if
 * the child could not be started (errno set, message in *err). */
static void diagnose_hung(pid_t pid, const char *what, int after_sec);

/* Exit status of a child spawn() killed at its deadline (after diagnose_hung()). */
#define SPAWN_HUNG (-3)

static int spawn(const char *const *argv, const SpawnOpts *o, char **out, char **err) {
        int po[2], pe[2];
        if (pipe2(po, O_CLOEXEC) < 0)
                return -1;
        if (pipe2(pe, O_CLOEXEC) < 0) {
                close(po[0]);
                close(po[1]);
                return -1;
        }
        char **env = build_env(o ? o->env : NULL);
        char **args = copy_argv(argv);

        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(po[0]);
                close(po[1]);
                close(pe[0]);
                close(pe[1]);
                free_env(env, o ? o->env : NULL);
                free_argv(args);
                errno = e;
                return -1;
        }
        if (pid == 0) {
                int nul = open("/dev/null", O_RDONLY);
                if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 || dup2(po[1], STDOUT_FILENO) < 0 ||
                    dup2(pe[1], STDERR_FILENO) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                if (o && o->cwd && chdir(o->cwd) < 0) {
                        dprintf(STDERR_FILENO, "pgtest: chdir %s: %s\n", o->cwd, strerror(errno));
                        _exit(127);
                }
                if (o && o->as_postgres) {
                        if (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0) {
                                dprintf(STDERR_FILENO, "pgtest: cannot become the postgres user: %s\n",
                                        strerror(errno));
                                _exit(127);
                        }
                }
                execve(args[0], args, env);
                dprintf(STDERR_FILENO, "pgtest: cannot execute %s: %s\n", args[0], strerror(errno));
                _exit(127);
        }
        free_env(env, o ? o->env : NULL);
        free_argv(args);
        close(po[1]);
        close(pe[1]);

        Buf bo = {}, be = {};
        struct pollfd fds[2] = {
                { .fd = po[0], .events = POLLIN },
                { .fd = pe[0], .events = POLLIN },
        };
        int open_fds = 2;
        bool hung = false;
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (open_fds > 0) {
                int wait_ms = -1;
                if (o && o->deadline_sec > 0 && !hung) {
                        struct timespec now;
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        long long left = (long long) o->deadline_sec * 1000 - ((long long) (now.tv_sec - start.tv_sec) * 1000 +
                                                                               (now.tv_nsec - start.tv_nsec) / 1000000);
                        if (left <= 0) {
                                /* Examined while it still hangs, then killed: its pipes close. */
                                diagnose_hung(pid, argv[0], o->deadline_sec);
                                kill(pid, SIGKILL);
                                hung = true;
                                continue;
                        }
                        wait_ms = left > 1000000 ? 1000000 : (int) left;
                }
                int n = poll(fds, 2, wait_ms);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (n == 0)
                        continue;
                for (int i = 0; i < 2; i++) {
                        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        char chunk[65536];
                        ssize_t r = read(fds[i].fd, chunk, sizeof(chunk));
                        if (r < 0 && errno == EINTR)
                                continue;
                        if (r <= 0) {
                                close(fds[i].fd);
                                fds[i].fd = -1;
                                open_fds--;
                                continue;
                        }
                        buf_append(i == 0 ? &bo : &be, chunk, (size_t) r);
                }
        }
        for (int i = 0; i < 2; i++)
                if (fds[i].fd >= 0)
                        close(fds[i].fd);

        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        status = 127 << 8;
                        break;
                }

        char *so = buf_steal(&bo), *se = buf_steal(&be);
        if (out)
                *out = so;
        else
                free(so);
        if (err)
                *err = se;
        else
                free(se);

        if (hung)
                return SPAWN_HUNG;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 127;
}

/* Run a server program (initdb, pg_ctl) from the cluster's bindir, as postgres when root. */
static int pg_cmd(const PgTest *t, const char *const *args, char **output) {
        const char *argv[32];
        size_t n = 0;
        char *path = xasprintf_("%s/%s", t->bindir, args[0]);
        argv[n++] = path;
        for (size_t i = 1; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;

        /* initdb gets its locale from --locale; the programs' own messages stay in English. */
        static const char *const env[] = { "LC_ALL=C", "LANG=C", NULL };
        SpawnOpts o = {
                .env = env,
                .cwd = t->dir,
                .as_postgres = t->as_postgres,
                .uid = t->pg_uid,
                .gid = t->pg_gid,
        };
        char *out = NULL, *err = NULL;
        int r = spawn(argv, &o, &out, &err);
        free(path);
        if (output) {
                *output = xasprintf_("%s%s", out ? out : "", err ? err : "");
        }
        free(out);
        free(err);
        return r;
}

static void cluster_stop(const PgTest *t) {
        const char *args[] = { "pg_ctl", "stop", "-D", t->datadir, "-m", "immediate", "-w", "-t", "60", NULL };
        char *output = NULL;
        int r = pg_cmd(t, args, &output);
        if (r != 0 && output && !strstr(output, "does not exist") && !strstr(output, "Is server running"))
                fprintf(stderr, "pgtest: pg_ctl stop failed (%d):\n%s", r, output);
        free(output);
}

static void pgtest_free(PgTest *t) {
        if (!t)
                return;
        free(t->dir);
        free(t->datadir);
        free(t->bindir);
        free(t->host);
        free(t->user);
        free(t);
}

static void print_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f)
                return;
        char line[4096];
        while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
        fclose(f);
}

__attribute__((noreturn))
static void start_failed(PgTest *t, const char *what, const char *output) {
        fprintf(stderr, "pgtest: cannot start a PostgreSQL cluster: %s\n", what);
        if (output && *output)
                fprintf(stderr, "%s%s", output, output[strlen(output) - 1] == '\n' ? "" : "\n");
        if (t && t->dir) {
                char *log = xasprintf_("%s/server.log", t->dir);
                if (access(log, R_OK) == 0) {
                        fprintf(stderr, "---- %s ----\n", log);
                        print_file(log);
                }
                free(log);
                if (t->datadir)
                        cluster_stop(t);
                rm_rf(t->dir);
        }
        fprintf(stderr, "pgtest: hint: install postgresql-15 (bash .ci/deps), or point "
                "RETENTIOND_TEST_PGHOST/RETENTIOND_TEST_PGPORT at a running cluster.\n");
        pgtest_free(t);
        exit(EXIT_FAILURE);
}

static char *find_bindir(void) {
        const char *e = getenv("RETENTIOND_TEST_PGBIN");
        if (e && *e)
                return xstrdup_(e);

        FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
        if (p) {
                char line[4096] = "";
                bool ok = fgets(line, sizeof(line), p) != NULL;
                pclose(p);
                line[strcspn(line, "\n")] = '\0';
                if (ok && *line && is_executable(line, "initdb") && is_executable(line, "pg_ctl"))
                        return xstrdup_(line);
        }
        if (is_executable("/usr/lib/postgresql/15/bin", "initdb"))
                return xstrdup_("/usr/lib/postgresql/15/bin");
        return NULL;
}

/* The watchdog: a child in its own session that waits until the owner closes the pipe (by
 * pgtest_stop, by exiting, or by crashing), then stops the cluster and removes its directory. */
static void start_watchdog(PgTest *t) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return;
        }
        if (pid == 0) {
                close(p[1]);
                /* Keep no other descriptor of the owner: the write end of another cluster's
                 * watchdog pipe (several clusters in one program: tests/db/citustest.c) would keep
                 * that watchdog waiting until this one is gone. stdin, stdout, stderr stay. */
                int keep = p[0];
                if (keep > 3)
                        (void) close_range(3, (unsigned) keep - 1, 0);
                (void) close_range((unsigned) keep + 1, ~0U, 0);
                (void) setsid();
                signal(SIGINT, SIG_IGN);
                signal(SIGTERM, SIG_IGN);
                signal(SIGHUP, SIG_IGN);
                /* Nothing is ever written: read() returns at EOF, when the last write end closes. */
                for (;;) {
                        char c;
                        ssize_t r = read(p[0], &c, 1);
                        if (r < 0 && errno == EINTR)
                                continue;
                        break;
                }
                cluster_stop(t);
                rm_rf(t->dir);
                _exit(0);
        }
        close(p[0]);
        t->watchdog = pid;
        t->watchdog_fd = p[1];
}

/* ---- API ------------------------------------------------------------------------------------- */

/* ---- a child that hangs ------------------------------------------------------------------------ */

/* The clusters this process started, for diagnose_hung(). */
static PgTest *clusters[8];

static void clusters_add(PgTest *t) {
        for (size_t i = 0; i < sizeof(clusters) / sizeof(clusters[0]); i++)
                if (!clusters[i]) {
                        clusters[i] = t;
                        return;
                }
}

static void clusters_remove(PgTest *t) {
        for (size_t i = 0; i < sizeof(clusters) / sizeof(clusters[0]); i++)
                if (clusters[i] == t)
                        clusters[i] = NULL;
}

static void print_proc_file(pid_t pid, const char *name) {
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "  %s: %s\n", path, strerror(errno));
                return;
        }
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "  %s:\n%s%s", path, buf, n > 0 && buf[n - 1] == '\n' ? "" : "\n");
}

/* Every session of every cluster this process started: what it waits for and runs. */
static void print_sessions(void) {
        for (size_t i = 0; i < sizeof(clusters) / sizeof(clusters[0]); i++) {
                PgTest *t = clusters[i];
                if (!t)
                        continue;
                char *host = conninfo_quote(t->host), *user = conninfo_quote(t->user);
                char *ci = xasprintf_("host=%s port=%d dbname=postgres user=%s connect_timeout=10"
                                      " options='-c statement_timeout=10000'",
                                      host, t->port, user);
                free(host);
                free(user);
                PGconn *c = PQconnectdb(ci);
                free(ci);
                if (PQstatus(c) != CONNECTION_OK) {
                        fprintf(stderr, "  cluster on port %d: cannot connect: %s", t->port, PQerrorMessage(c));
                        PQfinish(c);
                        continue;
                }
                PGresult *r = PQexec(c,
                                     "SELECT a.pid, a.datname, a.usename, a.application_name, a.backend_type, a.state,"
                                     " a.wait_event_type, a.wait_event, now() - a.xact_start AS in_xact, now() - a.query_start AS in_query,"
                                     " (SELECT string_agg(l.locktype || ' ' || l.mode || ' on ' || coalesce(l.relation::regclass::text,"
                                     " l.objid::text, l.transactionid::text, '?'), '; ') FROM pg_locks l WHERE l.pid = a.pid"
                                     " AND NOT l.granted) AS waits_for, pg_blocking_pids(a.pid) AS blocked_by,"
                                     " left(regexp_replace(a.query, '\\s+', ' ', 'g'), 300) AS query"
                                     " FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() ORDER BY a.pid");
                fprintf(stderr, "  sessions of the cluster on port %d:\n", t->port);
                if (PQresultStatus(r) == PGRES_TUPLES_OK) {
                        for (int row = 0; row < PQntuples(r); row++) {
                                fprintf(stderr, "   ");
                                for (int f = 0; f < PQnfields(r); f++)
                                        fprintf(stderr, " %s=%s", PQfname(r, f), PQgetisnull(r, row, f) ? "-" : PQgetvalue(r, row, f));
                                fputc('\n', stderr);
                        }
                } else
                        fprintf(stderr, "    %s", PQerrorMessage(c));
                PQclear(r);
                PQfinish(c);
        }
}

/* A child (`what`) still runs after `after_sec` seconds, far longer than it should: what it is
 * blocked in (kernel, and every thread's stack through gdb when there is one) and what the
 * clusters' sessions wait for, so that a hang in CI says where it hangs. */
static void diagnose_hung(pid_t pid, const char *what, int after_sec) {
        static bool diagnosing;
        fprintf(stderr, "pgtest: %s (pid %d) still runs after %d s; killing it; where it is:\n", what, (int) pid, after_sec);
        if (diagnosing)
                return; /* the debugger itself hung */
        diagnosing = true;
        print_proc_file(pid, "wchan");
        print_proc_file(pid, "syscall");
        print_proc_file(pid, "stack");
        if (is_executable("/usr/bin", "gdb")) {
                char spid[16];
                snprintf(spid, sizeof(spid), "%d", (int) pid);
                const char *argv[] = { "/usr/bin/gdb", "-nx", "-batch", "-p", spid, "-ex", "thread apply all bt", NULL };
                SpawnOpts o = { .deadline_sec = 60 };
                char *out = NULL, *err = NULL;
                int r = spawn(argv, &o, &out, &err);
                fprintf(stderr, "  gdb (exit %d):\n%s%s", r, out ? out : "", err ? err : "");
                free(out);
                free(err);
        }
        print_sessions();
        diagnosing = false;
}

PgTest *pgtest_start(void) {
        return pgtest_start_conf(NULL);
}

PgTest *pgtest_start_conf(const char *extra_conf) {
        PgTest *t = xalloc(sizeof(PgTest));
        t->owner = getpid();
        t->watchdog = -1;
        t->watchdog_fd = -1;

        const char *ext = getenv("RETENTIOND_TEST_PGHOST");
        if (ext && *ext) {
                const char *port = getenv("RETENTIOND_TEST_PGPORT");
                const char *user = getenv("RETENTIOND_TEST_PGUSER");
                t->external = true;
                t->host = xstrdup_(ext);
                t->port = port && *port ? atoi(port) : 5432;
                t->user = xstrdup_(user && *user ? user : "postgres");
                char *ci = xasprintf_("host=%s port=%d dbname=postgres user=%s", t->host, t->port, t->user);
                PGconn *c = PQconnectdb(ci);
                free(ci);
                if (PQstatus(c) != CONNECTION_OK) {
                        char *msg = xasprintf_("RETENTIOND_TEST_PGHOST=%s port %d: %s", t->host, t->port,
                                               PQerrorMessage(c));
                        PQfinish(c);
                        start_failed(t, msg, NULL);
                }
                PQfinish(c);
                return t;
        }

        t->user = xstrdup_("postgres");
        t->bindir = find_bindir();
        if (!t->bindir)
                start_failed(t, "no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config --bindir "
                             "or in /usr/lib/postgresql/15/bin", NULL);

        if (geteuid() == 0) {
                /* initdb refuses to run as root: the server runs as the postgres system user. */
                struct passwd *pw = getpwnam("postgres");
                if (!pw)
                        start_failed(t, "running as root, but there is no 'postgres' system user to run "
                                     "the server as", NULL);
                t->as_postgres = true;
                t->pg_uid = pw->pw_uid;
                t->pg_gid = pw->pw_gid;
        }

        /* Keep the socket path short (unix socket paths are limited to ~107 bytes). */
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > 60)
                tmp = "/tmp";
        char *tmpl = xasprintf_("%s/retentiond-pgtest.XXXXXX", tmp);
        if (!mkdtemp(tmpl)) {
                char *msg = xasprintf_("mkdtemp %s: %s", tmpl, strerror(errno));
                free(tmpl);
                start_failed(t, msg, NULL);
        }
        t->dir = tmpl;
        t->host = xstrdup_(t->dir);
        if (t->as_postgres && chown(t->dir, t->pg_uid, t->pg_gid) < 0)
                start_failed(t, xasprintf_("chown %s to postgres: %s", t->dir, strerror(errno)), NULL);
        if (t->as_postgres) {
                /* The postgres user must be able to enter the parent directory. */
                struct stat st;
                if (stat(tmp, &st) < 0 || !(st.st_mode & S_IXOTH))
                        start_failed(t, xasprintf_("the postgres user cannot enter %s; set TMPDIR to a "
                                                   "directory it can enter (e.g. /tmp)", tmp), NULL);
        }

        t->datadir = xasprintf_("%s/data", t->dir);

        unsigned seed = (unsigned) getpid() ^ (unsigned) time(NULL);
        t->port = 5432 + 1 + (int) (rand_r(&seed) % 20000);

        char *output = NULL;
        const char *initdb_utf8[] = { "initdb", "-D", t->datadir, "-A", "trust", "-E", "UTF8",
                                      "--locale=C.UTF-8", "-U", "postgres", "--no-sync", NULL };
        int r = pg_cmd(t, initdb_utf8, &output);
        if (r != 0) {
                /* No C.UTF-8 locale on this system: plain C, still UTF8 encoded. */
                free(output);
                output = NULL;
                rm_rf(t->datadir);
                const char *initdb_c[] = { "initdb", "-D", t->datadir, "-A", "trust", "-E", "UTF8",
                                           "--locale=C", "-U", "postgres", "--no-sync", NULL };
                r = pg_cmd(t, initdb_c, &output);
        }
        if (r != 0) {
                char *datadir = t->datadir;
                t->datadir = NULL; /* nothing to stop */
                start_failed(t, xasprintf_("initdb -D %s failed (exit %d)", datadir, r), output);
        }
        free(output);
        output = NULL;

        char *conf = xasprintf_("%s/postgresql.conf", t->datadir);
        FILE *f = fopen(conf, "ae");
        if (!f)
                start_failed(t, xasprintf_("cannot append to %s: %s", conf, strerror(errno)), NULL);
        fprintf(f,
                "\n# pgtest: private throwaway cluster\n"
                "listen_addresses = ''\n"
                "unix_socket_directories = '%s'\n"
                "port = %d\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "shared_buffers = 32MB\n"
                "max_connections = 60\n"
                "timezone = 'UTC'\n"
                "log_min_messages = warning\n"
                "log_min_error_statement = error\n",
                t->dir, t->port);
        if (extra_conf)
                fprintf(f, "%s\n", extra_conf);
        if (fclose(f) != 0)
                start_failed(t, xasprintf_("cannot write %s: %s", conf, strerror(errno)), NULL);
        free(conf);

        char *log = xasprintf_("%s/server.log", t->dir);
        const char *start[] = { "pg_ctl", "start", "-D", t->datadir, "-l", log, "-w", "-t", "120", NULL };
        r = pg_cmd(t, start, &output);
        free(log);
        if (r != 0)
                start_failed(t, xasprintf_("pg_ctl start failed (exit %d)", r), output);
        free(output);

        start_watchdog(t);
        clusters_add(t);
        return t;
}

void pgtest_stop(PgTest *t) {
        if (!t)
                return;
        clusters_remove(t);
        if (!t->external && t->owner == getpid()) {
                if (t->watchdog > 0) {
                        close(t->watchdog_fd);
                        int status;
                        while (waitpid(t->watchdog, &status, 0) < 0 && errno == EINTR)
                                ;
                } else {
                        cluster_stop(t);
                        rm_rf(t->dir);
                }
        }
        pgtest_free(t);
}

void pgtest_stop_server(PgTest *t) {
        if (t->external)
                fail_msg("pgtest: cannot stop a cluster named in RETENTIOND_TEST_PGHOST");
        const char *args[] = { "pg_ctl", "stop", "-D", t->datadir, "-m", "fast", "-w", "-t", "60", NULL };
        char *output = NULL;
        int r = pg_cmd(t, args, &output);
        if (r != 0) {
                print_error("pgtest: pg_ctl stop -m fast failed (exit %d):\n%s", r, output ? output : "");
                free(output);
                fail();
        }
        free(output);
}

void pgtest_crash_server(PgTest *t) {
        if (t->external)
                fail_msg("pgtest: cannot crash a cluster named in RETENTIOND_TEST_PGHOST");
        const char *args[] = { "pg_ctl", "stop", "-D", t->datadir, "-m", "immediate", "-w", "-t", "60", NULL };
        char *output = NULL;
        int r = pg_cmd(t, args, &output);
        if (r != 0) {
                print_error("pgtest: pg_ctl stop -m immediate failed (exit %d):\n%s", r, output ? output : "");
                free(output);
                fail();
        }
        free(output);
}

void pgtest_start_server(PgTest *t) {
        if (t->external)
                fail_msg("pgtest: cannot start a cluster named in RETENTIOND_TEST_PGHOST");
        char *log = xasprintf_("%s/server.log", t->dir);
        const char *args[] = { "pg_ctl", "start", "-D", t->datadir, "-l", log, "-w", "-t", "60", NULL };
        char *output = NULL;
        int r = pg_cmd(t, args, &output);
        free(log);
        if (r != 0) {
                print_error("pgtest: pg_ctl start failed (exit %d):\n%s", r, output ? output : "");
                free(output);
                fail();
        }
        free(output);
}

const char *pgtest_host(const PgTest *t) {
        return t->host;
}

int pgtest_port(const PgTest *t) {
        return t->port;
}

static void quiet_notices(void *arg, const char *message) {
        (void) arg;
        /* NOTICEs (DROP ... IF EXISTS and friends) are noise in test logs; keep the rest. */
        if (strncmp(message, "NOTICE:", 7) != 0 || getenv("RETENTIOND_TEST_VERBOSE"))
                fputs(message, stderr);
}

PGconn *pgtest_connect(const char *conninfo) {
        PGconn *c = PQconnectdb(conninfo);
        if (PQstatus(c) != CONNECTION_OK) {
                char *msg = xstrdup_(PQerrorMessage(c));
                PQfinish(c);
                fail_msg("pgtest: cannot connect to \"%s\": %s", conninfo, msg);
        }
        PQsetNoticeProcessor(c, quiet_notices, NULL);
        /* A test's own statement that waits far longer than any should fails with its text
         * instead of the test being killed at meson's timeout without a word. */
        PGresult *r = PQexec(c, "SET statement_timeout = '150s'");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
                fail_msg("pgtest: SET statement_timeout: %s", PQerrorMessage(c));
        PQclear(r);
        return c;
}

char *pgtest_create_db(PgTest *t, const char *name) {
        char *host = conninfo_quote(t->host), *user = conninfo_quote(t->user), *db = conninfo_quote(name);
        char *admin = xasprintf_("host=%s port=%d dbname=postgres user=%s", host, t->port, user);
        PGconn *c = pgtest_connect(admin);
        free(admin);

        char *ident = PQescapeIdentifier(c, name, strlen(name));
        assert_non_null(ident);
        pgtest_exec(c, "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
        pgtest_exec(c, "CREATE DATABASE %s", ident);
        PQfreemem(ident);
        PQfinish(c);

        char *ci = xasprintf_("host=%s port=%d dbname=%s user=%s", host, t->port, db, user);
        free(host);
        free(user);
        free(db);
        return ci;
}

__attribute__((format(printf, 2, 0)))
static PGresult *vquery(PGconn *c, const char *fmt, va_list ap) {
        char *sql = xvasprintf_(fmt, ap);
        PGresult *r = PQexec(c, sql);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
                const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                char *state = xasprintf_("%s", st ? st : "none"); /* r is freed before printing */
                char *msg = xasprintf_("%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
                PQclear(r);
                print_error("pgtest: query failed (SQLSTATE %s): %s    query: %s\n", state, msg, sql);
                free(state);
                free(msg);
                free(sql);
                fail();
        }
        free(sql);
        return r;
}

void pgtest_exec(PGconn *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        PGresult *r = vquery(c, fmt, ap);
        va_end(ap);
        PQclear(r);
}

__attribute__((format(printf, 2, 0)))
static char *vvalue(PGconn *c, const char *fmt, va_list ap, bool *is_null) {
        va_list aq;
        va_copy(aq, ap);
        PGresult *r = vquery(c, fmt, ap);
        if (PQntuples(r) < 1 || PQnfields(r) < 1) {
                char *sql = xvasprintf_(fmt, aq);
                va_end(aq);
                PQclear(r);
                print_error("pgtest: query returned no row: %s\n", sql);
                free(sql);
                fail();
        }
        va_end(aq);
        char *v = NULL;
        *is_null = PQgetisnull(r, 0, 0);
        if (!*is_null)
                v = xstrdup_(PQgetvalue(r, 0, 0));
        PQclear(r);
        return v;
}

char *pgtest_value(PGconn *c, const char *fmt, ...) {
        va_list ap;
        bool is_null;
        va_start(ap, fmt);
        char *v = vvalue(c, fmt, ap, &is_null);
        va_end(ap);
        return v;
}

long long pgtest_int(PGconn *c, const char *fmt, ...) {
        va_list ap;
        bool is_null;
        va_start(ap, fmt);
        char *v = vvalue(c, fmt, ap, &is_null);
        va_end(ap);
        if (!v)
                fail_msg("pgtest: expected an integer, got NULL");
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0') {
                print_error("pgtest: expected an integer, got \"%s\"\n", v);
                free(v);
                fail();
        }
        free(v);
        return n;
}

void pgtest_exec_file(PGconn *c, const char *path) {
        char *resolved = NULL;
        const char *root = getenv("SOURCE_ROOT");
        if (path[0] != '/' && access(path, R_OK) < 0 && root && *root)
                resolved = xasprintf_("%s/%s", root, path);
        const char *p = resolved ? resolved : path;

        FILE *f = fopen(p, "re");
        if (!f) {
                print_error("pgtest: cannot open %s: %s\n", p, strerror(errno));
                free(resolved);
                fail();
        }
        Buf b = {};
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                buf_append(&b, chunk, n);
        bool bad = ferror(f);
        fclose(f);
        char *sql = buf_steal(&b);
        if (bad) {
                print_error("pgtest: cannot read %s\n", p);
                free(sql);
                free(resolved);
                fail();
        }

        PGresult *r = PQexec(c, sql);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                print_error("pgtest: %s failed (SQLSTATE %s): %s", p, state ? state : "none",
                            r ? PQresultErrorMessage(r) : PQerrorMessage(c));
                PQclear(r);
                free(sql);
                free(resolved);
                fail();
        }
        PQclear(r);
        free(sql);
        free(resolved);
}

/* How long one retentiond command of a test may run: far above any (a run under ASan on a busy
 * machine takes seconds), below the 300 s meson gives a whole test, so that a hang is examined
 * (diagnose_hung()) instead of the test being killed without a word. */
static int run_deadline_sec(void) {
        const char *v = getenv("RETENTIOND_TEST_RUN_DEADLINE");
        int s = v && *v ? atoi(v) : 0;
        return s > 0 ? s : 120;
}

int pgtest_run(const char *const *args, const char *const *env, char **out, char **err) {
        const char *bin = getenv("RETENTIOND_BIN");
        if (!bin || !*bin)
                fail_msg("pgtest: RETENTIOND_BIN is not set (meson sets it for the db suite)");

        size_t n = 0;
        for (const char *const *a = args; a && *a; a++)
                n++;
        const char **argv = xalloc((n + 2) * sizeof(char *));
        argv[0] = bin;
        for (size_t i = 0; i < n; i++)
                argv[i + 1] = args[i];
        argv[n + 1] = NULL;

        SpawnOpts o = { .env = env, .deadline_sec = run_deadline_sec() };
        int r = spawn(argv, &o, out, err);
        int e = errno;
        free(argv);
        if (r == SPAWN_HUNG) {
                Buf cmd = {};
                for (size_t i = 0; i < n; i++) {
                        buf_append(&cmd, " ", 1);
                        buf_append(&cmd, args[i], strlen(args[i]));
                }
                char *c = buf_steal(&cmd);
                print_error("pgtest: %s%s did not exit within %d s (RETENTIOND_TEST_RUN_DEADLINE); where it was is above\n", bin,
                            c ? c : "", o.deadline_sec);
                free(c);
                fail();
        }
        if (r < 0)
                fail_msg("pgtest: cannot run %s: %s", bin, strerror(e));
        return r;
}

/* psql from PATH (Debian's /usr/bin/psql picks the client of the newest installed version). */
static char *find_psql(void) {
        const char *path = getenv("PATH");
        char *copy = xstrdup_(path && *path ? path : "/usr/bin:/bin");
        char *found = NULL;
        for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save))
                if (is_executable(d, "psql"))
                        found = xasprintf_("%s/psql", d);
        free(copy);
        if (!found)
                fail_msg("pgtest: no psql in PATH (postgresql-client-15)");
        return found;
}

char *pgtest_engine_role(const char *conninfo, const char *role, const char *tables, const char *read_tables) {
        const char *root = getenv("SOURCE_ROOT");
        if (!root || !*root)
                fail_msg("pgtest: SOURCE_ROOT is not set (meson sets it for the db suite)");
        char *script = xasprintf_("%s/sql/retentiond-role.sql", root);
        char *vrole = xasprintf_("role=%s", role), *vtables = xasprintf_("tables=%s", tables);
        char *vread = xasprintf_("read_tables=%s", read_tables ? read_tables : "");
        char *psql = find_psql();
        const char *argv[] = { psql, "-X", "-q", "-d", conninfo, "-v", vrole, "-v", vtables, "-v", vread, "-f", script, NULL };
        SpawnOpts o = {};
        char *out = NULL, *err = NULL;
        int r = spawn(argv, &o, &out, &err);
        if (r != 0)
                fail_msg("pgtest: psql -f %s (role %s, tables %s) exited %d:\n%s%s", script, role, tables, r, out ? out : "",
                         err ? err : "");
        free(out);
        free(err);
        free(script);
        free(vrole);
        free(vtables);
        free(vread);
        free(psql);
        char *qrole = conninfo_quote(role);
        char *ci = xasprintf_("%s user=%s", conninfo, qrole);
        free(qrole);
        return ci;
}
