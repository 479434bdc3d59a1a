/* event.c — emits events and log lines to journald (structured fields, MESSAGE_ID) or to stderr.
 * One code path for both sinks. It must never add data of its own to a message beyond what callers
 * pass (no row values, no connection strings), and never lose a message: a failed journal send
 * falls back to stderr. */
#include "event.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/uio.h>
/* Our own CODE_FILE/CODE_LINE/CODE_FUNC are the caller's, not this file's. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "event-ids.h"

static const struct {
        const char *id;
        const char *name;
        int priority; /* the usual priority; documented in the README */
} event_table[] = {
        [EVENT_RUN_STARTED] = { RETENTIOND_MESSAGE_RUN_STARTED, "run-started", LOG_INFO },
        [EVENT_RUN_FINISHED] = { RETENTIOND_MESSAGE_RUN_FINISHED, "run-finished", LOG_NOTICE },
        [EVENT_RULE_ENFORCED] = { RETENTIOND_MESSAGE_RULE_ENFORCED, "rule-enforced", LOG_INFO },
        [EVENT_RULE_FAILED] = { RETENTIOND_MESSAGE_RULE_FAILED, "rule-failed", LOG_ERR },
        [EVENT_BREAKER_TRIPPED] = { RETENTIOND_MESSAGE_BREAKER_TRIPPED, "breaker-tripped", LOG_ERR },
        [EVENT_ROWS_HELD] = { RETENTIOND_MESSAGE_ROWS_HELD, "rows-held", LOG_INFO },
        [EVENT_OVERDUE_FOUND] = { RETENTIOND_MESSAGE_OVERDUE_FOUND, "overdue-found", LOG_WARNING },
        [EVENT_FK_ISOLATED] = { RETENTIOND_MESSAGE_FK_ISOLATED, "fk-isolated", LOG_WARNING },
        [EVENT_POLICY_LOADED] = { RETENTIOND_MESSAGE_POLICY_LOADED, "policy-loaded", LOG_NOTICE },
        [EVENT_POLICY_REJECTED] = { RETENTIOND_MESSAGE_POLICY_REJECTED, "policy-rejected", LOG_ERR },
        [EVENT_DATABASE_LOST] = { RETENTIOND_MESSAGE_DATABASE_LOST, "database-lost", LOG_WARNING },
        [EVENT_DATABASE_BACK] = { RETENTIOND_MESSAGE_DATABASE_BACK, "database-back", LOG_NOTICE },
        [EVENT_DAEMON_STARTED] = { RETENTIOND_MESSAGE_DAEMON_STARTED, "daemon-started", LOG_NOTICE },
        [EVENT_DAEMON_STOPPING] = { RETENTIOND_MESSAGE_DAEMON_STOPPING, "daemon-stopping", LOG_NOTICE },
        [EVENT_RUN_REQUESTED] = { RETENTIOND_MESSAGE_RUN_REQUESTED, "run-requested", LOG_NOTICE },
        [EVENT_RUN_INTERRUPTED] = { RETENTIOND_MESSAGE_RUN_INTERRUPTED, "run-interrupted", LOG_WARNING },
        [EVENT_PARTITION_DROPPED] = { RETENTIOND_MESSAGE_PARTITION_DROPPED, "partition-dropped", LOG_INFO },
        [EVENT_HOLD_PLACED] = { RETENTIOND_MESSAGE_HOLD_PLACED, "hold-placed", LOG_NOTICE },
        [EVENT_HOLD_RELEASED] = { RETENTIOND_MESSAGE_HOLD_RELEASED, "hold-released", LOG_NOTICE },
        [EVENT_ROWS_SKIPPED] = { RETENTIOND_MESSAGE_ROWS_SKIPPED, "rows-skipped", LOG_NOTICE },
        [EVENT_POLICY_FILE_WRITABLE] = { RETENTIOND_MESSAGE_POLICY_FILE_WRITABLE, "policy-file-writable", LOG_WARNING },
        [EVENT_WORKER_ABANDONED] = { RETENTIOND_MESSAGE_WORKER_ABANDONED, "worker-abandoned", LOG_ERR },
        [EVENT_RUNS_CLOSED] = { RETENTIOND_MESSAGE_RUNS_CLOSED, "runs-closed", LOG_WARNING },
        [EVENT_RULE_ATTENTION] = { RETENTIOND_MESSAGE_RULE_NEEDS_ATTENTION, "rule-needs-attention", LOG_WARNING },
        [EVENT_SLOT_IN_FUTURE] = { RETENTIOND_MESSAGE_SLOT_IN_FUTURE, "slot-in-future", LOG_WARNING },
        [EVENT_UNTRUSTED_CODE] = { RETENTIOND_MESSAGE_UNTRUSTED_CODE, "untrusted-code", LOG_WARNING },
        [EVENT_HASH_KEY_READABLE] = { RETENTIOND_MESSAGE_HASH_KEY_READABLE, "hash-key-readable", LOG_WARNING },
};
_Static_assert(ELEMENTSOF(event_table) == _EVENT_MAX, "every EventType needs a MESSAGE_ID and a name");

static LogTarget log_target_setting = LOG_TARGET_AUTO;
static int log_max_level = LOG_INFO;
/* This thread's own limit (log_set_thread_max_level()), or -1: the process's. */
static _Thread_local int thread_max_level = -1;

static int max_level(void) {
        return thread_max_level >= 0 ? thread_max_level : log_max_level;
}
static bool log_show_fields = false;

const char *event_message_id(EventType t) {
        if ((unsigned) t >= _EVENT_MAX)
                return NULL;
        return event_table[t].id;
}

const char *event_name(EventType t) {
        if ((unsigned) t >= _EVENT_MAX)
                return NULL;
        return event_table[t].name;
}

int event_priority(EventType t) {
        if ((unsigned) t >= _EVENT_MAX)
                return LOG_INFO;
        return event_table[t].priority;
}

static LogTarget resolve_target(LogTarget t) {
        if (t != LOG_TARGET_AUTO)
                return t;
        const char *js = getenv("JOURNAL_STREAM"), *inv = getenv("INVOCATION_ID");
        if ((js && *js) || (inv && *inv))
                return LOG_TARGET_JOURNAL;
        return LOG_TARGET_CONSOLE;
}

void log_setup(LogTarget target) {
        log_target_setting = resolve_target(target);
}

LogTarget log_target(void) {
        if (log_target_setting == LOG_TARGET_AUTO)
                log_target_setting = resolve_target(LOG_TARGET_AUTO);
        return log_target_setting;
}

int log_target_from_string(const char *s) {
        if (streq_ptr(s, "auto"))
                return LOG_TARGET_AUTO;
        if (streq_ptr(s, "journal"))
                return LOG_TARGET_JOURNAL;
        if (streq_ptr(s, "console"))
                return LOG_TARGET_CONSOLE;
        return -1;
}

void log_set_max_level(int priority) {
        log_max_level = LOG_PRI(priority);
}

int log_get_max_level(void) {
        return max_level();
}

void log_set_thread_max_level(int priority) {
        thread_max_level = priority < 0 ? -1 : LOG_PRI(priority);
}

void log_set_show_fields(bool b) {
        log_show_fields = b;
}

/* A copy of s with control characters replaced by '?'; with multiline, '\n' and '\t' are kept. */
static char *sanitise(const char *s, bool multiline) {
        char *r = xstrdup(s);
        for (char *p = r; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (multiline && (c == '\n' || c == '\t'))
                        continue;
                if (c < 0x20 || c == 0x7f)
                        *p = '?';
        }
        return r;
}

typedef struct Field {
        const char *name;
        char *value;
} Field;

typedef struct FieldList {
        Field f[24];
        size_t n;
} FieldList;

static void fields_add_str(FieldList *l, const char *name, const char *v) {
        if (!v || !*v || l->n >= ELEMENTSOF(l->f))
                return;
        l->f[l->n++] = (Field) { name, sanitise(v, false) };
}

static void fields_add_int(FieldList *l, const char *name, int64_t v) {
        if (v < 0 || l->n >= ELEMENTSOF(l->f))
                return;
        l->f[l->n++] = (Field) { name, xasprintf("%" PRId64, v) };
}

/* The database this thread is reporting about (event_set_database()), for events that do not
 * name one: each thread its own (the daemon's loop and each database's worker). */
static _Thread_local const char *current_database;

void event_set_database(const char *name) {
        current_database = name;
}

static void fields_build(FieldList *l, const EventFields *f) {
        l->n = 0;
        if (!f) {
                fields_add_str(l, "DATABASE", current_database);
                return;
        }
        fields_add_str(l, "RULE", f->rule);
        fields_add_str(l, "CLAUSE", f->clause);
        fields_add_str(l, "TABLE", f->table);
        fields_add_str(l, "ACTION", f->action);
        fields_add_int(l, "ROWS_DELETED", f->rows_deleted);
        fields_add_int(l, "ROWS_ANONYMISED", f->rows_anonymised);
        fields_add_int(l, "ROWS_HELD", f->rows_held);
        fields_add_int(l, "ROWS_OVERDUE", f->rows_overdue);
        fields_add_int(l, "ROWS_SKIPPED", f->rows_skipped);
        fields_add_str(l, "CUTOFF", f->cutoff);
        fields_add_int(l, "DURATION_USEC", f->duration_usec);
        fields_add_int(l, "RUN_ID", f->run_id);
        fields_add_str(l, "SQLSTATE", f->sqlstate);
        fields_add_str(l, "POLICY_FILE", f->policy_file);
        if (f->policy_line > 0)
                fields_add_int(l, "POLICY_LINE", (int64_t) f->policy_line);
        fields_add_str(l, "HOLD", f->hold);
        fields_add_str(l, "KEY_FILE", f->key_file);
        fields_add_str(l, "CHAIN_HASH", f->chain_hash);
        fields_add_int(l, "ROWS_CASCADE_DELETED", f->rows_cascade_deleted);
        fields_add_int(l, "ROWS_CASCADE_NULLED", f->rows_cascade_nulled);
        fields_add_str(l, "CASCADES", f->cascades);
        fields_add_str(l, "SKIP_REASON", f->skip_reason);
        fields_add_str(l, "DATABASE", f->database ? f->database : current_database);
}

static void fields_done(FieldList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->f[i].value);
        l->n = 0;
}

static void append_console_value(StrBuf *b, const char *v) {
        if (*v && !strpbrk(v, " \"\\")) {
                strbuf_append(b, v);
                return;
        }
        strbuf_appendc(b, '"');
        for (const char *p = v; *p; p++) {
                if (*p == '"' || *p == '\\')
                        strbuf_appendc(b, '\\');
                strbuf_appendc(b, *p);
        }
        strbuf_appendc(b, '"');
}

static void write_console(
                int priority, const FieldList *l, const char *message, const char *detail, const char *hint) {
        StrBuf b = {};

        strbuf_append(&b, "retentiond: ");
        if (priority <= LOG_ERR)
                strbuf_append(&b, "error: ");
        else if (priority == LOG_WARNING)
                strbuf_append(&b, "warning: ");
        strbuf_append(&b, message);
        if (log_show_fields && l->n > 0) {
                strbuf_append(&b, " [");
                for (size_t i = 0; i < l->n; i++) {
                        if (i > 0)
                                strbuf_appendc(&b, ' ');
                        strbuf_appendf(&b, "%s=", l->f[i].name);
                        append_console_value(&b, l->f[i].value);
                }
                strbuf_appendc(&b, ']');
        }
        if (detail)
                strbuf_appendf(&b, "\nDETAIL:  %s", detail);
        if (hint)
                strbuf_appendf(&b, "\nHINT:  %s", hint);
        strbuf_appendc(&b, '\n');

        fwrite(b.s, 1, b.len, stderr);
        fflush(stderr);
        strbuf_done(&b);
}

typedef struct Location {
        const char *file;
        int line;
        const char *func;
} Location;

static int write_journal(
                const Location *loc,
                const char *message_id,
                int priority,
                const FieldList *l,
                const char *message,
                const char *detail,
                const char *hint) {
        /* MESSAGE, MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, the fields,
         * ERROR_DETAIL, ERROR_HINT */
        struct iovec iov[4 + 3 + ELEMENTSOF(l->f) + 2];
        size_t n = 0;

        iov[n++] = (struct iovec) { .iov_base = xasprintf("MESSAGE=%s", message) };
        if (message_id)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("MESSAGE_ID=%s", message_id) };
        iov[n++] = (struct iovec) { .iov_base = xasprintf("PRIORITY=%i", priority) };
        iov[n++] = (struct iovec) { .iov_base = xstrdup("SYSLOG_IDENTIFIER=retentiond") };
        if (loc->file)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("CODE_FILE=%s", loc->file) };
        if (loc->line > 0)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("CODE_LINE=%i", loc->line) };
        if (loc->func)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("CODE_FUNC=%s", loc->func) };
        for (size_t i = 0; i < l->n; i++)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("%s=%s", l->f[i].name, l->f[i].value) };
        if (detail)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("ERROR_DETAIL=%s", detail) };
        if (hint)
                iov[n++] = (struct iovec) { .iov_base = xasprintf("ERROR_HINT=%s", hint) };

        for (size_t i = 0; i < n; i++)
                iov[i].iov_len = strlen(iov[i].iov_base);

        int r = sd_journal_sendv(iov, (int) n);

        for (size_t i = 0; i < n; i++)
                free(iov[i].iov_base);
        return r;
}

/* The single path every message takes. type < 0: no MESSAGE_ID. */
static void emit(const Location *loc,
                 int type,
                 int priority,
                 const EventFields *f,
                 const char *message,
                 const char *detail,
                 const char *hint) {
        _cleanup_free_ char *m = NULL, *d = NULL, *h = NULL;
        FieldList l;

        priority = LOG_PRI(priority);
        m = sanitise(message ? message : "", true);
        if (detail)
                d = sanitise(detail, true);
        if (hint)
                h = sanitise(hint, true);
        fields_build(&l, f);

        const char *id = type >= 0 ? event_message_id((EventType) type) : NULL;
        if (log_target() != LOG_TARGET_JOURNAL || write_journal(loc, id, priority, &l, m, d, h) < 0)
                write_console(priority, &l, m, d, h);

        fields_done(&l);
}

void event_emit_at(
                const char *file,
                int line,
                const char *func,
                EventType type,
                int priority,
                const EventFields *f,
                const char *fmt,
                ...) {
        int saved_errno = errno;

        if (LOG_PRI(priority) > max_level())
                return;

        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *message = xvasprintf(fmt, ap);
        va_end(ap);

        emit(&(Location) { file, line, func }, type, priority, f, message, NULL, NULL);
        errno = saved_errno;
}

void log_full_at(const char *file, int line, const char *func, int priority, const char *fmt, ...) {
        int saved_errno = errno;

        if (LOG_PRI(priority) > max_level())
                return;

        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *message = xvasprintf(fmt, ap);
        va_end(ap);

        emit(&(Location) { file, line, func }, -1, priority, NULL, message, NULL, NULL);
        errno = saved_errno;
}

void log_pg_style_at(
                const char *file,
                int line,
                const char *func,
                int priority,
                const EventFields *f,
                const char *primary,
                const char *detail,
                const char *hint) {
        int saved_errno = errno;

        if (LOG_PRI(priority) > max_level())
                return;
        emit(&(Location) { file, line, func }, -1, priority, f, primary, detail, hint);
        errno = saved_errno;
}

void event_emit_pg_style_at(
                const char *file,
                int line,
                const char *func,
                EventType type,
                int priority,
                const EventFields *f,
                const char *primary,
                const char *detail,
                const char *hint) {
        int saved_errno = errno;

        if (LOG_PRI(priority) > max_level())
                return;
        emit(&(Location) { file, line, func }, type, priority, f, primary, detail, hint);
        errno = saved_errno;
}
