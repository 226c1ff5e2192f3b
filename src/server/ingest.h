/* The NATS JetStream consumer of freshetd (--ingest; README, "Scaling out"; DESIGN.md, "Scaling
 * past one machine"). One ordered consumer per partition p of the node, filter `freshet.*.<p>`,
 * starting after the partition's stored position (source "nats:<stream>", partition p, offset = the
 * stream sequence of the last applied message). Messages are protobuf `Row`s; each batch of a
 * partition is applied by the writer thread together with its new position in one LMDB transaction,
 * one batch per partition at a time, so a key's updates apply in stream order and exactly once. */
#ifndef FR_SERVER_INGEST_H
#define FR_SERVER_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "registry/registry.h"
#include "store/store.h"

typedef struct fr_server fr_server_t;

/* Starts the consumer thread when cfg.ingest is set (no-op otherwise). Call after the writer has
 * started. A NATS server that is down is not an error: the consumer connects when it can.
 * FR_E_BAD_ARG (partitions, stream name; reason in *why), FR_E_NOMEM, FR_E_INTERNAL. */
int fr_ingest_start(fr_server_t *s, const char **why);
/* Stops consuming, waits for the batches at the writer to commit, closes NATS. Call before the
 * writer drains. No-op without --ingest. */
void fr_ingest_stop(fr_server_t *s);
/* Appends the Prometheus lines of the consumer (positions, lag, resubscriptions) to b. */
void fr_ingest_metrics(fr_server_t *s, fr_buf_t *b);
/* When (source, partition) is consumed by this node: true with *lag = messages of the partition
 * in the stream after its applied position (-1 when unknown, e.g. NATS unreachable). */
bool fr_ingest_lag(fr_server_t *s, const char *source, size_t source_len, uint32_t partition,
                   int64_t *lag);

/* One stream message (a protobuf `Row`) decoded and validated against reg into r, whose pointers
 * go into data. FR_OK; FR_E_UNKNOWN_VIEW when reg has no such view (view_name, at least
 * FR_INGEST_VIEW_MAX bytes, gets its name: the consumer waits for an apply); FR_E_BAD_REQUEST
 * with *why for a message that can never apply (undecodable, no entity or values, entity too long,
 * values that do not match the view): skipped as poison. */
#define FR_INGEST_VIEW_MAX 72
int fr_ingest_decode_row(const fr_registry_t *reg, const uint8_t *data, size_t len, int64_t now_us,
                         int64_t max_future_skew_us, fr_write_row_t *r, char *view_name,
                         const char **why);

#endif
