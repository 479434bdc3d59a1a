/* daemon.c — `retentiond daemon`: the sd-event loop with its signals, schedule, reload, database
 * outages and systemd notification, for one database or each database of the policy's
 * `databases:` (a Target each: its own worker thread and connection, outage state and backoff).
 * The loop never waits for a database (the workers do), never exits because one is down, and is
 * the only thread that logs. */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "result.h"
#include "rule-lock.h"
#include "event.h"
#include "exitcode.h"
#include "hashkey.h"
#include "health.h"
#include "metrics.h"
#include "policy-load.h"
#include "report.h"
#include "schedule.h"
#include "util.h"
#include "worker.h"

/* Rules due within this much of each other go into one run. */
#define COALESCE_USEC (1 * USEC_PER_SEC)
/* When another session enforces a rule: try it again after at most this. */
#define BUSY_RETRY_USEC (60 * USEC_PER_SEC)
#define SUPERVISE_INTERVAL_USEC (1 * USEC_PER_SEC)
#define STATUS_REASON_MAX 160
#define REASON_MAX 2048

/* A loaded policy with its hash key. A run holds a reference, so a reload can replace the
 * manager's policy at once while the run in flight finishes with the one it started with. */
typedef struct PolicyRef {
        unsigned n_ref;
        Policy *policy;
        HashKey *key;
} PolicyRef;

static PolicyRef *policy_ref_new(Policy *p, HashKey *key) {
        PolicyRef *r = xcalloc(1, sizeof(PolicyRef));
        r->n_ref = 1;
        r->policy = p;
        r->key = key;
        return r;
}

static PolicyRef *policy_ref(PolicyRef *r) {
        r->n_ref++;
        return r;
}

static PolicyRef *policy_unref(PolicyRef *r) {
        if (!r || --r->n_ref > 0)
                return NULL;
        policy_free(r->policy);
        hash_key_free(r->key);
        free(r);
        return NULL;
}

typedef struct RuleSched {
        uint64_t due; /* CLOCK_MONOTONIC µs */
        bool running; /* part of the run in flight: never started twice */
        bool resume;  /* its last rule run was interrupted: it goes first in the next run */
        size_t target; /* index into Manager.targets; NO_TARGET: not enforced by this daemon */
} RuleSched;

#define NO_TARGET SIZE_MAX

typedef enum DbState {
        DB_CONNECTING, /* the first attempt */
        DB_UP,
        DB_DOWN, /* unreachable or not ready: the retry timer is armed */
} DbState;

typedef struct Manager Manager;

/* One database the daemon enforces: the worker that owns its connection, its job, its outage
 * state and backoff, and what its last run did. */
typedef struct Target {
        Manager *m;
        char *name;     /* the policy's name of the database; NULL without `databases:` */
        char *conninfo; /* NULL: libpq's environment */

        Worker *worker;
        sd_event_source *worker_source, *idle_source, *retry_timer, *supervise_timer;
        Job *current;           /* the job in flight, or NULL */
        PolicyRef *current_pol; /* the reference a JOB_RUN holds */
        uint64_t current_started;
        uint64_t cancelled_seq;
        int64_t current_run_id;
        size_t current_rule;
        bool current_rule_known;

        DbState db;
        int db_fd;
        unsigned attempts;
        char *db_reason;
        bool lost_logged, not_ready_logged;
        uint64_t lost_since;
        int64_t stale_run_id;

        bool run_requested;

        uint64_t hung_since; /* a statement ran past the hard limit and was cancelled: when it began */
        HealthReport *health; /* the rules' health from the audit trail, after the last job that read it */

        bool have_last;
        time_t last_at;
        int64_t last_deleted, last_anonymised, last_held;
        int last_failed;
        bool last_interrupted;
} Target;

struct Manager {
        DaemonConfig cfg;
        sd_event *event;
        sd_event_source *sigterm, *sigint, *sighup, *sigusr1;
        sd_event_source *schedule_timer, *stop_timer;

        PolicyRef *pol;
        RuleSched *sched; /* parallel to pol->policy->rules */
        PgSettings settings;
        uint64_t hard_limit_usec;

        Target *targets;
        size_t n_targets;

        MetricsWriter *metrics; /* --metrics-file, or NULL */
        /* The policy in force, and what was last found on disk when it could not replace it. */
        time_t policy_loaded_at;
        time_t disk_rejected_since; /* 0: the files on disk were in force when last loaded */
        const char *disk_rejected_what; /* "invalid", "not loaded" */
        char *disk_rejected_why;   /* "6 errors, first FILE:LINE:COLUMN", ... */

        bool stopping;
        bool abandoned;
        atomic_bool stop; /* the worker threads read it between batches */
};

static void dispatch(Manager *m);
static void update_status(Manager *m, const char *prefix);

static uint64_t now_mono(Manager *m) {
        uint64_t t;
        if (m->event && sd_event_now(m->event, CLOCK_MONOTONIC, &t) >= 0)
                return t;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000u;
}

static const char *format_hhmm(time_t t, char *buf, size_t n) {
        struct tm tm;
        if (!localtime_r(&t, &tm) || strftime(buf, n, "%H:%M", &tm) == 0)
                snprintf(buf, n, "?");
        return buf;
}

static const char *format_delay(uint64_t usec, char *buf, size_t n) {
        if (usec < 10 * USEC_PER_SEC)
                snprintf(buf, n, "%" PRIu64 ".%01" PRIu64 " s", usec / USEC_PER_SEC, usec / 100000 % 10);
        else
                snprintf(buf, n, "%" PRIu64 " s", (usec + USEC_PER_SEC / 2) / USEC_PER_SEC);
        return buf;
}

/* One line, no control characters, bounded: for log text (and, cut shorter, STATUS=). */
static char *one_line(const char *s) {
        StrBuf b = {};
        bool space = false;
        for (const char *p = s ? s : ""; *p && b.len < REASON_MAX; p++) {
                if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == ' ') {
                        space = b.len > 0;
                        continue;
                }
                if (space)
                        strbuf_appendc(&b, ' ');
                space = false;
                strbuf_appendc(&b, *p);
        }
        return strbuf_steal(&b);
}

/* s (one line) for STATUS=: at most max bytes, cut at a word boundary with an ellipsis; the
 * journal has the whole message. */
static char *status_cut(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n <= max)
                return xstrdup(s);
        size_t cut = max - 3; /* room for "…" (3 bytes in UTF-8) */
        while (cut > 0 && s[cut] != ' ')
                cut--;
        while (cut > 0 && (s[cut - 1] == ' ' || s[cut - 1] == ',' || s[cut - 1] == ':' || s[cut - 1] == ';'))
                cut--;
        if (cut == 0) /* one long word: cut it, but never inside a UTF-8 sequence */
                for (cut = max - 3; cut > 0 && ((unsigned char) s[cut] & 0xc0) == 0x80; cut--)
                        ;
        return xasprintf("%.*s\u2026", (int) cut, s);
}

static ssize_t find_rule(const Policy *p, const char *name) {
        for (size_t i = 0; i < p->n_rules; i++)
                if (streq(p->rules[i].name, name))
                        return (ssize_t) i;
        return -1;
}

static uint64_t rule_period(const Rule *r) {
        uint64_t p = duration_approx_usec(&r->schedule);
        return p > 0 ? p : USEC_PER_SEC;
}

static uint64_t next_slot(const Rule *r, uint64_t from) {
        uint64_t p = rule_period(r);
        return from + p + schedule_jitter_usec(p, random_u64());
}

/* When rule i may start next: its deadline, moved to the start of its window if it falls
 * outside. */
static uint64_t rule_eligible(Manager *m, size_t i, uint64_t now, time_t wall) {
        const Rule *r = &m->pol->policy->rules[i];
        uint64_t t = m->sched[i].due > now ? m->sched[i].due : now;
        if (!r->window)
                return t;
        return t + window_delay_usec(r->window, wall + (time_t) ((t - now) / USEC_PER_SEC));
}

/* The earliest moment a rule of target t (NULL: of any target that is up and idle) may start. */
static bool next_eligible(Manager *m, const Target *t, uint64_t now, time_t wall, uint64_t *ret) {
        bool found = false;
        for (size_t i = 0; i < m->pol->policy->n_rules; i++) {
                const RuleSched *s = &m->sched[i];
                if (s->running || s->target == NO_TARGET)
                        continue;
                const Target *rt = &m->targets[s->target];
                if (t ? rt != t : rt->db != DB_UP || rt->current != NULL)
                        continue;
                uint64_t e = rule_eligible(m, i, now, wall);
                if (!found || e < *ret)
                        *ret = e;
                found = true;
        }
        return found;
}

/* ---- timers ---- */

static int arm_timer(Manager *m, sd_event_source **s, uint64_t usec, sd_event_time_handler_t cb, void *userdata) {
        if (*s) {
                int r = sd_event_source_set_time(*s, usec);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
        }
        return sd_event_add_time(m->event, s, CLOCK_MONOTONIC, usec, 10 * USEC_PER_MSEC, cb, userdata);
}

static void disarm_timer(sd_event_source *s) {
        if (s)
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

/* ---- STATUS= ---- */

static void append_last_run(const Target *t, StrBuf *b) {
        char tb[16];
        if (!t->have_last) {
                strbuf_append(b, "no run yet");
                return;
        }
        strbuf_appendf(b, "last run %s: %" PRId64 " deleted, %" PRId64 " anonymised, %" PRId64 " held, %d failed%s",
                       format_hhmm(t->last_at, tb, sizeof(tb)), t->last_deleted, t->last_anonymised, t->last_held,
                       t->last_failed, t->last_interrupted ? " (interrupted)" : "");
}

static void append_health(const Target *t, StrBuf *b) {
        if (!t->health)
                return;
        strbuf_append(b, "; ");
        health_summary(t->health, b);
}

static void append_target_status(Manager *m, const Target *t, StrBuf *b) {
        char tb[16];
        uint64_t now = now_mono(m);
        time_t wall = time(NULL);

        if (t->current && t->hung_since) {
                char d[32];
                strbuf_appendf(b, "database not answering: a statement has run for %s, cancel requested; ",
                               format_delay(now - t->hung_since, d, sizeof(d)));
        }
        if (t->current && t->current->type == JOB_RUN) {
                strbuf_append(b, "running");
                if (t->current_run_id >= 0)
                        strbuf_appendf(b, ": run %" PRId64, t->current_run_id);
                if (t->current_rule_known && t->current_rule < t->current->n_rules)
                        strbuf_appendf(b, ", rule %s (%zu of %zu)",
                                       t->current->policy->rules[t->current->rules[t->current_rule]].name,
                                       t->current_rule + 1, t->current->n_rules);
                strbuf_append(b, "; ");
                append_last_run(t, b);
        } else if (t->db != DB_UP) {
                _cleanup_free_ char *reason = status_cut(t->db_reason ? t->db_reason : "connecting", STATUS_REASON_MAX);
                strbuf_appendf(b, "waiting for database: %s", reason);
                strbuf_append(b, "; ");
                append_last_run(t, b);
        } else {
                append_last_run(t, b);
                uint64_t next;
                if (t->run_requested || !next_eligible(m, t, now, wall, &next))
                        strbuf_append(b, t->run_requested ? "; next run now" : "; no rules");
                else if (next <= now + COALESCE_USEC)
                        strbuf_append(b, "; next run now");
                else
                        strbuf_appendf(b, "; next run %s",
                                       format_hhmm(wall + (time_t) ((next - now + USEC_PER_SEC - 1) / USEC_PER_SEC), tb,
                                                   sizeof(tb)));
                strbuf_append(b, "; database ok");
        }
        append_health(t, b);
}

/* After a rejected reload the files on disk are not the policy in force: say so first, since
 * the next start (a reboot, a package upgrade) would fail on them. */
static void append_policy_status(const Manager *m, StrBuf *b) {
        char t1[16], t2[16];
        if (!m->disk_rejected_since)
                return;
        _cleanup_free_ char *why = status_cut(m->disk_rejected_why ? m->disk_rejected_why : "rejected", STATUS_REASON_MAX);
        strbuf_appendf(b, "policy on disk %s since %s (%s), running the one loaded at %s; ",
                       m->disk_rejected_what ? m->disk_rejected_what : "rejected",
                       format_hhmm(m->disk_rejected_since, t1, sizeof(t1)), why, format_hhmm(m->policy_loaded_at, t2, sizeof(t2)));
}

/* One line: as it always was for one database; "NAME: ... | NAME: ..." for several. */
static void update_status(Manager *m, const char *prefix) {
        StrBuf b = {};
        if (!m->stopping)
                append_policy_status(m, &b);
        if (m->stopping)
                strbuf_append(&b, "stopping: finishing the batch in flight");
        else
                for (size_t i = 0; i < m->n_targets; i++) {
                        const Target *t = &m->targets[i];
                        if (m->n_targets > 1)
                                strbuf_appendf(&b, "%s%s: ", i ? " | " : "", t->name);
                        append_target_status(m, t, &b);
                }
        (void) sd_notifyf(false, "%sSTATUS=%s", prefix ? prefix : "", strbuf_str(&b));
        strbuf_done(&b);
}

/* Events and messages about a database name it when the policy names its databases. */
static const char *target_label(const Target *t) {
        return t->name;
}

/* ---- jobs ---- */

static int on_supervise(sd_event_source *s, uint64_t usec, void *userdata);
static int on_idle_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void submit(Target *t, Job *j) {
        Manager *m = t->m;
        t->idle_source = sd_event_source_disable_unref(t->idle_source);
        t->current = j;
        t->current_started = now_mono(m);
        t->current_run_id = -1;
        t->current_rule_known = false;
        worker_submit(t->worker, j);
        if (arm_timer(m, &t->supervise_timer, t->current_started + SUPERVISE_INTERVAL_USEC, on_supervise, t) < 0)
                log_warning("cannot arm the supervision timer: %m");
}

static void watch_idle_connection(Target *t) {
        if (t->idle_source || t->current || t->db != DB_UP || t->db_fd < 0)
                return;
        /* Readable while idle: the server closed the connection (shutdown, restart, idle
         * timeout) or sent something unasked. The worker looks; the loop never reads it. */
        int r = sd_event_add_io(t->m->event, &t->idle_source, t->db_fd, EPOLLIN | EPOLLRDHUP, on_idle_io, t);
        if (r < 0)
                log_debug("cannot watch the idle connection: %s", strerror(-r));
}

/* The rules this target enforces (indices into the policy in force), for the health it reads. */
static void set_health_rules(Target *t, Job *j) {
        Manager *m = t->m;
        size_t ti = (size_t) (t - m->targets);
        j->health_rules = xcalloc(m->pol->policy->n_rules ? m->pol->policy->n_rules : 1, sizeof(size_t));
        for (size_t i = 0; i < m->pol->policy->n_rules; i++)
                if (m->sched[i].target == ti)
                        j->health_rules[j->n_health_rules++] = i;
}

static void start_run(Target *t, size_t *rules, size_t n, bool force) {
        Manager *m = t->m;
        Job *j = job_new(JOB_RUN);
        j->force = force;
        j->policy = m->pol->policy;
        j->hash_key = m->pol->key;
        j->rules = rules;
        j->n_rules = n;
        set_health_rules(t, j);
        t->current_pol = policy_ref(m->pol);
        for (size_t i = 0; i < n; i++)
                m->sched[rules[i]].running = true;
        submit(t, j);
        update_status(m, NULL);
}

static void start_connect(Target *t) {
        Job *j = job_new(JOB_CONNECT);
        j->stale_run_id = t->stale_run_id;
        /* Once connected, it reads the rules' health: STATUS= knows them also after a restart. */
        j->policy = t->m->pol->policy;
        set_health_rules(t, j);
        t->current_pol = policy_ref(t->m->pol);
        submit(t, j);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Target *t = userdata;
        if (!t->current && !t->m->stopping) {
                if (t->name)
                        log_debug("connecting to database %s (attempt %u)", t->name, t->attempts + 1);
                else
                        log_debug("connecting to the database (attempt %u)", t->attempts + 1);
                start_connect(t);
        }
        return 0;
}

static void db_up(Target *t, int fd) {
        Manager *m = t->m;
        uint64_t now = now_mono(m);
        const char *label = target_label(t);
        if (t->lost_logged) {
                EventFields ev = EVENT_FIELDS_INIT;
                ev.duration_usec = (int64_t) (now - t->lost_since);
                ev.database = label;
                char d[32];
                if (label)
                        event_emit(EVENT_DATABASE_BACK, event_priority(EVENT_DATABASE_BACK), &ev,
                                   "connection to database %s restored after %s; enforcement resumes", label,
                                   format_delay(now - t->lost_since, d, sizeof(d)));
                else
                        event_emit(EVENT_DATABASE_BACK, event_priority(EVENT_DATABASE_BACK), &ev,
                                   "connection to the database restored after %s; enforcement resumes",
                                   format_delay(now - t->lost_since, d, sizeof(d)));
        }
        if (t->not_ready_logged) {
                if (label)
                        log_notice("the retention schema is in place in database %s now; enforcement resumes", label);
                else
                        log_notice("the retention schema is in place now; enforcement resumes");
        }
        t->lost_logged = t->not_ready_logged = false;
        t->attempts = 0;
        t->db = DB_UP;
        t->db_fd = fd;
        t->stale_run_id = 0;
        free(t->db_reason);
        t->db_reason = NULL;
}

static void db_down(Target *t, JobStatus st, const PgError *e) {
        Manager *m = t->m;
        uint64_t now = now_mono(m);
        const char *label = target_label(t);
        free(t->db_reason);
        t->db_reason = one_line(e->primary ? e->primary : "unknown error");
        t->db = DB_DOWN;
        t->db_fd = -1;
        t->idle_source = sd_event_source_disable_unref(t->idle_source);

        uint64_t delay = backoff_usec(t->attempts++, random_u64());
        char d[32];
        if (st == JOB_LOST) {
                if (!t->lost_logged) {
                        EventFields ev = EVENT_FIELDS_INIT;
                        ev.sqlstate = e->sqlstate[0] ? e->sqlstate : NULL;
                        ev.database = label;
                        if (label)
                                event_emit(EVENT_DATABASE_LOST, event_priority(EVENT_DATABASE_LOST), &ev,
                                           "database %s unavailable: %s; its rules wait, reconnecting in the background",
                                           label, t->db_reason);
                        else
                                event_emit(EVENT_DATABASE_LOST, event_priority(EVENT_DATABASE_LOST), &ev,
                                           "database unavailable: %s; reconnecting in the background", t->db_reason);
                        t->lost_logged = true;
                        t->lost_since = now;
                }
        } else if (!t->not_ready_logged) {
                _cleanup_free_ char *primary = label ? xasprintf("database %s not ready for enforcement: %s", label, t->db_reason)
                                                     : xasprintf("database not ready for enforcement: %s", t->db_reason);
                EventFields ev = EVENT_FIELDS_INIT;
                ev.sqlstate = e->sqlstate[0] ? e->sqlstate : NULL;
                ev.database = label;
                log_pg_style(LOG_ERR, &ev, primary, e->detail, e->hint);
                t->not_ready_logged = true;
        }
        log_debug("database %s attempt %u failed (%s); next attempt in %s", t->name ? t->name : "", t->attempts,
                  t->db_reason, format_delay(delay, d, sizeof(d)));
        if (arm_timer(m, &t->retry_timer, now + delay, on_retry, t) < 0)
                log_error("cannot arm the reconnect timer: %m");
}

/* A lost run: the last rule's result is only the connection error; that rule runs again
 * after the reconnect, so it is not reported as failed. */
static void drop_lost_rule(RunResult *res) {
        if (res->n_rules == 0)
                return;
        RuleResult *last = &res->rules[res->n_rules - 1];
        if (last->outcome == RULE_SUCCESS || pg_error_class(last->error.sqlstate) != PG_ERR_CONNECTION)
                return;
        rule_result_done(last);
        res->n_rules--;
}

static void run_done(Target *t, Job *j) {
        Manager *m = t->m;
        RunResult *res = j->result;
        uint64_t now = now_mono(m);
        event_set_database(t->name); /* every event of this run says which database */
        const Policy *jp = j->policy;

        if (res && j->status == JOB_LOST) {
                drop_lost_rule(res);
                res->interrupted = true;
        }
        if (res && res->run_id >= 0) {
                report_run_events(res);
                t->have_last = true;
                t->last_at = time(NULL);
                t->last_deleted = t->last_anonymised = t->last_held = 0;
                t->last_failed = 0;
                t->last_interrupted = res->interrupted;
                for (size_t i = 0; i < res->n_rules; i++) {
                        t->last_deleted += res->rules[i].deleted;
                        t->last_anonymised += res->rules[i].anonymised;
                        t->last_held += res->rules[i].held;
                        if (res->rules[i].outcome != RULE_SUCCESS && res->rules[i].outcome != RULE_INTERRUPTED)
                                t->last_failed++;
                }
        }

        /* Reschedule by name: the policy may have been reloaded while the run went on. */
        for (size_t k = 0; k < j->n_rules; k++) {
                const Rule *jr = &jp->rules[j->rules[k]];
                ssize_t i = find_rule(m->pol->policy, jr->name);
                if (i < 0)
                        continue;
                const Rule *r = &m->pol->policy->rules[i];
                RuleSched *s = &m->sched[i];
                s->running = false;
                bool ran = false;
                for (size_t x = 0; res && x < res->n_rules; x++)
                        if (res->rules[x].rule == jr)
                                ran = true;
                SlotClaim claim = j->claims ? j->claims[k] : SLOT_NOT_TRIED;
                char d[32];
                if (j->future_start && j->future_start[k]) {
                        EventFields ev = EVENT_FIELDS_INIT;
                        ev.rule = jr->name;
                        ev.database = target_label(t);
                        event_emit(EVENT_SLOT_IN_FUTURE, event_priority(EVENT_SLOT_IN_FUTURE), &ev,
                                   "rule %s: its last start in retention.rule_slots, %s, lies in the future by the"
                                   " database's clock (the clock was moved back, or the row was forged); ignored, the rule runs",
                                   jr->name, j->future_start[k]);
                }
                /* Claimed and not finished (a stop, a lost connection): it goes first next time. */
                bool finished = false;
                for (size_t x = 0; res && x < res->n_rules; x++)
                        if (res->rules[x].rule == jr && res->rules[x].outcome != RULE_INTERRUPTED)
                                finished = true;
                if (claim == SLOT_CLAIMED)
                        s->resume = !finished;
                if (ran || j->status == JOB_FAILED || claim == SLOT_ERROR) {
                        s->due = next_slot(r, t->current_started); /* also a skipped (lock timeout) rule */
                        if (claim == SLOT_ERROR && j->status != JOB_FAILED) {
                                EventFields ev = EVENT_FIELDS_INIT;
                                ev.rule = jr->name;
                                ev.sqlstate = j->err.sqlstate[0] ? j->err.sqlstate : NULL;
                                _cleanup_free_ char *primary = xasprintf("rule \"%s\" not started: %s", jr->name,
                                                                         j->err.primary ? j->err.primary : "error");
                                log_pg_style(LOG_ERR, &ev, primary, j->err.detail, j->err.hint);
                        }
                } else if (claim == SLOT_TAKEN) {
                        /* Another daemon (or this one before a restart) started it within the slot:
                         * try again when the slot ends, by the database's clock. */
                        uint64_t p = rule_period(r);
                        uint64_t wait = j->wait_usec[k] > 0 ? (uint64_t) j->wait_usec[k] : 0;
                        if (wait > p)
                                wait = p;
                        s->due = now + wait + schedule_jitter_usec(p, random_u64());
                        log_debug("rule %s: this slot was taken by %s; next attempt in %s", jr->name,
                                  j->claimed_by[k] ? j->claimed_by[k] : "another session",
                                  format_delay(s->due - now, d, sizeof(d)));
                } else if (claim == SLOT_LOCKED) {
                        uint64_t p = rule_period(r) < BUSY_RETRY_USEC ? rule_period(r) : BUSY_RETRY_USEC;
                        s->due = now + p + schedule_jitter_usec(p, random_u64());
                        log_notice("rule %s not started: %s; retrying in %s", jr->name,
                                   j->claimed_by[k] ? j->claimed_by[k] : "another session enforces it",
                                   format_delay(s->due - now, d, sizeof(d)));
                }
                /* lost or interrupted before it started: still due */
        }

        EventFields ev = EVENT_FIELDS_INIT;
        ev.run_id = res ? res->run_id : -1;
        ev.database = target_label(t);
        switch (j->status) {
        case JOB_OK:
                break;
        case JOB_LOST:
                if (res && res->run_id >= 0)
                        t->stale_run_id = res->run_id;
                db_down(t, JOB_LOST, &j->err);
                break;
        case JOB_NOT_READY:
        case JOB_FAILED: {
                _cleanup_free_ char *primary = xasprintf("run failed: %s", j->err.primary ? j->err.primary : "unknown error");
                ev.sqlstate = j->err.sqlstate[0] ? j->err.sqlstate : NULL;
                log_pg_style(LOG_ERR, &ev, primary, j->err.detail, j->err.hint);
                break;
        }
        }
        t->current_pol = policy_unref(t->current_pol);
        event_set_database(NULL);
}

static bool any_busy(const Manager *m) {
        for (size_t i = 0; i < m->n_targets; i++)
                if (m->targets[i].current)
                        return true;
        return false;
}

/* What a job read from or repaired in the audit trail. */
static void take_trail_news(Target *t, Job *j) {
        if (j->closed_runs) {
                EventFields ev = EVENT_FIELDS_INIT;
                ev.database = target_label(t);
                event_emit(EVENT_RUNS_CLOSED, event_priority(EVENT_RUNS_CLOSED), &ev,
                           "runs %s%s%s were still marked running, but their database sessions had ended: recorded as interrupted",
                           j->closed_runs, t->name ? " in database " : "", t->name ? t->name : "");
        }
        if (j->close_error)
                log_warning("runs left running by ended sessions%s%s could not be recorded as interrupted: %s",
                            t->name ? " in database " : "", t->name ? t->name : "", j->close_error);
        if (j->health) {
                health_report_free(t->health);
                t->health = TAKE_PTR(j->health);
                /* After a restart (or reconnect): rules whose last rule run was interrupted go first. */
                if (j->type == JOB_CONNECT)
                        for (size_t i = 0; i < t->health->n_rules; i++) {
                                ssize_t x = find_rule(t->m->pol->policy, t->health->rules[i].name);
                                if (x >= 0 && streq_ptr(t->health->rules[i].last_outcome, "interrupted"))
                                        t->m->sched[x].resume = true;
                        }
                if (!t->have_last && t->health->have_last_run) {
                        /* After a restart: the last run the trail knows. */
                        t->have_last = true;
                        t->last_at = (time_t) t->health->last_run_finished;
                        t->last_deleted = t->health->last_run_deleted;
                        t->last_anonymised = t->health->last_run_anonymised;
                        t->last_held = t->health->last_run_held;
                        t->last_failed = t->health->last_run_failed;
                        t->last_interrupted = streq_ptr(t->health->last_run_outcome, "interrupted");
                }
        }
}

/* The Prometheus textfile, from every target's health: written by the metrics thread. */
static void write_metrics(Manager *m) {
        if (!m->metrics)
                return;
        int e = metrics_writer_take_error(m->metrics);
        if (e < 0)
                log_warning("could not write the metrics file %s: %s", m->cfg.metrics_file, strerror(-e));
        MetricsDatabase *dbs = xcalloc(m->n_targets, sizeof(MetricsDatabase));
        for (size_t i = 0; i < m->n_targets; i++)
                dbs[i] = (MetricsDatabase) {
                        .name = m->targets[i].name ? m->targets[i].name : "default",
                        .up = m->targets[i].db == DB_UP,
                        .health = m->targets[i].health,
                };
        StrBuf b = {};
        metrics_render(dbs, m->n_targets, (double) time(NULL), &b);
        free(dbs);
        metrics_writer_submit(m->metrics, strbuf_steal(&b));
}

static void job_done(Target *t, Job *j) {
        Manager *m = t->m;
        t->current = NULL;
        t->hung_since = 0;
        disarm_timer(t->supervise_timer);
        take_trail_news(t, j);

        switch (j->type) {
        case JOB_CONNECT:
                if (j->status == JOB_OK)
                        db_up(t, j->fd);
                else
                        db_down(t, j->status, &j->err);
                break;
        case JOB_CHECK:
                if (j->status == JOB_LOST)
                        db_down(t, JOB_LOST, &j->err);
                break;
        case JOB_RUN:
                run_done(t, j);
                break;
        }
        t->current_pol = policy_unref(t->current_pol);
        if (j->type != JOB_CHECK || j->status != JOB_OK)
                write_metrics(m);
        job_free(j);

        if (m->stopping) {
                if (!any_busy(m))
                        (void) sd_event_exit(m->event, EXIT_OK);
                return;
        }
        dispatch(m);
}

static int on_worker(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Target *t = userdata;
        WorkerProgress p;
        Job *j = worker_poll(t->worker, &p);

        if (p.run_started && t->current) {
                t->current_run_id = p.run_id;
                event_set_database(t->name);
                report_run_started(p.run_id, "daemon", t->current->n_rules);
                event_set_database(NULL);
        }
        if (p.rule_started && t->current) {
                t->current_rule = p.rule;
                t->current_rule_known = true;
        }
        if (p.cancel_done) {
                if (p.cancel_sent)
                        log_debug("cancel request delivered to the server%s%s", t->name ? " of database " : "",
                                  t->name ? t->name : "");
                else
                        log_debug("no cancel request delivered%s%s: %s", t->name ? " to database " : "",
                                  t->name ? t->name : "", p.cancel_error);
        }
        if (j)
                job_done(t, j);
        else if (p.run_started || p.rule_started)
                update_status(t->m, NULL);
        return 0;
}

static int on_idle_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Target *t = userdata;
        t->idle_source = sd_event_source_disable_unref(t->idle_source);
        if (!t->current && !t->m->stopping && t->db == DB_UP)
                submit(t, job_new(JOB_CHECK));
        return 0;
}

static int on_supervise(sd_event_source *s, uint64_t usec, void *userdata) {
        Target *t = userdata;
        Manager *m = t->m;
        if (!t->current)
                return 0;
        uint64_t now = now_mono(m), seq;
        uint64_t started = worker_op_started(t->worker, &seq);
        if (started && now > started + m->hard_limit_usec && seq != t->cancelled_seq) {
                char d1[32], d2[32];
                t->cancelled_seq = seq;
                /* Never PQcancel() here: against a frozen server it blocks, and the loop must go
                 * on feeding the watchdog. The worker's canceller sends it. */
                bool queued = worker_cancel(t->worker, false);
                if (queued)
                        t->hung_since = started;
                log_warning("a database statement%s%s has run for %s, longer than the limit of %s: %s",
                            t->name ? " in database " : "", t->name ? t->name : "",
                            format_delay(now - started, d1, sizeof(d1)), format_delay(m->hard_limit_usec, d2, sizeof(d2)),
                            queued ? "cancelling it" : "it has just ended");
                update_status(m, NULL);
        } else if (t->hung_since && !started)
                t->hung_since = 0;
        if (arm_timer(m, &t->supervise_timer, now + SUPERVISE_INTERVAL_USEC, on_supervise, t) < 0)
                log_warning("cannot arm the supervision timer: %m");
        return 0;
}

/* ---- the schedule ---- */

static int on_schedule(sd_event_source *s, uint64_t usec, void *userdata) {
        dispatch(userdata);
        return 0;
}

/* Starts a job on every target that is idle and up: a requested run of all its rules, else its
 * rules due now; then arms the timer for the next deadline of the idle targets. A target that
 * is down or busy calls this again when its job ends or it is back. */
static void dispatch(Manager *m) {
        if (m->stopping)
                return;
        const Policy *p = m->pol->policy;
        uint64_t now = now_mono(m);
        time_t wall = time(NULL);

        for (size_t ti = 0; ti < m->n_targets; ti++) {
                Target *t = &m->targets[ti];
                if (t->current || t->db != DB_UP)
                        continue;
                size_t *due = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(size_t)), n = 0;
                bool force = t->run_requested;
                t->run_requested = false;
                /* Interrupted rules first (in policy order), then the others in policy order: a
                 * later rule must not act on rows an interrupted one had still to delete. */
                for (int pass = 0; pass < 2; pass++)
                        for (size_t i = 0; i < p->n_rules; i++) {
                                if (m->sched[i].target != ti || m->sched[i].resume != (pass == 0))
                                        continue;
                                if (force || (!m->sched[i].running && m->sched[i].due <= now + COALESCE_USEC &&
                                              (!p->rules[i].window || window_contains(p->rules[i].window, wall))))
                                        due[n++] = i;
                        }
                if (n > 0)
                        start_run(t, due, n, force);
                else {
                        free(due);
                        watch_idle_connection(t);
                }
        }

        uint64_t next;
        if (next_eligible(m, NULL, now, wall, &next)) {
                if (arm_timer(m, &m->schedule_timer, next, on_schedule, m) < 0)
                        log_error("cannot arm the schedule timer: %m");
        } else
                disarm_timer(m->schedule_timer);
        update_status(m, NULL);
}

/* ---- policy ---- */

static const char *startswith(const char *s, const char *prefix) {
        size_t n = strlen(prefix);
        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* A warning of the loader that someone besides root may change the policy (policy-load.c's
 * "policy file is writable by ...", "policy file is owned by user ...", "policy directory
 * \"DIR\" is writable by / owned by ..."): the policy-file-writable event. *dir gets the
 * directory's path for the directory's warning. */
static bool writable_warning(const Diagnostic *x, char **dir) {
        *dir = NULL;
        if (x->severity != SEVERITY_WARNING || !x->message)
                return false;
        if (startswith(x->message, "policy file is writable by ") || startswith(x->message, "policy file is owned by user "))
                return true;
        const char *p = startswith(x->message, "policy directory \"");
        const char *end = p ? strstr(p, "\" is ") : NULL;
        if (!end || !(startswith(end, "\" is writable by ") || startswith(end, "\" is owned by user ")))
                return false;
        *dir = xstrndup(p, (size_t) (end - p));
        return true;
}

/* One diagnostic of a load: an error is a policy-rejected event prefixed with what (the policy
 * was not loaded); a warning does not stop the load and says only what it is. */
static void emit_diagnostic(const Diagnostic *x, const char *what) {
        EventFields ev = EVENT_FIELDS_INIT;
        ev.policy_file = x->file;
        ev.policy_line = x->line;
        _cleanup_free_ char *dir = NULL;
        if (writable_warning(x, &dir)) {
                if (!ev.policy_file)
                        ev.policy_file = dir;
                _cleanup_free_ char *primary = x->file ? xasprintf("%s: %s", x->file, x->message) : xstrdup(x->message);
                event_emit_pg_style(EVENT_POLICY_FILE_WRITABLE, event_priority(EVENT_POLICY_FILE_WRITABLE), &ev, primary,
                                    x->detail, x->hint);
                return;
        }
        _cleanup_free_ char *primary = NULL;
        if (x->severity != SEVERITY_ERROR) {
                if (x->file && x->line && x->column)
                        primary = xasprintf("%s:%u:%u: %s", x->file, x->line, x->column, x->message);
                else if (x->file && x->line)
                        primary = xasprintf("%s:%u: %s", x->file, x->line, x->message);
                else if (x->file)
                        primary = xasprintf("%s: %s", x->file, x->message);
                else
                        primary = xstrdup(x->message);
        } else if (x->file && x->line && x->column)
                primary = xasprintf("%s: %s:%u:%u: %s", what, x->file, x->line, x->column, x->message);
        else if (x->file && x->line)
                primary = xasprintf("%s: %s:%u: %s", what, x->file, x->line, x->message);
        else if (x->file)
                primary = xasprintf("%s: %s: %s", what, x->file, x->message);
        else
                primary = xasprintf("%s: %s", what, x->message);
        if (x->severity == SEVERITY_ERROR)
                event_emit_pg_style(EVENT_POLICY_REJECTED, event_priority(EVENT_POLICY_REJECTED), &ev, primary,
                                    x->detail, x->hint);
        else
                log_pg_style(LOG_WARNING, &ev, primary, x->detail, x->hint);
}

static void emit_policy_loaded(const Policy *p, const char *what) {
        EventFields ev = EVENT_FIELDS_INIT;
        if (p->n_files == 1)
                ev.policy_file = p->files[0];
        event_emit(EVENT_POLICY_LOADED, event_priority(EVENT_POLICY_LOADED), &ev, "policy %s: %zu rules from %zu files",
                   what, p->n_rules, p->n_files);
}

/* Loads and validates the policy files and the hash key the rules need, all or nothing. */
static int load_policy(Manager *m, bool startup, PolicyRef **ret) {
        _cleanup_diagnostics_ Diagnostics *d = diagnostics_new();
        Policy *p = NULL;
        const char *what = startup ? "policy not loaded" : "policy not reloaded";

        int r = policy_load(m->cfg.policy_paths, m->cfg.n_policy_paths, &p, d);
        if (startup && log_target() == LOG_TARGET_CONSOLE)
                diagnostics_print(d, stderr); /* with the source line and a caret */
        else
                for (size_t i = 0; i < d->n; i++)
                        emit_diagnostic(&d->items[i], what);
        if (r < 0) {
                /* For STATUS=: where the first error is. */
                m->disk_rejected_what = "invalid";
                free(m->disk_rejected_why);
                m->disk_rejected_why = xasprintf("%zu error%s", d->n_errors, d->n_errors == 1 ? "" : "s");
                for (size_t i = 0; i < d->n; i++) {
                        const Diagnostic *x = &d->items[i];
                        if (x->severity != SEVERITY_ERROR)
                                continue;
                        free(m->disk_rejected_why);
                        if (x->file && x->line && x->column)
                                m->disk_rejected_why = xasprintf("%zu error%s, first %s:%u:%u", d->n_errors,
                                                                 d->n_errors == 1 ? "" : "s", x->file, x->line, x->column);
                        else if (x->file)
                                m->disk_rejected_why = xasprintf("%zu error%s, first in %s", d->n_errors,
                                                                 d->n_errors == 1 ? "" : "s", x->file);
                        else
                                m->disk_rejected_why = xasprintf("%zu error%s", d->n_errors, d->n_errors == 1 ? "" : "s");
                        break;
                }
                return -EINVAL;
        }

        HashKey *key = NULL;
        if (hash_key_for_rules(m->cfg.hash_key_file, p, NULL, 0, &key) < 0) {
                EventFields ev = EVENT_FIELDS_INIT;
                event_emit(EVENT_POLICY_REJECTED, event_priority(EVENT_POLICY_REJECTED), &ev,
                           "%s: its hash key could not be loaded (see above)", what);
                policy_free(p);
                free(m->disk_rejected_why);
                m->disk_rejected_what = "not loaded";
                m->disk_rejected_why = xstrdup("its hash key could not be loaded");
                return -ENOKEY;
        }
        *ret = policy_ref_new(p, key);
        return 0;
}

/* The targets a policy asks for: one per database of `databases:` without -d; with -d NAME of
 * those, that one; otherwise one, -d (or libpq's environment). */
static size_t targets_wanted(Manager *m, const Policy *p, const char ***names, const char ***conninfos) {
        const char *d = m->cfg.conninfo;
        const Database *named = d ? policy_find_database(p, d) : NULL;
        size_t n = !d && p->n_databases > 0 ? p->n_databases : 1;
        *names = xcalloc(n, sizeof(char *));
        *conninfos = xcalloc(n, sizeof(char *));
        if (!d && p->n_databases > 0)
                for (size_t i = 0; i < n; i++) {
                        (*names)[i] = p->databases[i].name;
                        (*conninfos)[i] = p->databases[i].conninfo;
                }
        else if (named) {
                (*names)[0] = named->name;
                (*conninfos)[0] = named->conninfo;
        } else
                (*conninfos)[0] = d;
        return n;
}

/* Are these the targets the daemon has? A reload cannot add, drop or move a database. */
static bool targets_match(Manager *m, const Policy *p) {
        const char **names = NULL, **conninfos = NULL;
        size_t n = targets_wanted(m, p, &names, &conninfos);
        bool same = n == m->n_targets;
        for (size_t i = 0; same && i < n; i++)
                same = streq_ptr(names[i], m->targets[i].name) && streq_ptr(conninfos[i], m->targets[i].conninfo);
        free(names);
        free(conninfos);
        return same;
}

static size_t target_of(Manager *m, const Rule *r) {
        if (m->n_targets == 1 && !m->targets[0].name)
                return 0; /* no databases: (or -d CONNINFO): every rule */
        for (size_t i = 0; i < m->n_targets; i++)
                if (r->database && streq(r->database->name, m->targets[i].name))
                        return i;
        return NO_TARGET; /* another database's rule, with -d NAME */
}

/* Makes `pol` the policy in force: rules keep their deadlines by name, new rules are due now. */
static void install_policy(Manager *m, PolicyRef *pol) {
        const Policy *np = pol->policy;
        RuleSched *ns = xcalloc(np->n_rules ? np->n_rules : 1, sizeof(RuleSched));
        uint64_t now = now_mono(m);
        for (size_t i = 0; i < np->n_rules; i++) {
                ns[i].due = now;
                ssize_t o = m->pol ? find_rule(m->pol->policy, np->rules[i].name) : -1;
                if (o >= 0) {
                        ns[i] = m->sched[o];
                        uint64_t cap = now + rule_period(&np->rules[i]);
                        if (ns[i].due > cap) /* the schedule got shorter */
                                ns[i].due = cap;
                }
                ns[i].target = target_of(m, &np->rules[i]);
        }
        free(m->sched);
        m->sched = ns;
        policy_unref(m->pol);
        m->pol = pol;
        m->policy_loaded_at = time(NULL);
        m->disk_rejected_since = 0;
        free(m->disk_rejected_why);
        m->disk_rejected_why = NULL;
}

static void reload(Manager *m) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading the policy",
                          (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000u);

        PolicyRef *pol = NULL;
        if (load_policy(m, false, &pol) < 0) {
                if (!m->disk_rejected_since)
                        m->disk_rejected_since = time(NULL);
                log_warning("policy not reloaded: the policy loaded before (%zu rules) stays in force",
                            m->pol->policy->n_rules);
        } else if (!targets_match(m, pol->policy)) {
                EventFields ev = EVENT_FIELDS_INIT;
                event_emit_pg_style(EVENT_POLICY_REJECTED, event_priority(EVENT_POLICY_REJECTED), &ev,
                                    "policy not reloaded: its databases changed",
                                    "A reload keeps the daemon's connections; adding, removing or changing a database of \"databases:\" needs a restart.",
                                    "Restart the service: systemctl restart retentiond.");
                log_warning("policy not reloaded: the policy loaded before (%zu rules) stays in force",
                            m->pol->policy->n_rules);
                policy_unref(pol);
                if (!m->disk_rejected_since)
                        m->disk_rejected_since = time(NULL);
                free(m->disk_rejected_why);
                m->disk_rejected_what = "not loaded";
                m->disk_rejected_why = xstrdup("its databases changed: needs a restart");
        } else {
                install_policy(m, pol);
                emit_policy_loaded(m->pol->policy, "reloaded");
        }
        disarm_timer(m->schedule_timer);
        dispatch(m);
        update_status(m, "READY=1\n");
}

/* ---- signals ---- */

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        for (size_t i = 0; i < m->n_targets; i++) {
                const Target *t = &m->targets[i];
                if (!t->current)
                        continue;
                EventFields ev = EVENT_FIELDS_INIT;
                ev.database = target_label(t);
                ev.run_id = t->current_run_id;
                event_emit(EVENT_WORKER_ABANDONED, event_priority(EVENT_WORKER_ABANDONED), &ev,
                           "the database worker%s%s did not stop within %" PRIu64 " s (the database does not answer);"
                           " exiting without it%s",
                           t->name ? " of database " : "", t->name ? t->name : "", DAEMON_STOP_TIMEOUT_USEC / USEC_PER_SEC,
                           t->current_run_id >= 0 ? ": the next start records its run as interrupted" : "");
        }
        m->abandoned = true;
        (void) sd_event_exit(m->event, EXIT_UNAVAILABLE);
        return 0;
}

static bool any_running(const Manager *m) {
        for (size_t i = 0; i < m->n_targets; i++)
                if (m->targets[i].current && m->targets[i].current->type == JOB_RUN)
                        return true;
        return false;
}

static bool all_down(const Manager *m) {
        for (size_t i = 0; i < m->n_targets; i++)
                if (m->targets[i].db == DB_UP)
                        return false;
        return true;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        const char *name = si->ssi_signo == SIGTERM ? "SIGTERM"
                           : si->ssi_signo == SIGINT ? "SIGINT"
                           : si->ssi_signo == SIGHUP ? "SIGHUP"
                                                     : "SIGUSR1";

        if (m->stopping) {
                log_debug("%s ignored: stopping", name);
                return 0;
        }

        switch (si->ssi_signo) {
        case SIGTERM:
        case SIGINT: {
                m->stopping = true;
                atomic_store(&m->stop, true);
                event_emit(EVENT_DAEMON_STOPPING, event_priority(EVENT_DAEMON_STOPPING), NULL, "stopping on %s%s", name,
                           any_running(m) ? ": interrupting the run in flight" : "");
                (void) sd_notify(false, "STOPPING=1\nSTATUS=stopping: finishing the batch in flight");
                if (!any_busy(m)) {
                        (void) sd_event_exit(m->event, EXIT_OK);
                        break;
                }
                for (size_t i = 0; i < m->n_targets; i++) {
                        Target *t = &m->targets[i];
                        if (!t->current || t->current->type != JOB_RUN)
                                continue;
                        /* Roll the batch in flight back now rather than wait for it (asynchronously:
                         * a server that does not answer must not stall the loop). */
                        if (!worker_cancel(t->worker, true))
                                log_debug("no batch in flight to cancel");
                }
                if (arm_timer(m, &m->stop_timer, now_mono(m) + DAEMON_STOP_TIMEOUT_USEC, on_stop_timeout, m) < 0)
                        log_warning("cannot arm the stop timer: %m");
                break;
        }
        case SIGHUP:
                reload(m);
                break;
        case SIGUSR1:
                for (size_t i = 0; i < m->n_targets; i++)
                        m->targets[i].run_requested = true;
                event_emit(EVENT_RUN_REQUESTED, event_priority(EVENT_RUN_REQUESTED), NULL,
                           "run of every rule requested by signal SIGUSR1%s",
                           any_running(m) ? "; queued after the run in progress"
                           : all_down(m)  ? "; queued until the database is available"
                                          : "");
                dispatch(m);
                break;
        }
        return 0;
}

/* ---- life cycle ---- */

static void target_done(Target *t) {
        /* The I/O sources watch the worker's eventfd and connection: remove them first. */
        sd_event_source_disable_unref(t->worker_source);
        sd_event_source_disable_unref(t->idle_source);
        worker_free(t->worker); /* waits for the job in flight, joins, closes the connection */
        job_free(t->current);
        t->current_pol = policy_unref(t->current_pol);
        sd_event_source_disable_unref(t->retry_timer);
        sd_event_source_disable_unref(t->supervise_timer);
        health_report_free(t->health);
        free(t->name);
        free(t->conninfo);
        free(t->db_reason);
}

int manager_new(const DaemonConfig *cfg, Manager **ret) {
        _cleanup_manager_ Manager *m = xcalloc(1, sizeof(Manager));
        int r;

        m->cfg = *cfg;
        m->settings = (PgSettings) {
                .lock_timeout_ms = cfg->lock_timeout_ms >= 0 ? cfg->lock_timeout_ms : DAEMON_DEFAULT_LOCK_TIMEOUT_MS,
                .statement_timeout_ms = cfg->statement_timeout_ms >= 0 ? cfg->statement_timeout_ms
                                                                       : DAEMON_DEFAULT_STATEMENT_TIMEOUT_MS,
        };
        /* statement_timeout 0 means none; the hard limit then still bounds a hung statement. */
        uint64_t st = m->settings.statement_timeout_ms > 0 ? (uint64_t) m->settings.statement_timeout_ms
                                                           : (uint64_t) DAEMON_DEFAULT_STATEMENT_TIMEOUT_MS * 6;
        m->hard_limit_usec = 3 * st * USEC_PER_MSEC + 10 * USEC_PER_SEC;

        PolicyRef *pol = NULL;
        if (load_policy(m, true, &pol) < 0)
                return EXIT_CONFIG;

        /* The databases: one target each (or the one -d names), fixed until the daemon stops. */
        const char **names = NULL, **conninfos = NULL;
        m->n_targets = targets_wanted(m, pol->policy, &names, &conninfos);
        m->targets = xcalloc(m->n_targets, sizeof(Target));
        for (size_t i = 0; i < m->n_targets; i++)
                m->targets[i] = (Target) {
                        .m = m,
                        .name = names[i] ? xstrdup(names[i]) : NULL,
                        .conninfo = conninfos[i] ? xstrdup(conninfos[i]) : NULL,
                        .db_fd = -1,
                        .current_run_id = -1,
                };
        free(names);
        free(conninfos);
        install_policy(m, pol);

        /* Signals arrive through the loop (signalfd): block them before the worker threads
         * exist, so they inherit the mask and never take one. */
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0) {
                log_error("cannot block signals: %m");
                return EXIT_SOFTWARE;
        }

        r = sd_event_default(&m->event);
        if (r < 0)
                goto fail;
        r = sd_event_add_signal(m->event, &m->sigterm, SIGTERM, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint, SIGINT, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sighup, SIGHUP, on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigusr1, SIGUSR1, on_signal, m);
        if (r < 0)
                goto fail;
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                goto fail;
        if (cfg->metrics_file) {
                r = metrics_writer_new(cfg->metrics_file, &m->metrics);
                if (r < 0)
                        goto fail;
        }

        for (size_t i = 0; i < m->n_targets; i++) {
                Target *t = &m->targets[i];
                r = worker_new(t->name, t->conninfo, &m->settings, &m->stop, &m->cfg.knobs, &t->worker);
                if (r < 0)
                        goto fail;
                r = sd_event_add_io(m->event, &t->worker_source, worker_fd(t->worker), EPOLLIN, on_worker, t);
                if (r < 0)
                        goto fail;
        }

        *ret = TAKE_PTR(m);
        return 0;

fail:
        log_error("cannot set up the event loop: %s", strerror(-r));
        return EXIT_SOFTWARE;
}

int manager_run(Manager *m) {
        const Policy *p = m->pol->policy;
        event_emit(EVENT_DAEMON_STARTED, event_priority(EVENT_DAEMON_STARTED), NULL,
                   "retentiond " RETENTIOND_VERSION " started: %zu rules from %zu policy files,"
                   " statement_timeout %ld ms, lock_timeout %ld ms",
                   p->n_rules, p->n_files, m->settings.statement_timeout_ms, m->settings.lock_timeout_ms);
        if (m->n_targets > 1) {
                StrBuf b = {};
                for (size_t i = 0; i < m->n_targets; i++)
                        strbuf_appendf(&b, "%s%s", i ? ", " : "", m->targets[i].name);
                log_info("enforcing %zu databases, each with its own connection: %s", m->n_targets, strbuf_str(&b));
                strbuf_done(&b);
        }
        emit_policy_loaded(p, "loaded");

        for (size_t i = 0; i < m->n_targets; i++) {
                m->targets[i].db = DB_CONNECTING;
                start_connect(&m->targets[i]);
        }
        update_status(m, "READY=1\n");

        int r = sd_event_loop(m->event);
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return EXIT_SOFTWARE;
        }
        (void) sd_notify(false, "STOPPING=1\nSTATUS=stopped");
        if (m->abandoned) {
                /* A worker thread is still inside libpq: leave at once, without running exit
                 * handlers (libpq's, OpenSSL's) under it. The kernel closes its connection and
                 * the server rolls back its transaction. */
                fflush(NULL);
                _exit(r);
        }
        return r;
}

void manager_free(Manager *m) {
        /* A worker that did not stop in time still uses the manager: leave everything to the
         * process exit rather than free memory under it. */
        if (!m || m->abandoned)
                return;
        for (size_t i = 0; i < m->n_targets; i++)
                target_done(&m->targets[i]);
        free(m->targets);
        sd_event_source_disable_unref(m->sigterm);
        sd_event_source_disable_unref(m->sigint);
        sd_event_source_disable_unref(m->sighup);
        sd_event_source_disable_unref(m->sigusr1);
        sd_event_source_disable_unref(m->schedule_timer);
        sd_event_source_disable_unref(m->stop_timer);
        metrics_writer_free(m->metrics); /* writes the last one */
        sd_event_unref(m->event);
        policy_unref(m->pol);
        free(m->sched);
        free(m->disk_rejected_why);
        free(m);
}
