/* test-conf.c — unit tests of engine/conf.c: the configuration file is read as systemd 252's
 * EnvironmentFile= reads it (comments, quotes, escapes, continuations, invalid assignments), and
 * conf_apply() lets the caller's environment win and finds the service's credential files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "util.h"

static Conf parse(const char *text) {
        Conf c;
        conf_parse(text, strlen(text), &c);
        return c;
}

/* The file's assignments, "K=V|K=V|", with newlines and tabs shown as \n and \t. */
static char *dump(const Conf *c) {
        StrBuf b = {};
        for (size_t i = 0; i < c->n; i++) {
                strbuf_appendf(&b, "%s=", c->items[i].key);
                for (const char *p = c->items[i].value; *p; p++)
                        if (*p == '\n')
                                strbuf_append(&b, "\\n");
                        else if (*p == '\t')
                                strbuf_append(&b, "\\t");
                        else
                                strbuf_appendc(&b, *p);
                strbuf_appendc(&b, '|');
        }
        return strbuf_steal(&b);
}

static void expect(const char *text, const char *want, size_t n_warnings) {
        Conf c = parse(text);
        _cleanup_free_ char *got = dump(&c);
        if (!streq(got, want) || c.n_warnings != n_warnings) {
                for (size_t i = 0; i < c.n_warnings; i++)
                        print_message("warning: %s\n", c.warnings[i]);
                fail_msg("parsing \"%s\": got \"%s\" with %zu warnings, want \"%s\" with %zu", text, got, c.n_warnings, want,
                         n_warnings);
        }
        conf_done(&c);
}

static void test_plain(void **state) {
        (void) state;
        expect("", "", 0);
        expect("PGHOST=/run/postgresql\nPGPORT=5432\n", "PGHOST=/run/postgresql|PGPORT=5432|", 0);
        expect("A=1", "A=1|", 0); /* no newline at the end */
        /* whitespace around the key and the value goes; inside the value it stays */
        expect("  KEY  =   a b  c   \n", "KEY=a b  c|", 0);
        expect("A=\nB=   \n", "A=|B=|", 0);
        expect("A=1\r\nB=2\r\n", "A=1|B=2|", 0); /* CR is a line end too */
        expect("\n\n   \n\tA=1\n\n", "A=1|", 0);
        expect("A==b=c\n", "A==b=c|", 0);
}

static void test_comments(void **state) {
        (void) state;
        expect("# a comment\n; also one\n   # indented\nA=1\n", "A=1|", 0);
        /* '#' inside a value is part of it, as for systemd */
        expect("A=x # not a comment\n", "A=x # not a comment|", 0);
        /* a backslash at the end of a comment continues the comment */
        expect("# comment \\\nB=hidden\nC=3\n", "C=3|", 0);
        expect("#PGHOST=db\n", "", 0);
}

static void test_quotes(void **state) {
        (void) state;
        expect("A='x y '\n", "A=x y |", 0);
        expect("A='no $escapes \\n here'\n", "A=no $escapes \\n here|", 0);
        /* in double quotes \" \\ \` \$ are escapes; any other backslash stays */
        expect("A=\"a \\\"q\\\" \\\\ \\` \\$HOME \\n\"\n", "A=a \"q\" \\ ` $HOME \\n|", 0);
        /* quoted parts join with what follows */
        expect("A=\"x\"'y'z\n", "A=xyz|", 0);
        /* whitespace after a closing quote is skipped */
        expect("A=\"x\"   \n", "A=x|", 0);
        /* quotes span lines; a backslash-newline inside double quotes is removed */
        expect("A=\"line1\nline2\"\nB=2\n", "A=line1\\nline2|B=2|", 0);
        expect("A=\"one \\\ntwo\"\n", "A=one two|", 0);
        /* a quote after the value began is an ordinary character */
        expect("A=x \"y\"\n", "A=x \"y\"|", 0);
        expect("A=''\nB=\"\"\n", "A=|B=|", 0);
        /* an unterminated quote runs to the end of the file */
        expect("A='open\nB=2\n", "A=open\\nB=2\\n|", 0);
}

static void test_escapes(void **state) {
        (void) state;
        expect("A=a\\ b\n", "A=a b|", 0);
        expect("A=a\\\\b\n", "A=a\\b|", 0);
        /* a backslash before the newline continues the line */
        expect("A=one \\\n two\nB=2\n", "A=one  two|B=2|", 0);
        /* an escaped space at the end is kept */
        expect("A=x\\ \n", "A=x |", 0);
        expect("A=\\'x\\'\n", "A='x'|", 0);
}

static void test_invalid(void **state) {
        (void) state;
        expect("1A=x\n", "", 1);
        expect("B-C=y\n", "", 1);
        expect("export PGHOST=x\n", "", 1); /* no shell syntax: the name would be "export PGHOST" */
        expect("just some words\nA=1\n", "A=1|", 1);
        expect("A=1\nlast line without equals", "A=1|", 1);
        expect("A=\xff\xfe\nB=ok\n", "B=ok|", 1);
        expect("A=\xc0\xaf\n", "", 1); /* overlong */
        expect("A=\xed\xa0\x80\n", "", 1); /* surrogate */
        expect("A=caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\n", "A=caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91|", 0);
        /* a NUL makes the assignment invalid, not shorter */
        Conf c;
        conf_parse("A=sec\0ret\nB=2\n", 14, &c);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.items[0].key, "B");
        assert_int_equal(c.n_warnings, 1);
        conf_done(&c);

        /* warnings name the line and the key, never the value */
        c = parse("A=1\n\n9LIVES=s3cret\nnope s3cret\n");
        assert_int_equal(c.n_warnings, 2);
        assert_string_equal(c.warnings[0], "line 3: invalid variable name \"9LIVES\", assignment ignored");
        assert_string_equal(c.warnings[1], "line 4: no \"=\" in the line, ignored");
        conf_done(&c);
        c = parse("PW=\xff" "s3cret\n");
        assert_int_equal(c.n_warnings, 1);
        assert_string_equal(c.warnings[0], "line 1: the value of PW is not valid UTF-8 text, assignment ignored");
        conf_done(&c);
}

/* The file tests/package/test-container.sh gives real systemd (EnvironmentFile=) and whose
 * values it checks there: the same values here. */
static void test_systemd_cases(void **state) {
        (void) state;
        expect("A='x y '\n"
               "B=\"a \\\"q\\\" \\\\ \\` \\$HOME \\n\"\n"
               "C=\"x\"'y'z\n"
               "D=one \\\n two\n"
               "E=x # not a comment\n"
               "# comment \\\nF=hidden\n"
               "G=a\\ b\n"
               "  KEY  =   a b  c   \n"
               "9LIVES=x\n"
               "H=\\'x\\'\n",
               "A=x y |B=a \"q\" \\ ` $HOME \\n|C=xyz|D=one  two|E=x # not a comment|G=a b|KEY=a b  c|H='x'|", 1);
}

static void test_get(void **state) {
        (void) state;
        Conf c = parse("A=1\nB=2\nA=3\n");
        assert_string_equal(conf_get(&c, "A"), "3");
        assert_string_equal(conf_get(&c, "B"), "2");
        assert_null(conf_get(&c, "C"));
        assert_int_equal(c.items[2].line, 3);
        conf_done(&c);
        /* the package's own file: every setting commented out */
        assert_int_equal(conf_read(SOURCE_ROOT "/packaging/retentiond.conf", &c), 0);
        assert_int_equal(c.n, 0);
        assert_int_equal(c.n_warnings, 0);
        conf_done(&c);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text, mode_t mode) {
        _cleanup_free_ char *p = xasprintf("%s/%s", tmpdir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static int setup_dir(void **state) {
        (void) state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/retentiond-test-conf.XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
        (void) state;
        const char *names[] = { "retentiond.conf", "pgpass", "hash-key", "creds/hash-key", "big", "creds" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", tmpdir, names[i]);
                (void) unlink(p);
                (void) rmdir(p);
        }
        return rmdir(tmpdir);
}

static void test_read(void **state) {
        (void) state;
        Conf c;
        _cleanup_free_ char *missing = xasprintf("%s/missing.conf", tmpdir);
        assert_int_equal(conf_read(missing, &c), -ENOENT);
        assert_int_equal(conf_read(tmpdir, &c), -EINVAL);
        write_file("retentiond.conf", "# settings\nPGHOST=127.0.0.1\nPGDATABASE=\"demo\"\n", 0640);
        _cleanup_free_ char *p = xasprintf("%s/retentiond.conf", tmpdir);
        assert_int_equal(conf_read(p, &c), 0);
        _cleanup_free_ char *got = dump(&c);
        assert_string_equal(got, "PGHOST=127.0.0.1|PGDATABASE=demo|");
        conf_done(&c);

        _cleanup_free_ char *big = xasprintf("%s/big", tmpdir);
        int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 1024 * 1024 + 1), 0);
        close(fd);
        assert_int_equal(conf_read(big, &c), -EFBIG);
}

static void clear_env(void) {
        const char *vars[] = { "PGHOST", "PGDATABASE", "PGUSER", "PGPASSFILE", "RETENTIOND_OPTIONS", "A",
                               "RETENTIOND_HASH_KEY_FILE", "CREDENTIALS_DIRECTORY", "EMPTY" };
        for (size_t i = 0; i < ELEMENTSOF(vars); i++)
                unsetenv(vars[i]);
}

static void test_apply(void **state) {
        (void) state;
        clear_env();
        setenv("PGHOST", "/from/the/caller", 1);
        setenv("EMPTY", "", 1);
        Conf c = parse("PGHOST=127.0.0.1\nPGDATABASE=demo\nA=1\nRETENTIOND_OPTIONS=-p /elsewhere\nA=2\nEMPTY=x\nPGUSER=retentiond\n");
        ConfApplied a;
        conf_apply(&c, NULL, false, &a);
        assert_string_equal(getenv("PGHOST"), "/from/the/caller"); /* the environment wins */
        assert_string_equal(getenv("EMPTY"), "");                  /* even when empty */
        assert_string_equal(getenv("PGDATABASE"), "demo");
        assert_string_equal(getenv("PGUSER"), "retentiond");
        assert_string_equal(getenv("A"), "2"); /* the last assignment */
        assert_null(getenv("RETENTIOND_OPTIONS")); /* the units' argv, never the CLI's */
        assert_int_equal(a.n_set, 3);
        assert_int_equal(a.n_kept, 2);
        assert_false(a.pgpass);
        assert_false(a.hash_key);
        conf_done(&c);

        /* the credential files next to the configuration, when readable */
        clear_env();
        conf_apply(NULL, tmpdir, false, &a);
        assert_false(a.pgpass);
        assert_false(a.hash_key);
        assert_null(getenv("PGPASSFILE"));
        write_file("pgpass", "127.0.0.1:5432:demo:retentiond:pw\n", 0600);
        write_file("hash-key", "0123456789abcdef0123456789abcdef\n", 0600);
        _cleanup_free_ char *pgpass = xasprintf("%s/pgpass", tmpdir), *key = xasprintf("%s/hash-key", tmpdir);
        conf_apply(NULL, tmpdir, false, &a);
        assert_true(a.pgpass);
        assert_true(a.hash_key);
        assert_string_equal(getenv("PGPASSFILE"), pgpass);
        assert_string_equal(getenv("RETENTIOND_HASH_KEY_FILE"), key);

        /* PGPASSFILE of the caller or of the file wins */
        clear_env();
        setenv("PGPASSFILE", "/caller/pgpass", 1);
        conf_apply(NULL, tmpdir, false, &a);
        assert_false(a.pgpass);
        assert_string_equal(getenv("PGPASSFILE"), "/caller/pgpass");
        clear_env();
        c = parse("PGPASSFILE=/conf/pgpass\n");
        conf_apply(&c, tmpdir, false, &a);
        assert_false(a.pgpass);
        assert_string_equal(getenv("PGPASSFILE"), "/conf/pgpass");
        conf_done(&c);

        /* the hash key: --hash-key-file, RETENTIOND_HASH_KEY_FILE and the credential win */
        clear_env();
        conf_apply(NULL, tmpdir, true, &a);
        assert_false(a.hash_key);
        assert_null(getenv("RETENTIOND_HASH_KEY_FILE"));
        setenv("RETENTIOND_HASH_KEY_FILE", "/caller/key", 1);
        conf_apply(NULL, tmpdir, false, &a);
        assert_false(a.hash_key);
        assert_string_equal(getenv("RETENTIOND_HASH_KEY_FILE"), "/caller/key");
        clear_env();
        _cleanup_free_ char *creds = xasprintf("%s/creds", tmpdir);
        assert_int_equal(mkdir(creds, 0700), 0);
        setenv("CREDENTIALS_DIRECTORY", creds, 1);
        conf_apply(NULL, tmpdir, false, &a);
        assert_true(a.hash_key); /* the directory has no hash-key credential */
        clear_env();
        setenv("CREDENTIALS_DIRECTORY", creds, 1);
        write_file("creds/hash-key", "fedcba9876543210fedcba9876543210\n", 0600);
        conf_apply(NULL, tmpdir, false, &a);
        assert_false(a.hash_key);
        assert_null(getenv("RETENTIOND_HASH_KEY_FILE"));

        /* unreadable files are not named (as any user but root) */
        clear_env();
        if (geteuid() != 0) {
                assert_int_equal(chmod(pgpass, 0), 0);
                conf_apply(NULL, tmpdir, false, &a);
                assert_false(a.pgpass);
        }
        clear_env();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),   cmocka_unit_test(test_comments), cmocka_unit_test(test_quotes),
                cmocka_unit_test(test_escapes), cmocka_unit_test(test_invalid),  cmocka_unit_test(test_get),
                cmocka_unit_test(test_systemd_cases),
                cmocka_unit_test(test_read),    cmocka_unit_test(test_apply),
        };
        return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
