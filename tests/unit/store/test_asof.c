/* As-of reads (DESIGN.md, Semantics 1, 7): out-of-order writes in random group commits against a
 * reference model, the served flag, and idempotent replays. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"user\", \"ttl\": 0,"
    "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"s\", \"type\": \"string\"}]}]}";

#define N_ENT 7
#define N_VER 240
#define BASE_TS (ST_NOW_US - 3600 * ST_SEC)

typedef struct {
    int ent;
    int64_t ts;
    uint8_t val[32];
    size_t val_len;
    int stored; /* 1 when the model says this write added a version */
    int order;  /* application order among stored versions: higher = newer write */
} mver_t;

static const char *entity_name(int i)
{
    static const char *names[N_ENT] = {"u1", "u10", "u1\x00", "ab", "a", "b", "user-with-a-long-id"};
    return names[i];
}
static size_t entity_len(int i) { return i == 2 ? 3 : strlen(entity_name(i)); }

static void pack_val(mver_t *m, int64_t x, int with_s)
{
    st_row_t r;
    st_row_init(&r, with_s ? 2 : 1);
    msgpack_pack_int64(&r.pk, x);
    if (with_s) {
        msgpack_pack_str(&r.pk, 3);
        msgpack_pack_str_body(&r.pk, x & 1 ? "odd" : "evn", 3);
    }
    cr_assert_leq(r.sb.size, sizeof m->val);
    memcpy(m->val, r.sb.data, r.sb.size);
    m->val_len = r.sb.size;
    st_row_fini(&r);
}

/* Reference: newest event_ts <= as_of, ties broken by the newest write. */
static const mver_t *model_asof(const mver_t *v, int n, int ent, int64_t as_of)
{
    const mver_t *best = NULL;
    for (int i = 0; i < n; i++) {
        if (!v[i].stored || v[i].ent != ent || v[i].ts > as_of)
            continue;
        if (!best || v[i].ts > best->ts || (v[i].ts == best->ts && v[i].order > best->order))
            best = &v[i];
    }
    return best;
}

static void check_one(fr_rtxn_t *r, const fr_view_def_t *view, const mver_t *v, int n, int ent,
                      int64_t as_of, uint64_t seed)
{
    fr_asof_t got;
    int rc = fr_asof_get(r, view, (const uint8_t *)entity_name(ent), entity_len(ent), as_of, 0, &got);
    cr_assert_eq(rc, FR_OK);
    const mver_t *want = model_asof(v, n, ent, as_of);
    if (!want) {
        cr_assert_eq(got.status, FR_STATUS_NOT_FOUND, "seed %llu ent %d as_of %lld: want NOT_FOUND",
                     (unsigned long long)seed, ent, (long long)as_of);
        cr_assert_eq(got.event_ts_us, 0);
        return;
    }
    cr_assert_eq(got.status, FR_STATUS_PRESENT, "seed %llu ent %d as_of %lld: status %d",
                 (unsigned long long)seed, ent, (long long)as_of, got.status);
    cr_assert_eq(got.event_ts_us, want->ts, "seed %llu ent %d as_of %lld: ts %lld want %lld",
                 (unsigned long long)seed, ent, (long long)as_of, (long long)got.event_ts_us,
                 (long long)want->ts);
    cr_assert_eq(got.values_len, want->val_len, "seed %llu ent %d as_of %lld",
                 (unsigned long long)seed, ent, (long long)as_of);
    cr_assert_arr_eq(got.values, want->val, want->val_len, "seed %llu ent %d as_of %lld: values",
                     (unsigned long long)seed, ent, (long long)as_of);
}

static void check_all(st_env_t *e, const fr_view_def_t *view, const mver_t *v, int n, uint64_t *s,
                      uint64_t seed)
{
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    for (int ent = 0; ent < N_ENT; ent++) {
        check_one(r, view, v, n, ent, 0, seed);
        check_one(r, view, v, n, ent, BASE_TS - 1, seed); /* before any event */
        check_one(r, view, v, n, ent, ST_NOW_US, seed);
        for (int k = 0; k < 40; k++)
            check_one(r, view, v, n, ent, BASE_TS - 2 * ST_SEC + (int64_t)st_below(s, 30 * ST_SEC),
                      seed);
    }
    for (int i = 0; i < n; i++) { /* exactly at, and just before, every event time */
        if (!v[i].stored)
            continue;
        check_one(r, view, v, n, v[i].ent, v[i].ts, seed);
        check_one(r, view, v, n, v[i].ent, v[i].ts - 1, seed);
    }
    /* An entity never written, and a key between entities. */
    fr_asof_t got;
    cr_assert_eq(fr_asof_get(r, view, (const uint8_t *)"zz", 2, ST_NOW_US, 0, &got), FR_OK);
    cr_assert_eq(got.status, FR_STATUS_NOT_FOUND);
    cr_assert_eq(fr_asof_get(r, view, (const uint8_t *)"u", 1, ST_NOW_US, 0, &got), FR_OK);
    cr_assert_eq(got.status, FR_STATUS_NOT_FOUND);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
}

Test(asof, random_out_of_order_group_commits_match_the_reference_model)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        uint64_t s = seed * 1000003;
        st_env_t e;
        st_open(&e, ST_NOW_US, 0);
        cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
        fr_registry_t *reg;
        const fr_view_def_t *view = st_view(&e, &reg, "v");

        static mver_t v[N_VER];
        memset(v, 0, sizeof v);
        for (int i = 0; i < N_VER; i++) {
            v[i].ent = (int)st_below(&s, N_ENT);
            v[i].ts = BASE_TS + (int64_t)st_below(&s, 25) * ST_SEC; /* many duplicates */
            pack_val(&v[i], (int64_t)st_below(&s, 3) - 1, (int)st_below(&s, 2));
        }
        /* v[] is already in random insertion order; apply it in groups of batches. */
        int i = 0, order = 0;
        uint64_t versions = 0;
        while (i < N_VER) {
            fr_wtxn_t *w;
            cr_assert_eq(fr_store_write_begin(e.store, &w), FR_OK);
            int nbatches = 1 + (int)st_below(&s, 4);
            for (int b = 0; b < nbatches && i < N_VER; b++) {
                int nrows = 1 + (int)st_below(&s, 12);
                if (nrows > N_VER - i)
                    nrows = N_VER - i;
                fr_write_row_t rows[12];
                uint32_t want_written = 0, want_unchanged = 0;
                for (int k = 0; k < nrows; k++) {
                    mver_t *m = &v[i + k];
                    rows[k] = (fr_write_row_t){.view = view,
                                               .entity = (const uint8_t *)entity_name(m->ent),
                                               .entity_len = (uint16_t)entity_len(m->ent),
                                               .event_ts_us = m->ts,
                                               .values = m->val,
                                               .values_len = (uint32_t)m->val_len};
                    const char *why = NULL;
                    cr_assert_eq(fr_store_check_row(&rows[k], ST_NOW_US, 300 * ST_SEC, &why), FR_OK,
                                 "%s", why);
                    /* the model's idempotence rule: equal to the newest write at this event_ts */
                    const mver_t *same = NULL;
                    for (int j = 0; j < i + k; j++)
                        if (v[j].stored && v[j].ent == m->ent && v[j].ts == m->ts &&
                            (!same || v[j].order > same->order))
                            same = &v[j];
                    if (same && same->val_len == m->val_len &&
                        memcmp(same->val, m->val, m->val_len) == 0) {
                        want_unchanged++;
                    } else {
                        m->stored = 1;
                        m->order = ++order;
                        want_written++;
                    }
                }
                fr_write_batch_t batch = {.rows = rows, .row_count = (size_t)nrows};
                fr_write_result_t res;
                cr_assert_eq(fr_store_write_apply(w, &batch, &res), FR_OK);
                cr_assert_eq(res.written, want_written, "seed %llu", (unsigned long long)seed);
                cr_assert_eq(res.unchanged, want_unchanged, "seed %llu", (unsigned long long)seed);
                cr_assert_eq(res.high_water, -1);
                versions += want_written;
                i += nrows;
            }
            cr_assert_eq(fr_store_write_commit(w), FR_OK);
            if (st_below(&s, 3) == 0)
                check_all(&e, view, v, i, &s, seed);
        }
        check_all(&e, view, v, N_VER, &s, seed);
        fr_view_stat_t vs = st_view_stat(&e, view->id);
        cr_assert_eq(vs.versions, versions);
        cr_assert_eq(vs.newest_event_ts_us, BASE_TS + 24 * ST_SEC, "seed %llu", (unsigned long long)seed);
        fr_registry_release(reg);
        st_close(&e);
    }
}

/* One row (x = value) for entity "e" at ts, written in its own group at the clock's time. */
static fr_write_result_t put_x(st_env_t *e, const fr_view_def_t *view, int64_t ts, int64_t x)
{
    st_row_t r;
    st_row_init(&r, 1);
    msgpack_pack_int64(&r.pk, x);
    fr_write_row_t row = {.view = view,
                          .entity = (const uint8_t *)"e",
                          .entity_len = 1,
                          .event_ts_us = ts,
                          .values = (const uint8_t *)r.sb.data,
                          .values_len = (uint32_t)r.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(e, &b, &res), FR_OK);
    st_row_fini(&r);
    return res;
}

static int64_t read_x(fr_rtxn_t *r, const fr_view_def_t *view, int64_t as_of, unsigned flags,
                      fr_asof_t *got)
{
    cr_assert_eq(fr_asof_get(r, view, (const uint8_t *)"e", 1, as_of, flags, got), FR_OK);
    if (got->status == FR_STATUS_NOT_FOUND)
        return INT64_MIN;
    fr_mp_reader_t rd;
    fr_mp_item_t it;
    fr_mp_reader_init(&rd, got->values, got->values_len);
    cr_assert_eq(fr_mp_next(&rd, &it), 0);
    cr_assert_eq(it.kind, FR_MP_ARRAY);
    cr_assert_eq(fr_mp_next(&rd, &it), 0);
    cr_assert_eq(it.kind, FR_MP_INT);
    return it.v.i;
}

Test(asof, served_mode_skips_versions_written_after_as_of)
{
    const int64_t t0 = ST_NOW_US;
    st_env_t e;
    st_open(&e, t0 + 1000 * ST_SEC, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *view = st_view(&e, &reg, "v");

    /* A: event 100 s, learned at 1000 s. B: same event time, new values, learned at 2000 s.
     * C: event 150 s, learned at 2000 s. */
    put_x(&e, view, t0 + 100 * ST_SEC, 1);
    e.clock.fixed_us = t0 + 2000 * ST_SEC;
    put_x(&e, view, t0 + 100 * ST_SEC, 2);
    put_x(&e, view, t0 + 150 * ST_SEC, 3);

    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_asof_t got;
    /* event mode ignores written_at */
    cr_assert_eq(read_x(r, view, t0 + 1500 * ST_SEC, 0, &got), 3);
    cr_assert_eq(read_x(r, view, t0 + 120 * ST_SEC, 0, &got), 2, "ties: newest write");
    /* served at 1500 s: B and C were written at 2000 s, A is what the store served then */
    cr_assert_eq(read_x(r, view, t0 + 1500 * ST_SEC, FR_ASOF_SERVED, &got), 1);
    cr_assert_eq(got.event_ts_us, t0 + 100 * ST_SEC);
    cr_assert_eq(got.written_at_us, t0 + 1000 * ST_SEC);
    cr_assert_eq(got.status, FR_STATUS_PRESENT);
    /* served exactly at the write time includes that write */
    cr_assert_eq(read_x(r, view, t0 + 2000 * ST_SEC, FR_ASOF_SERVED, &got), 3);
    cr_assert_eq(got.written_at_us, t0 + 2000 * ST_SEC);
    cr_assert_eq(read_x(r, view, t0 + 1000 * ST_SEC, FR_ASOF_SERVED, &got), 1);
    /* served one microsecond before A was learned: nothing */
    cr_assert_eq(read_x(r, view, t0 + 1000 * ST_SEC - 1, FR_ASOF_SERVED, &got), INT64_MIN);
    cr_assert_eq(got.status, FR_STATUS_NOT_FOUND);
    /* event mode at the same instant sees C */
    cr_assert_eq(read_x(r, view, t0 + 1000 * ST_SEC - 1, 0, &got), 3);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    st_close(&e);
}

Test(asof, served_mode_does_not_fall_through_to_another_entity)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *view = st_view(&e, &reg, "v");
    put_x(&e, view, ST_NOW_US - 10 * ST_SEC, 5); /* entity "e", written at now */
    /* entity "f" (sorts after "e"), written earlier */
    e.clock.fixed_us = ST_NOW_US - 100 * ST_SEC;
    st_row_t rw;
    st_row_init(&rw, 1);
    msgpack_pack_int64(&rw.pk, 6);
    fr_write_row_t row = {.view = view, .entity = (const uint8_t *)"f", .entity_len = 1,
                          .event_ts_us = ST_NOW_US - 200 * ST_SEC,
                          .values = (const uint8_t *)rw.sb.data, .values_len = (uint32_t)rw.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    st_row_fini(&rw);

    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_asof_t got;
    cr_assert_eq(read_x(r, view, ST_NOW_US - 1, FR_ASOF_SERVED, &got), INT64_MIN);
    cr_assert_eq(got.status, FR_STATUS_NOT_FOUND);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    st_close(&e);
}

Test(asof, identical_replay_is_unchanged_and_adds_no_version)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *view = st_view(&e, &reg, "v");
    const int64_t ts = ST_NOW_US - 60 * ST_SEC;

    fr_write_result_t res = put_x(&e, view, ts, 10);
    cr_assert_eq(res.written, 1);
    cr_assert_eq(res.unchanged, 0);
    cr_assert_eq(st_view_stat(&e, view->id).versions, 1);

    res = put_x(&e, view, ts, 10);
    cr_assert_eq(res.written, 0);
    cr_assert_eq(res.unchanged, 1);
    cr_assert_eq(st_view_stat(&e, view->id).versions, 1, "a replay must not add a version");

    res = put_x(&e, view, ts, 11);
    cr_assert_eq(res.written, 1, "different values at the same event time add a version");
    cr_assert_eq(res.unchanged, 0);
    cr_assert_eq(res.late, 0);
    cr_assert_eq(st_view_stat(&e, view->id).versions, 2);

    fr_rtxn_t *r;
    fr_asof_t got;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(read_x(r, view, ts, 0, &got), 11, "the newer write wins");
    fr_rtxn_reset(r);

    /* 10 again: it equals an older write, not the newest one at ts, so it is a new version */
    res = put_x(&e, view, ts, 10);
    cr_assert_eq(res.written, 1);
    cr_assert_eq(st_view_stat(&e, view->id).versions, 3);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(read_x(r, view, ts + 5, 0, &got), 10);
    fr_rtxn_reset(r);

    /* an older event time is written (and counted late) but does not change the current value */
    res = put_x(&e, view, ts - ST_SEC, 99);
    cr_assert_eq(res.written, 1);
    cr_assert_eq(res.late, 1);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(read_x(r, view, ST_NOW_US, 0, &got), 10);
    cr_assert_eq(read_x(r, view, ts - 1, 0, &got), 99);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_view_stat_t vs = st_view_stat(&e, view->id);
    cr_assert_eq(vs.versions, 4);
    cr_assert_eq(vs.newest_event_ts_us, ts);
    fr_registry_release(reg);
    st_close(&e);
}

Test(asof, identical_rows_in_one_batch_store_one_version)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *view = st_view(&e, &reg, "v");
    st_row_t rw;
    st_row_init(&rw, 1);
    msgpack_pack_int64(&rw.pk, 1);
    fr_write_row_t row = {.view = view, .entity = (const uint8_t *)"e", .entity_len = 1,
                          .event_ts_us = ST_NOW_US,
                          .values = (const uint8_t *)rw.sb.data, .values_len = (uint32_t)rw.sb.size};
    fr_write_row_t rows[3] = {row, row, row};
    fr_write_batch_t b = {.rows = rows, .row_count = 3};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 1);
    cr_assert_eq(res.unchanged, 2);
    cr_assert_eq(st_view_stat(&e, view->id).versions, 1);
    st_row_fini(&rw);
    fr_registry_release(reg);
    st_close(&e);
}

/* ---- "now" of a snapshot (fr_store_read_now) ---- */

#include <pthread.h>
#include <stdatomic.h>

#include "store/store_int.h"

typedef struct {
    fr_store_t *store;
    uint64_t txnid;
    int64_t written_at;
} stamp_arg_t;

static void *publish_stamp(void *p)
{
    stamp_arg_t *a = p;
    __typeof__(a->store->stamps[0]) *slot = &a->store->stamps[a->txnid % FR_STAMP_RING];
    atomic_store(&slot->written_at, a->written_at);
    return NULL;
}

/* The snapshot's "now" is the clock, capped below the stamp of the first transaction it does not
 * hold: unannounced, announced with an earlier or a later stamp, and announced with the stamp
 * still being published by another thread (the reader waits for it rather than guess). */
Test(asof, read_now_is_capped_below_the_next_transactions_stamp)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 0);
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    uint64_t next = fr_rtxn_id(r) + 1;
    __typeof__(e.store->stamps[0]) *slot = &e.store->stamps[next % FR_STAMP_RING];
    atomic_store(&slot->txnid, next - FR_STAMP_RING); /* a lap behind: not announced */
    atomic_store(&slot->written_at, ST_NOW_US - 500);
    cr_assert_eq(fr_store_read_now(r), ST_NOW_US - 1);

    atomic_store(&slot->txnid, next);
    cr_assert_eq(fr_store_read_now(r), ST_NOW_US - 501, "capped below an earlier stamp");
    atomic_store(&slot->written_at, ST_NOW_US + 500);
    cr_assert_eq(fr_store_read_now(r), ST_NOW_US - 1, "a later stamp does not raise now");

    for (int round = 0; round < 50; round++) {
        atomic_store(&slot->written_at, 0); /* announced, stamp not yet published */
        stamp_arg_t a = {e.store, next, ST_NOW_US - 1000 - round};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, publish_stamp, &a), 0);
        int64_t got = fr_store_read_now(r);
        pthread_join(th, NULL);
        cr_assert_eq(got, ST_NOW_US - 1001 - round, "round %d: %lld", round, (long long)got);
    }
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    st_close(&e);
}
