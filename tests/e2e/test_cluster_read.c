/* End-to-end tests of routed reads (fr_cluster_get) over two real freshetd nodes, each holding
 * one of two partitions: answers merged in request order, and a clear error when the nodes
 * answer from different registries. */
#include <stdio.h>
#include <string.h>

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
