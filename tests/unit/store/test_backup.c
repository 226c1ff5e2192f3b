/* fr_store_backup: the compacting copy re-packs every database in key order (full leaves) and
 * must hold exactly the same entries as the store, be smaller than an exact copy after random
 * inserts, open as a store, and never overwrite an existing one. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* unshare */
#endif
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/key.h"
#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\","
    "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"pad\", \"type\": \"bytes\"}]}]}";

/* Writes n rows of random entities (several versions each) in batches of 500, with a source. */
static void fill(st_env_t *e, size_t n)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    enum { B = 500 };
    static char ents[B][16];
    static st_row_t pay[B];
    static fr_write_row_t rows[B];
    static uint8_t pad[120];
    uint64_t rng = 12345;
    for (size_t done = 0; done < n; done += B) {
        for (size_t i = 0; i < B; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            snprintf(ents[i], sizeof ents[i], "e%06llu", (unsigned long long)((rng >> 33) % 20000));
            st_row_init(&pay[i], 2);
            msgpack_pack_int64(&pay[i].pk, (int64_t)(done + i));
            msgpack_pack_bin(&pay[i].pk, sizeof pad);
            msgpack_pack_bin_body(&pay[i].pk, pad, sizeof pad);
            rows[i] = (fr_write_row_t){.view = v,
                                       .entity = (const uint8_t *)ents[i],
                                       .entity_len = (uint16_t)strlen(ents[i]),
                                       .event_ts_us = ST_NOW_US - (int64_t)(rng >> 40),
                                       .values = (const uint8_t *)pay[i].sb.data,
                                       .values_len = (uint32_t)pay[i].sb.size,
                                       .offset = (int64_t)(done + i),
                                       .has_offset = true};
        }
        fr_write_batch_t b = {.source = "stream", .partition = 1, .rows = rows, .row_count = B};
        fr_write_result_t res;
        cr_assert_eq(st_write_batch(e, &b, &res), FR_OK);
        for (size_t i = 0; i < B; i++)
            st_row_fini(&pay[i]);
    }
    fr_registry_release(reg);
}

/* Every entry of the named databases of the environments in dirs a and b, compared in order. */
static size_t compare_envs(const char *a, const char *b)
{
    static const char *const names[] = {"meta", "rows", "sources"};
    MDB_env *env[2];
    MDB_txn *txn[2];
    const char *dirs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mdb_env_create(&env[i]), 0);
        mdb_env_set_maxdbs(env[i], 8);
        mdb_env_set_mapsize(env[i], 64u << 20);
        cr_assert_eq(mdb_env_open(env[i], dirs[i], MDB_RDONLY | MDB_NOLOCK, 0640), 0, "%s", dirs[i]);
        cr_assert_eq(mdb_txn_begin(env[i], NULL, MDB_RDONLY, &txn[i]), 0);
    }
    size_t entries = 0;
    for (size_t d = 0; d < 3; d++) {
        MDB_dbi dbi[2];
        MDB_cursor *cur[2];
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(mdb_dbi_open(txn[i], names[d], 0, &dbi[i]), 0, "%s in %s", names[d], dirs[i]);
            cr_assert_eq(mdb_cursor_open(txn[i], dbi[i], &cur[i]), 0);
        }
        MDB_val k[2], v[2];
        int rc0 = mdb_cursor_get(cur[0], &k[0], &v[0], MDB_FIRST);
        int rc1 = mdb_cursor_get(cur[1], &k[1], &v[1], MDB_FIRST);
        while (rc0 == 0 && rc1 == 0) {
            cr_assert(k[0].mv_size == k[1].mv_size && !memcmp(k[0].mv_data, k[1].mv_data, k[0].mv_size),
                      "%s: keys differ at entry %zu", names[d], entries);
            cr_assert(v[0].mv_size == v[1].mv_size && !memcmp(v[0].mv_data, v[1].mv_data, v[0].mv_size),
                      "%s: values differ at entry %zu", names[d], entries);
            entries++;
            rc0 = mdb_cursor_get(cur[0], &k[0], &v[0], MDB_NEXT);
            rc1 = mdb_cursor_get(cur[1], &k[1], &v[1], MDB_NEXT);
        }
        cr_assert(rc0 == MDB_NOTFOUND && rc1 == MDB_NOTFOUND, "%s: different entry counts", names[d]);
        mdb_cursor_close(cur[0]);
        mdb_cursor_close(cur[1]);
    }
    for (int i = 0; i < 2; i++) {
        mdb_txn_abort(txn[i]);
        mdb_env_close(env[i]);
    }
    return entries;
}

static long long file_size(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s", p);
    return (long long)st.st_size;
}

static void rm_copy(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

Test(backup, compacting_copy_has_the_same_entries_in_less_space)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fill(&e, 30000);
    char packed[96], exact[96];
    snprintf(packed, sizeof packed, "%s.packed", e.dir);
    snprintf(exact, sizeof exact, "%s.exact", e.dir);
    uint64_t bytes = 0;
    const char *why = NULL;
    cr_assert_eq(fr_store_backup(e.store, packed, true, &bytes, &why), FR_OK, "%s", why);
    cr_assert_eq((long long)bytes, file_size(packed));
    cr_assert_eq(fr_store_backup(e.store, exact, false, &bytes, &why), FR_OK, "%s", why);
    size_t entries = compare_envs(e.dir, packed);
    cr_assert_gt(entries, 30000, "the rows, the registry and the source position");
    cr_assert_eq(compare_envs(e.dir, exact), entries);
    long long ps = file_size(packed), es = file_size(exact);
    cr_assert_lt(ps * 100, es * 85, "packed %lld bytes vs exact %lld", ps, es);
    char lock[128];
    snprintf(lock, sizeof lock, "%s/lock.mdb", packed);
    struct stat st;
    cr_assert_neq(stat(lock, &st), 0, "a backup is just data.mdb");

    /* never over an existing copy, and the refusal leaves it intact */
    cr_assert_eq(fr_store_backup(e.store, packed, true, &bytes, &why), FR_E_IO);
    cr_assert(strstr(why, "already holds a store"), "%s", why);
    cr_assert_eq(file_size(packed), ps);

    /* the copy opens as a store with the same data */
    st_env_t c = e;
    snprintf(c.dir, sizeof c.dir, "%s", packed);
    st_open_again(&c);
    fr_rtxn_t *r;
    int64_t off = -1;
    cr_assert_eq(fr_rtxn_new(c.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(fr_store_source_get(r, "stream", 1, &off), FR_OK);
    cr_assert_eq(off, 29999);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_store_close(c.store);
    rm_copy(packed);
    rm_copy(exact);
    st_close(&e);
}

static const char *REG_F =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"f\", \"entity\": \"user\", \"features\": ["
    "  {\"name\": \"a\", \"type\": \"float\"}, {\"name\": \"b\", \"type\": \"float\"},"
    "  {\"name\": \"c\", \"type\": \"float\"}, {\"name\": \"d\", \"type\": \"float\"},"
    "  {\"name\": \"e\", \"type\": \"float\"}]}]}";

/* One row value (written_at · payload) of dir's rows database, copied into out; returns its size. */
static size_t only_row(const char *dir, uint8_t *out, size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi rows;
    MDB_cursor *cur;
    st_raw_begin(dir, true, "rows", &env, &txn, &rows);
    cr_assert_eq(mdb_cursor_open(txn, rows, &cur), 0);
    MDB_val k, v;
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    cr_assert_leq(v.mv_size, cap);
    memcpy(out, v.mv_data, v.mv_size);
    size_t n = v.mv_size;
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_NEXT), MDB_NOTFOUND, "one row");
    mdb_cursor_close(cur);
    st_raw_end(env, txn, true);
    return n;
}

/* A store upgraded from data format 1 holds rows with plain msgpack floats: the compacting copy
 * stores them packed, with the same cells and written_at. */
Test(backup, compacting_copy_packs_rows_written_before_format_2)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG_F, NULL), FR_OK);
    fr_registry_t *reg;
    uint32_t view_id = st_view(&e, &reg, "f")->id;
    fr_registry_release(reg);
    fr_store_close(e.store);
    /* a format-1 row, put straight into LMDB: [0.5, 1.5, 2.5, 3.5, 4.5] as msgpack float32 */
    uint8_t old[8 + 1 + 5 * 5], *p = old + 8;
    uint64_t written_at = (uint64_t)ST_NOW_US - 7;
    memcpy(old, &written_at, 8);
    *p++ = 0x95;
    for (int i = 0; i < 5; i++) {
        float f = (float)i + 0.5f;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        *p++ = 0xca;
        fr_put_be32(p, bits);
        p += 4;
    }
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi rows;
    st_raw_begin(e.dir, false, "rows", &env, &txn, &rows);
    uint8_t key[FR_KEY_MAX];
    size_t klen = fr_key_encode(key, view_id, (const uint8_t *)"u1", 2, ST_NOW_US - ST_SEC, 1);
    MDB_val k = {klen, key}, v = {sizeof old, old};
    cr_assert_eq(mdb_put(txn, rows, &k, &v, 0), 0);
    st_raw_end(env, txn, false);
    st_open_again(&e);

    char packed[96];
    snprintf(packed, sizeof packed, "%s.packed", e.dir);
    uint64_t bytes = 0;
    const char *why = NULL;
    cr_assert_eq(fr_store_backup(e.store, packed, true, &bytes, &why), FR_OK, "%s", why);
    uint8_t got[64];
    size_t n = only_row(packed, got, sizeof got);
    cr_assert_eq(n, 8u + 1 + 3 + 20, "written_at + [run of 5 float32]: %zu bytes", n);
    cr_assert_eq(memcmp(got, old, 8), 0, "written_at kept");
    cr_assert_eq(got[9], 0xc7);
    cr_assert_eq(got[11], FR_MP_EXT_F32RUN);
    fr_mp_row_t a, b;
    fr_mp_item_t x, y;
    cr_assert_eq(fr_mp_row_open(&a, old + 8, sizeof old - 8), 0);
    cr_assert_eq(fr_mp_row_open(&b, got + 8, n - 8), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(fr_mp_row_next(&a, &x), 0);
        cr_assert_eq(fr_mp_row_next(&b, &y), 0);
        cr_assert_eq(y.kind, FR_MP_F32);
        cr_assert_eq(x.v.f32, y.v.f32, "cell %d", i);
    }
    cr_assert_eq(fr_mp_row_next(&b, &y), 1);
    cr_assert_eq(only_row(e.dir, got, sizeof got), sizeof old, "the store itself is untouched");
    rm_copy(packed);
    st_close(&e);
}

/* Regression: two backups into one new directory both found it empty, wrote the same data.mdb,
 * and the loser's cleanup deleted the winner's copy, which still reported success (0 bytes). A
 * backup now claims the directory with a lock (DEST/backup.lock): one already running there
 * (held here by the test) makes the other fail cleanly, writing nothing; the lock file goes when
 * the backup ends. */
Test(backup, a_second_backup_into_the_same_directory_is_refused_while_one_runs)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fill(&e, 100);
    char dest[96], lock[128], data[128];
    snprintf(dest, sizeof dest, "%s.copy", e.dir);
    snprintf(lock, sizeof lock, "%s/backup.lock", dest);
    snprintf(data, sizeof data, "%s/data.mdb", dest);
    cr_assert_eq(mkdir(dest, 0750), 0);
    int held = open(lock, O_RDWR | O_CREAT, 0640);
    cr_assert_geq(held, 0);
    cr_assert_eq(flock(held, LOCK_EX), 0, "the running backup's claim");
    uint64_t bytes = 0;
    const char *why = NULL;
    cr_assert_eq(fr_store_backup(e.store, dest, true, &bytes, &why), FR_E_IO);
    cr_assert(why && strstr(why, "another backup"), "%s", why ? why : "");
    struct stat st;
    cr_assert_neq(stat(data, &st), 0, "the refused backup wrote nothing");
    close(held); /* the other backup ended */
    cr_assert_eq(fr_store_backup(e.store, dest, true, &bytes, &why), FR_OK, "%s", why);
    cr_assert_eq((long long)bytes, file_size(dest));
    cr_assert_neq(stat(lock, &st), 0, "the lock file is removed when the backup ends");
    rm_copy(dest);
    st_close(&e);
}

/* Mounts a private 4 MiB tmpfs at dir, in a mount namespace of this test's process alone (as
 * root, or as an unprivileged user through a user namespace). */
static void private_tmpfs(const char *dir)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWNS) != 0) {
        cr_assert_eq(unshare(CLONE_NEWUSER | CLONE_NEWNS), 0,
                     "a private mount namespace needs root or user namespaces: %s", strerror(errno));
        char map[64];
        FILE *f = fopen("/proc/self/setgroups", "w");
        if (f)
            fputs("deny", f), fclose(f);
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        f = fopen("/proc/self/uid_map", "w");
        cr_assert(f && fputs(map, f) >= 0 && fclose(f) == 0, "uid_map");
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        f = fopen("/proc/self/gid_map", "w");
        cr_assert(f && fputs(map, f) >= 0 && fclose(f) == 0, "gid_map");
    }
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
    cr_assert_eq(mount("tmpfs", dir, "tmpfs", 0, "size=4m"), 0, "mount tmpfs: %s", strerror(errno));
}

/* Fills the filesystem holding path (a new file) until a write fails with ENOSPC. */
static void fill_disk(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static char block[4096];
    ssize_t w;
    while ((w = write(fd, block, sizeof block)) > 0)
        ;
    for (size_t n = 512; n; n /= 2) /* the last partial block too */
        while (write(fd, block, n) > 0)
            ;
    cr_assert_eq(errno, ENOSPC, "%s", strerror(errno));
    close(fd);
}

/* Regression: a compacting backup onto a full disk killed the server with SIGBUS (LMDB writes
 * into the copy's lock file through a map, and a page the disk has no room for faults), and a
 * failed --no-compact backup left a partial data.mdb that blocked a retry and looked like a
 * store. Now both fail with IO naming the full disk, leave no data.mdb, and a retry after space
 * is freed succeeds. */
Test(backup, a_full_destination_disk_fails_cleanly_and_a_retry_succeeds, .timeout = 60)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fill(&e, 2000);
    char mnt[96], dest[128], data[160], full[128];
    snprintf(mnt, sizeof mnt, "%s.mnt", e.dir);
    cr_assert_eq(mkdir(mnt, 0750), 0);
    private_tmpfs(mnt);
    snprintf(full, sizeof full, "%s/full", mnt);
    snprintf(dest, sizeof dest, "%s/bk", mnt);
    snprintf(data, sizeof data, "%s/data.mdb", dest);
    cr_assert_eq(mkdir(dest, 0750), 0);
    fill_disk(full);
    struct stat st;
    for (int compact = 1; compact >= 0; compact--) {
        uint64_t bytes = 0;
        const char *why = NULL;
        int rc = fr_store_backup(e.store, dest, compact, &bytes, &why);
        cr_assert_eq(rc, FR_E_IO, "compact=%d: %s (%s)", compact, fr_err_name(rc), why ? why : "");
        cr_assert(why && strstr(why, "No space left"), "compact=%d: %s", compact, why ? why : "");
        cr_assert_neq(stat(data, &st), 0, "compact=%d: no partial data.mdb left", compact);
    }
    cr_assert_eq(unlink(full), 0);
    for (int compact = 1; compact >= 0; compact--) {
        uint64_t bytes = 0;
        const char *why = NULL;
        cr_assert_eq(fr_store_backup(e.store, dest, compact, &bytes, &why), FR_OK, "compact=%d: %s",
                     compact, why ? why : "");
        cr_assert_eq((long long)bytes, file_size(dest));
        cr_assert_eq(compare_envs(e.dir, dest) > 0, true, "compact=%d: the copy holds the store",
                     compact);
        rm_copy(dest);
        cr_assert_eq(mkdir(dest, 0750), 0);
    }
    cr_assert_eq(umount(mnt), 0);
    rmdir(mnt);
    st_close(&e);
}
