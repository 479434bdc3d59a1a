/* policy-load.c — read policy files, parse them with libyaml into a small node tree, validate
 * the tree into a Policy, and report every problem with file, line and column in one pass.
 * Must never talk to PostgreSQL, never print, and never accept a file it could not fully check. */
#include "policy-load.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "exitcode.h"
#include "sqlfrag.h"
#include "util.h"

/* ---- sources and the node tree ---------------------------------------------------------- */

typedef struct Source {
        const char *name; /* owned by Policy.files (or by the Loader for unread paths) */
        const char *text;
        size_t len;
        char *owned_text;
        size_t *line_starts;
        size_t n_lines;
        unsigned rank;
        size_t n_errors;
} Source;

typedef enum NodeType {
        NODE_SCALAR,
        NODE_MAPPING,
        NODE_SEQUENCE,
        NODE_BAD, /* an alias or otherwise rejected node: already reported, skipped silently */
} NodeType;

typedef struct Node {
        NodeType type;
        unsigned line, column; /* 1-based start */
        /* scalars */
        char *value;
        size_t len;
        bool plain;
        unsigned value_column; /* column of value[0] when byte offsets map to columns, else 0 */
        /* mappings (key, value, key, value, ...) and sequences */
        struct Node **items;
        size_t n, cap;
        bool *skip; /* mappings: per pair, key is a duplicate or not a string */
} Node;

typedef struct HoldExtra {
        Location subject_loc;
} HoldExtra;

typedef struct RuleExtra {
        Location subject_loc;
        Location database_loc;
        Location *hold_locs;
} RuleExtra;

typedef struct Loader {
        Diagnostics *diags;
        Policy *policy;
        Source **sources;
        size_t n_sources;
        HoldExtra *hold_extra; /* parallel to policy->holds */
        RuleExtra *rule_extra; /* parallel to policy->rules */
        unsigned rank;
        bool incomplete;    /* some file could not be read or parsed: skip reference checks */
        int first_io_error; /* errno of the first I/O problem, or 0 */
        size_t errors_before;
        Diagnostic scratch; /* receives details of errors beyond POLICY_ERRORS_PER_FILE_MAX */
} Loader;

/* A file full of mistakes (or garbage) must not produce millions of messages. */
#define POLICY_ERRORS_PER_FILE_MAX 100

typedef struct Settings {
        int64_t batch_size;
        Duration schedule;
        double max_fraction;
        int64_t max_rows;
        int64_t breaker_min_rows;
        const char *window; /* points into the node tree, copied into rules */
} Settings;

/* One file being validated. */
typedef struct F {
        Loader *l;
        Source *s;
        Settings defaults;
} F;

static size_t utf8_char_count(const char *s, size_t n) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) s[i] & 0xC0) != 0x80)
                        c++;
        return c;
}

static void source_index_lines(Source *s) {
        size_t cap = 16;
        s->line_starts = xmalloc(cap * sizeof(size_t));
        s->line_starts[0] = 0;
        s->n_lines = 1;
        for (size_t i = 0; i < s->len; i++) {
                char c = s->text[i];
                if (c == '\r' && i + 1 < s->len && s->text[i + 1] == '\n')
                        continue;
                if (c == '\n' || c == '\r') {
                        if (s->n_lines == cap) {
                                cap *= 2;
                                s->line_starts = xreallocarray(s->line_starts, cap, sizeof(size_t));
                        }
                        s->line_starts[s->n_lines++] = i + 1;
                }
        }
}

static void source_free(Source *s) {
        if (!s)
                return;
        free(s->owned_text);
        free(s->line_starts);
        free(s);
}

/* Bytes of line `line` (1-based), without the line break. */
static bool source_line(Source *s, unsigned line, const char **ret, size_t *n) {
        if (!s || !s->line_starts || line == 0 || line > s->n_lines)
                return false;
        size_t start = s->line_starts[line - 1];
        size_t end = line < s->n_lines ? s->line_starts[line] : s->len;
        while (end > start && (s->text[end - 1] == '\n' || s->text[end - 1] == '\r'))
                end--;
        *ret = s->text + start;
        *n = end - start;
        return true;
}

static void offset_to_position(Source *s, size_t off, unsigned *line, unsigned *column) {
        size_t lo = 0, hi = s->n_lines;
        while (hi - lo > 1) {
                size_t mid = (lo + hi) / 2;
                if (s->line_starts[mid] <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        *line = (unsigned) lo + 1;
        /* invalid bytes count as one column each */
        size_t c = 1;
        for (size_t i = s->line_starts[lo]; i < off; i++)
                if (((unsigned char) s->text[i] & 0xC0) != 0x80 || (unsigned char) s->text[i] < 0x80)
                        c++;
        *column = (unsigned) c;
}

static void node_free(Node *n) {
        if (!n)
                return;
        for (size_t i = 0; i < n->n; i++)
                node_free(n->items[i]);
        free(n->items);
        free(n->skip);
        free(n->value);
        free(n);
}

static void node_append(Node *parent, Node *child) {
        if (parent->n == parent->cap) {
                parent->cap = parent->cap ? parent->cap * 2 : 8;
                parent->items = xreallocarray(parent->items, parent->cap, sizeof(Node *));
        }
        parent->items[parent->n++] = child;
}

static size_t node_pairs(const Node *n) {
        return n->type == NODE_MAPPING ? n->n / 2 : 0;
}

/* ---- reporting ---------------------------------------------------------------------------- */

static Diagnostic *vreport(Loader *l, Severity sev, Source *s, unsigned line, unsigned column,
                           const char *fmt, va_list ap) _printf_(6, 0);
static Diagnostic *vreport(Loader *l, Severity sev, Source *s, unsigned line, unsigned column,
                           const char *fmt, va_list ap) {
        if (s && sev == SEVERITY_ERROR) {
                Source *ms = s;
                if (++ms->n_errors > POLICY_ERRORS_PER_FILE_MAX) {
                        if (ms->n_errors == POLICY_ERRORS_PER_FILE_MAX + 1) {
                                Diagnostic *y = diag_add(l->diags, SEVERITY_ERROR, s->name, line, column,
                                                         "too many errors in this file; the rest are not reported");
                                y->sort_key = s->rank;
                        }
                        free(l->scratch.detail);
                        free(l->scratch.hint);
                        free(l->scratch.source);
                        l->scratch = (Diagnostic) {};
                        return &l->scratch;
                }
        }
        Diagnostic *x = diag_addv(l->diags, sev, s ? s->name : NULL, line, column, fmt, ap);
        const char *src;
        size_t n;
        x->sort_key = s ? s->rank : l->rank;
        if (s && column > 0 && source_line(s, line, &src, &n) && n > 0)
                diag_set_source(x, src, n);
        return x;
}

static Diagnostic *report(Loader *l, Severity sev, Source *s, unsigned line, unsigned column,
                          const char *fmt, ...) _printf_(6, 7);
static Diagnostic *report(Loader *l, Severity sev, Source *s, unsigned line, unsigned column,
                          const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = vreport(l, sev, s, line, column, fmt, ap);
        va_end(ap);
        return x;
}

static Diagnostic *error_at(F *f, const Node *n, const char *fmt, ...) _printf_(3, 4);
static Diagnostic *error_at(F *f, const Node *n, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = vreport(f->l, SEVERITY_ERROR, f->s, n->line, n->column, fmt, ap);
        va_end(ap);
        return x;
}

static Diagnostic *error_pos(F *f, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
static Diagnostic *error_pos(F *f, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = vreport(f->l, SEVERITY_ERROR, f->s, line, column, fmt, ap);
        va_end(ap);
        return x;
}

static Source *source_of(const Loader *l, const char *file) {
        for (size_t i = 0; i < l->n_sources; i++)
                if (l->sources[i]->name == file)
                        return l->sources[i];
        return NULL;
}

static Diagnostic *report_loc(Loader *l, Severity sev, const Location *loc, const char *fmt, ...) _printf_(4, 5);
static Diagnostic *report_loc(Loader *l, Severity sev, const Location *loc, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = vreport(l, sev, source_of(l, loc->file), loc->line, loc->column, fmt, ap);
        va_end(ap);
        return x;
}

static void io_error(Loader *l, int err, const char *fmt, ...) _printf_(3, 4);
static void io_error(Loader *l, int err, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        Diagnostic *x = vreport(l, SEVERITY_ERROR, NULL, 0, 0, fmt, ap);
        va_end(ap);
        x->os_error = err;
        if (!l->first_io_error)
                l->first_io_error = err;
        l->incomplete = true;
}

static Location loc_of(const F *f, const Node *n) {
        return (Location) { .file = f->s->name, .line = n->line, .column = n->column };
}

/* The closest candidate within edit distance 2, or NULL. */
static const char *closest(const char *s, const char *const *cands, size_t n) {
        return closest_name(s, cands, n);
}

static void hint_did_you_mean(Diagnostic *x, const char *s, const char *const *cands, size_t n) {
        const char *c = closest(s, cands, n);
        if (c)
                diag_set_hint(x, "Did you mean \"%s\"?", c);
}

/* ---- parsing: libyaml events to the node tree --------------------------------------------- */

static unsigned char char_at(Source *s, unsigned line, unsigned column) {
        const char *src;
        size_t n, i = 0;
        if (!source_line(s, line, &src, &n))
                return 0;
        for (unsigned c = 1; c < column && i < n; c++) {
                i++;
                while (i < n && ((unsigned char) src[i] & 0xC0) == 0x80)
                        i++;
        }
        return i < n ? (unsigned char) src[i] : 0;
}

static void report_syntax_error(Loader *l, Source *s, const yaml_parser_t *p) {
        if (p->error == YAML_MEMORY_ERROR)
                oom();
        if (p->error == YAML_READER_ERROR) {
                unsigned line, column;
                offset_to_position(s, p->problem_offset < s->len ? p->problem_offset : s->len, &line, &column);
                Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column, "invalid input: %s",
                                       p->problem ? p->problem : "unreadable character");
                diag_set_hint(x, "Policy files are UTF-8 text.");
                return;
        }
        unsigned line = (unsigned) p->problem_mark.line + 1, column = (unsigned) p->problem_mark.column + 1;
        const char *problem = p->problem ? p->problem : "invalid YAML";
        Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column, "YAML syntax error: %s", problem);
        if (p->context) {
                char ctx[256];
                snprintf(ctx, sizeof(ctx), "%s", p->context);
                ctx[0] = (char) toupper((unsigned char) ctx[0]);
                diag_set_detail(x, "%s at line %zu, column %zu.", ctx, p->context_mark.line + 1,
                                p->context_mark.column + 1);
        }
        if (char_at(s, line, column) == '\t')
                diag_set_hint(x, "Indent with spaces: YAML does not allow tabs here.");
        else if (p->context && strstr(p->context, "quoted scalar"))
                diag_set_hint(x, "Close the quoted string that starts at line %zu, column %zu.",
                              p->context_mark.line + 1, p->context_mark.column + 1);
        else if (strstr(problem, "mapping values are not allowed"))
                diag_set_hint(x, "Check the indentation, and quote a value that contains \": \".");
        else if (strstr(problem, "did not find expected"))
                diag_set_hint(x, "Check the indentation: the keys of one mapping start in the same column.");
}

typedef struct KeyRef {
        const Node *key;
        size_t pair;
} KeyRef;

static int keyref_cmp(const void *a, const void *b) {
        const KeyRef *x = a, *y = b;
        int r = strcmp(x->key->value, y->key->value);
        if (r != 0)
                return r;
        return x->pair < y->pair ? -1 : x->pair > y->pair;
}

/* Marks and reports duplicate and non-string keys of a finished mapping. */
static void mapping_finish(Loader *l, Source *s, Node *m) {
        size_t np = node_pairs(m), nk = 0;
        m->skip = xcalloc(np ? np : 1, sizeof(bool));
        KeyRef *refs = xcalloc(np ? np : 1, sizeof(KeyRef));
        for (size_t i = 0; i < np; i++) {
                const Node *k = m->items[2 * i];
                if (k->type == NODE_BAD) {
                        m->skip[i] = true;
                        continue;
                }
                if (k->type != NODE_SCALAR) {
                        m->skip[i] = true;
                        report(l, SEVERITY_ERROR, s, k->line, k->column, "mapping keys must be strings, not %s",
                               k->type == NODE_MAPPING ? "mappings" : "lists");
                        continue;
                }
                refs[nk++] = (KeyRef) { k, i };
        }
        qsort(refs, nk, sizeof(KeyRef), keyref_cmp);
        for (size_t i = 1; i < nk; i++) {
                size_t first = i - 1;
                while (i < nk && streq(refs[i].key->value, refs[first].key->value)) {
                        const Node *k = refs[i].key, *fk = refs[first].key;
                        m->skip[refs[i].pair] = true;
                        Diagnostic *x = report(l, SEVERITY_ERROR, s, k->line, k->column, "duplicate key \"%s\"",
                                               k->value);
                        diag_set_detail(x, "The key \"%s\" is already given at line %u, column %u; YAML would keep only one of the two values.",
                                        fk->value, fk->line, fk->column);
                        diag_set_hint(x, "Remove one of them, or merge the two.");
                        i++;
                }
        }
        free(refs);
}

static Node *node_from_event(const yaml_event_t *ev, NodeType t) {
        Node *n = xcalloc(1, sizeof(Node));
        n->type = t;
        n->line = (unsigned) ev->start_mark.line + 1;
        n->column = (unsigned) ev->start_mark.column + 1;
        return n;
}

/* Parses the first document of `s`. Returns the root (NULL when there is none); *fatal when
 * the file could not be parsed completely. */
static Node *parse_tree(Loader *l, Source *s, bool *fatal) {
        yaml_parser_t p;
        Node *stack[POLICY_DEPTH_MAX + 1];
        size_t depth = 0;
        Node *root = NULL;
        unsigned docs = 0;
        bool stop = false, seen_alias = false, seen_anchor = false;

        *fatal = false;
        if (!yaml_parser_initialize(&p))
                oom();
        yaml_parser_set_input_string(&p, (const unsigned char *) s->text, s->len);
        yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);

        while (!stop) {
                yaml_event_t ev;
                Node *n = NULL;
                const unsigned char *anchor = NULL, *tag = NULL;

                if (!yaml_parser_parse(&p, &ev)) {
                        report_syntax_error(l, s, &p);
                        *fatal = true;
                        break;
                }
                unsigned line = (unsigned) ev.start_mark.line + 1, column = (unsigned) ev.start_mark.column + 1;

                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        stop = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++docs > 1) {
                                Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column,
                                                       "multiple YAML documents in one policy file");
                                diag_set_hint(x, "Put each document in its own file, or remove the \"---\" line.");
                                stop = true;
                        }
                        break;
                case YAML_ALIAS_EVENT:
                        /* One report per file: an alias bomb must not become a diagnostics bomb. */
                        if (!seen_alias) {
                                Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column, "aliases are not supported");
                                diag_set_hint(x, "Write the value out in full; anchors (&name) and aliases (*name) are not allowed in policy files.");
                                seen_alias = true;
                        }
                        n = node_from_event(&ev, NODE_BAD);
                        break;
                case YAML_SCALAR_EVENT:
                        anchor = ev.data.scalar.anchor;
                        tag = ev.data.scalar.tag;
                        n = node_from_event(&ev, NODE_SCALAR);
                        n->value = xstrndup((const char *) ev.data.scalar.value, ev.data.scalar.length);
                        n->len = ev.data.scalar.length;
                        n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                        if (strlen(n->value) != n->len) {
                                report(l, SEVERITY_ERROR, s, line, column, "strings must not contain NUL characters");
                                n->type = NODE_BAD;
                                break;
                        }
                        /* Escapes (\e, \a, \r, \x9b in double quotes) produce what the raw-text check
                         * never saw: a value may hold a tab and a line break, no other control
                         * character (C0, DEL, C1). Values end up in the sealed audit trail and on
                         * terminals, where an escape sequence rewrites the screen. */
                        size_t off;
                        if (text_find_control(n->value, "\t\n", &off)) {
                                const unsigned char *b = (const unsigned char *) n->value + off;
                                unsigned cp = b[0] < 0x80 ? b[0] : b[1];
                                Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column,
                                                       "strings must not contain control characters (U+%04X)", cp);
                                diag_set_detail(x, "The value contains U+%04X at character %zu, after its escapes are read.", cp,
                                                utf8_char_count(n->value, off) + 1);
                                diag_set_hint(x, "Remove it: only a tab and a line break are allowed in a value.");
                                n->type = NODE_BAD;
                                break;
                        }
                        /* Map byte offsets inside the value to columns when the scalar is written
                         * on one line exactly as its value (no escapes, no folding). */
                        if (ev.end_mark.line == ev.start_mark.line) {
                                size_t chars = utf8_char_count(n->value, n->len);
                                size_t span = ev.end_mark.column - ev.start_mark.column;
                                if (n->plain && span == chars)
                                        n->value_column = column;
                                else if ((ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                                          ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
                                         span == chars + 2)
                                        n->value_column = column + 1;
                        }
                        break;
                case YAML_MAPPING_START_EVENT:
                case YAML_SEQUENCE_START_EVENT:
                        if (ev.type == YAML_MAPPING_START_EVENT) {
                                anchor = ev.data.mapping_start.anchor;
                                tag = ev.data.mapping_start.tag;
                        } else {
                                anchor = ev.data.sequence_start.anchor;
                                tag = ev.data.sequence_start.tag;
                        }
                        if (depth >= POLICY_DEPTH_MAX) {
                                Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column,
                                                       "policy file nests deeper than %d levels", POLICY_DEPTH_MAX);
                                diag_set_hint(x, "A policy needs at most a few levels; check the structure of the file.");
                                *fatal = true;
                                stop = true;
                                break;
                        }
                        n = node_from_event(&ev, ev.type == YAML_MAPPING_START_EVENT ? NODE_MAPPING : NODE_SEQUENCE);
                        break;
                case YAML_MAPPING_END_EVENT:
                case YAML_SEQUENCE_END_EVENT:
                        if (depth > 0) {
                                depth--;
                                if (stack[depth]->type == NODE_MAPPING)
                                        mapping_finish(l, s, stack[depth]);
                        }
                        break;
                default:
                        break;
                }

                if (anchor && !seen_anchor) {
                        seen_anchor = true;
                        Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column, "anchors are not supported");
                        diag_set_hint(x, "Remove \"&%s\" and write values out in full; anchors and aliases are not allowed in policy files.",
                                      (const char *) anchor);
                }
                if (tag) {
                        Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column, "YAML tags are not supported");
                        diag_set_hint(x, "Remove \"%s\"; write plain values.", (const char *) tag);
                }
                if (n) {
                        if (depth > 0)
                                node_append(stack[depth - 1], n);
                        else if (!root)
                                root = n;
                        else
                                node_free(n); /* cannot happen: one root per document */
                        if (n->type == NODE_MAPPING || n->type == NODE_SEQUENCE) {
                                if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT)
                                        stack[depth++] = n;
                        }
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        return root;
}

/* ---- validation helpers ------------------------------------------------------------------- */

static const char *node_kind(const Node *n) {
        switch (n->type) {
        case NODE_MAPPING: return "a mapping";
        case NODE_SEQUENCE: return "a list";
        case NODE_SCALAR:
                if (n->plain && (n->len == 0 || streq(n->value, "~") || streq(n->value, "null")))
                        return "an empty value";
                return "a string";
        default: return "nothing";
        }
}

static bool is_null(const Node *n) {
        return n->type == NODE_SCALAR && n->plain &&
               (n->len == 0 || streq(n->value, "~") || streq(n->value, "null") || streq(n->value, "Null") ||
                streq(n->value, "NULL"));
}

static bool expect_mapping(F *f, const Node *n, const char *what) {
        if (n->type == NODE_BAD)
                return false;
        if (n->type != NODE_MAPPING) {
                error_at(f, n, "expected a mapping for %s, found %s", what, node_kind(n));
                return false;
        }
        return true;
}

static bool hash_key_name(const char *k) {
        return streq(k, "key") || streq(k, "hash_key") || streq(k, "hmac_key") || streq(k, "secret");
}

static void report_hash_key(F *f, const Node *k) {
        Diagnostic *x = error_at(f, k, "the hash key cannot be given in a policy file");
        diag_set_detail(x, "A key written into a policy would be readable by everyone who can read the policy.");
        diag_set_hint(x, "Give the key with --hash-key-file or the systemd credential \"hash-key\".");
}

/* Looks up the keys of mapping m: vals[i]/keys[i] get the value/key node of known[i].
 * Unknown keys are reported. `where` is e.g. "in rule \"x\"". */
static void lookup_keys(F *f, const Node *m, const char *const *known, size_t n_known, const Node **keys,
                        const Node **vals, const char *where) {
        for (size_t i = 0; i < n_known; i++)
                keys[i] = vals[i] = NULL;
        for (size_t p = 0; p < node_pairs(m); p++) {
                if (m->skip[p])
                        continue;
                const Node *k = m->items[2 * p], *v = m->items[2 * p + 1];
                size_t i;
                for (i = 0; i < n_known; i++)
                        if (streq(k->value, known[i]))
                                break;
                if (i < n_known) {
                        keys[i] = k;
                        vals[i] = v;
                        continue;
                }
                if (hash_key_name(k->value)) {
                        report_hash_key(f, k);
                        continue;
                }
                Diagnostic *x = error_at(f, k, "unknown key \"%s\" %s", k->value, where);
                bool takes_settings = false;
                for (size_t j = 0; j < n_known; j++)
                        takes_settings = takes_settings || streq(known[j], "batch_size");
                if (streq(k->value, "settings") && takes_settings)
                        /* retentiond.policy(5) lists them under SETTINGS; they are keys of their own */
                        diag_set_hint(x, "Write the settings (batch_size, schedule, window, max_fraction, max_rows,"
                                         " breaker_min_rows) as keys of their own, without \"settings:\".");
                else
                        hint_did_you_mean(x, k->value, known, n_known);
        }
}

static void require_key(F *f, const Node *m, const Node *val, const char *key, const char *where, const char *hint) {
        if (val)
                return;
        Diagnostic *x = error_at(f, m, "missing required key \"%s\" %s", key, where);
        if (hint)
                diag_set_hint(x, "%s", hint);
}

/* A non-empty scalar, or NULL after reporting. */
static const char *get_scalar(F *f, const Node *n, const char *key, const char *where) {
        if (n->type == NODE_BAD)
                return NULL;
        if (n->type != NODE_SCALAR) {
                error_at(f, n, "expected a string for \"%s\" %s, found %s", key, where, node_kind(n));
                return NULL;
        }
        if (is_null(n) || n->len == 0) {
                error_at(f, n, "missing value for \"%s\" %s", key, where);
                return NULL;
        }
        return n->value;
}

static unsigned column_at(const Node *n, size_t off) {
        if (!n->value_column || off > n->len)
                return n->column;
        return n->value_column + (unsigned) utf8_char_count(n->value, off);
}

/* A rule's `where:` is pasted into SQL inside parentheses of its own (plan.c, where_expr()); it must
 * be one expression that cannot close them (sqlfrag.c). Located at the offending character. */
static bool check_where(F *f, const Node *n, const char *v, const char *where) {
        size_t off = 0;
        SqlFragError e = sqlfrag_check(v, &off);
        if (e == SQLFRAG_OK)
                return true;
        Diagnostic *x = error_pos(f, n->line, column_at(n, off), "\"where\" %s %s", where, sqlfrag_error_to_string(e));
        diag_set_detail(x, "\"where\" is a single boolean expression about the row t of the rule's table. retentiond"
                           " puts it inside parentheses of its own, with the age and hold conditions outside them.");
        diag_set_hint(x, "%s", sqlfrag_error_hint(e));
        return false;
}

static char *sentence(const char *s) {
        char *r = xasprintf("%s.", s);
        r[0] = (char) toupper((unsigned char) r[0]);
        return r;
}

static bool get_duration(F *f, const Node *n, const char *key, const char *where, Duration *ret) {
        static const char *const units[] = { "second", "seconds", "minute", "minutes", "hour", "hours",
                                             "day", "days", "week", "weeks", "month", "months", "year", "years" };
        const char *v = get_scalar(f, n, key, where);
        size_t off = 0;
        if (!v)
                return false;
        DurationError e = duration_parse(v, ret, &off);
        if (e == DURATION_OK)
                return true;
        Diagnostic *x = error_pos(f, n->line, column_at(n, off), "invalid duration \"%s\" for \"%s\" %s", v, key, where);
        _cleanup_free_ char *d = sentence(duration_error_to_string(e));
        diag_set_detail(x, "%s", d);
        if (e == DURATION_UNKNOWN_UNIT) {
                size_t end = off;
                while (isalpha((unsigned char) v[end]))
                        end++;
                _cleanup_free_ char *word = xstrndup(v + off, end - off);
                const char *c = *word ? closest(word, units, ELEMENTSOF(units)) : NULL;
                if (c) {
                        diag_set_hint(x, "Did you mean \"%s\"?", c);
                        return false;
                }
        }
        diag_set_hint(x, "Write a whole number and a unit (second, minute, hour, day, week, month, year), e.g. \"7 days\" or \"6 years\", or ISO 8601 such as \"P7D\".");
        return false;
}

static void ident_hint(Diagnostic *x, IdentError e) {
        if (e == IDENT_BAD_CHARACTER || e == IDENT_TRAILING_GARBAGE)
                diag_set_hint(x, "Write a name with spaces, capitals or other special characters as SQL does, double-quoted inside the YAML string: '\"Sales Data\".\"Invoices\"'.");
        else if (e == IDENT_TOO_MANY_PARTS)
                diag_set_hint(x, "Use schema.table, or double-quote a name that contains a dot.");
}

static bool get_ident(F *f, const Node *n, const char *key, const char *where, char **ret) {
        const char *v = get_scalar(f, n, key, where);
        size_t off = 0;
        if (!v)
                return false;
        IdentError e = ident_parse(v, ret, &off);
        if (e == IDENT_OK)
                return true;
        Diagnostic *x = error_pos(f, n->line, column_at(n, off), "invalid column name \"%s\" for \"%s\" %s", v, key, where);
        _cleanup_free_ char *d = sentence(ident_error_to_string(e));
        diag_set_detail(x, "%s", d);
        ident_hint(x, e);
        return false;
}

static bool get_table(F *f, const Node *n, const char *key, const char *where, QualifiedName *ret) {
        const char *v = get_scalar(f, n, key, where);
        size_t off = 0;
        if (!v)
                return false;
        IdentError e = qualified_name_parse(v, ret, &off);
        if (e == IDENT_OK)
                return true;
        Diagnostic *x = error_pos(f, n->line, column_at(n, off), "invalid table name \"%s\" for \"%s\" %s", v, key, where);
        _cleanup_free_ char *d = sentence(ident_error_to_string(e));
        diag_set_detail(x, "%s", d);
        ident_hint(x, e);
        return false;
}

static bool get_int(F *f, const Node *n, const char *key, const char *where, int64_t min, int64_t max, int64_t *ret) {
        const char *v = get_scalar(f, n, key, where);
        int64_t i;
        if (!v)
                return false;
        if (parse_int64(v, &i) && i >= min && i <= max) {
                *ret = i;
                return true;
        }
        Diagnostic *x = error_at(f, n, "invalid value \"%s\" for \"%s\" %s", v, key, where);
        if (max == INT64_MAX)
                diag_set_detail(x, "\"%s\" must be a whole number of at least %" PRId64 ".", key, min);
        else
                diag_set_detail(x, "\"%s\" must be a whole number from %" PRId64 " to %" PRId64 ".", key, min, max);
        return false;
}

/* Decimal "0.5", "1", or percentage "50%", "12.5%"; nothing else. */
static bool parse_fraction(const char *s, double *ret) {
        size_t n = strlen(s), i = 0;
        bool percent = n > 0 && s[n - 1] == '%', digits = false, dot = false;
        double v = 0, scale = 1;
        if (percent)
                n--;
        for (; i < n; i++) {
                if (s[i] >= '0' && s[i] <= '9') {
                        if (dot) {
                                scale /= 10;
                                v += (s[i] - '0') * scale;
                        } else {
                                v = v * 10 + (s[i] - '0');
                                if (v > 1e9)
                                        return false;
                        }
                        digits = true;
                } else if (s[i] == '.' && !dot)
                        dot = true;
                else
                        return false;
        }
        if (!digits)
                return false;
        *ret = percent ? v / 100 : v;
        return true;
}

static bool get_fraction(F *f, const Node *n, const char *key, const char *where, double *ret) {
        const char *v = get_scalar(f, n, key, where);
        double d;
        if (!v)
                return false;
        if (parse_fraction(v, &d) && d > 0 && d <= 1) {
                *ret = d;
                return true;
        }
        Diagnostic *x = error_at(f, n, "invalid value \"%s\" for \"%s\" %s", v, key, where);
        diag_set_detail(x, "\"%s\" must be greater than 0 and at most 1 (100%%).", key);
        diag_set_hint(x, "Write a fraction such as 0.5 or a percentage such as \"50%%\".");
        return false;
}

static bool valid_window(const char *s) {
        /* HH:MM-HH:MM */
        if (strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
                return false;
        static const int pos[] = { 0, 1, 3, 4, 6, 7, 9, 10 };
        for (size_t i = 0; i < ELEMENTSOF(pos); i++)
                if (!isdigit((unsigned char) s[pos[i]]))
                        return false;
        int h1 = (s[0] - '0') * 10 + s[1] - '0', m1 = (s[3] - '0') * 10 + s[4] - '0';
        int h2 = (s[6] - '0') * 10 + s[7] - '0', m2 = (s[9] - '0') * 10 + s[10] - '0';
        if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59)
                return false;
        return h1 != h2 || m1 != m2;
}

static bool get_window(F *f, const Node *n, const char *where, const char **ret) {
        const char *v = get_scalar(f, n, "window", where);
        if (!v)
                return false;
        if (valid_window(v)) {
                *ret = v;
                return true;
        }
        Diagnostic *x = error_at(f, n, "invalid window \"%s\" %s", v, where);
        diag_set_detail(x, "A window is a start and an end time of day, \"HH:MM-HH:MM\" (local time, 00:00 to 23:59; it may wrap past midnight, but not be empty).");
        diag_set_hint(x, "Write e.g. \"01:00-05:00\" or \"22:00-06:00\".");
        return false;
}

static bool valid_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 63)
                return false;
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
                        return false;
        return true;
}

static void check_name(F *f, const Node *k, const char *what) {
        if (valid_name(k->value))
                return;
        Diagnostic *x = error_at(f, k, "invalid %s name \"%s\"", what, k->value);
        diag_set_detail(x, "Names of rules, holds and subjects are 1 to 63 characters: lower-case letters, digits, \"-\" and \"_\", starting with a letter or digit.");
}

/* ---- settings shared by defaults and rules ------------------------------------------------ */

static const char *const setting_keys[] = { "batch_size", "schedule", "window", "max_fraction", "max_rows", "breaker_min_rows" };
enum { S_BATCH_SIZE, S_SCHEDULE, S_WINDOW, S_MAX_FRACTION, S_MAX_ROWS, S_BREAKER_MIN_ROWS, _S_MAX };

static void parse_setting(F *f, size_t which, const Node *v, const char *where, Settings *s) {
        switch (which) {
        case S_BATCH_SIZE:
                (void) get_int(f, v, "batch_size", where, 1, POLICY_MAX_BATCH_SIZE, &s->batch_size);
                break;
        case S_SCHEDULE: {
                Duration d;
                if (get_duration(f, v, "schedule", where, &d)) {
                        if (duration_is_zero(&d)) {
                                Diagnostic *x = error_at(f, v, "invalid value \"%s\" for \"schedule\" %s", v->value, where);
                                diag_set_detail(x, "The schedule must be longer than zero.");
                        } else
                                s->schedule = d;
                }
                break;
        }
        case S_WINDOW:
                (void) get_window(f, v, where, &s->window);
                break;
        case S_MAX_FRACTION:
                (void) get_fraction(f, v, "max_fraction", where, &s->max_fraction);
                break;
        case S_MAX_ROWS:
                (void) get_int(f, v, "max_rows", where, 1, INT64_MAX, &s->max_rows);
                break;
        case S_BREAKER_MIN_ROWS:
                (void) get_int(f, v, "breaker_min_rows", where, 0, INT64_MAX, &s->breaker_min_rows);
                break;
        }
}

static void load_defaults(F *f, const Node *m) {
        const Node *keys[_S_MAX], *vals[_S_MAX];
        if (!expect_mapping(f, m, "\"defaults\""))
                return;
        lookup_keys(f, m, setting_keys, _S_MAX, keys, vals, "in \"defaults\"");
        for (size_t i = 0; i < _S_MAX; i++)
                if (vals[i])
                        parse_setting(f, i, vals[i], "in \"defaults\"", &f->defaults);
}

/* ---- statutory start dates (`from:`, `fiscal_year_start:`) --------------------------------- */

static void load_period_start(F *f, const Node *from_key, const Node *from_val, const Node *fy_key, const Node *fy_val,
                              const char *where, PeriodStart *ret) {
        static const char *const names[] = { "end_of_day", "end_of_month", "end_of_year", "end_of_fiscal_year" };
        static const StartFrom values[] = { FROM_END_OF_DAY, FROM_END_OF_MONTH, FROM_END_OF_YEAR, FROM_END_OF_FISCAL_YEAR };
        bool from_ok = false;
        *ret = (PeriodStart) { .from = FROM_RECORD };
        if (from_val) {
                const char *v = get_scalar(f, from_val, "from", where);
                if (v) {
                        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                                if (streq(v, names[i])) {
                                        ret->from = values[i];
                                        from_ok = true;
                                }
                        if (!from_ok) {
                                Diagnostic *x = error_at(f, from_val, "invalid value \"%s\" for \"from\" %s", v, where);
                                diag_set_detail(x, "The retention period runs from the end of the day, the calendar month, the calendar year or the fiscal year in which the age value falls; without \"from\" it runs from the age value itself.");
                                const char *c = closest(v, names, ELEMENTSOF(names));
                                if (c)
                                        diag_set_hint(x, "Did you mean \"%s\"?", c);
                                else
                                        diag_set_hint(x, "Write end_of_day, end_of_month, end_of_year or end_of_fiscal_year.");
                        }
                }
        }
        if (fy_val) {
                if (from_ok && ret->from != FROM_END_OF_FISCAL_YEAR) {
                        Diagnostic *x = error_at(f, fy_key, "\"fiscal_year_start\" needs \"from: end_of_fiscal_year\" %s, not \"from: %s\"",
                                                 where, start_from_to_string(ret->from));
                        diag_set_hint(x, "Remove \"fiscal_year_start\", or write \"from: end_of_fiscal_year\".");
                } else if (!from_val) {
                        Diagnostic *x = error_at(f, fy_key, "\"fiscal_year_start\" needs \"from: end_of_fiscal_year\" %s", where);
                        diag_set_hint(x, "Add \"from: end_of_fiscal_year\", or remove \"fiscal_year_start\".");
                } else {
                        int64_t m;
                        if (get_int(f, fy_val, "fiscal_year_start", where, 1, 12, &m))
                                ret->fiscal_year_start = (int) m;
                        else
                                ret->fiscal_year_start = 1; /* reported; keep the model valid */
                }
        } else if (from_ok && ret->from == FROM_END_OF_FISCAL_YEAR) {
                Diagnostic *x = error_at(f, from_val, "\"from: end_of_fiscal_year\" needs \"fiscal_year_start\" %s", where);
                diag_set_detail(x, "\"fiscal_year_start\" is the month (1 to 12) in which the fiscal year begins.");
                diag_set_hint(x, "Add e.g. \"fiscal_year_start: 4\" for a fiscal year from 1 April to 31 March.");
                ret->fiscal_year_start = 1;
        }
        (void) from_key;
}

/* A period so long that its cutoff, now() - retain (- deadline), lies before PostgreSQL's earliest
 * timestamp (4714-11-24 BC) makes every run fail with "timestamp out of range": refused here, at
 * the retain, with no database needed. The cutoff only moves later as time passes, so a period
 * accepted today stays valid. Counted conservatively in months: days as 12/365 of a month, one
 * more year for a `from:` period start (date_trunc) and a month's margin. */
static void check_cutoff_range(F *f, const Node *n, const Duration *retain, const Duration *deadline, const char *where) {
        time_t now = time(NULL);
        struct tm tm;
        if (!gmtime_r(&now, &tm))
                return;
        int64_t limit = ((int64_t) tm.tm_year + 1900 + 4713) * 12 + tm.tm_mon - 11 - 12 - 1;
        int64_t months = retain->months, days = retain->days, usecs = retain->usecs;
        if (deadline) {
                months += deadline->months;
                days += deadline->days;
                usecs += deadline->usecs;
        }
        days += usecs / (INT64_C(86400) * 1000000) + 1;
        months += (days * 12 + 364) / 365;
        if (months <= limit)
                return;
        const char *v = n->type == NODE_SCALAR ? n->value : "";
        Diagnostic *x = error_at(f, n, "retain \"%s\" %s reaches back before 4713 BC, the earliest time PostgreSQL can represent",
                                 v, where);
        diag_set_detail(x, "Every run computes the cutoff now() - retain%s; it would fail with \"timestamp out of range\". "
                           "At most %" PRId64 " years fit today.",
                        deadline ? " - deadline" : "", limit / 12);
        diag_set_hint(x, "Write a shorter period. Rows that are kept for ever need no rule.");
}

/* ---- subjects and holds ------------------------------------------------------------------- */

static void load_subjects(F *f, const Node *m) {
        static const char *const known[] = { "table", "key" };
        Policy *p = f->l->policy;
        if (!expect_mapping(f, m, "\"subjects\""))
                return;
        for (size_t i = 0; i < node_pairs(m); i++) {
                if (m->skip[i])
                        continue;
                const Node *k = m->items[2 * i], *v = m->items[2 * i + 1], *keys[2], *vals[2];
                check_name(f, k, "subject");
                p->subjects = xreallocarray(p->subjects, p->n_subjects + 1, sizeof(Subject));
                Subject *s = &p->subjects[p->n_subjects++];
                *s = (Subject) { .name = xstrdup(k->value), .loc = loc_of(f, k) };
                _cleanup_free_ char *where = xasprintf("in subject \"%s\"", k->value);
                if (!expect_mapping(f, v, where + 3))
                        continue;
                lookup_keys(f, v, known, ELEMENTSOF(known), keys, vals, where);
                require_key(f, v, vals[0], "table", where, "Name the table whose rows are the subjects, e.g. table: app.accounts.");
                require_key(f, v, vals[1], "key", where, "Name the key column of that table, e.g. key: id.");
                if (vals[0])
                        (void) get_table(f, vals[0], "table", where, &s->table);
                if (vals[1])
                        (void) get_ident(f, vals[1], "key", where, &s->key);
        }
}

static bool get_bool(F *f, const Node *n, const char *key, const char *where, bool *ret) {
        const char *v = get_scalar(f, n, key, where);
        if (!v)
                return false;
        if (streq(v, "true") || streq(v, "True") || streq(v, "TRUE")) {
                *ret = true;
                return true;
        }
        if (streq(v, "false") || streq(v, "False") || streq(v, "FALSE")) {
                *ret = false;
                return true;
        }
        Diagnostic *x = error_at(f, n, "invalid value \"%s\" for \"%s\" %s", v, key, where);
        diag_set_detail(x, "\"%s\" is true or false.", key);
        return false;
}

static void load_holds(F *f, const Node *m) {
        static const char *const known[] = { "reason", "subject", "registry", "table", "subject_column", "column", "retain",
                                             "from", "fiscal_year_start" };
        enum { H_REASON, H_SUBJECT, H_REGISTRY, H_TABLE, H_SUBJECT_COLUMN, H_COLUMN, H_RETAIN, H_FROM, H_FISCAL_YEAR_START };
        Loader *l = f->l;
        Policy *p = l->policy;
        if (!expect_mapping(f, m, "\"holds\""))
                return;
        for (size_t i = 0; i < node_pairs(m); i++) {
                if (m->skip[i])
                        continue;
                const Node *k = m->items[2 * i], *v = m->items[2 * i + 1], *keys[ELEMENTSOF(known)], *vals[ELEMENTSOF(known)];
                check_name(f, k, "hold");
                p->holds = xreallocarray(p->holds, p->n_holds + 1, sizeof(Hold));
                l->hold_extra = xreallocarray(l->hold_extra, p->n_holds + 1, sizeof(HoldExtra));
                HoldExtra *he = &l->hold_extra[p->n_holds];
                Hold *h = &p->holds[p->n_holds++];
                *h = (Hold) { .name = xstrdup(k->value), .loc = loc_of(f, k) };
                *he = (HoldExtra) {};
                _cleanup_free_ char *where = xasprintf("in hold \"%s\"", k->value);
                if (!expect_mapping(f, v, where + 3))
                        continue;
                lookup_keys(f, v, known, ELEMENTSOF(known), keys, vals, where);
                require_key(f, v, vals[H_REASON], "reason", where,
                            "Say why the data is kept, e.g. reason: \"Tax law: invoices are kept 10 years\".");
                require_key(f, v, vals[H_SUBJECT], "subject", where, "Name the subject whose data the hold protects, e.g. subject: account.");
                if (vals[H_REASON]) {
                        const char *r = get_scalar(f, vals[H_REASON], "reason", where);
                        if (r)
                                h->reason = xstrdup(r);
                }
                if (vals[H_SUBJECT]) {
                        const char *sname = get_scalar(f, vals[H_SUBJECT], "subject", where);
                        if (sname)
                                h->subject_name = xstrdup(sname);
                        he->subject_loc = loc_of(f, vals[H_SUBJECT]);
                }
                if (vals[H_REGISTRY] && !get_bool(f, vals[H_REGISTRY], "registry", where, &h->registry))
                        continue; /* unknown kind of hold: checking its other keys would only guess */
                if (h->registry) {
                        for (size_t j = H_TABLE; j <= H_FISCAL_YEAR_START; j++) {
                                if (!keys[j])
                                        continue;
                                Diagnostic *x = error_at(f, keys[j], "registry hold \"%s\" cannot have \"%s\"", h->name, known[j]);
                                diag_set_detail(x, "A registry hold is held while an operator's hold on the subject is active; \"table\", \"subject_column\", \"column\" and \"retain\" describe a derived hold.");
                                diag_set_hint(x, "Remove \"%s\", or remove \"registry: true\".", known[j]);
                        }
                        continue;
                }
                _cleanup_free_ char *dwhere = xasprintf("in derived hold \"%s\"", k->value);
                for (size_t j = H_TABLE; j <= H_RETAIN; j++) {
                        if (vals[j])
                                continue;
                        Diagnostic *x = error_at(f, v, "missing required key \"%s\" %s", known[j], dwhere);
                        diag_set_hint(x, "A hold is either derived (table, subject_column, column, retain) or \"registry: true\".");
                }
                if (vals[H_TABLE]) {
                        (void) get_table(f, vals[H_TABLE], "table", where, &h->table);
                        h->table_loc = loc_of(f, vals[H_TABLE]);
                }
                if (vals[H_SUBJECT_COLUMN]) {
                        (void) get_ident(f, vals[H_SUBJECT_COLUMN], "subject_column", where, &h->subject_column);
                        h->subject_column_loc = loc_of(f, vals[H_SUBJECT_COLUMN]);
                }
                if (vals[H_COLUMN]) {
                        (void) get_ident(f, vals[H_COLUMN], "column", where, &h->column);
                        h->column_loc = loc_of(f, vals[H_COLUMN]);
                }
                bool retain_ok = vals[H_RETAIN] && get_duration(f, vals[H_RETAIN], "retain", where, &h->retain);
                if (vals[H_RETAIN])
                        h->retain_loc = loc_of(f, vals[H_RETAIN]);
                load_period_start(f, keys[H_FROM], vals[H_FROM], keys[H_FISCAL_YEAR_START], vals[H_FISCAL_YEAR_START], where,
                                  &h->start);
                if (retain_ok)
                        check_cutoff_range(f, vals[H_RETAIN], &h->retain, NULL, where);
        }
}

/* ---- rules ---------------------------------------------------------------------------------- */

static bool parse_method(F *f, const Node *k, const Node *v, const char *where, ColumnMethod *cm) {
        static const char *const names[] = { "null", "redact", "hash", "truncate_ip", "email_domain", "truncate_date" };
        if (v->type == NODE_BAD)
                return false;
        if (v->type == NODE_SEQUENCE) {
                Diagnostic *x = error_at(f, v, "expected a method %s, found a list", where);
                diag_set_hint(x, "Write a method name such as truncate_ip, or a mapping such as {redact: \"[deleted]\"}.");
                return false;
        }
        if (v->type == NODE_SCALAR) {
                if (v->plain && v->len == 0) {
                        Diagnostic *x = error_at(f, k, "missing method %s", where);
                        diag_set_hint(x, "Write a method after the colon: null, hash, truncate_ip, email_domain, {redact: \"text\"} or {truncate_date: month}.");
                        return false;
                }
                int m = v->plain && streq(v->value, "~") ? METHOD_NULL : method_from_string(v->value);
                if (m < 0 && v->plain && (streq(v->value, "Null") || streq(v->value, "NULL")))
                        m = METHOD_NULL;
                if (m == METHOD_REDACT) {
                        Diagnostic *x = error_at(f, v, "method \"redact\" needs a replacement text %s", where);
                        diag_set_hint(x, "Write {redact: \"[deleted]\"}.");
                        return false;
                }
                if (m == METHOD_TRUNCATE_DATE) {
                        Diagnostic *x = error_at(f, v, "method \"truncate_date\" needs a precision %s", where);
                        diag_set_hint(x, "Write {truncate_date: month} or {truncate_date: year}.");
                        return false;
                }
                if (m < 0) {
                        Diagnostic *x = error_at(f, v, "unknown anonymisation method \"%s\" %s", v->value, where);
                        const char *c = closest(v->value, names, ELEMENTSOF(names));
                        if (c)
                                diag_set_hint(x, "Did you mean \"%s\"?", c);
                        else
                                diag_set_hint(x, "Known methods: null, hash, truncate_ip, email_domain, {redact: \"text\"}, {truncate_date: month|year}.");
                        return false;
                }
                cm->method = (Method) m;
                return true;
        }
        /* a mapping with one key: {redact: "text"} or {truncate_date: month|year} */
        bool ok = true;
        for (size_t i = 0; i < node_pairs(v); i++)
                if (!v->skip[i] && hash_key_name(v->items[2 * i]->value)) {
                        report_hash_key(f, v->items[2 * i]);
                        ok = false;
                }
        if (!ok)
                return false;
        if (node_pairs(v) != 1 || v->skip[0]) {
                Diagnostic *x = error_at(f, v, "expected exactly one method %s, found %zu", where, node_pairs(v));
                diag_set_hint(x, "Write one method per column, e.g. {redact: \"[deleted]\"}.");
                return false;
        }
        const Node *mk = v->items[0], *mv = v->items[1];
        int m = method_from_string(mk->value);
        if (m == METHOD_REDACT) {
                if (mv->type == NODE_BAD)
                        return false;
                if (mv->type != NODE_SCALAR || (mv->plain && is_null(mv))) {
                        Diagnostic *x = error_at(f, mv, "method \"redact\" needs a replacement text %s, found %s", where, node_kind(mv));
                        diag_set_hint(x, "Write {redact: \"[deleted]\"}.");
                        return false;
                }
                cm->method = METHOD_REDACT;
                cm->redact_value = xstrdup(mv->value);
                return true;
        }
        if (m == METHOD_TRUNCATE_DATE) {
                if (mv->type == NODE_BAD)
                        return false;
                if (mv->type == NODE_SCALAR && streq(mv->value, "month")) {
                        cm->precision = PRECISION_MONTH;
                } else if (mv->type == NODE_SCALAR && streq(mv->value, "year")) {
                        cm->precision = PRECISION_YEAR;
                } else {
                        Diagnostic *x = mv->type == NODE_SCALAR && !is_null(mv)
                                                ? error_at(f, mv, "invalid precision \"%s\" for method \"truncate_date\" %s", mv->value, where)
                                                : error_at(f, mv, "method \"truncate_date\" needs a precision %s, found %s", where, node_kind(mv));
                        diag_set_hint(x, "Write {truncate_date: month} or {truncate_date: year}.");
                        return false;
                }
                cm->method = METHOD_TRUNCATE_DATE;
                return true;
        }
        if (m >= 0) {
                Diagnostic *x = error_at(f, mk, "method \"%s\" takes no argument %s", mk->value, where);
                if (m == METHOD_HASH)
                        diag_set_hint(x, "Write just \"hash\"; the key comes from --hash-key-file or the systemd credential \"hash-key\", never from the policy.");
                else
                        diag_set_hint(x, "Write just \"%s\".", mk->value);
                return false;
        }
        Diagnostic *x = error_at(f, mk, "unknown anonymisation method \"%s\" %s", mk->value, where);
        hint_did_you_mean(x, mk->value, names, ELEMENTSOF(names));
        return false;
}

static void parse_columns(F *f, const Node *m, const char *rule_where, ColumnMethod **ret, size_t *ret_n) {
        _cleanup_free_ char *what = xasprintf("\"columns\" %s", rule_where);
        if (!expect_mapping(f, m, what))
                return;
        if (node_pairs(m) == 0) {
                Diagnostic *x = error_at(f, m, "\"columns\" is empty %s", rule_where);
                diag_set_hint(x, "List the columns to anonymise with a method each, e.g. columns: { ip: truncate_ip }.");
                return;
        }
        for (size_t i = 0; i < node_pairs(m); i++) {
                if (m->skip[i])
                        continue;
                const Node *k = m->items[2 * i], *v = m->items[2 * i + 1];
                _cleanup_free_ char *col = NULL;
                size_t off = 0;
                IdentError e = ident_parse(k->value, &col, &off);
                if (e != IDENT_OK) {
                        Diagnostic *x = error_pos(f, k->line, column_at(k, off), "invalid column name \"%s\" %s", k->value, rule_where);
                        _cleanup_free_ char *d = sentence(ident_error_to_string(e));
                        diag_set_detail(x, "%s", d);
                        ident_hint(x, e);
                        continue;
                }
                bool dup = false;
                for (size_t j = 0; j < *ret_n; j++)
                        if (streq((*ret)[j].column, col))
                                dup = true;
                if (dup) {
                        Diagnostic *x = error_at(f, k, "column \"%s\" is listed twice %s", col, rule_where);
                        diag_set_detail(x, "Unquoted names fold to lower case, as in SQL.");
                        continue;
                }
                _cleanup_free_ char *where = xasprintf("for column \"%s\" %s", col, rule_where);
                ColumnMethod cm = { .loc = loc_of(f, k) };
                if (!parse_method(f, k, v, where, &cm)) {
                        free(cm.redact_value);
                        continue;
                }
                cm.column = TAKE_PTR(col);
                *ret = xreallocarray(*ret, *ret_n + 1, sizeof(ColumnMethod));
                (*ret)[(*ret_n)++] = cm;
        }
}

static bool get_action(F *f, const Node *n, const char *where, Action *ret) {
        static const char *const names[] = { "delete", "anonymise", "anonymize" };
        const char *v = get_scalar(f, n, "action", where);
        if (!v)
                return false;
        if (streq(v, "delete")) {
                *ret = ACTION_DELETE;
                return true;
        }
        if (streq(v, "anonymise") || streq(v, "anonymize")) {
                *ret = ACTION_ANONYMISE;
                return true;
        }
        Diagnostic *x = error_at(f, n, "unknown action \"%s\" %s", v, where);
        const char *c = closest(v, names, ELEMENTSOF(names));
        if (c)
                diag_set_hint(x, "Did you mean \"%s\"?", c);
        else
                diag_set_hint(x, "Use \"delete\" or \"anonymise\".");
        return false;
}

static void load_while_held(F *f, Rule *r, const Node *m, const char *rule_where) {
        static const char *const known[] = { "action", "columns" };
        const Node *keys[2], *vals[2];
        _cleanup_free_ char *where = xasprintf("in \"while_held\" of %s", rule_where + 3);
        if (!expect_mapping(f, m, where + 3))
                return;
        r->has_while_held = true;
        r->while_held_action = ACTION_ANONYMISE;
        lookup_keys(f, m, known, 2, keys, vals, where);
        if (vals[0]) {
                Action a;
                if (get_action(f, vals[0], where, &a) && a != ACTION_ANONYMISE) {
                        Diagnostic *x = error_at(f, vals[0], "\"while_held\" can only anonymise %s", rule_where);
                        diag_set_detail(x, "Rows that a hold keeps cannot be deleted; while_held says how to restrict their processing.");
                        diag_set_hint(x, "Write \"action: anonymise\".");
                }
        }
        require_key(f, m, vals[1], "columns", where, "List the columns to anonymise while the row is held, e.g. columns: { email: hash }.");
        if (vals[1])
                parse_columns(f, vals[1], where, &r->while_held_columns, &r->n_while_held_columns);
}

static const char *const rule_keys[] = {
        "clause", "table", "column", "retain", "action", "columns", "subject", "subject_column", "holds",
        "deadline", "while_held", "where", "from", "fiscal_year_start", "database", "trust_triggers", "referenced_by",
        "delete_with",
        /* settings, in the order of setting_keys */
        "batch_size", "schedule", "window", "max_fraction", "max_rows", "breaker_min_rows",
};
enum {
        R_CLAUSE, R_TABLE, R_COLUMN, R_RETAIN, R_ACTION, R_COLUMNS, R_SUBJECT, R_SUBJECT_COLUMN, R_HOLDS,
        R_DEADLINE, R_WHILE_HELD, R_WHERE, R_FROM, R_FISCAL_YEAR_START, R_DATABASE, R_TRUST_TRIGGERS, R_REFERENCED_BY,
        R_DELETE_WITH,
        R_SETTINGS,
        _R_MAX = R_SETTINGS + _S_MAX,
};

static void load_rule_holds(F *f, Rule *r, RuleExtra *re, const Node *n, const char *where) {
        if (n->type == NODE_BAD)
                return;
        if (n->type != NODE_SEQUENCE) {
                Diagnostic *x = error_at(f, n, "expected a list for \"holds\" %s, found %s", where, node_kind(n));
                diag_set_hint(x, "Write holds: [tax-records, legal].");
                return;
        }
        if (n->n == 0) {
                Diagnostic *x = error_at(f, n, "\"holds\" is empty %s", where);
                diag_set_hint(x, "Name at least one hold, or remove \"holds\".");
                return;
        }
        for (size_t i = 0; i < n->n; i++) {
                const Node *it = n->items[i];
                const char *name = get_scalar(f, it, "holds", where);
                if (!name)
                        continue;
                bool dup = false;
                for (size_t j = 0; j < r->n_holds; j++)
                        if (streq(r->hold_names[j], name))
                                dup = true;
                if (dup) {
                        error_at(f, it, "hold \"%s\" is listed twice %s", name, where);
                        continue;
                }
                r->hold_names = xreallocarray(r->hold_names, r->n_holds + 1, sizeof(char *));
                re->hold_locs = xreallocarray(re->hold_locs, r->n_holds + 1, sizeof(Location));
                r->hold_names[r->n_holds] = xstrdup(name);
                re->hold_locs[r->n_holds] = loc_of(f, it);
                r->n_holds++;
        }
}

/* `referenced_by: { table: T, column: C [, subject_column: S] }`: the rule's rows are the subject's
 * through the rows of T whose C refers to them. */
static void load_referrer(F *f, Rule *r, const Node *key, const Node *m, const char *rule_where) {
        static const char *const known[] = { "table", "column", "subject_column" };
        const Node *keys[ELEMENTSOF(known)], *vals[ELEMENTSOF(known)];
        Referrer *x = &r->referrer;
        _cleanup_free_ char *where = xasprintf("in \"referenced_by\" of %s", rule_where + 3);
        x->loc = loc_of(f, key);
        if (!expect_mapping(f, m, where + 3))
                return;
        lookup_keys(f, m, known, ELEMENTSOF(known), keys, vals, where);
        require_key(f, m, vals[0], "table", where, "Name the table whose rows refer to this rule's rows, e.g. table: app.customer.");
        require_key(f, m, vals[1], "column", where,
                    "Name its column that refers to this rule's rows (a foreign key), e.g. column: address_id.");
        if (vals[0]) {
                (void) get_table(f, vals[0], "table", where, &x->table);
                x->table_loc = loc_of(f, vals[0]);
        }
        if (vals[1]) {
                (void) get_ident(f, vals[1], "column", where, &x->column);
                x->column_loc = loc_of(f, vals[1]);
        }
        if (vals[2]) {
                (void) get_ident(f, vals[2], "subject_column", where, &x->subject_column);
                x->subject_column_loc = loc_of(f, vals[2]);
        }
        r->has_referrer = true;
}

/* One entry of `delete_with:`, { table: T, through: C }. */
static void load_delete_with_entry(F *f, Rule *r, const Node *m, const char *where) {
        static const char *const known[] = { "table", "through" };
        const Node *keys[ELEMENTSOF(known)], *vals[ELEMENTSOF(known)];
        if (!expect_mapping(f, m, where + 3))
                return;
        lookup_keys(f, m, known, ELEMENTSOF(known), keys, vals, where);
        require_key(f, m, vals[0], "table", where, "Name the table whose row goes with the deleted row, e.g. table: shop.address.");
        require_key(f, m, vals[1], "through", where,
                    "Name the column of the rule's table that refers to that row (a foreign key), e.g. through: address_id.");
        DeleteWith w = { .loc = loc_of(f, m) };
        if (vals[0]) {
                (void) get_table(f, vals[0], "table", where, &w.table);
                w.table_loc = loc_of(f, vals[0]);
        }
        if (vals[1]) {
                (void) get_ident(f, vals[1], "through", where, &w.through);
                w.through_loc = loc_of(f, vals[1]);
        }
        if (w.table.name && r->table.name && qualified_name_equal(&w.table, &r->table)) {
                Diagnostic *x = error_at(f, vals[0], "\"delete_with\" of rule \"%s\" names the rule's own table", r->name);
                diag_set_detail(x, "\"delete_with\" deletes, with each row the rule deletes, the row of another table that it refers to.");
                diag_set_hint(x, "Name the table that the rule's foreign-key column refers to.");
        }
        for (size_t i = 0; i < r->n_delete_with && w.table.name && w.through; i++)
                if (r->delete_with[i].table.name && r->delete_with[i].through &&
                    qualified_name_equal(&r->delete_with[i].table, &w.table) && streq(r->delete_with[i].through, w.through))
                        error_at(f, m, "\"delete_with\" of rule \"%s\" lists the same table and column twice", r->name);
        r->delete_with = xreallocarray(r->delete_with, r->n_delete_with + 1, sizeof(DeleteWith));
        r->delete_with[r->n_delete_with++] = w;
}

/* `delete_with: [{ table: T, through: C }, ...]` of a delete rule: with each row it deletes, the
 * row of T that the row's C refers to, when no row that stays refers to it. */
static void load_delete_with(F *f, Rule *r, const Node *key, const Node *n, bool deletes, const char *rule_where) {
        _cleanup_free_ char *where = xasprintf("in \"delete_with\" of %s", rule_where + 3);
        r->delete_with_loc = loc_of(f, key);
        if (!deletes) {
                Diagnostic *x = error_at(f, key, "rule \"%s\" has \"delete_with\" but does not delete", r->name);
                diag_set_detail(x, "\"delete_with\" deletes the rows a deleted row refers to, in the same statement.");
                diag_set_hint(x, "Write \"action: delete\", or remove \"delete_with\" (an anonymise rule on the other table with"
                                 " \"referenced_by\" anonymises such rows).");
                return;
        }
        if (n->type == NODE_BAD)
                return;
        if (n->type != NODE_SEQUENCE || n->n == 0) {
                Diagnostic *x = n->type != NODE_SEQUENCE
                                        ? error_at(f, n, "expected a list for \"delete_with\" %s, found %s", rule_where, node_kind(n))
                                        : error_at(f, n, "\"delete_with\" is empty %s", rule_where);
                diag_set_hint(x, "Write delete_with: [{ table: shop.address, through: address_id }].");
                return;
        }
        for (size_t i = 0; i < n->n; i++)
                load_delete_with_entry(f, r, n->items[i], where);
}

/* The keys that say whose data a rule's rows are: subject, subject_column, referenced_by, holds
 * and while_held, and how they fit together. */
static void load_rule_subject(F *f, Rule *r, RuleExtra *re, const Node *const *keys, const Node *const *vals, const char *where) {
        if (vals[R_SUBJECT]) {
                const char *s = get_scalar(f, vals[R_SUBJECT], "subject", where);
                if (s)
                        r->subject_name = xstrdup(s);
                re->subject_loc = loc_of(f, vals[R_SUBJECT]);
        }
        if (vals[R_SUBJECT_COLUMN]) {
                (void) get_ident(f, vals[R_SUBJECT_COLUMN], "subject_column", where, &r->subject_column);
                r->subject_column_loc = loc_of(f, vals[R_SUBJECT_COLUMN]);
                if (!vals[R_SUBJECT]) {
                        Diagnostic *x = error_at(f, keys[R_SUBJECT_COLUMN], "rule \"%s\" has \"subject_column\" but no \"subject\"", r->name);
                        diag_set_hint(x, "Add \"subject: NAME\", or remove \"subject_column\".");
                }
        }
        if (vals[R_REFERENCED_BY]) {
                if (vals[R_SUBJECT_COLUMN]) {
                        Diagnostic *x = error_at(f, keys[R_REFERENCED_BY], "rule \"%s\" has both \"subject_column\" and \"referenced_by\"",
                                                 r->name);
                        diag_set_detail(x, "\"subject_column\" is a column of the rule's table that holds the subject's key;"
                                           " \"referenced_by\" names the rows of another table that refer to the rule's rows"
                                           " and hold it there.");
                        diag_set_hint(x, "Keep the one that says where the subject's key is.");
                } else if (!vals[R_SUBJECT]) {
                        Diagnostic *x = error_at(f, keys[R_REFERENCED_BY], "rule \"%s\" has \"referenced_by\" but no \"subject\"", r->name);
                        diag_set_hint(x, "Add \"subject: NAME\": \"referenced_by\" says through which rows the rule's rows are"
                                         " that subject's.");
                }
                load_referrer(f, r, keys[R_REFERENCED_BY], vals[R_REFERENCED_BY], where);
        }
        if (vals[R_HOLDS]) {
                load_rule_holds(f, r, re, vals[R_HOLDS], where);
                if (!vals[R_SUBJECT]) {
                        Diagnostic *x = error_at(f, keys[R_HOLDS], "rule \"%s\" lists holds but has no subject", r->name);
                        diag_set_detail(x, "A hold protects a subject (a person or an account); the rule must say whose data its rows are.");
                        diag_set_hint(x, "Add \"subject: NAME\" (and \"subject_column\" when the table is not the subject's table).");
                }
        }
        if (vals[R_WHILE_HELD]) {
                if (!vals[R_HOLDS]) {
                        Diagnostic *x = error_at(f, keys[R_WHILE_HELD], "rule \"%s\" has \"while_held\" but no \"holds\"", r->name);
                        diag_set_detail(x, "\"while_held\" says what happens to rows that a hold keeps; without holds no row is ever held.");
                        diag_set_hint(x, "Add \"holds: [...]\", or remove \"while_held\".");
                }
                load_while_held(f, r, vals[R_WHILE_HELD], where);
        }
}

static void load_rule(F *f, const Node *k, const Node *v) {
        Loader *l = f->l;
        Policy *p = l->policy;
        const Node *keys[_R_MAX], *vals[_R_MAX];

        check_name(f, k, "rule");
        p->rules = xreallocarray(p->rules, p->n_rules + 1, sizeof(Rule));
        l->rule_extra = xreallocarray(l->rule_extra, p->n_rules + 1, sizeof(RuleExtra));
        RuleExtra *re = &l->rule_extra[p->n_rules];
        Rule *r = &p->rules[p->n_rules++];
        *r = (Rule) { .name = xstrdup(k->value), .loc = loc_of(f, k) };
        *re = (RuleExtra) {};

        _cleanup_free_ char *where = xasprintf("in rule \"%s\"", k->value);
        if (!expect_mapping(f, v, where + 3))
                return;
        lookup_keys(f, v, rule_keys, _R_MAX, keys, vals, where);
        require_key(f, v, vals[R_CLAUSE], "clause", where,
                    "Quote or cite the privacy-policy clause this rule enforces, e.g. clause: \"Log files: stored at most seven days\".");
        require_key(f, v, vals[R_TABLE], "table", where, NULL);
        require_key(f, v, vals[R_COLUMN], "column", where, "Name the timestamp column that the age of a row is measured from.");
        require_key(f, v, vals[R_RETAIN], "retain", where, "Say how long rows are kept, e.g. retain: 7 days.");
        require_key(f, v, vals[R_ACTION], "action", where, "Write \"action: delete\" or \"action: anonymise\".");

        if (vals[R_CLAUSE]) {
                const char *c = get_scalar(f, vals[R_CLAUSE], "clause", where);
                if (c)
                        r->clause = xstrdup(c);
        }
        if (vals[R_TABLE]) {
                (void) get_table(f, vals[R_TABLE], "table", where, &r->table);
                r->table_loc = loc_of(f, vals[R_TABLE]);
        }
        if (vals[R_COLUMN]) {
                (void) get_ident(f, vals[R_COLUMN], "column", where, &r->column);
                r->column_loc = loc_of(f, vals[R_COLUMN]);
        }
        bool retain_ok = vals[R_RETAIN] && get_duration(f, vals[R_RETAIN], "retain", where, &r->retain);
        if (vals[R_RETAIN])
                r->retain_loc = loc_of(f, vals[R_RETAIN]);
        if (vals[R_DEADLINE])
                r->has_deadline = get_duration(f, vals[R_DEADLINE], "deadline", where, &r->deadline);
        load_period_start(f, keys[R_FROM], vals[R_FROM], keys[R_FISCAL_YEAR_START], vals[R_FISCAL_YEAR_START], where, &r->start);
        if (retain_ok)
                check_cutoff_range(f, vals[R_RETAIN], &r->retain, r->has_deadline ? &r->deadline : NULL, where);
        bool action_ok = vals[R_ACTION] && get_action(f, vals[R_ACTION], where, &r->action);
        if (vals[R_COLUMNS]) {
                if (action_ok && r->action == ACTION_DELETE) {
                        Diagnostic *x = error_at(f, keys[R_COLUMNS], "rule \"%s\" deletes rows but lists \"columns\"", r->name);
                        diag_set_detail(x, "\"columns\" says how to anonymise; a rule with \"action: delete\" removes whole rows.");
                        diag_set_hint(x, "Remove \"columns\", or write \"action: anonymise\".");
                } else
                        parse_columns(f, vals[R_COLUMNS], where, &r->columns, &r->n_columns);
        } else if (action_ok && r->action == ACTION_ANONYMISE) {
                Diagnostic *x = error_at(f, vals[R_ACTION], "rule \"%s\" anonymises but has no \"columns\"", r->name);
                diag_set_hint(x, "Add the columns and their methods, e.g. columns: { ip: truncate_ip }.");
        }
        load_rule_subject(f, r, re, keys, vals, where);
        if (vals[R_DELETE_WITH])
                load_delete_with(f, r, keys[R_DELETE_WITH], vals[R_DELETE_WITH], !action_ok || r->action == ACTION_DELETE, where);
        if (vals[R_WHERE]) {
                const char *w = get_scalar(f, vals[R_WHERE], "where", where);
                if (w && check_where(f, vals[R_WHERE], w, where))
                        r->where = xstrdup(w);
                r->where_loc = loc_of(f, keys[R_WHERE]);
        }
        if (vals[R_TRUST_TRIGGERS])
                (void) get_bool(f, vals[R_TRUST_TRIGGERS], "trust_triggers", where, &r->trust_triggers);
        if (vals[R_DATABASE]) {
                const char *d = get_scalar(f, vals[R_DATABASE], "database", where);
                if (d)
                        r->database_name = xstrdup(d);
                re->database_loc = loc_of(f, vals[R_DATABASE]);
        }

        Settings s = f->defaults;
        for (size_t i = 0; i < _S_MAX; i++)
                if (vals[R_SETTINGS + i])
                        parse_setting(f, i, vals[R_SETTINGS + i], where, &s);
        r->batch_size = s.batch_size;
        r->schedule = s.schedule;
        r->window = s.window ? xstrdup(s.window) : NULL;
        r->max_fraction = s.max_fraction;
        r->max_rows = s.max_rows;
        r->breaker_min_rows = s.breaker_min_rows;
}

static void load_rules(F *f, const Node *m) {
        if (!expect_mapping(f, m, "\"rules\""))
                return;
        for (size_t i = 0; i < node_pairs(m); i++)
                if (!m->skip[i])
                        load_rule(f, m->items[2 * i], m->items[2 * i + 1]);
}

/* ---- coverage: { ignore: [...] } ------------------------------------------------------------- */

static void load_coverage(F *f, const Node *m) {
        static const char *const known[] = { "ignore" };
        const Node *keys[1], *vals[1];
        Policy *p = f->l->policy;
        if (!expect_mapping(f, m, "\"coverage\""))
                return;
        lookup_keys(f, m, known, ELEMENTSOF(known), keys, vals, "in \"coverage\"");
        if (!vals[0])
                return;
        const Node *list = vals[0];
        if (list->type == NODE_BAD)
                return;
        if (list->type != NODE_SEQUENCE) {
                Diagnostic *x = error_at(f, list, "expected a list for \"ignore\" in \"coverage\", found %s", node_kind(list));
                diag_set_hint(x, "Write e.g. ignore: [ \"app.products\", \"app.users.nickname\", \"staging.*\" ].");
                return;
        }
        for (size_t i = 0; i < list->n; i++) {
                const Node *it = list->items[i];
                const char *v = get_scalar(f, it, "ignore", "in \"coverage\"");
                if (!v)
                        continue;
                CoverageIgnore c = { .loc = loc_of(f, it) };
                size_t off = 0;
                const char *why = NULL;
                if (!coverage_ignore_parse(v, &c, &off, &why)) {
                        Diagnostic *x = error_pos(f, it->line, column_at(it, off), "invalid pattern \"%s\" in \"coverage: ignore\"", v);
                        diag_set_detail(x, "%s", why);
                        diag_set_hint(x, "Write \"schema.table\", \"schema.table.column\", \"schema.*\" or \"schema.*.column\".");
                        continue;
                }
                p->coverage_ignores = xreallocarray(p->coverage_ignores, p->n_coverage_ignores + 1, sizeof(CoverageIgnore));
                p->coverage_ignores[p->n_coverage_ignores++] = c;
        }
}

/* ---- databases: { NAME: { conninfo: "..." } | { service: NAME } } -------------------------- */

static bool valid_service(const char *s) {
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '-' || *p == '.'))
                        return false;
        return *s != 0;
}

static void load_databases(F *f, const Node *m) {
        static const char *const known[] = { "conninfo", "service" };
        Policy *p = f->l->policy;
        if (!expect_mapping(f, m, "\"databases\""))
                return;
        for (size_t i = 0; i < node_pairs(m); i++) {
                if (m->skip[i])
                        continue;
                const Node *k = m->items[2 * i], *v = m->items[2 * i + 1], *keys[2], *vals[2];
                check_name(f, k, "database");
                _cleanup_free_ char *where = xasprintf("in database \"%s\"", k->value);
                Database d = { .name = xstrdup(k->value), .loc = loc_of(f, k) };
                if (!expect_mapping(f, v, where + 3))
                        goto add;
                lookup_keys(f, v, known, ELEMENTSOF(known), keys, vals, where);
                if (vals[0] && vals[1]) {
                        Diagnostic *x = error_at(f, keys[1], "database \"%s\" has both \"conninfo\" and \"service\"", k->value);
                        diag_set_hint(x, "Give one of them; a conninfo may name a service itself (\"service=NAME dbname=...\").");
                } else if (!vals[0] && !vals[1]) {
                        Diagnostic *x = error_at(f, v, "missing \"conninfo\" or \"service\" %s", where);
                        diag_set_hint(x, "Write e.g. conninfo: \"host=db1 dbname=app\", or service: app (a section of pg_service.conf).");
                }
                if (vals[0]) {
                        const char *ci = get_scalar(f, vals[0], "conninfo", where);
                        char *errmsg = NULL;
                        PQconninfoOption *opts = ci ? PQconninfoParse(ci, &errmsg) : NULL;
                        bool parsed = opts != NULL;
                        if (ci && !opts) {
                                Diagnostic *x = error_at(f, vals[0], "invalid \"conninfo\" %s", where);
                                if (errmsg) {
                                        size_t n = strlen(errmsg);
                                        while (n > 0 && errmsg[n - 1] == '\n')
                                                errmsg[--n] = 0;
                                        diag_set_detail(x, "libpq: %s", errmsg);
                                }
                                diag_set_hint(x, "Write key=value pairs (\"host=db1 port=5432 dbname=app\") or a URI (\"postgresql://db1/app\").");
                        }
                        PQfreemem(errmsg);
                        bool password = false;
                        for (PQconninfoOption *o = opts; o && o->keyword; o++)
                                if (streq(o->keyword, "password") && o->val)
                                        password = true;
                        PQconninfoFree(opts);
                        if (password) {
                                /* "password=..." or a URI's "user:PASSWORD@" */
                                const char *at = strstr(ci, "password");
                                const char *scheme = strstr(ci, "://"), *amp = strchr(ci, '@');
                                if (!at && scheme && amp && amp > scheme)
                                        for (const char *q = scheme + 3; q < amp; q++)
                                                if (*q == ':')
                                                        at = q + 1;
                                Diagnostic *x = error_pos(f, vals[0]->line, column_at(vals[0], at ? (size_t) (at - ci) : 0),
                                                          "a password in the \"conninfo\" of database \"%s\"", k->value);
                                diag_set_detail(x, "Policy files are read by the service and kept in configuration management; a password there is a password for everyone who can read them.");
                                diag_set_hint(x, "Remove it and put it in a pgpass file: PGPASSFILE, or the systemd credential \"pgpass\" of retentiond.service.");
                        } else if (parsed)
                                d.conninfo = xstrdup(ci);
                }
                if (vals[1]) {
                        const char *s = get_scalar(f, vals[1], "service", where);
                        if (s && !valid_service(s)) {
                                Diagnostic *x = error_at(f, vals[1], "invalid service name \"%s\" %s", s, where);
                                diag_set_detail(x, "A service is the name of a section of pg_service.conf: letters, digits, \"_\", \"-\" and \".\".");
                                diag_set_hint(x, "For anything else write \"conninfo:\".");
                        } else if (s && !d.conninfo) { /* both given: reported above */
                                d.service = xstrdup(s);
                                d.conninfo = xasprintf("service=%s", s);
                        }
                }
        add:
                p->databases = xreallocarray(p->databases, p->n_databases + 1, sizeof(Database));
                p->databases[p->n_databases++] = d;
        }
}

static void load_document(F *f, const Node *root) {
        static const char *const known[] = { "version", "defaults", "subjects", "holds", "rules", "coverage", "databases" };
        const Node *keys[ELEMENTSOF(known)], *vals[ELEMENTSOF(known)];
        if (root->type == NODE_BAD)
                return;
        if (root->type != NODE_MAPPING) {
                Diagnostic *x = error_at(f, root, "expected a mapping at the top of the policy file, found %s", node_kind(root));
                diag_set_hint(x, "A policy file starts with \"version: 1\", followed by \"subjects:\", \"holds:\" and \"rules:\".");
                return;
        }
        lookup_keys(f, root, known, ELEMENTSOF(known), keys, vals, "at the top level");
        require_key(f, root, vals[0], "version", "at the top level", "Add \"version: 1\" as the first line.");
        if (vals[0]) {
                const char *v = get_scalar(f, vals[0], "version", "at the top level");
                if (v && !streq(v, "1")) {
                        Diagnostic *x = error_at(f, vals[0], "unsupported policy version \"%s\"", v);
                        diag_set_hint(x, "This retentiond reads \"version: 1\".");
                }
        }
        if (vals[1])
                load_defaults(f, vals[1]);
        if (vals[2])
                load_subjects(f, vals[2]);
        if (vals[3])
                load_holds(f, vals[3]);
        if (vals[4])
                load_rules(f, vals[4]);
        if (vals[5])
                load_coverage(f, vals[5]);
        if (vals[6])
                load_databases(f, vals[6]);
}

/* ---- files ---------------------------------------------------------------------------------- */

static Source *source_add(Loader *l, const char *name, const char *text, size_t len, char *owned) {
        Policy *p = l->policy;
        Source *s = xcalloc(1, sizeof(Source));
        p->files = xreallocarray(p->files, p->n_files + 1, sizeof(char *));
        p->files[p->n_files] = xstrdup(name);
        s->name = p->files[p->n_files++];
        s->text = text;
        s->len = len;
        s->owned_text = owned;
        s->rank = ++l->rank;
        l->sources = xreallocarray(l->sources, l->n_sources + 1, sizeof(Source *));
        l->sources[l->n_sources++] = s;
        return s;
}

/* Checks that the text is UTF-8 without NUL or control characters; reports the first bad byte. */
static bool check_text(Loader *l, Source *s) {
        const unsigned char *p = (const unsigned char *) s->text;
        for (size_t i = 0; i < s->len;) {
                unsigned c = p[i];
                if (c == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
                        unsigned line, column;
                        offset_to_position(s, i, &line, &column);
                        Diagnostic *x = c == 0 ? report(l, SEVERITY_ERROR, s, line, column, "policy file contains a NUL byte")
                                               : report(l, SEVERITY_ERROR, s, line, column,
                                                        "policy file contains the control character 0x%02x", c);
                        diag_set_detail(x, "Policy files are UTF-8 text; this looks like a binary file.");
                        return false;
                }
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
                if (len == 0 || i + len > s->len || !utf8_valid(s->text + i, len)) {
                        unsigned line, column;
                        offset_to_position(s, i, &line, &column);
                        Diagnostic *x = report(l, SEVERITY_ERROR, s, line, column,
                                               "invalid byte sequence for encoding \"UTF8\": 0x%02x", c);
                        diag_set_detail(x, "Policy files are UTF-8 text.");
                        diag_set_hint(x, "Convert the file to UTF-8, e.g. with iconv.");
                        return false;
                }
                i += len;
        }
        return true;
}

static void load_source(Loader *l, Source *s) {
        source_index_lines(s);
        if (s->len > POLICY_FILE_SIZE_MAX) {
                Diagnostic *x = report(l, SEVERITY_ERROR, s, 0, 0, "policy file is too large (%zu bytes; the limit is 4 MiB)", s->len);
                diag_set_hint(x, "Split the policy into several files in one directory.");
                l->incomplete = true;
                return;
        }
        if (!check_text(l, s)) {
                l->incomplete = true;
                return;
        }
        bool fatal;
        Node *root = parse_tree(l, s, &fatal);
        if (fatal) {
                l->incomplete = true;
        } else if (!root || is_null(root)) {
                Diagnostic *x = report(l, SEVERITY_ERROR, s, 1, 1, "policy file is empty");
                diag_set_hint(x, "A policy file starts with \"version: 1\"; remove the file if it is not needed.");
        } else {
                F f = {
                        .l = l,
                        .s = s,
                        .defaults = {
                                .batch_size = POLICY_DEFAULT_BATCH_SIZE,
                                .schedule = { .usecs = POLICY_DEFAULT_SCHEDULE_USEC },
                                .max_fraction = POLICY_DEFAULT_MAX_FRACTION,
                                .max_rows = 0,
                                .breaker_min_rows = POLICY_DEFAULT_BREAKER_MIN_ROWS,
                        },
                };
                load_document(&f, root);
        }
        node_free(root);
}

static void load_file(Loader *l, const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;
        if (fd < 0) {
                int e = errno;
                io_error(l, e, "could not open file \"%s\": %s", path, strerror(e));
                return;
        }
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                io_error(l, e, "could not stat file \"%s\": %s", path, strerror(e));
                return;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                io_error(l, EINVAL, "\"%s\" is not a regular file", path);
                return;
        }
        if ((uint64_t) st.st_size > POLICY_FILE_SIZE_MAX) {
                close(fd);
                l->rank++;
                Diagnostic *x = report(l, SEVERITY_ERROR, NULL, 0, 0, "policy file \"%s\" is too large (%jd bytes; the limit is 4 MiB)",
                                       path, (intmax_t) st.st_size);
                diag_set_hint(x, "Split the policy into several files in one directory.");
                l->incomplete = true;
                return;
        }
        size_t cap = (size_t) st.st_size + 1, len = 0;
        char *buf = xmalloc(cap + 1);
        for (;;) {
                if (len == cap) {
                        if (cap > POLICY_FILE_SIZE_MAX)
                                break; /* grew while reading: load_source() reports it */
                        cap *= 2;
                        buf = xrealloc(buf, cap + 1);
                }
                ssize_t r = read(fd, buf + len, cap - len);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = errno;
                        free(buf);
                        close(fd);
                        io_error(l, e, "could not read file \"%s\": %s", path, strerror(e));
                        return;
                }
                if (r == 0)
                        break;
                len += (size_t) r;
        }
        close(fd);
        buf[len] = 0;

        Source *s = source_add(l, path, buf, len, buf);
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                bool others = st.st_mode & S_IWOTH;
                Diagnostic *x = report(l, SEVERITY_WARNING, s, 0, 0, "policy file is writable by %s",
                                       others ? "others" : "its group");
                diag_set_detail(x, "Whoever can write a policy file can make retentiond delete data.");
                diag_set_hint(x, "Run \"chmod %s \"%s\"\".", others ? "o-w" : "g-w", path);
        }
        if (st.st_uid != 0 && st.st_uid != geteuid()) {
                /* Its owner can change it, whatever its mode says. */
                const struct passwd *pw = getpwuid(st.st_uid);
                Diagnostic *x = report(l, SEVERITY_WARNING, s, 0, 0, "policy file is owned by user \"%s\", who can change it",
                                       pw && pw->pw_name ? pw->pw_name : "?");
                diag_set_detail(x, "Whoever can write a policy file can make retentiond delete data.");
                diag_set_hint(x, "Run \"chown root \"%s\"\".", path);
        }
        load_source(l, s);
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool policy_file_name(const char *name) {
        size_t n = strlen(name);
        return name[0] != '.' && n > 5 && streq(name + n - 5, ".yaml");
}

static void load_directory(Loader *l, const char *path) {
        DIR *d = opendir(path);
        char **names = NULL;
        size_t n = 0;
        if (!d) {
                int e = errno;
                io_error(l, e, "could not open directory \"%s\": %s", path, strerror(e));
                return;
        }
        /* Whoever can write the directory can add or replace a policy file. */
        struct stat dst;
        bool have_dst = fstat(dirfd(d), &dst) == 0;
        if (have_dst && (dst.st_mode & (S_IWGRP | S_IWOTH))) {
                bool others = dst.st_mode & S_IWOTH;
                Diagnostic *x = report(l, SEVERITY_WARNING, NULL, 0, 0, "policy directory \"%s\" is writable by %s", path,
                                       others ? "others" : "its group");
                diag_set_detail(x, "Whoever can add or replace a policy file can make retentiond delete data.");
                diag_set_hint(x, "Run \"chmod %s \"%s\"\".", others ? "o-w" : "g-w", path);
        } else if (have_dst && dst.st_uid != 0 && dst.st_uid != geteuid()) {
                const struct passwd *pw = getpwuid(dst.st_uid);
                Diagnostic *x = report(l, SEVERITY_WARNING, NULL, 0, 0, "policy directory \"%s\" is owned by user \"%s\"", path,
                                       pw && pw->pw_name ? pw->pw_name : "?");
                diag_set_detail(x, "Its owner can add or replace a policy file, and so make retentiond delete data.");
                diag_set_hint(x, "Run \"chown root \"%s\"\".", path);
        }
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                int e = errno;
                                io_error(l, e, "could not read directory \"%s\": %s", path, strerror(e));
                        }
                        break;
                }
                if (!policy_file_name(de->d_name))
                        continue;
                names = xreallocarray(names, n + 1, sizeof(char *));
                names[n++] = xstrdup(de->d_name);
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof(char *), strcmp_ptr);
        size_t loaded = 0;
        bool slash = path[0] && path[strlen(path) - 1] == '/';
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *full = xasprintf("%s%s%s", path, slash ? "" : "/", names[i]);
                struct stat st;
                free(names[i]);
                if (stat(full, &st) < 0) {
                        int e = errno;
                        io_error(l, e, "could not open file \"%s\": %s", full, strerror(e));
                        loaded++;
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue;
                load_file(l, full);
                loaded++;
        }
        free(names);
        if (loaded == 0) {
                l->rank++;
                io_error(l, ENOENT, "no policy files in directory \"%s\"", path);
                diag_set_hint(&l->diags->items[l->diags->n - 1],
                              "Policy files are regular files whose names end in \".yaml\" and do not start with \".\".");
        }
}

static void load_path(Loader *l, const char *path) {
        struct stat st;
        if (stat(path, &st) < 0) {
                int e = errno;
                l->rank++;
                io_error(l, e, "could not open file \"%s\": %s", path, strerror(e));
                return;
        }
        if (S_ISDIR(st.st_mode))
                load_directory(l, path);
        else
                load_file(l, path);
}

/* ---- checks across files ------------------------------------------------------------------- */

typedef struct NameRef {
        const char *name;
        const Location *loc;
        size_t index;
} NameRef;

static int nameref_cmp(const void *a, const void *b) {
        const NameRef *x = a, *y = b;
        int r = strcmp(x->name, y->name);
        if (r != 0)
                return r;
        return x->index < y->index ? -1 : x->index > y->index;
}

static void check_unique(Loader *l, NameRef *refs, size_t n, const char *what) {
        qsort(refs, n, sizeof(NameRef), nameref_cmp);
        for (size_t i = 1; i < n; i++) {
                size_t first = i - 1;
                while (i < n && streq(refs[i].name, refs[first].name)) {
                        Diagnostic *x = report_loc(l, SEVERITY_ERROR, refs[i].loc, "duplicate %s name \"%s\"", what, refs[i].name);
                        diag_set_detail(x, "The %s \"%s\" is already defined at %s:%u:%u; names of rules, holds and subjects are unique across all policy files.",
                                        what, refs[i].name, refs[first].loc->file, refs[first].loc->line, refs[first].loc->column);
                        diag_set_hint(x, "Rename one of them, or remove the copy.");
                        i++;
                }
        }
}

static void undefined_ref(Loader *l, const Location *loc, const char *what, const char *kind, const char *name,
                          const char *const *cands, size_t n_cands, const char *section) {
        Diagnostic *x = report_loc(l, SEVERITY_ERROR, loc, "%s refers to undefined %s \"%s\"", what, kind, name);
        const char *c = closest(name, cands, n_cands);
        if (c)
                diag_set_hint(x, "Did you mean \"%s\"?", c);
        else
                diag_set_hint(x, "Define it under \"%s:\" in one of the policy files.", section);
}

/* A rule's `referenced_by:` once its subject is known: without subject_column the referring table
 * is the subject's own; such a rule anonymises only (a delete would need the referring rows gone
 * first, and with them the knowledge whose rows these were): the rule that deletes the referring
 * rows deletes these with them (`delete_with:`). */
static void check_referrer(Loader *l, const Rule *r) {
        const Referrer *x = &r->referrer;
        if (!x->subject_column && x->table.name && r->subject->table.name && !qualified_name_equal(&x->table, &r->subject->table)) {
                _cleanup_free_ char *t = qualified_name_display(&x->table);
                _cleanup_free_ char *st = qualified_name_display(&r->subject->table);
                Diagnostic *y = report_loc(l, SEVERITY_ERROR, x->table_loc.line ? &x->table_loc : &x->loc,
                                           "\"referenced_by\" of rule \"%s\" needs \"subject_column\": %s is not the table of subject"
                                           " \"%s\" (%s)",
                                           r->name, t, r->subject->name, st);
                diag_set_hint(y, "Add \"subject_column: COLUMN\" to \"referenced_by\", the column of %s that holds the %s key.", t, st);
        }
        if (r->action == ACTION_DELETE) {
                Diagnostic *y = report_loc(l, SEVERITY_ERROR, &x->loc,
                                           "rule \"%s\" deletes rows whose subject it reaches through \"referenced_by\"", r->name);
                diag_set_detail(y, "Its rows can go only once the rows that refer to them are gone, and with those the"
                                   " knowledge whose rows they were.");
                diag_set_hint(y, "To delete these rows with the rows that refer to them, give the rule that deletes those"
                                 " \"delete_with: [{ table: TABLE, through: COLUMN }]\"; or write \"action: anonymise\" here"
                                 " with the columns that identify the subject.");
        }
}

/* A hold of another subject applies when the rule's rows are that subject's own rows (its table is
 * the rule's): a rental held while a payment refers to it. */
static void check_hold_subject(Loader *l, const Rule *r, const Hold *h, const Location *loc) {
        bool own_rows = h->subject && r->table.name && h->subject->table.name && qualified_name_equal(&r->table, &h->subject->table);
        if (!h->subject_name || !r->subject_name || streq(h->subject_name, r->subject_name) || own_rows)
                return;
        /* A rule without a table (already an error of its own) is still told about the hold. */
        _cleanup_free_ char *rt = r->table.name ? qualified_name_display(&r->table) : xstrdup("the rule's table");
        Diagnostic *x = report_loc(l, SEVERITY_ERROR, loc, "hold \"%s\" protects subject \"%s\", but rule \"%s\" is about subject \"%s\"",
                                   h->name, h->subject_name, r->name, r->subject_name);
        diag_set_detail(x, "A rule's holds protect its own subject, or a subject whose table is the rule's table (%s): its rows"
                           " are that subject's own.", rt);
        diag_set_hint(x, "Use a hold of subject \"%s\", or define the hold on a subject whose table is %s.", r->subject_name, rt);
}

static void check_across(Loader *l) {
        Policy *p = l->policy;
        size_t nmax = p->n_rules > p->n_holds ? p->n_rules : p->n_holds;
        if (p->n_subjects > nmax)
                nmax = p->n_subjects;
        NameRef *refs = xcalloc(nmax ? nmax : 1, sizeof(NameRef));
        const char **snames = xcalloc(p->n_subjects + 1, sizeof(char *));
        const char **hnames = xcalloc(p->n_holds + 1, sizeof(char *));

        for (size_t i = 0; i < p->n_subjects; i++) {
                refs[i] = (NameRef) { p->subjects[i].name, &p->subjects[i].loc, i };
                snames[i] = p->subjects[i].name;
        }
        check_unique(l, refs, p->n_subjects, "subject");
        for (size_t i = 0; i < p->n_holds; i++) {
                refs[i] = (NameRef) { p->holds[i].name, &p->holds[i].loc, i };
                hnames[i] = p->holds[i].name;
        }
        check_unique(l, refs, p->n_holds, "hold");
        for (size_t i = 0; i < p->n_rules; i++)
                refs[i] = (NameRef) { p->rules[i].name, &p->rules[i].loc, i };
        check_unique(l, refs, p->n_rules, "rule");
        free(refs);

        bool *subject_used = xcalloc(p->n_subjects + 1, sizeof(bool));
        bool *hold_used = xcalloc(p->n_holds + 1, sizeof(bool));

        for (size_t i = 0; i < p->n_holds; i++) {
                Hold *h = &p->holds[i];
                if (!h->subject_name)
                        continue;
                h->subject = policy_find_subject(p, h->subject_name);
                if (h->subject)
                        subject_used[h->subject - p->subjects] = true;
                else if (!l->incomplete) {
                        _cleanup_free_ char *what = xasprintf("hold \"%s\"", h->name);
                        undefined_ref(l, &l->hold_extra[i].subject_loc, what, "subject", h->subject_name, snames,
                                      p->n_subjects, "subjects");
                }
        }
        for (size_t i = 0; i < p->n_rules; i++) {
                Rule *r = &p->rules[i];
                RuleExtra *re = &l->rule_extra[i];
                _cleanup_free_ char *what = xasprintf("rule \"%s\"", r->name);
                if (r->subject_name) {
                        r->subject = policy_find_subject(p, r->subject_name);
                        if (r->subject)
                                subject_used[r->subject - p->subjects] = true;
                        else if (!l->incomplete)
                                undefined_ref(l, &re->subject_loc, what, "subject", r->subject_name, snames,
                                              p->n_subjects, "subjects");
                }
                if (r->subject && r->has_referrer)
                        check_referrer(l, r);
                if (r->subject && !r->subject_column && !r->has_referrer && r->table.name && r->subject->table.name &&
                    !qualified_name_equal(&r->table, &r->subject->table)) {
                        _cleanup_free_ char *t = qualified_name_display(&r->table);
                        _cleanup_free_ char *st = qualified_name_display(&r->subject->table);
                        Diagnostic *x = report_loc(l, SEVERITY_ERROR, &re->subject_loc,
                                                   "rule \"%s\" needs \"subject_column\": its table %s is not the table of subject \"%s\" (%s)",
                                                   r->name, t, r->subject->name, st);
                        diag_set_hint(x, "Add \"subject_column: COLUMN\", the column of %s that holds the %s key.", t, st);
                }
                if (r->n_holds > 0)
                        r->holds = xcalloc(r->n_holds, sizeof(Hold *));
                for (size_t j = 0; j < r->n_holds; j++) {
                        const Hold *h = policy_find_hold(p, r->hold_names[j]);
                        r->holds[j] = h;
                        if (!h) {
                                if (!l->incomplete)
                                        undefined_ref(l, &re->hold_locs[j], what, "hold", r->hold_names[j], hnames,
                                                      p->n_holds, "holds");
                                continue;
                        }
                        hold_used[h - p->holds] = true;
                        check_hold_subject(l, r, h, &re->hold_locs[j]);
                }
        }
        /* databases: unique names; every rule in exactly one (the only one when not named) */
        if (p->n_databases > 0) {
                NameRef *drefs = xcalloc(p->n_databases, sizeof(NameRef));
                const char **dnames = xcalloc(p->n_databases, sizeof(char *));
                for (size_t i = 0; i < p->n_databases; i++) {
                        drefs[i] = (NameRef) { p->databases[i].name, &p->databases[i].loc, i };
                        dnames[i] = p->databases[i].name;
                }
                check_unique(l, drefs, p->n_databases, "database");
                free(drefs);
                for (size_t i = 0; i < p->n_rules; i++) {
                        Rule *r = &p->rules[i];
                        if (r->database_name) {
                                r->database = policy_find_database(p, r->database_name);
                                if (!r->database && !l->incomplete) {
                                        _cleanup_free_ char *what = xasprintf("rule \"%s\"", r->name);
                                        undefined_ref(l, &l->rule_extra[i].database_loc, what, "database", r->database_name,
                                                      dnames, p->n_databases, "databases");
                                }
                        } else if (p->n_databases == 1)
                                r->database = &p->databases[0];
                        else if (!l->incomplete) {
                                Diagnostic *x = report_loc(l, SEVERITY_ERROR, &r->loc,
                                                           "rule \"%s\" does not say which database it is for", r->name);
                                diag_set_detail(x, "The policy names %zu databases under \"databases:\".", p->n_databases);
                                diag_set_hint(x, "Add \"database: NAME\" to the rule, e.g. database: %s.", p->databases[0].name);
                        }
                }
                free(dnames);
        } else if (!l->incomplete)
                for (size_t i = 0; i < p->n_rules; i++)
                        if (p->rules[i].database_name) {
                                Diagnostic *x = report_loc(l, SEVERITY_ERROR, &l->rule_extra[i].database_loc,
                                                           "rule \"%s\" names database \"%s\", but the policy has no \"databases:\"",
                                                           p->rules[i].name, p->rules[i].database_name);
                                diag_set_hint(x, "Define it under \"databases:\" (conninfo or service), or remove \"database:\" to use -d.");
                        }

        if (!l->incomplete && !diagnostics_has_errors(l->diags)) {
                for (size_t i = 0; i < p->n_holds; i++)
                        if (!hold_used[i])
                                report_loc(l, SEVERITY_WARNING, &p->holds[i].loc, "hold \"%s\" is not used by any rule",
                                           p->holds[i].name);
                for (size_t i = 0; i < p->n_subjects; i++)
                        if (!subject_used[i])
                                report_loc(l, SEVERITY_WARNING, &p->subjects[i].loc,
                                           "subject \"%s\" is not used by any rule or hold", p->subjects[i].name);
        }
        free(subject_used);
        free(hold_used);
        free(snames);
        free(hnames);
}

/* ---- entry points ---------------------------------------------------------------------------- */

static void loader_init(Loader *l, Diagnostics *diags) {
        *l = (Loader) {
                .diags = diags,
                .policy = xcalloc(1, sizeof(Policy)),
                .errors_before = diags->n_errors,
        };
}

static int loader_finish(Loader *l, Policy **ret) {
        int r;
        check_across(l);
        diagnostics_sort(l->diags);
        for (size_t i = 0; i < l->policy->n_rules; i++)
                free(l->rule_extra[i].hold_locs);
        free(l->rule_extra);
        free(l->hold_extra);
        if (l->diags->n_errors > l->errors_before) {
                if (l->first_io_error == EACCES || l->first_io_error == EPERM)
                        r = -EACCES;
                else if (l->first_io_error)
                        r = -ENOENT;
                else
                        r = -EINVAL;
                policy_free(l->policy);
        } else {
                *ret = l->policy;
                r = 0;
        }
        for (size_t i = 0; i < l->n_sources; i++)
                source_free(l->sources[i]);
        free(l->sources);
        free(l->scratch.detail);
        free(l->scratch.hint);
        free(l->scratch.source);
        *l = (Loader) {};
        return r;
}

int policy_load(char *const *paths, size_t n_paths, Policy **ret, Diagnostics *diags) {
        Loader l;
        loader_init(&l, diags);
        for (size_t i = 0; i < n_paths; i++)
                load_path(&l, paths[i]);
        if (n_paths == 0) {
                l.rank++;
                io_error(&l, ENOENT, "no policy files given");
        }
        return loader_finish(&l, ret);
}

int policy_load_string(const char *filename, const char *text, size_t len, Policy **ret, Diagnostics *diags) {
        Loader l;
        loader_init(&l, diags);
        Source *s = source_add(&l, filename, text, len, NULL);
        load_source(&l, s);
        return loader_finish(&l, ret);
}

int policy_load_exit_code(int r, const Diagnostics *diags) {
        (void) diags;
        if (r >= 0)
                return EXIT_OK;
        if (r == -EACCES)
                return EXIT_NOPERM;
        if (r == -ENOENT)
                return EXIT_NOINPUT;
        return EXIT_POLICY;
}
