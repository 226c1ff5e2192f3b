/* Freshness at read time (DESIGN.md, Semantics 2): PRESENT while as_of - event_ts <= ttl, EXPIRED
 * from one microsecond later (the value is still returned with its event time), NOT_FOUND before the
 * first event, and ttl 0 never expires. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/fault.h"
#include "store_test_util.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": ["
    "  {\"name\": \"fresh10s\", \"entity\": \"card\", \"ttl\": \"10s\","
    "   \"features\": [{\"name\": \"n\", \"type\": \"int64\"}]},"
    "  {\"name\": \"micro\", \"entity\": \"card\", \"ttl\": \"1us\","
    "   \"features\": [{\"name\": \"n\", \"type\": \"int64\"}]},"
    "  {\"name\": \"forever\", \"entity\": \"card\", \"ttl\": 0,"
    "   \"features\": [{\"name\": \"n\", \"type\": \"int64\"}]}]}";

#define T_EVENT (ST_NOW_US - 3600 * ST_SEC)

typedef struct {
    st_env_t e;
    fr_registry_t *reg;
    fr_rtxn_t *r;
} ttl_fx_t;

static void put(ttl_fx_t *f, const fr_view_def_t *view, int64_t ts, int64_t n)
{
    st_row_t rw;
    st_row_init(&rw, 1);
    msgpack_pack_int64(&rw.pk, n);
    fr_write_row_t row = {.view = view, .entity = (const uint8_t *)"c1", .entity_len = 2,
                          .event_ts_us = ts,
                          .values = (const uint8_t *)rw.sb.data, .values_len = (uint32_t)rw.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    cr_assert_eq(st_write_batch(&f->e, &b, &res), FR_OK);
    cr_assert_eq(res.written, 1);
    st_row_fini(&rw);
}

static void fx_open(ttl_fx_t *f)
{
    st_open(&f->e, ST_NOW_US, 0);
    cr_assert_eq(st_apply_registry(&f->e, REG, NULL), FR_OK);
    f->reg = fr_store_registry(f->e.store);
    put(f, fr_registry_view(f->reg, "fresh10s"), T_EVENT, 1);
    put(f, fr_registry_view(f->reg, "micro"), T_EVENT, 2);
    put(f, fr_registry_view(f->reg, "forever"), T_EVENT, 3);
    cr_assert_eq(fr_rtxn_new(f->e.store, &f->r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(f->r), FR_OK);
}

static void fx_close(ttl_fx_t *f)
{
    fr_rtxn_reset(f->r);
    fr_rtxn_free(f->r);
    fr_registry_release(f->reg);
    st_close(&f->e);
}

static fr_asof_t get(ttl_fx_t *f, const char *view, int64_t as_of)
{
    fr_asof_t got;
    const fr_view_def_t *v = fr_registry_view(f->reg, view);
    cr_assert_not_null(v);
    cr_assert_eq(fr_asof_get(f->r, v, (const uint8_t *)"c1", 2, as_of, 0, &got), FR_OK);
    return got;
}

Test(ttl, exactly_at_the_ttl_boundary_is_present)
{
    ttl_fx_t f;
    fx_open(&f);
    fr_asof_t g = get(&f, "fresh10s", T_EVENT + 10 * ST_SEC);
    cr_assert_eq(g.status, FR_STATUS_PRESENT);
    cr_assert_eq(g.event_ts_us, T_EVENT);
    g = get(&f, "fresh10s", T_EVENT);
    cr_assert_eq(g.status, FR_STATUS_PRESENT, "age 0 is fresh");
    g = get(&f, "micro", T_EVENT + 1);
    cr_assert_eq(g.status, FR_STATUS_PRESENT, "age == ttl (1 us) is fresh");
    fx_close(&f);
}

Test(ttl, one_microsecond_past_the_ttl_is_expired_with_value_and_event_time)
{
    ttl_fx_t f;
    fx_open(&f);
    fr_asof_t g = get(&f, "fresh10s", T_EVENT + 10 * ST_SEC + 1);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED);
    cr_assert_eq(g.event_ts_us, T_EVENT, "an expired value still reports its event time");
    cr_assert_not_null(g.values);
    cr_assert_gt(g.values_len, 0u, "the value is kept for include_expired");
    g = get(&f, "micro", T_EVENT + 2);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED);
    g = get(&f, "fresh10s", ST_NOW_US);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED);
    fx_close(&f);
}

Test(ttl, before_any_event_is_not_found)
{
    ttl_fx_t f;
    fx_open(&f);
    static const char *views[] = {"fresh10s", "micro", "forever"};
    for (size_t i = 0; i < 3; i++) {
        fr_asof_t g = get(&f, views[i], T_EVENT - 1);
        cr_assert_eq(g.status, FR_STATUS_NOT_FOUND, "%s", views[i]);
        cr_assert_eq(g.event_ts_us, 0);
        cr_assert_null(g.values);
        g = get(&f, views[i], 0);
        cr_assert_eq(g.status, FR_STATUS_NOT_FOUND, "%s", views[i]);
    }
    fx_close(&f);
}

Test(ttl, ttl_zero_never_expires)
{
    ttl_fx_t f;
    fx_open(&f);
    fr_asof_t g = get(&f, "forever", T_EVENT + 100LL * 365 * 86400 * ST_SEC);
    cr_assert_eq(g.status, FR_STATUS_PRESENT);
    g = get(&f, "forever", INT64_MAX);
    cr_assert_eq(g.status, FR_STATUS_PRESENT);
    cr_assert_eq(g.event_ts_us, T_EVENT);
    fx_close(&f);
}

Test(ttl, a_newer_version_is_fresh_while_the_old_one_stays_expired_in_the_past)
{
    ttl_fx_t f;
    fx_open(&f);
    const fr_view_def_t *v = fr_registry_view(f.reg, "fresh10s");
    fr_rtxn_reset(f.r);
    put(&f, v, T_EVENT + 60 * ST_SEC, 7);
    cr_assert_eq(fr_rtxn_begin(f.r), FR_OK);
    fr_asof_t g = get(&f, "fresh10s", T_EVENT + 59 * ST_SEC);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED, "as of 59 s only the old version exists");
    cr_assert_eq(g.event_ts_us, T_EVENT);
    g = get(&f, "fresh10s", T_EVENT + 70 * ST_SEC);
    cr_assert_eq(g.status, FR_STATUS_PRESENT);
    cr_assert_eq(g.event_ts_us, T_EVENT + 60 * ST_SEC);
    g = get(&f, "fresh10s", T_EVENT + 70 * ST_SEC + 1);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED);
    fx_close(&f);
}

Test(ttl, status_function_boundaries)
{
    cr_assert_eq(fr_asof_status(110, 100, 10), FR_STATUS_PRESENT);
    cr_assert_eq(fr_asof_status(111, 100, 10), FR_STATUS_EXPIRED);
    cr_assert_eq(fr_asof_status(100, 100, 10), FR_STATUS_PRESENT);
    cr_assert_eq(fr_asof_status(INT64_MAX, 0, 0), FR_STATUS_PRESENT);
}

/* Regression: a write transaction that ends without committing (the sweeper's tick that deletes
 * nothing aborts; a commit can fail) used to leave its stamp in the ring, and every later read's
 * "now" stayed capped below it, so on an idle store a value past its ttl read PRESENT. */
static void expect_clock_not_held_back(ttl_fx_t *f, const char *how)
{
    f->e.clock.fixed_us = ST_NOW_US + 3600 * ST_SEC; /* an hour later, nothing written since */
    fr_rtxn_reset(f->r);
    cr_assert_eq(fr_rtxn_begin(f->r), FR_OK);
    int64_t now = fr_store_read_now(f->r);
    cr_assert_eq(now, f->e.clock.fixed_us - 1, "%s: read now is %lld us behind the clock", how,
                 (long long)(f->e.clock.fixed_us - 1 - now));
    fr_asof_t g;
    const fr_view_def_t *v = fr_registry_view(f->reg, "fresh10s");
    cr_assert_eq(fr_asof_get(f->r, v, (const uint8_t *)"c1", 2, now, FR_ASOF_SERVED, &g), FR_OK);
    cr_assert_eq(g.status, FR_STATUS_EXPIRED, "%s: a value 10 s fresh read %d an hour later", how,
                 g.status);
}

Test(ttl, an_aborted_write_does_not_hold_back_the_read_clock)
{
    ttl_fx_t f;
    fx_open(&f);
    put(&f, fr_registry_view(f.reg, "fresh10s"), ST_NOW_US, 9); /* fresh at ST_NOW_US */
    f.e.clock.fixed_us = ST_NOW_US + ST_SEC;
    fr_wtxn_t *w;
    cr_assert_eq(fr_store_write_begin(f.e.store, &w), FR_OK);
    fr_store_write_abort(w);
    expect_clock_not_held_back(&f, "abort");
    fx_close(&f);
}

Test(ttl, a_failed_commit_does_not_hold_back_the_read_clock)
{
    ttl_fx_t f;
    fx_open(&f);
    const fr_view_def_t *v = fr_registry_view(f.reg, "fresh10s");
    put(&f, v, ST_NOW_US, 9);
    f.e.clock.fixed_us = ST_NOW_US + ST_SEC;
    st_row_t rw;
    st_row_init(&rw, 1);
    msgpack_pack_int64(&rw.pk, 10);
    fr_write_row_t row = {.view = v, .entity = (const uint8_t *)"c2", .entity_len = 2,
                          .event_ts_us = ST_NOW_US + ST_SEC,
                          .values = (const uint8_t *)rw.sb.data, .values_len = (uint32_t)rw.sb.size};
    fr_write_batch_t b = {.rows = &row, .row_count = 1};
    fr_write_result_t res;
    fr_wtxn_t *w;
    cr_assert_eq(fr_store_write_begin(f.e.store, &w), FR_OK);
    cr_assert_eq(fr_store_write_apply(w, &b, &res), FR_OK);
    fr_fault_arm(FR_FAULT_STORE, 1, 0); /* the commit is the next storage call */
    int rc = fr_store_write_commit(w);
    fr_fault_arm(FR_FAULT_STORE, 0, 0);
    cr_assert_neq(rc, FR_OK, "the armed commit must fail");
    st_row_fini(&rw);
    expect_clock_not_held_back(&f, "failed commit");
    fx_close(&f);
}
