/* Helpers shared by the store tests: a temporary store directory with a fixed clock, registry
 * application, msgpack row building and a deterministic PRNG. Header-only (static inline) so every
 * test binary stays one file plus this. */
#ifndef FR_TESTS_STORE_TEST_UTIL_H
#define FR_TESTS_STORE_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <lmdb.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "freshet/err.h"
#include "proto/mp.h"
#include "store/store.h"

/* 2026-11-28T10:00:00Z, a plausible "now" for every test. */
#define ST_NOW_US 1795860000000000LL
#define ST_SEC 1000000LL

typedef struct {
    char dir[64];
    fr_clock_t clock;
    fr_store_t *store;
    uint64_t map_size;
    bool wal;                /* open with the write-ahead log (test_wal.c) */
    uint64_t wal_ckpt_bytes; /* its checkpoint size (0: the default) */
    uint64_t wal_record_max; /* its record limit (0: the default) */
    bool sync;               /* sync durability (an fsync per commit); async otherwise */
    bool hugepages;          /* opts.map_hugepages */
} st_env_t;

static inline void st_open_again(st_env_t *e)
{
    fr_store_opts_t o = {0};
    o.path = e->dir;
    o.map_size = e->map_size ? e->map_size : (64u << 20);
    o.clock = &e->clock;
    o.durability = e->sync ? FR_DURABILITY_SYNC : FR_DURABILITY_ASYNC; /* most need no fsync */
    o.wal = e->wal;
    o.wal_checkpoint_bytes = e->wal_ckpt_bytes;
    o.wal_record_max = e->wal_record_max;
    o.map_hugepages = e->hugepages;
    const char *why = NULL;
    int rc = fr_store_open(&o, &e->store, &why);
    cr_assert_eq(rc, FR_OK, "fr_store_open(%s): %s (%s)", e->dir, fr_err_name(rc), why ? why : "");
}

/* Creates a fresh directory under /tmp and opens a store there with a fixed clock at now_us. */
static inline void st_open(st_env_t *e, int64_t now_us, uint64_t map_size)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/fr_store_test_XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir), "mkdtemp");
    fr_clock_fixed_init(&e->clock, now_us);
    e->map_size = map_size;
    st_open_again(e);
}

/* Closes the store and removes its directory with everything LMDB put there. */
static inline void st_close(st_env_t *e)
{
    fr_store_close(e->store);
    e->store = NULL;
    DIR *d = opendir(e->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", e->dir, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(e->dir);
}

/* Applies a registry document in its own group commit; returns the fr_err_t. */
static inline int st_apply_registry(st_env_t *e, const char *json, const char **why)
{
    fr_wtxn_t *w;
    int rc = fr_store_write_begin(e->store, &w);
    cr_assert_eq(rc, FR_OK, "write_begin: %s", fr_err_name(rc));
    fr_registry_diff_t diff;
    const char *dummy = NULL;
    rc = fr_store_write_registry(w, json, strlen(json), false, &diff, why ? why : &dummy);
    if (rc != FR_OK) {
        fr_store_write_abort(w);
        return rc;
    }
    return fr_store_write_commit(w);
}

/* The current view called name (the registry reference is kept in *reg; release it). */
static inline const fr_view_def_t *st_view(st_env_t *e, fr_registry_t **reg, const char *name)
{
    *reg = fr_store_registry(e->store);
    const fr_view_def_t *v = fr_registry_view(*reg, name);
    cr_assert_not_null(v, "view %s", name);
    return v;
}

/* A msgpack row payload built with msgpack-c; data is owned by sb (msgpack_sbuffer_destroy). */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} st_row_t;

static inline void st_row_init(st_row_t *r, uint32_t count)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&r->pk, count);
}

static inline void st_row_fini(st_row_t *r) { msgpack_sbuffer_destroy(&r->sb); }

/* Applies one batch in its own group commit. */
static inline int st_write_batch(st_env_t *e, const fr_write_batch_t *b, fr_write_result_t *res)
{
    fr_wtxn_t *w;
    int rc = fr_store_write_begin(e->store, &w);
    cr_assert_eq(rc, FR_OK);
    rc = fr_store_write_apply(w, b, res);
    if (rc != FR_OK) {
        fr_store_write_abort(w);
        return rc;
    }
    return fr_store_write_commit(w);
}

static inline fr_view_stat_t st_view_stat(st_env_t *e, uint32_t view_id)
{
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_view_stat_t st;
    cr_assert_eq(fr_store_view_stat(r, view_id, &st), FR_OK);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    return st;
}

/* splitmix64: deterministic per seed, so a failing seed can be replayed. */
static inline uint64_t st_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t st_below(uint64_t *s, uint64_t n) { return st_rand(s) % n; }

/* A store directory opened with plain LMDB (the store closed), for tests that read or plant
 * entries behind the store's back: the environment, a transaction and database `db` in it. */
static inline void st_raw_begin(const char *dir, bool read_only, const char *db, MDB_env **env,
                                MDB_txn **txn, MDB_dbi *dbi)
{
    cr_assert_eq(mdb_env_create(env), 0);
    mdb_env_set_maxdbs(*env, 8);
    mdb_env_set_mapsize(*env, 64u << 20);
    cr_assert_eq(mdb_env_open(*env, dir, read_only ? MDB_RDONLY | MDB_NOLOCK : 0, 0640), 0, "%s",
                 dir);
    cr_assert_eq(mdb_txn_begin(*env, NULL, read_only ? MDB_RDONLY : 0, txn), 0);
    cr_assert_eq(mdb_dbi_open(*txn, db, 0, dbi), 0, "%s in %s", db, dir);
}

/* Commits (or, read-only, ends) st_raw_begin's transaction and closes the environment. */
static inline void st_raw_end(MDB_env *env, MDB_txn *txn, bool read_only)
{
    if (read_only)
        mdb_txn_abort(txn);
    else
        cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

#endif
