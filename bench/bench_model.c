/* bench_model: Freshet model evaluation vs libxgboost's C API (XGBoosterPredictFromDense, nthread 1)
 * on the same rows: single-row and 100-row batch latency per row, plus a bit-exactness check of every
 * benchmarked row. Prints one JSON line per workload. Models come from bench/gen_bench_models.py.
 * Usage: bench_model MODEL.json [MODEL.json...] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xgboost/c_api.h>

#include "freshet/model.h"

#define N_ROWS 1000
#define BATCH 100
#define SINGLE_ITERS 20000
#define BATCH_ITERS 1000

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts t and returns the q-quantile. */
static double quantile(uint64_t *t, size_t n, double q)
{
    qsort(t, n, sizeof *t, cmp_u64);
    size_t i = (size_t)(q * (double)(n - 1));
    return (double)t[i];
}

static uint32_t rng_state = 12345;
static double rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) / 16777216.0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* XGBoost inplace prediction of n rows (transformed output, all trees). */
static const float *xgb_predict(BoosterHandle h, const float *x, size_t n, uint32_t nf)
{
    char iface[256];
    static const char cfg[] = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                              "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, "
                              "\"cache_id\": 0}";
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    snprintf(iface, sizeof iface,
             "{\"data\": [%llu, true], \"shape\": [%zu, %u], \"typestr\": \"<f4\", \"version\": 3}",
             (unsigned long long)(uintptr_t)x, n, nf);
    if (XGBoosterPredictFromDense(h, iface, cfg, NULL, &shape, &dim, &out) != 0) {
        fprintf(stderr, "bench_model: xgboost: %s\n", XGBGetLastError());
        exit(1);
    }
    return out;
}

static void report(const char *model, const char *workload, uint64_t *fr, uint64_t *xg, size_t n,
                   double per, int exact, size_t checked)
{
    double frm = quantile(fr, n, 0.5) / per, fr99 = quantile(fr, n, 0.99) / per;
    double xgm = quantile(xg, n, 0.5) / per, xg99 = quantile(xg, n, 0.99) / per;
    printf("{\"bench\":\"model\",\"model\":\"%s\",\"workload\":\"%s\",\"freshet_median_ns_per_row\":%.1f,"
           "\"freshet_p99_ns_per_row\":%.1f,\"xgboost_median_ns_per_row\":%.1f,"
           "\"xgboost_p99_ns_per_row\":%.1f,\"speedup_median\":%.2f,\"speedup_p99\":%.2f,"
           "\"bit_exact\":%s,\"rows_checked\":%zu}\n",
           model, workload, frm, fr99, xgm, xg99, xgm / frm, xg99 / fr99, exact ? "true" : "false",
           checked);
    fflush(stdout);
}

static int bench_one(const char *path)
{
    size_t len, art_len;
    char *json = read_file(path, &len), why[256] = "";
    uint8_t *art = NULL;
    fr_model_t *m = NULL;
    BoosterHandle h;
    if (!json || fr_model_compile(json, len, NULL, 0, &art, &art_len, why, sizeof why) != FR_OK ||
        fr_model_load_mem(art, art_len, &m, NULL) != FR_OK) {
        fprintf(stderr, "bench_model: %s: cannot compile/load: %s\n", path, why);
        return 1;
    }
    if (XGBoosterCreate(NULL, 0, &h) != 0 || XGBoosterLoadModel(h, path) != 0 ||
        XGBoosterSetParam(h, "nthread", "1") != 0) {
        fprintf(stderr, "bench_model: xgboost: %s\n", XGBGetLastError());
        return 1;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    uint32_t nf = fr_model_n_features(m);
    float *x = malloc((size_t)N_ROWS * nf * sizeof *x), mg[BATCH], pr[BATCH];
    for (size_t i = 0; i < (size_t)N_ROWS * nf; i++)
        x[i] = rnd() < 0.1 ? NAN : (float)((rnd() - 0.5) * 6.0);

    /* Bit-exactness of every row benchmarked, single and batch. */
    int exact = 1;
    const float *ref = xgb_predict(h, x, N_ROWS, nf);
    float *refc = malloc(N_ROWS * sizeof *refc);
    memcpy(refc, ref, N_ROWS * sizeof *refc);
    for (size_t r = 0; r < N_ROWS; r++) {
        fr_model_predict_row(m, x + r * nf, mg, pr);
        exact &= memcmp(&pr[0], &refc[r], 4) == 0;
    }
    for (size_t r = 0; r + BATCH <= N_ROWS; r += BATCH) {
        fr_model_predict_batch(m, x + r * nf, BATCH, mg, pr);
        exact &= memcmp(pr, refc + r, BATCH * 4) == 0;
        const float *one = xgb_predict(h, x + r * nf, 1, nf);
        exact &= memcmp(one, refc + r, 4) == 0;
    }

    uint64_t *tf = malloc(SINGLE_ITERS * sizeof *tf), *tx = malloc(SINGLE_ITERS * sizeof *tx);
    volatile float sink = 0;
    /* Each side runs its own loop so neither evicts the other's caches mid-measurement. */
    for (int i = 0; i < SINGLE_ITERS; i++) {
        const float *row = x + (size_t)(i % N_ROWS) * nf;
        uint64_t t0 = now_ns();
        fr_model_predict_row(m, row, mg, pr);
        tf[i] = now_ns() - t0;
        sink = sink + pr[0];
    }
    for (int i = 0; i < SINGLE_ITERS; i++) {
        const float *row = x + (size_t)(i % N_ROWS) * nf;
        uint64_t t0 = now_ns();
        const float *o = xgb_predict(h, row, 1, nf);
        tx[i] = now_ns() - t0;
        sink = sink + o[0];
    }
    report(name, "single_row", tf, tx, SINGLE_ITERS, 1.0, exact, N_ROWS);
    for (int i = 0; i < BATCH_ITERS; i++) {
        const float *rows = x + (size_t)(i % (N_ROWS / BATCH)) * BATCH * nf;
        uint64_t t0 = now_ns();
        fr_model_predict_batch(m, rows, BATCH, mg, pr);
        tf[i] = now_ns() - t0;
        sink = sink + pr[0];
    }
    for (int i = 0; i < BATCH_ITERS; i++) {
        const float *rows = x + (size_t)(i % (N_ROWS / BATCH)) * BATCH * nf;
        uint64_t t0 = now_ns();
        const float *o = xgb_predict(h, rows, BATCH, nf);
        tx[i] = now_ns() - t0;
        sink = sink + o[0];
    }
    report(name, "batch_100", tf, tx, BATCH_ITERS, BATCH, exact, N_ROWS);
    free(tf), free(tx), free(x), free(refc), free(art), free(json);
    XGBoosterFree(h);
    fr_model_free(m);
    return exact ? 0 : 2;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_model MODEL.json... (see bench/gen_bench_models.py)\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        rc |= bench_one(argv[i]);
    return rc;
}
