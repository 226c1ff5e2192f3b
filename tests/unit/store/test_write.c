/* The write path (DESIGN.md, Semantics 3, 5, 6): atomic batches, exactly-once source offsets that
 * survive a reopen, row validation with precise reasons, registry updates, and a full map. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\","
    "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"blob\", \"type\": \"bytes\"}]}]}";

/* ---- helpers ---- */

/* Payload [x, blob of blob_len bytes]; blob_len 0 packs only x. */
static void pack_row(st_row_t *r, int64_t x, size_t blob_len)
{
    st_row_init(r, blob_len ? 2 : 1);
    msgpack_pack_int64(&r->pk, x);
    if (blob_len) {
        static uint8_t blob[4096];
        memset(blob, (int)(x & 0xff), sizeof blob);
        msgpack_pack_bin(&r->pk, blob_len);
        msgpack_pack_bin_body(&r->pk, blob, blob_len);
    }
}

typedef struct {
    char ent[24];
    st_row_t payload;
} owned_row_t;

/* rows[i] = entity "<prefix><first+i>", x = xs + i, offset first+i; blob_len bytes of blob each. */
static void make_rows(const fr_view_def_t *v, owned_row_t *own, fr_write_row_t *rows, size_t n,
                      const char *prefix, int64_t first, int64_t xs, size_t blob_len)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(own[i].ent, sizeof own[i].ent, "%s%lld", prefix, (long long)(first + (int64_t)i));
        pack_row(&own[i].payload, xs + (int64_t)i, blob_len);
        rows[i] = (fr_write_row_t){.view = v,
                                   .entity = (const uint8_t *)own[i].ent,
                                   .entity_len = (uint16_t)strlen(own[i].ent),
                                   .event_ts_us = ST_NOW_US - ST_SEC,
                                   .values = (const uint8_t *)own[i].payload.sb.data,
                                   .values_len = (uint32_t)own[i].payload.sb.size,
                                   .offset = first + (int64_t)i,
                                   .has_offset = true};
    }
}

static void free_rows(owned_row_t *own, size_t n)
{
    for (size_t i = 0; i < n; i++)
        st_row_fini(&own[i].payload);
}

/* x of the current version of entity, or INT64_MIN when NOT_FOUND. */
static int64_t read_x(st_env_t *e, const fr_view_def_t *v, const char *entity)
{
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_asof_t got;
    cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)entity, strlen(entity), ST_NOW_US, 0, &got),
                 FR_OK);
    int64_t x = INT64_MIN;
    if (got.status != FR_STATUS_NOT_FOUND) {
        fr_mp_reader_t rd;
        fr_mp_item_t it;
        fr_mp_reader_init(&rd, got.values, got.values_len);
        cr_assert_eq(fr_mp_next(&rd, &it), 0);
        cr_assert_eq(fr_mp_next(&rd, &it), 0);
        cr_assert_eq(it.kind, FR_MP_INT);
        x = it.v.i;
    }
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    return x;
}

static int64_t source_pos(st_env_t *e, const char *source, uint32_t partition)
{
    fr_rtxn_t *r;
    int64_t off = -2;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(fr_store_source_get(r, source, partition, &off), FR_OK);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    return off;
}

static uint64_t info_write_seq(st_env_t *e)
{
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e->store, &info), FR_OK);
    return info.write_seq;
}

typedef struct {
    int n;
    uint32_t parts[4];
    int64_t offs[4];
} seen_t;

static int collect_source(void *ctx, const char *source, size_t source_len, uint32_t partition,
                          int64_t offset)
{
    seen_t *s = ctx;
    cr_assert_eq(source_len, 6);
    cr_assert_arr_eq(source, "orders", 6);
    if (s->n < 4) {
        s->parts[s->n] = partition;
        s->offs[s->n] = offset;
    }
    s->n++;
    return 0;
}

/* ---- the stored form: float runs packed ---- */

static const char *REG_F32 =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"f\", \"entity\": \"user\", \"features\": ["
    "  {\"name\": \"a\", \"type\": \"float\"}, {\"name\": \"b\", \"type\": \"float\"},"
    "  {\"name\": \"c\", \"type\": \"float\"}, {\"name\": \"d\", \"type\": \"float\"},"
    "  {\"name\": \"e\", \"type\": \"float\"}, {\"name\": \"n\", \"type\": \"int64\"}]}]}";

/* The payload of entity's newest version, copied out. */
static size_t stored_payload(st_env_t *e, const fr_view_def_t *v, const char *entity, uint8_t *out,
                             size_t cap)
{
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_asof_t got;
    cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)entity, strlen(entity), ST_NOW_US, 0, &got),
                 FR_OK);
    cr_assert_eq(got.status, FR_STATUS_PRESENT);
    cr_assert_leq(got.values_len, cap);
    memcpy(out, got.values, got.values_len);
    size_t n = got.values_len;
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    return n;
}

Test(write, float_runs_are_stored_packed_and_a_replay_is_still_unchanged)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG_F32, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "f");
    st_row_t p;
    st_row_init(&p, 6);
    for (int i = 0; i < 5; i++)
        msgpack_pack_float(&p.pk, (float)i - 1.5f);
    msgpack_pack_int64(&p.pk, 42);
    cr_assert_eq(p.sb.size, 1u + 5 * 5 + 1);
    fr_write_row_t row = {.view = v, .entity = (const uint8_t *)"u1", .entity_len = 2,
                          .event_ts_us = ST_NOW_US - ST_SEC, .values = (const uint8_t *)p.sb.data,
                          .values_len = (uint32_t)p.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 1);

    uint8_t got[64];
    size_t n = stored_payload(&e, v, "u1", got, sizeof got);
    cr_assert_eq(n, 1u + 3 + 20 + 1, "[run of 5 float32, 42]: %zu bytes", n);
    cr_assert_eq(got[0], 0x92);
    cr_assert_eq(got[1], 0xc7);
    cr_assert_eq(got[3], FR_MP_EXT_F32RUN);
    fr_mp_row_t rr;
    fr_mp_item_t it;
    cr_assert_eq(fr_mp_row_open(&rr, got, n), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(fr_mp_row_next(&rr, &it), 0);
        cr_assert_eq(it.kind, FR_MP_F32);
        cr_assert_eq(it.v.f32, (float)i - 1.5f);
    }
    cr_assert_eq(fr_mp_row_next(&rr, &it), 0);
    cr_assert_eq(it.kind, FR_MP_INT);
    cr_assert_eq(it.v.i, 42);
    cr_assert_eq(fr_mp_row_next(&rr, &it), 1);

    /* the same row sent again (as sent, unpacked) is recognised as the stored version */
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 0);
    cr_assert_eq(res.unchanged, 1, "a replay compares with the stored form");
    /* and a row sent already packed is stored as sent and equal too */
    row.values = got;
    row.values_len = (uint32_t)n;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.unchanged, 1);
    cr_assert_eq(st_view_stat(&e, v->id).versions, 1);
    st_row_fini(&p);
    fr_registry_release(reg);
    st_close(&e);
}

/* Sets meta "format_version" of a closed store directory with plain LMDB; returns the old one. */
static uint32_t set_format_version(const char *dir, uint32_t version)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    st_raw_begin(dir, false, "meta", &env, &txn, &meta);
    MDB_val k = {14, "format_version"}, v;
    cr_assert_eq(mdb_get(txn, meta, &k, &v), MDB_SUCCESS);
    cr_assert_eq(v.mv_size, 4u);
    uint32_t old = fr_get_be32(v.mv_data);
    uint8_t be[4];
    fr_put_be32(be, version);
    v = (MDB_val){4, be};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), MDB_SUCCESS);
    st_raw_end(env, txn, false);
    return old;
}

Test(write, a_version_1_directory_is_upgraded_and_a_newer_one_refused)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_close(e.store);
    cr_assert_eq(set_format_version(e.dir, 1), FR_STORE_FORMAT_VERSION);
    st_open_again(&e); /* version 1 (plain payloads only) opens, and is marked as the current version */
    fr_store_close(e.store);
    cr_assert_eq(set_format_version(e.dir, FR_STORE_FORMAT_VERSION + 1), FR_STORE_FORMAT_VERSION);
    fr_store_opts_t o = {.path = e.dir, .map_size = 64u << 20, .clock = &e.clock,
                         .durability = FR_DURABILITY_ASYNC};
    const char *why = NULL;
    cr_assert_eq(fr_store_open(&o, &e.store, &why), FR_E_INCOMPATIBLE);
    cr_assert_not_null(why);
    char want[96];
    snprintf(want, sizeof want, "data format version %d, this build reads %d to %d",
             FR_STORE_FORMAT_VERSION + 1, FR_STORE_FORMAT_OLDEST, FR_STORE_FORMAT_VERSION);
    cr_assert_not_null(strstr(why, want), "%s", why);
    set_format_version(e.dir, FR_STORE_FORMAT_VERSION);
    st_open_again(&e);
    st_close(&e);
}

Test(write, check_row_accepts_runs_cell_by_cell)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG_F32, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "f");
    const char *why = NULL;
    /* a run of 4 float32 then nil: accepted */
    static const uint8_t ok[] = {0x92, 0xd8, FR_MP_EXT_F32RUN, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40,
                                 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0xc0};
    fr_write_row_t row = {.view = v, .entity = (const uint8_t *)"u1", .entity_len = 2,
                          .event_ts_us = ST_NOW_US, .values = ok, .values_len = sizeof ok};
    cr_assert_eq(fr_store_check_row(&row, ST_NOW_US, 0, &why), FR_OK, "%s", why);
    /* a run reaching into the int64 column n */
    static const uint8_t into_int[] = {0x92, 0xc0, 0xc7, 20, FR_MP_EXT_F32RUN, 0, 0, 0x80, 0x3f,
                                       0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0,
                                       0xa0, 0x40};
    row.values = into_int;
    row.values_len = sizeof into_int;
    cr_assert_eq(fr_store_check_row(&row, ST_NOW_US, 0, &why), FR_E_TYPE_MISMATCH);
    cr_assert_not_null(strstr(why, "values.n"), "%s", why);
    /* a run of 7 cells into a view of 6 features */
    static const uint8_t too_many[] = {0x91, 0xc7, 28, FR_MP_EXT_F32RUN, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    row.values = too_many;
    row.values_len = sizeof too_many;
    cr_assert_eq(fr_store_check_row(&row, ST_NOW_US, 0, &why), FR_E_BAD_REQUEST);
    cr_assert_not_null(strstr(why, "7 values for view f of 6"), "%s", why);
    /* an ext item that is not a run */
    static const uint8_t other_ext[] = {0x91, 0xd6, 9, 0, 0, 0, 0};
    row.values = other_ext;
    row.values_len = sizeof other_ext;
    cr_assert_eq(fr_store_check_row(&row, ST_NOW_US, 0, &why), FR_E_BAD_REQUEST);
    cr_assert_not_null(strstr(why, "values.a: malformed"), "%s", why);
    fr_registry_release(reg);
    st_close(&e);
}

/* ---- exactly-once ---- */

Test(write, replayed_batch_changes_nothing_and_reports_duplicates)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[10];
    fr_write_row_t rows[10];
    make_rows(v, own, rows, 10, "u", 0, 100, 0);
    fr_write_batch_t b = {.source = "kafka:events", .partition = 3, .rows = rows, .row_count = 10};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 10);
    cr_assert_eq(res.duplicates, 0);
    cr_assert_eq(res.high_water, 9);
    uint64_t seq = info_write_seq(&e);
    cr_assert_eq(res.last_write_seq, seq);

    /* the same batch with other values, as a crashed job would resend it */
    free_rows(own, 10);
    make_rows(v, own, rows, 10, "u", 0, 500, 0);
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 0);
    cr_assert_eq(res.duplicates, 10);
    cr_assert_eq(res.unchanged, 0);
    cr_assert_eq(res.high_water, 9);
    cr_assert_eq(info_write_seq(&e), seq, "a duplicate consumes no write_seq");
    cr_assert_eq(st_view_stat(&e, v->id).versions, 10);
    for (int i = 0; i < 10; i++) {
        char ent[8];
        snprintf(ent, sizeof ent, "u%d", i);
        cr_assert_eq(read_x(&e, v, ent), 100 + i, "replayed values must not land");
    }
    cr_assert_eq(source_pos(&e, "kafka:events", 3), 9);
    cr_assert_eq(source_pos(&e, "kafka:events", 4), -1, "other partitions are independent");
    cr_assert_eq(source_pos(&e, "kafka:event", 3), -1, "sources are matched exactly");
    free_rows(own, 10);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, partially_overlapping_replay_writes_only_new_offsets)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[10];
    fr_write_row_t rows[10];
    make_rows(v, own, rows, 10, "u", 0, 100, 0); /* offsets 0..9 */
    fr_write_batch_t b = {.source = "s", .partition = 0, .rows = rows, .row_count = 10};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    free_rows(own, 10);

    make_rows(v, own, rows, 10, "u", 5, 1000, 0); /* offsets 5..14, new values */
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.duplicates, 5);
    cr_assert_eq(res.written, 5);
    cr_assert_eq(res.high_water, 14);
    cr_assert_eq(source_pos(&e, "s", 0), 14);
    for (int i = 5; i < 10; i++) {
        char ent[8];
        snprintf(ent, sizeof ent, "u%d", i);
        cr_assert_eq(read_x(&e, v, ent), 100 + i, "offset %d was a duplicate", i);
    }
    for (int i = 10; i < 15; i++) {
        char ent[8];
        snprintf(ent, sizeof ent, "u%d", i);
        cr_assert_eq(read_x(&e, v, ent), 1000 + i - 5, "offset %d is new", i);
    }
    cr_assert_eq(st_view_stat(&e, v->id).versions, 15);
    free_rows(own, 10);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, source_positions_and_data_survive_close_and_reopen)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[4];
    fr_write_row_t rows[4];
    make_rows(v, own, rows, 4, "u", 40, 7, 0); /* offsets 40..43 */
    fr_write_batch_t b = {.source = "orders", .partition = 1, .rows = rows, .row_count = 4};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    b.partition = 2;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.unchanged, 4, "same rows, other partition: not duplicates but unchanged");
    uint64_t seq = info_write_seq(&e);
    cr_assert_eq(seq, 4);
    fr_registry_release(reg);

    fr_store_close(e.store);
    st_open_again(&e);
    v = st_view(&e, &reg, "v");
    cr_assert_eq(source_pos(&e, "orders", 1), 43);
    cr_assert_eq(source_pos(&e, "orders", 2), 43);
    cr_assert_eq(info_write_seq(&e), seq, "write_seq is restored");
    cr_assert_eq(read_x(&e, v, "u41"), 8);
    /* replaying after the restart is still a duplicate */
    b.partition = 1;
    rows[0].view = rows[1].view = rows[2].view = rows[3].view = v;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.duplicates, 4);
    cr_assert_eq(res.written, 0);

    /* positions are listed in key order */
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    seen_t seen = {0};
    cr_assert_eq(fr_store_sources_each(r, collect_source, &seen), FR_OK);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    cr_assert_eq(seen.n, 2);
    cr_assert_eq(seen.parts[0], 1);
    cr_assert_eq(seen.parts[1], 2);
    cr_assert_eq(seen.offs[0], 43);
    cr_assert_eq(seen.offs[1], 43);
    free_rows(own, 4);
    fr_registry_release(reg);
    st_close(&e);
}

/* A stream consumer's batch ends with messages it rejected (or has nothing but rejected ones):
 * the position must still cover them, or they come back after a restart and may apply then. */
Test(write, regression_rejected_tail_of_a_batch_still_moves_the_position)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[3];
    fr_write_row_t rows[3];
    make_rows(v, own, rows, 3, "u", 10, 100, 0); /* offsets 10..12, then 13..15 rejected */
    fr_write_batch_t b = {.source = "nats:S", .partition = 2, .rows = rows, .row_count = 3,
                          .position_mode = FR_POSITION_AT_LEAST, .position = 15};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 3);
    cr_assert_eq(res.high_water, 15);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 15);

    /* a batch of rejected messages only: no rows, the position still moves, in one commit */
    fr_write_batch_t only = {.source = "nats:S", .partition = 2, .row_count = 0,
                             .position_mode = FR_POSITION_AT_LEAST, .position = 20};
    cr_assert_eq(st_write_batch(&e, &only, &res), FR_OK);
    cr_assert_eq(res.written, 0);
    cr_assert_eq(res.high_water, 20);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 20);
    /* never lowered by it: a redelivered older batch stays a duplicate */
    only.position = 18;
    cr_assert_eq(st_write_batch(&e, &only, &res), FR_OK);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 20);
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.duplicates, 3);
    cr_assert_eq(res.written, 0);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 20);

    /* an operator's reset lowers it; the same rows then apply again (as unchanged no-ops) */
    fr_write_batch_t reset = {.source = "nats:S", .partition = 2,
                              .position_mode = FR_POSITION_RESET, .position = 0};
    cr_assert_eq(st_write_batch(&e, &reset, &res), FR_OK);
    cr_assert_eq(res.high_water, 0);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 0);
    b.position_mode = FR_POSITION_ROWS;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.duplicates, 0);
    cr_assert_eq(res.unchanged, 3);
    cr_assert_eq(source_pos(&e, "nats:S", 2), 12);
    cr_assert_eq(st_view_stat(&e, v->id).versions, 3);
    free_rows(own, 3);
    fr_registry_release(reg);
    st_close(&e);
}

/* ---- row validation ---- */

static fr_feature_def_t all_features[] = {
    {"i", FR_TYPE_INT64, 0},       {"d", FR_TYPE_DOUBLE, 0},     {"f", FR_TYPE_FLOAT, 0},
    {"b", FR_TYPE_BOOL, 0},        {"s", FR_TYPE_STRING, 0},     {"y", FR_TYPE_BYTES, 0},
    {"emb", FR_TYPE_FLOAT_LIST, 4}, {"anylist", FR_TYPE_FLOAT_LIST, 0},
};
static fr_view_def_t all_view = {.id = 1, .name = "all_types", .entity = "user",
                                 .feature_count = 8, .features = all_features};

static int check_raw(const void *p, size_t n, const char *entity, size_t entity_len, int64_t ts,
                     const char **why)
{
    fr_write_row_t row = {.view = &all_view, .entity = (const uint8_t *)entity,
                          .entity_len = (uint16_t)entity_len, .event_ts_us = ts,
                          .values = p, .values_len = (uint32_t)n};
    *why = NULL;
    return fr_store_check_row(&row, ST_NOW_US, 300 * ST_SEC, why);
}

static int check_bytes(const void *p, size_t n, const char **why)
{
    return check_raw(p, n, "u1", 2, ST_NOW_US, why);
}

#define CHECK_FAILS(rc_want, needle, ...)                                                          \
    do {                                                                                           \
        static const uint8_t in_[] = {__VA_ARGS__};                                                \
        const char *why_;                                                                          \
        int rc_ = check_bytes(in_, sizeof in_, &why_);                                             \
        cr_assert_eq(rc_, rc_want, "got %s", fr_err_name(rc_));                                    \
        cr_assert_not_null(why_);                                                                  \
        cr_assert_not_null(strstr(why_, needle), "why \"%s\" lacks \"%s\"", why_, needle);         \
    } while (0)

#define CHECK_OK(...)                                                                              \
    do {                                                                                           \
        static const uint8_t in_[] = {__VA_ARGS__};                                                \
        const char *why_;                                                                          \
        int rc_ = check_bytes(in_, sizeof in_, &why_);                                             \
        cr_assert_eq(rc_, FR_OK, "got %s: %s", fr_err_name(rc_), why_ ? why_ : "");                \
    } while (0)

Test(write, check_row_accepts_every_type_and_nulls)
{
    /* [1, 2.5, 1.5f, true, "ab", bin "xy", [1.0f, 2, 3.0, -1], []] */
    CHECK_OK(0x98, 0x01, 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0, 0xca, 0x3f, 0xc0, 0, 0, 0xc3, 0xa2,
             'a', 'b', 0xc4, 2, 'x', 'y', 0x94, 0xca, 0x3f, 0x80, 0, 0, 0x02, 0xcb, 0x40, 0x08, 0,
             0, 0, 0, 0, 0, 0xff, 0x90);
    CHECK_OK(0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0); /* all null */
    CHECK_OK(0x90);                                                 /* no values: all null */
    CHECK_OK(0x92, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x05); /* INT64_MIN; int for double */
    CHECK_OK(0x96, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xa1, 'z'); /* str accepted for bytes */
    CHECK_OK(0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x93, 1, 2, 3); /* any length */
}

Test(write, check_row_names_the_feature_on_a_type_mismatch)
{
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.i", 0x91, 0xa3, 'a', 'b', 'c'); /* string for int64 */
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "int64", 0x91, 0xa3, 'a', 'b', 'c');
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.i", 0x91, 0xc3);                /* bool for int64 */
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.i", 0x91, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);
    /* uint64 above INT64_MAX does not fit an int64 */
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.i", 0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.d", 0x92, 0xc0, 0xa1, 'x');
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.f", 0x93, 0xc0, 0xc0, 0xc2);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.b", 0x94, 0xc0, 0xc0, 0xc0, 0x01);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.s", 0x95, 0xc0, 0xc0, 0xc0, 0xc0, 0xc4, 1, 'x');
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.y", 0x96, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x07);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.emb", 0x97, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x01);
}

Test(write, check_row_rejects_a_float_list_of_the_wrong_dim)
{
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.emb", 0x97, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x93,
                1, 2, 3);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "dim is 4", 0x97, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x95, 1,
                2, 3, 4, 5);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.emb", 0x97, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x94,
                1, 2, 0xa1, 'x', 4); /* not a number */
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.anylist", 0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
                0xc0, 0x91, 0x91, 1); /* nested array */
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "values.anylist", 0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
                0xc0, 0x91, 0xc0); /* nil element */
}

Test(write, check_row_rejects_too_many_values)
{
    CHECK_FAILS(FR_E_BAD_REQUEST, "9 values for view all_types of 8", 0x99, 0xc0, 0xc0, 0xc0,
                0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0);
    /* a huge array count with no elements behind it */
    CHECK_FAILS(FR_E_BAD_REQUEST, "values", 0xdd, 0xff, 0xff, 0xff, 0xff);
}

Test(write, check_row_rejects_malformed_msgpack_and_trailing_bytes)
{
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.i: malformed", 0x91, 0xc1);  /* never-used byte */
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.i: malformed", 0x91);        /* element missing */
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.i: malformed", 0x91, 0x81, 1, 2); /* a map */
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.i: malformed", 0x91, 0xd4, 0, 0); /* ext */
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.s: malformed", 0x95, 0xc0, 0xc0, 0xc0, 0xc0, 0xa5, 'a');
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.emb", 0x97, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0x94, 1,
                2, 3); /* truncated float_list */
    CHECK_FAILS(FR_E_BAD_REQUEST, "expected a msgpack array", 0x01);
    CHECK_FAILS(FR_E_BAD_REQUEST, "expected a msgpack array", 0x80);
    CHECK_FAILS(FR_E_BAD_REQUEST, "trailing bytes", 0x91, 0x01, 0x02);
    CHECK_FAILS(FR_E_BAD_REQUEST, "trailing bytes", 0x90, 0xc0);
    const char *why;
    cr_assert_eq(check_bytes("", 0, &why), FR_E_BAD_REQUEST, "empty payload");
}

/* Regression: a float_list cut short was reported as TYPE_MISMATCH ("element is not a number")
 * instead of a malformed payload. */
Test(write, regression_truncated_float_list_is_bad_request_not_type_mismatch)
{
    CHECK_FAILS(FR_E_BAD_REQUEST, "values.anylist: malformed", 0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
                0xc0, 0xc0, 0x92, 0xca, 0x3f);
    CHECK_FAILS(FR_E_TYPE_MISMATCH, "not a number", 0x98, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0,
                0xc0, 0x92, 0x01, 0xc3);
}

Test(write, check_row_rejects_bad_entities_and_times)
{
    static const uint8_t ok[] = {0x91, 0x01};
    const char *why;
    char big[300];
    memset(big, 'e', sizeof big);
    cr_assert_eq(check_raw(ok, 2, "", 0, ST_NOW_US, &why), FR_E_BAD_REQUEST);
    cr_assert_not_null(strstr(why, "entity"));
    cr_assert_eq(check_raw(ok, 2, big, 257, ST_NOW_US, &why), FR_E_BAD_REQUEST);
    cr_assert_not_null(strstr(why, "entity"));
    cr_assert_eq(check_raw(ok, 2, big, 256, ST_NOW_US, &why), FR_OK, "256 bytes is the limit");
    cr_assert_eq(check_raw(ok, 2, big, 1, ST_NOW_US, &why), FR_OK);
    cr_assert_eq(check_raw(ok, 2, "u", 1, -1, &why), FR_E_BAD_REQUEST);
    cr_assert_not_null(strstr(why, "event_ts"));
    cr_assert_eq(check_raw(ok, 2, "u", 1, 0, &why), FR_OK, "the epoch is a valid time");
    cr_assert_eq(check_raw(ok, 2, "u", 1, ST_NOW_US + 300 * ST_SEC, &why), FR_OK,
                 "exactly max_future_skew ahead is allowed");
    cr_assert_eq(check_raw(ok, 2, "u", 1, ST_NOW_US + 300 * ST_SEC + 1, &why), FR_E_FUTURE_EVENT);
    cr_assert_not_null(strstr(why, "event_ts"), "%s", why);
    cr_assert_not_null(strstr(why, "all_types"), "%s", why);
    cr_assert_eq(check_raw(ok, 2, "u", 1, INT64_MAX, &why), FR_E_FUTURE_EVENT);
}

/* ---- atomicity ---- */

Test(write, aborted_group_leaves_nothing_and_restores_write_seq)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[3];
    fr_write_row_t rows[3];
    make_rows(v, own, rows, 3, "u", 0, 1, 0);
    fr_write_batch_t b = {.source = "src", .rows = rows, .row_count = 3};
    fr_wtxn_t *w;
    fr_write_result_t res;
    cr_assert_eq(fr_store_write_begin(e.store, &w), FR_OK);
    cr_assert_eq(fr_store_write_apply(w, &b, &res), FR_OK);
    cr_assert_eq(res.written, 3);
    fr_store_write_abort(w);
    cr_assert_eq(info_write_seq(&e), 0);
    cr_assert_eq(read_x(&e, v, "u0"), INT64_MIN);
    cr_assert_eq(source_pos(&e, "src", 0), -1);
    cr_assert_eq(st_view_stat(&e, v->id).versions, 0);
    free_rows(own, 3);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, source_name_longer_than_255_is_rejected_without_writing)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[2];
    fr_write_row_t rows[2];
    make_rows(v, own, rows, 2, "u", 0, 1, 0);
    char src[300];
    memset(src, 's', sizeof src - 1);
    src[sizeof src - 1] = 0;
    fr_write_batch_t b = {.source = src, .rows = rows, .row_count = 2};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_E_BAD_REQUEST);
    cr_assert_eq(read_x(&e, v, "u0"), INT64_MIN);
    free_rows(own, 2);
    fr_registry_release(reg);
    st_close(&e);
}

/* ---- a full map ---- */

typedef struct {
    const fr_view_def_t *v;
    int per;
    size_t blob_len;
    int batch, rc, passes;
    uint64_t seq_ok;
    fr_write_result_t res;
} fill_t;

/* Applies batches of f->per rows to w until one is refused (a group pass). */
static void fill_pass(fr_wtxn_t *w, void *arg)
{
    fill_t *f = arg;
    f->passes++;
    f->rc = FR_OK;
    f->seq_ok = 0;
    owned_row_t own[32];
    fr_write_row_t rows[32];
    for (f->batch = 0; f->batch < 100000; f->batch++) {
        make_rows(f->v, own, rows, (size_t)f->per, "u", f->batch * f->per, f->batch * f->per,
                  f->blob_len);
        fr_write_batch_t b = {.source = "big", .rows = rows, .row_count = (size_t)f->per};
        f->rc = fr_store_write_apply(w, &b, &f->res);
        free_rows(own, (size_t)f->per);
        if (f->rc != FR_OK)
            break;
        cr_assert_eq(f->res.written, (uint32_t)f->per);
        f->seq_ok = f->res.last_write_seq;
    }
}

/* Fills one group with batches of `per` rows (blob_len bytes each) until a batch gets
 * FR_E_STORAGE_FULL, commits the group and checks that exactly the earlier batches are stored.
 * via_group runs it as the server does (fr_store_write_group): the flat pass must give up near
 * the end of the map and the isolated pass decide. */
static void fill_until_full(uint64_t map_size, int per, size_t blob_len, bool via_group)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, map_size);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    cr_assert_leq(per, 32);
    fill_t f = {.v = v, .per = per, .blob_len = blob_len};
    int rc2;
    if (via_group) {
        rc2 = fr_store_write_group(e.store, fill_pass, &f);
        cr_assert_eq(f.passes, 2, "the flat pass gives up near the end of the map");
    } else {
        fr_wtxn_t *w;
        cr_assert_eq(fr_store_write_begin(e.store, &w), FR_OK);
        fill_pass(w, &f);
        rc2 = fr_store_write_commit(w);
    }
    int batch = f.batch, rc = f.rc;
    uint64_t seq_ok = f.seq_ok;
    cr_assert_eq(rc, FR_E_STORAGE_FULL, "got %s after %d batches", fr_err_name(rc), batch);
    cr_assert_gt(batch, 1, "some batches must fit");
    cr_assert_eq(f.res.written, 0, "a failed batch reports nothing written");
    cr_assert_eq(rc2, FR_OK, "commit after a full batch: %s", fr_err_name(rc2));
    cr_assert_eq(info_write_seq(&e), seq_ok, "the failed batch's write_seqs are given back");

    /* every earlier batch is there, nothing of the failed one; reads still work */
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    for (int i = 0; i < (batch + 1) * per; i++) {
        char ent[16];
        snprintf(ent, sizeof ent, "u%d", i);
        fr_asof_t got;
        cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)ent, strlen(ent), ST_NOW_US, 0, &got),
                     FR_OK);
        if (i < batch * per) {
            cr_assert_eq(got.status, FR_STATUS_PRESENT, "row %d of an applied batch", i);
            fr_mp_reader_t rd;
            fr_mp_item_t it;
            fr_mp_reader_init(&rd, got.values, got.values_len);
            cr_assert_eq(fr_mp_next(&rd, &it), 0);
            cr_assert_eq(fr_mp_next(&rd, &it), 0);
            cr_assert_eq(it.v.i, i, "row %d", i);
        } else {
            cr_assert_eq(got.status, FR_STATUS_NOT_FOUND, "row %d of the failed batch", i);
        }
    }
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    cr_assert_eq(source_pos(&e, "big", 0), (int64_t)batch * per - 1);
    cr_assert_eq(st_view_stat(&e, v->id).versions, (uint64_t)batch * (uint64_t)per);
    cr_assert_eq(info_write_seq(&e), seq_ok);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, map_full_batch_is_undone_and_the_group_still_commits)
{
    fill_until_full(256 << 10, 8, 1000, false);
    fill_until_full(256 << 10, 8, 1000, true);
}

/* Regression: the last batch that fit could leave no pages for LMDB's freelist, so the group's
 * commit itself failed with STORAGE_FULL and every earlier batch of the group was lost. */
Test(write, regression_group_commit_failed_with_storage_full_after_a_full_batch)
{
    fill_until_full(4u << 20, 32, 200, false);
    fill_until_full(1u << 20, 1, 3000, false);
    fill_until_full(4u << 20, 32, 200, true);
}

/* ---- group commits (fr_store_write_group) ---- */

typedef struct {
    fr_write_batch_t b[3];
    fr_write_result_t res[3];
    int rc[3], passes;
} group3_t;

static void group3_pass(fr_wtxn_t *w, void *arg)
{
    group3_t *g = arg;
    g->passes++;
    for (int i = 0; i < 3; i++)
        g->rc[i] = fr_store_write_apply(w, &g->b[i], &g->res[i]);
}

/* The flat pass applies every batch in the group's one transaction: a later batch sees the rows
 * and the source position of an earlier one exactly as if they had committed before it. */
Test(write, group_flat_pass_sees_its_own_earlier_batches)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    owned_row_t own[3][4];
    fr_write_row_t rows[3][4];
    make_rows(v, own[0], rows[0], 4, "u", 0, 100, 0);  /* offsets 0..3 */
    make_rows(v, own[1], rows[1], 4, "u", 2, 200, 0);  /* offsets 2..5: 2 and 3 are replays */
    make_rows(v, own[2], rows[2], 4, "u", 0, 100, 0);  /* no source: same values, same time */
    group3_t g = {.b = {{"s", 0, rows[0], 4}, {"s", 0, rows[1], 4}, {NULL, 0, rows[2], 4}}};
    cr_assert_eq(fr_store_write_group(e.store, group3_pass, &g), FR_OK);
    cr_assert_eq(g.passes, 1, "nothing failed: one flat pass");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(g.rc[i], FR_OK, "batch %d: %s", i, fr_err_name(g.rc[i]));
    cr_assert_eq(g.res[0].written, 4);
    cr_assert_eq(g.res[1].duplicates, 2);
    cr_assert_eq(g.res[1].written, 2);
    cr_assert_eq(g.res[1].high_water, 5);
    cr_assert_eq(g.res[2].unchanged, 4, "equal to the newest versions written just before");
    cr_assert_eq(g.res[2].written, 0);
    cr_assert_eq(read_x(&e, v, "u3"), 103, "the replayed offset 3 did not overwrite");
    cr_assert_eq(read_x(&e, v, "u5"), 203);
    cr_assert_eq(source_pos(&e, "s", 0), 5);
    cr_assert_eq(st_view_stat(&e, v->id).versions, 6);
    cr_assert_eq(info_write_seq(&e), g.res[1].last_write_seq);
    for (int i = 0; i < 3; i++)
        free_rows(own[i], 4);
    fr_registry_release(reg);
    st_close(&e);
}

/* ---- registry ---- */

static const char *REG_V2 =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\", \"ttl\": \"1h\","
    "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"blob\", \"type\": \"bytes\"},"
    "                 {\"name\": \"score\", \"type\": \"double\"}]},"
    "  {\"name\": \"w\", \"entity\": \"user\", \"features\": [{\"name\": \"k\", \"type\": \"bool\"}]}]}";

static const char *REG_TYPE_CHANGE =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\","
    "  \"features\": [{\"name\": \"x\", \"type\": \"string\"}, {\"name\": \"blob\", \"type\": \"bytes\"}]}]}";

Test(write, registry_apply_persists_across_reopen)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    cr_assert_eq(st_apply_registry(&e, REG_V2, NULL), FR_OK);
    fr_store_close(e.store);
    st_open_again(&e);
    fr_registry_t *reg = fr_store_registry(e.store);
    const fr_view_def_t *v = fr_registry_view(reg, "v");
    cr_assert_not_null(v);
    cr_assert_eq(v->feature_count, 3);
    cr_assert_str_eq(v->features[2].name, "score");
    cr_assert_eq(v->features[2].type, FR_TYPE_DOUBLE);
    cr_assert_eq(v->ttl_us, 3600 * ST_SEC);
    const fr_view_def_t *w = fr_registry_view(reg, "w");
    cr_assert_not_null(w);
    cr_assert_neq(w->id, v->id);
    uint32_t vid = v->id;
    fr_registry_release(reg);

    /* re-applying the same file is a no-op and keeps ids */
    fr_wtxn_t *wt;
    fr_registry_diff_t diff;
    const char *why = NULL;
    cr_assert_eq(fr_store_write_begin(e.store, &wt), FR_OK);
    cr_assert_eq(fr_store_write_registry(wt, REG_V2, strlen(REG_V2), false, &diff, &why), FR_OK);
    cr_assert_eq(diff.views_added + diff.features_added + diff.entities_added + diff.views_changed,
                 0);
    cr_assert_eq(fr_store_write_commit(wt), FR_OK);
    reg = fr_store_registry(e.store);
    cr_assert_eq(fr_registry_view(reg, "v")->id, vid);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, registry_type_change_is_incompatible_and_stores_nothing)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    const char *why = NULL;
    cr_assert_eq(st_apply_registry(&e, REG_TYPE_CHANGE, &why), FR_E_INCOMPATIBLE);
    cr_assert_not_null(why);
    cr_assert_not_null(strstr(why, "\"x\""), "why names the feature: %s", why);
    fr_store_close(e.store);
    st_open_again(&e);
    fr_registry_t *reg = fr_store_registry(e.store);
    cr_assert_eq(fr_registry_view(reg, "v")->features[0].type, FR_TYPE_INT64);
    fr_registry_release(reg);
    st_close(&e);
}

Test(write, registry_dry_run_and_uncommitted_apply_are_invisible)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_wtxn_t *w;
    fr_registry_diff_t diff;
    const char *why = NULL;
    cr_assert_eq(fr_store_write_begin(e.store, &w), FR_OK);
    cr_assert_eq(fr_store_write_registry(w, REG, strlen(REG), true, &diff, &why), FR_OK);
    cr_assert_eq(diff.views_added, 1);
    cr_assert_eq(diff.entities_added, 1);
    cr_assert_eq(fr_store_write_commit(w), FR_OK);
    fr_registry_t *reg = fr_store_registry(e.store);
    cr_assert_null(fr_registry_view(reg, "v"), "dry run stores nothing");
    fr_registry_release(reg);

    cr_assert_eq(fr_store_write_begin(e.store, &w), FR_OK);
    cr_assert_eq(fr_store_write_registry(w, REG, strlen(REG), false, &diff, &why), FR_OK);
    reg = fr_store_registry(e.store);
    cr_assert_null(fr_registry_view(reg, "v"), "visible only after commit");
    fr_registry_release(reg);
    fr_store_write_abort(w);
    fr_store_close(e.store);
    st_open_again(&e);
    reg = fr_store_registry(e.store);
    cr_assert_null(fr_registry_view(reg, "v"), "an aborted apply is not stored");
    fr_registry_release(reg);
    cr_assert_eq(st_apply_registry(&e, "{\"views\": [", &why), FR_E_BAD_REGISTRY);
    st_close(&e);
}

/* Regression: a second freshetd on the same directory started and shared the LMDB environment
 * with its own in-memory write sequence. A second writer open of a directory is now refused,
 * with the owner's pid, and the directory is usable again once the first store closes. */
Test(write, second_writer_on_a_directory_is_refused_until_the_first_closes)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_opts_t o = {0};
    o.path = e.dir;
    o.map_size = 64u << 20;
    o.clock = &e.clock;
    o.durability = FR_DURABILITY_ASYNC;
    fr_store_t *second = NULL;
    const char *why = NULL;
    int rc = fr_store_open(&o, &second, &why);
    cr_assert_eq(rc, FR_E_STORAGE, "second open: %s", fr_err_name(rc));
    cr_assert_null(second);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    cr_assert(strstr(why, "is in use by another process") && strstr(why, pid), "why: %s", why);
    fr_store_close(e.store);
    rc = fr_store_open(&o, &e.store, &why);
    cr_assert_eq(rc, FR_OK, "reopen after close: %s (%s)", fr_err_name(rc), why);
    st_close(&e);
}

/* Regression: fr_store_info().readers_used (the /metrics gauge freshet_lmdb_readers_used) was
 * LMDB's me_numreaders, the most slots ever used, so released snapshots looked like a leak. It
 * now counts the live slots; the high-water mark is reported on its own. */
Test(write, readers_used_counts_live_reader_slots_and_falls_when_they_are_freed)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    unsigned base = info.readers_used;
    fr_rtxn_t *r[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(fr_rtxn_new(e.store, &r[i]), FR_OK);
        cr_assert_eq(fr_rtxn_begin(r[i]), FR_OK);
    }
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert_eq(info.readers_used, base + 3, "three snapshots open: %u, base %u", info.readers_used,
                 base);
    cr_assert_geq(info.readers_high_water, base + 3);
    for (int i = 0; i < 3; i++) {
        fr_rtxn_reset(r[i]);
        fr_rtxn_free(r[i]);
    }
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert_eq(info.readers_used, base, "freed snapshots give their slots back: %u",
                 info.readers_used);
    cr_assert_geq(info.readers_high_water, base + 3, "the high-water mark stays");
    st_close(&e);
}

/* Regression: a partial file adding a view for an entity the store already has was refused
 * ("unknown entity ... declare it in \"entities\""), although views and entities missing from a
 * file are kept; re-declaring the entity to get past it wiped its stored description. */
Test(write, a_partial_registry_adds_a_view_for_a_stored_entity)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e,
                                   "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\","
                                   " \"description\": \"a customer\"}], \"views\": []}",
                                   NULL),
                 FR_OK);
    const char *why = NULL;
    int rc = st_apply_registry(&e,
                               "{\"views\": [{\"name\": \"extra\", \"entity\": \"user\","
                               " \"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}]}",
                               &why);
    cr_assert_eq(rc, FR_OK, "%s: %s", fr_err_name(rc), why ? why : "");
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "extra");
    cr_assert_str_eq(v->join_key, "user_id", "the stored entity's join key");
    const fr_entity_def_t *ent = fr_registry_entity(reg, "user");
    cr_assert(ent && ent->description && !strcmp(ent->description, "a customer"),
              "the entity and its description are kept");
    fr_registry_release(reg);
    /* an entity neither in the file nor in the store is still refused */
    rc = st_apply_registry(&e,
                           "{\"views\": [{\"name\": \"other\", \"entity\": \"nobody\","
                           " \"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}]}",
                           &why);
    cr_assert_eq(rc, FR_E_BAD_REGISTRY);
    cr_assert(why && strstr(why, "unknown entity \"nobody\""), "%s", why ? why : "");
    st_close(&e);
}
