/* Streaming JSON text for CLI output: escaped strings and values (numbers via common/numfmt),
 * written straight to a FILE so large exports never build a document in memory. */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "common/numfmt.h"
#include "common/utf8.h"

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
            if (ch < 0x20) {
                fprintf(out, "\\u%04x", ch);
            } else if (ch < 0x80) {
                fputc(ch, out);
            } else {
                size_t k = fr_utf8_seq((const unsigned char *)s + i, n - i);
                if (k == 0) {
                    fputs(FR_UTF8_REPLACEMENT_ESC, out);
                } else {
                    fwrite(s + i, 1, k, out);
                    i += k - 1;
                }
            }
        }
    }
    fputc('"', out);
}

const char *fr_cli_nonfinite_text(const fr_value_t *v)
{
    double x = v->type == FR_TYPE_DOUBLE ? v->u.f64 : v->type == FR_TYPE_FLOAT ? v->u.f32 : 0;
    if (isfinite(x))
        return NULL;
    return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf";
}

bool fr_cli_scalar_value(FILE *out, const fr_value_t *v)
{
    char num[40];
    switch (v->type) {
    case FR_TYPE_INT64:
        fprintf(out, "%lld", (long long)v->u.i64);
        return true;
    case FR_TYPE_DOUBLE:
        fr_fmt_double(num, sizeof num, v->u.f64);
        fputs(num, out);
        return true;
    case FR_TYPE_FLOAT:
        fr_fmt_float(num, sizeof num, v->u.f32);
        fputs(num, out);
        return true;
    case FR_TYPE_BOOL:
        fputs(v->u.b ? "true" : "false", out);
        return true;
    default:
        return false;
    }
}

void fr_cli_json_value(FILE *out, const fr_value_t *v)
{
    if (fr_cli_scalar_value(out, v))
        return;
    char num[40];
    switch (v->type) {
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        fr_cli_json_str(out, v->u.str, v->len);
        return;
    case FR_TYPE_FLOAT_LIST:
        fputc('[', out);
        for (uint32_t i = 0; i < v->len; i++) {
            fr_fmt_float(num, sizeof num, v->u.floats[i]);
            fprintf(out, "%s%s", i ? ", " : "", num);
        }
        fputc(']', out);
        return;
    default:
        fputs("null", out);
    }
}
