/* The NATS server list of freshetd's consumer (--ingest) and libfreshet's publisher: one place
 * for how "nats://a:4222,nats://b:4222" becomes natsOptions. Header-only so that libfreshet, which
 * does not link src/net, can use it too. Include after <nats/nats.h>. */
#ifndef FR_NET_NATS_SERVERS_H
#define FR_NET_NATS_SERVERS_H

#include "net/nats_list.h"

/* natsOptions_SetURL takes one URL: the list (nats_list.h) goes through SetServers.
 * NATS_INVALID_ARG, with why, for a list fr_nats_list_parse refuses. */
static inline natsStatus fr_nats_set_servers(natsOptions *o, const char *list, char *why,
                                             size_t why_len)
{
    fr_nats_list_t l;
    if (!fr_nats_list_parse(list, &l, why, why_len))
        return NATS_INVALID_ARG;
    return natsOptions_SetServers(o, l.url, l.count);
}

#endif
