/* libfreshet: blocking, pipelined client of the binary protocol (include/freshet/client.h).
 * With TLS, the same blocking socket carries OpenSSL records (SSL_read/SSL_write in io_send and
 * io_recv); with a token, a Hello is the first request of the connection. */
#include <arpa/inet.h>
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

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

/* OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the server has gone; a
 * library must not kill its host process, so writes go through send(MSG_NOSIGNAL) instead. */
static int bio_send(BIO *b, const char *buf, int len)
{
    int fd = -1;
    BIO_get_fd(b, &fd);
    BIO_clear_retry_flags(b);
    ssize_t n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int ssl_failf(fr_client_t *c, int code, const char *what)
{
    char detail[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    return fr_client_failf(c, code, "%s%s%s", what, detail[0] ? ": " : "", detail);
}

static int tls_start(fr_client_t *c, const char *host, const fr_client_opts_t *o)
{
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx)
        return ssl_failf(c, FR_E_NOMEM, "tls: cannot create a context");
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (o->tls_insecure) {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
        int ok = o->tls_ca && o->tls_ca[0]
                     ? SSL_CTX_load_verify_locations(c->ssl_ctx, o->tls_ca, NULL)
                     : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
        if (ok != 1) {
            ERR_clear_error();
            return fr_client_failf(c, FR_E_BAD_ARG, "tls_ca: cannot load %s (a PEM file)",
                                   o->tls_ca ? o->tls_ca : "the system's trust store");
        }
    }
    const BIO_METHOD *sock = BIO_s_socket();
    c->bio_meth = BIO_meth_new(BIO_TYPE_SOCKET, "freshet socket");
    c->ssl = SSL_new(c->ssl_ctx);
    BIO *bio = NULL;
    if (c->bio_meth && c->ssl) {
        BIO_meth_set_write(c->bio_meth, bio_send);
        BIO_meth_set_read(c->bio_meth, BIO_meth_get_read(sock));
        BIO_meth_set_puts(c->bio_meth, BIO_meth_get_puts(sock));
        BIO_meth_set_ctrl(c->bio_meth, BIO_meth_get_ctrl(sock));
        BIO_meth_set_create(c->bio_meth, BIO_meth_get_create(sock));
        BIO_meth_set_destroy(c->bio_meth, BIO_meth_get_destroy(sock));
        bio = BIO_new(c->bio_meth);
    }
    if (!bio)
        return ssl_failf(c, FR_E_NOMEM, "tls: cannot create the connection");
    BIO_set_fd(bio, c->fd, BIO_NOCLOSE);
    SSL_set_bio(c->ssl, bio, bio); /* c->ssl owns bio now */
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(c->ssl, host);
    if (!o->tls_insecure) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host)
                       : SSL_set1_host(c->ssl, host);
        if (ok != 1)
            return ssl_failf(c, FR_E_BAD_ARG, "tls: cannot set the expected server name");
    }
    int r = SSL_connect(c->ssl);
    if (r == 1)
        return FR_OK;
    int e = errno;
    long vr = SSL_get_verify_result(c->ssl);
    int se = SSL_get_error(c->ssl, r);
    if (vr != X509_V_OK)
        return fr_client_failf(c, FR_E_IO, "tls: certificate verification failed: %s",
                               X509_verify_cert_error_string(vr));
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
        return fr_client_failf(c, FR_E_TIMEOUT, "tls: handshake timed out after %d ms", c->timeout_ms);
    if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && e == 0))
        return fr_client_failf(c, FR_E_CLOSED, "tls: the server closed the connection during the handshake");
    if (se == SSL_ERROR_SYSCALL)
        return fr_client_failf(c, FR_E_IO, "tls: handshake: %s", strerror(e));
    return ssl_failf(c, FR_E_IO, "tls: handshake failed (is the server speaking TLS?)");
}

int fr_client_hello(fr_client_t *c, const char *token)
{
    freshet_HelloRequest req = freshet_HelloRequest_init_zero;
    if (strlen(token) >= sizeof req.token)
        return fr_client_failf(c, FR_E_BAD_ARG, "token: longer than %zu bytes", sizeof req.token - 1);
    req.has_token = req.has_client = true;
    snprintf(req.token, sizeof req.token, "%s", token);
    snprintf(req.client, sizeof req.client, "libfreshet %s", FRESHET_VERSION);
    freshet_HelloResponse resp = freshet_HelloResponse_init_zero;
    int rc = fr_client_call(c, freshet_Op_OP_HELLO, freshet_HelloRequest_fields, &req,
                            freshet_HelloResponse_fields, &resp);
    OPENSSL_cleanse(req.token, sizeof req.token);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    snprintf(c->role, sizeof c->role, "%s", rc == FR_OK ? resp.role : "");
    return rc;
}

const char *fr_client_role(const fr_client_t *c) { return c->role; }

int fr_client_connect(const char *addr, int timeout_ms, fr_client_t **out)
{
    fr_client_opts_t o = {.timeout_ms = timeout_ms};
    return fr_client_connect_opts(addr, &o, out);
}

static int connect_fail(fr_client_t *c, const fr_client_opts_t *o, int rc, const char *why)
{
    if (o->error && o->error_len)
        snprintf(o->error, o->error_len, "%s", why);
    fr_client_free(c);
    return rc;
}

fr_client_t *fr_client_alloc(int fd, int timeout_ms)
{
    fr_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    c->batch_rows = 1000;
    c->next_id = 1;
    fr_buf_init(&c->wbuf, 0);
    fr_buf_init(&c->rbuf, 0);
    return c;
}

int fr_client_connect_opts(const char *addr, const fr_client_opts_t *opts, fr_client_t **out)
{
    static const fr_client_opts_t defaults = {0};
    const fr_client_opts_t *o = opts ? opts : &defaults;
    int timeout_ms = o->timeout_ms;
    char host[256], port[16];
    *out = NULL;
    if (!addr || split_addr(addr, host, sizeof host, port, sizeof port) != 0)
        return connect_fail(NULL, o, FR_E_BAD_ARG, "address: expected HOST:PORT");
    fr_client_t *c = fr_client_alloc(-1, timeout_ms);
    if (!c)
        return FR_E_NOMEM;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return connect_fail(c, o, FR_E_BAD_ARG, "address: cannot resolve the host");
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
        fr_client_failf(c, rc, "connect %s: %s", addr, strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    if (rc == FR_OK && o->tls)
        rc = tls_start(c, host, o);
    if (rc == FR_OK && o->token && o->token[0])
        rc = fr_client_hello(c, o->token);
    if (rc != FR_OK)
        return connect_fail(c, o, rc, c->err[0] ? c->err : fr_err_str(rc));
    c->err[0] = 0;
    *out = c;
    return FR_OK;
}

void fr_client_free(fr_client_t *c)
{
    if (!c)
        return;
    if (c->ssl) {
        if (c->fd >= 0 && SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl); /* one close_notify, not waiting for the peer's */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    SSL_CTX_free(c->ssl_ctx);
    BIO_meth_free(c->bio_meth);
    if (c->fd >= 0)
        close(c->fd);
    fr_buf_fini(&c->wbuf);
    fr_buf_fini(&c->rbuf);
    fr_client_schema_clear(c);
    free(c->colcache.raw);
    free(c->colcache.end);
    free(c->colcache.cols);
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

/* One send or recv on the connection, through TLS when it is on. Returns what send/recv would:
 * bytes moved, 0 when the peer closed (recv), or -1 with errno set (EAGAIN for a timeout). */
static ssize_t io_send(fr_client_t *c, const uint8_t *p, size_t len)
{
    if (!c->ssl)
        return send(c->fd, p, len, MSG_NOSIGNAL);
    int n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        errno = EAGAIN;
    else if (e != SSL_ERROR_SYSCALL || errno == 0)
        errno = EPROTO;
    return -1;
}

static ssize_t io_recv(fr_client_t *c, uint8_t *p, size_t len)
{
    if (!c->ssl)
        return recv(c->fd, p, len, 0);
    int n = SSL_read(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    int saved = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved == 0))
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        errno = EAGAIN;
    else if (e != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    else
        errno = saved;
    return -1;
}

int fr_client_flush(fr_client_t *c)
{
    if (c->fd < 0)
        return fr_client_failf(c, FR_E_CLOSED, "connection is closed");
    size_t off = 0;
    while (off < c->wbuf.len) {
        ssize_t n = io_send(c, c->wbuf.data + off, c->wbuf.len - off);
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
        ssize_t n = io_recv(c, p + off, len - off);
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
    if (fr_frame_decode(hdr, 1u << 30, f) != FR_OK) {
        /* not a frame header: the peer is not a freshetd, or the stream is out of step. Nothing
         * more can be read from it: closed, and an I/O error, so a cluster read fails over */
        close(c->fd);
        c->fd = -1;
        return fr_client_failf(c, FR_E_IO, "the reply is not a Freshet frame: connection closed");
    }
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
    pb_istream_t is = fr_pb_istream(c->rbuf.data, c->rbuf.len);
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
