/* Request handlers: decode (nanopb, bounded) → run → encode the reply into the worker's buffer.
 * Reads run here on the worker, in one read transaction each; writes become jobs for the writer.
 * The op table (FR_OPS) is the dispatch table: a new op is a line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "freshet/err.h"
#include "ingest.h"
#include "server_int.h"

typedef void (*handler_fn)(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);

static void h_hello(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_apply(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_put(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_status(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_sources(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);
static void h_backup(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body);

/* X(op, handler, least role allowed to run it when auth is on; README "Security") */
#define FR_OPS(X)                                                                                  \
    X(freshet_Op_OP_HELLO, h_hello, FR_ROLE_NONE)                                                  \
    X(freshet_Op_OP_APPLY, h_apply, FR_ROLE_ADMIN)                                                 \
    X(freshet_Op_OP_PUT, h_put, FR_ROLE_WRITE)                                                     \
    X(freshet_Op_OP_GET, fr_handle_get, FR_ROLE_READ)                                              \
    X(freshet_Op_OP_EXPORT, fr_handle_export, FR_ROLE_READ)                                        \
    X(freshet_Op_OP_STATUS, h_status, FR_ROLE_READ)                                                \
    X(freshet_Op_OP_SOURCES, h_sources, FR_ROLE_READ)                                              \
    X(freshet_Op_OP_BACKUP, h_backup, FR_ROLE_ADMIN)

static handler_fn lookup(uint16_t op, fr_role_t *role, const char **name)
{
    switch (op) {
#define X(o, h, r)                                                                                 \
    case o:                                                                                        \
        *role = (r);                                                                               \
        *name = &(#o)[sizeof "freshet_Op_OP_" - 1];                                                  \
        return h;
        FR_OPS(X)
#undef X
    }
    return NULL;
}

static uint16_t resp_op(const fr_frame_t *f) { return (uint16_t)(f->op | FR_OP_RESPONSE); }
/* The stats slot of an op: its own for an op freshetd serves, 0 ("unknown" in /metrics) for any
 * other (a response op with 0x8000 set, an op number no handler has, OP_SCORE, which is
 * freshet-infer's), so that every request is counted in a slot /metrics renders. */
unsigned fr_op_slot(uint16_t op)
{
    fr_role_t role;
    const char *name;
    return op < FR_OP_COUNT && lookup(op, &role, &name) ? op : 0;
}

int fr_encode_error(fr_buf_t *out, uint32_t request_id, uint16_t op, int code, const char *msg)
{
    freshet_PutResponse r = freshet_PutResponse_init_zero;
    r.has_code = true;
    r.code = code;
    r.has_message = true;
    snprintf(r.message, sizeof r.message, "%s", msg ? msg : fr_err_str(code));
    return fr_frame_encode_msg(out, request_id, op, freshet_PutResponse_fields, &r);
}

void fr_reply_error(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, int code, const char *msg)
{
    atomic_fetch_add(&w->server->stats.errors[fr_op_slot(f->op)], 1);
    fr_stats_reject(&w->server->stats, code);
    w->last_rc = code;
    fr_buf_reset(&w->out);
    if (fr_encode_error(&w->out, f->request_id, resp_op(f), code, msg) == FR_OK)
        fr_conn_send(c, &w->out);
}

int fr_reply_encode(fr_worker_t *w, const fr_frame_t *f, const pb_msgdesc_t *fields,
                    const void *msg)
{
    fr_buf_reset(&w->out);
    return fr_frame_encode_msg(&w->out, f->request_id, resp_op(f), fields, msg);
}

void fr_reply_msg(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const pb_msgdesc_t *fields,
                  const void *msg)
{
    int rc = fr_reply_encode(w, f, fields, msg);
    if (rc != FR_OK) {
        fr_reply_error(w, c, f, rc, "cannot encode the reply");
        return;
    }
    fr_conn_send(c, &w->out);
}

/* ---- authentication (Hello) and authorisation ---- */

static void peer_name(const fr_conn_t *c, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(out, n, "?");
    if (!c->link.bev || getpeername(bufferevent_getfd(c->link.bev), (struct sockaddr *)&ss, &len) != 0)
        return;
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, n, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, n, "[%s]:%u", host, ntohs(in6->sin6_port));
    }
}

/* Logs an auth failure once per connection (a client retrying in a loop must not flood the log);
 * every failure is still counted in rejected_total{reason="UNAUTHORIZED"} by fr_reply_error. */
static void log_auth_failure(fr_conn_t *c, uint16_t op, const char *what)
{
    if (c->auth_logged)
        return;
    c->auth_logged = 1;
    char peer[64];
    peer_name(c, peer, sizeof peer);
    fr_log(FR_LOG_WARN, "event=unauthorized peer=%s op=%u role=%s reason=\"%s\"", peer, op,
           fr_token_role_name(c->role), what);
}

static void deny(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, fr_role_t need,
                 const char *op_name)
{
    char msg[160];
    if (c->role == FR_ROLE_NONE && c->revoked)
        snprintf(msg, sizeof msg, "token revoked (the auth file was reloaded): send a valid token");
    else if (c->role == FR_ROLE_NONE)
        snprintf(msg, sizeof msg, "not authenticated: send a token first (--token or FRESHET_TOKEN)");
    else
        snprintf(msg, sizeof msg, "role %s may not run %s (needs %s)", fr_token_role_name(c->role),
                 op_name, fr_token_role_name(need));
    log_auth_failure(c, f->op, msg);
    fr_reply_error(w, c, f, FR_E_UNAUTHORIZED, msg);
}

/* After a reload of the auth file, the token this connection authenticated with is looked up
 * again: its role may have changed, or it may be gone (the connection then gets UNAUTHORIZED
 * "token revoked" until a Hello with a valid token). */
static void recheck_token(fr_conn_t *c)
{
    fr_server_t *s = c->worker->server;
    unsigned gen = atomic_load(&s->auth_gen);
    if (gen == c->auth_gen)
        return;
    const char *name = NULL;
    fr_role_t role = fr_auth_check_digest(s->auth, c->token_digest, &name);
    if (role != c->role) {
        char peer[64];
        peer_name(c, peer, sizeof peer);
        fr_log(FR_LOG_INFO, "event=auth_role_changed peer=%s from=%s to=%s", peer,
               fr_token_role_name(c->role), role == FR_ROLE_NONE ? "revoked" : fr_token_role_name(role));
    }
    c->role = role;
    c->revoked = role == FR_ROLE_NONE;
    c->auth_gen = gen;
    if (c->revoked)
        OPENSSL_cleanse(c->token_digest, sizeof c->token_digest);
}

/* The first request of a connection when auth is on. A failed Hello leaves (or makes) the
 * connection unauthenticated; without auth it succeeds as admin whatever the token. */
static void h_hello(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    freshet_HelloRequest req = freshet_HelloRequest_init_zero;
    pb_istream_t is = fr_pb_istream(body, f->body_len);
    if (!pb_decode(&is, freshet_HelloRequest_fields, &req)) {
        fr_reply_error(w, c, f, FR_E_BAD_REQUEST, fr_pb_why(&is));
        return;
    }
    unsigned gen = atomic_load(&w->server->auth_gen); /* before the table: see server_int.h */
    const fr_auth_t *auth = w->server->auth;
    const char *name = "";
    if (auth) {
        fr_role_t role = FR_ROLE_NONE;
        if (fr_token_digest(req.token, strlen(req.token), c->token_digest) == FR_OK)
            role = fr_auth_check_digest(auth, c->token_digest, &name);
        OPENSSL_cleanse(req.token, sizeof req.token);
        c->auth_gen = gen;
        c->revoked = 0;
        if (role == FR_ROLE_NONE) {
            OPENSSL_cleanse(c->token_digest, sizeof c->token_digest);
            c->role = FR_ROLE_NONE;
            log_auth_failure(c, f->op, "hello: token not valid");
            fr_reply_error(w, c, f, FR_E_UNAUTHORIZED,
                           req.has_token ? "token: not valid (unknown or revoked)" : "token: missing");
            return;
        }
        c->role = role;
        fr_log(FR_LOG_DEBUG, "event=hello name=%s role=%s client=\"%s\"", name,
               fr_token_role_name(role), req.has_client ? req.client : "");
    }
    freshet_HelloResponse r = freshet_HelloResponse_init_zero;
    r.has_code = r.has_role = r.has_name = true;
    snprintf(r.role, sizeof r.role, "%s", fr_token_role_name(auth ? c->role : FR_ROLE_ADMIN));
    snprintf(r.name, sizeof r.name, "%s", name ? name : "");
    fr_reply_msg(w, c, f, freshet_HelloResponse_fields, &r);
}

void fr_handle_frame(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_role_t need = FR_ROLE_ADMIN;
    const char *op_name = "";
    handler_fn h = lookup(f->op, &need, &op_name);
    unsigned slot = h && f->op < FR_OP_COUNT ? f->op : 0; /* fr_op_slot without a second lookup */
    atomic_fetch_add(&w->server->stats.requests[slot], 1);
    int64_t t0 = fr_mono_us();
    w->last_rc = FR_OK;
    w->submitted = 0;
    if (h && c->role != FR_ROLE_NONE && w->server->auth)
        recheck_token(c);
    if (h && w->server->auth && c->role < need) {
        deny(w, c, f, need, op_name); /* before decoding anything: nothing of the request runs */
    } else if (!h) {
        atomic_fetch_add(&w->server->stats.bad_frames, 1);
        char msg[64];
        snprintf(msg, sizeof msg, "op %u is not an operation", f->op);
        fr_reply_error(w, c, f, FR_E_BAD_OP, msg);
    } else {
        h(w, c, f, body);
    }
    if (!w->submitted) { /* queued writes are timed when their commit completes */
        int64_t us = fr_mono_us() - t0;
        fr_hist_observe(&w->server->stats.latency[slot][w->last_rc != FR_OK], (uint64_t)us);
        if (w->server->cfg.slow_ms && us >= w->server->cfg.slow_ms * 1000)
            fr_log(FR_LOG_WARN, "event=slow_request op=%u request_bytes=%u reply_bytes=%zu us=%lld code=%s",
                   f->op, f->body_len, w->out.len, (long long)us, fr_err_name(w->last_rc));
    }
}

/* ---- decode helpers ---- */

bool fr_take_bytes_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    fr_pb_bytes_t *b = *arg;
    const uint8_t *p;
    size_t n;
    if (!fr_pb_take_bytes(stream, &p, &n))
        return false;
    b->ptr = p;
    b->len = n;
    return true;
}

bool fr_pb_decode_row(pb_istream_t *stream, freshet_Row *row, fr_pb_bytes_t *entity,
                      fr_pb_bytes_t *values)
{
    *row = (freshet_Row)freshet_Row_init_zero;
    *entity = (fr_pb_bytes_t){0};
    *values = (fr_pb_bytes_t){0};
    row->entity.funcs.decode = fr_take_bytes_cb;
    row->entity.arg = entity;
    row->values.funcs.decode = fr_take_bytes_cb;
    row->values.arg = values;
    return pb_decode(stream, freshet_Row_fields, row);
}

static fr_job_t *job_new(fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->body = malloc(f->body_len ? f->body_len : 1);
    if (!job->body) {
        free(job);
        return NULL;
    }
    memcpy(job->body, body, f->body_len);
    job->body_len = f->body_len;
    job->conn = c;
    job->request_id = f->request_id;
    job->op = f->op;
    job->received_us = fr_mono_us();
    return job;
}

void fr_job_free(fr_job_t *job)
{
    if (!job)
        return;
    fr_registry_release(job->registry);
    free(job->rows);
    free(job->body);
    free(job);
}

static void submit(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, fr_job_t *job)
{
    c->pending++;
    int rc = fr_writer_submit(w->server, job);
    w->submitted = rc == FR_OK;
    if (rc == FR_E_BUSY && job->op == freshet_Op_OP_PUT) {
        c->busy_latched = 1;
        fr_log(FR_LOG_INFO, "event=write_queue_full max_queue=%lld reply=BUSY",
               (long long)w->server->cfg.max_queue);
    }
    if (rc != FR_OK) {
        c->pending--;
        fr_job_free(job);
        fr_reply_error(w, c, f, rc, fr_writer_refusal(rc));
    }
}

/* ---- Apply ---- */

static void h_apply(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = job_new(c, f, body);
    if (!job) {
        fr_reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    freshet_ApplyRequest req = freshet_ApplyRequest_init_zero;
    fr_pb_bytes_t json = {0};
    req.registry_json.funcs.decode = fr_take_bytes_cb;
    req.registry_json.arg = &json;
    pb_istream_t is = fr_pb_istream(job->body, job->body_len);
    bool decoded = pb_decode(&is, freshet_ApplyRequest_fields, &req);
    if (!decoded || !json.ptr) {
        fr_reply_error(w, c, f, FR_E_BAD_REQUEST, !decoded ? fr_pb_why(&is) : "registry_json: missing");
        fr_job_free(job);
        return;
    }
    /* the writer parses job->body again as registry text: keep only the JSON bytes */
    memmove(job->body, json.ptr, json.len);
    job->body_len = json.len;
    job->dry_run = req.has_dry_run && req.dry_run;
    bool changes = !job->dry_run; /* read first: a refused submit frees the job */
    submit(w, c, f, job);
    if (changes && w->submitted)
        fr_conn_wait_apply(c);
}

/* ---- Put ---- */

typedef struct {
    fr_worker_t *w;
    fr_job_t *job;
    int64_t now_us;
    int rc;
    const char *why;
    char why_buf[256];
    uint32_t index;
} put_ctx_t;

static bool put_row_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    put_ctx_t *ctx = *arg;
    fr_job_t *job = ctx->job;
    fr_config_t *cfg = &ctx->w->server->cfg;
    if (job->row_count >= (size_t)cfg->max_put_rows) {
        ctx->rc = FR_E_TOO_LARGE;
        snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows: more than max_put_rows (%lld)",
                 (long long)cfg->max_put_rows);
        ctx->why = ctx->why_buf;
        return false;
    }
    freshet_Row row;
    fr_pb_bytes_t entity, values;
    if (!fr_pb_decode_row(stream, &row, &entity, &values)) {
        snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows[%u]: %s", ctx->index, fr_pb_why(stream));
        ctx->why = ctx->why_buf;
        return false;
    }
    fr_write_row_t wr = {0};
    const char *why = NULL;
    int rc = FR_OK;
    wr.view = fr_registry_view(job->registry, row.has_view ? row.view : "");
    if (!wr.view) {
        rc = FR_E_UNKNOWN_VIEW;
        snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows[%u].view: unknown view \"%s\"", ctx->index,
                 row.view);
        why = ctx->why_buf;
    } else if (!row.has_event_ts_us) {
        rc = FR_E_BAD_REQUEST;
        why = "event_ts_us: missing";
    } else if (!values.ptr) {
        rc = FR_E_BAD_REQUEST;
        why = "values: missing";
    } else if (job->source[0] && !row.has_offset) {
        rc = FR_E_BAD_REQUEST;
        why = "offset: required when the request names a source";
    } else {
        wr.entity = entity.ptr;
        wr.entity_len = entity.len > 65535 ? 65535 : (uint16_t)entity.len;
        wr.event_ts_us = row.event_ts_us;
        wr.values = values.ptr;
        wr.values_len = (uint32_t)values.len;
        wr.offset = row.offset;
        wr.has_offset = row.has_offset;
        rc = fr_store_check_row(&wr, ctx->now_us, cfg->max_future_skew_us, &why);
        if (rc != FR_OK) {
            char tmp[160];
            snprintf(tmp, sizeof tmp, "%s", why);
            snprintf(ctx->why_buf, sizeof ctx->why_buf, "rows[%u] (view %.64s): %.160s", ctx->index,
                     wr.view->name, tmp);
            why = ctx->why_buf;
        }
    }
    if (rc != FR_OK) {
        ctx->rc = rc;
        ctx->why = why;
        return false;
    }
    if (job->row_count == job->row_cap) {
        size_t cap = job->row_cap ? job->row_cap * 2 : 64;
        fr_write_row_t *p = realloc(job->rows, cap * sizeof *p);
        if (!p) {
            ctx->rc = FR_E_NOMEM;
            return false;
        }
        job->rows = p;
        job->row_cap = cap;
    }
    job->rows[job->row_count++] = wr;
    ctx->index++;
    return true;
}

/* The rows a PutRequest carries, counted without decoding them (as far as its framing parses):
 * a refused request's rows all count as rejected, wherever the bad one was. */
static size_t count_put_rows(const uint8_t *body, size_t len)
{
    pb_istream_t is = fr_pb_istream(body, len);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    size_t n = 0;
    while (pb_decode_tag(&is, &wt, &tag, &eof)) {
        n += tag == freshet_PutRequest_rows_tag;
        if (!pb_skip_field(&is, wt))
            break;
    }
    return n;
}

static void h_put(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    fr_job_t *job = job_new(c, f, body);
    if (!job) {
        fr_reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    job->registry = fr_store_registry(w->server->store);
    /* source and partition are needed before the rows: decode them first, skipping rows */
    freshet_PutRequest req = freshet_PutRequest_init_zero;
    pb_istream_t is = fr_pb_istream(job->body, job->body_len);
    if (!pb_decode(&is, freshet_PutRequest_fields, &req)) {
        fr_reply_error(w, c, f, FR_E_BAD_REQUEST, fr_pb_why(&is));
        fr_job_free(job);
        return;
    }
    if (c->busy_latched && !(req.has_resume && req.resume)) {
        /* pipelined behind a refused Put: refusing it too keeps the stream in order */
        fr_reply_error(w, c, f, FR_E_BUSY, "write queue is full; resend from the first refused Put with resume set");
        fr_job_free(job);
        return;
    }
    c->busy_latched = 0;
    if (req.has_source && req.source[0]) {
        memcpy(job->source, req.source, sizeof req.source);
        job->partition = req.partition;
    }
    put_ctx_t ctx = {.w = w, .job = job, .now_us = fr_clock_now(w->server->clock)};
    freshet_PutRequest req2 = freshet_PutRequest_init_zero;
    req2.rows.funcs.decode = put_row_cb;
    req2.rows.arg = &ctx;
    is = fr_pb_istream(job->body, job->body_len);
    if (!pb_decode(&is, freshet_PutRequest_fields, &req2) || ctx.rc != FR_OK) {
        int rc = ctx.rc != FR_OK ? ctx.rc : FR_E_BAD_REQUEST;
        atomic_fetch_add(&w->server->stats.rows_rejected, count_put_rows(job->body, job->body_len));
        fr_log(FR_LOG_INFO, "event=put_rejected code=%s reason=\"%s\"", fr_err_name(rc),
               ctx.why ? ctx.why : fr_pb_why(&is));
        fr_buf_reset(&w->out);
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = r.has_message = r.has_row_index = true;
        r.code = rc;
        r.row_index = ctx.index;
        snprintf(r.message, sizeof r.message, "%s", ctx.why ? ctx.why : fr_pb_why(&is));
        atomic_fetch_add(&w->server->stats.errors[fr_op_slot(f->op)], 1);
        fr_stats_reject(&w->server->stats, rc);
        w->last_rc = rc;
        fr_reply_msg(w, c, f, freshet_PutResponse_fields, &r);
        fr_job_free(job);
        return;
    }
    if (job->row_count == 0) {
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = true;
        fr_reply_msg(w, c, f, freshet_PutResponse_fields, &r);
        fr_job_free(job);
        return;
    }
    submit(w, c, f, job);
}

void fr_handle_job_reply(fr_worker_t *w, fr_job_t *job)
{
    fr_buf_reset(&w->out);
    uint16_t op = (uint16_t)(job->op | FR_OP_RESPONSE);
    int64_t us = fr_mono_us() - job->received_us;
    fr_hist_observe(&w->server->stats.latency[fr_op_slot(job->op)][job->rc != FR_OK], (uint64_t)us);
    if (w->server->cfg.slow_ms && us >= w->server->cfg.slow_ms * 1000 && job->op != freshet_Op_OP_BACKUP)
        fr_log(FR_LOG_WARN, "event=slow_request op=%u request_bytes=%zu rows=%zu us=%lld code=%s",
               job->op, job->body_len, job->row_count, (long long)us, fr_err_name(job->rc));
    if (job->rc != FR_OK) {
        atomic_fetch_add(&w->server->stats.errors[fr_op_slot(job->op)], 1);
        fr_stats_reject(&w->server->stats, job->rc);
        fr_encode_error(&w->out, job->request_id, op, job->rc, job->why);
        return;
    }
    if (job->op == freshet_Op_OP_BACKUP) {
        freshet_BackupResponse r = freshet_BackupResponse_init_zero;
        r.has_code = r.has_bytes = r.has_duration_us = true;
        r.bytes = job->result.last_write_seq; /* backup jobs reuse the result fields */
        r.duration_us = (uint64_t)(fr_mono_us() - job->received_us);
        fr_frame_encode_msg(&w->out, job->request_id, op, freshet_BackupResponse_fields, &r);
        return;
    }
    if (job->op == freshet_Op_OP_PUT) {
        freshet_PutResponse r = freshet_PutResponse_init_zero;
        r.has_code = r.has_rows_written = r.has_duplicates = r.has_unchanged = true;
        r.rows_written = job->result.written;
        r.duplicates = job->result.duplicates;
        r.unchanged = job->result.unchanged;
        r.has_write_seq = true;
        r.write_seq = job->result.last_write_seq;
        if (job->source[0]) {
            r.has_high_water = true;
            r.high_water = job->result.high_water;
        }
        fr_frame_encode_msg(&w->out, job->request_id, op, freshet_PutResponse_fields, &r);
        return;
    }
    freshet_ApplyResponse r = freshet_ApplyResponse_init_zero;
    r.has_code = r.has_views_added = r.has_features_added = r.has_entities_added = true;
    r.has_views_changed = true;
    r.views_added = job->diff.views_added;
    r.features_added = job->diff.features_added;
    r.entities_added = job->diff.entities_added;
    r.views_changed = job->diff.views_changed;
    fr_frame_encode_msg(&w->out, job->request_id, op, freshet_ApplyResponse_fields, &r);
}

/* ---- Status and Sources ---- */

typedef struct {
    fr_worker_t *w;
    const fr_registry_t *reg;
} status_ctx_t;

static bool enc_view_status_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const status_ctx_t *sc = *arg;
    for (uint32_t i = 0; i < sc->reg->view_count; i++) {
        const fr_view_def_t *v = &sc->reg->views[i];
        fr_view_stat_t st;
        if (fr_store_view_stat(sc->w->rtxn, v->id, &st) != FR_OK)
            return false;
        freshet_ViewStatus vs = freshet_ViewStatus_init_zero;
        vs.has_name = vs.has_versions = vs.has_newest_event_ts_us = true;
        snprintf(vs.name, sizeof vs.name, "%s", v->name);
        vs.versions = st.versions;
        vs.newest_event_ts_us = st.newest_event_ts_us;
        if (!pb_encode_tag_for_field(stream, field) ||
            !pb_encode_submessage(stream, freshet_ViewStatus_fields, &vs))
            return false;
    }
    return true;
}

static void h_status(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    (void)body;
    fr_server_t *s = w->server;
    fr_store_info_t info;
    fr_registry_t *reg = fr_store_registry(s->store);
    char *json = NULL;
    size_t json_len = 0;
    int rc = fr_store_info(s->store, &info);
    if (rc == FR_OK)
        rc = fr_registry_to_json(reg, &json, &json_len);
    if (rc == FR_OK)
        rc = fr_rtxn_begin(w->rtxn);
    if (rc != FR_OK) {
        fr_reply_error(w, c, f, rc, "status unavailable");
        free(json);
        fr_registry_release(reg);
        return;
    }
    freshet_StatusResponse r = freshet_StatusResponse_init_zero;
    r.has_code = r.has_version = r.has_durability = r.has_map_size = r.has_map_used = true;
    r.has_last_txn = r.has_server_time_us = r.has_write_seq = true;
    snprintf(r.version, sizeof r.version, "%s", FRESHET_VERSION);
    snprintf(r.durability, sizeof r.durability, "%s", s->cfg.durability);
    r.map_size = info.map_size;
    r.map_used = info.map_used;
    r.last_txn = info.last_txn;
    r.write_seq = info.write_seq;
    r.server_time_us = fr_clock_now(s->clock);
    status_ctx_t sc = {w, reg};
    r.views.funcs.encode = enc_view_status_cb;
    r.views.arg = &sc;
    fr_pb_bytes_t jb = {json, json_len};
    r.registry_json.funcs.encode = fr_pb_encode_bytes;
    r.registry_json.arg = &jb;
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    FILE *mem = open_memstream(&cfg_text, &cfg_len);
    if (mem) {
        fr_config_dump(&s->cfg, mem);
        fclose(mem);
    }
    fr_pb_bytes_t cb = {cfg_text, cfg_len};
    r.config.funcs.encode = fr_pb_encode_bytes;
    r.config.arg = &cb;
    fr_reply_msg(w, c, f, freshet_StatusResponse_fields, &r);
    free(cfg_text);
    fr_rtxn_reset(w->rtxn);
    free(json);
    fr_registry_release(reg);
}

typedef struct {
    pb_ostream_t *stream;
    const pb_field_t *field;
    bool ok;
    fr_server_t *server;
} src_enc_t;

static int source_enc_cb(void *ctx, const char *source, size_t len, uint32_t partition, int64_t off)
{
    src_enc_t *se = ctx;
    freshet_SourcePosition sp = freshet_SourcePosition_init_zero;
    sp.has_source = sp.has_partition = sp.has_offset = true;
    snprintf(sp.source, sizeof sp.source, "%.*s", (int)(len < 128 ? len : 128), source);
    sp.partition = partition;
    sp.offset = off;
    sp.has_lag = fr_ingest_lag(se->server, source, len, partition, &sp.lag);
    se->ok = pb_encode_tag_for_field(se->stream, se->field) &&
             pb_encode_submessage(se->stream, freshet_SourcePosition_fields, &sp);
    return !se->ok;
}

static bool enc_sources_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    fr_worker_t *w = *arg;
    src_enc_t se = {stream, field, true, w->server};
    return fr_store_sources_each(w->rtxn, source_enc_cb, &se) == FR_OK && se.ok;
}

static void h_sources(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    (void)body;
    int rc = fr_rtxn_begin(w->rtxn);
    if (rc != FR_OK) {
        fr_reply_error(w, c, f, rc, "read failed");
        return;
    }
    freshet_SourcesResponse r = freshet_SourcesResponse_init_zero;
    r.has_code = true;
    r.positions.funcs.encode = enc_sources_cb;
    r.positions.arg = w;
    fr_reply_msg(w, c, f, freshet_SourcesResponse_fields, &r);
    fr_rtxn_reset(w->rtxn);
}


/* ---- Backup ---- */

typedef struct {
    fr_server_t *server;
    fr_job_t *job;
    char dest[1025];
    bool compact;
} backup_task_t;

static void *backup_main(void *arg)
{
    backup_task_t *t = arg;
    fr_job_t *job = t->job;
    const char *why = NULL;
    uint64_t bytes = 0;
    job->rc = fr_store_backup(t->server->store, t->dest, t->compact, &bytes, &why);
    fr_server_pin_give(t->server);
    job->result.last_write_seq = bytes;
    if (job->rc != FR_OK && why) {
        snprintf(job->why_buf, sizeof job->why_buf, "%s", why);
        job->why = job->why_buf;
    }
    fr_log(job->rc == FR_OK ? FR_LOG_INFO : FR_LOG_ERROR,
           "event=backup dest=%s bytes=%llu code=%s us=%lld", t->dest, (unsigned long long)bytes,
           fr_err_name(job->rc), (long long)(fr_mono_us() - job->received_us));
    fr_worker_complete(job->conn->worker, job);
    atomic_fetch_sub(&t->server->backups_running, 1);
    free(t);
    return NULL;
}

/* Backups copy the whole store: they run on a thread of their own, never on an event loop. */
static void h_backup(fr_worker_t *w, fr_conn_t *c, const fr_frame_t *f, const uint8_t *body)
{
    freshet_BackupRequest req = freshet_BackupRequest_init_zero;
    pb_istream_t is = fr_pb_istream(body, f->body_len);
    if (!pb_decode(&is, freshet_BackupRequest_fields, &req)) {
        fr_reply_error(w, c, f, FR_E_BAD_REQUEST, fr_pb_why(&is));
        return;
    }
    if (!req.has_dest || !req.dest[0]) {
        fr_reply_error(w, c, f, FR_E_BAD_REQUEST, "dest: a directory path is required");
        return;
    }
    /* the backup's read snapshot holds a reader slot: one of those kept for snapshots */
    if (!fr_server_pin_take(w->server, true)) {
        fr_reply_error(w, c, f, FR_E_BUSY,
                       fr_server_pin_refused(w->server, "too many backups and exports at once"));
        return;
    }
    backup_task_t *t = calloc(1, sizeof *t);
    fr_job_t *job = calloc(1, sizeof *job);
    if (!t || !job) {
        free(t);
        free(job);
        fr_server_pin_give(w->server);
        fr_reply_error(w, c, f, FR_E_NOMEM, NULL);
        return;
    }
    job->conn = c;
    job->request_id = f->request_id;
    job->op = f->op;
    job->received_us = fr_mono_us();
    t->server = w->server;
    t->job = job;
    snprintf(t->dest, sizeof t->dest, "%s", req.dest);
    t->compact = !req.has_compact || req.compact;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    c->pending++;
    atomic_fetch_add(&w->server->backups_running, 1);
    if (pthread_create(&th, &attr, backup_main, t) != 0) {
        atomic_fetch_sub(&w->server->backups_running, 1);
        fr_server_pin_give(w->server);
        c->pending--;
        free(t);
        free(job);
        fr_reply_error(w, c, f, FR_E_INTERNAL, "cannot start the backup thread");
    } else {
        w->submitted = 1;
    }
    pthread_attr_destroy(&attr);
}
