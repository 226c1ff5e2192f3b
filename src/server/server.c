/* Server lifecycle: open the store, bind, start workers and the writer, accept, and drain on
 * SIGTERM/SIGINT (stop accepting, finish queued writes, commit, answer, close). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "freshet/err.h"
#include "ingest.h"
#include "net/listen.h"
#include "server_int.h"
#include "tls.h"

static _Thread_local char why_buf[512];

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    fr_server_t *s = arg;
    (void)l;
    (void)sa;
    (void)len;
    fr_worker_t *w = &s->workers[s->next_worker++ % s->worker_count];
    fr_worker_hand_fd(w, fd);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    fr_log(FR_LOG_WARN, "event=accept_error errno=%d reason=\"%s\"", errno, strerror(errno));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    fr_server_t *s = arg;
    (void)what;
    fr_log(FR_LOG_INFO, "event=shutdown signal=%d", (int)sig);
    event_base_loopbreak(s->base);
}

/* SIGHUP, part 1: load the auth file again. A file that does not load leaves the current tokens
 * in force (and says why); one that does replaces them for new Hellos, HTTP requests and, at
 * their next request, live connections (conn.c re-checks a connection's token digest when
 * auth_gen moved). */
static void reload_auth(fr_server_t *s)
{
    if (!s->cfg.auth_file[0])
        return;
    fr_auth_t *fresh = NULL;
    char why[512] = "";
    int rc = fr_auth_load(s->cfg.auth_file, &fresh, why, sizeof why);
    if (rc != FR_OK) {
        atomic_fetch_add(&s->stats.auth_reload_failures, 1);
        fr_log(FR_LOG_ERROR,
               "event=auth_reload_failed file=%s code=%s reason=\"%s\" tokens_in_force=%zu",
               s->cfg.auth_file, fr_err_name(rc), why, fr_auth_count(atomic_load(&s->auth)));
        return;
    }
    fr_auth_retire(fresh, atomic_load(&s->auth)); /* readers may still hold the old table */
    atomic_store(&s->auth, fresh);
    atomic_fetch_add(&s->auth_gen, 1);
    atomic_fetch_add(&s->stats.auth_reloads, 1);
    fr_log(FR_LOG_INFO, "event=auth_reloaded file=%s tokens=%zu", s->cfg.auth_file,
           fr_auth_count(fresh));
}

/* SIGHUP: reload the auth file (with --auth-file) and reopen the log file (after logrotate). */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    fr_server_t *s = arg;
    (void)sig;
    (void)what;
    reload_auth(s);
    if (!s->cfg.log_file[0])
        return;
    if (fr_log_reopen(s->cfg.log_file) == 0)
        fr_log(FR_LOG_INFO, "event=log_reopened file=%s", s->cfg.log_file);
    else
        fr_log(FR_LOG_ERROR, "event=log_reopen_failed file=%s", s->cfg.log_file);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    fr_server_t *s = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(s->base);
}

static int bind_listener(fr_server_t *s, const char **why)
{
    int fd;
    char reason[400];
    int rc = fr_net_listen(s->cfg.listen, &fd, s->listen_addr, sizeof s->listen_addr, reason,
                           sizeof reason);
    if (rc != FR_OK) {
        snprintf(why_buf, sizeof why_buf, "listen: %s", reason);
        *why = why_buf;
        return rc;
    }
    /* backlog 0: the socket already listens */
    s->listener = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!s->listener) {
        close(fd);
        return FR_E_NOMEM;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    return FR_OK;
}

/* Loads the auth file and the TLS context (before the store: bad security settings fail fast). */
static int load_security(fr_server_t *s, const char **why)
{
    const fr_config_t *cfg = &s->cfg;
    int rc = FR_OK;
    if (cfg->auth_file[0]) {
        fr_auth_t *a = NULL;
        rc = fr_auth_load(cfg->auth_file, &a, why_buf, sizeof why_buf);
        atomic_store(&s->auth, a);
        if (rc != FR_OK) {
            *why = why_buf;
            return rc;
        }
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        *why = "tls_cert and tls_key: set both (TLS on) or neither (TLS off)";
        return FR_E_BAD_ARG;
    }
    if (cfg->tls_cert[0]) {
        rc = fr_tls_server_new(cfg->tls_cert, cfg->tls_key, &s->tls, why_buf, sizeof why_buf);
        if (rc != FR_OK)
            *why = why_buf;
    }
    return rc;
}

static int is_loopback(const char *addr)
{
    return !addr[0] || strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
           strncmp(addr, "localhost:", 10) == 0;
}

int fr_server_new(const fr_config_t *cfg, const fr_clock_t *clock, fr_server_t **out,
                  const char **why)
{
    fr_loop_process_init();
    *why = "";
    fr_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return FR_E_NOMEM;
    s->cfg = *cfg;
    s->clock = clock ? clock : fr_clock_system();
    s->stats.views = calloc(FR_STATS_VIEWS, sizeof *s->stats.views);
    if (!s->stats.views) {
        free(s);
        return FR_E_NOMEM;
    }
    fr_store_opts_t so = {
        .path = cfg->data,
        .map_size = (uint64_t)cfg->map_size_mb << 20,
        .durability = strcmp(cfg->durability, "nosync") == 0  ? FR_DURABILITY_NOSYNC
                      : strcmp(cfg->durability, "async") == 0 ? FR_DURABILITY_ASYNC
                                                             : FR_DURABILITY_SYNC,
        .max_readers = (unsigned)cfg->max_readers,
        .clock = s->clock,
        .wal = strcmp(cfg->wal, "on") == 0,
        .map_hugepages = strcmp(cfg->map_hugepages, "on") == 0,
        .wal_checkpoint_bytes = cfg->wal_checkpoint_mb ? (uint64_t)cfg->wal_checkpoint_mb << 20 : 1,
    };
    int rc = load_security(s, why);
    if (rc != FR_OK)
        goto fail;
    if (!s->auth && (!is_loopback(cfg->listen) || !is_loopback(cfg->http)))
        fr_log(FR_LOG_WARN, "event=auth_off listen=%s http=%s reason=\"no auth_file: anyone who "
               "can reach these addresses can read, write, apply and back up\"", cfg->listen,
               cfg->http);
    rc = fr_store_open(&so, &s->store, why);
    if (rc != FR_OK)
        goto fail;
    fr_store_info_t si;
    if (fr_store_info(s->store, &si) == FR_OK) {
        if (si.map_hugepages < 0)
            fr_log(FR_LOG_WARN, "event=map_hugepages_refused data=%s reason=\"the kernel refused "
                   "MADV_HUGEPAGE for the map (no transparent huge pages?): lookups use 4 KB "
                   "pages\"", cfg->data);
        if (si.wal_restored || si.wal_replayed)
            fr_log(FR_LOG_WARN, "event=wal_recovered replayed=%llu checkpoint_txn=%llu data=%s",
                   (unsigned long long)si.wal_replayed, (unsigned long long)si.wal_checkpoint_txn,
                   cfg->data);
    }
    s->base = event_base_new();
    if (!s->base) {
        rc = FR_E_NOMEM;
        goto fail;
    }
    /* Signals are caught from here on, before the address is printed: a supervisor may send them
     * as soon as it reads `listening`; libevent queues them until the loop runs. */
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sighup = evsignal_new(s->base, SIGHUP, on_sighup, s);
    s->stop_ev = event_new(s->base, -1, EV_PERSIST, on_stop, s);
    if (!s->sigterm || !s->sigint || !s->sighup || !s->stop_ev) {
        rc = FR_E_NOMEM;
        goto fail;
    }
    /* libevent restores the disposition it found when these events are freed; found ignored,
     * a second SIGTERM during the last of the shutdown (the store's closing checkpoint) is
     * ignored instead of killing the process with status 143 */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    event_add(s->sigterm, NULL);
    event_add(s->sigint, NULL);
    event_add(s->sighup, NULL);
    event_add(s->stop_ev, NULL);
    rc = bind_listener(s, why);
    if (rc != FR_OK)
        goto fail;
    if (cfg->http[0]) {
        s->http_worker = calloc(1, sizeof *s->http_worker);
        rc = s->http_worker ? fr_worker_init(s, s->http_worker, 999) : FR_E_NOMEM;
        if (rc == FR_OK)
            rc = fr_http_start(s, s->http_worker, why);
        if (rc != FR_OK)
            goto fail;
    }
    fr_config_readers_t rd;
    fr_config_readers(cfg, &rd);
    unsigned maxr = (unsigned)cfg->max_readers;
    s->pins_all = maxr > rd.fixed ? maxr - rd.fixed : 0;
    s->pins_exports = s->pins_all > rd.reserve ? s->pins_all - rd.reserve : 0;
    s->started_us = fr_clock_now(s->clock);
    *out = s;
    return FR_OK;
fail:
    fr_server_free(s);
    return rc;
}

bool fr_server_pin_take(fr_server_t *s, bool reserved)
{
    unsigned limit = reserved ? s->pins_all : s->pins_exports;
    unsigned cur = atomic_load(&s->pins);
    while (cur < limit)
        if (atomic_compare_exchange_weak(&s->pins, &cur, cur + 1))
            return true;
    return false;
}

void fr_server_pin_give(fr_server_t *s) { atomic_fetch_sub(&s->pins, 1); }

const char *fr_server_pin_refused(fr_server_t *s, const char *what)
{
    static _Thread_local char buf[400];
    fr_config_readers_t rd;
    fr_config_readers(&s->cfg, &rd);
    snprintf(buf, sizeof buf,
             "%s: every LMDB reader slot left for snapshots is taken (max_readers=%lld: %u held "
             "by workers and checkpoints, %u kept for a backup or HTTP export, %u for exports; "
             "%u snapshots pinned now): end an export or raise max_readers",
             what, (long long)s->cfg.max_readers, rd.fixed, rd.reserve, s->pins_exports,
             atomic_load(&s->pins));
    return buf;
}

const char *fr_server_listen_addr(const fr_server_t *s) { return s->listen_addr; }

const char *fr_server_http_addr(const fr_server_t *s) { return s->http_worker ? s->http_addr : NULL; }

/* Undoes a start that failed part way: what was started is stopped, in reverse order. */
static void start_undo(fr_server_t *s, bool writer)
{
    if (writer)
        fr_writer_stop(s);
    if (s->http_worker && s->http_worker->loop.running) {
        fr_worker_stop(s->http_worker);
        fr_worker_join(s->http_worker);
    }
    for (unsigned i = 0; s->workers && i < s->worker_count; i++) {
        if (s->workers[i].loop.running)
            fr_worker_stop(&s->workers[i]);
        fr_worker_join(&s->workers[i]);
    }
    free(s->workers);
    s->workers = NULL;
    s->worker_count = 0;
}

/* A failure's reason: the reader-slot case names max_readers (fr_config_readers counts them). */
static const char *start_reason(fr_server_t *s, const char *what, int rc)
{
    if (rc == FR_E_BUSY)
        snprintf(why_buf, sizeof why_buf,
                 "%.64s: no free LMDB reader slot (max_readers=%lld; other processes reading "
                 "%.200s hold slots too)",
                 what, (long long)s->cfg.max_readers, s->cfg.data);
    else
        snprintf(why_buf, sizeof why_buf, "%.64s: %s", what, fr_err_str(rc));
    return why_buf;
}

int fr_server_start(fr_server_t *s, const char **why)
{
    int rc = FR_OK;
    *why = "";
    s->worker_count = (unsigned)s->cfg.threads;
    s->workers = calloc(s->worker_count, sizeof *s->workers);
    if (!s->workers) {
        s->worker_count = 0;
        return *why = "no memory for the worker loops", FR_E_NOMEM;
    }
    for (unsigned i = 0; i < s->worker_count && rc == FR_OK; i++) {
        rc = fr_worker_start(s, &s->workers[i], i);
        if (rc != FR_OK) {
            char what[64];
            snprintf(what, sizeof what, "cannot start worker %u", i);
            *why = start_reason(s, what, rc);
        }
    }
    if (rc == FR_OK && s->http_worker && (rc = fr_worker_launch(s->http_worker)) != FR_OK)
        *why = start_reason(s, "cannot start the HTTP worker", rc);
    if (rc == FR_OK && (rc = fr_writer_start(s)) != FR_OK)
        *why = start_reason(s, "cannot start the writer thread", rc);
    bool writer = rc == FR_OK;
    if (rc == FR_OK) {
        const char *iwhy = "";
        rc = fr_ingest_start(s, &iwhy); /* after the writer: it feeds the writer's queue */
        if (rc != FR_OK) {
            fr_log(FR_LOG_ERROR, "event=ingest_start_failed reason=\"%s\"", iwhy);
            snprintf(why_buf, sizeof why_buf, "cannot start the NATS consumer: %.400s",
                     iwhy[0] ? iwhy : fr_err_str(rc));
            *why = why_buf;
        }
    }
    if (rc != FR_OK) {
        fr_log(FR_LOG_ERROR, "event=start_failed code=%s reason=\"%s\"", fr_err_name(rc), *why);
        start_undo(s, writer);
        return rc;
    }
    s->running = true;
    fr_store_info_t si;
    int huge = fr_store_info(s->store, &si) == FR_OK ? si.map_hugepages : 0;
    fr_log(FR_LOG_INFO, "event=started listen=%s data=%s threads=%u durability=%s auth=%s tokens=%zu tls=%s hugepages=%s",
           s->listen_addr, s->cfg.data, s->worker_count, s->cfg.durability, s->auth ? "on" : "off",
           fr_auth_count(s->auth), s->tls ? "on" : "off",
           huge > 0 ? "on" : huge < 0 ? "refused" : "off");
    return FR_OK;
}

int fr_server_run(fr_server_t *s)
{
    if (!s->running)
        return FR_E_INTERNAL; /* fr_server_start first */
    event_base_dispatch(s->base);
    /* drain: stop accepting, finish and answer queued writes, then close connections */
    evconnlistener_free(s->listener);
    s->listener = NULL;
    fr_ingest_stop(s); /* its last batches commit before the writer drains */
    fr_writer_stop(s);
    while (atomic_load(&s->backups_running) > 0) {
        /* a running backup completes to a worker: let it finish before the loops stop */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < s->worker_count; i++)
        fr_worker_stop(&s->workers[i]);
    if (s->http_worker)
        fr_worker_stop(s->http_worker);
    for (unsigned i = 0; i < s->worker_count; i++)
        fr_worker_join(&s->workers[i]);
    if (s->http_worker)
        fr_worker_join(s->http_worker);
    fr_store_sync(s->store);
    fr_log(FR_LOG_INFO, "event=stopped rows_written=%llu",
           (unsigned long long)atomic_load(&s->stats.rows_written));
    return FR_OK;
}

void fr_server_stop(fr_server_t *s) { event_active(s->stop_ev, EV_READ, 0); }

void fr_server_free(fr_server_t *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->sigterm)
        event_free(s->sigterm);
    if (s->sigint)
        event_free(s->sigint);
    if (s->sighup)
        event_free(s->sighup);
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->base)
        event_base_free(s->base);
    free(s->workers);
    if (s->http_worker && !s->http_worker->loop.running)
        fr_worker_join(s->http_worker); /* initialised but never run (start-up failed) */
    free(s->http_worker);
    fr_store_close(s->store);
    fr_auth_free(s->auth);
    fr_tls_server_free(s->tls);
    free(s->stats.views);
    free(s);
}
