/* The bounded msgpack reader and the value packer (src/proto/mp.c). Truncated inputs are copied
 * into exact-size heap buffers so that AddressSanitizer catches any read past the end. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "proto/mp.h"

static int next_exact(const uint8_t *p, size_t n, fr_mp_item_t *it, size_t *used)
{
    uint8_t *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    if (n)
        memcpy(copy, p, n);
    fr_mp_reader_t r;
    fr_mp_reader_init(&r, copy, n);
    int rc = fr_mp_next(&r, it);
    *used = (size_t)(r.p - copy);
    if (rc == 0 && (it->kind == FR_MP_STR || it->kind == FR_MP_BIN || it->kind == FR_MP_RUN32 ||
                    it->kind == FR_MP_RUN64))
        it->v.ptr = p + (it->v.ptr - copy); /* keep pointing into the caller's bytes */
    free(copy);
    return rc;
}

#define ITEM(...)                                                                                  \
    static const uint8_t in_[] = {__VA_ARGS__};                                                    \
    fr_mp_item_t it;                                                                               \
    size_t used;                                                                                   \
    cr_assert_eq(next_exact(in_, sizeof in_, &it, &used), 0);                                      \
    cr_assert_eq(used, sizeof in_, "consumed %zu of %zu bytes", used, sizeof in_)

Test(mp, reads_nil_and_bools)
{
    {
        ITEM(0xc0);
        cr_assert_eq(it.kind, FR_MP_NIL);
    }
    {
        ITEM(0xc2);
        cr_assert_eq(it.kind, FR_MP_BOOL);
        cr_assert_eq(it.v.b, false);
    }
    {
        ITEM(0xc3);
        cr_assert_eq(it.kind, FR_MP_BOOL);
        cr_assert_eq(it.v.b, true);
    }
}

Test(mp, reads_every_integer_encoding)
{
    static const struct {
        uint8_t b[9];
        size_t n;
        int64_t v;
    } cases[] = {
        {{0x00}, 1, 0},
        {{0x7f}, 1, 127},
        {{0xff}, 1, -1},
        {{0xe0}, 1, -32},
        {{0xcc, 0xff}, 2, 255},
        {{0xcd, 0x01, 0x00}, 3, 256},
        {{0xce, 0xff, 0xff, 0xff, 0xff}, 5, 4294967295LL},
        {{0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
        {{0xd0, 0x80}, 2, -128},
        {{0xd0, 0x7f}, 2, 127},
        {{0xd1, 0x80, 0x00}, 3, -32768},
        {{0xd2, 0xff, 0xff, 0xff, 0xfe}, 5, -2},
        {{0xd2, 0x80, 0, 0, 0}, 5, INT32_MIN},
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, INT64_MIN},
        {{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_mp_item_t it;
        size_t used;
        cr_assert_eq(next_exact(cases[i].b, cases[i].n, &it, &used), 0, "case %zu", i);
        cr_assert_eq(used, cases[i].n);
        cr_assert_eq(it.kind, FR_MP_INT, "case %zu", i);
        cr_assert_eq(it.v.i, cases[i].v, "case %zu: %lld", i, (long long)it.v.i);
    }
    ITEM(0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0);
    cr_assert_eq(it.kind, FR_MP_UINT, "above INT64_MAX is UINT");
    cr_assert_eq(it.v.u, 1ULL << 63);
}

Test(mp, reads_floats)
{
    {
        ITEM(0xca, 0x3f, 0xc0, 0x00, 0x00);
        cr_assert_eq(it.kind, FR_MP_F32);
        cr_assert_float_eq(it.v.f32, 1.5f, 0);
    }
    {
        ITEM(0xcb, 0xc0, 0x04, 0, 0, 0, 0, 0, 0);
        cr_assert_eq(it.kind, FR_MP_F64);
        cr_assert_float_eq(it.v.f64, -2.5, 0);
    }
    {
        ITEM(0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0);
        cr_assert(isnan(it.v.f64));
    }
}

Test(mp, reads_strings_and_binaries_of_every_width)
{
    {
        ITEM(0xa3, 'a', 'b', 'c');
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, 3);
        cr_assert_arr_eq(it.v.ptr, "abc", 3);
    }
    {
        ITEM(0xa0);
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, 0);
    }
    {
        ITEM(0xd9, 2, 'h', 'i');
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, 2);
    }
    {
        ITEM(0xda, 0, 1, 'x');
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, 1);
    }
    {
        ITEM(0xdb, 0, 0, 0, 2, 'x', 'y');
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, 2);
    }
    {
        ITEM(0xc4, 1, 0xff);
        cr_assert_eq(it.kind, FR_MP_BIN);
        cr_assert_eq(it.count, 1);
        cr_assert_eq(it.v.ptr[0], 0xff);
    }
    {
        ITEM(0xc5, 0, 2, 1, 2);
        cr_assert_eq(it.kind, FR_MP_BIN);
        cr_assert_eq(it.count, 2);
    }
    {
        ITEM(0xc6, 0, 0, 0, 0);
        cr_assert_eq(it.kind, FR_MP_BIN);
        cr_assert_eq(it.count, 0);
    }
}

Test(mp, reads_array_headers_only)
{
    {
        ITEM(0x93);
        cr_assert_eq(it.kind, FR_MP_ARRAY);
        cr_assert_eq(it.count, 3);
    }
    {
        ITEM(0xdc, 0x01, 0x00);
        cr_assert_eq(it.kind, FR_MP_ARRAY);
        cr_assert_eq(it.count, 256);
    }
    {
        ITEM(0xdd, 0xff, 0xff, 0xff, 0xff);
        cr_assert_eq(it.kind, FR_MP_ARRAY);
        cr_assert_eq(it.count, UINT32_MAX, "a count is only a header: elements are read later");
    }
}

Test(mp, rejects_maps_ext_and_the_unused_byte, .description = "and runs that are empty or short")
{
    static const uint8_t bad[][3] = {
        {0x80}, {0x8f}, {0xde, 0, 0}, {0xdf, 0, 0},                       /* maps */
        {0xd4, 1, 2}, {0xd5, 1, 2}, {0xd6, 1, 2}, {0xd7, 1, 2}, {0xd8, 1, 2}, /* fixext */
        {0xc7, 0, 1}, {0xc8, 0, 0}, {0xc9, 0, 0},                         /* ext */
        {0xc1, 0, 0},                                                     /* never used */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_mp_item_t it;
        size_t used;
        cr_assert_eq(next_exact(bad[i], 3, &it, &used), -1, "byte 0x%02x", bad[i][0]);
    }
    fr_mp_item_t it;
    size_t used;
    cr_assert_eq(next_exact(NULL, 0, &it, &used), -1, "empty input");
}

/* Every complete encoding, cut at every shorter length, fails without reading past the end. */
Test(mp, truncated_input_at_every_length_fails_in_bounds)
{
    static const uint8_t whole[][12] = {
        {0xcc, 1}, {0xcd, 1, 2}, {0xce, 1, 2, 3, 4}, {0xcf, 1, 2, 3, 4, 5, 6, 7, 8},
        {0xd0, 1}, {0xd1, 1, 2}, {0xd2, 1, 2, 3, 4}, {0xd3, 1, 2, 3, 4, 5, 6, 7, 8},
        {0xca, 1, 2, 3, 4}, {0xcb, 1, 2, 3, 4, 5, 6, 7, 8},
        {0xa3, 'a', 'b', 'c'}, {0xd9, 3, 'a', 'b', 'c'}, {0xda, 0, 3, 'a', 'b', 'c'},
        {0xdb, 0, 0, 0, 3, 'a', 'b', 'c'},
        {0xc4, 3, 1, 2, 3}, {0xc5, 0, 3, 1, 2, 3}, {0xc6, 0, 0, 0, 3, 1, 2, 3},
        {0xdc, 0, 3}, {0xdd, 0, 0, 0, 3},
    };
    static const size_t lens[] = {2, 3, 5, 9, 2, 3, 5, 9, 5, 9, 4, 5, 6, 8, 5, 6, 8, 3, 5};
    cr_assert_eq(sizeof lens / sizeof lens[0], sizeof whole / sizeof whole[0]);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        fr_mp_item_t it;
        size_t used;
        cr_assert_eq(next_exact(whole[i], lens[i], &it, &used), 0, "case %zu whole", i);
        cr_assert_eq(used, lens[i]);
        for (size_t n = 0; n < lens[i]; n++)
            cr_assert_eq(next_exact(whole[i], n, &it, &used), -1, "case %zu cut at %zu", i, n);
    }
    /* a length that claims more than the buffer holds, at the largest widths */
    fr_mp_item_t it;
    size_t used;
    static const uint8_t huge_str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    cr_assert_eq(next_exact(huge_str, sizeof huge_str, &it, &used), -1);
    static const uint8_t huge_bin[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 'a'};
    cr_assert_eq(next_exact(huge_bin, sizeof huge_bin, &it, &used), -1);
}

Test(mp, next_float_reads_numbers_only)
{
    static const uint8_t in[] = {0xca, 0x3f, 0xc0, 0, 0, 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0,
                                 0x05, 0xfb, 0xc0, 0xa1, 'x'};
    fr_mp_reader_t r;
    fr_mp_reader_init(&r, in, sizeof in);
    float f;
    cr_assert_eq(fr_mp_next_float(&r, &f), 0);
    cr_assert_float_eq(f, 1.5f, 0);
    cr_assert_eq(fr_mp_next_float(&r, &f), 0);
    cr_assert_float_eq(f, 2.5f, 0);
    cr_assert_eq(fr_mp_next_float(&r, &f), 0);
    cr_assert_float_eq(f, 5.0f, 0);
    cr_assert_eq(fr_mp_next_float(&r, &f), 0);
    cr_assert_float_eq(f, -5.0f, 0);
    cr_assert_eq(fr_mp_next_float(&r, &f), -1, "nil is not a number");
    cr_assert_eq(fr_mp_next_float(&r, &f), -1, "a string is not a number");
    cr_assert_eq(fr_mp_next_float(&r, &f), -1, "end of input");
}

/* ---- packing ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} packer_t;

static fr_mp_item_t pack_and_read(packer_t *p, const fr_value_t *v, fr_mp_reader_t *r)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
    cr_assert_eq(fr_mp_pack_value(&p->pk, v), 0);
    fr_mp_reader_init(r, (const uint8_t *)p->sb.data, p->sb.size);
    fr_mp_item_t it;
    cr_assert_eq(fr_mp_next(r, &it), 0);
    return it;
}

static void done(packer_t *p, fr_mp_reader_t *r)
{
    cr_assert_eq(r->p, r->end, "the whole value was consumed");
    msgpack_sbuffer_destroy(&p->sb);
}

Test(mp, pack_then_read_gives_the_same_value_for_every_type)
{
    packer_t p;
    fr_mp_reader_t r;
    fr_value_t v;
    fr_mp_item_t it;

    v = (fr_value_t){.type = FR_TYPE_NONE};
    it = pack_and_read(&p, &v, &r);
    cr_assert_eq(it.kind, FR_MP_NIL);
    done(&p, &r);

    static const int64_t ints[] = {0, 1, -1, 127, 128, -32, -33, 255, 65536, INT32_MIN,
                                   INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = ints[i]};
        it = pack_and_read(&p, &v, &r);
        cr_assert_eq(it.kind, FR_MP_INT);
        cr_assert_eq(it.v.i, ints[i]);
        done(&p, &r);
    }

    v = (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = 0.1};
    it = pack_and_read(&p, &v, &r);
    cr_assert_eq(it.kind, FR_MP_F64);
    cr_assert_eq(memcmp(&it.v.f64, &v.u.f64, 8), 0, "bit exact");
    done(&p, &r);

    v = (fr_value_t){.type = FR_TYPE_FLOAT, .u.f32 = -3.25f};
    it = pack_and_read(&p, &v, &r);
    cr_assert_eq(it.kind, FR_MP_F32);
    cr_assert_float_eq(it.v.f32, -3.25f, 0);
    done(&p, &r);

    for (int b = 0; b <= 1; b++) {
        v = (fr_value_t){.type = FR_TYPE_BOOL, .u.b = b};
        it = pack_and_read(&p, &v, &r);
        cr_assert_eq(it.kind, FR_MP_BOOL);
        cr_assert_eq(it.v.b, b);
        done(&p, &r);
    }

    static const size_t lens[] = {0, 5, 31, 32, 255, 256, 70000};
    char *text = malloc(70000);
    cr_assert_not_null(text);
    for (size_t i = 0; i < 70000; i++)
        text[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        v = (fr_value_t){.type = FR_TYPE_STRING, .len = (uint32_t)lens[i], .u.str = text};
        it = pack_and_read(&p, &v, &r);
        cr_assert_eq(it.kind, FR_MP_STR);
        cr_assert_eq(it.count, lens[i]);
        cr_assert_arr_eq(it.v.ptr, text, lens[i]);
        done(&p, &r);
        v = (fr_value_t){.type = FR_TYPE_BYTES, .len = (uint32_t)lens[i],
                         .u.bytes = (const uint8_t *)text};
        it = pack_and_read(&p, &v, &r);
        cr_assert_eq(it.kind, FR_MP_BIN);
        cr_assert_eq(it.count, lens[i]);
        cr_assert_arr_eq(it.v.ptr, text, lens[i]);
        done(&p, &r);
    }
    free(text);

    float fl[20];
    for (int i = 0; i < 20; i++)
        fl[i] = (float)i * 0.5f - 3.0f;
    static const uint32_t dims[] = {0, 1, 15, 16, 20};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        v = (fr_value_t){.type = FR_TYPE_FLOAT_LIST, .len = dims[d], .u.floats = fl};
        it = pack_and_read(&p, &v, &r);
        cr_assert_eq(it.kind, FR_MP_ARRAY);
        cr_assert_eq(it.count, dims[d]);
        for (uint32_t i = 0; i < dims[d]; i++) {
            float f;
            cr_assert_eq(fr_mp_next_float(&r, &f), 0);
            cr_assert_float_eq(f, fl[i], 0);
        }
        done(&p, &r);
    }
}

Test(mp, packing_an_unknown_type_fails)
{
    packer_t p;
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer_init(&p.pk, &p.sb, msgpack_sbuffer_write);
    fr_value_t v = {.type = (fr_type_t)99};
    cr_assert_neq(fr_mp_pack_value(&p.pk, &v), 0);
    cr_assert_eq(p.sb.size, 0u);
    msgpack_sbuffer_destroy(&p.sb);
}

/* ---- packed runs (FR_MP_EXT_F32RUN / FR_MP_EXT_F64RUN) ---- */

Test(mp, reads_packed_runs_of_every_ext_width)
{
    {
        ITEM(0xd6, FR_MP_EXT_F32RUN, 0x00, 0x00, 0xc0, 0x3f); /* fixext 4: 1.5f little-endian */
        cr_assert_eq(it.kind, FR_MP_RUN32);
        cr_assert_eq(it.count, 1u);
        cr_assert_eq(it.v.ptr, in_ + 2);
    }
    {
        ITEM(0xd8, FR_MP_EXT_F64RUN, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40);
        cr_assert_eq(it.kind, FR_MP_RUN64);
        cr_assert_eq(it.count, 2u);
    }
    {
        ITEM(0xc7, 12, FR_MP_EXT_F32RUN, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
        cr_assert_eq(it.kind, FR_MP_RUN32);
        cr_assert_eq(it.count, 3u);
        cr_assert_eq(it.v.ptr, in_ + 3);
    }
    {
        ITEM(0xc8, 0, 8, FR_MP_EXT_F64RUN, 1, 2, 3, 4, 5, 6, 7, 8);
        cr_assert_eq(it.kind, FR_MP_RUN64);
        cr_assert_eq(it.count, 1u);
    }
    {
        ITEM(0xc9, 0, 0, 0, 4, FR_MP_EXT_F32RUN, 1, 2, 3, 4);
        cr_assert_eq(it.kind, FR_MP_RUN32);
        cr_assert_eq(it.count, 1u);
    }
}

Test(mp, rejects_runs_of_other_types_or_ragged_lengths)
{
    static const struct {
        uint8_t b[12];
        size_t n;
    } bad[] = {
        {{0xd6, 3, 1, 2, 3, 4}, 6},                    /* an ext type that is not a run */
        {{0xd6, 0xff, 1, 2, 3, 4}, 6},                 /* a negative (reserved) ext type */
        {{0xd6, FR_MP_EXT_F64RUN, 1, 2, 3, 4}, 6},     /* 4 bytes of float64 */
        {{0xc7, 6, FR_MP_EXT_F32RUN, 1, 2, 3, 4, 5, 6}, 9}, /* 6 bytes of float32 */
        {{0xc7, 0, FR_MP_EXT_F32RUN}, 3},              /* empty */
        {{0xd4, FR_MP_EXT_F32RUN, 1}, 3},              /* fixext 1 */
        {{0xd5, FR_MP_EXT_F32RUN, 1, 2}, 4},           /* fixext 2 */
        {{0xc7, 8, FR_MP_EXT_F32RUN, 1, 2, 3, 4}, 7},  /* claims more than there is */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_mp_item_t it;
        size_t used;
        cr_assert_eq(next_exact(bad[i].b, bad[i].n, &it, &used), -1, "case %zu", i);
    }
    /* a whole run cut at every shorter length */
    static const uint8_t whole[] = {0xc7, 8, FR_MP_EXT_F32RUN, 1, 2, 3, 4, 5, 6, 7, 8};
    for (size_t n = 0; n < sizeof whole; n++) {
        fr_mp_item_t it;
        size_t used;
        cr_assert_eq(next_exact(whole, n, &it, &used), -1, "cut at %zu", n);
    }
}

/* A tiny deterministic generator for the row tests. */
static uint64_t rng_state = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A random row payload: nils, ints, strings, float_lists, and stretches of float32 / float64
 * (some long enough to pack, some not), optionally with runs already packed. */
static size_t random_row(uint8_t *out, size_t cap, bool with_runs)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint32_t groups = rnd(8), items = 0;
    /* the array header is written last, once the item count is known */
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer bp;
    msgpack_packer_init(&bp, &body, msgpack_sbuffer_write);
    for (uint32_t g = 0; g < groups; g++) {
        uint32_t kind = rnd(7), n = 1 + rnd(20);
        switch (kind) {
        case 0:
            msgpack_pack_nil(&bp), items++;
            break;
        case 1:
            msgpack_pack_int64(&bp, (int64_t)rnd(1000000) - 500000), items++;
            break;
        case 2:
            msgpack_pack_str(&bp, 3), msgpack_pack_str_body(&bp, "abc", 3), items++;
            break;
        case 3:
            msgpack_pack_array(&bp, n % 4);
            for (uint32_t i = 0; i < n % 4; i++)
                msgpack_pack_float(&bp, (float)rnd(100) / 8);
            items++;
            break;
        case 4:
            for (uint32_t i = 0; i < n; i++, items++)
                msgpack_pack_float(&bp, (float)rnd(1u << 30) / 1024.0f - 4096.0f);
            break;
        case 5:
            for (uint32_t i = 0; i < n; i++, items++)
                msgpack_pack_double(&bp, (double)rnd(1u << 30) / 3.0 - 1e6);
            break;
        default:
            if (!with_runs) {
                msgpack_pack_float(&bp, NAN), items++;
                break;
            }
            msgpack_pack_ext(&bp, 4 * n, FR_MP_EXT_F32RUN);
            for (uint32_t i = 0; i < n; i++) {
                uint8_t le[4];
                fr_put_le32(le, rnd(UINT32_MAX));
                msgpack_pack_ext_body(&bp, le, 4);
            }
            items++;
        }
    }
    msgpack_pack_array(&pk, items);
    msgpack_sbuffer_write(&sb, body.data, body.size);
    cr_assert_leq(sb.size, cap);
    memcpy(out, sb.data, sb.size);
    size_t n = sb.size;
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* Both payloads hold the same cells: same kinds, same bits, same strings and float lists. */
static void assert_same_cells(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    fr_mp_row_t ra, rb;
    cr_assert_eq(fr_mp_row_open(&ra, a, alen), 0);
    cr_assert_eq(fr_mp_row_open(&rb, b, blen), 0);
    for (uint32_t cell = 0;; cell++) {
        fr_mp_item_t x, y;
        int ca = fr_mp_row_next(&ra, &x), cb = fr_mp_row_next(&rb, &y);
        cr_assert_eq(ca, cb, "cell %u: %d vs %d", cell, ca, cb);
        cr_assert_geq(ca, 0);
        if (ca)
            break;
        cr_assert_eq(x.kind, y.kind, "cell %u", cell);
        if (x.kind == FR_MP_STR || x.kind == FR_MP_ARRAY)
            cr_assert_eq(x.count, y.count, "cell %u", cell);
        switch (x.kind) {
        case FR_MP_F32:
            cr_assert_eq(memcmp(&x.v.f32, &y.v.f32, 4), 0, "cell %u", cell);
            break;
        case FR_MP_F64:
            cr_assert_eq(memcmp(&x.v.f64, &y.v.f64, 8), 0, "cell %u", cell);
            break;
        case FR_MP_INT:
            cr_assert_eq(x.v.i, y.v.i);
            break;
        case FR_MP_STR:
            cr_assert_eq(memcmp(x.v.ptr, y.v.ptr, x.count), 0);
            break;
        case FR_MP_ARRAY:
            cr_assert_eq(memcmp(x.v.ptr, y.v.ptr, 5 * x.count), 0, "float_list elements");
            break;
        default:
            break;
        }
    }
    cr_assert_eq(ra.r.p, a + alen);
    cr_assert_eq(rb.r.p, b + blen);
    cr_assert_eq(fr_mp_row_cells(a, alen), fr_mp_row_cells(b, blen));
}

Test(mp, packing_runs_keeps_every_cell_and_never_grows)
{
    uint8_t in[4096], out[4096], again[4096];
    size_t shrunk = 0;
    for (int round = 0; round < 3000; round++) {
        size_t n = random_row(in, sizeof in, round % 2);
        /* in an exact-size heap copy, so that ASan sees any read past the end */
        uint8_t *exact = malloc(n);
        cr_assert_not_null(exact);
        memcpy(exact, in, n);
        size_t m = fr_mp_pack_runs(exact, n, out);
        cr_assert_gt(m, 0u, "round %d", round);
        cr_assert_leq(m, n, "round %d: %zu > %zu", round, m, n);
        shrunk += m < n;
        assert_same_cells(exact, n, out, m);
        cr_assert_eq(fr_mp_pack_runs(out, m, again), m, "packing is idempotent");
        cr_assert_eq(memcmp(out, again, m), 0);
        free(exact);
    }
    cr_assert_gt(shrunk, 1000u, "most random rows have a stretch worth packing");
}

Test(mp, packs_fifty_float32_into_one_run)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 50);
    for (int i = 0; i < 50; i++)
        msgpack_pack_float(&pk, (float)i + 0.25f);
    cr_assert_eq(sb.size, 3u + 50 * 5);
    uint8_t out[256];
    size_t m = fr_mp_pack_runs((const uint8_t *)sb.data, sb.size, out);
    static const uint8_t head[] = {0x91, 0xc7, 200, FR_MP_EXT_F32RUN};
    cr_assert_eq(m, sizeof head + 200);
    cr_assert_eq(memcmp(out, head, sizeof head), 0);
    float f;
    uint32_t bits = fr_get_le32(out + sizeof head + 4 * 7);
    memcpy(&f, &bits, 4);
    cr_assert_eq(f, 7.25f, "value 7, little-endian");
    assert_same_cells((const uint8_t *)sb.data, sb.size, out, m);
    msgpack_sbuffer_destroy(&sb);
}

Test(mp, leaves_stretches_too_short_to_gain)
{
    /* three float32, a nil, three float64, a float32 and a float64: nothing gets shorter */
    static const uint8_t row[] = {
        0x99, 0xca, 0x3f, 0x80, 0, 0, 0xca, 0x40, 0, 0, 0, 0xca, 0x40, 0x40, 0, 0, 0xc0,
        0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0,
        0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0xca, 0x3f, 0x80, 0, 0, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0,
        0, 0};
    uint8_t out[sizeof row];
    cr_assert_eq(fr_mp_pack_runs(row, sizeof row, out), sizeof row);
    cr_assert_eq(memcmp(out, row, sizeof row), 0, "byte for byte as sent");
    /* four float64 pack: 36 bytes become 3 + 32 */
    static const uint8_t four[] = {0x94, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xcb, 0x40, 0, 0, 0,
                                   0, 0, 0, 0, 0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0xcb, 0x40,
                                   0x10, 0, 0, 0, 0, 0, 0};
    uint8_t o4[sizeof four];
    size_t m = fr_mp_pack_runs(four, sizeof four, o4);
    cr_assert_eq(m, 1u + 3 + 32);
    cr_assert_eq(o4[0], 0x91);
    cr_assert_eq(o4[1], 0xc7);
    cr_assert_eq(o4[3], FR_MP_EXT_F64RUN);
    assert_same_cells(four, sizeof four, o4, m);
}

Test(mp, row_reader_expands_runs_and_stops_at_the_end)
{
    /* [nil, run(2.0f, -1.0f), "hi", [0.5], run(double 3.0)] */
    static const uint8_t row[] = {0x95, 0xc0, 0xd7, FR_MP_EXT_F32RUN, 0, 0, 0, 0x40, 0, 0, 0x80,
                                  0xbf, 0xa2, 'h', 'i', 0x91, 0xca, 0x3f, 0, 0, 0, 0xd7,
                                  FR_MP_EXT_F64RUN, 0, 0, 0, 0, 0, 0, 0x08, 0x40};
    fr_mp_row_t r;
    fr_mp_item_t it;
    cr_assert_eq(fr_mp_row_open(&r, row, sizeof row), 0);
    cr_assert_eq(fr_mp_row_next(&r, &it), 0);
    cr_assert_eq(it.kind, FR_MP_NIL);
    cr_assert_eq(fr_mp_row_next(&r, &it), 0);
    cr_assert_eq(it.kind, FR_MP_F32);
    cr_assert_eq(it.v.f32, 2.0f);
    cr_assert_eq(fr_mp_row_next(&r, &it), 0);
    cr_assert_eq(it.v.f32, -1.0f);
    cr_assert_eq(fr_mp_row_next(&r, &it), 0);
    cr_assert_eq(it.kind, FR_MP_STR);
    cr_assert_eq(fr_mp_row_next(&r, &it), 0);
    cr_assert_eq(it.kind, FR_MP_ARRAY);
    cr_assert_eq(it.v.ptr, row + 16, "a float_list's elements start after its header");
    cr_assert_eq(fr_mp_row_next(&r, &it), 0, "the elements were skipped");
    cr_assert_eq(it.kind, FR_MP_F64);
    cr_assert_eq(it.v.f64, 3.0);
    cr_assert_eq(fr_mp_row_next(&r, &it), 1);
    cr_assert_eq(fr_mp_row_next(&r, &it), 1, "and stays at the end");
    cr_assert_eq(fr_mp_row_cells(row, sizeof row), 6);
    cr_assert_eq(fr_mp_row_cells_typed(row, sizeof row), 6);
    /* cells no Freshet type holds: counted by the plain counter, refused by the typed one */
    static const uint8_t big_uint[] = {0x92, 0x01, 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t str_in_list[] = {0x91, 0x92, 0xca, 0x3f, 0, 0, 0, 0xa1, 'x'};
    cr_assert_eq(fr_mp_row_cells(big_uint, sizeof big_uint), 2);
    cr_assert_eq(fr_mp_row_cells_typed(big_uint, sizeof big_uint), -1, "integer beyond int64");
    cr_assert_eq(fr_mp_row_cells(str_in_list, sizeof str_in_list), 1);
    cr_assert_eq(fr_mp_row_cells_typed(str_in_list, sizeof str_in_list), -1, "string in a list");
    /* the same row cut anywhere: the reader and the counter fail in bounds, never past */
    for (size_t n = 0; n < sizeof row; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        cr_assert_not_null(cut);
        memcpy(cut, row, n);
        int rc = fr_mp_row_open(&r, cut, n);
        while (rc == 0)
            rc = fr_mp_row_next(&r, &it);
        cr_assert_eq(rc, -1, "cut at %zu", n);
        cr_assert_eq(fr_mp_row_cells(cut, n), -1, "cut at %zu", n);
        cr_assert_eq(fr_mp_row_cells_typed(cut, n), -1, "cut at %zu", n);
        uint8_t out[sizeof row];
        cr_assert_eq(fr_mp_pack_runs(cut, n, out), 0u, "cut at %zu", n);
        free(cut);
    }
}

Test(mp, packs_long_runs_with_16_and_32_bit_ext_lengths)
{
    static const uint32_t counts[] = {63, 64, 16383, 16384, 20000}; /* ext8 | ext16 | ext32 */
    static const uint8_t heads[] = {0xc7, 0xc8, 0xc8, 0xc9, 0xc9};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, counts[c] + 1);
        for (uint32_t i = 0; i < counts[c]; i++)
            msgpack_pack_float(&pk, (float)i * 0.5f);
        msgpack_pack_nil(&pk);
        uint8_t *out = malloc(sb.size);
        cr_assert_not_null(out);
        size_t m = fr_mp_pack_runs((const uint8_t *)sb.data, sb.size, out);
        size_t hdr = heads[c] == 0xc7 ? 3 : heads[c] == 0xc8 ? 4 : 6;
        cr_assert_eq(m, 1 + hdr + 4 * (size_t)counts[c] + 1, "%u floats: %zu bytes", counts[c], m);
        cr_assert_eq(out[0], 0x92);
        cr_assert_eq(out[1], heads[c], "%u floats: header %#x", counts[c], out[1]);
        assert_same_cells((const uint8_t *)sb.data, sb.size, out, m);
        free(out);
        msgpack_sbuffer_destroy(&sb);
    }
}
