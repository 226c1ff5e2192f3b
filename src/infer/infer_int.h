/* Private to src/infer: the scoring engine shared by the binary and HTTP front ends, and the
 * worker/connection structures. */
#ifndef FR_INFER_INT_H
#define FR_INFER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "common/buf.h"
#include "freshet/client.h"
#include "freshet/model.h"
#include "infer.h"
#include "net/loop.h"
#include "proto/frame.h"

#define FR_INFER_MAX_COLS 8 /* entity columns per request (freshetd's limit) */
#define FR_INFER_MAX_REQ_FEATURES 256
#define FR_INFER_KEY_MAX 64 /* join key bytes */

/* ---- engine (engine.c): immutable after fr_engine_init, shared by every worker ---- */

typedef struct {
    char name[FR_INFER_KEY_MAX + 1];
    char join_key[FR_INFER_KEY_MAX + 1];
} fr_engine_view_t;

typedef struct {
    const fr_model_t *model;
    uint32_t nin, nout;
    int64_t max_missing;
    size_t max_rows, fetch_batch;
    const char *server;
    int timeout_ms;
    fr_client_opts_t conn_opts; /* token / TLS for freshetd, from the environment (engine.c) */
    /* bound features, unique, in first-use order: what one Get asks freshetd for */
    size_t nfetch;
    const char **fetch_refs; /* "view:feature" (owned by the model) */
    uint32_t *fetch_view;    /* index into views */
    size_t nviews;
    fr_engine_view_t *views;
    int32_t *input_fetch; /* per model input: index into fetch_refs, or -1 (request-time) */
} fr_engine_t;

/* A decoded Score request. Entity ids point into the request body (or JSON document), which must
 * outlive fr_engine_score. Reused across requests by one worker: capacities persist. */
typedef struct {
    char join_key[FR_INFER_KEY_MAX + 1];
    const char **ids;
    size_t *lens;
    size_t count, cap;
} fr_score_col_t;

typedef struct {
    uint32_t input; /* model input index */
    double *values;
    size_t count, cap;
} fr_score_feat_t;

typedef struct {
    fr_score_col_t cols[FR_INFER_MAX_COLS];
    size_t ncols;
    fr_score_feat_t feats[FR_INFER_MAX_REQ_FEATURES];
    size_t nfeats;
    bool has_as_of;
    int64_t as_of_us;
    /* first decode error */
    int rc;
    char why[256];
} fr_score_in_t;

/* The reply of one request, reused across requests by one worker. */
typedef struct {
    size_t nrows, cap_rows;
    double *margins, *probs; /* nrows * nout */
    uint8_t *statuses;       /* nrows * nin */
    uint32_t *missing;
    int32_t *codes; /* per row: FR_OK or FR_E_NOT_FOUND (max_missing) */
    double *x;      /* one row of inputs */
    uint64_t snapshot;
    int64_t as_of_us;
    uint32_t fetch_us, eval_us;
    /* fetch scratch */
    fr_get_req_t *gets;
    fr_result_t **results;
    size_t cap_chunks;
    const char **refs;
    fr_entity_col_t *ecols;
    size_t cap_ecols;
    int32_t *view_col;  /* per view: entity column index, or -1 */
    int32_t *fetch_col; /* per fetch ref: result column, or -1 (not fetched) */
} fr_score_out_t;

/* Builds the engine from a loaded model: checks bindings against freshetd (one connection).
 * Errors as fr_infer_new. */
int fr_engine_init(fr_engine_t *e, const fr_model_t *m, const fr_infer_config_t *cfg, char *why,
                   size_t why_len);
/* fr_engine_init with the bindings checked through schema, a client of the caller's (kept open),
 * instead of a new connection to cfg->server; a client whose schema is already cached answers
 * without the network, which is how the fuzz target builds an engine. */
int fr_engine_init_with(fr_engine_t *e, const fr_model_t *m, const fr_infer_config_t *cfg,
                        fr_client_t *schema, char *why, size_t why_len);
void fr_engine_fini(fr_engine_t *e);
/* Starts a request: clears in (keeping capacities). */
void fr_score_in_reset(fr_score_in_t *in);
void fr_score_in_fini(fr_score_in_t *in);
/* Adds a request-time feature by model input name; sets in->rc/why on an unknown, bound or
 * duplicate name and returns NULL. */
fr_score_feat_t *fr_score_in_feature(const fr_engine_t *e, fr_score_in_t *in, const char *name,
                                     size_t name_len);
/* Appends one value / id, bounded by e->max_rows. 0, or -1 with in->rc/why set. */
int fr_score_feat_push(const fr_engine_t *e, fr_score_in_t *in, fr_score_feat_t *f, double v);
int fr_score_col_push(const fr_engine_t *e, fr_score_in_t *in, fr_score_col_t *c, const char *id,
                      size_t len);
/* Fetches, evaluates and fills out. *client is the worker's freshetd connection: created when
 * NULL, replaced after a transport failure (one retry). Whole-request errors return a code and a
 * sentence in why; per-row rejections are in out->codes. */
int fr_engine_score(const fr_engine_t *e, fr_client_t **client, const fr_score_in_t *in,
                    fr_score_out_t *out, char *why, size_t why_len);
void fr_score_out_fini(fr_score_out_t *out);
/* The per-row message of a rejected row into buf. */
void fr_engine_row_message(const fr_engine_t *e, const fr_score_out_t *out, size_t row, char *buf,
                           size_t n);
/* Status label of input j for the JSON and table outputs: its binding, or its name. */
const char *fr_engine_input_label(const fr_engine_t *e, uint32_t j);

/* ---- workers and connections (server.c) ---- */

typedef struct fr_iworker fr_iworker_t;
typedef struct fr_iconn fr_iconn_t;

struct fr_iconn {
    fr_loop_conn_t link; /* first: the loop's list, the socket, the drain flag */
    fr_iworker_t *worker;
};

struct fr_iworker {
    fr_infer_t *server;
    unsigned index;
    fr_loop_t loop; /* thread, event loop (loop.base), socket hand-over (src/net/loop.h) */
    struct evhttp *http;
    fr_client_t *fresh; /* this worker's connection to freshetd; NULL until needed */
    fr_buf_t out;
    fr_score_in_t in;
    fr_score_out_t res;
};

struct fr_infer {
    fr_infer_config_t cfg;
    fr_model_t *model;
    fr_engine_t engine;
    struct event_base *base;
    struct evconnlistener *listener;
    int http_fd;
    struct event *sigterm, *sigint;
    char listen_addr[128], http_addr[128];
    fr_iworker_t *workers;
    unsigned worker_count, next_worker;
};

/* wire.c: the binary front end. Decodes one frame, scores, encodes the reply into w->out. */
void fr_infer_handle_frame(fr_iworker_t *w, const fr_frame_t *f, const uint8_t *body);

/* http.c: attaches `POST /v1/score` and `GET /healthz` to w->http on the shared socket. */
int fr_infer_http_attach(fr_iworker_t *w, int fd);
/* Decodes a JSON Score body into in (reset first). Returns the parsed document, which the ids in
 * in point into (json_decref it after scoring), or NULL with in->rc and in->why set. */
json_t *fr_infer_parse_json(const fr_engine_t *e, fr_score_in_t *in, const char *text, size_t len);

#endif
