/* worker.h — the daemon's one database thread: it owns the PostgreSQL connection and runs the
 * jobs the event loop hands it (connect, check, an enforcement run), one at a time.
 * The worker logs only the engine's events, never touches sd-event or sd_notify and never
 * decides what runs when:
 * it reports back through an eventfd and the loop does the rest. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "result.h"
#include "rule-lock.h"
#include "hashkey.h"
#include "health.h"
#include "knobs.h"
#include "pg.h"
#include "policy.h"

typedef enum JobType {
        JOB_CONNECT, /* (re)connect, check the retention schema, close a run lost with the last connection */
        JOB_CHECK,   /* the idle connection's socket became readable: is it still alive? */
        JOB_RUN,     /* one enforcement run of some rules (one retention.runs row, mode 'daemon') */
} JobType;

typedef enum JobStatus {
        JOB_OK = 0,
        JOB_LOST,      /* no connection (any PG_ERR_CONNECTION): reconnect */
        JOB_NOT_READY, /* connected, but the schema is missing/at another version or unreadable */
        JOB_FAILED,    /* the run failed as a whole (catalog, audit trail): err says why */
} JobStatus;

typedef struct Job {
        JobType type;

        /* JOB_CONNECT: a run of ours that was lost with the previous connection (> 0), to be
         * recorded as interrupted once connected again. */
        int64_t stale_run_id;

        /* JOB_RUN: the policy and key stay valid until the job is returned (the loop holds a
         * reference); rules are indices into policy->rules, in the order they run (interrupted rules first). */
        const Policy *policy;
        const HashKey *hash_key;
        size_t *rules;
        size_t n_rules;
        bool force; /* a requested run (SIGUSR1): start the rules whatever their slots say */
        void *userdata; /* the loop's, untouched */
        /* JOB_CONNECT and JOB_RUN: the rules of this database (indices into policy->rules) whose
         * health the job reads from the audit trail when it ends (health, below). n 0: none. */
        size_t *health_rules;
        size_t n_health_rules;

        /* results */
        JobStatus status;
        PgError err;
        RunResult *result; /* JOB_RUN: the rules that ran (also when lost or interrupted); NULL before the run row */
        int64_t lost_run_id; /* JOB_RUN lost with the connection: its run id, else -1 */
        int fd;              /* JOB_CONNECT/JOB_CHECK ok: the connection's socket, else -1 */
        HealthReport *health; /* the health of health_rules after the job, or NULL (not read) */
        /* JOB_CONNECT: runs left `running` by sessions that no longer exist, now recorded as
         * interrupted ("12, 13"), or NULL; close_error: why that could not be done, or NULL. */
        char *closed_runs;
        char *close_error;
        /* JOB_RUN, per rule (parallel to rules): its claim on its schedule slot
         * (rule_slot_claim()); for SLOT_TAKEN how long until the slot frees up; for SLOT_TAKEN and
         * SLOT_LOCKED who has it (or NULL). A rule that was never tried is SLOT_NOT_TRIED. */
        SlotClaim *claims;
        int64_t *wait_usec;
        char **claimed_by;
        char **future_start; /* SLOT_CLAIMED over a last start in the future: that start (text), else NULL */
} Job;

Job *job_new(JobType type);
void job_free(Job *j); /* NULL-safe; does not free userdata */
static inline void job_freep(Job **j) {
        job_free(*j);
}

/* What the worker tells the loop besides finished jobs. */
typedef struct WorkerProgress {
        bool run_started; /* a run row was created since the last poll: run_id */
        int64_t run_id;
        bool rule_started; /* a new rule started since the last poll: rule (index into job->rules) */
        size_t rule;
        bool cancel_done; /* a cancel request of worker_cancel() was handled since the last poll */
        bool cancel_sent; /* ... and delivered to the server; else cancel_error says why not */
        char cancel_error[256];
} WorkerProgress;

typedef struct Worker Worker;

/* Starts the thread (with the caller's signal mask: block signals first). database: the
 * policy's name of it (NULL: none), which the thread's events carry as DATABASE=. stop is read
 * between batches (EnforceOptions.stop); stop and knobs must outlive the worker. Returns 0 or
 * a negative errno. */
int worker_new(const char *database, const char *conninfo, const PgSettings *settings, const atomic_bool *stop,
               const EngineKnobs *knobs, Worker **ret);
/* Stops and joins the thread, closes the connection. NULL-safe. Waits for the job in flight. */
void worker_free(Worker *w);
static inline void worker_freep(Worker **w) {
        worker_free(*w);
}
/* Readable (EPOLLIN) when there is progress or a finished job: call worker_poll(). */
int worker_fd(const Worker *w);
/* Hands the idle worker a job (ownership passes until worker_poll() returns it). */
void worker_submit(Worker *w, Job *j);
/* Drains the eventfd; fills *p; returns the finished job (caller owns it) or NULL. */
Job *worker_poll(Worker *w, WorkerProgress *p);

/* Asks for the statement in flight to be cancelled (PQcancel, sent by the worker's canceller
 * thread: never blocks, even when the server does not answer). steps_only: only while a rule
 * start or batch runs (a stop request), never the audit-trail statements around them. Also
 * ends a pause between batches. Returns true when a request was queued (a statement was in
 * flight); its result arrives as WorkerProgress.cancel_done. */
bool worker_cancel(Worker *w, bool steps_only);
/* Monotonic start (µs) and sequence number of the database operation in flight; 0 when idle. */
uint64_t worker_op_started(Worker *w, uint64_t *seq);
