/* Opening a store whose meta records are corrupt (found by tests/fuzz/fuzz_store_meta.c): the open
 * is refused with a reason naming the record, never a store that misreads it. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "store_test_util.h"

/* Overwrites meta `key` of a closed store directory with plain LMDB. */
static void set_meta(const char *dir, const char *key, const void *value, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    st_raw_begin(dir, false, "meta", &env, &txn, &meta);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)value};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), MDB_SUCCESS);
    st_raw_end(env, txn, false);
}

/* fr_store_open of e's directory, expected to fail with rc and a reason holding want. */
static void open_refused(st_env_t *e, int rc, const char *want)
{
    fr_store_opts_t o = {.path = e->dir,
                         .map_size = 64u << 20,
                         .clock = &e->clock,
                         .durability = FR_DURABILITY_ASYNC};
    const char *why = NULL;
    fr_store_t *s = NULL;
    cr_assert_eq(fr_store_open(&o, &s, &why), rc, "%s", why ? why : "");
    cr_assert_null(s);
    cr_assert(why && strstr(why, want), "%s", why ? why : "(null)");
}

#define REG_ENTITY "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}], "

Test(store, regression_a_stored_registry_view_without_an_id_is_refused)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_close(e.store);
    /* two views without "id" parsed as id 0 both, so they wrote under one key prefix */
    static const char no_ids[] = REG_ENTITY
        "\"views\": [{\"name\": \"a\", \"entity\": \"user\", \"features\": [{\"name\": \"x\", "
        "\"type\": \"int64\"}]}, {\"name\": \"b\", \"entity\": \"user\", \"features\": "
        "[{\"name\": \"s\", \"type\": \"string\"}]}]}";
    set_meta(e.dir, "registry", no_ids, sizeof no_ids - 1);
    open_refused(&e, FR_E_STORAGE, "views[0] (\"a\") has no id");
    static const char ids[] = REG_ENTITY
        "\"next_view_id\": 3, \"views\": [{\"id\": 1, \"name\": \"a\", \"entity\": \"user\", "
        "\"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}, {\"id\": 2, \"name\": \"b\", "
        "\"entity\": \"user\", \"features\": [{\"name\": \"s\", \"type\": \"string\"}]}]}";
    set_meta(e.dir, "registry", ids, sizeof ids - 1);
    st_open_again(&e);
    fr_registry_t *reg = fr_store_registry(e.store);
    cr_assert_eq(reg->view_count, 2u);
    cr_assert_eq(fr_registry_view(reg, "b")->id, 2u);
    fr_registry_release(reg);
    st_close(&e);
}

Test(store, regression_a_write_seq_record_of_the_wrong_size_is_refused)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_close(e.store);
    /* read as 0 before, so the next writes reused sequence numbers already in the rows */
    static const uint8_t four[] = {0, 0, 0, 41};
    set_meta(e.dir, "write_seq", four, sizeof four);
    open_refused(&e, FR_E_STORAGE, "meta write_seq: 4 bytes, expected 8");
    uint8_t eight[8];
    fr_put_be64(eight, 41);
    set_meta(e.dir, "write_seq", eight, sizeof eight);
    st_open_again(&e);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert_eq(info.write_seq, 41u);
    st_close(&e);
}

Test(store, regression_a_format_version_record_of_the_wrong_size_says_so)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_close(e.store);
    /* was refused as "data format version 0", a version no build ever wrote */
    static const uint8_t eight[] = {0, 0, 0, 0, 0, 0, 0, FR_STORE_FORMAT_VERSION};
    set_meta(e.dir, "format_version", eight, sizeof eight);
    open_refused(&e, FR_E_STORAGE, "meta format_version: 8 bytes, expected 4");
    set_meta(e.dir, "format_version", eight, 0);
    open_refused(&e, FR_E_STORAGE, "meta format_version: 0 bytes, expected 4");
    uint8_t four[4];
    fr_put_be32(four, FR_STORE_FORMAT_VERSION);
    set_meta(e.dir, "format_version", four, sizeof four);
    st_open_again(&e);
    st_close(&e);
}
