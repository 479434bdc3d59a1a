/* sqlfrag.c — the lexical check of a rule's `where:` (see sqlfrag.h). It reads the fragment the
 * way PostgreSQL's scanner (src/backend/parser/scan.l) does, as far as that decides where a
 * string, a quoted identifier or a dollar-quoted string begins and ends; outside them it counts
 * parentheses and brackets and refuses what could end the expression it is pasted into. Must
 * never accept a fragment it cannot read to its end. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sqlfrag.h"
#include "util.h"

static bool is_space(char c) {
        /* scan.l: space [ \t\n\r\f] (PostgreSQL 16 adds \v) */
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* ident_start [A-Za-z\200-\377_] */
static bool ident_start(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (unsigned char) c >= 0x80;
}

/* ident_cont [A-Za-z\200-\377_0-9\$]: an identifier may contain $, so a$$ is one identifier and
 * no dollar quote begins in it */
static bool ident_cont(char c) {
        return ident_start(c) || is_digit(c) || c == '$';
}

/* dolq_start [A-Za-z\200-\377_], dolq_cont [A-Za-z\200-\377_0-9] */
static bool dolq_cont(char c) {
        return ident_start(c) || is_digit(c);
}

/* A string from the quote at s[q]; backslash_escapes for E'...'. Returns the offset after its
 * closing quote, or 0 with *err. A plain string with \ before a quote is refused: with
 * standard_conforming_strings off (or read as the E'...' it continues, 'a' E'b' ...) that quote
 * would not end it. Without such a pair every reading ends the string at the same quote. */
static size_t lex_string(const char *s, size_t q, bool backslash_escapes, SqlFragError *err, size_t *where) {
        size_t i = q + 1;
        for (;;) {
                char c = s[i];
                if (c == '\0') {
                        *err = SQLFRAG_UNTERMINATED_STRING;
                        *where = q;
                        return 0;
                }
                if (c == '\\') {
                        if (backslash_escapes) {
                                if (s[i + 1] == '\0') {
                                        *err = SQLFRAG_UNTERMINATED_STRING;
                                        *where = q;
                                        return 0;
                                }
                                i += 2; /* \' \\ \n \x41 \101 \u0041: what follows the backslash is never the end */
                                continue;
                        }
                        if (s[i + 1] == '\'') {
                                *err = SQLFRAG_BACKSLASH_QUOTE;
                                *where = i;
                                return 0;
                        }
                        i++;
                        continue;
                }
                if (c == '\'') {
                        if (s[i + 1] == '\'') { /* '' is a quote inside the string */
                                i += 2;
                                continue;
                        }
                        return i + 1;
                }
                i++;
        }
}

/* A quoted identifier from the quote at s[q]; "" is a quote inside it. */
static size_t lex_quoted_ident(const char *s, size_t q, SqlFragError *err, size_t *where) {
        size_t i = q + 1;
        for (;;) {
                if (s[i] == '\0') {
                        *err = SQLFRAG_UNTERMINATED_IDENTIFIER;
                        *where = q;
                        return 0;
                }
                if (s[i] == '"') {
                        if (s[i + 1] == '"') {
                                i += 2;
                                continue;
                        }
                        return i + 1;
                }
                i++;
        }
}

/* A number from s[i] (a digit, or a dot before a digit), as scan.l reads integer, decimal and
 * real. A letter or _ right after it is refused: PostgreSQL 15 and later reject it ("trailing
 * junk after numeric literal"), 13 and 14 split it (1e'x' is 1 and then E'x'). */
static size_t lex_number(const char *s, size_t i, SqlFragError *err, size_t *where) {
        size_t start = i;
        while (is_digit(s[i]))
                i++;
        if (s[i] == '.' && !(i > start && s[i + 1] == '.')) { /* 1..2 is 1 and then .. */
                i++;
                while (is_digit(s[i]))
                        i++;
        }
        if (s[i] == 'e' || s[i] == 'E') {
                size_t j = i + 1;
                if (s[j] == '+' || s[j] == '-')
                        j++;
                if (is_digit(s[j])) {
                        i = j;
                        while (is_digit(s[i]))
                                i++;
                }
        }
        if (ident_start(s[i])) {
                *err = SQLFRAG_NUMBER_JUNK;
                *where = start;
                return 0;
        }
        return i;
}

SqlFragError sqlfrag_check(const char *s, size_t *offset) {
        size_t *open = NULL, n_open = 0, cap = 0; /* offsets of the parentheses still open */
        size_t bracket_depth = 0, last_bracket = 0;
        bool seen = false;
        SqlFragError err = SQLFRAG_OK;
        size_t where = 0;
        size_t i = 0;

        while (s[i] && err == SQLFRAG_OK) {
                char c = s[i];
                if (is_space(c)) {
                        i++;
                        continue;
                }
                seen = true;
                if ((c == '-' && s[i + 1] == '-') || (c == '/' && s[i + 1] == '*')) {
                        err = SQLFRAG_COMMENT;
                        where = i;
                } else if (c == '\'') {
                        i = lex_string(s, i, false, &err, &where);
                } else if ((c == 'e' || c == 'E') && s[i + 1] == '\'') {
                        /* scan.l xestart [eE]{quote}; only where a token starts, which is here:
                         * an identifier, a number or a parameter before it took the letter */
                        i = lex_string(s, i + 1, true, &err, &where);
                } else if (c == '"') {
                        i = lex_quoted_ident(s, i, &err, &where);
                } else if (c == '$') {
                        if (is_digit(s[i + 1])) {
                                err = SQLFRAG_PARAMETER;
                                where = i;
                                continue;
                        }
                        size_t j = i + 1;
                        if (ident_start(s[j])) /* dolq_start */
                                while (dolq_cont(s[j]))
                                        j++;
                        if (s[j] != '$') { /* scan.l dolqfailed: a lone $, which the parser refuses */
                                i++;
                                continue;
                        }
                        /* $tag$ ... $tag$: the first occurrence of the same delimiter ends it (scan.l
                         * reads each $ inside as a possible delimiter, so a substring search agrees) */
                        size_t tag_len = j - i + 1;
                        const char *end = NULL;
                        for (const char *p = s + j + 1; (p = strchr(p, '$')); p++)
                                if (strncmp(p, s + i, tag_len) == 0) {
                                        end = p;
                                        break;
                                }
                        if (!end) {
                                err = SQLFRAG_UNTERMINATED_DOLLAR;
                                where = i;
                                continue;
                        }
                        i = (size_t) (end - s) + tag_len;
                } else if (ident_start(c)) {
                        while (ident_cont(s[i]))
                                i++;
                } else if (is_digit(c) || (c == '.' && is_digit(s[i + 1]))) {
                        i = lex_number(s, i, &err, &where);
                } else {
                        switch (c) {
                        case '(':
                                if (n_open == cap) {
                                        cap = cap ? cap * 2 : 16;
                                        open = xreallocarray(open, cap, sizeof(size_t));
                                }
                                open[n_open++] = i;
                                break;
                        case ')':
                                if (n_open == 0) {
                                        err = SQLFRAG_CLOSE_UNOPENED;
                                        where = i;
                                } else
                                        n_open--;
                                break;
                        case '[':
                                if (bracket_depth++ == 0)
                                        last_bracket = i;
                                break;
                        case ']':
                                if (bracket_depth == 0) {
                                        err = SQLFRAG_CLOSE_UNOPENED_BRACKET;
                                        where = i;
                                } else
                                        bracket_depth--;
                                break;
                        case ';':
                                err = SQLFRAG_SEMICOLON;
                                where = i;
                                break;
                        case ',':
                                if (n_open == 0 && bracket_depth == 0) {
                                        err = SQLFRAG_TOP_LEVEL_COMMA;
                                        where = i;
                                }
                                break;
                        default:
                                break;
                        }
                        i++;
                }
        }
        if (err == SQLFRAG_OK) {
                if (n_open > 0) {
                        err = SQLFRAG_UNCLOSED_PAREN;
                        where = open[n_open - 1];
                } else if (bracket_depth > 0) {
                        err = SQLFRAG_UNCLOSED_BRACKET;
                        where = last_bracket;
                } else if (!seen)
                        err = SQLFRAG_EMPTY;
        }
        free(open);
        if (offset)
                *offset = err == SQLFRAG_OK ? 0 : where;
        return err;
}

static const char *const messages[_SQLFRAG_MAX] = {
        [SQLFRAG_OK] = "is valid",
        [SQLFRAG_EMPTY] = "is empty",
        [SQLFRAG_CLOSE_UNOPENED] = "closes a parenthesis it did not open",
        [SQLFRAG_UNCLOSED_PAREN] = "opens a parenthesis it does not close",
        [SQLFRAG_CLOSE_UNOPENED_BRACKET] = "closes a bracket it did not open",
        [SQLFRAG_UNCLOSED_BRACKET] = "opens a bracket it does not close",
        [SQLFRAG_SEMICOLON] = "contains a semicolon",
        [SQLFRAG_COMMENT] = "contains a comment",
        [SQLFRAG_TOP_LEVEL_COMMA] = "is a list, not one expression",
        [SQLFRAG_PARAMETER] = "refers to a statement parameter",
        [SQLFRAG_UNTERMINATED_STRING] = "has an unterminated quoted string",
        [SQLFRAG_UNTERMINATED_IDENTIFIER] = "has an unterminated quoted identifier",
        [SQLFRAG_UNTERMINATED_DOLLAR] = "has an unterminated dollar-quoted string",
        [SQLFRAG_BACKSLASH_QUOTE] = "has a backslash before a quote in a string",
        [SQLFRAG_NUMBER_JUNK] = "has a number followed by a letter",
};

static const char *const hints[_SQLFRAG_MAX] = {
        [SQLFRAG_OK] = "",
        [SQLFRAG_EMPTY] = "Write one boolean expression about the row t, e.g. \"t.status = 'closed'\", or remove \"where\".",
        [SQLFRAG_CLOSE_UNOPENED] = "Balance the parentheses: the expression is pasted inside parentheses of its own and must not close them.",
        [SQLFRAG_UNCLOSED_PAREN] = "Close every parenthesis the expression opens.",
        [SQLFRAG_CLOSE_UNOPENED_BRACKET] = "Balance the brackets.",
        [SQLFRAG_UNCLOSED_BRACKET] = "Close every bracket the expression opens.",
        [SQLFRAG_SEMICOLON] = "Write a single expression, not statements; a semicolon may appear only inside a string.",
        [SQLFRAG_COMMENT] = "Remove the comment (-- or /* */); comments belong in the YAML, after #.",
        [SQLFRAG_TOP_LEVEL_COMMA] = "Join conditions with AND or OR; a comma may appear only inside parentheses or brackets.",
        [SQLFRAG_PARAMETER] = "Write the value itself; $1, $2, ... are the engine's own parameters.",
        [SQLFRAG_UNTERMINATED_STRING] = "End the string with a quote; write a quote inside it as ''.",
        [SQLFRAG_UNTERMINATED_IDENTIFIER] = "End the identifier with a double quote; write a double quote inside it as \"\".",
        [SQLFRAG_UNTERMINATED_DOLLAR] = "End the string with the same delimiter it starts with ($$ or $tag$).",
        [SQLFRAG_BACKSLASH_QUOTE] = "Write a quote inside a string as '', and a string that ends in a backslash as E'...\\\\' (or as a dollar-quoted string).",
        [SQLFRAG_NUMBER_JUNK] = "Put a space or an operator between the number and what follows it.",
};

const char *sqlfrag_error_to_string(SqlFragError e) {
        return (unsigned) e < _SQLFRAG_MAX ? messages[e] : "is invalid";
}

const char *sqlfrag_error_hint(SqlFragError e) {
        return (unsigned) e < _SQLFRAG_MAX ? hints[e] : "";
}
