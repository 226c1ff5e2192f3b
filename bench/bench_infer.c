/* bench_infer: end-to-end latency of a Score request (client -> freshet-infer -> freshetd -> model
 * -> client) on loopback, for 1 and 100 entities, with the server-reported breakdown (fetch from
 * freshetd vs model evaluation) and, as the baseline in the same run, a direct freshetd Get of the
 * same features for the same entities (what the fetch alone costs from a client). One JSON line
 * per measurement on stdout.
 *
 *   bench_infer --infer ADDR --freshetd ADDR [--load VIEWS.json] [--cards N] [--merchants M]
 *               [--iters N] [--warmup W] [--seed S] [--load-only 1]
 *
 * --load applies VIEWS.json (examples/fraud/views.json) and writes N cards and M merchants first;
 * with --load-only 1 it stops there (freshet-infer checks its bindings at startup, so data and
 * views come first). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "freshet/client.h"
#include "freshet/infer.h"

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(int64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int die(const char *what, fr_client_t *c, int rc)
{
    fprintf(stderr, "bench_infer: %s: %s %s\n", what, fr_err_name(rc), c ? fr_client_error(c) : "");
    return 1;
}

static int load(const char *addr, const char *views, size_t cards, size_t merchants)
{
    fr_client_t *c;
    int rc = fr_client_connect(addr, 30000, &c);
    if (rc != FR_OK)
        return die("connect freshetd", NULL, rc);
    FILE *f = fopen(views, "rb");
    if (!f)
        return fprintf(stderr, "bench_infer: cannot open %s\n", views), 1;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fr_apply_result_t ar;
    if ((rc = fr_client_apply(c, buf, n, false, &ar)) != FR_OK)
        return die("apply", c, rc);
    int64_t ts = wall_us() - 1000000;
    enum { B = 1000 };
    fr_put_row_t rows[B];
    fr_value_t vals[B][5];
    char ids[B][32];
    for (size_t done = 0; done < cards; done += B) {
        size_t k = cards - done < B ? cards - done : B;
        for (size_t i = 0; i < k; i++) {
            snprintf(ids[i], sizeof ids[i], "card_%07zu", done + i);
            vals[i][0] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = (int64_t)(rnd() % 40)};
            vals[i][1] =
                (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = (double)(rnd() % 10000) / 100};
            vals[i][2] = (fr_value_t){.type = FR_TYPE_FLOAT, .u.f32 = (float)(rnd() % 50000) / 100};
            vals[i][3] = (fr_value_t){.type = FR_TYPE_STRING, .len = 2, .u.str = "FR"};
            vals[i][4] = (fr_value_t){.type = FR_TYPE_BOOL, .u.b = rnd() % 50 == 0};
            rows[i] = (fr_put_row_t){.view = "card_stats",
                                     .entity = ids[i],
                                     .event_ts_us = ts,
                                     .values = vals[i],
                                     .value_count = 5};
        }
        fr_put_result_t pr;
        if ((rc = fr_client_put(c, NULL, 0, rows, k, &pr)) != FR_OK)
            return die("put card_stats", c, rc);
    }
    for (size_t done = 0; done < merchants; done += B) {
        size_t k = merchants - done < B ? merchants - done : B;
        for (size_t i = 0; i < k; i++) {
            snprintf(ids[i], sizeof ids[i], "m_%05zu", done + i);
            vals[i][0] =
                (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = (double)(rnd() % 1000) / 10000};
            vals[i][1] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = (int64_t)(rnd() % 5000)};
            rows[i] = (fr_put_row_t){.view = "merchant_risk",
                                     .entity = ids[i],
                                     .event_ts_us = ts,
                                     .values = vals[i],
                                     .value_count = 2};
        }
        fr_put_result_t pr;
        if ((rc = fr_client_put(c, NULL, 0, rows, k, &pr)) != FR_OK)
            return die("put merchant_risk", c, rc);
    }
    fr_client_free(c);
    fprintf(stderr, "bench_infer: loaded %zu cards, %zu merchants\n", cards, merchants);
    return 0;
}

typedef struct {
    char (*cards)[32];
    char (*merch)[32];
    const char **cp, **mp;
    double *amount;
} batch_t;

static void fill(batch_t *b, size_t n, size_t cards, size_t merchants)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(b->cards[i], 32, "card_%07zu", (size_t)(rnd() % cards));
        snprintf(b->merch[i], 32, "m_%05zu", (size_t)(rnd() % merchants));
        b->cp[i] = b->cards[i];
        b->mp[i] = b->merch[i];
        b->amount[i] = (double)(rnd() % 100000) / 100;
    }
}

static const char *const FEATURES[] = {
    "card_stats:txn_count_1h", "card_stats:amount_avg_1h",         "card_stats:amount_max_1h",
    "card_stats:is_blocked",   "merchant_risk:chargeback_rate_7d", "merchant_risk:txn_count_24h"};

static int run(fr_client_t *ic, fr_client_t *fc, size_t n, size_t iters, size_t warmup,
               size_t cards, size_t merchants)
{
    batch_t b;
    b.cards = malloc(n * sizeof *b.cards);
    b.merch = malloc(n * sizeof *b.merch);
    b.cp = malloc(n * sizeof *b.cp);
    b.mp = malloc(n * sizeof *b.mp);
    b.amount = malloc(n * sizeof *b.amount);
    int64_t *e2e = malloc(iters * sizeof *e2e), *fetch = malloc(iters * sizeof *fetch);
    int64_t *eval = malloc(iters * sizeof *eval), *get = malloc(iters * sizeof *get);
    if (!b.cards || !b.merch || !b.cp || !b.mp || !b.amount || !e2e || !fetch || !eval || !get)
        return fprintf(stderr, "bench_infer: no memory\n"), 1;
    size_t rejected = 0;
    int64_t t_all = 0;
    for (size_t it = 0; it < warmup + iters; it++) {
        fill(&b, n, cards, merchants);
        fr_entity_col_t cols[2] = {{.join_key = "card_id", .values = b.cp, .count = n},
                                   {.join_key = "merchant_id", .values = b.mp, .count = n}};
        fr_score_feature_t amount = {.name = "amount", .values = b.amount, .count = n};
        fr_score_req_t req = {
            .entities = cols, .entity_col_count = 2, .features = &amount, .feature_count = 1};
        fr_score_result_t *r;
        int64_t t0 = now_us();
        int rc = fr_client_score(ic, &req, &r);
        int64_t t1 = now_us();
        if (rc != FR_OK)
            return die("score", ic, rc);
        /* baseline: the same features, same entities, straight from freshetd */
        fr_get_req_t g = {
            .features = FEATURES, .feature_count = 6, .entities = cols, .entity_col_count = 2};
        fr_result_t *gr;
        int64_t t2 = now_us();
        rc = fr_client_get(fc, &g, &gr);
        int64_t t3 = now_us();
        if (rc != FR_OK)
            return die("get", fc, rc);
        fr_result_free(gr);
        if (it >= warmup) {
            size_t k = it - warmup;
            e2e[k] = t1 - t0;
            fetch[k] = fr_score_fetch_us(r);
            eval[k] = fr_score_eval_us(r);
            get[k] = t3 - t2;
            t_all += t1 - t0;
            for (size_t i = 0; i < fr_score_row_count(r); i++) {
                fr_score_row_t row;
                fr_score_row(r, i, &row);
                rejected += row.code != FR_OK;
            }
        }
        fr_score_result_free(r);
    }
    printf(
        "{\"bench\": \"infer_score\", \"entities\": %zu, \"iters\": %zu, \"p50_us\": %lld, "
        "\"p99_us\": %lld, \"fetch_p50_us\": %lld, \"fetch_p99_us\": %lld, \"eval_p50_us\": %lld, "
        "\"eval_p99_us\": %lld, \"rows_per_s\": %.0f, \"rejected_rows\": %zu}\n",
        n, iters, (long long)pct(e2e, iters, 0.5), (long long)pct(e2e, iters, 0.99),
        (long long)pct(fetch, iters, 0.5), (long long)pct(fetch, iters, 0.99),
        (long long)pct(eval, iters, 0.5), (long long)pct(eval, iters, 0.99),
        (double)n * (double)iters / ((double)t_all / 1e6), rejected);
    printf(
        "{\"bench\": \"direct_get_baseline\", \"entities\": %zu, \"features\": 6, \"iters\": %zu, "
        "\"p50_us\": %lld, \"p99_us\": %lld}\n",
        n, iters, (long long)pct(get, iters, 0.5), (long long)pct(get, iters, 0.99));
    fflush(stdout);
    free(b.cards);
    free(b.merch);
    free(b.cp);
    free(b.mp);
    free(b.amount);
    free(e2e);
    free(fetch);
    free(eval);
    free(get);
    return 0;
}

int main(int argc, char **argv)
{
    const char *infer = NULL, *freshetd = NULL, *views = NULL;
    size_t cards = 100000, merchants = 1000, iters = 20000, warmup = 1000;
    int load_only = 0;
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--infer"))
            infer = v;
        else if (!strcmp(a, "--freshetd"))
            freshetd = v;
        else if (!strcmp(a, "--load"))
            views = v;
        else if (!strcmp(a, "--cards"))
            cards = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--merchants"))
            merchants = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--iters"))
            iters = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--warmup"))
            warmup = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--load-only"))
            load_only = atoi(v);
        else if (!strcmp(a, "--seed"))
            rng_state = strtoull(v, NULL, 10) | 1;
        else
            return fprintf(stderr, "bench_infer: unknown argument %s\n", a), 2;
    }
    if (load_only)
        return views ? load(freshetd, views, cards, merchants) : 2;
    if (!infer || !freshetd || !cards || !merchants || !iters) {
        fprintf(stderr, "usage: bench_infer --infer ADDR --freshetd ADDR [--load VIEWS.json] "
                        "[--cards N] [--merchants M] [--iters N] [--warmup W]\n");
        return 2;
    }
    if (views && load(freshetd, views, cards, merchants))
        return 1;
    fr_client_t *ic, *fc;
    int rc = fr_client_connect(infer, 30000, &ic);
    if (rc != FR_OK)
        return die("connect freshet-infer", NULL, rc);
    rc = fr_client_connect(freshetd, 30000, &fc);
    if (rc != FR_OK)
        return die("connect freshetd", NULL, rc);
    int ex = run(ic, fc, 1, iters, warmup, cards, merchants);
    if (!ex)
        ex = run(ic, fc, 100, iters / 10 ? iters / 10 : 1, warmup / 10, cards, merchants);
    fr_client_free(ic);
    fr_client_free(fc);
    return ex;
}
