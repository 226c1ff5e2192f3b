/* In-process ingest through the store's real write path (fr_store_write_group with the
 * write-ahead log, its checkpoints and their pin), with the network, the request decoder and the
 * server's queue out of the way: how fast LMDB takes rows as a function of how many rows one
 * transaction holds, and how many bytes reach the disk per row.
 *
 * Why it exists: freshetd commits one LMDB transaction per acknowledged group, so its group size
 * is set by how many batches clients have in flight (bench/run.sh: 16 x 1000 rows, groups of
 * ~7k). This bench answers "what would larger transactions buy" without building the overlay
 * that would let acknowledgement and transaction size differ (bench/RESULTS.md, #6 ingest).
 *
 * Usage: bench_ingest DATA_DIR N_ROWS GROUP_ROWS [sorted=0|1] [durability=sync|async|nosync]
 *                     [checkpoint_mb=16]
 * DATA_DIR must not exist (or be empty). Rows: N_ROWS random entities of 1M ("e0000000"..), 50
 * float features, in 1000-row batches applied GROUP_ROWS at a time; sorted=1 applies each group's
 * batches in entity order (what a sorting writer would do). The store is closed (its last
 * checkpoint included) before the clock stops. Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "freshet/err.h"
#include "registry/registry.h"
#include "store/store.h"

#define NFEAT 50
#define BATCH 1000
#define ENTITIES 1000000u
#define PAYLOAD (3 + NFEAT * 5) /* array16 header, then 50 x (0xca + float32 BE) */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Bytes this process caused to be written to storage so far (/proc/self/io write_bytes). */
static long long write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "write_bytes: %lld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

typedef struct {
    char entity[9];
    uint8_t payload[PAYLOAD];
} gen_row_t;

typedef struct {
    const fr_write_row_t *rows; /* this group's rows */
    size_t count;
    int failed;
} group_t;

/* fr_store_write_group may call it twice (flat pass, then isolated): each call sets the outcome. */
static void apply_group(fr_wtxn_t *w, void *arg)
{
    group_t *g = arg;
    g->failed = 0;
    for (size_t at = 0; at < g->count; at += BATCH) {
        size_t n = g->count - at < BATCH ? g->count - at : BATCH;
        fr_write_batch_t b = {.rows = g->rows + at, .row_count = n};
        fr_write_result_t res;
        if (fr_store_write_apply(w, &b, &res) != FR_OK)
            g->failed = 1;
    }
}

static int by_entity(const void *a, const void *b)
{
    return memcmp(((const gen_row_t *)a)->entity, ((const gen_row_t *)b)->entity, 8);
}

static const char *registry_json(void)
{
    static char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "{\"entities\":[{\"name\":\"ent\",\"join_key\":\"eid\"}],"
                                "\"views\":[{\"name\":\"v\",\"entity\":\"ent\",\"features\":[");
    for (int j = 0; j < NFEAT; j++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"name\":\"f%02d\",\"type\":\"float\"}",
                              j ? "," : "", j);
    snprintf(buf + n, sizeof buf - n, "]}]}");
    return buf;
}

static void apply_registry(fr_wtxn_t *w, void *arg)
{
    const char *why = NULL;
    fr_registry_diff_t diff;
    const char *js = registry_json();
    *(int *)arg = fr_store_write_registry(w, js, strlen(js), false, &diff, &why);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_ingest DATA_DIR N_ROWS GROUP_ROWS [sorted] "
                        "[sync|async|nosync] [checkpoint_mb]\n");
        return 2;
    }
    size_t total = (size_t)atol(argv[2]), group_rows = (size_t)atol(argv[3]);
    int sorted = argc > 4 && atoi(argv[4]);
    const char *dur = argc > 5 ? argv[5] : "sync";
    long ckpt_mb = argc > 6 ? atol(argv[6]) : 16;
    fr_durability_t d;
    if (strcmp(dur, "sync") == 0)
        d = FR_DURABILITY_SYNC;
    else if (strcmp(dur, "async") == 0)
        d = FR_DURABILITY_ASYNC;
    else if (strcmp(dur, "nosync") == 0)
        d = FR_DURABILITY_NOSYNC;
    else {
        fprintf(stderr, "bench_ingest: durability is sync, async or nosync, not %s\n", dur);
        return 2;
    }
    if (total == 0 || group_rows == 0 || group_rows > 10000000 || ckpt_mb < 1) {
        fprintf(stderr, "bench_ingest: N_ROWS, GROUP_ROWS (1..1e7) and checkpoint_mb must be "
                        "positive\n");
        return 2;
    }
    const fr_clock_t *clock = fr_clock_system();
    /* 16 KiB a row is far above what any run here used (the log pins freed pages until a
     * checkpoint); a small map keeps a short run runnable under valgrind */
    uint64_t map = (uint64_t)total * (16u << 10);
    fr_store_opts_t o = {.path = argv[1],
                         .map_size = map < (1ULL << 30) ? 1ULL << 30 : map,
                         .durability = d,
                         .clock = clock,
                         .wal = d != FR_DURABILITY_NOSYNC,
                         .wal_checkpoint_bytes = (uint64_t)ckpt_mb << 20};
    fr_store_t *s;
    const char *why = NULL;
    if (fr_store_open(&o, &s, &why) != FR_OK) {
        fprintf(stderr, "bench_ingest: open %s: %s\n", argv[1], why ? why : "failed");
        return 1;
    }
    int rrc = FR_E_STORAGE;
    if (fr_store_write_group(s, apply_registry, &rrc) != FR_OK || rrc != FR_OK) {
        fprintf(stderr, "bench_ingest: registry not applied\n");
        return 1;
    }
    fr_registry_t *reg = fr_store_registry(s);
    const fr_view_def_t *view = fr_registry_view(reg, "v");
    gen_row_t *rows = malloc(group_rows * sizeof *rows);
    fr_write_row_t *wrows = malloc(group_rows * sizeof *wrows);
    if (!rows || !wrows || !view) {
        fprintf(stderr, "bench_ingest: no memory\n");
        return 1;
    }
    int64_t ts0 = fr_clock_now(clock) - 3600LL * 1000000;
    long long wb0 = write_bytes();
    double t0 = now_s(), gen_s = 0;
    size_t done = 0, groups = 0;
    while (done < total) {
        size_t n = total - done < group_rows ? total - done : group_rows;
        double g0 = now_s();
        for (size_t k = 0; k < n; k++) {
            gen_row_t *r = &rows[k];
            snprintf(r->entity, sizeof r->entity, "e%07u", (unsigned)(next_rand() % ENTITIES));
            r->payload[0] = 0xdc;
            fr_put_be16(r->payload + 1, NFEAT);
            for (int j = 0; j < NFEAT; j++) {
                float f = (float)(next_rand() & 0xffffff) / 16777216.0f;
                uint32_t u;
                memcpy(&u, &f, 4);
                r->payload[3 + 5 * j] = 0xca;
                fr_put_be32(r->payload + 4 + 5 * j, u);
            }
        }
        if (sorted)
            qsort(rows, n, sizeof *rows, by_entity);
        for (size_t k = 0; k < n; k++)
            wrows[k] = (fr_write_row_t){.view = view,
                                        .entity = (const uint8_t *)rows[k].entity,
                                        .entity_len = 8,
                                        .event_ts_us = ts0 + (int64_t)(done + k),
                                        .values = rows[k].payload,
                                        .values_len = PAYLOAD};
        gen_s += now_s() - g0;
        group_t g = {wrows, n, 0};
        if (fr_store_write_group(s, apply_group, &g) != FR_OK || g.failed) {
            fprintf(stderr, "bench_ingest: group %zu failed\n", groups);
            return 1;
        }
        done += n;
        groups++;
    }
    fr_store_info_t info;
    fr_store_info(s, &info);
    fr_registry_release(reg);
    fr_store_close(s); /* its last checkpoint: everything is in LMDB's file */
    double secs = now_s() - t0 - gen_s;
    long long wb = write_bytes() - wb0;
    printf("{\"rows\": %zu, \"group_rows\": %zu, \"sorted\": %d, \"durability\": \"%s\", "
           "\"checkpoint_mb\": %ld, \"groups\": %zu, \"secs\": %.2f, \"rows_per_s\": %.0f, "
           "\"written_bytes_per_row\": %.0f, \"checkpoints\": %llu}\n",
           total, group_rows, sorted, dur, ckpt_mb, groups, secs, (double)total / secs,
           (double)wb / (double)total, (unsigned long long)info.wal_checkpoints);
    free(wrows);
    free(rows);
    return 0;
}
