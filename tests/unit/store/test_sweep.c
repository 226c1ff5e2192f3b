/* Retention sweeper (DESIGN.md, Semantics 8): versions older than their view's retention go away
 * over several bounded ticks that resume where the last one stopped; the newest version stays until
 * it is too old as well; retention 0 keeps everything; per-view counters follow. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
    " \"views\": ["
    "  {\"name\": \"short\", \"entity\": \"user\", \"retention\": \"1h\","
    "   \"features\": [{\"name\": \"n\", \"type\": \"int64\"}]},"
    "  {\"name\": \"keep\", \"entity\": \"user\", \"retention\": 0,"
    "   \"features\": [{\"name\": \"n\", \"type\": \"int64\"}]}]}";

#define T0 ST_NOW_US
#define MIN (60 * ST_SEC)
#define HOUR (60 * MIN)

static void put(st_env_t *e, const fr_view_def_t *v, const char *entity, int64_t ts, int64_t n)
{
    st_row_t rw;
    st_row_init(&rw, 1);
    msgpack_pack_int64(&rw.pk, n);
    fr_write_row_t row = {.view = v, .entity = (const uint8_t *)entity,
                          .entity_len = (uint16_t)strlen(entity), .event_ts_us = ts,
                          .values = (const uint8_t *)rw.sb.data, .values_len = (uint32_t)rw.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 1);
    st_row_fini(&rw);
}

/* One tick in its own group commit; returns the tick's deletions. */
static uint64_t tick(st_env_t *e, fr_sweep_state_t *st, size_t max_keys)
{
    fr_wtxn_t *w;
    uint64_t deleted = 0;
    cr_assert_eq(fr_store_write_begin(e->store, &w), FR_OK);
    cr_assert_eq(fr_store_sweep(w, st, max_keys, &deleted), FR_OK);
    cr_assert_eq(fr_store_write_commit(w), FR_OK);
    return deleted;
}

/* Ticks until one more full pass completed; returns the number of ticks. */
static int full_pass(st_env_t *e, fr_sweep_state_t *st, size_t max_keys, uint64_t *deleted)
{
    uint64_t passes = st->passes;
    int ticks = 0;
    *deleted = 0;
    while (st->passes == passes) {
        uint64_t d = tick(e, st, max_keys);
        cr_assert_leq(d, max_keys, "a tick visits at most max_keys keys");
        *deleted += d;
        cr_assert_lt(++ticks, 200, "the sweeper does not finish a pass");
    }
    return ticks;
}

static int64_t status_at(st_env_t *e, const fr_view_def_t *v, const char *entity, int64_t as_of,
                         int64_t *event_ts)
{
    fr_rtxn_t *r;
    fr_asof_t got;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)entity, strlen(entity), as_of, 0, &got), FR_OK);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    *event_ts = got.event_ts_us;
    return got.status;
}

Test(sweep, old_versions_go_over_several_ticks_and_the_newest_stays_until_it_is_old)
{
    st_env_t e;
    st_open(&e, T0, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg = fr_store_registry(e.store);
    const fr_view_def_t *sv = fr_registry_view(reg, "short"), *kv = fr_registry_view(reg, "keep");
    static const int64_t ages[] = {5 * HOUR, 4 * HOUR, 3 * HOUR, 2 * HOUR, 30 * MIN};
    static const char *ents[] = {"e1", "e2", "e3"};
    for (int i = 0; i < 3; i++)
        for (int k = 4; k >= 0; k--) { /* newest first: out of order on purpose */
            put(&e, sv, ents[i], T0 - ages[k], k);
            put(&e, kv, ents[i], T0 - ages[k] - 10 * 24 * HOUR, k);
        }
    /* the retention boundary: exactly 1 h old stays, 1 us older goes */
    put(&e, sv, "edge", T0 - HOUR - 1, 1);
    put(&e, sv, "edge", T0 - HOUR, 2);
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 17);
    cr_assert_eq(st_view_stat(&e, kv->id).versions, 15);

    fr_sweep_state_t st;
    memset(&st, 0, sizeof st);
    uint64_t first = tick(&e, &st, 3);
    cr_assert_leq(first, 3);
    cr_assert_neq(st.resume_len, 0, "a 3-key tick over 32 keys stops midway");
    uint64_t deleted;
    int ticks = full_pass(&e, &st, 3, &deleted);
    deleted += first;
    cr_assert_geq(ticks, 5, "32 keys at 3 per tick need several ticks (got %d)", ticks);
    cr_assert_eq(deleted, 3 * 4 + 1, "four old versions per entity plus the edge's older one");
    cr_assert_eq(st.deleted_total, deleted);
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 4);
    cr_assert_eq(st_view_stat(&e, kv->id).versions, 15, "retention 0 keeps everything");

    int64_t ts;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(status_at(&e, sv, ents[i], T0, &ts), FR_STATUS_PRESENT);
        cr_assert_eq(ts, T0 - 30 * MIN, "the newest version stays");
        cr_assert_eq(status_at(&e, sv, ents[i], T0 - 31 * MIN, &ts), FR_STATUS_NOT_FOUND,
                     "older versions are gone");
        cr_assert_eq(status_at(&e, kv, ents[i], T0 - 5 * HOUR - 10 * 24 * HOUR, &ts),
                     FR_STATUS_PRESENT);
    }
    cr_assert_eq(status_at(&e, sv, "edge", T0, &ts), FR_STATUS_PRESENT);
    cr_assert_eq(ts, T0 - HOUR);
    cr_assert_eq(status_at(&e, sv, "edge", T0 - HOUR - 1, &ts), FR_STATUS_NOT_FOUND);

    /* another pass at the same time deletes nothing */
    full_pass(&e, &st, 3, &deleted);
    cr_assert_eq(deleted, 0);

    /* 29 minutes later the newest is 59 min old: still kept */
    e.clock.fixed_us = T0 + 29 * MIN;
    full_pass(&e, &st, 3, &deleted);
    cr_assert_eq(deleted, 1, "only the edge's version (now 1 h 29 min old) goes");
    cr_assert_eq(status_at(&e, sv, "e1", T0, &ts), FR_STATUS_PRESENT);

    /* 31 minutes later it is 61 min old: it goes too */
    e.clock.fixed_us = T0 + 31 * MIN;
    full_pass(&e, &st, 3, &deleted);
    cr_assert_eq(deleted, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(status_at(&e, sv, ents[i], T0 + 31 * MIN, &ts), FR_STATUS_NOT_FOUND);
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 0);
    cr_assert_eq(st_view_stat(&e, kv->id).versions, 15);
    cr_assert_eq(st.deleted_total, 3 * 5 + 2);
    fr_registry_release(reg);
    st_close(&e);
}

Test(sweep, resumes_where_the_last_tick_stopped)
{
    st_env_t e;
    st_open(&e, T0, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg = fr_store_registry(e.store);
    const fr_view_def_t *sv = fr_registry_view(reg, "short");
    char ent[16];
    for (int i = 0; i < 10; i++) {
        snprintf(ent, sizeof ent, "u%02d", i);
        put(&e, sv, ent, T0 - 2 * HOUR, i);
    }
    fr_sweep_state_t st;
    memset(&st, 0, sizeof st);
    /* every key is deletable, so each tick deletes exactly max_keys until the end */
    cr_assert_eq(tick(&e, &st, 3), 3);
    cr_assert_eq(tick(&e, &st, 3), 3);
    cr_assert_eq(tick(&e, &st, 3), 3);
    cr_assert_eq(st.passes, 0);
    cr_assert_eq(tick(&e, &st, 3), 1);
    cr_assert_eq(st.passes, 1, "reaching the end completes a pass");
    cr_assert_eq(st.resume_len, 0, "and wraps around");
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 0);
    int64_t ts;
    for (int i = 0; i < 10; i++) {
        snprintf(ent, sizeof ent, "u%02d", i);
        cr_assert_eq(status_at(&e, sv, ent, T0, &ts), FR_STATUS_NOT_FOUND);
    }
    fr_registry_release(reg);
    st_close(&e);
}

Test(sweep, an_empty_store_completes_a_pass)
{
    st_env_t e;
    st_open(&e, T0, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_sweep_state_t st;
    memset(&st, 0, sizeof st);
    cr_assert_eq(tick(&e, &st, 3), 0);
    cr_assert_eq(st.passes, 1);
    st_close(&e);
}
