/* src/model: compile every fixture model in-process, evaluate every scoring row and compare with the
 * predictions XGBoost 1.7 (or scikit-learn) produced, bit for bit. Fixtures come from
 * gen_fixtures.py; see its docstring for the file formats. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/model.h"
#include "model_test_util.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Parses the fixture CSV into n_rows x n_features doubles, in model feature order (the fixture
 * header is the model's own order). */
static double *read_rows(const char *name, uint32_t nf, size_t *n_rows)
{
    char *csv = mt_read_fixture(name, ".csv", NULL);
    size_t cap = 1024, n = 0;
    double *x = malloc(cap * nf * sizeof *x);
    char *save = NULL, *line = strtok_r(csv, "\n", &save); /* header */
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (n == cap)
            x = realloc(x, (cap *= 2) * nf * sizeof *x);
        char *p = line;
        for (uint32_t i = 0; i < nf; i++) {
            char *end = p;
            x[n * nf + i] = (*p == ',' || *p == 0) ? NAN : strtod(p, &end);
            p = end;
            if (*p == ',')
                p++;
        }
        n++;
    }
    free(csv);
    *n_rows = n;
    return x;
}

/* Reads the expected file: per row `count` hex words. */
static uint64_t *read_expected(const char *name, size_t n_rows, size_t count)
{
    char *txt = mt_read_fixture(name, ".expected", NULL);
    uint64_t *e = malloc(n_rows * count * sizeof *e);
    char *p = txt;
    for (size_t i = 0; i < n_rows * count; i++) {
        char *end;
        e[i] = strtoull(p, &end, 16);
        cr_assert(end != p, "%s.expected: short at value %zu", name, i);
        p = end;
    }
    free(txt);
    return e;
}

static size_t check_tree_model(const mt_fixture_t *fx)
{
    fr_model_t *m = mt_compile_fixture(fx->name, NULL);
    uint32_t nf = fr_model_n_features(m), k = fr_model_n_outputs(m);
    size_t n_rows;
    double *xd = read_rows(fx->name, nf, &n_rows);
    uint64_t *exp = read_expected(fx->name, n_rows, fx->n_margins + fx->n_preds);
    float *xf = malloc(n_rows * nf * sizeof *xf), *bm = malloc(n_rows * k * sizeof *bm),
          *bp = malloc(n_rows * k * sizeof *bp), mg[64], pr[64];
    double mgd[64], prd[64];
    cr_assert_eq(k, fx->n_margins, "%s: outputs", fx->name);
    for (size_t i = 0; i < n_rows * nf; i++)
        xf[i] = (float)xd[i]; /* what numpy's astype(float32) does */
    fr_model_predict_batch(m, xf, n_rows, bm, bp);
    for (size_t r = 0; r < n_rows; r++) {
        const uint64_t *e = exp + r * (fx->n_margins + fx->n_preds);
        fr_model_predict_row(m, xf + r * nf, mg, pr);
        fr_model_predict_row_f64(m, xd + r * nf, mgd, prd);
        for (uint32_t g = 0; g < k; g++) {
            cr_assert_eq(f32_bits(mg[g]), (uint32_t)e[g], "%s row %zu margin %u: got %.9g want %08x",
                         fx->name, r, g, (double)mg[g], (unsigned)e[g]);
            cr_assert_eq(f32_bits(bm[r * k + g]), f32_bits(mg[g]), "%s row %zu: batch", fx->name, r);
            cr_assert_eq(f32_bits((float)mgd[g]), f32_bits(mg[g]), "%s row %zu: f64", fx->name, r);
            cr_assert_eq(f32_bits(bp[r * k + g]), f32_bits(pr[g]), "%s row %zu: batch", fx->name, r);
            cr_assert_eq(f32_bits((float)prd[g]), f32_bits(pr[g]), "%s row %zu: f64", fx->name, r);
        }
        if (fr_model_objective(m) == FR_MODEL_OBJ_MULTI_SOFTMAX) {
            float cls = (float)fr_model_argmax(m, mg);
            cr_assert_eq(f32_bits(cls), (uint32_t)e[k], "%s row %zu class", fx->name, r);
            continue;
        }
        for (uint32_t g = 0; g < fx->n_preds; g++)
            cr_assert_eq(f32_bits(pr[g]), (uint32_t)e[k + g], "%s row %zu pred %u: got %.9g want %08x",
                         fx->name, r, g, (double)pr[g], (unsigned)e[k + g]);
    }
    free(xd), free(exp), free(xf), free(bm), free(bp);
    fr_model_free(m);
    return n_rows;
}

static size_t check_linear_model(const mt_fixture_t *fx)
{
    fr_model_t *m = mt_compile_fixture(fx->name, NULL);
    uint32_t nf = fr_model_n_features(m);
    size_t n_rows;
    double *x = read_rows(fx->name, nf, &n_rows);
    uint64_t *exp = read_expected(fx->name, n_rows, 4);
    char *txt = mt_read_fixture(fx->name, ".json", NULL);
    json_t *js = json_loads(txt, 0, NULL);
    json_t *w = json_object_get(js, "weights"), *fill = json_object_get(js, "missing_fill");
    cr_assert_not_null(js);
    for (size_t r = 0; r < n_rows; r++) {
        double mg, pr, sk[2];
        double tol_scale = fabs(json_number_value(json_object_get(js, "bias")));
        const uint64_t *e = exp + r * 4;
        fr_model_predict_row_f64(m, x + r * nf, &mg, &pr);
        uint64_t mb, pb;
        memcpy(&mb, &mg, 8);
        memcpy(&pb, &pr, 8);
        /* (a) exact: same formula, same summation order, same libm exp as the generator. */
        cr_assert_eq(mb, e[0], "%s row %zu margin %.17g", fx->name, r, mg);
        cr_assert_eq(pb, e[1], "%s row %zu prob %.17g", fx->name, r, pr);
        /* (b) scikit-learn's own pipeline output: folding the scaler into the weights changes the
         * rounding (the values differ in the last bits), so compare within 1e-12 relative to the
         * magnitude of the terms being summed: relative to the result itself would be meaningless
         * when the terms cancel. The probability is bounded by the same (sigmoid' <= 1/4). */
        memcpy(sk, e + 2, 16);
        for (uint32_t i = 0; i < nf; i++) {
            double v = x[r * nf + i];
            tol_scale += fabs(json_number_value(json_array_get(w, i)) *
                              (isnan(v) ? json_number_value(json_array_get(fill, i)) : v));
        }
        cr_assert(fabs(mg - sk[0]) <= 1e-12 * tol_scale, "%s row %zu: %.17g vs sklearn %.17g",
                  fx->name, r, mg, sk[0]);
        cr_assert(fabs(pr - sk[1]) <= 1e-12 * tol_scale, "%s row %zu prob vs sklearn", fx->name, r);
    }
    free(x), free(exp), free(txt);
    json_decref(js);
    fr_model_free(m);
    return n_rows;
}

Test(model, fixtures_bit_exact_with_xgboost_and_sklearn)
{
    size_t n;
    mt_fixture_t *fx = mt_manifest(&n);
    size_t models = 0, rows = 0;
    for (size_t i = 0; i < n; i++) {
        rows += strcmp(fx[i].kind, "trees") == 0 ? check_tree_model(&fx[i]) : check_linear_model(&fx[i]);
        models++;
    }
    cr_assert_geq(models, 15);
    cr_log_info("compared %zu models, %zu rows", models, rows);
    fprintf(stderr, "model fixtures: %zu models, %zu rows compared bit for bit\n", models, rows);
    free(fx);
}

Test(model, accessors_and_feature_map)
{
    const char *map = "{\"amount\": \"tx:amount\", \"age_days\": \"user:age_days\"}";
    fr_model_t *m = mt_compile_fixture("bin_logistic_d8_t20_lossguide", map);
    cr_assert_eq(fr_model_kind(m), FR_MODEL_KIND_TREES);
    cr_assert_eq(fr_model_objective(m), FR_MODEL_OBJ_BINARY_LOGISTIC);
    cr_assert_str_eq(fr_model_objective_name(m), "binary:logistic");
    cr_assert_eq(fr_model_n_features(m), 8);
    cr_assert_eq(fr_model_n_outputs(m), 1);
    cr_assert_eq(fr_model_n_classes(m), 2);
    cr_assert_eq(fr_model_n_trees(m), 20);
    cr_assert_str_eq(fr_model_feature_name(m, 0), "amount");
    cr_assert_str_eq(fr_model_feature_binding(m, 0), "tx:amount");
    cr_assert_str_eq(fr_model_feature_binding(m, 1), "user:age_days");
    cr_assert_null(fr_model_feature_binding(m, 2));
    cr_assert_null(fr_model_feature_name(m, 8));
    cr_assert_eq(fr_model_feature_index(m, "country_risk"), 4);
    cr_assert_eq(fr_model_feature_index(m, "nope"), -1);
    fr_model_free(m);
    m = mt_compile_fixture("multi_softprob_d3_t25_k4", NULL);
    cr_assert_eq(fr_model_n_outputs(m), 4);
    cr_assert_eq(fr_model_n_classes(m), 4);
    cr_assert_str_eq(fr_model_feature_name(m, 3), "f3");
    fr_model_free(m);
    m = mt_compile_fixture("linear_logistic", NULL);
    cr_assert_eq(fr_model_kind(m), FR_MODEL_KIND_LINEAR);
    cr_assert_str_eq(fr_model_objective_name(m), "logistic");
    cr_assert_eq(fr_model_n_trees(m), 0);
    fr_model_free(m);
}

Test(model, bad_feature_maps_are_refused)
{
    static const char *bad[] = {"[1]", "{\"nope\": \"v:f\"}", "{\"amount\": \"no_colon\"}",
                                "{\"amount\": \":f\"}", "{\"amount\": 3}", "{\"amount\": \"a:b\","
                                "\"amount\": \"a:c\"}", "{"};
    size_t len;
    char *json = mt_read_fixture("bin_logistic_d8_t20_lossguide", ".json", &len);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *art = NULL;
        size_t art_len;
        char why[256] = "";
        fr_err_t rc = fr_model_compile(json, len, bad[i], strlen(bad[i]), &art, &art_len, why, sizeof why);
        cr_assert_eq(rc, FR_E_BAD_MODEL, "map %s: rc %d", bad[i], rc);
        cr_assert(why[0] && !art);
    }
    free(json);
}

Test(model, unsupported_models_are_refused_naming_the_feature)
{
    static const struct {
        const char *name, *needle;
    } cases[] = {
        {"refuse_dart", "dart"},
        {"refuse_gblinear", "gblinear"},
        {"refuse_rank_pairwise", "rank:pairwise"},
        {"refuse_count_poisson", "count:poisson"},
        {"refuse_unknown_objective", "reg:made_up"},
        {"refuse_categorical", "categorical"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len, art_len;
        char *json = mt_read_fixture(cases[i].name, ".json", &len);
        uint8_t *art = NULL;
        char why[512] = "";
        fr_err_t rc = fr_model_compile(json, len, NULL, 0, &art, &art_len, why, sizeof why);
        cr_assert_eq(rc, FR_E_UNSUPPORTED, "%s: rc %s (%s)", cases[i].name, fr_err_name(rc), why);
        cr_assert(strstr(why, cases[i].needle), "%s: reason '%s' lacks '%s'", cases[i].name, why,
                  cases[i].needle);
        cr_assert_null(art);
        free(json);
    }
}

Test(model, malformed_model_json_is_bad_model)
{
    static const char *bad[] = {
        "", "{", "[]", "{\"learner\": 1}", "{\"type\": \"linear\"}",
        "{\"type\": \"logistic\", \"n_features\": 1, \"feature_names\": [\"a\"], \"weights\": [1],"
        " \"bias\": 0, \"link\": \"identity\"}",
        "{\"type\": \"linear\", \"n_features\": 2, \"feature_names\": [\"a\", \"a\"],"
        " \"weights\": [1, 2], \"bias\": 0}",
        "{\"type\": \"linear\", \"n_features\": 1, \"feature_names\": [\"a\"], \"weights\": [\"x\"],"
        " \"bias\": 0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *art = NULL;
        size_t art_len;
        char why[256] = "";
        fr_err_t rc = fr_model_compile(bad[i], strlen(bad[i]), NULL, 0, &art, &art_len, why, sizeof why);
        cr_assert_eq(rc, FR_E_BAD_MODEL, "case %zu: %s", i, fr_err_name(rc));
        cr_assert(why[0]);
    }
}
