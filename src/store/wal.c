/* The write-ahead log of wal.h: the record and checkpoint codecs, appending, checkpoints (the
 * pinned snapshot and the checkpointer thread) and recovery at open. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fault.h"
#include "freshet/err.h"
#include "store_int.h"

/* ---- CRC-32C: the SSE4.2 instruction where the CPU has it, a table otherwise ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    for (; n; n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t fr_wal_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; n; n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

uint32_t fr_wal_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (crc_hw)
        return ~crc_sse42(~crc, data, n);
#endif
    return fr_wal_crc32c_portable(crc, data, n);
}

/* ---- record codec ---- */

#define REC_MAGIC 0x4c575246u      /* "FRWL": appended without an fsync of its own (async) */
#define REC_MAGIC_SYNC 0x53575246u /* "FRWS": fsynced before anything was logged after it */
#define OP_HDR 8

void fr_wal_buf_op(fr_wal_buf_t *b, unsigned op, unsigned db, const void *key, size_t klen,
                   const void *val, size_t vlen)
{
    if (b->failed)
        return;
    size_t need = OP_HDR + klen + vlen;
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 64 << 10;
        while (cap < b->len + need)
            cap *= 2;
        uint8_t *p = fr_realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *o = b->p + b->len;
    o[0] = (uint8_t)op;
    o[1] = (uint8_t)db;
    fr_put_le16(o + 2, (uint16_t)klen);
    fr_put_le32(o + 4, (uint32_t)vlen);
    memcpy(o + OP_HDR, key, klen);
    if (vlen)
        memcpy(o + OP_HDR + klen, val, vlen);
    b->len += need;
}

void fr_wal_buf_free(fr_wal_buf_t *b)
{
    free(b->p);
    *b = (fr_wal_buf_t){0};
}

int fr_wal_op_next(const uint8_t *payload, size_t len, size_t *pos, fr_wal_op_t *op,
                   const char **why)
{
    if (*pos == len)
        return 1;
    if (len - *pos < OP_HDR)
        return *why = "op: truncated header", -1;
    const uint8_t *h = payload + *pos;
    op->op = h[0];
    op->db = h[1];
    op->klen = fr_get_le16(h + 2);
    op->vlen = fr_get_le32(h + 4);
    if (op->op != FR_WAL_OP_PUT && op->op != FR_WAL_OP_DEL)
        return *why = "op: unknown operation", -1;
    if (op->db >= FR_WAL_DBS)
        return *why = "op: unknown database", -1;
    if (op->klen == 0 || op->klen > FR_WAL_KEY_MAX)
        return *why = "op: key length out of range", -1;
    if (op->op == FR_WAL_OP_DEL && op->vlen)
        return *why = "op: delete with a value", -1;
    size_t left = len - *pos - OP_HDR;
    if (op->klen > left || op->vlen > left - op->klen)
        return *why = "op: key or value beyond the record", -1;
    op->key = h + OP_HDR;
    op->val = h + OP_HDR + op->klen;
    *pos += OP_HDR + op->klen + op->vlen;
    return 0;
}

void fr_wal_rec_header(uint8_t hdr[FR_WAL_REC_HDR], uint64_t txnid, bool synced,
                       const uint8_t *payload, size_t plen)
{
    fr_put_le32(hdr, synced ? REC_MAGIC_SYNC : REC_MAGIC);
    fr_put_le32(hdr + 4, (uint32_t)plen);
    fr_put_le64(hdr + 8, txnid);
    uint32_t crc = fr_wal_crc32c(0, hdr + 4, 12);
    fr_put_le32(hdr + 16, fr_wal_crc32c(crc, payload, plen));
}

int fr_wal_rec_parse(const uint8_t *p, size_t n, uint64_t *txnid, const uint8_t **payload,
                     size_t *plen, size_t *rec_len)
{
    if (n < FR_WAL_REC_HDR)
        return FR_WAL_REC_SHORT;
    uint32_t magic = fr_get_le32(p);
    if (magic != REC_MAGIC && magic != REC_MAGIC_SYNC)
        return FR_WAL_REC_BAD;
    uint32_t len = fr_get_le32(p + 4);
    if (len > FR_WAL_REC_MAX)
        return FR_WAL_REC_BAD;
    if (n - FR_WAL_REC_HDR < len)
        return FR_WAL_REC_SHORT;
    uint32_t crc = fr_wal_crc32c(fr_wal_crc32c(0, p + 4, 12), p + FR_WAL_REC_HDR, len);
    if (crc != fr_get_le32(p + 16))
        return FR_WAL_REC_BAD;
    *txnid = fr_get_le64(p + 8);
    *payload = p + FR_WAL_REC_HDR;
    *plen = len;
    *rec_len = FR_WAL_REC_HDR + (size_t)len;
    return FR_WAL_REC_OK;
}

bool fr_wal_rec_synced(const uint8_t *p)
{
    return fr_get_le32(p) == REC_MAGIC_SYNC;
}

/* ---- checkpoint codec ---- */

#define CKPT_MAGIC 0x4b435246u /* "FRCK" */
#define CKPT_VERSION 1

void fr_wal_ckpt_encode(const fr_wal_ckpt_t *c, uint8_t out[FR_WAL_CKPT_LEN])
{
    uint8_t *o = out;
    fr_put_le32(o, CKPT_MAGIC);
    fr_put_le32(o + 4, CKPT_VERSION);
    fr_put_le64(o + 8, c->txnid);
    fr_put_le64(o + 16, c->file_size);
    fr_put_le64(o + 24, c->file_ino);
    fr_put_le64(o + 32, c->first_seg);
    fr_put_le32(o + 40, c->psize);
    memcpy(o + 44, c->meta[0], FR_WAL_META_BYTES);
    memcpy(o + 44 + FR_WAL_META_BYTES, c->meta[1], FR_WAL_META_BYTES);
    fr_put_le32(o + FR_WAL_CKPT_LEN - 4, fr_wal_crc32c(0, out, FR_WAL_CKPT_LEN - 4));
}

int fr_wal_ckpt_decode(const uint8_t *p, size_t n, fr_wal_ckpt_t *c, const char **why)
{
    if (n != FR_WAL_CKPT_LEN)
        return *why = "freshet.ckpt: wrong size", FR_E_STORAGE;
    if (fr_get_le32(p) != CKPT_MAGIC)
        return *why = "freshet.ckpt: not a checkpoint file", FR_E_STORAGE;
    if (fr_get_le32(p + 4) != CKPT_VERSION)
        return *why = "freshet.ckpt: unknown version", FR_E_STORAGE;
    if (fr_wal_crc32c(0, p, n - 4) != fr_get_le32(p + n - 4))
        return *why = "freshet.ckpt: checksum mismatch", FR_E_STORAGE;
    c->txnid = fr_get_le64(p + 8);
    c->file_size = fr_get_le64(p + 16);
    c->file_ino = fr_get_le64(p + 24);
    c->first_seg = fr_get_le64(p + 32);
    c->psize = fr_get_le32(p + 40);
    if (c->psize < FR_WAL_META_BYTES || c->psize > (1u << 16) || (c->psize & (c->psize - 1)))
        return *why = "freshet.ckpt: page size out of range", FR_E_STORAGE;
    memcpy(c->meta[0], p + 44, FR_WAL_META_BYTES);
    memcpy(c->meta[1], p + 44 + FR_WAL_META_BYTES, FR_WAL_META_BYTES);
    return FR_OK;
}

/* ---- files ---- */

static _Thread_local char why_buf[512];

static const char *whyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *whyf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_buf, sizeof why_buf, fmt, ap);
    va_end(ap);
    return why_buf;
}

static void path_of(const fr_store_t *s, char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", s->opts.path, name);
}

static void seg_path(const fr_store_t *s, char *out, size_t n, uint64_t seq)
{
    snprintf(out, n, "%s/wal.%016" PRIx64, s->opts.path, seq);
}

/* Segment numbers in the directory, ascending, into *out (malloc'd); their count, -1 on error. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static long list_segments(const fr_store_t *s, uint64_t **out)
{
    *out = NULL;
    DIR *d = opendir(s->opts.path);
    if (!d)
        return -1;
    long n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (strncmp(nm, "wal.", 4) != 0 || strlen(nm) != 20 ||
            strspn(nm + 4, "0123456789abcdef") != 16)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *g = realloc(*out, (size_t)cap * sizeof **out);
            if (!g) {
                closedir(d);
                free(*out);
                *out = NULL;
                return -1;
            }
            *out = g;
        }
        (*out)[n++] = strtoull(nm + 4, NULL, 16);
    }
    closedir(d);
    if (n)
        qsort(*out, (size_t)n, sizeof **out, cmp_u64);
    return n;
}

/* Removes the segments numbered below `below`; 0, or -1 when one could not be listed or removed
 * (a checkpoint's cleanup may leave one for the next; retiring the log may not). */
static int unlink_segments_below(fr_store_t *s, uint64_t below)
{
    uint64_t *segs;
    long n = list_segments(s, &segs);
    char p[4200];
    int bad = n < 0;
    for (long i = 0; i < n; i++)
        if (segs[i] < below) {
            seg_path(s, p, sizeof p, segs[i]);
            bad |= unlink(p) != 0 && errno != ENOENT;
        }
    free(segs);
    return bad ? -1 : 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Writes freshet.ckpt atomically: a temp file, fsynced, renamed over, the directory fsynced. */
static int ckpt_write(fr_store_t *s, const fr_wal_ckpt_t *c)
{
    uint8_t buf[FR_WAL_CKPT_LEN];
    fr_wal_ckpt_encode(c, buf);
    char tmp[4200], dst[4200];
    path_of(s, tmp, sizeof tmp, "freshet.ckpt.tmp");
    path_of(s, dst, sizeof dst, "freshet.ckpt");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int bad = fr_fault_hit(FR_FAULT_STORE) || write_all_at(fd, buf, sizeof buf, 0) != 0 ||
              fdatasync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, dst) != 0 || fsync(s->wal.dir_fd) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Opens segment seq for appending (created empty), the directory fsynced. */
static int seg_open(fr_store_t *s, uint64_t seq)
{
    char p[4200];
    seg_path(s, p, sizeof p, seq);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (fsync(s->wal.dir_fd) != 0) {
        close(fd);
        unlink(p);
        return -1;
    }
    if (s->wal.seg_fd >= 0) {
        if (!s->wal.fsync_each) /* async: the rest of the old segment is durable before it closes */
            fdatasync(s->wal.seg_fd);
        close(s->wal.seg_fd);
    }
    s->wal.seg_fd = fd;
    s->wal.seg_seq = seq;
    s->wal.seg_len = 0;
    return 0;
}

/* ---- checkpoints ---- */

/* Counts a failed checkpoint and keeps its reason for fr_store_checkpoint_state (the server logs
 * it: the store never prints). */
static void ckpt_failed(fr_store_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ckpt_failed(fr_store_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->wal.lock);
    vsnprintf(s->wal.fail_reason, sizeof s->wal.fail_reason, fmt, ap);
    atomic_fetch_add(&s->wal.ckpt_failures, 1);
    pthread_mutex_unlock(&s->wal.lock);
    va_end(ap);
}

/* The snapshot to checkpoint: a read txn on the newest commit and that commit's two meta pages
 * as LMDB wrote them (read now, before a later commit rewrites one). Writer thread, between
 * write transactions. */
static int ckpt_capture(fr_store_t *s, fr_wal_ckpt_t *c, MDB_txn **pin)
{
    int fd;
    MDB_stat st;
    struct stat fs;
    int mrc = mdb_env_get_fd(s->env, &fd);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_stat(s->env, &st);
    if (mrc != MDB_SUCCESS) {
        ckpt_failed(s, "cannot stat the LMDB environment: %s", mdb_strerror(mrc));
        return -1;
    }
    mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, pin);
    if (mrc != MDB_SUCCESS) {
        *pin = NULL;
        unsigned maxr = 0;
        mdb_env_get_maxreaders(s->env, &maxr);
        if (mrc == MDB_READERS_FULL)
            ckpt_failed(s, "cannot pin the snapshot to checkpoint: no free LMDB reader slot "
                        "(max_readers=%u, all held)", maxr);
        else
            ckpt_failed(s, "cannot pin the snapshot to checkpoint: %s", mdb_strerror(mrc));
        return -1;
    }
    memset(c, 0, sizeof *c);
    c->txnid = (uint64_t)mdb_txn_id(*pin);
    c->psize = st.ms_psize;
    if (pread(fd, c->meta[0], FR_WAL_META_BYTES, 0) != FR_WAL_META_BYTES ||
        pread(fd, c->meta[1], FR_WAL_META_BYTES, (off_t)st.ms_psize) != FR_WAL_META_BYTES ||
        fstat(fd, &fs) != 0) {
        ckpt_failed(s, "cannot read LMDB's meta pages: %s", strerror(errno));
        mdb_txn_abort(*pin);
        *pin = NULL;
        return -1;
    }
    c->file_size = (uint64_t)fs.st_size;
    c->file_ino = (uint64_t)fs.st_ino;
    return 0;
}

/* Makes the captured snapshot durable and the log's new start: LMDB's file synced, freshet.ckpt
 * written, the pin moved, older segments removed. On failure the previous checkpoint stays. Any
 * thread (mdb_env_sync and the pin's abort need no write lock). */
static int ckpt_finish(fr_store_t *s, const fr_wal_ckpt_t *c, MDB_txn *pin)
{
    int mrc = fr_fault_hit(FR_FAULT_STORE) ? EIO : mdb_env_sync(s->env, 1);
    if (mrc != MDB_SUCCESS || ckpt_write(s, c) != 0) {
        int e = errno;
        mdb_txn_abort(pin);
        if (mrc != MDB_SUCCESS)
            ckpt_failed(s, "cannot sync data.mdb: %s", mdb_strerror(mrc));
        else
            ckpt_failed(s, "cannot write freshet.ckpt: %s", strerror(e));
        return -1;
    }
    pthread_mutex_lock(&s->wal.lock);
    MDB_txn *old = s->wal.pin;
    s->wal.pin = pin;
    s->wal.ckpt_txnid = c->txnid;
    pthread_mutex_unlock(&s->wal.lock);
    if (old)
        mdb_txn_abort(old);
    unlink_segments_below(s, c->first_seg);
    atomic_fetch_add(&s->wal.checkpoints, 1);
    return 0;
}

/* Captures the snapshot and rotates to a new segment, so the job's segments are closed. */
static int ckpt_begin(fr_store_t *s, fr_wal_ckpt_t *c, MDB_txn **pin)
{
    /* A log closed by a failed undo holds a record of a commit that failed, with the id the next
     * commit would reuse: it stays closed, and the store refuses writes, until a restart. */
    if (s->wal.broken) {
        ckpt_failed(s, "the log is closed after a failed commit (wal_closed): restart freshetd");
        return -1;
    }
    if (ckpt_capture(s, c, pin) != 0)
        return -1;
    if (seg_open(s, s->wal.seg_seq + 1) != 0) {
        ckpt_failed(s, "cannot open a new log segment: %s", strerror(errno));
        mdb_txn_abort(*pin);
        *pin = NULL;
        return -1;
    }
    c->first_seg = s->wal.seg_seq;
    s->wal.since_ckpt = 0;
    return 0;
}

static void *checkpointer_main(void *arg)
{
    fr_store_t *s = arg;
    fr_wal_t *wl = &s->wal;
    pthread_mutex_lock(&wl->lock);
    for (;;) {
        while (!wl->busy && !wl->stop)
            pthread_cond_wait(&wl->cond, &wl->lock);
        if (!wl->busy)
            break;
        pthread_mutex_unlock(&wl->lock);
        ckpt_finish(s, &wl->job.ckpt, wl->job.pin);
        pthread_mutex_lock(&wl->lock);
        wl->busy = false;
        pthread_cond_broadcast(&wl->cond);
    }
    pthread_mutex_unlock(&wl->lock);
    return NULL;
}

static void wait_idle(fr_wal_t *wl)
{
    pthread_mutex_lock(&wl->lock);
    while (wl->busy)
        pthread_cond_wait(&wl->cond, &wl->lock);
    pthread_mutex_unlock(&wl->lock);
}

void fr_wal_after_commit(fr_store_t *s)
{
    fr_wal_t *wl = &s->wal;
    if (!wl->on || wl->since_ckpt < wl->ckpt_bytes)
        return;
    pthread_mutex_lock(&wl->lock);
    bool busy = wl->busy;
    pthread_mutex_unlock(&wl->lock);
    if (busy)
        return; /* the next commit asks again */
    if (ckpt_begin(s, &wl->job.ckpt, &wl->job.pin) != 0)
        return; /* counted, with its reason */
    pthread_mutex_lock(&wl->lock);
    wl->busy = true;
    pthread_cond_signal(&wl->cond);
    pthread_mutex_unlock(&wl->lock);
}

uint64_t fr_store_checkpoint_state(fr_store_t *s, uint64_t *checkpoints, char *reason,
                                   size_t reason_len)
{
    pthread_mutex_lock(&s->wal.lock);
    uint64_t failures = atomic_load(&s->wal.ckpt_failures);
    *checkpoints = atomic_load(&s->wal.checkpoints);
    if (reason_len)
        snprintf(reason, reason_len, "%s", s->wal.fail_reason);
    pthread_mutex_unlock(&s->wal.lock);
    return failures;
}

int fr_wal_checkpoint(fr_store_t *s)
{
    fr_wal_t *wl = &s->wal;
    if (!wl->on)
        return fr_store_mdb_err(mdb_env_sync(s->env, 1));
    wait_idle(wl);
    fr_wal_ckpt_t c;
    MDB_txn *pin;
    if (ckpt_begin(s, &c, &pin) != 0)
        return FR_E_STORAGE;
    return ckpt_finish(s, &c, pin) == 0 ? FR_OK : FR_E_STORAGE;
}

/* ---- appending ---- */

int fr_wal_append(fr_store_t *s, uint64_t txnid, const fr_wal_buf_t *b, uint64_t *undo)
{
    fr_wal_t *wl = &s->wal;
    if (wl->seg_fd < 0)
        return FR_E_STORAGE; /* a failed undo closed the log: restart to recover */
    /* Replay refuses a record declaring more than FR_WAL_REC_MAX (and would take it for a torn
     * tail), so a larger group must not be acknowledged: refused before anything is written. */
    uint64_t rec_max = s->opts.wal_record_max && s->opts.wal_record_max < FR_WAL_REC_MAX
                           ? s->opts.wal_record_max
                           : FR_WAL_REC_MAX;
    if (b->len > rec_max)
        return FR_E_TOO_LARGE;
    uint8_t hdr[FR_WAL_REC_HDR];
    fr_wal_rec_header(hdr, txnid, wl->fsync_each, b->p, b->len);
    *undo = wl->seg_len;
    struct iovec iov[2] = {{hdr, sizeof hdr}, {b->p, b->len}};
    size_t total = sizeof hdr + b->len, done = 0;
    int bad = fr_fault_hit(FR_FAULT_STORE);
    while (!bad && done < total) {
        ssize_t w = pwritev(wl->seg_fd, iov, 2, (off_t)(wl->seg_len + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            bad = 1;
            break;
        }
        done += (size_t)w;
        for (size_t k = 0, adv = (size_t)w; k < 2 && adv; k++) { /* skip what was written */
            size_t take = adv < iov[k].iov_len ? adv : iov[k].iov_len;
            iov[k].iov_base = (uint8_t *)iov[k].iov_base + take;
            iov[k].iov_len -= take;
            adv -= take;
        }
    }
    if (!bad && wl->fsync_each && fdatasync(wl->seg_fd) != 0)
        bad = 1;
    if (bad) {
        fr_wal_undo(s, *undo);
        return FR_E_STORAGE;
    }
    wl->seg_len += total;
    wl->since_ckpt += total;
    atomic_fetch_add(&wl->appended, 1);
    return FR_OK;
}

void fr_wal_undo(fr_store_t *s, uint64_t undo)
{
    fr_wal_t *wl = &s->wal;
    if (fr_fault_hit(FR_FAULT_WAL_UNDO) || ftruncate(wl->seg_fd, (off_t)undo) != 0 ||
        (wl->fsync_each && fdatasync(wl->seg_fd) != 0)) {
        /* The record may stay in the log and be replayed after a restart although its commit
         * failed; refuse every later write rather than log more behind it. */
        close(wl->seg_fd);
        wl->seg_fd = -1;
        __atomic_store_n(&wl->broken, true, __ATOMIC_RELAXED); /* fr_store_info reads it */
        return;
    }
    wl->seg_len = undo;
}

int fr_wal_sync(fr_store_t *s)
{
    if (s->wal.seg_fd < 0 || fdatasync(s->wal.seg_fd) != 0)
        return FR_E_STORAGE;
    return FR_OK;
}

/* ---- recovery ---- */

/* Whether another process has LMDB's lock file open (LMDB keeps a shared fcntl lock on its
 * first byte while an environment is open). */
static bool lockfile_in_use(const fr_store_t *s, long *pid)
{
    char p[4200];
    path_of(s, p, sizeof p, "lock.mdb");
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    bool used = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    *pid = used ? (long)fl.l_pid : 0;
    close(fd);
    return used;
}

int fr_wal_recover_prepare(fr_store_t *s, const char **why)
{
    fr_wal_t *wl = &s->wal;
    if (s->opts.read_only)
        return FR_OK;
    char p[4200];
    path_of(s, p, sizeof p, "freshet.ckpt");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    uint64_t *segs = NULL;
    long nseg = list_segments(s, &segs);
    free(segs);
    if (nseg < 0)
        return *why = whyf("cannot list %s: %s", s->opts.path, strerror(errno)), FR_E_STORAGE;
    if (fd < 0) {
        if (errno != ENOENT)
            return *why = whyf("cannot open %s: %s", p, strerror(errno)), FR_E_STORAGE;
        if (nseg > 0)
            return *why = whyf("%s holds write-ahead log segments (wal.*) but no freshet.ckpt: "
                               "the log cannot be replayed without its checkpoint",
                               s->opts.path),
                   FR_E_STORAGE;
        return FR_OK; /* a new store, or one that never ran with the log */
    }
    uint8_t buf[FR_WAL_CKPT_LEN + 1];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    fr_wal_ckpt_t c;
    int rc = fr_wal_ckpt_decode(buf, n < 0 ? 0 : (size_t)n, &c, why);
    if (rc != FR_OK)
        return rc;
    wl->has_ckpt = true;
    wl->ckpt = c;
    path_of(s, p, sizeof p, "data.mdb");
    int dfd = open(p, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) != 0) {
        if (dfd >= 0)
            close(dfd);
        return *why = whyf("freshet.ckpt is there but %s cannot be opened: %s", p, strerror(errno)),
               FR_E_STORAGE;
    }
    if ((uint64_t)st.st_size < c.file_size || (uint64_t)st.st_ino != c.file_ino) {
        close(dfd);
        return *why = whyf("freshet.ckpt (checkpoint of transaction %" PRIu64 ") does not belong "
                           "to %s (replaced or restored from a backup?); move freshet.ckpt and "
                           "wal.* out of the directory to open data.mdb as it is",
                           c.txnid, p),
               FR_E_STORAGE;
    }
    uint8_t cur[2][FR_WAL_META_BYTES];
    if (pread(dfd, cur[0], FR_WAL_META_BYTES, 0) != FR_WAL_META_BYTES ||
        pread(dfd, cur[1], FR_WAL_META_BYTES, (off_t)c.psize) != FR_WAL_META_BYTES) {
        close(dfd);
        return *why = whyf("cannot read the meta pages of %s", p), FR_E_STORAGE;
    }
    if (memcmp(cur, c.meta, sizeof cur) != 0) {
        /* LMDB went on after the checkpoint and was not closed through it: open the checkpoint
         * (whose pages the pin kept intact) and replay the log over it. */
        long pid = 0;
        if (lockfile_in_use(s, &pid)) {
            close(dfd);
            return *why = whyf("%s needs recovery from its write-ahead log, but process %ld has "
                               "the LMDB environment open; stop it first",
                               s->opts.path, pid),
                   FR_E_STORAGE;
        }
        if (write_all_at(dfd, c.meta[0], FR_WAL_META_BYTES, 0) != 0 ||
            write_all_at(dfd, c.meta[1], FR_WAL_META_BYTES, (off_t)c.psize) != 0 ||
            fdatasync(dfd) != 0) {
            close(dfd);
            return *why = whyf("cannot restore the checkpoint's meta pages in %s: %s", p,
                               strerror(errno)),
                   FR_E_STORAGE;
        }
        wl->restored = true;
    }
    close(dfd);
    return FR_OK;
}

/* Whether this open deals with a log: it writes one, or must replay (and retire) one it found. */
static bool log_in_play(const fr_store_t *s)
{
    return !s->opts.read_only && (s->wal.has_ckpt || s->opts.wal);
}

int fr_wal_pin_open(fr_store_t *s, const char **why)
{
    fr_wal_t *wl = &s->wal;
    if (!log_in_play(s))
        return FR_OK;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &wl->pin);
    if (mrc != MDB_SUCCESS) {
        wl->pin = NULL;
        return *why = whyf("cannot pin the checkpoint: %s", mdb_strerror(mrc)),
               fr_store_mdb_err(mrc);
    }
    if (wl->has_ckpt && (uint64_t)mdb_txn_id(wl->pin) != wl->ckpt.txnid)
        return *why = whyf("LMDB opened transaction %" PRIu64 ", not the checkpoint's %" PRIu64,
                           (uint64_t)mdb_txn_id(wl->pin), wl->ckpt.txnid),
               FR_E_STORAGE;
    return FR_OK;
}

#define REPLAY_OPS_PER_TXN 100000

/* The offset of a well-formed record written `synced` with a transaction after last_txnid that
 * starts past `bad` in the segment p[0..n), or 0. A sync record is logged only after the one
 * before it was fsynced, so one after a bad record proves the bad one was durable: damage, not a
 * write a power loss cut short. (Async records after a hole prove nothing: the page cache may
 * write a later page before an earlier one.) A damaged header hides where the next record
 * starts, so every offset is tried; this runs only on the error path. */
static size_t synced_record_after(const uint8_t *p, size_t n, size_t bad, uint64_t last_txnid)
{
    for (size_t q = bad + 1; q + FR_WAL_REC_HDR <= n; q++) {
        if (p[q] != (REC_MAGIC_SYNC & 0xff) || !fr_wal_rec_synced(p + q))
            continue;
        uint64_t txnid;
        const uint8_t *payload;
        size_t plen, rlen;
        if (fr_wal_rec_parse(p + q, n - q, &txnid, &payload, &plen, &rlen) == FR_WAL_REC_OK &&
            txnid > last_txnid)
            return q;
    }
    return 0;
}

/* Applies the records of one mapped segment with txnid > the checkpoint's. *end_of_log is set at
 * the first record that is torn or fails its checksum. */
static int replay_segment(fr_store_t *s, const uint8_t *p, size_t n, uint64_t seq, MDB_txn **txn,
                          size_t *ops, uint64_t *last_txnid, bool *end_of_log, const char **why)
{
    MDB_dbi dbis[FR_WAL_DBS] = {s->meta, s->rows, s->sources};
    size_t off = 0;
    while (off < n) {
        uint64_t txnid;
        const uint8_t *payload;
        size_t plen, rlen;
        int pr = fr_wal_rec_parse(p + off, n - off, &txnid, &payload, &plen, &rlen);
        if (pr != FR_WAL_REC_OK || txnid <= *last_txnid) {
            size_t later = pr != FR_WAL_REC_OK ? synced_record_after(p, n, off, *last_txnid) : 0;
            if (later)
                return *why = whyf("wal.%016" PRIx64 " is damaged at byte %zu, after transaction "
                                   "%" PRIu64 ", and holds a later transaction fsynced after it "
                                   "(at byte %zu): not a torn tail. Restore a backup, or accept "
                                   "losing every write after the damage by truncating wal.%016" PRIx64
                                   " to %zu bytes and moving any later segments out of %s",
                                   seq, off, *last_txnid, later, seq, off, s->opts.path),
                       FR_E_STORAGE;
            *end_of_log = true;
            s->wal.torn_bytes += n - off;
            return FR_OK;
        }
        *last_txnid = txnid;
        off += rlen;
        if (txnid <= s->wal.ckpt.txnid)
            continue; /* already in the checkpoint */
        size_t pos = 0;
        fr_wal_op_t op;
        int r;
        while ((r = fr_wal_op_next(payload, plen, &pos, &op, why)) == 0) {
            MDB_val k = {op.klen, (void *)op.key}, v = {op.vlen, (void *)op.val};
            int mrc = op.op == FR_WAL_OP_PUT ? mdb_put(*txn, dbis[op.db], &k, &v, 0)
                                             : mdb_del(*txn, dbis[op.db], &k, NULL);
            if (mrc == MDB_NOTFOUND && op.op == FR_WAL_OP_DEL)
                mrc = MDB_SUCCESS;
            if (mrc == MDB_SUCCESS && ++*ops % REPLAY_OPS_PER_TXN == 0) {
                mrc = mdb_txn_commit(*txn);
                *txn = NULL;
                if (mrc == MDB_SUCCESS)
                    mrc = mdb_txn_begin(s->env, NULL, 0, txn);
            }
            if (mrc != MDB_SUCCESS)
                return *why = whyf("replaying wal.%016" PRIx64 ": %s", seq, mdb_strerror(mrc)),
                       fr_store_mdb_err(mrc);
        }
        if (r < 0)
            return *why = whyf("wal.%016" PRIx64 " record of transaction %" PRIu64 ": %s", seq,
                               txnid, *why),
                   FR_E_STORAGE;
        atomic_fetch_add(&s->wal.replayed, 1);
    }
    return FR_OK;
}

/* Whether segment seq starts with a well-formed record of a transaction after last_txnid. */
static bool segment_has_later_record(fr_store_t *s, uint64_t seq, uint64_t last_txnid)
{
    char p[4200];
    seg_path(s, p, sizeof p, seq);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    bool later = false;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            uint64_t txnid;
            const uint8_t *payload;
            size_t plen, rlen;
            later = fr_wal_rec_parse(m, (size_t)st.st_size, &txnid, &payload, &plen, &rlen) ==
                        FR_WAL_REC_OK &&
                    txnid > last_txnid;
            munmap(m, (size_t)st.st_size);
        }
    }
    if (fd >= 0)
        close(fd);
    return later;
}

static int replay(fr_store_t *s, uint64_t *max_seq, const char **why)
{
    uint64_t *segs;
    long nseg = list_segments(s, &segs);
    if (nseg < 0)
        return *why = whyf("cannot list %s: %s", s->opts.path, strerror(errno)), FR_E_STORAGE;
    *max_seq = nseg ? segs[nseg - 1] : 0;
    MDB_txn *txn = NULL;
    int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (mrc != MDB_SUCCESS) {
        free(segs);
        return *why = whyf("replay: %s", mdb_strerror(mrc)), fr_store_mdb_err(mrc);
    }
    int rc = FR_OK;
    size_t ops = 0;
    uint64_t last_txnid = 0;
    bool end = false;
    long end_at = -1;
    for (long i = 0; i < nseg && rc == FR_OK && !end; i++) {
        end_at = i;
        if (segs[i] < s->wal.ckpt.first_seg)
            continue; /* left over from before the checkpoint */
        char p[4200];
        seg_path(s, p, sizeof p, segs[i]);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            rc = FR_E_STORAGE;
            *why = whyf("cannot open %s: %s", p, strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        if (st.st_size > 0) {
            void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) {
                rc = FR_E_STORAGE;
                *why = whyf("cannot map %s: %s", p, strerror(errno));
            } else {
                madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
                rc = replay_segment(s, m, (size_t)st.st_size, segs[i], &txn, &ops, &last_txnid,
                                    &end, why);
                munmap(m, (size_t)st.st_size);
            }
        }
        close(fd);
    }
    /* A torn tail can only end the log: every segment but the newest was made durable before
     * the next one got a record. A bad record with well-formed records after it in a later
     * segment is damage to acknowledged writes, and replaying around it would apply the later
     * ones to a state without it: refuse, and say what the operator can choose. */
    for (long j = end_at + 1; end && rc == FR_OK && j < nseg; j++)
        if (segment_has_later_record(s, segs[j], last_txnid)) {
            rc = FR_E_STORAGE;
            *why = whyf("wal.%016" PRIx64 " is damaged after transaction %" PRIu64
                        ", and wal.%016" PRIx64 " holds later transactions: not a torn tail. "
                        "Restore a backup, or accept losing every write after the damage by "
                        "moving wal.%016" PRIx64 " and the segments after it out of %s",
                        segs[end_at], last_txnid, segs[j], segs[end_at + 1], s->opts.path);
        }
    free(segs);
    if (rc == FR_OK && txn) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
        if (mrc != MDB_SUCCESS)
            rc = fr_store_mdb_err(mrc), *why = whyf("replay commit: %s", mdb_strerror(mrc));
    }
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int fr_wal_start(fr_store_t *s, const char **why)
{
    fr_wal_t *wl = &s->wal;
    if (!log_in_play(s))
        return FR_OK;
    wl->dir_fd = open(s->opts.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (wl->dir_fd < 0)
        return *why = whyf("cannot open %s: %s", s->opts.path, strerror(errno)), FR_E_STORAGE;
    uint64_t max_seq = 0;
    if (wl->has_ckpt) {
        int rc = replay(s, &max_seq, why);
        if (rc != FR_OK)
            return rc;
    }
    if (!s->opts.wal) {
        /* Going on without the log. Every step leaves a directory the next open recovers from,
         * whenever a crash stops it: the replayed state is made durable and becomes the
         * checkpoint (its first segment past every existing one, so none is replayed again),
         * then the segments go, then the checkpoint, before any write can reuse the pages it
         * protects. (Removing the old checkpoint first left segments no open would accept;
         * removing the segments first, an old checkpoint that would roll the replay back.) */
        fr_wal_ckpt_t c;
        MDB_txn *snap = NULL;
        char p[4200];
        path_of(s, p, sizeof p, "freshet.ckpt");
        int bad = ckpt_capture(s, &c, &snap) != 0;
        if (snap)
            mdb_txn_abort(snap); /* nothing writes until this open returns */
        if (!bad) {
            c.first_seg = max_seq + 1;
            bad = mdb_env_sync(s->env, 1) != MDB_SUCCESS || ckpt_write(s, &c) != 0 ||
                  fr_fault_hit(FR_FAULT_STORE) || unlink_segments_below(s, UINT64_MAX) != 0 ||
                  fsync(wl->dir_fd) != 0 || fr_fault_hit(FR_FAULT_STORE) ||
                  unlink(p) != 0 || fsync(wl->dir_fd) != 0;
        }
        if (bad)
            return *why = whyf("cannot retire the write-ahead log of %s: %s", s->opts.path,
                               strerror(errno)),
                   FR_E_STORAGE;
        mdb_txn_abort(wl->pin);
        wl->pin = NULL;
        return FR_OK;
    }
    wl->on = true;
    wl->fsync_each = s->opts.durability == FR_DURABILITY_SYNC;
    wl->ckpt_bytes = s->opts.wal_checkpoint_bytes ? s->opts.wal_checkpoint_bytes : (16u << 20);
    wl->seg_seq = max_seq; /* the checkpoint opens max_seq + 1 */
    if (fr_wal_checkpoint(s) != FR_OK) {
        wl->on = false;
        return *why = whyf("cannot write the first checkpoint in %s: %s", s->opts.path,
                           strerror(errno)),
               FR_E_STORAGE;
    }
    if (pthread_create(&wl->thread, NULL, checkpointer_main, s) != 0) {
        wl->on = false;
        return *why = "cannot start the checkpointer thread", FR_E_INTERNAL;
    }
    wl->thread_on = true;
    return FR_OK;
}

void fr_wal_close(fr_store_t *s)
{
    fr_wal_t *wl = &s->wal;
    if (wl->on)
        fr_wal_checkpoint(s);
    if (wl->thread_on) {
        pthread_mutex_lock(&wl->lock);
        wl->stop = true;
        pthread_cond_broadcast(&wl->cond);
        pthread_mutex_unlock(&wl->lock);
        pthread_join(wl->thread, NULL);
        wl->thread_on = false;
    }
    if (wl->pin)
        mdb_txn_abort(wl->pin);
    wl->pin = NULL;
    if (wl->seg_fd >= 0)
        close(wl->seg_fd);
    if (wl->dir_fd >= 0)
        close(wl->dir_fd);
    wl->seg_fd = wl->dir_fd = -1;
    wl->on = false;
}
