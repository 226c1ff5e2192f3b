/* Number formatting (src/common/numfmt.c) of CLI output and HTTP JSON: every double and float
 * must parse back to exactly the same value, printed as the shortest-%g definition prints it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/numfmt.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check_double(double x)
{
    char buf[64];
    fr_fmt_double(buf, sizeof buf, x);
    char *end;
    double y = strtod(buf, &end);
    cr_assert_eq(*end, 0, "trailing text in \"%s\"", buf);
    cr_assert(memcmp(&x, &y, sizeof x) == 0, "%.17g printed as \"%s\" reads back as %.17g", x, buf, y);
}

Test(numfmt, doubles_round_trip_exactly)
{
    static const double fixed[] = {0.1, 0.2, 0.3, 1.5, -2.25, 100, 123.456, 1e-7, 1.23e-5, 1e15,
                                   9e15, 1e16, 1e300, 5e-324, 2.2250738585072014e-308, -0.001,
                                   0.30000000000000004, 142.03, 99999999.99999999, -0.0};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_double(fixed[i]);
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = next_u64();
        double x;
        memcpy(&x, &bits, sizeof x);
        if (isfinite(x))
            check_double(x);
        /* values with a few decimals, the common shape of feature data */
        long long m = (long long)(next_u64() % 2000000000ULL) - 1000000000LL;
        int k = (int)(next_u64() % 9);
        check_double((double)m / pow(10, k));
    }
}

Test(numfmt, few_decimals_print_in_their_shortest_form)
{
    char buf[64];
    struct {
        double x;
        const char *want;
    } cases[] = {{0.1, "0.1"},     {123.456, "123.456"}, {-2.25, "-2.25"}, {100, "100"},
                 {0, "0"},         {0.001, "0.001"},     {-0.05, "-0.05"}, {142.03, "142.03"},
                 {1e-7, "0.0000001"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_fmt_double(buf, sizeof buf, cases[i].x);
        cr_assert_str_eq(buf, cases[i].want);
    }
    fr_fmt_double(buf, sizeof buf, NAN);
    cr_assert_str_eq(buf, "null", "non-finite values are null in JSON");
}

/* The fast path must print exactly what the plain definition gives: the smallest k <= 8 with
 * round(x·10^k)/10^k == x, printed with k decimals (regression guard for its one-multiplication
 * shortcut). */
Test(numfmt, few_decimals_match_the_shortest_decimal_definition)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    char got[64], want[64];
    int compared = 0;
    for (int i = 0; i < 300000; i++) {
        long long m = (long long)(next_u64() % 20000000000000ULL) - 10000000000000LL;
        int dec = (int)(next_u64() % 11);
        double x = (double)m / pow(10, dec);
        if (i % 3 == 0) { /* and arbitrary doubles of the same magnitude */
            uint64_t bits = next_u64();
            double y;
            memcpy(&y, &bits, sizeof y);
            x = isfinite(y) ? fmod(y, 1e8) : x;
        }
        if (x == 0 || !(fabs(x) < 9e7))
            continue;
        int k = 0;
        while (k <= 8 && nearbyint(x * p10[k]) / p10[k] != x)
            k++;
        if (k > 8)
            continue; /* not a few-decimals value: the general path, checked above */
        snprintf(want, sizeof want, "%.*f", k, x);
        fr_fmt_double(got, sizeof got, x);
        cr_assert_str_eq(got, want, "%.17g", x);
        compared++;
    }
    cr_assert_gt(compared, 100000);
}

Test(numfmt, floats_round_trip_exactly)
{
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)next_u64();
        float x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x))
            continue;
        char buf[64];
        fr_fmt_float(buf, sizeof buf, x);
        float y = strtof(buf, NULL);
        cr_assert(memcmp(&x, &y, sizeof x) == 0, "%.9g printed as \"%s\"", (double)x, buf);
    }
}

/* The definition the float formatter implements: the first of %.6g .. %.9g that reads back. */
static void float_reference(char *buf, size_t n, float x)
{
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x)
            return;
    }
}

static void check_float_matches(float x)
{
    if (!isfinite(x))
        return; /* printed as null, checked above */
    char got[64], want[64];
    float_reference(want, sizeof want, x);
    fr_fmt_float(got, sizeof got, x);
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    cr_assert_str_eq(got, want, "%.9g (bits %08x)", (double)x, (unsigned)bits);
}

/* Its double-arithmetic fast path must print byte for byte what the definition prints: every
 * float32 bit pattern of a sample, feature-like values (decimals, small counts, probabilities),
 * and the places where the digit count or the notation changes. */
Test(numfmt, floats_print_exactly_as_the_shortest_g_definition)
{
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = (uint32_t)next_u64();
        float x;
        memcpy(&x, &bits, sizeof x);
        if (isfinite(x))
            check_float_matches(x);
    }
    for (int i = 0; i < 300000; i++) {
        long long m = (long long)(next_u64() % 2000000000ULL) - 1000000000LL;
        int k = (int)(next_u64() % 12);
        check_float_matches((float)((double)m / pow(10, k)));
        check_float_matches((float)((double)(next_u64() >> 11) / 9007199254740992.0)); /* [0, 1) */
    }
    for (int e = -45; e <= 38; e++)
        for (int d = 1; d <= 9; d++) {
            float x = (float)(d * pow(10, e));
            check_float_matches(x);
            check_float_matches(nextafterf(x, 0));
            check_float_matches(nextafterf(x, INFINITY));
            check_float_matches(-x);
        }
    static const float fixed[] = {0.1f, 0.5f, 1, 100000, 999999.5f, 1e6f, 9999999, 16777216,
                                  1e-4f, 9.9999997e-5f, 1e-5f, 3.4028235e38f, 1.4e-45f, -0.0f};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_float_matches(fixed[i]);
}

/* The definition the double formatter implements beyond its few-decimals path. */
static void double_reference(char *buf, size_t n, double x)
{
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

static void check_double_matches(double x)
{
    if (!isfinite(x))
        return;
    char got[64], want[64];
    fr_fmt_double(got, sizeof got, x);
    int k = 0; /* values with few decimals print in fixed form: checked above */
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    while (k <= 8 && nearbyint(x * p10[k]) / p10[k] != x)
        k++;
    if (k <= 8 && x != 0 && fabs(x) < 9e7)
        return;
    double_reference(want, sizeof want, x);
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    cr_assert_str_eq(got, want, "%.17g (bits %016llx)", x, (unsigned long long)bits);
}

/* Full-precision doubles (model scores, ratios) print byte for byte as the shortest-%g definition:
 * random bit patterns, uniform values at several magnitudes, subnormals, and powers of ten with
 * their neighbours (where the digit count and the notation change). */
Test(numfmt, doubles_print_exactly_as_the_shortest_g_definition)
{
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = next_u64();
        double x;
        memcpy(&x, &bits, sizeof x);
        check_double_matches(x);
        double u = (double)(next_u64() >> 11) / 9007199254740992.0;
        check_double_matches(u);
        check_double_matches(-u * 1e6);
        check_double_matches(u * 1e-300);
        check_double_matches(u * 4.9406564584124654e-324 * 1e10); /* subnormals */
    }
    /* exact ties at 17 digits: k + 0.25 / 0.75 with 16 integer digits (an ulp of 1/4 there) has
     * 18 significant digits ending in 5, so printf rounds it half to even */
    for (int i = 0; i < 20000; i++) {
        double k = (double)(1125899906842624ULL + next_u64() % 1125899906842624ULL); /* [2^50, 2^51) */
        check_double_matches(k + 0.25);
        check_double_matches(-(k + 0.75));
        check_double_matches((k + 0.25) * 1e-10); /* and scaled (no longer exact ties) */
    }
    for (int e = -320; e <= 308; e++) {
        double x = pow(10, e);
        check_double_matches(x);
        check_double_matches(nextafter(x, 0));
        check_double_matches(nextafter(x, INFINITY));
        check_double_matches(9.999999999999999 * x);
    }
}

/* fr_parse_int64, the config tables' strict integer parser: what strtoll skips or takes
 * (blanks, '+', "0x", trailing text, overflow) is refused. */
Test(numfmt, parse_int64_takes_digits_and_a_minus_only_where_allowed)
{
    int64_t v = 7;
    cr_assert(fr_parse_int64("9223372036854775807", false, &v) && v == INT64_MAX);
    cr_assert(fr_parse_int64("-9223372036854775808", true, &v) && v == INT64_MIN);
    cr_assert(fr_parse_int64("-12", true, &v) && v == -12);
    cr_assert(fr_parse_int64("0012", false, &v) && v == 12);
    const char *bad[] = {"", "-", " 1", "+1", "1 ", "0x1", "1e3", "9223372036854775808",
                         "-9223372036854775809", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        cr_assert(!fr_parse_int64(bad[i], true, &v), "\"%s\" accepted", bad[i]);
        cr_assert_eq(v, 7, "*out untouched");
    }
    cr_assert(!fr_parse_int64("-1", false, &v), "a '-' where negatives are not allowed");
}
