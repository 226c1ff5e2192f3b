/* Shared set-up of the fuzz targets that drive a real server without sockets (fuzz_frame.c,
 * fuzz_http.c, fuzz_http_headers.c): a freshetd on a temp-dir LMDB store with a registry of every
 * feature type, one worker loop that is never run, and a stopped writer so submitted writes are
 * refused instead of queueing; with auth on, optionally. Freed at exit. */
#ifndef FR_FUZZ_SERVER_H
#define FR_FUZZ_SERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "server/server_int.h"

static fr_server_t *fuzz_srv;
static fr_worker_t fuzz_worker;
static char fuzz_dir[64];

static void fuzz_server_cleanup(void)
{
    fr_worker_join(&fuzz_worker);
    fr_server_free(fuzz_srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fuzz_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
}

/* auth_text NULL: auth off. Else the auth file's text (`NAME ROLE SHA256HEX` lines): every HTTP
 * route but the health checks needs a token, /metrics too (metrics_auth). */
static inline void fuzz_server_setup_with(const char *auth_text)
{
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/fr_fuzz_server_XXXXXX");
    if (!mkdtemp(fuzz_dir))
        abort();
    fr_config_t cfg;
    fr_config_defaults(&cfg);
    snprintf(cfg.data, sizeof cfg.data, "%s", fuzz_dir);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:0");
    cfg.map_size_mb = 64;
    if (auth_text) { /* read by fr_server_new (and SIGHUP, which never comes): kept in fuzz_dir */
        snprintf(cfg.auth_file, sizeof cfg.auth_file, "%s/tokens", fuzz_dir);
        FILE *f = fopen(cfg.auth_file, "w");
        if (!f || fputs(auth_text, f) < 0 || fclose(f) != 0)
            abort();
        cfg.metrics_auth = 1;
    }
    const char *why;
    if (fr_server_new(&cfg, NULL, &fuzz_srv, &why) != FR_OK)
        abort();
    static const char reg[] =
        "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
        " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"10m\", \"features\": ["
        "{\"name\": \"i\", \"type\": \"int64\"}, {\"name\": \"d\", \"type\": \"double\"},"
        "{\"name\": \"s\", \"type\": \"string\"}, {\"name\": \"e\", \"type\": \"float_list\", \"dim\": 2}]}]}";
    fr_wtxn_t *w;
    if (fr_store_write_begin(fuzz_srv->store, &w) != FR_OK ||
        fr_store_write_registry(w, reg, sizeof reg - 1, false, NULL, &why) != FR_OK ||
        fr_store_write_commit(w) != FR_OK)
        abort();
    if (fr_worker_init(fuzz_srv, &fuzz_worker, 0) != FR_OK)
        abort();
    pthread_mutex_init(&fuzz_srv->writer.lock, NULL);
    pthread_cond_init(&fuzz_srv->writer.cond, NULL);
    fuzz_srv->writer.stop = 1;
    atexit(fuzz_server_cleanup);
}

static inline void fuzz_server_setup(void)
{
    fuzz_server_setup_with(NULL);
}

#endif
