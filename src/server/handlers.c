/* Request handlers: decode (nanopb, bounded) → run → encode the reply into the worker's buffer.
 * Reads run here on the worker, in one read transaction each; writes become jobs for the writer.
 * The op table (FR_OPS) is the dispatch table: a new op is a line. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "freshet/err.h"
#include "server_int.h"

typedef void (*handler_fn)(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);

static void h_apply(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_put(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_get(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_status(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_sources(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);

/* X(op, handler) */
#define FR_OPS(X)                                                                                  \
    X(freshet_Op_OP_APPLY, h_apply)                                                                \
    X(freshet_Op_OP_PUT, h_put)                                                                    \
    X(freshet_Op_OP_GET, h_get)                                                                    \
    X(freshet_Op_OP_STATUS, h_status)                                                              \
    X(freshet_Op_OP_SOURCES, h_sources)

static handler_fn lookup(uint16_t op)
{
    switch (op) {
#define X(o, h)                                                                                    \
    case o:                                                                                        \
        return h;
        FR_OPS(X)
#undef X
    }
    return NULL;
}

static uint16_t resp_op(const fr_frame_t *f) { return (uint16_t)(f->op | FR_OP_RESPONSE); }
static unsigned op_slot(uint16_t op) { return (op & 0x7fff) < FR_OP_COUNT ? (op & 0x7fff) : 0; }

int fr_encode_error(fr_buf_t *out, uint32_t request_id, uint16_t op, int code, const char *msg)
{
    freshet_PutResponse r = freshet_PutResponse_init_zero;
    r.has_code = true;
    r.code = code;
    r.has_message = true;
    snprintf(r.message, sizeof r.message, "%s", msg ? msg : fr_err_str(code));
    return fr_frame_encode_msg(out, request_id, op, freshet_PutResponse_fields, &r);
}

static void reply_error(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, int code, const char *msg)
{
    atomic_fetch_add(&w->server->stats.errors[op_slot(f->op)], 1);
    fr_buf_reset(&w->out);
    if (fr_encode_error(&w->out, f->request_id, resp_op(f), code, msg) == FR_OK)
        fr_conn_send(c, &w->out);
}

static void reply_msg(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const pb_msgdesc_t *fields,
                      const void *msg)
{
    fr_buf_reset(&w->out);
    int rc = fr_frame_encode_msg(&w->out, f->request_id, resp_op(f), fields, msg);
    if (rc != FR_OK) {
        reply_error(w, c, f, rc, "cannot encode the reply");
        return;
    }
    fr_conn_send(c, &w->out);
}

void fr_handle_frame(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    atomic_fetch_add(&w->server->stats.requests[op_slot(f->op)], 1);
    handler_fn h = lookup(f->op);
    if (!h) {
        atomic_fetch_add(&w->server->stats.bad_frames, 1);
        char msg[64];
        snprintf(msg, sizeof msg, "op %u is not an operation", f->op);
        reply_error(w, c, f, FR_E_BAD_OP, msg);
        return;
    }
    h(w, c, f, body);
}

/* ---- decode helpers ---- */

static bool take_bytes_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    fr_pb_bytes_t *b = *arg;
    const uint8_t *p;
    size_t n;
    if (!fr_pb_take_bytes(stream, &p, &n))
        return false;
    b->ptr = p;
    b->len = n;
    return true;
}

static fr_job_t *job_new(fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->body = malloc(f->body_len ? f->body_len : 1);
    if (!job->body) {
        free(job);
        return NULL;
    }
    memcpy(job->body, body, f->body_len);
    job->body_len = f->body_len;
    job->conn = c;
    job->request_id = f->request_id;
    job->op = f->op;
    return job;
}

void fr_job_free(fr_job_t *job)
{
    if (!job)
        return;
    fr_registry_release(job->registry);
    free(job->rows);
    free(job->body);
    free(job);
}

static void submit(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, fr_job_t *job)
{
    c->pending++;
    int rc = fr_writer_submit(w->server, job);
    if (rc != FR_OK) {
        c->pending--;
        fr_job_free(job);
        reply_error(w, c, f, rc, "write queue is full (max_queue); retry with backoff");
    }
}

/* ---- Apply ---- */

static void h_apply(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = job_new(c, f, body);
    if (!job) {
        reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    freshet_ApplyRequest req = freshet_ApplyRequest_init_zero;
    fr_pb_bytes_t json = {0};
    req.registry_json.funcs.decode = take_bytes_cb;
    req.registry_json.arg = &json;
    pb_istream_t is = pb_istream_from_buffer(job->body, job->body_len);
    if (!pb_decode(&is, freshet_ApplyRequest_fields, &req) || !json.ptr) {
        reply_error(w, c, f, FR_E_BAD_REQUEST, json.ptr ? PB_GET_ERROR(&is) : "registry_json: missing");
        fr_job_free(job);
        return;
    }
    /* the writer parses job->body again as registry text: keep only the JSON bytes */
    memmove(job->body, json.ptr, json.len);
    job->body_len = json.len;
    job->dry_run = req.has_dry_run && req.dry_run;
    submit(w, c, f, job);
}

/* ---- Put ---- */

typedef struct {
    fr_worker_t *w;
    fr_job_t *job;
    int64_t now_us;
    int rc;
    const char *why;
    char why_buf[256];
    uint32_t index;
} put_ctx_t;

static bool put_row_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    put_ctx_t *ctx = *arg;
    fr_job_t *job = ctx->job;
    fr_config_t *cfg = &ctx->w->server->cfg;
    if (job->row_count >= (size_t)cfg->max_put_rows) {
        ctx->rc = FR_E_TOO_LARGE;
        snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows: more than max_put_rows (%lld)",
                 (long long)cfg->max_put_rows);
        ctx->why = ctx->why_buf;
        return false;
    }
    freshet_Row row = freshet_Row_init_zero;
    fr_pb_bytes_t entity = {0}, values = {0};
    row.entity.funcs.decode = take_bytes_cb;
    row.entity.arg = &entity;
    row.values.funcs.decode = take_bytes_cb;
    row.values.arg = &values;
    if (!pb_decode(stream, freshet_Row_fields, &row))
        return false;
    fr_write_row_t wr = {0};
    const char *why = NULL;
    int rc = FR_OK;
    wr.view = fr_registry_view(job->registry, row.has_view ? row.view : "");
    if (!wr.view) {
        rc = FR_E_UNKNOWN_VIEW;
        snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows[%u].view: unknown view \"%s\"", ctx->index,
                 row.view);
        why = ctx->why_buf;
    } else if (!row.has_event_ts_us) {
        rc = FR_E_BAD_REQUEST;
        why = "event_ts_us: missing";
    } else if (!values.ptr) {
        rc = FR_E_BAD_REQUEST;
        why = "values: missing";
    } else if (job->source[0] && !row.has_offset) {
        rc = FR_E_BAD_REQUEST;
        why = "offset: required when the request names a source";
    } else {
        wr.entity = entity.ptr;
        wr.entity_len = entity.len > 65535 ? 65535 : (uint16_t)entity.len;
        wr.event_ts_us = row.event_ts_us;
        wr.values = values.ptr;
        wr.values_len = (uint32_t)values.len;
        wr.offset = row.offset;
        wr.has_offset = row.has_offset;
        rc = fr_store_check_row(&wr, ctx->now_us, cfg->max_future_skew_us, &why);
        if (rc != FR_OK) {
            char tmp[160];
            snprintf(tmp, sizeof tmp, "%s", why);
            snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows[%u] (view %.64s): %.160s", ctx->index,
                     wr.view->name, tmp);
            why = ctx->why_buf;
        }
    }
    if (rc != FR_OK) {
        ctx->rc = rc;
        ctx->why = why;
        return false;
    }
    if (job->row_count == job->row_cap) {
        size_t cap = job->row_cap ? job->row_cap * 2 : 64;
        fr_write_row_t *p = realloc(job->rows, cap * sizeof *p);
        if (!p) {
            ctx->rc = FR_E_NOMEM;
            return false;
        }
        job->rows = p;
        job->row_cap = cap;
    }
    job->rows[job->row_count++] = wr;
    ctx->index++;
    return true;
}

static void h_put(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = job_new(c, f, body);
    if (!job) {
        reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    job->registry = fr_store_registry(w->server->store);
    /* source and partition are needed before the rows: decode them first, skipping rows */
    freshet_PutRequest req = freshet_PutRequest_init_zero;
    pb_istream_t is = pb_istream_from_buffer(job->body, job->body_len);
    if (!pb_decode(&is, freshet_PutRequest_fields, &req)) {
        reply_error(w, c, f, FR_E_BAD_REQUEST, PB_GET_ERROR(&is));
        fr_job_free(job);
        return;
    }
    if (req.has_source && req.source[0]) {
        memcpy(job->source, req.source, sizeof req.source);
        job->partition = req.partition;
    }
    put_ctx_t ctx = {.w = w, .job = job, .now_us = fr_clock_now(w->server->clock)};
    freshet_PutRequest req2 = freshet_PutRequest_init_zero;
    req2.rows.funcs.decode = put_row_cb;
    req2.rows.arg = &ctx;
    is = pb_istream_from_buffer(job->body, job->body_len);
    if (!pb_decode(&is, freshet_PutRequest_fields, &req2) || ctx.rc != FR_OK) {
        int rc = ctx.rc != FR_OK ? ctx.rc : FR_E_BAD_REQUEST;
        atomic_fetch_add(&w->server->stats.rows_rejected, job->row_count + 1);
        fr_log(FR_LOG_INFO, "event=put_rejected code=%s reason=\"%s\"", fr_err_name(rc),
               ctx.why ? ctx.why : PB_GET_ERROR(&is));
        fr_buf_reset(&w->out);
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = r.has_message = r.has_row_index = true;
        r.code = rc;
        r.row_index = ctx.index;
        snprintf(r.message, sizeof r.message, "%s", ctx.why ? ctx.why : PB_GET_ERROR(&is));
        atomic_fetch_add(&w->server->stats.errors[op_slot(f->op)], 1);
        reply_msg(w, c, f, freshet_PutResponse_fields, &r);
        fr_job_free(job);
        return;
    }
    if (job->row_count == 0) {
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = true;
        reply_msg(w, c, f, freshet_PutResponse_fields, &r);
        fr_job_free(job);
        return;
    }
    submit(w, c, f, job);
}

void fr_handle_job_reply(fr_worker_t *w, fr_job_t *job)
{
    fr_buf_reset(&w->out);
    uint16_t op = (uint16_t)(job->op | FR_OP_RESPONSE);
    if (job->rc != FR_OK) {
        atomic_fetch_add(&w->server->stats.errors[op_slot(job->op)], 1);
        fr_encode_error(&w->out, job->request_id, op, job->rc, job->why);
        return;
    }
    if (job->op == freshet_Op_OP_PUT) {
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = r.has_rows_written = r.has_duplicates = r.has_unchanged = true;
        r.rows_written = job->result.written;
        r.duplicates = job->result.duplicates;
        r.unchanged = job->result.unchanged;
        r.has_write_seq = true;
        r.write_seq = job->result.last_write_seq;
        if (job->source[0]) {
            r.has_high_water = true;
            r.high_water = job->result.high_water;
        }
        fr_frame_encode_msg(&w->out, job->request_id, op, freshet_PutResponse_fields, &r);
        return;
    }
    freshet_ApplyResponse r = freshet_ApplyResponse_init_zero;
    r.has_code = r.has_views_added = r.has_features_added = r.has_entities_added = true;
    r.has_views_changed = true;
    r.views_added = job->diff.views_added;
    r.features_added = job->diff.features_added;
    r.entities_added = job->diff.entities_added;
    r.views_changed = job->diff.views_changed;
    fr_frame_encode_msg(&w->out, job->request_id, op, freshet_ApplyResponse_fields, &r);
}

/* ---- Get ---- */

typedef struct {
    const uint8_t *ptr;
    size_t len;
} span_t;

typedef struct {
    char join_key[FR_NAME_MAX + 1];
    span_t *values;
    size_t count, cap;
} ecol_t;

#define MAX_ECOLS 8
#define MAX_GET_VIEWS 64

typedef struct {
    fr_worker_t *w;
    int rc;
    char why[256];
    span_t *features;
    size_t nfeatures, feat_cap;
    ecol_t cols[MAX_ECOLS];
    size_t ncols;
} get_req_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static bool get_feature_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_req_t *g = *arg;
    if (g->nfeatures >= (size_t)g->w->server->cfg.max_features) {
        g->rc = FR_E_TOO_LARGE;
        snprintf(g->why, sizeof g->why, "features: more than max_features (%lld)",
                 (long long)g->w->server->cfg.max_features);
        return false;
    }
    if (grow((void **)&g->features, &g->feat_cap, g->nfeatures + 1, sizeof(span_t)))
        return g->rc = FR_E_NOMEM, false;
    span_t *s = &g->features[g->nfeatures++];
    return fr_pb_take_bytes(stream, &s->ptr, &s->len);
}

static bool entity_value_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    ecol_t *col = *arg;
    if (grow((void **)&col->values, &col->cap, col->count + 1, sizeof(span_t)))
        return false;
    span_t *s = &col->values[col->count++];
    return fr_pb_take_bytes(stream, &s->ptr, &s->len);
}

static bool get_entities_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_req_t *g = *arg;
    if (g->ncols >= MAX_ECOLS) {
        g->rc = FR_E_TOO_LARGE;
        snprintf(g->why, sizeof g->why, "entities: more than %d entity columns", MAX_ECOLS);
        return false;
    }
    ecol_t *col = &g->cols[g->ncols++];
    col->count = 0;
    freshet_EntityColumn ec = freshet_EntityColumn_init_zero;
    ec.values.funcs.decode = entity_value_cb;
    ec.values.arg = col;
    if (!pb_decode(stream, freshet_EntityColumn_fields, &ec))
        return false;
    snprintf(col->join_key, sizeof col->join_key, "%s", ec.has_join_key ? ec.join_key : "");
    if (col->count > (size_t)g->w->server->cfg.max_entities) {
        g->rc = FR_E_TOO_LARGE;
        snprintf(g->why, sizeof g->why, "entities: more than max_entities (%lld)",
                 (long long)g->w->server->cfg.max_entities);
        return false;
    }
    return true;
}

typedef struct {
    uint16_t view;
    int index;
} colref_t;

typedef struct {
    const fr_view_def_t *views[MAX_GET_VIEWS];
    const ecol_t *ecol[MAX_GET_VIEWS];
    size_t nviews;
    colref_t *cols;
    size_t ncols, cols_cap;
    fr_asof_t *rows;
    size_t nrows, rows_cap;
    size_t nentities;
    int include_expired;
} get_plan_t;

typedef struct {
    get_req_t req;
    get_plan_t plan;
} get_scratch_t;

static bool enc_views_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const get_plan_t *p = *arg;
    for (size_t i = 0; i < p->nviews; i++)
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)p->views[i]->name,
                              strlen(p->views[i]->name)))
            return false;
    return true;
}

static bool enc_columns_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const get_plan_t *p = *arg;
    for (size_t i = 0; i < p->ncols; i++) {
        const fr_view_def_t *v = p->views[p->cols[i].view];
        const fr_feature_def_t *fd = &v->features[p->cols[i].index];
        freshet_Column col = freshet_Column_init_zero;
        col.has_view = col.has_index = col.has_type = col.has_name = true;
        col.view = p->cols[i].view;
        col.index = (uint32_t)p->cols[i].index;
        col.type = fd->type;
        snprintf(col.name, sizeof col.name, "%s:%s", v->name, fd->name);
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_Column_fields, &col))
            return false;
    }
    return true;
}

static bool enc_rows_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const get_plan_t *p = *arg;
    for (size_t i = 0; i < p->nrows; i++) {
        const fr_asof_t *a = &p->rows[i];
        freshet_RowResult rr = freshet_RowResult_init_zero;
        fr_pb_bytes_t vals = {0};
        rr.has_status = true;
        rr.status = (uint32_t)a->status;
        if (a->status != FR_STATUS_NOT_FOUND) {
            rr.has_event_ts_us = rr.has_written_at_us = true;
            rr.event_ts_us = a->event_ts_us;
            rr.written_at_us = a->written_at_us;
            if (a->status == FR_STATUS_PRESENT || p->include_expired) {
                vals.ptr = a->values;
                vals.len = a->values_len;
                rr.values.funcs.encode = fr_pb_encode_bytes;
                rr.values.arg = &vals;
            }
        }
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_RowResult_fields, &rr))
            return false;
    }
    return true;
}

/* Resolves features into views and columns, and each view to its entity column. */
static int plan_get(get_req_t *g, const fr_registry_t *reg, get_plan_t *p)
{
    p->nviews = p->ncols = 0;
    for (size_t i = 0; i < g->nfeatures; i++) {
        const fr_view_def_t *v;
        int idx;
        int rc = fr_registry_resolve(reg, (const char *)g->features[i].ptr, g->features[i].len, &v,
                                     &idx);
        if (rc != FR_OK) {
            snprintf(g->why, sizeof g->why, "features[%zu]: %s \"%.*s\"", i,
                     rc == FR_E_UNKNOWN_VIEW ? "unknown view in" : rc == FR_E_UNKNOWN_FEATURE ? "unknown feature" : "bad reference",
                     (int)(g->features[i].len > 140 ? 140 : g->features[i].len), g->features[i].ptr);
            return rc;
        }
        size_t vi = 0;
        while (vi < p->nviews && p->views[vi] != v)
            vi++;
        if (vi == p->nviews) {
            if (p->nviews == MAX_GET_VIEWS) {
                snprintf(g->why, sizeof g->why, "features: more than %d views", MAX_GET_VIEWS);
                return FR_E_TOO_LARGE;
            }
            p->views[p->nviews++] = v;
        }
        uint32_t from = idx < 0 ? 0 : (uint32_t)idx, to = idx < 0 ? v->feature_count : (uint32_t)idx + 1;
        if (grow((void **)&p->cols, &p->cols_cap, p->ncols + (to - from), sizeof(colref_t)))
            return FR_E_NOMEM;
        for (uint32_t k = from; k < to; k++)
            p->cols[p->ncols++] = (colref_t){(uint16_t)vi, (int)k};
    }
    if (p->nviews == 0) {
        snprintf(g->why, sizeof g->why, "features: empty");
        return FR_E_BAD_REQUEST;
    }
    p->nentities = g->ncols ? g->cols[0].count : 0;
    for (size_t c = 1; c < g->ncols; c++)
        if (g->cols[c].count != p->nentities) {
            snprintf(g->why, sizeof g->why, "entities: columns have different lengths (%zu vs %zu)",
                     g->cols[c].count, p->nentities);
            return FR_E_BAD_REQUEST;
        }
    for (size_t vi = 0; vi < p->nviews; vi++) {
        const ecol_t *match = NULL;
        for (size_t c = 0; c < g->ncols && !match; c++)
            if (strcmp(g->cols[c].join_key, p->views[vi]->join_key) == 0)
                match = &g->cols[c];
        for (size_t c = 0; c < g->ncols && !match; c++)
            if (g->cols[c].join_key[0] == 0)
                match = &g->cols[c];
        if (!match && p->nentities > 0) {
            snprintf(g->why, sizeof g->why, "entities: no values for join key %s (view %s)",
                     p->views[vi]->join_key, p->views[vi]->name);
            return FR_E_BAD_REQUEST;
        }
        p->ecol[vi] = match;
    }
    return FR_OK;
}

static void h_get(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    if (!w->get_scratch && !(w->get_scratch = calloc(1, sizeof(get_scratch_t)))) {
        reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    get_scratch_t *scratch = w->get_scratch; /* reused: no malloc per request once warm */
    get_req_t *g = &scratch->req;
    get_plan_t *p = &scratch->plan;
    g->w = w;
    g->rc = FR_OK;
    g->why[0] = 0;
    g->nfeatures = g->ncols = 0;
    freshet_GetRequest req = freshet_GetRequest_init_zero;
    req.features.funcs.decode = get_feature_cb;
    req.features.arg = g;
    req.entities.funcs.decode = get_entities_cb;
    req.entities.arg = g;
    pb_istream_t is = pb_istream_from_buffer(body, f->body_len);
    if (!pb_decode(&is, freshet_GetRequest_fields, &req) || g->rc != FR_OK) {
        reply_error(w, c, f, g->rc != FR_OK ? g->rc : FR_E_BAD_REQUEST,
                    g->why[0] ? g->why : PB_GET_ERROR(&is));
        return;
    }
    fr_registry_t *reg = fr_store_registry(w->server->store);
    int rc = plan_get(g, reg, p);
    if (rc != FR_OK) {
        reply_error(w, c, f, rc, g->why);
        fr_registry_release(reg);
        return;
    }
    int64_t as_of = req.has_as_of_us ? req.as_of_us : fr_clock_now(w->server->clock);
    unsigned flags = req.has_served && req.served ? FR_ASOF_SERVED : 0;
    p->include_expired = req.has_include_expired && req.include_expired;
    p->nrows = p->nentities * p->nviews;
    if (grow((void **)&p->rows, &p->rows_cap, p->nrows, sizeof(fr_asof_t))) {
        reply_error(w, c, f, FR_E_NOMEM, NULL);
        fr_registry_release(reg);
        return;
    }
    rc = fr_rtxn_begin(w->rtxn);
    unsigned long long present = 0, expired = 0, missing = 0;
    for (size_t e = 0; e < p->nentities && rc == FR_OK; e++)
        for (size_t vi = 0; vi < p->nviews && rc == FR_OK; vi++) {
            const span_t *ent = &p->ecol[vi]->values[e];
            fr_asof_t *a = &p->rows[e * p->nviews + vi];
            rc = fr_asof_get(w->rtxn, p->views[vi], ent->ptr, ent->len, as_of, flags, a);
            present += a->status == FR_STATUS_PRESENT;
            expired += a->status == FR_STATUS_EXPIRED;
            missing += a->status == FR_STATUS_NOT_FOUND;
        }
    if (rc != FR_OK) {
        fr_rtxn_reset(w->rtxn);
        reply_error(w, c, f, rc, "read failed");
        fr_registry_release(reg);
        return;
    }
    atomic_fetch_add(&w->server->stats.values_present, present);
    atomic_fetch_add(&w->server->stats.values_expired, expired);
    atomic_fetch_add(&w->server->stats.values_not_found, missing);
    freshet_GetResponse r = freshet_GetResponse_init_zero;
    r.has_code = r.has_as_of_us = r.has_entity_count = r.has_snapshot_txn = true;
    r.as_of_us = as_of;
    r.entity_count = (uint32_t)p->nentities;
    r.snapshot_txn = fr_rtxn_id(w->rtxn);
    r.views.funcs.encode = enc_views_cb;
    r.views.arg = p;
    r.columns.funcs.encode = enc_columns_cb;
    r.columns.arg = p;
    r.rows.funcs.encode = enc_rows_cb;
    r.rows.arg = p;
    reply_msg(w, c, f, freshet_GetResponse_fields, &r);
    fr_rtxn_reset(w->rtxn); /* row values pointed into the map until here */
    fr_registry_release(reg);
}

/* ---- Status and Sources ---- */

typedef struct {
    fr_worker_t *w;
    const fr_registry_t *reg;
} status_ctx_t;

static bool enc_view_status_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const status_ctx_t *sc = *arg;
    for (uint32_t i = 0; i < sc->reg->view_count; i++) {
        const fr_view_def_t *v = &sc->reg->views[i];
        fr_view_stat_t st;
        if (fr_store_view_stat(sc->w->rtxn, v->id, &st) != FR_OK)
            return false;
        freshet_ViewStatus vs = freshet_ViewStatus_init_zero;
        vs.has_name = vs.has_versions = vs.has_newest_event_ts_us = true;
        snprintf(vs.name, sizeof vs.name, "%s", v->name);
        vs.versions = st.versions;
        vs.newest_event_ts_us = st.newest_event_ts_us;
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_ViewStatus_fields, &vs))
            return false;
    }
    return true;
}

static void h_status(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    (void)body;
    fr_server_t *s = w->server;
    fr_store_info_t info;
    fr_registry_t *reg = fr_store_registry(s->store);
    char *json = NULL;
    size_t json_len = 0;
    int rc = fr_store_info(s->store, &info);
    if (rc == FR_OK)
        rc = fr_registry_to_json(reg, &json, &json_len);
    if (rc == FR_OK)
        rc = fr_rtxn_begin(w->rtxn);
    if (rc != FR_OK) {
        reply_error(w, c, f, rc, "status unavailable");
        free(json);
        fr_registry_release(reg);
        return;
    }
    freshet_StatusResponse r = freshet_StatusResponse_init_zero;
    r.has_code = r.has_version = r.has_durability = r.has_map_size = r.has_map_used = true;
    r.has_last_txn = r.has_server_time_us = r.has_write_seq = true;
    snprintf(r.version, sizeof r.version, "%s", FRESHET_VERSION);
    snprintf(r.durability, sizeof r.durability, "%s", s->cfg.durability);
    r.map_size = info.map_size;
    r.map_used = info.map_used;
    r.last_txn = info.last_txn;
    r.write_seq = info.write_seq;
    r.server_time_us = fr_clock_now(s->clock);
    status_ctx_t sc = {w, reg};
    r.views.funcs.encode = enc_view_status_cb;
    r.views.arg = &sc;
    fr_pb_bytes_t jb = {json, json_len};
    r.registry_json.funcs.encode = fr_pb_encode_bytes;
    r.registry_json.arg = &jb;
    reply_msg(w, c, f, freshet_StatusResponse_fields, &r);
    fr_rtxn_reset(w->rtxn);
    free(json);
    fr_registry_release(reg);
}

typedef struct {
    pb_ostream_t *stream;
    const pb_field_t *field;
    bool ok;
} src_enc_t;

static int source_enc_cb(void *ctx, const char *source, size_t len, uint32_t partition, int64_t off)
{
    src_enc_t *se = ctx;
    freshet_SourcePosition sp = freshet_SourcePosition_init_zero;
    sp.has_source = sp.has_partition = sp.has_offset = true;
    snprintf(sp.source, sizeof sp.source, "%.*s", (int)(len < 128 ? len : 128), source);
    sp.partition = partition;
    sp.offset = off;
    se->ok = pb_encode_tag_for_field(se->stream, se->field) &&
             pb_encode_submessage(se->stream, freshet_SourcePosition_fields, &sp);
    return !se->ok;
}

static bool enc_sources_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    fr_worker_t *w = *arg;
    src_enc_t se = {stream, field, true};
    return fr_store_sources_each(w->rtxn, source_enc_cb, &se) == FR_OK && se.ok;
}

static void h_sources(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    (void)body;
    int rc = fr_rtxn_begin(w->rtxn);
    if (rc != FR_OK) {
        reply_error(w, c, f, rc, "read failed");
        return;
    }
    freshet_SourcesResponse r = freshet_SourcesResponse_init_zero;
    r.has_code = true;
    r.positions.funcs.encode = enc_sources_cb;
    r.positions.arg = w;
    reply_msg(w, c, f, freshet_SourcesResponse_fields, &r);
    fr_rtxn_reset(w->rtxn);
}

void fr_handle_scratch_free(fr_worker_t *w)
{
    get_scratch_t *sc = w->get_scratch;
    if (!sc)
        return;
    for (size_t i = 0; i < MAX_ECOLS; i++)
        free(sc->req.cols[i].values);
    free(sc->req.features);
    free(sc->plan.cols);
    free(sc->plan.rows);
    free(sc);
    w->get_scratch = NULL;
}
