/* Fuzz target: freshet-infer's request decoders, both network-facing: the protobuf Score request
 * (through fr_infer_handle_frame, the binary listener's entry point) and the JSON body of
 * POST /v1/score (fr_infer_parse_json). The first input byte picks the decoder, the rest is the
 * body. The engine is real: a logistic model compiled in-process, two inputs bound to features of
 * a registry (resolved from a client whose schema is cached, so nothing connects at setup) and one
 * request-time input. A request that decodes goes on to fetch from freshetd at 127.0.0.1:1, which
 * refuses at once: the reply is an error, the decoding is what is exercised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "freshet/err.h"
#include "infer/infer_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char MODEL[] =
    "{\"type\": \"logistic\", \"n_features\": 3, \"feature_names\": [\"bal\", \"risk\", \"amount\"],"
    " \"weights\": [0.1, -0.2, 0.3], \"bias\": 0.5, \"missing_fill\": [0, 0, 0], \"link\": \"sigmoid\"}";
static const char MAP[] = "{\"bal\": \"acct:bal\", \"risk\": \"shop:risk\"}";
static const char REGISTRY[] =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"},"
    " {\"name\": \"merchant\", \"join_key\": \"merchant_id\"}],"
    " \"views\": [{\"name\": \"acct\", \"entity\": \"user\", \"ttl\": \"1h\","
    " \"features\": [{\"name\": \"bal\", \"type\": \"double\"}]},"
    " {\"name\": \"shop\", \"entity\": \"merchant\", \"ttl\": \"1h\","
    " \"features\": [{\"name\": \"risk\", \"type\": \"float\"}]}]}";

static fr_infer_t srv;
static fr_iworker_t worker;

static void setup(void)
{
    uint8_t *art = NULL;
    size_t art_len = 0;
    char why[256] = "";
    const char *swhy = "";
    if (fr_model_compile(MODEL, strlen(MODEL), MAP, strlen(MAP), &art, &art_len, why, sizeof why) ||
        fr_model_load_mem(art, art_len, &srv.model, &swhy)) {
        fprintf(stderr, "fuzz_score: model: %s%s\n", why, swhy);
        abort();
    }
    free(art);
    fr_client_t *schema = fr_client_alloc(-1, 0);
    if (!schema)
        abort();
    if (fr_registry_parse(REGISTRY, strlen(REGISTRY), &schema->registry, &swhy) != FR_OK) {
        fprintf(stderr, "fuzz_score: registry: %s\n", swhy);
        abort();
    }
    snprintf(srv.cfg.server, sizeof srv.cfg.server, "127.0.0.1:1");
    srv.cfg.max_missing = -1;
    srv.cfg.max_rows = 10000;
    srv.cfg.fetch_batch = 1000;
    srv.cfg.timeout_ms = 200;
    srv.cfg.max_frame = 1 << 20;
    if (fr_engine_init_with(&srv.engine, srv.model, &srv.cfg, schema, why, sizeof why) != FR_OK) {
        fprintf(stderr, "fuzz_score: engine: %s\n", why);
        abort();
    }
    fr_client_free(schema);
    worker.server = &srv;
    fr_buf_init(&worker.out, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!worker.server)
        setup();
    if (size < 1)
        return 0;
    uint8_t *body = malloc(size - 1 ? size - 1 : 1); /* exact size: ASan sees any overread */
    memcpy(body, data + 1, size - 1);
    if (data[0] & 1) {
        json_t *doc = fr_infer_parse_json(&srv.engine, &worker.in, (const char *)body, size - 1);
        if (!doc && (worker.in.rc == FR_OK || !worker.in.why[0]))
            abort(); /* a refusal must say why */
        json_decref(doc);
    } else {
        fr_frame_t f = {.body_len = (uint32_t)(size - 1), .request_id = 3,
                        .op = freshet_Op_OP_SCORE};
        fr_infer_handle_frame(&worker, &f, body);
        if (worker.out.len < FR_FRAME_HEADER)
            abort(); /* every request gets a reply */
    }
    free(body);
    return 0;
}
