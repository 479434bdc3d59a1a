/* worker.c — the database thread of the daemon: owns the PGconn, runs one job at a time,
 * publishes a PQcancel handle so the loop can interrupt a batch. Its only logging is the engine's
 * events (with its database's DATABASE=). It must never block the loop, or leave a batch half done: every batch is one statement that commits or rolls back.
 * PQcancel() blocks until the server answers (libpq 15 has no timeout for it), so cancels are
 * sent by a thread of their own, the canceller: a frozen server stalls it, never the loop. */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "run.h"
#include "trail.h"
#include "util.h"

struct Worker {
        pthread_t thread;
        bool started;
        int efd;
        char *conninfo;
        PgSettings settings;
        const atomic_bool *stop;
        const EngineKnobs *knobs;

        char *database; /* the policy's name of the database, or NULL: events' DATABASE= */
        Pg *pg; /* the worker thread's alone */

        pthread_mutex_t lock; /* guards everything below */
        pthread_cond_t cond;
        bool quit;
        Job *job;  /* submitted, not yet finished */
        Job *done; /* finished, not yet polled */
        WorkerProgress progress;
        PGcancel *cancel;
        bool in_step;
        uint64_t op_started;
        uint64_t op_seq;

        /* The canceller. cancel_lock is held by it while PQcancel() runs and by the worker
         * around every change of operation (op_begin/op_end/disconnect), so a cancel never hits
         * the statement after the one it was meant for (an audit-trail statement); the loop
         * never takes cancel_lock. Requests and results are under lock. */
        pthread_t canceller;
        bool canceller_started;
        pthread_mutex_t cancel_lock;
        pthread_cond_t cancel_cond;
        bool cancel_pending, cancel_steps_only;
        uint64_t cancel_seq;
};

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

Job *job_new(JobType type) {
        Job *j = xcalloc(1, sizeof(Job));
        j->type = type;
        j->fd = -1;
        j->lost_run_id = -1;
        return j;
}

void job_free(Job *j) {
        if (!j)
                return;
        for (size_t i = 0; j->claimed_by && i < j->n_rules; i++)
                free(j->claimed_by[i]);
        free(j->claimed_by);
        for (size_t i = 0; j->future_start && i < j->n_rules; i++)
                free(j->future_start[i]);
        free(j->future_start);
        free(j->claims);
        free(j->wait_usec);
        free(j->rules);
        free(j->health_rules);
        health_report_free(j->health);
        free(j->closed_runs);
        free(j->close_error);
        pg_error_done(&j->err);
        run_result_free(j->result);
        free(j);
}

static void wake(Worker *w) {
        uint64_t one = 1;
        ssize_t r;
        do
                r = write(w->efd, &one, sizeof(one));
        while (r < 0 && errno == EINTR);
}

/* Marks the start of one database operation (for the loop's hard limit and for cancels);
 * step: a rule start or batch, which a stop request may cancel. */
static void op_begin(Worker *w, bool step) {
        pthread_mutex_lock(&w->cancel_lock);
        pthread_mutex_lock(&w->lock);
        w->in_step = step;
        w->op_started = now_usec();
        w->op_seq++;
        pthread_mutex_unlock(&w->lock);
        pthread_mutex_unlock(&w->cancel_lock);
}

static void op_end(Worker *w) {
        /* Waits while a cancel for this operation is on its way (see cancel_lock). */
        pthread_mutex_lock(&w->cancel_lock);
        pthread_mutex_lock(&w->lock);
        w->in_step = false;
        w->op_started = 0;
        pthread_mutex_unlock(&w->lock);
        pthread_mutex_unlock(&w->cancel_lock);
}

static void disconnect(Worker *w) {
        pthread_mutex_lock(&w->cancel_lock);
        pthread_mutex_lock(&w->lock);
        if (w->cancel)
                PQfreeCancel(w->cancel);
        w->cancel = NULL;
        pthread_mutex_unlock(&w->lock);
        pthread_mutex_unlock(&w->cancel_lock);
        pg_free(w->pg);
        w->pg = NULL;
}

static void mark_stale_run(Worker *w, int64_t run_id) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, run_id);
        const char *p[] = { id };
        PgError e = {};
        /* Its rule runs still running, and the run: interrupted (sql/retention/005-safety.sql). */
        (void) pg_exec(w->pg, NULL, &e, "SELECT retention.interrupt_run($1::bigint)", 1, p);
        pg_error_done(&e);
}

/* The health of the job's rules, after it: best effort (STATUS=, metrics), never an error. */
static void read_health(Worker *w, Job *j) {
        if (!j->policy || j->n_health_rules == 0 || !pg_connection_ok(w->pg))
                return;
        PgError e = {};
        op_begin(w, false);
        (void) health_read(w->pg, j->policy, j->health_rules, j->n_health_rules, "daemon", HEALTH_DEFAULT_STALE_AFTER,
                           &j->health, &e);
        op_end(w);
        pg_error_done(&e);
}

static void do_connect(Worker *w, Job *j) {
        disconnect(w);
        op_begin(w, false);
        int k = pg_connect(w->conninfo, &w->settings, &w->pg, &j->err);
        if (k) {
                op_end(w);
                j->status = k == PG_ERR_CONNECTION ? JOB_LOST : JOB_NOT_READY;
                return;
        }
        k = trail_check_schema(w->pg, &j->err);
        op_end(w);
        if (k) {
                j->status = k == PG_ERR_CONNECTION ? JOB_LOST : JOB_NOT_READY;
                disconnect(w);
                return;
        }
        if (j->stale_run_id > 0) {
                op_begin(w, false);
                mark_stale_run(w, j->stale_run_id);
                op_end(w);
        }
        /* The trail must not keep saying that runs of dead sessions (a crash, an abandoned
         * worker) are in progress. A role that may not do it is told, not fatal. */
        PgError e = {};
        op_begin(w, false);
        k = trail_close_abandoned(w->pg, &j->closed_runs, &e);
        op_end(w);
        if (k == PG_ERR_CONNECTION) {
                /* Lost again at once: not connected, and the daemon says so (database-lost). */
                pg_error_done(&j->err);
                j->err = e;
                j->status = JOB_LOST;
                disconnect(w);
                return;
        }
        if (k)
                j->close_error = xasprintf("%s%s%s", e.primary ? e.primary : "error", e.sqlstate[0] ? " SQLSTATE " : "",
                                           e.sqlstate);
        pg_error_done(&e);
        read_health(w, j);
        PGcancel *c = PQgetCancel(w->pg->conn);
        pthread_mutex_lock(&w->lock);
        w->cancel = c;
        pthread_mutex_unlock(&w->lock);
        j->fd = PQsocket(w->pg->conn);
        j->status = JOB_OK;
}

static void do_check(Worker *w, Job *j) {
        if (w->pg && w->pg->conn)
                (void) PQconsumeInput(w->pg->conn);
        int k = PG_ERR_CONNECTION;
        if (pg_connection_ok(w->pg)) {
                op_begin(w, false);
                k = pg_exec0(w->pg, NULL, &j->err, "SELECT 1");
                op_end(w);
        } else
                pg_error_set(&j->err, "08006", NULL, NULL, "the server closed the connection");
        if (k == PG_ERR_CONNECTION || !pg_connection_ok(w->pg)) {
                j->status = JOB_LOST;
                disconnect(w);
                return;
        }
        j->status = JOB_OK;
        j->fd = PQsocket(w->pg->conn);
}

static bool stop_requested(const Worker *w) {
        return w->stop && atomic_load(w->stop);
}

/* The loop's hooks (run.h), with the job they work for. */
typedef struct RunCtx {
        Worker *w;
        Job *j;
} RunCtx;

/* The job's position of rule `index` (into the policy's rules). */
static size_t job_pos(const Job *j, size_t index) {
        for (size_t i = 0; i < j->n_rules; i++)
                if (j->rules[i] == index)
                        return i;
        return SIZE_MAX;
}

/* Several daemons may share this database: the rule's lock and its slot decide. */
static int hook_claim(void *userdata, size_t index, const Rule *rule, bool *go, PgError *err) {
        RunCtx *c = userdata;
        Job *j = c->j;
        size_t i = job_pos(j, index);
        PgError ce = {};
        int k = rule_slot_claim(c->w->pg, rule, j->force, &j->claims[i], &j->wait_usec[i], &j->claimed_by[i],
                                &j->future_start[i], &ce);
        if (k == PG_ERR_CONNECTION) {
                j->claims[i] = SLOT_NOT_TRIED;
                *err = ce;
                return k;
        }
        if (k) {
                /* Told by the loop, per rule; the rule waits for its next slot. The first such
                 * error is the job's. */
                if (!j->err.primary) {
                        j->err = ce;
                        ce = (PgError) {};
                }
                pg_error_done(&ce);
                return k;
        }
        *go = j->claims[i] == SLOT_CLAIMED;
        return 0;
}

static void hook_run_started(void *userdata, int64_t run_id) {
        RunCtx *c = userdata;
        pthread_mutex_lock(&c->w->lock);
        c->w->progress.run_started = true;
        c->w->progress.run_id = run_id;
        pthread_mutex_unlock(&c->w->lock);
        wake(c->w);
}

static void hook_rule_started(void *userdata, size_t index) {
        RunCtx *c = userdata;
        pthread_mutex_lock(&c->w->lock);
        c->w->progress.rule_started = true;
        c->w->progress.rule = job_pos(c->j, index);
        pthread_mutex_unlock(&c->w->lock);
        wake(c->w);
}

static void hook_op_begin(void *userdata, bool step) {
        op_begin(((RunCtx *) userdata)->w, step);
}

static void hook_op_end(void *userdata) {
        op_end(((RunCtx *) userdata)->w);
}

/* The pause between two batches while other sessions write (pacing): a wait on the worker's
 * condition, which a stop request (worker_cancel()) or quit ends at once. */
static void hook_pause(void *userdata, uint64_t usec) {
        Worker *w = ((RunCtx *) userdata)->w;
        if (usec == 0)
                return;
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t) (usec / 1000000u);
        deadline.tv_nsec += (long) (usec % 1000000u) * 1000;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&w->lock);
        while (!w->quit && !stop_requested(w))
                if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&w->lock);
}

/* One run of the job's rules through run.c, the terminal's loop, with the daemon's hooks. */
static void do_run(Worker *w, Job *j) {
        size_t n = j->n_rules ? j->n_rules : 1;
        j->claims = xcalloc(n, sizeof(SlotClaim));
        j->wait_usec = xcalloc(n, sizeof(int64_t));
        j->claimed_by = xcalloc(n, sizeof(char *));
        j->future_start = xcalloc(n, sizeof(char *));
        EnforceOptions o = {
                .hash_key = j->hash_key,
                .mode = "daemon",
                .stop = w->stop,
                .knobs = w->knobs,
        };
        RunCtx ctx = { .w = w, .j = j };
        const RunHooks hooks = {
                .userdata = &ctx,
                .order = j->rules,
                .n_order = j->n_rules,
                .claim = hook_claim,
                .run_started = hook_run_started,
                .rule_started = hook_rule_started,
                .op_begin = hook_op_begin,
                .op_end = hook_op_end,
                .pause = hook_pause,
        };
        RunResult *res = NULL;
        PgError err = {};
        int k = run_rules(w->pg, j->policy, &o, &hooks, &res, &err);
        if (res && res->run_id < 0 && res->n_rules == 0) {
                /* Nothing was claimed: no run. */
                run_result_free(res);
                res = NULL;
        }
        j->result = res;
        if (k == PG_ERR_CONNECTION) {
                j->status = JOB_LOST;
                j->lost_run_id = res ? res->run_id : -1;
        } else if (k)
                j->status = JOB_FAILED;
        if (k) {
                pg_error_done(&j->err);
                j->err = err;
        } else
                pg_error_done(&err);
        if (j->status != JOB_LOST)
                read_health(w, j);
        else
                disconnect(w);
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;

        event_set_database(w->database); /* this thread's events name its database */
        for (;;) {
                pthread_mutex_lock(&w->lock);
                while (!w->quit && !w->job)
                        pthread_cond_wait(&w->cond, &w->lock);
                Job *j = w->job;
                bool quit = w->quit && !j;
                pthread_mutex_unlock(&w->lock);
                if (quit)
                        break;

                switch (j->type) {
                case JOB_CONNECT:
                        do_connect(w, j);
                        break;
                case JOB_CHECK:
                        do_check(w, j);
                        break;
                case JOB_RUN:
                        do_run(w, j);
                        break;
                }

                pthread_mutex_lock(&w->lock);
                w->job = NULL;
                w->done = j;
                pthread_mutex_unlock(&w->lock);
                wake(w);
        }
        disconnect(w);
        return NULL;
}

/* The canceller: sends the cancel requests worker_cancel() queues, one at a time. It may block
 * in PQcancel() for as long as the server does not answer; only the worker (in op_end()) waits
 * for it then, never the loop. */
static void *canceller_main(void *userdata) {
        Worker *w = userdata;

        for (;;) {
                pthread_mutex_lock(&w->lock);
                while (!w->quit && !w->cancel_pending)
                        pthread_cond_wait(&w->cancel_cond, &w->lock);
                if (w->quit) {
                        pthread_mutex_unlock(&w->lock);
                        break;
                }
                uint64_t seq = w->cancel_seq;
                bool steps_only = w->cancel_steps_only;
                w->cancel_pending = false;
                pthread_mutex_unlock(&w->lock);

                char err[sizeof(((WorkerProgress *) NULL)->cancel_error)] = "";
                bool sent = false;
                pthread_mutex_lock(&w->cancel_lock);
                pthread_mutex_lock(&w->lock);
                /* Still the operation it was asked for: the worker cannot end it meanwhile. */
                PGcancel *c = w->cancel && w->op_started && w->op_seq == seq && (!steps_only || w->in_step) ? w->cancel
                                                                                                          : NULL;
                pthread_mutex_unlock(&w->lock);
                if (c)
                        sent = PQcancel(c, err, (int) sizeof(err)) == 1;
                else
                        snprintf(err, sizeof(err), "the statement had ended");
                pthread_mutex_unlock(&w->cancel_lock);

                pthread_mutex_lock(&w->lock);
                w->progress.cancel_done = true;
                w->progress.cancel_sent = sent;
                snprintf(w->progress.cancel_error, sizeof(w->progress.cancel_error), "%s", sent ? "" : err);
                pthread_mutex_unlock(&w->lock);
                wake(w);
        }
        return NULL;
}

int worker_new(const char *database, const char *conninfo, const PgSettings *settings, const atomic_bool *stop,
               const EngineKnobs *knobs, Worker **ret) {
        Worker *w = xcalloc(1, sizeof(Worker));
        w->database = database ? xstrdup(database) : NULL;
        w->conninfo = conninfo ? xstrdup(conninfo) : NULL;
        w->settings = *settings;
        w->stop = stop;
        w->knobs = knobs;
        pthread_mutex_init(&w->lock, NULL);
        pthread_mutex_init(&w->cancel_lock, NULL);
        pthread_cond_init(&w->cancel_cond, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* pace_wait()'s deadline */
        pthread_cond_init(&w->cond, &ca);
        pthread_condattr_destroy(&ca);
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                int r = -errno;
                worker_free(w);
                return r;
        }
        int r = pthread_create(&w->canceller, NULL, canceller_main, w);
        if (r != 0) {
                worker_free(w);
                return -r;
        }
        w->canceller_started = true;
        r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
                worker_free(w);
                return -r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

void worker_free(Worker *w) {
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->quit = true;
        pthread_cond_signal(&w->cond);
        pthread_cond_signal(&w->cancel_cond);
        pthread_mutex_unlock(&w->lock);
        if (w->started)
                pthread_join(w->thread, NULL);
        else
                disconnect(w);
        if (w->canceller_started)
                pthread_join(w->canceller, NULL);
        job_free(w->job);
        job_free(w->done);
        if (w->efd >= 0)
                close(w->efd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->cancel_lock);
        pthread_cond_destroy(&w->cancel_cond);
        free(w->conninfo);
        free(w->database);
        free(w);
}

int worker_fd(const Worker *w) {
        return w->efd;
}

void worker_submit(Worker *w, Job *j) {
        pthread_mutex_lock(&w->lock);
        w->job = j;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

Job *worker_poll(Worker *w, WorkerProgress *p) {
        uint64_t v;
        while (read(w->efd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&w->lock);
        *p = w->progress;
        w->progress.run_started = false;
        w->progress.rule_started = false;
        w->progress.cancel_done = false;
        Job *j = TAKE_PTR(w->done);
        pthread_mutex_unlock(&w->lock);
        return j;
}

bool worker_cancel(Worker *w, bool steps_only) {
        bool queued = false;
        /* Never blocks: the canceller sends it (and cannot hit a later statement, see
         * cancel_lock); the loop only takes the lock that no one holds for long. */
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->cond); /* ends a pause between batches (pace_wait()) */
        if (w->cancel && w->op_started && (!steps_only || w->in_step)) {
                w->cancel_pending = true;
                w->cancel_steps_only = steps_only;
                w->cancel_seq = w->op_seq;
                pthread_cond_signal(&w->cancel_cond);
                queued = true;
        }
        pthread_mutex_unlock(&w->lock);
        return queued;
}

uint64_t worker_op_started(Worker *w, uint64_t *seq) {
        pthread_mutex_lock(&w->lock);
        uint64_t t = w->op_started;
        if (seq)
                *seq = w->op_seq;
        pthread_mutex_unlock(&w->lock);
        return t;
}
