/* Streaming JSON text for CLI output: shortest round-trip numbers and escaped strings, written
 * straight to a FILE so large exports never build a document in memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void fr_cli_json_str(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (ch < 0x20)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

void fr_cli_fmt_double(char *buf, size_t n, double x)
{
    if (!isfinite(x)) {
        snprintf(buf, n, "null");
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
}

void fr_cli_fmt_float(char *buf, size_t n, float x)
{
    if (!isfinite(x)) {
        snprintf(buf, n, "null");
        return;
    }
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x)
            break;
    }
}

void fr_cli_json_value(FILE *out, const fr_value_t *v)
{
    char num[40];
    switch (v->type) {
    case FR_TYPE_INT64:
        fprintf(out, "%lld", (long long)v->u.i64);
        return;
    case FR_TYPE_DOUBLE:
        fr_cli_fmt_double(num, sizeof num, v->u.f64);
        fputs(num, out);
        return;
    case FR_TYPE_FLOAT:
        fr_cli_fmt_float(num, sizeof num, v->u.f32);
        fputs(num, out);
        return;
    case FR_TYPE_BOOL:
        fputs(v->u.b ? "true" : "false", out);
        return;
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        fr_cli_json_str(out, v->u.str, v->len);
        return;
    case FR_TYPE_FLOAT_LIST:
        fputc('[', out);
        for (uint32_t i = 0; i < v->len; i++) {
            fr_cli_fmt_float(num, sizeof num, v->u.floats[i]);
            fprintf(out, "%s%s", i ? ", " : "", num);
        }
        fputc(']', out);
        return;
    default:
        fputs("null", out);
    }
}
