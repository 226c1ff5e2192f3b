/* libfreshet reads and writes: Put frames with msgpack row payloads, Get replies decoded into
 * typed cells. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "client_int.h"
#include "proto/mp.h"

/* ---- Put ---- */

typedef struct {
    const fr_put_row_t *rows;
    size_t count;
    const size_t *val_off; /* offsets of each row's msgpack in packed */
    const char *packed;
    bool with_offset;
} put_enc_t;

static bool enc_rows_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const put_enc_t *pe = *arg;
    for (size_t i = 0; i < pe->count; i++) {
        const fr_put_row_t *r = &pe->rows[i];
        freshet_Row row = freshet_Row_init_zero;
        row.has_view = true;
        snprintf(row.view, sizeof row.view, "%s", r->view ? r->view : "");
        fr_pb_bytes_t ent = {r->entity, r->entity_len ? r->entity_len : strlen(r->entity)};
        fr_pb_bytes_t vals = {pe->packed + pe->val_off[i], pe->val_off[i + 1] - pe->val_off[i]};
        row.entity.funcs.encode = fr_pb_encode_bytes;
        row.entity.arg = &ent;
        row.values.funcs.encode = fr_pb_encode_bytes;
        row.values.arg = &vals;
        row.has_event_ts_us = true;
        row.event_ts_us = r->event_ts_us;
        row.has_offset = pe->with_offset;
        row.offset = r->offset;
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_Row_fields, &row))
            return false;
    }
    return true;
}

static int queue_put(fr_client_t *c, const char *source, uint32_t partition,
                     const fr_put_row_t *rows, size_t count, msgpack_sbuffer *sb, size_t **offs,
                     uint32_t *id, bool resume)
{
    msgpack_sbuffer_clear(sb);
    size_t *o = realloc(*offs, (count + 1) * sizeof *o);
    if (!o)
        return fr_client_failf(c, FR_E_NOMEM, "no memory");
    *offs = o;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < count; i++) {
        o[i] = sb->size;
        int bad = msgpack_pack_array(&pk, rows[i].value_count);
        for (size_t k = 0; k < rows[i].value_count && !bad; k++)
            bad = fr_mp_pack_value(&pk, &rows[i].values[k]);
        if (bad)
            return fr_client_failf(c, FR_E_BAD_ARG, "row %zu: cannot pack values", i);
    }
    o[count] = sb->size;
    put_enc_t pe = {rows, count, o, sb->data, source != NULL};
    freshet_PutRequest req = freshet_PutRequest_init_zero;
    req.rows.funcs.encode = enc_rows_cb;
    req.rows.arg = &pe;
    req.has_resume = resume;
    req.resume = resume;
    if (source) {
        if (strlen(source) >= sizeof req.source)
            return fr_client_failf(c, FR_E_BAD_ARG, "source: longer than %zu bytes", sizeof req.source - 1);
        req.has_source = req.has_partition = true;
        strcpy(req.source, source);
        req.partition = partition;
    }
    int rc;
    *id = fr_client_queue(c, freshet_Op_OP_PUT, freshet_PutRequest_fields, &req, &rc);
    return rc;
}

#define PUT_WINDOW 8
#define PUT_BUSY_RETRIES 12

int fr_client_put(fr_client_t *c, const char *source, uint32_t partition, const fr_put_row_t *rows,
                  size_t count, fr_put_result_t *out)
{
    fr_put_result_t res = {0, 0, 0, -1, 0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    size_t *offs = NULL;
    /* frames in flight; replies may come back in any order (a refusal is immediate, a write
     * waits for its commit), so they are matched by request id */
    size_t starts[PUT_WINDOW];
    uint32_t ids[PUT_WINDOW];
    bool used[PUT_WINDOW] = {false};
    size_t inflight = 0, sent = 0;
    int rc = FR_OK, first_err = FR_OK, busy_tries = 0;
    bool busy = false, resume = false;
    size_t busy_from = 0, window = PUT_WINDOW;
    int64_t best_hwm = -1;
    char first_msg[512] = "";
    while ((sent < count || inflight > 0 || busy) && rc == FR_OK) {
        if (busy && inflight == 0) {
            /* the server refused every frame from busy_from on (it latches after a refusal):
             * back off and resend them in order, the first one marked resume */
            if (++busy_tries > PUT_BUSY_RETRIES) {
                first_err = FR_E_BUSY;
                snprintf(first_msg, sizeof first_msg, "server stayed busy after %d retries",
                         PUT_BUSY_RETRIES);
                res.failed_row = busy_from;
                break;
            }
            struct timespec ts = {0, (long)(1000000L << (busy_tries < 9 ? busy_tries : 9))};
            nanosleep(&ts, NULL);
            sent = busy_from;
            busy = false;
            resume = true;
            window = 1; /* probe with one frame, widen again as frames are accepted */
        }
        while (!busy && sent < count && inflight < window && first_err == FR_OK) {
            size_t slot = 0;
            while (used[slot])
                slot++;
            size_t n = count - sent < c->batch_rows ? count - sent : c->batch_rows;
            rc = queue_put(c, source, partition, rows + sent, n, &sb, &offs, &ids[slot], resume);
            if (rc == FR_OK)
                rc = fr_client_flush(c);
            if (rc != FR_OK)
                break;
            resume = false;
            used[slot] = true;
            starts[slot] = sent;
            sent += n;
            inflight++;
        }
        if (rc != FR_OK || inflight == 0)
            continue;
        fr_frame_t f;
        rc = fr_client_recv(c, &f);
        if (rc != FR_OK)
            break;
        size_t slot = 0;
        while (slot < PUT_WINDOW && !(used[slot] && ids[slot] == f.request_id))
            slot++;
        if (slot == PUT_WINDOW) {
            rc = fr_client_failf(c, FR_E_INTERNAL, "reply for unknown request %u", f.request_id);
            break;
        }
        used[slot] = false;
        inflight--;
        freshet_PutResponse resp = freshet_PutResponse_init_zero;
        rc = fr_client_decode(c, freshet_PutResponse_fields, &resp);
        if (rc != FR_OK)
            break;
        if (resp.has_code && resp.code == FR_E_BUSY) {
            if (!busy || starts[slot] < busy_from)
                busy_from = starts[slot];
            busy = true;
        } else if (resp.has_code && resp.code != 0) {
            if (first_err == FR_OK) {
                first_err = resp.code;
                snprintf(first_msg, sizeof first_msg, "%s", resp.message);
                res.failed_row = starts[slot] + resp.row_index;
            }
        } else {
            res.rows_written += resp.rows_written;
            res.duplicates += resp.duplicates;
            res.unchanged += resp.unchanged;
            if (resp.has_high_water && resp.high_water > best_hwm)
                best_hwm = resp.high_water;
            busy_tries = 0; /* progress: the retry budget is for a server that stays full */
            window = window * 2 > PUT_WINDOW ? PUT_WINDOW : window * 2;
        }
    }
    res.high_water = best_hwm;
    msgpack_sbuffer_destroy(&sb);
    free(offs);
    if (out)
        *out = res;
    if (rc != FR_OK)
        return rc;
    if (first_err != FR_OK)
        return fr_client_failf(c, first_err, "%s", first_msg);
    c->err[0] = 0;
    return FR_OK;
}

/* ---- Get ---- */

typedef struct fblock {
    struct fblock *next;
    size_t used, cap;
    float data[];
} fblock_t;

typedef struct {
    const uint8_t *ptr;
    size_t len;
    uint32_t status;
    int64_t event_ts_us;
    int64_t written_at_us;
} rowspan_t;

/* A cell is a value plus a status byte; its event and written-at times are those of its row
 * (entity, view), kept once per row instead of once per cell: a 100 x 50 reply fills 5000 cells,
 * and writing 40-byte cells with copies of the row times was most of the client's decode cost. */
struct fr_result {
    uint8_t *body; /* reply bytes: strings and bytes values point here */
    size_t entity_count, col_count, view_count;
    char **col_names; /* one allocation: the pointer array followed by the strings */
    fr_type_t *col_types;
    uint16_t *col_view;  /* view index of column j */
    uint32_t *col_index; /* position of column j in its view's row payload */
    rowspan_t *rows;     /* [entity * view_count + v]: status, times and payload of each row */
    /* The cells are decoded from the row payloads on first use (cells_ready): a caller that
     * takes the numbers with fr_result_floats never pays for 5000 typed cells. The payloads
     * were checked when the reply arrived, so decoding them fails only for memory. */
    atomic_int cells_ready;
    int cells_rc;
    pthread_mutex_t cells_lock;
    fr_value_t *values; /* [entity * col_count + j] */
    uint8_t *status;    /* same index */
    int64_t as_of_us;
    uint64_t snapshot;
    fblock_t *floats;
    /* snapshot exports */
    const uint8_t **ent_ptr;
    size_t *ent_len;
    size_t ent_count;
    const uint8_t *cursor;
    size_t cursor_len;
    bool done;
    /* merged results (fr_result_gather): the parts whose memory the cells point into */
    fr_result_t **owned;
    size_t owned_count;
};

typedef struct {
    const uint8_t *ptr;
    size_t len;
} span_t;

typedef struct {
    fr_client_t *c;
    size_t nviews, ncols, nrows, cap_cols, cap_rows;
    freshet_Column *cols;
    rowspan_t *rows;
    span_t *ents;
    size_t nents, cap_ents;
    span_t cursor;
    int oom;
} get_dec_t;

static bool dec_entity_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_dec_t *d = *arg;
    if (d->nents == d->cap_ents) {
        size_t cap = d->cap_ents ? d->cap_ents * 2 : 256;
        span_t *p = realloc(d->ents, cap * sizeof *p);
        if (!p)
            return d->oom = 1, false;
        d->ents = p;
        d->cap_ents = cap;
    }
    span_t *sp = &d->ents[d->nents++];
    return fr_pb_take_bytes(stream, &sp->ptr, &sp->len);
}

static bool dec_cursor_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_dec_t *d = *arg;
    return fr_pb_take_bytes(stream, &d->cursor.ptr, &d->cursor.len);
}

static bool dec_view_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_dec_t *d = *arg;
    d->nviews++;
    return pb_read(stream, NULL, stream->bytes_left);
}

/* Column i of the cache when its raw message is raw[0..n): copies it into *col. */
static bool colcache_get(const fr_client_t *c, size_t i, const uint8_t *raw, size_t n,
                         freshet_Column *col)
{
    if (i >= c->colcache.n)
        return false;
    size_t start = i ? c->colcache.end[i - 1] : 0;
    if (c->colcache.end[i] - start != n || (n && memcmp(c->colcache.raw + start, raw, n) != 0))
        return false; /* (an empty Column message: no bytes to compare, raw may be NULL) */
    *col = c->colcache.cols[i];
    return true;
}

/* Makes column i of the cache raw[0..n) / *col, dropping the columns after it (best effort: on
 * no memory the cache is emptied, decoding goes on). */
static void colcache_put(fr_client_t *c, size_t i, const uint8_t *raw, size_t n,
                         const freshet_Column *col)
{
    __typeof__(c->colcache) *cc = &c->colcache;
    if (i > cc->n) /* columns are cached in order */
        return;
    size_t start = i ? cc->end[i - 1] : 0;
    if (i >= cc->cap) {
        size_t cap = cc->cap ? cc->cap * 2 : 64;
        size_t *end = realloc(cc->end, cap * sizeof *end);
        if (end)
            cc->end = end;
        freshet_Column *cols = end ? realloc(cc->cols, cap * sizeof *cols) : NULL;
        if (cols)
            cc->cols = cols;
        if (!end || !cols) {
            cc->n = 0;
            return;
        }
        cc->cap = cap;
    }
    if (start + n > cc->raw_cap) {
        size_t cap = cc->raw_cap ? cc->raw_cap : 4096;
        while (cap < start + n)
            cap *= 2;
        uint8_t *raw_buf = realloc(cc->raw, cap);
        if (!raw_buf) {
            cc->n = 0;
            return;
        }
        cc->raw = raw_buf;
        cc->raw_cap = cap;
    }
    if (n)
        memcpy(cc->raw + start, raw, n);
    cc->end[i] = start + n;
    cc->cols[i] = *col;
    cc->n = i + 1;
}

static bool dec_col_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_dec_t *d = *arg;
    if (d->ncols == d->cap_cols) {
        size_t cap = d->cap_cols ? d->cap_cols * 2 : 64;
        freshet_Column *p = realloc(d->cols, cap * sizeof *p);
        if (!p)
            return d->oom = 1, false;
        d->cols = p;
        d->cap_cols = cap;
    }
    freshet_Column *col = &d->cols[d->ncols];
    const uint8_t *raw;
    size_t n;
    if (!fr_pb_take_bytes(stream, &raw, &n))
        return false;
    if (colcache_get(d->c, d->ncols, raw, n, col)) {
        d->ncols++;
        return true;
    }
    *col = (freshet_Column)freshet_Column_init_zero;
    pb_istream_t is = pb_istream_from_buffer(raw, n);
    if (!pb_decode(&is, freshet_Column_fields, col))
        return false;
    colcache_put(d->c, d->ncols, raw, n, col);
    d->ncols++;
    return true;
}

/* RowResult is decoded by hand: its four fields are fixed, and nanopb's descriptor walk for each of
 * a reply's rows was a fifth of a batched Get's client time. Unknown fields are skipped, as
 * pb_decode would. */
static bool dec_row_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_dec_t *d = *arg;
    if (d->nrows == d->cap_rows) {
        size_t cap = d->cap_rows ? d->cap_rows * 2 : 256;
        rowspan_t *p = realloc(d->rows, cap * sizeof *p);
        if (!p)
            return d->oom = 1, false;
        d->rows = p;
        d->cap_rows = cap;
    }
    rowspan_t *rs = &d->rows[d->nrows];
    memset(rs, 0, sizeof *rs);
    while (stream->bytes_left) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        uint64_t u;
        if (!pb_decode_tag(stream, &wt, &tag, &eof))
            return false;
        if (tag == 1 && wt == PB_WT_VARINT) {
            if (!pb_decode_varint(stream, &u))
                return false;
            rs->status = (uint32_t)u;
        } else if ((tag == 2 || tag == 3) && wt == PB_WT_VARINT) {
            if (!pb_decode_svarint(stream, tag == 2 ? &rs->event_ts_us : &rs->written_at_us))
                return false;
        } else if (tag == 4 && wt == PB_WT_STRING) {
            pb_istream_t sub;
            if (!pb_make_string_substream(stream, &sub))
                return false;
            bool ok = fr_pb_take_bytes(&sub, &rs->ptr, &rs->len);
            if (!pb_close_string_substream(stream, &sub) || !ok)
                return false;
        } else if (!pb_skip_field(stream, wt)) {
            return false;
        }
    }
    d->nrows++;
    return true;
}

static float *float_alloc(fr_result_t *r, size_t n)
{
    fblock_t *b = r->floats;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        b = malloc(sizeof *b + cap * sizeof(float));
        if (!b)
            return NULL;
        b->next = r->floats;
        b->used = 0;
        b->cap = cap;
        r->floats = b;
    }
    float *p = b->data + b->used;
    b->used += n;
    return p;
}

/* Converts one msgpack item into a value of the column's type. Returns 0, or -1 (malformed). */
static int to_value(fr_result_t *r, const uint8_t *end, const fr_mp_item_t *it, fr_type_t type,
                    fr_value_t *v)
{
    memset(v, 0, sizeof *v);
    switch (it->kind) {
    case FR_MP_NIL:
        return 0;
    case FR_MP_BOOL:
        v->type = FR_TYPE_BOOL;
        v->u.b = it->v.b;
        return 0;
    case FR_MP_INT:
        v->type = type;
        if (type == FR_TYPE_DOUBLE)
            v->u.f64 = (double)it->v.i;
        else if (type == FR_TYPE_FLOAT)
            v->u.f32 = (float)it->v.i;
        else {
            v->type = FR_TYPE_INT64;
            v->u.i64 = it->v.i;
        }
        return 0;
    case FR_MP_F32:
    case FR_MP_F64: {
        double x = it->kind == FR_MP_F32 ? it->v.f32 : it->v.f64;
        v->type = type == FR_TYPE_FLOAT ? FR_TYPE_FLOAT : FR_TYPE_DOUBLE;
        if (v->type == FR_TYPE_FLOAT)
            v->u.f32 = it->kind == FR_MP_F32 ? it->v.f32 : (float)x;
        else
            v->u.f64 = x;
        return 0;
    }
    case FR_MP_STR:
    case FR_MP_BIN:
        v->type = type == FR_TYPE_BYTES || it->kind == FR_MP_BIN ? FR_TYPE_BYTES : FR_TYPE_STRING;
        v->len = it->count;
        v->u.bytes = it->v.ptr;
        return 0;
    case FR_MP_ARRAY: {
        float *fs = float_alloc(r, it->count ? it->count : 1);
        if (!fs)
            return -1;
        fr_mp_reader_t rd; /* the elements, from fr_mp_row_next */
        fr_mp_reader_init(&rd, it->v.ptr, (size_t)(end - it->v.ptr));
        for (uint32_t i = 0; i < it->count; i++)
            if (fr_mp_next_float(&rd, &fs[i]))
                return -1;
        v->type = FR_TYPE_FLOAT_LIST;
        v->len = it->count;
        v->u.floats = fs;
        return 0;
    }
    default:
        return -1;
    }
}

/* The most cells a row may hold (the registry's feature limit per view is lower). */
#define ROW_CELLS_MAX 1024

/* Checks a row payload as the cell decoders will read it: well-formed, at most ROW_CELLS_MAX
 * cells, every cell a nil, bool, int64, float, string, bytes or a list of numbers. */
static int check_row(const uint8_t *p, size_t len)
{
    int64_t n = fr_mp_row_cells_typed(p, len);
    return n >= 0 && n <= ROW_CELLS_MAX ? 0 : -1;
}

/* The row payload's cells as items (runs expanded). Returns the count, or -1 (checked rows are
 * not malformed). */
static int row_items(const rowspan_t *rs, fr_mp_item_t items[ROW_CELLS_MAX])
{
    fr_mp_row_t row;
    if (fr_mp_row_open(&row, rs->ptr, rs->len))
        return -1;
    int n = 0;
    for (;;) {
        fr_mp_reader_t *rd = &row.r;
        if (!row.run_left && row.items && rd->end - rd->p >= 5 && rd->p[0] == 0xca) {
            row.items--; /* float32, inline */
            uint32_t bits = fr_get_be32(rd->p + 1);
            items[n].kind = FR_MP_F32;
            memcpy(&items[n].v.f32, &bits, sizeof bits);
            rd->p += 5;
        } else {
            int rc = fr_mp_row_next(&row, &items[n]);
            if (rc != 0)
                return rc > 0 ? n : -1;
        }
        if (++n == ROW_CELLS_MAX)
            return row.items || row.run_left ? -1 : n;
    }
}

/* Fills r->values and r->status from the row payloads. FR_OK, FR_E_NOMEM or FR_E_BAD_REQUEST. */
static int decode_cells(fr_result_t *r)
{
    size_t ne = r->entity_count, nc = r->col_count, nv = r->view_count;
    size_t ncells = ne * nc;
    r->values = malloc((ncells ? ncells : 1) * sizeof *r->values);
    r->status = malloc(ncells ? ncells : 1);
    if (!r->values || !r->status)
        return FR_E_NOMEM;
    fr_mp_item_t items[ROW_CELLS_MAX];
    for (size_t e = 0; e < ne; e++)
        for (size_t v = 0; v < nv; v++) {
            const rowspan_t *rs = &r->rows[e * nv + v];
            int n = rs->ptr ? row_items(rs, items) : 0;
            if (n < 0)
                return FR_E_BAD_REQUEST;
            for (size_t j = 0; j < nc; j++) {
                if (r->col_view[j] != v)
                    continue;
                size_t at = e * nc + j;
                fr_value_t *val = &r->values[at];
                r->status[at] = (uint8_t)rs->status;
                val->type = FR_TYPE_NONE;
                val->len = 0;
                uint32_t k = r->col_index[j];
                if (!rs->ptr)
                    continue;
                if (k >= (uint32_t)n || items[k].kind == FR_MP_NIL) {
                    if (rs->status == FR_STATUS_PRESENT)
                        r->status[at] = FR_STATUS_NULL;
                    continue;
                }
                if (items[k].kind == FR_MP_F32 && r->col_types[j] == FR_TYPE_FLOAT) {
                    val->type = FR_TYPE_FLOAT; /* the common case, without the generic switch */
                    val->u.f32 = items[k].v.f32;
                    continue;
                }
                if (to_value(r, rs->ptr + rs->len, &items[k], r->col_types[j], val))
                    return FR_E_NOMEM; /* float_alloc: the item itself was checked */
            }
        }
    return FR_OK;
}

/* Decodes the cells once, whichever thread asks first. */
static int ensure_cells(const fr_result_t *cr)
{
    fr_result_t *r = (fr_result_t *)cr; /* the cells are a cache of what r already holds */
    if (atomic_load_explicit(&r->cells_ready, memory_order_acquire))
        return r->cells_rc;
    pthread_mutex_lock(&r->cells_lock);
    if (!atomic_load_explicit(&r->cells_ready, memory_order_relaxed)) {
        r->cells_rc = decode_cells(r);
        atomic_store_explicit(&r->cells_ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&r->cells_lock);
    return r->cells_rc;
}

static fr_result_t *result_new(void)
{
    fr_result_t *r = calloc(1, sizeof *r);
    if (r && pthread_mutex_init(&r->cells_lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static int build_result(fr_client_t *c, get_dec_t *d, const freshet_GetResponse *resp,
                        fr_result_t **out)
{
    size_t ne = resp->entity_count;
    if (d->nviews == 0 || d->nrows != ne * d->nviews)
        return fr_client_failf(c, FR_E_BAD_REQUEST, "malformed reply: %zu rows for %zu x %zu",
                               d->nrows, ne, d->nviews);
    if (d->nents && d->nents != ne)
        return fr_client_failf(c, FR_E_BAD_REQUEST, "malformed reply: entities do not match rows");
    for (size_t i = 0; i < d->nrows; i++)
        if (d->rows[i].ptr && check_row(d->rows[i].ptr, d->rows[i].len))
            return fr_client_failf(c, FR_E_BAD_REQUEST, "malformed row values in the reply");
    for (size_t j = 0; j < d->ncols; j++)
        if (d->cols[j].view >= d->nviews)
            return fr_client_failf(c, FR_E_BAD_REQUEST, "malformed reply: column %zu names view %u",
                                   j, (unsigned)d->cols[j].view);
    fr_result_t *r = result_new();
    if (!r)
        return fr_client_failf(c, FR_E_NOMEM, "no memory for the result");
    r->entity_count = ne;
    r->col_count = d->ncols;
    r->as_of_us = resp->as_of_us;
    r->snapshot = resp->snapshot_txn;
    r->done = resp->has_done && resp->done;
    r->cursor = d->cursor.ptr;
    r->cursor_len = d->cursor.len;
    r->body = c->rbuf.data; /* take the reply buffer: values point into it */
    fr_buf_init(&c->rbuf, 0);
    r->view_count = d->nviews;
    r->rows = d->rows; /* the row spans become the result's row table */
    d->rows = NULL;
    d->cap_rows = 0;
    size_t nc = d->ncols, names_len = 0;
    for (size_t j = 0; j < nc; j++)
        names_len += strlen(d->cols[j].name) + 1;
    r->col_names = malloc((nc ? nc : 1) * sizeof *r->col_names + names_len);
    r->col_types = malloc((nc ? nc : 1) * sizeof *r->col_types);
    r->col_view = malloc((nc ? nc : 1) * sizeof *r->col_view);
    r->col_index = malloc((nc ? nc : 1) * sizeof *r->col_index);
    if (!r->col_names || !r->col_types || !r->col_view || !r->col_index)
        goto oom;
    if (d->nents) {
        r->ent_ptr = calloc(ne, sizeof *r->ent_ptr);
        r->ent_len = calloc(ne, sizeof *r->ent_len);
        if (!r->ent_ptr || !r->ent_len)
            goto oom;
        for (size_t i = 0; i < ne; i++) {
            r->ent_ptr[i] = d->ents[i].ptr;
            r->ent_len[i] = d->ents[i].len;
        }
        r->ent_count = ne;
    }
    char *names = (char *)(r->col_names + (nc ? nc : 1));
    for (size_t j = 0; j < nc; j++) {
        size_t n = strlen(d->cols[j].name) + 1;
        memcpy(names, d->cols[j].name, n);
        r->col_names[j] = names;
        names += n;
        r->col_types[j] = (fr_type_t)d->cols[j].type;
        r->col_view[j] = (uint16_t)d->cols[j].view;
        r->col_index[j] = d->cols[j].index;
    }
    *out = r;
    return FR_OK;
oom:
    fr_result_free(r);
    return fr_client_failf(c, FR_E_NOMEM, "no memory for the result");
}

typedef struct {
    const fr_entity_col_t *col;
} ent_enc_t;

static bool enc_strings_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_get_req_t *req = *arg;
    for (size_t i = 0; i < req->feature_count; i++)
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)req->features[i], strlen(req->features[i])))
            return false;
    return true;
}

static bool enc_values_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_entity_col_t *col = *arg;
    for (size_t i = 0; i < col->count; i++) {
        size_t n = col->lens ? col->lens[i] : strlen(col->values[i]);
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)col->values[i], n))
            return false;
    }
    return true;
}

bool fr_client_enc_entity_cols(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_entity_cols_t *cols = *arg;
    for (size_t i = 0; i < cols->count; i++) {
        const fr_entity_col_t *col = &cols->cols[i];
        freshet_EntityColumn ec = freshet_EntityColumn_init_zero;
        if (col->join_key && col->join_key[0]) {
            ec.has_join_key = true;
            snprintf(ec.join_key, sizeof ec.join_key, "%s", col->join_key);
        }
        ec.values.funcs.encode = enc_values_cb;
        ec.values.arg = (void *)col;
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_EntityColumn_fields, &ec))
            return false;
    }
    return true;
}

static int queue_get(fr_client_t *c, const fr_get_req_t *req, uint32_t *id)
{
    freshet_GetRequest g = freshet_GetRequest_init_zero;
    g.features.funcs.encode = enc_strings_cb;
    g.features.arg = (void *)req;
    fr_entity_cols_t cols = {req->entities, req->entity_col_count};
    g.entities.funcs.encode = fr_client_enc_entity_cols;
    g.entities.arg = &cols;
    g.has_as_of_us = req->has_as_of;
    g.as_of_us = req->as_of_us;
    g.has_include_expired = req->include_expired;
    g.include_expired = req->include_expired;
    g.has_served = req->served;
    g.served = req->served;
    int rc;
    *id = fr_client_queue(c, freshet_Op_OP_GET, freshet_GetRequest_fields, &g, &rc);
    return rc;
}

static int read_get_reply(fr_client_t *c, uint32_t id, fr_result_t **out)
{
    fr_frame_t f;
    int rc = fr_client_recv(c, &f);
    if (rc != FR_OK)
        return rc;
    if (f.request_id != id)
        return fr_client_failf(c, FR_E_INTERNAL, "reply for request %u, expected %u", f.request_id, id);
    get_dec_t d = {.c = c};
    freshet_GetResponse resp = freshet_GetResponse_init_zero;
    resp.views.funcs.decode = dec_view_cb;
    resp.views.arg = &d;
    resp.columns.funcs.decode = dec_col_cb;
    resp.columns.arg = &d;
    resp.rows.funcs.decode = dec_row_cb;
    resp.rows.arg = &d;
    resp.entities.funcs.decode = dec_entity_cb;
    resp.entities.arg = &d;
    resp.next_cursor.funcs.decode = dec_cursor_cb;
    resp.next_cursor.arg = &d;
    rc = fr_client_decode(c, freshet_GetResponse_fields, &resp);
    if (rc == FR_OK)
        rc = fr_client_check(c, resp.has_code, resp.code, resp.message);
    if (rc == FR_OK)
        rc = build_result(c, &d, &resp, out);
    free(d.cols);
    free(d.rows);
    free(d.ents);
    return rc;
}

int fr_client_get(fr_client_t *c, const fr_get_req_t *req, fr_result_t **out)
{
    *out = NULL;
    uint32_t id;
    int rc = fr_client_get_send(c, req, &id);
    return rc == FR_OK ? fr_client_get_recv(c, id, out) : rc;
}

int fr_client_get_send(fr_client_t *c, const fr_get_req_t *req, uint32_t *id)
{
    int rc = queue_get(c, req, id);
    return rc == FR_OK ? fr_client_flush(c) : rc;
}

int fr_client_get_recv(fr_client_t *c, uint32_t id, fr_result_t **out)
{
    *out = NULL;
    return read_get_reply(c, id, out);
}

int fr_client_get_many(fr_client_t *c, const fr_get_req_t *reqs, size_t n, fr_result_t **out)
{
    uint32_t *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return FR_E_NOMEM;
    int rc = FR_OK, first = FR_OK;
    for (size_t i = 0; i < n && rc == FR_OK; i++) {
        out[i] = NULL;
        rc = queue_get(c, &reqs[i], &ids[i]);
    }
    if (rc == FR_OK)
        rc = fr_client_flush(c);
    for (size_t i = 0; i < n && rc == FR_OK; i++) {
        int r = read_get_reply(c, ids[i], &out[i]);
        if (r != FR_OK && first == FR_OK)
            first = r;
        if (r == FR_E_IO || r == FR_E_CLOSED || r == FR_E_TIMEOUT || r == FR_E_INTERNAL)
            rc = r;
    }
    free(ids);
    return rc != FR_OK ? rc : first;
}

size_t fr_result_entity_count(const fr_result_t *r) { return r->entity_count; }
size_t fr_result_feature_count(const fr_result_t *r) { return r->col_count; }
const char *fr_result_feature_name(const fr_result_t *r, size_t j)
{
    return j < r->col_count ? r->col_names[j] : NULL;
}
fr_type_t fr_result_feature_type(const fr_result_t *r, size_t j)
{
    return j < r->col_count ? r->col_types[j] : FR_TYPE_NONE;
}

int fr_result_cell(const fr_result_t *r, size_t i, size_t j, fr_value_t *value, int *status,
                   int64_t *event_ts_us)
{
    if (i >= r->entity_count || j >= r->col_count)
        return FR_E_BAD_ARG;
    int rc = ensure_cells(r);
    if (rc != FR_OK) {
        if (value)
            memset(value, 0, sizeof *value);
        if (status)
            *status = FR_STATUS_NOT_FOUND;
        if (event_ts_us)
            *event_ts_us = 0;
        return rc;
    }
    size_t at = i * r->col_count + j;
    if (value)
        *value = r->values[at];
    if (status)
        *status = r->status[at];
    if (event_ts_us)
        *event_ts_us = r->rows[i * r->view_count + r->col_view[j]].event_ts_us;
    return FR_OK;
}

/* A row payload's cells as floats: kind[k] is 0 for nil, 1 for a number (cells[k]), 2 for
 * anything else. Runs are copied whole. Returns the cell count, or -1 (checked rows are not
 * malformed). */
static int row_floats(const rowspan_t *rs, float cells[ROW_CELLS_MAX],
                      uint8_t kind[ROW_CELLS_MAX])
{
    fr_mp_row_t row;
    if (fr_mp_row_open(&row, rs->ptr, rs->len))
        return -1;
    uint32_t n = 0;
    fr_mp_item_t it;
    for (uint32_t i = 0; i < row.items; i++) {
        if (fr_mp_next(&row.r, &it))
            return -1;
        if (it.kind == FR_MP_RUN32 || it.kind == FR_MP_RUN64) {
            if (it.count > ROW_CELLS_MAX - n)
                return -1;
            for (uint32_t k = 0; k < it.count; k++) {
                fr_mp_item_t x;
                fr_mp_run_value(it.kind == FR_MP_RUN32 ? FR_MP_F32 : FR_MP_F64,
                                it.v.ptr + (size_t)k * (it.kind == FR_MP_RUN32 ? 4 : 8), &x);
                cells[n + k] = it.kind == FR_MP_RUN32 ? x.v.f32 : (float)x.v.f64;
            }
            memset(kind + n, 1, it.count);
            n += it.count;
            continue;
        }
        if (n == ROW_CELLS_MAX)
            return -1;
        kind[n] = 1;
        switch (it.kind) {
        case FR_MP_NIL:
            kind[n] = 0;
            break;
        case FR_MP_BOOL:
            cells[n] = it.v.b ? 1.0f : 0.0f;
            break;
        case FR_MP_INT:
            cells[n] = (float)it.v.i;
            break;
        case FR_MP_F32:
            cells[n] = it.v.f32;
            break;
        case FR_MP_F64:
            cells[n] = (float)it.v.f64;
            break;
        case FR_MP_ARRAY:
            for (uint32_t k = 0; k < it.count; k++) {
                fr_mp_item_t el;
                if (fr_mp_next(&row.r, &el))
                    return -1;
            }
            kind[n] = 2;
            break;
        default:
            kind[n] = 2;
            break;
        }
        n++;
    }
    return row.r.p == row.r.end ? (int)n : -1;
}

int fr_result_floats(const fr_result_t *r, float missing, float *out, uint8_t *status)
{
    size_t ne = r->entity_count, nc = r->col_count, nv = r->view_count;
    /* columns grouped by view: vcols[vstart[v] .. vstart[v + 1]) */
    size_t *vstart = calloc(nv + 1, sizeof *vstart);
    uint32_t *vcols = malloc((nc ? nc : 1) * sizeof *vcols);
    float *cells = malloc(ROW_CELLS_MAX * sizeof *cells);
    uint8_t *kind = malloc(ROW_CELLS_MAX);
    int rc = FR_OK;
    if (!vstart || !vcols || !cells || !kind) {
        rc = FR_E_NOMEM;
        goto done;
    }
    for (size_t j = 0; j < nc; j++)
        vstart[r->col_view[j] + 1]++;
    for (size_t v = 0; v < nv; v++)
        vstart[v + 1] += vstart[v];
    for (size_t j = 0; j < nc; j++)
        vcols[vstart[r->col_view[j]]++] = (uint32_t)j; /* vstart[v] ends at v's end... */
    /* ...which is the start of v + 1: shift back by one */
    for (size_t v = nv; v > 0; v--)
        vstart[v] = vstart[v - 1];
    vstart[0] = 0;
    for (size_t e = 0; e < ne; e++)
        for (size_t v = 0; v < nv; v++) {
            const rowspan_t *rs = &r->rows[e * nv + v];
            int n = rs->ptr ? row_floats(rs, cells, kind) : 0;
            if (n < 0) {
                rc = FR_E_BAD_REQUEST;
                goto done;
            }
            for (size_t c = vstart[v]; c < vstart[v + 1]; c++) {
                size_t j = vcols[c], at = e * nc + j;
                uint32_t k = r->col_index[j];
                uint8_t st = (uint8_t)rs->status;
                float x = missing;
                if (rs->ptr) {
                    if (k >= (uint32_t)n || kind[k] == 0)
                        st = rs->status == FR_STATUS_PRESENT ? FR_STATUS_NULL : st;
                    else if (kind[k] == 1)
                        x = cells[k];
                }
                out[at] = x;
                if (status)
                    status[at] = st;
            }
        }
done:
    free(vstart);
    free(vcols);
    free(cells);
    free(kind);
    return rc;
}

int64_t fr_result_as_of(const fr_result_t *r) { return r->as_of_us; }
uint64_t fr_result_snapshot(const fr_result_t *r) { return r->snapshot; }

void fr_result_free(fr_result_t *r)
{
    if (!r)
        return;
    free(r->col_names);
    free(r->col_types);
    free(r->col_view);
    free(r->col_index);
    free(r->values);
    free(r->status);
    free(r->rows);
    while (r->floats) {
        fblock_t *n = r->floats->next;
        free(r->floats);
        r->floats = n;
    }
    free(r->ent_ptr);
    free(r->ent_len);
    free(r->body);
    for (size_t i = 0; i < r->owned_count; i++)
        fr_result_free(r->owned[i]);
    free(r->owned);
    pthread_mutex_destroy(&r->cells_lock);
    free(r);
}

int fr_result_gather(fr_result_t **parts, size_t nparts, const uint32_t *part_of,
                     const uint32_t *row_of, size_t n, fr_result_t **out)
{
    *out = NULL;
    const fr_result_t *first = NULL;
    for (size_t k = 0; k < nparts && !first; k++)
        first = parts[k];
    fr_result_t *r = result_new();
    if (!r || !first)
        goto fail;
    r->owned = calloc(nparts, sizeof *r->owned);
    if (!r->owned)
        goto fail;
    memcpy(r->owned, parts, nparts * sizeof *parts);
    r->owned_count = nparts;
    size_t nc = first->col_count, nv = first->view_count;
    r->entity_count = n;
    r->col_count = nc;
    r->view_count = nv;
    r->as_of_us = first->as_of_us;
    r->snapshot = 0; /* several snapshots */
    r->done = true;
    /* names and row spans point into the owned parts; cells are decoded from the spans */
    r->col_names = malloc((nc ? nc : 1) * sizeof *r->col_names);
    r->col_types = malloc((nc ? nc : 1) * sizeof *r->col_types);
    r->col_view = malloc((nc ? nc : 1) * sizeof *r->col_view);
    r->col_index = malloc((nc ? nc : 1) * sizeof *r->col_index);
    r->rows = calloc((n * nv) > 0 ? n * nv : 1, sizeof *r->rows);
    if (!r->col_names || !r->col_types || !r->col_view || !r->col_index || !r->rows)
        goto fail_nomem;
    for (size_t j = 0; j < nc; j++) {
        r->col_names[j] = first->col_names[j];
        r->col_types[j] = first->col_types[j];
        r->col_view[j] = first->col_view[j];
        r->col_index[j] = first->col_index[j];
    }
    int rc = FR_E_INTERNAL; /* from here on only a disagreement between the parts fails */
    for (size_t k = 0; k < nparts; k++) {
        const fr_result_t *src = parts[k];
        if (!src)
            continue;
        if (src->col_count != nc || src->view_count != nv)
            goto fail_owned;
        for (size_t j = 0; j < nc; j++)
            if (src->col_view[j] != r->col_view[j] || src->col_index[j] != r->col_index[j] ||
                src->col_types[j] != r->col_types[j] || strcmp(src->col_names[j], r->col_names[j]))
                goto fail_owned;
    }
    for (size_t i = 0; i < n; i++) {
        const fr_result_t *src = part_of[i] < nparts ? parts[part_of[i]] : NULL;
        if (!src || row_of[i] >= src->entity_count)
            goto fail_owned;
        memcpy(&r->rows[i * nv], &src->rows[row_of[i] * nv], nv * sizeof *r->rows);
    }
    *out = r;
    return FR_OK;
fail_nomem:
    rc = FR_E_NOMEM;
fail_owned:
    fr_result_free(r); /* frees the parts too */
    return rc;
fail:
    if (r)
        free(r->owned);
    free(r);
    for (size_t k = 0; k < nparts; k++)
        fr_result_free(parts[k]);
    return first ? FR_E_NOMEM : FR_E_BAD_ARG;
}

int64_t fr_result_written_at(const fr_result_t *r, size_t i, size_t j)
{
    if (i >= r->entity_count || j >= r->col_count)
        return 0;
    return r->rows[i * r->view_count + r->col_view[j]].written_at_us;
}

const char *fr_result_entity(const fr_result_t *r, size_t i, size_t *len)
{
    if (i >= r->ent_count)
        return NULL;
    *len = r->ent_len[i];
    return (const char *)r->ent_ptr[i];
}

const void *fr_result_next_cursor(const fr_result_t *r, size_t *len)
{
    *len = r->cursor_len;
    return r->done ? NULL : r->cursor;
}

bool fr_result_done(const fr_result_t *r) { return r->done; }

/* ---- Export ---- */

typedef struct {
    const int64_t *v;
    size_t n;
} i64s_t;

static bool enc_i64s_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const i64s_t *a = *arg;
    if (!a->n)
        return true;
    /* packed: one length-delimited field of zigzag varints */
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    for (size_t i = 0; i < a->n; i++)
        if (!pb_encode_svarint(&sizing, a->v[i]))
            return false;
    if (!pb_encode_tag(stream, PB_WT_STRING, field->tag) ||
        !pb_encode_varint(stream, sizing.bytes_written))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!pb_encode_svarint(stream, a->v[i]))
            return false;
    return true;
}

static bool enc_features_x_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const fr_export_req_t *req = *arg;
    for (size_t i = 0; i < req->feature_count; i++)
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, (const pb_byte_t *)req->features[i], strlen(req->features[i])))
            return false;
    return true;
}

int fr_client_export_send(fr_client_t *c, const fr_export_req_t *req, uint32_t *id)
{
    freshet_ExportRequest x = freshet_ExportRequest_init_zero;
    x.has_kind = true;
    x.kind = (freshet_ExportKind)req->kind;
    x.features.funcs.encode = enc_features_x_cb;
    x.features.arg = (void *)req;
    fr_entity_cols_t cols = {req->entities, req->entity_col_count};
    x.entities.funcs.encode = fr_client_enc_entity_cols;
    x.entities.arg = &cols;
    i64s_t times = {req->as_of_us, req->as_of_us ? req->row_count : 0};
    x.as_of_us.funcs.encode = enc_i64s_cb;
    x.as_of_us.arg = &times;
    x.has_snapshot_as_of_us = req->has_snapshot_as_of;
    x.snapshot_as_of_us = req->snapshot_as_of_us;
    x.has_served = req->served;
    x.served = req->served;
    x.has_include_expired = req->include_expired;
    x.include_expired = req->include_expired;
    if (req->cursor && req->cursor_len) {
        if (req->cursor_len > sizeof x.cursor.bytes)
            return fr_client_failf(c, FR_E_BAD_ARG, "cursor: too long");
        x.has_cursor = true;
        x.cursor.size = (pb_size_t)req->cursor_len;
        memcpy(x.cursor.bytes, req->cursor, req->cursor_len);
    }
    x.has_limit = req->limit != 0;
    x.limit = req->limit;
    x.has_end = req->end;
    x.end = req->end;
    int rc;
    *id = fr_client_queue(c, freshet_Op_OP_EXPORT, freshet_ExportRequest_fields, &x, &rc);
    if (rc == FR_OK)
        rc = fr_client_flush(c);
    return rc;
}

int fr_client_export_recv(fr_client_t *c, uint32_t id, fr_result_t **out)
{
    *out = NULL;
    int rc = read_get_reply(c, id, out);
    if (rc == FR_OK && (rc = ensure_cells(*out)) != FR_OK) {
        /* decoded here, on the receiving thread: an exporter formats cells on another one */
        fr_result_free(*out);
        *out = NULL;
        return fr_client_failf(c, rc, "no memory for the result");
    }
    return rc;
}
