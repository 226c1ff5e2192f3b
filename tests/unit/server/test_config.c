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
