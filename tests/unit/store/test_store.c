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

typedef struct {
    const fr_write_batch_t *b;
    fr_write_result_t *res;
    int rc;
} group_arg_t;

static void apply_one(fr_wtxn_t *w, void *arg)
{
    group_arg_t *g = arg;
    g->rc = fr_store_write_apply(w, g->b, g->res);
}

/* One row of view v (x = 1) for entity ent in its own group commit, through
 * fr_store_write_group (flat pass, then the isolated one) when via_group; returns the fr_err_t. */
static int write_x(st_env_t *e, const char *ent, bool via_group, fr_write_result_t *res)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    st_row_t row;
    st_row_init(&row, 1);
    msgpack_pack_int64(&row.pk, 1);
    fr_write_row_t r = {.view = v,
                        .entity = (const uint8_t *)ent,
                        .entity_len = (uint16_t)strlen(ent),
                        .event_ts_us = ST_NOW_US - ST_SEC,
                        .values = (const uint8_t *)row.sb.data,
                        .values_len = (uint32_t)row.sb.size};
    fr_write_batch_t b = {.rows = &r, .row_count = 1};
    group_arg_t g = {&b, res, FR_OK};
    int rc = via_group ? fr_store_write_group(e->store, apply_one, &g) : st_write_batch(e, &b, res);
    if (via_group && rc == FR_OK)
        rc = g.rc;
    st_row_fini(&row);
    fr_registry_release(reg);
    return rc;
}

Test(store, regression_a_write_seq_at_its_maximum_refuses_writes_instead_of_wrapping)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG_ENTITY "\"views\": [{\"name\": \"v\", \"entity\": "
                                                  "\"user\", \"features\": [{\"name\": \"x\", "
                                                  "\"type\": \"int64\"}]}]}",
                                   NULL),
                 FR_OK);
    fr_store_close(e.store);
    uint8_t seq[8];
    fr_put_be64(seq, UINT64_MAX - 1);
    set_meta(e.dir, "write_seq", seq, sizeof seq);
    st_open_again(&e);
    fr_write_result_t res;
    cr_assert_eq(write_x(&e, "a", false, &res), FR_OK, "the last number is still handed out");
    cr_assert_eq(res.last_write_seq, UINT64_MAX);
    /* the next one wrapped to 0: a version numbered below every other, a number reused */
    for (int via_group = 0; via_group < 2; via_group++) {
        cr_assert_eq(write_x(&e, "b", via_group, &res), FR_E_STORAGE, "via_group %d", via_group);
        cr_assert(res.why && strstr(res.why, "write_seq is at 2^64-1"), "%s",
                  res.why ? res.why : "");
        cr_assert_eq(res.written, 0u);
    }
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert_eq(info.write_seq, UINT64_MAX, "not wrapped");
    fr_registry_t *reg;
    cr_assert_eq(st_view_stat(&e, st_view(&e, &reg, "v")->id).versions, 1u, "b was not stored");
    fr_registry_release(reg);
    st_close(&e);
}
