/* A bounded, allocation-free msgpack reader for row payloads, and the packer side on msgpack-c.
 *
 * Row payloads (DESIGN.md, "Storage layout") are a msgpack array of values in schema order. The
 * server validates them on ingest and never decodes them on reads; clients decode cells with
 * fr_mp_next. The reader never reads past `end`, never recurses and rejects maps, ext types and
 * arrays nested deeper than one level (float_list is the only array). */
#ifndef FR_PROTO_MP_H
#define FR_PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "freshet/types.h"

typedef enum {
    FR_MP_NIL,
    FR_MP_BOOL,
    FR_MP_INT,   /* fits int64 */
    FR_MP_UINT,  /* > INT64_MAX */
    FR_MP_F32,
    FR_MP_F64,
    FR_MP_STR,
    FR_MP_BIN,
    FR_MP_ARRAY, /* header only: `count` elements follow */
} fr_mp_kind_t;

typedef struct {
    fr_mp_kind_t kind;
    uint32_t count; /* STR/BIN: byte length; ARRAY: element count */
    union {
        bool b;
        int64_t i;
        uint64_t u;
        float f32;
        double f64;
        const uint8_t *ptr; /* STR/BIN bytes, inside the buffer */
    } v;
} fr_mp_item_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} fr_mp_reader_t;

static inline void fr_mp_reader_init(fr_mp_reader_t *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p + len;
}

/* Reads the next item. Returns 0, or -1 on truncated, malformed or unsupported input (maps, ext). */
int fr_mp_next(fr_mp_reader_t *r, fr_mp_item_t *it);

/* Reads a float element (F32, F64 or INT) as float. Returns 0 or -1. */
int fr_mp_next_float(fr_mp_reader_t *r, float *out);

/* Packs one value of the given feature type. A value with type FR_TYPE_NONE packs nil.
 * INT64 packs an int, DOUBLE a float64, FLOAT a float32, FLOAT_LIST an array of float32. */
int fr_mp_pack_value(msgpack_packer *pk, const fr_value_t *v);

#endif
