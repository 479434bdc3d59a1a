/* daemon.h — the Manager: the one object of `retentiond daemon` that owns the sd-event loop,
 * the loaded policy, the schedule and the database worker. The loop never blocks on the
 * database and never exits because the database is unavailable. */
#pragma once

#include <stddef.h>

#include "knobs.h"

/* What `retentiond daemon` was told (the command line and retentiond.conf). The strings must
 * outlive the Manager. */
typedef struct DaemonConfig {
        char *const *policy_paths; /* files and directories, as policy_load() takes them */
        size_t n_policy_paths;
        const char *conninfo;      /* -d: a conninfo, or a name of the policy's `databases:`; NULL: every
                                    * database of the policy, or libpq's environment */
        long lock_timeout_ms, statement_timeout_ms; /* < 0: the daemon's defaults below */
        const char *metrics_file;  /* the Prometheus textfile, or NULL */
        const char *hash_key_file; /* --hash-key-file, or NULL: the credential or the environment */
        EngineKnobs knobs;
} DaemonConfig;

/* Daemon session defaults: lower than the CLI's, so a batch never keeps the loop's view of the
 * worker stale for long (overridable with --statement-timeout / --lock-timeout). */
#define DAEMON_DEFAULT_STATEMENT_TIMEOUT_MS 10000
#define DAEMON_DEFAULT_LOCK_TIMEOUT_MS 1000
/* After SIGTERM: give up waiting for the worker after this long (systemd's stop timeout is 30 s). */
#define DAEMON_STOP_TIMEOUT_USEC (25 * UINT64_C(1000000))

typedef struct Manager Manager;

/* Loads and validates the policy and the hash key, sets up the loop, signals and the worker.
 * Prints what is wrong and returns an exit code (EXIT_CONFIG for an invalid policy or a missing
 * hash key: systemd's RestartPreventExitStatus=78 then stops a restart loop), or 0 with *ret. */
int manager_new(const DaemonConfig *cfg, Manager **ret);
/* Runs until SIGTERM/SIGINT; returns the exit code (0 after a clean stop). */
int manager_run(Manager *m);
void manager_free(Manager *m); /* NULL-safe: stops and joins the worker */
static inline void manager_freep(Manager **m) {
        manager_free(*m);
}
#define _cleanup_manager_ __attribute__((cleanup(manager_freep)))
