/* libfreshet: blocking, pipelined client of the binary protocol (include/freshet/client.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_int.h"
#include "freshet/client.h"

int fr_client_failf(fr_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

const char *fr_client_error(const fr_client_t *c) { return c->err; }

static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return -1;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, h, n);
    host[n] = 0;
    strcpy(port, colon + 1);
    return 0;
}

int fr_client_connect(const char *addr, int timeout_ms, fr_client_t **out)
{
    char host[256], port[16];
    *out = NULL;
    if (!addr || split_addr(addr, host, sizeof host, port, sizeof port) != 0)
        return FR_E_BAD_ARG;
    fr_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return FR_E_NOMEM;
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    c->batch_rows = 1000;
    c->next_id = 1;
    fr_buf_init(&c->wbuf, 0);
    fr_buf_init(&c->rbuf, 0);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        fr_client_free(c);
        return FR_E_BAD_ARG;
    }
    int rc = FR_E_IO;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            rc = FR_OK;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (rc != FR_OK) {
        fr_client_free(c);
        return rc;
    }
    *out = c;
    return FR_OK;
}

void fr_client_free(fr_client_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    fr_buf_fini(&c->wbuf);
    fr_buf_fini(&c->rbuf);
    fr_client_schema_clear(c);
    free(c);
}

void fr_client_set_batch(fr_client_t *c, size_t batch_rows) { c->batch_rows = batch_rows ? batch_rows : 1; }

static int io_error(fr_client_t *c, const char *what)
{
    int e = errno;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return fr_client_failf(c, FR_E_TIMEOUT, "%s: timed out after %d ms", what, c->timeout_ms);
    return fr_client_failf(c, FR_E_IO, "%s: %s", what, strerror(e));
}

int fr_client_flush(fr_client_t *c)
{
    if (c->fd < 0)
        return fr_client_failf(c, FR_E_CLOSED, "connection is closed");
    size_t off = 0;
    while (off < c->wbuf.len) {
        ssize_t n = send(c->fd, c->wbuf.data + off, c->wbuf.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return io_error(c, "send");
        off += (size_t)n;
    }
    fr_buf_reset(&c->wbuf);
    return FR_OK;
}

static int read_full(fr_client_t *c, uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(c->fd, p + off, len - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            close(c->fd);
            c->fd = -1;
            return fr_client_failf(c, FR_E_CLOSED, "server closed the connection");
        }
        if (n < 0)
            return io_error(c, "recv");
        off += (size_t)n;
    }
    return FR_OK;
}

int fr_client_recv(fr_client_t *c, fr_frame_t *f)
{
    if (c->fd < 0)
        return fr_client_failf(c, FR_E_CLOSED, "connection is closed");
    uint8_t hdr[FR_FRAME_HEADER];
    int rc = read_full(c, hdr, sizeof hdr);
    if (rc != FR_OK)
        return rc;
    if (fr_frame_decode(hdr, 1u << 30, f) != FR_OK)
        return fr_client_failf(c, FR_E_BAD_REQUEST, "reply frame too large");
    fr_buf_reset(&c->rbuf);
    rc = fr_buf_reserve(&c->rbuf, f->body_len);
    if (rc != FR_OK)
        return fr_client_failf(c, rc, "no memory for a %u-byte reply", f->body_len);
    rc = read_full(c, c->rbuf.data, f->body_len);
    if (rc == FR_OK)
        c->rbuf.len = f->body_len;
    return rc;
}

uint32_t fr_client_queue(fr_client_t *c, uint16_t op, const pb_msgdesc_t *fields, const void *msg,
                         int *rc)
{
    uint32_t id = c->next_id++;
    *rc = fr_frame_encode_msg(&c->wbuf, id, op, fields, msg);
    if (*rc != FR_OK)
        fr_client_failf(c, *rc, "cannot encode the request");
    return id;
}

int fr_client_call(fr_client_t *c, uint16_t op, const pb_msgdesc_t *req_fields, const void *req,
                   const pb_msgdesc_t *resp_fields, void *resp)
{
    int rc;
    uint32_t id = fr_client_queue(c, op, req_fields, req, &rc);
    if (rc == FR_OK)
        rc = fr_client_flush(c);
    if (rc != FR_OK)
        return rc;
    fr_frame_t f;
    rc = fr_client_recv(c, &f);
    if (rc != FR_OK)
        return rc;
    if (f.request_id != id)
        return fr_client_failf(c, FR_E_INTERNAL, "reply for request %u, expected %u", f.request_id, id);
    return fr_client_decode(c, resp_fields, resp);
}

int fr_client_decode(fr_client_t *c, const pb_msgdesc_t *fields, void *resp)
{
    pb_istream_t is = pb_istream_from_buffer(c->rbuf.data, c->rbuf.len);
    if (!pb_decode(&is, fields, resp))
        return fr_client_failf(c, FR_E_BAD_REQUEST, "malformed reply: %s", PB_GET_ERROR(&is));
    return FR_OK;
}

/* Every response begins with code (1) and message (2); see schema/freshet.proto. */
int fr_client_check(fr_client_t *c, bool has_code, int32_t code, const char *message)
{
    c->err[0] = 0;
    if (!has_code || code == 0)
        return FR_OK;
    return fr_client_failf(c, code, "%s", message ? message : fr_err_str(code));
}

int fr_client_apply(fr_client_t *c, const char *json, size_t len, bool dry_run,
                    fr_apply_result_t *out)
{
    freshet_ApplyRequest req = freshet_ApplyRequest_init_zero;
    fr_pb_bytes_t jb = {json, len};
    req.registry_json.funcs.encode = fr_pb_encode_bytes;
    req.registry_json.arg = &jb;
    req.has_dry_run = dry_run;
    req.dry_run = dry_run;
    freshet_ApplyResponse resp = freshet_ApplyResponse_init_zero;
    int rc = fr_client_call(c, freshet_Op_OP_APPLY, freshet_ApplyRequest_fields, &req,
                            freshet_ApplyResponse_fields, &resp);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc != FR_OK)
        return rc;
    if (out) {
        out->views_added = resp.views_added;
        out->features_added = resp.features_added;
        out->entities_added = resp.entities_added;
        out->views_changed = resp.views_changed;
    }
    fr_client_schema_clear(c); /* the registry changed */
    return FR_OK;
}
