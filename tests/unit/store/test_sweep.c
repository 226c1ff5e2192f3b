/* Retention sweeper (DESIGN.md, Semantics 8, with store.h's rule): versions older than their
 * view's retention go away over several bounded ticks that resume where the last one stopped,
 * except the one that still answers reads inside the retention window; an entity whose newest
 * version is too old goes entirely; retention 0 keeps everything; per-view counters follow. */
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

Test(sweep, old_versions_go_over_several_ticks_and_what_reads_in_the_window_need_stays)
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
    /* per entity the 5 h, 4 h and 3 h versions go; the 2 h one stays: it answers reads from the
     * cutoff (1 h ago) until the 30 min one */
    cr_assert_eq(deleted, 3 * 3 + 1, "three old versions per entity plus the edge's older one");
    cr_assert_eq(st.deleted_total, deleted);
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 7);
    cr_assert_eq(st_view_stat(&e, kv->id).versions, 15, "retention 0 keeps everything");

    int64_t ts;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(status_at(&e, sv, ents[i], T0, &ts), FR_STATUS_PRESENT);
        cr_assert_eq(ts, T0 - 30 * MIN, "the newest version stays");
        cr_assert_eq(status_at(&e, sv, ents[i], T0 - 31 * MIN, &ts), FR_STATUS_PRESENT,
                     "a read inside the window answers as before the sweep");
        cr_assert_eq(ts, T0 - 2 * HOUR);
        cr_assert_eq(status_at(&e, sv, ents[i], T0 - 2 * HOUR - 1, &ts), FR_STATUS_NOT_FOUND,
                     "what only reads before the window needed is gone");
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
    cr_assert_eq(deleted, 1, "only the edge's version (now 1 h 29 min old, its newest) goes");
    cr_assert_eq(status_at(&e, sv, "e1", T0, &ts), FR_STATUS_PRESENT);
    cr_assert_eq(status_at(&e, sv, "e1", T0 - 31 * MIN, &ts), FR_STATUS_PRESENT);

    /* 31 minutes later the newest is 61 min old: the entity goes, both versions */
    e.clock.fixed_us = T0 + 31 * MIN;
    full_pass(&e, &st, 3, &deleted);
    cr_assert_eq(deleted, 6);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(status_at(&e, sv, ents[i], T0 + 31 * MIN, &ts), FR_STATUS_NOT_FOUND);
    cr_assert_eq(st_view_stat(&e, sv->id).versions, 0);
    cr_assert_eq(st_view_stat(&e, kv->id).versions, 15);
    cr_assert_eq(st.deleted_total, 3 * 5 + 2);
    fr_registry_release(reg);
    st_close(&e);
}

/* Regression: every version older than the cutoff went, including the one that answered reads
 * inside the retention window, so a PIT export or an as-of read at a time the window covers
 * returned NOT_FOUND where serving at that time had returned the value. Served mode counts too: a
 * late-written version does not shadow an older one for times before it was written. */
Test(sweep, reads_inside_the_retention_window_answer_as_before_in_both_modes)
{
    st_env_t e;
    st_open(&e, T0 - 3 * HOUR, 0);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg = fr_store_registry(e.store);
    const fr_view_def_t *sv = fr_registry_view(reg, "short");
    put(&e, sv, "k", T0 - 3 * HOUR, 1); /* A: written on time, 3 h ago */
    e.clock.fixed_us = T0;
    put(&e, sv, "k", T0 - 2 * HOUR, 2);  /* B: an event of 2 h ago arriving late, now */
    put(&e, sv, "k", T0 - 10 * MIN, 3); /* C: the newest */
    put(&e, sv, "k2", T0 - 2 * HOUR, 4); /* an entity whose newest version is past the cutoff */
    int64_t before_ev, before_sv, ts;
    int sev = (int)status_at(&e, sv, "k", T0 - 30 * MIN, &before_ev);
    fr_rtxn_t *r;
    fr_asof_t got;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(fr_asof_get(r, sv, (const uint8_t *)"k", 1, T0 - 30 * MIN, FR_ASOF_SERVED, &got),
                 FR_OK);
    before_sv = got.event_ts_us;
    fr_rtxn_reset(r);
    cr_assert_eq(sev, FR_STATUS_PRESENT);
    cr_assert_eq(before_ev, T0 - 2 * HOUR, "event mode takes B");
    cr_assert_eq(got.status, FR_STATUS_PRESENT);
    cr_assert_eq(before_sv, T0 - 3 * HOUR, "served mode: B was not written yet, A answers");

    fr_sweep_state_t st;
    memset(&st, 0, sizeof st);
    uint64_t deleted;
    full_pass(&e, &st, 100, &deleted);
    cr_assert_eq(deleted, 1, "only k2 goes (its newest version is past the cutoff)");
    cr_assert_eq(status_at(&e, sv, "k", T0 - 30 * MIN, &ts), FR_STATUS_PRESENT);
    cr_assert_eq(ts, before_ev);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    cr_assert_eq(fr_asof_get(r, sv, (const uint8_t *)"k", 1, T0 - 30 * MIN, FR_ASOF_SERVED, &got),
                 FR_OK);
    cr_assert_eq(got.status, FR_STATUS_PRESENT);
    cr_assert_eq(got.event_ts_us, before_sv, "served mode still sees A");
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    cr_assert_eq(status_at(&e, sv, "k2", T0, &ts), FR_STATUS_NOT_FOUND);

    /* 45 min on (cutoff 15 min before B was written): served reads from the cutoff until B's
     * write still take A, so A stays */
    e.clock.fixed_us = T0 + 45 * MIN;
    full_pass(&e, &st, 100, &deleted);
    cr_assert_eq(deleted, 0, "A is still some read's answer");
    /* 2 h on, the newest (C) is past the cutoff too: the entity goes, all three versions */
    e.clock.fixed_us = T0 + 2 * HOUR;
    full_pass(&e, &st, 100, &deleted);
    cr_assert_eq(deleted, 3);
    cr_assert_eq(status_at(&e, sv, "k", T0 + 2 * HOUR, &ts), FR_STATUS_NOT_FOUND);
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
