/* The NATS server list, "nats://a:4222,nats://b:4222": how freshetd's `ingest` setting and
 * libfreshet's publisher URL are split and checked. One parser for both, so the config check at
 * start accepts exactly what the connector then uses. Header-only (no libnats): libfreshet does
 * not link src/net, and the config check does not link libnats. */
#ifndef FR_NET_NATS_LIST_H
#define FR_NET_NATS_LIST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define FR_NATS_URLS_MAX 16
#define FR_NATS_LIST_MAX 1024 /* bytes of the whole list, its NUL included */

typedef struct {
    char buf[FR_NATS_LIST_MAX];       /* the list, each URL NUL-terminated in place */
    const char *url[FR_NATS_URLS_MAX]; /* into buf */
    int count;
} fr_nats_list_t;

/* nats://HOST:PORT: HOST a name or IPv4 address ([A-Za-z0-9._-]) or [IPv6], PORT 1-65535. */
static inline bool fr_nats_url_ok(const char *u, size_t n)
{
    if (n < 7 || strncmp(u, "nats://", 7) != 0)
        return false;
    const char *h = u + 7, *end = u + n, *colon;
    if (h < end && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb || rb == h + 1 || rb + 1 >= end || rb[1] != ':')
            return false;
        colon = rb + 1;
    } else {
        colon = NULL;
        for (const char *q = h; q < end; q++)
            if (*q == ':')
                colon = q;
        if (!colon || colon == h)
            return false;
        for (const char *q = h; q < colon; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                  *q == '.' || *q == '-' || *q == '_'))
                return false;
    }
    const char *port = colon + 1;
    if (port >= end || end - port > 5)
        return false;
    long v = 0;
    for (const char *q = port; q < end; q++) {
        if (*q < '0' || *q > '9')
            return false;
        v = v * 10 + (*q - '0');
    }
    return v >= 1 && v <= 65535;
}

/* Splits list into l: up to FR_NATS_URLS_MAX URLs separated by commas, blanks around them
 * allowed. false with why naming the bad element (an empty one, a malformed URL, one too many,
 * a list too long); l is then unusable. */
static inline bool fr_nats_list_parse(const char *list, fr_nats_list_t *l, char *why, size_t why_len)
{
    l->count = 0;
    size_t len = strlen(list);
    if (len >= sizeof l->buf) {
        snprintf(why, why_len, "NATS URL list of %zu bytes: at most %zu", len, sizeof l->buf - 1);
        return false;
    }
    memcpy(l->buf, list, len + 1);
    for (char *p = l->buf;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        char *next = e;
        while (*next == ' ' || *next == '\t')
            next++;
        if (e == p) {
            snprintf(why, why_len,
                     "element %d is empty (the value is a comma-separated list of "
                     "nats://HOST:PORT, e.g. nats://127.0.0.1:4222,nats://10.0.0.2:4222)",
                     l->count + 1);
            return false;
        }
        if (!fr_nats_url_ok(p, (size_t)(e - p)) || (*next && *next != ',')) {
            size_t shown = (size_t)(e - p);
            snprintf(why, why_len,
                     "\"%.*s\" is not nats://HOST:PORT (the value is a comma-separated list of "
                     "them, e.g. nats://127.0.0.1:4222,nats://10.0.0.2:4222)",
                     (int)(shown > 64 ? 64 : shown), p);
            return false;
        }
        if (l->count == FR_NATS_URLS_MAX) {
            snprintf(why, why_len, "more than %d NATS URLs", FR_NATS_URLS_MAX);
            return false;
        }
        l->url[l->count++] = p;
        int last = !*next;
        *e = 0;
        if (last)
            return true;
        p = next + 1;
    }
}

#endif
