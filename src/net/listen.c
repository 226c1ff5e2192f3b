/* fr_net_listen: getaddrinfo + socket + bind + listen, and the bound address as text. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>

#include "freshet/err.h"
#include "listen.h"

int fr_net_listen(const char *addr, int *fd, char *bound, size_t bound_len, char *why,
                     size_t why_len)
{
    char host[256], port[16];
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon ? (size_t)(colon - addr) : 0;
    const char *h = addr;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (!colon || hlen == 0 || hlen >= sizeof host || !colon[1] ||
        strlen(colon + 1) >= sizeof port) {
        snprintf(why, why_len, "\"%s\" is not HOST:PORT", addr);
        return FR_E_BAD_ARG;
    }
    memcpy(host, h, hlen);
    host[hlen] = 0;
    strcpy(port, colon + 1);
    /* getaddrinfo takes any number and keeps its low 16 bits (70000 binds 4464), and "+80" */
    if (strspn(port, "0123456789") != strlen(port) || strtol(port, NULL, 10) > 65535) {
        snprintf(why, why_len, "\"%s\": the port must be a number in [0, 65535]", addr);
        return FR_E_BAD_ARG;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(why, why_len, "cannot resolve \"%s\": %s", addr, gai_strerror(gai));
        return FR_E_BAD_ARG;
    }
    int s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (s >= 0)
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, res->ai_addr, res->ai_addrlen) != 0 || listen(s, 1024) != 0) {
        snprintf(why, why_len, "cannot bind %s: %s", addr, strerror(errno));
        if (s >= 0)
            close(s);
        freeaddrinfo(res);
        return FR_E_IO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(s, (struct sockaddr *)&ss, &sl);
    char text[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        snprintf(bound, bound_len, "%s:%d", text, ntohs(in->sin_port));
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        snprintf(bound, bound_len, "[%s]:%d", text, ntohs(in6->sin6_port));
    }
    *fd = s;
    return FR_OK;
}

void fr_net_http_nodelay(struct evhttp_request *req)
{
    struct evhttp_connection *con = evhttp_request_get_connection(req);
    struct bufferevent *bev = con ? evhttp_connection_get_bufferevent(con) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}
