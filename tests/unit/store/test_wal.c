/* The write-ahead log (store/wal.h): its codecs, and recovery after a process crash and after a
 * simulated power loss. A power loss is played by building data.mdb from the file as it was at
 * the checkpoint and as it was at the crash, page by page at random: any subset of the writes
 * after a checkpoint may have reached the disk, meta pages included. Recovery must give back
 * every acknowledged row, exactly. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault.h"
#include "store/wal.h"
#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\", \"retention\": \"1d\","
    "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"pad\", \"type\": "
    "\"bytes\"}]}]}";

#define ENTITIES 3000

/* ---- codec ---- */

Test(wal, crc32c_matches_the_standard_check_value_on_both_paths)
{
    cr_assert_eq(fr_wal_crc32c(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(fr_wal_crc32c_portable(0, "123456789", 9), 0xe3069283u);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t portable =
        fr_wal_crc32c_portable(fr_wal_crc32c_portable(0, buf, 333), buf + 333, sizeof buf - 333);
    cr_assert_eq(fr_wal_crc32c(0, buf, sizeof buf), portable, "chained portable = one-shot");
    cr_assert_eq(fr_wal_crc32c(fr_wal_crc32c(0, buf, 7), buf + 7, sizeof buf - 7), portable,
                 "chained = one-shot");
}

Test(wal, a_record_round_trips_and_every_cut_or_flipped_byte_is_refused)
{
    fr_wal_buf_t b = {0};
    fr_wal_buf_op(&b, FR_WAL_OP_PUT, FR_WAL_DB_ROWS, "key-1", 5, "value-one", 9);
    fr_wal_buf_op(&b, FR_WAL_OP_DEL, FR_WAL_DB_META, "k2", 2, NULL, 0);
    fr_wal_buf_op(&b, FR_WAL_OP_PUT, FR_WAL_DB_SOURCES, "s\0\0\0\0\1", 6, "\0\0\0\0\0\0\0\7", 8);
    cr_assert(!b.failed);
    size_t n = FR_WAL_REC_HDR + b.len;
    uint8_t *rec = malloc(n);
    uint64_t txnid;
    const uint8_t *payload;
    size_t plen, rlen;
    fr_wal_rec_header(rec, 42, true, b.p, b.len);
    memcpy(rec + FR_WAL_REC_HDR, b.p, b.len);
    cr_assert_eq(fr_wal_rec_parse(rec, n, &txnid, &payload, &plen, &rlen), FR_WAL_REC_OK);
    cr_assert(fr_wal_rec_synced(rec), "written synced, read synced");
    fr_wal_rec_header(rec, 42, false, b.p, b.len);
    cr_assert_eq(fr_wal_rec_parse(rec, n, &txnid, &payload, &plen, &rlen), FR_WAL_REC_OK);
    cr_assert(!fr_wal_rec_synced(rec), "written async, read async");
    cr_assert_eq(txnid, 42);
    cr_assert_eq(rlen, n);
    size_t pos = 0;
    fr_wal_op_t op;
    const char *why = NULL;
    cr_assert_eq(fr_wal_op_next(payload, plen, &pos, &op, &why), 0);
    cr_assert(op.op == FR_WAL_OP_PUT && op.db == FR_WAL_DB_ROWS && op.klen == 5 && op.vlen == 9);
    cr_assert(memcmp(op.key, "key-1", 5) == 0 && memcmp(op.val, "value-one", 9) == 0);
    cr_assert_eq(fr_wal_op_next(payload, plen, &pos, &op, &why), 0);
    cr_assert(op.op == FR_WAL_OP_DEL && op.db == FR_WAL_DB_META && op.vlen == 0);
    cr_assert_eq(fr_wal_op_next(payload, plen, &pos, &op, &why), 0);
    cr_assert(op.db == FR_WAL_DB_SOURCES && op.klen == 6 && op.vlen == 8);
    cr_assert_eq(fr_wal_op_next(payload, plen, &pos, &op, &why), 1, "end of the record");
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_neq(fr_wal_rec_parse(rec, cut, &txnid, &payload, &plen, &rlen), FR_WAL_REC_OK,
                      "cut at %zu", cut);
    for (size_t i = 0; i < n; i++) {
        rec[i] ^= 0x10;
        cr_assert_neq(fr_wal_rec_parse(rec, n, &txnid, &payload, &plen, &rlen), FR_WAL_REC_OK,
                      "byte %zu flipped", i);
        rec[i] ^= 0x10;
    }
    /* an op that claims more than its record holds, an unknown database, a delete with a value */
    uint8_t bad[3][12] = {{1, 1, 4, 0, 200, 0, 0, 0, 'a', 'b', 'c', 'd'},
                          {1, 9, 1, 0, 0, 0, 0, 0, 'a', 0, 0, 0},
                          {2, 0, 1, 0, 1, 0, 0, 0, 'a', 'b', 0, 0}};
    size_t lens[3] = {12, 9, 10};
    for (int i = 0; i < 3; i++) {
        pos = 0;
        why = NULL;
        cr_assert_eq(fr_wal_op_next(bad[i], lens[i], &pos, &op, &why), -1, "bad op %d", i);
        cr_assert_not_null(why);
    }
    free(rec);
    fr_wal_buf_free(&b);
}

Test(wal, a_checkpoint_file_round_trips_and_a_damaged_one_is_refused)
{
    fr_wal_ckpt_t c = {
        .txnid = 77, .file_size = 1 << 20, .file_ino = 12345, .first_seg = 3, .psize = 4096};
    memset(c.meta[0], 0xab, sizeof c.meta[0]);
    memset(c.meta[1], 0xcd, sizeof c.meta[1]);
    uint8_t buf[FR_WAL_CKPT_LEN];
    fr_wal_ckpt_encode(&c, buf);
    fr_wal_ckpt_t d;
    const char *why = NULL;
    cr_assert_eq(fr_wal_ckpt_decode(buf, sizeof buf, &d, &why), FR_OK);
    cr_assert(d.txnid == 77 && d.file_size == (1 << 20) && d.file_ino == 12345 &&
              d.first_seg == 3 && d.psize == 4096);
    cr_assert(memcmp(d.meta, c.meta, sizeof c.meta) == 0);
    buf[100] ^= 1;
    cr_assert_eq(fr_wal_ckpt_decode(buf, sizeof buf, &d, &why), FR_E_STORAGE);
    cr_assert(strstr(why, "checksum"), "%s", why);
    cr_assert_eq(fr_wal_ckpt_decode(buf, sizeof buf - 1, &d, &why), FR_E_STORAGE);
}

/* ---- recovery ---- */

typedef struct {
    int64_t x[ENTITIES]; /* expected newest x per entity; INT64_MIN = never written */
    uint64_t versions;   /* versions written */
    int64_t offset;      /* high-water offset of source "src" partition 0 */
    int64_t ts;          /* event time of the next row: every row is newer than the last */
} model_t;

static void wal_open(st_env_t *e, uint64_t ckpt_bytes)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/fr_wal_test_XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    fr_clock_fixed_init(&e->clock, ST_NOW_US);
    e->map_size = 256u << 20;
    e->wal = true;
    e->wal_ckpt_bytes = ckpt_bytes;
    st_open_again(e);
}

/* Writes batches of random entities, each acknowledged (committed), into the model. */
static void write_batches(st_env_t *e, model_t *m, uint64_t *seed, int batches, int rows)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    fr_write_row_t *wr = calloc((size_t)rows, sizeof *wr);
    st_row_t *pl = calloc((size_t)rows, sizeof *pl);
    char(*ent)[16] = calloc((size_t)rows, sizeof *ent);
    for (int b = 0; b < batches; b++) {
        int64_t xs[4096];
        int ids[4096];
        for (int i = 0; i < rows; i++) {
            ids[i] = (int)st_below(seed, ENTITIES);
            xs[i] = (int64_t)st_rand(seed) >> 1;
            snprintf(ent[i], sizeof ent[i], "u%d", ids[i]);
            st_row_init(&pl[i], 2);
            msgpack_pack_int64(&pl[i].pk, xs[i]);
            size_t pad = st_below(seed, 200);
            msgpack_pack_bin(&pl[i].pk, pad);
            msgpack_pack_bin_body(&pl[i].pk, ent[i], pad < 8 ? pad : 8);
            for (size_t k = 8; k < pad; k++)
                msgpack_pack_bin_body(&pl[i].pk, "z", 1);
            wr[i] = (fr_write_row_t){.view = v,
                                     .entity = (const uint8_t *)ent[i],
                                     .entity_len = (uint16_t)strlen(ent[i]),
                                     .event_ts_us = m->ts++,
                                     .values = (const uint8_t *)pl[i].sb.data,
                                     .values_len = (uint32_t)pl[i].sb.size,
                                     .offset = ++m->offset,
                                     .has_offset = true};
        }
        fr_write_batch_t batch = {"src", 0, wr, (size_t)rows};
        fr_write_result_t res;
        cr_assert_eq(st_write_batch(e, &batch, &res), FR_OK);
        cr_assert_eq(res.written, (uint32_t)rows);
        for (int i = 0; i < rows; i++) {
            m->x[ids[i]] = xs[i];
            st_row_fini(&pl[i]);
        }
        m->versions += (uint64_t)rows;
    }
    free(ent);
    free(pl);
    free(wr);
    fr_registry_release(reg);
}

/* Entity u<id>'s newest x in r's snapshot: false when it has no version. */
static bool newest_x(fr_rtxn_t *r, const fr_view_def_t *v, int id, int64_t *x)
{
    char ent[16];
    snprintf(ent, sizeof ent, "u%d", id);
    fr_asof_t a;
    cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)ent, strlen(ent), INT64_MAX / 2, 0, &a), FR_OK);
    if (a.status == FR_STATUS_NOT_FOUND)
        return false;
    fr_mp_row_t row;
    fr_mp_item_t it;
    cr_assert_eq(fr_mp_row_open(&row, a.values, a.values_len), 0, "%s", ent);
    cr_assert_eq(fr_mp_row_next(&row, &it), 0, "%s", ent);
    cr_assert_eq(it.kind, FR_MP_INT, "%s", ent);
    *x = it.v.i;
    return true;
}

/* The store holds exactly the model: every entity's newest x, the version count, the offset. */
static void check_model(st_env_t *e, const model_t *m)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    for (int i = 0; i < ENTITIES; i++) {
        int64_t x;
        bool found = newest_x(r, v, i, &x);
        if (m->x[i] == INT64_MIN) {
            cr_assert(!found, "u%d should not exist", i);
            continue;
        }
        cr_assert(found, "u%d lost", i);
        cr_assert_eq(x, m->x[i], "u%d: x %lld, expected %lld", i, (long long)x, (long long)m->x[i]);
    }
    fr_view_stat_t st;
    cr_assert_eq(fr_store_view_stat(r, v->id, &st), FR_OK);
    cr_assert_eq(st.versions, m->versions);
    int64_t off;
    cr_assert_eq(fr_store_source_get(r, "src", 0, &off), FR_OK);
    cr_assert_eq(off, m->offset);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* Copies the log files (freshet.ckpt, wal.*) of dir `from` into `to`. */
static void copy_log(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/freshet.ckpt %s/wal.* %s/", from, from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* A copy of data.mdb has a new inode: the checkpoint of the copied directory is told so, as a
 * power loss (which keeps the file) or a crash would leave it. */
static void plant_inode(const char *dir)
{
    char ck[256], path[256];
    snprintf(ck, sizeof ck, "%s/freshet.ckpt", dir);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t cklen;
    uint8_t *ckb = read_file(ck, &cklen);
    fr_wal_ckpt_t c;
    const char *why = NULL;
    cr_assert_eq(fr_wal_ckpt_decode(ckb, cklen, &c, &why), FR_OK, "%s", why);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    c.file_ino = (uint64_t)st.st_ino;
    fr_wal_ckpt_encode(&c, ckb);
    write_file(ck, ckb, cklen);
    free(ckb);
}

static void model_init(model_t *m)
{
    for (int i = 0; i < ENTITIES; i++)
        m->x[i] = INT64_MIN;
    m->versions = 0;
    m->offset = 0;
    m->ts = ST_NOW_US - 3600 * ST_SEC;
}

/* A logged store with the registry and `batches` acknowledged batches of 100 rows in the model
 * (reset first); checkpoints every ckpt_bytes of log (0: the default). */
static void logged_store(st_env_t *e, model_t *m, uint64_t *seed, uint64_t ckpt_bytes, int batches)
{
    model_init(m);
    wal_open(e, ckpt_bytes);
    cr_assert_eq(st_apply_registry(e, REG, NULL), FR_OK);
    write_batches(e, m, seed, batches, 100);
}

/* Crashes after a checkpoint and more acknowledged writes, with data.mdb as `mode` picks it:
 * 0 the file at the crash (a process crash: the page cache survived), 1 only what the checkpoint
 * synced (nothing later reached the disk), 2 each page from either at random (a power loss). */
static void crash_and_recover(int mode, uint64_t seed)
{
    static model_t m;
    model_init(&m);
    st_env_t e;
    wal_open(&e, 1u << 30); /* no checkpoint but the ones asked for */
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    write_batches(&e, &m, &seed, 20, 300);
    cr_assert_eq(fr_store_checkpoint(e.store), FR_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/data.mdb", e.dir);
    size_t clen, nlen;
    uint8_t *at_ckpt = read_file(path, &clen);
    write_batches(&e, &m, &seed, 30, 300); /* rewrites most leaves the checkpoint holds */
    uint8_t *at_crash = read_file(path, &nlen);
    cr_assert_geq(nlen, clen);
    st_env_t d = e; /* the crashed machine's directory */
    snprintf(d.dir, sizeof d.dir, "/tmp/fr_wal_crash_XXXXXX");
    cr_assert_not_null(mkdtemp(d.dir));
    copy_log(e.dir, d.dir);
    const size_t ps = 4096;
    uint8_t *disk = malloc(nlen);
    for (size_t off = 0; off < nlen; off += ps) {
        size_t n = nlen - off < ps ? nlen - off : ps;
        int from_crash = mode == 0 ? 1 : mode == 1 ? 0 : (int)st_below(&seed, 2);
        if (from_crash)
            memcpy(disk + off, at_crash + off, n);
        else if (off < clen)
            memcpy(disk + off, at_ckpt + off, n);
        else
            memset(disk + off, 0, n); /* a page written after the checkpoint, lost */
    }
    snprintf(path, sizeof path, "%s/data.mdb", d.dir);
    write_file(path, disk, nlen);
    plant_inode(d.dir);
    st_close(&e);
    st_open_again(&d);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(d.store, &info), FR_OK);
    cr_assert(mode != 0 || info.wal_restored, "the checkpoint's metas were written back");
    cr_assert_eq(info.wal_replayed, 30, "one logged transaction per batch after the checkpoint");
    check_model(&d, &m);
    /* and the recovered store goes on: more writes, a clean close, a reopen without replay */
    write_batches(&d, &m, &seed, 5, 100);
    fr_store_close(d.store);
    st_open_again(&d);
    cr_assert_eq(fr_store_info(d.store, &info), FR_OK);
    cr_assert(!info.wal_restored && info.wal_replayed == 0, "a clean close leaves nothing to do");
    check_model(&d, &m);
    st_close(&d);
    free(disk);
    free(at_crash);
    free(at_ckpt);
}

Test(wal, a_process_crash_loses_no_acknowledged_write, .timeout = 120)
{
    crash_and_recover(0, 1);
}

Test(wal, nothing_after_the_checkpoint_on_disk_loses_no_acknowledged_write, .timeout = 120)
{
    crash_and_recover(1, 2);
}

Test(wal, a_power_loss_with_any_subset_of_later_pages_loses_no_acknowledged_write, .timeout = 300)
{
    for (uint64_t seed = 10; seed < 16; seed++)
        crash_and_recover(2, seed);
}

/* After a closing checkpoint: one segment is left (the empty one it opened), and reopening finds
 * every row of the model. Closes e. */
static void reopen_with_one_segment(st_env_t *e, const model_t *m)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls %s | grep -c '^wal\\.') -eq 1", e->dir);
    cr_assert_eq(system(cmd), 0, "old segments removed");
    st_open_again(e);
    check_model(e, m);
    st_close(e);
}

/* Writes 200-row batches until the log has checkpointed `want` times (each runs on the log's own
 * thread, and triggers that arrive while one runs are folded into the next, so how many a given
 * number of batches makes depends on timing); fails if 2000 batches never get there. */
static void write_until_checkpoints(st_env_t *e, model_t *m, uint64_t *seed, uint64_t want)
{
    fr_store_info_t info = {0};
    int batches = 0;
    while (info.wal_checkpoints < want) {
        cr_assert_lt(batches++, 2000, "%llu checkpoints after 2000 batches",
                     (unsigned long long)info.wal_checkpoints);
        write_batches(e, m, seed, 1, 200);
        cr_assert_eq(fr_store_info(e->store, &info), FR_OK);
    }
}

Test(wal, checkpoints_by_size_keep_the_log_short_and_lose_nothing, .timeout = 120)
{
    static model_t m;
    model_init(&m);
    uint64_t seed = 5;
    st_env_t e;
    wal_open(&e, 64u << 10); /* a checkpoint every 64 KiB of log */
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    write_until_checkpoints(&e, &m, &seed, 5);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert(info.wal && info.wal_records >= 5);
    cr_assert_eq(info.wal_checkpoint_failures, 0);
    check_model(&e, &m);
    fr_store_close(e.store);
    reopen_with_one_segment(&e, &m);
}

/* One row for entity u<id> with x, at the model's next event time and without a source; returns
 * the write's fr_err_t. */
static int write_one(st_env_t *e, model_t *m, int id, int64_t x)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    char ent[16];
    snprintf(ent, sizeof ent, "u%d", id);
    st_row_t pl;
    st_row_init(&pl, 2);
    msgpack_pack_int64(&pl.pk, x);
    msgpack_pack_bin(&pl.pk, 0);
    fr_write_row_t wr = {.view = v,
                         .entity = (const uint8_t *)ent,
                         .entity_len = (uint16_t)strlen(ent),
                         .event_ts_us = m->ts++,
                         .values = (const uint8_t *)pl.sb.data,
                         .values_len = (uint32_t)pl.sb.size};
    fr_write_batch_t batch = {NULL, 0, &wr, 1};
    fr_write_result_t res;
    fr_wtxn_t *w;
    int rc = fr_store_write_begin(e->store, &w); /* may be the call that fails */
    if (rc == FR_OK) {
        rc = fr_store_write_apply(w, &batch, &res);
        if (rc == FR_OK)
            rc = fr_store_write_commit(w);
        else
            fr_store_write_abort(w);
    }
    st_row_fini(&pl);
    fr_registry_release(reg);
    return rc;
}

/* Entity u<id>'s newest x in a fresh snapshot; INT64_MIN when it has no version. */
static int64_t read_x(st_env_t *e, int id)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    int64_t x;
    if (!newest_x(r, v, id, &x))
        x = INT64_MIN;
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    return x;
}

/* A commit that fails after its record was appended, and whose record cannot be taken back out
 * of the log either: the log closes (fr_store_info says so), every later write fails with
 * STORAGE, reads keep answering the acknowledged state, and a reopen recovers it, with the
 * failed write's record applied or not, nothing else changed. */
Test(wal, a_record_that_cannot_be_taken_back_closes_the_log_until_a_reopen, .timeout = 120)
{
    static model_t m;
    uint64_t seed = 11;
    st_env_t e;
    logged_store(&e, &m, &seed, 0, 5);
    /* Fail the nth storage call of a one-row write, and the undo, for n = 1, 2, ... until a
     * failure lands at or after the log append (earlier ones fail cleanly and undo nothing). */
    const int64_t lost_x = 424242;
    fr_store_info_t info = {0};
    int rc = FR_OK;
    long nth;
    for (nth = 1; nth < 200 && !info.wal_closed; nth++) {
        fr_fault_arm(FR_FAULT_WAL_UNDO, 1, 0);
        fr_fault_arm(FR_FAULT_STORE, nth, 0);
        rc = write_one(&e, &m, 7, lost_x);
        fr_fault_disarm();
        cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
        if (rc == FR_OK) { /* the fault fell past the write's last storage call */
            cr_assert(!info.wal_closed);
            cr_assert_fail("no storage call of the write reached the log (nth %ld)", nth);
        }
    }
    cr_assert(info.wal_closed, "the log did not close within %ld faults", nth);
    cr_assert_eq(rc, FR_E_STORAGE, "the write that closed the log: %s", fr_err_name(rc));
    /* closed: nothing more is written, and the refusal changes nothing */
    cr_assert_eq(write_one(&e, &m, 8, 1), FR_E_STORAGE);
    cr_assert_eq(write_one(&e, &m, 9, 2), FR_E_STORAGE);
    check_model(&e, &m);
    fr_store_close(e.store);
    st_open_again(&e);
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert(!info.wal_closed, "a reopen opens a new log");
    if (read_x(&e, 7) == lost_x) { /* its record had reached the log: replayed */
        m.x[7] = lost_x;
        m.versions++;
    }
    check_model(&e, &m);
    write_batches(&e, &m, &seed, 2, 100); /* and writes work again */
    check_model(&e, &m);
    st_close(&e);
}

/* Regression: a group whose log record was larger than replay accepts (FR_WAL_REC_MAX, 1 GiB)
 * was acknowledged, then dropped by recovery as a torn tail with everything logged after it. Now
 * such a group is refused with TOO_LARGE before anything is written (the limit is lowered here so
 * the test need not write a gigabyte), and the log and the store go on unchanged. */
Test(wal, a_group_too_large_for_one_log_record_is_refused_and_changes_nothing, .timeout = 120)
{
    static model_t m;
    uint64_t seed = 5;
    st_env_t e;
    logged_store(&e, &m, &seed, 0, 3);
    fr_store_close(e.store);
    e.wal_record_max = 16; /* below any one-row record */
    st_open_again(&e);
    int64_t before = read_x(&e, 7);
    cr_assert_eq(write_one(&e, &m, 7, 777), FR_E_TOO_LARGE);
    cr_assert_eq(read_x(&e, 7), before, "the refused write is not visible");
    check_model(&e, &m);
    fr_store_close(e.store);
    e.wal_record_max = 0;
    st_open_again(&e); /* replay: the refused write is not in the log either */
    cr_assert_eq(read_x(&e, 7), before);
    check_model(&e, &m);
    write_batches(&e, &m, &seed, 2, 100); /* and writes go on */
    check_model(&e, &m);
    st_close(&e);
}

/* Regression (found by fuzz_frame): the store kept the caller's path pointer, and the log uses
 * the directory long after open, so a caller whose path buffer went away (the fuzz harness's
 * config on the stack) had checkpoints and the closing checkpoint work on whatever memory held. */
Test(wal, the_store_keeps_its_own_copy_of_the_directory_path, .timeout = 120)
{
    static model_t m;
    model_init(&m);
    uint64_t seed = 11;
    st_env_t e;
    wal_open(&e, 64u << 10);
    char real[sizeof e.dir];
    memcpy(real, e.dir, sizeof real);
    snprintf(e.dir, sizeof e.dir, "/nonexistent/freshet_test"); /* the caller's buffer reused */
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    write_until_checkpoints(&e, &m, &seed, 5);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
    cr_assert_eq(info.wal_checkpoint_failures, 0, "checkpoints wrote into the real directory");
    fr_store_close(e.store);
    memcpy(e.dir, real, sizeof real);
    reopen_with_one_segment(&e, &m);
}

/* A store of 10 logged batches after its first checkpoint, "crashed": d gets a copy of its
 * directory as a kill -9 leaves it (data.mdb whole, the log), then `damage` (a shell command with
 * one %s for d's directory, or NULL) is run on the copy. e is closed; the model holds the rows. */
/* d becomes a copy of e's settings with a new directory holding e's data.mdb, checkpoint and
 * log as they are now (what a kill -9 leaves). */
static void copy_store(st_env_t *d, const st_env_t *e)
{
    *d = *e;
    snprintf(d->dir, sizeof d->dir, "/tmp/fr_wal_copy_XXXXXX");
    cr_assert_not_null(mkdtemp(d->dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/data.mdb %s/freshet.ckpt %s/wal.* %s/", e->dir, e->dir, e->dir,
             d->dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Runs `damage` (a shell command with one %s, given arg; or NULL) on the copy d, makes its
 * checkpoint name d's data.mdb, and closes and removes the original e. */
static void finish_copy(st_env_t *d, st_env_t *e, const char *damage, const char *arg)
{
    if (damage) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, damage, arg);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    plant_inode(d->dir);
    st_close(e);
}

/* d: a copy of a logged store with 10 acknowledged batches, as a kill -9 leaves it, written with
 * sync durability or async; then `damage` runs on it (one %s for d's directory, or NULL). */
static void crashed_copy(st_env_t *d, model_t *m, uint64_t seed, bool sync, const char *damage)
{
    st_env_t e;
    model_init(m);
    wal_open(&e, 1u << 30);
    if (sync) { /* reopened: the newest segment holds only sync records */
        fr_store_close(e.store);
        e.sync = true;
        st_open_again(&e);
    }
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    write_batches(&e, m, &seed, 10, 100);
    copy_store(d, &e);
    finish_copy(d, &e, damage, d->dir);
}

Test(wal, a_torn_tail_ends_the_log_and_the_rest_is_replayed, .timeout = 120)
{
    static model_t m;
    st_env_t d;
    /* half a record's worth of garbage after the last record */
    for (int sync = 0; sync < 2; sync++) {
        crashed_copy(&d, &m, 9, sync,
                     "printf 'FRWS\\377\\377\\000\\000garbage' >> $(ls %s/wal.* | tail -n 1)");
        st_open_again(&d);
        check_model(&d, &m);
        st_close(&d);
    }
}

/* Regression: inside the newest segment a bad record always ended the log, so damage to a record
 * that sync durability had fsynced and acknowledged silently dropped it and every acknowledged
 * write logged after it. A sync record after the bad one proves it was durable: now refused,
 * naming the offset to truncate at. Async records after a hole prove nothing (the page cache
 * writes pages in any order), so there it stays a torn tail. */
Test(wal, damage_inside_the_newest_sync_segment_is_refused_not_taken_for_a_torn_tail,
     .timeout = 120)
{
    static model_t m;
    const char *flip = "printf '\\377' | dd of=$(ls %s/wal.* | tail -n 1) bs=1 seek=30 "
                       "conv=notrunc status=none";
    st_env_t d;
    crashed_copy(&d, &m, 4, false, flip);
    st_open_again(&d); /* async: a hole is what a power loss may leave */
    st_close(&d);
    crashed_copy(&d, &m, 4, true, flip);
    fr_store_opts_t o = {.path = d.dir, .map_size = d.map_size, .clock = &d.clock,
                         .durability = FR_DURABILITY_SYNC, .wal = true};
    const char *why = NULL;
    fr_store_t *st = NULL;
    int rc = fr_store_open(&o, &st, &why);
    cr_assert_eq(rc, FR_E_STORAGE, "open: %s", fr_err_name(rc));
    cr_assert(why && strstr(why, "not a torn tail") && strstr(why, "fsynced after it"), "why: %s",
              why ? why : "");
    /* the operator accepts the loss: truncated where the message says, the store opens */
    const char *at = strstr(why, " to ");
    cr_assert_not_null(at, "why names the length: %s", why);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "truncate -s %ld $(ls %s/wal.* | tail -n 1)", strtol(at + 4, NULL, 10),
             d.dir);
    cr_assert_eq(system(cmd), 0);
    rc = fr_store_open(&o, &d.store, &why);
    cr_assert_eq(rc, FR_OK, "open after the truncation: %s", why ? why : "");
    st_close(&d);
}

/* A crash during a checkpoint leaves two segments to replay: the one the previous checkpoint
 * starts at, and the one the new checkpoint opened. d gets such a directory: data.mdb, the old
 * checkpoint and the first segment as they were before the checkpoint, the second segment with
 * the writes after it. `damage` (with one %s for the first segment's path, or NULL) runs on it. */
static void two_segment_copy(st_env_t *d, model_t *m, const char *damage)
{
    uint64_t seed = 21;
    st_env_t e;
    logged_store(&e, m, &seed, 1u << 30, 5);
    copy_store(d, &e);
    char cmd[1024];
    cr_assert_eq(fr_wal_checkpoint(e.store), FR_OK);
    write_batches(&e, m, &seed, 5, 100);
    snprintf(cmd, sizeof cmd, "cp $(ls %s/wal.* | tail -n 1) %s/", e.dir, d->dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "test $(ls %s | grep -c '^wal\\.') -eq 2", d->dir);
    cr_assert_eq(system(cmd), 0, "two segments in the copy");
    char first[300];
    snprintf(first, sizeof first, "$(ls %s/wal.* | head -n 1)", d->dir);
    finish_copy(d, &e, damage, first);
}

/* Regression: a record that failed its checksum always ended the log, as a torn tail does, so
 * damage inside an older segment silently dropped it and every acknowledged write after it.
 * Now the open refuses when later segments hold records, naming the damage and the choices. */
Test(wal, damage_before_later_segments_is_refused_not_taken_for_a_torn_tail, .timeout = 120)
{
    static model_t m;
    st_env_t d;
    two_segment_copy(&d, &m, NULL); /* undamaged: both segments replay */
    st_open_again(&d);
    check_model(&d, &m);
    st_close(&d);
    /* one byte flipped 100 bytes into the first segment (inside its first record) */
    two_segment_copy(&d, &m, "printf '\\377' | dd of=%s bs=1 seek=100 conv=notrunc status=none");
    fr_store_opts_t o = {.path = d.dir, .map_size = d.map_size, .clock = &d.clock,
                         .durability = FR_DURABILITY_ASYNC, .wal = true};
    const char *why = NULL;
    fr_store_t *st = NULL;
    int rc = fr_store_open(&o, &st, &why);
    cr_assert_eq(rc, FR_E_STORAGE, "open: %s", fr_err_name(rc));
    cr_assert(why && strstr(why, "not a torn tail") && strstr(why, "Restore a backup"), "why: %s",
              why ? why : "");
    d.store = NULL;
    /* the operator accepts the loss: the later segment moved out, the store opens */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm $(ls %s/wal.* | tail -n 1)", d.dir);
    cr_assert_eq(system(cmd), 0);
    rc = fr_store_open(&o, &d.store, &why);
    cr_assert_eq(rc, FR_OK, "open after moving the later segment out: %s", why ? why : "");
    st_close(&d);
}

Test(wal, a_checkpoint_of_another_data_file_is_refused_and_nothing_changes, .timeout = 60)
{
    st_env_t a, b;
    wal_open(&a, 0);
    wal_open(&b, 0);
    cr_assert_eq(st_apply_registry(&a, REG, NULL), FR_OK);
    fr_store_close(a.store);
    fr_store_close(b.store);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/freshet.ckpt %s/freshet.ckpt", b.dir, a.dir);
    cr_assert_eq(system(cmd), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/data.mdb", a.dir);
    size_t before_len, after_len;
    uint8_t *before = read_file(path, &before_len);
    fr_store_opts_t o = {.path = a.dir,
                         .map_size = a.map_size,
                         .clock = &a.clock,
                         .wal = true,
                         .durability = FR_DURABILITY_SYNC};
    const char *why = NULL;
    fr_store_t *s = NULL;
    cr_assert_eq(fr_store_open(&o, &s, &why), FR_E_STORAGE);
    cr_assert(strstr(why, "does not belong"), "%s", why);
    uint8_t *after = read_file(path, &after_len);
    cr_assert(before_len == after_len && memcmp(before, after, before_len) == 0,
              "data.mdb untouched");
    free(before);
    free(after);
    st_open_again(&b);
    st_close(&b);
    a.store = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s", a.dir);
    cr_assert_eq(system(cmd), 0);
}

Test(wal, opening_without_the_log_replays_it_first_then_retires_it, .timeout = 120)
{
    static model_t m;
    st_env_t d;
    crashed_copy(&d, &m, 3, false, NULL);
    d.wal = false;
    st_open_again(&d);
    fr_store_info_t info;
    cr_assert_eq(fr_store_info(d.store, &info), FR_OK);
    cr_assert(!info.wal && info.wal_replayed == 11, "the registry and 10 batches");
    check_model(&d, &m);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s | grep -qE '^(wal\\.|freshet\\.ckpt)'", d.dir);
    cr_assert_neq(system(cmd), 0, "the log is gone");
    st_close(&d);
}

/* Regression: retiring the log removed freshet.ckpt first, so a crash (or a failed unlink) before
 * the segments were gone left a directory every later open refused ("segments but no
 * freshet.ckpt"). A failure at each storage step of opening without the log, in turn, stands in
 * for a crash there: the next open without the log must succeed with every acknowledged row. */
Test(wal, a_failure_at_any_step_of_retiring_the_log_leaves_a_store_that_opens, .timeout = 300)
{
    static model_t m;
    bool clean = false;
    for (long nth = 1; nth < 400 && !clean; nth++) {
        st_env_t d;
        crashed_copy(&d, &m, 3, false, NULL);
        d.wal = false;
        fr_store_opts_t o = {.path = d.dir, .map_size = d.map_size, .clock = &d.clock,
                             .durability = FR_DURABILITY_ASYNC};
        const char *why = NULL;
        fr_fault_arm(FR_FAULT_STORE, nth, 0);
        int rc = fr_store_open(&o, &d.store, &why);
        long injected = fr_fault_injected();
        fr_fault_disarm();
        if (rc == FR_OK) {
            clean = injected == 0; /* the fault fell past the last storage call of the open */
            fr_store_close(d.store);
        }
        rc = fr_store_open(&o, &d.store, &why);
        cr_assert_eq(rc, FR_OK, "after a failure at storage call %ld: %s (%s)", nth, fr_err_name(rc),
                     why ? why : "");
        check_model(&d, &m);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "ls %s | grep -qE '^(wal\\.|freshet\\.ckpt)'", d.dir);
        cr_assert_neq(system(cmd), 0, "the log is gone after storage call %ld failed", nth);
        st_close(&d);
    }
    cr_assert(clean, "no open without a fault within 400 storage calls");
}

/* The fuzz seeds are written by a script of their own (tests/fuzz/gen_corpus_wal.py): they must
 * be what they say, or the fuzzer starts from nothing. */
Test(wal, the_fuzz_seeds_are_valid_where_they_claim_to_be)
{
    size_t n;
    uint8_t *p = read_file(FR_SOURCE_DIR "/tests/fuzz/corpus/wal/two_records", &n);
    uint64_t txnid;
    const uint8_t *payload;
    size_t plen, rlen, off = 0;
    int records = 0;
    while (off < n &&
           fr_wal_rec_parse(p + off, n - off, &txnid, &payload, &plen, &rlen) == FR_WAL_REC_OK) {
        records++;
        off += rlen;
    }
    cr_assert_eq(records, 2);
    cr_assert_eq(off, n);
    free(p);
    p = read_file(FR_SOURCE_DIR "/tests/fuzz/corpus/wal/checkpoint", &n);
    fr_wal_ckpt_t c;
    const char *why = NULL;
    cr_assert_eq(fr_wal_ckpt_decode(p, n, &c, &why), FR_OK, "%s", why ? why : "");
    cr_assert_eq(c.txnid, 7);
    free(p);
}
