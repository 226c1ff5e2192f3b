/* Listening sockets from "HOST:PORT" text, shared by freshetd (binary protocol and HTTP) and
 * freshet-infer, and the socket option their HTTP connections need. Port 0 asks the kernel for a
 * free port; the bound address is returned as text so the daemons can print it
 * (`listening HOST:PORT`). */
#ifndef FR_NET_LISTEN_H
#define FR_NET_LISTEN_H

#include <stddef.h>

/* Resolves addr ("127.0.0.1:7070", "[::1]:0", "localhost:0"), binds, listens and returns a
 * non-blocking, close-on-exec socket in *fd, and the bound address in bound ("HOST:PORT", IPv6 in
 * brackets). FR_E_BAD_ARG (not HOST:PORT, unresolvable) or FR_E_IO (bind/listen failed) with a
 * sentence naming addr in why. */
int fr_net_listen(const char *addr, int *fd, char *bound, size_t bound_len, char *why,
                  size_t why_len);

struct evhttp_request;
/* Sets TCP_NODELAY on the socket of an HTTP request's connection. evhttp accepts its own sockets,
 * so the daemons cannot set it at accept; without it the last segment of a reply waited for the
 * client's delayed ACK (~40 ms). Cheap and idempotent: call it for every request. */
void fr_net_http_nodelay(struct evhttp_request *req);

#endif
