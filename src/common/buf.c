/* fr_buf_t: geometric growth, optional cap. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "freshet/err.h"

void fr_buf_init(fr_buf_t *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void fr_buf_fini(fr_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int fr_buf_reserve(fr_buf_t *b, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return FR_E_TOO_LARGE;
    size_t need = b->len + n;
    if (b->max && need > b->max)
        return FR_E_TOO_LARGE;
    if (need <= b->cap)
        return FR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (b->max && cap > b->max)
        cap = b->max;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return FR_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return FR_OK;
}

int fr_buf_append(fr_buf_t *b, const void *p, size_t n)
{
    int rc = fr_buf_reserve(b, n);
    if (rc != FR_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return FR_OK;
}

int fr_buf_printf(fr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return FR_E_INTERNAL;
    int rc = fr_buf_reserve(b, (size_t)n + 1);
    if (rc != FR_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return FR_OK;
}
