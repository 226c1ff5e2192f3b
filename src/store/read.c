/* The read path: reusable read transactions and the as-of lookup (DESIGN.md, Semantics 1–2, 7). */
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "common/buf.h"
#include "freshet/err.h"
#include "key.h"
#include "store_int.h"

int fr_rtxn_new(fr_store_t *s, fr_rtxn_t **out)
{
    fr_rtxn_t *r = fr_calloc(1, sizeof *r);
    if (!r)
        return FR_E_NOMEM;
    r->store = s;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(r->txn, s->rows, &r->rows_cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(r->txn, s->rows, &r->scan_cur);
    if (mrc != MDB_SUCCESS) {
        if (r->rows_cur)
            mdb_cursor_close(r->rows_cur);
        if (r->txn)
            mdb_txn_abort(r->txn);
        free(r);
        return fr_store_mdb_err(mrc);
    }
    mdb_txn_reset(r->txn);
    *out = r;
    return FR_OK;
}

int fr_rtxn_begin(fr_rtxn_t *r)
{
    int mrc = mdb_txn_renew(r->txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_renew(r->txn, r->rows_cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_renew(r->txn, r->scan_cur);
    if (mrc != MDB_SUCCESS)
        return fr_store_mdb_err(mrc);
    r->active = 1;
    return FR_OK;
}

void fr_rtxn_reset(fr_rtxn_t *r)
{
    if (r->active)
        mdb_txn_reset(r->txn);
    r->active = 0;
}

void fr_rtxn_free(fr_rtxn_t *r)
{
    if (!r)
        return;
    mdb_cursor_close(r->rows_cur);
    mdb_cursor_close(r->scan_cur);
    mdb_txn_abort(r->txn);
    free(r);
}

uint64_t fr_rtxn_id(const fr_rtxn_t *r) { return (uint64_t)mdb_txn_id(r->txn); }

/* Takes the version at key k (value v) for an as-of read of the entity whose key prefix is
 * key[0, plen): 0 when *out is settled (that version, or NOT_FOUND when k is past the entity), 1
 * when a served read must look at the next, older key, or an fr_err_t. */
static int asof_take(const fr_view_def_t *view, const uint8_t *key, size_t plen, int64_t as_of_us,
                     unsigned flags, const MDB_val *k, const MDB_val *v, fr_asof_t *out)
{
    if (k->mv_size < plen || memcmp(k->mv_data, key, plen) != 0)
        return 0; /* next entity: nothing at or before as_of */
    fr_key_t dk;
    if (fr_key_decode(k->mv_data, k->mv_size, &dk) != 0 || v->mv_size < 8)
        return FR_E_STORAGE;
    int64_t written_at;
    memcpy(&written_at, v->mv_data, 8);
    if ((flags & FR_ASOF_SERVED) && written_at > as_of_us)
        return 1; /* served mode: this version was learned after as_of; an older write may */
    out->event_ts_us = dk.event_ts_us;
    out->written_at_us = written_at;
    out->values = (const uint8_t *)v->mv_data + 8;
    out->values_len = v->mv_size - 8;
    out->status = fr_asof_status(as_of_us, dk.event_ts_us, view->ttl_us);
    return 0;
}

static bool asof_skip(size_t entity_len, int64_t as_of_us)
{
    return entity_len == 0 || entity_len > FR_ENTITY_MAX || as_of_us < 0;
}

int fr_asof_get(fr_rtxn_t *r, const fr_view_def_t *view, const uint8_t *entity, size_t entity_len,
                int64_t as_of_us, unsigned flags, fr_asof_t *out)
{
    memset(out, 0, sizeof *out);
    out->status = FR_STATUS_NOT_FOUND;
    if (asof_skip(entity_len, as_of_us))
        return FR_OK;
    uint8_t key[FR_KEY_MAX];
    size_t plen = fr_key_prefix(key, view->id, entity, entity_len);
    size_t klen = fr_key_encode(key, view->id, entity, entity_len, as_of_us, UINT64_MAX);
    MDB_val k = {klen, key}, v;
    int mrc = mdb_cursor_get(r->rows_cur, &k, &v, MDB_SET_RANGE);
    for (;;) {
        if (mrc == MDB_NOTFOUND)
            return FR_OK;
        if (mrc != MDB_SUCCESS)
            return fr_store_mdb_err(mrc);
        int rc = asof_take(view, key, plen, as_of_us, flags, &k, &v, out);
        if (rc <= 0)
            return rc;
        mrc = mdb_cursor_get(r->rows_cur, &k, &v, MDB_NEXT);
    }
}

#define ASOF_GROUP 64

int fr_asof_get_many(fr_rtxn_t *r, const fr_view_def_t *view, const fr_asof_req_t *reqs,
                     size_t n, unsigned flags)
{
    uint8_t keys[ASOF_GROUP][FR_KEY_MAX];
    const uint8_t *kp[ASOF_GROUP];
    size_t klen[ASOF_GROUP], plen[ASOF_GROUP], idx[ASOF_GROUP];
    MDB_val kout[ASOF_GROUP], vout[ASOF_GROUP];
    int8_t walked[ASOF_GROUP];
    for (size_t at = 0; at < n;) {
        size_t m = 0, groups = (n - at + ASOF_GROUP - 1) / ASOF_GROUP;
        size_t want = (n - at + groups - 1) / groups; /* equal groups (pagewalk.c) */
        for (; at < n && m < want; at++) {
            const fr_asof_req_t *q = &reqs[at];
            memset(q->out, 0, sizeof *q->out);
            q->out->status = FR_STATUS_NOT_FOUND;
            if (asof_skip(q->entity_len, q->as_of_us))
                continue;
            klen[m] = fr_key_encode(keys[m], view->id, q->entity, q->entity_len, q->as_of_us,
                                    UINT64_MAX);
            plen[m] = klen[m] - 16; /* the (view, entity) prefix: fr_key_prefix's length */
            kp[m] = keys[m];
            idx[m++] = at;
        }
        fr_pagewalk_seek(r, m, kp, klen, kout, vout, walked);
        for (size_t i = 0; i < m; i++) {
            const fr_asof_req_t *q = &reqs[idx[i]];
            int rc = walked[i] ? asof_take(view, keys[i], plen[i], q->as_of_us, flags, &kout[i],
                                           &vout[i], q->out)
                               : 1;
            if (rc == 1) /* not walked, or served mode needs an older version: the cursor */
                rc = fr_asof_get(r, view, q->entity, q->entity_len, q->as_of_us, flags, q->out);
            if (rc != FR_OK)
                return rc;
        }
    }
    return FR_OK;
}

int fr_store_source_get(fr_rtxn_t *r, const char *source, uint32_t partition, int64_t *offset)
{
    size_t n = strlen(source);
    if (n > 255)
        return FR_E_BAD_ARG;
    uint8_t key[256 + 5];
    memcpy(key, source, n);
    key[n] = 0;
    fr_put_be32(key + n + 1, partition);
    MDB_val k = {n + 5, key}, v;
    int mrc = mdb_get(r->txn, r->store->sources, &k, &v);
    *offset = -1;
    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        memcpy(offset, v.mv_data, 8);
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? FR_OK : fr_store_mdb_err(mrc);
}

int fr_store_sources_each(fr_rtxn_t *r,
                          int (*fn)(void *ctx, const char *source, size_t source_len,
                                    uint32_t partition, int64_t offset),
                          void *ctx)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(r->txn, r->store->sources, &cur);
    if (mrc != MDB_SUCCESS)
        return fr_store_mdb_err(mrc);
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 5 || v.mv_size != 8)
            continue;
        const uint8_t *p = k.mv_data;
        int64_t off;
        memcpy(&off, v.mv_data, 8);
        if (fn(ctx, (const char *)p, k.mv_size - 5, fr_get_be32(p + k.mv_size - 4), off))
            break;
    }
    mdb_cursor_close(cur);
    return FR_OK;
}

int fr_store_view_stat(fr_rtxn_t *r, uint32_t view_id, fr_view_stat_t *out)
{
    uint8_t key[FR_VSTAT_KEY_LEN];
    fr_store_vstat_key(key, view_id);
    MDB_val k = {sizeof key, key}, v;
    memset(out, 0, sizeof *out);
    int mrc = mdb_get(r->txn, r->store->meta, &k, &v);
    if (mrc == MDB_SUCCESS && v.mv_size == 16) {
        memcpy(&out->versions, v.mv_data, 8);
        memcpy(&out->newest_event_ts_us, (const uint8_t *)v.mv_data + 8, 8);
    }
    if (out->newest_event_ts_us == INT64_MIN)
        out->newest_event_ts_us = 0;
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? FR_OK : fr_store_mdb_err(mrc);
}

int fr_store_entities_each(fr_rtxn_t *r, uint32_t view_id, const uint8_t *after, size_t after_len,
                           size_t limit,
                           int (*fn)(void *ctx, const uint8_t *entity, size_t len), void *ctx,
                           bool *more)
{
    uint8_t key[FR_KEY_MAX];
    size_t klen;
    *more = false;
    if (after && after_len <= FR_ENTITY_MAX) {
        /* just past every version of `after`: its prefix followed by 16 bytes of 0xff */
        klen = fr_key_prefix(key, view_id, after, after_len);
        memset(key + klen, 0xff, 16);
        klen += 16;
    } else {
        fr_put_be32(key, view_id);
        klen = 4;
    }
    size_t seen = 0;
    for (;;) {
        MDB_val k = {klen, key}, v;
        int mrc = mdb_cursor_get(r->scan_cur, &k, &v, MDB_SET_RANGE);
        if (mrc == MDB_NOTFOUND)
            return FR_OK;
        if (mrc != MDB_SUCCESS)
            return fr_store_mdb_err(mrc);
        fr_key_t dk;
        if (fr_key_decode(k.mv_data, k.mv_size, &dk) != 0)
            return FR_E_STORAGE;
        if (dk.view_id != view_id)
            return FR_OK;
        if (seen == limit) {
            *more = true;
            return FR_OK;
        }
        seen++;
        if (fn(ctx, dk.entity, dk.entity_len))
            return FR_OK;
        klen = fr_key_prefix(key, view_id, dk.entity, dk.entity_len);
        memset(key + klen, 0xff, 16);
        klen += 16;
    }
}

int64_t fr_store_read_now(fr_rtxn_t *r)
{
    /* The snapshot holds every transaction up to its id T. Rows it cannot see were written by
     * transaction T+1 or later, all stamped no earlier than T+1's written_at. So "now" is the
     * clock, capped below T+1's stamp when T+1 has announced itself; if it has not, it will read
     * the clock after we did. The clock has microsecond resolution, hence the - 1. */
    fr_store_t *s = r->store;
    uint64_t next = (uint64_t)mdb_txn_id(r->txn) + 1;
    int64_t now = fr_clock_now(s->clock);
    __typeof__(s->stamps[0]) *slot = &s->stamps[next % FR_STAMP_RING];
    if (atomic_load(&slot->txnid) != next)
        return now - 1; /* T+1 has not begun (a ring lap behind cannot happen in two reads) */
    int64_t w;
    unsigned spins = 0;
    /* The writer is between two stores a few instructions apart; should it be preempted there
     * (more runnable threads than cores), give it the core instead of spinning a whole slice. */
    while ((w = atomic_load(&slot->written_at)) == 0 && atomic_load(&slot->txnid) == next)
        if (++spins % 64 == 0)
            sched_yield();
    return (w && w < now ? w : now) - 1;
}
