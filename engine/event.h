/* event.h — the one event and log API of retentiond: structured journald events with a stable
 * MESSAGE_ID per type, or readable lines on stderr, through the same code path.
 * Never pass personal data or secrets in any message or field (see below). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "util.h"

/* Every event type. The MESSAGE_ID of each is in event-ids.h and documented in
 * packaging/retentiond.catalog and the README's "Monitoring" section. Append only. */
typedef enum EventType {
        EVENT_RUN_STARTED,
        EVENT_RUN_FINISHED,
        EVENT_RULE_ENFORCED,
        EVENT_RULE_FAILED,
        EVENT_BREAKER_TRIPPED,
        EVENT_ROWS_HELD,
        EVENT_OVERDUE_FOUND,
        EVENT_FK_ISOLATED,
        EVENT_POLICY_LOADED,
        EVENT_POLICY_REJECTED,
        EVENT_DATABASE_LOST,
        EVENT_DATABASE_BACK,
        EVENT_DAEMON_STARTED,
        EVENT_DAEMON_STOPPING,
        EVENT_RUN_REQUESTED,     /* an immediate run was requested by signal (SIGUSR1) */
        EVENT_RUN_INTERRUPTED,
        EVENT_PARTITION_DROPPED,
        EVENT_HOLD_PLACED,
        EVENT_HOLD_RELEASED,
        EVENT_ROWS_SKIPPED,      /* locked rows left for the next run */
        EVENT_POLICY_FILE_WRITABLE, /* a policy file is writable by a non-root user */
        EVENT_WORKER_ABANDONED,  /* stopping: a database worker did not stop in time; exiting without it */
        EVENT_RUNS_CLOSED,       /* runs left `running` by a dead session were recorded as interrupted */
        EVENT_RULE_ATTENTION,    /* a rule needs attention: failing, breaker, not succeeded for long, overdue */
        EVENT_SLOT_IN_FUTURE,    /* a rule's last start (rule_slots) lies in the future: ignored */
        EVENT_UNTRUSTED_CODE,    /* code of another role ran with the engine's privileges (trust_triggers) */
        EVENT_HASH_KEY_READABLE,    /* the hash key file is readable by its group or others */
        _EVENT_MAX,
} EventType;

typedef enum LogTarget {
        LOG_TARGET_AUTO,    /* journal when JOURNAL_STREAM or INVOCATION_ID is set, else console */
        LOG_TARGET_JOURNAL, /* sd_journal_sendv with structured fields */
        LOG_TARGET_CONSOLE, /* one readable line per message on stderr */
} LogTarget;

/* The structured fields of an event. Absent fields are not sent: strings NULL or "", numbers < 0,
 * policy_line 0.
 *
 * NO PERSONAL DATA, NO SECRETS: these fields (and the message text) end up in the journal, which
 * is kept and shipped far longer than any retention period. Pass only names that come from the
 * policy (rule, clause, table, action, hold name or id), counts, cutoff timestamps, SQLSTATE codes
 * and policy file paths. Never a row's values, a subject key, a connection string or a password.
 * Control characters in string fields are replaced by '?' (every field is a single line). */
typedef struct EventFields {
        const char *rule, *clause, *table, *action, *cutoff, *sqlstate, *policy_file, *hold;
        const char *chain_hash; /* run-finished: the audit trail's last chain digest (hex) */
        const char *database;   /* the policy's name of the database (`databases:`), when it names several */
        const char *key_file;   /* hash-key-readable: the key file's path (never its contents) */
        const char *cascades;   /* rule-enforced: the rows its deletions cascaded into, a JSON array of
                                 * {"table", "rows_deleted", "rows_nulled"}; NULL: none */
        const char *skip_reason; /* rows-skipped: "locked" or "refused" */
        int64_t rows_cascade_deleted, rows_cascade_nulled; /* < 0: absent */
        int64_t rows_deleted, rows_anonymised, rows_held, rows_overdue, rows_skipped; /* < 0: absent */
        int64_t run_id;        /* < 0: absent */
        int64_t duration_usec; /* < 0: absent */
        unsigned policy_line;  /* 0: absent */
} EventFields;

#define EVENT_FIELDS_INIT                                                                       \
        {                                                                                       \
                .rows_deleted = -1, .rows_anonymised = -1, .rows_held = -1, .rows_overdue = -1, \
                .rows_skipped = -1, .run_id = -1, .duration_usec = -1,                         \
                .rows_cascade_deleted = -1, .rows_cascade_nulled = -1                           \
        }

/* Choose the sink. AUTO is resolved here, from the environment; until log_setup() is called the
 * target is AUTO, resolved on first use. */
void log_setup(LogTarget target);
/* The resolved target: never LOG_TARGET_AUTO. */
LogTarget log_target(void);
/* "auto", "journal" or "console" (--log-target=); -1 for anything else. */
int log_target_from_string(const char *s);
/* Messages and events with a priority numerically above this are dropped (default LOG_INFO). */
void log_set_max_level(int priority);
int log_get_max_level(void); /* this thread's, see below */
/* The calling thread only (e.g. `run` quiet on the terminal while its report is printed):
 * priority < 0 goes back to the process's limit. */
void log_set_thread_max_level(int priority);
/* Console only: append the fields as KEY=value after the message (default off). */
void log_set_show_fields(bool b);

/* The functions below are macros around *_at() variants that add the caller's CODE_FILE=,
 * CODE_LINE= and CODE_FUNC= to journal entries; call them as if they were plain functions. */

/* Emits one event: MESSAGE=formatted text, MESSAGE_ID, PRIORITY, SYSLOG_IDENTIFIER=retentiond and
 * every present field as RULE=, CLAUSE=, TABLE=, ACTION=, ROWS_DELETED=, ROWS_ANONYMISED=,
 * ROWS_HELD=, ROWS_OVERDUE=, ROWS_SKIPPED=, CUTOFF=, DURATION_USEC=, RUN_ID=, SQLSTATE=,
 * POLICY_FILE=, POLICY_LINE=, HOLD=, CHAIN_HASH=, DATABASE=, KEY_FILE=, ROWS_CASCADE_DELETED=,
 * ROWS_CASCADE_NULLED=, CASCADES=, SKIP_REASON=.
 * On the console: "retentiond: [warning: |error: ]MESSAGE".
 * f may be NULL (no fields). errno is preserved, and %m works in fmt.
 *   void event_emit(EventType type, int priority, const EventFields *f, const char *fmt, ...); */
#define event_emit(type, priority, f, ...) event_emit_at(__FILE__, __LINE__, __func__, type, priority, f, __VA_ARGS__)
void event_emit_at(
                const char *file,
                int line,
                const char *func,
                EventType type,
                int priority,
                const EventFields *f,
                const char *fmt,
                ...) _printf_(7, 8);

/* Plain log lines without a MESSAGE_ID (same sinks). errno is preserved.
 *   void log_full(int priority, const char *fmt, ...); */
#define log_full(priority, ...) log_full_at(__FILE__, __LINE__, __func__, priority, __VA_ARGS__)
void log_full_at(const char *file, int line, const char *func, int priority, const char *fmt, ...) _printf_(5, 6);
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)

/* PostgreSQL message style for runtime errors: a primary message, optional DETAIL and HINT.
 * Console: "retentiond: error: PRIMARY\nDETAIL:  ...\nHINT:  ...".
 * Journal: MESSAGE=PRIMARY, ERROR_DETAIL=, ERROR_HINT= and the fields. detail/hint may be NULL. */
#define log_pg_style(priority, f, primary, detail, hint) \
        log_pg_style_at(__FILE__, __LINE__, __func__, priority, f, primary, detail, hint)
void log_pg_style_at(
                const char *file,
                int line,
                const char *func,
                int priority,
                const EventFields *f,
                const char *primary,
                const char *detail,
                const char *hint);
/* The same with a MESSAGE_ID: an event whose text is in PostgreSQL style.
 *   void event_emit_pg_style(EventType type, int priority, const EventFields *f,
 *                            const char *primary, const char *detail, const char *hint); */
#define event_emit_pg_style(type, priority, f, primary, detail, hint) \
        event_emit_pg_style_at(__FILE__, __LINE__, __func__, type, priority, f, primary, detail, hint)
void event_emit_pg_style_at(
                const char *file,
                int line,
                const char *func,
                EventType type,
                int priority,
                const EventFields *f,
                const char *primary,
                const char *detail,
                const char *hint);

/* Until called again with NULL, every event and log line of the calling thread that names no
 * database gets DATABASE=name (the daemon's loop, while it reports a run of one of several
 * databases; each worker, for its database). Per thread: name must outlive its use. */
void event_set_database(const char *name);

/* 32 lowercase hex characters, or NULL when t is out of range. */
const char *event_message_id(EventType t);
/* "run-started", "rule-enforced", ...; NULL when t is out of range. */
const char *event_name(EventType t);
/* The usual priority of the event type (LOG_ERR for rule-failed, LOG_WARNING for overdue-found,
 * ...), as documented in the README; callers pass it to event_emit() unless the situation is
 * worse or better than usual (e.g. run-finished is LOG_WARNING when a rule failed). */
int event_priority(EventType t);
