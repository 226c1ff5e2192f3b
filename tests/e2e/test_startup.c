/* freshetd's start and stop around its NATS consumer and its configuration: a NATS that cannot be
 * reached at start does not keep SIGTERM from stopping the server; bad ingest URLs are refused
 * when the configuration is read, with a message naming the key. */
#include <lmdb.h>
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

/* Regression: bad partitions and stream values were accepted silently without --ingest and,
 * with it, failed only after `listening` was printed (`--partitions 9-3`); a max_readers too small
 * for the threads printed `listening` and then exited 1 with only a log line (`--threads 8
 * --max-readers 8`), or started and then failed exports and backups (`--threads 6
 * --max-readers 8`). */
Test(startup, bad_partitions_stream_and_max_readers_are_refused_before_listening, .timeout = 120)
{
    struct {
        const char *args, *key, *detail;
    } cases[] = {
        {"--partitions 9-3", "partitions \"9-3\"", "bad range"},
        {"--partitions 0-8", "partitions \"0-8\"", "partition count 8"},
        {"--partitions 0-3 --partition-count 2", "partitions \"0-3\"", "partition count 2"},
        {"--partitions x", "partitions \"x\"", "expected a number"},
        {"--ingest nats://127.0.0.1:1 --partitions 9-3", "partitions \"9-3\"", "bad range"},
        {"--stream a.b", "stream: \"a.b\"", "JetStream stream name"},
        {"--stream ''", "stream: \"\"", "JetStream stream name"},
        {"--threads 8 --max-readers 8", "max_readers: 8", "at least 12"},
        {"--threads 6 --max-readers 8", "max_readers: 8", "at least 10"},
        {"--threads 4 --max-readers 8 --http 127.0.0.1:0", "max_readers: 8", "at least 10"},
        {"--threads 4 --max-readers 8 --ingest nats://127.0.0.1:1", "max_readers: 8", "at least 9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        char *out;
        char *err = refused(cases[i].args, &st, &out);
        cr_assert(st == 2 && strstr(err, "freshetd: BAD_ARG: ") && strstr(err, cases[i].key) &&
                      strstr(err, cases[i].detail),
                  "%s: exit %d, stderr: %s", cases[i].args, st, err);
        cr_assert(!strstr(out, "listening"), "%s: printed `listening`: %s", cases[i].args, out);
        free(err);
        free(out);
    }
    /* what the check asks for is enough: exports and a backup work with the minimum */
    static const char *const min[] = {"--threads", "6", "--max-readers", "10", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(min);
    E2E_ASSERT(s, "--threads 6 --max-readers 10 starts");
    char dest[300];
    snprintf(dest, sizeof dest, "%s/backup", s->dir);
    const char *argv[] = {"backup", dest, NULL};
    fr_e2e_cli_t r;
    fr_e2e_cli_run(s->addr, NULL, argv, &r);
    E2E_ASSERT(r.exit_code == 0, "backup with the minimum max_readers: %s", r.err);
    fr_e2e_cli_fini(&r);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: a failure while starting the workers (here: the reader slots are taken by another
 * process reading the environment) came after `listening` and ended with exit 1 and only
 * `event=start_failed code=BUSY` in the log. Now nothing is printed on stdout and stderr says
 * `freshetd: BUSY: ...` naming the cause and max_readers. */
Test(startup, a_start_failure_is_reported_on_stderr_and_listening_is_not_printed, .timeout = 120)
{
    /* LMDB sizes its lock file's reader table when the first process creates it and never
     * shrinks it: create it with 8 slots */
    static const char *const args[] = {"--max-readers", "8", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "server starts");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop"); /* the data directory exists now */
    /* hold max_readers - 2 slots from this process: the store opens (checkpoint pin and its
     * capture), worker 0 gets the last slot, worker 1 none */
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxreaders(env, 8), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
    cr_assert_eq(mdb_env_open(env, s->data, MDB_NOTLS | MDB_RDONLY, 0640), 0);
    MDB_txn *held[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &held[i]), 0, "reader %d", i);
    char cmd[1024], outp[300], errp[300];
    snprintf(outp, sizeof outp, "%s/start.out", s->dir);
    snprintf(errp, sizeof errp, "%s/start.err", s->dir);
    snprintf(cmd, sizeof cmd,
             "timeout -s KILL 30 %s/freshetd --data %s --listen 127.0.0.1:0 --max-readers 8 "
             ">%s 2>%s",
             FR_BIN_DIR, s->data, outp, errp);
    int st = system(cmd);
    for (int i = 0; i < 6; i++)
        mdb_txn_abort(held[i]);
    mdb_env_close(env);
    char out[4096] = "", err[8192] = "";
    FILE *f = fopen(outp, "r");
    if (f) {
        out[fread(out, 1, sizeof out - 1, f)] = 0;
        fclose(f);
    }
    f = fopen(errp, "r");
    if (f) {
        err[fread(err, 1, sizeof err - 1, f)] = 0;
        fclose(f);
    }
    E2E_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit 1 (status %d); stderr: %s", st, err);
    E2E_ASSERT(!strstr(out, "listening"), "`listening` printed before the start failed: %s", out);
    E2E_ASSERT(strstr(err, "freshetd: BUSY: cannot start worker 1: no free LMDB reader slot") &&
                   strstr(err, "max_readers=8"),
               "stderr names the cause: %s", err);
    /* and it let go of everything: with the slots free it starts */
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart with the slots free");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}
