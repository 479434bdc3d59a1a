/* health.h — each rule's health, derived from the audit trail (retention.rule_runs): its last
 * success, its consecutive failures, whether its breaker blocks it, the rows its last run left
 * overdue. Read by `retentiond status`, `retentiond audit` (its --fail-on conditions), the
 * daemon's STATUS= (also right after a restart) and the metrics file. The queries only read;
 * the one exception, trail_close_abandoned(), is named as such. Counts and names only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pg.h"
#include "policy.h"
#include "util.h"

typedef enum RuleHealthState {
        HEALTH_OK,
        HEALTH_PENDING, /* never ran (a new rule, a new daemon): not a problem by itself */
        HEALTH_OVERDUE, /* its last run left rows past their deadline */
        HEALTH_STALE,   /* no success within stale_after schedules */
        HEALTH_FAILING, /* its last finished run failed */
        HEALTH_BREAKER, /* its last finished run tripped the circuit breaker: blocked until someone decides */
        _HEALTH_MAX,
} RuleHealthState;

const char *health_state_to_string(RuleHealthState s); /* "ok", "pending", "overdue", ... */

/* What --fail-on (audit) and `status` count as needing attention: a bit per condition. */
enum {
        HEALTH_FAIL_OVERDUE = 1 << 0, /* rows past their deadline */
        HEALTH_FAIL_FAILING = 1 << 1, /* the last run failed */
        HEALTH_FAIL_BREAKER = 1 << 2, /* the last run tripped the breaker */
        HEALTH_FAIL_STALE = 1 << 3,   /* no success within N schedules */
        HEALTH_FAIL_ALL = (1 << 4) - 1,
};
/* Parses "overdue,breaker,stale,failing" (or "all", "none") into bits. False on an unknown word. */
bool health_parse_fail_on(const char *s, unsigned *ret);

#define HEALTH_DEFAULT_STALE_AFTER 3 /* schedules without a success */

typedef struct RuleHealth {
        const Rule *rule;       /* valid while the policy given to health_read() lives */
        char *name;             /* the rule's name (a copy: outlives the policy) */
        double schedule_sec;    /* its schedule, approximately */
        RuleHealthState state;
        bool stale;             /* no success within stale_after schedules (whatever the state says) */
        bool ever_run;          /* a finished rule run exists */
        bool running;           /* its latest rule run is still `running` */
        double first_started;   /* unix seconds: its first rule run, 0 if none */
        double last_success;    /* unix seconds: finished_at of its last success, 0 if none */
        int64_t failures;       /* failed or breaker rule runs since the last success */
        double failing_since;   /* unix seconds: the first of those started, 0 if none */
        /* its latest finished rule run */
        int64_t last_run_id;    /* retention.runs.id, -1 if none */
        char *last_outcome;     /* NULL if none */
        double last_started, last_finished; /* unix seconds */
        int64_t rows_deleted, rows_anonymised, rows_held, rows_skipped, rows_overdue;
        char *last_sqlstate, *last_error;
        /* the whole trail of the rule (counters: the trail is append-only) */
        int64_t total_runs, total_deleted, total_anonymised, total_failed, total_breaker;
} RuleHealth;

typedef struct HealthReport {
        double now; /* the database's clock, unix seconds */
        unsigned stale_after;
        RuleHealth *rules; /* in the order asked for */
        size_t n_rules;
        /* the last finished run of mode (health_read's mode; NULL: any) */
        bool have_last_run;
        int64_t last_run_id;
        double last_run_finished;
        char *last_run_outcome;
        int64_t last_run_deleted, last_run_anonymised, last_run_held;
        int last_run_failed;
} HealthReport;

void health_report_free(HealthReport *h);
static inline void health_report_freep(HealthReport **h) {
        health_report_free(*h);
}

/* Reads the trail for rules (indices into p->rules; NULL: every rule) and classifies them.
 * mode: the last run of this mode fills have_last_run ("daemon"; NULL: any). A database without
 * the retention schema gives every rule HEALTH_PENDING. Read-only. Returns 0 or a PgErrorClass. */
int health_read(Pg *pg, const Policy *p, const size_t *rules, size_t n_rules, const char *mode, unsigned stale_after,
                HealthReport **ret, PgError *err);
/* Sets every rule's state from its fields (done by health_read(); exposed for tests). */
void health_classify(HealthReport *h);
/* Does the rule meet one of the conditions in fail_on (HEALTH_FAIL_*)? */
bool health_needs_attention(const RuleHealth *r, unsigned fail_on);
/* The conditions the rule meets, as HEALTH_FAIL_* bits. */
unsigned health_conditions(const RuleHealth *r);
/* One line for STATUS= and `status`: "3 rules ok, 1 failing: sessions (failed 5 times since
 * 2026-11-29 03:00)". Local time. */
void health_summary(const HealthReport *h, StrBuf *b);
/* What is wrong with one rule, in words ("failed 5 times since 2026-11-29 03:00: ERROR"). */
char *health_describe(const RuleHealth *r, unsigned fail_on);
/* "2026-11-29 03:00" local time, or "never". */
const char *health_format_time(double t, char *buf, size_t n);

/* Records as `interrupted` the runs, and their rule runs, that the trail still says are
 * `running` but whose database session (retention.runs.backend_pid) no longer exists: a crash,
 * a kill, a daemon that exited without its stuck worker. The one writing function here.
 * *ret_ids: "12, 13" (caller frees), NULL when there were none. Returns 0 or a PgErrorClass. */
int trail_close_abandoned(Pg *pg, char **ret_ids, PgError *err);
