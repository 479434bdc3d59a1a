/* notify-harness.h — runs `retentiond daemon` the way systemd does for Type=notify: a real
 * AF_UNIX datagram socket as NOTIFY_SOCKET (SO_PASSCRED), WATCHDOG_USEC and WATCHDOG_PID, and
 * records every notification with its arrival time and sender pid. No mock: the daemon's own
 * sd_notify() calls arrive here. Never signals a process it did not start. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct NotifyMsg {
        uint64_t usec; /* CLOCK_MONOTONIC arrival */
        pid_t pid;     /* sender, from SCM_CREDENTIALS */
        char *text;
} NotifyMsg;

typedef struct Daemon Daemon;

uint64_t now_usec(void);

/* Starts $RETENTIOND_BIN with args (NULL-terminated, without argv0); watchdog_usec 0: no
 * watchdog. stderr goes to a file (daemon_stderr); JOURNAL_STREAM and INVOCATION_ID are removed
 * from the environment. $RETENTIOND_TEST_DAEMON_WRAPPER (e.g. "valgrind --error-exitcode=99
 * --leak-check=full", the program by its full path) is put in front when set. Fails the test on error. */
Daemon *daemon_start(const char *const *args, uint64_t watchdog_usec);
pid_t daemon_pid(const Daemon *d);
void daemon_kill(Daemon *d, int sig);
/* Waits for the first message at index >= from that contains needle; returns its index, or -1
 * after timeout_usec. */
long daemon_wait_msg(Daemon *d, const char *needle, size_t from, uint64_t timeout_usec);
size_t daemon_n_msgs(Daemon *d);
/* A copy of message i (text is the caller's to free). */
NotifyMsg daemon_msg(Daemon *d, size_t i);
/* Waits for the exit: the exit status, 128+signal, or -1 after timeout_usec. */
int daemon_wait_exit(Daemon *d, uint64_t timeout_usec);
/* What the daemon wrote to stderr so far (caller frees). */
char *daemon_stderr(const Daemon *d);
/* Waits until stderr contains needle; false after timeout_usec. */
bool daemon_wait_stderr(Daemon *d, const char *needle, uint64_t timeout_usec);
/* Kills (SIGKILL) if still running, stops the receiver, removes the temporary directory. */
void daemon_free(Daemon *d);

/* Occurrences of needle in haystack. */
size_t count_substr(const char *haystack, const char *needle);
