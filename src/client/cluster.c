/* libfreshet cluster reads (freshet/cluster.h): a partition map routes each entity of a batched
 * read to a node holding its partition; answers are merged in request order; a node failing at
 * the transport level is skipped for a while and its entities are read from a replica. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client_int.h"
#include "common/clock.h"
#include "common/partset.h"
#include "freshet/cluster.h"

#define NODE_DOWN_US 2000000

typedef struct {
    char addr[128];
    bool *member; /* partition_count entries */
    fr_client_t *client;
    bool reused; /* the last send went out on a connection kept from an earlier call */
    int64_t down_until_us;
} node_t;

struct fr_cluster {
    uint32_t pcount;
    node_t *nodes;
    size_t node_count;
    fr_client_opts_t opts;
    char token[512], tls_ca[512];
    char err[512];
};

static int failf(char *err, size_t n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t n, int code, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The first key of object o not in the NULL-terminated list known, or NULL. */
static const char *unknown_key(json_t *o, const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], k))
            i++;
        if (!known[i])
            return k;
    }
    return NULL;
}

void fr_cluster_free(fr_cluster_t *cl)
{
    if (!cl)
        return;
    for (size_t i = 0; i < cl->node_count; i++) {
        fr_client_free(cl->nodes[i].client);
        free(cl->nodes[i].member);
    }
    free(cl->nodes);
    free(cl);
}

int fr_cluster_open_json(const char *json, size_t len, const fr_client_opts_t *opts,
                         fr_cluster_t **out, char *err, size_t err_len)
{
    *out = NULL;
    json_error_t je;
    json_t *doc = json_loadb(json, len, 0, &je);
    if (!doc)
        return failf(err, err_len, FR_E_BAD_ARG, "partition map: line %d: %s", je.line, je.text);
    int rc = FR_OK;
    fr_cluster_t *cl = calloc(1, sizeof *cl);
    json_t *parts = json_object_get(doc, "partitions"), *nodes = json_object_get(doc, "nodes");
    if (!cl) {
        rc = FR_E_NOMEM;
        goto out;
    }
    if (!json_is_integer(parts) || json_integer_value(parts) < 1 ||
        json_integer_value(parts) > 65536) {
        rc = failf(err, err_len, FR_E_BAD_ARG, "partition map: \"partitions\": expected 1..65536");
        goto out;
    }
    const char *key = unknown_key(doc, (const char *const[]){"partitions", "nodes", NULL});
    if (key) {
        rc = failf(err, err_len, FR_E_BAD_ARG,
                   "partition map: unknown key \"%.64s\" (expected partitions, nodes)", key);
        goto out;
    }
    cl->pcount = (uint32_t)json_integer_value(parts);
    if (!json_is_array(nodes) || json_array_size(nodes) == 0) {
        rc = failf(err, err_len, FR_E_BAD_ARG,
                   "partition map: \"nodes\": expected a non-empty array");
        goto out;
    }
    cl->node_count = json_array_size(nodes);
    cl->nodes = calloc(cl->node_count, sizeof *cl->nodes);
    if (!cl->nodes) {
        rc = FR_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < cl->node_count; i++) {
        json_t *n = json_array_get(nodes, i);
        const char *addr = json_string_value(json_object_get(n, "addr"));
        json_t *ps = json_object_get(n, "partitions");
        node_t *nd = &cl->nodes[i];
        const char *nkey = unknown_key(n, (const char *const[]){"addr", "partitions", NULL});
        if (nkey) {
            rc = failf(err, err_len, FR_E_BAD_ARG,
                       "partition map: nodes[%zu]: unknown key \"%.64s\" (expected addr, partitions)",
                       i, nkey);
            goto out;
        }
        if (!addr || strlen(addr) >= sizeof nd->addr) {
            rc = failf(err, err_len, FR_E_BAD_ARG,
                       "partition map: nodes[%zu].addr: expected HOST:PORT", i);
            goto out;
        }
        snprintf(nd->addr, sizeof nd->addr, "%s", addr);
        nd->member = calloc(cl->pcount, sizeof *nd->member);
        if (!nd->member) {
            rc = FR_E_NOMEM;
            goto out;
        }
        char why[256];
        /* required, and never blank: a missing or misspelt key read as "every partition" would
         * silently route reads to a node that does not hold them */
        const char *pstext = json_string_value(ps);
        if (!pstext || !pstext[strspn(pstext, " ")]) {
            rc = failf(err, err_len, FR_E_BAD_ARG,
                       "partition map: nodes[%zu].partitions: expected "
                       "a string like \"0-3\" or \"0,2,5\"",
                       i);
            goto out;
        }
        if (fr_partset_parse(pstext, cl->pcount, nd->member, why, sizeof why)) {
            rc = failf(err, err_len, FR_E_BAD_ARG, "partition map: nodes[%zu]: %s", i, why);
            goto out;
        }
    }
    for (uint32_t p = 0; p < cl->pcount; p++) {
        bool held = false;
        for (size_t i = 0; i < cl->node_count; i++)
            held |= cl->nodes[i].member[p];
        if (!held) {
            rc = failf(err, err_len, FR_E_BAD_ARG, "partition map: no node holds partition %u", p);
            goto out;
        }
    }
    if (opts) {
        cl->opts = *opts;
        if (opts->token) {
            snprintf(cl->token, sizeof cl->token, "%s", opts->token);
            cl->opts.token = cl->token;
        }
        if (opts->tls_ca) {
            snprintf(cl->tls_ca, sizeof cl->tls_ca, "%s", opts->tls_ca);
            cl->opts.tls_ca = cl->tls_ca;
        }
        cl->opts.error = NULL;
        cl->opts.error_len = 0;
    }
out:
    json_decref(doc);
    if (rc != FR_OK) {
        fr_cluster_free(cl);
        return rc;
    }
    *out = cl;
    return FR_OK;
}

int fr_cluster_open(const char *map_path, const fr_client_opts_t *opts, fr_cluster_t **out,
                    char *err, size_t err_len)
{
    *out = NULL;
    FILE *f = fopen(map_path, "rb");
    if (!f)
        return failf(err, err_len, FR_E_IO, "partition map %s: cannot open", map_path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return FR_E_NOMEM;
            }
            buf = b;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    int rc = fr_cluster_open_json(buf, len, opts, out, err, err_len);
    free(buf);
    return rc;
}

uint32_t fr_cluster_partition_count(const fr_cluster_t *cl)
{
    return cl->pcount;
}
const char *fr_cluster_error(const fr_cluster_t *cl)
{
    return cl->err;
}

/* The node to try for partition p now: the first one holding p that is not resting after a
 * failure (or, if all are, the one whose rest ends first). -1 if excluded[] rules out all. */
static int pick_node(const fr_cluster_t *cl, uint32_t p, const bool *excluded, int64_t now)
{
    int best = -1;
    for (size_t i = 0; i < cl->node_count; i++) {
        const node_t *n = &cl->nodes[i];
        if (!n->member[p] || excluded[i])
            continue;
        if (n->down_until_us <= now)
            return (int)i;
        if (best < 0 || n->down_until_us < cl->nodes[best].down_until_us)
            best = (int)i;
    }
    return best;
}

const char *fr_cluster_node_for(const fr_cluster_t *cl, uint32_t partition)
{
    if (partition >= cl->pcount)
        return "";
    bool *none = calloc(cl->node_count, sizeof *none);
    if (!none)
        return "";
    int i = pick_node(cl, partition, none, fr_mono_us());
    free(none);
    return i < 0 ? "" : cl->nodes[i].addr;
}

static bool transport_error(int rc)
{
    return rc == FR_E_IO || rc == FR_E_CLOSED || rc == FR_E_TIMEOUT;
}

/* Records a failed exchange with node i; a broken connection is dropped (reconnected later). */
static int node_failed(fr_cluster_t *cl, node_t *nd, int rc)
{
    snprintf(cl->err, sizeof cl->err, "%s: %s", nd->addr,
             nd->client ? fr_client_error(nd->client) : "not connected");
    if (transport_error(rc)) {
        fr_client_free(nd->client);
        nd->client = NULL;
    }
    return rc;
}

/* Sends the Get of req's entities idx[0..n) to node i (connecting first); *id is its reply's. */
static int node_send(fr_cluster_t *cl, size_t i, const fr_get_req_t *req, const uint32_t *idx,
                     size_t n, const char **vals, size_t *lens, uint32_t *id)
{
    node_t *nd = &cl->nodes[i];
    int rc;
    nd->reused = nd->client != NULL;
    if (!nd->client) {
        rc = fr_client_connect_opts(nd->addr, &cl->opts, &nd->client);
        if (rc != FR_OK) {
            snprintf(cl->err, sizeof cl->err, "%s: cannot connect", nd->addr);
            return rc == FR_E_UNAUTHORIZED || rc == FR_E_BAD_ARG ? rc : FR_E_IO;
        }
    }
    const fr_entity_col_t *src = &req->entities[0];
    for (size_t k = 0; k < n; k++) {
        vals[k] = src->values[idx[k]];
        lens[k] = src->lens ? src->lens[idx[k]] : strlen(src->values[idx[k]]);
    }
    fr_entity_col_t col = {src->join_key, vals, lens, n};
    fr_get_req_t sub = *req;
    sub.entities = &col;
    sub.entity_col_count = 1;
    rc = fr_client_get_send(nd->client, &sub, id); /* encoded now: vals/lens may be reused */
    return rc == FR_OK ? FR_OK : node_failed(cl, nd, rc);
}

static int node_recv(fr_cluster_t *cl, size_t i, uint32_t id, fr_result_t **out)
{
    node_t *nd = &cl->nodes[i];
    int rc = fr_client_get_recv(nd->client, id, out);
    return rc == FR_OK ? FR_OK : node_failed(cl, nd, rc);
}

/* Node i failed at the transport level: skipped for NODE_DOWN_US, and excluded from this read,
 * so what it had is reassigned next round. */
static void node_down(fr_cluster_t *cl, size_t i, bool *excluded)
{
    cl->nodes[i].down_until_us = fr_mono_us() + NODE_DOWN_US;
    excluded[i] = true;
}

int fr_cluster_get(fr_cluster_t *cl, const fr_get_req_t *req, fr_result_t **out)
{
    *out = NULL;
    if (req->entity_col_count != 1)
        return failf(cl->err, sizeof cl->err, FR_E_BAD_ARG,
                     "cluster reads route by one entity column (got %zu)", req->entity_col_count);
    const fr_entity_col_t *col = &req->entities[0];
    size_t n = col->count, nn = cl->node_count;
    uint32_t *part = calloc(n ? n : 1, sizeof *part), *node_of = calloc(n ? n : 1, sizeof *node_of);
    uint32_t *part_of = calloc(n ? n : 1, sizeof *part_of),
             *row_of = calloc(n ? n : 1, sizeof *row_of);
    uint32_t *idx = calloc(n ? n : 1, sizeof *idx);
    const char **vals = calloc(n ? n : 1, sizeof *vals);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    bool *excluded = calloc(nn, sizeof *excluded), *done = calloc(n ? n : 1, sizeof *done);
    bool *sent = calloc(nn, sizeof *sent);
    size_t *start = calloc(nn, sizeof *start), *cnt = calloc(nn, sizeof *cnt);
    uint32_t *ids = calloc(nn, sizeof *ids);
    /* each failover round excludes a node, so at most nn rounds of at most nn answers */
    size_t nparts = 0, cap_parts = nn * nn + 1;
    fr_result_t **parts = calloc(cap_parts, sizeof *parts);
    int rc = FR_OK;
    if (!part || !node_of || !part_of || !row_of || !idx || !vals || !lens || !excluded || !done ||
        !parts || !sent || !start || !cnt || !ids) {
        rc = FR_E_NOMEM;
        goto out;
    }
    for (size_t e = 0; e < n; e++) {
        size_t len = col->lens ? col->lens[e] : strlen(col->values[e]);
        part[e] = fr_partition_of(col->values[e], len, cl->pcount);
    }
    size_t remaining = n;
    bool empty = n == 0; /* still ask one node: it checks the features and names the columns */
    while (remaining > 0 || empty) {
        int64_t now = fr_mono_us();
        /* assign every entity not yet read to a node */
        for (size_t e = 0; e < n; e++) {
            if (done[e])
                continue;
            int i = pick_node(cl, part[e], excluded, now);
            if (i < 0) {
                char last[sizeof cl->err]; /* cl->err is also the destination */
                snprintf(last, sizeof last, "%s", cl->err);
                rc = failf(cl->err, sizeof cl->err, FR_E_IO,
                           "no reachable node holds partition %u (last error: %.400s)", part[e],
                           last);
                goto out;
            }
            node_of[e] = (uint32_t)i;
        }
        int target = empty ? pick_node(cl, 0, excluded, now) : -1;
        if (empty && target < 0) {
            rc = failf(cl->err, sizeof cl->err, FR_E_IO, "no reachable node");
            goto out;
        }
        /* every node with entities gets its request before any reply is read: the nodes work
         * in parallel, and a round costs the slowest node, not the sum */
        size_t off = 0;
        memset(sent, 0, nn * sizeof *sent);
        for (size_t i = 0; i < nn; i++) {
            size_t k = 0;
            for (size_t e = 0; e < n; e++)
                if (!done[e] && node_of[e] == i)
                    idx[off + k++] = (uint32_t)e;
            start[i] = off;
            cnt[i] = k;
            off += k;
            if (k == 0 && !(empty && (int)i == target))
                continue;
            int grc = node_send(cl, i, req, idx + start[i], k, vals, lens, &ids[i]);
            if (transport_error(grc) && cl->nodes[i].reused) /* see the replies below */
                grc = node_send(cl, i, req, idx + start[i], k, vals, lens, &ids[i]);
            if (grc == FR_OK) {
                sent[i] = true;
            } else if (!transport_error(grc)) {
                rc = grc; /* still read the replies already asked for: connections stay in sync */
                break;
            } else {
                node_down(cl, i, excluded);
            }
        }
        for (size_t i = 0; i < nn; i++) {
            if (!sent[i])
                continue;
            fr_result_t *r = NULL;
            int grc = node_recv(cl, i, ids[i], &r);
            if (transport_error(grc) && cl->nodes[i].reused) {
                /* a connection kept from an earlier call fails when the node restarted since
                 * (the send still went into the socket): one fresh connection before the node is
                 * taken for down, or a restarted sole holder of a partition fails the read */
                grc = node_send(cl, i, req, idx + start[i], cnt[i], vals, lens, &ids[i]);
                if (grc == FR_OK)
                    grc = node_recv(cl, i, ids[i], &r);
            }
            if (grc != FR_OK) {
                if (!transport_error(grc)) {
                    if (rc == FR_OK)
                        rc = grc;
                } else {
                    node_down(cl, i, excluded);
                }
                continue;
            }
            cl->nodes[i].down_until_us = 0;
            parts[nparts] = r;
            for (size_t q = 0; q < cnt[i]; q++) {
                uint32_t e = idx[start[i] + q];
                done[e] = true;
                part_of[e] = (uint32_t)nparts;
                row_of[e] = (uint32_t)q;
            }
            nparts++;
            remaining -= cnt[i];
            empty = false;
        }
        if (rc != FR_OK)
            goto out;
    }
    rc = fr_result_gather(parts, nparts, part_of, row_of, n, out);
    memset(parts, 0, cap_parts * sizeof *parts); /* taken by gather */
    if (rc == FR_OK)
        cl->err[0] = 0;
    else if (rc == FR_E_INTERNAL)
        snprintf(cl->err, sizeof cl->err,
                 "the nodes answered with different columns for the same features: their "
                 "registries differ (apply the same registry to every node)");
out:
    for (size_t i = 0; parts && i < cap_parts; i++)
        fr_result_free(parts[i]);
    free(parts);
    free(part);
    free(node_of);
    free(part_of);
    free(row_of);
    free(idx);
    free(vals);
    free(lens);
    free(excluded);
    free(done);
    free(sent);
    free(start);
    free(cnt);
    free(ids);
    return rc;
}
