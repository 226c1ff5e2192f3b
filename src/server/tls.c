/* Server-side TLS: the OpenSSL context built from tls_cert/tls_key, and the bufferevents that speak
 * it on the binary listener (fr_tls_bev_new) and on the HTTP listener (evhttp bevcb). */
#include <stdio.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "freshet/err.h"
#include "tls.h"

static void last_error(char *why, size_t why_len, const char *what, const char *path)
{
    char detail[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(why, why_len, "%s %s: %s", what, path, detail[0] ? detail : "failed");
}

int fr_tls_server_new(const char *cert_path, const char *key_path, struct ssl_ctx_st **out,
                      char *why, size_t why_len)
{
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return FR_E_NOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* peers that drop the TCP connection without close_notify are ordinary EOFs here */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    int rc = FR_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        last_error(why, why_len, "tls_cert: cannot load", cert_path);
        rc = FR_E_BAD_ARG;
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        last_error(why, why_len, "tls_key: cannot load", key_path);
        rc = FR_E_BAD_ARG;
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        last_error(why, why_len, "tls_key: does not match tls_cert", key_path);
        rc = FR_E_BAD_ARG;
    }
    if (rc != FR_OK) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return FR_OK;
}

void fr_tls_server_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

struct bufferevent *fr_tls_bev_new(struct ssl_ctx_st *ctx, struct event_base *base, int fd)
{
    if (!ctx)
        return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    /* with BEV_OPT_CLOSE_ON_FREE the bufferevent frees ssl and closes fd */
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static struct bufferevent *http_bevcb(struct event_base *base, void *arg)
{
    return fr_tls_bev_new(arg, base, -1);
}

void fr_tls_http_enable(struct ssl_ctx_st *ctx, struct evhttp *http)
{
    evhttp_set_bevcb(http, http_bevcb, ctx);
}
