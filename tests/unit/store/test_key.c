/* Row key codec (src/store/key.c): byte order of encoded keys is the order the as-of read relies on
 * (view asc, entity by length-prefixed bytes, event_ts newest first, write_seq newest first), entities
 * never collide, decode inverts encode and rejects malformed keys. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/key.h"
#include "store_test_util.h"

typedef struct {
    uint32_t view_id;
    uint8_t entity[FR_ENTITY_MAX];
    uint16_t entity_len;
    int64_t event_ts_us;
    uint64_t write_seq;
    uint8_t key[FR_KEY_MAX];
    size_t key_len;
} tuple_t;

/* Small alphabets and ranges so equal components (and so the lower-order rules) occur often. */
static void random_tuple(uint64_t *s, tuple_t *t)
{
    static const uint32_t views[] = {0, 1, 2, 255, 256, 65536, UINT32_MAX};
    static const int64_t tss[] = {0, 1, 2, 1000, INT64_MAX - 1, INT64_MAX};
    static const uint64_t seqs[] = {0, 1, 2, 3, 1ULL << 40, UINT64_MAX - 1, UINT64_MAX};
    t->view_id = views[st_below(s, sizeof views / sizeof views[0])];
    t->entity_len = (uint16_t)(st_below(s, 8) == 0 ? 1 + st_below(s, FR_ENTITY_MAX)
                                                   : 1 + st_below(s, 3));
    for (uint16_t i = 0; i < t->entity_len; i++)
        t->entity[i] = (uint8_t)("ab\0\xff"[st_below(s, 4)]);
    t->event_ts_us = st_below(s, 2) ? tss[st_below(s, sizeof tss / sizeof tss[0])]
                                    : (int64_t)(st_rand(s) >> 1);
    t->write_seq = st_below(s, 2) ? seqs[st_below(s, sizeof seqs / sizeof seqs[0])] : st_rand(s);
    t->key_len = fr_key_encode(t->key, t->view_id, t->entity, t->entity_len, t->event_ts_us,
                               t->write_seq);
}

static int sign(long long x) { return (x > 0) - (x < 0); }

/* The intended order: view asc; entity_len asc, then entity bytes; event_ts desc; write_seq desc. */
static int model_cmp(const tuple_t *a, const tuple_t *b)
{
    if (a->view_id != b->view_id)
        return a->view_id < b->view_id ? -1 : 1;
    if (a->entity_len != b->entity_len)
        return a->entity_len < b->entity_len ? -1 : 1;
    int c = memcmp(a->entity, b->entity, a->entity_len);
    if (c)
        return sign(c);
    if (a->event_ts_us != b->event_ts_us)
        return a->event_ts_us > b->event_ts_us ? -1 : 1;
    if (a->write_seq != b->write_seq)
        return a->write_seq > b->write_seq ? -1 : 1;
    return 0;
}

static int key_cmp(const tuple_t *a, const tuple_t *b)
{
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return sign(c);
    return sign((long long)a->key_len - (long long)b->key_len);
}

Test(key, encoded_order_is_view_entity_then_newest_event_and_write_first)
{
    for (uint64_t seed = 1; seed <= 8; seed++) {
        uint64_t s = seed;
        for (int i = 0; i < 4000; i++) {
            tuple_t a, b;
            random_tuple(&s, &a);
            random_tuple(&s, &b);
            cr_assert_eq(key_cmp(&a, &b), model_cmp(&a, &b),
                         "seed %llu pair %d: view %u/%u len %u/%u ts %lld/%lld seq %llu/%llu",
                         (unsigned long long)seed, i, a.view_id, b.view_id, a.entity_len,
                         b.entity_len, (long long)a.event_ts_us, (long long)b.event_ts_us,
                         (unsigned long long)a.write_seq, (unsigned long long)b.write_seq);
        }
    }
}

Test(key, newer_event_sorts_first_within_an_entity)
{
    uint8_t k1[FR_KEY_MAX], k2[FR_KEY_MAX];
    size_t n1 = fr_key_encode(k1, 7, (const uint8_t *)"u1", 2, 2000, 1);
    size_t n2 = fr_key_encode(k2, 7, (const uint8_t *)"u1", 2, 1000, 99);
    cr_assert_eq(n1, n2);
    cr_assert_lt(memcmp(k1, k2, n1), 0, "event_ts 2000 must sort before 1000");
    n2 = fr_key_encode(k2, 7, (const uint8_t *)"u1", 2, 2000, 2);
    cr_assert_gt(memcmp(k1, k2, n1), 0, "write_seq 2 must sort before 1 at the same event_ts");
}

Test(key, encoded_layout_matches_the_documented_bytes)
{
    uint8_t k[FR_KEY_MAX];
    size_t n = fr_key_encode(k, 0x01020304u, (const uint8_t *)"xyz", 3, 5, 6);
    cr_assert_eq(n, 4 + 2 + 3 + 16);
    static const uint8_t want[] = {1, 2, 3, 4, 0, 3, 'x', 'y', 'z',
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff - 5,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff - 6};
    cr_assert_arr_eq(k, want, sizeof want);
    uint8_t p[FR_KEY_PREFIX_MAX];
    cr_assert_eq(fr_key_prefix(p, 0x01020304u, (const uint8_t *)"xyz", 3), 9u);
    cr_assert_arr_eq(p, want, 9);
}

Test(key, entity_ab_and_entity_a_never_share_a_prefix)
{
    uint8_t pab[FR_KEY_PREFIX_MAX], pa[FR_KEY_PREFIX_MAX], paff[FR_KEY_PREFIX_MAX], ka[FR_KEY_MAX];
    size_t nab = fr_key_prefix(pab, 1, (const uint8_t *)"ab", 2);
    size_t na = fr_key_prefix(pa, 1, (const uint8_t *)"a", 1);
    cr_assert_neq(memcmp(pab, pa, na), 0, "prefix of \"ab\" must not start with the prefix of \"a\"");
    /* Without the length, entity "a\xff" would be a prefix of every key of entity "a" with a small
     * event time, whose inverted timestamp starts with 0xff. */
    size_t naff = fr_key_prefix(paff, 1, (const uint8_t *)"a\xff", 2);
    size_t nka = fr_key_encode(ka, 1, (const uint8_t *)"a", 1, 0, 0);
    cr_assert_eq(ka[na], 0xff);
    cr_assert(nka >= naff);
    cr_assert_neq(memcmp(ka, paff, naff), 0, "key of \"a\" must not start with the prefix of \"a\\xff\"");
    cr_assert_eq(memcmp(ka, pa, na), 0, "key of \"a\" starts with its own prefix");
    cr_assert_neq(memcmp(ka, pab, nab), 0);
}

Test(key, no_entity_prefix_is_a_prefix_of_another_entitys_key)
{
    uint64_t s = 42;
    for (int i = 0; i < 20000; i++) {
        tuple_t a, b;
        random_tuple(&s, &a);
        random_tuple(&s, &b);
        if (a.view_id == b.view_id && a.entity_len == b.entity_len &&
            memcmp(a.entity, b.entity, a.entity_len) == 0)
            continue; /* the same entity */
        uint8_t p[FR_KEY_PREFIX_MAX];
        size_t pn = fr_key_prefix(p, a.view_id, a.entity, a.entity_len);
        cr_assert(!(pn <= b.key_len && memcmp(p, b.key, pn) == 0),
                  "prefix of entity len %u is a prefix of a key of entity len %u", a.entity_len,
                  b.entity_len);
    }
}

Test(key, decode_inverts_encode)
{
    uint64_t s = 7;
    for (int i = 0; i < 20000; i++) {
        tuple_t t;
        random_tuple(&s, &t);
        fr_key_t d;
        cr_assert_eq(fr_key_decode(t.key, t.key_len, &d), 0);
        cr_assert_eq(d.view_id, t.view_id);
        cr_assert_eq(d.entity_len, t.entity_len);
        cr_assert_arr_eq(d.entity, t.entity, t.entity_len);
        cr_assert_eq(d.entity, t.key + 6, "entity points into the key");
        cr_assert_eq(d.event_ts_us, t.event_ts_us);
        cr_assert_eq(d.write_seq, t.write_seq);
    }
}

Test(key, decode_accepts_empty_and_maximal_entities)
{
    uint8_t e[FR_ENTITY_MAX], k[FR_KEY_MAX];
    memset(e, 0xee, sizeof e);
    fr_key_t d;
    size_t n = fr_key_encode(k, 3, e, FR_ENTITY_MAX, 1, 1);
    cr_assert_eq(n, (size_t)FR_KEY_MAX);
    cr_assert_eq(fr_key_decode(k, n, &d), 0);
    cr_assert_eq(d.entity_len, FR_ENTITY_MAX);
    n = fr_key_encode(k, 3, NULL, 0, 1, 1);
    cr_assert_eq(n, 22u);
    cr_assert_eq(fr_key_decode(k, n, &d), 0);
    cr_assert_eq(d.entity_len, 0);
}

Test(key, decode_rejects_wrong_lengths)
{
    uint8_t k[FR_KEY_MAX + 8];
    size_t n = fr_key_encode(k, 9, (const uint8_t *)"abc", 3, 100, 5);
    fr_key_t d;
    for (size_t len = 0; len < n; len++)
        cr_assert_eq(fr_key_decode(k, len, &d), -1, "truncated to %zu bytes", len);
    k[n] = 0;
    cr_assert_eq(fr_key_decode(k, n + 1, &d), -1, "one trailing byte");
    /* entity_len claims more bytes than the key has, and fewer */
    fr_put_be16(k + 4, 4);
    cr_assert_eq(fr_key_decode(k, n, &d), -1);
    fr_put_be16(k + 4, 2);
    cr_assert_eq(fr_key_decode(k, n, &d), -1);
}

Test(key, decode_rejects_entity_longer_than_256)
{
    uint8_t k[6 + 257 + 16];
    memset(k, 0, sizeof k);
    fr_put_be32(k, 1);
    fr_put_be16(k + 4, 257);
    memset(k + 6 + 257, 0xff, 16);
    fr_key_t d;
    cr_assert_eq(fr_key_decode(k, sizeof k, &d), -1);
    fr_put_be16(k + 4, 0xffff);
    cr_assert_eq(fr_key_decode(k, sizeof k, &d), -1);
}

Test(key, decode_rejects_an_inverted_time_that_would_be_negative)
{
    uint8_t k[FR_KEY_MAX];
    size_t n = fr_key_encode(k, 1, (const uint8_t *)"e", 1, 0, 0);
    fr_put_be64(k + 7, 0x7fffffffffffffffULL); /* ~ts < 2^63: event_ts > INT64_MAX */
    fr_key_t d;
    cr_assert_eq(fr_key_decode(k, n, &d), -1);
    fr_put_be64(k + 7, 0x8000000000000000ULL); /* exactly INT64_MAX */
    cr_assert_eq(fr_key_decode(k, n, &d), 0);
    cr_assert_eq(d.event_ts_us, INT64_MAX);
}
