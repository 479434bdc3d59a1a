/* notify-harness.c — a systemd-like notification receiver for the daemon tests: binds the
 * socket, starts the daemon with WATCHDOG_PID set between fork and exec, records messages on
 * a receiver thread. Only ever signals or reaps the one child it started. */
#include "notify-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

extern char **environ;

struct Daemon {
        char *dir, *sock_path, *err_path;
        int sock;
        pid_t pid;
        bool exited;
        int status;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool quit;
        NotifyMsg *msgs;
        size_t n_msgs;
};

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static char *xasprintf_h(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf_h(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                abort();
        return s;
}

static void *receiver(void *userdata) {
        Daemon *d = userdata;
        for (;;) {
                pthread_mutex_lock(&d->lock);
                bool quit = d->quit;
                pthread_mutex_unlock(&d->lock);
                if (quit)
                        break;
                struct pollfd p = { .fd = d->sock, .events = POLLIN };
                if (poll(&p, 1, 50) <= 0)
                        continue;

                char buf[4096];
                union {
                        struct cmsghdr h;
                        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
                } control;
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                ssize_t n = recvmsg(d->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0)
                        continue;
                uint64_t t = now_usec();
                buf[n] = '\0';
                pid_t pid = -1;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                                struct ucred u;
                                memcpy(&u, CMSG_DATA(c), sizeof(u));
                                pid = u.pid;
                        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                for (size_t i = 0; i < nfd; i++) {
                                        int fd;
                                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                        close(fd);
                                }
                        }
                }
                if (getenv("RETENTIOND_TEST_VERBOSE"))
                        fprintf(stderr, "notify %+.3f pid %d: %s\n", (double) t / 1e6, (int) pid, buf);
                pthread_mutex_lock(&d->lock);
                d->msgs = realloc(d->msgs, (d->n_msgs + 1) * sizeof(NotifyMsg));
                if (!d->msgs)
                        abort();
                d->msgs[d->n_msgs++] = (NotifyMsg) { .usec = t, .pid = pid, .text = strdup(buf) };
                pthread_cond_broadcast(&d->cond);
                pthread_mutex_unlock(&d->lock);
        }
        return NULL;
}

/* async-signal-safe decimal formatting, for the child between fork and exec */
static void format_pid(char *out, pid_t pid) {
        char tmp[16];
        size_t n = 0;
        unsigned v = (unsigned) pid;
        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        for (size_t i = 0; i < n; i++)
                out[i] = tmp[n - 1 - i];
        out[n] = '\0';
}

Daemon *daemon_start(const char *const *args, uint64_t watchdog_usec) {
        const char *bin = getenv("RETENTIOND_BIN");
        if (!bin || !*bin)
                fail_msg("RETENTIOND_BIN is not set (meson sets it)");

        Daemon *d = calloc(1, sizeof(Daemon));
        assert_non_null(d);
        pthread_mutex_init(&d->lock, NULL);
        pthread_cond_init(&d->cond, NULL);
        d->pid = -1;
        char tmpl[] = "/tmp/retentiond-notify.XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        d->dir = strdup(tmpl);
        d->sock_path = xasprintf_h("%s/notify", d->dir);
        d->err_path = xasprintf_h("%s/stderr", d->dir);

        d->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(d->sock >= 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        assert_true(strlen(d->sock_path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, d->sock_path);
        assert_int_equal(bind(d->sock, (struct sockaddr *) &sa, sizeof(sa)), 0);
        int one = 1;
        assert_int_equal(setsockopt(d->sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        int rcvbuf = 1 << 20;
        (void) setsockopt(d->sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));

        /* argv: [wrapper words...] bin args... */
        const char *wrapper = getenv("RETENTIOND_TEST_DAEMON_WRAPPER");
        char *wcopy = wrapper && *wrapper ? strdup(wrapper) : NULL;
        char *argv[64];
        size_t n = 0;
        for (char *save = NULL, *w = wcopy ? strtok_r(wcopy, " ", &save) : NULL; w && n < 32; w = strtok_r(NULL, " ", &save))
                argv[n++] = strdup(w);
        argv[n++] = strdup(bin);
        for (const char *const *a = args; *a && n < 63; a++)
                argv[n++] = strdup(*a);
        argv[n] = NULL;

        /* envp, built before fork: the child only fills in its pid */
        size_t ne = 0;
        for (char **e = environ; *e; e++)
                ne++;
        char **envp = calloc(ne + 4, sizeof(char *));
        assert_non_null(envp);
        size_t k = 0;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, "NOTIFY_SOCKET=", 14) && strncmp(*e, "WATCHDOG_USEC=", 14) &&
                    strncmp(*e, "WATCHDOG_PID=", 13) && strncmp(*e, "JOURNAL_STREAM=", 15) &&
                    strncmp(*e, "INVOCATION_ID=", 14))
                        envp[k++] = *e;
        char *env_sock = xasprintf_h("NOTIFY_SOCKET=%s", d->sock_path);
        char *env_usec = xasprintf_h("WATCHDOG_USEC=%llu", (unsigned long long) watchdog_usec);
        char env_pid[32] = "WATCHDOG_PID=";
        envp[k++] = env_sock;
        if (watchdog_usec > 0) {
                envp[k++] = env_usec;
                envp[k++] = env_pid;
        }
        envp[k] = NULL;

        int errfd = open(d->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(errfd >= 0);

        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                format_pid(env_pid + strlen("WATCHDOG_PID="), getpid());
                int nul = open("/dev/null", O_RDWR);
                if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 || dup2(nul, STDOUT_FILENO) < 0 ||
                    dup2(errfd, STDERR_FILENO) < 0)
                        _exit(127);
                sigset_t ss;
                sigemptyset(&ss);
                sigprocmask(SIG_SETMASK, &ss, NULL);
                execve(argv[0], argv, envp);
                _exit(127);
        }
        d->pid = pid;
        close(errfd);
        free(env_sock);
        free(env_usec);
        free(envp);
        free(wcopy);
        for (size_t i = 0; i < n; i++)
                free(argv[i]);

        assert_int_equal(pthread_create(&d->thread, NULL, receiver, d), 0);
        d->thread_started = true;
        return d;
}

pid_t daemon_pid(const Daemon *d) {
        return d->pid;
}

void daemon_kill(Daemon *d, int sig) {
        if (d->pid > 0 && !d->exited)
                assert_int_equal(kill(d->pid, sig), 0);
}

long daemon_wait_msg(Daemon *d, const char *needle, size_t from, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        long found = -1;
        pthread_mutex_lock(&d->lock);
        for (;;) {
                for (size_t i = from; i < d->n_msgs && found < 0; i++)
                        if (strstr(d->msgs[i].text, needle))
                                found = (long) i;
                if (found >= 0 || now_usec() >= deadline)
                        break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
        pthread_mutex_unlock(&d->lock);
        return found;
}

size_t daemon_n_msgs(Daemon *d) {
        pthread_mutex_lock(&d->lock);
        size_t n = d->n_msgs;
        pthread_mutex_unlock(&d->lock);
        return n;
}

NotifyMsg daemon_msg(Daemon *d, size_t i) {
        pthread_mutex_lock(&d->lock);
        assert_true(i < d->n_msgs);
        NotifyMsg m = d->msgs[i];
        m.text = strdup(m.text);
        pthread_mutex_unlock(&d->lock);
        return m;
}

int daemon_wait_exit(Daemon *d, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        while (!d->exited) {
                int status;
                pid_t r = waitpid(d->pid, &status, WNOHANG);
                if (r == d->pid) {
                        d->exited = true;
                        d->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        break;
                }
                if (now_usec() >= deadline)
                        return -1;
                usleep(10000);
        }
        return d->status;
}

char *daemon_stderr(const Daemon *d) {
        FILE *f = fopen(d->err_path, "re");
        assert_non_null(f);
        char *s = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&s, &n);
        char buf[4096];
        size_t r;
        while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
                fwrite(buf, 1, r, m);
        fclose(f);
        fclose(m);
        return s;
}

bool daemon_wait_stderr(Daemon *d, const char *needle, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;
        for (;;) {
                char *s = daemon_stderr(d);
                bool found = strstr(s, needle) != NULL;
                free(s);
                if (found)
                        return true;
                if (now_usec() >= deadline)
                        return false;
                usleep(20000);
        }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        (void) remove(path);
        return 0;
}

void daemon_free(Daemon *d) {
        if (!d)
                return;
        if (d->pid > 0 && !d->exited) {
                (void) kill(d->pid, SIGKILL);
                (void) daemon_wait_exit(d, 10 * 1000000u);
        }
        if (d->thread_started) {
                pthread_mutex_lock(&d->lock);
                d->quit = true;
                pthread_mutex_unlock(&d->lock);
                pthread_join(d->thread, NULL);
        }
        if (getenv("RETENTIOND_TEST_VERBOSE")) {
                char *s = daemon_stderr(d);
                fprintf(stderr, "---- daemon stderr ----\n%s-----------------------\n", s);
                free(s);
        }
        close(d->sock);
        for (size_t i = 0; i < d->n_msgs; i++)
                free(d->msgs[i].text);
        free(d->msgs);
        (void) nftw(d->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        free(d->dir);
        free(d->sock_path);
        free(d->err_path);
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        free(d);
}

size_t count_substr(const char *haystack, const char *needle) {
        size_t n = 0, l = strlen(needle);
        for (const char *p = haystack; (p = strstr(p, needle)); p += l)
                n++;
        return n;
}
