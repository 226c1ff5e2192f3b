/* libfreshet's JetStream publisher (freshet/cluster.h): one message per row on
 * freshet.<view>.<partition>, protobuf Row payloads, Nats-Msg-Id for deduplication, asynchronous
 * publishes acknowledged in windows that never hold two updates of one key. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <nats/nats.h>

#include "freshet/cluster.h"
#include "net/nats_servers.h"
#include "proto/frame.h"
#include "proto/mp.h"

#define DEFAULT_STREAM "FRESHET"
#define DUPLICATE_WINDOW_NS (120LL * 1000000000LL)

struct fr_publisher {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    char stream[64];
    uint32_t pcount;
    int timeout_ms, max_retries;
    pthread_mutex_t lock; /* guards the fields below: the ack handler runs on a library thread */
    natsMsg **retry;
    size_t nretry, cap_retry;
    uint64_t published, duplicates, last_seq;
    char ack_err[256];
    /* keys of the rows in the current window (open addressing; 0 = empty) */
    uint64_t *keys;
    size_t key_cap, key_count;
    /* per key, the content id of its last row published (chain_*); and this call's changes to
     * it, undone when the call fails so that a retry of the call makes the same ids */
    struct chain_ent {
        uint64_t key, prev;
        int64_t used_s;
    } *chain, *undo;
    size_t chain_cap, chain_count, undo_count, undo_cap;
    msgpack_sbuffer sb;
    uint8_t *pbuf;
    size_t pbuf_cap;
    char err[512];
};

static int failf(fr_publisher_t *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int failf(fr_publisher_t *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return code;
}

static uint64_t fnv64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define FNV64_INIT 14695981039346656037ull

void fr_publisher_msg_id(const char *view, const void *entity, size_t entity_len,
                         int64_t event_ts_us, const void *values, size_t values_len, char *buf,
                         size_t n)
{
    snprintf(buf, n, "%s/%016llx.%zu/%lld/%016llx", view,
             (unsigned long long)fnv64(FNV64_INIT, entity, entity_len), entity_len,
             (long long)event_ts_us, (unsigned long long)fnv64(FNV64_INIT, values, values_len));
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    fr_publisher_t *p = closure;
    pthread_mutex_lock(&p->lock);
    if (pa && !pae) {
        if (pa->Duplicate)
            p->duplicates++;
        else
            p->published++;
        if (pa->Sequence > p->last_seq)
            p->last_seq = pa->Sequence;
        pthread_mutex_unlock(&p->lock);
        natsMsg_Destroy(msg);
        return;
    }
    if (pae)
        snprintf(p->ack_err, sizeof p->ack_err, "%s",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
    if (p->nretry == p->cap_retry) {
        size_t cap = p->cap_retry ? p->cap_retry * 2 : 256;
        natsMsg **r = realloc(p->retry, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&p->lock);
            natsMsg_Destroy(msg); /* cannot happen in practice; counted as unacknowledged below */
            return;
        }
        p->retry = r;
        p->cap_retry = cap;
    }
    p->retry[p->nretry++] = msg; /* ours now: re-sent by complete_window */
    pthread_mutex_unlock(&p->lock);
}

static void keep_for_retry(fr_publisher_t *p, natsMsg *msg)
{
    if (!msg)
        return;
    jsPubAckErr pae = {msg, NATS_ERR, 0, "publish failed"};
    on_ack(NULL, msg, NULL, &pae, p);
}

static int set_opts(fr_publisher_t *p, const fr_publisher_opts_t *o)
{
    char why[256] = "";
    natsStatus st = natsOptions_Create(&p->opts);
    if (st == NATS_OK)
        st = fr_nats_set_servers(p->opts, o->url, why, sizeof why);
    if (why[0]) /* the list itself was refused */
        return failf(p, FR_E_BAD_ARG, "url: %s", why);
    if (st == NATS_OK)
        st = natsOptions_SetName(p->opts, "libfreshet-publisher");
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(p->opts, p->timeout_ms);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(p->opts, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(p->opts, 200);
    if (st == NATS_OK)
        st = natsOptions_SetPingInterval(p->opts, 1000);
    if (st == NATS_OK)
        st = natsOptions_SetMaxPingsOut(p->opts, 3);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectBufSize(p->opts, 64 * 1024 * 1024);
    return st == NATS_OK
               ? FR_OK
               : failf(p, FR_E_BAD_ARG, "url \"%.200s\": %s", o->url, natsStatus_GetText(st));
}

static int ensure_stream(fr_publisher_t *p, int replicas)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, p->js, p->stream, NULL, &jerr);
    if (st == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return FR_OK;
    }
    if (replicas <= 0 || jerr != JSStreamNotFoundErr)
        return failf(p, FR_E_IO, "stream %s: %s (js error %d)", p->stream,
                     nats_GetLastError(NULL) ? nats_GetLastError(NULL) : natsStatus_GetText(st),
                     (int)jerr);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"freshet.>"};
    cfg.Name = p->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.Duplicates = DUPLICATE_WINDOW_NS;
    st = js_AddStream(&si, p->js, &cfg, NULL, &jerr);
    if (st != NATS_OK && jerr != JSStreamNameExistErr)
        return failf(p, FR_E_IO, "cannot create stream %s (replicas %d): %s (js error %d)",
                     p->stream, replicas,
                     nats_GetLastError(NULL) ? nats_GetLastError(NULL) : natsStatus_GetText(st),
                     (int)jerr);
    jsStreamInfo_Destroy(si);
    return FR_OK;
}

int fr_publisher_new(const fr_publisher_opts_t *o, fr_publisher_t **out, char *err, size_t err_len)
{
    *out = NULL;
    fr_publisher_t *p = calloc(1, sizeof *p);
    if (!p)
        return FR_E_NOMEM;
    pthread_mutex_init(&p->lock, NULL);
    msgpack_sbuffer_init(&p->sb);
    snprintf(p->stream, sizeof p->stream, "%s",
             o->stream && *o->stream ? o->stream : DEFAULT_STREAM);
    p->pcount = o->partition_count ? o->partition_count : 8;
    p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    p->max_retries = o->max_retries > 0 ? o->max_retries : 20;
    int rc = FR_OK;
    if (!o->url || !*o->url) {
        rc = failf(p, FR_E_BAD_ARG, "url: empty");
        goto fail;
    }
    rc = set_opts(p, o);
    if (rc != FR_OK)
        goto fail;
    natsStatus st = natsConnection_Connect(&p->nc, p->opts);
    if (st != NATS_OK) {
        rc = failf(p, FR_E_IO, "cannot connect to %.200s: %s", o->url, natsStatus_GetText(st));
        goto fail;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = p->timeout_ms;
    jo.PublishAsync.MaxPending = o->max_pending > 0 ? o->max_pending : 8192;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = p;
    jo.PublishAsync.StallWait = p->timeout_ms;
    st = natsConnection_JetStream(&p->js, p->nc, &jo);
    if (st != NATS_OK) {
        rc = failf(p, FR_E_IO, "JetStream context: %s", natsStatus_GetText(st));
        goto fail;
    }
    rc = ensure_stream(p, o->replicas);
    if (rc != FR_OK)
        goto fail;
    *out = p;
    return FR_OK;
fail:
    if (err && err_len)
        snprintf(err, err_len, "%s", p->err);
    fr_publisher_free(p);
    return rc;
}

void fr_publisher_free(fr_publisher_t *p)
{
    if (!p)
        return;
    if (p->js)
        jsCtx_Destroy(p->js);
    if (p->nc) {
        natsConnection_Close(p->nc);
        natsConnection_Destroy(p->nc);
    }
    if (p->opts)
        natsOptions_Destroy(p->opts);
    for (size_t i = 0; i < p->nretry; i++)
        natsMsg_Destroy(p->retry[i]);
    free(p->retry);
    free(p->keys);
    free(p->chain);
    free(p->undo);
    free(p->pbuf);
    msgpack_sbuffer_destroy(&p->sb);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

const char *fr_publisher_error(const fr_publisher_t *p)
{
    return p->err;
}

/* ---- message-id chains ----
 *
 * A row's Nats-Msg-Id is its content (view, entity, event time, values), so the same rows
 * published again (a re-run of a file, a retry of a failed call) are stored once. Content alone
 * would also drop a later update that repeats an earlier one within JetStream's duplicate window
 * (A, B, A for one key and event time stored B): so the id also names the content of the key's
 * previous row from this publisher. The same sequence gives the same ids; A, B, A gives three.
 * Entries unused for two duplicate windows are dropped: by then JetStream has forgotten the ids. */

#define CHAIN_FORGET_S (2 * DUPLICATE_WINDOW_NS / 1000000000LL)

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static size_t chain_slot(const struct chain_ent *t, size_t cap, uint64_t key)
{
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (t[j].key && t[j].key != key)
        j = (j + 1) & (cap - 1);
    return j;
}

static bool chain_live(const struct chain_ent *e, int64_t now)
{
    return e->key && e->used_s != INT64_MIN && now - e->used_s < CHAIN_FORGET_S;
}

/* Rebuilds the table at a size for its live entries, dropping forgotten ones. 0 or -1. */
static int chain_rebuild(fr_publisher_t *p, int64_t now)
{
    size_t live = 0;
    for (size_t i = 0; i < p->chain_cap; i++)
        live += chain_live(&p->chain[i], now);
    size_t cap = 16384;
    while ((live + 1) * 2 > cap)
        cap *= 2;
    struct chain_ent *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < p->chain_cap; i++)
        if (chain_live(&p->chain[i], now))
            t[chain_slot(t, cap, p->chain[i].key)] = p->chain[i];
    free(p->chain);
    p->chain = t;
    p->chain_cap = cap;
    p->chain_count = live;
    return 0;
}

/* The content id hash of key's previous row (0: none remembered). */
static uint64_t chain_prev(const fr_publisher_t *p, uint64_t key, int64_t now)
{
    if (!p->chain_cap)
        return 0;
    const struct chain_ent *e = &p->chain[chain_slot(p->chain, p->chain_cap, key | 1)];
    return chain_live(e, now) ? e->prev : 0;
}

/* Remembers content as key's last row, logging the old entry for chain_undo. 0 or -1. */
static int chain_set(fr_publisher_t *p, uint64_t key, uint64_t content, int64_t now)
{
    key |= 1; /* never 0 */
    if ((p->chain_count + 1) * 2 > p->chain_cap && chain_rebuild(p, now) != 0)
        return -1;
    if (p->undo_count == p->undo_cap) {
        size_t cap = p->undo_cap ? p->undo_cap * 2 : 1024;
        struct chain_ent *u = realloc(p->undo, cap * sizeof *u);
        if (!u)
            return -1;
        p->undo = u;
        p->undo_cap = cap;
    }
    struct chain_ent *e = &p->chain[chain_slot(p->chain, p->chain_cap, key)];
    p->undo[p->undo_count++] = e->key ? *e : (struct chain_ent){key, 0, INT64_MIN};
    if (!e->key)
        p->chain_count++;
    *e = (struct chain_ent){key, content, now};
    return 0;
}

/* Puts back what this call changed, newest first (a key may have changed more than once). */
static void chain_undo(fr_publisher_t *p)
{
    while (p->undo_count) {
        struct chain_ent old = p->undo[--p->undo_count];
        struct chain_ent *e = &p->chain[chain_slot(p->chain, p->chain_cap, old.key)];
        if (!e->key) /* dropped by a rebuild since: back in (the table is at most half full) */
            p->chain_count++;
        *e = old; /* a key new in this call stays, marked forgotten (used_s INT64_MIN) */
    }
}

/* ---- the window's key set ---- */

static void keys_clear(fr_publisher_t *p)
{
    if (p->key_count)
        memset(p->keys, 0, p->key_cap * sizeof *p->keys);
    p->key_count = 0;
}

/* Adds key; returns 1 if it was already present, -1 on allocation failure. */
static int keys_add(fr_publisher_t *p, uint64_t key)
{
    key |= 1; /* never 0 */
    if ((p->key_count + 1) * 2 > p->key_cap) {
        size_t cap = p->key_cap ? p->key_cap * 2 : 16384;
        uint64_t *k = calloc(cap, sizeof *k);
        if (!k)
            return -1;
        for (size_t i = 0; i < p->key_cap; i++)
            if (p->keys[i]) {
                size_t j = (size_t)(p->keys[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
                while (k[j])
                    j = (j + 1) & (cap - 1);
                k[j] = p->keys[i];
            }
        free(p->keys);
        p->keys = k;
        p->key_cap = cap;
    }
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ull) & (p->key_cap - 1);
    while (p->keys[j]) {
        if (p->keys[j] == key)
            return 1;
        j = (j + 1) & (p->key_cap - 1);
    }
    p->keys[j] = key;
    p->key_count++;
    return 0;
}

/* Waits for every acknowledgement of the window, re-sending failures; clears the key set. */
static int complete_window(fr_publisher_t *p, fr_publish_result_t *res)
{
    for (int round = 0;; round++) {
        /* wait while acknowledgements keep arriving; declare the rest lost after a quiet second
         * (a leader election) or timeout_ms in all */
        natsStatus st;
        int64_t waited = 0;
        for (;;) {
            pthread_mutex_lock(&p->lock);
            uint64_t acks = p->published + p->duplicates + p->nretry;
            pthread_mutex_unlock(&p->lock);
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MaxWait = 1000;
            st = js_PublishAsyncComplete(p->js, &po);
            waited += 1000;
            pthread_mutex_lock(&p->lock);
            bool progress = p->published + p->duplicates + p->nretry != acks;
            pthread_mutex_unlock(&p->lock);
            if (st == NATS_OK || !progress || waited >= p->timeout_ms)
                break;
        }
        if (st != NATS_OK) {
            natsMsgList pend = {0};
            if (js_PublishAsyncGetPendingList(&pend, p->js) == NATS_OK) {
                for (int i = 0; i < pend.Count; i++) {
                    keep_for_retry(p, pend.Msgs[i]);
                    pend.Msgs[i] = NULL;
                }
                natsMsgList_Destroy(&pend);
            }
        }
        pthread_mutex_lock(&p->lock);
        natsMsg **again = p->retry;
        size_t n = p->nretry;
        p->retry = NULL;
        p->nretry = p->cap_retry = 0;
        pthread_mutex_unlock(&p->lock);
        if (n == 0) {
            keys_clear(p);
            return FR_OK;
        }
        if (round >= p->max_retries) {
            for (size_t i = 0; i < n; i++)
                natsMsg_Destroy(again[i]);
            free(again);
            keys_clear(p);
            return failf(p, FR_E_IO, "%zu row(s) unacknowledged after %d retries: %s", n, round,
                         p->ack_err[0] ? p->ack_err : "no acknowledgement");
        }
        long ms = 50L << (round < 5 ? round : 5); /* 50 ms .. 1.6 s */
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        for (size_t i = 0; i < n; i++) {
            natsMsg *m = again[i];
            if (res)
                res->retries++;
            if (js_PublishMsgAsync(p->js, &m, NULL) != NATS_OK)
                keep_for_retry(p, m);
        }
        free(again);
    }
}

static int encode_row(fr_publisher_t *p, const fr_put_row_t *r, size_t entity_len,
                      const char *values, size_t values_len, size_t *len)
{
    freshet_Row row = freshet_Row_init_zero;
    row.has_view = true;
    snprintf(row.view, sizeof row.view, "%s", r->view);
    fr_pb_bytes_t ent = {r->entity, entity_len}, vals = {values, values_len};
    row.entity.funcs.encode = fr_pb_encode_bytes;
    row.entity.arg = &ent;
    row.values.funcs.encode = fr_pb_encode_bytes;
    row.values.arg = &vals;
    row.has_event_ts_us = true;
    row.event_ts_us = r->event_ts_us;
    size_t need = entity_len + values_len + sizeof row.view + 64;
    if (need > p->pbuf_cap) {
        uint8_t *b = realloc(p->pbuf, need);
        if (!b)
            return FR_E_NOMEM;
        p->pbuf = b;
        p->pbuf_cap = need;
    }
    pb_ostream_t os = pb_ostream_from_buffer(p->pbuf, p->pbuf_cap);
    if (!pb_encode(&os, freshet_Row_fields, &row))
        return FR_E_INTERNAL;
    *len = os.bytes_written;
    return FR_OK;
}

static bool subject_safe(const char *view)
{
    if (!*view || strlen(view) > 64)
        return false;
    for (const char *c = view; *c; c++)
        if (*c == '.' || *c == '*' || *c == '>' || *c <= ' ' || (unsigned char)*c >= 0x7f)
            return false;
    return true;
}

/* r's values as one msgpack array into p->sb; 0, or -1 when a value cannot be packed. */
static int pack_values(fr_publisher_t *p, const fr_put_row_t *r)
{
    msgpack_sbuffer_clear(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_array(&pk, r->value_count);
    for (size_t k = 0; k < r->value_count && !bad; k++)
        bad = fr_mp_pack_value(&pk, &r->values[k]);
    return bad ? -1 : 0;
}

static int publish_one(fr_publisher_t *p, const fr_put_row_t *r, size_t idx, uint64_t prev,
                       uint64_t *content)
{
    size_t elen = r->entity_len ? r->entity_len : strlen(r->entity);
    if (pack_values(p, r) != 0)
        return failf(p, FR_E_BAD_ARG, "row %zu: cannot pack values", idx);
    size_t len = 0;
    int rc = encode_row(p, r, elen, p->sb.data, p->sb.size, &len);
    if (rc != FR_OK)
        return failf(p, rc, "row %zu: cannot encode", idx);
    char subject[128], id[192];
    snprintf(subject, sizeof subject, "freshet.%s.%u", r->view,
             fr_partition_of(r->entity, elen, p->pcount));
    fr_publisher_msg_id(r->view, r->entity, elen, r->event_ts_us, p->sb.data, p->sb.size, id,
                        sizeof id);
    size_t used = strlen(id);
    *content = fnv64(FNV64_INIT, id, used);
    if (prev)
        snprintf(id + used, sizeof id - used, "/%016llx", (unsigned long long)prev);
    natsMsg *msg = NULL;
    natsStatus st = natsMsg_Create(&msg, subject, NULL, (const char *)p->pbuf, (int)len);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
    if (st != NATS_OK) {
        natsMsg_Destroy(msg);
        return failf(p, FR_E_NOMEM, "row %zu: %s", idx, natsStatus_GetText(st));
    }
    if (js_PublishMsgAsync(p->js, &msg, NULL) != NATS_OK)
        keep_for_retry(p, msg); /* stalled or disconnected: re-sent when the window completes */
    return FR_OK;
}

/* The checks a row can fail on its own (a view usable as a subject token, an entity, values
 * that pack), made for every row before any is published: a call refused with BAD_ARG has
 * published nothing (only FR_E_IO may leave part of a call in the stream). */
static int check_rows(fr_publisher_t *p, const fr_put_row_t *rows, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const fr_put_row_t *r = &rows[i];
        if (!r->view || !subject_safe(r->view))
            return failf(p, FR_E_BAD_ARG, "row %zu: view \"%.64s\" cannot be a subject token", i,
                         r->view ? r->view : "");
        if (!r->entity || !(r->entity_len ? r->entity_len : strlen(r->entity)))
            return failf(p, FR_E_BAD_ARG, "row %zu: empty entity", i);
        if (pack_values(p, r) != 0)
            return failf(p, FR_E_BAD_ARG, "row %zu: cannot pack values", i);
    }
    return FR_OK;
}

int fr_publisher_put(fr_publisher_t *p, const fr_put_row_t *rows, size_t count,
                     fr_publish_result_t *out)
{
    if (check_rows(p, rows, count) != FR_OK)
        return FR_E_BAD_ARG;
    pthread_mutex_lock(&p->lock);
    uint64_t pub0 = p->published, dup0 = p->duplicates;
    p->ack_err[0] = 0;
    pthread_mutex_unlock(&p->lock);
    fr_publish_result_t res = {0, 0, 0, 0};
    int64_t now = mono_s(); /* a call's rows share one age: entries live 4 minutes */
    int rc = FR_OK;
    for (size_t i = 0; i < count && rc == FR_OK; i++) {
        const fr_put_row_t *r = &rows[i];
        size_t elen = r->entity_len ? r->entity_len : strlen(r->entity); /* checked above */
        uint64_t key =
            fnv64(fnv64(FNV64_INIT, r->view ? r->view : "", r->view ? strlen(r->view) + 1 : 0),
                  r->entity, elen);
        int seen = keys_add(p, key);
        if (seen < 0) {
            rc = failf(p, FR_E_NOMEM, "no memory");
            break;
        }
        if (seen) { /* a second update of this key: the first must be in the stream first */
            rc = complete_window(p, &res);
            if (rc == FR_OK && keys_add(p, key) < 0)
                rc = failf(p, FR_E_NOMEM, "no memory");
            if (rc != FR_OK)
                break;
        }
        uint64_t content = 0;
        rc = publish_one(p, r, i, chain_prev(p, key, now), &content);
        if (rc == FR_OK && chain_set(p, key, content, now) != 0)
            rc = failf(p, FR_E_NOMEM, "no memory");
    }
    int rc2 = complete_window(p, &res);
    if (rc == FR_OK)
        rc = rc2;
    if (rc != FR_OK)
        chain_undo(p); /* a retry of this call makes the same ids */
    p->undo_count = 0;
    pthread_mutex_lock(&p->lock);
    res.published = p->published - pub0;
    res.duplicates = p->duplicates - dup0;
    res.last_seq = p->last_seq;
    pthread_mutex_unlock(&p->lock);
    if (out) {
        out->published += res.published;
        out->duplicates += res.duplicates;
        out->retries += res.retries;
        if (res.last_seq > out->last_seq)
            out->last_seq = res.last_seq;
    }
    if (rc == FR_OK)
        p->err[0] = 0;
    return rc;
}

int fr_publisher_stream_info(fr_publisher_t *p, fr_stream_info_t *out)
{
    memset(out, 0, sizeof *out);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = p->timeout_ms;
    natsStatus st = js_GetStreamInfo(&si, p->js, p->stream, &jo, &jerr);
    if (st != NATS_OK || !si)
        return failf(p, FR_E_IO, "stream %s: %s (js error %d)", p->stream, natsStatus_GetText(st),
                     (int)jerr);
    out->messages = si->State.Msgs;
    out->first_seq = si->State.FirstSeq;
    out->last_seq = si->State.LastSeq;
    out->replicas = si->Config ? (int)si->Config->Replicas : 0;
    if (si->Cluster) {
        snprintf(out->leader, sizeof out->leader, "%s",
                 si->Cluster->Leader ? si->Cluster->Leader : "");
        for (int i = 0; i < si->Cluster->ReplicasLen; i++)
            out->current += si->Cluster->Replicas[i] && si->Cluster->Replicas[i]->Current &&
                            !si->Cluster->Replicas[i]->Offline;
    }
    jsStreamInfo_Destroy(si);
    p->err[0] = 0;
    return FR_OK;
}
