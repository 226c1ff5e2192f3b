/* Fuzz target: the HTTP JSON bodies (POST /get-online-features, /push, /v1/export) through the
 * real route table of a real server (LMDB store in a temp dir, registry applied). The first input
 * byte picks the endpoint, the rest is the body. Requests have no connection, so libevent drops
 * the replies after they are encoded; pushes are refused at the queue (the writer is stopped). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "freshet/err.h"
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/get-online-features", "/push", "/v1/export"};
    if (!fuzz_srv) {
        fuzz_server_setup();
    }
    if (size < 1)
        return 0;
    struct evhttp_request *req = evhttp_request_new(NULL, NULL);
    if (!req)
        return 0;
    evbuffer_add(evhttp_request_get_input_buffer(req), data + 1, size - 1);
    /* the reply (send without a connection) frees the request */
    fr_http_route(&fuzz_worker, req, paths[data[0] % 3], EVHTTP_REQ_POST);
    return 0;
}
