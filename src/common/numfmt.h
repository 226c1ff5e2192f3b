/* Numbers as text: the shortest decimal that reads back as exactly the same double or float,
 * as `printf("%.{p}g")` prints it for the smallest such p (15..17 for doubles, 6..9 for floats;
 * values with few decimals in plain fixed form). Shared by the CLI's CSV/JSON output and the
 * server's HTTP JSON, which must print the same value the same way. Non-finite values print as
 * `null`: JSON has no NaN or infinity. And the strict integer parser of the config tables. No I/O,
 * no allocation. */
#ifndef FR_COMMON_NUMFMT_H
#define FR_COMMON_NUMFMT_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether x converts to a finite float32: a larger value would be stored as an infinity, so
 * every input path (put, HTTP push) refuses it. */
static inline bool fr_float32_fits(double x)
{
    return isfinite(x) && fabs(x) <= FLT_MAX;
}

/* Write into buf (n >= 40 for the fast paths; smaller buffers get the same text via snprintf,
 * truncated to n). */
void fr_fmt_double(char *buf, size_t n, double x);
void fr_fmt_float(char *buf, size_t n, float x);

/* Parses s as a decimal integer and nothing else: digits, after one '-' only when allow_negative.
 * Unlike strtoll, a blank, a '+', "0x", trailing text, an empty string and a value beyond int64
 * are refused (false, *out untouched). */
bool fr_parse_int64(const char *s, bool allow_negative, int64_t *out);

#endif
