/* The NATS server list of freshetd's consumer (--ingest) and libfreshet's publisher: one place
 * for how "nats://a:4222,nats://b:4222" becomes natsOptions. Header-only so that libfreshet, which
 * does not link src/net, can use it too. Include after <nats/nats.h>. */
#ifndef FR_NET_NATS_SERVERS_H
#define FR_NET_NATS_SERVERS_H

#include <stdio.h>
#include <string.h>

/* natsOptions_SetURL takes one URL: a comma- or space-separated list (up to 16) goes through
 * SetServers. NATS_INVALID_ARG for an empty list. */
static inline natsStatus fr_nats_set_servers(natsOptions *o, const char *list)
{
    char buf[1024];
    const char *urls[16];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t && n < 16;
         t = strtok_r(NULL, ", ", &save))
        urls[n++] = t;
    if (n == 0)
        return NATS_INVALID_ARG;
    return natsOptions_SetServers(o, urls, n);
}

#endif
