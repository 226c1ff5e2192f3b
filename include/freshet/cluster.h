/* libfreshet scale-out: publishing rows to NATS JetStream and reading from a partitioned cluster
 * (README, "Scaling out").
 *
 * Writes. A fr_publisher_t publishes each row as one JetStream message on subject
 * `freshet.<view>.<partition>` (partition from freshet/partition.h) whose payload is the protobuf
 * `Row` of schema/freshet.proto (view, entity, event_ts_us, values as a msgpack array in the
 * view's feature order) and whose `Nats-Msg-Id` header is
 *
 *     <view>/<fnv1a64(entity) hex>.<entity length>/<event_ts_us>/<fnv1a64(values) hex>
 *
 * so a row published twice within the stream's duplicate window (2 min) is stored once. Publishes
 * are asynchronous and batched; fr_publisher_put returns when JetStream has acknowledged every
 * row, re-sending unacknowledged ones (same Msg-Id) with backoff. A key's updates are never in
 * flight together: before a second row of the same (view, entity) is sent, every earlier row is
 * acknowledged, so retries cannot reorder a key's updates in the stream.
 *
 * Nodes (`freshetd --ingest`) consume their partitions and apply each message exactly once with
 * the stream position in the same LMDB transaction.
 *
 * Reads. A fr_cluster_t holds a partition map, a JSON document
 *
 *     {"partitions": 8, "nodes": [{"addr": "127.0.0.1:7101", "partitions": "0-3"},
 *                                  {"addr": "127.0.0.1:7102", "partitions": "4-7"},
 *                                  {"addr": "127.0.0.1:7103", "partitions": "0-7"}]}
 *
 * and routes each entity of a batched read to a node holding its partition (nodes listed first
 * are preferred; nodes holding the same partitions are replicas). A node that fails at the
 * transport level is skipped for 2 s and its entities are read from the next replica.
 *
 * Neither object is thread-safe: use one per thread.
 */
#ifndef FRESHET_CLUSTER_H
#define FRESHET_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshet/client.h"
#include "freshet/partition.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- publishing ---- */

typedef struct fr_publisher fr_publisher_t;

typedef struct {
    const char *url;          /* "nats://HOST:PORT", up to 16 separated by commas (README) */
    const char *stream;       /* NULL: "FRESHET" */
    uint32_t partition_count; /* P; 0: 8. Must match the nodes' partition_count */
    int replicas;             /* > 0: create the stream (subjects freshet.>) if it is missing */
    int timeout_ms;           /* connect and acknowledgement wait; 0: 10 s */
    int max_pending;          /* unacknowledged publishes in flight; 0: 8192 */
    int max_retries;          /* re-send rounds for unacknowledged rows; 0: 20 */
} fr_publisher_opts_t;

typedef struct {
    uint64_t published;  /* rows stored by JetStream as new messages */
    uint64_t duplicates; /* rows JetStream recognised by Msg-Id as already stored */
    uint64_t retries;    /* re-sends after a failed or missing acknowledgement */
    uint64_t last_seq;   /* highest stream sequence acknowledged */
} fr_publish_result_t;

/* Connects (and creates the stream when opts->replicas > 0). FR_E_BAD_ARG (url, stream name),
 * FR_E_IO (no NATS server reachable, stream missing or not creatable; reason in err), FR_E_NOMEM.
 * err (size err_len) may be NULL. */
int fr_publisher_new(const fr_publisher_opts_t *opts, fr_publisher_t **out, char *err,
                     size_t err_len);

/* Publishes rows (fr_put_row_t as for fr_client_put; offset is ignored: the stream sequence
 * becomes the offset) and waits until all are acknowledged. Counts are added to *out (may be
 * NULL). FR_E_BAD_ARG (a view name unusable in a subject, an empty entity, values that cannot
 * be packed: every row is checked before any is published, so nothing of the call is stored),
 * FR_E_IO (rows still unacknowledged after max_retries: some may be stored; calling again with
 * the same rows makes the same message ids, so it is safe within the duplicate window),
 * FR_E_NOMEM. */
int fr_publisher_put(fr_publisher_t *p, const fr_put_row_t *rows, size_t count,
                     fr_publish_result_t *out);

/* Writes the content part of the message id fr_publisher_put uses for a row whose packed values
 * are values[0..len) into buf (size n). fr_publisher_put appends "/<hex>", the FNV-1a 64 hash of
 * the same key's previous content id, when it published that key in the last 4 minutes (README,
 * "Producers"), so a repeated update is not taken for a duplicate. Exposed for other producers. */
void fr_publisher_msg_id(const char *view, const void *entity, size_t entity_len,
                         int64_t event_ts_us, const void *values, size_t values_len, char *buf,
                         size_t n);

typedef struct {
    uint64_t messages, first_seq, last_seq;
    int replicas;
    char leader[64]; /* server name of the stream's leader ("" when none) */
    int current;     /* replicas (other than the leader) reported current */
} fr_stream_info_t;

/* State of the stream. FR_E_IO (no answer, stream missing). */
int fr_publisher_stream_info(fr_publisher_t *p, fr_stream_info_t *out);

/* Last error's sentence; "" after success. Owned by p. */
const char *fr_publisher_error(const fr_publisher_t *p);
void fr_publisher_free(fr_publisher_t *p);

/* ---- reading from a cluster ---- */

typedef struct fr_cluster fr_cluster_t;

/* Loads a partition map from a file (or from a JSON string with fr_cluster_open_json). opts are
 * the connection options for every node (may be NULL). No connection is made yet. FR_E_BAD_ARG
 * (malformed map: the sentence in err names the field), FR_E_IO (file), FR_E_NOMEM. */
int fr_cluster_open(const char *map_path, const fr_client_opts_t *opts, fr_cluster_t **out,
                    char *err, size_t err_len);
int fr_cluster_open_json(const char *json, size_t len, const fr_client_opts_t *opts,
                         fr_cluster_t **out, char *err, size_t err_len);

/* A batched read routed by partition: req must have exactly one entity column (the entity whose
 * partition decides the node). Entities are sent to their nodes (one request per node) and the
 * answers merged into one result in the request's entity order. Unlike fr_client_get, values of
 * different nodes come from different snapshots (fr_result_snapshot returns 0). Errors: as
 * fr_client_get for errors a node decides; FR_E_BAD_ARG (not one entity column); FR_E_IO when
 * every node holding some partition failed. */
int fr_cluster_get(fr_cluster_t *cl, const fr_get_req_t *req, fr_result_t **out);

uint32_t fr_cluster_partition_count(const fr_cluster_t *cl);
/* Address of the node that answered partition p last (or would be tried first). */
const char *fr_cluster_node_for(const fr_cluster_t *cl, uint32_t partition);
const char *fr_cluster_error(const fr_cluster_t *cl);
void fr_cluster_free(fr_cluster_t *cl);

#ifdef __cplusplus
}
#endif
#endif
