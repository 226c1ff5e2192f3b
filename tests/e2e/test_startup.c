/* freshetd's start and stop around its NATS consumer and its configuration: a NATS that cannot be
 * reached at start does not keep SIGTERM from stopping the server; bad ingest URLs are refused
 * when the configuration is read, with a message naming the key. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/support/harness.h"

/* Runs freshetd (bounded by `timeout`) with args expecting it to refuse to start. Returns its exit
 * status in *status and its stderr and stdout (malloc'ed). */
static char *refused(const char *args, int *status, char **out)
{
    char dir[] = "/tmp/fr_start_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1536], errpath[64], outpath[64];
    snprintf(errpath, sizeof errpath, "%s/err", dir);
    snprintf(outpath, sizeof outpath, "%s/out", dir);
    snprintf(cmd, sizeof cmd,
             "timeout -s KILL 20 %s/freshetd --data %s/data --listen 127.0.0.1:0 %s >%s 2>%s",
             FR_BIN_DIR, dir, args, outpath, errpath);
    int st = system(cmd);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *bufs[2];
    const char *paths[2] = {errpath, outpath};
    for (int i = 0; i < 2; i++) {
        bufs[i] = calloc(1, 4096);
        FILE *f = fopen(paths[i], "r");
        if (f) {
            size_t n = fread(bufs[i], 1, 4095, f);
            bufs[i][n] = 0;
            fclose(f);
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    if (out)
        *out = bufs[1];
    else
        free(bufs[1]);
    return bufs[0];
}

/* Regression: with NATS unreachable at start, natsConnection_Connect retried forever (retry on
 * failed connect without a connected callback, MaxReconnect -1): SIGTERM logged event=shutdown
 * and the process stayed, holding the data directory's lock. */
Test(startup, sigterm_stops_a_node_whose_nats_is_unreachable, .timeout = 120)
{
    int probe = fr_e2e_raw_connect("127.0.0.1:1");
    cr_assert_lt(probe, 0, "something listens on 127.0.0.1:1");
    const char *args[] = {"--ingest", "nats://127.0.0.1:1", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "server starts with NATS unreachable");
    /* it serves while NATS is down */
    fr_client_t *c = fr_e2e_connect(s);
    E2E_ASSERT(c, "connect");
    fr_client_free(c);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "SIGTERM stops it and it exits 0 (within the "
                                           "harness's deadline)");
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=stopped") == 1, "a clean stop is logged");
    /* the lock is released: it starts again on the same directory */
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart on the same directory");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "second stop");
    fr_e2e_server_free(s);
}

/* Regression: `--ingest notnats` started (and then hung like the above); a URL without a port or
 * of another scheme reached libnats as it was. */
Test(startup, ingest_urls_must_be_nats_host_port, .timeout = 120)
{
    static const char *const bad[] = {
        "--ingest notnats",
        "--ingest nats://127.0.0.1",
        "--ingest http://127.0.0.1:4222",
        "--ingest nats://127.0.0.1:4222,",
        "--ingest nats://127.0.0.1:4222,notnats",
        "--ingest nats://127.0.0.1:70000",
        "--ingest nats://:4222",
        "--ingest nats://host/x:4222",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st;
        char *err = refused(bad[i], &st, NULL);
        cr_assert(st == 2 && strstr(err, "BAD_ARG") && strstr(err, "ingest:") &&
                      strstr(err, "nats://HOST:PORT"),
                  "%s: exit %d, stderr: %s", bad[i], st, err);
        free(err);
    }
    /* good lists start (and stop: NATS is not there) */
    static const char *const good[][3] = {
        {"--ingest", "nats://127.0.0.1:1,nats://localhost:1", NULL},
        {"--ingest", "nats://127.0.0.1:1, nats://[::1]:1", NULL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        fr_e2e_server_t *s = fr_e2e_server_start(good[i]);
        E2E_ASSERT(s, "%s starts", good[i][1]);
        E2E_ASSERT(fr_e2e_server_stop(s) == 0, "%s stops", good[i][1]);
        fr_e2e_server_free(s);
    }
}
