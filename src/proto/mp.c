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
    default:
        return -1; /* maps, ext, never-used 0xc1 */
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
