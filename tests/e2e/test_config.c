/* freshetd's configuration table: invalid values and unknown keys refuse to start with a message
 * naming the key (flags and config files alike), files are overridden by flags, and
 * `freshet status --config` shows the effective configuration; a data directory from a newer
 * build is refused. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e/support/harness.h"

/* Runs freshetd with args (a shell fragment) expecting it to refuse to start; returns its stderr. */
static char *refused(const char *args)
{
    char dir[] = "/tmp/fr_cfg_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024], errpath[64];
    snprintf(errpath, sizeof errpath, "%s/err", dir);
    snprintf(cmd, sizeof cmd, "%s/freshetd --data %s/data --listen 127.0.0.1:0 %s >/dev/null 2>%s",
             FR_BIN_DIR, dir, args, errpath);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "freshetd %s started (status %d)", args, st);
    FILE *f = fopen(errpath, "r");
    cr_assert_not_null(f);
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = 0;
    fclose(f);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    return buf;
}

Test(config, invalid_values_and_unknown_keys_name_the_key, .timeout = 60)
{
    struct {
        const char *args, *expect;
    } cases[] = {
        {"--threads 0", "threads"},
        {"--durability fast", "durability"},
        {"--max-future-skew soon", "max_future_skew"},
        {"--no-such-flag 1", "no-such-flag"},
        {"--map-size-mb", "map_size_mb"},
        {"--listen 127.0.0.1:70000", "[0, 65535]"}, /* getaddrinfo kept the low 16 bits: 4464 */
        {"--listen 127.0.0.1:+80", "[0, 65535]"},
        {"--http 127.0.0.1:65617", "[0, 65535]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = refused(cases[i].args);
        cr_assert(strstr(err, cases[i].expect) && strstr(err, "BAD_ARG"), "%s: stderr does not name %s: %s",
                  cases[i].args, cases[i].expect, err);
        free(err);
    }
    char path[] = "/tmp/fr_cfg_file_XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "threads = 2\n# a comment\nsweep_keys = lots\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char args[128];
    snprintf(args, sizeof args, "--config %s", path);
    char *err = refused(args);
    cr_assert(strstr(err, ":3:") && strstr(err, "sweep_keys"), "config file error names file:line and key: %s", err);
    free(err);
    unlink(path);
}

Test(config, flags_override_the_file_and_status_shows_the_effective_configuration, .timeout = 60)
{
    char path[] = "/tmp/fr_cfg_file_XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "slow_ms = 77\nmax_queue = 99\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    const char *args[] = {"--config", path, "--max-queue", "55", NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start with a config file");
    fr_e2e_cli_t r;
    const char *argv[] = {"status", "--config", NULL};
    E2E_ASSERT(fr_e2e_cli_run(s->addr, NULL, argv, &r) == 0 && r.exit_code == 0, "status --config: %s", r.err);
    E2E_ASSERT(strstr(r.out, "slow_ms = 77\n"), "value from the file: %s", r.out);
    E2E_ASSERT(strstr(r.out, "max_queue = 55\n"), "the flag wins over the file: %s", r.out);
    E2E_ASSERT(strstr(r.out, "durability = sync\n"), "defaults shown: %s", r.out);
    fr_e2e_cli_fini(&r);
    unlink(path);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: any '#' on a config line started a comment, so `log_file = /x/a#b.log` wrote to
 * /x/a without a word; a '#' is a comment only at a line's start or after a blank. */
Test(config, a_hash_inside_a_value_is_kept, .timeout = 60)
{
    char dir[] = "/tmp/fr_cfg_hash_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], log[128], text[512];
    snprintf(path, sizeof path, "%s/freshetd.conf", dir);
    snprintf(log, sizeof log, "%s/run#2.log", dir);
    snprintf(text, sizeof text, "# the whole line\nslow_ms = 77 # after a blank\nlog_file = %s\n", log);
    FILE *f = fopen(path, "w");
    cr_assert(f && fputs(text, f) >= 0 && fclose(f) == 0);
    const char *args[] = {"--config", path, NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start with a config file");
    fr_e2e_cli_t r;
    const char *argv[] = {"status", "--config", NULL};
    E2E_ASSERT(fr_e2e_cli_run(s->addr, NULL, argv, &r) == 0 && r.exit_code == 0, "status --config: %s", r.err);
    E2E_ASSERT(strstr(r.out, "slow_ms = 77\n"), "a comment after a blank: %s", r.out);
    char want[160];
    snprintf(want, sizeof want, "log_file = %s\n", log);
    E2E_ASSERT(strstr(r.out, want), "the '#' in the path is kept: %s", r.out);
    fr_e2e_cli_fini(&r);
    struct stat st;
    E2E_ASSERT(stat(log, &st) == 0, "the log is written at %s", log);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
    snprintf(text, sizeof text, "rm -rf %s", dir);
    cr_assert_eq(system(text), 0);
}

/* logrotate: the file is moved away, SIGHUP makes freshetd write to a new file at the same path. */
Test(config, sighup_reopens_the_log_file, .timeout = 60)
{
    char dir[] = "/tmp/fr_log_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char log[128], rotated[128];
    snprintf(log, sizeof log, "%s/freshetd.log", dir);
    snprintf(rotated, sizeof rotated, "%s/freshetd.log.1", dir);
    const char *args[] = {"--log-file", log, NULL};
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s, "start with --log-file");
    cr_assert_eq(rename(log, rotated), 0);
    cr_assert_eq(kill(s->pid, SIGHUP), 0);
    /* wait for the condition (the new file holds the reopen line), bounded */
    int found = 0;
    for (int64_t deadline = fr_e2e_now_us() + 10 * 1000000LL; !found && fr_e2e_now_us() < deadline;) {
        found = fr_e2e_lines_with(log, "event=log_reopened") > 0;
        if (!found)
            sched_yield();
    }
    cr_assert(found, "no event=log_reopened in the new %s", log);
    cr_assert(fr_e2e_lines_with(rotated, "event=started") > 0, "the rotated file keeps the earlier lines");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* format_version in the meta database of the LMDB environment at dir (created if absent). */
static uint32_t format_version(const char *dir, uint32_t set)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0640), 0, "%s", dir);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    MDB_val k = {14, "format_version"}, v;
    uint8_t be[4] = {(uint8_t)(set >> 24), (uint8_t)(set >> 16), (uint8_t)(set >> 8), (uint8_t)set};
    if (set) {
        v = (MDB_val){4, be};
        cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    }
    cr_assert_eq(mdb_get(txn, meta, &k, &v), 0);
    cr_assert_eq(v.mv_size, 4u);
    const uint8_t *p = v.mv_data;
    uint32_t got = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return got;
}

/* A data directory written by a newer build (data format 4) is refused at startup with the
 * reason, and left as it was. */
Test(config, a_data_directory_from_a_newer_build_is_refused, .timeout = 60)
{
    char dir[] = "/tmp/fr_fmt_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char data[64], cmd[512], errpath[64];
    snprintf(data, sizeof data, "%s/data", dir);
    cr_assert_eq(mkdir(data, 0750), 0);
    cr_assert_eq(format_version(data, 4), 4u);
    snprintf(errpath, sizeof errpath, "%s/err", dir);
    snprintf(cmd, sizeof cmd, "%s/freshetd --data %s --listen 127.0.0.1:0 >/dev/null 2>%s",
             FR_BIN_DIR, data, errpath);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "freshetd started on format 4 (status %d)", st);
    FILE *f = fopen(errpath, "r");
    cr_assert_not_null(f);
    char err[4096] = {0};
    size_t n = fread(err, 1, sizeof err - 1, f);
    err[n] = 0;
    fclose(f);
    cr_assert(strstr(err, "INCOMPATIBLE") &&
                  strstr(err, "data format version 4, this build reads 1 to 3"),
              "stderr: %s", err);
    cr_assert_eq(format_version(data, 0), 4u, "the directory is left as it was");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
