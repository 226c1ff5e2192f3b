/* Scale-out figures (bench/run_scaleout.sh): JetStream publish rate through libfreshet's publisher,
 * and ingest-to-visible latency (publish call → the row readable through the partition map).
 *
 *   bench_scaleout publish --nats URLS [--stream S] [--replicas R] [--rows N] [--batch B] [--view
 * V] bench_scaleout latency --nats URLS --map MAP.json [--view V] [--samples N]
 *
 * Prints one JSON object per run on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "freshet/cluster.h"

static int64_t mono_us(void)
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
    return x < y ? -1 : x > y;
}

typedef struct {
    char ent[64], tag[32];
    fr_value_t vals[3];
} row_buf_t;

static void make_row(row_buf_t *rb, fr_put_row_t *r, const char *view, const char *prefix, long i,
                     int64_t ts)
{
    snprintf(rb->ent, sizeof rb->ent, "%.40s%ld", prefix, i);
    snprintf(rb->tag, sizeof rb->tag, "t%ld", i);
    memset(rb->vals, 0, sizeof rb->vals);
    rb->vals[0].type = FR_TYPE_INT64;
    rb->vals[0].u.i64 = i;
    rb->vals[1].type = FR_TYPE_STRING;
    rb->vals[1].u.str = rb->tag;
    rb->vals[1].len = (uint32_t)strlen(rb->tag);
    rb->vals[2].type = FR_TYPE_DOUBLE;
    rb->vals[2].u.f64 = (double)i * 0.5;
    memset(r, 0, sizeof *r);
    r->view = view;
    r->entity = rb->ent;
    r->event_ts_us = ts;
    r->values = rb->vals;
    r->value_count = 3;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "", *nats = NULL, *stream = NULL, *map = NULL;
    const char *view = "t5", *prefix = "p";
    long rows = 200000, batch = 10000, samples = 1000;
    int replicas = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--nats"))
            nats = argv[i + 1];
        else if (!strcmp(argv[i], "--stream"))
            stream = argv[i + 1];
        else if (!strcmp(argv[i], "--replicas"))
            replicas = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows"))
            rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--samples"))
            samples = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--map"))
            map = argv[i + 1];
        else if (!strcmp(argv[i], "--view"))
            view = argv[i + 1];
        else if (!strcmp(argv[i], "--prefix"))
            prefix = argv[i + 1];
    }
    if (!nats || (strcmp(mode, "publish") && strcmp(mode, "latency")) ||
        (!strcmp(mode, "latency") && !map)) {
        fprintf(stderr, "usage: bench_scaleout publish|latency --nats URLS [--map MAP.json] ...\n");
        return 2;
    }
    fr_publisher_opts_t po = {.url = nats, .stream = stream, .replicas = replicas};
    fr_publisher_t *p = NULL;
    char err[512];
    if (fr_publisher_new(&po, &p, err, sizeof err) != FR_OK) {
        fprintf(stderr, "bench_scaleout: %s\n", err);
        return 1;
    }
    int64_t ts = wall_us() - 60000000;
    int rc = 0;
    if (!strcmp(mode, "publish")) {
        fr_put_row_t *rs = calloc((size_t)batch, sizeof *rs);
        row_buf_t *rb = calloc((size_t)batch, sizeof *rb);
        fr_publish_result_t res = {0, 0, 0, 0};
        int64_t t0 = mono_us();
        for (long done = 0; done < rows && rc == 0; done += batch) {
            long n = rows - done < batch ? rows - done : batch;
            for (long k = 0; k < n; k++)
                make_row(&rb[k], &rs[k], view, prefix, done + k, ts);
            if (fr_publisher_put(p, rs, (size_t)n, &res) != FR_OK) {
                fprintf(stderr, "bench_scaleout: %s\n", fr_publisher_error(p));
                rc = 1;
            }
        }
        double secs = (double)(mono_us() - t0) / 1e6;
        printf(
            "{\"bench\": \"publish\", \"replicas\": %d, \"rows\": %ld, \"batch\": %ld, "
            "\"seconds\": %.3f, \"rows_per_s\": %.0f, \"published\": %llu, \"duplicates\": %llu, "
            "\"retries\": %llu, \"last_seq\": %llu}\n",
            replicas, rows, batch, secs, (double)rows / secs, (unsigned long long)res.published,
            (unsigned long long)res.duplicates, (unsigned long long)res.retries,
            (unsigned long long)res.last_seq);
        free(rs);
        free(rb);
    } else {
        fr_cluster_t *cl = NULL;
        if (fr_cluster_open(map, NULL, &cl, err, sizeof err) != FR_OK) {
            fprintf(stderr, "bench_scaleout: %s\n", err);
            fr_publisher_free(p);
            return 1;
        }
        int64_t *lat = calloc((size_t)samples, sizeof *lat);
        long got = 0;
        char run[16];
        snprintf(run, sizeof run, "l%ld-", (long)(wall_us() % 1000000));
        for (long i = 0; i < samples && rc == 0; i++) {
            row_buf_t rb;
            fr_put_row_t r;
            make_row(&rb, &r, view, run, i, ts);
            const char *ids[1] = {rb.ent};
            fr_entity_col_t col = {NULL, ids, NULL, 1};
            const char *feats[1] = {view};
            fr_get_req_t req = {
                .features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
            int64_t t0 = mono_us();
            if (fr_publisher_put(p, &r, 1, NULL) != FR_OK) {
                fprintf(stderr, "bench_scaleout: %s\n", fr_publisher_error(p));
                rc = 1;
                break;
            }
            for (;;) {
                fr_result_t *res = NULL;
                int st = 0;
                if (fr_cluster_get(cl, &req, &res) == FR_OK)
                    fr_result_cell(res, 0, 0, NULL, &st, NULL);
                fr_result_free(res);
                if (st == FR_STATUS_PRESENT)
                    break;
                if (mono_us() - t0 > 10000000) {
                    fprintf(stderr, "bench_scaleout: row %ld not visible after 10 s\n", i);
                    rc = 1;
                    break;
                }
            }
            lat[got++] = mono_us() - t0;
        }
        qsort(lat, (size_t)got, sizeof *lat, cmp_i64);
        if (got)
            printf("{\"bench\": \"ingest_to_visible\", \"samples\": %ld, \"p50_us\": %lld, "
                   "\"p99_us\": %lld, \"max_us\": %lld}\n",
                   got, (long long)lat[got / 2], (long long)lat[(got * 99) / 100],
                   (long long)lat[got - 1]);
        free(lat);
        fr_cluster_free(cl);
    }
    fr_publisher_free(p);
    return rc;
}
