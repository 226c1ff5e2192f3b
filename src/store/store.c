/* Opening and closing the LMDB environment, the published registry, info and sync. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/buf.h"
#include "freshet/err.h"
#include "store_int.h"

int fr_store_mdb_err(int mdb_rc)
{
    switch (mdb_rc) {
    case MDB_SUCCESS:
        return FR_OK;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return FR_E_STORAGE_FULL;
    case ENOMEM:
        return FR_E_NOMEM;
    case MDB_READERS_FULL:
        return FR_E_BUSY;
    default:
        return FR_E_STORAGE;
    }
}

void fr_store_vstat_key(uint8_t out[FR_VSTAT_KEY_LEN], uint32_t view_id)
{
    memcpy(out, "vstat", 5);
    fr_put_be32(out + 5, view_id);
}

static _Thread_local char why_buf[256];

/* Refuses a format this build cannot read, before anything is written to the directory.
 * "format_version" is a big-endian u32; a record of another size is corrupt (not "version 0"). */
static int check_format(fr_store_t *s, MDB_txn *txn, const char **why)
{
    MDB_val k = {14, "format_version"}, v;
    if (mdb_get(txn, s->meta, &k, &v) != MDB_SUCCESS)
        return FR_OK;
    if (v.mv_size != 4) {
        snprintf(why_buf, sizeof why_buf,
                 "meta format_version: %zu bytes, expected 4 (the meta record is corrupt)",
                 v.mv_size);
        *why = why_buf;
        return FR_E_STORAGE;
    }
    uint32_t fmt = fr_get_be32(v.mv_data);
    if (fmt < FR_STORE_FORMAT_OLDEST || fmt > FR_STORE_FORMAT_VERSION) {
        snprintf(why_buf, sizeof why_buf, "data format version %u, this build reads %u to %u",
                 fmt, FR_STORE_FORMAT_OLDEST, FR_STORE_FORMAT_VERSION);
        *why = why_buf;
        return FR_E_INCOMPATIBLE;
    }
    return FR_OK;
}

/* A stored registry was written by fr_registry_to_json, so every view has its id. The parser
 * leaves a missing one 0 for fr_registry_merge to assign (a user's file), but merge keeps the ids
 * of stored views: views without one would all write under key prefix 0, each reading the
 * others' rows as its own. */
static int check_stored_ids(const fr_registry_t *reg, const char **why)
{
    for (uint32_t i = 0; i < reg->view_count; i++)
        if (reg->views[i].id == 0) {
            snprintf(why_buf, sizeof why_buf,
                     "stored registry: views[%u] (\"%s\") has no id (the meta record is corrupt)",
                     i, reg->views[i].name);
            *why = why_buf;
            return FR_E_STORAGE;
        }
    return FR_OK;
}

/* "write_seq" is a big-endian u64 (write.c); a record of another size is corrupt, and reading
 * it as 0 would hand out sequence numbers the rows already hold. */
static int load_write_seq(fr_store_t *s, MDB_txn *txn, const char **why)
{
    MDB_val k = {9, "write_seq"}, v;
    if (mdb_get(txn, s->meta, &k, &v) != MDB_SUCCESS)
        return FR_OK;
    if (v.mv_size != 8) {
        snprintf(why_buf, sizeof why_buf,
                 "meta write_seq: %zu bytes, expected 8 (the meta record is corrupt)", v.mv_size);
        *why = why_buf;
        return FR_E_STORAGE;
    }
    s->write_seq = fr_get_be64(v.mv_data);
    return FR_OK;
}

static int load_meta(fr_store_t *s, const char **why)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (mrc != MDB_SUCCESS) {
        *why = mdb_strerror(mrc);
        return fr_store_mdb_err(mrc);
    }
    /* the format was checked by init_dbs, before anything was written */
    int rc = load_write_seq(s, txn, why);
    if (rc != FR_OK)
        goto out;
    MDB_val k = {8, "registry"}, v;
    fr_registry_t *reg = NULL;
    if (mdb_get(txn, s->meta, &k, &v) == MDB_SUCCESS) {
        rc = fr_registry_parse(v.mv_data, v.mv_size, &reg, why);
        if (rc != FR_OK)
            goto out;
        rc = check_stored_ids(reg, why);
        if (rc != FR_OK) {
            fr_registry_release(reg);
            goto out;
        }
    } else {
        reg = fr_registry_new();
        if (!reg) {
            rc = FR_E_NOMEM;
            goto out;
        }
    }
    s->registry = reg;
out:
    mdb_txn_abort(txn);
    return rc;
}

static int init_dbs(fr_store_t *s, const char **why)
{
    MDB_txn *txn;
    unsigned flags = s->opts.read_only ? 0 : MDB_CREATE;
    int mrc = mdb_txn_begin(s->env, NULL, s->opts.read_only ? MDB_RDONLY : 0, &txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "meta", flags, &s->meta);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "rows", flags, &s->rows);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "sources", flags, &s->sources);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, NULL, 0, &s->main_dbi);
    if (mrc == MDB_SUCCESS) {
        int rc = check_format(s, txn, why);
        if (rc != FR_OK) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    if (mrc == MDB_SUCCESS && !s->opts.read_only) {
        uint8_t fmt[4];
        fr_put_be32(fmt, FR_STORE_FORMAT_VERSION);
        MDB_val k = {14, "format_version"}, v = {4, fmt};
        mrc = mdb_put(txn, s->meta, &k, &v, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) { /* v is the stored version: upgrade an older one we read */
            uint32_t old = v.mv_size == 4 ? fr_get_be32(v.mv_data) : 0;
            mrc = MDB_SUCCESS;
            if (old >= FR_STORE_FORMAT_OLDEST && old < FR_STORE_FORMAT_VERSION) {
                v = (MDB_val){4, fmt};
                mrc = mdb_put(txn, s->meta, &k, &v, 0);
            }
        }
    }
    if (mrc == MDB_SUCCESS)
        return fr_store_mdb_err(mdb_txn_commit(txn));
    *why = mdb_strerror(mrc);
    mdb_txn_abort(txn);
    return fr_store_mdb_err(mrc);
}

/* One writing process per directory. LMDB itself serialises writers across processes, but the
 * store keeps per-process state next to it (the write sequence, the registry, the sweeper's
 * position): a second freshetd on the same directory would hand out write_seq values the first
 * one also uses. An flock on DIR/freshet.lock, held until close, refuses it up front; the lock
 * file holds the owner's pid for the message. The kernel drops the lock when a process dies, so
 * a crash never leaves a stale lock behind. */
static int lock_dir(fr_store_t *s, const char *dir, const char **why)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/freshet.lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        snprintf(why_buf, sizeof why_buf, "cannot open %s/freshet.lock: %s", dir, strerror(errno));
        *why = why_buf;
        return FR_E_STORAGE;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        if (err == EWOULDBLOCK)
            snprintf(why_buf, sizeof why_buf,
                     "data directory %s is in use by another process (pid %s); one freshetd per "
                     "directory", dir, pid[0] ? pid : "?");
        else
            snprintf(why_buf, sizeof why_buf, "cannot lock %s/freshet.lock: %s", dir, strerror(err));
        *why = why_buf;
        close(s->lock_fd);
        s->lock_fd = -1;
        return FR_E_STORAGE;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* the pid only improves the refusal message: a failure to write it is not an error */
    if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)len, 0) != len)
        (void)ftruncate(s->lock_fd, 0);
    return FR_OK;
}

/* opts.map_hugepages. Why: an export's lookups in a 6.6 GB map (1M entities x 10 versions x 2
 * views) spent a quarter of their CPU on TLB misses, each a two-level page table walk under a
 * hypervisor; with the map in 2 MB pages the server's CPU per label fell 2.4 -> 1.8 us
 * (bench/RESULTS.md). The kernel reads a faulting page's whole 2 MB in and maps it with one entry
 * where the filesystem's page cache has large folios (ext4 on Linux 6.18 here); elsewhere the
 * advice changes nothing. */
static void map_advise(fr_store_t *s)
{
    MDB_envinfo ei;
    s->map_huge = 0;
    if (!s->opts.map_hugepages)
        return;
    s->map_huge = -1;
    if (s->map_base && mdb_env_info(s->env, &ei) == MDB_SUCCESS &&
        madvise((void *)s->map_base, ei.me_mapsize, MADV_HUGEPAGE) == 0)
        s->map_huge = 1;
}

int fr_store_open(const fr_store_opts_t *opts, fr_store_t **out, const char **why)
{
    static const char *none = "";
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = none;
    fr_store_t *s = fr_calloc(1, sizeof *s);
    if (!s)
        return FR_E_NOMEM;
    s->opts = *opts;
    /* The log uses the directory for as long as the store is open (checkpoints, segments), so
     * the store keeps its own copy instead of the caller's pointer. */
    s->path = strdup(opts->path ? opts->path : "");
    if (!s->path) {
        free(s);
        return FR_E_NOMEM;
    }
    s->opts.path = s->path;
    opts = &s->opts;
    s->lock_fd = -1;
    s->clock = opts->clock ? opts->clock : fr_clock_system();
    pthread_mutex_init(&s->reg_lock, NULL);
    s->wal.dir_fd = s->wal.seg_fd = -1;
    pthread_mutex_init(&s->wal.lock, NULL);
    pthread_cond_init(&s->wal.cond, NULL);
    int rc;
    if (!opts->read_only && mkdir(opts->path, 0750) != 0 && errno != EEXIST) {
        snprintf(why_buf, sizeof why_buf, "cannot create %s: %s", opts->path, strerror(errno));
        *why = why_buf;
        rc = FR_E_STORAGE;
        goto fail;
    }
    if (!opts->read_only && (rc = lock_dir(s, opts->path, why)) != FR_OK)
        goto fail;
    if ((rc = fr_wal_recover_prepare(s, why)) != FR_OK)
        goto fail;
    int mrc = mdb_env_create(&s->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(s->env, 8);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(s->env, opts->map_size ? opts->map_size : (1ULL << 32));
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxreaders(s->env, opts->max_readers ? opts->max_readers : 126);
    /* With the write-ahead log LMDB never fsyncs at commit: the log does (wal.h). Without it,
     * async fsyncs data pages per commit and the meta page only by the periodic sync, so a crash
     * can undo the last commits but never corrupts (LMDB's MDB_NOMETASYNC contract). */
    bool wal = opts->wal && opts->durability != FR_DURABILITY_NOSYNC && !opts->read_only;
    s->opts.wal = wal;
    unsigned flags = MDB_NOTLS | (opts->read_only ? MDB_RDONLY : 0);
    if (wal)
        flags |= MDB_NOSYNC;
    else if (opts->durability == FR_DURABILITY_ASYNC)
        flags |= MDB_NOMETASYNC;
    else if (opts->durability == FR_DURABILITY_NOSYNC)
        flags |= MDB_NOSYNC;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open(s->env, opts->path, flags, 0640);
    if (mrc != MDB_SUCCESS) {
        snprintf(why_buf, sizeof why_buf, "cannot open LMDB environment %s: %s", opts->path,
                 mdb_strerror(mrc));
        *why = why_buf;
        rc = fr_store_mdb_err(mrc);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* clear slots of crashed readers */
    rc = fr_wal_pin_open(s, why);
    if (rc == FR_OK)
        rc = init_dbs(s, why);
    if (rc == FR_OK)
        rc = fr_wal_start(s, why); /* replays what the log holds after the checkpoint */
    if (rc == FR_OK)
        rc = load_meta(s, why);
    if (rc == FR_OK) {
        fr_pagewalk_init(s);
        map_advise(s);
    }
    if (rc != FR_OK)
        goto fail;
    *out = s;
    return FR_OK;
fail:
    if (s->env) {
        fr_wal_close(s);
        mdb_env_close(s->env);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->reg_lock);
    pthread_mutex_destroy(&s->wal.lock);
    pthread_cond_destroy(&s->wal.cond);
    fr_registry_release(s->registry);
    free(s->path);
    free(s);
    return rc;
}

void fr_store_close(fr_store_t *s)
{
    if (!s)
        return;
    fr_wal_close(s); /* a last checkpoint: the next open has nothing to replay */
    if (!s->opts.read_only)
        mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    fr_registry_release(s->registry);
    pthread_mutex_destroy(&s->reg_lock);
    pthread_mutex_destroy(&s->wal.lock);
    pthread_cond_destroy(&s->wal.cond);
    free(s->path);
    free(s);
}

fr_registry_t *fr_store_registry(fr_store_t *s)
{
    pthread_mutex_lock(&s->reg_lock);
    fr_registry_t *r = fr_registry_ref(s->registry);
    pthread_mutex_unlock(&s->reg_lock);
    return r;
}

const fr_clock_t *fr_store_clock(const fr_store_t *s) { return s->clock; }
fr_durability_t fr_store_durability(const fr_store_t *s) { return s->opts.durability; }

int fr_store_sync(fr_store_t *s)
{
    return s->wal.on ? fr_wal_sync(s) : fr_store_mdb_err(mdb_env_sync(s->env, 1));
}

int fr_store_checkpoint(fr_store_t *s) { return fr_wal_checkpoint(s); }

/* mdb_reader_list's callback: one call per line, a header first, then a line per live reader
 * slot ("(no active readers)" alone when there are none). */
static int count_reader_line(const char *msg, void *ctx)
{
    if (!strstr(msg, "(no active readers)"))
        ++*(unsigned *)ctx;
    return 0;
}

int fr_store_info(fr_store_t *s, fr_store_info_t *out)
{
    MDB_envinfo ei;
    MDB_stat st;
    int mrc = mdb_env_info(s->env, &ei);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_stat(s->env, &st);
    if (mrc != MDB_SUCCESS)
        return fr_store_mdb_err(mrc);
    out->map_size = ei.me_mapsize;
    out->page_size = st.ms_psize;
    out->map_used = (uint64_t)(ei.me_last_pgno + 1) * st.ms_psize;
    out->last_txn = ei.me_last_txnid;
    out->max_readers = ei.me_maxreaders;
    /* me_numreaders is the most slots ever used (LMDB never lowers it): count the live ones */
    unsigned lines = 0;
    if (mdb_reader_list(s->env, count_reader_line, &lines) >= 0)
        out->readers_used = lines > 0 ? lines - 1 : 0; /* the first line is a header */
    out->readers_high_water = ei.me_numreaders;
    out->write_seq = __atomic_load_n(&s->write_seq, __ATOMIC_RELAXED);
    out->wal = s->wal.on;
    out->map_hugepages = s->map_huge;
    out->wal_bytes = s->wal.since_ckpt;
    out->wal_records = atomic_load(&s->wal.appended);
    out->wal_checkpoints = atomic_load(&s->wal.checkpoints);
    out->wal_checkpoint_failures = atomic_load(&s->wal.ckpt_failures);
    pthread_mutex_lock(&s->wal.lock);
    out->wal_checkpoint_txn = s->wal.ckpt_txnid;
    pthread_mutex_unlock(&s->wal.lock);
    out->wal_replayed = atomic_load(&s->wal.replayed);
    out->wal_restored = s->wal.restored;
    out->wal_closed = __atomic_load_n(&s->wal.broken, __ATOMIC_RELAXED);
    return FR_OK;
}

/* The text of a failure writing a backup into dest. LMDB turns a short write (a full disk) into
 * EIO; a destination with no room left is named as such, not as an I/O fault. */
static const char *dest_strerror(const char *dest, int mrc)
{
    struct statvfs vfs;
    if (mrc == EIO && statvfs(dest, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20))
        mrc = ENOSPC;
    return mdb_strerror(mrc);
}

/* The compacting backup: every database copied in key order into a new environment with
 * MDB_APPEND, which fills each leaf page before starting the next. LMDB's own compacting copy
 * (MDB_CP_COMPACT) drops free pages but keeps every page as it is, and leaves built by random
 * inserts are about 70% full; this copy of the same data is about 30% smaller. Rows written before
 * data format 2 get their float runs packed on the way (fr_mp_pack_runs; newer rows already are).
 * One read snapshot, so the copy is consistent while writers go on; write transactions of
 * REPACK_BATCH entries keep the copy's dirty pages bounded. */
#define REPACK_BATCH 20000
static int repack_copy(fr_store_t *s, const char *dest, const char **why)
{
    static const char *const names[] = {"meta", "rows", "sources"};
    MDB_dbi src[] = {s->meta, s->rows, s->sources};
    MDB_envinfo ei;
    MDB_env *dst = NULL;
    MDB_txn *rtxn = NULL, *w = NULL;
    MDB_cursor *cur = NULL;
    uint8_t *pack = NULL; /* a row value with its payload packed */
    size_t pack_cap = 0;
    const char *step = "open the copy";
    int mrc = mdb_env_info(s->env, &ei);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_create(&dst);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(dst, 8);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(dst, ei.me_mapsize);
    if (mrc == MDB_SUCCESS)
        /* synced once at the end. No lock file: the copy is private to this thread, and LMDB
         * writes into a lock file's map, where a full disk is a SIGBUS that kills the server
         * instead of an error (the data pages go through pwrite, which returns ENOSPC). */
        mrc = mdb_env_open(dst, dest, MDB_NOSYNC | MDB_NOLOCK, 0640);
    bool from_store = false; /* the failure was reading the store, not writing the copy */
    if (mrc == MDB_SUCCESS) {
        step = "read the store";
        mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn);
        from_store = mrc != MDB_SUCCESS;
    }
    for (size_t d = 0; d < sizeof names / sizeof names[0] && mrc == MDB_SUCCESS; d++) {
        step = "write the copy";
        MDB_dbi out;
        mrc = mdb_txn_begin(dst, NULL, 0, &w);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_dbi_open(w, names[d], MDB_CREATE, &out);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_open(rtxn, src[d], &cur);
        MDB_val k, v;
        size_t n = 0;
        int crc = mrc == MDB_SUCCESS ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
        for (; crc == MDB_SUCCESS && mrc == MDB_SUCCESS;
             crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            MDB_val pv = v; /* a row: written_at u64 · payload */
            if (src[d] == s->rows && v.mv_size > 8) {
                size_t plen = fr_store_pack_payload(&pack, &pack_cap, 8,
                                                    (const uint8_t *)v.mv_data + 8, v.mv_size - 8);
                if (plen) { /* else (no memory, or not a row payload): copied as it is */
                    memcpy(pack, v.mv_data, 8);
                    pv = (MDB_val){8 + plen, pack};
                }
            }
            mrc = mdb_put(w, out, &k, &pv, MDB_APPEND);
            if (mrc == MDB_SUCCESS && ++n % REPACK_BATCH == 0) {
                mrc = mdb_txn_commit(w);
                w = NULL;
                if (mrc == MDB_SUCCESS)
                    mrc = mdb_txn_begin(dst, NULL, 0, &w);
            }
        }
        if (mrc == MDB_SUCCESS && crc != MDB_NOTFOUND) {
            mrc = crc;
            from_store = true;
            step = "read the store";
        }
        if (cur)
            mdb_cursor_close(cur);
        cur = NULL;
        if (mrc == MDB_SUCCESS)
            mrc = mdb_txn_commit(w);
        else if (w)
            mdb_txn_abort(w);
        w = NULL;
    }
    free(pack);
    if (rtxn)
        mdb_txn_abort(rtxn);
    if (mrc == MDB_SUCCESS) {
        step = "sync the copy";
        mrc = mdb_env_sync(dst, 1);
    }
    if (dst)
        mdb_env_close(dst);
    if (mrc != MDB_SUCCESS) {
        snprintf(why_buf, sizeof why_buf, "dest: cannot %s in %s: %s", step, dest,
                 dest_strerror(dest, mrc));
        *why = why_buf;
        return from_store ? fr_store_mdb_err(mrc) : FR_E_IO;
    }
    return FR_OK;
}

/* Removes what a failed backup left in dest (the directory itself stays). */
static void backup_cleanup(const char *dest)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dest, files[i]);
        unlink(path);
    }
}

static int backup_into(fr_store_t *s, const char *dest, bool compact, uint64_t *bytes,
                       const char **why);

int fr_store_backup(fr_store_t *s, const char *dest, bool compact, uint64_t *bytes, const char **why)
{
    if (mkdir(dest, 0750) != 0 && errno != EEXIST) {
        snprintf(why_buf, sizeof why_buf, "dest: cannot create %s: %s", dest, strerror(errno));
        *why = why_buf;
        return FR_E_IO;
    }
    /* Two backups into one directory would both find it empty, write the same data.mdb, and the
     * loser's cleanup would delete the winner's copy: the directory is claimed first. */
    char lock[4200];
    snprintf(lock, sizeof lock, "%s/backup.lock", dest);
    int lfd;
    for (;;) {
        lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
            snprintf(why_buf, sizeof why_buf, "dest: %s: %s", dest,
                     lfd < 0 ? strerror(errno) : "another backup into it is running");
            *why = why_buf;
            if (lfd >= 0)
                close(lfd);
            return FR_E_IO;
        }
        /* the lock is the file still at that path, not one a finishing backup just removed */
        struct stat held, now;
        if (fstat(lfd, &held) == 0 && stat(lock, &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev)
            break;
        close(lfd);
    }
    int rc = backup_into(s, dest, compact, bytes, why);
    unlink(lock);
    close(lfd);
    return rc;
}

static int backup_into(fr_store_t *s, const char *dest, bool compact, uint64_t *bytes,
                       const char **why)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dest);
    struct stat st;
    if (stat(path, &st) == 0) {
        snprintf(why_buf, sizeof why_buf, "dest: %s already holds a store (data.mdb)", dest);
        *why = why_buf;
        return FR_E_IO;
    }
    if (compact) {
        int rc = repack_copy(s, dest, why);
        if (rc != FR_OK) {
            backup_cleanup(dest);
            return rc;
        }
        snprintf(path, sizeof path, "%s/lock.mdb", dest); /* a copy is just data.mdb, as LMDB's */
        unlink(path);
        snprintf(path, sizeof path, "%s/data.mdb", dest);
    } else {
        int mrc = mdb_env_copy2(s->env, dest, 0);
        if (mrc != MDB_SUCCESS) {
            snprintf(why_buf, sizeof why_buf, "dest: copy to %s failed: %s", dest,
                     dest_strerror(dest, mrc));
            *why = why_buf;
            backup_cleanup(dest); /* a partial data.mdb is not a store, and blocks a retry */
            return mrc == EEXIST || mrc == ENOENT || mrc == EACCES || mrc == ENOSPC || mrc == EIO
                       ? FR_E_IO
                       : FR_E_STORAGE;
        }
    }
    if (stat(path, &st) != 0) {
        snprintf(why_buf, sizeof why_buf, "dest: the copy %.200s is missing after the backup: %s", path,
                 strerror(errno));
        *why = why_buf;
        return FR_E_IO;
    }
    *bytes = (uint64_t)st.st_size;
    return FR_OK;
}

int fr_store_reader_check(fr_store_t *s, int *cleared)
{
    *cleared = 0;
    return fr_store_mdb_err(mdb_reader_check(s->env, cleared));
}
