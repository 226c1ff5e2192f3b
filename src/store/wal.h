/* The write-ahead log: durable group commits without an fsync of LMDB's pages per commit.
 *
 * Why: a group of random entities dirties one 4 KB leaf per row, and LMDB's synced commit writes
 * every one of them before it returns (bench/RESULTS.md: ~3.6 KB of random writes per row). With
 * the log, a commit appends the group's changes (a few hundred bytes a row, sequential) to a log
 * segment, fsyncs that, and then commits LMDB without any fsync (MDB_NOSYNC): acknowledged =
 * durable (the log) and visible (LMDB committed). A checkpoint, every wal_checkpoint_mb of log,
 * syncs LMDB's file once for all the commits since the last one and drops their log.
 *
 * Why this is safe after a power loss, when LMDB commits without fsync are not: LMDB reuses the
 * pages a transaction frees once no reader needs them, and a meta page may reach the disk before
 * the pages it points to. So the store keeps a read transaction open on the last checkpoint's
 * snapshot C (the "pin"): no page of C is rewritten until the next checkpoint is on disk. The
 * checkpoint file (freshet.ckpt) holds C's two meta pages byte for byte. Recovery (store open)
 * writes them back over data.mdb's metas whenever those differ, which makes LMDB open exactly C,
 * whose pages are all intact, and then replays every logged transaction after C. The log records
 * physical operations (put key value / delete key, per database) with absolute values, so replaying
 * a suffix on a state that already holds part of it gives the same result.
 *
 * Files in the store directory: freshet.ckpt (written atomically: temp file, fsync, rename) and
 * wal.<16 hex digits> segments, one per checkpoint interval. Records: magic "FRWL" u32 LE ·
 * payload_len u32 LE · txnid u64 LE · crc32c u32 LE (of the 12 bytes before it and the payload) ·
 * payload = ops: op u8 (1 put, 2 del) · db u8 (0 meta, 1 rows, 2 sources) · key_len u16 LE ·
 * val_len u32 LE · key · val. The first record that is incomplete or fails its checksum ends the
 * log (a torn tail: it was never acknowledged in sync mode).
 *
 * Only the writer thread appends; the checkpointer thread syncs and swaps the pin. */
#ifndef FR_STORE_WAL_H
#define FR_STORE_WAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FR_WAL_DB_META = 0, FR_WAL_DB_ROWS = 1, FR_WAL_DB_SOURCES = 2, FR_WAL_DBS = 3 };
enum { FR_WAL_OP_PUT = 1, FR_WAL_OP_DEL = 2 };

#define FR_WAL_REC_HDR 20
#define FR_WAL_REC_MAX (1u << 30) /* largest payload a record may declare */
#define FR_WAL_KEY_MAX 511        /* LMDB's default key size limit */
#define FR_WAL_META_BYTES 256     /* of each meta page: LMDB's page header and MDB_meta fit */

/* ---- the codec: pure functions, fuzzed (tests/fuzz/fuzz_wal.c) ---- */

/* CRC-32C (Castagnoli) of n bytes continuing crc (start with 0): with SSE4.2 where the CPU has
 * it, else fr_wal_crc32c_portable (a table; the same values, also called by the tests). */
uint32_t fr_wal_crc32c(uint32_t crc, const void *p, size_t n);
uint32_t fr_wal_crc32c_portable(uint32_t crc, const void *p, size_t n);

/* A transaction's operations as they are appended. An allocation failure sets `failed` and
 * drops the op: the commit then fails with FR_E_NOMEM instead of logging less than it stores. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} fr_wal_buf_t;

void fr_wal_buf_op(fr_wal_buf_t *b, unsigned op, unsigned db, const void *key, size_t klen,
                   const void *val, size_t vlen);
void fr_wal_buf_free(fr_wal_buf_t *b);

typedef struct {
    unsigned op, db;
    const uint8_t *key, *val; /* into the payload */
    size_t klen, vlen;
} fr_wal_op_t;

/* Decodes the op at *pos of a record payload and advances *pos. Returns 0 with *op, 1 at the end
 * of the payload, -1 when malformed (*why names the field). */
int fr_wal_op_next(const uint8_t *payload, size_t len, size_t *pos, fr_wal_op_t *op,
                   const char **why);

/* The 20-byte header of a record holding payload. `synced`: the record is fsynced before
 * anything is logged after it (sync durability), which recovery needs to tell damage inside the
 * newest segment from a torn tail; it is carried by the magic, so older logs read as async. */
void fr_wal_rec_header(uint8_t hdr[FR_WAL_REC_HDR], uint64_t txnid, bool synced,
                       const uint8_t *payload, size_t plen);

enum { FR_WAL_REC_OK = 0, FR_WAL_REC_SHORT = 1, FR_WAL_REC_BAD = 2 };
/* Parses the record at p (n bytes available): FR_WAL_REC_OK with *txnid, *payload, *plen and
 * *rec_len (header + payload); FR_WAL_REC_SHORT when n ends inside it; FR_WAL_REC_BAD for a wrong
 * magic, an oversize length or a checksum mismatch. */
int fr_wal_rec_parse(const uint8_t *p, size_t n, uint64_t *txnid, const uint8_t **payload,
                     size_t *plen, size_t *rec_len);
/* Whether the record at p (parsed FR_WAL_REC_OK) was written `synced`. */
bool fr_wal_rec_synced(const uint8_t *p);

/* freshet.ckpt: the snapshot the log starts after. */
typedef struct {
    uint64_t txnid;     /* LMDB transaction id of the checkpoint C */
    uint64_t file_size; /* data.mdb's size then (a file that is smaller is not this store's) */
    uint64_t file_ino;  /* data.mdb's inode then */
    uint64_t first_seg; /* segments numbered below it hold only transactions <= txnid */
    uint32_t psize;     /* LMDB page size: the second meta page's offset */
    uint8_t meta[2][FR_WAL_META_BYTES];
} fr_wal_ckpt_t;

#define FR_WAL_CKPT_LEN (4 + 4 + 8 * 4 + 4 + 2 * FR_WAL_META_BYTES + 4)
void fr_wal_ckpt_encode(const fr_wal_ckpt_t *c, uint8_t out[FR_WAL_CKPT_LEN]);
/* FR_OK, or FR_E_STORAGE with *why (wrong magic/version/checksum). */
int fr_wal_ckpt_decode(const uint8_t *p, size_t n, fr_wal_ckpt_t *c, const char **why);

/* ---- the log of one store (state inside struct fr_store; wal.c) ---- */

typedef struct {
    bool on;
    bool broken;         /* a record could not be taken back: appends and checkpoints refused */
    bool fsync_each;     /* sync durability: fsync the segment before every commit */
    uint64_t ckpt_bytes; /* checkpoint after this much log */
    int dir_fd, seg_fd;  /* -1 when closed */
    uint64_t seg_seq;    /* number of the open segment */
    uint64_t seg_len;    /* bytes in it */
    _Atomic uint64_t since_ckpt; /* log bytes appended since the last checkpoint began */
    uint64_t ckpt_txnid;         /* of the last completed checkpoint */
    bool has_ckpt;               /* freshet.ckpt was found at open (ckpt holds it) */
    bool restored; /* open wrote the checkpoint's metas back: LMDB had gone on past it */
    fr_wal_ckpt_t ckpt;
    uint64_t torn_bytes; /* log bytes after the end of the log, found by the replay */
    MDB_txn *pin;        /* read txn on the last completed checkpoint (guarded by lock) */
    /* the checkpointer thread */
    pthread_t thread;
    bool thread_on, stop, busy; /* busy: a checkpoint job is in flight */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct {
        fr_wal_ckpt_t ckpt;
        MDB_txn *pin;
    } job;
    /* counters (fr_store_info) */
    _Atomic uint64_t checkpoints, appended, replayed, ckpt_failures;
    char fail_reason[192]; /* of the last failed checkpoint (guarded by lock) */
} fr_wal_t;

struct fr_store;

/* Store open, before mdb_env_open: reads freshet.ckpt and, when data.mdb's metas differ from it
 * (LMDB went on after the checkpoint: a crash), writes the checkpoint's metas back.
 * FR_E_STORAGE with *why. */
int fr_wal_recover_prepare(struct fr_store *s, const char **why);
/* After mdb_env_open: pins the snapshot LMDB opened. */
int fr_wal_pin_open(struct fr_store *s, const char **why);
/* After the databases are open: replays the log after the checkpoint, checkpoints synchronously,
 * then (opts.wal) opens a new segment and starts the checkpointer, or (no wal) removes the log.
 * FR_E_STORAGE with *why. */
int fr_wal_start(struct fr_store *s, const char **why);
/* Store close: a last checkpoint, then the thread stops and the files close. */
void fr_wal_close(struct fr_store *s);

/* Appends one transaction's record (fsynced in sync mode). *undo gets the segment's length before
 * it, for fr_wal_undo. FR_E_STORAGE (the record is not in the log), FR_E_TOO_LARGE (the record
 * would exceed opts.wal_record_max / FR_WAL_REC_MAX; nothing written). Writer thread. */
int fr_wal_append(struct fr_store *s, uint64_t txnid, const fr_wal_buf_t *b, uint64_t *undo);
/* Takes back the last record (its LMDB commit failed). */
void fr_wal_undo(struct fr_store *s, uint64_t undo);
/* fsyncs the open segment (async durability's periodic sync). FR_E_STORAGE. */
int fr_wal_sync(struct fr_store *s);
/* After a commit, writer thread: starts a checkpoint when enough log has gathered. */
void fr_wal_after_commit(struct fr_store *s);
/* A checkpoint of everything committed so far, waited for. Writer thread, no write txn open.
 * FR_E_STORAGE. */
int fr_wal_checkpoint(struct fr_store *s);

#endif
