/* cmd-pending.c — commands whose implementation has not landed yet. Temporary. */
#include <stdio.h>

#include "cli.h"
#include "exitcode.h"

#define PENDING(name)                                                                   \
        int cmd_##name(Cli *cli) {                                                      \
                (void) cli;                                                             \
                fprintf(stderr, "retentiond: command \"" #name "\" is not implemented yet\n"); \
                return EXIT_SOFTWARE;                                                   \
        }

