/* Parser of partition set text ("0-7", "0,2,5"); see partset.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "partset.h"

static int number(const char **p, uint32_t *out)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s++ - '0');
        if (v > UINT32_MAX)
            return -1;
    }
    while (*s == ' ')
        s++;
    *p = s;
    *out = (uint32_t)v;
    return 0;
}

int fr_partset_parse(const char *text, uint32_t count, bool *member, char *why, size_t why_len)
{
    memset(member, 0, count * sizeof *member);
    const char *p = text ? text : "";
    while (*p == ' ')
        p++;
    if (!*p) {
        for (uint32_t i = 0; i < count; i++)
            member[i] = true;
        return 0;
    }
    for (;;) {
        uint32_t lo, hi;
        const char *at = p;
        if (number(&p, &lo)) {
            snprintf(why, why_len, "partitions \"%s\": expected a number at \"%.16s\"", text, at);
            return -1;
        }
        hi = lo;
        if (*p == '-') {
            p++;
            if (number(&p, &hi) || hi < lo) {
                snprintf(why, why_len, "partitions \"%s\": bad range at \"%.16s\"", text, at);
                return -1;
            }
        }
        if (hi >= count) {
            snprintf(why, why_len, "partitions \"%s\": %u is not below the partition count %u",
                     text, hi, count);
            return -1;
        }
        for (uint32_t i = lo; i <= hi; i++)
            member[i] = true;
        if (!*p)
            return 0;
        if (*p != ',') {
            snprintf(why, why_len, "partitions \"%s\": unexpected \"%.16s\"", text, p);
            return -1;
        }
        p++;
    }
}
