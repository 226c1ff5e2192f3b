/* TLS on freshetd's listeners (libevent's OpenSSL bufferevents). With tls_cert and tls_key set,
 * both the binary listener and the HTTP listener speak TLS only; plaintext peers fail the handshake
 * and are closed. */
#ifndef FR_SERVER_TLS_H
#define FR_SERVER_TLS_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/http.h>

struct ssl_ctx_st;

/* A server context from PEM files (TLS 1.2 minimum). FR_E_IO/FR_E_BAD_ARG with a sentence naming
 * the file in why (unreadable, not PEM, key does not match the certificate). */
int fr_tls_server_new(const char *cert_path, const char *key_path, struct ssl_ctx_st **out,
                      char *why, size_t why_len);
void fr_tls_server_free(struct ssl_ctx_st *ctx);
/* A bufferevent owning fd (closed on free): plain when ctx is NULL, else a server-side TLS one.
 * NULL on failure (fd is then not owned: the caller closes it). */
struct bufferevent *fr_tls_bev_new(struct ssl_ctx_st *ctx, struct event_base *base, int fd);
/* Makes every connection of http a TLS one (evhttp_set_bevcb). */
void fr_tls_http_enable(struct ssl_ctx_st *ctx, struct evhttp *http);

#endif
