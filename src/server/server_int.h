/* Private to src/server: shared structures of the acceptor, workers, writer and handlers. */
#ifndef FR_SERVER_INT_H
#define FR_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "auth.h"
#include "common/buf.h"
#include "metrics.h"
#include "net/loop.h"
#include "proto/frame.h"
#include "server.h"
#include "store/store.h"

typedef struct fr_worker fr_worker_t;
typedef struct fr_conn fr_conn_t;

/* Counters; plain atomics, read by Status and /metrics. */
#define FR_OP_COUNT 16
#define FR_STATS_VIEWS 4096 /* per-view counters for view ids below this */
#define FR_STATS_CODES 64   /* rejects by -fr_err_t */

typedef struct {
    atomic_ullong present, expired, not_found, rows_received;
} fr_view_counters_t;

typedef struct {
    atomic_ullong requests[FR_OP_COUNT];
    atomic_ullong errors[FR_OP_COUNT];
    fr_hist_t latency[FR_OP_COUNT][2]; /* [op][0 ok, 1 error], microseconds */
    atomic_ullong rejects[FR_STATS_CODES];
    atomic_ullong rows_written, rows_duplicate, rows_unchanged, rows_late, rows_rejected;
    atomic_ullong values_present, values_expired, values_not_found;
    atomic_ullong lookups_walked, lookups_cursor; /* fr_asof_get_many: page walker / cursor */
    atomic_ullong commits, commit_us_total, group_rows_max;
    fr_hist_t commit_latency;  /* microseconds per group commit (incl. fsync) */
    fr_hist_t group_rows;      /* rows per group commit */
    fr_hist_t ingest_visible;  /* request received → committed and visible, microseconds */
    atomic_ullong sweep_deleted, sweep_passes;
    atomic_ullong connections_open, connections_total, frames_too_large, bad_frames;
    atomic_ullong auth_reloads, auth_reload_failures;
    atomic_ullong queue_depth;
    atomic_ullong http_requests, http_errors;
    fr_view_counters_t *views; /* FR_STATS_VIEWS entries */
} fr_stats_t;

/* Counts a rejected request by its error code. */
static inline void fr_stats_reject(fr_stats_t *st, int code)
{
    unsigned i = code < 0 && -code < FR_STATS_CODES ? (unsigned)-code : 0;
    atomic_fetch_add_explicit(&st->rejects[i], 1, memory_order_relaxed);
}

/* A write request travelling worker → writer → worker. */
typedef struct fr_job {
    struct fr_job *next;
    fr_conn_t *conn;
    uint32_t request_id;
    uint16_t op;
    uint8_t *body; /* owned copy of the frame body; rows point into it */
    size_t body_len;
    fr_registry_t *registry; /* keeps the views of `rows` alive */
    char source[130];
    uint32_t partition;
    fr_position_mode_t position_mode; /* with a source: how the batch moves its position */
    int64_t position;
    fr_write_row_t *rows;
    size_t row_count, row_cap;
    int dry_run;
    /* results */
    int rc;
    const char *why;
    char why_buf[256];
    fr_write_result_t result;
    fr_registry_diff_t diff;
    int64_t received_us; /* fr_mono_us() when the frame arrived */
    struct evhttp_request *http; /* set for jobs from the HTTP front door (http.c) */
    /* set for jobs from the NATS consumer (ingest.c): called on the writer thread after the
     * commit instead of completing to a worker; it owns the job from then on */
    void (*done_cb)(struct fr_job *job);
    void *done_arg;
} fr_job_t;

struct fr_conn {
    fr_loop_conn_t link; /* first: the loop's list, the socket, the drain flag (net/loop.h) */
    fr_worker_t *worker;
    unsigned pending; /* jobs at the writer */
    int closed;       /* socket gone; freed when pending reaches 0 */
    fr_rtxn_t *export_rtxn; /* snapshot pinned by a running export (reads.c) */
    int busy_latched;       /* a Put got BUSY: refuse Puts until one says resume */
    int paused;             /* reading stopped: too many replies queued (max_output_mb) */
    /* reading stopped: an Apply of this connection is at the writer. A frame after it is read
     * once it has been answered, so a Put or Get pipelined behind an Apply sees the registry the
     * Apply made, as if the client had waited for the reply (conn.c) */
    int apply_wait;
    int partial;            /* a frame has started arriving (read_timeout_ms applies) */
    int64_t frame_start_us; /* fr_mono_us() when the partial frame's first byte was seen */
    struct event *read_deadline; /* one-shot: fires read_timeout_ms after frame_start_us */
    struct event *idle_timer;    /* one-shot, idle_timeout_ms; NULL when that is 0 */
    int64_t last_active_us;      /* fr_mono_us() of the last byte read or reply queued */
    fr_role_t role;   /* what a Hello granted; FR_ROLE_ADMIN when auth is off */
    int auth_logged;  /* an UNAUTHORIZED request was logged (once per connection) */
    /* with auth: the digest of the token the Hello presented and the auth generation it was
     * checked against; a reloaded auth file (SIGHUP) re-checks it before the next request, so a
     * removed token stops working on live connections too */
    uint8_t token_digest[FR_TOKEN_DIGEST];
    unsigned auth_gen;
    int revoked; /* the reload removed this connection's token */
};

struct fr_worker {
    fr_server_t *server;
    unsigned index;
    fr_loop_t loop; /* thread, event loop (loop.base), socket hand-over (src/net/loop.h) */
    fr_job_t *done_head, *done_tail; /* finished by the writer; guarded by loop.lock */
    fr_rtxn_t *rtxn;
    fr_buf_t out; /* reply being encoded */
    int last_rc;   /* code of the last reply sent by a handler (for latency labels) */
    int submitted; /* the handler queued a job: latency is recorded at completion */
    struct evhttp *http; /* the HTTP worker's listener (http.c), NULL on binary workers */
    void *get_scratch; /* handlers.c: decode/plan arrays reused across Get requests */
    const void *http_unauth_conn; /* http.c: last HTTP connection whose auth failure was logged */
};

typedef struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    fr_job_t *head, *tail;
    size_t depth;
    int stop;
    fr_sweep_state_t sweep;
    bool wal_closed_logged; /* event=wal_closed was logged (once per process) */
    /* event=checkpoint_failed rate limit (writer.c, check_checkpoints) */
    uint64_t ckpt_failed_logged, ckpt_done_at_fail;
    int64_t ckpt_log_us;
    bool ckpt_failing;
} fr_writer_t;

struct fr_server {
    fr_config_t cfg;
    const fr_clock_t *clock;
    fr_store_t *store;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sigterm, *sigint, *sighup, *stop_ev;
    char listen_addr[128];
    fr_worker_t *workers;
    unsigned worker_count, next_worker;
    fr_worker_t *http_worker; /* its own loop; NULL without --http */
    char http_addr[128];
    fr_writer_t writer;
    fr_stats_t stats;
    int64_t started_us;
    atomic_uint backups_running; /* backup threads; shutdown waits for them */
    bool running;                /* fr_server_start succeeded */
    /* LMDB reader slots beyond the fixed ones (fr_config_readers): snapshots pinned now by
     * exports, backups and HTTP exports; exports may take up to pins_exports, backups and HTTP
     * exports up to pins_all (the reserve between them is theirs) */
    atomic_uint pins;
    unsigned pins_exports, pins_all;
    /* --auth-file; NULL: auth off (every connection is admin). Replaced (never set to NULL) by a
     * SIGHUP reload on the main thread, then auth_gen is bumped; readers load auth_gen first. */
    fr_auth_t *_Atomic auth;
    atomic_uint auth_gen;
    struct ssl_ctx_st *tls; /* tls_cert + tls_key; NULL: plaintext listeners */
    struct fr_ingest *ingest; /* --ingest: the NATS JetStream consumer (ingest.c); NULL: off */
};

/* conn.c */
int fr_worker_start(fr_server_t *s, fr_worker_t *w, unsigned index);
/* Two halves of fr_worker_start: set up the loop (no thread yet), then run it on a thread. */
int fr_worker_init(fr_server_t *s, fr_worker_t *w, unsigned index);
int fr_worker_launch(fr_worker_t *w);
void fr_worker_hand_fd(fr_worker_t *w, int fd);
void fr_worker_complete(fr_worker_t *w, fr_job_t *job);
void fr_worker_stop(fr_worker_t *w);
void fr_worker_join(fr_worker_t *w);
/* Sends one encoded frame; the connection may be closed afterwards if close_after. */
void fr_conn_send(fr_conn_t *c, const fr_buf_t *frame);
/* An Apply of c was queued: stop reading c's frames until its reply is sent (fr_conn_t.apply_wait). */
void fr_conn_wait_apply(fr_conn_t *c);

/* handlers.c: decodes and runs one frame on the worker; replies now (reads) or later (writes). */
void fr_handle_frame(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
void fr_handle_get(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
void fr_handle_export(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
/* Replies helpers: an error-only response, or msg encoded with fields, for frame f.
 * fr_reply_encode only encodes the reply into w->out (FR_OK, or the encoder's error), for a
 * handler that must finish something between building the reply and sending it
 * (fr_conn_send(c, &w->out)). */
void fr_reply_error(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, int code, const char *msg);
int fr_reply_encode(fr_worker_t *w, const fr_frame_t *f, const pb_msgdesc_t *fields,
                    const void *msg);
void fr_reply_msg(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const pb_msgdesc_t *fields,
                  const void *msg);
/* nanopb decode callback: zero-copy bytes into the fr_pb_bytes_t at *arg. */
bool fr_take_bytes_cb(pb_istream_t *stream, const pb_field_t *field, void **arg);
/* Decodes one protobuf Row (a Put's row or a stream message) with its entity and values pointing
 * into the stream's buffer (absent: NULL). */
bool fr_pb_decode_row(pb_istream_t *stream, freshet_Row *row, fr_pb_bytes_t *entity,
                      fr_pb_bytes_t *values);
unsigned fr_op_slot(uint16_t op);
/* Releases the connection's pinned export snapshot, if any. */
void fr_conn_export_end(fr_conn_t *c);
/* Takes one of the reader slots left for snapshots (see fr_server.pins): an export
 * (reserved = false) stops at pins_exports, a backup or HTTP export (reserved = true) at
 * pins_all. False when none is left; fr_server_pin_refused says so. Any thread. */
bool fr_server_pin_take(fr_server_t *s, bool reserved);
void fr_server_pin_give(fr_server_t *s);
/* The sentence a refused pin is answered with, naming max_readers (thread-local buffer). */
const char *fr_server_pin_refused(fr_server_t *s, const char *what);
/* Encodes the reply of a finished write job into w->out. */
void fr_handle_job_reply(fr_worker_t *w, fr_job_t *job);
/* Encodes an error-only response (fields code/message are 1/2 in every response). */
int fr_encode_error(fr_buf_t *out, uint32_t request_id, uint16_t op, int code, const char *msg);
void fr_job_free(fr_job_t *job);
void fr_handle_scratch_free(fr_worker_t *w);

/* http.c */
/* Binds --http on the HTTP worker's loop (fills s->http_addr). FR_E_IO / FR_E_BAD_ARG. */
int fr_http_start(fr_server_t *s, fr_worker_t *w, const char **why);
/* Completes an HTTP write job on the HTTP worker. */
void fr_http_job_done(fr_worker_t *w, fr_job_t *job);
void fr_http_stop(fr_worker_t *w);
/* Runs the handler of path/method for req (auth applied); the reply goes through req. Exposed
 * for the HTTP fuzz target, which drives it with requests that have no connection. */
void fr_http_route(fr_worker_t *w, struct evhttp_request *req, const char *path,
                   enum evhttp_cmd_type m);

/* writer.c */
int fr_writer_start(fr_server_t *s);
/* Queues a job; FR_E_BUSY when the queue is full (the job is not taken). */
int fr_writer_submit(fr_server_t *s, fr_job_t *job);
/* The message for a refusal of fr_writer_submit: SHUTDOWN (stopping: retry elsewhere or after
 * the restart) or BUSY (queue full: retry with backoff). Static text. */
const char *fr_writer_refusal(int rc);
/* Drains the queue, commits, completes every job, and joins the thread. */
void fr_writer_stop(fr_server_t *s);

#endif
