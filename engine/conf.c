/* conf.c — the service's configuration file for terminal commands (see conf.h). The parser is
 * the state machine of systemd 252's parse_env_file_internal() (src/basic/env-file.c), so that a
 * file means the same to `retentiond audit` as to the units' EnvironmentFile=. Never prints or
 * logs a value: the file holds connection settings, and someone may put a secret there anyway. */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CONF_FILE_MAX (1024 * 1024)
#define NEWLINE "\n\r"
#define WHITESPACE " \t\n\r"
#define COMMENTS "#;"
#define SHELL_NEED_ESCAPE "\"\\`$"

static bool is_in(char c, const char *set) {
        return c != 0 && strchr(set, c) != NULL;
}

/* systemd's env_name_is_valid(): [A-Za-z_][A-Za-z0-9_]*, not too long. */
static bool name_valid(const char *k, size_t n) {
        if (n == 0 || n > 1024 || (k[0] >= '0' && k[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = k[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                        return false;
        }
        return true;
}

/* Valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): systemd's
 * env_value_is_valid(), which allows control characters such as newline and tab. */
static bool value_valid(const char *v, size_t n) {
        const unsigned char *s = (const unsigned char *) v;
        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
                if (len == 0 || c > 0xf4 || i + len > n)
                        return false;
                uint32_t cp = c & (0x7f >> len);
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

_printf_(3, 4) static void warn(Conf *c, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        c->warnings = xreallocarray(c->warnings, c->n_warnings + 1, sizeof(char *));
        c->warnings[c->n_warnings++] = xasprintf("line %u: %s", line, msg);
}

/* A key fit to be shown in a message: printable ASCII, not too long; else a placeholder. */
static const char *shown_key(const char *k) {
        size_t n = strlen(k);
        if (n == 0 || n > 64)
                return "(unprintable)";
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) k[i] < 0x21 || (unsigned char) k[i] > 0x7e)
                        return "(unprintable)";
        return k;
}

static void push(Conf *c, unsigned line, StrBuf *key, size_t key_len, StrBuf *value, size_t value_len) {
        const char *k = strbuf_str(key), *v = strbuf_str(value);
        /* A NUL inside makes the C string shorter than what was read. */
        bool nul_in_key = strlen(k) < key_len, nul_in_value = strlen(v) < value_len;
        if (nul_in_key || !name_valid(k, key_len))
                warn(c, line, "invalid variable name \"%s\", assignment ignored", nul_in_key ? "(unprintable)" : shown_key(k));
        else if (nul_in_value || !value_valid(v, value_len))
                warn(c, line, "the value of %s is not valid UTF-8 text, assignment ignored", k);
        else {
                c->items = xreallocarray(c->items, c->n + 1, sizeof(ConfEntry));
                c->items[c->n++] = (ConfEntry) { .key = xstrndup(k, key_len), .value = xstrndup(v, value_len), .line = line };
        }
}

void conf_parse(const char *text, size_t len, Conf *c) {
        enum {
                PRE_KEY,
                KEY,
                PRE_VALUE,
                VALUE,
                VALUE_ESCAPE,
                SINGLE_QUOTE_VALUE,
                DOUBLE_QUOTE_VALUE,
                DOUBLE_QUOTE_VALUE_ESCAPE,
                COMMENT,
                COMMENT_ESCAPE,
        } state = PRE_KEY;
        StrBuf key = {}, value = {};
        size_t key_len = 0, value_len = 0;
        size_t last_key_ws = SIZE_MAX, last_value_ws = SIZE_MAX;
        unsigned line = 1, key_line = 1;

        *c = (Conf) {};
        for (size_t i = 0; i < len; i++) {
                char ch = text[i];
                bool nl = ch == '\n' || ch == '\r';
                switch (state) {
                case PRE_KEY:
                        if (is_in(ch, COMMENTS))
                                state = COMMENT;
                        else if (!is_in(ch, WHITESPACE)) {
                                state = KEY;
                                key_line = line;
                                last_key_ws = SIZE_MAX;
                                strbuf_appendn(&key, &ch, 1);
                                key_len = 1;
                        }
                        break;
                case KEY:
                        if (nl) {
                                warn(c, key_line, "no \"=\" in the line, ignored");
                                state = PRE_KEY;
                                strbuf_done(&key);
                                key_len = 0;
                        } else if (ch == '=') {
                                state = PRE_VALUE;
                                if (last_key_ws != SIZE_MAX) /* whitespace before the '=' */
                                        key_len = last_key_ws;
                                last_value_ws = SIZE_MAX;
                                strbuf_done(&value);
                                strbuf_append(&value, "");
                                value_len = 0;
                        } else {
                                if (!is_in(ch, WHITESPACE))
                                        last_key_ws = SIZE_MAX;
                                else if (last_key_ws == SIZE_MAX)
                                        last_key_ws = key_len;
                                strbuf_appendn(&key, &ch, 1);
                                key_len++;
                        }
                        break;
                case PRE_VALUE:
                        if (nl) {
                                state = PRE_KEY;
                                push(c, key_line, &key, key_len, &value, value_len);
                                strbuf_done(&key);
                                key_len = 0;
                        } else if (ch == '\'')
                                state = SINGLE_QUOTE_VALUE;
                        else if (ch == '"')
                                state = DOUBLE_QUOTE_VALUE;
                        else if (ch == '\\')
                                state = VALUE_ESCAPE;
                        else if (!is_in(ch, WHITESPACE)) {
                                state = VALUE;
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        }
                        break;
                case VALUE:
                        if (nl) {
                                state = PRE_KEY;
                                if (last_value_ws != SIZE_MAX)
                                        value_len = last_value_ws;
                                push(c, key_line, &key, key_len, &value, value_len);
                                strbuf_done(&key);
                                key_len = 0;
                        } else if (ch == '\\') {
                                state = VALUE_ESCAPE;
                                last_value_ws = SIZE_MAX;
                        } else {
                                if (!is_in(ch, WHITESPACE))
                                        last_value_ws = SIZE_MAX;
                                else if (last_value_ws == SIZE_MAX)
                                        last_value_ws = value_len;
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        }
                        break;
                case VALUE_ESCAPE:
                        state = VALUE;
                        if (!nl) { /* a backslash before a newline continues the line */
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        }
                        break;
                case SINGLE_QUOTE_VALUE:
                        if (ch == '\'')
                                state = PRE_VALUE;
                        else {
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        }
                        break;
                case DOUBLE_QUOTE_VALUE:
                        if (ch == '"')
                                state = PRE_VALUE;
                        else if (ch == '\\')
                                state = DOUBLE_QUOTE_VALUE_ESCAPE;
                        else {
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        }
                        break;
                case DOUBLE_QUOTE_VALUE_ESCAPE:
                        state = DOUBLE_QUOTE_VALUE;
                        if (is_in(ch, SHELL_NEED_ESCAPE)) {
                                strbuf_appendn(&value, &ch, 1);
                                value_len++;
                        } else if (ch != '\n') {
                                strbuf_appendn(&value, "\\", 1);
                                strbuf_appendn(&value, &ch, 1);
                                value_len += 2;
                        }
                        break;
                case COMMENT:
                        if (ch == '\\')
                                state = COMMENT_ESCAPE;
                        else if (nl)
                                state = PRE_KEY;
                        break;
                case COMMENT_ESCAPE:
                        state = COMMENT;
                        break;
                }
                if (ch == '\n')
                        line++;
        }
        switch (state) {
        case VALUE:
        case VALUE_ESCAPE:
        case PRE_VALUE:
        case SINGLE_QUOTE_VALUE:
        case DOUBLE_QUOTE_VALUE:
        case DOUBLE_QUOTE_VALUE_ESCAPE:
                if (state == VALUE && last_value_ws != SIZE_MAX)
                        value_len = last_value_ws;
                push(c, key_line, &key, key_len, &value, value_len);
                break;
        case KEY:
                warn(c, key_line, "no \"=\" in the line, ignored");
                break;
        default:
                break;
        }
        strbuf_done(&key);
        strbuf_done(&value);
}

int conf_read(const char *path, Conf *ret) {
        *ret = (Conf) {};
        struct stat st;
        int fd = open_regular(path, -EINVAL, &st);
        if (fd < 0)
                return fd;
        if (st.st_size > CONF_FILE_MAX) {
                close(fd);
                return -EFBIG;
        }
        char *buf = xmalloc(CONF_FILE_MAX + 1);
        size_t n = 0;
        for (;;) {
                ssize_t k = read(fd, buf + n, CONF_FILE_MAX + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = -errno;
                        free(buf);
                        close(fd);
                        return e;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > CONF_FILE_MAX) {
                        free(buf);
                        close(fd);
                        return -EFBIG;
                }
        }
        close(fd);
        conf_parse(buf, n, ret);
        explicit_bzero(buf, n);
        free(buf);
        return 0;
}

const char *conf_get(const Conf *c, const char *key) {
        for (size_t i = c->n; i > 0; i--)
                if (streq(c->items[i - 1].key, key))
                        return c->items[i - 1].value;
        return NULL;
}

void conf_done(Conf *c) {
        for (size_t i = 0; i < c->n; i++) {
                free(c->items[i].key);
                if (c->items[i].value)
                        explicit_bzero(c->items[i].value, strlen(c->items[i].value));
                free(c->items[i].value);
        }
        free(c->items);
        for (size_t i = 0; i < c->n_warnings; i++)
                free(c->warnings[i]);
        free(c->warnings);
        *c = (Conf) {};
}

static bool readable_file(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

void conf_apply(const Conf *c, const char *dir, bool hash_key_given, ConfApplied *ret) {
        ConfApplied a = {};
        /* Decide for every key once, against the environment as the caller gave it: a key that
         * repeats takes its last value, and one the environment has is left alone. */
        for (size_t i = 0; c && i < c->n; i++) {
                const ConfEntry *e = &c->items[i];
                if (!e->value || streq(e->key, CONF_UNIT_OPTIONS) || conf_get(c, e->key) != e->value)
                        continue; /* no value; the units' argv; or a later assignment of the same key */
                if (getenv(e->key)) {
                        a.n_kept++;
                        continue;
                }
                if (setenv(e->key, e->value, 0) < 0)
                        oom();
                a.n_set++;
        }
        if (dir) {
                const char *pgpass = getenv("PGPASSFILE");
                _cleanup_free_ char *path = xasprintf("%s/pgpass", dir);
                if (!pgpass && readable_file(path)) {
                        if (setenv("PGPASSFILE", path, 0) < 0)
                                oom();
                        a.pgpass = true;
                }
                const char *creds = getenv("CREDENTIALS_DIRECTORY"), *env = getenv("RETENTIOND_HASH_KEY_FILE");
                _cleanup_free_ char *cred = creds && *creds ? xasprintf("%s/hash-key", creds) : NULL;
                _cleanup_free_ char *key = xasprintf("%s/hash-key", dir);
                if (!hash_key_given && !(env && *env) && !(cred && access(cred, F_OK) == 0) && readable_file(key)) {
                        if (setenv("RETENTIOND_HASH_KEY_FILE", key, 1) < 0)
                                oom();
                        a.hash_key = true;
                }
        }
        if (ret)
                *ret = a;
}
