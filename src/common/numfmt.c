/* Shortest round-trip number formatting (numfmt.h). printf's exact conversion is multi-precision
 * and, tried digit count by digit count with a strtod check each, cost ~1–2 µs per value; exports
 * format tens of millions of them. The fast paths below compute the same digits in double or
 * x87 extended arithmetic and keep snprintf for the cases they cannot settle. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numfmt.h"

/* Writes v in decimal with a NUL; returns the digit count (cheaper than snprintf's setup). */
static int u64_dec(char *out, unsigned long long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int k = 0; k < n; k++)
        out[k] = tmp[n - 1 - k];
    out[n] = 0;
    return n;
}

/* Fast path for the common case of a value with few decimals: if i / 10^k == x for an integer i
 * and the smallest such k <= 8, the decimal i·10^-k parses back to exactly x (strtod rounds the
 * exact decimal, the division rounds the same exact quotient), and it is the shortest such form.
 * Returns 0 when it does not apply. Exports format tens of millions of values: snprintf plus a
 * strtod check cost ~0.5 µs each; this is a few ns. */
static int fmt_double_fast(char *buf, size_t n, double x)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    if (n < 32 || !(fabs(x) < 9e15 / 1e8) || x == 0)
        return x == 0 && n >= 2 && !signbit(x) ? (buf[0] = '0', buf[1] = 0, 1) : 0;
    for (int k = 0; k <= 8; k++) {
        double y = x * p10[k];
        double r = nearbyint(y);
        /* If r / 10^k == x then y = fl(x * 10^k) is within about 2^-52 * r of r: a cheap
         * necessary condition that spares the division for most k. */
        if (fabs(y - r) > fabs(r) * 3e-16 || r / p10[k] != x)
            continue;
        long long i = (long long)r;
        char digits[24];
        int len = u64_dec(digits, i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i);
        char *o = buf;
        if (i < 0)
            *o++ = '-';
        if (k == 0) {
            memcpy(o, digits, (size_t)len + 1);
            return 1;
        }
        if (len <= k) { /* 0.00ddd */
            *o++ = '0';
            *o++ = '.';
            for (int z = 0; z < k - len; z++)
                *o++ = '0';
            memcpy(o, digits, (size_t)len + 1);
        } else {
            memcpy(o, digits, (size_t)(len - k));
            o += len - k;
            *o++ = '.';
            memcpy(o, digits + len - k, (size_t)k + 1);
        }
        return 1;
    }
    return 0;
}

/* Writes %.{p}g of the p-digit integer r (10^(p-1) <= r < 10^p) times 10^(e-p+1): fixed notation
 * when -4 <= e < p, otherwise d.ddde±XX; trailing zeros of the fraction dropped, as printf does. */
static void fmt_g_digits(char *o, int neg, unsigned long long r, int p, int e)
{
    char d[24];
    u64_dec(d, r);
    int last = p; /* digits kept: trailing zeros go */
    while (last > 1 && d[last - 1] == '0')
        last--;
    if (neg)
        *o++ = '-';
    if (e < -4 || e >= p) {
        *o++ = d[0];
        if (last > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)(last - 1));
            o += last - 1;
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        int ae = e < 0 ? -e : e;
        if (ae < 10)
            *o++ = '0';
        o += u64_dec(o, (unsigned long long)ae);
        *o = 0;
    } else if (e < 0) { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int z = 0; z < -e - 1; z++)
            *o++ = '0';
        memcpy(o, d, (size_t)last);
        o[last] = 0;
    } else { /* ddd.ddd */
        memcpy(o, d, (size_t)e + 1);
        o += e + 1;
        if (last > e + 1) {
            *o++ = '.';
            memcpy(o, d + e + 1, (size_t)(last - e - 1));
            o += last - e - 1;
        }
        *o = 0;
    }
}

/* x rounded to 17 significant digits, r17·10^(e-16) with 10^16 <= r17 < 10^17, as %.16e would
 * give it, without glibc's multi-precision conversion (~1 µs): in x87 extended precision 10^k is
 * exact up to 10^27 and |x|·10^k carries one rounding of 2^-64 relative, under 0.006 of a unit
 * of the 17th digit, so the rounding is exact unless the product is within 0.01 of a tie, which
 * is then settled exactly (below); exponents beyond that range are left to the caller's
 * fallback. 0 when it does not apply. */
static int digits17(double x, unsigned long long *r17, int *e, int *side)
{
#if LDBL_MANT_DIG >= 64
    static const long double p10l[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                       1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                       1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                       1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
    long double a = fabsl((long double)x);
    int ex = (int)floor(log10(fabs(x)));
    for (int tries = 0; tries < 3; tries++) {
        int k = 16 - ex;
        if (k < -27 || k > 27)
            return 0;
        long double y = k >= 0 ? a * p10l[k] : a / p10l[-k];
        long double whole = floorl(y), frac = y - whole;
        int up = frac > 0.5L;
        if (fabsl(frac - 0.5L) < 0.01L) {
            /* Near a tie: a·10^k is exactly y + err (fmal), so the sign of (y - (whole + 1/2))
             * + err, each term exact, says which side of the tie it is; a tie itself rounds to
             * even, as printf does. Quotients (k < 0) are left to the fallback. */
            if (k < 0)
                return 0;
            long double err = fmal(a, p10l[k], -y), beyond = (y - (whole + 0.5L)) + err;
            up = beyond > 0 || (beyond == 0 && fmodl(whole, 2.0L) != 0);
        }
        unsigned long long r = (unsigned long long)whole + (unsigned)up;
        /* Which side of r the exact value lies (for rounding r again to 15 or 16 digits, where
         * a final 5 or 50 is a tie only if x is exactly r): clear beyond the error bound, else
         * settled exactly as above; 2 = unknown. */
        long double rem = y - (whole + (long double)up);
        if (fabsl(rem) > 0.01L) {
            *side = rem > 0 ? 1 : -1;
        } else if (k >= 0) {
            long double exact = rem + fmal(a, p10l[k], -y);
            *side = exact > 0 ? 1 : exact < 0 ? -1 : 0;
        } else {
            *side = 2;
        }
        if (r >= 100000000000000000ULL) {
            ex++;
            continue;
        }
        if (r < 10000000000000000ULL) {
            ex--;
            continue;
        }
        *r17 = r;
        *e = ex;
        return 1;
    }
#else
    (void)x, (void)r17, (void)e, (void)side;
#endif
    return 0;
}

/* The shortest of %.15g .. %.17g that reads back as x, from x rounded once to 17 digits
 * (digits17, or %.16e) instead of up to three snprintf + strtod rounds: the 15- and 16-digit
 * forms are those digits rounded again. Rounding twice gives the same digits unless the dropped
 * digits are exactly a tie ("50" / "5"), where the exact value may lie on either side: digits17
 * says which; without it (the %.16e path) the snprintf path decides. 0 when it does not apply. */
static int fmt_double_17(char *buf, size_t n, double x)
{
    unsigned long long r17 = 0;
    int e = 0, side = 2; /* side: see digits17; the %.16e string does not tell */
    if (n < 40 || x == 0)
        return 0;
    if (!digits17(x, &r17, &e, &side)) {
        side = 2;
        char e17[40];
        if (snprintf(e17, sizeof e17, "%.16e", x) <= 0)
            return 0;
        const char *q = e17 + (e17[0] == '-');
        r17 = (unsigned long long)(q[0] - '0');
        for (int i = 2; i < 18; i++) /* d.dddddddddddddddd */
            r17 = r17 * 10 + (unsigned long long)(q[i] - '0');
        e = atoi(q + 19); /* after the 'e' */
    }
    static const unsigned long long p10[] = {1, 10, 100};
    int be;
    frexp(x, &be); /* |x| in [2^(be-1), 2^be): an ulp is 2^(be-53), or 2^-1074 below normals */
    double half_ulp = ldexp(1.0, (be < -1021 ? -1021 : be) - 54);
    for (int drop = 2; drop >= 1; drop--) { /* 15 digits, then 16 */
        unsigned long long head = r17 / p10[drop], tail = r17 % p10[drop];
        unsigned long long half = p10[drop] / 2;
        if (tail == half) { /* a tie in the 17 digits: the exact value decides */
            if (side == 2)
                return 0;
            head += side > 0 || (side == 0 && (head & 1)); /* an exact tie goes to even */
        } else {
            head += tail > half;
        }
        /* Most doubles need all 17 digits: skip the strtod when the shorter form is provably too
         * far from x to read back as x: it is at least (delta - 1/2) units of the 17th digit away
         * (a unit is |x| / r17, to 1e-16), and only what lies within half an ulp reads back. */
        unsigned long long delta = tail > half ? p10[drop] - tail : tail;
        if (((double)delta - 0.5) * (fabs(x) / (double)r17) > half_ulp * 1.01)
            continue;
        int p = 17 - drop, ep = e;
        if (head == 100000000000000000ULL / p10[drop]) { /* 99..9 rounded up to 10..0 */
            head /= 10;
            ep++;
        }
        fmt_g_digits(buf, x < 0, head, p, ep);
        if (strtod(buf, NULL) == x)
            return 1;
    }
    fmt_g_digits(buf, x < 0, r17, 17, e);
    return 1;
}

void fr_fmt_double(char *buf, size_t n, double x)
{
    if (!isfinite(x)) {
        snprintf(buf, n, "null");
        return;
    }
    if (fmt_double_fast(buf, n, x) || fmt_double_17(buf, n, x))
        return;
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
}

/* The shortest of %.6g .. %.9g that reads back as x, computed in double arithmetic instead of
 * up to four snprintf + strtof rounds (a float32 feature export spent most of its time there).
 * A float is exact in a double and 10^k is exact up to 10^22, so x·10^k carries one rounding
 * (relative 2^-53, below 1.2e-7 on a 9-digit integer part); a product that close to a rounding
 * boundary is left to the snprintf path, as is anything out of that exponent range. The result
 * is checked with one strtof. Returns 0 when it does not apply. */
static int fmt_float_fast(char *buf, size_t n, float x)
{
    static const double p10[] = {1,    1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double a = fabs((double)x);
    if (n < 32 || x == 0 || !(a >= 1e-13 && a < 1e13))
        return 0;
    int e0 = (int)floor(log10(a));
    for (int p = 6; p <= 9; p++) {
        int e = e0;
        unsigned long long r = 0;
        for (int tries = 0; tries < 3; tries++) {
            int k = p - 1 - e; /* scale so that p digits are left of the point */
            if (k < -22 || k > 22)
                return 0;
            double y = k >= 0 ? a * p10[k] : a / p10[-k];
            double f = y - floor(y);
            if (fabs(f - 0.5) < 1e-6)
                return 0; /* too near a tie to round in double */
            double rr = nearbyint(y);
            if (rr >= p10[p]) { /* rounded up to 10^p: one more integer digit */
                e++;
                continue;
            }
            if (rr < p10[p - 1]) { /* log10 overestimated the exponent */
                e--;
                continue;
            }
            r = (unsigned long long)rr;
            double back = k >= 0 ? rr / p10[k] : rr * p10[-k];
            if ((float)back != (float)a)
                break; /* not p digits: try p + 1 */
            fmt_g_digits(buf, signbit(x) != 0, r, p, e);
            return strtof(buf, NULL) == x;
        }
        if (r == 0)
            return 0;
    }
    return 0;
}

void fr_fmt_float(char *buf, size_t n, float x)
{
    if (!isfinite(x)) {
        snprintf(buf, n, "null");
        return;
    }
    if (fmt_float_fast(buf, n, x))
        return;
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x)
            break;
    }
}

bool fr_parse_int64(const char *s, bool allow_negative, int64_t *out)
{
    bool neg = allow_negative && *s == '-';
    const char *p = s + neg;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (!*p)
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = !neg ? (int64_t)v : v == limit ? INT64_MIN : -(int64_t)v;
    return true;
}
