/* The HTTP front door (libevent evhttp on its own worker loop): health and readiness, Prometheus
 * metrics, Feast-compatible POST /get-online-features and POST /push, and POST /v1/export (a
 * point-in-time join streamed back as JSON lines). Bodies are bounded by max_frame; malformed
 * requests get 400 with a JSON error naming the field. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <msgpack.h>

#include "common/log.h"
#include "common/numfmt.h"
#include "common/timefmt.h"
#include "common/utf8.h"
#include "freshet/err.h"
#include "proto/mp.h"
#include "net/listen.h"
#include "reads.h"
#include "ingest.h"
#include "server_int.h"
#include "tls.h"

static void send_buf(struct evhttp_request *req, int code, const char *reason, const char *type,
                     const fr_buf_t *b)
{
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    evbuffer_add(out, b->data, b->len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

#define HTTP_MAX_HEADERS_BYTES (64 << 10)

/* Whether col is the join key of a view that one of g's features ("view:feature" or "view") names. */
static bool is_join_key(const get_req_t *g, const fr_registry_t *reg, const char *col)
{
    for (size_t i = 0; i < g->nfeatures; i++) {
        const char *f = (const char *)g->features[i].ptr, *colon = memchr(f, ':', g->features[i].len);
        size_t n = colon ? (size_t)(colon - f) : g->features[i].len;
        char view[FR_NAME_MAX + 1];
        if (n > FR_NAME_MAX)
            continue;
        memcpy(view, f, n);
        view[n] = 0;
        const fr_view_def_t *v = fr_registry_view(reg, view);
        if (v && !strcmp(v->join_key, col))
            return true;
    }
    return false;
}

static void json_str(fr_buf_t *b, const char *s, size_t n)
{
    fr_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fr_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            fr_buf_printf(b, "\\u%04x", c);
        else if (c < 0x80)
            fr_buf_append(b, &s[i], 1);
        else {
            size_t k = fr_utf8_seq((const unsigned char *)s + i, n - i);
            if (k == 0) {
                fr_buf_append(b, FR_UTF8_REPLACEMENT_ESC, sizeof FR_UTF8_REPLACEMENT_ESC - 1);
            } else {
                fr_buf_append(b, &s[i], k);
                i += k - 1;
            }
        }
    }
    fr_buf_append(b, "\"", 1);
}

static void send_error(fr_worker_t *w, struct evhttp_request *req, int http_code, int code,
                       const char *msg)
{
    fr_buf_t b;
    fr_buf_init(&b, 0);
    fr_buf_printf(&b, "{\"error\": {\"code\": \"%s\", \"message\": ", fr_err_name(code));
    json_str(&b, msg, strlen(msg));
    fr_buf_printf(&b, "}}\n");
    atomic_fetch_add(&w->server->stats.http_errors, 1);
    fr_stats_reject(&w->server->stats, code);
    send_buf(req, http_code, http_code == 400 ? "Bad Request" : "Error", "application/json", &b);
    fr_buf_fini(&b);
}

static int http_status_of(int code)
{
    switch (code) {
    case FR_E_UNAUTHORIZED:
        return 401;
    case FR_E_UNKNOWN_VIEW:
    case FR_E_UNKNOWN_FEATURE:
        return 404;
    case FR_E_TOO_LARGE:
        return 413;
    case FR_E_BUSY:
    case FR_E_SHUTDOWN:
        return 503;
    case FR_E_STORAGE_FULL:
        return 507;
    default:
        return code <= FR_E_NOMEM ? 500 : 400;
    }
}

/* Reads the request body as JSON. NULL after replying 400. */
static json_t *read_json(fr_worker_t *w, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
    json_error_t err;
    json_t *j = n ? json_loadb(p, n, JSON_REJECT_DUPLICATES, &err) : NULL;
    if (!json_is_object(j)) {
        char msg[256];
        if (!j)
            snprintf(msg, sizeof msg, "body: malformed JSON at line %d column %d: %s", n ? err.line : 0,
                     n ? err.column : 0, n ? err.text : "empty body");
        else
            snprintf(msg, sizeof msg, "body: expected a JSON object");
        json_decref(j);
        send_error(w, req, 400, FR_E_BAD_REQUEST, msg);
        return NULL;
    }
    return j;
}

static void buf_puts(fr_buf_t *b, const char *s)
{
    fr_buf_append(b, s, strlen(s));
}

/* Where each value of a stored row (a msgpack array) starts, found in one walk: responses visit
 * a row once per requested feature, and walking values 0..k-1 again for each k made a 50-feature
 * row cost 1,275 item decodes instead of 50. A value inside a packed run (proto/mp.h) is its raw
 * bytes' offset, tagged OFF_RAW32/OFF_RAW64. Fills off[0..n) for n = min(values, max) and returns
 * n; values from a malformed one on are left out (they read as null). */
#define OFF_RAW32 (1u << 31)
#define OFF_RAW64 (1u << 30)
#define OFF_MASK (OFF_RAW64 - 1)

static uint32_t row_offsets(const uint8_t *row, size_t len, uint32_t *off, uint32_t max)
{
    fr_mp_row_t r;
    fr_mp_item_t it;
    if (!row || len > OFF_MASK || fr_mp_row_open(&r, row, len))
        return 0;
    uint32_t n = 0;
    for (; n < max; n++) {
        uint32_t at = (uint32_t)(r.r.p - row);
        const uint8_t *run = r.run;
        if (fr_mp_row_next(&r, &it))
            break;
        if (r.run != run) /* a run's value: r.run has moved past it */
            at = it.kind == FR_MP_F32 ? (uint32_t)(r.run - 4 - row) | OFF_RAW32
                                      : (uint32_t)(r.run - 8 - row) | OFF_RAW64;
        off[n] = at;
    }
    return n;
}

/* Appends the JSON form of value k of a row indexed by row_offsets: null when absent or nil, and
 * for NaN and infinities (JSON has neither); numbers in their shortest round-trip form. */
static void value_json(fr_buf_t *b, const uint8_t *row, size_t len, const uint32_t *off, uint32_t n,
                       uint32_t k)
{
    fr_mp_reader_t r;
    fr_mp_item_t it;
    char num[48];
    if (k >= n) {
        buf_puts(b, "null");
        return;
    }
    const uint8_t *at = row + (off[k] & OFF_MASK);
    if (off[k] & (OFF_RAW32 | OFF_RAW64)) {
        fr_mp_run_value(off[k] & OFF_RAW32 ? FR_MP_F32 : FR_MP_F64, at, &it);
    } else {
        fr_mp_reader_init(&r, at, len - (size_t)(at - row));
        if (fr_mp_next(&r, &it))
            it.kind = FR_MP_NIL;
    }
    switch (it.kind) {
    case FR_MP_BOOL:
        buf_puts(b, it.v.b ? "true" : "false");
        break;
    case FR_MP_INT:
        fr_buf_printf(b, "%lld", (long long)it.v.i);
        break;
    case FR_MP_UINT:
        fr_buf_printf(b, "%llu", (unsigned long long)it.v.u);
        break;
    case FR_MP_F32:
        fr_fmt_float(num, sizeof num, it.v.f32);
        buf_puts(b, num);
        break;
    case FR_MP_F64:
        fr_fmt_double(num, sizeof num, it.v.f64);
        buf_puts(b, num);
        break;
    case FR_MP_STR:
    case FR_MP_BIN:
        json_str(b, (const char *)it.v.ptr, it.count);
        break;
    case FR_MP_ARRAY:
        buf_puts(b, "[");
        for (uint32_t e = 0; e < it.count; e++) {
            float f = 0;
            fr_mp_next_float(&r, &f);
            fr_fmt_float(num, sizeof num, f);
            if (e)
                buf_puts(b, ", ");
            buf_puts(b, num);
        }
        buf_puts(b, "]");
        break;
    default:
        buf_puts(b, "null");
    }
}

/* Value k of a PRESENT row is null (absent from an older row, or stored nil): status NULL_VALUE.
 * A NaN is a value, though JSON prints it as null. */
static bool value_is_nil(const uint8_t *row, size_t len, const uint32_t *off, uint32_t n,
                         uint32_t k)
{
    fr_mp_reader_t r;
    fr_mp_item_t it;
    if (k >= n)
        return true;
    if (off[k] & (OFF_RAW32 | OFF_RAW64))
        return false;
    fr_mp_reader_init(&r, row + off[k], len - off[k]);
    return fr_mp_next(&r, &it) || it.kind == FR_MP_NIL;
}

/* The offsets (row_offsets) of rows [first, first + count) of plan p into idx (stride values per
 * row) and their value counts into n. */
static void index_rows(const get_plan_t *p, size_t first, size_t count, uint32_t *idx, uint32_t *n,
                       uint32_t stride)
{
    for (size_t i = 0; i < count; i++) {
        const fr_asof_t *a = &p->rows[first + i];
        n[i] = a->values ? row_offsets(a->values, a->values_len, idx + i * stride, stride) : 0;
    }
}

/* The most values any row of plan p can have: its views' widest feature list. */
static uint32_t plan_stride(const get_plan_t *p)
{
    uint32_t stride = 1;
    for (size_t vi = 0; vi < p->nviews; vi++)
        if (p->views[vi]->feature_count > stride)
            stride = (uint32_t)p->views[vi]->feature_count;
    return stride;
}

/* Parses an HTTP time: RFC 3339, microseconds, or Feast's zone-less "YYYY-MM-DD HH:MM:SS" (UTC). */
static int parse_time_json(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (fr_time_parse(s, n, out) == FR_OK)
        return 0;
    char buf[48];
    if (n + 1 >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 'Z';
    return fr_time_parse(buf, n + 1, out) == FR_OK ? 0 : -1;
}

/* Fills an entity column from a JSON array of strings/integers (integers become decimal text,
 * kept alive in `keep`). Returns NULL or a reason. */
static const char *fill_ids(ecol_t *col, json_t *arr, json_t *keep)
{
    size_t n = json_array_size(arr);
    col->count = 0;
    if (fr_read_grow((void **)&col->values, &col->cap, n ? n : 1, sizeof(span_t)))
        return "out of memory";
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (json_is_integer(v)) {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            json_t *s = json_string(buf);
            json_array_append_new(keep, s);
            v = s;
        }
        if (!json_is_string(v))
            return "entity ids must be strings or integers";
        col->values[col->count++] = (span_t){(const uint8_t *)json_string_value(v), json_string_length(v)};
    }
    return NULL;
}

/* Fills g->features from a JSON array of "view:feature" strings (spans into the JSON, which must
 * outlive the read). FR_OK, FR_E_TOO_LARGE, FR_E_NOMEM or FR_E_BAD_REQUEST with *why. */
static int take_features(fr_worker_t *w, get_req_t *g, json_t *features, const char **why)
{
    size_t nf = json_array_size(features);
    if (nf > (size_t)w->server->cfg.max_features) {
        *why = "features: more than max_features";
        return FR_E_TOO_LARGE;
    }
    if (fr_read_grow((void **)&g->features, &g->feat_cap, nf, sizeof(span_t))) {
        *why = "out of memory";
        return FR_E_NOMEM;
    }
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(features, i);
        if (!json_is_string(f)) {
            *why = "features: every entry must be a \"view:feature\" string";
            return FR_E_BAD_REQUEST;
        }
        g->features[g->nfeatures++] = (span_t){(const uint8_t *)json_string_value(f), json_string_length(f)};
    }
    return FR_OK;
}

/* ---- /get-online-features ---- */

static const char *feast_status(int status)
{
    switch (status) {
    case FR_STATUS_PRESENT:
        return "PRESENT";
    case FR_STATUS_EXPIRED:
        return "OUTSIDE_MAX_AGE";
    case FR_STATUS_NULL:
        return "NULL_VALUE";
    default:
        return "NOT_FOUND";
    }
}

static void h_get_online(fr_worker_t *w, struct evhttp_request *req)
{
    json_t *body = read_json(w, req);
    if (!body)
        return;
    json_t *keep = json_array();
    get_scratch_t *sc = fr_read_scratch(w);
    fr_registry_t *reg = fr_store_registry(w->server->store);
    fr_buf_t b;
    fr_buf_init(&b, 0);
    uint32_t *offs = NULL, *counts = NULL, stride = 0; /* value offsets of each row read */
    const char *why = NULL;
    int code = FR_E_BAD_REQUEST;
    json_t *features = json_object_get(body, "features");
    json_t *entities = json_object_get(body, "entities");
    if (!sc) {
        why = "out of memory";
        code = FR_E_NOMEM;
        goto fail;
    }
    if (json_object_get(body, "feature_service")) {
        why = "feature_service: feature services are not supported yet; list features";
        goto fail;
    }
    if (!json_is_array(features) || json_array_size(features) == 0) {
        why = "features: expected a non-empty array of \"view:feature\" strings";
        goto fail;
    }
    if (!json_is_object(entities) || json_object_size(entities) == 0) {
        why = "entities: expected an object {join_key: [ids]}";
        goto fail;
    }
    get_req_t *g = &sc->req;
    get_plan_t *p = &sc->plan;
    if ((code = take_features(w, g, features, &why)) != FR_OK)
        goto fail;
    code = FR_E_BAD_REQUEST;
    const char *key;
    json_t *ids;
    json_object_foreach(entities, key, ids)
    {
        if (g->ncols == MAX_ECOLS) {
            why = "entities: too many join keys";
            goto fail;
        }
        if (!json_is_array(ids)) {
            why = "entities: each join key maps to an array of ids";
            goto fail;
        }
        if (json_array_size(ids) > (size_t)w->server->cfg.max_entities) {
            why = "entities: more than max_entities";
            code = FR_E_TOO_LARGE;
            goto fail;
        }
        ecol_t *col = &g->cols[g->ncols++];
        snprintf(col->join_key, sizeof col->join_key, "%s", key);
        if ((why = fill_ids(col, ids, keep)))
            goto fail;
    }
    code = fr_read_plan(g, reg, p);
    if (code != FR_OK) {
        why = g->why;
        goto fail;
    }
    int64_t as_of = 0;
    json_t *asof = json_object_get(body, "as_of");
    if (asof && parse_time_json(asof, &as_of)) {
        why = "as_of: expected RFC 3339 or integer microseconds";
        code = FR_E_BAD_REQUEST;
        goto fail;
    }
    bool full = json_is_true(json_object_get(body, "full_feature_names"));
    code = fr_rtxn_begin(w->rtxn);
    if (!asof) /* as in the binary Get: now after the snapshot, served-mode filter */
        as_of = fr_store_read_now(w->rtxn);
    if (code == FR_OK)
        code = fr_read_rows(w, p, w->rtxn, as_of, NULL, asof ? 0 : FR_ASOF_SERVED);
    if (code != FR_OK) {
        fr_rtxn_reset(w->rtxn);
        why = "read failed";
        goto fail;
    }
    stride = plan_stride(p);
    offs = malloc((p->nrows ? p->nrows : 1) * stride * sizeof *offs);
    counts = malloc((p->nrows ? p->nrows : 1) * sizeof *counts);
    if (!offs || !counts) {
        fr_rtxn_reset(w->rtxn);
        code = FR_E_NOMEM;
        why = "no memory for the response";
        goto fail;
    }
    index_rows(p, 0, p->nrows, offs, counts, stride);
    /* Feast's shape: one result per column (entity keys first), each with values, statuses and
     * event_timestamps per entity row. */
    fr_buf_printf(&b, "{\"metadata\": {\"feature_names\": [");
    size_t k = 0;
    for (size_t c = 0; c < g->ncols; c++, k++) {
        fr_buf_printf(&b, "%s", k ? ", " : "");
        json_str(&b, g->cols[c].join_key, strlen(g->cols[c].join_key));
    }
    for (size_t j = 0; j < p->ncols; j++, k++) {
        const fr_view_def_t *v = p->views[p->cols[j].view];
        const char *fname = v->features[p->cols[j].index].name;
        if (full)
            fr_buf_printf(&b, "%s\"%s__%s\"", k ? ", " : "", v->name, fname);
        else
            fr_buf_printf(&b, "%s\"%s\"", k ? ", " : "", fname);
    }
    fr_buf_printf(&b, "]}, \"results\": [");
    k = 0;
    for (size_t c = 0; c < g->ncols; c++, k++) {
        fr_buf_printf(&b, "%s{\"values\": [", k ? ", " : "");
        json_t *asked = json_object_get(entities, g->cols[c].join_key);
        for (size_t e = 0; e < g->cols[c].count; e++) {
            fr_buf_printf(&b, "%s", e ? ", " : "");
            /* ids come back as they were asked: Feast echoes an integer id as an integer */
            json_t *id = json_array_get(asked, e);
            if (json_is_integer(id))
                fr_buf_printf(&b, "%lld", (long long)json_integer_value(id));
            else
                json_str(&b, (const char *)g->cols[c].values[e].ptr, g->cols[c].values[e].len);
        }
        fr_buf_printf(&b, "], \"statuses\": [");
        for (size_t e = 0; e < g->cols[c].count; e++)
            fr_buf_printf(&b, "%s\"PRESENT\"", e ? ", " : "");
        fr_buf_printf(&b, "], \"event_timestamps\": [");
        for (size_t e = 0; e < g->cols[c].count; e++)
            fr_buf_printf(&b, "%s\"1970-01-01T00:00:00Z\"", e ? ", " : "");
        fr_buf_printf(&b, "]}");
    }
    for (size_t j = 0; j < p->ncols; j++, k++) {
        size_t vi = p->cols[j].view;
        uint32_t idx = (uint32_t)p->cols[j].index;
        /* the reply is built whole on the worker loop: bounded like a connection's output */
        if (b.len > (size_t)w->server->cfg.max_output_mb << 20) {
            fr_rtxn_reset(w->rtxn);
            code = FR_E_TOO_LARGE;
            why = "response: larger than max_output_mb; ask for fewer entities or features per request";
            goto fail;
        }
        fr_buf_printf(&b, "%s{\"values\": [", k ? ", " : "");
        for (size_t e = 0; e < p->nentities; e++) {
            size_t ri = e * p->nviews + vi;
            const fr_asof_t *a = &p->rows[ri];
            if (e)
                buf_puts(&b, ", ");
            if (a->status == FR_STATUS_PRESENT)
                value_json(&b, a->values, a->values_len, offs + ri * stride, counts[ri], idx);
            else
                buf_puts(&b, "null");
        }
        buf_puts(&b, "], \"statuses\": [");
        for (size_t e = 0; e < p->nentities; e++) {
            size_t ri = e * p->nviews + vi;
            const fr_asof_t *a = &p->rows[ri];
            int st = a->status;
            if (st == FR_STATUS_PRESENT &&
                value_is_nil(a->values, a->values_len, offs + ri * stride, counts[ri], idx))
                st = FR_STATUS_NULL;
            buf_puts(&b, e ? ", \"" : "\"");
            buf_puts(&b, feast_status(st));
            buf_puts(&b, "\"");
        }
        fr_buf_printf(&b, "], \"event_timestamps\": [");
        for (size_t e = 0; e < p->nentities; e++) {
            const fr_asof_t *a = &p->rows[e * p->nviews + vi];
            char ts[32] = "1970-01-01T00:00:00Z";
            if (a->status != FR_STATUS_NOT_FOUND)
                fr_time_format(a->event_ts_us, ts);
            buf_puts(&b, e ? ", \"" : "\"");
            buf_puts(&b, ts);
            buf_puts(&b, "\"");
        }
        fr_buf_printf(&b, "]}");
    }
    fr_buf_printf(&b, "]}\n");
    fr_rtxn_reset(w->rtxn);
    send_buf(req, 200, "OK", "application/json", &b);
    goto out;
fail:
    send_error(w, req, http_status_of(code), code, why ? why : fr_err_str(code));
out:
    free(offs);
    free(counts);
    fr_buf_fini(&b);
    fr_registry_release(reg);
    json_decref(keep);
    json_decref(body);
}

/* ---- /push ---- */

/* Packs one JSON value as the msgpack form of a feature of type t. NULL or a reason. */
static const char *pack_json(msgpack_packer *pk, fr_type_t t, json_t *v)
{
    if (!v || json_is_null(v))
        return msgpack_pack_nil(pk), NULL;
    switch (t) {
    case FR_TYPE_INT64:
        if (!json_is_integer(v))
            return "expected an integer";
        msgpack_pack_int64(pk, json_integer_value(v));
        return NULL;
    case FR_TYPE_DOUBLE:
        if (!json_is_number(v))
            return "expected a number";
        msgpack_pack_double(pk, json_number_value(v));
        return NULL;
    case FR_TYPE_FLOAT:
        if (!json_is_number(v))
            return "expected a number";
        if (!fr_float32_fits(json_number_value(v)))
            return "out of the float32 range";
        msgpack_pack_float(pk, (float)json_number_value(v));
        return NULL;
    case FR_TYPE_BOOL:
        if (!json_is_boolean(v))
            return "expected true or false";
        json_is_true(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        return NULL;
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        if (!json_is_string(v))
            return "expected a string";
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        return NULL;
    case FR_TYPE_FLOAT_LIST:
        if (!json_is_array(v))
            return "expected an array of numbers";
        msgpack_pack_array(pk, json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            if (!json_is_number(x))
                return "expected an array of numbers";
            if (!fr_float32_fits(json_number_value(x)))
                return "out of the float32 range";
            msgpack_pack_float(pk, (float)json_number_value(x));
        }
        return NULL;
    default:
        return "unsupported type";
    }
}

static void h_push(fr_worker_t *w, struct evhttp_request *req)
{
    /* a push is a Put: counted with the binary protocol's (requests_total, errors, rows) */
    atomic_fetch_add(&w->server->stats.requests[freshet_Op_OP_PUT], 1);
    size_t nrows = 0; /* the df's rows, once known: all rejected with the request */
    json_t *body = read_json(w, req);
    if (!body) {
        atomic_fetch_add(&w->server->stats.errors[freshet_Op_OP_PUT], 1);
        return;
    }
    char why[256] = "";
    int code = FR_E_BAD_REQUEST;
    fr_job_t *job = calloc(1, sizeof *job);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t *ent_off = NULL, *val_off = NULL;
    if (!job) {
        code = FR_E_NOMEM;
        goto fail;
    }
    job->registry = fr_store_registry(w->server->store);
    json_t *name = json_object_get(body, "push_source_name");
    json_t *df = json_object_get(body, "df");
    json_t *to_v = json_object_get(body, "to");
    const char *to = json_string_value(to_v);
    const fr_view_def_t *view = json_is_string(name) ? fr_registry_view(job->registry, json_string_value(name)) : NULL;
    if (!json_is_string(name)) {
        snprintf(why, sizeof why, "push_source_name: expected the name of a view");
        goto fail;
    }
    if (!view) {
        code = FR_E_UNKNOWN_VIEW;
        snprintf(why, sizeof why, "push_source_name: unknown view \"%.64s\"", json_string_value(name));
        goto fail;
    }
    if (to_v && !to) {
        snprintf(why, sizeof why, "to: expected \"online\" or \"online_and_offline\"");
        goto fail;
    }
    if (to && strcmp(to, "online") && strcmp(to, "online_and_offline")) {
        snprintf(why, sizeof why, "to: \"%.32s\" is not supported (online, online_and_offline)", to);
        goto fail;
    }
    if (!json_is_object(df)) {
        snprintf(why, sizeof why, "df: expected an object of columns {name: [values]}");
        goto fail;
    }
    json_t *keys = json_object_get(df, view->join_key), *times = json_object_get(df, "event_timestamp");
    if (!json_is_array(keys) || !json_is_array(times)) {
        snprintf(why, sizeof why, "df: columns \"%s\" and \"event_timestamp\" are required", view->join_key);
        goto fail;
    }
    size_t n = json_array_size(keys);
    nrows = n;
    const char *col;
    json_t *vals;
    json_object_foreach(df, col, vals)
    {
        if (!json_is_array(vals) || json_array_size(vals) != n) {
            snprintf(why, sizeof why, "df.%.64s: expected an array of %zu values", col, n);
            goto fail;
        }
        if (strcmp(col, view->join_key) && strcmp(col, "event_timestamp") && strcmp(col, "created") &&
            fr_view_feature_index(view, col) < 0) {
            code = FR_E_UNKNOWN_FEATURE;
            snprintf(why, sizeof why, "df.%.64s: view %s has no such feature", col, view->name);
            goto fail;
        }
    }
    /* Feast refuses a frame without a feature's column; storing the row with that feature null
     * would silently erase its last value (send null cells to mean null) */
    for (uint32_t f = 0; f < view->feature_count; f++)
        if (!json_object_get(df, view->features[f].name)) {
            snprintf(why, sizeof why, "df: column \"%.64s\" of view %s is missing (send nulls for "
                     "missing values)", view->features[f].name, view->name);
            goto fail;
        }
    json_t *created = json_object_get(df, "created");
    for (size_t i = 0; created && i < n; i++) {
        int64_t ignored;
        json_t *c = json_array_get(created, i);
        if (!json_is_null(c) && parse_time_json(c, &ignored)) {
            snprintf(why, sizeof why, "df.created[%zu]: unparseable timestamp", i);
            goto fail;
        }
    }
    if (n > (size_t)w->server->cfg.max_put_rows) {
        code = FR_E_TOO_LARGE;
        snprintf(why, sizeof why, "df: more than max_put_rows rows");
        goto fail;
    }
    job->rows = calloc(n ? n : 1, sizeof *job->rows);
    ent_off = calloc(n + 1, sizeof *ent_off);
    val_off = calloc(n + 1, sizeof *val_off);
    if (!job->rows || !ent_off || !val_off) {
        code = FR_E_NOMEM;
        goto fail;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int64_t now = fr_clock_now(w->server->clock);
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_array_get(keys, i);
        char num[32];
        const char *ent = json_string_value(id);
        size_t ent_len = json_string_length(id);
        if (json_is_integer(id)) {
            ent_len = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(id));
            ent = num;
        }
        if (!ent) {
            snprintf(why, sizeof why, "df.%s[%zu]: expected a string or integer id", view->join_key, i);
            goto fail;
        }
        ent_off[i] = sb.size;
        if (ent_len) /* "" is refused by fr_store_check_row; never write to a NULL buffer */
            msgpack_sbuffer_write(&sb, ent, ent_len);
        val_off[i] = sb.size;
        msgpack_pack_array(&pk, view->feature_count);
        for (uint32_t f = 0; f < view->feature_count; f++) {
            json_t *c = json_object_get(df, view->features[f].name);
            const char *bad = pack_json(&pk, view->features[f].type, c ? json_array_get(c, i) : NULL);
            if (bad) {
                code = FR_E_TYPE_MISMATCH;
                snprintf(why, sizeof why, "df.%s[%zu]: %s", view->features[f].name, i, bad);
                goto fail;
            }
        }
        fr_write_row_t *row = &job->rows[i];
        row->view = view;
        row->entity_len = (uint16_t)(ent_len > 65535 ? 65535 : ent_len);
        if (parse_time_json(json_array_get(times, i), &row->event_ts_us)) {
            snprintf(why, sizeof why, "df.event_timestamp[%zu]: unparseable timestamp", i);
            goto fail;
        }
    }
    ent_off[n] = val_off[n] = sb.size;
    job->body_len = sb.size;
    job->body = (uint8_t *)msgpack_sbuffer_release(&sb);
    for (size_t i = 0; i < n; i++) {
        fr_write_row_t *row = &job->rows[i];
        row->entity = job->body + ent_off[i];
        row->values = job->body + val_off[i];
        row->values_len = (uint32_t)((i + 1 < n ? ent_off[i + 1] : job->body_len) - val_off[i]);
        const char *reason = NULL;
        code = fr_store_check_row(row, now, w->server->cfg.max_future_skew_us, &reason);
        if (code != FR_OK) {
            snprintf(why, sizeof why, "df row %zu: %.200s", i, reason);
            goto fail;
        }
    }
    job->row_count = job->row_cap = n;
    job->op = freshet_Op_OP_PUT;
    job->http = req;
    job->received_us = fr_mono_us();
    code = fr_writer_submit(w->server, job);
    if (code != FR_OK) {
        snprintf(why, sizeof why, "%s", fr_writer_refusal(code));
        goto fail;
    }
    free(ent_off);
    free(val_off);
    json_decref(body);
    return; /* answered by fr_http_job_done */
fail:
    atomic_fetch_add(&w->server->stats.errors[freshet_Op_OP_PUT], 1);
    atomic_fetch_add(&w->server->stats.rows_rejected, nrows);
    send_error(w, req, http_status_of(code), code, why[0] ? why : fr_err_str(code));
    fr_job_free(job);
    msgpack_sbuffer_destroy(&sb);
    free(ent_off);
    free(val_off);
    json_decref(body);
}

void fr_http_job_done(fr_worker_t *w, fr_job_t *job)
{
    fr_hist_observe(&w->server->stats.latency[fr_op_slot(job->op)][job->rc != FR_OK],
                    (uint64_t)(fr_mono_us() - job->received_us));
    if (job->rc != FR_OK) {
        atomic_fetch_add(&w->server->stats.errors[fr_op_slot(job->op)], 1);
        send_error(w, job->http, http_status_of(job->rc), job->rc, job->why ? job->why : fr_err_str(job->rc));
    } else {
        fr_buf_t b;
        fr_buf_init(&b, 0);
        fr_buf_printf(&b, "{\"rows_written\": %u, \"unchanged\": %u}\n", job->result.written,
                      job->result.unchanged);
        send_buf(job->http, 200, "OK", "application/json", &b);
        fr_buf_fini(&b);
    }
    fr_job_free(job);
}

/* ---- /v1/export ---- */

/* POST /v1/export {"features": [...], "mode": "event"|"served", "labels": {column: [values]}}:
 * a point-in-time join streamed back as chunked JSON lines, one per label row, from one pinned
 * snapshot. The labels need the views' join keys and "event_timestamp"; other columns pass through. */
static void h_export(fr_worker_t *w, struct evhttp_request *req)
{
    json_t *body = read_json(w, req);
    if (!body)
        return;
    json_t *keep = json_array();
    get_scratch_t *sc = fr_read_scratch(w);
    fr_registry_t *reg = fr_store_registry(w->server->store);
    fr_rtxn_t *rt = NULL;
    bool pinned = false; /* holds one of the reader slots kept for snapshots */
    int64_t *times = NULL;
    uint32_t *offs = NULL, *counts = NULL, stride = 0; /* value offsets of one label's rows */
    const char *why = NULL;
    char whybuf[256];
    int code = FR_E_BAD_REQUEST;
    json_t *features = json_object_get(body, "features"), *labels = json_object_get(body, "labels");
    const char *mode = json_string_value(json_object_get(body, "mode"));
    bool served = mode && !strcmp(mode, "served");
    if (!sc) {
        code = FR_E_NOMEM;
        goto fail;
    }
    if (mode && !served && strcmp(mode, "event")) {
        why = "mode: expected \"event\" or \"served\"";
        goto fail;
    }
    if (!json_is_array(features) || !json_array_size(features) || !json_is_object(labels)) {
        why = "body: expected {\"features\": [\"view:feature\"], \"labels\": {column: [values]}}";
        goto fail;
    }
    get_req_t *g = &sc->req;
    get_plan_t *p = &sc->plan;
    if ((code = take_features(w, g, features, &why)) != FR_OK)
        goto fail;
    code = FR_E_BAD_REQUEST;
    json_t *ts = json_object_get(labels, "event_timestamp");
    if (!json_is_array(ts)) {
        why = "labels.event_timestamp: required column";
        goto fail;
    }
    size_t n = json_array_size(ts);
    /* The join runs on the worker loop and its reply is built before the loop sends any of it,
     * so a request is bounded like a read; the binary export streams any number of rows. */
    if (n > (size_t)w->server->cfg.max_entities) {
        snprintf(whybuf, sizeof whybuf,
                 "labels: %zu rows, more than max_entities (%lld) per request: send them in "
                 "requests of at most that many, or use the streamed binary export "
                 "(freshet export pit)",
                 n, (long long)w->server->cfg.max_entities);
        why = whybuf;
        code = FR_E_TOO_LARGE;
        goto fail;
    }
    const char *col;
    json_t *vals;
    json_object_foreach(labels, col, vals)
    {
        if (!json_is_array(vals) || json_array_size(vals) != n) {
            snprintf(whybuf, sizeof whybuf, "labels.%.64s: expected an array of %zu values", col, n);
            why = whybuf;
            goto fail;
        }
    }
    /* the join keys of the requested views are the entity columns; every other column only
     * passes through (offering them all used to fill the MAX_ECOLS slots before the key) */
    json_object_foreach(labels, col, vals)
    {
        if (!strcmp(col, "event_timestamp") || g->ncols == MAX_ECOLS ||
            !is_join_key(g, reg, col))
            continue;
        ecol_t *ec = &g->cols[g->ncols];
        snprintf(ec->join_key, sizeof ec->join_key, "%s", col);
        if (fill_ids(ec, vals, keep) == NULL)
            g->ncols++;
    }
    times = malloc((n ? n : 1) * sizeof *times);
    if (!times) {
        code = FR_E_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (parse_time_json(json_array_get(ts, i), &times[i])) {
            snprintf(whybuf, sizeof whybuf, "labels.event_timestamp[%zu]: unparseable timestamp", i);
            why = whybuf;
            goto fail;
        }
    code = fr_read_plan(g, reg, p);
    if (code == FR_OK)
        for (size_t vi = 0; vi < p->nviews; vi++)
            if (!p->ecol[vi] || strcmp(p->ecol[vi]->join_key, p->views[vi]->join_key)) {
                snprintf(whybuf, sizeof whybuf, "labels: missing column \"%s\" (join key of view %s)",
                         p->views[vi]->join_key, p->views[vi]->name);
                why = whybuf;
                code = FR_E_BAD_REQUEST;
                goto fail;
            }
    if (code != FR_OK) {
        why = g->why;
        goto fail;
    }
    pinned = fr_server_pin_take(w->server, true);
    if (!pinned) {
        code = FR_E_BUSY;
        why = fr_server_pin_refused(w->server, "too many exports and backups at once");
        goto fail;
    }
    code = fr_rtxn_new(w->server->store, &rt);
    if (code == FR_OK)
        code = fr_rtxn_begin(rt);
    if (code == FR_OK)
        code = fr_read_rows(w, p, rt, 0, times, served ? FR_ASOF_SERVED : 0);
    if (code != FR_OK) {
        why = code == FR_E_BUSY ? fr_server_pin_refused(w->server, "no free LMDB reader slot")
                                : "read failed";
        goto fail;
    }
    stride = plan_stride(p);
    offs = malloc(p->nviews * stride * sizeof *offs);
    counts = malloc(p->nviews * sizeof *counts);
    if (!offs || !counts) {
        code = FR_E_NOMEM;
        why = "no memory for the response";
        goto fail;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
    evhttp_send_reply_start(req, 200, "OK");
    fr_buf_t b;
    fr_buf_init(&b, 0);
    unsigned long long leaked = 0;
    for (size_t e = 0; e < n; e++) {
        fr_buf_printf(&b, "{");
        size_t k = 0;
        json_object_foreach(labels, col, vals)
        {
            char *s = json_dumps(json_array_get(vals, e), JSON_ENCODE_ANY | JSON_COMPACT);
            fr_buf_printf(&b, "%s", k++ ? ", " : "");
            json_str(&b, col, strlen(col));
            fr_buf_printf(&b, ": %s", s ? s : "null");
            free(s);
        }
        index_rows(p, e * p->nviews, p->nviews, offs, counts, stride);
        for (size_t j = 0; j < p->ncols; j++) {
            size_t vi = p->cols[j].view;
            const fr_view_def_t *v = p->views[vi];
            const fr_asof_t *a = &p->rows[e * p->nviews + vi];
            fr_buf_printf(&b, ", \"%s:%s\": ", v->name, v->features[p->cols[j].index].name);
            if (a->status == FR_STATUS_PRESENT) {
                value_json(&b, a->values, a->values_len, offs + vi * stride, counts[vi],
                           (uint32_t)p->cols[j].index);
                leaked += !served && a->written_at_us > times[e];
            } else {
                fr_buf_printf(&b, "null");
            }
        }
        fr_buf_printf(&b, "}\n");
        if (b.len > 65536 || e + 1 == n) {
            struct evbuffer *chunk = evbuffer_new();
            evbuffer_add(chunk, b.data, b.len);
            evhttp_send_reply_chunk(req, chunk);
            evbuffer_free(chunk);
            fr_buf_reset(&b);
        }
    }
    fr_buf_fini(&b);
    evhttp_send_reply_end(req);
    fr_log(FR_LOG_INFO, "event=http_export rows=%zu mode=%s leakage=%llu", n,
           served ? "served" : "event", leaked);
    goto out;
fail:
    send_error(w, req, http_status_of(code), code, why ? why : fr_err_str(code));
out:
    if (rt) {
        fr_rtxn_reset(rt);
        fr_rtxn_free(rt);
    }
    if (pinned)
        fr_server_pin_give(w->server);
    free(offs);
    free(counts);
    free(times);
    fr_registry_release(reg);
    json_decref(keep);
    json_decref(body);
}

/* ---- /metrics ---- */

/* Slot 0 counts requests of no known op (fr_op_slot). */
static const char *op_names[FR_OP_COUNT] = {"unknown", "hello", "apply", "put", "get", "status",
                                            "sources", "export", "score", "backup"};

static void h_metrics(fr_worker_t *w, struct evhttp_request *req)
{
    fr_server_t *s = w->server;
    fr_stats_t *st = &s->stats;
    fr_buf_t b;
    fr_buf_init(&b, 0);
#define COUNTER(name, help, value)                                                                 \
    fr_buf_printf(&b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",         \
                  (unsigned long long)(value))
#define GAUGE(name, help, value)                                                                   \
    fr_buf_printf(&b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %llu\n",           \
                  (unsigned long long)(value))
    fr_buf_printf(&b, "# HELP freshet_requests_total Requests by operation (binary protocol; HTTP /push as put).\n"
                      "# TYPE freshet_requests_total counter\n");
    for (unsigned i = 0; i < FR_OP_COUNT; i++)
        if (op_names[i])
            fr_buf_printf(&b, "freshet_requests_total{op=\"%s\"} %llu\n", op_names[i],
                          atomic_load(&st->requests[i]));
    fr_buf_printf(&b, "# HELP freshet_request_errors_total Requests answered with an error.\n"
                      "# TYPE freshet_request_errors_total counter\n");
    for (unsigned i = 0; i < FR_OP_COUNT; i++)
        if (op_names[i])
            fr_buf_printf(&b, "freshet_request_errors_total{op=\"%s\"} %llu\n", op_names[i],
                          atomic_load(&st->errors[i]));
    fr_buf_printf(&b, "# HELP freshet_request_duration_seconds Request latency, frame in to reply "
                      "queued (writes: until their commit).\n"
                      "# TYPE freshet_request_duration_seconds histogram\n");
    for (unsigned i = 0; i < FR_OP_COUNT; i++)
        for (int e = 0; e < 2 && op_names[i]; e++) {
            char labels[64];
            snprintf(labels, sizeof labels, "op=\"%s\",status=\"%s\"", op_names[i], e ? "error" : "ok");
            fr_hist_render(&b, "freshet_request_duration_seconds", labels, &st->latency[i][e], 1e-6);
        }
    fr_buf_printf(&b, "# HELP freshet_rejected_total Rejected requests by error code.\n"
                      "# TYPE freshet_rejected_total counter\n");
    for (int i = 1; i < FR_STATS_CODES; i++) {
        unsigned long long v = atomic_load(&st->rejects[i]);
        if (v)
            fr_buf_printf(&b, "freshet_rejected_total{reason=\"%s\"} %llu\n", fr_err_name(-i), v);
    }
    COUNTER("freshet_rows_written_total", "Row versions stored.", atomic_load(&st->rows_written));
    COUNTER("freshet_rows_duplicate_total", "Rows at or below their source's stored offset (skipped).",
            atomic_load(&st->rows_duplicate));
    COUNTER("freshet_rows_unchanged_total", "Rows equal to the stored version at the same event time (skipped).",
            atomic_load(&st->rows_unchanged));
    COUNTER("freshet_rows_late_total", "Rows older than their entity's newest version (late/out of order).",
            atomic_load(&st->rows_late));
    COUNTER("freshet_rows_rejected_total", "Rows in rejected write requests.", atomic_load(&st->rows_rejected));
    COUNTER("freshet_commits_total", "Group commits.", atomic_load(&st->commits));
    fr_buf_printf(&b, "# HELP freshet_commit_duration_seconds Group commit latency including fsync.\n"
                      "# TYPE freshet_commit_duration_seconds histogram\n");
    fr_hist_render(&b, "freshet_commit_duration_seconds", "", &st->commit_latency, 1e-6);
    fr_buf_printf(&b, "# HELP freshet_commit_rows Rows per group commit.\n# TYPE freshet_commit_rows histogram\n");
    fr_hist_render(&b, "freshet_commit_rows", "", &st->group_rows, 1);
    fr_buf_printf(&b, "# HELP freshet_ingest_visible_seconds Write request received to committed and visible.\n"
                      "# TYPE freshet_ingest_visible_seconds histogram\n");
    fr_hist_render(&b, "freshet_ingest_visible_seconds", "", &st->ingest_visible, 1e-6);
    GAUGE("freshet_write_queue_depth", "Write requests waiting for the writer.", atomic_load(&st->queue_depth));
    GAUGE("freshet_connections", "Open binary-protocol connections.", atomic_load(&st->connections_open));
    COUNTER("freshet_connections_total", "Accepted binary-protocol connections.", atomic_load(&st->connections_total));
    COUNTER("freshet_frames_too_large_total", "Frames refused for exceeding max_frame.", atomic_load(&st->frames_too_large));
    COUNTER("freshet_auth_reloads_total", "Auth file reloads (SIGHUP) that replaced the tokens.", atomic_load(&st->auth_reloads));
    COUNTER("freshet_auth_reload_failures_total", "Auth file reloads refused (the previous tokens stayed in force).", atomic_load(&st->auth_reload_failures));
    COUNTER("freshet_http_requests_total", "HTTP requests.", atomic_load(&st->http_requests));
    COUNTER("freshet_http_errors_total", "HTTP requests answered with a JSON error.",
            atomic_load(&st->http_errors));
    COUNTER("freshet_sweeper_deleted_total", "Versions deleted by the retention sweeper.", atomic_load(&st->sweep_deleted));
    COUNTER("freshet_sweeper_passes_total", "Complete sweeps of the store.", atomic_load(&st->sweep_passes));
    fr_store_info_t info;
    if (fr_store_info(s->store, &info) == FR_OK) {
        GAUGE("freshet_lmdb_map_size_bytes", "LMDB map size.", info.map_size);
        GAUGE("freshet_lmdb_map_used_bytes", "LMDB pages in use.", info.map_used);
        GAUGE("freshet_lmdb_readers_used", "LMDB reader slots in use.", info.readers_used);
        GAUGE("freshet_lmdb_readers_high_water", "Most LMDB reader slots in use at once since start.",
              info.readers_high_water);
        GAUGE("freshet_lmdb_readers_max", "LMDB reader slots.", info.max_readers);
        GAUGE("freshet_write_seq", "Last write sequence number.", info.write_seq);
        GAUGE("freshet_lmdb_map_hugepages", "1 when the map is advised to use 2 MB pages (map_hugepages on, and the kernel took the advice).", info.map_hugepages > 0);
        GAUGE("freshet_wal_enabled", "1 when commits go through the write-ahead log.", info.wal);
        GAUGE("freshet_wal_bytes", "Write-ahead log bytes since the last checkpoint began.", info.wal_bytes);
        COUNTER("freshet_wal_records_total", "Transactions appended to the write-ahead log.", info.wal_records);
        COUNTER("freshet_wal_checkpoints_total", "Checkpoints completed (LMDB's file synced, log dropped).", info.wal_checkpoints);
        COUNTER("freshet_wal_checkpoint_failures_total", "Checkpoints that failed (the previous one stays; the log grows).", info.wal_checkpoint_failures);
        GAUGE("freshet_wal_replayed", "Logged transactions replayed at startup (crash recovery).", info.wal_replayed);
        GAUGE("freshet_wal_closed", "1 when the log was closed after a failed commit it could not take back: writes fail with STORAGE until a restart.", info.wal_closed ? 1 : 0);
    }
    fr_buf_printf(&b, "# HELP freshet_lookups_total As-of lookups of reads and exports, by how they found"
                      " the row: page_walk (batched B-tree walk) or cursor (LMDB's own lookup).\n"
                      "# TYPE freshet_lookups_total counter\n"
                      "freshet_lookups_total{path=\"page_walk\"} %llu\n"
                      "freshet_lookups_total{path=\"cursor\"} %llu\n",
                  atomic_load(&st->lookups_walked), atomic_load(&st->lookups_cursor));
    fr_buf_printf(&b, "# HELP freshet_durability_sync 1 when writes are fsynced before the reply.\n"
                      "# TYPE freshet_durability_sync gauge\nfreshet_durability_sync %d\n",
                  strcmp(s->cfg.durability, "sync") == 0);
    /* per view: value statuses served, rows received, stored versions and freshness */
    fr_registry_t *reg = fr_store_registry(s->store);
    int64_t now = fr_clock_now(s->clock);
    bool txn = fr_rtxn_begin(w->rtxn) == FR_OK;
    fr_buf_printf(&b, "# HELP freshet_values_total Values served by status.\n# TYPE freshet_values_total counter\n");
    for (uint32_t i = 0; i < reg->view_count; i++) {
        const fr_view_def_t *v = &reg->views[i];
        if (v->id >= FR_STATS_VIEWS)
            continue;
        fr_view_counters_t *vc = &st->views[v->id];
        fr_buf_printf(&b, "freshet_values_total{view=\"%s\",status=\"PRESENT\"} %llu\n", v->name, atomic_load(&vc->present));
        fr_buf_printf(&b, "freshet_values_total{view=\"%s\",status=\"EXPIRED\"} %llu\n", v->name, atomic_load(&vc->expired));
        fr_buf_printf(&b, "freshet_values_total{view=\"%s\",status=\"NOT_FOUND\"} %llu\n", v->name, atomic_load(&vc->not_found));
    }
    fr_buf_printf(&b, "# HELP freshet_view_rows_received_total Rows received per view (before dedup).\n"
                      "# TYPE freshet_view_rows_received_total counter\n");
    for (uint32_t i = 0; i < reg->view_count; i++)
        if (reg->views[i].id < FR_STATS_VIEWS)
            fr_buf_printf(&b, "freshet_view_rows_received_total{view=\"%s\"} %llu\n", reg->views[i].name,
                          atomic_load(&st->views[reg->views[i].id].rows_received));
    fr_buf_printf(&b, "# HELP freshet_view_versions Stored row versions per view.\n# TYPE freshet_view_versions gauge\n"
                      "# HELP freshet_view_freshness_seconds Now minus the newest event time of the view.\n"
                      "# TYPE freshet_view_freshness_seconds gauge\n");
    for (uint32_t i = 0; txn && i < reg->view_count; i++) {
        fr_view_stat_t vs;
        if (fr_store_view_stat(w->rtxn, reg->views[i].id, &vs) != FR_OK)
            continue;
        fr_buf_printf(&b, "freshet_view_versions{view=\"%s\"} %llu\n", reg->views[i].name,
                      (unsigned long long)vs.versions);
        if (vs.versions)
            fr_buf_printf(&b, "freshet_view_freshness_seconds{view=\"%s\"} %.6f\n", reg->views[i].name,
                          (double)(now - vs.newest_event_ts_us) / 1e6);
    }
    if (txn)
        fr_rtxn_reset(w->rtxn);
    fr_registry_release(reg);
    fr_ingest_metrics(s, &b);
#undef COUNTER
#undef GAUGE
    send_buf(req, 200, "OK", "text/plain; version=0.0.4", &b);
    fr_buf_fini(&b);
}

/* ---- routing ---- */

static void h_healthz(fr_worker_t *w, struct evhttp_request *req)
{
    (void)w;
    fr_buf_t b = {(uint8_t *)"ok\n", 3, 3, 0};
    send_buf(req, 200, "OK", "text/plain", &b);
}

static void h_readyz(fr_worker_t *w, struct evhttp_request *req)
{
    fr_store_info_t info;
    const char *why = NULL;
    if (fr_store_info(w->server->store, &info) != FR_OK)
        why = "store unavailable";
    else if (info.map_used + 16 * info.page_size >= info.map_size)
        why = "LMDB map is full";
    if (why) {
        send_error(w, req, 503, FR_E_STORAGE_FULL, why);
        return;
    }
    fr_buf_t b = {(uint8_t *)"ready\n", 6, 6, 0};
    send_buf(req, 200, "OK", "text/plain", &b);
}

/* The role of the request's `Authorization: Bearer TOKEN`; FR_ROLE_ADMIN when auth is off. */
static fr_role_t bearer_role(fr_worker_t *w, struct evhttp_request *req, const char **name)
{
    *name = NULL;
    if (!w->server->auth)
        return FR_ROLE_ADMIN;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return FR_ROLE_NONE;
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    return fr_auth_check(w->server->auth, t, n, name);
}

/* 401 (no or bad token) or 403 (valid token, role too low); logged once per HTTP connection and
 * counted in rejected_total{reason="UNAUTHORIZED"}. */
static void deny(fr_worker_t *w, struct evhttp_request *req, const char *path, fr_role_t have,
                 fr_role_t need)
{
    char msg[160];
    if (have == FR_ROLE_NONE)
        snprintf(msg, sizeof msg, "not authenticated: send `Authorization: Bearer TOKEN`");
    else
        snprintf(msg, sizeof msg, "role %s may not use %s (needs %s)", fr_token_role_name(have),
                 path, fr_token_role_name(need));
    const void *conn = evhttp_request_get_connection(req);
    if (conn != w->http_unauth_conn) {
        w->http_unauth_conn = conn;
        char *host = NULL;
        ev_uint16_t port = 0;
        if (conn)
            evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
        fr_log(FR_LOG_WARN, "event=unauthorized peer=%s:%u path=%s role=%s reason=\"%s\"",
               host ? host : "?", port, path, fr_token_role_name(have), msg);
    }
    if (have == FR_ROLE_NONE)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"freshet\"");
    send_error(w, req, have == FR_ROLE_NONE ? 401 : 403, FR_E_UNAUTHORIZED, msg);
}

void fr_http_route(fr_worker_t *w, struct evhttp_request *req, const char *path,
                   enum evhttp_cmd_type m)
{
    static const struct {
        const char *path;
        enum evhttp_cmd_type method;
        void (*fn)(fr_worker_t *, struct evhttp_request *);
        fr_role_t role; /* least role allowed when auth is on (/metrics: see metrics_auth) */
    } routes[] = {
        {"/healthz", EVHTTP_REQ_GET, h_healthz, FR_ROLE_NONE},
        {"/readyz", EVHTTP_REQ_GET, h_readyz, FR_ROLE_NONE},
        {"/metrics", EVHTTP_REQ_GET, h_metrics, FR_ROLE_READ},
        {"/get-online-features", EVHTTP_REQ_POST, h_get_online, FR_ROLE_READ},
        {"/push", EVHTTP_REQ_POST, h_push, FR_ROLE_WRITE},
        {"/v1/export", EVHTTP_REQ_POST, h_export, FR_ROLE_READ},
    };
    bool path_known = false;
    for (size_t i = 0; path && i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path))
            continue;
        path_known = true;
        if (m == routes[i].method) {
            fr_role_t need = routes[i].role;
            if (routes[i].fn == h_metrics && !w->server->cfg.metrics_auth)
                need = FR_ROLE_NONE;
            const char *name;
            fr_role_t have = need == FR_ROLE_NONE ? FR_ROLE_NONE : bearer_role(w, req, &name);
            if (have < need)
                deny(w, req, routes[i].path, have, need); /* before the body is looked at */
            else
                routes[i].fn(w, req);
            return;
        }
    }
    if (path_known)
        send_error(w, req, 405, FR_E_BAD_REQUEST, "method not allowed for this path");
    else
        send_error(w, req, 404, FR_E_NOT_FOUND, "no such endpoint");
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    fr_worker_t *w = arg;
    atomic_fetch_add(&w->server->stats.http_requests, 1);
    fr_net_http_nodelay(req);
    struct evhttp_uri *u = evhttp_uri_parse(evhttp_request_get_uri(req));
    fr_http_route(w, req, u ? evhttp_uri_get_path(u) : NULL, evhttp_request_get_command(req));
    if (u)
        evhttp_uri_free(u);
}

int fr_http_start(fr_server_t *s, fr_worker_t *w, const char **why)
{
    static _Thread_local char buf[512];
    int fd;
    char reason[400];
    int rc = fr_net_listen(s->cfg.http, &fd, s->http_addr, sizeof s->http_addr, reason,
                           sizeof reason);
    if (rc != FR_OK) {
        snprintf(buf, sizeof buf, "http: %s", reason);
        *why = buf;
        return rc;
    }
    w->http = evhttp_new(w->loop.base);
    if (!w->http) {
        close(fd);
        return FR_E_NOMEM;
    }
    evhttp_set_max_body_size(w->http, (ev_ssize_t)s->cfg.max_frame);
    /* libevent's default header limit is unbounded: one client could make the server buffer any
     * amount of header text. Feast and Prometheus clients send well under 1 KiB. */
    evhttp_set_max_headers_size(w->http, HTTP_MAX_HEADERS_BYTES);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(w->http, dispatch, w);
    if (s->tls)
        fr_tls_http_enable(s->tls, w->http); /* TLS only on this listener too */
    if (!evhttp_accept_socket_with_handle(w->http, fd)) {
        close(fd);
        snprintf(buf, sizeof buf, "http: cannot serve %s", s->cfg.http);
        *why = buf;
        return FR_E_IO;
    }
    return FR_OK;
}

void fr_http_stop(fr_worker_t *w)
{
    if (w->http)
        evhttp_free(w->http);
    w->http = NULL;
}
