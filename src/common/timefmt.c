/* RFC 3339 timestamps and short durations, parsed strictly and bounded in length. */
#include <stdio.h>
#include <string.h>

#include "freshet/err.h"
#include "timefmt.h"

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int parse_int_us(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len || len - i > 19)
        return FR_E_BAD_ARG;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FR_E_BAD_ARG;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return FR_E_BAD_ARG;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return FR_OK;
}

int fr_time_parse(const char *s, size_t len, int64_t *out_us)
{
    if (len == 0 || len > 40)
        return FR_E_BAD_ARG;
    if (len < 19 || s[4] != '-')
        return parse_int_us(s, len, out_us);
    int Y, M, D, h, mi, sec;
    if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return FR_E_BAD_ARG;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || sec > 60)
        return FR_E_BAD_ARG;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap)
        return FR_E_BAD_ARG;
    size_t i = 19;
    int64_t frac_us = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t nd = 0;
        int64_t scale = 100000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nd < 6) {
                frac_us += (s[i] - '0') * scale;
                scale /= 10;
            }
            nd++;
            i++;
        }
        if (nd == 0 || nd > 9)
            return FR_E_BAD_ARG;
    }
    int64_t off_s = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i != 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return FR_E_BAD_ARG;
        off_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return FR_E_BAD_ARG; /* a timestamp without a zone is ambiguous */
    }
    if (i != len)
        return FR_E_BAD_ARG;
    int64_t days = days_from_civil(Y, M, D);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *out_us = secs * 1000000 + frac_us;
    return FR_OK;
}

/* Writes v as exactly `width` decimal digits (zero-padded); returns the end. */
static char *put_digits(char *o, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

void fr_time_format(int64_t us, char out[32])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) { /* beyond 4-digit years (still under 32 bytes for any int64) */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ", (long long)y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)frac);
        size_t n = strlen(tmp) < 31 ? strlen(tmp) : 31;
        memcpy(out, tmp, n);
        out[n] = 0;
        return;
    }
    /* By hand: responses print one timestamp per value, and snprintf was ~1 µs of each. */
    char *o = out;
    o = put_digits(o, (unsigned)y, 4);
    *o++ = '-';
    o = put_digits(o, (unsigned)m, 2);
    *o++ = '-';
    o = put_digits(o, (unsigned)d, 2);
    *o++ = 'T';
    o = put_digits(o, (unsigned)(rem / 3600), 2);
    *o++ = ':';
    o = put_digits(o, (unsigned)(rem / 60 % 60), 2);
    *o++ = ':';
    o = put_digits(o, (unsigned)(rem % 60), 2);
    *o++ = '.';
    o = put_digits(o, (unsigned)frac, 6);
    *o++ = 'Z';
    *o = 0;
}

int fr_duration_parse(const char *s, int64_t *out_us)
{
    size_t len = strlen(s);
    if (len == 0 || len > 24)
        return FR_E_BAD_ARG;
    size_t i = 0;
    uint64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (v > 1000000000000ULL)
            return FR_E_BAD_ARG;
        v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (i == 0)
        return FR_E_BAD_ARG;
    const char *unit = s + i;
    uint64_t mul;
    if (*unit == 0 || strcmp(unit, "s") == 0)
        mul = 1000000;
    else if (strcmp(unit, "ms") == 0)
        mul = 1000;
    else if (strcmp(unit, "us") == 0)
        mul = 1;
    else if (strcmp(unit, "m") == 0)
        mul = 60000000ULL;
    else if (strcmp(unit, "h") == 0)
        mul = 3600000000ULL;
    else if (strcmp(unit, "d") == 0)
        mul = 86400000000ULL;
    else if (strcmp(unit, "w") == 0)
        mul = 604800000000ULL;
    else
        return FR_E_BAD_ARG;
    if (v > (uint64_t)INT64_MAX / mul)
        return FR_E_BAD_ARG;
    *out_us = (int64_t)(v * mul);
    return FR_OK;
}

void fr_duration_format(int64_t us, char out[32])
{
    static const struct {
        int64_t mul;
        const char *unit;
    } units[] = {{86400000000LL, "d"}, {3600000000LL, "h"}, {60000000LL, "m"},
                 {1000000LL, "s"},     {1000LL, "ms"},      {1, "us"}};
    if (us == 0) {
        snprintf(out, 32, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (us % units[i].mul == 0) {
            snprintf(out, 32, "%lld%s", (long long)(us / units[i].mul), units[i].unit);
            return;
        }
}
