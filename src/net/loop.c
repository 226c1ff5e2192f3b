/* Worker event loops fed by other threads (loop.h). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/thread.h>

#include "common/clock.h"
#include "freshet/err.h"
#include "loop.h"

static void process_init_once(void)
{
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
}

void fr_loop_process_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, process_init_once);
}

int fr_loop_init(fr_loop_t *l, event_callback_fn on_wake, void *arg)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->base = event_base_new();
    if (!l->base)
        return FR_E_NOMEM;
    l->wake = event_new(l->base, -1, EV_PERSIST, on_wake, arg);
    if (!l->wake)
        return FR_E_NOMEM;
    /* a pending event keeps the loop alive while it has no sockets */
    struct timeval forever = {86400 * 365, 0};
    event_add(l->wake, &forever);
    return FR_OK;
}

static int loop_ended(struct event_base *base)
{
    return event_base_got_exit(base) || event_base_got_break(base);
}

static void *loop_main(void *arg)
{
    fr_loop_t *l = arg;
    if (l->busy_poll_us <= 0) {
        event_base_dispatch(l->base);
        return NULL;
    }
    /* Busy polling. A core that goes idle pays a wake-up on the next request, which on a VM is
     * most of a small request's latency (measured: one-entity Get p50 ~160-430 µs with idle
     * cores, ~40 µs with one kept busy). So after each wake-up keep looking for events for
     * busy_poll_us, and sleep in epoll only after that long without any. The wake event is
     * always pending, so neither call below can return for lack of events. */
    for (;;) {
        int64_t until = fr_mono_us() + l->busy_poll_us;
        while (fr_mono_us() < until) {
            if (event_base_loop(l->base, EVLOOP_NONBLOCK) < 0 || loop_ended(l->base))
                return NULL;
        }
        if (event_base_loop(l->base, EVLOOP_ONCE) < 0 || loop_ended(l->base))
            return NULL;
    }
}

int fr_loop_start(fr_loop_t *l)
{
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
        return FR_E_INTERNAL;
    l->running = 1;
    return FR_OK;
}

void fr_loop_wake(fr_loop_t *l)
{
    event_active(l->wake, EV_READ, 0);
}

void fr_loop_hand_fd(fr_loop_t *l, int fd)
{
    pthread_mutex_lock(&l->lock);
    if (l->new_fd_count == l->new_fd_cap) {
        size_t cap = l->new_fd_cap ? l->new_fd_cap * 2 : 16;
        int *p = realloc(l->new_fds, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&l->lock);
            close(fd);
            return;
        }
        l->new_fds = p;
        l->new_fd_cap = cap;
    }
    l->new_fds[l->new_fd_count++] = fd;
    pthread_mutex_unlock(&l->lock);
    fr_loop_wake(l);
}

int *fr_loop_take(fr_loop_t *l, size_t *n, int *stopping)
{
    pthread_mutex_lock(&l->lock);
    int *fds = l->new_fds;
    *n = l->new_fd_count;
    l->new_fds = NULL;
    l->new_fd_count = l->new_fd_cap = 0;
    *stopping = atomic_load(&l->stopping);
    pthread_mutex_unlock(&l->lock);
    return fds;
}

void fr_loop_stop(fr_loop_t *l, int grace_s)
{
    pthread_mutex_lock(&l->lock);
    atomic_store(&l->stopping, 1);
    pthread_mutex_unlock(&l->lock);
    fr_loop_wake(l);
    struct timeval grace = {grace_s, 0};
    event_base_loopexit(l->base, &grace);
}

void fr_loop_conn_add(fr_loop_t *l, fr_loop_conn_t *c)
{
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->conn_count++;
}

void fr_loop_conn_remove(fr_loop_t *l, fr_loop_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->conn_count--;
    if (atomic_load(&l->stopping) && l->conn_count == 0)
        event_base_loopexit(l->base, NULL);
}

void fr_loop_conn_enable(fr_loop_conn_t *c, bool plain)
{
    c->direct = plain;
    bufferevent_enable(c->bev, plain ? EV_READ : EV_READ | EV_WRITE);
}

void fr_loop_conn_send(fr_loop_conn_t *c, const void *data, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t off = 0;
    if (c->direct && evbuffer_get_length(out) == 0) {
        int fd = bufferevent_getfd(c->bev);
        while (off < len) {
            ssize_t n = send(fd, (const char *)data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break; /* EAGAIN: libevent sends the rest; an error surfaces there as an event */
            off += (size_t)n;
        }
        if (off == len)
            return;
    }
    bufferevent_write(c->bev, (const char *)data + off, len - off);
    if (c->direct)
        bufferevent_enable(c->bev, EV_WRITE);
}

void fr_loop_conn_drained(fr_loop_conn_t *c)
{
    if (c->direct && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        bufferevent_disable(c->bev, EV_WRITE);
}

int fr_loop_conn_finish(fr_loop_conn_t *c)
{
    c->close_after_flush = 1;
    bufferevent_disable(c->bev, EV_READ);
    return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

void fr_loop_drain(fr_loop_t *l, int (*idle)(const fr_loop_conn_t *c),
                   void (*close_conn)(fr_loop_conn_t *c))
{
    fr_loop_conn_t *c = l->conns;
    while (c) {
        fr_loop_conn_t *next = c->next; /* close_conn may free c */
        if (c->bev && !c->close_after_flush && fr_loop_conn_finish(c) && (!idle || idle(c)))
            close_conn(c);
        c = next;
    }
    if (l->conn_count == 0)
        event_base_loopexit(l->base, NULL);
}

void fr_loop_join(fr_loop_t *l)
{
    if (l->running)
        pthread_join(l->thread, NULL);
    l->running = 0;
}

void fr_loop_fini(fr_loop_t *l)
{
    if (l->wake)
        event_free(l->wake);
    if (l->base)
        event_base_free(l->base);
    for (size_t i = 0; i < l->new_fd_count; i++)
        close(l->new_fds[i]);
    free(l->new_fds);
    pthread_mutex_destroy(&l->lock);
    l->wake = NULL;
    l->base = NULL;
    l->new_fds = NULL;
    l->new_fd_count = 0;
}
