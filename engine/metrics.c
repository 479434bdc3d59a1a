/* metrics.c — the Prometheus textfile: formatting (pure) and the atomic write. Must never leave
 * a half-written file where node_exporter reads, nor carry row contents: counts and times only. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

void metrics_escape_label(StrBuf *b, const char *v) {
        for (const char *p = v ? v : ""; *p; p++) {
                if (*p == '\\')
                        strbuf_append(b, "\\\\");
                else if (*p == '"')
                        strbuf_append(b, "\\\"");
                else if (*p == '\n')
                        strbuf_append(b, "\\n");
                else
                        strbuf_appendc(b, *p);
        }
}

void metrics_escape_help(StrBuf *b, const char *v) {
        for (const char *p = v ? v : ""; *p; p++) {
                if (*p == '\\')
                        strbuf_append(b, "\\\\");
                else if (*p == '\n')
                        strbuf_append(b, "\\n");
                else
                        strbuf_appendc(b, *p);
        }
}

static void family(StrBuf *b, const char *name, const char *type, const char *help) {
        strbuf_appendf(b, "# HELP %s ", name);
        metrics_escape_help(b, help);
        strbuf_appendf(b, "\n# TYPE %s %s\n", name, type);
}

/* name{database="D",rule="R"[,extra="V"]} */
static void sample_start(StrBuf *b, const char *name, const char *db, const char *rule, const char *ek, const char *ev) {
        strbuf_appendf(b, "%s{database=\"", name);
        metrics_escape_label(b, db);
        strbuf_appendc(b, '"');
        if (rule) {
                strbuf_append(b, ",rule=\"");
                metrics_escape_label(b, rule);
                strbuf_appendc(b, '"');
        }
        if (ek) {
                strbuf_appendf(b, ",%s=\"", ek);
                metrics_escape_label(b, ev);
                strbuf_appendc(b, '"');
        }
        strbuf_append(b, "} ");
}

/* Seconds: whole ones without a fraction, else milliseconds. */
static void value_sec(StrBuf *b, double v) {
        if (v == (double) (int64_t) v)
                strbuf_appendf(b, "%" PRId64 "\n", (int64_t) v);
        else
                strbuf_appendf(b, "%.3f\n", v);
}

typedef enum { V_LAST_SUCCESS, V_LAST_RUN, V_DURATION, V_DELETED, V_ANONYMISED, V_HELD, V_SKIPPED, V_OVERDUE,
               V_FAILURES, V_RUNS_TOTAL, V_FAILED_TOTAL, V_BREAKER_TOTAL, V_DELETED_TOTAL, V_ANONYMISED_TOTAL } Which;

static const struct {
        Which which;
        const char *name, *type, *help;
} rule_metrics[] = {
        { V_LAST_SUCCESS, "retentiond_rule_last_success_timestamp_seconds", "gauge",
          "When the rule's last successful run finished (unix time; 0: never)." },
        { V_LAST_RUN, "retentiond_rule_last_run_timestamp_seconds", "gauge",
          "When the rule's last finished run ended, whatever its outcome (unix time; 0: never)." },
        { V_DURATION, "retentiond_rule_last_run_duration_seconds", "gauge", "How long the rule's last finished run took." },
        { V_DELETED, "retentiond_rule_last_run_rows_deleted", "gauge", "Rows the rule's last finished run deleted." },
        { V_ANONYMISED, "retentiond_rule_last_run_rows_anonymised", "gauge", "Rows the rule's last finished run anonymised." },
        { V_HELD, "retentiond_rule_last_run_rows_held", "gauge", "Due rows a hold kept in the rule's last finished run." },
        { V_SKIPPED, "retentiond_rule_last_run_rows_skipped", "gauge",
          "Due rows the rule's last finished run left for later (locked, or referenced by a foreign key)." },
        { V_OVERDUE, "retentiond_rule_last_run_rows_overdue", "gauge",
          "Rows past their deadline that the rule's last finished run left in the table." },
        { V_FAILURES, "retentiond_rule_consecutive_failures", "gauge",
          "Runs of the rule that failed or tripped the circuit breaker since its last success." },
        { V_RUNS_TOTAL, "retentiond_rule_runs_total", "counter", "Rule runs in the audit trail." },
        { V_FAILED_TOTAL, "retentiond_rule_failures_total", "counter", "Rule runs in the audit trail that failed." },
        { V_BREAKER_TOTAL, "retentiond_rule_breaker_trips_total", "counter",
          "Rule runs in the audit trail that the circuit breaker stopped." },
        { V_DELETED_TOTAL, "retentiond_rule_rows_deleted_total", "counter", "Rows the rule deleted, over the audit trail." },
        { V_ANONYMISED_TOTAL, "retentiond_rule_rows_anonymised_total", "counter",
          "Rows the rule anonymised, over the audit trail." },
};

static void rule_value(StrBuf *b, Which w, const RuleHealth *r) {
        switch (w) {
        case V_LAST_SUCCESS:
                value_sec(b, r->last_success);
                return;
        case V_LAST_RUN:
                value_sec(b, r->last_finished);
                return;
        case V_DURATION:
                value_sec(b, r->last_finished > r->last_started ? r->last_finished - r->last_started : 0);
                return;
        default:
                break;
        }
        int64_t v = w == V_DELETED            ? r->rows_deleted
                    : w == V_ANONYMISED       ? r->rows_anonymised
                    : w == V_HELD             ? r->rows_held
                    : w == V_SKIPPED          ? r->rows_skipped
                    : w == V_OVERDUE          ? r->rows_overdue
                    : w == V_FAILURES         ? r->failures
                    : w == V_RUNS_TOTAL       ? r->total_runs
                    : w == V_FAILED_TOTAL     ? r->total_failed
                    : w == V_BREAKER_TOTAL    ? r->total_breaker
                    : w == V_DELETED_TOTAL    ? r->total_deleted
                                              : r->total_anonymised;
        strbuf_appendf(b, "%" PRId64 "\n", v);
}

static const char *const outcomes[] = { "success", "failed", "breaker", "interrupted", "skipped" };

void metrics_render(const MetricsDatabase *dbs, size_t n, double written_at, StrBuf *b) {
        family(b, "retentiond_build_info", "gauge", "The retentiond version that wrote this file.");
        strbuf_append(b, "retentiond_build_info{version=\"");
        metrics_escape_label(b, RETENTIOND_VERSION);
        strbuf_append(b, "\"} 1\n");
        family(b, "retentiond_metrics_written_timestamp_seconds", "gauge",
               "When retentiond wrote this file (unix time): after every run, and when a database goes up or down.");
        strbuf_append(b, "retentiond_metrics_written_timestamp_seconds ");
        value_sec(b, written_at);

        family(b, "retentiond_database_up", "gauge", "1 when retentiond reaches the database, 0 when it does not.");
        for (size_t i = 0; i < n; i++) {
                sample_start(b, "retentiond_database_up", dbs[i].name, NULL, NULL, NULL);
                strbuf_appendf(b, "%d\n", dbs[i].up ? 1 : 0);
        }

        family(b, "retentiond_rule_last_outcome", "gauge",
               "1 for the outcome of the rule's last finished run (success, failed, breaker, interrupted, skipped), 0 for the others.");
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; dbs[i].health && k < dbs[i].health->n_rules; k++) {
                        const RuleHealth *r = &dbs[i].health->rules[k];
                        for (size_t o = 0; o < ELEMENTSOF(outcomes); o++) {
                                sample_start(b, "retentiond_rule_last_outcome", dbs[i].name, r->name, "outcome", outcomes[o]);
                                strbuf_appendf(b, "%d\n", streq_ptr(r->last_outcome, outcomes[o]) ? 1 : 0);
                        }
                }

        family(b, "retentiond_rule_health", "gauge",
               "1 for the rule's health state (ok, pending, overdue, stale, failing, breaker; see retentiond status), 0 for the others.");
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; dbs[i].health && k < dbs[i].health->n_rules; k++) {
                        const RuleHealth *r = &dbs[i].health->rules[k];
                        for (int s = 0; s < _HEALTH_MAX; s++) {
                                sample_start(b, "retentiond_rule_health", dbs[i].name, r->name, "state",
                                             health_state_to_string((RuleHealthState) s));
                                strbuf_appendf(b, "%d\n", r->state == (RuleHealthState) s ? 1 : 0);
                        }
                }

        for (size_t m = 0; m < ELEMENTSOF(rule_metrics); m++) {
                family(b, rule_metrics[m].name, rule_metrics[m].type, rule_metrics[m].help);
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; dbs[i].health && k < dbs[i].health->n_rules; k++) {
                                sample_start(b, rule_metrics[m].name, dbs[i].name, dbs[i].health->rules[k].name, NULL, NULL);
                                rule_value(b, rule_metrics[m].which, &dbs[i].health->rules[k]);
                        }
        }
}

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += w;
                n -= (size_t) w;
        }
        return 0;
}

int metrics_write_file(const char *path, const char *text) {
        _cleanup_free_ char *d = xstrdup(path), *f = xstrdup(path);
        const char *dir = dirname(d), *base = basename(f);
        _cleanup_free_ char *tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = fchmod(fd, 0644) < 0 ? -errno : 0; /* node_exporter runs as another user */
        if (r == 0)
                r = write_all(fd, text, strlen(text));
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
                (void) fsync(dfd);
                close(dfd);
        }
        return 0;
}

struct MetricsWriter {
        char *path;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *pending; /* under lock */
        bool quit;
        int error;
};

static void *writer_main(void *userdata) {
        MetricsWriter *w = userdata;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->pending && !w->quit)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->pending)
                        break;
                char *text = TAKE_PTR(w->pending);
                pthread_mutex_unlock(&w->lock);
                int r = metrics_write_file(w->path, text);
                free(text);
                pthread_mutex_lock(&w->lock);
                if (r < 0)
                        w->error = r;
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int metrics_writer_new(const char *path, MetricsWriter **ret) {
        MetricsWriter *w = xcalloc(1, sizeof(MetricsWriter));
        w->path = xstrdup(path);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        int r = pthread_create(&w->thread, NULL, writer_main, w);
        if (r != 0) {
                pthread_mutex_destroy(&w->lock);
                pthread_cond_destroy(&w->cond);
                free(w->path);
                free(w);
                return -r;
        }
        *ret = w;
        return 0;
}

void metrics_writer_submit(MetricsWriter *w, char *text) {
        pthread_mutex_lock(&w->lock);
        free(w->pending);
        w->pending = text;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

int metrics_writer_take_error(MetricsWriter *w) {
        pthread_mutex_lock(&w->lock);
        int r = w->error;
        w->error = 0;
        pthread_mutex_unlock(&w->lock);
        return r;
}

void metrics_writer_free(MetricsWriter *w) {
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->quit = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        free(w->pending);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->path);
        free(w);
}
