/* echo_server: the network floor of bench/run.sh. Same framing and event-loop shape as freshetd
 * (u32 body_length · u32 request_id · u16 op · body; libevent bufferevents, TCP_NODELAY, one reply
 * written with one bufferevent_write), but no decoding and no storage: the first 4 bytes of the
 * request body say how big the reply body is. Prints `listening HOST:PORT` like freshetd.
 *   echo_server [HOST:PORT]   (default 127.0.0.1:0) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define HDR 10
#define MAX_REPLY (16u << 20)

static uint8_t *reply_buf; /* header + MAX_REPLY bytes of zeros, header rewritten per reply */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail < HDR)
            return;
        uint8_t hdr[HDR];
        evbuffer_copyout(in, hdr, HDR);
        uint32_t len = be32(hdr);
        if (len > MAX_REPLY || len < 4) {
            bufferevent_free(bev);
            return;
        }
        if (avail < HDR + (size_t)len)
            return;
        evbuffer_drain(in, HDR);
        const uint8_t *body = evbuffer_pullup(in, len);
        uint32_t want = be32(body);
        if (want > MAX_REPLY)
            want = MAX_REPLY;
        put_be32(reply_buf, want);
        memcpy(reply_buf + 4, hdr + 4, 4);
        reply_buf[8] = (uint8_t)(hdr[8] | 0x80);
        reply_buf[9] = hdr[9];
        bufferevent_write(bev, reply_buf, HDR + (size_t)want);
        evbuffer_drain(in, len);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)sa;
    (void)len;
    (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:0";
    signal(SIGPIPE, SIG_IGN);
    reply_buf = calloc(1, HDR + MAX_REPLY);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    char host[64];
    const char *colon = strrchr(addr, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - addr) : 0, addr);
    if (!colon || inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "echo_server: bad address %s\n", addr);
        return 2;
    }
    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    struct event_base *base = event_base_new();
    struct evconnlistener *l =
        evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                128, (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        fprintf(stderr, "echo_server: cannot bind %s\n", addr);
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
    printf("listening %s:%d\n", host, ntohs(bound.sin_port));
    fflush(stdout);
    struct event *sig = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sig, NULL);
    event_base_dispatch(base);
    event_free(sig);
    evconnlistener_free(l);
    event_base_free(base);
    free(reply_buf);
    return 0;
}
