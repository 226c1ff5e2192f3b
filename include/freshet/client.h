/* libfreshet: the C client of freshetd.
 *
 * A fr_client_t is one TCP connection speaking the binary protocol of schema/freshet.proto. Calls
 * are blocking; batch calls pipeline several frames before reading replies. A client is not
 * thread-safe: use one per thread (or a fr_pool_t, which hands out clients to threads).
 *
 * Every call returns FR_OK or a negative fr_err_t. Errors decided by the server (UNKNOWN_VIEW,
 * TYPE_MISMATCH, FUTURE_EVENT, BUSY, ...) come back as the same code, and fr_client_error() returns
 * the server's sentence naming the offending field. Network failures are FR_E_IO / FR_E_CLOSED /
 * FR_E_TIMEOUT; after one of those the client must be freed and reconnected. The library never
 * aborts and never prints.
 *
 * Values: a read returns one fr_value_t per (entity, feature) cell with its status
 * (FR_STATUS_PRESENT, EXPIRED, NOT_FOUND, NULL) and the event timestamp of the version it came from.
 */
#ifndef FRESHET_CLIENT_H
#define FRESHET_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshet/err.h"
#include "freshet/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fr_client fr_client_t;

/* Connects to "HOST:PORT" (IPv4, IPv6 in brackets, or a name). timeout_ms bounds connect and every
 * later read/write (0 = 30 s). FR_E_BAD_ARG (address), FR_E_IO (refused/unreachable), FR_E_NOMEM.
 * Plaintext and without a token: fr_client_connect_opts with only timeout_ms set. */
int fr_client_connect(const char *addr, int timeout_ms, fr_client_t **out);

/* Connection options. Zero-initialise, then set what you need. Strings are read during the call
 * only. */
typedef struct {
    int timeout_ms;      /* as in fr_client_connect (0 = 30 s) */
    const char *token;   /* NULL/"": none; else sent in a Hello right after connecting */
    bool tls;            /* speak TLS (the server runs with tls_cert/tls_key) */
    const char *tls_ca;  /* PEM file of the CA (or self-signed certificate) to trust; NULL: the
                          * system's trust store. The name or IP in addr must match the cert. */
    bool tls_insecure;   /* do not verify the server's certificate at all: for tests only */
    char *error;         /* optional caller buffer: why the connection failed (TLS, token) */
    size_t error_len;
} fr_client_opts_t;

/* Connects with options: TCP, then the TLS handshake (opts->tls), then a Hello with opts->token.
 * opts may be NULL (defaults). FR_E_BAD_ARG (address, unreadable tls_ca, token too long), FR_E_IO
 * (refused/unreachable, TLS handshake or certificate verification failed), FR_E_CLOSED (the server
 * closed the connection during the handshake or the Hello), FR_E_UNAUTHORIZED (token not valid),
 * FR_E_TIMEOUT, FR_E_NOMEM. On failure *out is NULL and opts->error (if set) says why. A plaintext
 * client of a TLS-only server connects, then gets FR_E_IO/FR_E_CLOSED on its first request. */
int fr_client_connect_opts(const char *addr, const fr_client_opts_t *opts, fr_client_t **out);
/* Authenticates an open connection (what fr_client_connect_opts does with opts->token); a later
 * Hello replaces the connection's role. FR_E_UNAUTHORIZED (the server knows no such token; the
 * connection stays open but unauthenticated), FR_E_BAD_ARG (token too long), transport errors. */
int fr_client_hello(fr_client_t *c, const char *token);
/* The role the connection's token granted ("read", "write", "admin"; "admin" when the server
 * runs without auth; "" when no Hello was sent). Owned by c. */
const char *fr_client_role(const fr_client_t *c);
void fr_client_free(fr_client_t *c);

/* The last error's sentence (server message or local reason); "" after success. Valid until the
 * next call on c. */
const char *fr_client_error(const fr_client_t *c);

/* ---- registry ---- */

typedef struct {
    uint32_t views_added, features_added, entities_added, views_changed;
} fr_apply_result_t;

/* Applies a registry JSON document (`freshet apply`). Idempotent. FR_E_BAD_REGISTRY,
 * FR_E_INCOMPATIBLE (a type change, a removed feature), transport errors. */
int fr_client_apply(fr_client_t *c, const char *json, size_t len, bool dry_run,
                    fr_apply_result_t *out);

/* Features of a view in payload order, from the registry fetched from the server (cached; refreshed
 * by fr_client_refresh). *names and *types are owned by c and valid until the next refresh.
 * FR_E_UNKNOWN_VIEW. */
int fr_client_view_features(fr_client_t *c, const char *view, size_t *count,
                            const char *const **names, const fr_type_t **types);
/* Join key name of a view's entity ("card_id"), owned by c. FR_E_UNKNOWN_VIEW. */
int fr_client_view_join_key(fr_client_t *c, const char *view, const char **join_key);
/* Re-reads the registry from the server. */
int fr_client_refresh(fr_client_t *c);

/* ---- writes ---- */

typedef struct {
    const char *view;
    const void *entity;
    size_t entity_len;     /* 0 = strlen(entity) */
    int64_t event_ts_us;
    const fr_value_t *values; /* in the view's feature order; fewer than the view has = null */
    size_t value_count;
    int64_t offset;        /* stream offset, required when a source is given */
} fr_put_row_t;

typedef struct {
    uint64_t rows_written; /* new versions stored */
    uint64_t duplicates;   /* at or below the source's stored offset: skipped */
    uint64_t unchanged;    /* identical to the stored version with the same event time: skipped */
    int64_t high_water;    /* the source/partition position after the call; -1 without a source */
    size_t failed_row;     /* on a server rejection: index of the offending row in `rows` */
} fr_put_result_t;

/* Writes rows. With source != NULL, each row's offset is checked against the stored high-water
 * mark of (source, partition) in the same transaction (exactly-once). Rows are sent in frames of
 * at most batch_rows (fr_client_set_batch) pipelined up to 8 deep; each frame is atomic, so a call
 * with count <= batch_rows is all-or-nothing. Acknowledged means durable under the server's
 * durability mode. Server rejections: FR_E_UNKNOWN_VIEW, TYPE_MISMATCH, FUTURE_EVENT, BAD_REQUEST,
 * TOO_LARGE, BUSY (retry), STORAGE_FULL. */
int fr_client_put(fr_client_t *c, const char *source, uint32_t partition, const fr_put_row_t *rows,
                  size_t count, fr_put_result_t *out);
/* Rows per frame in fr_client_put (default 1000). */
void fr_client_set_batch(fr_client_t *c, size_t batch_rows);

/* ---- reads ---- */

typedef struct {
    const char *join_key;      /* "card_id"; NULL or "" = use for every view */
    const char *const *values; /* entity ids */
    const size_t *lens;        /* NULL = strlen each */
    size_t count;
} fr_entity_col_t;

typedef struct {
    const char *const *features; /* "view:feature" or "view" (all of its features) */
    size_t feature_count;
    const fr_entity_col_t *entities;
    size_t entity_col_count;
    bool has_as_of;
    int64_t as_of_us;     /* default: the server's now */
    bool include_expired; /* return EXPIRED values instead of withholding them */
    bool served;          /* training parity: ignore versions written after as_of */
} fr_get_req_t;

typedef struct fr_result fr_result_t;

/* Reads one consistent feature vector per entity (one server snapshot for the whole request).
 * *out is owned by the caller: fr_result_free. FR_E_UNKNOWN_VIEW, UNKNOWN_FEATURE, BAD_REQUEST,
 * TOO_LARGE, transport errors. */
int fr_client_get(fr_client_t *c, const fr_get_req_t *req, fr_result_t **out);
/* Pipelined: sends every request, then reads every reply. out[i] is NULL where reqs[i] failed;
 * returns the first error. */
int fr_client_get_many(fr_client_t *c, const fr_get_req_t *reqs, size_t n, fr_result_t **out);
/* fr_client_get in two halves, so one thread can have requests in flight on several connections
 * (the cluster client asks every node at once): send returns the request's id (transport errors
 * only), recv reads that reply (replies come back in sending order on a connection). */
int fr_client_get_send(fr_client_t *c, const fr_get_req_t *req, uint32_t *id);
int fr_client_get_recv(fr_client_t *c, uint32_t id, fr_result_t **out);

size_t fr_result_entity_count(const fr_result_t *r);
size_t fr_result_feature_count(const fr_result_t *r);
/* "view:feature" of column j. */
const char *fr_result_feature_name(const fr_result_t *r, size_t j);
fr_type_t fr_result_feature_type(const fr_result_t *r, size_t j);
/* Cell (entity i, feature j): status, event time (0 when NOT_FOUND) and value (type NONE unless
 * PRESENT, or EXPIRED with include_expired). Pointers inside *value live as long as r. */
int fr_result_cell(const fr_result_t *r, size_t i, size_t j, fr_value_t *value, int *status,
                   int64_t *event_ts_us);
/* Every cell as a float, for a model's input: out[i * feature_count + j] (row-major, entity i,
 * feature j) gets exactly the number fr_result_cell would return for (i, j) — float, double,
 * int64 and bool values converted to float — and `missing` where it returns none (NOT_FOUND,
 * withheld EXPIRED, NULL, a string, bytes or a list): NAN is XGBoost's "missing". status, if
 * not NULL, gets each cell's status in the same layout. Decodes straight from the reply (packed
 * runs are copied whole) without building the typed cells, which are decoded only if
 * fr_result_cell is called. FR_OK, FR_E_NOMEM. */
int fr_result_floats(const fr_result_t *r, float missing, float *out, uint8_t *status);
int64_t fr_result_as_of(const fr_result_t *r);
uint64_t fr_result_snapshot(const fr_result_t *r);
void fr_result_free(fr_result_t *r);

/* Written-at time (server clock at commit) of the version cell (i, j) came from; 0 if none.
 * Exports use it to count values learned after the label time (leakage in `event` mode). */
int64_t fr_result_written_at(const fr_result_t *r, size_t i, size_t j);

/* ---- exports (point-in-time joins and snapshots) ----
 *
 * An export is a sequence of chunk requests on one connection. The first chunk pins a server
 * snapshot that every later chunk of the export reads; the chunk with `end` set releases it. Send
 * chunks with fr_client_export_send (several may be in flight: pipelining keeps the server busy)
 * and read their results in the same order with fr_client_export_recv. */

typedef enum { FR_EXPORT_PIT = 1, FR_EXPORT_SNAPSHOT = 2 } fr_export_kind_t;

typedef struct {
    fr_export_kind_t kind;
    const char *const *features;
    size_t feature_count;
    /* PIT: label rows (entity ids per join key) and one label time per row */
    const fr_entity_col_t *entities;
    size_t entity_col_count;
    const int64_t *as_of_us;
    size_t row_count;
    /* SNAPSHOT: entities of the first feature's view, `limit` per chunk, after `cursor` */
    bool has_snapshot_as_of;
    int64_t snapshot_as_of_us;
    const void *cursor;
    size_t cursor_len;
    uint32_t limit;
    bool served;          /* also require written_at <= label time (what serving could see) */
    bool include_expired;
    bool end;             /* last chunk: release the pinned snapshot */
} fr_export_req_t;

/* Queues and sends one chunk; *id identifies its reply. Transport errors. */
int fr_client_export_send(fr_client_t *c, const fr_export_req_t *req, uint32_t *id);
/* Reads the reply of chunk id (replies come back in sending order). Errors as fr_client_get. */
int fr_client_export_recv(fr_client_t *c, uint32_t id, fr_result_t **out);
/* SNAPSHOT results: the entity of row i (bytes owned by r), the cursor for the next chunk (NULL
 * when done) and whether the scan is complete. */
const char *fr_result_entity(const fr_result_t *r, size_t i, size_t *len);
const void *fr_result_next_cursor(const fr_result_t *r, size_t *len);
bool fr_result_done(const fr_result_t *r);

/* ---- status ---- */

typedef struct {
    char name[72];
    uint64_t versions;
    int64_t newest_event_ts_us;
} fr_view_status_t;

typedef struct {
    char version[32];
    char durability[16];
    uint64_t map_size, map_used, last_txn, write_seq;
    int64_t server_time_us;
    size_t view_count;
    fr_view_status_t *views; /* owned by the struct: fr_server_status_fini */
    char *config;            /* effective server configuration, "name = value" lines; owned */
} fr_server_status_t;

int fr_client_status(fr_client_t *c, fr_server_status_t *out);
void fr_server_status_fini(fr_server_status_t *st);

/* Asks the server for a hot, consistent (compacting by default) copy of its whole store into
 * directory dest on the server's machine (must not exist or be empty). Blocks until the copy is
 * done; *bytes gets its size. FR_E_IO (dest unusable), FR_E_STORAGE, transport errors. */
int fr_client_backup(fr_client_t *c, const char *dest, bool compact, uint64_t *bytes,
                     uint64_t *duration_us);

typedef struct {
    char source[132];
    uint32_t partition;
    int64_t offset;
    bool has_lag; /* the server consumes this source from NATS (--ingest) */
    int64_t lag;  /* then: messages of the partition in the stream not yet applied (-1: unknown) */
} fr_source_pos_t;

/* Stored stream positions. *out is malloc'ed (free()). */
int fr_client_sources(fr_client_t *c, fr_source_pos_t **out, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
