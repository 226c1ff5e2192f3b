/* Limits and backpressure against a real freshetd: slow clients are cut off, a full write queue
 * answers BUSY and libfreshet resends in order (exactly-once streams stay exact), a client that
 * does not read its replies is paused instead of growing server memory, and the connection and
 * request-size limits answer with their errors. */
#include <errno.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e/support/harness.h"

static const char *REG = "{\"entities\": [{\"name\": \"k\", \"join_key\": \"k_id\"}],"
                         " \"views\": [{\"name\": \"lim\", \"entity\": \"k\", \"ttl\": 0,"
                         " \"features\": [{\"name\": \"n\", \"type\": \"int64\"},"
                         " {\"name\": \"blob\", \"type\": \"string\"}]}]}";

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

Test(limits, a_client_trickling_a_frame_is_closed_after_read_timeout, .timeout = 60)
{
    const char *args[] = {"--read-timeout-ms", "300", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start");
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    uint8_t hdr[10];
    fr_e2e_frame_header(hdr, 100, 1, 5);
    E2E_ASSERT(fr_e2e_raw_write(fd, hdr, 10) == 0 && fr_e2e_raw_write(fd, "xy", 2) == 0, "send part");
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 5000) == 0, "server kept a half-sent frame open past read_timeout_ms");
    close(fd);
    /* an idle connection (no partial frame) is not subject to the read timeout */
    int idle = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fr_e2e_raw_wait_closed(idle, 800) == -1, "idle connection was closed by the read timeout");
    E2E_ASSERT(fr_e2e_raw_send(idle, 9, 5, "", 0) == 0, "status on the idle connection");
    uint32_t id;
    uint16_t op;
    uint8_t *body;
    size_t len;
    E2E_ASSERT(fr_e2e_raw_recv(idle, 5000, &id, &op, &body, &len) == 0 && id == 9, "status reply");
    free(body);
    close(idle);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends buf one byte at a time, one every pace_ms (the pacing is the workload; each pause is a
 * wait for the server to close, so a close ends it at once). 0 when all was sent, 1 when the
 * server closed first. */
static int trickle(int fd, const uint8_t *buf, size_t len, int pace_ms)
{
    for (size_t i = 0; i < len; i++) {
        if (send(fd, buf + i, 1, MSG_NOSIGNAL) != 1)
            return 1;
        if (i + 1 < len && fr_e2e_raw_wait_closed(fd, pace_ms) == 0)
            return 1;
    }
    return 0;
}

/* Regression: read_timeout_ms was libevent's read timeout, which restarts on every read, so a
 * client sending one byte of a frame every 100 ms (well within any per-read timeout) held its
 * connection and input buffer forever. The deadline now runs from the frame's first byte. */
Test(limits, a_frame_trickled_byte_by_byte_is_closed_at_its_deadline, .timeout = 30)
{
    const char *args[] = {"--read-timeout-ms", "600", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start");
    /* a frame completed within the deadline is answered, however slowly its bytes come; each
     * frame of a pipelined stream gets its own deadline (4 frames take longer than one) */
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    for (uint32_t k = 1; k <= 4; k++) {
        uint8_t hdr[10];
        fr_e2e_frame_header(hdr, 0, k, 5); /* Status, empty body */
        E2E_ASSERT(trickle(fd, hdr, sizeof hdr, 25) == 0, "frame %u: closed while in time", k);
        uint32_t id;
        uint16_t op;
        uint8_t *body;
        size_t len;
        E2E_ASSERT(fr_e2e_raw_recv(fd, 5000, &id, &op, &body, &len) == 0 && id == k, "status %u reply", k);
        free(body);
    }
    close(fd);
    /* a frame that never completes: one byte every 100 ms must not keep it open */
    fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    uint8_t frame[10 + 1000];
    memset(frame, 'x', sizeof frame);
    fr_e2e_frame_header(frame, 1000, 7, 3);
    int64_t t0 = mono_ms();
    int closed = 0;
    for (size_t i = 0; i < sizeof frame && !closed && mono_ms() - t0 < 5000; i++) {
        if (send(fd, frame + i, 1, MSG_NOSIGNAL) != 1)
            closed = 1;
        else
            closed = fr_e2e_raw_wait_closed(fd, 100) == 0;
    }
    int64_t took = mono_ms() - t0;
    E2E_ASSERT(closed, "a frame trickled at 10 bytes/s was still open after %lld ms (read_timeout_ms 600)",
               (long long)took);
    E2E_ASSERT(took >= 500 && took < 3000, "closed after %lld ms, deadline 600", (long long)took);
    close(fd);
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=read_timeout") == 1, "the close is logged");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Lines of s's log holding needle, polled (every 20 ms) until there is one or timeout_ms passed. */
static int wait_log(const fr_e2e_server_t *s, const char *needle, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    int n;
    while ((n = fr_e2e_lines_with(s->log_path, needle)) == 0 && mono_ms() < until)
        poll(NULL, 0, 20);
    return n;
}

/* A raw Put frame body: one row of view lim, entity e, values [x, nil]. */
static void put_body(fr_e2e_pb_t *out, const char *e, int64_t ts, int64_t x)
{
    uint8_t mp[11] = {0x92, 0xd3};
    for (int i = 0; i < 8; i++)
        mp[2 + i] = (uint8_t)((uint64_t)x >> (56 - 8 * i));
    mp[10] = 0xc0;
    fr_e2e_pb_t row = {0};
    fr_e2e_pb_bytes(&row, 1, "lim", 3);
    fr_e2e_pb_bytes(&row, 2, e, strlen(e));
    fr_e2e_pb_sint(&row, 3, ts);
    fr_e2e_pb_bytes(&row, 4, mp, sizeof mp);
    fr_e2e_pb_bytes(out, 1, row.data, row.len);
    fr_e2e_pb_free(&row);
}

/* Regression: idle_timeout_ms was libevent's read timeout, so a connection whose Put waited at
 * the writer (a slow commit, a Backup) longer than that was closed and its reply lost. The test
 * holds LMDB's write lock from this process, so the server's commit waits for it. */
Test(limits, idle_timeout_spares_a_connection_with_a_request_in_flight, .timeout = 30)
{
    const char *args[] = {"--idle-timeout-ms", "300", "--map-size-mb", "64", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && fr_e2e_apply(s, REG, NULL) == FR_OK, "start/apply");
    MDB_env *env;
    MDB_txn *txn;
    E2E_ASSERT(mdb_env_create(&env) == 0 && mdb_env_set_mapsize(env, 64u << 20) == 0, "env");
    E2E_ASSERT(mdb_env_open(env, s->data, 0, 0640) == 0, "open %s", s->data);
    E2E_ASSERT(mdb_txn_begin(env, NULL, 0, &txn) == 0, "take the write lock");
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    fr_e2e_pb_t put = {0};
    put_body(&put, "held", 1000, 7);
    E2E_ASSERT(fr_e2e_raw_send(fd, 1, 3, put.data, put.len) == 0, "send put");
    /* the Put is at the writer for 4 idle periods: the connection must stay */
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 1200) == -1,
               "closed as idle while its Put was in progress");
    mdb_txn_abort(txn);
    mdb_env_close(env);
    uint32_t id;
    uint16_t op;
    uint8_t *body;
    size_t len;
    int code = -1;
    char msg[256];
    E2E_ASSERT(fr_e2e_raw_recv(fd, 10000, &id, &op, &body, &len) == 0 && id == 1, "put reply");
    E2E_ASSERT(fr_e2e_pb_code(body, len, &code, msg, sizeof msg) == 0 && code == FR_OK, "put: %d %s", code, msg);
    free(body);
    /* now nothing is in flight: idle, closed */
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 5000) == 0, "an idle connection was not closed");
    close(fd);
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=idle_timeout") >= 1, "logged");
    fr_e2e_pb_free(&put);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Stores one ~64 KiB row `big` and connects a raw socket with a small receive buffer that has
 * sent n pipelined Gets of it (~64 KiB replies each). */
static int big_replies(fr_e2e_server_t *s, int n)
{
    fr_client_t *c = fr_e2e_connect(s);
    static char blob[65536];
    memset(blob, 'x', sizeof blob - 1);
    fr_value_t v[2] = {{.type = FR_TYPE_INT64, .u.i64 = 1},
                       {.type = FR_TYPE_STRING, .len = sizeof blob - 1, .u.str = blob}};
    fr_put_row_t row = {.view = "lim", .entity = "big", .event_ts_us = 5, .values = v, .value_count = 2};
    fr_put_result_t res;
    E2E_ASSERT(c && fr_client_put(c, NULL, 0, &row, 1, &res) == FR_OK, "put");
    fr_client_free(c);
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    int rcv = 65536;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    fr_e2e_pb_t req = {0}, col = {0}, wire = {0};
    fr_e2e_pb_bytes(&req, 1, "lim:blob", 8);
    fr_e2e_pb_bytes(&col, 2, "big", 3);
    fr_e2e_pb_bytes(&req, 2, col.data, col.len);
    for (int i = 0; i < n; i++) {
        uint8_t hdr[10];
        fr_e2e_frame_header(hdr, (uint32_t)req.len, (uint32_t)i + 1, 4);
        fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
        fr_e2e_pb_raw(&wire, req.data, req.len);
    }
    E2E_ASSERT(fr_e2e_raw_write(fd, wire.data, wire.len) == 0, "send gets");
    fr_e2e_pb_free(&req);
    fr_e2e_pb_free(&col);
    fr_e2e_pb_free(&wire);
    return fd;
}

/* Regression: the idle timer closed a connection whose replies were still queued because its
 * client, busy reading them slowly, sent nothing (a 10 MB reply was cut off after 4 MB). */
Test(limits, idle_timeout_spares_a_connection_whose_replies_are_being_read, .timeout = 30)
{
    const char *args[] = {"--idle-timeout-ms", "300", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && fr_e2e_apply(s, REG, NULL) == FR_OK, "start/apply");
    enum { N = 160 }; /* ~10 MiB of replies */
    int fd = big_replies(s, N);
    for (int got = 0; got < N; got++) {
        uint32_t id;
        uint16_t op;
        uint8_t *body;
        size_t len;
        E2E_ASSERT(fr_e2e_raw_recv(fd, 5000, &id, &op, &body, &len) == 0,
                   "reply %d of %d missing: the connection was cut while its replies were read", got, N);
        E2E_ASSERT(id == (uint32_t)got + 1 && len > 65536, "reply %d: id %u len %zu", got, id, len);
        free(body);
        /* the workload: a slow reader, ~6 MiB/s, so the replies take over 1.5 s (5 idle periods) */
        struct timespec pace = {0, 10 * 1000 * 1000};
        nanosleep(&pace, NULL);
    }
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 5000) == 0, "idle after its replies, but not closed");
    close(fd);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* A peer that stops reading while replies are queued is closed after idle_timeout_ms without
 * progress (write_timeout), instead of holding them for ever. */
Test(limits, a_peer_that_stops_reading_is_closed_after_idle_timeout, .timeout = 30)
{
    const char *args[] = {"--idle-timeout-ms", "300", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && fr_e2e_apply(s, REG, NULL) == FR_OK, "start/apply");
    int fd = big_replies(s, 160);
    E2E_ASSERT(wait_log(s, "event=write_timeout", 5000) == 1,
               "a peer reading nothing for 300 ms was not closed within 5 s");
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=idle_timeout") == 0, "closed as idle instead");
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 5000) == 0, "closed");
    close(fd);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

typedef struct {
    const char *addr;
    int id;
    long rows;
    int rc;
} streamer_t;

static void *streamer(void *arg)
{
    streamer_t *st = arg;
    fr_client_t *c;
    st->rc = fr_client_connect(st->addr, 20000, &c);
    if (st->rc != FR_OK)
        return NULL;
    fr_client_set_batch(c, 5); /* many small frames pipelined 8 deep: the queue of 1 overflows */
    fr_put_row_t *rows = calloc((size_t)st->rows, sizeof *rows);
    fr_value_t *vals = calloc((size_t)st->rows, sizeof *vals);
    char (*names)[24] = calloc((size_t)st->rows, sizeof *names);
    for (long i = 0; i < st->rows; i++) {
        snprintf(names[i], sizeof names[i], "s%d-%ld", st->id, i);
        vals[i] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = i};
        rows[i] = (fr_put_row_t){.view = "lim", .entity = names[i], .event_ts_us = 1000 + i,
                                 .values = &vals[i], .value_count = 1, .offset = i};
    }
    char src[16];
    snprintf(src, sizeof src, "stream-%d", st->id);
    fr_put_result_t res;
    st->rc = fr_client_put(c, src, 0, rows, (size_t)st->rows, &res);
    if (st->rc == FR_OK && res.rows_written != (uint64_t)st->rows)
        st->rc = FR_E_INTERNAL;
    free(rows);
    free(vals);
    free(names);
    fr_client_free(c);
    return NULL;
}

Test(limits, busy_queue_is_retried_in_order_and_streams_stay_exactly_once, .timeout = 120)
{
    const char *args[] = {"--max-queue", "1", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && fr_e2e_apply(s, REG, NULL) == FR_OK, "start/apply");
    enum { STREAMS = 3, ROWS = 600 };
    pthread_t th[STREAMS];
    streamer_t st[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        st[i] = (streamer_t){s->addr, i, ROWS, 0};
        pthread_create(&th[i], NULL, streamer, &st[i]);
    }
    for (int i = 0; i < STREAMS; i++) {
        pthread_join(th[i], NULL);
        E2E_ASSERT(st[i].rc == FR_OK, "stream %d failed: %s", i, fr_err_name(st[i].rc));
    }
    fr_client_t *c = fr_e2e_connect(s);
    fr_source_pos_t *pos;
    size_t n;
    E2E_ASSERT(fr_client_sources(c, &pos, &n) == FR_OK && n == STREAMS, "sources");
    for (size_t i = 0; i < n; i++)
        E2E_ASSERT(pos[i].offset == ROWS - 1, "%s at %lld", pos[i].source, (long long)pos[i].offset);
    free(pos);
    fr_server_status_t stt;
    E2E_ASSERT(fr_client_status(c, &stt) == FR_OK, "status");
    E2E_ASSERT(stt.views[0].versions == STREAMS * ROWS, "versions %llu, expected %d (a row lost or doubled)",
               (unsigned long long)stt.views[0].versions, STREAMS * ROWS);
    fr_server_status_fini(&stt);
    fr_client_free(c);
    /* the server did refuse work: the retries were real */
    int busy = fr_e2e_lines_with(s->log_path, "event=write_queue_full");
    E2E_ASSERT(busy > 0, "the queue of 1 never overflowed: the test did not exercise BUSY");
    fprintf(stderr, "limits: %d BUSY refusals retried in order\n", busy);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

Test(limits, a_client_that_never_reads_replies_is_paused_not_buffered, .timeout = 120)
{
    const char *args[] = {"--max-output-mb", "1", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && fr_e2e_apply(s, REG, NULL) == FR_OK, "start/apply");
    /* one 64 KiB row, read back by many pipelined Gets: each reply is ~64 KiB */
    fr_client_t *c = fr_e2e_connect(s);
    static char blob[65536];
    memset(blob, 'x', sizeof blob - 1);
    fr_value_t v[2] = {{.type = FR_TYPE_INT64, .u.i64 = 1},
                       {.type = FR_TYPE_STRING, .len = sizeof blob - 1, .u.str = blob}};
    fr_put_row_t row = {.view = "lim", .entity = "big", .event_ts_us = 5, .values = v, .value_count = 2};
    fr_put_result_t res;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &row, 1, &res) == FR_OK, "put");
    fr_client_free(c);
    long before = rss_kb(s->pid);
    int fd = fr_e2e_raw_connect(s->addr);
    fr_e2e_pb_t req = {0};
    fr_e2e_pb_bytes(&req, 1, "lim:blob", 8);
    fr_e2e_pb_t col = {0};
    fr_e2e_pb_bytes(&col, 2, "big", 3);
    fr_e2e_pb_bytes(&req, 2, col.data, col.len);
    enum { N = 1500 }; /* ~96 MiB of replies if the server buffered them all */
    /* send from a thread-free loop: the socket send buffer fills once the server pauses us, so
     * send what fits, then read everything and check every reply arrived */
    int sent = 0, got = 0;
    while (got < N) {
        while (sent < N && sent - got < 200) {
            E2E_ASSERT(fr_e2e_raw_send(fd, (uint32_t)sent + 1, 4, req.data, req.len) == 0, "send %d", sent);
            sent++;
        }
        uint32_t id;
        uint16_t op;
        uint8_t *body;
        size_t len;
        E2E_ASSERT(fr_e2e_raw_recv(fd, 10000, &id, &op, &body, &len) == 0, "reply %d missing", got);
        E2E_ASSERT(id == (uint32_t)got + 1 && len > 65536, "reply %d: id %u len %zu", got, id, len);
        free(body);
        got++;
        if (got == 200) {
            /* stop reading while the server has ~200 replies (12 MiB) for us: it must pause */
            long during = rss_kb(s->pid);
            fprintf(stderr, "limits: rss before %ld kB, while a client ignores replies %ld kB\n", before, during);
        }
    }
    close(fd);
    fr_e2e_pb_free(&req);
    fr_e2e_pb_free(&col);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

Test(limits, connection_and_request_limits_answer_with_errors, .timeout = 60)
{
    const char *args[] = {"--max-connections", "2", "--max-entities", "3", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start"); /* no apply: its connection would count against the limit */
    fr_client_t *a = fr_e2e_connect(s), *b = fr_e2e_connect(s);
    E2E_ASSERT(a && b, "two connections");
    fr_server_status_t st;
    E2E_ASSERT(fr_client_status(a, &st) == FR_OK, "first works");
    fr_server_status_fini(&st);
    E2E_ASSERT(fr_client_status(b, &st) == FR_OK, "second works");
    fr_server_status_fini(&st);
    int third = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(third >= 0, "tcp connect");
    E2E_ASSERT(fr_e2e_raw_wait_closed(third, 5000) == 0, "third connection was not closed");
    close(third);
    const char *ids[] = {"a", "b", "c", "d"};
    const char *feats[] = {"lim:n"};
    fr_entity_col_t col = {NULL, ids, NULL, 4};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    fr_result_t *r = NULL;
    E2E_ASSERT(fr_client_get(a, &req, &r) == FR_E_TOO_LARGE, "4 entities over max_entities 3");
    E2E_ASSERT(strstr(fr_client_error(a), "max_entities") != NULL, "message names the limit: %s",
               fr_client_error(a));
    col.count = 3;
    /* within the limit the request gets as far as resolving the (unapplied) view */
    E2E_ASSERT(fr_client_get(a, &req, &r) == FR_E_UNKNOWN_VIEW, "3 entities pass the limit");
    fr_client_free(a);
    fr_client_free(b);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}
