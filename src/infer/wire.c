/* The binary front end of freshet-infer: ScoreRequest decoding (nanopb, bounded by max_rows,
 * FR_INFER_MAX_COLS entity columns and FR_INFER_MAX_REQ_FEATURES request-time features) and
 * ScoreResponse encoding straight from the engine's output arrays. */
#include <string.h>

#include "freshet/err.h"
#include "infer_int.h"

typedef struct {
    fr_iworker_t *w;
    fr_score_col_t *col;
    fr_score_feat_t *feat;
} dec_ctx_t;

static bool id_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_ctx_t *d = *arg;
    const uint8_t *p;
    size_t n;
    if (!fr_pb_take_bytes(stream, &p, &n))
        return false;
    return fr_score_col_push(&d->w->server->engine, &d->w->in, d->col, (const char *)p, n) == 0;
}

static bool cols_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_ctx_t *d = *arg;
    fr_score_in_t *in = &d->w->in;
    if (in->ncols == FR_INFER_MAX_COLS) {
        in->rc = FR_E_TOO_LARGE;
        snprintf(in->why, sizeof in->why, "entities: more than %d entity columns",
                 FR_INFER_MAX_COLS);
        return false;
    }
    dec_ctx_t sub = {d->w, &in->cols[in->ncols++], NULL};
    sub.col->count = 0;
    freshet_EntityColumn ec = freshet_EntityColumn_init_zero;
    ec.values.funcs.decode = id_cb;
    ec.values.arg = &sub;
    if (!pb_decode(stream, freshet_EntityColumn_fields, &ec))
        return false;
    snprintf(sub.col->join_key, sizeof sub.col->join_key, "%s", ec.has_join_key ? ec.join_key : "");
    for (size_t i = 0; i + 1 < in->ncols; i++)
        if (strcmp(in->cols[i].join_key, sub.col->join_key) == 0) {
            in->rc = FR_E_BAD_REQUEST;
            snprintf(in->why, sizeof in->why, "entities: join key \"%s\" given twice",
                     sub.col->join_key);
            return false;
        }
    return true;
}

static bool values_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_ctx_t *d = *arg;
    while (stream->bytes_left) {
        double v;
        if (!pb_decode_fixed64(stream, &v))
            return false;
        if (fr_score_feat_push(&d->w->server->engine, &d->w->in, d->feat, v) != 0)
            return false;
    }
    return true;
}

/* RequestFeature: the name (field 1) is read first so that values land in the right input. */
static bool feats_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_ctx_t *d = *arg;
    fr_score_in_t *in = &d->w->in;
    /* pass 1: find the name */
    pb_istream_t probe = *stream;
    freshet_RequestFeature rf = freshet_RequestFeature_init_zero;
    if (!pb_decode(&probe, freshet_RequestFeature_fields, &rf))
        return false;
    if (!rf.has_name) {
        in->rc = FR_E_BAD_REQUEST;
        snprintf(in->why, sizeof in->why, "features: a feature without a name");
        return false;
    }
    dec_ctx_t sub = {d->w, NULL, NULL};
    sub.feat = fr_score_in_feature(&d->w->server->engine, in, rf.name, strlen(rf.name));
    if (!sub.feat)
        return false;
    /* pass 2: the values */
    freshet_RequestFeature rf2 = freshet_RequestFeature_init_zero;
    rf2.values.funcs.decode = values_cb;
    rf2.values.arg = &sub;
    return pb_decode(stream, freshet_RequestFeature_fields, &rf2);
}

/* ---- reply ---- */

static bool enc_names_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_engine_t *e = *arg;
    for (uint32_t j = 0; j < e->nin; j++) {
        const char *s = fr_model_feature_name(e->model, j);
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)s, strlen(s)))
            return false;
    }
    return true;
}

static bool enc_bindings_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_engine_t *e = *arg;
    for (uint32_t j = 0; j < e->nin; j++) {
        const char *s = fr_model_feature_binding(e->model, j);
        if (!s)
            s = "";
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)s, strlen(s)))
            return false;
    }
    return true;
}

typedef struct {
    const double *v;
    size_t n;
} dbls_t;

static bool enc_dbls_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const dbls_t *a = *arg;
    if (!a->n)
        return true;
    if (!pb_encode_tag(stream, PB_WT_STRING, field->tag) || !pb_encode_varint(stream, a->n * 8))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!pb_encode_fixed64(stream, &a->v[i]))
            return false;
    return true;
}

typedef struct {
    const uint8_t *v;
    size_t n;
} u8s_t;

static bool enc_u8s_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const u8s_t *a = *arg;
    if (!a->n)
        return true;
    /* statuses are 0..3: one byte each as varints */
    if (!pb_encode_tag(stream, PB_WT_STRING, field->tag) || !pb_encode_varint(stream, a->n))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!pb_encode_varint(stream, a->v[i]))
            return false;
    return true;
}

static bool enc_rows_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_iworker_t *w = *arg;
    const fr_engine_t *e = &w->server->engine;
    const fr_score_out_t *o = &w->res;
    for (size_t r = 0; r < o->nrows; r++) {
        freshet_ScoreRow row = freshet_ScoreRow_init_zero;
        dbls_t mg = {&o->margins[r * e->nout], e->nout}, pr = {&o->probs[r * e->nout], e->nout};
        u8s_t st = {&o->statuses[r * e->nin], e->nin};
        row.has_missing = true;
        row.missing = o->missing[r];
        row.statuses.funcs.encode = enc_u8s_cb;
        row.statuses.arg = &st;
        if (o->codes[r] != FR_OK) {
            row.has_code = row.has_message = true;
            row.code = o->codes[r];
            fr_engine_row_message(e, o, r, row.message, sizeof row.message);
        } else {
            row.margins.funcs.encode = enc_dbls_cb;
            row.margins.arg = &mg;
            row.probs.funcs.encode = enc_dbls_cb;
            row.probs.arg = &pr;
        }
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_ScoreRow_fields, &row))
            return false;
    }
    return true;
}

static int encode_error(fr_iworker_t *w, const fr_frame_t *f, int code, const char *msg)
{
    freshet_ScoreResponse r = freshet_ScoreResponse_init_zero;
    r.has_code = r.has_message = true;
    r.code = code;
    snprintf(r.message, sizeof r.message, "%s", msg && *msg ? msg : fr_err_str(code));
    return fr_frame_encode_msg(&w->out, f->request_id, (uint16_t)(f->op | FR_OP_RESPONSE),
                               freshet_ScoreResponse_fields, &r);
}

static void handle_score(fr_iworker_t *w, const fr_frame_t *f, const uint8_t *body)
{
    const fr_engine_t *e = &w->server->engine;
    fr_score_in_t *in = &w->in;
    fr_score_in_reset(in);
    dec_ctx_t d = {w, NULL, NULL};
    freshet_ScoreRequest req = freshet_ScoreRequest_init_zero;
    req.entities.funcs.decode = cols_cb;
    req.entities.arg = &d;
    req.features.funcs.decode = feats_cb;
    req.features.arg = &d;
    pb_istream_t is = fr_pb_istream(body, f->body_len);
    if (!pb_decode(&is, freshet_ScoreRequest_fields, &req) || in->rc != FR_OK) {
        encode_error(w, f, in->rc != FR_OK ? in->rc : FR_E_BAD_REQUEST,
                     in->why[0] ? in->why : fr_pb_why(&is));
        return;
    }
    in->has_as_of = req.has_as_of_us;
    in->as_of_us = req.as_of_us;
    char why[256] = "";
    int rc = fr_engine_score(e, &w->fresh, in, &w->res, why, sizeof why);
    if (rc != FR_OK) {
        encode_error(w, f, rc, why);
        return;
    }
    freshet_ScoreResponse r = freshet_ScoreResponse_init_zero;
    r.has_code = r.has_outputs = r.has_snapshot_txn = r.has_as_of_us = true;
    r.has_fetch_us = r.has_eval_us = true;
    r.outputs = e->nout;
    r.snapshot_txn = w->res.snapshot;
    r.as_of_us = w->res.as_of_us;
    r.fetch_us = w->res.fetch_us;
    r.eval_us = w->res.eval_us;
    r.inputs.funcs.encode = enc_names_cb;
    r.inputs.arg = (void *)e;
    r.bindings.funcs.encode = enc_bindings_cb;
    r.bindings.arg = (void *)e;
    r.rows.funcs.encode = enc_rows_cb;
    r.rows.arg = w;
    size_t start = w->out.len;
    if (fr_frame_encode_msg(&w->out, f->request_id, (uint16_t)(f->op | FR_OP_RESPONSE),
                            freshet_ScoreResponse_fields, &r) != FR_OK) {
        w->out.len = start;
        encode_error(w, f, FR_E_INTERNAL, "cannot encode the reply");
    }
}

void fr_infer_handle_frame(fr_iworker_t *w, const fr_frame_t *f, const uint8_t *body)
{
    fr_buf_reset(&w->out);
    if (f->op == freshet_Op_OP_SCORE) {
        handle_score(w, f, body);
        return;
    }
    char msg[96];
    snprintf(msg, sizeof msg, "op %u is not an operation of freshet-infer (only Score, op %d)",
             f->op, freshet_Op_OP_SCORE);
    encode_error(w, f, FR_E_BAD_OP, msg);
}
