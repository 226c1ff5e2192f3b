/* Fuzz target: the HTTP request headers our code reads (`Authorization: Bearer TOKEN`, bearer_role
 * in src/server/http.c) through the real route table of a real server with auth on (fuzz_server.h:
 * tokens "rtok" read, "wtok" write, "atok" admin; /metrics needs a token too), and the body after
 * them. Input: a byte picking the method and path, then header lines `Name: value` up to an empty
 * line, then the body. A protected route must answer 401/403 unless a header names a token of a
 * role high enough, and must not when the request says exactly `Authorization: Bearer TOKEN`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/token.h"
#include "freshet/err.h"
#include "fuzz_check.h"
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 32

static const char *const tokens[] = {"rtok", "wtok", "atok"}; /* roles read, write, admin */

static const struct {
    enum evhttp_cmd_type method;
    const char *path;
    fr_role_t need; /* FR_ROLE_NONE: no token needed */
} routes[] = {
    {EVHTTP_REQ_GET, "/healthz", FR_ROLE_NONE},
    {EVHTTP_REQ_GET, "/readyz", FR_ROLE_NONE},
    {EVHTTP_REQ_GET, "/metrics", FR_ROLE_READ},
    {EVHTTP_REQ_POST, "/get-online-features", FR_ROLE_READ},
    {EVHTTP_REQ_POST, "/push", FR_ROLE_WRITE},
    {EVHTTP_REQ_POST, "/v1/export", FR_ROLE_READ},
    {EVHTTP_REQ_GET, "/push", FR_ROLE_NONE},  /* 405 */
    {EVHTTP_REQ_POST, "/nope", FR_ROLE_NONE}, /* 404 */
};

static void setup(void)
{
    char text[512] = "";
    static const char *const roles[] = {"read", "write", "admin"};
    for (int i = 0; i < 3; i++) {
        uint8_t d[FR_TOKEN_DIGEST];
        char hex[2 * FR_TOKEN_DIGEST + 1];
        if (fr_token_digest(tokens[i], strlen(tokens[i]), d) != FR_OK)
            abort();
        fr_token_hex(d, sizeof d, hex);
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "t%d %s %s\n", i, roles[i], hex);
    }
    fuzz_server_setup_with(text);
}

/* The highest role of a token named anywhere in the Authorization value (none: FR_ROLE_NONE):
 * what the server may grant at most. */
static fr_role_t role_named(const char *value)
{
    fr_role_t r = FR_ROLE_NONE;
    for (int i = 0; value && i < 3; i++)
        if (strstr(value, tokens[i]))
            r = (fr_role_t)(i + 1);
    return r;
}

/* The role the exact form `Bearer TOKEN` must get (else FR_ROLE_NONE: no promise). */
static fr_role_t role_exact(const char *value)
{
    if (!value || strncasecmp(value, "Bearer ", 7) != 0)
        return FR_ROLE_NONE;
    for (int i = 0; i < 3; i++)
        if (!strcmp(value + 7, tokens[i]))
            return (fr_role_t)(i + 1);
    return FR_ROLE_NONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_srv)
        setup();
    if (size < 1 || size > 1 << 16)
        return 0;
    unsigned ri = data[0] % (sizeof routes / sizeof routes[0]);
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    if (!req)
        return 0;
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int n = 0; p < end && n < MAX_HEADERS; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le == p) { /* the empty line: the body follows */
            p++;
            break;
        }
        char line[1024];
        size_t len = (size_t)(le - p) < sizeof line - 1 ? (size_t)(le - p) : sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        p = nl ? nl + 1 : end;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        evhttp_add_header(headers, line, value); /* refuses what HTTP could not carry */
    }
    if (p < end)
        evbuffer_add(evhttp_request_get_input_buffer(req), p, (size_t)(end - p));
    const char *auth = evhttp_find_header(headers, "Authorization");
    fr_role_t most = role_named(auth), least = role_exact(auth);
    unsigned long long denied_before = fuzz_srv->stats.rejects[-FR_E_UNAUTHORIZED];
    /* the reply (send without a connection) frees the request */
    fr_http_route(&fuzz_worker, req, routes[ri].path, routes[ri].method);
    int denied = fuzz_srv->stats.rejects[-FR_E_UNAUTHORIZED] != denied_before;
    fr_role_t need = routes[ri].need;
    if (need == FR_ROLE_NONE)
        CHECK(!denied);
    else if (most < need)
        CHECK(denied); /* no token of that role was sent: never let through */
    else if (least >= need)
        CHECK(!denied);
    return 0;
}
