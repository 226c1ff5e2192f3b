/* bench_serve: the load generator of bench/run.sh. One measurement per invocation, printed as one
 * JSON object on stdout; run.sh repeats, aggregates and compares. Sides: freshet (libfreshet),
 * redis_blob (one 200-byte string of 50 float32 per entity, MGET/GET/SET) and redis_hash (one hash
 * of 50 fields per entity, pipelined HMGET/HSET) through hiredis, and echo (bench/echo_server.c).
 *
 *   bench_serve load   SIDE ADDR N VERSIONS WRITERS    ingest N entities x VERSIONS, 1000-row batches
 *   bench_serve read   SIDE ADDR N BATCH CLIENTS DIST SECS   closed-loop reads (DIST uniform|zipf)
 *   bench_serve mixed  SIDE ADDR N CLIENTS SECS WRITE_ROWS_PER_S   read-only phase, then with a writer
 *   bench_serve probe  ADDR N BATCH                    request/reply frame sizes of a freshet Get
 *   bench_serve echo   ADDR REQ_BYTES REPLY_BYTES CLIENTS SECS
 *
 * Every read consumes every value (sums the 50 floats of each entity) so both sides pay for
 * decoding what they fetched. Entity i is "e%07u"; Redis keys are "b:" or "h:" + that id. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "freshet/client.h"
#include "proto/frame.h"

#define NFEAT 50
#define BATCH_ROWS 1000
#define VIEW "bench"

/* ---- small helpers ---- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_serve: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Value of feature j of entity i, version v: a float32 in [0, 1) with 24 random bits. */
static float feat_value(uint32_t i, uint32_t j, uint32_t v)
{
    uint64_t h = mix64(((uint64_t)i << 32) ^ ((uint64_t)j << 16) ^ v ^ 0x9e3779b97f4a7c15ULL);
    return (float)(h & 0xffffff) / 16777216.0f;
}

static void entity_id(uint32_t i, char out[16]) { snprintf(out, 16, "e%07u", i); }

/* Shortest decimal that reads back as the same float32: what a Redis hash user would store. */
static int fmt_float(char *out, size_t cap, float f)
{
    for (int p = 6; p <= 9; p++) { /* 24 random bits need 6 to 9 digits */
        int n = snprintf(out, cap, "%.*g", p, (double)f);
        if (strtof(out, NULL) == f)
            return n;
    }
    return snprintf(out, cap, "%.9g", (double)f);
}

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) / 9007199254740992.0; }

/* Zipf(theta) over n ranks by inverse CDF; rank r maps to entity (r * K) mod n, K coprime with n,
 * so the hot keys are spread over the key space instead of sitting on neighbouring pages. */
static double *zipf_cdf;
static uint32_t zipf_n;

static void zipf_init(uint32_t n, double theta)
{
    zipf_cdf = malloc(n * sizeof *zipf_cdf);
    if (!zipf_cdf)
        die("zipf", "no memory");
    double sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += 1.0 / pow((double)(i + 1), theta);
    double acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc += 1.0 / pow((double)(i + 1), theta) / sum;
        zipf_cdf[i] = acc;
    }
    zipf_n = n;
}

static uint32_t pick(rng_t *r, uint32_t n, int zipf)
{
    if (!zipf)
        return (uint32_t)(rng_next(r) % n);
    double u = rng_unit(r);
    uint32_t lo = 0, hi = zipf_n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)(((uint64_t)lo * 2654435761ULL) % n);
}

/* latency samples in microseconds */
typedef struct {
    double *v;
    size_t n, cap;
} lat_t;

static void lat_add(lat_t *l, double us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            die("latency", "no memory");
    }
    l->v[l->n++] = us;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const lat_t *l, double p)
{
    if (!l->n)
        return 0;
    size_t i = (size_t)ceil(p * (double)l->n) - 1;
    if (i >= l->n)
        i = l->n - 1;
    return l->v[i];
}

static void lat_merge(lat_t *into, const lat_t *from)
{
    for (size_t i = 0; i < from->n; i++)
        lat_add(into, from->v[i]);
}

static void print_lat(const char *prefix, lat_t *l, double rows_per_s)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_d);
    printf("%s\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"rows_per_s\": %.0f, "
           "\"samples\": %zu",
           prefix, pct(l, 0.5), pct(l, 0.99), pct(l, 0.999), rows_per_s, l->n);
}

/* ---- sides ---- */

typedef enum { SIDE_FRESHET, SIDE_BLOB, SIDE_HASH } side_t;

static side_t parse_side(const char *s)
{
    if (!strcmp(s, "freshet"))
        return SIDE_FRESHET;
    if (!strcmp(s, "redis_blob"))
        return SIDE_BLOB;
    if (!strcmp(s, "redis_hash"))
        return SIDE_HASH;
    die("side", s);
    return SIDE_FRESHET;
}

static char feat_names[NFEAT][8];
static const char *hmget_argv[2 + NFEAT];
static size_t hmget_lens[2 + NFEAT];

static void names_init(void)
{
    for (int j = 0; j < NFEAT; j++)
        snprintf(feat_names[j], sizeof feat_names[j], "f%02d", j);
}

typedef struct {
    side_t side;
    fr_client_t *fc;
    redisContext *rc;
} conn_t;

static void conn_open(conn_t *c, side_t side, const char *addr)
{
    memset(c, 0, sizeof *c);
    c->side = side;
    if (side == SIDE_FRESHET) {
        int rc = fr_client_connect(addr, 30000, &c->fc);
        if (rc != FR_OK)
            die("connect freshetd", addr);
        return;
    }
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        die("redis address", addr);
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    c->rc = redisConnect(host, atoi(colon + 1));
    if (!c->rc || c->rc->err)
        die("connect redis", c->rc ? c->rc->errstr : addr);
    /* hiredis sets TCP_NODELAY itself; say it anyway so both clients match */
    int one = 1;
    setsockopt(c->rc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void conn_close(conn_t *c)
{
    if (c->fc)
        fr_client_free(c->fc);
    if (c->rc)
        redisFree(c->rc);
}

static const char *registry_json(void)
{
    static char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "{\"entities\":[{\"name\":\"ent\",\"join_key\":\"eid\"}],"
                                "\"views\":[{\"name\":\"" VIEW "\",\"entity\":\"ent\",\"features\":[");
    for (int j = 0; j < NFEAT; j++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s{\"name\":\"%s\",\"type\":\"float\"}",
                              j ? "," : "", feat_names[j]);
    snprintf(buf + n, sizeof buf - n, "]}]}");
    return buf;
}

/* ---- writes ---- */

/* Writes rows [from, from+count) of the permuted load order: entity perm[k], version v. */
static void write_batch(conn_t *c, const uint32_t *ids, size_t count, uint32_t v, int64_t ts)
{
    if (c->side == SIDE_FRESHET) {
        static _Thread_local fr_put_row_t rows[BATCH_ROWS];
        static _Thread_local fr_value_t vals[BATCH_ROWS][NFEAT];
        static _Thread_local char ents[BATCH_ROWS][16];
        for (size_t k = 0; k < count; k++) {
            entity_id(ids[k], ents[k]);
            for (int j = 0; j < NFEAT; j++) {
                vals[k][j].type = FR_TYPE_FLOAT;
                vals[k][j].u.f32 = feat_value(ids[k], (uint32_t)j, v);
            }
            rows[k] = (fr_put_row_t){VIEW, ents[k], 8, ts, vals[k], NFEAT, 0};
        }
        fr_put_result_t res;
        int rc = fr_client_put(c->fc, NULL, 0, rows, count, &res);
        if (rc != FR_OK)
            die("put", fr_client_error(c->fc));
        return;
    }
    char key[24], strs[NFEAT][16];
    for (size_t k = 0; k < count; k++) {
        char ent[16];
        entity_id(ids[k], ent);
        if (c->side == SIDE_BLOB) {
            float blob[NFEAT];
            for (int j = 0; j < NFEAT; j++)
                blob[j] = feat_value(ids[k], (uint32_t)j, v);
            snprintf(key, sizeof key, "b:%s", ent);
            redisAppendCommand(c->rc, "SET %s %b", key, (const char *)blob, sizeof blob);
        } else {
            const char *argv[2 + 2 * NFEAT];
            size_t lens[2 + 2 * NFEAT];
            snprintf(key, sizeof key, "h:%s", ent);
            argv[0] = "HSET";
            lens[0] = 4;
            argv[1] = key;
            lens[1] = strlen(key);
            for (int j = 0; j < NFEAT; j++) {
                argv[2 + 2 * j] = feat_names[j];
                lens[2 + 2 * j] = 3;
                argv[3 + 2 * j] = strs[j];
                lens[3 + 2 * j] =
                    (size_t)fmt_float(strs[j], sizeof strs[j], feat_value(ids[k], (uint32_t)j, v));
            }
            redisAppendCommandArgv(c->rc, 2 + 2 * NFEAT, argv, lens);
        }
    }
    for (size_t k = 0; k < count; k++) {
        redisReply *r;
        if (redisGetReply(c->rc, (void **)&r) != REDIS_OK || !r || r->type == REDIS_REPLY_ERROR)
            die("redis write", r ? r->str : c->rc->errstr);
        freeReplyObject(r);
    }
}

typedef struct {
    side_t side;
    const char *addr;
    const uint32_t *order;
    size_t total;      /* rows in order x versions */
    uint32_t n;        /* entities */
    atomic_size_t *next;
    lat_t lat;
    int64_t ts_base;
} load_arg_t;

static void *load_main(void *p)
{
    load_arg_t *a = p;
    conn_t c;
    conn_open(&c, a->side, a->addr);
    for (;;) {
        size_t at = atomic_fetch_add(a->next, BATCH_ROWS);
        if (at >= a->total)
            break;
        size_t cnt = a->total - at < BATCH_ROWS ? a->total - at : BATCH_ROWS;
        /* row index r → version r / n (oldest first), entity order[r % n]; a batch never spans
         * versions because n is a multiple of the batch size in every run.sh configuration */
        uint32_t v = (uint32_t)(at / a->n);
        uint32_t ids[BATCH_ROWS];
        for (size_t k = 0; k < cnt; k++)
            ids[k] = a->order[(at + k) % a->n];
        double t0 = now_us();
        write_batch(&c, ids, cnt, v, a->ts_base + (int64_t)v * 1000000);
        lat_add(&a->lat, now_us() - t0);
    }
    conn_close(&c);
    return NULL;
}

static int cmd_load(int argc, char **argv)
{
    if (argc != 7)
        die("usage", "load SIDE ADDR N VERSIONS WRITERS");
    side_t side = parse_side(argv[2]);
    const char *addr = argv[3];
    uint32_t n = (uint32_t)atol(argv[4]), versions = (uint32_t)atol(argv[5]);
    int writers = atoi(argv[6]);
    if (side == SIDE_FRESHET) {
        conn_t c;
        conn_open(&c, side, addr);
        const char *js = registry_json();
        if (fr_client_apply(c.fc, js, strlen(js), false, NULL) != FR_OK)
            die("apply", fr_client_error(c.fc));
        conn_close(&c);
    }
    /* random entity order: a stream job sees entities in no particular order */
    uint32_t *order = malloc(n * sizeof *order);
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    rng_t r = {0x1234567ULL};
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t k = (uint32_t)(rng_next(&r) % (i + 1));
        uint32_t t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    atomic_size_t next = 0;
    load_arg_t *args = calloc((size_t)writers, sizeof *args);
    pthread_t *th = calloc((size_t)writers, sizeof *th);
    int64_t ts_base = wall_us() - 3600LL * 1000000; /* versions one second apart, an hour ago */
    double t0 = now_us();
    for (int i = 0; i < writers; i++) {
        args[i] = (load_arg_t){side, addr, order, (size_t)n * versions, n, &next, {0}, ts_base};
        pthread_create(&th[i], NULL, load_main, &args[i]);
    }
    lat_t all = {0};
    for (int i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &args[i].lat);
    }
    double secs = (now_us() - t0) / 1e6;
    printf("{");
    print_lat("", &all, (double)n * versions / secs);
    printf(", \"secs\": %.2f, \"writers\": %d, \"batch_rows\": %d}\n", secs, writers, BATCH_ROWS);
    return 0;
}

/* ---- reads ---- */

typedef struct {
    double sum; /* keeps the consumption from being optimised away */
    size_t rows;
} sink_t;

static void read_freshet(conn_t *c, const uint32_t *ids, size_t count, sink_t *sink)
{
    static _Thread_local char ents[10000][16];
    static _Thread_local const char *vals[10000];
    static _Thread_local size_t lens[10000];
    for (size_t k = 0; k < count; k++) {
        entity_id(ids[k], ents[k]);
        vals[k] = ents[k];
        lens[k] = 8;
    }
    static const char *const feats[] = {VIEW};
    fr_entity_col_t col = {NULL, vals, lens, count};
    fr_get_req_t req = {feats, 1, &col, 1, false, 0, false, false};
    fr_result_t *res;
    if (fr_client_get(c->fc, &req, &res) != FR_OK)
        die("get", fr_client_error(c->fc));
    size_t ne = fr_result_entity_count(res), nf = fr_result_feature_count(res);
    if (ne != count || nf != NFEAT)
        die("get", "unexpected shape");
    /* the values as a model takes them: one float matrix (what hiredis's blobs are, too) */
    static _Thread_local float vec[10000 * NFEAT];
    static _Thread_local uint8_t status[10000 * NFEAT];
    if (fr_result_floats(res, NAN, vec, status) != FR_OK)
        die("get", "fr_result_floats");
    for (size_t i = 0; i < ne; i++) {
        int present = 0;
        for (size_t j = 0; j < nf; j++)
            if (status[i * nf + j] == FR_STATUS_PRESENT) {
                sink->sum += vec[i * nf + j];
                present = 1;
            }
        sink->rows += (size_t)present;
    }
    fr_result_free(res);
}

static void read_blob(conn_t *c, const uint32_t *ids, size_t count, sink_t *sink)
{
    static _Thread_local char keys[10000][16];
    static _Thread_local const char *argv[10001];
    static _Thread_local size_t lens[10001];
    argv[0] = count == 1 ? "GET" : "MGET";
    lens[0] = strlen(argv[0]);
    for (size_t k = 0; k < count; k++) {
        snprintf(keys[k], sizeof keys[k], "b:e%07u", ids[k]);
        argv[k + 1] = keys[k];
        lens[k + 1] = 10;
    }
    redisReply *r = redisCommandArgv(c->rc, (int)count + 1, argv, lens);
    if (!r || r->type == REDIS_REPLY_ERROR)
        die("redis read", r ? r->str : c->rc->errstr);
    size_t nel = r->type == REDIS_REPLY_ARRAY ? r->elements : 1;
    for (size_t k = 0; k < nel; k++) {
        redisReply *e = r->type == REDIS_REPLY_ARRAY ? r->element[k] : r;
        if (e->type == REDIS_REPLY_STRING && e->len == NFEAT * sizeof(float)) {
            float f[NFEAT];
            memcpy(f, e->str, sizeof f);
            for (int j = 0; j < NFEAT; j++)
                sink->sum += f[j];
            sink->rows++;
        }
    }
    freeReplyObject(r);
}

static void read_hash(conn_t *c, const uint32_t *ids, size_t count, sink_t *sink)
{
    char key[16];
    for (size_t k = 0; k < count; k++) {
        snprintf(key, sizeof key, "h:e%07u", ids[k]);
        hmget_argv[1] = key; /* hiredis formats the command now: the buffer may be reused */
        hmget_lens[1] = 10;
        const char *argv[2 + NFEAT];
        memcpy(argv, hmget_argv, sizeof argv);
        redisAppendCommandArgv(c->rc, 2 + NFEAT, argv, hmget_lens);
    }
    for (size_t k = 0; k < count; k++) {
        redisReply *r;
        if (redisGetReply(c->rc, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_ARRAY)
            die("redis hmget", r && r->str ? r->str : c->rc->errstr);
        int present = 0;
        for (size_t j = 0; j < r->elements; j++)
            if (r->element[j]->type == REDIS_REPLY_STRING) {
                sink->sum += strtof(r->element[j]->str, NULL);
                present = 1;
            }
        sink->rows += (size_t)present;
        freeReplyObject(r);
    }
}

static void do_read(conn_t *c, const uint32_t *ids, size_t count, sink_t *sink)
{
    if (c->side == SIDE_FRESHET)
        read_freshet(c, ids, count, sink);
    else if (c->side == SIDE_BLOB)
        read_blob(c, ids, count, sink);
    else
        read_hash(c, ids, count, sink);
}

typedef struct {
    side_t side;
    const char *addr;
    uint32_t n, batch;
    int zipf;
    double warm_until, stop_at; /* now_us() deadlines */
    uint64_t seed;
    lat_t lat;
    sink_t sink;
    size_t rows;
} read_arg_t;

static void *read_main(void *p)
{
    read_arg_t *a = p;
    conn_t c;
    conn_open(&c, a->side, a->addr);
    rng_t r = {a->seed | 1};
    uint32_t ids[10000];
    for (;;) {
        for (uint32_t k = 0; k < a->batch; k++)
            ids[k] = pick(&r, a->n, a->zipf);
        double t0 = now_us();
        if (t0 >= a->stop_at)
            break;
        size_t before = a->sink.rows;
        do_read(&c, ids, a->batch, &a->sink);
        double t1 = now_us();
        if (a->sink.rows - before != a->batch)
            die("read", "an entity was missing: is the data loaded?");
        if (t0 >= a->warm_until) {
            lat_add(&a->lat, t1 - t0);
            a->rows += a->batch;
        }
    }
    conn_close(&c);
    return NULL;
}

/* Runs `clients` closed-loop readers for secs (after 0.3 s of warm-up); prints the result fields. */
static void run_readers(side_t side, const char *addr, uint32_t n, uint32_t batch, int clients,
                        int zipf, double secs)
{
    read_arg_t *args = calloc((size_t)clients, sizeof *args);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double start = now_us();
    for (int i = 0; i < clients; i++) {
        args[i] = (read_arg_t){side, addr, n, batch, zipf, start + 3e5, start + 3e5 + secs * 1e6,
                               mix64((uint64_t)i + 77 + (uint64_t)start), {0}, {0, 0}, 0};
        pthread_create(&th[i], NULL, read_main, &args[i]);
    }
    lat_t all = {0};
    size_t rows = 0;
    double sum = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &args[i].lat);
        rows += args[i].rows;
        sum += args[i].sink.sum;
        free(args[i].lat.v);
    }
    print_lat("", &all, (double)rows / secs);
    printf(", \"checksum\": %.3g", sum);
    free(all.v);
    free(args);
    free(th);
}

static int cmd_read(int argc, char **argv)
{
    if (argc != 9)
        die("usage", "read SIDE ADDR N BATCH CLIENTS DIST SECS");
    side_t side = parse_side(argv[2]);
    uint32_t n = (uint32_t)atol(argv[4]), batch = (uint32_t)atol(argv[5]);
    int clients = atoi(argv[6]);
    int zipf = strcmp(argv[7], "zipf") == 0;
    if (zipf)
        zipf_init(n, 0.99);
    printf("{");
    run_readers(side, argv[3], n, batch, clients, zipf, atof(argv[8]));
    printf("}\n");
    return 0;
}

/* ---- mixed: readers with and without a paced writer ---- */

/* The writer is one stream paced at WRITE_ROWS_PER_S, sent over MIXED_WRITER_CONNS connections
 * with one batch in flight each (each connection paced at its share). Over one connection the
 * stream could only go as fast as one batch's ack latency allows, which under a full read load
 * was a quarter to a half of the asked rate. */
#define MIXED_WRITER_CONNS 4

typedef struct {
    side_t side;
    const char *addr;
    uint32_t n;
    double rows_per_s;
    uint64_t seed;
    atomic_int *stop;
    size_t written;
    double secs;
    lat_t lat;
} writer_arg_t;

static void *writer_main(void *p)
{
    writer_arg_t *a = p;
    conn_t c;
    conn_open(&c, a->side, a->addr);
    rng_t r = {a->seed};
    double interval = 1e6 * BATCH_ROWS / a->rows_per_s, start = now_us(), next = start;
    uint32_t ids[BATCH_ROWS];
    uint32_t v = 1000;
    while (!atomic_load(a->stop)) {
        double t = now_us();
        if (t < next) {
            double d = next - t;
            struct timespec ts = {(time_t)(d / 1e6), (long)fmod(d * 1e3, 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        for (int k = 0; k < BATCH_ROWS; k++)
            ids[k] = (uint32_t)(rng_next(&r) % a->n);
        write_batch(&c, ids, BATCH_ROWS, v++, wall_us());
        lat_add(&a->lat, now_us() - t);
        a->written += BATCH_ROWS;
        next += interval;
    }
    a->secs = (now_us() - start) / 1e6;
    conn_close(&c);
    return NULL;
}

static int cmd_mixed(int argc, char **argv)
{
    if (argc != 8)
        die("usage", "mixed SIDE ADDR N CLIENTS SECS WRITE_ROWS_PER_S");
    side_t side = parse_side(argv[2]);
    const char *addr = argv[3];
    uint32_t n = (uint32_t)atol(argv[4]);
    int clients = atoi(argv[5]);
    double secs = atof(argv[6]);
    double rate = atof(argv[7]);
    atomic_int stop = 0;
    writer_arg_t w[MIXED_WRITER_CONNS];
    for (int i = 0; i < MIXED_WRITER_CONNS; i++)
        w[i] = (writer_arg_t){.side = side, .addr = addr, .n = n,
                              .rows_per_s = rate / MIXED_WRITER_CONNS,
                              .seed = 0xabcdefULL + (uint64_t)i * 7919, .stop = &stop};
    printf("{\"read_only\": {");
    run_readers(side, addr, n, 100, clients, 0, secs);
    printf("}, \"with_writer\": {");
    fflush(stdout);
    pthread_t th[MIXED_WRITER_CONNS];
    for (int i = 0; i < MIXED_WRITER_CONNS; i++)
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    run_readers(side, addr, n, 100, clients, 0, secs);
    atomic_store(&stop, 1);
    lat_t all = {0};
    double written = 0, wsecs = 0;
    for (int i = 0; i < MIXED_WRITER_CONNS; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &w[i].lat);
        written += (double)w[i].written;
        if (w[i].secs > wsecs)
            wsecs = w[i].secs;
        free(w[i].lat.v);
    }
    qsort(all.v, all.n, sizeof *all.v, cmp_d);
    printf("}, \"writer_target_rows_per_s\": %.0f, \"writer_rows_per_s\": %.0f, "
           "\"writer_p99_us\": %.1f, \"writer_connections\": %d}\n",
           rate, written / wsecs, pct(&all, 0.99), MIXED_WRITER_CONNS);
    free(all.v);
    return 0;
}

/* ---- raw frames: the size probe and the echo client ---- */

static int tcp_connect(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        die("address", addr);
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        die("resolve", addr);
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
        die("connect", addr);
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            die("send", strerror(errno));
        p = (const char *)p + k;
        n -= (size_t)k;
    }
}

static void recv_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            die("recv", k ? strerror(errno) : "closed");
        p = (char *)p + k;
        n -= (size_t)k;
    }
}

typedef struct {
    uint32_t batch;
} probe_t;

static bool probe_feats_cb(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    (void)arg;
    return pb_encode_tag_for_field(s, f) && pb_encode_string(s, (const pb_byte_t *)VIEW, strlen(VIEW));
}

static bool probe_vals_cb(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    const probe_t *p = *arg;
    for (uint32_t k = 0; k < p->batch; k++) {
        char e[16];
        entity_id(k * 7, e);
        if (!pb_encode_tag_for_field(s, f) || !pb_encode_string(s, (const pb_byte_t *)e, 8))
            return false;
    }
    return true;
}

static bool probe_ents_cb(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    freshet_EntityColumn ec = freshet_EntityColumn_init_zero;
    ec.values.funcs.encode = probe_vals_cb;
    ec.values.arg = *arg;
    return pb_encode_tag_for_field(s, f) && pb_encode_submessage(s, freshet_EntityColumn_fields, &ec);
}

static int cmd_probe(int argc, char **argv)
{
    if (argc != 5)
        die("usage", "probe ADDR N BATCH");
    probe_t p = {(uint32_t)atol(argv[4])};
    freshet_GetRequest g = freshet_GetRequest_init_zero;
    g.features.funcs.encode = probe_feats_cb;
    g.entities.funcs.encode = probe_ents_cb;
    g.entities.arg = &p;
    fr_buf_t b;
    fr_buf_init(&b, 0);
    if (fr_frame_encode_msg(&b, 1, freshet_Op_OP_GET, freshet_GetRequest_fields, &g) != 0)
        die("probe", "encode");
    int fd = tcp_connect(argv[2]);
    send_all(fd, b.data, b.len);
    uint8_t hdr[FR_FRAME_HEADER];
    recv_all(fd, hdr, sizeof hdr);
    fr_frame_t f;
    fr_frame_decode(hdr, UINT32_MAX, &f);
    char *body = malloc(f.body_len + 1);
    recv_all(fd, body, f.body_len);
    printf("{\"request_body\": %zu, \"reply_body\": %u}\n", b.len - FR_FRAME_HEADER, f.body_len);
    close(fd);
    free(body);
    fr_buf_fini(&b);
    return 0;
}

typedef struct {
    const char *addr;
    uint32_t req, reply;
    double warm_until, stop_at;
    lat_t lat;
} echo_arg_t;

static void *echo_main(void *p)
{
    echo_arg_t *a = p;
    int fd = tcp_connect(a->addr);
    uint8_t *req = calloc(1, FR_FRAME_HEADER + a->req + 4), *rep = malloc(a->reply + 16);
    uint32_t body = a->req < 4 ? 4 : a->req;
    fr_frame_encode(req, body, 1, 1);
    fr_put_be32(req + FR_FRAME_HEADER, a->reply);
    for (;;) {
        double t0 = now_us();
        if (t0 >= a->stop_at)
            break;
        send_all(fd, req, FR_FRAME_HEADER + body);
        uint8_t hdr[FR_FRAME_HEADER];
        recv_all(fd, hdr, sizeof hdr);
        fr_frame_t f;
        fr_frame_decode(hdr, UINT32_MAX, &f);
        if (f.body_len != a->reply)
            die("echo", "wrong reply size");
        recv_all(fd, rep, f.body_len);
        double t1 = now_us();
        if (t0 >= a->warm_until)
            lat_add(&a->lat, t1 - t0);
    }
    close(fd);
    free(req);
    free(rep);
    return NULL;
}

static int cmd_echo(int argc, char **argv)
{
    if (argc != 7)
        die("usage", "echo ADDR REQ_BYTES REPLY_BYTES CLIENTS SECS");
    int clients = atoi(argv[5]);
    double secs = atof(argv[6]), start = now_us();
    echo_arg_t *args = calloc((size_t)clients, sizeof *args);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    for (int i = 0; i < clients; i++) {
        args[i] = (echo_arg_t){argv[2], (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]),
                               start + 3e5, start + 3e5 + secs * 1e6, {0}};
        pthread_create(&th[i], NULL, echo_main, &args[i]);
    }
    lat_t all = {0};
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        lat_merge(&all, &args[i].lat);
    }
    printf("{");
    print_lat("", &all, (double)all.n / secs);
    printf("}\n");
    return 0;
}

int main(int argc, char **argv)
{
    names_init();
    hmget_argv[0] = "HMGET";
    hmget_lens[0] = 5;
    for (int j = 0; j < NFEAT; j++) {
        hmget_argv[2 + j] = feat_names[j];
        hmget_lens[2 + j] = 3;
    }
    if (argc < 2)
        die("usage", "load|read|mixed|probe|echo ...");
    if (!strcmp(argv[1], "load"))
        return cmd_load(argc, argv);
    if (!strcmp(argv[1], "read"))
        return cmd_read(argc, argv);
    if (!strcmp(argv[1], "mixed"))
        return cmd_mixed(argc, argv);
    if (!strcmp(argv[1], "probe"))
        return cmd_probe(argc, argv);
    if (!strcmp(argv[1], "echo"))
        return cmd_echo(argc, argv);
    die("unknown command", argv[1]);
    return 2;
}
