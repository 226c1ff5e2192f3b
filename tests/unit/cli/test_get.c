/* `freshet get` (src/cli/get.c) before it connects: its flags and their allocations. */
#include <criterion/criterion.h>

#include "cli/cli.h"
#include "common/fault.h"

/* Parses everything, then stops at the usage check (--format xml) without a server. */
static int run_get(void)
{
    char *argv[] = {"--entities", "a,b",       "--entity", "k=x", "--features",
                    "v:f",        "--features", "v:f,v:g",  "--format", "xml"};
    fr_cli_ctx_t ctx = {.server = "127.0.0.1:1", .argc = 10, .argv = argv};
    return fr_cli_get(&ctx);
}

/* Regression: the strdup and calloc of --entity/--entities and the strdup of --features were
 * used unchecked (a NULL strchr'd or written through). Each allocation failing now exits 1 with
 * NOMEM, leaking nothing (ASan); a repeated --features no longer leaks the first copy. */
Test(cli_get, every_allocation_that_fails_exits_cleanly_with_nomem)
{
    cr_assert_eq(run_get(), 2, "no fault: the usage error after parsing");
    /* feats, then copy + values per entity list, then one copy per --features */
    for (long nth = 1; nth <= 7; nth++) {
        fr_fault_arm(FR_FAULT_ALLOC, nth, 0);
        int ex = run_get();
        long injected = fr_fault_injected();
        fr_fault_disarm();
        cr_assert_eq(injected, 1, "allocation %ld is not made through fr_* (fault not injected)",
                     nth);
        cr_assert_eq(ex, 1, "allocation %ld failing: exit %d, not 1 (NOMEM)", nth, ex);
    }
    fr_fault_arm(FR_FAULT_ALLOC, 8, 0);
    cr_assert_eq(run_get(), 2, "seven allocations in all");
    cr_assert_eq(fr_fault_injected(), 0);
    fr_fault_disarm();
}
