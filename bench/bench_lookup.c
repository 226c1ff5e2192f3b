/* In-process as-of lookups on a real store: LMDB's cursor (fr_asof_get, one key after the other)
 * against the batched page walk (fr_asof_get_many), the server's two ways of reading, without the
 * network or the scheduler in the way. On a noisy shared VM this is the steady measurement of the
 * lookup path; bench_serve measures what a client sees.
 *
 * Usage: bench_lookup DATA_DIR VIEW N_ENTITIES [BATCH=100] [ROUNDS=4000]
 * The store must hold entities "e0000000".."e<N-1>" of VIEW (as bench_serve load makes them); open
 * it while freshetd is stopped, or on a copy. Each round looks up BATCH random entities both ways,
 * with different random keys for each (so neither warms the other's pages), in alternating order.
 * Prints one JSON object: per-batch microseconds (p50, p90, p99) of each way, their ratio, and how
 * many answers differed (must be 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "freshet/err.h"
#include "registry/registry.h"
#include "store/store.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 88172645463325252ULL;
static uint32_t below(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_lookup DATA_DIR VIEW N_ENTITIES [BATCH] [ROUNDS]\n");
        return 2;
    }
    uint32_t n = (uint32_t)atol(argv[3]);
    size_t batch = argc > 4 ? (size_t)atol(argv[4]) : 100;
    int rounds = argc > 5 ? atoi(argv[5]) : 4000;
    if (n == 0 || batch == 0 || batch > 100000 || rounds < 1) {
        fprintf(stderr, "bench_lookup: N_ENTITIES, BATCH (1..100000) and ROUNDS must be positive\n");
        return 2;
    }
    const fr_clock_t *clock = fr_clock_system();
    fr_store_opts_t o = {.path = argv[1], .read_only = true, .clock = clock,
                         .map_size = 64ULL << 30};
    fr_store_t *s;
    const char *why = NULL;
    int rc = fr_store_open(&o, &s, &why);
    if (rc != FR_OK) {
        fprintf(stderr, "bench_lookup: %s: %s\n", fr_err_name(rc), why ? why : "");
        return 1;
    }
    fr_registry_t *reg = fr_store_registry(s);
    const fr_view_def_t *view = fr_registry_view(reg, argv[2]);
    if (!view) {
        fprintf(stderr, "bench_lookup: no view %s\n", argv[2]);
        return 1;
    }
    fr_rtxn_t *r;
    if (fr_rtxn_new(s, &r) != FR_OK || fr_rtxn_begin(r) != FR_OK) {
        fprintf(stderr, "bench_lookup: cannot open a read snapshot\n");
        return 1;
    }
    char (*ents)[16] = malloc(batch * 16);
    fr_asof_req_t *reqs = malloc(batch * sizeof *reqs);
    fr_asof_t *got = malloc(batch * sizeof *got), one;
    double *t_cursor = malloc((size_t)rounds * sizeof(double));
    double *t_walk = malloc((size_t)rounds * sizeof(double));
    if (!ents || !reqs || !got || !t_cursor || !t_walk)
        return 1;
    int64_t as_of = fr_clock_now(clock);
    unsigned long long differ = 0, present = 0;
    double sink = 0;
    for (int i = 0; i < rounds; i++) {
        for (int way = 0; way < 2; way++) {
            int walk = (i + way) % 2; /* alternate which goes first */
            for (size_t k = 0; k < batch; k++) {
                snprintf(ents[k], 16, "e%07u", below(n));
                reqs[k] = (fr_asof_req_t){(const uint8_t *)ents[k], 8, as_of, &got[k]};
            }
            double t0 = now_us();
            if (walk) {
                rc = fr_asof_get_many(r, view, reqs, batch, 0);
            } else {
                for (size_t k = 0; k < batch && rc == FR_OK; k++)
                    rc = fr_asof_get(r, view, reqs[k].entity, 8, as_of, 0, &got[k]);
            }
            double t1 = now_us();
            if (rc != FR_OK) {
                fprintf(stderr, "bench_lookup: %s\n", fr_err_name(rc));
                return 1;
            }
            (walk ? t_walk : t_cursor)[i] = t1 - t0;
            for (size_t k = 0; k < batch; k++) { /* consume, and check the walk's answers */
                present += got[k].status == FR_STATUS_PRESENT;
                sink += (double)got[k].values_len;
                if (walk) {
                    fr_asof_get(r, view, reqs[k].entity, 8, as_of, 0, &one);
                    differ += one.values != got[k].values || one.status != got[k].status;
                }
            }
        }
    }
    uint64_t walked, cursor;
    fr_rtxn_walk_stats(r, &walked, &cursor);
    qsort(t_cursor, (size_t)rounds, sizeof(double), cmp_double);
    qsort(t_walk, (size_t)rounds, sizeof(double), cmp_double);
#define Q(a, q) a[(size_t)((double)(rounds - 1) * (q))]
    printf("{\"entities\": %u, \"batch\": %zu, \"rounds\": %d, "
           "\"cursor\": {\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f}, "
           "\"page_walk\": {\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f}, "
           "\"p50_ratio\": %.2f, \"answers_differing\": %llu, \"present\": %llu, "
           "\"walked\": %llu, \"left_to_cursor\": %llu, \"sink\": %.0f}\n",
           n, batch, rounds, Q(t_cursor, 0.5), Q(t_cursor, 0.9), Q(t_cursor, 0.99),
           Q(t_walk, 0.5), Q(t_walk, 0.9), Q(t_walk, 0.99), Q(t_cursor, 0.5) / Q(t_walk, 0.5),
           differ, present, (unsigned long long)walked, (unsigned long long)cursor, sink);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    fr_store_close(s);
    free(ents);
    free(reqs);
    free(got);
    free(t_cursor);
    free(t_walk);
    return differ ? 1 : 0;
}
