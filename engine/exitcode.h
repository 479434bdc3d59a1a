/* exitcode.h — the process exit codes, from sysexits.h, in one place.
 * Documented in the README and retentiond(8); changing one is an interface change. Never
 * returned by a function that talks to the database: only commands map to them. */
#pragma once

#include <sysexits.h>

enum {
        EXIT_OK = 0,
        EXIT_ATTENTION = 1,            /* ran, but something needs attention (command-specific) */
        EXIT_USAGE = EX_USAGE,         /* 64 */
        EXIT_POLICY = EX_DATAERR,      /* 65: invalid policy */
        EXIT_NOINPUT = EX_NOINPUT,     /* 66: input not found */
        EXIT_UNAVAILABLE = EX_UNAVAILABLE, /* 69: database unavailable */
        EXIT_SOFTWARE = EX_SOFTWARE,   /* 70: internal error */
        EXIT_TEMPFAIL = EX_TEMPFAIL,   /* 75: temporary failure (e.g. another run holds the lock) */
        EXIT_NOPERM = EX_NOPERM,       /* 77: permission denied */
        EXIT_CONFIG = EX_CONFIG,       /* 78: configuration error */
};
