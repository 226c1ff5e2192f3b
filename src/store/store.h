/* The versioned feature store on LMDB (DESIGN.md, "Storage layout" and "Semantics").
 *
 * One LMDB environment holds four named databases:
 *   meta     "registry" → canonical registry JSON, "format_version", "write_seq",
 *            "vstat" · view_id → {versions u64, newest_event_ts i64} (both little-endian)
 *   rows     key.h layout (view · entity · ~event_ts · ~write_seq) → written_at u64 LE · msgpack values
 *   sources  source · 0x00 · partition u32 BE → high-water offset i64 LE
 * Every row version is kept (point-in-time versioning) until the retention sweeper removes it.
 *
 * Threads: one writer at a time (fr_wtxn_t, owned by the server's writer thread); any number of
 * readers, each with its own fr_rtxn_t (one LMDB read transaction, reused with reset/renew).
 * Values returned by reads point into the memory map and are valid until the fr_rtxn_t is reset.
 */
#ifndef FR_STORE_STORE_H
#define FR_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "registry/registry.h"
#include "store/key.h" /* FR_KEY_PREFIX_MAX */

/* 2: payloads stored with float runs packed (proto/mp.h). A version-1 directory holds a subset of
 * version 2 and is upgraded (its meta entry rewritten) when opened for writing; a build that only
 * reads version 1 then refuses it instead of misreading packed rows.
 * 3: the directory may hold a write-ahead log (wal.h) that must be replayed before LMDB's file is
 * complete; a build without the log would lose it and then break its checkpoint. Same rows. */
#define FR_STORE_FORMAT_VERSION 3
#define FR_STORE_FORMAT_OLDEST 1

/* sync: durable before the commit returns. async: a crash may undo the commits of the last sync
 * interval (fr_store_sync), never corrupts. With the write-ahead log (opts.wal) the log is what is
 * fsynced — at every commit in sync mode, by fr_store_sync in async mode — and LMDB's file only at
 * checkpoints. Without it, sync fsyncs LMDB's file at every commit and async fsyncs data pages at
 * commit and the meta page only by fr_store_sync (LMDB MDB_NOMETASYNC).
 * nosync: nothing is fsynced at commit, only by fr_store_sync (MDB_NOSYNC): fastest; a process
 * crash loses nothing, but LMDB keeps its integrity after an OS crash or power loss only where the
 * filesystem preserves write order. */
typedef enum {
    FR_DURABILITY_SYNC = 0,
    FR_DURABILITY_ASYNC = 1,
    FR_DURABILITY_NOSYNC = 2
} fr_durability_t;

typedef struct {
    const char *path;          /* directory; created if missing; the store keeps a copy */
    uint64_t map_size;         /* bytes; LMDB map size */
    fr_durability_t durability;
    unsigned max_readers;      /* LMDB reader slots; >= worker threads + exporters */
    const fr_clock_t *clock;   /* NULL = system clock */
    bool read_only;            /* open an existing store for reading only (replicas, tools) */
    bool wal;                  /* write-ahead log (wal.h) for sync and async; not with nosync */
    uint64_t wal_checkpoint_bytes; /* checkpoint after this much log (0: 16 MiB) */
    uint64_t wal_record_max;       /* largest group log record (0: FR_WAL_REC_MAX); tests lower it */
    /* Ask the kernel to map the file in 2 MB pages (madvise MADV_HUGEPAGE) where its page cache
     * can: one TLB entry per 512 pages, so a lookup's page walk misses the TLB far less in a map
     * of gigabytes. Pages already cached in 4 KB pieces stay so until evicted, and a page read
     * from disk brings in its whole 2 MB: off for stores much larger than RAM. */
    bool map_hugepages;
} fr_store_opts_t;

typedef struct fr_store fr_store_t;
typedef struct fr_rtxn fr_rtxn_t;
typedef struct fr_wtxn fr_wtxn_t;

/* Opens (creating if needed) the store. A store that was not closed (a crash) is recovered first
 * from its write-ahead log: fr_store_info tells how many logged transactions were replayed.
 * FR_E_STORAGE (with the LMDB reason in *why; also a log that cannot be replayed, or another
 * process holding the environment open during recovery), FR_E_NOMEM, FR_E_BAD_REGISTRY (stored
 * registry unreadable), FR_E_INCOMPATIBLE (format). */
int fr_store_open(const fr_store_opts_t *opts, fr_store_t **out, const char **why);
void fr_store_close(fr_store_t *store);

/* The current registry with one reference taken for the caller (release it). Thread-safe. */
fr_registry_t *fr_store_registry(fr_store_t *store);
const fr_clock_t *fr_store_clock(const fr_store_t *store);
fr_durability_t fr_store_durability(const fr_store_t *store);

/* Flushes to disk (async mode's periodic sync, and shutdown): the write-ahead log when it is on,
 * LMDB's file otherwise. FR_E_STORAGE. Writer thread. */
int fr_store_sync(fr_store_t *store);

/* Makes LMDB's file hold every commit so far and starts the write-ahead log anew after it (a
 * plain sync without the log). Waits for it. FR_E_STORAGE. Writer thread, no write open. */
int fr_store_checkpoint(fr_store_t *store);

/* Hot, consistent copy of the environment into directory dest (created if missing; must not hold
 * a data.mdb), from one read snapshot, while writers and readers go on. compact rewrites every
 * database in key order with full pages (no free pages, leaves packed); otherwise an exact copy
 * (mdb_env_copy2). *bytes gets the copy's size. FR_E_IO (dest unusable, reason in *why; a failed
 * copy leaves no data.mdb behind), FR_E_STORAGE. Takes as long as copying the data: call it off
 * the event loops. */
int fr_store_backup(fr_store_t *store, const char *dest, bool compact, uint64_t *bytes,
                    const char **why);

/* Clears reader slots left by dead processes (mdb_reader_check); *cleared gets their number. */
int fr_store_reader_check(fr_store_t *store, int *cleared);

typedef struct {
    uint64_t map_size, map_used, last_txn, page_size;
    unsigned max_readers, readers_used; /* reader slots: capacity, live now */
    unsigned readers_high_water;        /* the most slots live at once since the environment opened */
    uint64_t write_seq;
    /* 1: the map was advised to use 2 MB pages (opts.map_hugepages; whether the kernel could is
     * FilePmdMapped in /proc/PID/smaps); 0: not asked; -1: asked, refused (no THP in the kernel,
     * or the map's address unknown) */
    int map_hugepages;
    bool wal;                        /* the write-ahead log is on */
    uint64_t wal_bytes;              /* logged since the last checkpoint began */
    uint64_t wal_records;            /* transactions logged since open */
    uint64_t wal_checkpoints;        /* completed since open */
    uint64_t wal_checkpoint_failures;
    uint64_t wal_checkpoint_txn;     /* LMDB transaction of the last checkpoint */
    uint64_t wal_replayed;           /* logged transactions replayed at open */
    bool wal_restored;               /* open went back to the checkpoint (after a crash) */
    /* The log could not take back the record of a commit that failed, so it was closed: every
     * later write fails with FR_E_STORAGE until the store is reopened, whose replay may then
     * apply that record (the failed write may appear after the restart). */
    bool wal_closed;
} fr_store_info_t;
int fr_store_info(fr_store_t *store, fr_store_info_t *out);
/* Checkpoint counters without fr_store_info's cost: returns the failed checkpoints since open,
 * *checkpoints the completed ones, and the last failure's reason in reason (size reason_len; ""
 * before any), e.g. "cannot pin the snapshot to checkpoint: no free LMDB reader slot ...". Any
 * thread. */
uint64_t fr_store_checkpoint_state(fr_store_t *store, uint64_t *checkpoints, char *reason,
                                   size_t reason_len);

/* ---- writes (single writer thread) ---- */

typedef struct {
    const fr_view_def_t *view; /* resolved by the caller against a registry that outlives the write */
    const uint8_t *entity;
    uint16_t entity_len;
    int64_t event_ts_us;
    const uint8_t *values; /* msgpack array, validated with fr_store_check_row */
    uint32_t values_len;
    int64_t offset;
    bool has_offset;
} fr_write_row_t;

/* How a batch with a source sets its position besides its rows' offsets. */
typedef enum {
    FR_POSITION_ROWS = 0, /* the highest row offset above the stored position, if any */
    FR_POSITION_AT_LEAST, /* and at least batch.position: a stream consumer also consumed messages
                           * that carry no row (rejected as invalid), which must not come back */
    FR_POSITION_RESET,    /* exactly batch.position, even below the stored one (an operator's
                           * reset after the stream was recreated); the batch has no rows */
} fr_position_mode_t;

typedef struct {
    const char *source; /* NULL = no exactly-once tracking */
    uint32_t partition;
    const fr_write_row_t *rows;
    size_t row_count;
    fr_position_mode_t position_mode; /* with a source; zero: FR_POSITION_ROWS */
    int64_t position;                 /* for FR_POSITION_AT_LEAST and FR_POSITION_RESET, >= 0 */
} fr_write_batch_t;

typedef struct {
    uint32_t written;    /* new versions stored */
    uint32_t duplicates; /* offset at or below the high-water mark: skipped */
    uint32_t unchanged;  /* equal to the newest version with the same event_ts: skipped */
    uint32_t late;       /* written with event_ts older than the entity's newest version */
    uint64_t last_write_seq;
    int64_t high_water;  /* position of (source, partition) after the batch; -1 if none */
    const char *why;     /* on failure, a static reason or NULL (then fr_err_str says it) */
} fr_write_result_t;

/* Validates one row's values against its view: a msgpack array of at most feature_count values
 * whose types match (nil allowed everywhere; int64 accepts any msgpack int; double/float accept
 * ints and floats; float_list needs `dim` elements when dim > 0). Also checks the entity (1..256
 * bytes) and the event time (0 <= event_ts <= now + max_future_skew_us). Returns FR_OK,
 * FR_E_TYPE_MISMATCH, FR_E_BAD_REQUEST, FR_E_TOO_LARGE or FR_E_FUTURE_EVENT with *why naming the
 * feature. Pure function of its arguments; any thread. */
int fr_store_check_row(const fr_write_row_t *row, int64_t now_us, int64_t max_future_skew_us,
                       const char **why);

/* Starts the write transaction of one group commit. FR_E_STORAGE, FR_E_BUSY (another writer). */
int fr_store_write_begin(fr_store_t *store, fr_wtxn_t **out);

/* Applies one batch atomically inside the group (a nested transaction): all its rows or none,
 * together with its new position when it has a source (see fr_position_mode_t; a batch without
 * rows may still move the position).
 * Rows must have passed fr_store_check_row. FR_E_STORAGE_FULL (map full: the batch is undone, the
 * group goes on), FR_E_STORAGE (result->why says so when the write sequence is at UINT64_MAX: a
 * new version is refused rather than numbered 0). In a group run by fr_store_write_group's first, flat pass the
 * batch is applied directly in the group's transaction instead (see there). */
int fr_store_write_apply(fr_wtxn_t *w, const fr_write_batch_t *batch, fr_write_result_t *result);

/* Runs one group commit: apply(w, arg) applies every request of the group (fr_store_write_apply,
 * fr_store_write_registry), then the group commits. The first pass is flat: batches go straight
 * into the group's transaction, without a nested transaction each (a quarter of the writer's CPU
 * per row when the disk keeps up, measured in bench/RESULTS.md). Should any batch hit a storage
 * error there, or the map come near full, the pass is abandoned, rolled back, and apply runs a
 * second time with every batch isolated as fr_store_write_apply describes; apply must therefore
 * (re)write every request's outcome on each call. Returns the commit's result (FR_OK, or the
 * error every request of the group shares: FR_E_STORAGE, FR_E_STORAGE_FULL, FR_E_NOMEM, and
 * FR_E_TOO_LARGE when the group's write-ahead log record would exceed its limit). */
int fr_store_write_group(fr_store_t *store, void (*apply)(fr_wtxn_t *w, void *arg), void *arg);

/* Applies a registry document (the `freshet apply` file) inside the group. dry_run validates and
 * reports without storing. FR_E_BAD_REGISTRY / FR_E_INCOMPATIBLE with *why; FR_E_STORAGE(_FULL). The
 * new registry becomes visible through fr_store_registry after fr_store_write_commit. */
int fr_store_write_registry(fr_wtxn_t *w, const char *json, size_t len, bool dry_run,
                            fr_registry_diff_t *diff, const char **why);

/* Commits (fsync in sync mode) and frees w. On failure nothing of the group is stored
 * (FR_E_TOO_LARGE: the group's log record would exceed the log's record limit). */
int fr_store_write_commit(fr_wtxn_t *w);
void fr_store_write_abort(fr_wtxn_t *w);

/* ---- retention sweeper ---- */

typedef struct {
    uint8_t resume_key[512]; /* where the next tick starts; empty = from the beginning */
    size_t resume_len;
    uint64_t deleted_total;
    uint64_t passes; /* completed scans of the whole rows database */
    /* the (view, entity) being walked when a tick stopped inside it, and what its newer versions
     * decided (fr_store_sweep): so the next tick goes on with the same rule */
    uint8_t ent_prefix[FR_KEY_PREFIX_MAX];
    size_t ent_prefix_len;
    bool ent_forget;      /* its newest version was older than retention: all of it goes */
    int64_t ent_cover_wa; /* least written_at of its versions at or before the cutoff so far */
} fr_sweep_state_t;

/* Retention (DESIGN.md, Semantics 8, with the rule below): visits at most max_keys keys (the time
 * budget of one tick) from where the previous tick stopped; wraps around. With cutoff = now -
 * the view's retention, a version older than the cutoff is deleted when
 *  - a newer version of the same (view, entity) at or before the cutoff shadows it for every read
 *    at or after the cutoff, in both modes (its written_at is at most max(cutoff, the version's
 *    written_at)), so as-of reads inside the retention window answer as before; or
 *  - the entity's newest version is older than the cutoff: the entity is forgotten, all of it.
 * *deleted gets this tick's count. FR_E_STORAGE. */
int fr_store_sweep(fr_wtxn_t *w, fr_sweep_state_t *state, size_t max_keys, uint64_t *deleted);

/* ---- reads ---- */

/* A reusable read transaction. FR_E_STORAGE, FR_E_NOMEM. */
int fr_rtxn_new(fr_store_t *store, fr_rtxn_t **out);
/* Starts a fresh snapshot (mdb_txn_renew). Must be balanced by fr_rtxn_reset. */
int fr_rtxn_begin(fr_rtxn_t *r);
void fr_rtxn_reset(fr_rtxn_t *r);
void fr_rtxn_free(fr_rtxn_t *r);
/* LMDB transaction id of the current snapshot. */
uint64_t fr_rtxn_id(const fr_rtxn_t *r);

typedef struct {
    int status;            /* FR_STATUS_PRESENT, EXPIRED or NOT_FOUND */
    int64_t event_ts_us;   /* of the version found (0 when NOT_FOUND) */
    int64_t written_at_us;
    const uint8_t *values; /* msgpack array in the map; valid until fr_rtxn_reset */
    size_t values_len;
} fr_asof_t;

#define FR_ASOF_SERVED 1u /* also require written_at <= as_of (DESIGN.md, Semantics 7) */

/* The as-of read of DESIGN.md, Semantics 1–2: the newest version of (view, entity) with
 * event_ts <= as_of (ties: newest write), with its freshness status against the view's ttl.
 * FR_OK (also for NOT_FOUND), FR_E_STORAGE. */
int fr_asof_get(fr_rtxn_t *r, const fr_view_def_t *view, const uint8_t *entity, size_t entity_len,
                int64_t as_of_us, unsigned flags, fr_asof_t *out);

typedef struct {
    const uint8_t *entity;
    size_t entity_len;
    int64_t as_of_us;
    fr_asof_t *out;
} fr_asof_req_t;

/* fr_asof_get for each of n reads of one view in r's snapshot, each answer into its req's out:
 * exactly fr_asof_get's answers, found with the B-tree walks of up to 32 keys interleaved
 * (pagewalk.c) — ~3x faster than one lookup after the other on a table larger than the CPU
 * caches. Reads in key order share more cached pages. FR_OK, FR_E_STORAGE. */
int fr_asof_get_many(fr_rtxn_t *r, const fr_view_def_t *view, const fr_asof_req_t *reqs,
                     size_t n, unsigned flags);

/* Keys fr_asof_get_many has looked up on r so far by walking pages, and by the cursor. */
void fr_rtxn_walk_stats(const fr_rtxn_t *r, uint64_t *walked, uint64_t *cursor);

/* Status of a version of age (as_of - event_ts) against ttl (0 = never expires). */
static inline int fr_asof_status(int64_t as_of_us, int64_t event_ts_us, int64_t ttl_us)
{
    return (ttl_us == 0 || as_of_us - event_ts_us <= ttl_us) ? 1 /* PRESENT */ : 2 /* EXPIRED */;
}

/* Calls fn for each distinct entity of a view in key order, starting after entity `after` (NULL:
 * from the first), stopping after `limit` entities; *more tells whether entities remain. Entity
 * bytes point into the map (valid until fr_rtxn_reset). fn may call fr_asof_get on the same r.
 * FR_E_STORAGE. */
int fr_store_entities_each(fr_rtxn_t *r, uint32_t view_id, const uint8_t *after, size_t after_len,
                           size_t limit,
                           int (*fn)(void *ctx, const uint8_t *entity, size_t len), void *ctx,
                           bool *more);

/* The as_of of an online read ("now") from the open snapshot r, such that a `served` export at
 * that time returns exactly what the read does (DESIGN.md, Semantics 7). Rows are stamped with
 * written_at when their transaction starts but become visible only at its commit, after the
 * fsync; a read must not claim a time at or after the stamp of a transaction its snapshot does
 * not hold. Use it together with FR_ASOF_SERVED. Thread-safe, lock-free. */
int64_t fr_store_read_now(fr_rtxn_t *r);

/* High-water offset of (source, partition); -1 when never written. FR_E_STORAGE. */
int fr_store_source_get(fr_rtxn_t *r, const char *source, uint32_t partition, int64_t *offset);

/* Calls fn for every (source, partition, offset) in key order; fn returns non-zero to stop. */
int fr_store_sources_each(fr_rtxn_t *r,
                          int (*fn)(void *ctx, const char *source, size_t source_len,
                                    uint32_t partition, int64_t offset),
                          void *ctx);

typedef struct {
    uint64_t versions;
    int64_t newest_event_ts_us;
} fr_view_stat_t;
/* Per-view counters kept by the writer. Zeroes for a view never written. */
int fr_store_view_stat(fr_rtxn_t *r, uint32_t view_id, fr_view_stat_t *out);

#endif
