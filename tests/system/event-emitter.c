/* event-emitter.c — test helper for tests/system/test-journal.sh: sends one event of every type,
 * with every field set to a value derived from the type's number, through the real event API.
 * Only ever run against the test's private journald; it must not be installed.
 *
 *   event-emitter all    log_setup(JOURNAL); every event type, then the extra lines below
 *   event-emitter auto   log_setup(AUTO); one daemon-started event (where it lands is the test)
 *
 * The values (keep in sync with expected_fields() in test-journal.sh), for event number i:
 *   MESSAGE "event NAME number i", PRIORITY i % 8, RULE rule-NAME, CLAUSE clause-i,
 *   TABLE public.table_i, ACTION delete, ROWS_DELETED 10i+1, ROWS_ANONYMISED 10i+2,
 *   ROWS_HELD 10i+3, ROWS_OVERDUE 10i+4, ROWS_SKIPPED 10i+5, CUTOFF "2024-01-02 03:04:05+00",
 *   DURATION_USEC 1000+i, RUN_ID 100+i, SQLSTATE 40P01, POLICY_FILE /etc/retentiond/policies.d/p-i.yaml,
 *   POLICY_LINE i+1, HOLD hold-i, KEY_FILE /etc/retentiond/key-i, SKIP_REASON locked,
 *   ROWS_CASCADE_DELETED 10i+6, ROWS_CASCADE_NULLED 10i+7, CASCADES [{"table":"public.child_i"}]. */
#include <inttypes.h>

#include "event.h"

static int emit_all(void) {
        log_setup(LOG_TARGET_JOURNAL);
        log_set_max_level(LOG_DEBUG);

        for (int i = 0; i < _EVENT_MAX; i++) {
                const char *name = event_name((EventType) i);
                _cleanup_free_ char *rule = xasprintf("rule-%s", name), *clause = xasprintf("clause-%d", i),
                                    *table = xasprintf("public.table_%d", i),
                                    *policy_file = xasprintf("/etc/retentiond/policies.d/p-%d.yaml", i),
                                    *hold = xasprintf("hold-%d", i), *key_file = xasprintf("/etc/retentiond/key-%d", i),
                                    *cascades = xasprintf("[{\"table\":\"public.child_%d\"}]", i);
                EventFields f = EVENT_FIELDS_INIT;
                f.rule = rule;
                f.clause = clause;
                f.table = table;
                f.action = "delete";
                f.rows_deleted = 10 * i + 1;
                f.rows_anonymised = 10 * i + 2;
                f.rows_held = 10 * i + 3;
                f.rows_overdue = 10 * i + 4;
                f.rows_skipped = 10 * i + 5;
                f.cutoff = "2024-01-02 03:04:05+00";
                f.duration_usec = 1000 + i;
                f.run_id = 100 + i;
                f.sqlstate = "40P01";
                f.policy_file = policy_file;
                f.policy_line = (unsigned) i + 1;
                f.hold = hold;
                f.key_file = key_file;
                f.skip_reason = "locked";
                f.rows_cascade_deleted = 10 * i + 6;
                f.rows_cascade_nulled = 10 * i + 7;
                f.cascades = cascades;
                event_emit((EventType) i, i % 8, &f, "event %s number %d", name, i);
        }

        /* A runtime error in PostgreSQL style: multi-line DETAIL kept, control characters in a
         * single-line field replaced, zero counts present, absent fields absent. */
        EventFields g = EVENT_FIELDS_INIT;
        g.sqlstate = "42501";
        g.table = "public.bad\nname";
        g.rows_deleted = 0;
        log_pg_style(LOG_ERR,
                     &g,
                     "permission denied for table bad",
                     "first detail line\nsecond detail line",
                     "GRANT DELETE ON the table to the retentiond role.");

        /* A plain line: no MESSAGE_ID, no fields. */
        log_info("plain line %d", 7);
        /* Dropped by the level filter. */
        log_set_max_level(LOG_INFO);
        log_debug("must not be sent");
        return 0;
}

static int emit_auto(void) {
        log_setup(LOG_TARGET_AUTO);
        event_emit(EVENT_DAEMON_STARTED, LOG_NOTICE, NULL, "auto target: %s",
                   log_target() == LOG_TARGET_JOURNAL ? "journal" : "console");
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc == 2 && streq(argv[1], "all"))
                return emit_all();
        if (argc == 2 && streq(argv[1], "auto"))
                return emit_auto();
        fprintf(stderr, "usage: %s all|auto\n", argv[0]);
        return 64;
}
