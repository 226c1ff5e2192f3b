/* freshet-infer lifecycle and event loops: bind, start N workers (each an event loop with its own
 * freshetd connection and an evhttp on the shared HTTP socket), hand binary connections to workers
 * round-robin, frame requests, and drain on SIGTERM/SIGINT. The loops themselves are
 * src/net/loop.c, as in freshetd. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "freshet/err.h"
#include "infer_int.h"
#include "net/listen.h"

/* ---- sockets ---- */

/* ---- connections ---- */

static void conn_free(fr_iconn_t *c)
{
    if (c->link.bev)
        bufferevent_free(c->link.bev);
    fr_loop_conn_remove(&c->worker->loop, &c->link);
    free(c);
}

static void conn_close(fr_loop_conn_t *link)
{
    conn_free((fr_iconn_t *)link);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    fr_iconn_t *c = arg;
    fr_iworker_t *w = c->worker;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t max_body = (uint32_t)w->server->cfg.max_frame;
    while (!c->link.close_after_flush) {
        size_t avail = evbuffer_get_length(in);
        if (avail < FR_FRAME_HEADER)
            break;
        uint8_t hdr[FR_FRAME_HEADER];
        evbuffer_copyout(in, hdr, sizeof hdr);
        fr_frame_t f;
        if (fr_frame_decode(hdr, max_body, &f) != FR_OK) {
            /* framing is lost: answer once, then close */
            fr_log(FR_LOG_WARN, "event=frame_too_large body_len=%u max_frame=%u", f.body_len,
                   max_body);
            fr_buf_reset(&w->out);
            freshet_ScoreResponse r = freshet_ScoreResponse_init_zero;
            r.has_code = r.has_message = true;
            r.code = FR_E_TOO_LARGE;
            snprintf(r.message, sizeof r.message, "frame body of %u bytes exceeds max_frame %u",
                     f.body_len, max_body);
            if (fr_frame_encode_msg(&w->out, f.request_id, (uint16_t)(f.op | FR_OP_RESPONSE),
                                    freshet_ScoreResponse_fields, &r) == FR_OK)
                fr_loop_conn_send(&c->link, w->out.data, w->out.len);
            if (fr_loop_conn_finish(&c->link))
                conn_free(c);
            return;
        }
        if (avail < FR_FRAME_HEADER + (size_t)f.body_len)
            break;
        evbuffer_drain(in, FR_FRAME_HEADER);
        const uint8_t *body = f.body_len ? evbuffer_pullup(in, f.body_len) : (const uint8_t *)"";
        if (!body) {
            conn_free(c);
            return;
        }
        fr_infer_handle_frame(w, &f, body);
        evbuffer_drain(in, f.body_len);
        fr_loop_conn_send(&c->link, w->out.data, w->out.len);
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    fr_iconn_t *c = arg;
    (void)bev;
    if (c->link.close_after_flush)
        conn_free(c);
    else
        fr_loop_conn_drained(&c->link);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(arg);
}

static void add_conn(fr_iworker_t *w, int fd)
{
    if (atomic_load(&w->loop.stopping)) {
        close(fd);
        return;
    }
    fr_iconn_t *c = calloc(1, sizeof *c);
    struct bufferevent *bev =
        c ? bufferevent_socket_new(w->loop.base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->worker = w;
    c->link.bev = bev;
    fr_loop_conn_add(&w->loop, &c->link);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    fr_loop_conn_enable(&c->link, true);
}

/* ---- workers ---- */

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    fr_iworker_t *w = arg;
    (void)fd;
    (void)what;
    size_t nfds;
    int stopping;
    int *fds = fr_loop_take(&w->loop, &nfds, &stopping);
    for (size_t i = 0; i < nfds; i++)
        add_conn(w, fds[i]);
    free(fds);
    if (!stopping)
        return;
    /* stop reading; close each connection once its replies are flushed */
    fr_loop_drain(&w->loop, NULL, conn_close);
}

static int worker_start(fr_infer_t *s, fr_iworker_t *w, unsigned index)
{
    w->server = s;
    w->index = index;
    fr_buf_init(&w->out, 0);
    int rc = fr_loop_init(&w->loop, on_notify, w);
    if (rc != FR_OK)
        return rc;
    w->loop.busy_poll_us = s->cfg.busy_poll_us;
    if (s->http_fd >= 0 && fr_infer_http_attach(w, s->http_fd) != FR_OK)
        return FR_E_NOMEM;
    return fr_loop_start(&w->loop);
}

static void worker_fini(fr_iworker_t *w)
{
    if (!w->server) /* never started */
        return;
    fr_loop_join(&w->loop);
    while (w->loop.conns)
        conn_free((fr_iconn_t *)w->loop.conns);
    if (w->http)
        evhttp_free(w->http);
    fr_loop_fini(&w->loop);
    fr_client_free(w->fresh);
    fr_score_in_fini(&w->in);
    fr_score_out_fini(&w->res);
    fr_buf_fini(&w->out);
}

/* ---- lifecycle ---- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    fr_infer_t *s = arg;
    (void)l;
    (void)sa;
    (void)len;
    fr_loop_hand_fd(&s->workers[s->next_worker++ % s->worker_count].loop, fd);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    fr_infer_t *s = arg;
    (void)what;
    fr_log(FR_LOG_INFO, "event=shutdown signal=%d", (int)sig);
    event_base_loopbreak(s->base);
}

int fr_infer_new(const fr_infer_config_t *cfg, fr_infer_t **out, char *why, size_t why_len)
{
    fr_loop_process_init();
    *out = NULL;
    fr_infer_t *s = calloc(1, sizeof *s);
    if (!s)
        return FR_E_NOMEM;
    s->cfg = *cfg;
    s->http_fd = -1;
    const char *mwhy = NULL;
    int rc = fr_model_load_file(cfg->model, &s->model, &mwhy);
    if (rc != FR_OK) {
        snprintf(why, why_len, "model %s: %s", cfg->model, mwhy ? mwhy : fr_err_str(rc));
        goto fail;
    }
    rc = fr_engine_init(&s->engine, s->model, &s->cfg, why, why_len);
    if (rc != FR_OK)
        goto fail;
    s->base = event_base_new();
    if (!s->base) {
        rc = FR_E_NOMEM;
        goto fail;
    }
    /* caught from before `listening` is printed; libevent queues them until the loop runs */
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!s->sigterm || !s->sigint) {
        rc = FR_E_NOMEM;
        goto fail;
    }
    event_add(s->sigterm, NULL);
    event_add(s->sigint, NULL);
    int fd;
    char bwhy[256];
    rc = fr_net_listen(cfg->listen, &fd, s->listen_addr, sizeof s->listen_addr, bwhy, sizeof bwhy);
    if (rc != FR_OK) {
        snprintf(why, why_len, "listen: %s", bwhy);
        goto fail;
    }
    s->listener = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!s->listener) {
        close(fd);
        rc = FR_E_NOMEM;
        goto fail;
    }
    if (cfg->http[0]) {
        rc =
            fr_net_listen(cfg->http, &s->http_fd, s->http_addr, sizeof s->http_addr, bwhy, sizeof bwhy);
        if (rc != FR_OK) {
            snprintf(why, why_len, "http: %s", bwhy);
            goto fail;
        }
    }
    *out = s;
    return FR_OK;
fail:
    fr_infer_free(s);
    return rc;
}

const char *fr_infer_listen_addr(const fr_infer_t *s)
{
    return s->listen_addr;
}
const char *fr_infer_http_addr(const fr_infer_t *s)
{
    return s->http_addr;
}

int fr_infer_run(fr_infer_t *s)
{
    int rc = FR_OK;
    s->worker_count = (unsigned)s->cfg.threads;
    s->workers = calloc(s->worker_count, sizeof *s->workers);
    if (!s->workers)
        return FR_E_NOMEM;
    for (unsigned i = 0; i < s->worker_count && rc == FR_OK; i++)
        rc = worker_start(s, &s->workers[i], i);
    if (rc == FR_OK) {
        fr_log(FR_LOG_INFO,
               "event=started listen=%s http=%s server=%s threads=%u inputs=%u fetched=%zu "
               "max_missing=%lld",
               s->listen_addr, s->http_addr[0] ? s->http_addr : "off", s->cfg.server,
               s->worker_count, s->engine.nin, s->engine.nfetch, (long long)s->cfg.max_missing);
        event_base_dispatch(s->base);
    } else {
        fr_log(FR_LOG_ERROR, "event=start_failed code=%s", fr_err_name(rc));
    }
    evconnlistener_free(s->listener);
    s->listener = NULL;
    for (unsigned i = 0; i < s->worker_count; i++)
        if (s->workers[i].loop.running)
            fr_loop_stop(&s->workers[i].loop, 2);
    for (unsigned i = 0; i < s->worker_count; i++)
        worker_fini(&s->workers[i]);
    free(s->workers);
    s->workers = NULL;
    s->worker_count = 0;
    fr_log(FR_LOG_INFO, "event=stopped");
    return rc;
}

void fr_infer_free(fr_infer_t *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->http_fd >= 0)
        close(s->http_fd);
    if (s->sigterm)
        event_free(s->sigterm);
    if (s->sigint)
        event_free(s->sigint);
    if (s->base)
        event_base_free(s->base);
    fr_engine_fini(&s->engine);
    fr_model_free(s->model);
    free(s);
}
