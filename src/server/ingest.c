/* The NATS JetStream consumer (ingest.h): ordered consumers per partition feed the writer thread;
 * each partition has at most one batch at the writer, applied with its stream position in the
 * same LMDB transaction. A watchdog resubscribes from the stored position when a consumer stalls
 * (no heartbeat, consumer gone after a server restart, messages pending but none arriving). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "common/log.h"
#include "common/partset.h"
#include "freshet/err.h"
#include "freshet/partition.h"
#include "net/nats_servers.h"
#include "ingest.h"
#include "server_int.h"

#define QMAX 20000     /* messages queued per partition before the NATS callback waits */
#define BATCH_MAX 5000 /* messages per write job */
#define HEARTBEAT_NS 1000000000LL
#define HOUSEKEEP_US 1000000 /* watchdog, lag and stream info period */
#define STALL_US 3000000     /* messages pending but none delivered for this long: resubscribe */
#define RESUB_BACKOFF_US 1000000
#define API_WAIT_MS 1000
#define AHEAD_CHECKS 3 /* stream info in a row showing a position above the stream's last seq */

typedef struct {
    natsMsg *msg;
    uint64_t seq; /* stream sequence */
    int64_t recv_us;
} qent_t;

typedef struct part part_t;

/* Closure of one subscription; kept until the library has stopped (callbacks may outlive it). */
typedef struct sub_ctx {
    struct sub_ctx *next;
    part_t *part;
    unsigned gen;
} sub_ctx_t;

struct part {
    struct fr_ingest *g;
    uint32_t id;
    char subject[48];      /* freshet.*.<p> */
    natsSubscription *sub; /* set and cleared under g->lock (on_async_error reads it) */
    unsigned gen; /* bumped at each resubscribe; callbacks of older subscriptions are dropped */
    qent_t *q;    /* ring of QMAX entries */
    size_t qhead, qlen;
    uint64_t last_queued; /* stream sequence of the newest queued (or applied) message */
    int64_t position;     /* last applied stream sequence as stored; -1 none */
    uint64_t pending;     /* messages after the newest delivered one (server's count) */
    bool pending_known;
    int inflight; /* a batch is at the writer (or waiting to be resubmitted after BUSY) */
    size_t inflight_rows;
    fr_job_t *retry_job;
    int need_resub;
    int64_t next_resub_us;
    int64_t stall_until_us; /* unknown view: wait for `freshet apply` */
    int stall_logged, sub_fail_logged;
    int64_t last_msg_us;
    int info_failures, stalled_checks;
    int64_t checked_position; /* position as it was before the last stream info request */
    int ahead_checks;         /* consecutive stream infos with a last seq below the position */
    int ahead;                /* the position is above the stream's last sequence (see housekeep) */
    int held;                 /* ... and the partition is stopped until the operator acts */
    uint64_t rows_applied, rows_duplicate, rows_rejected, rows_misrouted, resubscribes;
    uint64_t redelivered;        /* messages at or below last_queued dropped by on_msg */
    uint64_t redelivered_logged; /* ... as of the last ingest_redelivered line */
    uint64_t redelivered_first;  /* stream sequence of the first one since that line */
};

struct fr_ingest {
    fr_server_t *s;
    char source[80]; /* nats:<stream> */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;  /* consumer thread: messages arrived, a batch committed */
    pthread_cond_t space; /* callbacks: a queue has room, or stop */
    int stop;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    part_t *parts;
    size_t nparts;
    sub_ctx_t *ctxs;
    fr_rtxn_t *rtxn;
    atomic_int connected;
    atomic_ullong stream_last_seq, disconnects, rejected_logged;
};

typedef struct fr_ingest fr_ingest_t;

/* ---- NATS callbacks (library threads) ---- */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    sub_ctx_t *sc = closure;
    part_t *p = sc->part;
    fr_ingest_t *g = p->g;
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, msg) != NATS_OK) {
        natsMsg_Destroy(msg);
        return;
    }
    uint64_t seq = md->Sequence.Stream, pending = md->NumPending;
    jsMsgMetaData_Destroy(md);
    pthread_mutex_lock(&g->lock);
    while (!g->stop && sc->gen == p->gen && p->qlen == QMAX)
        pthread_cond_wait(&g->space, &g->lock); /* backpressure: flow control slows the server */
    if (g->stop || sc->gen != p->gen || seq <= p->last_queued) {
        /* stopping, a stale subscription, or a redelivery after an ordered-consumer reset */
        if (!g->stop && sc->gen == p->gen && p->redelivered++ == p->redelivered_logged)
            p->redelivered_first = seq;
        pthread_mutex_unlock(&g->lock);
        natsMsg_Destroy(msg);
        return;
    }
    qent_t *e = &p->q[(p->qhead + p->qlen) % QMAX];
    e->msg = msg;
    e->seq = seq;
    e->recv_us = fr_mono_us();
    p->qlen++;
    p->last_queued = seq;
    p->pending = pending;
    p->pending_known = true;
    p->last_msg_us = e->recv_us;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    fr_ingest_t *g = closure;
    atomic_store(&g->connected, 0);
    atomic_fetch_add(&g->disconnects, 1);
    fr_log(FR_LOG_WARN, "event=ingest_disconnected");
}

/* The first connection, when NATS was not reachable at start (natsConnection_Connect returned
 * NATS_NOT_YET_CONNECTED and the library went on trying in the background). */
static void note_connected(natsConnection *nc, fr_ingest_t *g, const char *event)
{
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    atomic_store(&g->connected, 1);
    fr_log(FR_LOG_INFO, "event=%s url=%s", event, url);
}

static void on_connected(natsConnection *nc, void *closure)
{
    note_connected(nc, closure, "ingest_connected");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    note_connected(nc, closure, "ingest_reconnected");
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    fr_ingest_t *g = closure;
    long part = -1;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; sub && i < g->nparts; i++)
        if (g->parts[i].sub == sub)
            part = (long)g->parts[i].id;
    pthread_mutex_unlock(&g->lock);
    if (part >= 0)
        fr_log(FR_LOG_WARN, "event=ingest_nats_error partition=%ld reason=\"%s\"", part,
               natsStatus_GetText(err));
    else
        fr_log(FR_LOG_WARN, "event=ingest_nats_error reason=\"%s\"", natsStatus_GetText(err));
}

/* ---- batches (consumer thread) and their completion (writer thread) ---- */

static void on_done(fr_job_t *job)
{
    part_t *p = job->done_arg;
    fr_ingest_t *g = p->g;
    pthread_mutex_lock(&g->lock);
    p->inflight = 0;
    p->inflight_rows = 0;
    if (job->rc == FR_OK && job->position_mode == FR_POSITION_RESET) {
        p->position = job->result.high_water;
        p->ahead = 0;
        p->ahead_checks = 0;
        p->need_resub = 1; /* from the new position */
        p->next_resub_us = 0;
        fr_log(FR_LOG_WARN, "event=ingest_position_reset stream=%s partition=%u position=%lld",
               g->s->cfg.stream, p->id, (long long)p->position);
    } else if (job->rc == FR_OK) {
        if (job->result.high_water > p->position)
            p->position = job->result.high_water;
        p->rows_applied += job->result.written + job->result.unchanged;
        p->rows_duplicate += job->result.duplicates;
    } else {
        /* nothing of the batch is stored: start over from the stored position */
        p->need_resub = 1;
        p->next_resub_us = fr_mono_us() + RESUB_BACKOFF_US;
        fr_log(FR_LOG_ERROR, "event=ingest_apply_failed partition=%u code=%s", p->id,
               fr_err_name(job->rc));
    }
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    fr_job_free(job);
}

static void log_rejected(fr_ingest_t *g, const part_t *p, uint64_t seq, const char *why)
{
    unsigned long long n = atomic_fetch_add(&g->rejected_logged, 1);
    if (n < 20 || n % 1000 == 0)
        fr_log(FR_LOG_WARN, "event=ingest_row_rejected partition=%u seq=%llu reason=\"%s\"", p->id,
               (unsigned long long)seq, why);
}

int fr_ingest_decode_row(const fr_registry_t *reg, const uint8_t *data, size_t len, int64_t now_us,
                         int64_t max_future_skew_us, fr_write_row_t *r, char *view_name,
                         const char **why)
{
    freshet_Row row;
    fr_pb_bytes_t ent, vals;
    memset(r, 0, sizeof *r);
    view_name[0] = 0;
    pb_istream_t is = fr_pb_istream(data, len);
    if (!fr_pb_decode_row(&is, &row, &ent, &vals)) {
        *why = fr_pb_why(&is);
        return FR_E_BAD_REQUEST;
    }
    snprintf(view_name, FR_INGEST_VIEW_MAX, "%s", row.view);
    r->view = fr_registry_view(reg, row.view);
    if (!r->view) {
        *why = "unknown view";
        return FR_E_UNKNOWN_VIEW;
    }
    if (!ent.ptr || !vals.ptr) {
        *why = "entity and values are required";
        return FR_E_BAD_REQUEST;
    }
    if (ent.len > UINT16_MAX) { /* fr_store_check_row enforces the real limit */
        *why = "entity: too long";
        return FR_E_BAD_REQUEST;
    }
    r->entity = ent.ptr;
    r->entity_len = (uint16_t)ent.len;
    r->event_ts_us = row.event_ts_us;
    r->values = vals.ptr;
    r->values_len = (uint32_t)vals.len;
    *why = NULL;
    int rc = fr_store_check_row(r, now_us, max_future_skew_us, why);
    if (rc != FR_OK && !*why)
        *why = "invalid row";
    return rc == FR_OK ? FR_OK : FR_E_BAD_REQUEST;
}

/* Decodes up to n queued messages into a write job. bt->consumed gets how many messages were used
 * (applied or rejected as poison); a message naming an unknown view ends the batch unconsumed.
 * The job's position is the sequence of the last consumed message, valid or rejected, so a
 * rejected message is never delivered again (a job of rejected messages only still commits it);
 * NULL when nothing was consumed or memory ran out (then nothing is consumed). */
typedef struct {
    size_t consumed; /* messages used (applied or rejected as poison) */
    uint64_t rejected, misrouted;
    bool stall; /* the first message names an unknown view */
} batch_t;

static fr_job_t *build_job(fr_ingest_t *g, part_t *p, const qent_t *ents, size_t n, batch_t *bt)
{
    size_t *consumed = &bt->consumed;
    fr_server_t *s = g->s;
    *consumed = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (size_t)natsMsg_GetDataLength(ents[i].msg);
    fr_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->rows = calloc(n, sizeof *job->rows);
    job->body = malloc(total ? total : 1);
    job->registry = fr_store_registry(s->store);
    if (!job->rows || !job->body) {
        fr_job_free(job);
        return NULL;
    }
    job->body_len = total;
    int64_t now = fr_clock_now(s->clock);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        int len = natsMsg_GetDataLength(ents[i].msg);
        uint8_t *data = job->body + off;
        memcpy(data, natsMsg_GetData(ents[i].msg), (size_t)len);
        off += (size_t)len;
        fr_write_row_t *r = &job->rows[job->row_count];
        char view_name[FR_INGEST_VIEW_MAX];
        const char *why = NULL;
        int rc = fr_ingest_decode_row(job->registry, data, (size_t)len, now,
                                      s->cfg.max_future_skew_us, r, view_name, &why);
        if (rc == FR_E_UNKNOWN_VIEW) {
            if (*consumed == 0) {
                bt->stall = true;
                if (!p->stall_logged)
                    fr_log(FR_LOG_WARN,
                           "event=ingest_unknown_view partition=%u seq=%llu view=\"%s\" "
                           "action=\"waiting for freshet apply\"",
                           p->id, (unsigned long long)ents[i].seq, view_name);
                p->stall_logged = 1;
            }
            break;
        }
        (*consumed)++;
        job->position = (int64_t)ents[i].seq;
        if (rc != FR_OK) { /* poison: skipped, counted and logged, never retried */
            bt->rejected++;
            log_rejected(g, p, ents[i].seq, why);
            continue;
        }
        p->stall_logged = 0;
        r->offset = (int64_t)ents[i].seq;
        r->has_offset = true;
        if (fr_partition_of(r->entity, r->entity_len, (uint32_t)s->cfg.partition_count) != p->id)
            bt->misrouted++; /* applied anyway: the stream is the truth; reads may miss it */
        job->row_count++;
    }
    if (!*consumed) {
        fr_job_free(job);
        return NULL;
    }
    job->op = freshet_Op_OP_PUT;
    job->position_mode = FR_POSITION_AT_LEAST;
    snprintf(job->source, sizeof job->source, "%s", g->source);
    job->partition = p->id;
    job->received_us = ents[0].recv_us;
    job->done_cb = on_done;
    job->done_arg = p;
    return job;
}

static void submit(fr_ingest_t *g, part_t *p, fr_job_t *job)
{
    int rc = fr_writer_submit(g->s, job);
    pthread_mutex_lock(&g->lock);
    if (rc == FR_E_BUSY) {
        p->retry_job = job; /* still inflight: nothing later of this partition may overtake it */
    } else if (rc != FR_OK) {
        p->retry_job = NULL;
        p->inflight = 0;
        p->inflight_rows = 0;
        fr_job_free(job);
    } else {
        p->retry_job = NULL;
    }
    pthread_mutex_unlock(&g->lock);
}

/* Moves the next batch of p to the writer, if p is ready. Returns 1 if it did some work. */
static int pump(fr_ingest_t *g, part_t *p, qent_t *scratch)
{
    pthread_mutex_lock(&g->lock);
    fr_job_t *retry = p->retry_job;
    size_t n = 0;
    if (!retry && !p->inflight && !p->need_resub && p->qlen && fr_mono_us() >= p->stall_until_us) {
        n = p->qlen < BATCH_MAX ? p->qlen : BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            scratch[i] = p->q[(p->qhead + i) % QMAX];
    }
    pthread_mutex_unlock(&g->lock);
    if (retry) {
        submit(g, p, retry);
        return 0;
    }
    if (!n)
        return 0;
    batch_t bt = {0, 0, 0, false};
    fr_job_t *job = build_job(g, p, scratch, n, &bt);
    size_t consumed = bt.consumed;
    pthread_mutex_lock(&g->lock);
    p->rows_rejected += bt.rejected;
    p->rows_misrouted += bt.misrouted;
    if (bt.stall)
        p->stall_until_us = fr_mono_us() + RESUB_BACKOFF_US;
    for (size_t i = 0; i < consumed; i++) {
        natsMsg_Destroy(p->q[p->qhead].msg);
        p->qhead = (p->qhead + 1) % QMAX;
        p->qlen--;
    }
    if (job) {
        p->inflight = 1;
        p->inflight_rows = job->row_count;
    }
    pthread_cond_broadcast(&g->space);
    pthread_mutex_unlock(&g->lock);
    if (job)
        submit(g, p, job);
    return consumed > 0;
}

/* ---- subscriptions ---- */

static int64_t stored_position(fr_ingest_t *g, uint32_t partition)
{
    int64_t pos = -1;
    if (fr_rtxn_begin(g->rtxn) == FR_OK) {
        if (fr_store_source_get(g->rtxn, g->source, partition, &pos) != FR_OK)
            pos = -1;
        fr_rtxn_reset(g->rtxn);
    }
    return pos;
}

static void drop_queue(part_t *p)
{
    while (p->qlen) {
        natsMsg_Destroy(p->q[p->qhead].msg);
        p->qhead = (p->qhead + 1) % QMAX;
        p->qlen--;
    }
}

/* Drops p's consumer and what it queued; callbacks still running for it are ignored. */
static void unsubscribe(fr_ingest_t *g, part_t *p)
{
    pthread_mutex_lock(&g->lock);
    p->gen++;
    drop_queue(p);
    natsSubscription *sub = p->sub;
    p->sub = NULL;
    pthread_cond_broadcast(&g->space);
    pthread_mutex_unlock(&g->lock);
    if (sub) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
}

/* (Re)creates p's ordered consumer after its stored position. p has no batch at the writer. */
static void resubscribe(fr_ingest_t *g, part_t *p)
{
    unsubscribe(g, p);
    pthread_mutex_lock(&g->lock);
    p->need_resub = 0;
    p->info_failures = p->stalled_checks = 0;
    unsigned gen = p->gen;
    pthread_mutex_unlock(&g->lock);
    int64_t pos = stored_position(g, p->id);
    pthread_mutex_lock(&g->lock);
    p->position = pos;
    p->last_queued = pos < 0 ? 0 : (uint64_t)pos;
    p->pending_known = false;
    p->last_msg_us = fr_mono_us();
    pthread_mutex_unlock(&g->lock);
    sub_ctx_t *sc = calloc(1, sizeof *sc);
    if (!sc) {
        pthread_mutex_lock(&g->lock);
        p->need_resub = 1;
        p->next_resub_us = fr_mono_us() + RESUB_BACKOFF_US;
        pthread_mutex_unlock(&g->lock);
        return;
    }
    sc->part = p;
    sc->gen = gen;
    sc->next = g->ctxs;
    g->ctxs = sc;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = API_WAIT_MS * 2;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = g->s->cfg.stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = pos < 0 ? 1 : (uint64_t)pos + 1;
    so.Config.Heartbeat = HEARTBEAT_NS;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    natsStatus st = js_Subscribe(&sub, g->js, p->subject, on_msg, sc, &jo, &so, &jerr);
    if (st != NATS_OK) {
        pthread_mutex_lock(&g->lock);
        p->need_resub = 1;
        p->next_resub_us = fr_mono_us() + RESUB_BACKOFF_US;
        pthread_mutex_unlock(&g->lock);
        if (!p->sub_fail_logged)
            fr_log(FR_LOG_WARN,
                   "event=ingest_subscribe_failed partition=%u reason=\"%s\" js_err=%d "
                   "action=\"retrying every second\"",
                   p->id, natsStatus_GetText(st), (int)jerr);
        p->sub_fail_logged = 1;
        return;
    }
    pthread_mutex_lock(&g->lock);
    p->sub = sub;
    pthread_mutex_unlock(&g->lock);
    p->sub_fail_logged = 0;
    p->resubscribes++;
    fr_log(FR_LOG_INFO, "event=ingest_subscribed partition=%u subject=%s start_seq=%llu", p->id,
           p->subject, (unsigned long long)so.Config.OptStartSeq);
}

/* p's stored position is above the stream's last sequence: the stream was deleted and recreated,
 * or NATS lost its storage. Resuming after the position would skip every new message up to it
 * (and report lag 0), so the partition stops, or with ingest_reset_ahead its position is reset to
 * 0 and the stream replays from its first message. p has no batch at the writer. */
static void position_ahead(fr_ingest_t *g, part_t *p, int64_t position, uint64_t last_seq)
{
    fr_server_t *s = g->s;
    bool reset = s->cfg.ingest_reset_ahead != 0;
    const char *action = reset ? "ingest_reset_ahead=1: resetting the position to 0, replaying "
                                 "the stream"
                               : "partition stopped: the stream was recreated or lost messages; "
                                 "restart with --ingest_reset_ahead 1 to replay it from its "
                                 "first message (README, Scaling out)";
    fr_log(FR_LOG_ERROR,
           "event=ingest_position_ahead stream=%s partition=%u position=%lld stream_last_seq=%llu "
           "action=\"%s\"",
           s->cfg.stream, p->id, (long long)position, (unsigned long long)last_seq, action);
    unsubscribe(g, p);
    fr_job_t *job = reset ? calloc(1, sizeof *job) : NULL;
    pthread_mutex_lock(&g->lock);
    p->ahead = 1;
    p->held = !reset;
    p->pending_known = false;
    if (job) {
        job->op = freshet_Op_OP_PUT;
        job->registry = fr_store_registry(s->store);
        snprintf(job->source, sizeof job->source, "%s", g->source);
        job->partition = p->id;
        job->position_mode = FR_POSITION_RESET;
        job->position = 0;
        job->received_us = fr_mono_us();
        job->done_cb = on_done;
        job->done_arg = p;
        p->inflight = 1;
    } else if (reset) { /* no memory: try again at a later check */
        p->ahead_checks = 0;
        p->need_resub = 1;
    }
    pthread_mutex_unlock(&g->lock);
    if (job)
        submit(g, p, job);
}

/* Once a second: stream state, each consumer's pending count, stall detection, resubscribes. */
static void housekeep(fr_ingest_t *g)
{
    int connected = natsConnection_Status(g->nc) == NATS_CONN_STATUS_CONNECTED;
    atomic_store(&g->connected, connected);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = API_WAIT_MS;
    /* positions before the stream info: every message they cover was in the stream before it */
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->nparts; i++)
        g->parts[i].checked_position = g->parts[i].position;
    pthread_mutex_unlock(&g->lock);
    bool have_last = false;
    uint64_t last_seq = 0;
    if (connected) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        if (js_GetStreamInfo(&si, g->js, g->s->cfg.stream, &jo, &jerr) == NATS_OK && si) {
            last_seq = si->State.LastSeq;
            have_last = true;
            atomic_store(&g->stream_last_seq, last_seq);
            jsStreamInfo_Destroy(si);
        }
    }
    int64_t now = fr_mono_us();
    for (size_t i = 0; i < g->nparts && !g->stop; i++) {
        part_t *p = &g->parts[i];
        pthread_mutex_lock(&g->lock);
        int busy = p->inflight, resub = p->need_resub || !p->sub, held = p->held;
        uint64_t redelivered = p->redelivered - p->redelivered_logged, first = p->redelivered_first;
        p->redelivered_logged = p->redelivered;
        pthread_mutex_unlock(&g->lock);
        if (redelivered) /* the library recreated the consumer from an earlier sequence */
            fr_log(FR_LOG_INFO,
                   "event=ingest_redelivered partition=%u messages=%llu first_seq=%llu "
                   "action=\"dropped: at or below the position\"",
                   p->id, (unsigned long long)redelivered, (unsigned long long)first);
        if (busy || held)
            continue;
        if (have_last) {
            int64_t pos = p->checked_position;
            int ahead = pos > 0 && (uint64_t)pos > last_seq;
            pthread_mutex_lock(&g->lock);
            p->ahead_checks = ahead ? p->ahead_checks + 1 : 0;
            pthread_mutex_unlock(&g->lock);
            if (p->ahead_checks >= AHEAD_CHECKS) {
                position_ahead(g, p, pos, last_seq);
                continue;
            }
        }
        if (resub) {
            if (now >= p->next_resub_us && connected)
                resubscribe(g, p);
            continue;
        }
        if (!connected)
            continue;
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        natsStatus st = natsSubscription_GetConsumerInfo(&ci, p->sub, &jo, &jerr);
        pthread_mutex_lock(&g->lock);
        if (st != NATS_OK || !ci) {
            if (++p->info_failures >= 3) { /* consumer gone (server restarted) or unreachable */
                p->need_resub = 1;
                p->next_resub_us = 0;
                fr_log(FR_LOG_WARN, "event=ingest_consumer_lost partition=%u reason=\"%s\"", p->id,
                       natsStatus_GetText(st));
            }
        } else {
            p->info_failures = 0;
            if (p->qlen == 0) {
                p->pending = ci->NumPending;
                p->pending_known = true;
            }
            if (ci->NumPending > 0 && p->qlen == 0 && now - p->last_msg_us > STALL_US)
                p->stalled_checks++;
            else
                p->stalled_checks = 0;
            if (p->stalled_checks >= 2) {
                p->need_resub = 1;
                p->next_resub_us = 0;
                fr_log(FR_LOG_WARN, "event=ingest_consumer_stalled partition=%u pending=%llu",
                       p->id, (unsigned long long)ci->NumPending);
            }
        }
        pthread_mutex_unlock(&g->lock);
        jsConsumerInfo_Destroy(ci);
    }
}

static int work_ready(fr_ingest_t *g)
{
    int64_t now = fr_mono_us();
    for (size_t i = 0; i < g->nparts; i++) {
        const part_t *p = &g->parts[i];
        if (p->retry_job || (!p->inflight && !p->need_resub && p->qlen && now >= p->stall_until_us))
            return 1;
    }
    return 0;
}

static void timed_wait(fr_ingest_t *g, int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + us * 1000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&g->cond, &g->lock, &ts);
}

static void *ingest_main(void *arg)
{
    fr_ingest_t *g = arg;
    qent_t *scratch = malloc(BATCH_MAX * sizeof *scratch);
    natsStatus st = natsConnection_Connect(&g->nc, g->opts);
    if (st == NATS_OK || st == NATS_NOT_YET_CONNECTED) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = API_WAIT_MS * 2;
        st = natsConnection_JetStream(&g->js, g->nc, &jo);
    }
    if (st != NATS_OK || !scratch) {
        fr_log(FR_LOG_ERROR, "event=ingest_failed url=%s reason=\"%s\"", g->s->cfg.ingest,
               natsStatus_GetText(st));
        free(scratch);
        return NULL;
    }
    fr_log(FR_LOG_INFO, "event=ingest_started url=%s stream=%s partitions=%s source=%s%s",
           g->s->cfg.ingest, g->s->cfg.stream,
           g->s->cfg.partitions[0] ? g->s->cfg.partitions : "all", g->source,
           natsConnection_Status(g->nc) == NATS_CONN_STATUS_CONNECTED
               ? ""
               : " connected=0 reason=\"NATS not reachable yet: retrying in the background\"");
    int64_t next_house = 0;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        pthread_mutex_unlock(&g->lock);
        if (fr_mono_us() >= next_house) {
            housekeep(g);
            next_house = fr_mono_us() + HOUSEKEEP_US;
        }
        for (size_t i = 0; i < g->nparts; i++)
            pump(g, &g->parts[i], scratch);
        pthread_mutex_lock(&g->lock);
        if (!g->stop && !work_ready(g))
            timed_wait(g, 50000);
        else if (!g->stop)
            for (size_t i = 0; i < g->nparts; i++)
                if (g->parts[i].retry_job) { /* writer queue full: back off a little */
                    timed_wait(g, 2000);
                    break;
                }
    }
    /* stop: let the batches at the writer commit; drop what BUSY kept back */
    for (;;) {
        int waiting = 0;
        for (size_t i = 0; i < g->nparts; i++) {
            part_t *p = &g->parts[i];
            if (p->retry_job) {
                fr_job_free(p->retry_job);
                p->retry_job = NULL;
                p->inflight = 0;
            }
            waiting |= p->inflight;
        }
        if (!waiting)
            break;
        timed_wait(g, 10000);
    }
    pthread_mutex_unlock(&g->lock);
    /* close first: unsubscribing an ordered consumer on a dead connection waits for API timeouts;
     * the server drops the ephemeral consumers on its own once interest is gone */
    natsConnection_Close(g->nc);
    for (size_t i = 0; i < g->nparts; i++) {
        pthread_mutex_lock(&g->lock);
        natsSubscription *sub = g->parts[i].sub;
        g->parts[i].sub = NULL;
        pthread_mutex_unlock(&g->lock);
        if (sub)
            natsSubscription_Destroy(sub);
    }
    free(scratch);
    return NULL;
}

/* ---- lifecycle ---- */

static void ingest_free(fr_ingest_t *g)
{
    if (g->js)
        jsCtx_Destroy(g->js);
    if (g->nc) {
        natsConnection_Close(g->nc);
        natsConnection_Destroy(g->nc);
    }
    if (g->opts)
        natsOptions_Destroy(g->opts);
    nats_CloseAndWait(2000); /* library threads gone: no callback can run any more */
    for (size_t i = 0; g->parts && i < g->nparts; i++) {
        drop_queue(&g->parts[i]);
        free(g->parts[i].q);
    }
    while (g->ctxs) {
        sub_ctx_t *n = g->ctxs->next;
        free(g->ctxs);
        g->ctxs = n;
    }
    free(g->parts);
    if (g->rtxn)
        fr_rtxn_free(g->rtxn);
    pthread_cond_destroy(&g->space);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static int make_options(fr_ingest_t *g)
{
    natsOptions *o = NULL;
    if (natsOptions_Create(&o) != NATS_OK)
        return FR_E_NOMEM;
    g->opts = o;
    char why[256];
    /* the config check at start refused every list this refuses */
    natsStatus st = fr_nats_set_servers(o, g->s->cfg.ingest, why, sizeof why);
    if (st == NATS_OK)
        st = natsOptions_SetName(o, "freshetd");
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, 200);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, 2000);
    if (st == NATS_OK)
        st = natsOptions_SetPingInterval(o, 1000);
    if (st == NATS_OK)
        st = natsOptions_SetMaxPingsOut(o, 3);
    /* With a connected callback, a NATS that cannot be reached at start makes Connect return
     * NATS_NOT_YET_CONNECTED and the library keeps trying in the background; without one,
     * Connect itself retried forever (MaxReconnect -1) and SIGTERM waited on it for ever. */
    if (st == NATS_OK)
        st = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, g);
    if (st == NATS_OK)
        st = natsOptions_SetDisconnectedCB(o, on_disconnected, g);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectedCB(o, on_reconnected, g);
    if (st == NATS_OK)
        st = natsOptions_SetErrorHandler(o, on_async_error, g);
    return st == NATS_OK ? FR_OK : FR_E_BAD_ARG;
}

int fr_ingest_start(fr_server_t *s, const char **why)
{
    static _Thread_local char buf[320];
    if (!s->cfg.ingest[0])
        return FR_OK;
    uint32_t count = (uint32_t)s->cfg.partition_count;
    bool *member = calloc(count, sizeof *member);
    fr_ingest_t *g = calloc(1, sizeof *g);
    if (!member || !g) {
        free(member);
        free(g);
        return FR_E_NOMEM;
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    pthread_cond_init(&g->space, NULL);
    g->s = s;
    int rc = FR_OK;
    if (fr_partset_parse(s->cfg.partitions, count, member, buf, sizeof buf)) {
        *why = buf;
        rc = FR_E_BAD_ARG;
        goto fail;
    }
    if (!s->cfg.stream[0] || strpbrk(s->cfg.stream, ".*> \t")) {
        snprintf(buf, sizeof buf, "stream: \"%s\" is not a JetStream stream name", s->cfg.stream);
        *why = buf;
        rc = FR_E_BAD_ARG;
        goto fail;
    }
    snprintf(g->source, sizeof g->source, "nats:%s", s->cfg.stream);
    for (uint32_t i = 0; i < count; i++)
        g->nparts += member[i];
    g->parts = calloc(g->nparts ? g->nparts : 1, sizeof *g->parts);
    rc = g->parts ? fr_rtxn_new(s->store, &g->rtxn) : FR_E_NOMEM;
    if (rc != FR_OK)
        goto fail;
    size_t k = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (!member[i])
            continue;
        part_t *p = &g->parts[k++];
        p->g = g;
        p->id = i;
        snprintf(p->subject, sizeof p->subject, "freshet.*.%u", i);
        p->q = calloc(QMAX, sizeof *p->q);
        if (!p->q) {
            rc = FR_E_NOMEM;
            goto fail;
        }
        p->need_resub = 1;
        p->position = stored_position(g, i);
    }
    rc = make_options(g);
    if (rc != FR_OK) {
        snprintf(buf, sizeof buf, "ingest: \"%.200s\" is not a NATS URL list", s->cfg.ingest);
        *why = buf;
        goto fail;
    }
    if (pthread_create(&g->thread, NULL, ingest_main, g) != 0) {
        rc = FR_E_INTERNAL;
        goto fail;
    }
    g->thread_started = 1;
    s->ingest = g;
    free(member);
    return FR_OK;
fail:
    free(member);
    ingest_free(g);
    return rc;
}

void fr_ingest_stop(fr_server_t *s)
{
    fr_ingest_t *g = s->ingest;
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_cond_broadcast(&g->space);
    pthread_mutex_unlock(&g->lock);
    if (g->thread_started)
        pthread_join(g->thread, NULL);
    s->ingest = NULL;
    ingest_free(g);
}

/* -1 when unknown, which includes a position above the stream's last sequence */
static int64_t part_lag(const part_t *p)
{
    if (!p->pending_known || p->ahead || p->ahead_checks)
        return -1;
    return (int64_t)(p->pending + p->qlen + p->inflight_rows);
}

bool fr_ingest_lag(fr_server_t *s, const char *source, size_t source_len, uint32_t partition,
                   int64_t *lag)
{
    fr_ingest_t *g = s->ingest;
    if (!g || strlen(g->source) != source_len || memcmp(g->source, source, source_len) != 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->nparts; i++)
        if (g->parts[i].id == partition) {
            *lag = part_lag(&g->parts[i]);
            found = true;
        }
    pthread_mutex_unlock(&g->lock);
    return found;
}

void fr_ingest_metrics(fr_server_t *s, fr_buf_t *b)
{
    fr_ingest_t *g = s->ingest;
    if (!g)
        return;
    fr_buf_printf(b,
                  "# HELP freshet_ingest_connected 1 while connected to NATS.\n"
                  "# TYPE freshet_ingest_connected gauge\nfreshet_ingest_connected %d\n",
                  atomic_load(&g->connected));
    fr_buf_printf(b,
                  "# HELP freshet_ingest_stream_last_seq Last sequence of the JetStream stream.\n"
                  "# TYPE freshet_ingest_stream_last_seq gauge\n"
                  "freshet_ingest_stream_last_seq{stream=\"%s\"} %llu\n",
                  s->cfg.stream, atomic_load(&g->stream_last_seq));
    fr_buf_printf(b,
                  "# HELP freshet_ingest_disconnects_total NATS connection losses.\n"
                  "# TYPE freshet_ingest_disconnects_total counter\n"
                  "freshet_ingest_disconnects_total %llu\n",
                  atomic_load(&g->disconnects));
    static const char *const names[] = {
        "freshet_ingest_position",
        "Stream sequence of the partition's last applied message.",
        "freshet_ingest_lag",
        "Messages of the partition in the stream not yet applied (-1: unknown).",
        "freshet_ingest_rows_applied_total",
        "Rows applied from the stream (incl. unchanged no-ops).",
        "freshet_ingest_rows_duplicate_total",
        "Messages at or below the stored position (dropped).",
        "freshet_ingest_rows_rejected_total",
        "Messages skipped as invalid (malformed, type mismatch, future).",
        "freshet_ingest_rows_misrouted_total",
        "Rows whose entity hashes to another partition.",
        "freshet_ingest_resubscribes_total",
        "Ordered consumers (re)created from the stored position.",
        "freshet_ingest_position_ahead",
        "1: the stored position is above the stream's last sequence (stream recreated or lost).",
    };
    pthread_mutex_lock(&g->lock);
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m += 2) {
        fr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", names[m], names[m + 1], names[m],
                      strstr(names[m], "_total") ? "counter" : "gauge");
        for (size_t i = 0; i < g->nparts; i++) {
            const part_t *p = &g->parts[i];
            long long v = 0;
            switch (m / 2) {
            case 0:
                v = p->position;
                break;
            case 1:
                v = part_lag(p);
                break;
            case 2:
                v = (long long)p->rows_applied;
                break;
            case 3:
                v = (long long)p->rows_duplicate;
                break;
            case 4:
                v = (long long)p->rows_rejected;
                break;
            case 5:
                v = (long long)p->rows_misrouted;
                break;
            case 6:
                v = (long long)p->resubscribes;
                break;
            default:
                v = p->ahead;
                break;
            }
            fr_buf_printf(b, "%s{source=\"%s\",partition=\"%u\"} %lld\n", names[m], g->source,
                          p->id, v);
        }
    }
    pthread_mutex_unlock(&g->lock);
}
