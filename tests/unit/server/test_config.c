/* freshetd's command line (src/server/config.c): a config file named by --config FILE or
 * --config=FILE is read before the flags, which override it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "server/config.h"

static char conf_path[64];

static void write_conf(void)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/fr_config_test_XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("threads = 3\nslow_ms = 7\n", f);
    fclose(f);
}

static int parse(fr_config_t *c, char **argv, int argc, char *why, size_t n)
{
    fr_config_defaults(c);
    return fr_config_parse_args(c, argc, argv, why, n);
}

/* Regression: --config=FILE was skipped by both passes (the file silently not read), and so was
 * a --config with no value: a config holding auth_file or tls_* written that way left the server
 * running without them. */
Test(config, both_spellings_of_config_read_the_file_and_a_missing_value_is_an_error)
{
    write_conf();
    fr_config_t c;
    char why[256] = "", eqarg[96];
    snprintf(eqarg, sizeof eqarg, "--config=%s", conf_path);
    char *eq_form[] = {"freshetd", eqarg};
    cr_assert_eq(parse(&c, eq_form, 2, why, sizeof why), FR_OK, "%s", why);
    cr_assert_eq(c.threads, 3, "--config=FILE is read");
    cr_assert_eq(c.slow_ms, 7);
    char *sep_form[] = {"freshetd", "--config", conf_path, "--threads", "5"};
    cr_assert_eq(parse(&c, sep_form, 5, why, sizeof why), FR_OK, "%s", why);
    cr_assert_eq(c.threads, 5, "a flag overrides the file");
    cr_assert_eq(c.slow_ms, 7);
    char *bare[] = {"freshetd", "--threads", "2", "--config"};
    cr_assert_eq(parse(&c, bare, 4, why, sizeof why), FR_E_BAD_ARG, "a bare --config");
    cr_assert(strstr(why, "--config"), "%s", why);
    char *empty[] = {"freshetd", "--config="};
    cr_assert_eq(parse(&c, empty, 2, why, sizeof why), FR_E_BAD_ARG, "--config= with no path");
    char *missing[] = {"freshetd", "--config=/nonexistent/freshet.conf"};
    cr_assert_neq(parse(&c, missing, 2, why, sizeof why), FR_OK, "a config file that is not there");
    /* a flag's value is never taken for --config */
    char *as_value[] = {"freshetd", "--log-level", "--config"};
    cr_assert_neq(parse(&c, as_value, 3, why, sizeof why), FR_OK);
    unlink(conf_path);
}

/* Regression: numbers went through strtoll, which skips leading blanks and takes a '+', so
 * `--threads " 4"` and `threads = +4` were read as 4. Every int key now takes digits only (none
 * of freshetd's ranges goes below 0) and the refusal names the key and the value. */
Test(config, integer_values_are_digits_only_and_the_refusal_names_the_key_and_value)
{
    const char *bad[] = {" 4", "+4", "\t4", "4 ", "-4", "-0", "0x4", "4x", "", "-",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_config_t c;
        char why[256] = "";
        fr_config_defaults(&c);
        cr_assert_eq(fr_config_set(&c, "threads", bad[i], why, sizeof why), FR_E_BAD_ARG,
                     "threads = \"%s\" was accepted as %lld", bad[i], (long long)c.threads);
        char expect[64];
        snprintf(expect, sizeof expect, "threads: \"%s\" is not an integer", bad[i]);
        cr_assert(strstr(why, expect) && strstr(why, "digits only"), "%s", why);
        cr_assert_eq(c.threads, 2, "the default stays");
    }
    fr_config_t c;
    char why[256] = "";
    fr_config_defaults(&c);
    cr_assert_eq(fr_config_set(&c, "threads", "04", why, sizeof why), FR_OK, "%s", why);
    cr_assert_eq(c.threads, 4);
    cr_assert_eq(fr_config_set(&c, "threads", "65", why, sizeof why), FR_E_BAD_ARG);
    cr_assert(strstr(why, "threads: 65 is outside [1, 64]"), "%s", why);
    /* the same through a flag and through the file, whose blanks around '=' stay syntax */
    char *flag[] = {"freshetd", "--slow-ms=+5"};
    cr_assert_eq(parse(&c, flag, 2, why, sizeof why), FR_E_BAD_ARG);
    cr_assert(strstr(why, "slow_ms: \"+5\""), "%s", why);
    snprintf(conf_path, sizeof conf_path, "/tmp/fr_config_test_XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("threads =   3  \nslow_ms = +7\n", f);
    fclose(f);
    char arg[96];
    snprintf(arg, sizeof arg, "--config=%s", conf_path);
    char *file[] = {"freshetd", arg};
    cr_assert_eq(parse(&c, file, 2, why, sizeof why), FR_E_BAD_ARG);
    cr_assert(strstr(why, ":2: slow_ms: \"+7\" is not an integer"), "%s", why);
    unlink(conf_path);
}
