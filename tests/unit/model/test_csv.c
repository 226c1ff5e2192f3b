/* fr_model_predict_csv (`freshet predict --csv`): output parses back to the exact expected values;
 * bad input names the column or the line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"
#include "model_test_util.h"

static char *run_csv(fr_model_t *m, const char *csv, int *rc, const char **why)
{
    FILE *in = fmemopen((void *)csv, strlen(csv), "r");
    char *out = NULL;
    size_t out_len = 0;
    FILE *o = open_memstream(&out, &out_len);
    *rc = fr_model_predict_csv(m, in, o, why);
    fclose(in);
    fclose(o);
    return out;
}

static void check_fixture(const char *name, unsigned n_expected, int f64)
{
    fr_model_t *m = mt_compile_fixture(name, NULL);
    uint32_t k = fr_model_n_outputs(m);
    char *csv = mt_read_fixture(name, ".csv", NULL);
    char *exp = mt_read_fixture(name, ".expected", NULL);
    const char *why = NULL;
    int rc;
    char *out = run_csv(m, csv, &rc, &why);
    cr_assert_eq(rc, FR_OK, "%s: %s", name, why);
    char *save = NULL, *line = strtok_r(out, "\n", &save);
    cr_assert_str_eq(line, k == 1 ? "margin,prob"
                           : fr_model_objective(m) == FR_MODEL_OBJ_MULTI_SOFTMAX
                               ? "margin_0,margin_1,margin_2,prob_0,prob_1,prob_2,class"
                               : "margin_0,margin_1,margin_2,margin_3,prob_0,prob_1,prob_2,prob_3");
    char *ep = exp;
    size_t rows = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *p = line;
        for (unsigned i = 0; i < n_expected; i++) {
            char *end;
            uint64_t want = strtoull(ep, &end, 16), got;
            ep = end;
            if (f64) {
                double d = strtod(p, &end);
                memcpy(&got, &d, 8);
            } else {
                float f = strtof(p, &end);
                uint32_t u;
                memcpy(&u, &f, 4);
                got = u;
            }
            cr_assert_eq(got, want, "%s row %zu value %u: '%s'", name, rows, i, line);
            p = end + (*end == ',');
        }
        if (f64)
            strtoull(ep, &ep, 16), strtoull(ep, &ep, 16); /* skip the sklearn columns */
        rows++;
    }
    cr_assert_gt(rows, 100);
    free(out), free(csv), free(exp);
    fr_model_free(m);
}

Test(csv, output_round_trips_to_the_exact_predictions)
{
    check_fixture("bin_logistic_d6_t100_bs03", 2, 0);
    check_fixture("bin_logistic_extreme", 2, 0);
    check_fixture("reg_sqerr_d5_t60", 2, 0); /* prob repeats the prediction */
    check_fixture("multi_softprob_d3_t25_k4", 8, 0);
    check_fixture("linear_logistic", 2, 1);
}

Test(csv, columns_in_any_order_and_empty_is_missing)
{
    fr_model_t *m = mt_compile_fixture("linear_regression", NULL);
    const char *why;
    int rc;
    char *a = run_csv(m, "x0,x1,x2,x3,x4,x5\n1,2,,4,5,6\r\n\n", &rc, &why);
    cr_assert_eq(rc, FR_OK, "%s", why);
    char *b = run_csv(m, "x5,x4,x3,x2,x1,x0\n6,5,4,,2,1\n", &rc, &why);
    cr_assert_eq(rc, FR_OK, "%s", why);
    cr_assert_str_eq(a, b);
    double x[6] = {1, 2, NAN, 4, 5, 6}, mg, pr;
    char want[128];
    fr_model_predict_row_f64(m, x, &mg, &pr);
    snprintf(want, sizeof want, "margin,prob\n%.17g,%.17g\n", mg, pr);
    cr_assert_str_eq(a, want);
    free(a), free(b);
    fr_model_free(m);
}

Test(csv, errors_name_the_column_or_line)
{
    static const struct {
        const char *csv, *needle;
    } cases[] = {
        {"x0,x1,x2,x3,x4,x5,bogus\n", "'bogus'"},
        {"x0,x1,x2,x3,x4\n", "missing column 'x5'"},
        {"x0,x1,x2,x3,x4,x0\n", "duplicate column 'x0'"},
        {"x0,x1,x2,x3,x4,x5\n1,2,3,4,5,6\n1,2,3,4,5\n", "line 3"},
        {"x0,x1,x2,x3,x4,x5\n1,2,3,4,5,6\n\n1,2,3,abc,5,6\n", "line 4"},
        {"x0,x1,x2,x3,x4,x5\n1,2,3,4,5,6x\n", "line 2"},
        {"", "empty"},
    };
    fr_model_t *m = mt_compile_fixture("linear_regression", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *why = NULL;
        int rc;
        char *out = run_csv(m, cases[i].csv, &rc, &why);
        cr_assert_eq(rc, FR_E_BAD_ARG, "case %zu", i);
        cr_assert(strstr(why, cases[i].needle), "case %zu: '%s'", i, why);
        free(out);
    }
    fr_model_free(m);
}
