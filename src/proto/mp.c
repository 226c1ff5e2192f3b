/* Minimal msgpack reader (spec: msgpack.org, "formats") for row payloads; packing via msgpack-c. */
#include <string.h>

#include "common/buf.h"
#include "mp.h"

static int need(const fr_mp_reader_t *r, size_t n) { return (size_t)(r->end - r->p) >= n ? 0 : -1; }

static int take_len(fr_mp_reader_t *r, unsigned width, uint32_t *len)
{
    if (need(r, width))
        return -1;
    if (width == 1)
        *len = r->p[0];
    else if (width == 2)
        *len = fr_get_be16(r->p);
    else
        *len = fr_get_be32(r->p);
    r->p += width;
    return 0;
}

static int take_bytes(fr_mp_reader_t *r, fr_mp_item_t *it, fr_mp_kind_t kind, uint32_t len)
{
    if (need(r, len))
        return -1;
    it->kind = kind;
    it->count = len;
    it->v.ptr = r->p;
    r->p += len;
    return 0;
}

/* An ext item's type byte and `len` data bytes: a packed run, or unsupported. */
static int take_run(fr_mp_reader_t *r, fr_mp_item_t *it, uint32_t len)
{
    if (need(r, 1))
        return -1;
    uint8_t type = *r->p++;
    unsigned width = type == FR_MP_EXT_F32RUN ? 4 : type == FR_MP_EXT_F64RUN ? 8 : 0;
    if (!width || len == 0 || len % width || take_bytes(r, it, FR_MP_BIN, len))
        return -1;
    it->kind = width == 4 ? FR_MP_RUN32 : FR_MP_RUN64;
    it->count = len / width;
    return 0;
}

int fr_mp_next(fr_mp_reader_t *r, fr_mp_item_t *it)
{
    if (need(r, 1))
        return -1;
    uint8_t c = *r->p++;
    uint32_t len;
    if (c <= 0x7f) {
        it->kind = FR_MP_INT;
        it->v.i = c;
        return 0;
    }
    if (c >= 0xe0) {
        it->kind = FR_MP_INT;
        it->v.i = (int8_t)c;
        return 0;
    }
    if ((c & 0xe0) == 0xa0)
        return take_bytes(r, it, FR_MP_STR, c & 0x1fu);
    if ((c & 0xf0) == 0x90) {
        it->kind = FR_MP_ARRAY;
        it->count = c & 0x0fu;
        return 0;
    }
    switch (c) {
    case 0xc0:
        it->kind = FR_MP_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        it->kind = FR_MP_BOOL;
        it->v.b = c == 0xc3;
        return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        if (take_len(r, 1u << (c - 0xc4), &len))
            return -1;
        return take_bytes(r, it, FR_MP_BIN, len);
    case 0xd9:
    case 0xda:
    case 0xdb:
        if (take_len(r, 1u << (c - 0xd9), &len))
            return -1;
        return take_bytes(r, it, FR_MP_STR, len);
    case 0xdc:
    case 0xdd:
        if (take_len(r, c == 0xdc ? 2 : 4, &len))
            return -1;
        it->kind = FR_MP_ARRAY;
        it->count = len;
        return 0;
    case 0xca: {
        if (need(r, 4))
            return -1;
        uint32_t bits = fr_get_be32(r->p);
        r->p += 4;
        it->kind = FR_MP_F32;
        memcpy(&it->v.f32, &bits, 4);
        return 0;
    }
    case 0xcb: {
        if (need(r, 8))
            return -1;
        uint64_t bits = fr_get_be64(r->p);
        r->p += 8;
        it->kind = FR_MP_F64;
        memcpy(&it->v.f64, &bits, 8);
        return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        unsigned w = 1u << (c - 0xcc);
        if (need(r, w))
            return -1;
        uint64_t u = 0;
        for (unsigned i = 0; i < w; i++)
            u = (u << 8) | r->p[i];
        r->p += w;
        if (u > (uint64_t)INT64_MAX) {
            it->kind = FR_MP_UINT;
            it->v.u = u;
        } else {
            it->kind = FR_MP_INT;
            it->v.i = (int64_t)u;
        }
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        unsigned w = 1u << (c - 0xd0);
        if (need(r, w))
            return -1;
        uint64_t u = 0;
        for (unsigned i = 0; i < w; i++)
            u = (u << 8) | r->p[i];
        r->p += w;
        /* sign-extend from w bytes */
        if (w < 8 && (u >> (w * 8 - 1)) & 1)
            u |= ~0ULL << (w * 8);
        it->kind = FR_MP_INT;
        memcpy(&it->v.i, &u, 8);
        return 0;
    }
    case 0xd6: case 0xd7: case 0xd8: /* fixext 4, 8, 16 */
        return take_run(r, it, 1u << (c - 0xd4));
    case 0xc7: case 0xc8: case 0xc9: /* ext 8, 16, 32 */
        if (take_len(r, 1u << (c - 0xc7), &len))
            return -1;
        return take_run(r, it, len);
    default:
        return -1; /* maps, fixext 1/2, never-used 0xc1 */
    }
}

int fr_mp_next_float(fr_mp_reader_t *r, float *out)
{
    fr_mp_item_t it;
    if (fr_mp_next(r, &it))
        return -1;
    switch (it.kind) {
    case FR_MP_F32:
        *out = it.v.f32;
        return 0;
    case FR_MP_F64:
        *out = (float)it.v.f64;
        return 0;
    case FR_MP_INT:
        *out = (float)it.v.i;
        return 0;
    default:
        return -1;
    }
}

int fr_mp_pack_value(msgpack_packer *pk, const fr_value_t *v)
{
    switch (v->type) {
    case FR_TYPE_NONE:
        return msgpack_pack_nil(pk);
    case FR_TYPE_INT64:
        return msgpack_pack_int64(pk, v->u.i64);
    case FR_TYPE_DOUBLE:
        return msgpack_pack_double(pk, v->u.f64);
    case FR_TYPE_FLOAT:
        return msgpack_pack_float(pk, v->u.f32);
    case FR_TYPE_BOOL:
        return v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case FR_TYPE_STRING:
        if (msgpack_pack_str(pk, v->len))
            return -1;
        return msgpack_pack_str_body(pk, v->u.str, v->len);
    case FR_TYPE_BYTES:
        if (msgpack_pack_bin(pk, v->len))
            return -1;
        return msgpack_pack_bin_body(pk, v->u.bytes, v->len);
    case FR_TYPE_FLOAT_LIST:
        if (msgpack_pack_array(pk, v->len))
            return -1;
        for (uint32_t i = 0; i < v->len; i++) {
            float f;
            memcpy(&f, (const uint8_t *)v->u.floats + i * sizeof f, sizeof f);
            if (msgpack_pack_float(pk, f))
                return -1;
        }
        return 0;
    }
    return -1;
}

int fr_mp_row_open(fr_mp_row_t *row, const uint8_t *p, size_t len)
{
    fr_mp_item_t it;
    memset(row, 0, sizeof *row);
    fr_mp_reader_init(&row->r, p, len);
    if (fr_mp_next(&row->r, &it) || it.kind != FR_MP_ARRAY)
        return -1;
    row->items = it.count;
    return 0;
}

int fr_mp_row_next_item(fr_mp_row_t *row, fr_mp_item_t *it)
{
    if (row->items == 0)
        return 1;
    row->items--;
    if (fr_mp_next(&row->r, it))
        return -1;
    switch (it->kind) {
    case FR_MP_RUN32:
    case FR_MP_RUN64:
        row->run = it->v.ptr;
        row->run_left = it->count; /* ≥ 1: fr_mp_next refuses empty runs */
        row->run_kind = it->kind == FR_MP_RUN32 ? FR_MP_F32 : FR_MP_F64;
        return fr_mp_row_next(row, it);
    case FR_MP_ARRAY: {
        it->v.ptr = row->r.p;
        fr_mp_item_t el; /* one item each; what they may be is the caller's check */
        for (uint32_t i = 0; i < it->count; i++)
            if (fr_mp_next(&row->r, &el))
                return -1;
        return 0;
    }
    default:
        return 0;
    }
}

static int64_t row_cells(const uint8_t *p, size_t len, bool typed)
{
    fr_mp_row_t row;
    fr_mp_item_t it;
    if (fr_mp_row_open(&row, p, len))
        return -1;
    int64_t n = 0;
    int rc;
    while ((rc = fr_mp_row_next_item(&row, &it)) == 0) {
        n += 1 + row.run_left; /* a run counts whole, without being expanded */
        row.run_left = 0;
        if (typed && it.kind == FR_MP_UINT)
            return -1;
        if (typed && it.kind == FR_MP_ARRAY) { /* its elements are behind the reader already */
            fr_mp_reader_t rd;
            float f;
            fr_mp_reader_init(&rd, it.v.ptr, (size_t)(row.r.p - it.v.ptr));
            for (uint32_t k = 0; k < it.count; k++)
                if (fr_mp_next_float(&rd, &f))
                    return -1;
        }
    }
    return rc > 0 && row.r.p == row.r.end ? n : -1;
}

int64_t fr_mp_row_cells(const uint8_t *p, size_t len) { return row_cells(p, len, false); }

int64_t fr_mp_row_cells_typed(const uint8_t *p, size_t len) { return row_cells(p, len, true); }

/* An array header for n items at o; returns its size. */
static size_t put_array_header(uint8_t *o, uint32_t n)
{
    if (n < 16) {
        o[0] = (uint8_t)(0x90 | n);
        return 1;
    }
    if (n <= UINT16_MAX) {
        o[0] = 0xdc;
        fr_put_be16(o + 1, (uint16_t)n);
        return 3;
    }
    o[0] = 0xdd;
    fr_put_be32(o + 1, n);
    return 5;
}

/* The size of the smallest ext header for `len` data bytes. */
static size_t ext_header_size(size_t len)
{
    if (len == 4 || len == 8 || len == 16)
        return 2;
    return len <= UINT8_MAX ? 3 : len <= UINT16_MAX ? 4 : 6;
}

static size_t put_ext_header(uint8_t *o, uint32_t len, uint8_t type)
{
    size_t n;
    if (len == 4 || len == 8 || len == 16) {
        o[0] = len == 4 ? 0xd6 : len == 8 ? 0xd7 : 0xd8;
        n = 1;
    } else if (len <= UINT8_MAX) {
        o[0] = 0xc7;
        o[1] = (uint8_t)len;
        n = 2;
    } else if (len <= UINT16_MAX) {
        o[0] = 0xc8;
        fr_put_be16(o + 1, (uint16_t)len);
        n = 3;
    } else {
        o[0] = 0xc9;
        fr_put_be32(o + 1, len);
        n = 5;
    }
    o[n] = type;
    return n + 1;
}

size_t fr_mp_pack_runs(const uint8_t *in, size_t len, uint8_t *out)
{
    fr_mp_reader_t r;
    fr_mp_item_t it;
    fr_mp_reader_init(&r, in, len);
    if (fr_mp_next(&r, &it) || it.kind != FR_MP_ARRAY)
        return 0;
    /* Items go after room for the input's header (the output's is never longer: it counts no
     * more items), and every item or run written is no longer than what it replaces, so the
     * output never overtakes the input's length. */
    size_t hdr = (size_t)(r.p - in);
    uint8_t *o = out + hdr;
    const uint8_t *p = r.p, *end = in + len;
    uint32_t items = it.count, out_items = 0;
    for (uint32_t i = 0; i < items;) {
        uint8_t tag = p < end ? *p : 0;
        if (tag == 0xca || tag == 0xcb) {
            size_t w = tag == 0xca ? 4 : 8, step = w + 1, k = 0;
            while (i + k < items && (size_t)(end - p) >= (k + 1) * step && p[k * step] == tag)
                k++;
            size_t data = k * w;
            if (k && data <= UINT32_MAX && ext_header_size(data) + data < k * step) {
                o += put_ext_header(o, (uint32_t)data,
                                    tag == 0xca ? FR_MP_EXT_F32RUN : FR_MP_EXT_F64RUN);
                for (size_t j = 0; j < k; j++, o += w) {
                    const uint8_t *src = p + j * step + 1;
                    if (w == 4)
                        fr_put_le32(o, fr_get_be32(src));
                    else
                        fr_put_le64(o, fr_get_be64(src));
                }
                p += k * step;
                i += (uint32_t)k;
                out_items++;
                continue;
            }
            if (k) { /* too short to gain: copied as they are */
                memcpy(o, p, k * step);
                o += k * step;
                p += k * step;
                i += (uint32_t)k;
                out_items += (uint32_t)k;
                continue;
            }
        }
        const uint8_t *start = p;
        r.p = p;
        if (fr_mp_next(&r, &it))
            return 0;
        fr_mp_item_t el;
        for (uint32_t e = 0; it.kind == FR_MP_ARRAY && e < it.count; e++)
            if (fr_mp_next(&r, &el) || el.kind >= FR_MP_ARRAY)
                return 0;
        memcpy(o, start, (size_t)(r.p - start));
        o += r.p - start;
        p = r.p;
        i++;
        out_items++;
    }
    if (p != end)
        return 0;
    uint8_t h[5];
    size_t hn = put_array_header(h, out_items), body = (size_t)(o - (out + hdr));
    memmove(out + hn, out + hdr, body);
    memcpy(out, h, hn);
    return hn + body;
}
