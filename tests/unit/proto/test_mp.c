/* The bounded msgpack reader and the value packer (src/proto/mp.c). Truncated inputs are copied
 * into exact-size heap buffers so that AddressSanitizer catches any read past the end. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    if (rc == 0 && (it->kind == FR_MP_STR || it->kind == FR_MP_BIN))
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

Test(mp, rejects_maps_ext_and_the_unused_byte)
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
