/* libfreshet: Score requests to freshet-infer (include/freshet/infer.h). The request reuses
 * EntityColumn; the reply's rows are decoded into flat arrays owned by one result object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "freshet/infer.h"

typedef struct {
    int code;
    char *message;
    size_t dbl_off, n_margins, n_probs; /* margins then probs in dbl[] */
    size_t st_off, n_statuses;
    uint32_t missing;
} row_rec_t;

struct fr_score_result {
    size_t row_count, input_count;
    row_rec_t *rows;
    double *dbl;
    uint8_t *st;
    char **names, **bindings;
    size_t binding_count; /* equals input_count in a well-formed reply */
    uint32_t outputs;
    uint64_t snapshot;
    int64_t as_of_us;
    uint32_t fetch_us, eval_us;
};

/* ---- encoding ---- */

static bool enc_doubles_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_score_feature_t *f = *arg;
    if (!f->count)
        return true;
    if (!pb_encode_tag(stream, PB_WT_STRING, field->tag) ||
        !pb_encode_varint(stream, (uint64_t)f->count * 8))
        return false;
    for (size_t i = 0; i < f->count; i++)
        if (!pb_encode_fixed64(stream, &f->values[i]))
            return false;
    return true;
}

static bool enc_feats_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_score_req_t *req = *arg;
    for (size_t i = 0; i < req->feature_count; i++) {
        const fr_score_feature_t *f = &req->features[i];
        freshet_RequestFeature rf = freshet_RequestFeature_init_zero;
        rf.has_name = true;
        snprintf(rf.name, sizeof rf.name, "%s", f->name);
        rf.values.funcs.encode = enc_doubles_cb;
        rf.values.arg = (void *)f;
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_RequestFeature_fields, &rf))
            return false;
    }
    return true;
}

/* ---- decoding ---- */

typedef struct {
    fr_score_result_t *r;
    size_t rows_cap, dbl_len, dbl_cap, st_len, st_cap, names_cap, bind_cap;
    int oom;
} dec_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static bool take_string(pb_istream_t *stream, char **out)
{
    const uint8_t *p;
    size_t n;
    if (!fr_pb_take_bytes(stream, &p, &n))
        return false;
    *out = malloc(n + 1);
    if (!*out)
        return false;
    memcpy(*out, p, n);
    (*out)[n] = 0;
    return true;
}

static bool dec_name_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_t *d = *arg;
    fr_score_result_t *r = d->r;
    if (grow((void **)&r->names, &d->names_cap, r->input_count + 1, sizeof(char *)))
        return d->oom = 1, false;
    if (!take_string(stream, &r->names[r->input_count]))
        return d->oom = 1, false;
    r->input_count++;
    return true;
}

static bool dec_binding_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_t *d = *arg;
    fr_score_result_t *r = d->r;
    if (grow((void **)&r->bindings, &d->bind_cap, r->binding_count + 1, sizeof(char *)))
        return d->oom = 1, false;
    if (!take_string(stream, &r->bindings[r->binding_count]))
        return d->oom = 1, false;
    r->binding_count++;
    return true;
}

typedef struct {
    dec_t *d;
    size_t *count;
} dbl_arg_t;

static bool dec_doubles_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dbl_arg_t *a = *arg;
    dec_t *d = a->d;
    while (stream->bytes_left) {
        double v;
        if (!pb_decode_fixed64(stream, &v))
            return false;
        if (grow((void **)&d->r->dbl, &d->dbl_cap, d->dbl_len + 1, sizeof(double)))
            return d->oom = 1, false;
        d->r->dbl[d->dbl_len++] = v;
        (*a->count)++;
    }
    return true;
}

static bool dec_statuses_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dbl_arg_t *a = *arg;
    dec_t *d = a->d;
    while (stream->bytes_left) {
        uint32_t v;
        if (!pb_decode_varint32(stream, &v))
            return false;
        if (grow((void **)&d->r->st, &d->st_cap, d->st_len + 1, 1))
            return d->oom = 1, false;
        d->r->st[d->st_len++] = (uint8_t)v;
        (*a->count)++;
    }
    return true;
}

static bool dec_row_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    dec_t *d = *arg;
    fr_score_result_t *r = d->r;
    if (grow((void **)&r->rows, &d->rows_cap, r->row_count + 1, sizeof(row_rec_t)))
        return d->oom = 1, false;
    row_rec_t *rec = &r->rows[r->row_count];
    memset(rec, 0, sizeof *rec);
    rec->dbl_off = d->dbl_len;
    rec->st_off = d->st_len;
    freshet_ScoreRow row = freshet_ScoreRow_init_zero;
    dbl_arg_t am = {d, &rec->n_margins}, ap = {d, &rec->n_probs}, as = {d, &rec->n_statuses};
    row.margins.funcs.decode = dec_doubles_cb;
    row.margins.arg = &am;
    row.probs.funcs.decode = dec_doubles_cb;
    row.probs.arg = &ap;
    row.statuses.funcs.decode = dec_statuses_cb;
    row.statuses.arg = &as;
    if (!pb_decode(stream, freshet_ScoreRow_fields, &row))
        return false;
    r->row_count++; /* counted now: the message below is freed with the result */
    rec->code = row.has_code ? row.code : 0;
    rec->missing = row.missing;
    rec->message = strdup(row.has_message ? row.message : "");
    if (!rec->message)
        return d->oom = 1, false;
    return true;
}

int fr_client_score(fr_client_t *c, const fr_score_req_t *req, fr_score_result_t **out)
{
    *out = NULL;
    for (size_t i = 0; i < req->feature_count; i++)
        if (!req->features[i].name ||
            strlen(req->features[i].name) >= sizeof(((freshet_RequestFeature *)0)->name))
            return fr_client_failf(c, FR_E_BAD_ARG, "features[%zu]: name missing or too long", i);
    freshet_ScoreRequest sr = freshet_ScoreRequest_init_zero;
    fr_entity_cols_t cols = {req->entities, req->entity_col_count};
    sr.entities.funcs.encode = fr_client_enc_entity_cols;
    sr.entities.arg = &cols;
    sr.features.funcs.encode = enc_feats_cb;
    sr.features.arg = (void *)req;
    sr.has_as_of_us = req->has_as_of;
    sr.as_of_us = req->as_of_us;
    fr_score_result_t *r = calloc(1, sizeof *r);
    if (!r)
        return fr_client_failf(c, FR_E_NOMEM, "no memory");
    dec_t d = {.r = r};
    freshet_ScoreResponse resp = freshet_ScoreResponse_init_zero;
    resp.inputs.funcs.decode = dec_name_cb;
    resp.inputs.arg = &d;
    resp.bindings.funcs.decode = dec_binding_cb;
    resp.bindings.arg = &d;
    resp.rows.funcs.decode = dec_row_cb;
    resp.rows.arg = &d;
    int rc = fr_client_call(c, freshet_Op_OP_SCORE, freshet_ScoreRequest_fields, &sr,
                            freshet_ScoreResponse_fields, &resp);
    if (rc == FR_OK && d.oom)
        rc = fr_client_failf(c, FR_E_NOMEM, "no memory for the reply");
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc != FR_OK)
        goto fail;
    if (r->binding_count != r->input_count)
        goto bad;
    for (size_t i = 0; i < r->row_count; i++) {
        const row_rec_t *rec = &r->rows[i];
        if (rec->n_statuses != r->input_count ||
            (rec->code == 0 && (rec->n_margins != resp.outputs || rec->n_probs != resp.outputs)))
            goto bad;
    }
    r->outputs = resp.outputs;
    r->snapshot = resp.snapshot_txn;
    r->as_of_us = resp.as_of_us;
    r->fetch_us = resp.fetch_us;
    r->eval_us = resp.eval_us;
    *out = r;
    return FR_OK;
bad:
    rc = fr_client_failf(c, FR_E_BAD_REQUEST,
                         "malformed reply: rows do not match the model's inputs");
fail:
    fr_score_result_free(r);
    return rc;
}

/* ---- accessors ---- */

size_t fr_score_row_count(const fr_score_result_t *r)
{
    return r->row_count;
}

int fr_score_row(const fr_score_result_t *r, size_t i, fr_score_row_t *out)
{
    if (i >= r->row_count)
        return FR_E_BAD_ARG;
    const row_rec_t *rec = &r->rows[i];
    out->code = rec->code;
    out->message = rec->message;
    out->margins = rec->code == 0 ? r->dbl + rec->dbl_off : NULL;
    out->probs = rec->code == 0 ? r->dbl + rec->dbl_off + rec->n_margins : NULL;
    out->statuses = r->st ? r->st + rec->st_off : (const uint8_t *)"";
    out->missing = rec->missing;
    return FR_OK;
}

size_t fr_score_input_count(const fr_score_result_t *r)
{
    return r->input_count;
}
const char *fr_score_input_name(const fr_score_result_t *r, size_t j)
{
    return j < r->input_count ? r->names[j] : NULL;
}
const char *fr_score_input_binding(const fr_score_result_t *r, size_t j)
{
    return j < r->input_count ? r->bindings[j] : NULL;
}
uint32_t fr_score_output_count(const fr_score_result_t *r)
{
    return r->outputs;
}
uint64_t fr_score_snapshot(const fr_score_result_t *r)
{
    return r->snapshot;
}
int64_t fr_score_as_of(const fr_score_result_t *r)
{
    return r->as_of_us;
}
uint32_t fr_score_fetch_us(const fr_score_result_t *r)
{
    return r->fetch_us;
}
uint32_t fr_score_eval_us(const fr_score_result_t *r)
{
    return r->eval_us;
}

void fr_score_result_free(fr_score_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->row_count; i++)
        free(r->rows[i].message);
    free(r->rows);
    free(r->dbl);
    free(r->st);
    for (size_t j = 0; j < r->input_count; j++)
        free(r->names[j]);
    for (size_t j = 0; j < r->binding_count; j++)
        free(r->bindings[j]);
    free(r->names);
    free(r->bindings);
    free(r);
}
