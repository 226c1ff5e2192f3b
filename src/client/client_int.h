/* Private to src/client: the connection object and the request/reply plumbing shared by the
 * client's modules (client.c: transport; rw.c: put/get; admin.c: status, sources, schema). */
#ifndef FR_CLIENT_INT_H
#define FR_CLIENT_INT_H

#include "common/buf.h"
#include "freshet/client.h"
#include "proto/frame.h"
#include "registry/registry.h"

struct fr_client {
    int fd;
    int timeout_ms;
    size_t batch_rows;
    uint32_t next_id;
    fr_buf_t wbuf; /* frames queued for sending */
    fr_buf_t rbuf; /* body of the last reply */
    char err[512];
    fr_registry_t *registry; /* cached schema; NULL until needed */
    const char **feat_names; /* for fr_client_view_features */
    fr_type_t *feat_types;
    struct ssl_ctx_st *ssl_ctx; /* TLS (client.c); NULL for plaintext */
    struct ssl_st *ssl;
    struct bio_method_st *bio_meth;
    char role[16]; /* granted by Hello */
    /* The Column messages of the last Get/Export reply, raw and decoded (rw.c). A client repeats
     * its feature list, so a reply's columns usually match byte for byte and are copied instead
     * of decoded: for a one-entity read they are most of the reply. */
    struct {
        uint8_t *raw; /* the raw messages, back to back */
        size_t raw_cap;
        size_t *end; /* end offset of column i in raw */
        freshet_Column *cols;
        size_t n, cap;
    } colcache;
};

/* A client on socket fd (-1: none yet) with the defaults every connection starts from (timeout_ms
 * <= 0: 30 s); NULL without memory. fr_client_connect_opts and the fuzz targets, which read
 * crafted replies from a socketpair or need only a schema, start here. */
fr_client_t *fr_client_alloc(int fd, int timeout_ms);
int fr_client_failf(fr_client_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Encodes a request frame into wbuf; returns its id. */
uint32_t fr_client_queue(fr_client_t *c, uint16_t op, const pb_msgdesc_t *fields, const void *msg,
                         int *rc);
int fr_client_flush(fr_client_t *c);
/* Reads one reply frame into rbuf. */
int fr_client_recv(fr_client_t *c, fr_frame_t *f);
int fr_client_decode(fr_client_t *c, const pb_msgdesc_t *fields, void *resp);
int fr_client_call(fr_client_t *c, uint16_t op, const pb_msgdesc_t *req_fields, const void *req,
                   const pb_msgdesc_t *resp_fields, void *resp);
int fr_client_check(fr_client_t *c, bool has_code, int32_t code, const char *message);
void fr_client_schema_clear(fr_client_t *c);

/* Entity id lists as sent in Get, Export and Score requests. */
typedef struct {
    const fr_entity_col_t *cols;
    size_t count;
} fr_entity_cols_t;
/* nanopb encode callback for a repeated EntityColumn field; arg points to a fr_entity_cols_t. */
bool fr_client_enc_entity_cols(pb_ostream_t *stream, const pb_field_t *field, void *const *arg);
/* rw.c: a result whose entity i is row row_of[i] of parts[part_of[i]] (same columns in every
 * part). Takes the parts (freed with the result, or now on failure). FR_E_NOMEM, FR_E_BAD_ARG,
 * FR_E_INTERNAL when the parts' columns differ (nodes answering from different registries) or a
 * row is out of range. */
int fr_result_gather(fr_result_t **parts, size_t nparts, const uint32_t *part_of,
                     const uint32_t *row_of, size_t n, fr_result_t **out);

#endif
