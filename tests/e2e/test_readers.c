/* LMDB reader slots of a real freshetd: exports that pin snapshots are capped so that the
 * checkpointer, backups and the workers always find a slot; a checkpoint that fails (here: every
 * slot taken by another process) is logged with its reason, and its recovery too. */
#define _GNU_SOURCE 1 /* sched_setaffinity */
#include <lmdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2e/support/harness.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"0\","
    " \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"s\", \"type\": \"string\"}]}]}";

/* The value of a Prometheus series from GET /metrics on addr, or -1. */
static double scrape(const char *addr, const char *series)
{
    int fd = fr_e2e_raw_connect(addr);
    if (fd < 0)
        return -1;
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if (fr_e2e_raw_write(fd, req, sizeof req - 1)) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0)
        if ((len += (size_t)got) + 4096 > cap)
            buf = realloc(buf, cap *= 2);
    close(fd);
    buf[len] = 0;
    double v = -1;
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s ", series);
    const char *p = strstr(buf, needle);
    if (p)
        v = strtod(p + strlen(needle), NULL);
    free(buf);
    return v;
}

/* n rows of 1000 entities each with a ~200-byte string: enough log for checkpoints of 1 MiB */
static void put_batch(const fr_e2e_server_t *s, int round)
{
    fr_client_t *c = fr_e2e_connect(s);
    E2E_ASSERT(c, "connect");
    enum { N = 1000 };
    static fr_put_row_t rows[N];
    static fr_value_t vals[N][2];
    static char names[N][24];
    static char text[201];
    memset(text, 'a' + round % 26, 200);
    int64_t now = fr_e2e_now_us();
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "e%d", i);
        vals[i][0] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = round};
        vals[i][1] = (fr_value_t){.type = FR_TYPE_STRING, .len = 200, .u.str = text};
        rows[i] = (fr_put_row_t){.view = "v", .entity = names[i], .event_ts_us = now - 1000 + round,
                                 .values = vals[i], .value_count = 2};
    }
    fr_put_result_t res;
    E2E_ASSERT(fr_client_put(c, NULL, 0, rows, N, &res) == FR_OK, "put round %d: %s", round,
               fr_client_error(c));
    fr_client_free(c);
}

/* The first chunk of a snapshot export (10 entities), which pins the connection's snapshot. */
static int export_chunk(fr_client_t *c, bool end)
{
    static const char *const features[] = {"v:x"};
    fr_export_req_t req = {.kind = FR_EXPORT_SNAPSHOT, .features = features, .feature_count = 1,
                           .limit = 10, .end = end};
    uint32_t id;
    int rc = fr_client_export_send(c, &req, &id);
    fr_result_t *r = NULL;
    if (rc == FR_OK)
        rc = fr_client_export_recv(c, id, &r);
    fr_result_free(r);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Regression: every snapshot/PIT export pinned its own read transaction without a cap; open
 * exports took the reader slots, the checkpointer found none (failures counted, nothing logged),
 * the log grew and backups failed. Now exports past max_readers' share are refused with BUSY
 * naming max_readers, while checkpoints and a backup go on. */
Test(readers, exports_past_the_reader_slot_cap_are_refused_and_checkpoints_go_on, .timeout = 180)
{
    /* 10 slots: 2 workers + HTTP + 2 for checkpoints fixed, 2 kept for a backup and an HTTP
     * export: 3 exports */
    static const char *const args[] = {"--max-readers", "10", "--wal-checkpoint-mb", "1",
                                       "--http", "127.0.0.1:0", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && s->http_addr[0], "server starts");
    E2E_ASSERT(fr_e2e_apply(s, REG, NULL) == FR_OK, "apply");
    put_batch(s, 0);
    fr_client_t *ex[4];
    for (int i = 0; i < 4; i++) {
        ex[i] = fr_e2e_connect(s);
        E2E_ASSERT(ex[i], "connect %d", i);
    }
    for (int i = 0; i < 3; i++)
        E2E_ASSERT(export_chunk(ex[i], false) == FR_OK, "export %d: %s", i,
                   fr_client_error(ex[i]));
    int rc = export_chunk(ex[3], false);
    E2E_ASSERT(rc == FR_E_BUSY, "the 4th export is refused with BUSY (got %d: %s)", rc,
               fr_client_error(ex[3]));
    E2E_ASSERT(strstr(fr_client_error(ex[3]), "max_readers=10") &&
                   strstr(fr_client_error(ex[3]), "too many exports at once"),
               "the refusal names max_readers: %s", fr_client_error(ex[3]));
    /* writes go on and are checkpointed while the three exports stay open */
    double ck0 = scrape(s->http_addr, "freshet_wal_checkpoints_total");
    E2E_ASSERT(ck0 >= 1, "checkpoints metric: %f", ck0);
    for (int round = 1; round <= 30; round++)
        put_batch(s, round);
    double ck = ck0;
    for (int i = 0; i < 500 && ck < ck0 + 3; i++) { /* poll, 10 s at most */
        ck = scrape(s->http_addr, "freshet_wal_checkpoints_total");
        if (ck < ck0 + 3)
            sleep_ms(20);
    }
    E2E_ASSERT(ck >= ck0 + 3, "checkpoints went on under writes: %f -> %f", ck0, ck);
    E2E_ASSERT(scrape(s->http_addr, "freshet_wal_checkpoint_failures_total") == 0,
               "no checkpoint failed");
    /* a backup finds its slot */
    fr_client_t *b = fr_e2e_connect(s);
    char dest[300];
    snprintf(dest, sizeof dest, "%s/backup", s->dir);
    uint64_t bytes = 0, us = 0;
    E2E_ASSERT(fr_client_backup(b, dest, true, &bytes, &us) == FR_OK, "backup: %s",
               fr_client_error(b));
    fr_client_free(b);
    /* an export that ends gives its slot back before its last reply: the refused one gets it */
    E2E_ASSERT(export_chunk(ex[0], true) == FR_OK, "end export 0: %s", fr_client_error(ex[0]));
    rc = export_chunk(ex[3], false);
    E2E_ASSERT(rc == FR_OK, "export 3 after one ended: %s", fr_client_error(ex[3]));
    /* so does a closed connection */
    fr_client_free(ex[1]);
    ex[1] = NULL;
    fr_client_t *late = fr_e2e_connect(s);
    rc = FR_E_BUSY;
    for (int i = 0; i < 500 && rc == FR_E_BUSY; i++) { /* the close reaches the server async */
        rc = export_chunk(late, false);
        if (rc == FR_E_BUSY)
            sleep_ms(10);
    }
    E2E_ASSERT(rc == FR_OK, "an export after a connection closed: %s", fr_client_error(late));
    fr_client_free(late);
    for (int i = 0; i < 4; i++)
        if (ex[i])
            fr_client_free(ex[i]);
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=checkpoint_failed") == 0,
               "no checkpoint failure logged");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: an ending export's last reply was sent before its worker gave the reader slot
 * back, so a client starting the next export the moment it had that reply, on a connection
 * served by another worker, could be refused BUSY ("too many exports at once") though nothing
 * else held the slot. With room for exactly one export, exports started back to back on two
 * connections (one per worker) are never refused. */
Test(readers, an_export_started_right_after_one_ended_is_never_refused_busy, .timeout = 180)
{
    /* One CPU for this process and the server it forks: a worker that has just sent a reply is
     * then often preempted by the woken client before it runs on, which is what exposed the slot
     * given back after the reply. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0, "pin to one CPU");
    /* 8 slots (the least allowed): 2 workers + HTTP + 2 for checkpoints fixed, 2 kept for a
     * backup and an HTTP export: 1 export */
    static const char *const args[] = {"--max-readers", "8", "--threads", "2",
                                       "--http", "127.0.0.1:0", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "server starts");
    E2E_ASSERT(fr_e2e_apply(s, REG, NULL) == FR_OK, "apply");
    put_batch(s, 0);
    fr_client_t *c[2];
    for (int i = 0; i < 2; i++) { /* connections go to the workers in turn: one each */
        c[i] = fr_e2e_connect(s);
        E2E_ASSERT(c[i], "connect %d", i);
    }
    /* the cap is one: a second open export is refused */
    E2E_ASSERT(export_chunk(c[0], false) == FR_OK, "open export: %s", fr_client_error(c[0]));
    E2E_ASSERT(export_chunk(c[1], true) == FR_E_BUSY, "a second export while one is open");
    E2E_ASSERT(export_chunk(c[0], true) == FR_OK, "end it: %s", fr_client_error(c[0]));
    for (int i = 0; i < 2000; i++) {
        fr_client_t *x = c[i % 2];
        int rc = export_chunk(x, true); /* one chunk that is also the last */
        E2E_ASSERT(rc == FR_OK, "export %d, right after the previous one ended: %d %s", i, rc,
                   fr_client_error(x));
    }
    for (int i = 0; i < 2; i++)
        fr_client_free(c[i]);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: a failed checkpoint was only counted (wal_checkpoint_failures_total); the log
 * said nothing while the write-ahead log grew. Here another process reading the environment
 * takes every free reader slot, so the checkpointer cannot pin its snapshot. */
Test(readers, a_failed_checkpoint_is_logged_with_its_reason_and_so_is_the_recovery, .timeout = 120)
{
    static const char *const args[] = {"--max-readers", "8", "--wal-checkpoint-mb", "0", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "server starts");
    E2E_ASSERT(fr_e2e_apply(s, REG, NULL) == FR_OK, "apply");
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxreaders(env, 8), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
    cr_assert_eq(mdb_env_open(env, s->data, MDB_NOTLS | MDB_RDONLY, 0640), 0);
    /* take every free slot; a checkpoint holds two for a moment (the new pin before the old one
     * is released), so keep taking the slot it frees until the next one cannot pin */
    MDB_txn *held[16];
    int n = 0;
    while (n < 16 && mdb_txn_begin(env, NULL, MDB_RDONLY, &held[n]) == 0)
        n++;
    E2E_ASSERT(n > 0 && n < 16, "took the free slots (%d)", n);
    int logged = 0;
    for (int i = 0; i < 500 && !logged; i++) {
        put_batch(s, 1 + i); /* its commit asks for a checkpoint */
        while (n < 16 && mdb_txn_begin(env, NULL, MDB_RDONLY, &held[n]) == 0)
            n++;
        logged = fr_e2e_lines_with(s->log_path, "event=checkpoint_failed reason=\"cannot pin the "
                                                "snapshot to checkpoint: no free LMDB reader slot");
        /* until the next round, take any slot the moment it frees (the closed connection's, or
         * the checkpointer's old pin), before the checkpointer can pin with it */
        for (int64_t until = fr_e2e_now_us() + 20000; !logged && fr_e2e_now_us() < until;)
            while (n < 16 && mdb_txn_begin(env, NULL, MDB_RDONLY, &held[n]) == 0)
                n++;
    }
    E2E_ASSERT(logged == 1, "one event=checkpoint_failed line naming the reason (%d)", logged);
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "max_readers=8") >= 1, "the reason names max_readers");
    for (int i = 0; i < 5; i++)
        put_batch(s, 3 + i); /* more failures inside the rate limit: not one line each */
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=checkpoint_failed") == 1, "rate-limited");
    for (int i = 0; i < n; i++)
        mdb_txn_abort(held[i]);
    mdb_env_close(env);
    int recovered = 0;
    for (int i = 0; i < 500 && !recovered; i++) {
        put_batch(s, 10 + i);
        recovered = fr_e2e_lines_with(s->log_path, "event=checkpoint_recovered");
        if (!recovered)
            sleep_ms(10);
    }
    E2E_ASSERT(recovered == 1, "event=checkpoint_recovered once the slots are free");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}
