/* Retention sweeper (DESIGN.md, Semantics 8; the rule is in store.h): deletes versions older than
 * their view's retention that no read inside the retention window can need, a bounded number of
 * keys per tick, resuming where the last tick stopped. TTL is applied at read time.
 *
 * Keys list each (view, entity)'s versions newest first (key.h), so one forward walk sees every
 * version after all the ones that could shadow it. */
#include <errno.h>
#include <string.h>

#include "common/fault.h"
#include "freshet/err.h"
#include "key.h"
#include "store_int.h"

int fr_store_sweep(fr_wtxn_t *w, fr_sweep_state_t *st, size_t max_keys, uint64_t *deleted)
{
    fr_store_t *s = w->store;
    *deleted = 0;
    fr_registry_t *reg = w->new_registry ? fr_registry_ref(w->new_registry) : fr_store_registry(s);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(w->txn, s->rows, &cur);
    if (mrc != MDB_SUCCESS) {
        fr_registry_release(reg);
        return fr_store_mdb_err(mrc);
    }
    MDB_val k = {st->resume_len, st->resume_key}, v;
    mrc = st->resume_len ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                         : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    const fr_view_def_t *view = NULL;
    /* the entity being walked is st->ent_*: kept when this tick resumes inside it, reset when a
     * pass starts over */
    if (!st->resume_len)
        st->ent_prefix_len = 0;
    struct {
        uint32_t view_id;
        uint64_t deleted;
    } per_view[16];
    size_t nviews = 0, visited = 0;
    while (mrc == MDB_SUCCESS && visited < max_keys) {
        visited++;
        fr_key_t dk;
        if (fr_key_decode(k.mv_data, k.mv_size, &dk) != 0) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (!view || view->id != dk.view_id)
            view = fr_registry_view_by_id(reg, dk.view_id);
        int64_t cutoff = view && view->retention_us > 0 ? w->now_us - view->retention_us : INT64_MIN;
        size_t plen = FR_KEY_PREFIX_LEN((size_t)dk.entity_len); /* <= FR_KEY_PREFIX_MAX */
        if (plen != st->ent_prefix_len || memcmp(k.mv_data, st->ent_prefix, plen) != 0) {
            /* the entity's first version: its newest */
            memcpy(st->ent_prefix, k.mv_data, plen);
            st->ent_prefix_len = plen;
            st->ent_forget = dk.event_ts_us < cutoff;
            st->ent_cover_wa = INT64_MAX;
        }
        int64_t written_at = INT64_MAX;
        if (v.mv_size >= 8)
            memcpy(&written_at, v.mv_data, 8);
        /* shadowed: a newer version at or before the cutoff that every read from the cutoff on
         * (event mode; served mode once this one is written) would take instead of this one */
        bool shadowed = st->ent_cover_wa <= (written_at > cutoff ? written_at : cutoff);
        bool drop = dk.event_ts_us < cutoff && (st->ent_forget || shadowed);
        size_t i = 0;
        if (drop) {
            while (i < nviews && per_view[i].view_id != dk.view_id)
                i++;
            if (i == nviews) {
                if (nviews == sizeof per_view / sizeof per_view[0])
                    break; /* counters full: resume at this key next tick (state untouched) */
                per_view[nviews].view_id = dk.view_id;
                per_view[nviews++].deleted = 0;
            }
        }
        if (dk.event_ts_us <= cutoff && written_at < st->ent_cover_wa)
            st->ent_cover_wa = written_at; /* shadows the older versions that follow */
        if (drop) {
            fr_wtxn_log(w, FR_WAL_DB_ROWS, &k, NULL);
            mrc = FR_MDB(mdb_cursor_del(cur, 0));
            if (mrc != MDB_SUCCESS)
                break;
            per_view[i].deleted++;
            (*deleted)++;
            /* after a delete the cursor already points at the next key */
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc == MDB_NOTFOUND || mrc == EINVAL) {
        st->resume_len = 0; /* wrapped: next tick starts from the beginning */
        st->passes++;
        mrc = MDB_SUCCESS;
    } else if (mrc == MDB_SUCCESS && k.mv_size <= sizeof st->resume_key) {
        memcpy(st->resume_key, k.mv_data, k.mv_size);
        st->resume_len = k.mv_size;
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < nviews && mrc == MDB_SUCCESS; i++) {
        uint8_t key[FR_VSTAT_KEY_LEN];
        fr_store_vstat_key(key, per_view[i].view_id);
        MDB_val sk = {sizeof key, key}, sv;
        if (mdb_get(w->txn, s->meta, &sk, &sv) != MDB_SUCCESS || sv.mv_size != 16)
            continue;
        uint8_t val[16];
        memcpy(val, sv.mv_data, 16);
        uint64_t versions;
        memcpy(&versions, val, 8);
        versions = versions >= per_view[i].deleted ? versions - per_view[i].deleted : 0;
        memcpy(val, &versions, 8);
        sv = (MDB_val){16, val};
        fr_wtxn_log(w, FR_WAL_DB_META, &sk, &sv);
        mrc = FR_MDB(mdb_put(w->txn, s->meta, &sk, &sv, 0));
    }
    st->deleted_total += *deleted;
    fr_registry_release(reg);
    return fr_store_mdb_err(mrc);
}
