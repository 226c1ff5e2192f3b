/* freshet-infer's command line (src/infer/config.c): one table of flags with bounds. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "freshet/err.h"
#include "infer/infer.h"

static int parse(fr_infer_config_t *c, const char *flag, const char *value, char *why, size_t n)
{
    char *argv[] = {"freshet-infer", "--model", "m.frm", (char *)flag, (char *)value};
    return fr_infer_config_parse(c, 5, argv, stdout, why, n);
}

/* Regression: numbers went through strtoll, which skips leading blanks and takes a '+', so
 * `--threads " 2"` and `--max-missing +3` were accepted. A '-' is taken only by a flag whose
 * range goes below 0 (max_missing's -1: never). */
Test(infer_config, integer_flags_are_digits_only_with_a_minus_only_where_negatives_are_valid)
{
    fr_infer_config_t c;
    char why[256] = "";
    const char *bad[] = {" 2", "+2", "2 ", "0x2", "-2", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse(&c, "--threads", bad[i], why, sizeof why), FR_E_BAD_ARG,
                     "--threads \"%s\" was accepted as %lld", bad[i], (long long)c.threads);
        char expect[64];
        snprintf(expect, sizeof expect, "threads: \"%s\" is not an integer", bad[i]);
        cr_assert(strstr(why, expect) && strstr(why, "digits only"), "%s", why);
    }
    cr_assert_eq(parse(&c, "--max-missing", "+3", why, sizeof why), FR_E_BAD_ARG);
    cr_assert(strstr(why, "max_missing: \"+3\" is not an integer in [-1, 1048576]"), "%s", why);
    cr_assert_eq(parse(&c, "--max-missing", " -1", why, sizeof why), FR_E_BAD_ARG);
    cr_assert_eq(parse(&c, "--max-missing", "-1", why, sizeof why), FR_OK, "%s", why);
    cr_assert_eq(c.max_missing, -1);
    cr_assert_eq(parse(&c, "--max-missing", "-2", why, sizeof why), FR_E_BAD_ARG);
    cr_assert(strstr(why, "max_missing: -2 is outside [-1, 1048576]"), "%s", why);
    cr_assert_eq(parse(&c, "--threads", "3", why, sizeof why), FR_OK, "%s", why);
    cr_assert_eq(c.threads, 3);
}
