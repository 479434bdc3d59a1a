/* test-event.c — unit tests of the event API: every event type has a distinct MESSAGE_ID and a name,
 * and the console sink prints exactly the documented text. Never talks to a journal: the target is
 * forced to console (the journal sink is tested by tests/system/test-journal.sh). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "event-ids.h"
#include "event.h"

/* Runs fn with stderr redirected to a temporary file and returns what was written. */
static char *capture_stderr(void (*fn)(void)) {
        fflush(stderr);
        FILE *tmp = tmpfile();
        assert_non_null(tmp);
        int saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);

        fn();

        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);

        long n = ftell(tmp);
        assert_true(n >= 0);
        rewind(tmp);
        char *buf = xmalloc((size_t) n + 1);
        assert_int_equal(fread(buf, 1, (size_t) n, tmp), (size_t) n);
        buf[n] = 0;
        fclose(tmp);
        return buf;
}

static int setup_console(void **state) {
        log_setup(LOG_TARGET_CONSOLE);
        log_set_max_level(LOG_INFO);
        log_set_show_fields(false);
        return 0;
}

static bool is_lower_hex32(const char *s) {
        if (strlen(s) != 32)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static void test_ids_distinct(void **state) {
        for (int i = 0; i < _EVENT_MAX; i++) {
                const char *id = event_message_id((EventType) i), *name = event_name((EventType) i);
                assert_non_null(id);
                assert_non_null(name);
                assert_true(is_lower_hex32(id));
                assert_true(strlen(name) > 0);
                assert_in_range(event_priority((EventType) i), LOG_ERR, LOG_INFO);
                for (int j = 0; j < i; j++) {
                        assert_string_not_equal(id, event_message_id((EventType) j));
                        assert_string_not_equal(name, event_name((EventType) j));
                }
        }
        assert_null(event_message_id(_EVENT_MAX));
        assert_null(event_name(_EVENT_MAX));
        assert_null(event_message_id((EventType) -1));
        /* The table and the header agree (spot checks at both ends and the middle). */
        assert_string_equal(event_message_id(EVENT_RUN_STARTED), RETENTIOND_MESSAGE_RUN_STARTED);
        assert_string_equal(event_message_id(EVENT_DATABASE_LOST), RETENTIOND_MESSAGE_DATABASE_LOST);
        assert_string_equal(event_message_id(EVENT_POLICY_FILE_WRITABLE), RETENTIOND_MESSAGE_POLICY_FILE_WRITABLE);
        assert_string_equal(event_message_id(EVENT_HASH_KEY_READABLE), RETENTIOND_MESSAGE_HASH_KEY_READABLE);
        assert_int_equal(event_priority(EVENT_HASH_KEY_READABLE), LOG_WARNING);
        assert_string_equal(event_name(EVENT_RULE_ENFORCED), "rule-enforced");
        assert_int_equal(event_priority(EVENT_RULE_FAILED), LOG_ERR);
        assert_int_equal(event_priority(EVENT_OVERDUE_FOUND), LOG_WARNING);
        assert_int_equal(event_priority(EVENT_RULE_ENFORCED), LOG_INFO);
}

static void emit_plain(void) {
        EventFields f = EVENT_FIELDS_INIT;
        f.rule = "access-logs";
        f.rows_deleted = 12;
        event_emit(EVENT_RULE_ENFORCED, LOG_INFO, &f, "rule %s: %" PRId64 " rows deleted", f.rule, f.rows_deleted);
        event_emit(EVENT_DATABASE_LOST, LOG_WARNING, NULL, "database connection lost, retrying");
        event_emit(EVENT_RULE_FAILED, LOG_ERR, NULL, "rule %s failed", "access-logs");
        log_notice("notice %d", 1);
        log_debug("not shown at the default level");
        log_error("bad %s", "thing");
        log_full(LOG_CRIT, "critical");
}

static void test_console_plain(void **state) {
        _cleanup_free_ char *out = capture_stderr(emit_plain);
        assert_string_equal(out,
                            "retentiond: rule access-logs: 12 rows deleted\n"
                            "retentiond: warning: database connection lost, retrying\n"
                            "retentiond: error: rule access-logs failed\n"
                            "retentiond: notice 1\n"
                            "retentiond: error: bad thing\n"
                            "retentiond: error: critical\n");
}

static void emit_fields(void) {
        EventFields f = EVENT_FIELDS_INIT;
        f.rule = "access-logs";
        f.clause = "after-90d";
        f.table = "public.access_log";
        f.action = "delete";
        f.rows_deleted = 0;
        f.rows_anonymised = 2;
        f.rows_held = 3;
        f.rows_overdue = 4;
        f.rows_skipped = 5;
        f.cutoff = "2024-01-01 00:00:00+00";
        f.duration_usec = 1500;
        f.run_id = 7;
        f.sqlstate = "40P01";
        f.policy_file = "/etc/retentiond/policies.d/a \"b\".yaml";
        f.policy_line = 12;
        f.hold = "legal-1";
        f.chain_hash = "9f2c";
        event_emit(EVENT_RULE_ENFORCED, LOG_NOTICE, &f, "enforced");

        EventFields g = EVENT_FIELDS_INIT;
        g.rule = "";      /* empty: absent */
        g.table = "a\nb"; /* control characters never reach a single-line field */
        event_emit(EVENT_ROWS_HELD, LOG_INFO, &g, "held");
        event_emit(EVENT_ROWS_HELD, LOG_INFO, NULL, "no fields");
}

static void test_console_fields(void **state) {
        log_set_show_fields(true);
        _cleanup_free_ char *out = capture_stderr(emit_fields);
        assert_string_equal(out,
                            "retentiond: enforced [RULE=access-logs CLAUSE=after-90d TABLE=public.access_log "
                            "ACTION=delete ROWS_DELETED=0 ROWS_ANONYMISED=2 ROWS_HELD=3 ROWS_OVERDUE=4 "
                            "ROWS_SKIPPED=5 CUTOFF=\"2024-01-01 00:00:00+00\" DURATION_USEC=1500 RUN_ID=7 "
                            "SQLSTATE=40P01 POLICY_FILE=\"/etc/retentiond/policies.d/a \\\"b\\\".yaml\" "
                            "POLICY_LINE=12 HOLD=legal-1 CHAIN_HASH=9f2c]\n"
                            "retentiond: held [TABLE=a?b]\n"
                            "retentiond: no fields\n");

        log_set_show_fields(false);
        _cleanup_free_ char *out2 = capture_stderr(emit_fields);
        assert_string_equal(out2,
                            "retentiond: enforced\n"
                            "retentiond: held\n"
                            "retentiond: no fields\n");
}

static void emit_database(void) {
        EventFields f = EVENT_FIELDS_INIT;
        f.database = "billing";
        event_emit(EVENT_DATABASE_LOST, LOG_WARNING, &f, "lost");
        /* the daemon reporting a run of one of several databases */
        event_set_database("main");
        EventFields g = EVENT_FIELDS_INIT;
        g.run_id = 3;
        event_emit(EVENT_RUN_FINISHED, LOG_NOTICE, &g, "finished");
        event_emit(EVENT_RUN_FINISHED, LOG_NOTICE, &f, "own name wins");
        event_emit(EVENT_RUN_FINISHED, LOG_NOTICE, NULL, "no fields");
        event_set_database(NULL);
        event_emit(EVENT_RUN_FINISHED, LOG_NOTICE, &g, "after");
}

static void test_console_database(void **state) {
        log_set_show_fields(true);
        _cleanup_free_ char *out = capture_stderr(emit_database);
        log_set_show_fields(false);
        assert_string_equal(out,
                            "retentiond: warning: lost [DATABASE=billing]\n"
                            "retentiond: finished [RUN_ID=3 DATABASE=main]\n"
                            "retentiond: own name wins [DATABASE=billing]\n"
                            "retentiond: no fields [DATABASE=main]\n"
                            "retentiond: after [RUN_ID=3]\n");
}

static void emit_pg(void) {
        EventFields f = EVENT_FIELDS_INIT;
        f.sqlstate = "55P03";
        log_pg_style(LOG_ERR, &f, "could not lock table \"public.access_log\"",
                     "Another session holds a conflicting lock.", "Retry later or raise --lock-timeout.");
        log_pg_style(LOG_WARNING, NULL, "only primary", NULL, NULL);
        log_pg_style(LOG_ERR, NULL, "primary", NULL, "just a hint");
        event_emit_pg_style(EVENT_RULE_FAILED, LOG_ERR, &f, "rule failed", "detail\nsecond line", NULL);
}

static void test_console_pg_style(void **state) {
        _cleanup_free_ char *out = capture_stderr(emit_pg);
        assert_string_equal(out,
                            "retentiond: error: could not lock table \"public.access_log\"\n"
                            "DETAIL:  Another session holds a conflicting lock.\n"
                            "HINT:  Retry later or raise --lock-timeout.\n"
                            "retentiond: warning: only primary\n"
                            "retentiond: error: primary\n"
                            "HINT:  just a hint\n"
                            "retentiond: error: rule failed\n"
                            "DETAIL:  detail\n"
                            "second line\n");
}

static void emit_levels(void) {
        log_set_max_level(LOG_WARNING);
        log_info("dropped");
        log_notice("dropped");
        event_emit(EVENT_RUN_STARTED, LOG_INFO, NULL, "dropped");
        log_pg_style(LOG_NOTICE, NULL, "dropped", NULL, NULL);
        log_warning("kept");
        log_set_max_level(LOG_DEBUG);
        log_debug("debug %s", "kept");
        log_set_max_level(LOG_INFO);
}

static void test_console_levels(void **state) {
        _cleanup_free_ char *out = capture_stderr(emit_levels);
        assert_string_equal(out, "retentiond: warning: kept\nretentiond: debug kept\n");
}

static void emit_errno(void) {
        errno = ENOENT;
        log_error("open failed: %m");
        assert_int_equal(errno, ENOENT);
        event_emit(EVENT_POLICY_REJECTED, LOG_ERR, NULL, "x");
        assert_int_equal(errno, ENOENT);
        /* message text keeps newlines and tabs, loses other control characters */
        log_info("a\tb\x1b[31mc");
}

static void test_console_errno_and_sanitise(void **state) {
        _cleanup_free_ char *out = capture_stderr(emit_errno);
        assert_string_equal(out,
                            "retentiond: error: open failed: No such file or directory\n"
                            "retentiond: error: x\n"
                            "retentiond: a\tb?[31mc\n");
}

static void test_target_auto(void **state) {
        unsetenv("JOURNAL_STREAM");
        unsetenv("INVOCATION_ID");
        log_setup(LOG_TARGET_AUTO);
        assert_int_equal(log_target(), LOG_TARGET_CONSOLE);

        setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef", 1);
        log_setup(LOG_TARGET_AUTO);
        assert_int_equal(log_target(), LOG_TARGET_JOURNAL);
        unsetenv("INVOCATION_ID");

        setenv("JOURNAL_STREAM", "8:12345", 1);
        log_setup(LOG_TARGET_AUTO);
        assert_int_equal(log_target(), LOG_TARGET_JOURNAL);
        log_setup(LOG_TARGET_CONSOLE);
        assert_int_equal(log_target(), LOG_TARGET_CONSOLE);
        unsetenv("JOURNAL_STREAM");

        log_setup(LOG_TARGET_JOURNAL);
        assert_int_equal(log_target(), LOG_TARGET_JOURNAL);
        log_setup(LOG_TARGET_CONSOLE);

        assert_int_equal(log_target_from_string("auto"), LOG_TARGET_AUTO);
        assert_int_equal(log_target_from_string("journal"), LOG_TARGET_JOURNAL);
        assert_int_equal(log_target_from_string("console"), LOG_TARGET_CONSOLE);
        assert_int_equal(log_target_from_string("syslog"), -1);
        assert_int_equal(log_target_from_string(""), -1);
        assert_int_equal(log_target_from_string(NULL), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ids_distinct),
                cmocka_unit_test_setup(test_console_plain, setup_console),
                cmocka_unit_test_setup(test_console_fields, setup_console),
                cmocka_unit_test_setup(test_console_database, setup_console),
                cmocka_unit_test_setup(test_console_pg_style, setup_console),
                cmocka_unit_test_setup(test_console_levels, setup_console),
                cmocka_unit_test_setup(test_console_errno_and_sanitise, setup_console),
                cmocka_unit_test(test_target_auto),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
