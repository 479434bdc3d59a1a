/* sqlfrag.h — a small SQL lexer for the one fragment of SQL a policy may contain, a rule's
 * `where:`. The engine pastes it inside parentheses (plan.c, where_expr()); this check makes sure
 * the fragment cannot leave them: its parentheses balance (and never close more than they opened),
 * it has no `;`, no comment, no comma at its top level, no parameter ($1), and every string,
 * quoted identifier and dollar-quoted string ends. It follows PostgreSQL's lexer (scan.l): quoted
 * strings with '' (and \' in E'...'), "identifiers", $$...$$ and $tag$...$tag$, identifiers that
 * contain $. Where PostgreSQL's reading depends on a setting or a version (a backslash before a
 * quote in a plain string, a number followed by a letter) it refuses rather than guess.
 * Pure: no database, no allocation that outlives the call. */
#pragma once

#include <stddef.h>

typedef enum SqlFragError {
        SQLFRAG_OK = 0,
        SQLFRAG_EMPTY,                   /* nothing but white space */
        SQLFRAG_CLOSE_UNOPENED,          /* ')' closes a parenthesis the fragment did not open */
        SQLFRAG_UNCLOSED_PAREN,          /* '(' never closed */
        SQLFRAG_CLOSE_UNOPENED_BRACKET,  /* ']' without '[' */
        SQLFRAG_UNCLOSED_BRACKET,        /* '[' never closed */
        SQLFRAG_SEMICOLON,               /* ';' outside a string */
        SQLFRAG_COMMENT,                 /* '--' or '/' '*' outside a string */
        SQLFRAG_TOP_LEVEL_COMMA,         /* ',' outside every parenthesis and bracket */
        SQLFRAG_PARAMETER,               /* $1 */
        SQLFRAG_UNTERMINATED_STRING,     /* '... or E'... */
        SQLFRAG_UNTERMINATED_IDENTIFIER, /* "... */
        SQLFRAG_UNTERMINATED_DOLLAR,     /* $$... or $tag$... */
        SQLFRAG_BACKSLASH_QUOTE,         /* \' in a plain string: its end depends on standard_conforming_strings */
        SQLFRAG_NUMBER_JUNK,             /* 1e'...', 0x1F, 12abc: read differently by different versions */
        _SQLFRAG_MAX,
} SqlFragError;

/* Checks s (NUL-terminated). Returns SQLFRAG_OK, or the first problem with *offset the byte
 * offset in s of the character it is about (offset may be NULL). */
SqlFragError sqlfrag_check(const char *s, size_t *offset);

/* A short phrase for messages, lower case, no period: "closes a parenthesis it did not open". */
const char *sqlfrag_error_to_string(SqlFragError e);
/* A full sentence saying how to fix it (for a HINT). */
const char *sqlfrag_error_hint(SqlFragError e);
