/* A bounded, allocation-free msgpack reader for row payloads, and the packer side on msgpack-c.
 *
 * Row payloads (DESIGN.md, "Storage layout") are a msgpack array of values in schema order: one
 * cell per feature, features added later absent. The server validates them on ingest, stores them
 * packed (fr_mp_pack_runs) and never decodes them on reads; clients walk cells with fr_mp_row_next.
 *
 * Packed runs. A stretch of consecutive float32 (or float64) cells may be one msgpack ext item of
 * type FR_MP_EXT_F32RUN (FR_MP_EXT_F64RUN) whose data is the n values as little-endian IEEE-754,
 * 4 (8) bytes each; it stands for n cells. A row of 50 float32 features takes 204 bytes instead of
 * 253, and a reader loads them instead of decoding 50 items. The run's values are little-endian
 * (unlike msgpack's own big-endian floats) so that numpy and x86 read them as they are. A payload
 * stays valid msgpack: generic decoders see ext items (the Python client expands them).
 *
 * The reader never reads past `end`, never recurses and rejects maps, other ext types and arrays
 * nested deeper than one level (float_list is the only array). */
#ifndef FR_PROTO_MP_H
#define FR_PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "common/buf.h"
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
    /* containers and runs last: `kind >= FR_MP_ARRAY` is "not a scalar" */
    FR_MP_ARRAY, /* header only: `count` elements follow */
    FR_MP_RUN32, /* packed run: `count` little-endian float32 at v.ptr (fr_mp_row_next expands) */
    FR_MP_RUN64, /* packed run: `count` little-endian float64 at v.ptr */
} fr_mp_kind_t;

/* msgpack ext type codes of packed runs. */
#define FR_MP_EXT_F32RUN 1
#define FR_MP_EXT_F64RUN 2

typedef struct {
    fr_mp_kind_t kind;
    uint32_t count; /* STR/BIN: byte length; ARRAY: element count; RUN32/RUN64: value count */
    union {
        bool b;
        int64_t i;
        uint64_t u;
        float f32;
        double f64;
        const uint8_t *ptr; /* STR/BIN/RUN bytes, inside the buffer */
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

/* Reads the next item. Returns 0, or -1 on truncated, malformed or unsupported input (maps, ext
 * other than a non-empty run whose length is a multiple of its value size). */
int fr_mp_next(fr_mp_reader_t *r, fr_mp_item_t *it);

/* Reads a float element (F32, F64 or INT) as float. Returns 0 or -1. */
int fr_mp_next_float(fr_mp_reader_t *r, float *out);

/* A row payload walked cell by cell, runs expanded. */
typedef struct {
    fr_mp_reader_t r;   /* after the current item */
    uint32_t items;     /* array items not yet read */
    uint32_t run_left;  /* cells left in the current run */
    const uint8_t *run; /* the next of them */
    fr_mp_kind_t run_kind;
} fr_mp_row_t;

/* Starts a row payload. Returns 0, or -1 unless it begins with an array header. */
int fr_mp_row_open(fr_mp_row_t *row, const uint8_t *p, size_t len);

int fr_mp_row_next_item(fr_mp_row_t *row, fr_mp_item_t *it); /* fr_mp_row_next's slow path */

/* The next cell: 0, 1 at the end of the row, -1 if malformed. A run's cells come back as F32 or
 * F64 items. A FLOAT_LIST cell comes back as its ARRAY header with v.ptr at its first element
 * (read them with a reader from there, up to the row's end); the row reader has skipped them. */
/* One value of a packed run: kind F32 or F64, read from its little-endian bytes at p. Returns
 * its size in bytes. */
static inline size_t fr_mp_run_value(fr_mp_kind_t kind, const uint8_t *p, fr_mp_item_t *it)
{
    it->kind = kind;
    if (kind == FR_MP_F32) {
        uint32_t bits = fr_get_le32(p);
        memcpy(&it->v.f32, &bits, 4);
        return 4;
    }
    uint64_t bits = fr_get_le64(p);
    memcpy(&it->v.f64, &bits, 8);
    return 8;
}

static inline int fr_mp_row_next(fr_mp_row_t *row, fr_mp_item_t *it)
{
    if (row->run_left) {
        row->run_left--;
        row->run += fr_mp_run_value(row->run_kind, row->run, it);
        return 0;
    }
    return fr_mp_row_next_item(row, it);
}

/* The number of cells in a row payload (runs counted by their values), or -1 if malformed. */
int64_t fr_mp_row_cells(const uint8_t *p, size_t len);
/* The same, and -1 also for a cell no Freshet type holds: an integer beyond int64, a list with an
 * element that is not a number (what a client checks a reply's rows against). */
int64_t fr_mp_row_cells_typed(const uint8_t *p, size_t len);

/* Rewrites a row payload with every stretch of consecutive float32 (float64) cells that gets
 * shorter as a run packed into one; other items, and runs already packed, are copied as they are.
 * Deterministic, and never longer: `out` must hold `len` bytes and not overlap `in`. Returns the
 * packed length, or 0 if the payload is not a well-formed row (check it first:
 * fr_store_check_row). */
size_t fr_mp_pack_runs(const uint8_t *in, size_t len, uint8_t *out);

/* Packs one value of the given feature type. A value with type FR_TYPE_NONE packs nil.
 * INT64 packs an int, DOUBLE a float64, FLOAT a float32, FLOAT_LIST an array of float32. */
int fr_mp_pack_value(msgpack_packer *pk, const fr_value_t *v);

#endif
