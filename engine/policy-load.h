/* policy-load.h — policy files (YAML) to a validated Policy, every problem located.
 * The loader only reads files and builds the model; it never talks to PostgreSQL and
 * never prints: problems go into a Diagnostics collection for the caller to show. */
#pragma once

#include <stddef.h>

#include "diag.h"
#include "policy.h"

#define POLICY_FILE_SIZE_MAX (UINT32_C(4) * 1024 * 1024) /* bytes per policy file */
#define POLICY_DEPTH_MAX 64                             /* nesting of mappings and sequences */

/* Loads every path (a file, or a directory whose non-hidden regular *.yaml files are read in
 * strcmp order) into one Policy. All problems of all files are collected in `diags` (errors
 * and warnings, sorted by file then position). `defaults:` applies to the rules of the file it
 * is in; names of rules, holds and subjects are unique across all files.
 * Returns 0 and *ret on success (warnings may still be present). On failure *ret is untouched
 * and the result is negative: -EINVAL for an invalid policy, -ENOENT when an input is missing
 * (or a directory holds no policy files), -EACCES when one cannot be read for permissions. */
int policy_load(char *const *paths, size_t n_paths, Policy **ret, Diagnostics *diags);

/* The same for one in-memory file; `filename` is only used in messages. */
int policy_load_string(const char *filename, const char *text, size_t len, Policy **ret, Diagnostics *diags);

/* The exit code that fits a policy_load() result: 0 (EXIT_OK) on success, 66 (EXIT_NOINPUT) or
 * 77 (EXIT_NOPERM) when the first I/O problem was a missing input or a permission problem,
 * otherwise 65 (EXIT_POLICY). */
int policy_load_exit_code(int r, const Diagnostics *diags);
