/* Fuzz target for the msgpack reader: reading item after item until an error or the end never
 * reads outside the input (ASan), always makes progress, and string/binary/run items lie inside
 * the input. The input is also walked as a row, cell by cell (runs expanded), which must agree
 * with the cell counter. A last pass reads every item as a float the way float_list elements are
 * read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_mp_reader_t r;
    fr_mp_item_t it;
    fr_mp_reader_init(&r, data, size);
    const uint8_t *end = data + size;
    while (r.p < end) {
        const uint8_t *before = r.p;
        if (fr_mp_next(&r, &it) != 0) {
            CHECK(r.p >= before && r.p <= end);
            break;
        }
        CHECK(r.p > before && r.p <= end);
        switch (it.kind) {
        case FR_MP_STR:
        case FR_MP_BIN:
            CHECK(it.v.ptr >= data && it.v.ptr + it.count == r.p);
            break;
        case FR_MP_RUN32:
        case FR_MP_RUN64:
            CHECK(it.count > 0);
            CHECK(it.v.ptr >= data &&
                  it.v.ptr + (size_t)it.count * (it.kind == FR_MP_RUN32 ? 4 : 8) == r.p);
            break;
        case FR_MP_UINT:
            CHECK(it.v.u > (uint64_t)INT64_MAX);
            break;
        case FR_MP_NIL: case FR_MP_BOOL: case FR_MP_INT: case FR_MP_F32: case FR_MP_F64:
        case FR_MP_ARRAY:
            break;
        default:
            CHECK(!"unknown kind");
        }
    }
    /* as a row: the cell reader and the cell counter agree, and stay inside the input */
    fr_mp_row_t row;
    if (fr_mp_row_open(&row, data, size) == 0) {
        int64_t cells = 0;
        int rc;
        while ((rc = fr_mp_row_next(&row, &it)) == 0) {
            CHECK(row.r.p <= end);
            CHECK(it.kind != FR_MP_RUN32 && it.kind != FR_MP_RUN64);
            cells++;
        }
        int64_t counted = fr_mp_row_cells(data, size);
        if (rc == 1 && row.r.p == end)
            CHECK(counted == cells);
        else
            CHECK(counted == -1);
    }
    fr_mp_reader_init(&r, data, size);
    float f;
    while (r.p < end) {
        const uint8_t *before = r.p;
        if (fr_mp_next_float(&r, &f) != 0)
            break;
        CHECK(r.p > before && r.p <= end);
    }
    return 0;
}
