/* Fuzz target: every request decoder of freshetd, through the real dispatch table. The input's
 * first two bytes are the op, the rest is the frame body; it is handed to fr_handle_frame on a
 * worker of a real server (real LMDB store in a temp dir, a registry applied) whose connection has
 * no socket, so replies are encoded and dropped. Writes are refused at the queue (the writer is
 * stopped), so every Put still goes through decoding and validation. Backup is skipped: it copies
 * the store to a path taken from the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "server/server_int.h"

static fr_server_t *srv;
static fr_worker_t worker;
static fr_conn_t conn;
static char dir[64];

static void cleanup(void)
{
    fr_conn_export_end(&conn);
    fr_worker_join(&worker);
    fr_server_free(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_frame: cannot remove %s\n", dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fr_fuzz_frame_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    fr_config_t cfg;
    fr_config_defaults(&cfg);
    snprintf(cfg.data, sizeof cfg.data, "%s", dir);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    cfg.map_size_mb = 64;
    const char *why;
    if (fr_server_new(&cfg, NULL, &srv, &why) != FR_OK)
        abort();
    static const char reg[] =
        "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
        " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"10m\", \"features\": ["
        "{\"name\": \"i\", \"type\": \"int64\"}, {\"name\": \"d\", \"type\": \"double\"},"
        "{\"name\": \"s\", \"type\": \"string\"}, {\"name\": \"e\", \"type\": \"float_list\", \"dim\": 2}]}]}";
    fr_wtxn_t *w;
    if (fr_store_write_begin(srv->store, &w) != FR_OK ||
        fr_store_write_registry(w, reg, sizeof reg - 1, false, NULL, &why) != FR_OK ||
        fr_store_write_commit(w) != FR_OK)
        abort();
    if (fr_worker_init(srv, &worker, 0) != FR_OK)
        abort();
    /* the writer is not running: submissions are refused, so nothing queues up */
    pthread_mutex_init(&srv->writer.lock, NULL);
    pthread_cond_init(&srv->writer.cond, NULL);
    srv->writer.stop = 1;
    conn.worker = &worker;
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        setup();
    if (size < 2)
        return 0;
    fr_frame_t f = {.body_len = (uint32_t)(size - 2), .request_id = 7,
                    .op = (uint16_t)((data[0] << 8) | data[1])};
    if (f.op == freshet_Op_OP_BACKUP)
        return 0;
    uint8_t *body = malloc(size - 2 ? size - 2 : 1); /* exact size: ASan sees any overread */
    memcpy(body, data + 2, size - 2);
    fr_handle_frame(&worker, &conn, &f, body);
    free(body);
    fr_conn_export_end(&conn);
    return 0;
}
