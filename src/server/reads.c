/* Read handlers: Get (online vectors) and Export (point-in-time joins and snapshots, streamed in
 * chunks). Both resolve features to views once, then read every (entity, view) from one LMDB
 * snapshot and encode the stored msgpack rows without transcoding them. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "freshet/err.h"
#include "reads.h"
#include "server_int.h"





int fr_read_grow(void **p, size_t *cap, size_t need, size_t elem)
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
    if (fr_read_grow((void **)&g->features, &g->feat_cap, g->nfeatures + 1, sizeof(span_t)))
        return g->rc = FR_E_NOMEM, false;
    span_t *s = &g->features[g->nfeatures++];
    return fr_pb_take_bytes(stream, &s->ptr, &s->len);
}

static bool entity_value_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    ecol_t *col = *arg;
    if (fr_read_grow((void **)&col->values, &col->cap, col->count + 1, sizeof(span_t)))
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

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* RowResult messages written by hand: nanopb's pb_encode_submessage walks the descriptor twice per
 * row (sizing, then encoding); the wire form of these four fields is fixed, so the length is known
 * up front and the stored msgpack bytes are written straight after their header. */
static bool enc_rows_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const get_plan_t *p = *arg;
    uint8_t head[48], body[48]; /* 1+10 (tag, length) and 3 tags + 3 varints + a length */
    for (size_t i = 0; i < p->nrows; i++) {
        const fr_asof_t *a = &p->rows[i];
        if (i + 8 < p->nrows && p->rows[i + 8].values) { /* rows are in the map, often cold */
            const uint8_t *ahead = p->rows[i + 8].values;
            for (size_t off = 0; off < p->rows[i + 8].values_len && off < 256; off += 64)
                __builtin_prefetch(ahead + off);
        }
        size_t n = 0;
        body[n++] = (1 << 3) | PB_WT_VARINT;
        n += put_varint(body + n, (uint32_t)a->status);
        bool values = false;
        if (a->status != FR_STATUS_NOT_FOUND) {
            body[n++] = (2 << 3) | PB_WT_VARINT;
            n += put_varint(body + n, zigzag(a->event_ts_us));
            body[n++] = (3 << 3) | PB_WT_VARINT;
            n += put_varint(body + n, zigzag(a->written_at_us));
            if ((a->status == FR_STATUS_PRESENT || p->include_expired) && a->values) {
                values = true;
                body[n++] = (4 << 3) | PB_WT_STRING;
                n += put_varint(body + n, a->values_len);
            }
        }
        size_t h = 0;
        head[h++] = (uint8_t)((field->tag << 3) | PB_WT_STRING);
        h += put_varint(head + h, n + (values ? a->values_len : 0));
        if (!pb_write(stream, head, h) || !pb_write(stream, body, n) ||
            (values && !pb_write(stream, a->values, a->values_len)))
            return false;
    }
    return true;
}

static bool enc_cached_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    (void)field;
    const cols_cache_t *cc = *arg;
    return pb_write(stream, cc->enc, cc->enc_len);
}

/* Makes cc hold the encoded views and columns of plan p, made by registry reg from g's feature
 * list; re-encodes only when either differs from the cached ones. 0, or -1 (no memory, encoding). */
static int cols_cache_fill(cols_cache_t *cc, fr_registry_t *reg, const get_req_t *g,
                           const get_plan_t *p)
{
    size_t klen = 0;
    for (size_t i = 0; i < g->nfeatures; i++)
        klen += 4 + g->features[i].len;
    if (cc->reg == reg && cc->key_len == klen) {
        size_t off = 0, i = 0;
        for (; i < g->nfeatures; i++) {
            const span_t *f = &g->features[i];
            if (fr_get_be32(cc->key + off) != f->len || memcmp(cc->key + off + 4, f->ptr, f->len))
                break;
            off += 4 + f->len;
        }
        if (i == g->nfeatures)
            return 0;
    }
    cc->key_len = 0; /* invalid until refilled */
    if (fr_read_grow((void **)&cc->key, &cc->key_cap, klen, 1))
        return -1;
    freshet_GetResponse r = freshet_GetResponse_init_zero;
    r.views.funcs.encode = enc_views_cb;
    r.views.arg = (void *)p;
    r.columns.funcs.encode = enc_columns_cb;
    r.columns.arg = (void *)p;
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    if (!pb_encode(&sizing, freshet_GetResponse_fields, &r) ||
        fr_read_grow((void **)&cc->enc, &cc->enc_cap, sizing.bytes_written, 1))
        return -1;
    pb_ostream_t os = pb_ostream_from_buffer(cc->enc, sizing.bytes_written);
    if (!pb_encode(&os, freshet_GetResponse_fields, &r))
        return -1;
    cc->enc_len = os.bytes_written;
    size_t off = 0;
    for (size_t i = 0; i < g->nfeatures; i++) {
        fr_put_be32(cc->key + off, (uint32_t)g->features[i].len);
        memcpy(cc->key + off + 4, g->features[i].ptr, g->features[i].len);
        off += 4 + g->features[i].len;
    }
    cc->key_len = klen;
    if (cc->reg != reg) {
        fr_registry_release(cc->reg);
        cc->reg = fr_registry_ref(reg);
    }
    return 0;
}

/* Resolves features into views and columns, and each view to its entity column. */
int fr_read_plan(get_req_t *g, const fr_registry_t *reg, get_plan_t *p)
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
        if (fr_read_grow((void **)&p->cols, &p->cols_cap, p->ncols + (to - from), sizeof(colref_t)))
            return FR_E_NOMEM;
        for (uint32_t k = from; k < to; k++)
            p->cols[p->ncols++] = (colref_t){(uint16_t)vi, (int)k};
    }
    if (p->nviews == 0) {
        snprintf(g->why, sizeof g->why, "features: empty");
        return FR_E_BAD_REQUEST;
    }
    /* Views named bare expand to all their features: the columns, not the names, are bounded,
     * and a column asked twice is refused (Feast refuses repeated references), since every
     * repetition multiplies a column-major reply such as HTTP's. */
    if (g->w && p->ncols > (size_t)g->w->server->cfg.max_features) {
        snprintf(g->why, sizeof g->why, "features: %zu columns after expanding views, more than "
                 "max_features (%lld)", p->ncols, (long long)g->w->server->cfg.max_features);
        return FR_E_TOO_LARGE;
    }
    uint8_t seen[MAX_GET_VIEWS][FR_VIEW_FEATURES_MAX / 8];
    memset(seen, 0, p->nviews * sizeof seen[0]);
    for (size_t j = 0; j < p->ncols; j++) {
        const colref_t *c = &p->cols[j];
        uint8_t *byte = &seen[c->view][c->index / 8], bit = (uint8_t)(1u << (c->index % 8));
        if (*byte & bit) {
            const fr_view_def_t *v = p->views[c->view];
            snprintf(g->why, sizeof g->why, "features: %s:%s is requested twice", v->name,
                     v->features[c->index].name);
            return FR_E_BAD_REQUEST;
        }
        *byte |= bit;
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

/* Snapshot-export extras of a reply: the entities read and where to continue. */
typedef struct {
    const span_t *entities;
    size_t count;
    const uint8_t *next_cursor;
    size_t next_cursor_len;
    bool done;
    bool present;
} snap_extra_t;

static bool enc_entities_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const snap_extra_t *x = *arg;
    for (size_t i = 0; i < x->count; i++)
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_string(stream, x->entities[i].ptr, x->entities[i].len))
            return false;
    return true;
}

/* Adds the statuses of a finished read to the per-view counters. */
static void fr_stats_view_reads(fr_stats_t *st, const get_plan_t *p)
{
    for (size_t vi = 0; vi < p->nviews; vi++) {
        uint32_t id = p->views[vi]->id;
        if (id >= FR_STATS_VIEWS)
            continue;
        unsigned long long n[3] = {0, 0, 0};
        for (size_t e = 0; e < p->nentities; e++) {
            int status = p->rows[e * p->nviews + vi].status;
            n[status == FR_STATUS_PRESENT ? 0 : status == FR_STATUS_EXPIRED ? 1 : 2]++;
        }
        fr_view_counters_t *vc = &st->views[id];
        atomic_fetch_add_explicit(&vc->present, n[0], memory_order_relaxed);
        atomic_fetch_add_explicit(&vc->expired, n[1], memory_order_relaxed);
        atomic_fetch_add_explicit(&vc->not_found, n[2], memory_order_relaxed);
    }
}

struct fr_read_order {
    uint64_t head; /* entity length (16 bits), then its first 6 bytes: most comparisons end here */
    const uint8_t *ptr;
    uint32_t len, e;
};

static uint64_t order_head(const uint8_t *p, size_t len)
{
    uint64_t h = (uint64_t)len << 48;
    for (size_t i = 0; i < 6 && i < len; i++)
        h |= (uint64_t)p[i] << (40 - 8 * i);
    return h;
}

/* The order of the rows keys: view id, entity length, entity bytes. */
static int order_cmp(const void *a, const void *b)
{
    const struct fr_read_order *x = a, *y = b;
    if (x->head != y->head)
        return x->head < y->head ? -1 : 1;
    int c = x->len > 6 ? memcmp(x->ptr + 6, y->ptr + 6, x->len - 6) : 0;
    return c ? c : (x->e > y->e) - (x->e < y->e);
}

/* Below this many entities a read walks them in request order; above, in key order: consecutive
 * lookups then share the upper B-tree pages (and often the leaf) that the previous one brought
 * into cache, instead of each paying the full walk of cold pages. */
#define FR_READ_SORT_MIN 64

/* Reads every (entity, view) of plan p from the open snapshot rt — as of `as_of`, or of
 * row_as_of[e] per entity when given — and replies. Leaves rt open. */
int fr_read_rows(fr_worker_t *w, get_plan_t *p, fr_rtxn_t *rt, int64_t as_of,
                 const int64_t *row_as_of, unsigned flags)
{
    p->nrows = p->nentities * p->nviews;
    if (fr_read_grow((void **)&p->rows, &p->rows_cap, p->nrows, sizeof(fr_asof_t)) ||
        fr_read_grow((void **)&p->reqs, &p->reqs_cap, p->nentities, sizeof *p->reqs))
        return FR_E_NOMEM;
    bool sorted = p->nentities >= FR_READ_SORT_MIN &&
                  fr_read_grow((void **)&p->order, &p->order_cap, p->nentities,
                               sizeof *p->order) == 0;
    int rc = FR_OK;
    unsigned long long present = 0, expired = 0, missing = 0;
    uint64_t walked0, cursor0, walked1, cursor1;
    fr_rtxn_walk_stats(rt, &walked0, &cursor0);
    for (size_t vi = 0; vi < p->nviews && p->nentities && rc == FR_OK; vi++) {
        const span_t *ents = p->ecol[vi]->values; /* NULL only when there are no entities */
        if (sorted && (vi == 0 || p->ecol[vi] != p->ecol[vi - 1])) { /* views of one key share it */
            for (size_t e = 0; e < p->nentities; e++)
                p->order[e] = (struct fr_read_order){order_head(ents[e].ptr, ents[e].len),
                                                     ents[e].ptr, (uint32_t)ents[e].len,
                                                     (uint32_t)e};
            qsort(p->order, p->nentities, sizeof *p->order, order_cmp);
        }
        for (size_t k = 0; k < p->nentities; k++) {
            size_t e = sorted ? p->order[k].e : k;
            p->reqs[k] = (fr_asof_req_t){ents[e].ptr, ents[e].len,
                                         row_as_of ? row_as_of[e] : as_of,
                                         &p->rows[e * p->nviews + vi]};
        }
        rc = fr_asof_get_many(rt, p->views[vi], p->reqs, p->nentities, flags);
        for (size_t e = 0; e < p->nentities && rc == FR_OK; e++) {
            int status = p->rows[e * p->nviews + vi].status;
            present += status == FR_STATUS_PRESENT;
            expired += status == FR_STATUS_EXPIRED;
            missing += status == FR_STATUS_NOT_FOUND;
        }
    }
    fr_rtxn_walk_stats(rt, &walked1, &cursor1);
    atomic_fetch_add(&w->server->stats.lookups_walked, walked1 - walked0);
    atomic_fetch_add(&w->server->stats.lookups_cursor, cursor1 - cursor0);
    if (rc != FR_OK)
        return rc;
    atomic_fetch_add(&w->server->stats.values_present, present);
    atomic_fetch_add(&w->server->stats.values_expired, expired);
    atomic_fetch_add(&w->server->stats.values_not_found, missing);
    fr_stats_view_reads(&w->server->stats, p);
    return FR_OK;
}

/* Reads plan p from the open snapshot rt (see fr_read_rows) and encodes the reply into w->out,
 * which then holds copies, nothing that points into the map: rt may end before it is sent.
 * FR_OK, or an error with *why. Leaves rt open. */
static int read_and_encode(fr_worker_t *w, const fr_frame_t *f, get_plan_t *p, fr_registry_t *reg,
                           fr_rtxn_t *rt, int64_t as_of, const int64_t *row_as_of, unsigned flags,
                           const snap_extra_t *extra, const char **why)
{
    int rc = fr_read_rows(w, p, rt, as_of, row_as_of, flags);
    if (rc != FR_OK) {
        *why = "read failed";
        return rc;
    }
    freshet_GetResponse r = freshet_GetResponse_init_zero;
    r.has_code = r.has_entity_count = r.has_snapshot_txn = true;
    r.has_as_of_us = row_as_of == NULL;
    r.as_of_us = as_of;
    r.entity_count = (uint32_t)p->nentities;
    r.snapshot_txn = fr_rtxn_id(rt);
    get_scratch_t *sc = w->get_scratch;
    if (sc && cols_cache_fill(&sc->cols, reg, &sc->req, p) == 0) {
        r.views.funcs.encode = enc_cached_cb; /* fields 3 and 4, in that order */
        r.views.arg = &sc->cols;
    } else {
        r.views.funcs.encode = enc_views_cb;
        r.views.arg = p;
        r.columns.funcs.encode = enc_columns_cb;
        r.columns.arg = p;
    }
    r.rows.funcs.encode = enc_rows_cb;
    r.rows.arg = p;
    fr_pb_bytes_t cursor = {0};
    if (extra && extra->present) {
        r.entities.funcs.encode = enc_entities_cb;
        r.entities.arg = (void *)extra;
        r.has_done = true;
        r.done = extra->done;
        if (!extra->done) {
            cursor.ptr = extra->next_cursor;
            cursor.len = extra->next_cursor_len;
            r.next_cursor.funcs.encode = fr_pb_encode_bytes;
            r.next_cursor.arg = &cursor;
        }
    }
    rc = fr_reply_encode(w, f, freshet_GetResponse_fields, &r);
    if (rc != FR_OK)
        *why = "cannot encode the reply";
    return rc;
}

get_scratch_t *fr_read_scratch(fr_worker_t *w)
{
    if (!w->get_scratch)
        w->get_scratch = calloc(1, sizeof(get_scratch_t));
    get_scratch_t *sc = w->get_scratch; /* reused: no malloc per request once warm */
    if (sc) {
        sc->req.w = w;
        sc->req.rc = FR_OK;
        sc->req.why[0] = 0;
        sc->req.nfeatures = sc->req.ncols = sc->req.nas_of = 0;
    }
    return sc;
}

/* Decodes a Get/Export body into msg with g's callbacks; on failure replies with the decoder's
 * reason (or the limit g recorded) and returns false. */
static bool decode_read_request(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f,
                                const uint8_t *body, const pb_msgdesc_t *fields, void *msg,
                                const get_req_t *g)
{
    pb_istream_t is = fr_pb_istream(body, f->body_len);
    if (pb_decode(&is, fields, msg) && g->rc == FR_OK)
        return true;
    fr_reply_error(w, c, f, g->rc != FR_OK ? g->rc : FR_E_BAD_REQUEST,
                   g->why[0] ? g->why : fr_pb_why(&is));
    return false;
}

void fr_handle_get(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    get_scratch_t *scratch = fr_read_scratch(w);
    if (!scratch) {
        fr_reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    get_req_t *g = &scratch->req;
    get_plan_t *p = &scratch->plan;
    freshet_GetRequest req = freshet_GetRequest_init_zero;
    req.features.funcs.decode = get_feature_cb;
    req.features.arg = g;
    req.entities.funcs.decode = get_entities_cb;
    req.entities.arg = g;
    if (!decode_read_request(w, c, f, body, freshet_GetRequest_fields, &req, g))
        return;
    fr_registry_t *reg = fr_store_registry(w->server->store);
    int rc = fr_read_plan(g, reg, p);
    if (rc != FR_OK) {
        fr_reply_error(w, c, f, rc, g->why);
        fr_registry_release(reg);
        return;
    }
    unsigned flags = req.has_served && req.served ? FR_ASOF_SERVED : 0;
    p->include_expired = req.has_include_expired && req.include_expired;
    rc = fr_rtxn_begin(w->rtxn);
    /* "now" is read after the snapshot opens, and reads filter like served exports, so a served
     * export at this as_of reproduces this reply exactly (fr_store_read_now) */
    int64_t as_of = req.has_as_of_us ? req.as_of_us : fr_store_read_now(w->rtxn);
    if (!req.has_as_of_us)
        flags |= FR_ASOF_SERVED;
    const char *why = "cannot open a read snapshot";
    if (rc == FR_OK)
        rc = read_and_encode(w, f, p, reg, w->rtxn, as_of, NULL, flags, NULL, &why);
    if (rc == FR_OK)
        fr_conn_send(c, &w->out);
    else
        fr_reply_error(w, c, f, rc, why);
    fr_rtxn_reset(w->rtxn); /* row values pointed into the map until the reply was encoded */
    fr_registry_release(reg);
}

/* ---- Export ---- */

static bool asof_list_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    get_req_t *g = *arg;
    while (stream->bytes_left) {
        int64_t v;
        if (!pb_decode_svarint(stream, &v))
            return false;
        if (g->nas_of >= (size_t)g->w->server->cfg.max_entities) {
            g->rc = FR_E_TOO_LARGE;
            snprintf(g->why, sizeof g->why, "as_of_us: more than max_entities (%lld) rows",
                     (long long)g->w->server->cfg.max_entities);
            return false;
        }
        if (fr_read_grow((void **)&g->as_of, &g->as_of_cap, g->nas_of + 1, sizeof(int64_t)))
            return g->rc = FR_E_NOMEM, false;
        g->as_of[g->nas_of++] = v;
    }
    return true;
}

static int collect_entity_cb(void *ctx, const uint8_t *entity, size_t len)
{
    ecol_t *col = ctx;
    if (fr_read_grow((void **)&col->values, &col->cap, col->count + 1, sizeof(span_t)))
        return 1;
    col->values[col->count++] = (span_t){entity, len};
    return 0;
}

/* The connection's pinned export snapshot, opened by its first export chunk. Each one holds an
 * LMDB reader slot until the export ends, so they are capped (fr_server_pin_take): past the cap
 * an export is refused with BUSY, before it could take a slot the checkpointer, a backup or a
 * worker needs. */
static int export_snapshot(fr_worker_t *w, fr_conn_t *c, fr_rtxn_t **out, const char **why)
{
    fr_server_t *s = w->server;
    if (!c->export_rtxn) {
        if (!fr_server_pin_take(s, false)) {
            *why = fr_server_pin_refused(s, "too many exports at once");
            return FR_E_BUSY;
        }
        int rc = fr_rtxn_new(s->store, &c->export_rtxn);
        if (rc == FR_OK)
            rc = fr_rtxn_begin(c->export_rtxn);
        if (rc != FR_OK) {
            fr_rtxn_free(c->export_rtxn);
            c->export_rtxn = NULL;
            fr_server_pin_give(s);
            *why = rc == FR_E_BUSY ? fr_server_pin_refused(s, "cannot open the export snapshot: "
                                                              "no free LMDB reader slot")
                                   : "cannot open the export snapshot";
            return rc;
        }
    }
    *out = c->export_rtxn;
    return FR_OK;
}

void fr_conn_export_end(fr_conn_t *c)
{
    if (!c->export_rtxn)
        return;
    fr_rtxn_reset(c->export_rtxn);
    fr_rtxn_free(c->export_rtxn);
    c->export_rtxn = NULL;
    fr_server_pin_give(c->worker->server);
}

static int plan_snapshot(get_req_t *g, get_plan_t *p, const fr_registry_t *reg, fr_rtxn_t *rt,
                         const freshet_ExportRequest *req, snap_extra_t *x)
{
    /* the first feature's view names the entities; every view must share its join key */
    const fr_view_def_t *v0;
    int idx;
    if (g->nfeatures == 0)
        return snprintf(g->why, sizeof g->why, "features: empty"), FR_E_BAD_REQUEST;
    int rc = fr_registry_resolve(reg, (const char *)g->features[0].ptr, g->features[0].len, &v0, &idx);
    if (rc != FR_OK)
        return snprintf(g->why, sizeof g->why, "features[0]: unknown view or feature"), rc;
    ecol_t *col = &g->cols[0];
    col->count = 0;
    col->join_key[0] = 0;
    g->ncols = 1;
    size_t limit = req->has_limit && req->limit ? req->limit : 1000;
    if (limit > (size_t)g->w->server->cfg.max_entities)
        limit = (size_t)g->w->server->cfg.max_entities;
    bool more = false;
    const uint8_t *after = req->has_cursor ? req->cursor.bytes : NULL;
    rc = fr_store_entities_each(rt, v0->id, after, req->has_cursor ? req->cursor.size : 0, limit,
                                collect_entity_cb, col, &more);
    if (rc != FR_OK)
        return snprintf(g->why, sizeof g->why, "entity scan failed"), rc;
    rc = fr_read_plan(g, reg, p);
    if (rc != FR_OK)
        return rc;
    for (size_t vi = 0; vi < p->nviews; vi++)
        if (strcmp(p->views[vi]->join_key, v0->join_key) != 0)
            return snprintf(g->why, sizeof g->why,
                            "features: a snapshot reads views of one entity; %.64s and %.64s have "
                            "different join keys",
                            v0->name, p->views[vi]->name),
                   FR_E_BAD_REQUEST;
    x->present = true;
    x->entities = col->values;
    x->count = col->count;
    x->done = !more;
    if (more && col->count) {
        x->next_cursor = col->values[col->count - 1].ptr;
        x->next_cursor_len = col->values[col->count - 1].len;
    }
    return FR_OK;
}

void fr_handle_export(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    get_scratch_t *scratch = fr_read_scratch(w);
    if (!scratch) {
        fr_reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    get_req_t *g = &scratch->req;
    get_plan_t *p = &scratch->plan;
    freshet_ExportRequest req = freshet_ExportRequest_init_zero;
    req.features.funcs.decode = get_feature_cb;
    req.features.arg = g;
    req.entities.funcs.decode = get_entities_cb;
    req.entities.arg = g;
    req.as_of_us.funcs.decode = asof_list_cb;
    req.as_of_us.arg = g;
    if (!decode_read_request(w, c, f, body, freshet_ExportRequest_fields, &req, g))
        return;
    fr_rtxn_t *rt;
    const char *pin_why = NULL;
    int rc = export_snapshot(w, c, &rt, &pin_why);
    if (rc != FR_OK) {
        fr_reply_error(w, c, f, rc, pin_why);
        return;
    }
    fr_registry_t *reg = fr_store_registry(w->server->store);
    unsigned flags = req.has_served && req.served ? FR_ASOF_SERVED : 0;
    p->include_expired = req.has_include_expired && req.include_expired;
    snap_extra_t extra = {0};
    const char *why = g->why;
    if (req.kind == freshet_ExportKind_EXPORT_PIT) {
        rc = fr_read_plan(g, reg, p);
        if (rc == FR_OK && g->nas_of != p->nentities) {
            snprintf(g->why, sizeof g->why, "as_of_us: %zu times for %zu label rows", g->nas_of,
                     p->nentities);
            rc = FR_E_BAD_REQUEST;
        }
        if (rc == FR_OK)
            rc = read_and_encode(w, f, p, reg, rt, 0, g->as_of, flags, NULL, &why);
    } else if (req.kind == freshet_ExportKind_EXPORT_SNAPSHOT) {
        int64_t as_of = req.has_snapshot_as_of_us ? req.snapshot_as_of_us
                                                  : fr_clock_now(w->server->clock);
        rc = plan_snapshot(g, p, reg, rt, &req, &extra);
        if (rc == FR_OK)
            rc = read_and_encode(w, f, p, reg, rt, as_of, NULL, flags, &extra, &why);
    } else {
        snprintf(g->why, sizeof g->why, "kind: expected EXPORT_PIT or EXPORT_SNAPSHOT");
        rc = FR_E_BAD_REQUEST;
    }
    /* An export that ends gives its snapshot's reader slot back before its last reply is sent
     * (the reply may leave at once: fr_loop_conn_send writes directly), so a client holding that
     * reply can start the next export, on any connection, without a BUSY. */
    if (rc != FR_OK || (req.has_end && req.end))
        fr_conn_export_end(c);
    if (rc == FR_OK)
        fr_conn_send(c, &w->out);
    else
        fr_reply_error(w, c, f, rc, why);
    fr_registry_release(reg);
}

void fr_handle_scratch_free(fr_worker_t *w)
{
    get_scratch_t *sc = w->get_scratch;
    if (!sc)
        return;
    for (size_t i = 0; i < MAX_ECOLS; i++)
        free(sc->req.cols[i].values);
    free(sc->req.features);
    free(sc->req.as_of);
    free(sc->plan.cols);
    free(sc->plan.rows);
    free(sc->plan.order);
    free(sc->plan.reqs);
    fr_registry_release(sc->cols.reg);
    free(sc->cols.key);
    free(sc->cols.enc);
    free(sc);
    w->get_scratch = NULL;
}
