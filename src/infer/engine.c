/* The scoring engine: plans which model inputs come from which freshetd view, fetches every row's
 * features in one pipelined batch, turns EXPIRED / NOT_FOUND / NULL into missing (NaN), applies the
 * --max-missing policy per row and evaluates the model. Shared by the binary and HTTP front ends.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "freshet/err.h"
#include "infer_int.h"

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

static bool numeric(fr_type_t t)
{
    return t == FR_TYPE_INT64 || t == FR_TYPE_DOUBLE || t == FR_TYPE_FLOAT || t == FR_TYPE_BOOL;
}

/* Checks binding `ref` against the registry of c, registers its view; returns the view index. */
static int bind_view(fr_engine_t *e, fr_client_t *c, const char *ref, uint32_t *view_out, char *why,
                     size_t why_len)
{
    const char *colon = strchr(ref, ':');
    size_t vlen = colon ? (size_t)(colon - ref) : 0;
    if (!colon || vlen == 0 || vlen > FR_INFER_KEY_MAX || !colon[1]) {
        snprintf(why, why_len, "binding \"%s\": expected view:feature", ref);
        return FR_E_BAD_MODEL;
    }
    char view[FR_INFER_KEY_MAX + 1];
    memcpy(view, ref, vlen);
    view[vlen] = 0;
    size_t n;
    const char *const *names;
    const fr_type_t *types;
    int rc = fr_client_view_features(c, view, &n, &names, &types);
    if (rc != FR_OK) {
        snprintf(why, why_len, "binding \"%s\": freshetd has no view %s (%s)", ref, view,
                 fr_err_name(rc));
        return rc;
    }
    size_t k = 0;
    while (k < n && strcmp(names[k], colon + 1) != 0)
        k++;
    if (k == n) {
        snprintf(why, why_len, "binding \"%s\": view %s has no feature %s", ref, view, colon + 1);
        return FR_E_UNKNOWN_FEATURE;
    }
    if (!numeric(types[k])) {
        snprintf(why, why_len,
                 "binding \"%s\": type %s is not numeric (int64, double, float, bool)", ref,
                 fr_type_name(types[k]));
        return FR_E_TYPE_MISMATCH;
    }
    uint32_t v = 0;
    while (v < e->nviews && strcmp(e->views[v].name, view) != 0)
        v++;
    if (v == e->nviews) {
        const char *key;
        rc = fr_client_view_join_key(c, view, &key);
        if (rc != FR_OK) {
            snprintf(why, why_len, "view %s: no join key (%s)", view, fr_err_name(rc));
            return rc;
        }
        strcpy(e->views[v].name, view);
        snprintf(e->views[v].join_key, sizeof e->views[v].join_key, "%s", key);
        e->nviews++;
    }
    *view_out = v;
    return FR_OK;
}

static int engine_bind(fr_engine_t *e, fr_client_t **c, char *why, size_t why_len);

int fr_engine_init(fr_engine_t *e, const fr_model_t *m, const fr_infer_config_t *cfg, char *why,
                   size_t why_len)
{
    return fr_engine_init_with(e, m, cfg, NULL, why, why_len);
}

int fr_engine_init_with(fr_engine_t *e, const fr_model_t *m, const fr_infer_config_t *cfg,
                        fr_client_t *schema, char *why, size_t why_len)
{
    memset(e, 0, sizeof *e);
    e->model = m;
    e->nin = fr_model_n_features(m);
    e->nout = fr_model_n_outputs(m);
    e->max_missing = cfg->max_missing;
    e->max_rows = (size_t)cfg->max_rows;
    e->fetch_batch = (size_t)cfg->fetch_batch;
    e->server = cfg->server;
    e->timeout_ms = (int)cfg->timeout_ms;
    /* Like the CLI: a freshetd with --auth-file or TLS is reached with FRESHET_TOKEN (a read token
     * is enough), FRESHET_TLS=1, FRESHET_TLS_CA=FILE, FRESHET_TLS_INSECURE=1. */
    e->conn_opts.timeout_ms = e->timeout_ms;
    e->conn_opts.token = getenv("FRESHET_TOKEN");
    e->conn_opts.tls_ca = getenv("FRESHET_TLS_CA");
    e->conn_opts.tls_insecure = getenv("FRESHET_TLS_INSECURE") && !strcmp(getenv("FRESHET_TLS_INSECURE"), "1");
    e->conn_opts.tls = (getenv("FRESHET_TLS") && !strcmp(getenv("FRESHET_TLS"), "1")) ||
                       e->conn_opts.tls_ca || e->conn_opts.tls_insecure;
    size_t n = e->nin ? e->nin : 1;
    e->fetch_refs = calloc(n, sizeof *e->fetch_refs);
    e->fetch_view = calloc(n, sizeof *e->fetch_view);
    e->views = calloc(n, sizeof *e->views);
    e->input_fetch = calloc(n, sizeof *e->input_fetch);
    if (!e->fetch_refs || !e->fetch_view || !e->views || !e->input_fetch) {
        snprintf(why, why_len, "no memory");
        return FR_E_NOMEM;
    }
    fr_client_t *c = schema;
    int rc = engine_bind(e, &c, why, why_len);
    if (c != schema)
        fr_client_free(c);
    return rc;
}

/* Resolves every bound input through *c, connecting to e->server on first need when NULL. */
static int engine_bind(fr_engine_t *e, fr_client_t **c, char *why, size_t why_len)
{
    int rc = FR_OK;
    for (uint32_t i = 0; i < e->nin && rc == FR_OK; i++) {
        const char *ref = fr_model_feature_binding(e->model, i);
        e->input_fetch[i] = -1;
        if (!ref)
            continue;
        size_t k = 0;
        while (k < e->nfetch && strcmp(e->fetch_refs[k], ref) != 0)
            k++;
        if (k == e->nfetch) {
            if (!*c) {
                rc = fr_client_connect_opts(e->server, &e->conn_opts, c);
                if (rc != FR_OK) {
                    snprintf(why, why_len, "cannot connect to freshetd at %s (%s)", e->server,
                             fr_err_name(rc));
                    break;
                }
            }
            rc = bind_view(e, *c, ref, &e->fetch_view[k], why, why_len);
            if (rc != FR_OK)
                break;
            e->fetch_refs[k] = ref;
            e->nfetch++;
        }
        e->input_fetch[i] = (int32_t)k;
    }
    return rc;
}

void fr_engine_fini(fr_engine_t *e)
{
    free(e->fetch_refs);
    free(e->fetch_view);
    free(e->views);
    free(e->input_fetch);
    memset(e, 0, sizeof *e);
}

const char *fr_engine_input_label(const fr_engine_t *e, uint32_t j)
{
    const char *b = fr_model_feature_binding(e->model, j);
    return b ? b : fr_model_feature_name(e->model, j);
}

/* ---- requests ---- */

void fr_score_in_reset(fr_score_in_t *in)
{
    for (size_t i = 0; i < in->ncols; i++)
        in->cols[i].count = 0;
    for (size_t i = 0; i < in->nfeats; i++)
        in->feats[i].count = 0;
    in->ncols = in->nfeats = 0;
    in->has_as_of = false;
    in->as_of_us = 0;
    in->rc = FR_OK;
    in->why[0] = 0;
}

void fr_score_in_fini(fr_score_in_t *in)
{
    for (size_t i = 0; i < FR_INFER_MAX_COLS; i++) {
        free(in->cols[i].ids);
        free(in->cols[i].lens);
    }
    for (size_t i = 0; i < FR_INFER_MAX_REQ_FEATURES; i++)
        free(in->feats[i].values);
}

static void fail(fr_score_in_t *in, int rc, const char *fmt, const char *a, size_t alen)
{
    if (in->rc != FR_OK)
        return;
    in->rc = rc;
    snprintf(in->why, sizeof in->why, fmt, (int)(alen > 100 ? 100 : alen), a);
}

fr_score_feat_t *fr_score_in_feature(const fr_engine_t *e, fr_score_in_t *in, const char *name,
                                     size_t name_len)
{
    char buf[FR_MODEL_MAX_NAME + 1];
    if (name_len > FR_MODEL_MAX_NAME) {
        fail(in, FR_E_BAD_REQUEST, "features: name \"%.*s...\" is too long", name, name_len);
        return NULL;
    }
    memcpy(buf, name, name_len);
    buf[name_len] = 0;
    int64_t idx = fr_model_feature_index(e->model, buf);
    if (idx < 0) {
        fail(in, FR_E_BAD_REQUEST, "features: \"%.*s\" is not an input of the model", name,
             name_len);
        return NULL;
    }
    if (e->input_fetch[idx] >= 0) {
        fail(in, FR_E_BAD_REQUEST,
             "features: \"%.*s\" is bound to a view:feature and fetched from freshetd", name,
             name_len);
        return NULL;
    }
    for (size_t i = 0; i < in->nfeats; i++)
        if (in->feats[i].input == (uint32_t)idx) {
            fail(in, FR_E_BAD_REQUEST, "features: \"%.*s\" given twice", name, name_len);
            return NULL;
        }
    if (in->nfeats == FR_INFER_MAX_REQ_FEATURES) {
        fail(in, FR_E_TOO_LARGE, "features: more than 256 request-time features%.*s", "", 0);
        return NULL;
    }
    fr_score_feat_t *f = &in->feats[in->nfeats++];
    f->input = (uint32_t)idx;
    f->count = 0;
    return f;
}

int fr_score_feat_push(const fr_engine_t *e, fr_score_in_t *in, fr_score_feat_t *f, double v)
{
    if (f->count >= e->max_rows) {
        in->rc = FR_E_TOO_LARGE;
        snprintf(in->why, sizeof in->why, "features: more than max_rows (%zu) values", e->max_rows);
        return -1;
    }
    if (grow((void **)&f->values, &f->cap, f->count + 1, sizeof(double))) {
        in->rc = FR_E_NOMEM;
        snprintf(in->why, sizeof in->why, "no memory");
        return -1;
    }
    f->values[f->count++] = v;
    return 0;
}

int fr_score_col_push(const fr_engine_t *e, fr_score_in_t *in, fr_score_col_t *c, const char *id,
                      size_t len)
{
    if (c->count >= e->max_rows) {
        in->rc = FR_E_TOO_LARGE;
        snprintf(in->why, sizeof in->why, "entities: more than max_rows (%zu) ids", e->max_rows);
        return -1;
    }
    if (c->count == c->cap) { /* ids and lens share one capacity */
        size_t cap = c->cap ? c->cap * 2 : 64;
        const char **ids = realloc(c->ids, cap * sizeof *ids);
        if (ids)
            c->ids = ids;
        size_t *lens = ids ? realloc(c->lens, cap * sizeof *lens) : NULL;
        if (!lens) {
            in->rc = FR_E_NOMEM;
            snprintf(in->why, sizeof in->why, "no memory");
            return -1;
        }
        c->lens = lens;
        c->cap = cap;
    }
    c->ids[c->count] = id;
    c->lens[c->count] = len;
    c->count++;
    return 0;
}

/* ---- scoring ---- */

static int out_reserve(const fr_engine_t *e, fr_score_out_t *o, size_t rows, size_t chunks)
{
    if (rows > o->cap_rows) {
        size_t n = rows;
        double *mg = realloc(o->margins, n * e->nout * sizeof(double));
        if (mg)
            o->margins = mg;
        double *pr = realloc(o->probs, n * e->nout * sizeof(double));
        if (pr)
            o->probs = pr;
        uint8_t *st = realloc(o->statuses, n * (e->nin ? e->nin : 1));
        if (st)
            o->statuses = st;
        uint32_t *ms = realloc(o->missing, n * sizeof(uint32_t));
        if (ms)
            o->missing = ms;
        int32_t *cd = realloc(o->codes, n * sizeof(int32_t));
        if (cd)
            o->codes = cd;
        if (!mg || !pr || !st || !ms || !cd)
            return FR_E_NOMEM;
        o->cap_rows = n;
    }
    if (!o->x) {
        size_t nin = e->nin ? e->nin : 1, nv = e->nviews ? e->nviews : 1;
        size_t nf = e->nfetch ? e->nfetch : 1;
        o->x = malloc(nin * sizeof(double));
        o->refs = malloc(nf * sizeof(char *));
        o->view_col = malloc(nv * sizeof(int32_t));
        o->fetch_col = malloc(nf * sizeof(int32_t));
        if (!o->x || !o->refs || !o->view_col || !o->fetch_col)
            return FR_E_NOMEM;
    }
    if (chunks > o->cap_chunks) {
        fr_get_req_t *g = realloc(o->gets, chunks * sizeof *g);
        if (g)
            o->gets = g;
        fr_result_t **r = realloc(o->results, chunks * sizeof *r);
        if (r)
            o->results = r;
        fr_entity_col_t *ec = realloc(o->ecols, chunks * FR_INFER_MAX_COLS * sizeof *ec);
        if (ec)
            o->ecols = ec;
        if (!g || !r || !ec)
            return FR_E_NOMEM;
        o->cap_chunks = chunks;
    }
    return FR_OK;
}

void fr_score_out_fini(fr_score_out_t *o)
{
    free(o->margins);
    free(o->probs);
    free(o->statuses);
    free(o->missing);
    free(o->codes);
    free(o->x);
    free(o->gets);
    free(o->results);
    free(o->refs);
    free(o->ecols);
    free(o->view_col);
    free(o->fetch_col);
    memset(o, 0, sizeof *o);
}

static bool transport_error(int rc)
{
    return rc == FR_E_IO || rc == FR_E_CLOSED || rc == FR_E_TIMEOUT;
}

/* Sends every chunk's Get on *client (reconnecting once after a transport failure). */
static int fetch(const fr_engine_t *e, fr_client_t **client, fr_score_out_t *o, size_t nchunks,
                 char *why, size_t why_len)
{
    int rc = FR_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!*client) {
            rc = fr_client_connect_opts(e->server, &e->conn_opts, client);
            if (rc != FR_OK) {
                snprintf(why, why_len, "freshetd at %s is unreachable (%s)", e->server,
                         fr_err_name(rc));
                return FR_E_IO;
            }
        }
        for (size_t k = 0; k < nchunks; k++)
            o->results[k] = NULL;
        rc = fr_client_get_many(*client, o->gets, nchunks, o->results);
        if (rc == FR_OK)
            return FR_OK;
        snprintf(why, why_len, "freshetd: %s", fr_client_error(*client));
        for (size_t k = 0; k < nchunks; k++) {
            fr_result_free(o->results[k]);
            o->results[k] = NULL;
        }
        if (!transport_error(rc))
            return rc;
        fr_log(FR_LOG_WARN, "event=freshetd_reconnect server=%s code=%s", e->server,
               fr_err_name(rc));
        fr_client_free(*client);
        *client = NULL;
    }
    return rc;
}

static double cell_number(const fr_value_t *v)
{
    switch (v->type) {
    case FR_TYPE_INT64:
        return (double)v->u.i64;
    case FR_TYPE_DOUBLE:
        return v->u.f64;
    case FR_TYPE_FLOAT:
        return (double)v->u.f32;
    case FR_TYPE_BOOL:
        return v->u.b ? 1.0 : 0.0;
    default:
        return NAN;
    }
}

/* Number of rows of a request: every column and feature must agree. */
static int row_count(const fr_engine_t *e, const fr_score_in_t *in, size_t *rows, char *why,
                     size_t why_len)
{
    bool have = false;
    size_t n = 0;
    for (size_t i = 0; i < in->ncols; i++) {
        if (have && in->cols[i].count != n) {
            snprintf(why, why_len, "entities: column %s has %zu ids, expected %zu",
                     in->cols[i].join_key[0] ? in->cols[i].join_key : "(any)", in->cols[i].count,
                     n);
            return FR_E_BAD_REQUEST;
        }
        n = in->cols[i].count;
        have = true;
    }
    for (size_t i = 0; i < in->nfeats; i++) {
        if (have && in->feats[i].count != n) {
            snprintf(why, why_len, "features: %s has %zu values, expected %zu",
                     fr_model_feature_name(e->model, in->feats[i].input), in->feats[i].count, n);
            return FR_E_BAD_REQUEST;
        }
        n = in->feats[i].count;
        have = true;
    }
    if (!have) {
        snprintf(why, why_len, "entities and features: both empty, nothing to score");
        return FR_E_BAD_REQUEST;
    }
    *rows = n;
    return FR_OK;
}

/* Plans the Get chunks: which views have an entity column, which refs are fetched. Returns the
 * number of chunks (0: nothing to fetch). */
static size_t plan_fetch(const fr_engine_t *e, const fr_score_in_t *in, fr_score_out_t *o,
                         size_t rows, size_t *nrefs)
{
    for (size_t v = 0; v < e->nviews; v++) {
        o->view_col[v] = -1;
        for (size_t c = 0; c < in->ncols && o->view_col[v] < 0; c++)
            if (strcmp(in->cols[c].join_key, e->views[v].join_key) == 0)
                o->view_col[v] = (int32_t)c;
        for (size_t c = 0; c < in->ncols && o->view_col[v] < 0; c++)
            if (in->cols[c].join_key[0] == 0)
                o->view_col[v] = (int32_t)c;
    }
    *nrefs = 0;
    for (size_t k = 0; k < e->nfetch; k++) {
        o->fetch_col[k] = -1;
        if (o->view_col[e->fetch_view[k]] >= 0) {
            o->fetch_col[k] = (int32_t)*nrefs;
            o->refs[(*nrefs)++] = e->fetch_refs[k];
        }
    }
    if (*nrefs == 0 || rows == 0)
        return 0;
    return (rows + e->fetch_batch - 1) / e->fetch_batch;
}

static void fill_gets(const fr_engine_t *e, const fr_score_in_t *in, fr_score_out_t *o, size_t rows,
                      size_t nrefs, size_t nchunks)
{
    for (size_t k = 0; k < nchunks; k++) {
        size_t from = k * e->fetch_batch;
        size_t n = rows - from < e->fetch_batch ? rows - from : e->fetch_batch;
        fr_entity_col_t *ec = &o->ecols[k * FR_INFER_MAX_COLS];
        for (size_t c = 0; c < in->ncols; c++) {
            ec[c].join_key = in->cols[c].join_key[0] ? in->cols[c].join_key : NULL;
            ec[c].values = in->cols[c].ids + from;
            ec[c].lens = in->cols[c].lens + from;
            ec[c].count = n;
        }
        fr_get_req_t *g = &o->gets[k];
        memset(g, 0, sizeof *g);
        g->features = o->refs;
        g->feature_count = nrefs;
        g->entities = ec;
        g->entity_col_count = in->ncols;
        g->has_as_of = in->has_as_of;
        g->as_of_us = in->as_of_us;
    }
}

/* Fills row r's inputs (o->x) and statuses from the fetched chunks and request-time values. */
static uint32_t build_row(const fr_engine_t *e, const fr_score_in_t *in, fr_score_out_t *o,
                          size_t r, size_t nchunks)
{
    uint8_t *st = &o->statuses[r * e->nin];
    uint32_t missing = 0;
    for (uint32_t j = 0; j < e->nin; j++) {
        int32_t k = e->input_fetch[j];
        double x = NAN;
        int status = FR_STATUS_NOT_FOUND;
        if (k < 0) {
            for (size_t f = 0; f < in->nfeats; f++)
                if (in->feats[f].input == j) {
                    x = in->feats[f].values[r];
                    status = isnan(x) ? FR_STATUS_NULL : FR_STATUS_PRESENT;
                    break;
                }
        } else if (o->fetch_col[k] >= 0 && nchunks) {
            const fr_result_t *res = o->results[r / e->fetch_batch];
            fr_value_t v;
            int64_t ts;
            fr_result_cell(res, r % e->fetch_batch, (size_t)o->fetch_col[k], &v, &status, &ts);
            if (status == FR_STATUS_PRESENT) {
                x = cell_number(&v);
                if (isnan(x) && v.type == FR_TYPE_NONE)
                    status = FR_STATUS_NULL;
            }
        }
        if (status != FR_STATUS_PRESENT)
            x = NAN;
        missing += isnan(x);
        o->x[j] = x;
        st[j] = (uint8_t)status;
    }
    return missing;
}

int fr_engine_score(const fr_engine_t *e, fr_client_t **client, const fr_score_in_t *in,
                    fr_score_out_t *o, char *why, size_t why_len)
{
    size_t rows;
    int rc = row_count(e, in, &rows, why, why_len);
    if (rc != FR_OK)
        return rc;
    size_t chunks_max = (rows + e->fetch_batch - 1) / e->fetch_batch;
    if (out_reserve(e, o, rows, chunks_max) != FR_OK) {
        snprintf(why, why_len, "no memory for %zu rows", rows);
        return FR_E_NOMEM;
    }
    o->nrows = rows;
    o->snapshot = 0;
    o->as_of_us = in->has_as_of ? in->as_of_us : 0;
    int64_t t0 = fr_mono_us();
    size_t nrefs;
    size_t nchunks = plan_fetch(e, in, o, rows, &nrefs);
    if (nchunks) {
        fill_gets(e, in, o, rows, nrefs, nchunks);
        rc = fetch(e, client, o, nchunks, why, why_len);
        if (rc != FR_OK)
            return rc;
        o->snapshot = fr_result_snapshot(o->results[0]);
        o->as_of_us = fr_result_as_of(o->results[0]);
    }
    int64_t t1 = fr_mono_us();
    for (size_t r = 0; r < rows; r++) {
        uint32_t missing = build_row(e, in, o, r, nchunks);
        o->missing[r] = missing;
        if (e->max_missing >= 0 && missing > (uint64_t)e->max_missing) {
            o->codes[r] = FR_E_NOT_FOUND;
            continue;
        }
        o->codes[r] = FR_OK;
        fr_model_predict_row_f64(e->model, o->x, &o->margins[r * e->nout], &o->probs[r * e->nout]);
    }
    int64_t t2 = fr_mono_us();
    for (size_t k = 0; k < nchunks; k++) {
        fr_result_free(o->results[k]);
        o->results[k] = NULL;
    }
    o->fetch_us = (uint32_t)(t1 - t0);
    o->eval_us = (uint32_t)(t2 - t1);
    return FR_OK;
}

void fr_engine_row_message(const fr_engine_t *e, const fr_score_out_t *o, size_t row, char *buf,
                           size_t n)
{
    if (o->codes[row] == FR_OK) {
        buf[0] = 0;
        return;
    }
    snprintf(buf, n, "%u of %u inputs missing, more than max_missing %lld", o->missing[row], e->nin,
             (long long)e->max_missing);
}
