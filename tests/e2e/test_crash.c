/* Crash consistency (issue: reliability): writers and readers run against freshetd, which is
 * killed with SIGKILL at random moments and restarted on the same directory. After every restart
 * each acknowledged row must be readable with its exact value, the environment must open, and
 * stream positions must equal the last acknowledged offset or later.
 *
 * FRESHET_CRASH_KILLS sets the number of kills per durability mode (default 6; tests/crash/run.sh
 * runs 60). Figures are printed to stderr as one `crash:` line per mode. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/support/harness.h"

#define WRITERS 2
#define ROWS_PER_PUT 4
#define MAX_ROWS 200000

static const char *REG = "{\"entities\": [{\"name\": \"k\", \"join_key\": \"k_id\"}],"
                         " \"views\": [{\"name\": \"crash\", \"entity\": \"k\", \"ttl\": 0,"
                         " \"features\": [{\"name\": \"seq\", \"type\": \"int64\"},"
                         " {\"name\": \"payload\", \"type\": \"string\"}]}]}";

typedef struct {
    char addr[128];
    int id;
    int64_t base_ts;
    atomic_long acked; /* rows acknowledged so far (prefix: 0..acked-1) */
    atomic_int stop;
    pthread_mutex_t *lock;
    pthread_cond_t *cond;
} writer_t;

static void entity_name(char *out, size_t n, int writer, long i)
{
    snprintf(out, n, "w%d-%ld", writer, i);
}

/* Streams puts of ROWS_PER_PUT rows with offsets (exactly-once source per writer) until the server
 * dies or stop is set. Row i has entity w<id>-<i>, seq = i, and offset i. */
static void *writer_main(void *arg)
{
    writer_t *w = arg;
    fr_client_t *c;
    if (fr_client_connect(w->addr, 5000, &c) != FR_OK)
        return NULL;
    long next = atomic_load(&w->acked);
    char src[32];
    snprintf(src, sizeof src, "writer-%d", w->id);
    while (!atomic_load(&w->stop) && next + ROWS_PER_PUT < MAX_ROWS) {
        fr_put_row_t rows[ROWS_PER_PUT];
        fr_value_t vals[ROWS_PER_PUT][2];
        char names[ROWS_PER_PUT][32], payload[ROWS_PER_PUT][48];
        for (int r = 0; r < ROWS_PER_PUT; r++) {
            long i = next + r;
            entity_name(names[r], sizeof names[r], w->id, i);
            snprintf(payload[r], sizeof payload[r], "payload-%d-%ld", w->id, i);
            vals[r][0] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = i};
            vals[r][1] = (fr_value_t){.type = FR_TYPE_STRING, .len = (uint32_t)strlen(payload[r]),
                                      .u.str = payload[r]};
            rows[r] = (fr_put_row_t){.view = "crash", .entity = names[r], .event_ts_us = w->base_ts + i,
                                     .values = vals[r], .value_count = 2, .offset = i};
        }
        fr_put_result_t res;
        if (fr_client_put(c, src, 0, rows, ROWS_PER_PUT, &res) != FR_OK)
            break; /* the server was killed */
        next += ROWS_PER_PUT;
        atomic_store(&w->acked, next);
        pthread_mutex_lock(w->lock);
        pthread_cond_broadcast(w->cond);
        pthread_mutex_unlock(w->lock);
    }
    fr_client_free(c);
    return NULL;
}

/* Reader: keeps issuing gets while writers run, to have read transactions open at kill time. */
static void *reader_main(void *arg)
{
    writer_t *w = arg; /* reads writer 0's first entities */
    fr_client_t *c;
    if (fr_client_connect(w->addr, 5000, &c) != FR_OK)
        return NULL;
    const char *feats[] = {"crash:seq"};
    while (!atomic_load(&w->stop)) {
        const char *ids[] = {"w0-0", "w0-1", "w1-0"};
        fr_entity_col_t col = {NULL, ids, NULL, 3};
        fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
        fr_result_t *r;
        if (fr_client_get(c, &req, &r) != FR_OK)
            break;
        fr_result_free(r);
    }
    fr_client_free(c);
    return NULL;
}

/* Verifies rows 0..acked-1 of writer id. Returns the number missing or wrong. */
static long verify(fr_client_t *c, int id, long acked)
{
    const char *feats[] = {"crash:seq", "crash:payload"};
    long bad = 0;
    enum { CHUNK = 500 };
    static char names[CHUNK][32];
    const char *ids[CHUNK];
    for (long start = 0; start < acked; start += CHUNK) {
        size_t n = (size_t)(acked - start < CHUNK ? acked - start : CHUNK);
        for (size_t k = 0; k < n; k++) {
            entity_name(names[k], sizeof names[k], id, start + (long)k);
            ids[k] = names[k];
        }
        fr_entity_col_t col = {NULL, ids, NULL, n};
        fr_get_req_t req = {.features = feats, .feature_count = 2, .entities = &col, .entity_col_count = 1};
        fr_result_t *r;
        E2E_ASSERT(fr_client_get(c, &req, &r) == FR_OK, "verify get failed: %s", fr_client_error(c));
        for (size_t k = 0; k < n; k++) {
            fr_value_t v, p;
            int st, st2;
            fr_result_cell(r, k, 0, &v, &st, NULL);
            fr_result_cell(r, k, 1, &p, &st2, NULL);
            char want[48];
            snprintf(want, sizeof want, "payload-%d-%ld", id, start + (long)k);
            if (st != FR_STATUS_PRESENT || v.u.i64 != start + (long)k || st2 != FR_STATUS_PRESENT ||
                p.len != strlen(want) || memcmp(p.u.str, want, p.len) != 0)
                bad++;
        }
        fr_result_free(r);
    }
    return bad;
}

/* wal: "on" with a checkpoint whenever the checkpointer is free, so kills also land during
 * checkpoints and recoveries replay across segments; "off": LMDB fsyncs its own pages. */
static void crash_loop(const char *durability, const char *wal)
{
    const char *kills_env = getenv("FRESHET_CRASH_KILLS");
    int kills = kills_env ? atoi(kills_env) : 6;
    const char *args[] = {"--durability", durability, "--sync-interval-ms", "50", "--wal", wal,
                          "--wal-checkpoint-mb", "0", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s != NULL, "freshetd did not start");
    E2E_ASSERT(fr_e2e_apply(s, REG, NULL) == FR_OK, "apply failed");
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    writer_t ws[WRITERS];
    int64_t base = fr_e2e_now_us() - 3600LL * 1000000;
    for (int i = 0; i < WRITERS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        ws[i].base_ts = base;
        ws[i].lock = &lock;
        ws[i].cond = &cond;
    }
    unsigned seed = 12345;
    long total_lost = 0, max_acked = 0;
    for (int k = 0; k < kills; k++) {
        pthread_t wt[WRITERS], rt;
        long before = 0;
        for (int i = 0; i < WRITERS; i++) {
            snprintf(ws[i].addr, sizeof ws[i].addr, "%s", s->addr);
            atomic_store(&ws[i].stop, 0);
            before += atomic_load(&ws[i].acked);
            pthread_create(&wt[i], NULL, writer_main, &ws[i]);
        }
        pthread_create(&rt, NULL, reader_main, &ws[0]);
        /* wait (on acknowledgements, not time) for a random amount of progress, then crash */
        long target = before + 40 + (long)(rand_r(&seed) % 400);
        pthread_mutex_lock(&lock);
        for (;;) {
            long now = 0;
            for (int i = 0; i < WRITERS; i++)
                now += atomic_load(&ws[i].acked);
            if (now >= target)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 20;
            E2E_ASSERT(pthread_cond_timedwait(&cond, &lock, &ts) == 0,
                       "writers made no progress for 20 s (acked %ld of %ld)", now, target);
        }
        pthread_mutex_unlock(&lock);
        fr_e2e_server_kill(s);
        for (int i = 0; i < WRITERS; i++)
            pthread_join(wt[i], NULL);
        atomic_store(&ws[0].stop, 1);
        pthread_join(rt, NULL);
        E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart %d failed: the environment did not open", k);
        fr_client_t *c = fr_e2e_connect(s);
        E2E_ASSERT(c != NULL, "connect after restart");
        fr_source_pos_t *pos = NULL;
        size_t npos = 0;
        E2E_ASSERT(fr_client_sources(c, &pos, &npos) == FR_OK, "sources");
        for (int i = 0; i < WRITERS; i++) {
            long acked = atomic_load(&ws[i].acked);
            long lost = verify(c, i, acked);
            total_lost += lost;
            E2E_ASSERT(lost == 0, "%s kill %d: %ld of %ld acknowledged rows of writer %d lost", durability,
                       k, lost, acked, i);
            char src[32];
            snprintf(src, sizeof src, "writer-%d", i);
            for (size_t p = 0; p < npos; p++)
                if (!strcmp(pos[p].source, src))
                    E2E_ASSERT(pos[p].offset >= acked - 1, "position %lld behind acked %ld",
                               (long long)pos[p].offset, acked - 1);
            /* resume after the stored position (what a restarted stream job does) */
            for (size_t p = 0; p < npos; p++)
                if (!strcmp(pos[p].source, src))
                    atomic_store(&ws[i].acked, pos[p].offset + 1 > acked ? pos[p].offset + 1 : acked);
        }
        free(pos);
        fr_client_free(c);
    }
    for (int i = 0; i < WRITERS; i++)
        max_acked += atomic_load(&ws[i].acked);
    fprintf(stderr, "crash: durability=%s wal=%s kills=%d rows_acked=%ld rows_lost=%ld corrupt_restarts=0\n",
            durability, wal, kills, max_acked, total_lost);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "clean stop");
    fr_e2e_server_free(s);
}

Test(crash, sync_mode_loses_no_acknowledged_row_across_kill_9, .timeout = 600)
{
    crash_loop("sync", "on");
}

Test(crash, sync_mode_without_the_log_loses_no_acknowledged_row_across_kill_9, .timeout = 600)
{
    crash_loop("sync", "off");
}

Test(crash, async_mode_survives_kill_9_of_the_process, .timeout = 600)
{
    /* A process crash leaves the page cache intact, so async loses nothing here either; what async
     * trades away is only an OS crash or power loss within sync_interval_ms, which a kill cannot
     * simulate. */
    crash_loop("async", "on");
}

Test(crash, nosync_mode_survives_kill_9_of_the_process, .timeout = 600)
{
    /* nosync fsyncs nothing at commit; a process crash still loses nothing (the page cache has
     * every committed page). Only an OS crash could, which a kill cannot simulate. */
    crash_loop("nosync", "off");
}
