/* Fuzz target: the HTTP JSON bodies (POST /get-online-features, /push, /v1/export) through the
 * real route table of a real server (LMDB store in a temp dir, registry applied). The first input
 * byte picks the endpoint, the rest is the body. Requests have no connection, so libevent drops
 * the replies after they are encoded; pushes are refused at the queue (the writer is stopped). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "freshet/err.h"
#include "server/server_int.h"

static fr_server_t *srv;
static fr_worker_t worker;
static char dir[64];

static void cleanup(void)
{
    fr_worker_join(&worker);
    fr_server_free(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_http: cannot remove %s\n", dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fr_fuzz_http_XXXXXX");
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
    pthread_mutex_init(&srv->writer.lock, NULL);
    pthread_cond_init(&srv->writer.cond, NULL);
    srv->writer.stop = 1;
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/get-online-features", "/push", "/v1/export"};
    if (!srv)
        setup();
    if (size < 1)
        return 0;
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    if (!req)
        return 0;
    evbuffer_add(evhttp_request_get_input_buffer(req), data + 1, size - 1);
    /* the reply (send without a connection) frees the request */
    fr_http_route(&worker, req, paths[data[0] % 3], EVHTTP_REQ_POST);
    return 0;
}
