/* Fuzz target: the meta records a store decodes when it opens (fr_store_open: "format_version",
 * "write_seq", "registry"; later "vstat" · view_id by reads and writes). Each input builds a fresh
 * LMDB environment in a temp dir whose meta database holds the fuzzed values, then opens it as a
 * store: the open either fails with a reason or gives a store that answers info and view-stat
 * reads and takes a write whose sequence number follows the stored one. The dir is removed after.
 *
 * Input: a flags byte (bit 0: open read-only; bit 1: with the write-ahead log; bit 2: write a row
 * after opening), then records of a selector byte, a big-endian u16 length and that many bytes
 * (cut short at the end of the input). Selector % 4: 0 format_version, 1 write_seq, 2 registry,
 * 3 any key: the bytes are a key length byte, the key, then the value. */
#include <dirent.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshet/err.h"
#include "fuzz_check.h"
#include "registry/registry.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAP_SIZE (4u << 20)

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p); /* the store keeps only files there (LMDB's, the lock, the log's) */
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Writes the records into a new environment at dir, with the databases fr_store_open expects;
 * *seq_len gets the size of the write_seq value stored (-1: none). 0, or -1 (LMDB refused: a key
 * too long or empty, nothing to fuzz). */
static int build_env(const char *dir, const uint8_t *p, size_t n, long *seq_len)
{
    *seq_len = -1;
    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_dbi meta, other;
    int mrc = mdb_env_create(&env);
    if (mrc != MDB_SUCCESS)
        return -1;
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, MAP_SIZE);
    mrc = mdb_env_open(env, dir, MDB_NOSYNC, 0640);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "rows", MDB_CREATE, &other);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, "sources", MDB_CREATE, &other);
    static const char *const names[] = {"format_version", "write_seq", "registry"};
    while (mrc == MDB_SUCCESS && n >= 3) {
        unsigned sel = p[0] % 4;
        size_t len = (size_t)p[1] << 8 | p[2];
        p += 3, n -= 3;
        if (len > n)
            len = n;
        MDB_val k, v = {len, (void *)p};
        if (sel < 3) {
            k = (MDB_val){strlen(names[sel]), (void *)names[sel]};
        } else {
            size_t klen = len ? p[0] : 0;
            if (!len || klen + 1 > len)
                break;
            k = (MDB_val){klen, (void *)(p + 1)};
            v = (MDB_val){len - 1 - klen, (void *)(p + 1 + klen)};
        }
        mrc = mdb_put(txn, meta, &k, &v, 0);
        if (k.mv_size == 9 && !memcmp(k.mv_data, "write_seq", 9))
            *seq_len = (long)v.mv_size;
        p += len, n -= len;
    }
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return mrc == MDB_SUCCESS ? 0 : -1;
}

/* One row of nils for the registry's first view: its write must take the next sequence number. */
static void write_one(fr_store_t *s, const fr_registry_t *reg)
{
    if (!reg->view_count)
        return;
    const fr_view_def_t *view = &reg->views[0];
    fr_store_info_t before;
    CHECK(fr_store_info(s, &before) == FR_OK);
    uint8_t values[3 + 65536];
    size_t len = 0;
    uint32_t n = view->feature_count;
    if (n < 16) {
        values[len++] = (uint8_t)(0x90 | n);
    } else {
        values[len++] = 0xdc;
        values[len++] = (uint8_t)(n >> 8);
        values[len++] = (uint8_t)n;
    }
    for (uint32_t i = 0; i < n && len < sizeof values; i++)
        values[len++] = 0xc0;
    fr_write_row_t row = {.view = view,
                          .entity = (const uint8_t *)"e",
                          .entity_len = 1,
                          .event_ts_us = 1,
                          .values = values,
                          .values_len = (uint32_t)len};
    const char *why = NULL;
    if (fr_store_check_row(&row, 2, 0, &why) != FR_OK)
        return;
    fr_write_batch_t batch = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    fr_wtxn_t *w;
    if (fr_store_write_begin(s, &w) != FR_OK)
        return;
    if (fr_store_write_apply(w, &batch, &res) != FR_OK) {
        fr_store_write_abort(w);
        return;
    }
    if (fr_store_write_commit(w) != FR_OK)
        return;
    CHECK(res.written == 1);
    CHECK(res.last_write_seq == before.write_seq + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    char dir[] = "/tmp/fr_fuzz_store_meta_XXXXXX";
    if (!mkdtemp(dir))
        return 0;
    long seq_len;
    if (build_env(dir, data + 1, size - 1, &seq_len) != 0) {
        remove_dir(dir);
        return 0;
    }
    fr_clock_t clock;
    fr_clock_fixed_init(&clock, 2);
    fr_store_opts_t o = {0};
    o.path = dir;
    o.map_size = MAP_SIZE;
    o.clock = &clock;
    o.durability = FR_DURABILITY_NOSYNC;
    o.read_only = data[0] & 1;
    o.wal = data[0] & 2;
    if (o.wal)
        o.durability = FR_DURABILITY_ASYNC;
    fr_store_t *s = NULL;
    const char *why = NULL;
    int rc = fr_store_open(&o, &s, &why);
    if (rc != FR_OK) {
        CHECK(why && why[0]); /* a refusal always says why */
    } else {
        CHECK(seq_len == -1 || seq_len == 8); /* another size is corrupt, not a 0 */
        fr_store_info_t info;
        CHECK(fr_store_info(s, &info) == FR_OK);
        fr_registry_t *reg = fr_store_registry(s);
        CHECK(reg);
        for (uint32_t i = 0; i < reg->view_count; i++)
            CHECK(reg->views[i].id != 0); /* stored views have their ids */
        fr_rtxn_t *r;
        if (fr_rtxn_new(s, &r) == FR_OK) {
            if (fr_rtxn_begin(r) == FR_OK) {
                for (uint32_t i = 0; i < reg->view_count; i++) {
                    fr_view_stat_t st;
                    CHECK(fr_store_view_stat(r, reg->views[i].id, &st) == FR_OK);
                }
                fr_rtxn_reset(r);
            }
            fr_rtxn_free(r);
        }
        if (!o.read_only && (data[0] & 4))
            write_one(s, reg);
        fr_registry_release(reg);
        fr_store_close(s);
    }
    remove_dir(dir);
    return 0;
}
