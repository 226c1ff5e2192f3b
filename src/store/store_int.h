/* Private to src/store: the structures behind the opaque handles of store.h. */
#ifndef FR_STORE_INT_H
#define FR_STORE_INT_H

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/fault.h"
#include "store.h"
#include "wal.h"

#define FR_STAMP_RING 1024

struct fr_store {
    MDB_env *env;
    int lock_fd; /* writers: the flock'ed freshet.lock of the directory, -1 otherwise */
    MDB_dbi meta, rows, sources;
    MDB_dbi main_dbi; /* LMDB's unnamed database: the named ones' records (pagewalk.c) */
    bool walk_on;     /* fr_pagewalk_seek may read pages (LMDB 0.9, OS-sized pages) */
    unsigned walk_psize;
    uintptr_t map_base; /* the map's address, learned at open (pagewalk.c); 0: unknown */
    int map_huge;       /* fr_store_info_t.map_hugepages */
    fr_store_opts_t opts; /* the caller's, except opts.path, which points at path */
    char *path;           /* the directory, owned */
    const fr_clock_t *clock;
    pthread_mutex_t reg_lock; /* guards `registry` pointer swaps */
    fr_registry_t *registry;
    uint64_t write_seq; /* last assigned; only the writer thread touches it */
    /* Recent write transactions by LMDB txn id (see fr_store_read_now): each announces its id
     * before reading the clock for its rows' written_at, then publishes that stamp. */
    struct {
        _Atomic uint64_t txnid;
        _Atomic int64_t written_at; /* 0 until known */
    } stamps[FR_STAMP_RING];
    fr_wal_t wal; /* wal.h; off unless opts.wal */
};

struct fr_rtxn {
    fr_store_t *store;
    MDB_txn *txn;
    MDB_cursor *rows_cur;
    MDB_cursor *scan_cur; /* entity enumeration, independent of rows_cur */
    int active;
    /* pagewalk.c: the rows table's root page in the snapshot walk_txnid (UINT64_MAX: none) and
     * the highest page number in use when it was read */
    uint64_t walk_txnid, walk_root, walk_last_pgno;
    uint64_t walk_hits, walk_misses; /* keys walked / left to the cursor (fr_rtxn_walk_stats) */
};

struct fr_wtxn {
    fr_store_t *store;
    MDB_txn *txn;
    uint64_t write_seq_at_begin;
    uint64_t stamp_txnid; /* the id announced in the stamp ring (fr_store_write_begin) */
    int64_t now_us;
    fr_registry_t *new_registry; /* set by fr_store_write_registry; published at commit */
    uint64_t pages_bound;        /* upper bound of the pages this group allocated (write.c) */
    bool flat;                   /* fr_store_write_group's first pass: no nested transactions */
    bool abandoned;              /* a flat pass that must be rolled back and re-run isolated */
    bool map_full;               /* the flat pass was abandoned because the map is full */
    fr_wal_buf_t log;            /* this transaction's operations, for the write-ahead log */
    uint8_t *pack;               /* a row's payload as stored (write.c, packed) */
    size_t pack_cap;
};

/* Storage calls on the write path go through these so tests can make the Nth one fail (fault.h):
 * the call is skipped and EIO returned; a failed commit still frees its transaction, as LMDB's
 * own mdb_txn_commit does. */
#define FR_MDB(call) (fr_fault_hit(FR_FAULT_STORE) ? EIO : (call))
#define FR_MDB_COMMIT(txn) (fr_fault_hit(FR_FAULT_STORE) ? (mdb_txn_abort(txn), EIO) : mdb_txn_commit(txn))

/* A row payload's stored form (fr_mp_pack_runs: float runs packed) written at *buf + off, *buf
 * (of *cap bytes) grown as needed; returns its length, or 0 when the payload is to be stored as it
 * is (no memory, or not a row payload). The writer and the compacting backup share it. */
size_t fr_store_pack_payload(uint8_t **buf, size_t *cap, size_t off, const uint8_t *p, size_t len);

/* Batched MDB_SET_RANGE on the rows table of r's open snapshot (pagewalk.c): for each of the n
 * keys, walked[i] = 1 with kout[i]/vout[i] exactly what mdb_cursor_get(MDB_SET_RANGE) returns,
 * or walked[i] = 0 when the walker could not tell (then ask the cursor). */
void fr_pagewalk_seek(fr_rtxn_t *r, size_t n, const uint8_t *const *keys, const size_t *klens,
                      MDB_val *kout, MDB_val *vout, int8_t *walked);
/* Learns the map's address and decides whether pages may be walked: once, at store open. */
void fr_pagewalk_init(fr_store_t *s);

/* Records a put (val non-NULL) or a delete of key in db for the write-ahead log, when it is on. */
static inline void fr_wtxn_log(fr_wtxn_t *w, unsigned db, const MDB_val *key, const MDB_val *val)
{
    if (w->store->wal.on)
        fr_wal_buf_op(&w->log, val ? FR_WAL_OP_PUT : FR_WAL_OP_DEL, db, key->mv_data, key->mv_size,
                      val ? val->mv_data : NULL, val ? val->mv_size : 0);
}

/* Maps an LMDB return code to fr_err_t. */
int fr_store_mdb_err(int mdb_rc);

#define FR_VSTAT_KEY_LEN 9
void fr_store_vstat_key(uint8_t out[FR_VSTAT_KEY_LEN], uint32_t view_id);

#endif
