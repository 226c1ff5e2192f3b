/* End-to-end tests of routed reads (fr_cluster_get) over two real freshetd nodes, each holding
 * one of two partitions: answers merged in request order, a clear error when the nodes answer
 * from different registries, a node restarted between reads, a peer that answers garbage, and
 * partition maps that must be refused. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "e2e/support/harness.h"
#include "freshet/cluster.h"
#include "freshet/partition.h"

#define REG_HEAD                                                                                   \
    "{\"entities\": [{\"name\": \"acct\", \"join_key\": \"acct_id\"}], \"views\": [{\"name\": "    \
    "\"v\", \"entity\": \"acct\", \"ttl\": \"0\", \"features\": [{\"name\": \"x\", \"type\": "     \
    "\"int64\"}"

static const char REG_X[] = REG_HEAD "]}]}";
/* the same view one feature later: what a node has while `apply` is rolled out node by node */
static const char REG_XY[] = REG_HEAD ", {\"name\": \"y\", \"type\": \"int64\"}]}]}";

typedef struct {
    fr_e2e_server_t *node[2];
    fr_cluster_t *cl;
    char ids[2][16]; /* ids[p] is in partition p of 2 */
} two_nodes_t;

/* Node p holds partition p of 2 and gets `registry[p]`; ids[p] is stored on node p with x = 10 + p. */
static void two_nodes(two_nodes_t *t, const char *const registry[2])
{
    for (int p = 0; p < 2; p++) {
        t->node[p] = fr_e2e_server_start(NULL);
        cr_assert_not_null(t->node[p], "freshetd %d did not start", p);
        for (int k = 0; t->ids[p][0] == 0; k++) {
            char id[16];
            snprintf(id, sizeof id, "a%d", k);
            if (fr_partition_of(id, strlen(id), 2) == (uint32_t)p)
                memcpy(t->ids[p], id, sizeof id);
        }
        fr_client_t *c = fr_e2e_connect(t->node[p]);
        fr_apply_result_t ar;
        cr_assert_eq(fr_client_apply(c, registry[p], strlen(registry[p]), false, &ar), FR_OK, "%s",
                     fr_client_error(c));
        fr_value_t x = {.type = FR_TYPE_INT64, .u.i64 = 10 + p};
        fr_put_row_t row = {.view = "v", .entity = t->ids[p], .event_ts_us = fr_e2e_now_us() - 1000000,
                            .values = &x, .value_count = 1};
        fr_put_result_t pr;
        cr_assert_eq(fr_client_put(c, NULL, 0, &row, 1, &pr), FR_OK, "%s", fr_client_error(c));
        fr_client_free(c);
    }
    char map[512], err[256] = "";
    snprintf(map, sizeof map,
             "{\"partitions\": 2, \"nodes\": [{\"addr\": \"%s\", \"partitions\": \"0\"},"
             " {\"addr\": \"%s\", \"partitions\": \"1\"}]}",
             t->node[0]->addr, t->node[1]->addr);
    cr_assert_eq(fr_cluster_open_json(map, strlen(map), NULL, &t->cl, err, sizeof err), FR_OK,
                 "%s", err);
}

static void two_nodes_stop(two_nodes_t *t)
{
    fr_cluster_free(t->cl);
    for (int p = 0; p < 2; p++) {
        cr_assert_eq(fr_e2e_server_stop(t->node[p]), 0, "freshetd %d exit status", p);
        fr_e2e_server_free(t->node[p]);
    }
}

static int routed_get(two_nodes_t *t, const char *feature, fr_result_t **r)
{
    const char *ids[] = {t->ids[1], t->ids[0]}; /* request order differs from node order */
    fr_entity_col_t col = {.values = ids, .count = 2};
    fr_get_req_t req = {.features = &feature, .feature_count = 1, .entities = &col,
                        .entity_col_count = 1};
    return fr_cluster_get(t->cl, &req, r);
}

Test(cluster_read, answers_from_two_nodes_merge_in_request_order, .timeout = 60)
{
    two_nodes_t t = {0};
    two_nodes(&t, (const char *const[]){REG_X, REG_X});
    fr_result_t *r = NULL;
    cr_assert_eq(routed_get(&t, "v", &r), FR_OK, "%s", fr_cluster_error(t.cl));
    cr_assert_eq(fr_result_entity_count(r), 2);
    for (size_t i = 0; i < 2; i++) {
        fr_value_t v;
        int st;
        fr_result_cell(r, i, 0, &v, &st, NULL);
        cr_assert_eq(st, FR_STATUS_PRESENT, "entity %zu", i);
        cr_assert_eq(v.u.i64, i == 0 ? 11 : 10, "entity %zu comes from its own node", i);
    }
    fr_result_free(r);
    two_nodes_stop(&t);
}

/* Regression: nodes answering a whole-view read with different columns (one has a feature the
 * other does not yet) failed as NOMEM, "out of memory". Now INTERNAL, naming the registries. */
Test(cluster_read, nodes_with_different_registries_are_named_not_out_of_memory, .timeout = 60)
{
    two_nodes_t t = {0};
    two_nodes(&t, (const char *const[]){REG_X, REG_XY});
    fr_result_t *r = NULL;
    int rc = routed_get(&t, "v", &r);
    cr_assert_eq(rc, FR_E_INTERNAL, "whole view: %s", fr_err_name(rc));
    cr_assert(strstr(fr_cluster_error(t.cl), "registries differ"), "%s", fr_cluster_error(t.cl));
    cr_assert_null(r);
    /* a feature both nodes have still reads */
    cr_assert_eq(routed_get(&t, "v:x", &r), FR_OK, "%s", fr_cluster_error(t.cl));
    cr_assert_eq(fr_result_feature_count(r), 1);
    fr_result_free(r);
    two_nodes_stop(&t);
}

/* Regression: the cluster kept each node's connection between calls, so the first read after a
 * node restarted went out on the dead connection, the node was taken for down, and a partition
 * only it holds failed with IO ("no reachable node") although the node was up. */
Test(cluster_read, a_node_restarted_between_reads_is_reconnected, .timeout = 60)
{
    two_nodes_t t = {0};
    two_nodes(&t, (const char *const[]){REG_X, REG_X});
    fr_result_t *r = NULL;
    cr_assert_eq(routed_get(&t, "v:x", &r), FR_OK, "%s", fr_cluster_error(t.cl));
    fr_result_free(r);
    fr_e2e_server_t *n1 = t.node[1]; /* restarted on the same port, as a service manager would */
    n1->args[n1->arg_count++] = strdup("--listen");
    n1->args[n1->arg_count++] = strdup(n1->addr);
    cr_assert_eq(fr_e2e_server_stop(n1), 0);
    cr_assert_eq(fr_e2e_server_restart(n1), 0, "restart");
    for (int k = 0; k < 2; k++) {
        int rc = routed_get(&t, "v:x", &r);
        cr_assert_eq(rc, FR_OK, "read %d after the restart: %s: %s", k, fr_err_name(rc),
                     fr_cluster_error(t.cl));
        fr_value_t v;
        int st;
        fr_result_cell(r, 0, 0, &v, &st, NULL);
        cr_assert(st == FR_STATUS_PRESENT && v.u.i64 == 11, "the restarted node's row");
        fr_result_free(r);
    }
    two_nodes_stop(&t);
}

/* A peer on the map that accepts a connection and answers every request with bytes that are not
 * a frame. */
static void *garbage_peer(void *arg)
{
    int lfd = *(int *)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[4096];
        static const char junk[64] = "HTTP/1.1 400 Bad Request\r\n\r\nnot a freshet frame at all";
        while (read(fd, buf, sizeof buf) > 0)
            if (write(fd, junk, sizeof junk) < 0)
                break;
        close(fd);
    }
}

/* Regression: a node answering with something that is not a frame failed every read with
 * BAD_REQUEST ("reply frame too large"), kept the out-of-step connection, and never tried the
 * replica. Now it is an IO error on a closed connection, and the read fails over. */
Test(cluster_read, a_peer_answering_garbage_is_failed_over, .timeout = 60)
{
    two_nodes_t t = {0};
    two_nodes(&t, (const char *const[]){REG_X, REG_X});
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 4) == 0 &&
              getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, garbage_peer, &lfd), 0);
    fr_cluster_free(t.cl);
    char map[640], err[256] = "";
    snprintf(map, sizeof map,
             "{\"partitions\": 2, \"nodes\": [{\"addr\": \"127.0.0.1:%u\", \"partitions\": \"0-1\"},"
             " {\"addr\": \"%s\", \"partitions\": \"0\"}, {\"addr\": \"%s\", \"partitions\": \"1\"}]}",
             (unsigned)ntohs(sa.sin_port), t.node[0]->addr, t.node[1]->addr);
    cr_assert_eq(fr_cluster_open_json(map, strlen(map), NULL, &t.cl, err, sizeof err), FR_OK, "%s", err);
    for (int k = 0; k < 3; k++) {
        fr_result_t *r = NULL;
        int rc = routed_get(&t, "v:x", &r);
        cr_assert_eq(rc, FR_OK, "read %d: %s: %s", k, fr_err_name(rc), fr_cluster_error(t.cl));
        fr_value_t v;
        int st;
        fr_result_cell(r, 1, 0, &v, &st, NULL);
        cr_assert(st == FR_STATUS_PRESENT && v.u.i64 == 10, "read %d: from the real node", k);
        fr_result_free(r);
    }
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(th, NULL);
    two_nodes_stop(&t);
}

static int open_map(const char *map, char *err, size_t n)
{
    fr_cluster_t *cl = NULL;
    int rc = fr_cluster_open_json(map, strlen(map), NULL, &cl, err, n);
    fr_cluster_free(cl);
    return rc;
}

/* Regression: a node without "partitions" (a missing, misspelt or blank key) was taken to hold
 * every partition, so reads of partitions it does not hold went to it and came back NOT_FOUND. */
Test(cluster_read, a_map_node_must_name_its_partitions)
{
    static const char *const bad[][2] = {
        {"{\"partitions\": 8, \"nodes\": [{\"addr\": \"h:1\", \"partiton\": \"4-7\"},"
         " {\"addr\": \"h:2\", \"partitions\": \"0-7\"}]}", "nodes[0]: unknown key \"partiton\""},
        {"{\"partitions\": 8, \"nodes\": [{\"addr\": \"h:1\"}, {\"addr\": \"h:2\", \"partitions\": \"0-7\"}]}",
         "nodes[0].partitions"},
        {"{\"partitions\": 8, \"nodes\": [{\"addr\": \"h:1\", \"partitions\": \"  \"}]}",
         "nodes[0].partitions"},
        {"{\"partitions\": 8, \"node\": [], \"nodes\": [{\"addr\": \"h:1\", \"partitions\": \"0-7\"}]}",
         "unknown key \"node\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        cr_assert_eq(open_map(bad[i][0], err, sizeof err), FR_E_BAD_ARG, "map %zu", i);
        cr_assert(strstr(err, bad[i][1]), "map %zu: %s", i, err);
    }
    char err[256] = "";
    cr_assert_eq(open_map("{\"partitions\": 8, \"nodes\": [{\"addr\": \"h:1\", \"partitions\": \"0-7\"}]}",
                          err, sizeof err),
                 FR_OK, "%s", err);
}

/* Regression: with more than 1024 nodes fr_cluster_node_for answered nodes[0] for any partition. */
Test(cluster_read, node_for_is_right_with_more_than_1024_nodes)
{
    size_t cap = 1100 * 64;
    char *map = malloc(cap), err[256] = "";
    size_t off = (size_t)snprintf(map, cap, "{\"partitions\": 2, \"nodes\": [");
    for (int i = 0; i < 1025; i++)
        off += (size_t)snprintf(map + off, cap - off, "%s{\"addr\": \"10.0.0.%d:%d\", \"partitions\": \"%d\"}",
                                i ? ", " : "", i % 250, 1000 + i, i == 1024 ? 1 : 0);
    snprintf(map + off, cap - off, "]}");
    fr_cluster_t *cl = NULL;
    cr_assert_eq(fr_cluster_open_json(map, strlen(map), NULL, &cl, err, sizeof err), FR_OK, "%s", err);
    cr_assert_str_eq(fr_cluster_node_for(cl, 0), "10.0.0.0:1000");
    cr_assert_str_eq(fr_cluster_node_for(cl, 1), "10.0.0.24:2024", "the only holder of partition 1");
    fr_cluster_free(cl);
    free(map);
}

/* Regression: "no reachable node" formatted the cluster's last error into itself (overlapping
 * snprintf), so the cause was lost: "... (last error: no reachable node holds ... (last error: )". */
Test(cluster_read, a_partition_with_no_live_node_names_the_last_cause, .timeout = 60)
{
    two_nodes_t t = {0};
    two_nodes(&t, (const char *const[]){REG_X, REG_X});
    char addr[128];
    snprintf(addr, sizeof addr, "%s", t.node[1]->addr);
    cr_assert_eq(fr_e2e_server_stop(t.node[1]), 0);
    fr_result_t *r = NULL;
    cr_assert_eq(routed_get(&t, "v:x", &r), FR_E_IO);
    const char *err = fr_cluster_error(t.cl);
    char want[192];
    snprintf(want, sizeof want, "no reachable node holds partition 1 (last error: %s: ", addr);
    cr_assert(strstr(err, want) && !strstr(strstr(err, want) + 1, "no reachable"), "%s", err);
    cr_assert_eq(fr_e2e_server_restart(t.node[1]), 0); /* for two_nodes_stop */
    two_nodes_stop(&t);
}
