/* Worker event loops and connections: framing on the input buffer, replies on the output buffer.
 * A connection lives on one worker for its whole life; handlers never touch sockets. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "freshet/err.h"
#include "server_int.h"
#include "tls.h"

static void conn_free(fr_conn_t *c)
{
    fr_worker_t *w = c->worker;
    fr_conn_export_end(c);
    if (c->read_deadline) {
        event_free(c->read_deadline);
        c->read_deadline = NULL;
    }
    if (c->idle_timer) {
        event_free(c->idle_timer);
        c->idle_timer = NULL;
    }
    if (c->link.bev) {
        bufferevent_free(c->link.bev);
        c->link.bev = NULL;
        atomic_fetch_sub(&w->server->stats.connections_open, 1);
    }
    if (c->pending) {
        c->closed = 1; /* the writer still holds jobs pointing here */
        return;
    }
    fr_loop_conn_remove(&w->loop, &c->link);
    free(c);
}

/* fr_loop_drain's view of a connection: idle when the writer holds none of its jobs. */
static int conn_idle(const fr_loop_conn_t *link)
{
    return ((const fr_conn_t *)link)->pending == 0;
}
static void conn_close(fr_loop_conn_t *link)
{
    conn_free((fr_conn_t *)link);
}

void fr_conn_send(fr_conn_t *c, const fr_buf_t *frame)
{
    if (c->closed || !c->link.bev)
        return;
    if (c->idle_timer)
        c->last_active_us = fr_mono_us();
    fr_loop_conn_send(&c->link, frame->data, frame->len);
}

/* idle_timeout_ms: a connection is idle when nothing has been read from it or sent to it for that
 * long, no request of it is in progress (a Put at the writer, a Backup) and no reply is left to
 * send. The one-shot timer is checked lazily (Redis's way): at expiry a busy connection is given
 * another full period, one with recent activity the rest of its period, the others are closed.
 * A peer that stops reading its replies is cut off by the write timeout instead (add_conn). */
static void arm_idle(fr_conn_t *c, int64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(c->idle_timer, &tv);
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    fr_conn_t *c = arg;
    (void)fd;
    (void)what;
    int64_t idle_us = c->worker->server->cfg.idle_timeout_ms * 1000;
    if (c->closed || !c->link.bev)
        return;
    if (c->pending > 0 || evbuffer_get_length(bufferevent_get_output(c->link.bev)) > 0) {
        arm_idle(c, idle_us);
        return;
    }
    int64_t quiet_us = fr_mono_us() - c->last_active_us;
    if (quiet_us < idle_us) {
        arm_idle(c, idle_us - quiet_us);
        return;
    }
    fr_log(FR_LOG_INFO, "event=idle_timeout worker=%u idle_timeout_ms=%lld", c->worker->index,
           (long long)c->worker->server->cfg.idle_timeout_ms);
    conn_free(c);
}

/* A frame that has started (its first header byte arrived) must be complete read_timeout_ms
 * later, however its bytes trickle in: the deadline runs from the frame's start and reads do not
 * move it, so a client sending a byte at a time cannot hold a connection and its input buffer
 * (libevent's read timeout restarts on every read and is used for idle_timeout_ms only). */
static void stop_deadline(fr_conn_t *c)
{
    if (c->partial && c->read_deadline)
        evtimer_del(c->read_deadline);
    c->partial = 0;
}

static void read_timed_out(fr_conn_t *c)
{
    fr_log(FR_LOG_INFO, "event=read_timeout worker=%u frame_ms=%lld read_timeout_ms=%lld",
           c->worker->index, (long long)((fr_mono_us() - c->frame_start_us) / 1000),
           (long long)c->worker->server->cfg.read_timeout_ms);
    conn_free(c);
}

static void on_read_deadline(evutil_socket_t fd, short what, void *arg)
{
    fr_conn_t *c = arg;
    (void)fd;
    (void)what;
    /* a finishing connection reads no more: its unfinished frame is moot, its replies go out */
    if (c->link.close_after_flush || !c->partial)
        return;
    read_timed_out(c);
}

/* After a read: partial tells whether the input buffer ends inside a frame, fresh whether frames
 * were taken from it in this read (so what is left is a new frame, started now). Returns 0, or -1
 * when the connection was closed because its frame missed the deadline. */
static int track_frame(fr_conn_t *c, int partial, int fresh)
{
    if (!partial) {
        stop_deadline(c);
        return 0;
    }
    int64_t limit_us = c->worker->server->cfg.read_timeout_ms * 1000;
    if (c->partial && !fresh) {
        /* the same frame as before: its deadline keeps running (checked here too, in case the
         * bytes and the timer are ready in the same loop pass) */
        if (fr_mono_us() - c->frame_start_us >= limit_us) {
            read_timed_out(c);
            return -1;
        }
        return 0;
    }
    c->partial = 1;
    c->frame_start_us = fr_mono_us();
    struct timeval tv = {(time_t)(limit_us / 1000000), (suseconds_t)(limit_us % 1000000)};
    evtimer_add(c->read_deadline, &tv);
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg);

void fr_conn_wait_apply(fr_conn_t *c)
{
    c->apply_wait = 1;
    stop_deadline(c); /* not the client's delay: a frame left over restarts when reading resumes */
    bufferevent_disable(c->link.bev, EV_READ); /* TCP holds what the client sends meanwhile */
}

/* The Apply's reply is out: read what was sent behind it. */
static void apply_answered(fr_conn_t *c)
{
    c->apply_wait = 0;
    if (c->paused || c->link.close_after_flush)
        return; /* on_write resumes a paused connection; a finishing one reads no more */
    bufferevent_enable(c->link.bev, EV_READ);
    on_read(c->link.bev, c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    fr_conn_t *c = arg;
    fr_worker_t *w = c->worker;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t max_body = (uint32_t)w->server->cfg.max_frame;
    size_t max_out = (size_t)w->server->cfg.max_output_mb << 20;
    int frames = 0;
    if (c->idle_timer)
        c->last_active_us = fr_mono_us();
    while (!c->link.close_after_flush && !c->apply_wait) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) > max_out) {
            /* the client does not read its replies: stop reading its requests (TCP pushes back)
             * until half of them are flushed; on_write resumes */
            c->paused = 1;
            stop_deadline(c); /* not the client's delay; a frame left over restarts on resume */
            bufferevent_disable(bev, EV_READ);
            bufferevent_setwatermark(bev, EV_WRITE, max_out / 2, 0);
            return;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail < FR_FRAME_HEADER)
            break;
        uint8_t hdr[FR_FRAME_HEADER];
        evbuffer_copyout(in, hdr, sizeof hdr);
        fr_frame_t f;
        if (fr_frame_decode(hdr, max_body, &f) != FR_OK) {
            /* framing is lost: answer once, then close. Counted as a request of its op that
             * was refused TOO_LARGE, like every other refusal, and in frames_too_large */
            fr_stats_t *st = &w->server->stats;
            unsigned slot = fr_op_slot(f.op);
            atomic_fetch_add(&st->frames_too_large, 1);
            atomic_fetch_add(&st->requests[slot], 1);
            atomic_fetch_add(&st->errors[slot], 1);
            fr_stats_reject(st, FR_E_TOO_LARGE);
            fr_log(FR_LOG_WARN, "event=frame_too_large body_len=%u max_frame=%u", f.body_len,
                   max_body);
            fr_buf_reset(&w->out);
            char msg[128];
            snprintf(msg, sizeof msg, "frame body of %u bytes exceeds max_frame %u", f.body_len,
                     max_body);
            /* a reply carries op | FR_OP_RESPONSE like every other response */
            if (fr_encode_error(&w->out, f.request_id, (uint16_t)(f.op | FR_OP_RESPONSE),
                                FR_E_TOO_LARGE, msg) == FR_OK)
                fr_conn_send(c, &w->out);
            /* Puts before this frame may still be at the writer: their replies go out first */
            stop_deadline(c);
            if (fr_loop_conn_finish(&c->link) && c->pending == 0)
                conn_free(c);
            return;
        }
        if (avail < FR_FRAME_HEADER + (size_t)f.body_len) {
            /* wait for the rest; don't let libevent read more than this frame needs */
            break;
        }
        evbuffer_drain(in, FR_FRAME_HEADER);
        const uint8_t *body = f.body_len ? evbuffer_pullup(in, f.body_len) : (const uint8_t *)"";
        if (!body) {
            conn_free(c);
            return;
        }
        fr_handle_frame(w, c, &f, body);
        evbuffer_drain(in, f.body_len);
        frames++;
    }
    if (c->link.close_after_flush || c->apply_wait)
        stop_deadline(c);
    else
        track_frame(c, evbuffer_get_length(in) > 0, frames > 0);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    fr_conn_t *c = arg;
    if (c->idle_timer)
        c->last_active_us = fr_mono_us(); /* the last queued reply is out */
    if (c->link.close_after_flush) {
        if (c->pending == 0) /* else the last job's reply comes, then this again */
            conn_free(c);
        return;
    }
    fr_loop_conn_drained(&c->link);
    if (c->paused) {
        c->paused = 0;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (c->apply_wait)
            return; /* apply_answered resumes */
        bufferevent_enable(bev, EV_READ);
        on_read(bev, c); /* requests may be waiting in the input buffer already */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    fr_conn_t *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        /* The client is done sending (it may have shut down only its half, as `nc -N` and
         * scripts do) and may still read: the requests it sent are answered, writes still at the
         * writer included, and the connection closes once those replies are flushed. */
        if (c->link.close_after_flush || (fr_loop_conn_finish(&c->link) && c->pending == 0))
            conn_free(c);
    } else if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
        /* replies queued and none of them taken by the peer for idle_timeout_ms */
        size_t queued = evbuffer_get_length(bufferevent_get_output(bev));
        if (queued == 0) { /* nothing to write after all: not a stall */
            if (!c->link.direct)
                bufferevent_enable(bev, EV_WRITE);
            return;
        }
        fr_log(FR_LOG_INFO, "event=write_timeout worker=%u queued_bytes=%zu idle_timeout_ms=%lld",
               c->worker->index, queued, (long long)c->worker->server->cfg.idle_timeout_ms);
        conn_free(c);
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        conn_free(c);
    }
}

static void add_conn(fr_worker_t *w, int fd)
{
    fr_server_t *s = w->server;
    if (atomic_load(&w->loop.stopping) ||
        atomic_load(&s->stats.connections_open) >= (unsigned long long)s->cfg.max_connections) {
        close(fd);
        return;
    }
    fr_conn_t *c = calloc(1, sizeof *c);
    struct bufferevent *bev =
        c ? fr_tls_bev_new(s->tls, w->loop.base, fd) : NULL; /* plain or TLS */
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->worker = w;
    c->role = s->auth ? FR_ROLE_NONE : FR_ROLE_ADMIN; /* with auth, a Hello must come first */
    c->link.bev = bev;
    c->read_deadline = evtimer_new(w->loop.base, on_read_deadline, c);
    if (s->cfg.idle_timeout_ms > 0)
        c->idle_timer = evtimer_new(w->loop.base, on_idle_timer, c);
    if (!c->read_deadline || (s->cfg.idle_timeout_ms > 0 && !c->idle_timer)) {
        if (c->read_deadline)
            event_free(c->read_deadline);
        bufferevent_free(bev); /* BEV_OPT_CLOSE_ON_FREE: closes fd */
        free(c);
        return;
    }
    fr_loop_conn_add(&w->loop, &c->link);
    atomic_fetch_add(&s->stats.connections_open, 1);
    atomic_fetch_add(&s->stats.connections_total, 1);
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    if (s->cfg.idle_timeout_ms > 0) {
        /* the idle timer is ours; libevent's write timeout (restarted by every write that makes
         * progress, running only while replies are queued) catches a peer that stopped reading */
        struct timeval tv = {s->cfg.idle_timeout_ms / 1000, (s->cfg.idle_timeout_ms % 1000) * 1000};
        bufferevent_set_timeouts(bev, NULL, &tv);
        c->last_active_us = fr_mono_us();
        arm_idle(c, s->cfg.idle_timeout_ms * 1000);
    }
    fr_loop_conn_enable(&c->link, s->tls == NULL);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    fr_worker_t *w = arg;
    (void)fd;
    (void)what;
    size_t nfds;
    int stopping;
    int *fds = fr_loop_take(&w->loop, &nfds, &stopping);
    pthread_mutex_lock(&w->loop.lock);
    fr_job_t *done = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->loop.lock);
    for (size_t i = 0; i < nfds; i++)
        add_conn(w, fds[i]);
    free(fds);
    while (done) {
        fr_job_t *next = done->next;
        if (done->http) {
            fr_http_job_done(w, done);
            done = next;
            continue;
        }
        fr_conn_t *c = done->conn;
        c->pending--;
        if (!c->closed) {
            fr_handle_job_reply(w, done);
            fr_conn_send(c, &w->out);
            /* a finishing connection whose last reply this was: on_write frees it once flushed,
             * or now if the reply is already out */
            if (c->link.close_after_flush && c->pending == 0 &&
                evbuffer_get_length(bufferevent_get_output(c->link.bev)) == 0)
                conn_free(c);
            else if (done->op == freshet_Op_OP_APPLY && c->apply_wait)
                apply_answered(c); /* the last use of c here: what it reads may close it */
        } else if (c->pending == 0) {
            conn_free(c);
        }
        fr_job_free(done);
        done = next;
    }
    if (stopping) {
        /* stop reading; close each connection once its replies are flushed */
        fr_loop_drain(&w->loop, conn_idle, conn_close);
    }
}

int fr_worker_init(fr_server_t *s, fr_worker_t *w, unsigned index)
{
    memset(w, 0, sizeof *w);
    w->server = s;
    w->index = index;
    fr_buf_init(&w->out, 0);
    int rc = fr_loop_init(&w->loop, on_notify, w);
    w->loop.busy_poll_us = s->cfg.busy_poll_us;
    return rc == FR_OK ? fr_rtxn_new(s->store, &w->rtxn) : rc;
}

int fr_worker_launch(fr_worker_t *w)
{
    return fr_loop_start(&w->loop);
}

int fr_worker_start(fr_server_t *s, fr_worker_t *w, unsigned index)
{
    int rc = fr_worker_init(s, w, index);
    return rc == FR_OK ? fr_worker_launch(w) : rc;
}

void fr_worker_hand_fd(fr_worker_t *w, int fd)
{
    fr_loop_hand_fd(&w->loop, fd);
}

void fr_worker_complete(fr_worker_t *w, fr_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->loop.lock);
    if (w->done_tail)
        w->done_tail->next = job;
    else
        w->done_head = job;
    w->done_tail = job;
    pthread_mutex_unlock(&w->loop.lock);
    fr_loop_wake(&w->loop);
}

void fr_worker_stop(fr_worker_t *w)
{
    fr_loop_stop(&w->loop, 2);
}

void fr_worker_join(fr_worker_t *w)
{
    if (!w->loop.base) /* never initialised, or already joined */
        return;
    fr_loop_join(&w->loop);
    if (w->http)
        fr_http_stop(w);
    /* connections still open after the drain are closed here */
    while (w->loop.conns) {
        fr_conn_t *c = (fr_conn_t *)w->loop.conns;
        c->pending = 0;
        conn_free(c);
    }
    fr_loop_fini(&w->loop);
    fr_rtxn_free(w->rtxn);
    fr_handle_scratch_free(w);
    fr_buf_fini(&w->out);
}
