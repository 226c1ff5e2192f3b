/* Fuzz target for row validation: the input is a row payload checked against a fixed view with one
 * feature of every type. fr_store_check_row must never crash, must give a reason on failure, and a
 * payload it accepts must be exactly one array of at most feature_count values that the plain
 * reader can walk to the end, and its stored form (fr_mp_pack_runs) must be accepted too and hold
 * the same cells. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "fuzz_check.h"
#include "proto/mp.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fr_feature_def_t features[] = {
    {"i", FR_TYPE_INT64, 0},      {"d", FR_TYPE_DOUBLE, 0},  {"f", FR_TYPE_FLOAT, 0},
    {"b", FR_TYPE_BOOL, 0},       {"s", FR_TYPE_STRING, 0},  {"y", FR_TYPE_BYTES, 0},
    {"emb", FR_TYPE_FLOAT_LIST, 3}, {"list", FR_TYPE_FLOAT_LIST, 0},
};
static fr_view_def_t view = {.id = 1, .name = "all_types", .entity = "user",
                             .feature_count = sizeof features / sizeof features[0],
                             .features = features};

/* Skips one item (an array counts its elements, one level deep; a run is one item). */
static int skip_value(fr_mp_reader_t *r)
{
    fr_mp_item_t it;
    if (fr_mp_next(r, &it))
        return -1;
    if (it.kind == FR_MP_ARRAY)
        for (uint32_t i = 0; i < it.count; i++)
            if (fr_mp_next(r, &it) || it.kind == FR_MP_ARRAY)
                return -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX)
        return 0;
    const int64_t now = 1795860000000000LL;
    fr_write_row_t row = {.view = &view, .entity = (const uint8_t *)"u1", .entity_len = 2,
                          .event_ts_us = now, .values = data, .values_len = (uint32_t)size};
    const char *why = NULL;
    int rc = fr_store_check_row(&row, now, 300000000, &why);
    if (rc != FR_OK) {
        CHECK(rc == FR_E_BAD_REQUEST || rc == FR_E_TYPE_MISMATCH || rc == FR_E_TOO_LARGE);
        CHECK(why != NULL && why[0] != 0);
        return 0;
    }
    fr_mp_reader_t r;
    fr_mp_item_t it;
    fr_mp_reader_init(&r, data, size);
    CHECK(fr_mp_next(&r, &it) == 0 && it.kind == FR_MP_ARRAY);
    CHECK(it.count <= view.feature_count);
    for (uint32_t i = 0; i < it.count; i++)
        CHECK(skip_value(&r) == 0);
    CHECK(r.p == r.end);
    int64_t cells = fr_mp_row_cells(data, size);
    CHECK(cells >= 0 && cells <= (int64_t)view.feature_count);
    /* the stored form: packed, no longer, accepted again, the same cells in the same order */
    uint8_t *packed = malloc(size ? size : 1);
    CHECK(packed != NULL);
    size_t n = fr_mp_pack_runs(data, size, packed);
    CHECK(n > 0 && n <= size);
    row.values = packed;
    row.values_len = (uint32_t)n;
    CHECK(fr_store_check_row(&row, now, 300000000, &why) == FR_OK);
    CHECK(fr_mp_row_cells(packed, n) == cells);
    fr_mp_row_t a, b;
    CHECK(fr_mp_row_open(&a, data, size) == 0 && fr_mp_row_open(&b, packed, n) == 0);
    for (;;) {
        fr_mp_item_t x, y;
        int ra = fr_mp_row_next(&a, &x), rb = fr_mp_row_next(&b, &y);
        CHECK(ra == rb && ra >= 0);
        if (ra)
            break;
        CHECK(x.kind == y.kind);
        if (x.kind == FR_MP_F32)
            CHECK(memcmp(&x.v.f32, &y.v.f32, 4) == 0);
        if (x.kind == FR_MP_F64)
            CHECK(memcmp(&x.v.f64, &y.v.f64, 8) == 0);
    }
    free(packed);
    return 0;
}
