/* The write path: row validation, group-commit transactions, atomic batches with exactly-once
 * source offsets, idempotent replays, registry updates. Only the writer thread calls the fr_wtxn_*
 * functions; fr_store_check_row runs on any thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "common/buf.h"
#include "freshet/err.h"
#include "key.h"
#include "proto/mp.h"
#include "store_int.h"

static _Thread_local char why_buf[256];

static const char *whyf(const char *fmt, const char *feature, const char *extra)
{
    snprintf(why_buf, sizeof why_buf, fmt, feature, extra);
    return why_buf;
}

/* Checks cell `it` (read by fr_mp_row_next from a payload ending at `end`) against feature f. */
static int check_value(const fr_feature_def_t *f, const fr_mp_item_t *it, const uint8_t *end,
                       const char **why)
{
    if (it->kind == FR_MP_NIL)
        return FR_OK;
    int ok = 0;
    switch (f->type) {
    case FR_TYPE_INT64:
        ok = it->kind == FR_MP_INT;
        break;
    case FR_TYPE_DOUBLE:
    case FR_TYPE_FLOAT:
        ok = it->kind == FR_MP_INT || it->kind == FR_MP_F32 || it->kind == FR_MP_F64;
        break;
    case FR_TYPE_BOOL:
        ok = it->kind == FR_MP_BOOL;
        break;
    case FR_TYPE_STRING:
        ok = it->kind == FR_MP_STR;
        break;
    case FR_TYPE_BYTES:
        ok = it->kind == FR_MP_BIN || it->kind == FR_MP_STR;
        break;
    case FR_TYPE_FLOAT_LIST:
        if (it->kind != FR_MP_ARRAY)
            break;
        if (f->dim && it->count != f->dim) {
            snprintf(why_buf, sizeof why_buf, "values.%s: float_list has %u elements, dim is %u",
                     f->name, it->count, f->dim);
            *why = why_buf;
            return FR_E_TYPE_MISMATCH;
        }
        fr_mp_reader_t r; /* the row reader has checked that the elements are well formed */
        fr_mp_reader_init(&r, it->v.ptr, (size_t)(end - it->v.ptr));
        for (uint32_t i = 0; i < it->count; i++) {
            float el;
            if (fr_mp_next_float(&r, &el))
                return *why = whyf("values.%s: float_list element is not a number%s", f->name, ""),
                       FR_E_TYPE_MISMATCH;
        }
        ok = 1;
        break;
    default:
        break;
    }
    if (!ok)
        return *why = whyf("values.%s: expected %s", f->name, fr_type_name(f->type)),
               FR_E_TYPE_MISMATCH;
    return FR_OK;
}

int fr_store_check_row(const fr_write_row_t *row, int64_t now_us, int64_t max_future_skew_us,
                       const char **why)
{
    const fr_view_def_t *v = row->view;
    if (row->entity_len == 0 || row->entity_len > FR_ENTITY_MAX)
        return *why = "entity: must be 1 to 256 bytes", FR_E_BAD_REQUEST;
    if (row->event_ts_us < 0)
        return *why = "event_ts: negative timestamp", FR_E_BAD_REQUEST;
    if (max_future_skew_us >= 0 && row->event_ts_us > now_us + max_future_skew_us) {
        char ts[32];
        snprintf(ts, sizeof ts, "%lld", (long long)(row->event_ts_us - now_us));
        return *why = whyf("event_ts: %s us in the future, beyond max_future_skew (view %s)", ts,
                           v->name),
               FR_E_FUTURE_EVENT;
    }
    fr_mp_row_t r;
    if (fr_mp_row_open(&r, row->values, row->values_len))
        return *why = "values: expected a msgpack array", FR_E_BAD_REQUEST;
    const uint8_t *end = row->values + row->values_len;
    fr_mp_item_t it;
    for (uint32_t i = 0;; i++) {
        /* Too many values is reported as such, before any type mismatch, as soon as the cells
         * read, the rest of the current run and one per item left are more than the features. */
        if ((uint64_t)i + r.run_left + r.items > v->feature_count) {
            int64_t cells = fr_mp_row_cells(row->values, row->values_len);
            if (cells < 0) /* malformed further on */
                snprintf(why_buf, sizeof why_buf, "values: more values than view %s's %u features",
                         v->name, v->feature_count);
            else
                snprintf(why_buf, sizeof why_buf, "values: %lld values for view %s of %u features",
                         (long long)cells, v->name, v->feature_count);
            *why = why_buf;
            return FR_E_BAD_REQUEST;
        }
        int rc = fr_mp_row_next(&r, &it);
        if (rc > 0)
            break;
        if (rc < 0)
            return *why = whyf("values.%s: malformed msgpack%s", v->features[i].name, ""),
                   FR_E_BAD_REQUEST;
        rc = check_value(&v->features[i], &it, end, why);
        if (rc != FR_OK)
            return rc;
    }
    if (r.r.p != end)
        return *why = "values: trailing bytes after the array", FR_E_BAD_REQUEST;
    return FR_OK;
}

int fr_store_write_begin(fr_store_t *s, fr_wtxn_t **out)
{
    if (s->opts.read_only)
        return FR_E_STORAGE;
    fr_wtxn_t *w = fr_calloc(1, sizeof *w);
    if (!w)
        return FR_E_NOMEM;
    int mrc = FR_MDB(mdb_txn_begin(s->env, NULL, 0, &w->txn));
    if (mrc != MDB_SUCCESS) {
        free(w);
        return fr_store_mdb_err(mrc);
    }
    w->store = s;
    w->write_seq_at_begin = s->write_seq;
    /* Announce this transaction's id before reading the clock for its written_at: a reader whose
     * snapshot is the previous id and that does not see the announcement read its clock before
     * ours, so every row stamped here is later than that reader's as_of (fr_store_read_now). */
    uint64_t id = (uint64_t)mdb_txn_id(w->txn);
    __typeof__(s->stamps[0]) *slot = &s->stamps[id % FR_STAMP_RING];
    atomic_store(&slot->written_at, 0);
    atomic_store(&slot->txnid, id);
    w->stamp_txnid = id;
    w->now_us = fr_clock_now(s->clock);
    atomic_store(&slot->written_at, w->now_us);
    *out = w;
    return FR_OK;
}

static size_t source_key(uint8_t *out, const char *source, uint32_t partition)
{
    size_t n = strlen(source);
    memcpy(out, source, n);
    out[n] = 0;
    fr_put_be32(out + n + 1, partition);
    return n + 5;
}

/* Adds delta versions to a view's counters inside txn. */
static int vstat_add(fr_wtxn_t *w, MDB_txn *txn, uint32_t view_id, int64_t delta,
                     int64_t newest_ts)
{
    fr_store_t *s = w->store;
    uint8_t key[FR_VSTAT_KEY_LEN];
    fr_store_vstat_key(key, view_id);
    MDB_val k = {sizeof key, key}, v;
    uint8_t val[16] = {0};
    if (mdb_get(txn, s->meta, &k, &v) == MDB_SUCCESS && v.mv_size == 16)
        memcpy(val, v.mv_data, 16);
    uint64_t versions;
    int64_t newest;
    memcpy(&versions, val, 8);
    memcpy(&newest, val + 8, 8);
    versions = (uint64_t)((int64_t)versions + delta);
    if (newest_ts > newest)
        newest = newest_ts;
    memcpy(val, &versions, 8);
    memcpy(val + 8, &newest, 8);
    v = (MDB_val){16, val};
    fr_wtxn_log(w, FR_WAL_DB_META, &k, &v);
    return FR_MDB(mdb_put(txn, s->meta, &k, &v, 0));
}

typedef struct {
    uint32_t view_id;
    int64_t added;
    int64_t newest;
} vdelta_t;

size_t fr_store_pack_payload(uint8_t **buf, size_t *cap, size_t off, const uint8_t *p, size_t len)
{
    if (off + len > *cap) {
        size_t want = off + len < 4096 ? 4096 : off + len;
        uint8_t *grown = realloc(*buf, want);
        if (!grown)
            return 0;
        *buf = grown;
        *cap = want;
    }
    return fr_mp_pack_runs(p, len, *buf + off);
}

/* The stored form of a row's payload in *vals, and its length. Without memory for it the payload
 * is stored as sent: both forms read the same. */
static size_t packed(fr_wtxn_t *w, const fr_write_row_t *row, const uint8_t **vals)
{
    size_t n = fr_store_pack_payload(&w->pack, &w->pack_cap, 0, row->values, row->values_len);
    if (n == 0)
        return row->values_len;
    *vals = w->pack;
    return n;
}

static int apply_rows(fr_wtxn_t *w, MDB_txn *txn, const fr_write_batch_t *b, fr_write_result_t *res)
{
    fr_store_t *s = w->store;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->rows, &cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    uint8_t skey[256 + 5];
    MDB_val sk = {0, skey}, sv;
    int64_t hwm = -1;
    if (b->source) {
        sk.mv_size = source_key(skey, b->source, b->partition);
        if (mdb_get(txn, s->sources, &sk, &sv) == MDB_SUCCESS && sv.mv_size == 8)
            memcpy(&hwm, sv.mv_data, 8);
    }
    vdelta_t deltas[8];
    size_t ndeltas = 0;
    for (size_t i = 0; i < b->row_count && mrc == MDB_SUCCESS; i++) {
        const fr_write_row_t *row = &b->rows[i];
        if (b->source && row->has_offset) {
            if (row->offset <= hwm) {
                res->duplicates++;
                continue;
            }
            hwm = row->offset;
        }
        uint8_t key[FR_KEY_MAX];
        size_t plen = fr_key_prefix(key, row->view->id, row->entity, row->entity_len);
        /* One seek to the entity's newest version answers both questions in the common case:
         * is this row late (a newer event_ts exists), and is it a replay (same event_ts, same
         * values as the newest version at that time: a no-op). Only a late row needs a second
         * seek, to the newest version at its own event_ts. */
        MDB_val k = {plen, key}, v;
        int found = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (found != MDB_SUCCESS && found != MDB_NOTFOUND) {
            mrc = found;
            break;
        }
        int is_late = 0, same_ts = 0;
        fr_key_t dk;
        if (found == MDB_SUCCESS && k.mv_size >= plen && memcmp(k.mv_data, key, plen) == 0 &&
            fr_key_decode(k.mv_data, k.mv_size, &dk) == 0) {
            is_late = dk.event_ts_us > row->event_ts_us;
            same_ts = dk.event_ts_us == row->event_ts_us;
            if (is_late) {
                size_t klen = fr_key_encode(key, row->view->id, row->entity, row->entity_len,
                                            row->event_ts_us, UINT64_MAX);
                k = (MDB_val){klen, key};
                found = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                if (found != MDB_SUCCESS && found != MDB_NOTFOUND) {
                    mrc = found;
                    break;
                }
                same_ts = found == MDB_SUCCESS && k.mv_size >= plen &&
                          memcmp(k.mv_data, key, plen) == 0 &&
                          fr_key_decode(k.mv_data, k.mv_size, &dk) == 0 &&
                          dk.event_ts_us == row->event_ts_us;
            }
        }
        const uint8_t *vals = row->values;
        size_t vlen = packed(w, row, &vals);
        if (same_ts && v.mv_size == 8 + vlen &&
            memcmp((const uint8_t *)v.mv_data + 8, vals, vlen) == 0) {
            res->unchanged++;
            continue;
        }
        /* Only a corrupt meta record gets here (2^64 versions are never written): wrapping to 0
         * would reuse the numbers the rows hold, and sort the new version as the oldest. */
        if (s->write_seq == UINT64_MAX) {
            mrc = EOVERFLOW;
            break;
        }
        uint64_t seq = __atomic_add_fetch(&s->write_seq, 1, __ATOMIC_RELAXED);
        size_t klen = fr_key_encode(key, row->view->id, row->entity, row->entity_len, row->event_ts_us, seq);
        k = (MDB_val){klen, key};
        v = (MDB_val){8 + vlen, NULL};
        mrc = FR_MDB(mdb_cursor_put(cur, &k, &v, MDB_RESERVE));
        if (mrc != MDB_SUCCESS)
            break;
        uint64_t written_at = (uint64_t)w->now_us;
        memcpy(v.mv_data, &written_at, 8);
        memcpy((uint8_t *)v.mv_data + 8, vals, vlen);
        fr_wtxn_log(w, FR_WAL_DB_ROWS, &k, &v);
        res->written++;
        res->late += (uint32_t)is_late;
        res->last_write_seq = seq;
        size_t d = 0;
        while (d < ndeltas && deltas[d].view_id != row->view->id)
            d++;
        if (d == ndeltas) {
            if (ndeltas == sizeof deltas / sizeof deltas[0]) {
                mrc = vstat_add(w, txn, deltas[0].view_id, deltas[0].added, deltas[0].newest);
                memmove(deltas, deltas + 1, sizeof deltas - sizeof deltas[0]);
                d = --ndeltas;
            }
            deltas[d] = (vdelta_t){row->view->id, 0, INT64_MIN};
            ndeltas++;
        }
        deltas[d].added++;
        if (row->event_ts_us > deltas[d].newest)
            deltas[d].newest = row->event_ts_us;
    }
    mdb_cursor_close(cur);
    for (size_t d = 0; d < ndeltas && mrc == MDB_SUCCESS; d++)
        mrc = vstat_add(w, txn, deltas[d].view_id, deltas[d].added, deltas[d].newest);
    /* Messages consumed without a row still move the position, in this transaction: a rejected
     * message is never delivered again, so it cannot apply later (a future event once its time
     * has come) on one replica and not on another. */
    if (b->position_mode == FR_POSITION_AT_LEAST && b->position > hwm)
        hwm = b->position;
    else if (b->position_mode == FR_POSITION_RESET && b->position >= 0)
        hwm = b->position;
    if (mrc == MDB_SUCCESS && b->source && hwm >= 0) {
        sv = (MDB_val){8, &hwm};
        fr_wtxn_log(w, FR_WAL_DB_SOURCES, &sk, &sv);
        mrc = FR_MDB(mdb_put(txn, s->sources, &sk, &sv, 0));
    }
    res->high_water = b->source ? hwm : -1;
    if (mrc == MDB_SUCCESS && res->written) {
        uint8_t seqb[8];
        fr_put_be64(seqb, s->write_seq);
        MDB_val k = {9, "write_seq"}, v = {8, seqb};
        fr_wtxn_log(w, FR_WAL_DB_META, &k, &v);
        mrc = FR_MDB(mdb_put(txn, s->meta, &k, &v, 0));
    }
    return mrc;
}

/* Committing a group allocates pages too (LMDB saves the freelist), so a batch that fills the map
 * to the last page would make the whole group fail at commit. A batch is therefore only kept when
 * FR_COMMIT_HEADROOM more bytes still fit. The exact probe (a reservation in a grandchild
 * transaction, whose abort gives every probed page back) costs a contiguous page allocation, so it
 * only runs when a pessimistic bound of the group's pages comes near the end of the map. */
#define FR_COMMIT_HEADROOM (64u << 10)

/* Adds batch b to the group's pessimistic page bound; true when the group, b included, still
 * ends well before the end of the map (then no probe is needed). */
static bool headroom_by_bound(fr_wtxn_t *w, MDB_txn *txn, const fr_write_batch_t *b)
{
    fr_store_t *s = w->store;
    MDB_envinfo ei;
    MDB_stat rows, env;
    if (mdb_env_info(s->env, &ei) != MDB_SUCCESS || mdb_env_stat(s->env, &env) != MDB_SUCCESS ||
        mdb_stat(txn, s->rows, &rows) != MDB_SUCCESS)
        return false;
    /* A row copies and may split every page of its root-to-leaf path, plus its overflow pages;
     * a batch also rewrites a few meta/sources pages. */
    uint64_t psize = env.ms_psize, per_row = 2 * ((uint64_t)rows.ms_depth + 1);
    for (size_t i = 0; i < b->row_count; i++)
        w->pages_bound += per_row + (16 + (uint64_t)b->rows[i].values_len) / psize + 1;
    w->pages_bound += 64;
    return (ei.me_last_pgno + 1 + w->pages_bound) * psize + FR_COMMIT_HEADROOM <= ei.me_mapsize;
}

static int keep_headroom(fr_wtxn_t *w, MDB_txn *txn, const fr_write_batch_t *b)
{
    if (headroom_by_bound(w, txn, b))
        return MDB_SUCCESS;
    fr_store_t *s = w->store;
    MDB_txn *probe;
    int mrc = FR_MDB(mdb_txn_begin(s->env, txn, 0, &probe));
    if (mrc != MDB_SUCCESS)
        return mrc;
    MDB_val k = {8, "headroom"}, v = {FR_COMMIT_HEADROOM, NULL};
    mrc = FR_MDB(mdb_put(probe, s->meta, &k, &v, MDB_RESERVE));
    mdb_txn_abort(probe);
    return mrc;
}

static const char SEQ_EXHAUSTED[] = "write_seq is at 2^64-1, a new version would wrap it to 0 "
                                   "(the meta record is corrupt): nothing was written";

/* A batch that wrote nothing: its result counts nothing and says why, from apply_rows' mrc. */
static int batch_undone(fr_write_result_t *res, int mrc)
{
    memset(res, 0, sizeof *res);
    res->why = mrc == EOVERFLOW ? SEQ_EXHAUSTED : NULL;
    return fr_store_mdb_err(mrc);
}

int fr_store_write_apply(fr_wtxn_t *w, const fr_write_batch_t *b, fr_write_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (b->source && strlen(b->source) > 255)
        return FR_E_BAD_REQUEST;
    if (w->abandoned)
        return FR_E_STORAGE; /* the pass is being given up; its outcome is discarded */
    if (w->flat) {
        /* Near the end of the map only the isolated pass can tell exactly which batch fits. */
        int mrc = headroom_by_bound(w, w->txn, b) ? apply_rows(w, w->txn, b, res) : MDB_MAP_FULL;
        if (mrc == MDB_SUCCESS)
            return FR_OK;
        w->abandoned = true;
        w->map_full = mrc == MDB_MAP_FULL;
        return batch_undone(res, mrc);
    }
    MDB_txn *child;
    int mrc = FR_MDB(mdb_txn_begin(w->store->env, w->txn, 0, &child));
    if (mrc != MDB_SUCCESS)
        return fr_store_mdb_err(mrc);
    uint64_t seq_before = w->store->write_seq;
    size_t log_before = w->log.len;
    mrc = apply_rows(w, child, b, res);
    if (mrc == MDB_SUCCESS)
        mrc = keep_headroom(w, child, b);
    if (mrc == MDB_SUCCESS)
        mrc = FR_MDB_COMMIT(child);
    else
        mdb_txn_abort(child);
    if (mrc != MDB_SUCCESS) {
        __atomic_store_n(&w->store->write_seq, seq_before, __ATOMIC_RELAXED);
        w->log.len = log_before; /* the batch is undone: so are its logged operations */
        return batch_undone(res, mrc);
    }
    return FR_OK;
}

int fr_store_write_registry(fr_wtxn_t *w, const char *json, size_t len, bool dry_run,
                            fr_registry_diff_t *diff, const char **why)
{
    fr_registry_t *incoming = NULL, *merged = NULL;
    fr_registry_t *current = w->new_registry ? fr_registry_ref(w->new_registry)
                                             : fr_store_registry(w->store);
    char *out = NULL;
    size_t out_len = 0;
    int rc = fr_registry_parse_onto(json, len, current, &incoming, why);
    if (rc == FR_OK)
        rc = fr_registry_merge(current, incoming, &merged, diff, why);
    if (rc != FR_OK || dry_run)
        goto out;
    rc = fr_registry_to_json(merged, &out, &out_len);
    if (rc != FR_OK)
        goto out;
    MDB_val k = {8, "registry"}, v = {out_len, out};
    int mrc = w->abandoned ? EIO : FR_MDB(mdb_put(w->txn, w->store->meta, &k, &v, 0));
    if (mrc == MDB_SUCCESS)
        fr_wtxn_log(w, FR_WAL_DB_META, &k, &v);
    if (mrc != MDB_SUCCESS) {
        w->abandoned = w->flat; /* an isolated group's commit reports the broken transaction */
        *why = mdb_strerror(mrc);
        rc = fr_store_mdb_err(mrc);
        goto out;
    }
    w->pages_bound += 2 * (out_len / 4096 + 1) + 16; /* for keep_headroom's estimate */
    fr_registry_release(w->new_registry);
    w->new_registry = merged;
    merged = NULL;
out:
    free(out);
    fr_registry_release(merged);
    fr_registry_release(incoming);
    fr_registry_release(current);
    return rc;
}

/* Frees w after its transaction ended (committed or aborted). */
static void wtxn_free(fr_wtxn_t *w)
{
    fr_registry_release(w->new_registry);
    fr_wal_buf_free(&w->log);
    free(w->pack);
    free(w);
}

/* Takes back the announcement of a transaction that will not commit. Left in the ring, its stamp
 * would cap every later read's "now" (fr_store_read_now) until the id comes round again: a store
 * whose sweeper aborts an empty tick would answer ttl checks at that tick's time forever. */
static void stamp_retract(fr_wtxn_t *w)
{
    __typeof__(w->store->stamps[0]) *slot = &w->store->stamps[w->stamp_txnid % FR_STAMP_RING];
    uint64_t id = w->stamp_txnid;
    atomic_compare_exchange_strong(&slot->txnid, &id, 0);
}

int fr_store_write_commit(fr_wtxn_t *w)
{
    fr_store_t *s = w->store;
    /* With the log: the record first (durable in sync mode), then LMDB's commit without fsync,
     * which makes it visible. A record whose commit fails is taken back out of the log. */
    uint64_t undo = 0;
    bool logged = false;
    int rc = FR_OK;
    if (s->wal.on && w->log.failed)
        rc = FR_E_NOMEM;
    else if (s->wal.on && w->log.len) {
        rc = fr_wal_append(s, (uint64_t)mdb_txn_id(w->txn), &w->log, &undo);
        logged = rc == FR_OK;
    }
    if (rc != FR_OK) {
        fr_store_write_abort(w);
        return rc;
    }
    int mrc = FR_MDB_COMMIT(w->txn);
    rc = fr_store_mdb_err(mrc);
    if (rc != FR_OK) {
        stamp_retract(w);
        if (logged)
            fr_wal_undo(s, undo);
        __atomic_store_n(&s->write_seq, w->write_seq_at_begin, __ATOMIC_RELAXED);
    } else if (w->new_registry) {
        pthread_mutex_lock(&s->reg_lock);
        fr_registry_t *old = s->registry;
        s->registry = w->new_registry;
        pthread_mutex_unlock(&s->reg_lock);
        w->new_registry = NULL;
        fr_registry_release(old);
    }
    wtxn_free(w);
    if (rc == FR_OK && logged)
        fr_wal_after_commit(s);
    return rc;
}

int fr_store_write_group(fr_store_t *s, void (*apply)(fr_wtxn_t *w, void *arg), void *arg)
{
    fr_wtxn_t *w;
    int rc = fr_store_write_begin(s, &w);
    if (rc != FR_OK)
        return rc;
    w->flat = true;
    apply(w, arg);
    if (w->abandoned) {
        bool map_full = w->map_full;
        fr_store_write_abort(w);
        /* The log's pin keeps the pages freed since the last checkpoint from being reused; a
         * checkpoint now hands them back before the isolated pass decides what does not fit. */
        if (map_full && s->wal.on)
            fr_wal_checkpoint(s);
        rc = fr_store_write_begin(s, &w);
        if (rc != FR_OK)
            return rc;
        apply(w, arg);
    }
    return fr_store_write_commit(w);
}

void fr_store_write_abort(fr_wtxn_t *w)
{
    if (!w)
        return;
    stamp_retract(w);
    mdb_txn_abort(w->txn);
    __atomic_store_n(&w->store->write_seq, w->write_seq_at_begin, __ATOMIC_RELAXED);
    wtxn_free(w);
}
